//! (local files, remote listing, manifest) → [`Plan`]. Values to values, no I/O.
//!
//! Classification of each key: `new`, `content changed`, `headers changed`, `unchanged`,
//! `stale`. Where the manifest cannot vouch for an object (no entry, or the listing's size or
//! ETag moved), the key is left [`Pending`] and the caller reads the object itself (HEAD, and
//! when needed the local file's MD5) and finishes with [`decide_from_head`] (see `super::probe`).
//!
//! Ordering invariant of a plan: actions are sorted by [`Phase`] (immutable assets, other
//! files, HTML, deletes), then by key; execution runs the phases as barriers in that order, so
//! HTML is published only after every asset it may reference, and nothing is deleted before
//! every upload succeeded. Deletes only name keys from the listing of the target prefix that
//! no local file claims, that no exclude pattern protects, and that are not hoist's own.

use std::collections::BTreeMap;

use super::manifest::{Held, Manifest, ObjectRecord};
use super::scan::{LocalFile, RESERVED_DIR};
use crate::digest::{Digest, Fingerprint};
use crate::headers::{META_BLAKE3, is_html};
use crate::key::Key;
use crate::store::{ObjectInfo, ObjectMeta};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Phase {
    /// Server-side copies of the live release's pages into `.hoist/objects/` before they are
    /// overwritten or deleted, so a rollback can restore them.
    Preserve,
    Immutable,
    Other,
    Html,
    Delete,
}

impl Phase {
    /// What the phase does, for messages: `uploading other files`.
    pub(crate) fn doing(self) -> &'static str {
        match self {
            Phase::Preserve => "keeping the live release's pages for rollback (before phase 1)",
            Phase::Immutable => "uploading immutable assets (phase 1 of 4)",
            Phase::Other => "uploading other files (phase 2 of 4)",
            Phase::Html => "uploading HTML pages (phase 3 of 4)",
            Phase::Delete => "deleting stale keys (phase 4 of 4)",
        }
    }

    pub(crate) fn of(file: &LocalFile) -> Phase {
        if file.resolved.immutable {
            Phase::Immutable
        } else if is_html(file.resolved.headers.content_type.as_deref()) {
            Phase::Html
        } else {
            Phase::Other
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Op {
    Upload,
    UpdateHeaders,
    Delete,
    /// A server-side copy of a live object into `.hoist/objects/` ([`Phase::Preserve`]).
    Keep,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub(crate) enum Reason {
    #[serde(rename = "new")]
    New,
    #[serde(rename = "content changed")]
    ContentChanged,
    #[serde(rename = "headers changed")]
    HeadersChanged,
    #[serde(rename = "stale")]
    Stale,
    #[serde(rename = "kept for rollback")]
    ForRollback,
}

impl Op {
    /// How the op reads in messages: `upload`, `update headers`, `delete`, `keep`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Op::Upload => "upload",
            Op::UpdateHeaders => "update headers",
            Op::Delete => "delete",
            Op::Keep => "keep",
        }
    }
}

impl Reason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::New => "new",
            Reason::ContentChanged => "content changed",
            Reason::HeadersChanged => "headers changed",
            Reason::Stale => "stale",
            Reason::ForRollback => "kept for rollback",
        }
    }

    /// Whether the key held an object before this deploy (so a cache may hold it).
    pub(crate) fn replaces_existing(self) -> bool {
        !matches!(self, Reason::New | Reason::ForRollback)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Action {
    pub(crate) op: Op,
    pub(crate) key: Key,
    pub(crate) reason: Reason,
    pub(crate) phase: Phase,
    /// Bytes sent (the file size for uploads, 0 otherwise).
    pub(crate) bytes: u64,
    /// Whether the key's rule marks it immutable.
    #[serde(skip)]
    pub(crate) immutable: bool,
    /// Index into the scanned files (uploads and header updates).
    #[serde(skip)]
    pub(crate) file: Option<usize>,
    /// A server-side copy's source (a rollback's restore, a [`Op::Keep`]), and the ETag the
    /// source must still have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) copy_from: Option<Key>,
    /// Whether `copy_from` is a key of the origin site (a preview's production), not of the
    /// target.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) copy_from_origin: bool,
    #[serde(skip)]
    pub(crate) copy_etag: Option<String>,
    /// The rule that gave the file its headers (`rules[2] "assets/**"`), if one matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rule: Option<String>,
    /// For a header update: each header that changes, from what to what.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) header_changes: Vec<HeaderChange>,
}

/// One header a header update changes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct HeaderChange {
    pub(crate) header: String,
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
}

