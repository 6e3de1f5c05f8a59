//! Saved plans (issue #16): `hoist deploy --dryrun --plan-out plan.json` writes the plan with
//! what it was computed against; `hoist apply plan.json` runs a deploy that refuses, before
//! any change, unless it computes exactly that plan from exactly those inputs.
//!
//! A plan is a pure function of the source (each file's key, size, blake3 and headers), the
//! target's listing (each object's key, size and ETag, the manifest's included) and the
//! settings; the clock enters only through the release lifecycle's grace periods, whose
//! decisions are actions too. So `apply` does not replay a stored list of requests: it scans,
//! lists and plans again, under the lock, through the same guards and executor as `deploy`,
//! and compares all three with the file. Equal inputs and equal actions mean the reviewed
//! plan is the one executed; any difference is named by key and nothing is changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::plan::{Op, Plan, Reason};
use super::scan::LocalFile;
use crate::report::escape;
use crate::store::ObjectMeta;

/// The version of the file's shape; a hoist refuses a newer one.
pub(crate) const FORMAT: u32 = 1;

/// A key whose listing entry changes with every run (it is the lock), never compared.
const LOCK_KEY: &str = ".hoist/lock.json";

/// Keys named by name in a refusal; the rest are counted.
const NAMED: usize = 20;

