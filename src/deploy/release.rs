//! The release lifecycle: every deploy that changes the site is a release, old hashed assets
//! outlive the pages that used them, and any retained release can be restored server-side.
//!
//! State, all under `.hoist/` beside the manifest (which indexes it):
//! - `.hoist/releases/NNNNNNNN.json`: one [`Release`] per release, the full key → bytes
//!   (blake3, size) and headers map it published. Ids count up from 1.
//! - `.hoist/objects/<blake3>`: the previous bytes of a page (any non-immutable key, or an
//!   immutable key whose bytes changed) that a deploy overwrote or deleted, copied there
//!   server-side just before ([`super::plan::Phase::Preserve`]). Hashed assets need no copy: a
//!   stale immutable key is itself kept while a retained release publishes it.
//!
//! Rules, from the manifest alone (a no-op deploy reads no release record):
//! - A stale key of an `immutable` rule is kept while a retained release published it (the
//!   manifest records the newest release that did), and after that until it has been stale for
//!   `keep_stale_for`. Other stale keys are deleted, as before, after their bytes were kept.
//! - `releases.keep` bounds what is retained: older release records, and kept bytes only they
//!   need, are pruned after the manifest that drops them is written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use super::manifest::{Manifest, ReleaseSummary, StaleRecord};
use super::plan::{Action, Fate, Kept, Op, Phase, Plan, Reason};
use super::rules::Rules;
use crate::clock::Timestamp;
use crate::digest::Digest;
use crate::headers::Headers;
use crate::key::Key;
use crate::store::ObjectMeta;

pub(crate) const RELEASES_DIR: &str = ".hoist/releases/";
pub(crate) const OBJECTS_DIR: &str = ".hoist/objects/";
pub(crate) const RECORD_VERSION: u32 = 1;

pub(crate) fn record_key(id: u64) -> Key {
    Key::new(format!("{RELEASES_DIR}{id:08}.json")).expect("a release key is valid")
}

pub(crate) fn blob_key(blake3: &Digest) -> Key {
    Key::new(format!("{OBJECTS_DIR}{blake3}")).expect("a blob key is valid")
}

/// The release id a listed record key names.
fn record_id(key: &Key) -> Option<u64> {
    key.as_str()
        .strip_prefix(RELEASES_DIR)?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// One release: what it published, key by key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Release {
    pub(crate) version: u32,
    pub(crate) summary: ReleaseSummary,
    pub(crate) objects: BTreeMap<Key, ReleasedObject>,
    /// The CloudFront Functions it published (`cloudfront.function.manage`), for rollback.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) functions: Vec<super::edge::manage::ManagedFunction>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleasedObject {
    pub(crate) size: u64,
    pub(crate) blake3: Digest,
    /// The headers it was published with (hoist's blake3 metadata is added when written).
    pub(crate) headers: Headers,
    pub(crate) immutable: bool,
    /// How the object encodes its source (`compress:`); `size` is then the object's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) encode: Option<super::compress::Encoding>,
}

#[derive(Debug, thiserror::Error)]
#[error("the release record is not readable")]
pub(crate) struct RecordError(#[source] serde_json::Error);

impl Release {
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a release serializes")
    }

    pub(crate) fn parse(bytes: &[u8]) -> Result<Release, RecordError> {
        serde_json::from_slice(bytes).map_err(RecordError)
    }
}

/// The lifecycle's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lifecycle {
    /// Releases retained, the live one included; 0 turns releases off.
    pub(crate) keep_releases: usize,
    pub(crate) keep_stale_for: Duration,
}

/// What the lifecycle decides for one run, from the manifest and the listing.
pub(crate) struct Ledger<'a> {
    manifest: Option<&'a Manifest>,
    /// The target's listing, in key order.
    listing: &'a [ObjectMeta],
    lifecycle: Lifecycle,
    rules: &'a Rules,
    now: Timestamp,
    /// The oldest release still retained after this run; `None` when none but a new one is.
    oldest_retained: Option<u64>,
    /// Kept bytes the listing shows, by blake3.
    listed_blobs: BTreeSet<Digest>,
    /// Release records the listing shows.
    listed_records: BTreeSet<u64>,
}