/// What becomes of a listed key no local file claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fate {
    Delete { immutable: bool },
    Keep(Kept),
}

/// A stale key the deploy keeps: a hashed asset within its grace period, or one a retained
/// release still publishes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Kept {
    pub(crate) key: Key,
    pub(crate) stale_since: crate::clock::Timestamp,
    /// When the grace period ends (none while a retained release needs it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) expires: Option<crate::clock::Timestamp>,
    /// The newest retained release that publishes it, when that is why it is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) release: Option<u64>,
}

/// The outcome of comparing one local file with what the target holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    New,
    Unchanged,
    ContentChanged,
    HeadersChanged,
}

/// A file whose remote object must be read before it can be classified.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) file: usize,
    pub(crate) listed: ObjectMeta,
}

/// The first pass: what the listing and the manifest decide alone.
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    /// (file index, decision).
    pub(crate) decided: Vec<(usize, Decision)>,
    /// The entries that describe unchanged objects and objects whose headers change (the
    /// next manifest's basis), by file index: apart from the decisions, so that a decision
    /// costs 16 bytes rather than a copy of its entry.
    pub(crate) known: Vec<(usize, Known)>,
    pub(crate) pending: Vec<Pending>,
    /// Listed keys no local file claims.
    pub(crate) remote_only: Vec<ObjectMeta>,
}

/// Compares scanned files with the listing, trusting manifest entries the listing confirms.
/// Both inputs must be sorted by key (scan and [`super::list_target`] guarantee it).
pub(crate) fn classify(
    files: &[LocalFile],
    listing: &[ObjectMeta],
    manifest: Option<&Manifest>,
) -> Comparison {
    let mut out = Comparison {
        decided: Vec::with_capacity(files.len()),
        known: Vec::with_capacity(manifest.map_or(0, |m| m.objects.len().min(files.len()))),
        ..Comparison::default()
    };
    debug_assert!(
        listing.is_sorted_by(|a, b| a.key <= b.key),
        "listing in key order"
    );
    // Which listed keys a local file claims (a bit each, not a set of 100,000 keys). The
    // listing is searched in place (a map of it was 3 MB at 100,000 keys).
    let mut claimed = vec![false; listing.len()];
    // Each distinct set of headers is fingerprinted once, not once per file (rules intern
    // them, so files of one rule share one `Arc`).
    let mut prints: std::collections::HashMap<*const crate::headers::Headers, Fingerprint> =
        std::collections::HashMap::new();
    for (index, file) in files.iter().enumerate() {
        // Every entry of the key (a listing may repeat one) is claimed; the last decides.
        let start = listing.partition_point(|m| m.key < file.key);
        let end = start + listing[start..].partition_point(|m| m.key == file.key);
        if start == end {
            out.decided.push((index, Decision::New));
            continue;
        }
        claimed[start..end].fill(true);
        let listed = &listing[end - 1];
        match manifest.and_then(|m| m.known_where(listed)) {
            Some((entry, held)) => {
                // A compressed object's size is not its file's; its identity covers both.
                let size_differs = file.resolved.encode.is_none() && entry.size != file.size;
                let decision = if entry.blake3 != file.blake3 || size_differs {
                    Decision::ContentChanged
                } else if entry.headers
                    != *prints
                        .entry(std::sync::Arc::as_ptr(&file.resolved.headers))
                        .or_insert_with(|| file.resolved.headers.fingerprint())
                {
                    Decision::HeadersChanged
                } else {
                    Decision::Unchanged
                };
                if decision != Decision::ContentChanged {
                    out.known.push((index, Known::Manifest(held)));
                }
                out.decided.push((index, decision));
            }
            None => out.pending.push(Pending {
                file: index,
                listed: listed.clone(),
            }),
        }
    }
    out.remote_only = listing
        .iter()
        .zip(&claimed)
        .filter(|(_, claimed)| !**claimed)
        .map(|(m, _)| m.clone())
        .collect();
    out
}

