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
use super::release::Ledger;
use super::scan::LocalFile;
use super::settings::DeploySettings;
use crate::store::{self, ObjectMeta, Store};

/// Classifies every file against the target (reading pending objects) and builds the plan,
/// with the release lifecycle's decisions: which stale keys are kept, and which live pages are
/// kept for rollback before they are replaced. With `--check` the manifest vouches for
/// nothing: every listed object is read with HEAD.
pub(crate) async fn plan(
    settings: &DeploySettings,
    store: &dyn Store,
    files: &[LocalFile],
    objects: &[ObjectMeta],
    manifest: Option<&Manifest>,
) -> Result<(Plan, Vec<String>), store::Error> {
    let trusted = if settings.check { None } else { manifest };
    let comparison = plan::classify(files, objects, trusted);
    let mut decisions = comparison.decided;
    let mut known = comparison.known;
    let heads: Vec<(usize, Decision, Option<ObjectRecord>)> =
        futures::stream::iter(comparison.pending)
            .map(|pending| head_one(store, files, pending))
            .buffer_unordered(settings.concurrency.get())
            .try_collect()
            .await?;
    for (index, decision, record) in heads {
        decisions.push((index, decision));
        if decision != Decision::ContentChanged
            && let Some(record) = record
        {
            known.push((index, plan::Known::Read(Box::new(record))));
        }
    }
    let rules = &settings.rules;
    // Production never deletes under the previews prefix (each preview is its own site, even
    // one whose first deploy has not written its manifest yet).
    let previews = settings
        .preview
        .is_none()
        .then_some(settings.previews.prefix.as_str());
    let is_excluded =
        |key: &str| rules.is_excluded(key) || previews.is_some_and(|p| key.starts_with(p));
    let nested = plan::nested_sites(objects);
    let creates_release = creates_release(
        settings,
        files,
        &decisions,
        &comparison.remote_only,
        &nested,
    );
    let ledger = Ledger::new(
        manifest,
        objects,
        settings.lifecycle,
        rules,
        creates_release,
    );
    let fate = |object: &ObjectMeta| ledger.fate(object);
    let mut plan = plan::build(
        files,
        decisions,
        known,
        &comparison.remote_only,
        nested,
        &PlanOptions {
            delete: settings.delete,
            is_excluded: &is_excluded,
            fate: &fate,
        },
    );
    plan.creates_release = creates_release;
    explain(settings, store, files, &mut plan).await?;
    let (keeps, warnings) = ledger.keep_actions(&plan);
    plan.actions.splice(0..0, keeps);
    Ok((plan, warnings))
}

/// Makes the plan readable: each action names the rule that gave its headers, a header
/// update says which headers change from what (one HEAD per updated key), and `-v` logs every
/// file's resolved headers.
async fn explain(
    settings: &DeploySettings,
    store: &dyn Store,
    files: &[LocalFile],
    plan: &mut Plan,
) -> Result<(), store::Error> {
    for action in &mut plan.actions {
        let Some(index) = action.file else { continue };
        let file = &files[index];
        action.rule = file
            .resolved
            .rule
            .map(|r| settings.rules.label(r).to_string());
        tracing::debug!(
            "{}: {} -> {}",
            action.key,
            action.rule.as_deref().unwrap_or("no rule"),
            file.resolved.headers.describe()
        );
    }
    let updates: Vec<usize> = plan
        .actions
        .iter()
        .enumerate()
        .filter(|(_, a)| a.op == plan::Op::UpdateHeaders)
        .map(|(i, _)| i)
        .collect();
    let heads: Vec<(usize, Vec<plan::HeaderChange>)> = futures::stream::iter(updates)
        .map(|i| {
            let action = &plan.actions[i];
            let wanted = &files[action.file.expect("an update names its file")]
                .resolved
                .headers;
            async move {
                let info = store.head(&action.key).await?;
                let changes = wanted
                    .changes_from(&info.headers)
                    .into_iter()
                    .map(|(header, from, to)| plan::HeaderChange { header, from, to })
                    .collect();
                Ok::<_, store::Error>((i, changes))
            }
        })
        .buffer_unordered(settings.concurrency.get())
        .try_collect()
        .await?;
    for (i, changes) in heads {
        plan.actions[i].header_changes = changes;
    }
    Ok(())
}

/// Whether the plan will change what the site serves (so it is a new release): a file to
/// write, or a stale page to delete. Expired hashed assets alone are not a release.
fn creates_release(
    settings: &DeploySettings,
    files: &[LocalFile],
    decisions: &[(usize, Decision)],
    remote_only: &[ObjectMeta],
    nested: &[String],
) -> bool {
    let outside_nested =
        |key: &crate::key::Key| !nested.iter().any(|n| key.as_str().starts_with(n.as_str()));
    let writes = decisions.iter().any(|(index, decision)| {
        *decision != Decision::Unchanged && outside_nested(&files[*index].key)
    });
    writes
        || (settings.delete
            && remote_only.iter().any(|object| {
                let key = &object.key;
                key.as_str() != super::scan::RESERVED_DIR
                    && !key.is_under(super::scan::RESERVED_DIR)
                    && outside_nested(key)
                    && !settings.rules.is_excluded(key.as_str())
                    && !settings.rules.resolve(key).immutable
            }))
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
        .filter(|(_, decision)| *decision == Decision::Unchanged)
        .map(|(index, _)| &files[*index].key)
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
    // A rollback's objects have no local file to hash: without hoist's blake3 on the object,
    // its bytes are restored.
    let md5 = if !file.path.as_os_str().is_empty() && plan::needs_md5(file, &info) {
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
        blake3: file.blake3,
        etag: pending
            .listed
            .etag
            .as_deref()
            .map(crate::digest::Etag::from),
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
