//! `hoist deploy`: scan → list + manifest → plan → guards → execute → invalidate → manifest.
//!
//! The scan (blocking threads) overlaps the listing and the manifest GET. Objects the manifest
//! cannot vouch for are read with HEAD (bounded concurrency) before the plan is final. Guards
//! (`max_deletes`, an empty source) run on the final plan, before any mutating request. A dry
//! run stops after reporting the plan, so it sends only List, Get and Head.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};

use crate::error::Error;
use crate::execute::{ErrorChain, Executed, Executor};
use crate::interrupt::Interrupt;
use crate::key::Key;
use crate::manifest::{self, Entry, Manifest};
use crate::plan::{self, Action, Decision, Op, Plan, PlanOptions};
use crate::report::{Printer, escape, human_bytes};
use crate::scan::{self, LocalFile, ScanReport};
use crate::settings::DeploySettings;
use crate::store::local::LocalStore;
use crate::store::s3::{Integrity, S3Store};
use crate::store::{self as store_mod, Body, Listing, ObjectMeta, Store};
use crate::target::Target;

/// The JSON document `--output json` prints.
#[derive(Debug, serde::Serialize)]
pub struct DeployReport {
    pub dryrun: bool,
    pub target: String,
    pub actions: Vec<Action>,
    pub summary: Summary,
    pub invalidation: Option<crate::cdn::InvalidationReport>,
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Summary {
    pub uploaded: usize,
    pub headers_updated: usize,
    pub deleted: usize,
    pub unchanged: usize,
    pub stale_kept: usize,
    pub bytes: u64,
    /// Requests that were retried (transport errors, throttling, 5xx), counted per attempt.
    pub retries: u64,
    pub seconds: f64,
}

impl Summary {
    fn of(actions: &[Action], unchanged: usize, stale_kept: usize, seconds: f64) -> Summary {
        let count = |op| actions.iter().filter(|a| a.op == op).count();
        Summary {
            uploaded: count(Op::Upload),
            headers_updated: count(Op::UpdateHeaders),
            deleted: count(Op::Delete),
            unchanged,
            stale_kept,
            bytes: actions.iter().map(|a| a.bytes).sum(),
            retries: crate::aws::REQUEST_STATS.retries(),
            seconds: (seconds * 1000.0).round() / 1000.0,
        }
    }
}

/// Opens the store a target names. Sends no request.
pub async fn open_store(
    settings: &DeploySettings,
    interrupt: &Interrupt,
) -> Result<(Arc<dyn Store>, Option<aws_config::SdkConfig>), Error> {
    match &settings.target {
        Target::Local { path } => Ok((Arc::new(LocalStore::new(path.clone())), None)),
        Target::S3 { bucket, prefix } => {
            let sdk = crate::aws::load(&settings.aws).await;
            let client = crate::aws::s3_client(&sdk, &settings.aws);
            let integrity = match sdk.request_checksum_calculation() {
                Some(aws_types::sdk_config::RequestChecksumCalculation::WhenRequired) => {
                    Integrity::Md5
                }
                _ => Integrity::Crc32,
            };
            let store = S3Store::new(
                client,
                bucket.clone(),
                prefix.clone(),
                crate::aws::endpoint_label(&sdk, &settings.aws),
            )
            .with_integrity(integrity)
            .with_multipart(settings.multipart, settings.concurrency.get())
            .with_interrupt(interrupt.clone());
            Ok((Arc::new(store), Some(sdk)))
        }
    }
}

pub async fn run(
    settings: DeploySettings,
    printer: &Printer,
    interrupt: &Interrupt,
) -> Result<(), Error> {
    let started = Instant::now();
    // A source that cannot be published is a usage error, found before any request.
    scan::check_root(&settings.source)?;
    let (store, sdk) = open_store(&settings, interrupt).await?;
    let store = store.as_ref();
    let mut warnings = Vec::new();

    // Scan locally while the target is listed and the manifest fetched.
    let source = settings.source.clone();
    let rules_config = Arc::clone(&settings.rules);
    let scan_task = tokio::task::spawn_blocking(move || scan::scan(&source, &rules_config));
    let remote = async {
        let listing: Vec<Listing> = store.list().try_collect().await?;
        let manifest = fetch_manifest(store).await?;
        Ok::<_, store_mod::Error>((listing, manifest))
    };
    let (scanned, remote) = tokio::join!(scan_task, remote);
    let ScanReport { files, reserved } = scanned.expect("scan task does not panic")?;
    let (listing, manifest) = remote?;
    let (manifest, manifest_warning) = manifest;
    warnings.extend(manifest_warning);
    for path in reserved {
        warnings.push(format!(
            "skipping `{}`: `{}/` is reserved for hoist's manifest",
            escape(&path.display().to_string()),
            scan::RESERVED_DIR
        ));
    }
    let mut objects = Vec::with_capacity(listing.len());
    for entry in listing {
        match entry {
            Listing::Object(meta) => objects.push(meta),
            Listing::Unnamed { name, reason } => {
                warnings.push(format!("leaving `{}` alone: {reason}", escape(&name)))
            }
        }
    }

    if files.is_empty() && !settings.force {
        return Err(Error::Guard {
            message: format!(
                "source `{}` has no files to publish; refusing to deploy an empty site to {}",
                settings.source.display(),
                store.url(None)
            ),
            hint:
                "an empty build usually means the build failed; pass --force to publish it anyway"
                    .into(),
        });
    }

    let plan = make_plan(&settings, store, &files, &objects, manifest.as_ref()).await?;

    if plan.delete_count() > settings.max_deletes && !settings.force {
        return Err(Error::Guard {
            message: format!(
                "the plan deletes {} objects under {}, more than max_deletes ({}); nothing was changed",
                plan.delete_count(),
                store.url(None),
                settings.max_deletes
            ),
            hint:
                "check --source and --target, then raise max_deletes in deploy.yaml or pass --force"
                    .into(),
        });
    }

    for warning in &warnings {
        printer.warn(warning);
    }

    // Keys an interrupted or failed deploy changed without a confirmed invalidation: owed now.
    let owed: Vec<String> = match (&settings.cloudfront, &manifest) {
        (Some(_), Some(manifest)) => manifest.pending_invalidation.clone(),
        _ => Vec::new(),
    };
    if !owed.is_empty() {
        printer.status(&format!(
            "{} key(s) changed by an earlier deploy were never invalidated; invalidating them now",
            owed.len()
        ));
    }
    let changes = crate::cdn::Changes::from_plan(&plan).with_pending(&owed);
    if settings.dryrun {
        for action in &plan.actions {
            printer.line(&action_line(action, true));
        }
        let invalidation = match (&settings.cloudfront, &sdk) {
            (Some(cloudfront), Some(sdk)) => Some(
                crate::cdn::plan_invalidation(sdk, cloudfront, &settings.target, &changes, printer)
                    .await?,
            ),
            _ => None,
        };
        let summary = Summary::of(
            &plan.actions,
            plan.unchanged,
            plan.stale_kept.len(),
            started.elapsed().as_secs_f64(),
        );
        finish(
            printer,
            DeployReport {
                dryrun: true,
                target: store.url(None),
                actions: plan.actions.clone(),
                summary,
                invalidation,
                warnings,
                error: None,
            },
        );
        return Ok(());
    }

    let completed: Mutex<Vec<Action>> = Mutex::new(Vec::new());
    let total_bytes: u64 = plan.actions.iter().map(|a| a.bytes).sum();
    let total = plan.actions.len() as u64;
    printer.start_progress(total_bytes, total);
    let on_done = |action: &Action| {
        let mut completed = completed.lock().expect("completed lock");
        completed.push(action.clone());
        printer.advance(action.bytes, completed.len() as u64, total);
        printer.line(&action_line(action, false));
    };
    let after: &[&str] = if settings.cloudfront.is_some() {
        &["invalidation", "manifest"]
    } else {
        &["manifest"]
    };
    // The intent record: before anything changes, the manifest says which keys will owe an
    // invalidation, so no way of stopping (a failed invalidation, SIGTERM, SIGKILL) loses them.
    // The objects are the old manifest's: entries for objects this run rewrites stop matching
    // the listing and are re-checked, as after any interrupted deploy.
    let mut remote_manifest = manifest;
    if settings.cloudfront.is_some() && changes.keys.as_slice() != owed {
        let mut intent = remote_manifest
            .clone()
            .unwrap_or_else(|| Manifest::new(Default::default()));
        intent.pending_invalidation = changes.keys.clone();
        put_manifest(store, &intent).await?;
        remote_manifest = Some(intent);
    }
    let executor = Executor {
        store,
        files: &files,
        options: settings.exec_options(),
        interrupt,
        on_done: &on_done,
        after,
    };
    let executed = executor.run(&plan).await;
    printer.finish_progress();
    let executed = match executed {
        Ok(executed) => executed,
        Err(error) => {
            let actions = sorted(completed.into_inner().expect("completed lock"));
            if !printer.is_human() {
                let summary = Summary::of(
                    &actions,
                    plan.unchanged,
                    plan.stale_kept.len(),
                    started.elapsed().as_secs_f64(),
                );
                finish(
                    printer,
                    DeployReport {
                        dryrun: false,
                        target: store.url(None),
                        actions,
                        summary,
                        invalidation: None,
                        warnings,
                        error: Some(ErrorChain(&error).to_string()),
                    },
                );
            }
            return Err(error.into());
        }
    };

    let invalidation = match (&settings.cloudfront, &sdk) {
        (Some(cloudfront), Some(sdk)) => Some(
            crate::cdn::invalidate(
                sdk,
                cloudfront,
                &settings.target,
                &changes,
                printer,
                interrupt,
            )
            .await?,
        ),
        _ => None,
    };

    // Reached only when every step succeeded: nothing is owed any more, unless invalidation
    // is off for this run (`--no-invalidate`), which leaves what an earlier run owed.
    let mut next = next_manifest(&plan, &files, &executed);
    if settings.cloudfront.is_none()
        && let Some(old) = &remote_manifest
    {
        next.pending_invalidation = old.pending_invalidation.clone();
    }
    if !remote_manifest.is_some_and(|old| old.same_content(&next)) {
        put_manifest(store, &next).await?;
    }

    let summary = Summary::of(
        &plan.actions,
        plan.unchanged,
        plan.stale_kept.len(),
        started.elapsed().as_secs_f64(),
    );
    finish(
        printer,
        DeployReport {
            dryrun: false,
            target: store.url(None),
            actions: plan.actions.clone(),
            summary,
            invalidation,
            warnings,
            error: None,
        },
    );
    Ok(())
}

fn sorted(mut actions: Vec<Action>) -> Vec<Action> {
    actions.sort_by(|a, b| (a.phase, &a.key).cmp(&(b.phase, &b.key)));
    actions
}

async fn put_manifest(store: &dyn Store, manifest: &Manifest) -> Result<(), Error> {
    let headers = crate::headers::Headers {
        content_type: Some("application/json".into()),
        cache_control: Some("no-store".into()),
        ..Default::default()
    };
    store
        .put(
            &manifest::manifest_key(),
            Body::Bytes(manifest.to_bytes().into()),
            &headers,
        )
        .await
        .map_err(Error::Store)?;
    Ok(())
}

/// Reads the previous manifest; a missing one is normal, an unreadable one a warning.
async fn fetch_manifest(
    store: &dyn Store,
) -> Result<(Option<Manifest>, Option<String>), store_mod::Error> {
    match store.get(&manifest::manifest_key()).await {
        Ok(bytes) => match Manifest::parse(&bytes) {
            Ok(manifest) => Ok((Some(manifest), None)),
            Err(error) => Ok((None, Some(ErrorChain(&error).to_string()))),
        },
        Err(store_mod::Error::NotFound { .. }) => Ok((None, None)),
        Err(error) => Err(error),
    }
}

async fn make_plan(
    settings: &DeploySettings,
    store: &dyn Store,
    files: &[LocalFile],
    objects: &[ObjectMeta],
    manifest: Option<&Manifest>,
) -> Result<Plan, Error> {
    let comparison = plan::compare(files, objects, manifest);
    let mut decisions = comparison.decided;
    let heads: Vec<(usize, Decision, Option<Entry>)> = futures::stream::iter(comparison.pending)
        .map(|pending| async move {
            let file = &files[pending.file];
            let info = match store.head(&file.key).await {
                Ok(info) => info,
                // Deleted since the listing: it is new again.
                Err(store_mod::Error::NotFound { .. }) => {
                    return Ok((pending.file, Decision::New, None));
                }
                Err(e) => return Err(e),
            };
            let md5 = if plan::needs_md5(file, &info) {
                let path = file.path.clone();
                let digest = tokio::task::spawn_blocking(move || md5_file(&path))
                    .await
                    .expect("md5 task does not panic")
                    .map_err(|source| store_mod::Error::Io {
                        path: file.path.clone(),
                        source,
                    })?;
                Some(digest)
            } else {
                None
            };
            let decision = plan::decide_from_head(file, &info, md5.as_deref());
            // What the object is now, as far as the listing shows, for the next manifest.
            let entry = Entry {
                size: info.meta.size,
                blake3: file.blake3.clone(),
                etag: pending.listed.etag.clone(),
                headers: file.resolved.headers.fingerprint(),
            };
            Ok((pending.file, decision, Some(entry)))
        })
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
    Ok(crate::store::local::hex(&hasher.finalize()))
}

/// The manifest after a successful run: what was known, updated with what was written.
fn next_manifest(plan: &Plan, files: &[LocalFile], executed: &Executed) -> Manifest {
    let mut objects: BTreeMap<Key, Entry> = plan.known.clone();
    for action in &plan.actions {
        let Some(index) = action.file else { continue };
        let file = &files[index];
        let etag = executed
            .etags
            .get(&file.key)
            .cloned()
            .flatten()
            .or_else(|| plan.known.get(&file.key).and_then(|e| e.etag.clone()));
        objects.insert(
            file.key.clone(),
            Entry {
                size: file.size,
                blake3: file.blake3.clone(),
                etag,
                headers: file.resolved.headers.fingerprint(),
            },
        );
    }
    Manifest::new(objects)
}

pub fn action_line(action: &Action, dryrun: bool) -> String {
    let op = match action.op {
        Op::Upload => console::style("upload").green(),
        Op::UpdateHeaders => console::style("update").yellow(),
        Op::Delete => console::style("delete").red(),
    };
    format!(
        "{}{op}  {}  ({})",
        if dryrun { "(dryrun) " } else { "" },
        escape(action.key.as_str()),
        action.reason.as_str()
    )
}

fn finish(printer: &Printer, report: DeployReport) {
    if !printer.is_human() {
        printer.data(&serde_json::to_string_pretty(&report).expect("report serializes"));
        return;
    }
    let s = &report.summary;
    let verb = if report.dryrun {
        "(dryrun) would deploy"
    } else {
        "deployed"
    };
    let mut line = format!(
        "{verb} to {}: {} uploaded ({}), {} headers updated, {} deleted, {} unchanged",
        escape(&report.target),
        s.uploaded,
        human_bytes(s.bytes),
        s.headers_updated,
        s.deleted,
        s.unchanged
    );
    if s.stale_kept > 0 {
        line.push_str(&format!(", {} stale kept", s.stale_kept));
    }
    if s.retries > 0 {
        line.push_str(&format!(", {} retried request(s)", s.retries));
    }
    if let Some(invalidation) = &report.invalidation {
        line.push_str(&format!(", {}", invalidation.summary()));
    }
    line.push_str(&format!(" in {:.1}s", s.seconds));
    printer.data(&line);
}