/// Whether a single-part ETag (a plain MD5) could settle the content comparison, because the
/// object carries no blake3 of hoist's. The caller then computes the local file's MD5.
pub(crate) fn needs_md5(file: &LocalFile, info: &ObjectInfo) -> bool {
    file.resolved.encode.is_none()
        && info.meta.size == file.size
        && !info.headers.metadata.contains_key(META_BLAKE3)
        && info.meta.etag.as_deref().is_some_and(is_plain_md5)
}

fn is_plain_md5(etag: &str) -> bool {
    etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Classifies a file from its object's HEAD (and, when [`needs_md5`], the local MD5 in hex).
pub(crate) fn decide_from_head(
    file: &LocalFile,
    info: &ObjectInfo,
    local_md5: Option<&str>,
) -> Decision {
    let same_content = if file.resolved.encode.is_some() {
        // Compressed: the identity hoist wrote, or nothing proves the bytes.
        info.headers
            .metadata
            .get(super::compress::META_ENCODED)
            .is_some_and(|remote| Digest::parse(remote) == Some(file.blake3))
    } else {
        info.meta.size == file.size
            && match info.headers.metadata.get(META_BLAKE3) {
                Some(remote) => Digest::parse(remote) == Some(file.blake3),
                None => match (info.meta.etag.as_deref(), local_md5) {
                    (Some(etag), Some(md5)) if is_plain_md5(etag) => etag.eq_ignore_ascii_case(md5),
                    // No way to prove the bytes are the same: publish them again.
                    _ => false,
                },
            }
    };
    if !same_content {
        Decision::ContentChanged
    } else if file.resolved.headers.differs_from_remote(&info.headers) {
        Decision::HeadersChanged
    } else {
        Decision::Unchanged
    }
}

/// What the deploy will do, in execution order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    pub(crate) actions: Vec<Action>,
    pub(crate) unchanged: usize,
    /// Stale keys kept because deletion is off.
    pub(crate) stale_kept: Vec<Key>,
    /// Stale keys kept by the release lifecycle (grace period, retained releases).
    pub(crate) kept: Vec<Kept>,
    /// Sub-prefixes that hold another hoist site, left alone.
    pub(crate) nested: Vec<String>,
    /// Whether the plan changes what the site serves, so that it is a new release.
    pub(crate) creates_release: bool,
    /// Entries for unchanged objects (the manifest's basis, completed by the executor), by
    /// file index in ascending order: the files hold the keys and the manifest the entries it
    /// vouches for, so the plan holds no copy of either (at 100,000 files they are megabytes).
    pub(crate) known: Vec<(usize, Known)>,
    /// Multipart uploads a killed run left under the target, aborted after the deletes.
    pub(crate) stale_uploads: Vec<crate::store::Upload>,
    /// The CloudFront Functions the site is served with (`cloudfront.function.manage`).
    pub(crate) functions: Vec<super::edge::manage::ManagedFunction>,
    /// Whether they differ from what the manifest says is published: then they are
    /// published before the HTML phase.
    pub(crate) publish_functions: bool,
}

impl Plan {
    pub(crate) fn deletes(&self) -> impl Iterator<Item = &Action> {
        self.actions.iter().filter(|a| a.op == Op::Delete)
    }

    pub(crate) fn delete_count(&self) -> usize {
        self.deletes().count()
    }

    pub(crate) fn phase(&self, phase: Phase) -> impl Iterator<Item = &Action> {
        self.actions.iter().filter(move |a| a.phase == phase)
    }

    /// Every known entry with its file's index, in ascending order. `manifest` is the one the
    /// plan was made from.
    pub(crate) fn known_entries<'a>(
        &'a self,
        files: &'a [LocalFile],
        manifest: Option<&'a Manifest>,
    ) -> impl Iterator<Item = (usize, &'a ObjectRecord)> {
        self.known.iter().filter_map(move |(index, known)| {
            Some((*index, known.entry(&files[*index].key, manifest)?))
        })
    }
}

/// What the plan knows of an object it leaves or only re-heads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Known {
    /// The manifest's entry for the file's key, which the listing confirmed.
    Manifest(Held),
    /// What a HEAD of the object found (boxed: most entries are the manifest's).
    Read(Box<ObjectRecord>),
}

