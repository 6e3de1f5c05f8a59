//! Edge rules (issue #17): redirects, rewrites, the single-page-app fallback, clean URLs and
//! response headers: what an object's metadata cannot say.
//!
//! One rule set, read from deploy.yaml (`redirects:`, `spa:`, `clean_urls:`,
//! `response_headers:`) and from the build's Netlify/Cloudflare-style `_redirects` and
//! `_headers` files ([`netlify`]; never published themselves), goes to two compilers:
//! - [`website`]: for the S3 website endpoint, exact-path redirects become zero-byte objects
//!   with `x-amz-website-redirect-location`; the rest is reported as what the endpoint cannot
//!   express.
//! - [`function`]: a CloudFront Function (runtime 2.0) for viewer requests (redirects,
//!   rewrites, the SPA fallback, clean URLs, directory indexes, encoding variants) and one for
//!   viewer responses (the headers), with its tables inline or, past CloudFront's code size
//!   limit, in a KeyValueStore.
//!
//! Matching, for both: a rule's `from` is a path with `:name` placeholders (a whole segment)
//! and at most one `*` splat, at its end; a trailing slash on the request is ignored; the
//! first rule that matches wins; a rule not forced (`force: true`, or `301!` in
//! `_redirects`) does not apply where the build has a file at that path, as on Netlify.

mod build;
pub(crate) mod function;
pub(crate) mod manage;
pub(crate) mod netlify;
pub(crate) mod website;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

pub(crate) use build::edge_build;

/// Where redirects and headers files sit in the build.
pub(crate) const REDIRECTS_FILE: &str = "_redirects";
pub(crate) const HEADERS_FILE: &str = "_headers";

/// Statuses a redirect may have: `200` rewrites (serves `to` under the requested path).
const STATUSES: [u16; 6] = [200, 301, 302, 303, 307, 308];

/// One `redirects:` entry of deploy.yaml.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedirectConfig {
    /// The path it applies to: `/old`, `/blog/*`, `/users/:id`.
    pub(crate) from: String,
    /// Where to: a path or URL, with `:splat` and `:name` from `from`.
    pub(crate) to: String,
    /// 301 (default), 302, 303, 307, 308, or 200 to rewrite.
    pub(crate) status: Option<u16>,
    /// Apply even where the build has a file at `from`.
    #[serde(default)]
    pub(crate) force: bool,
}

/// One `response_headers:` entry of deploy.yaml.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeadersConfig {
    /// The request paths: `/*`, `/admin/*`, `/about`.
    #[serde(rename = "match")]
    pub(crate) path: String,
    /// Header name → value, added to every response for those paths.
    pub(crate) headers: BTreeMap<String, String>,
}

/// `edge:` in deploy.yaml: how the rules are compiled.
#[derive(Debug, Default, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EdgeConfig {
    /// Publish exact redirects as S3 website redirect objects (default true).
    pub(crate) redirect_objects: Option<bool>,
    /// Put the function's tables in a CloudFront KeyValueStore even when they fit the code.
    #[serde(default)]
    pub(crate) kvs: bool,
}

/// A redirect or rewrite, wherever it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Redirect {
    pub(crate) from: PathPattern,
    pub(crate) to: String,
    pub(crate) status: u16,
    pub(crate) force: bool,
    /// Where it was written: `deploy.yaml redirects[2]`, `_redirects line 7`.
    pub(crate) origin: String,
}

/// Headers for the responses of matching paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderRule {
    pub(crate) path: PathPattern,
    /// In order; a `None` value removes the header (Cloudflare's `! Name`).
    pub(crate) headers: Vec<(String, Option<String>)>,
    pub(crate) origin: String,
}

/// How clean URLs are canonicalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CleanUrls {
    Off,
    /// `/about` serves `about/index.html` (or `about.html`); `/about/` redirects to it.
    NoSlash,
    /// `/about/` serves it; `/about` redirects there.
    TrailingSlash,
}

