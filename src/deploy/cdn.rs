//! CloudFront invalidation: exactly the paths a deploy made stale, within CloudFront's limits.
//!
//! Pure part ([`Changes`], [`paths_for`], [`collapse`]): keys that replaced or removed an
//! object a cache may hold (uploads over an existing key, header updates, deletes; never new or
//! immutable keys) become URL paths: the key under the target prefix, minus the origin's
//! OriginPath, with a leading `/`, percent-encoded where CloudFront requires it. `dir/index.html`
//! also invalidates `/dir/` and `/dir`. Past `max_paths`, paths collapse into the most specific
//! set of `/dir/*` wildcards that fits (at most 15, CloudFront's in-progress limit), else `/*`.
//!
//! I/O part: GetDistribution (to read OriginPath), CreateInvalidation with a unique
//! CallerReference, retried with backoff on TooManyInvalidationsInProgress, and optional
//! polling of GetInvalidation until Completed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::plan::{Op, Plan};
use super::settings::CloudFrontSettings;
use super::target::Target;
use crate::aws::cloudfront::{CloudFront, CloudFrontError, Invalidation};
use crate::interrupt::Interrupt;
use crate::key::Prefix;
use crate::report::Printer;

/// CloudFront allows 15 wildcard paths in progress at once.
pub(crate) const MAX_WILDCARDS: usize = 15;
/// And 3,000 paths in one invalidation (in progress at once).
pub(crate) const MAX_PATHS: usize = 3000;

/// Keys (relative to the target prefix) whose cached copies are stale after the deploy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    pub(crate) keys: Vec<String>,
}

impl Changes {
    pub(crate) fn from_plan(plan: &Plan) -> Changes {
        let keys = plan
            .actions
            .iter()
            .filter(|a| !a.immutable && a.reason.replaces_existing())
            .filter(|a| matches!(a.op, Op::Upload | Op::UpdateHeaders | Op::Delete))
            .map(|a| a.key.as_str().to_string())
            .collect();
        Changes { keys }
    }