impl<'a> Ledger<'a> {
    /// `creates_release`: whether this run publishes a new release (it then counts against
    /// `releases.keep`).
    pub(crate) fn new(
        manifest: Option<&'a Manifest>,
        listing: &'a [ObjectMeta],
        lifecycle: Lifecycle,
        rules: &'a Rules,
        creates_release: bool,
    ) -> Ledger<'a> {
        let ids: Vec<u64> = manifest.map_or_else(Vec::new, |m| {
            m.releases.iter().map(|release| release.id).collect()
        });
        let room = lifecycle
            .keep_releases
            .saturating_sub(usize::from(creates_release));
        let oldest_retained = if room == 0 {
            None
        } else {
            ids.iter().take(room).copied().min()
        };
        let mut listed_blobs = BTreeSet::new();
        let mut listed_records = BTreeSet::new();
        for object in listing {
            if let Some(name) = object.key.as_str().strip_prefix(OBJECTS_DIR) {
                // A name that is no digest is not hoist's: it is never pruned.
                listed_blobs.extend(Digest::parse(name));
            } else if let Some(id) = record_id(&object.key) {
                listed_records.insert(id);
            }
        }
        debug_assert!(
            listing.is_sorted_by(|a, b| a.key <= b.key),
            "listing in key order"
        );
        Ledger {
            manifest,
            listing,
            lifecycle,
            rules,
            now: Timestamp::now(),
            oldest_retained,
            listed_blobs,
            listed_records,
        }
    }

    pub(crate) fn releases_on(&self) -> bool {
        self.lifecycle.keep_releases > 0
    }

    /// The newest release that published `key`, as far as the manifest knows.
    fn published_by(&self, key: &Key) -> Option<u64> {
        let manifest = self.manifest?;
        match manifest.stale.get(key) {
            Some(record) => record.release,
            None if manifest.objects.contains_key(key) => manifest.live,
            None => None,
        }
    }

    fn stale_since(&self, key: &Key) -> Timestamp {
        self.manifest
            .and_then(|m| m.stale.get(key))
            .map_or(self.now, |record| record.since)
    }

    /// Deletes or keeps a stale key: see the module's rules.
    pub(crate) fn fate(&self, object: &ObjectMeta) -> Fate {
        if !self.rules.resolve(&object.key).immutable {
            return Fate::Delete { immutable: false };
        }
        let since = self.stale_since(&object.key);
        if let (Some(release), Some(oldest)) =
            (self.published_by(&object.key), self.oldest_retained)
            && release >= oldest
        {
            return Fate::Keep(Kept {
                key: object.key.clone(),
                stale_since: since,
                expires: None,
                release: Some(release),
            });
        }
        let expires = since.plus(self.lifecycle.keep_stale_for);
        if self.now < expires {
            return Fate::Keep(Kept {
                key: object.key.clone(),
                stale_since: since,
                expires: Some(expires),
                release: None,
            });
        }
        Fate::Delete { immutable: true }
    }

    /// The [`Op::Keep`] copies a plan needs before it runs: the live release's bytes of every
    /// key it overwrites with other bytes, or deletes without keeping (pages), unless the
    /// listing already shows them kept. Returns the copies and a warning for each key whose
    /// object was changed outside hoist (its release bytes are gone; a rollback to it will
    /// say so).
    pub(crate) fn keep_actions(&self, plan: &Plan) -> (Vec<Action>, Vec<String>) {
        let (Some(manifest), true) = (self.manifest, self.lifecycle.keep_releases >= 2) else {
            return (Vec::new(), Vec::new());
        };
        let mut actions: Vec<Action> = Vec::new();
        let mut warnings = Vec::new();
        let mut seen = BTreeSet::new();
        for action in &plan.actions {
            let replaced = match action.op {
                Op::Upload => action.reason == Reason::ContentChanged,
                Op::Delete => !action.immutable,
                Op::UpdateHeaders | Op::Keep => false,
            };
            let Some(entry) = manifest.objects.get(&action.key) else {
                continue;
            };
            if !replaced || self.listed_blobs.contains(&entry.blake3) {
                continue;
            }
            if !seen.insert(entry.blake3) {
                continue;
            }
            let listed = self.listed(&action.key);
            let trusted = listed.is_some_and(|l| manifest.valid_entry(l).is_some());
            if !trusted {
                warnings.push(format!(
                    "`{}` was changed outside hoist, so release {}'s version of it cannot be kept",
                    crate::report::escape(action.key.as_str()),
                    manifest.live.unwrap_or_default()
                ));
                continue;
            }
            actions.push(Action {
                op: Op::Keep,
                key: blob_key(&entry.blake3),
                reason: Reason::ForRollback,
                phase: Phase::Preserve,
                bytes: 0,
                immutable: false,
                file: None,
                copy_from: Some(action.key.clone()),
                copy_from_origin: false,
                copy_etag: entry.etag.as_ref().map(ToString::to_string),
                rule: None,
                header_changes: Vec::new(),
            });
        }
        (actions, warnings)
    }

    /// The lifecycle part of the next manifest, and what to prune once it is written.
    pub(crate) fn next_state(&self, plan: &Plan, new_release: Option<ReleaseSummary>) -> NextState {
        let old = self.manifest;
        let live_before = old.and_then(|m| m.live);
        let mut stale = BTreeMap::new();
        for kept in &plan.kept {
            let object = old.and_then(|m| {
                let listed = self.listed(&kept.key)?;
                m.known_entry(listed).cloned()
            });
            stale.insert(
                kept.key.clone(),
                StaleRecord {
                    since: kept.stale_since,
                    release: self.published_by(&kept.key),
                    object,
                },
            );
        }
        let mut releases: Vec<ReleaseSummary> = old.map_or_else(Vec::new, |m| m.releases.clone());
        let live = match new_release {
            Some(summary) => {
                let id = summary.id;
                releases.insert(0, summary);
                Some(id)
            }
            None => live_before,
        };
        let mut pruned = Vec::new();
        if self.releases_on() {
            for dropped in releases.split_off(self.lifecycle.keep_releases.min(releases.len())) {
                pruned.push(record_key(dropped.id));
            }
        } else {
            releases.clear();
        }
        let oldest = releases.iter().map(|r| r.id).min();
        // Records a killed run wrote but never indexed, older than what is retained.
        for id in &self.listed_records {
            if oldest.is_none_or(|oldest| *id < oldest) && !pruned.contains(&record_key(*id)) {
                pruned.push(record_key(*id));
            }
        }
        let mut blobs: BTreeMap<Digest, u64> = old.map_or_else(BTreeMap::new, |m| m.blobs.clone());
        // Bytes kept now, or already kept, are needed by the release that was live.
        let kept_now = plan
            .actions
            .iter()
            .filter(|a| a.op == Op::Keep)
            .filter_map(|a| Digest::parse(a.key.as_str().strip_prefix(OBJECTS_DIR)?));
        if let Some(live) = live_before {
            for blake3 in kept_now.chain(self.listed_blobs.iter().copied()) {
                let needed = blobs.entry(blake3).or_insert(live);
                if self.reused_by_live(&blake3) {
                    *needed = (*needed).max(live);
                }
            }
        }
        blobs.retain(|blake3, needed| {
            let keep = oldest.is_some_and(|oldest| *needed >= oldest);
            if !keep && self.listed_blobs.contains(blake3) {
                pruned.push(blob_key(blake3));
            }
            keep
        });
        NextState {
            stale,
            releases,
            live,
            blobs,
            pruned,
        }
    }

    /// Whether the live release published these bytes under some key.
    fn reused_by_live(&self, blake3: &Digest) -> bool {
        self.manifest
            .is_some_and(|m| m.objects.values().any(|entry| entry.blake3 == *blake3))
    }

    /// The listed object at `key` (the last, should a listing repeat it), found in the sorted
    /// listing in place: a map of it was 3.4 MB at 100,000 keys.
    fn listed(&self, key: &Key) -> Option<&'a ObjectMeta> {
        let end = self.listing.partition_point(|m| m.key <= *key);
        self.listing[..end].last().filter(|m| m.key == *key)
    }

    /// The id the next release gets.
    pub(crate) fn next_id(&self) -> u64 {
        let indexed = self
            .manifest
            .and_then(|m| m.releases.iter().map(|r| r.id).max());
        indexed
            .into_iter()
            .chain(self.listed_records.iter().copied())
            .max()
            .unwrap_or(0)
            + 1
    }
}