/// The whole rule set, as the compilers take it.
#[derive(Debug, Clone)]
pub(crate) struct EdgeRules {
    pub(crate) redirects: Vec<Redirect>,
    pub(crate) headers: Vec<HeaderRule>,
    /// The app's page (`/index.html`) for paths with no file, if a single-page app.
    pub(crate) spa: Option<String>,
    pub(crate) clean_urls: CleanUrls,
    pub(crate) redirect_objects: bool,
    pub(crate) kvs: bool,
}

impl EdgeRules {
    /// Whether there is anything for an edge function to do beyond directory indexes.
    pub(crate) fn is_empty(&self) -> bool {
        self.redirects.is_empty()
            && self.headers.is_empty()
            && self.spa.is_none()
            && self.clean_urls == CleanUrls::Off
    }
}

/// A problem in an edge rule, naming where it was written.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {message}")]
pub(crate) struct EdgeError {
    pub(crate) origin: String,
    pub(crate) message: String,
}

/// The rules deploy.yaml states (checked before anything else happens).
#[derive(Debug, Clone, Default)]
pub(crate) struct ConfiguredEdge {
    pub(crate) redirects: Vec<Redirect>,
    pub(crate) headers: Vec<HeaderRule>,
    pub(crate) spa: Option<String>,
    pub(crate) clean_urls: Option<bool>,
    pub(crate) trailing_slash: bool,
    pub(crate) edge: EdgeConfig,
}

impl ConfiguredEdge {
    /// Checks and compiles deploy.yaml's edge keys.
    pub(crate) fn from_config(
        config: &super::config::DeployConfig,
    ) -> Result<ConfiguredEdge, EdgeError> {
        let redirects = config
            .redirects
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                redirect(
                    &rule.from,
                    &rule.to,
                    rule.status.unwrap_or(301),
                    rule.force,
                    format!("deploy.yaml redirects[{index}]"),
                )
            })
            .collect::<Result<_, _>>()?;
        let headers = config
            .response_headers
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                let origin = format!("deploy.yaml response_headers[{index}]");
                let path = PathPattern::parse(&rule.path).map_err(|message| EdgeError {
                    origin: origin.clone(),
                    message,
                })?;
                let headers = rule
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        header_name(name)
                            .map(|name| (name, Some(value.clone())))
                            .map_err(|message| EdgeError {
                                origin: origin.clone(),
                                message,
                            })
                    })
                    .collect::<Result<_, _>>()?;
                Ok(HeaderRule {
                    path,
                    headers,
                    origin,
                })
            })
            .collect::<Result<_, EdgeError>>()?;
        if let Some(spa) = &config.spa
            && !spa.starts_with('/')
        {
            return Err(EdgeError {
                origin: "deploy.yaml spa".into(),
                message: format!("`{spa}` must be a path starting with `/` (`/index.html`)"),
            });
        }
        Ok(ConfiguredEdge {
            redirects,
            headers,
            spa: config.spa.clone(),
            clean_urls: config.clean_urls,
            trailing_slash: config.trailing_slash.unwrap_or(false),
            edge: config.edge.clone().unwrap_or_default(),
        })
    }

    /// The whole rule set: deploy.yaml's rules first, then the build's `_redirects` and
    /// `_headers` (when present). Returns the notes on what those files say that hoist cannot
    /// honour (each rule skipped, naming its line).
    pub(crate) fn load(&self, source: &Path) -> Result<(EdgeRules, Vec<String>), EdgeError> {
        let mut notes = Vec::new();
        let mut redirects = self.redirects.clone();
        let mut spa = self.spa.clone();
        if let Some(text) = read(source, REDIRECTS_FILE)? {
            let parsed = netlify::parse_redirects(&text);
            notes.extend(parsed.notes);
            for rule in parsed.rules {
                // Netlify's SPA idiom serves the app for every missing path, a missing
                // script too; read it as `spa:`, which never answers for a file path.
                if rule.status == 200
                    && rule.from.is_catch_all()
                    && !rule.force
                    && !rule.to.contains(':')
                {
                    notes.push(format!(
                        "{}: `/* {} 200` is read as `spa: {}`: the app for paths without a file \
                         extension, while a missing asset stays a 404",
                        rule.origin, rule.to, rule.to
                    ));
                    spa.get_or_insert(rule.to);
                    continue;
                }
                redirects.push(rule);
            }
        }
        let mut headers = self.headers.clone();
        if let Some(text) = read(source, HEADERS_FILE)? {
            let parsed = netlify::parse_headers(&text);
            notes.extend(parsed.notes);
            headers.extend(parsed.rules);
        }
        let clean_urls = match (self.clean_urls, self.trailing_slash) {
            (Some(true), false) => CleanUrls::NoSlash,
            (Some(true), true) => CleanUrls::TrailingSlash,
            _ => CleanUrls::Off,
        };
        Ok((
            EdgeRules {
                redirects,
                headers,
                spa,
                clean_urls,
                redirect_objects: self.edge.redirect_objects.unwrap_or(true),
                kvs: self.edge.kvs,
            },
            notes,
        ))
    }
}

