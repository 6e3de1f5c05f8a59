//! `verify:` (issue #16): after the HTML phase and before the deletes and the invalidation,
//! hoist reads the changed pages back from the live site and checks that everything they
//! need is there.
//!
//! For each changed HTML page (all, or `sample` of them) it sends one GET of
//! `base_url` + the key with a cache-busting query, finds the same-origin assets the page
//! references ([`refs::html_refs`]) and sends one GET for each distinct one (reading the body
//! of a stylesheet only, whose `url()`s are then checked one level deep). Each must answer 200 with the
//! Content-Type and Content-Encoding the plan gave its key. Any failure stops the deploy
//! before the deletes: the old site's files are all still there.

mod refs;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use url::Url;

use super::plan::{Op, Phase, Plan};
use super::scan::LocalFile;
use crate::headers::{Headers, is_html};
use crate::key::Key;
use crate::report::escape;

/// Requests in flight at once while verifying.
const CONCURRENCY: usize = 16;

/// Pages larger than this are not read for references (their headers are still checked).
const MAX_PAGE: usize = 8 * 1024 * 1024;

/// What `verify:` says.
#[derive(Debug, Clone)]
pub(crate) struct VerifySettings {
    /// Where the target is served, ending in `/` (`https://www.example.com/`).
    pub(crate) base_url: Url,
    /// Check at most this many changed pages, spread over the sorted list.
    pub(crate) sample: Option<usize>,
    /// Per request.
    pub(crate) timeout: Duration,
}

/// One thing the live site got wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// The page that referenced it (itself, for a page).
    pub(crate) page: String,
    pub(crate) url: String,
    pub(crate) what: String,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum VerifyError {
    #[error(
        "verification of {base} failed for {} of {checked} request(s), so nothing was deleted \
         and no invalidation sent:{}",
        problems.len(),
        problems.iter().fold(String::new(), |mut out, p| {
            let _ = write!(out, "\n  {} (from {}): {}", p.url, p.page, p.what);
            out
        })
    )]
    Failed {
        base: String,
        checked: usize,
        problems: Vec<Problem>,
    },
    #[error("cannot make an HTTPS client for verification")]
    Client(#[source] std::io::Error),
}

/// What verification did, for the report.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct Verified {
    pub(crate) pages: usize,
    pub(crate) assets: usize,
}

/// What the live site should answer for one URL.
#[derive(Debug, Clone)]
struct Expected {
    content_type: Option<String>,
    content_encoding: Option<String>,
}

/// Where a URL to check came from: the page (or stylesheet) that referenced it, and the key
/// it names when it is one of the target's.
#[derive(Debug, Clone)]
struct Source {
    page: String,
    key: Option<String>,
}

/// The URLs still to check, each with where it was first found.
type Pending = BTreeMap<Url, Source>;

/// Verifies the changed pages of `plan`. `files` give the headers each key was published with;
/// `nonce` makes the pages' URLs unique to this run.
pub(crate) async fn verify(
    settings: &VerifySettings,
    plan: &Plan,
    files: &[LocalFile],
    nonce: &str,
) -> Result<Verified, VerifyError> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
        .map_err(VerifyError::Client)?
        .https_or_http()
        .enable_http1()
        .build();
    let mut checker = Checker {
        http: Http {
            client: Client::builder(TokioExecutor::new()).build(https),
            timeout: settings.timeout,
        },
        base: &settings.base_url,
        published: files
            .iter()
            .map(|f| (f.key.as_str(), &*f.resolved.headers))
            .collect(),
        problems: Vec::new(),
        checked: 0,
    };
    let pages = changed_pages(plan, files, settings.sample);
    let assets = checker.pages(&pages, nonce).await;
    let stylesheets = checker.assets(assets, true).await;
    checker.assets(stylesheets, false).await;
    let Checker {
        mut problems,
        checked,
        ..
    } = checker;
    if problems.is_empty() {
        return Ok(Verified {
            pages: pages.len(),
            assets: checked - pages.len(),
        });
    }
    problems.sort_by(|a, b| (&a.url, &a.page).cmp(&(&b.url, &b.page)));
    Err(VerifyError::Failed {
        base: settings.base_url.to_string(),
        checked,
        problems,
    })
}

/// The state of one verification.
struct Checker<'a, C> {
    http: Http<C>,
    base: &'a Url,
    /// Every key of the build with the headers the plan gave it.
    published: BTreeMap<&'a str, &'a Headers>,
    problems: Vec<Problem>,
    /// Requests sent.
    checked: usize,
}