    /// These changes and the keys an earlier deploy left uninvalidated, each once, sorted.
    pub(crate) fn with_pending(self, pending: &[String]) -> Changes {
        let keys: BTreeSet<String> = self
            .keys
            .into_iter()
            .chain(pending.iter().cloned())
            .collect();
        Changes {
            keys: keys.into_iter().collect(),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct InvalidationReport {
    pub(crate) distribution_id: String,
    pub(crate) paths: Vec<String>,
    pub(crate) id: Option<String>,
    /// `dryrun`, `none` (nothing to invalidate), `InProgress` or `Completed`.
    pub(crate) status: String,
}

impl InvalidationReport {
    pub(crate) fn summary(&self) -> String {
        match &self.id {
            Some(id) => format!(
                "invalidated {} path(s) on {} ({id}, {})",
                self.paths.len(),
                self.distribution_id,
                self.status
            ),
            None if self.paths.is_empty() => "no invalidation needed".into(),
            None => format!("would invalidate {} path(s)", self.paths.len()),
        }
    }
}

/// Characters CloudFront wants percent-encoded: controls, space, non-ASCII, and RFC 1738's
/// unsafe characters. Anything else must stay as it is, or the path does not match.
const UNSAFE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(b'~');

pub(crate) fn encode_path(path: &str) -> String {
    percent_encoding::utf8_percent_encode(path, UNSAFE).to_string()
}

/// The unencoded URL paths to invalidate for the changed keys. `origin_path` is the
/// distribution origin's OriginPath (`/site` or empty); keys outside it are not served by the
/// distribution and are skipped.
pub(crate) fn paths_for(changes: &Changes, prefix: &Prefix, origin_path: &str) -> Vec<String> {
    let origin = origin_path.trim_matches('/');
    let mut out = BTreeSet::new();
    for key in &changes.keys {
        let full = format!("{}{}", prefix.as_str(), key);
        let viewer = if origin.is_empty() {
            full.as_str()
        } else {
            match full.strip_prefix(origin).and_then(|r| r.strip_prefix('/')) {
                Some(rest) => rest,
                None => continue,
            }
        };
        out.insert(format!("/{viewer}"));
        if viewer == "index.html" {
            out.insert("/".to_string());
        } else if let Some(dir) = viewer.strip_suffix("/index.html") {
            out.insert(format!("/{dir}/"));
            out.insert(format!("/{dir}"));
        }
    }
    out.into_iter().collect()
}

#[derive(Default, Debug)]
struct Node {
    /// Paths that end directly in this directory.
    files: BTreeSet<String>,
    children: BTreeMap<String, Node>,
    count: usize,
}

impl Node {
    fn insert(&mut self, path: &str, segments: &[&str]) {
        self.count += 1;
        match segments {
            [] | [_] => {
                self.files.insert(path.to_string());
            }
            [dir, rest @ ..] => self
                .children
                .entry((*dir).to_string())
                .or_default()
                .insert(path, rest),
        }
    }

    fn all_paths(&self, out: &mut Vec<String>) {
        out.extend(self.files.iter().cloned());
        for child in self.children.values() {
            child.all_paths(out);
        }
    }
}

/// Collapses unencoded paths into at most `max_paths` entries with at most [`MAX_WILDCARDS`]
/// wildcards that together cover every path, keeping them as specific as the limits allow.
/// One path of [`collapse`]'s frontier: a wildcard over a directory, or an exact path.
enum Item<'a> {
    Wild(String, &'a Node),
    Exact(String),
}

pub(crate) fn collapse(paths: Vec<String>, max_paths: usize) -> Vec<String> {
    let max_paths = max_paths.clamp(1, MAX_PATHS);
    if paths.len() <= max_paths {
        return paths;
    }
    let mut root = Node::default();
    for path in &paths {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        root.insert(path, &segments);
    }
    // Frontier: wildcards (directory prefix, node) and exact paths. Start from `/*` and refine
    // breadth-first while the result still fits.
    let mut frontier: Vec<Item> = vec![Item::Wild("/".to_string(), &root)];
    let mut queue = std::collections::VecDeque::from([0usize]);
    while let Some(index) = queue.pop_front() {
        let Item::Wild(dir, node) = &frontier[index] else {
            continue;
        };
        let (dir, node) = (dir.clone(), *node);
        let mut replacement = Vec::new();
        for file in &node.files {
            replacement.push(Item::Exact(file.clone()));
        }
        for (name, child) in &node.children {
            if child.count == 1 {
                let mut one = Vec::new();
                child.all_paths(&mut one);
                replacement.extend(one.into_iter().map(Item::Exact));
            } else {
                replacement.push(Item::Wild(format!("{dir}{name}/"), child));
            }
        }
        let wild_now = frontier
            .iter()
            .filter(|i| matches!(i, Item::Wild(..)))
            .count();
        let wild_added = replacement
            .iter()
            .filter(|i| matches!(i, Item::Wild(..)))
            .count();
        let total = frontier.len() - 1 + replacement.len();
        if wild_now - 1 + wild_added <= MAX_WILDCARDS && total <= max_paths {
            frontier[index] = Item::Exact(String::new()); // placeholder, removed below
            for item in replacement {
                if matches!(item, Item::Wild(..)) {
                    queue.push_back(frontier.len());
                }
                frontier.push(item);
            }
        }
    }
    let mut out: Vec<String> = frontier
        .into_iter()
        .filter_map(|item| match item {
            Item::Wild(dir, _) => Some(format!("{dir}*")),
            Item::Exact(path) if !path.is_empty() => Some(path),
            Item::Exact(_) => None,
        })
        .collect();
    out.sort();
    out
}

/// The final, encoded paths for a deploy's changes.
pub(crate) fn invalidation_paths(
    changes: &Changes,
    prefix: &Prefix,
    origin_path: &str,
    max_paths: usize,
) -> Vec<String> {
    collapse(paths_for(changes, prefix, origin_path), max_paths)
        .into_iter()
        .map(|p| encode_path(&p))
        .collect()
}

/// A CloudFront step that failed. Every variant but [`CdnError::Request`] is reached after the
/// site is published, so each says what the user must do.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CdnError {
    #[error("{op} for distribution {distribution} failed")]
    Request {
        op: &'static str,
        distribution: String,
        #[source]
        source: CloudFrontError,
    },
    #[error(
        "the site is deployed but these paths were not invalidated: {}",
        list_paths(paths)
    )]
    NotInvalidated {
        distribution: String,
        paths: Vec<String>,
        #[source]
        source: Box<CdnError>,
    },
    #[error("invalidation {id} did not complete within {seconds}s")]
    WaitTimedOut { id: String, seconds: u64 },
}