/// `plan.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SavedPlan {
    pub(crate) format: u32,
    /// The hoist that wrote it (informative).
    pub(crate) hoist: String,
    /// The target it was computed for: `s3://bucket/prefix/`.
    pub(crate) target: String,
    /// key -> [size, blake3, headers fingerprint].
    pub(crate) source: BTreeMap<String, (u64, String, String)>,
    /// key -> [size, ETag] of every listed object but the lock.
    pub(crate) listing: BTreeMap<String, (u64, Option<String>)>,
    /// The plan's actions in execution order: [op, key, reason].
    pub(crate) actions: Vec<(Op, String, Reason)>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SavedPlanError {
    #[error("cannot read the plan `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is not a hoist plan", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "`{}` was written by a newer hoist ({hoist}, plan format {format}; this hoist reads \
         format {FORMAT}): apply it with that version, or plan again",
        path.display()
    )]
    Newer {
        path: PathBuf,
        hoist: String,
        format: u32,
    },
    #[error("cannot write the plan `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SavedPlan {
    /// What `plan` was computed against.
    pub(crate) fn capture(
        target: String,
        files: &[LocalFile],
        objects: &[ObjectMeta],
        plan: &Plan,
    ) -> SavedPlan {
        SavedPlan {
            format: FORMAT,
            hoist: format!(
                "hoist {} ({})",
                env!("CARGO_PKG_VERSION"),
                env!("HOIST_COMMIT")
            ),
            target,
            source: files
                .iter()
                .map(|f| {
                    (
                        f.key.as_str().to_string(),
                        (
                            f.size,
                            f.blake3.to_string(),
                            f.resolved.headers.fingerprint().to_string(),
                        ),
                    )
                })
                .collect(),
            listing: objects
                .iter()
                .filter(|m| m.key.as_str() != LOCK_KEY)
                .map(|m| (m.key.as_str().to_string(), (m.size, m.etag.clone())))
                .collect(),
            actions: plan
                .actions
                .iter()
                .map(|a| (a.op, a.key.as_str().to_string(), a.reason))
                .collect(),
        }
    }

    /// Reads `path`, refusing a newer format.
    pub(crate) fn read(path: &Path) -> Result<SavedPlan, SavedPlanError> {
        /// The format first, so a newer file is named as such and not as unreadable.
        #[derive(serde::Deserialize)]
        struct Header {
            format: u32,
            #[serde(default)]
            hoist: String,
        }
        let text = std::fs::read(path).map_err(|source| SavedPlanError::Read {
            path: path.to_owned(),
            source,
        })?;
        let header: Header =
            serde_json::from_slice(&text).map_err(|source| SavedPlanError::Parse {
                path: path.to_owned(),
                source,
            })?;
        if header.format > FORMAT {
            return Err(SavedPlanError::Newer {
                path: path.to_owned(),
                hoist: header.hoist,
                format: header.format,
            });
        }
        serde_json::from_slice(&text).map_err(|source| SavedPlanError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    pub(crate) fn write(&self, path: &Path) -> Result<(), SavedPlanError> {
        let text = serde_json::to_vec_pretty(self).expect("a plan serializes");
        std::fs::write(path, text).map_err(|source| SavedPlanError::Write {
            path: path.to_owned(),
            source,
        })
    }

    /// What differs between this (reviewed) plan and `now` (computed by `apply`), one entry
    /// per key, at most [`NAMED`] then a count: empty when `now` is exactly this plan.
    pub(crate) fn differences(&self, now: &SavedPlan) -> Vec<String> {
        let mut found = Vec::new();
        if self.target != now.target {
            found.push(format!(
                "the plan was made for {} but this run targets {}",
                self.target, now.target
            ));
            return found;
        }
        diff(
            &self.source,
            &now.source,
            "source file",
            &mut found,
            |was, is| {
                if was.0 != is.0 || was.1 != is.1 {
                    "content changed"
                } else {
                    "headers changed (deploy.yaml)"
                }
            },
        );
        diff(
            &self.listing,
            &now.listing,
            "bucket object",
            &mut found,
            |_, _| "changed (size or ETag)",
        );
        if found.is_empty() && self.actions != now.actions {
            let planned: std::collections::BTreeSet<_> = self.actions.iter().collect();
            let fresh: std::collections::BTreeSet<_> = now.actions.iter().collect();
            for (op, key, reason) in fresh.difference(&planned) {
                found.push(format!(
                    "`{}`: the plan now says {} ({}), which was not reviewed",
                    escape(key),
                    op.as_str(),
                    reason.as_str()
                ));
            }
            for (op, key, reason) in planned.difference(&fresh) {
                found.push(format!(
                    "`{}`: the reviewed {} ({}) is no longer in the plan",
                    escape(key),
                    op.as_str(),
                    reason.as_str()
                ));
            }
        }
        if found.len() > NAMED {
            let more = found.len() - NAMED;
            found.truncate(NAMED);
            found.push(format!("and {more} more"));
        }
        found
    }
}

/// Adds one entry per key that `was` and `is` disagree on.
fn diff<V: PartialEq>(
    was: &BTreeMap<String, V>,
    is: &BTreeMap<String, V>,
    what: &str,
    found: &mut Vec<String>,
    how: impl Fn(&V, &V) -> &'static str,
) {
    for (key, before) in was {
        match is.get(key) {
            None => found.push(format!("{what} `{}`: gone since the plan", escape(key))),
            Some(after) if after != before => {
                found.push(format!("{what} `{}`: {}", escape(key), how(before, after)));
            }
            Some(_) => {}
        }
    }
    for key in is.keys().filter(|key| !was.contains_key(*key)) {
        found.push(format!("{what} `{}`: new since the plan", escape(key)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved() -> SavedPlan {
        SavedPlan {
            format: FORMAT,
            hoist: "hoist test".into(),
            target: "s3://b/".into(),
            source: BTreeMap::from([("a.html".into(), (1, "d1".into(), "h1".into()))]),
            listing: BTreeMap::from([("a.html".into(), (1, Some("e1".into())))]),
            actions: vec![(Op::Upload, "a.html".into(), Reason::ContentChanged)],
        }
    }

    #[test]
    fn equal_inputs_and_actions_differ_in_nothing() {
        assert_eq!(saved().differences(&saved()), Vec::<String>::new());
    }

    #[test]
    fn each_difference_names_its_key() {
        let mut now = saved();
        now.source.get_mut("a.html").unwrap().1 = "d2".into();
        now.listing.insert("new.html".into(), (2, None));
        let found = saved().differences(&now);
        assert_eq!(
            found,
            [
                "source file `a.html`: content changed",
                "bucket object `new.html`: new since the plan"
            ]
        );
        let mut other = saved();
        other.target = "s3://c/".into();
        assert!(saved().differences(&other)[0].contains("made for s3://b/"));
        let mut later = saved();
        later
            .actions
            .push((Op::Delete, "old.js".into(), Reason::Stale));
        assert!(saved().differences(&later)[0].contains("`old.js`: the plan now says delete"));
    }
}