impl Known {
    fn entry<'a>(&'a self, key: &Key, manifest: Option<&'a Manifest>) -> Option<&'a ObjectRecord> {
        match self {
            Known::Manifest(held) => {
                let entry = manifest.and_then(|m| m.held(key, *held));
                debug_assert!(entry.is_some(), "the plan's manifest holds `{key}`");
                entry
            }
            Known::Read(record) => Some(record),
        }
    }
}

pub(crate) struct PlanOptions<'a> {
    pub(crate) delete: bool,
    /// Remote keys matching this are never deleted.
    pub(crate) is_excluded: &'a dyn Fn(&str) -> bool,
    /// Deletes or keeps each stale key (the release lifecycle's grace period).
    pub(crate) fate: &'a dyn Fn(&ObjectMeta) -> Fate,
}

/// The sub-prefixes (`pr-1/`) under which the listing shows another hoist site's state
/// (`pr-1/.hoist/...`), outermost first.
pub(crate) fn nested_sites(listing: &[ObjectMeta]) -> Vec<String> {
    let marker = format!("/{RESERVED_DIR}/");
    let mut found: Vec<String> = Vec::new();
    for object in listing {
        let Some(at) = object.key.as_str().find(&marker) else {
            continue;
        };
        let prefix = &object.key.as_str()[..=at];
        if !found.iter().any(|outer| prefix.starts_with(outer.as_str())) {
            found.retain(|inner| !inner.starts_with(prefix));
            found.push(prefix.to_string());
        }
    }
    found.sort();
    found
}

fn under_any(key: &Key, prefixes: &[String]) -> bool {
    prefixes
        .iter()
        .any(|p| key.as_str().starts_with(p.as_str()))
}

/// Builds the plan from every file's decision (each file exactly once) and the remote-only keys.
/// Nothing under a nested hoist site (`nested`) is written or deleted.
pub(crate) fn build(
    files: &[LocalFile],
    decisions: Vec<(usize, Decision)>,
    known: Vec<(usize, Known)>,
    remote_only: &[ObjectMeta],
    nested: Vec<String>,
    options: &PlanOptions<'_>,
) -> Plan {
    let mut plan = Plan {
        nested,
        ..Plan::default()
    };
    plan.known = known;
    plan.known
        .retain(|(index, _)| !under_any(&files[*index].key, &plan.nested));
    plan.known.sort_unstable_by_key(|(index, _)| *index);
    for (index, decision) in decisions {
        let file = &files[index];
        if under_any(&file.key, &plan.nested) {
            continue;
        }
        let (op, reason) = match decision {
            Decision::Unchanged => {
                plan.unchanged += 1;
                continue;
            }
            Decision::New => (Op::Upload, Reason::New),
            Decision::ContentChanged => (Op::Upload, Reason::ContentChanged),
            // The known entry keeps the listed ETag in case the copy's answer carries none.
            Decision::HeadersChanged => (Op::UpdateHeaders, Reason::HeadersChanged),
        };
        plan.actions.push(Action {
            op,
            key: file.key.clone(),
            reason,
            phase: Phase::of(file),
            bytes: if op == Op::Upload && file.copy_from.is_none() && file.from_origin.is_none() {
                file.size
            } else {
                0
            },
            immutable: file.resolved.immutable,
            file: Some(index),
            copy_from: match (op, &file.from_origin) {
                (Op::Upload, Some(origin)) => Some(origin.key.clone()),
                (Op::Upload, None) => file.copy_from.clone(),
                _ => None,
            },
            copy_from_origin: op == Op::Upload && file.from_origin.is_some(),
            copy_etag: match (op, &file.from_origin) {
                (Op::Upload, Some(origin)) => origin.etag.clone(),
                _ => None,
            },
            rule: None,
            header_changes: Vec::new(),
        });
    }
    add_stale(&mut plan, remote_only, options);
    plan.actions
        .sort_by(|a, b| (a.phase, &a.key).cmp(&(b.phase, &b.key)));
    plan
}