fn list_paths(paths: &[String]) -> String {
    if paths.is_empty() {
        "(none known)".to_string()
    } else {
        paths.join(" ")
    }
}

impl CdnError {
    fn request(op: &'static str, settings: &CloudFrontSettings, source: CloudFrontError) -> Self {
        CdnError::Request {
            op,
            distribution: settings.distribution_id.clone(),
            source,
        }
    }

    /// Adds which paths were not invalidated. The site itself is deployed by then, and the
    /// manifest records the keys, so the next deploy (or the user, by hand) finishes the job.
    fn not_invalidated(self, settings: &CloudFrontSettings, paths: &[String]) -> Self {
        CdnError::NotInvalidated {
            distribution: settings.distribution_id.clone(),
            paths: paths.to_vec(),
            source: Box::new(self),
        }
    }

    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            CdnError::Request { .. } => None,
            CdnError::NotInvalidated {
                distribution,
                paths,
                ..
            } => {
                let quoted: Vec<String> = paths.iter().map(|p| format!("'{p}'")).collect();
                Some(format!(
                    "the next `hoist deploy` invalidates them (the manifest records them), or by hand: \
                     aws cloudfront create-invalidation --distribution-id {distribution} --paths {}",
                    if quoted.is_empty() {
                        "'/*'".to_string()
                    } else {
                        quoted.join(" ")
                    }
                ))
            }
            CdnError::WaitTimedOut { .. } => Some(
                "it keeps running in CloudFront; check it with `aws cloudfront get-invalidation`"
                    .into(),
            ),
        }
    }
}

/// Reads the OriginPath of the origin that serves the target bucket (empty when none matches).
async fn origin_path(
    client: &CloudFront,
    settings: &CloudFrontSettings,
    bucket: &str,
    printer: &Printer,
) -> Result<String, CdnError> {
    let origins = client
        .origins(&settings.distribution_id)
        .await
        .map_err(|e| CdnError::request("GetDistribution", settings, e))?;
    let matching = origins.iter().find(|origin| {
        let domain = origin.domain.as_str();
        domain == bucket
            || domain.starts_with(&format!("{bucket}.s3"))
            || domain.starts_with(&format!("{bucket}.s3-website"))
    });
    if let Some(origin) = matching {
        Ok(origin.path.clone())
    } else {
        printer.warn(&format!(
            "no origin of distribution {} serves bucket `{bucket}`; assuming no OriginPath",
            settings.distribution_id
        ));
        Ok(String::new())
    }
}

async fn compute(
    client: &CloudFront,
    settings: &CloudFrontSettings,
    target: &Target,
    changes: &Changes,
    printer: &Printer,
) -> Result<Vec<String>, CdnError> {
    let Target::S3 { bucket, prefix } = target else {
        return Ok(Vec::new());
    };
    if changes.keys.is_empty() {
        return Ok(Vec::new());
    }
    let origin = origin_path(client, settings, bucket, printer).await?;
    Ok(invalidation_paths(
        changes,
        prefix,
        &origin,
        settings.max_paths,
    ))
}

/// `--dryrun`: the exact paths, nothing created.
pub(crate) async fn plan_invalidation(
    client: &CloudFront,
    settings: &CloudFrontSettings,
    target: &Target,
    changes: &Changes,
    printer: &Printer,
) -> Result<InvalidationReport, CdnError> {
    let paths = compute(client, settings, target, changes, printer).await?;
    for path in &paths {
        printer.line(&format!("(dryrun) invalidate  {path}"));
    }
    Ok(InvalidationReport {
        distribution_id: settings.distribution_id.clone(),
        status: if paths.is_empty() { "none" } else { "dryrun" }.into(),
        paths,
        id: None,
    })
}