impl<C> Checker<'_, C>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    /// One GET per page; returns the same-origin assets they reference.
    async fn pages(&mut self, pages: &[Key], nonce: &str) -> Pending {
        let http = &self.http;
        let base = self.base;
        let fetched: Vec<(&Key, String, Result<Answer, String>)> = futures::stream::iter(pages)
            .map(|key| async move {
                let url = page_url(base, key, nonce);
                let answer = http.get(&url, true).await;
                (key, url, answer)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        self.checked += fetched.len();
        let mut assets = Pending::new();
        for (key, url, answer) in fetched {
            let Some(body) = self.judge(key.as_str(), &url, Some(key.as_str()), answer) else {
                continue;
            };
            self.collect(&url, key.as_str(), &refs::html_refs(&body), &mut assets);
        }
        assets
    }

    /// One GET per asset (its body read only for a stylesheet, when `read_css`; a GET, not a
    /// HEAD, because that is what browsers send, and a store may allow one and not the other:
    /// moto answers a policy's anonymous HEAD with 403); returns what the stylesheets
    /// reference.
    async fn assets(&mut self, pending: Pending, read_css: bool) -> Pending {
        let http = &self.http;
        let answers: Vec<(Url, Source, Result<Answer, String>)> = futures::stream::iter(pending)
            .map(|(url, source)| async move {
                let css = read_css && is_stylesheet(&url);
                let answer = http.get(url.as_str(), css).await;
                (url, source, answer)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        self.checked += answers.len();
        let mut next = Pending::new();
        for (url, source, answer) in answers {
            let Some(css) = self.judge(&source.page, url.as_str(), source.key.as_deref(), answer)
            else {
                continue;
            };
            self.collect(url.as_str(), url.as_str(), &refs::css_refs(&css), &mut next);
        }
        next
    }

    /// Records what is wrong with an answer; returns its text when it is right and was read.
    fn judge(
        &mut self,
        page: &str,
        url: &str,
        key: Option<&str>,
        answer: Result<Answer, String>,
    ) -> Option<String> {
        let expected = key
            .and_then(|key| self.published.get(key))
            .map(|headers| Expected {
                content_type: headers.content_type.clone(),
                content_encoding: headers.content_encoding.clone(),
            });
        let wrong = match &answer {
            Ok(answer) => answer.mismatch(expected.as_ref()),
            Err(error) => Some(error.clone()),
        };
        if let Some(what) = wrong {
            self.problems.push(problem(page, url, what));
            return None;
        }
        answer.ok()?.text()
    }

    /// Adds the same-origin references found at `from` to `into`, unless already there.
    fn collect(&self, from: &str, page: &str, found: &[String], into: &mut Pending) {
        for reference in found {
            if let Some(asset) = same_origin(self.base, from, reference) {
                let key = key_of(self.base, &asset);
                into.entry(asset).or_insert_with(|| Source {
                    page: page.to_string(),
                    key,
                });
            }
        }
    }
}

fn problem(page: &str, url: &str, what: String) -> Problem {
    Problem {
        page: escape(page).into_owned(),
        url: escape(url).into_owned(),
        what,
    }
}

/// The HTML pages this plan uploads or re-headers, sorted; with `sample`, that many spread
/// evenly over them (the first and the last among them).
fn changed_pages(plan: &Plan, files: &[LocalFile], sample: Option<usize>) -> Vec<Key> {
    let pages: Vec<Key> = plan
        .phase(Phase::Html)
        .filter(|a| matches!(a.op, Op::Upload | Op::UpdateHeaders))
        .filter(|a| {
            a.file
                .is_some_and(|i| is_html(files[i].resolved.headers.content_type.as_deref()))
        })
        .map(|a| a.key.clone())
        .collect();
    match sample {
        Some(n) if n < pages.len() && n > 0 => {
            let step = (pages.len() - 1) as f64 / (n.max(2) - 1) as f64;
            let mut picked: Vec<Key> = (0..n)
                .map(|i| {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let at = (i as f64 * step).round() as usize;
                    pages[at.min(pages.len() - 1)].clone()
                })
                .collect();
            picked.dedup();
            picked
        }
        _ => pages,
    }
}

/// `base_url` + the key, each segment percent-encoded, with `?hoist-verify=<nonce>`.
fn page_url(base: &Url, key: &Key, nonce: &str) -> String {
    let mut url = base.clone();
    {
        let mut segments = url.path_segments_mut().expect("an http(s) base URL");
        segments.pop_if_empty();
        segments.extend(key.as_str().split('/'));
    }
    url.set_query(Some(&format!("hoist-verify={nonce}")));
    url.to_string()
}

/// The reference resolved against the page, if it is on the base URL's origin (scheme, host
/// and port), without its fragment.
fn same_origin(base: &Url, page: &str, reference: &str) -> Option<Url> {
    let page = Url::parse(page).ok()?;
    let mut url = page.join(reference).ok()?;
    url.set_fragment(None);
    (url.origin() == base.origin()).then_some(url)
}

/// The key a same-origin URL names, when its path is under the base URL's path.
fn key_of(base: &Url, url: &Url) -> Option<String> {
    let rest = url.path().strip_prefix(base.path())?;
    let decoded = percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .ok()?
        .into_owned();
    (!decoded.is_empty()).then_some(decoded)
}

fn is_stylesheet(url: &Url) -> bool {
    std::path::Path::new(url.path())
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("css"))
}

/// The HTTP client, with a timeout per request.
struct Http<C> {
    client: Client<C, Empty<Bytes>>,
    timeout: Duration,
}

/// What the live site answered.
struct Answer {
    status: u16,
    content_type: Option<String>,
    content_encoding: Option<String>,
    body: Option<Bytes>,
}

impl<C> Http<C>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    /// GET, the body read up to [`MAX_PAGE`] when `body` (else left unread).
    async fn get(&self, url: &str, body: bool) -> Result<Answer, String> {
        let request = hyper::Request::builder()
            .method("GET")
            .uri(url)
            .header(
                "user-agent",
                concat!("hoist/", env!("CARGO_PKG_VERSION"), " (verify)"),
            )
            .body(Empty::new())
            .map_err(|e| format!("not a URL: {e}"))?;
        let run = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("request failed: {}", crate::error::ErrorChain(&e)))?;
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let status = response.status().as_u16();
            let content_type = header("content-type");
            let content_encoding = header("content-encoding");
            let body = if body && status == 200 {
                let limited = http_body_util::Limited::new(response.into_body(), MAX_PAGE);
                limited
                    .collect()
                    .await
                    .ok()
                    .map(http_body_util::Collected::to_bytes)
            } else {
                None
            };
            Ok(Answer {
                status,
                content_type,
                content_encoding,
                body,
            })
        };
        tokio::time::timeout(self.timeout, run)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {}s", self.timeout.as_secs())))
    }
}