/// Deletes or keeps each listed key no file claims (never hoist's own, a nested site's or an
/// excluded key).
fn add_stale(plan: &mut Plan, remote_only: &[ObjectMeta], options: &PlanOptions<'_>) {
    for object in remote_only {
        let key = &object.key;
        if key.as_str() == RESERVED_DIR || key.is_under(RESERVED_DIR) {
            continue;
        }
        if under_any(key, &plan.nested) || (options.is_excluded)(key.as_str()) {
            continue;
        }
        if !options.delete {
            plan.stale_kept.push(key.clone());
            continue;
        }
        let immutable = match (options.fate)(object) {
            Fate::Keep(kept) => {
                plan.kept.push(kept);
                continue;
            }
            Fate::Delete { immutable } => immutable,
        };
        plan.actions.push(Action {
            op: Op::Delete,
            key: key.clone(),
            reason: Reason::Stale,
            phase: Phase::Delete,
            bytes: 0,
            immutable,
            file: None,
            copy_from: None,
            copy_from_origin: false,
            copy_etag: None,
            rule: None,
            header_changes: Vec::new(),
        });
    }
}

/// Keys a browser or CloudFront cannot reach by their natural URL.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Unreachable {
    /// Keys with a `+`: the S3 REST endpoint and CloudFront with an S3 origin read an
    /// unencoded `+` in a path as a space.
    pub(crate) plus: Vec<Key>,
    /// Keys not in Unicode NFC (macOS writes NFD file names); a typed URL asks for NFC.
    pub(crate) not_nfc: Vec<Key>,
    /// Pairs of keys equal after NFC normalization: two objects that look the same on screen,
    /// only one reachable from a typed URL.
    pub(crate) twins: Vec<(Key, Key)>,
}

/// Finds the keys of [`Unreachable`] among the files (sorted by key).
pub(crate) fn unreachable_keys(files: &[LocalFile]) -> Unreachable {
    let nfc = icu_normalizer::ComposingNormalizerBorrowed::new_nfc();
    let mut out = Unreachable::default();
    let mut by_nfc: BTreeMap<String, &Key> = BTreeMap::new();
    for file in files {
        let key = &file.key;
        if key.as_str().contains('+') {
            out.plus.push(key.clone());
        }
        let normalized = nfc.normalize(key.as_str());
        if normalized != key.as_str() {
            out.not_nfc.push(key.clone());
        }
        if let Some(first) = by_nfc.insert(normalized.into_owned(), key) {
            out.twins.push((first.clone(), key.clone()));
        }
    }
    out
}