fn read(source: &Path, name: &str) -> Result<Option<String>, EdgeError> {
    match std::fs::read_to_string(source.join(name)) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(EdgeError {
            origin: source.join(name).display().to_string(),
            message: format!("cannot read it: {error}"),
        }),
    }
}

/// A checked redirect: a valid `from`, a `to` that only uses what `from` captures, a status
/// hoist can serve.
pub(crate) fn redirect(
    from: &str,
    to: &str,
    status: u16,
    force: bool,
    origin: String,
) -> Result<Redirect, EdgeError> {
    let fail = |message: String| EdgeError {
        origin: origin.clone(),
        message,
    };
    let from = PathPattern::parse(from).map_err(fail)?;
    if !STATUSES.contains(&status) {
        return Err(fail(format!(
            "status {status} is not one of 200 (a rewrite), 301, 302, 303, 307, 308"
        )));
    }
    if to.is_empty() {
        return Err(fail("`to` is empty".into()));
    }
    if status == 200 && !to.starts_with('/') {
        return Err(fail(format!(
            "a rewrite (200) serves a path of this site; `{to}` is not one (redirect to it \
             with 301 or 302 instead)"
        )));
    }
    for name in placeholders_in(to) {
        let known = if name == "splat" {
            from.splat
        } else {
            from.names().any(|n| n == name)
        };
        if !known {
            return Err(fail(format!(
                "`to` uses `:{name}`, which `{}` does not capture",
                from.text
            )));
        }
    }
    Ok(Redirect {
        from,
        to: to.to_string(),
        status,
        force,
        origin,
    })
}

/// The `:name` placeholders of a `to`.
fn placeholders_in(to: &str) -> Vec<&str> {
    to_parts(to)
        .into_iter()
        .filter_map(|part| match part {
            ToPart::Placeholder(name) => Some(name),
            ToPart::Text(_) => None,
        })
        .collect()
}

/// One piece of a `to`: text, or a `:name` placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ToPart<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

/// A `to` split into text and `:name` placeholders (a name starts with a letter: the colon of
/// `https://` is text). Used by the checks here and by the function compiler.
pub(crate) fn to_parts(to: &str) -> Vec<ToPart<'_>> {
    let mut parts = Vec::new();
    let mut rest = to;
    while let Some(at) = rest.find(':') {
        let after = &rest[at + 1..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if end > 0 && after.as_bytes()[0].is_ascii_alphabetic() {
            if at > 0 {
                parts.push(ToPart::Text(&rest[..at]));
            }
            parts.push(ToPart::Placeholder(&after[..end]));
            rest = &after[end..];
        } else {
            parts.push(ToPart::Text(&rest[..=at]));
            rest = after;
        }
    }
    if !rest.is_empty() {
        parts.push(ToPart::Text(rest));
    }
    parts
}

