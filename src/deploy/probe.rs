//! The HEAD pass: finishes the decisions the listing and the manifest could not make.
//!
//! [`super::plan::classify`] leaves a file pending when the manifest cannot vouch for its object
//! (no entry, or the listing's size or ETag moved). Each pending object is read with HEAD
//! (bounded concurrency) and, when only a single-part MD5 ETag can settle it, the local file's
//! MD5 is computed; then [`super::plan::build`] orders the whole plan. A no-op deploy, whose
//! manifest vouches for everything, sends no HEAD at all.

use futures::{StreamExt, TryStreamExt};

use super::manifest::{Manifest, ObjectRecord};
use super::plan::{self, Decision, Plan, PlanOptions};
use super::scan::LocalFile;
use super::settings::DeploySettings;
use crate::store::{self, ObjectMeta, Store};

/// Classifies every file against the target (reading pending objects) and builds the plan.
/// With `--check` the manifest vouches for nothing: every listed object is read with HEAD.
pub(crate) async fn plan(
    settings: &DeploySettings,
    store: &dyn Store,
    files: &[LocalFile],
    objects: &[ObjectMeta],
    manifest: Option<&Manifest>,
) -> Result<Plan, store::Error> {
    let trusted = if settings.check { None } else { manifest };
    let comparison = plan::classify(files, objects, trusted);
    let mut decisions = comparison.decided;
    let heads: Vec<(usize, Decision, Option<ObjectRecord>)> =
        futures::stream::iter(comparison.pending)
            .map(|pending| head_one(store, files, pending))
            .buffer_unordered(settings.concurrency.get())
            .try_collect()
            .await?;
    decisions.extend(heads);
    let rules = &settings.rules;
    let is_excluded = |key: &str| rules.is_excluded(key);
    Ok(plan::build(
        files,
        decisions,
        &comparison.remote_only,
        &PlanOptions {
            delete: settings.delete,
            is_excluded: &is_excluded,
        },
    ))
}

/// With `--check`: the keys the manifest called unchanged that the objects themselves show
/// were changed by another tool (content or headers), for the report.
pub(crate) fn drift(
    files: &[LocalFile],
    objects: &[ObjectMeta],
    manifest: Option<&Manifest>,
    plan: &Plan,
) -> Vec<String> {
    let trusted = plan::classify(files, objects, manifest);
    let vouched: std::collections::HashSet<&crate::key::Key> = trusted
        .decided
        .iter()
        .filter(|(_, decision, _)| *decision == Decision::Unchanged)
        .map(|(index, _, _)| &files[*index].key)
        .collect();
    plan.actions
        .iter()
        .filter(|action| vouched.contains(&action.key))
        .map(|action| {
            format!(
                "`{}` was changed outside hoist ({}); the manifest did not know, --check repairs it",
                crate::report::escape(action.key.as_str()),
                action.reason.as_str()
            )
        })
        .collect()
}

/// One pending file: HEAD its object (and MD5 the file when that decides it).
async fn head_one(
    store: &dyn Store,
    files: &[LocalFile],
    pending: plan::Pending,
) -> Result<(usize, Decision, Option<ObjectRecord>), store::Error> {
    let file = &files[pending.file];
    let info = match store.head(&file.key).await {
        Ok(info) => info,
        // Deleted since the listing: it is new again.
        Err(store::Error::NotFound { .. }) => return Ok((pending.file, Decision::New, None)),
        Err(e) => return Err(e),
    };
    let md5 = if plan::needs_md5(file, &info) {
        let path = file.path.clone();
        let digest = tokio::task::spawn_blocking(move || md5_file(&path))
            .await
            .expect("md5 task does not panic")
            .map_err(|source| store::Error::Io {
                path: file.path.clone(),
                source,
            })?;
        Some(digest)
    } else {
        None
    };
    let decision = plan::decide_from_head(file, &info, md5.as_deref());
    // What the object is now, as far as the listing shows, for the next manifest.
    let record = ObjectRecord {
        size: info.meta.size,
        blake3: file.blake3.clone(),
        etag: pending.listed.etag.clone(),
        headers: file.resolved.headers.fingerprint(),
    };
    Ok((pending.file, decision, Some(record)))
}

fn md5_file(path: &std::path::Path) -> std::io::Result<String> {
    use md5::{Digest, Md5};
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Md5::new();
    let mut buffer = vec![0; 256 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(store::hex(&hasher.finalize()))
}