/// Creates the invalidation (retrying while CloudFront has too many in progress) and, with
/// `wait`, polls until it completes.
pub(crate) async fn invalidate(
    client: &CloudFront,
    settings: &CloudFrontSettings,
    target: &Target,
    changes: &Changes,
    printer: &Printer,
    interrupt: &Interrupt,
) -> Result<InvalidationReport, CdnError> {
    let paths = match compute(client, settings, target, changes, printer).await {
        Ok(paths) => paths,
        Err(error) => {
            // Without the OriginPath the exact paths are unknown; name them as the bucket has them.
            let fallback = match target {
                Target::S3 { prefix, .. } => {
                    invalidation_paths(changes, prefix, "", settings.max_paths)
                }
                Target::Local { .. } => Vec::new(),
            };
            return Err(error.not_invalidated(settings, &fallback));
        }
    };
    let mut report = InvalidationReport {
        distribution_id: settings.distribution_id.clone(),
        paths: paths.clone(),
        id: None,
        status: "none".into(),
    };
    if paths.is_empty() {
        return Ok(report);
    }
    let created = create_waiting_out_throttles(client, settings, &paths, printer, interrupt)
        .await
        .map_err(|e| e.not_invalidated(settings, &paths))?;
    report.id = created.id;
    report.status = created.status.unwrap_or_else(|| "InProgress".into());
    if let (true, Some(id)) = (settings.wait, report.id.clone()) {
        report.status = wait_until_complete(client, settings, &id, printer, interrupt).await?;
    }
    Ok(report)
}

/// CreateInvalidation, waiting out `TooManyInvalidationsInProgress` with backoff for up to five
/// minutes (the SDK's retries are for transport errors and throttling, not this).
async fn create_waiting_out_throttles(
    client: &CloudFront,
    settings: &CloudFrontSettings,
    paths: &[String],
    printer: &Printer,
    interrupt: &Interrupt,
) -> Result<Invalidation, CdnError> {
    let caller_reference = uuid::Uuid::new_v4().to_string();
    let mut delay = Duration::from_secs(2);
    let deadline = Instant::now() + Duration::from_mins(5);
    loop {
        match client
            .create_invalidation(&settings.distribution_id, paths, &caller_reference)
            .await
        {
            Ok(created) => return Ok(created),
            Err(error)
                if error.is_too_many_invalidations()
                    && Instant::now() + delay < deadline
                    && !interrupt.is_set() =>
            {
                printer.status(&format!(
                    "CloudFront has too many invalidations in progress; retrying in {}s",
                    delay.as_secs()
                ));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_mins(1));
            }
            Err(error) => return Err(CdnError::request("CreateInvalidation", settings, error)),
        }
    }
}