fn header_name(name: &str) -> Result<String, String> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !valid {
        return Err(format!("`{name}` is not an HTTP header name"));
    }
    let lower = name.to_ascii_lowercase();
    // CloudFront Functions may not set these (and S3 metadata says Content-Type and
    // Cache-Control better: set them in `rules:`).
    if matches!(
        lower.as_str(),
        "content-length" | "transfer-encoding" | "connection" | "upgrade" | "via" | "host"
    ) {
        return Err(format!(
            "`{name}` cannot be set by a CloudFront Function (a read-only header)"
        ));
    }
    Ok(lower)
}

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `:name`: one whole segment.
    Named(String),
}

/// A `from` or headers path: literal segments, `:name` placeholders and an optional trailing
/// `*` splat (after a `/`, it also matches the bare prefix: `/blog/*` matches `/blog`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathPattern {
    /// As written.
    pub(crate) text: String,
    segments: Vec<Segment>,
    /// Ends in `*`.
    splat: bool,
    /// The text before a splat that is not a whole segment (`/blog*` → `blog`).
    splat_prefix: String,
}

impl PathPattern {
    pub(crate) fn parse(text: &str) -> Result<PathPattern, String> {
        if !text.starts_with('/') {
            return Err(format!(
                "`{text}` must be a path starting with `/` (hoist cannot match on domains)"
            ));
        }
        if text.contains('?') || text.contains('#') {
            return Err(format!(
                "`{text}`: query strings and fragments are not matched"
            ));
        }
        let (body, splat) = match text.strip_suffix('*') {
            Some(body) => (body, true),
            None => (text, false),
        };
        if body.contains('*') {
            return Err(format!("`{text}`: a splat `*` may only end the path"));
        }
        let mut segments = Vec::new();
        let mut splat_prefix = String::new();
        let trimmed = body.trim_start_matches('/');
        let parts: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        for (index, part) in parts.iter().enumerate() {
            let last = index + 1 == parts.len();
            if last && splat && !body.ends_with('/') {
                splat_prefix = (*part).to_string();
                break;
            }
            if part.is_empty() {
                if last {
                    break; // a trailing slash
                }
                return Err(format!("`{text}` has an empty segment"));
            }
            if let Some(name) = part.strip_prefix(':') {
                if name.is_empty()
                    || name == "splat"
                    || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(format!("`{text}`: `{part}` is not a placeholder name"));
                }
                segments.push(Segment::Named(name.to_string()));
            } else {
                segments.push(Segment::Literal((*part).to_string()));
            }
        }
        Ok(PathPattern {
            text: text.to_string(),
            segments,
            splat,
            splat_prefix,
        })
    }

    /// Whether it matches exactly one path.
    pub(crate) fn is_exact(&self) -> bool {
        !self.splat
            && self
                .segments
                .iter()
                .all(|s| matches!(s, Segment::Literal(_)))
    }

    /// `/*`: every path.
    pub(crate) fn is_catch_all(&self) -> bool {
        self.splat && self.segments.is_empty() && self.splat_prefix.is_empty()
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Named(name) => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// The exact path, without a trailing slash (`/` for the root). Only for exact patterns.
    pub(crate) fn exact_path(&self) -> String {
        let mut path = String::new();
        for segment in &self.segments {
            if let Segment::Literal(text) = segment {
                path.push('/');
                path.push_str(text);
            }
        }
        if path.is_empty() {
            path.push('/');
        }
        path
    }

    /// The JavaScript regular expression (source) that matches what this pattern matches, on
    /// a path without its trailing slash; captures in order: the placeholders, then the splat.
    pub(crate) fn js_regex(&self) -> String {
        let mut out = String::from("^");
        for segment in &self.segments {
            out.push_str("\\/");
            match segment {
                Segment::Literal(text) => out.push_str(&escape_regex(text)),
                Segment::Named(_) => out.push_str("([^/]+)"),
            }
        }
        if self.splat {
            if self.splat_prefix.is_empty() {
                out.push_str("(?:\\/(.*))?");
            } else {
                out.push_str("\\/");
                out.push_str(&escape_regex(&self.splat_prefix));
                out.push_str("(.*)");
            }
        } else if self.segments.is_empty() {
            out.push_str("\\/");
        }
        out.push('$');
        out
    }

    /// Whether `path` (with or without a trailing slash) matches, and its captures by name
    /// (`splat` for the splat). The same semantics as [`Self::js_regex`].
    pub(crate) fn captures(&self, path: &str) -> Option<Vec<(String, String)>> {
        let path = normalize(path);
        let rest = path.strip_prefix('/')?;
        let mut parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let mut out = Vec::new();
        for segment in &self.segments {
            if parts.is_empty() {
                return None;
            }
            let part = parts.remove(0);
            match segment {
                Segment::Literal(text) if text == part => {}
                Segment::Named(name) if !part.is_empty() => {
                    out.push((name.clone(), part.to_string()));
                }
                Segment::Literal(_) | Segment::Named(_) => return None,
            }
        }
        if self.splat {
            let remaining = parts.join("/");
            let splat = if self.splat_prefix.is_empty() {
                remaining
            } else {
                remaining
                    .strip_prefix(self.splat_prefix.as_str())?
                    .to_string()
            };
            if !self.splat_prefix.is_empty() && parts.is_empty() {
                return None;
            }
            out.push(("splat".into(), splat));
            Some(out)
        } else {
            parts.is_empty().then_some(out)
        }
    }
}