impl Answer {
    /// What is wrong with this answer, if anything: not 200, or (when the key is one of the
    /// plan's) another Content-Type or Content-Encoding than the plan gave it.
    fn mismatch(&self, expected: Option<&Expected>) -> Option<String> {
        if self.status != 200 {
            return Some(format!("answered {}", self.status));
        }
        let expected = expected?;
        let same = |got: &Option<String>, want: &Option<String>| {
            let norm = |v: &Option<String>| {
                v.as_deref()
                    .map(|s| s.trim().to_ascii_lowercase().replace("; ", ";"))
                    .filter(|s| !s.is_empty() && s != "identity")
            };
            norm(got) == norm(want)
        };
        let shown = |v: &Option<String>| {
            v.as_deref()
                .map_or("none".to_string(), |v| format!("`{}`", escape(v)))
        };
        if !same(&self.content_type, &expected.content_type) {
            return Some(format!(
                "Content-Type {}, the plan gave it {}",
                shown(&self.content_type),
                shown(&expected.content_type)
            ));
        }
        if !same(&self.content_encoding, &expected.content_encoding) {
            return Some(format!(
                "Content-Encoding {}, the plan gave it {}",
                shown(&self.content_encoding),
                shown(&expected.content_encoding)
            ));
        }
        None
    }

    /// The body as text, when it was read and is not compressed (hoist does not decompress).
    fn text(&self) -> Option<String> {
        if self
            .content_encoding
            .as_deref()
            .is_some_and(|e| !e.trim().is_empty() && !e.eq_ignore_ascii_case("identity"))
        {
            return None;
        }
        let body = self.body.as_ref()?;
        Some(String::from_utf8_lossy(body).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_keys() {
        let base = Url::parse("http://127.0.0.1:9000/bucket/site/").unwrap();
        let key = Key::new("docs/caf\u{e9} menu.html").unwrap();
        let page = page_url(&base, &key, "n1");
        assert_eq!(
            page,
            "http://127.0.0.1:9000/bucket/site/docs/caf%C3%A9%20menu.html?hoist-verify=n1"
        );
        let asset = same_origin(&base, &page, "../assets/a.js#x").unwrap();
        assert_eq!(
            asset.as_str(),
            "http://127.0.0.1:9000/bucket/site/assets/a.js"
        );
        assert_eq!(key_of(&base, &asset).as_deref(), Some("assets/a.js"));
        assert_eq!(
            same_origin(&base, &page, "https://cdn.example.com/x.js"),
            None
        );
        let outside = same_origin(&base, &page, "/other/x.js").unwrap();
        assert_eq!(key_of(&base, &outside), None);
    }
}