/// The lifecycle fields of the next manifest.
#[derive(Debug, Default)]
pub(crate) struct NextState {
    pub(crate) stale: BTreeMap<Key, StaleRecord>,
    pub(crate) releases: Vec<ReleaseSummary>,
    pub(crate) live: Option<u64>,
    pub(crate) blobs: BTreeMap<Digest, u64>,
    /// Release records and kept bytes no retained release needs, deleted after the manifest.
    pub(crate) pruned: Vec<Key>,
}

/// Where the release's commit and message come from: `--message`, the CI's commit variable
/// (`GITHUB_SHA`, `CI_COMMIT_SHA`), or git in the source directory.
pub(crate) fn source_commit(dir: &Path, message: Option<&str>) -> (Option<String>, Option<String>) {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|text| text.trim().to_string())
            .filter(|text| !text.is_empty())
    };
    let commit = var("GITHUB_SHA")
        .or_else(|| var("CI_COMMIT_SHA"))
        .or_else(|| git(&["rev-parse", "HEAD"]));
    let message = message
        .map(str::to_string)
        .or_else(|| var("CI_COMMIT_TITLE"))
        .or_else(|| {
            let commit = commit.as_deref()?;
            git(&["log", "-1", "--format=%s", commit])
        });
    (commit, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::config::DeployConfig;
    use crate::deploy::manifest::ObjectRecord;

    fn rules() -> Rules {
        let config =
            DeployConfig::parse("rules:\n  - match: \"assets/**\"\n    immutable: true\n").unwrap();
        Rules::from_config(&config).unwrap()
    }

    fn meta(key: &str) -> ObjectMeta {
        ObjectMeta {
            key: Key::new(key).unwrap(),
            size: 1,
            etag: Some("e".into()),
            last_modified: None,
        }
    }

    #[test]
    fn a_listed_key_is_found_in_place_and_the_last_of_a_repeat_decides() {
        let rules = rules();
        let second = ObjectMeta {
            size: 2,
            ..meta("b.html")
        };
        let listing = vec![
            meta("a.html"),
            meta("b.html"),
            second.clone(),
            meta("c.html"),
        ];
        let off = Lifecycle {
            keep_releases: 0,
            keep_stale_for: WEEK,
        };
        let ledger = Ledger::new(None, &listing, off, &rules, false);
        assert_eq!(ledger.listed(&Key::new("b.html").unwrap()), Some(&second));
        assert_eq!(
            ledger.listed(&Key::new("a.html").unwrap()),
            Some(&listing[0])
        );
        assert_eq!(
            ledger.listed(&Key::new("c.html").unwrap()),
            Some(&listing[3])
        );
        for absent in ["0.html", "bb.html", "d.html"] {
            assert_eq!(ledger.listed(&Key::new(absent).unwrap()), None, "{absent}");
        }
    }

    fn summary(id: u64) -> ReleaseSummary {
        ReleaseSummary {
            id,
            created: Timestamp(id),
            commit: None,
            message: None,
            kind: "deploy".into(),
            restores: None,
            files: 1,
            bytes: 1,
        }
    }

    fn record() -> ObjectRecord {
        ObjectRecord {
            size: 1,
            blake3: Digest::of(b"b"),
            etag: Some("e".into()),
            headers: crate::digest::Fingerprint::of(b"h"),
        }
    }

    const WEEK: Duration = Duration::from_hours(7 * 24);

    #[test]
    fn hashed_assets_of_retained_releases_are_kept_then_expire() {
        let rules = rules();
        let now = Timestamp::now();
        let mut manifest = Manifest::new(BTreeMap::new());
        manifest.releases = vec![summary(5), summary(4), summary(3)];
        manifest.live = Some(5);
        manifest
            .objects
            .insert(Key::new("assets/live.js").unwrap(), record());
        for (key, release, age) in [
            ("assets/r4.js", 4, 0),
            ("assets/r2-new.js", 2, 3600),
            ("assets/r2-old.js", 2, 8 * 86_400),
        ] {
            manifest.stale.insert(
                Key::new(key).unwrap(),
                StaleRecord {
                    since: Timestamp(now.0 - age),
                    release: Some(release),
                    object: None,
                },
            );
        }
        let lifecycle = Lifecycle {
            keep_releases: 3,
            keep_stale_for: WEEK,
        };
        let ledger = Ledger::new(Some(&manifest), &[], lifecycle, &rules, true);
        // A new release plus 5 and 4 are retained: 3 is not.
        let fate = |key: &str| ledger.fate(&meta(key));
        assert!(matches!(
            fate("assets/live.js"),
            Fate::Keep(Kept {
                release: Some(5),
                ..
            })
        ));
        assert!(matches!(
            fate("assets/r4.js"),
            Fate::Keep(Kept {
                release: Some(4),
                ..
            })
        ));
        assert!(matches!(
            fate("assets/r2-new.js"),
            Fate::Keep(Kept {
                release: None,
                expires: Some(_),
                ..
            })
        ));
        assert_eq!(fate("assets/r2-old.js"), Fate::Delete { immutable: true });
        // A stale page is deleted at once; an unknown asset starts its grace period now.
        assert_eq!(fate("old.html"), Fate::Delete { immutable: false });
        assert!(matches!(
            fate("assets/foreign.js"),
            Fate::Keep(Kept { expires: Some(e), .. }) if e == now.plus(WEEK) || e.0 == now.0 + WEEK.as_secs() + 1
        ));
        // With no grace period and releases off, stale assets go at once.
        let off = Lifecycle {
            keep_releases: 0,
            keep_stale_for: Duration::ZERO,
        };
        let ledger = Ledger::new(Some(&manifest), &[], off, &rules, true);
        assert_eq!(
            ledger.fate(&meta("assets/r4.js")),
            Fate::Delete { immutable: true }
        );
    }

    #[test]
    fn next_state_prunes_what_only_old_releases_need() {
        let rules = rules();
        let mut manifest = Manifest::new(BTreeMap::new());
        manifest.releases = vec![summary(3), summary(2)];
        manifest.live = Some(3);
        let [old, recent, adopted] = ["old", "recent", "adopted"].map(|b| Digest::of(b.as_bytes()));
        manifest.blobs.insert(old, 2);
        manifest.blobs.insert(recent, 3);
        let listing = vec![
            meta(&format!(".hoist/objects/{old}")),
            meta(&format!(".hoist/objects/{recent}")),
            meta(&format!(".hoist/objects/{adopted}")),
            // Not a digest, so not hoist's: never pruned.
            meta(".hoist/objects/notes.txt"),
            meta(".hoist/releases/00000001.json"),
            meta(".hoist/releases/00000002.json"),
            meta(".hoist/releases/00000003.json"),
        ];
        let lifecycle = Lifecycle {
            keep_releases: 2,
            keep_stale_for: WEEK,
        };
        let mut listing = listing;
        listing.sort_by(|a, b| a.key.cmp(&b.key));
        let ledger = Ledger::new(Some(&manifest), &listing, lifecycle, &rules, true);
        assert_eq!(ledger.next_id(), 4);
        let next = ledger.next_state(&Plan::default(), Some(summary(4)));
        assert_eq!(next.live, Some(4));
        assert_eq!(
            next.releases.iter().map(|r| r.id).collect::<Vec<_>>(),
            [4, 3]
        );
        let pruned: Vec<&str> = next.pruned.iter().map(Key::as_str).collect();
        assert_eq!(
            pruned,
            [
                ".hoist/releases/00000002.json",
                ".hoist/releases/00000001.json",
                &format!(".hoist/objects/{old}")
            ]
        );
        let kept: BTreeSet<Digest> = next.blobs.keys().copied().collect();
        assert_eq!(kept, BTreeSet::from([adopted, recent]));
    }

    #[test]
    fn records_keep_functions_and_read_without_them() {
        let record = Release {
            version: RECORD_VERSION,
            summary: ReleaseSummary {
                id: 4,
                created: Timestamp::now(),
                commit: None,
                message: None,
                kind: "deploy".into(),
                restores: None,
                files: 0,
                bytes: 0,
            },
            objects: BTreeMap::new(),
            functions: vec![super::super::edge::manage::ManagedFunction {
                name: "site".into(),
                event: crate::aws::cloudfront::FunctionEvent::ViewerRequest,
                code: "function handler(e) { return e.request; }".into(),
            }],
        };
        let text = String::from_utf8(record.to_bytes()).unwrap();
        assert!(text.contains(r#""event":"viewer-request""#), "{text}");
        assert_eq!(Release::parse(text.as_bytes()).unwrap(), record);
        let older = text.split(r#","functions""#).next().unwrap().to_string() + "}";
        assert!(
            Release::parse(older.as_bytes())
                .unwrap()
                .functions
                .is_empty()
        );
    }
}