/// A request path without its trailing slash (`/` stays `/`).
pub(crate) fn normalize(path: &str) -> &str {
    if path.len() > 1 {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    }
}

fn escape_regex(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\^$.|?*+()[]{}/".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (pattern, path, captures if it matches).
    type Case<'a> = (&'a str, &'a str, Option<&'a [(&'a str, &'a str)]>);

    #[test]
    fn patterns_match_like_their_javascript() {
        let cases: &[Case<'_>] = &[
            ("/old", "/old", Some(&[])),
            ("/old", "/old/", Some(&[])),
            ("/old", "/older", None),
            (
                "/blog/*",
                "/blog/2024/post",
                Some(&[("splat", "2024/post")]),
            ),
            ("/blog/*", "/blog", Some(&[("splat", "")])),
            ("/blog/*", "/blogs/x", None),
            (
                "/users/:id/profile",
                "/users/42/profile",
                Some(&[("id", "42")]),
            ),
            ("/users/:id/profile", "/users//profile", None),
            ("/users/:id", "/users/42/extra", None),
            (
                "/*",
                "/anything/at/all",
                Some(&[("splat", "anything/at/all")]),
            ),
            ("/", "/", Some(&[])),
            ("/news*", "/newsletter", Some(&[("splat", "letter")])),
        ];
        for (pattern, path, want) in cases {
            let parsed = PathPattern::parse(pattern).unwrap();
            let got = parsed.captures(path);
            let want = want.map(|w| {
                w.iter()
                    .map(|(a, b)| ((*a).to_string(), (*b).to_string()))
                    .collect::<Vec<_>>()
            });
            assert_eq!(got, want, "{pattern} on {path}");
        }
        assert!(PathPattern::parse("/a/*/b").is_err());
        assert!(PathPattern::parse("old").is_err());
        assert!(PathPattern::parse("/a/:").is_err());
    }

    #[test]
    fn redirects_are_checked_naming_their_origin() {
        let error = redirect("/a", "/b/:splat", 301, false, "x".into()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "x: `to` uses `:splat`, which `/a` does not capture"
        );
        assert!(redirect("/a", "/b", 404, false, "x".into()).is_err());
        assert!(redirect("/a", "https://example.com/b", 200, false, "x".into()).is_err());
        assert!(
            redirect(
                "/a/:id",
                "https://example.com/u/:id",
                301,
                false,
                "x".into()
            )
            .is_ok()
        );
        assert_eq!(placeholders_in("https://x.org/:a/b"), ["a"]);
    }
}