async fn wait_until_complete(
    client: &CloudFront,
    settings: &CloudFrontSettings,
    id: &str,
    printer: &Printer,
    interrupt: &Interrupt,
) -> Result<String, CdnError> {
    let started = Instant::now();
    let limit = Duration::from_mins(20);
    let mut delay = Duration::from_secs(1);
    let spinner = printer.spinner(&format!("waiting for invalidation {id}"));
    let finish = |spinner: Option<indicatif::ProgressBar>| {
        if let Some(bar) = spinner {
            bar.finish_and_clear();
        }
    };
    loop {
        let status = client
            .invalidation_status(&settings.distribution_id, id)
            .await
            .map_err(|e| CdnError::request("GetInvalidation", settings, e))?;
        let message = format!(
            "invalidation {id}: {status} after {}s",
            started.elapsed().as_secs()
        );
        match &spinner {
            Some(bar) => bar.set_message(message),
            None => printer.status(&message),
        }
        if status.eq_ignore_ascii_case("Completed") {
            finish(spinner);
            return Ok(status);
        }
        if started.elapsed() > limit || interrupt.is_set() {
            finish(spinner);
            return Err(CdnError::WaitTimedOut {
                id: id.to_string(),
                seconds: limit.as_secs(),
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(keys: &[&str]) -> Changes {
        Changes {
            keys: keys.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn index_pages_and_prefixes() {
        let c = changes(&["index.html", "docs/index.html", "style.css"]);
        assert_eq!(
            paths_for(&c, &Prefix::new("").unwrap(), ""),
            [
                "/",
                "/docs",
                "/docs/",
                "/docs/index.html",
                "/index.html",
                "/style.css"
            ]
        );
        // Under a prefix, with the origin's OriginPath equal to the prefix.
        assert_eq!(
            paths_for(&c, &Prefix::new("site/").unwrap(), "/site"),
            [
                "/",
                "/docs",
                "/docs/",
                "/docs/index.html",
                "/index.html",
                "/style.css"
            ]
        );
        // Prefix deeper than the OriginPath.
        assert_eq!(
            paths_for(
                &changes(&["a.css"]),
                &Prefix::new("v2/site/").unwrap(),
                "/v2"
            ),
            ["/site/a.css"]
        );
        // Keys outside the OriginPath are not served by this distribution.
        assert!(
            paths_for(
                &changes(&["a.css"]),
                &Prefix::new("other/").unwrap(),
                "/site"
            )
            .is_empty()
        );
        // No OriginPath: the prefix is part of the URL.
        assert_eq!(
            paths_for(&changes(&["a.css"]), &Prefix::new("site/").unwrap(), ""),
            ["/site/a.css"]
        );
    }

    #[test]
    fn special_characters_are_encoded() {
        let cases = [
            ("/a b.html", "/a%20b.html"),
            ("/caf\u{e9}.html", "/caf%C3%A9.html"),
            ("/100%.html", "/100%25.html"),
            ("/a+b&c=d.html", "/a+b&c=d.html"),
            ("/x#y?.html", "/x%23y?.html"),
            ("/t~lde.html", "/t%7Elde.html"),
            ("/dir/*", "/dir/*"),
        ];
        for (raw, want) in cases {
            assert_eq!(encode_path(raw), want, "{raw}");
        }
    }

    #[test]
    fn from_plan_skips_new_and_immutable() {
        use crate::deploy::plan::{Action, Phase, Reason};
        use crate::key::Key;
        let action = |key: &str, op, reason, immutable| Action {
            op,
            key: Key::new(key).unwrap(),
            reason,
            phase: Phase::Other,
            bytes: 0,
            immutable,
            file: None,
            copy_from: None,
            copy_from_origin: false,
            copy_etag: None,
            rule: None,
            header_changes: Vec::new(),
        };
        let plan = Plan {
            actions: vec![
                action("new.html", Op::Upload, Reason::New, false),
                action("changed.html", Op::Upload, Reason::ContentChanged, false),
                action("asset.js", Op::Upload, Reason::ContentChanged, true),
                action("rule.css", Op::UpdateHeaders, Reason::HeadersChanged, false),
                action("gone.html", Op::Delete, Reason::Stale, false),
                // A deleted hashed asset: a cached copy is what an old page needs.
                action("assets/gone.1.js", Op::Delete, Reason::Stale, true),
            ],
            ..Plan::default()
        };
        assert_eq!(
            Changes::from_plan(&plan).keys,
            ["changed.html", "rule.css", "gone.html"]
        );
    }

    fn covers(patterns: &[String], path: &str) -> bool {
        patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => p == path,
        })
    }

    #[test]
    fn collapse_stays_within_limits_and_covers_everything() {
        // 500 pages in 5 sections of 100.
        let paths: Vec<String> = (0..500)
            .map(|i| format!("/section{}/page{i}.html", i % 5))
            .collect();
        let collapsed = collapse(paths.clone(), 100);
        assert!(collapsed.len() <= 100);
        let wildcards = collapsed.iter().filter(|p| p.ends_with('*')).count();
        assert!(wildcards <= MAX_WILDCARDS, "{collapsed:?}");
        assert_eq!(collapsed.len(), 5, "{collapsed:?}");
        for path in &paths {
            assert!(
                covers(&collapsed, path),
                "{path} not covered by {collapsed:?}"
            );
        }

        // Too many directories for 15 wildcards: fall back to /*.
        let spread: Vec<String> = (0..500).map(|i| format!("/d{}/p{i}", i % 50)).collect();
        assert_eq!(collapse(spread, 100), ["/*"]);

        // Mixed: root files stay exact when they fit.
        let mut mixed: Vec<String> = (0..40).map(|i| format!("/blog/post{i}.html")).collect();
        mixed.push("/index.html".into());
        mixed.push("/".into());
        let collapsed = collapse(mixed.clone(), 10);
        assert_eq!(collapsed, ["/", "/blog/*", "/index.html"]);
        for path in &mixed {
            assert!(covers(&collapsed, path));
        }

        // Under the limit nothing changes.
        assert_eq!(collapse(vec!["/a".into(), "/b".into()], 100), ["/a", "/b"]);
    }

    #[test]
    fn collapse_goes_deep_when_it_can() {
        let paths: Vec<String> = (0..50).map(|i| format!("/docs/api/v1/p{i}.html")).collect();
        assert_eq!(collapse(paths, 10), ["/docs/api/v1/*"]);
    }
}