impl Unreachable {
    /// One warning per finding, naming the file and what a visitor would see.
    pub(crate) fn warnings(&self) -> Vec<String> {
        let escape = |key: &Key| crate::report::escape(key.as_str()).into_owned();
        let mut warnings = Vec::new();
        for key in &self.plus {
            warnings.push(format!(
                "`{}` has a `+`, which S3 and CloudFront read as a space in a URL path: \
                 link to it as `%2B` or rename the file",
                escape(key)
            ));
        }
        for key in &self.not_nfc {
            if self.twins.iter().any(|(a, b)| a == key || b == key) {
                continue;
            }
            warnings.push(format!(
                "`{}` is not in Unicode NFC (macOS writes NFD names); a typed URL asks for the \
                 NFC form and gets 404",
                escape(key)
            ));
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::rules::Resolved;
    use crate::headers::Headers;
    use std::time::SystemTime;

    fn file(key: &str, content: &str, immutable: bool, content_type: &str) -> LocalFile {
        LocalFile {
            key: Key::new(key).unwrap(),
            path: key.into(),
            size: content.len() as u64,
            mtime: SystemTime::UNIX_EPOCH,
            blake3: Digest::of(content.as_bytes()),
            resolved: Resolved {
                headers: std::sync::Arc::new(Headers {
                    content_type: Some(content_type.into()),
                    cache_control: Some("max-age=60".into()),
                    ..Headers::default()
                }),
                immutable,
                rule: None,
                encode: None,
            },
            copy_from: None,
            from_origin: None,
        }
    }

    fn listed(key: &str, size: u64, etag: &str) -> ObjectMeta {
        ObjectMeta {
            key: Key::new(key).unwrap(),
            size,
            etag: Some(etag.into()),
            last_modified: None,
        }
    }

    fn entry_for(file: &LocalFile, etag: &str) -> ObjectRecord {
        ObjectRecord {
            size: file.size,
            blake3: file.blake3,
            etag: Some(etag.into()),
            headers: file.resolved.headers.fingerprint(),
        }
    }

    fn plan_of(
        files: &[LocalFile],
        listing: &[ObjectMeta],
        manifest: Option<&Manifest>,
        delete: bool,
    ) -> (Plan, Vec<Pending>) {
        // In key order, as `list_target` returns it.
        let mut listing = listing.to_vec();
        listing.sort_by(|a, b| a.key.cmp(&b.key));
        let listing = &listing[..];
        let comparison = classify(files, listing, manifest);
        let exclude = |k: &str| std::path::Path::new(k).extension() == Some("keep".as_ref());
        let fate = |_: &ObjectMeta| Fate::Delete { immutable: false };
        let plan = build(
            files,
            comparison.decided,
            comparison.known,
            &comparison.remote_only,
            nested_sites(listing),
            &PlanOptions {
                delete,
                is_excluded: &exclude,
                fate: &fate,
            },
        );
        (plan, comparison.pending)
    }

    #[test]
    fn phases_order_immutable_then_other_then_html_then_deletes() {
        let files = vec![
            file("index.html", "<p>", false, "text/html; charset=utf-8"),
            file("assets/app.1.js", "js", true, "text/javascript"),
            file("robots.txt", "r", false, "text/plain"),
            file("about/index.html", "<a>", false, "text/html"),
            file("assets/logo.svg", "svg", true, "image/svg+xml"),
        ];
        let listing = vec![listed("old.html", 1, "x"), listed("a-old.css", 1, "y")];
        let (plan, pending) = plan_of(&files, &listing, None, true);
        assert!(pending.is_empty());
        let order: Vec<(&str, Phase)> = plan
            .actions
            .iter()
            .map(|a| (a.key.as_str(), a.phase))
            .collect();
        assert_eq!(
            order,
            [
                ("assets/app.1.js", Phase::Immutable),
                ("assets/logo.svg", Phase::Immutable),
                ("robots.txt", Phase::Other),
                ("about/index.html", Phase::Html),
                ("index.html", Phase::Html),
                ("a-old.css", Phase::Delete),
                ("old.html", Phase::Delete),
            ]
        );
        assert!(
            plan.actions[..5]
                .iter()
                .all(|a| a.op == Op::Upload && a.reason == Reason::New)
        );
        assert!(
            plan.actions[5..]
                .iter()
                .all(|a| a.op == Op::Delete && a.reason == Reason::Stale)
        );
    }

    #[test]
    fn manifest_decides_without_heads() {
        let same = file("same.html", "same", false, "text/html");
        let changed = file("changed.css", "new content", false, "text/css");
        let mut rule_changed = file("rule.js", "js", false, "text/javascript");
        let old_changed = file("changed.css", "old content", false, "text/css");
        let mut manifest_objects = BTreeMap::new();
        manifest_objects.insert(same.key.clone(), entry_for(&same, "e1"));
        manifest_objects.insert(old_changed.key.clone(), entry_for(&old_changed, "e2"));
        manifest_objects.insert(rule_changed.key.clone(), entry_for(&rule_changed, "e3"));
        std::sync::Arc::make_mut(&mut rule_changed.resolved.headers).cache_control =
            Some("no-cache".into());
        let manifest = Manifest::new(manifest_objects);
        let files = vec![changed.clone(), rule_changed.clone(), same.clone()];
        let listing = vec![
            listed("changed.css", old_changed.size, "e2"),
            listed("rule.js", rule_changed.size, "e3"),
            listed("same.html", same.size, "e1"),
        ];
        let (plan, pending) = plan_of(&files, &listing, Some(&manifest), true);
        assert!(pending.is_empty(), "{pending:?}");
        assert_eq!(plan.unchanged, 1);
        let ops: Vec<_> = plan
            .actions
            .iter()
            .map(|a| (a.key.as_str(), a.op, a.reason))
            .collect();
        assert_eq!(
            ops,
            [
                ("changed.css", Op::Upload, Reason::ContentChanged),
                ("rule.js", Op::UpdateHeaders, Reason::HeadersChanged),
            ]
        );
    }

    #[test]
    fn known_entries_are_the_manifests_own() {
        // A file unchanged in the site, one whose headers change, and one claiming a key the
        // manifest keeps stale (a rollback brings such assets back).
        let same = file("same.html", "same", false, "text/html");
        let mut rule_changed = file("rule.js", "js", false, "text/javascript");
        let back = file("assets/back.1.js", "old asset", true, "text/javascript");
        let mut objects = BTreeMap::new();
        objects.insert(same.key.clone(), entry_for(&same, "e1"));
        objects.insert(rule_changed.key.clone(), entry_for(&rule_changed, "e2"));
        let mut manifest = Manifest::new(objects);
        manifest.stale.insert(
            back.key.clone(),
            super::super::manifest::StaleRecord {
                since: crate::clock::Timestamp::now(),
                release: Some(1),
                object: Some(entry_for(&back, "e3")),
            },
        );
        std::sync::Arc::make_mut(&mut rule_changed.resolved.headers).cache_control =
            Some("no-cache".into());
        let files = vec![back.clone(), rule_changed.clone(), same.clone()];
        let listing = vec![
            listed("assets/back.1.js", back.size, "e3"),
            listed("rule.js", rule_changed.size, "e2"),
            listed("same.html", same.size, "e1"),
        ];
        let (plan, pending) = plan_of(&files, &listing, Some(&manifest), true);
        assert!(pending.is_empty(), "{pending:?}");
        let known: Vec<(usize, &ObjectRecord)> =
            plan.known_entries(&files, Some(&manifest)).collect();
        assert_eq!(
            known,
            [
                (0, manifest.stale[&back.key].object.as_ref().unwrap()),
                (1, &manifest.objects[&rule_changed.key]),
                (2, &manifest.objects[&same.key]),
            ]
        );
        // Each costs an index and a tag, not a copy of the entry.
        assert!(size_of::<(usize, Known)>() <= 24);
    }

    #[test]
    fn untrusted_entries_are_pending() {
        let f = file("a.html", "abc", false, "text/html");
        let mut objects = BTreeMap::new();
        objects.insert(f.key.clone(), entry_for(&f, "e1"));
        let manifest = Manifest::new(objects);
        // ETag moved (another tool wrote the object), or the listing has no ETag.
        for listing in [
            vec![listed("a.html", 3, "other")],
            vec![ObjectMeta {
                etag: None,
                ..listed("a.html", 3, "")
            }],
        ] {
            let (plan, pending) =
                plan_of(std::slice::from_ref(&f), &listing, Some(&manifest), true);
            assert_eq!(pending.len(), 1);
            assert!(plan.actions.is_empty());
        }
    }

    #[test]
    fn stale_keys_respect_delete_excludes_and_reserved() {
        let files = vec![file("index.html", "x", false, "text/html")];
        let listing = vec![
            listed(".hoist/manifest.json", 10, "m"),
            listed("index.html", 1, "i"),
            listed("notes.keep", 1, "k"),
            listed("old.html", 1, "o"),
        ];
        let (plan, _) = plan_of(&files, &listing, None, true);
        let deletes: Vec<_> = plan.deletes().map(|a| a.key.as_str()).collect();
        assert_eq!(deletes, ["old.html"]);

        let (plan, _) = plan_of(&files, &listing, None, false);
        assert_eq!(plan.delete_count(), 0);
        assert_eq!(plan.stale_kept, [Key::new("old.html").unwrap()]);
    }

    /// A listing that names a key twice (no S3 does; a broken store might) never makes a
    /// file's own key stale, wherever the repeat is.
    #[test]
    fn a_repeated_listed_key_is_still_claimed() {
        let files = vec![file("a.html", "a", false, "text/html")];
        let listing = vec![
            listed("a.html", 1, "e1"),
            listed("a.html", 1, "e2"),
            listed("b.html", 1, "e3"),
        ];
        let comparison = classify(&files, &listing, None);
        let stale: Vec<&str> = comparison
            .remote_only
            .iter()
            .map(|m| m.key.as_str())
            .collect();
        assert_eq!(stale, ["b.html"]);
    }

    fn info(size: u64, etag: Option<&str>, headers: Headers) -> ObjectInfo {
        ObjectInfo {
            meta: ObjectMeta {
                key: Key::new("a.html").unwrap(),
                size,
                etag: etag.map(str::to_string),
                last_modified: None,
            },
            headers,
        }
    }

    #[test]
    fn head_fallback_decisions() {
        let f = file("a.html", "abc", false, "text/html");
        let mut with_blake3 = (*f.resolved.headers).clone();
        with_blake3
            .metadata
            .insert(META_BLAKE3.into(), f.blake3.to_string());

        // hoist's own metadata proves the content.
        let i = info(3, Some("whatever-2"), with_blake3.clone());
        assert!(!needs_md5(&f, &i));
        assert_eq!(decide_from_head(&f, &i, None), Decision::Unchanged);

        // Same content, other Cache-Control.
        let mut other_headers = with_blake3.clone();
        other_headers.cache_control = Some("no-store".into());
        assert_eq!(
            decide_from_head(&f, &info(3, None, other_headers), None),
            Decision::HeadersChanged
        );

        // Uploaded by another tool: a plain MD5 ETag settles it.
        let md5 = "900150983cd24fb0d6963f7d28e17f72"; // md5("abc")
        let foreign = info(3, Some(md5), (*f.resolved.headers).clone());
        assert!(needs_md5(&f, &foreign));
        assert_eq!(
            decide_from_head(&f, &foreign, Some(md5)),
            Decision::Unchanged
        );
        assert_eq!(
            decide_from_head(&f, &foreign, Some("00000000000000000000000000000000")),
            Decision::ContentChanged
        );

        // A multipart ETag and no blake3: cannot prove it, so re-upload.
        let multipart = info(3, Some("abc-2"), (*f.resolved.headers).clone());
        assert!(!needs_md5(&f, &multipart));
        assert_eq!(
            decide_from_head(&f, &multipart, None),
            Decision::ContentChanged
        );

        // Different size is always a content change.
        assert_eq!(
            decide_from_head(&f, &info(4, Some(md5), with_blake3), None),
            Decision::ContentChanged
        );
    }

    #[test]
    fn keys_browsers_cannot_reach() {
        let files = [
            file("a+b.html", "x", false, "text/html"),
            file("caf\u{e9}.html", "x", false, "text/html"),
            file("cafe\u{301}.html", "x", false, "text/html"),
            file("d\u{e9}j\u{e0}.css", "x", false, "text/css"),
            file("plain.html", "x", false, "text/html"),
        ];
        let found = unreachable_keys(&files);
        assert_eq!(found.plus, [Key::new("a+b.html").unwrap()]);
        assert_eq!(found.not_nfc, [Key::new("cafe\u{301}.html").unwrap()]);
        assert_eq!(
            found.twins,
            [(
                Key::new("caf\u{e9}.html").unwrap(),
                Key::new("cafe\u{301}.html").unwrap()
            )]
        );
        // The twin is reported by the guard, not twice.
        assert_eq!(found.warnings().len(), 1);
    }

    #[test]
    fn nested_hoist_sites_are_left_alone() {
        let files = vec![
            file("index.html", "x", false, "text/html"),
            file("pr-1/index.html", "mine", false, "text/html"),
        ];
        let listing = vec![
            listed("old.html", 1, "o"),
            listed("pr-1/.hoist/manifest.json", 10, "m"),
            listed("pr-1/assets/app.js", 1, "a"),
            listed("pr-1/index.html", 1, "i"),
            listed("pr-1/pr-2/.hoist/manifest.json", 10, "m2"),
            listed("team/docs/.hoist/manifest.json", 10, "m3"),
            listed("team/docs/page.html", 1, "p"),
        ];
        assert_eq!(nested_sites(&listing), ["pr-1/", "team/docs/"]);
        let (plan, _) = plan_of(&files, &listing, None, true);
        let keys: Vec<_> = plan
            .actions
            .iter()
            .map(|a| (a.op, a.key.as_str()))
            .collect();
        assert_eq!(keys, [(Op::Upload, "index.html"), (Op::Delete, "old.html")]);
        assert_eq!(plan.nested, ["pr-1/", "team/docs/"]);
    }

    #[test]
    fn replaces_existing() {
        assert!(!Reason::New.replaces_existing());
        assert!(Reason::ContentChanged.replaces_existing());
        assert!(Reason::Stale.replaces_existing());
    }
}
