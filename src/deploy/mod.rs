//! `hoist deploy`: a built site → the target, following deploy.yaml's rules.
//!
//! The stages, each a function below:
//! 1. [`settings`]: flags > deploy.yaml > defaults, validated before any request.
//! 2. [`gather`]: the scan (blocking threads), the listing and the manifest GET, all at once.
//! 3. [`probe::plan`] and [`guard`]: the pure plan ([`plan`]), completed by HEAD where the
//!    manifest cannot vouch for an object, then the safety guards, before any mutating request.
//! 4. [`Deploy::dry_run`], which reports the plan and sends only List, Get and Head; or
//!    [`Deploy::publish`],
//!    which runs the manifest protocol (see there) around [`execute`], the only code that
//!    mutates the store.
//! 5. [`report`]: the same report for both, built in one place.

pub(crate) mod cdn;
pub(crate) mod config;
mod error;
pub(crate) mod execute;
pub(crate) mod manifest;
pub(crate) mod plan;
mod probe;
mod report;
pub(crate) mod rules;
pub(crate) mod scan;
pub(crate) mod settings;
pub(crate) mod target;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::TryStreamExt;

pub(crate) use error::{DeployError, GuardError};
use execute::{Executed, Executor};
use manifest::{Manifest, ObjectRecord};
use plan::{Action, Plan};
use report::{DeployReport, Ending, action_line};
use scan::{LocalFile, ScanReport};
use settings::DeploySettings;
use target::Target;

use crate::aws::cloudfront::CloudFront;
use crate::aws::{Session, StoreOptions};
use crate::cli::DeployArgs;
use crate::error::ErrorChain;
use crate::interrupt::Interrupt;
use crate::key::Key;
use crate::report::{Printer, escape};
use crate::store::local::LocalStore;
use crate::store::retry::Retrier;
use crate::store::s3::Multipart;
use crate::store::{self, Body, Listing, ObjectMeta, Store};

/// Runs `hoist deploy` with parsed flags.
pub(crate) async fn run(args: &DeployArgs, interrupt: &Interrupt) -> Result<(), DeployError> {
    let settings = DeploySettings::resolve(args)?;
    let printer = Printer::new(settings.output, settings.quiet);
    let started = Instant::now();
    // A source that cannot be published is a usage error, found before any request.
    scan::check_root(&settings.source)?;
    let (store, session) = open_store(&settings, interrupt).await;
    let cloudfront = match (&settings.cloudfront, &session) {
        (Some(cloudfront), Some(session)) => {
            Some(session.cloudfront(cloudfront.endpoint_url.as_deref()))
        }
        _ => None,
    };
    let deploy = Deploy {
        settings: &settings,
        store: store.as_ref(),
        cloudfront: cloudfront.as_ref(),
        printer: &printer,
        interrupt,
        started,
    };
    let mut gathered = gather(&settings, deploy.store).await?;
    let mut plan = probe::plan(
        &settings,
        deploy.store,
        &gathered.files,
        &gathered.objects,
        gathered.manifest.as_ref(),
    )
    .await?;
    let (stale, stale_warning) = stale_uploads(&settings, deploy.store, &plan).await;
    plan.stale_uploads = stale;
    gathered.warnings.extend(stale_warning);
    guard(&settings, &gathered, &plan, deploy.store)?;
    if settings.check {
        let drift = probe::drift(
            &gathered.files,
            &gathered.objects,
            gathered.manifest.as_ref(),
            &plan,
        );
        gathered.warnings.extend(drift);
    }
    for warning in &gathered.warnings {
        printer.warn(warning);
    }
    let changes = changes_to_invalidate(&deploy, &plan, gathered.manifest.as_ref());
    let report = if settings.dryrun {
        deploy.dry_run(&plan, &changes, gathered.warnings).await?
    } else {
        deploy.publish(&plan, &changes, gathered).await?
    };
    report.print(&printer);
    Ok(())
}

/// Opens the store a target names, and the AWS session behind it. Sends no request.
async fn open_store(
    settings: &DeploySettings,
    interrupt: &Interrupt,
) -> (Arc<dyn Store>, Option<Session>) {
    match &settings.target {
        Target::Local { path } => (Arc::new(LocalStore::new(path.clone())), None),
        Target::S3 { bucket, prefix } => {
            let session = Session::load(&settings.aws).await;
            let options = StoreOptions {
                multipart: Multipart {
                    threshold: settings.multipart_threshold,
                    chunk_size: settings.multipart_chunksize,
                },
                concurrency: settings.concurrency.get(),
                // The manifest records the ETag a listing shows.
                listed_etags: true,
            };
            let store = session.s3_store(bucket, prefix.clone(), options, interrupt);
            (Arc::new(store), Some(session))
        }
    }
}

/// What the source and the target hold before anything is decided.
struct Gathered {
    files: Vec<LocalFile>,
    objects: Vec<ObjectMeta>,
    manifest: Option<Manifest>,
    warnings: Vec<String>,
    /// Pairs of files whose names are equal after NFC normalization.
    twins: Vec<(Key, Key)>,
}

/// The uploads killed runs left: begun more than `after` ago. Looked for only when the plan
/// uploads a file in parts: a run killed mid-upload left one for a large file, which its rerun
/// uploads again, and a deploy of small files (or a no-op) sends no extra request. Listing
/// them needs `s3:ListBucketMultipartUploads`; without it (or on a store without the call) the
/// deploy goes on with a warning.
async fn stale_uploads(
    settings: &DeploySettings,
    store: &dyn Store,
    plan: &Plan,
) -> (Vec<store::Upload>, Option<String>) {
    let in_parts = plan
        .actions
        .iter()
        .any(|a| a.op == plan::Op::Upload && a.bytes >= settings.multipart_threshold);
    if !in_parts {
        return (Vec::new(), None);
    }
    let after = settings.abort_uploads_after;
    let before = std::time::SystemTime::now()
        .checked_sub(after)
        .unwrap_or(std::time::UNIX_EPOCH);
    match store.stale_uploads(before).await {
        Ok(uploads) => (uploads, None),
        Err(store::Error::Service {
            status: Some(501), ..
        }) => (Vec::new(), None),
        Err(error) => (
            Vec::new(),
            Some(format!(
                "cannot list unfinished multipart uploads, so none is cleaned up: {}",
                ErrorChain(&error)
            )),
        ),
    }
}

/// Scans the source on blocking threads while the target is listed and the manifest fetched:
/// three independent reads, so a deploy waits for the slowest, not their sum.
async fn gather(settings: &DeploySettings, store: &dyn Store) -> Result<Gathered, DeployError> {
    let source = settings.source.clone();
    let rules = Arc::clone(&settings.rules);
    let follow = settings.follow_symlinks;
    let scan_task = tokio::task::spawn_blocking(move || scan::scan(&source, &rules, follow));
    let listing = store.list().try_collect::<Vec<Listing>>();
    let (scanned, listing, manifest) = tokio::join!(scan_task, listing, fetch_manifest(store));
    let ScanReport { files, reserved } = scanned.expect("scan task does not panic")?;
    let (manifest, manifest_warning) = manifest?;
    let mut warnings: Vec<String> = manifest_warning.into_iter().collect();
    let unreachable = plan::unreachable_keys(&files);
    warnings.extend(unreachable.warnings());
    for path in reserved {
        warnings.push(format!(
            "skipping `{}`: `{}/` is reserved for hoist's manifest",
            escape(&path.display().to_string()),
            scan::RESERVED_DIR
        ));
    }
    let mut objects = Vec::new();
    for entry in listing? {
        match entry {
            Listing::Object(meta) => objects.push(meta),
            Listing::Unnamed { name, reason } => {
                warnings.push(format!("leaving `{}` alone: {reason}", escape(&name)));
            }
        }
    }
    Ok(Gathered {
        files,
        objects,
        manifest,
        warnings,
        twins: unreachable.twins,
    })
}

/// The safety guards, on the final plan and before any mutating request: an empty source (a
/// failed build), two names equal after Unicode NFC normalization, and more deletes than
/// `max_deletes` (a wrong `--source` or `--target`) are refused unless `--force`.
fn guard(
    settings: &DeploySettings,
    gathered: &Gathered,
    plan: &Plan,
    store: &dyn Store,
) -> Result<(), GuardError> {
    if settings.force {
        return Ok(());
    }
    if gathered.files.is_empty() {
        return Err(GuardError::EmptySource {
            dir: settings.source.clone(),
            target: store.url(None),
        });
    }
    if !gathered.twins.is_empty() {
        let name = |key: &Key| escape(key.as_str()).into_owned();
        return Err(GuardError::NormalizationTwins {
            twins: gathered
                .twins
                .iter()
                .map(|(a, b)| (name(a), name(b)))
                .collect(),
        });
    }
    if plan.delete_count() > settings.max_deletes {
        return Err(GuardError::TooManyDeletes {
            count: plan.delete_count(),
            target: store.url(None),
            max: settings.max_deletes,
        });
    }
    Ok(())
}

/// The keys whose cached copies this deploy makes stale, plus those an interrupted or failed
/// deploy changed without a confirmed invalidation (the manifest records them).
fn changes_to_invalidate(
    deploy: &Deploy<'_>,
    plan: &Plan,
    manifest: Option<&Manifest>,
) -> cdn::Changes {
    let owed: &[String] = match (&deploy.settings.cloudfront, manifest) {
        (Some(_), Some(manifest)) => &manifest.pending_invalidation,
        _ => &[],
    };
    if !owed.is_empty() {
        deploy.printer.status(&format!(
            "{} key(s) changed by an earlier deploy were never invalidated; invalidating them now",
            owed.len()
        ));
    }
    cdn::Changes::from_plan(plan).with_pending(owed)
}

/// What every stage after the plan needs.
struct Deploy<'a> {
    settings: &'a DeploySettings,
    store: &'a dyn Store,
    /// The CloudFront client, when the deploy invalidates.
    cloudfront: Option<&'a CloudFront>,
    printer: &'a Printer,
    interrupt: &'a Interrupt,
    started: Instant,
}

impl Deploy<'_> {
    /// `--dryrun`: prints the plan and the exact invalidation paths; sends only List, Get and
    /// Head requests (CloudFront: GetDistribution).
    async fn dry_run(
        &self,
        plan: &Plan,
        changes: &cdn::Changes,
        warnings: Vec<String>,
    ) -> Result<DeployReport, DeployError> {
        for action in &plan.actions {
            self.printer.line(&action_line(action, true));
        }
        for upload in &plan.stale_uploads {
            self.printer.line(&report::abort_line(upload, true));
        }
        let invalidation = match (&self.settings.cloudfront, self.cloudfront) {
            (Some(settings), Some(client)) => Some(
                cdn::plan_invalidation(
                    client,
                    settings,
                    &self.settings.target,
                    changes,
                    self.printer,
                )
                .await?,
            ),
            _ => None,
        };
        Ok(self.report(
            Ending::DryRun,
            plan.actions.clone(),
            plan,
            invalidation,
            warnings,
        ))
    }

    /// Publishes the plan. The manifest protocol:
    /// 1. With CloudFront, the *intent record*: before anything changes, the manifest says which
    ///    keys the run will owe an invalidation, so no way of stopping (a failed invalidation,
    ///    SIGTERM, SIGKILL) loses them. Its objects are the old manifest's: entries for objects
    ///    this run rewrites stop matching the listing and are re-checked, as after any
    ///    interrupted deploy.
    /// 2. The plan, phase by phase ([`execute`]); a failure stops before the next phase.
    /// 3. The invalidation of exactly the changed paths.
    /// 4. The final manifest, written only when every step succeeded (and changed), which
    ///    clears what was owed.
    async fn publish(
        &self,
        plan: &Plan,
        changes: &cdn::Changes,
        gathered: Gathered,
    ) -> Result<DeployReport, DeployError> {
        let Gathered {
            files,
            manifest,
            warnings,
            ..
        } = gathered;
        let mut remote_manifest = manifest;
        let owed = remote_manifest
            .as_ref()
            .map_or(&[][..], |m| m.pending_invalidation.as_slice());
        if self.settings.cloudfront.is_some() && changes.keys.as_slice() != owed {
            let mut intent = remote_manifest
                .clone()
                .unwrap_or_else(|| Manifest::new(BTreeMap::new()));
            intent.pending_invalidation.clone_from(&changes.keys);
            put_manifest(self.store, &intent).await?;
            remote_manifest = Some(intent);
        }
        let executed = self.execute(plan, &files, warnings.clone()).await?;
        for upload in &executed.aborted {
            self.printer.line(&report::abort_line(upload, false));
        }
        let mut warnings = warnings;
        for warning in &executed.warnings {
            self.printer.warn(warning);
        }
        warnings.extend(executed.warnings.iter().cloned());
        let invalidation = match (&self.settings.cloudfront, self.cloudfront) {
            (Some(settings), Some(client)) => Some(
                cdn::invalidate(
                    client,
                    settings,
                    &self.settings.target,
                    changes,
                    self.printer,
                    self.interrupt,
                )
                .await?,
            ),
            _ => None,
        };
        // Nothing is owed any more, unless invalidation is off for this run
        // (`--no-invalidate`), which leaves what an earlier run owed.
        let mut next = next_manifest(plan, &files, &executed);
        if self.settings.cloudfront.is_none()
            && let Some(old) = &remote_manifest
        {
            next.pending_invalidation
                .clone_from(&old.pending_invalidation);
        }
        if !remote_manifest.is_some_and(|old| old.same_content(&next)) {
            put_manifest(self.store, &next).await?;
        }
        Ok(self.report(
            Ending::Deployed,
            plan.actions.clone(),
            plan,
            invalidation,
            warnings,
        ))
    }

    /// Runs the executor with a progress bar and one line per completed action. On failure
    /// with `--output json`, prints the report of what completed before returning the error.
    async fn execute(
        &self,
        plan: &Plan,
        files: &[LocalFile],
        warnings: Vec<String>,
    ) -> Result<Executed, DeployError> {
        let printer = self.printer;
        let completed: Mutex<Vec<Action>> = Mutex::new(Vec::new());
        let total = plan.actions.len() as u64;
        printer.start_progress(plan.actions.iter().map(|a| a.bytes).sum(), total);
        let on_done = |action: &Action| {
            let mut completed = completed.lock().expect("completed lock");
            completed.push(action.clone());
            printer.advance(action.bytes, completed.len() as u64, total);
            printer.line(&action_line(action, false));
        };
        let after: &[&str] = if self.settings.cloudfront.is_some() {
            &["invalidation", "manifest"]
        } else {
            &["manifest"]
        };
        let retrier = Retrier::new(plan.actions.len(), self.interrupt);
        let executor = Executor {
            retrier: &retrier,
            store: self.store,
            files,
            options: execute::ExecOptions::new(self.settings),
            interrupt: self.interrupt,
            on_done: &on_done,
            after,
        };
        let executed = executor.run(plan).await;
        printer.finish_progress();
        executed.map_err(|error| {
            if !printer.is_human() {
                let mut actions = completed.into_inner().expect("completed lock");
                actions.sort_by(|a, b| (a.phase, &a.key).cmp(&(b.phase, &b.key)));
                let ending = Ending::Failed(ErrorChain(&error).to_string());
                self.report(ending, actions, plan, None, warnings)
                    .print(printer);
            }
            error.into()
        })
    }

    fn report(
        &self,
        ending: Ending,
        actions: Vec<Action>,
        plan: &Plan,
        invalidation: Option<cdn::InvalidationReport>,
        warnings: Vec<String>,
    ) -> DeployReport {
        DeployReport::new(
            ending,
            self.store.url(None),
            actions,
            plan,
            self.started,
            invalidation,
            warnings,
        )
    }
}

async fn put_manifest(store: &dyn Store, manifest: &Manifest) -> Result<(), store::Error> {
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
        .await?;
    Ok(())
}

/// Reads the previous manifest; a missing one is normal, an unreadable one a warning.
async fn fetch_manifest(
    store: &dyn Store,
) -> Result<(Option<Manifest>, Option<String>), store::Error> {
    match store.get(&manifest::manifest_key()).await {
        Ok(bytes) => match Manifest::parse(&bytes) {
            Ok(manifest) => Ok((Some(manifest), None)),
            Err(error) => Ok((None, Some(ErrorChain(&error).to_string()))),
        },
        Err(store::Error::NotFound { .. }) => Ok((None, None)),
        Err(error) => Err(error),
    }
}

/// The manifest after a successful run: what was known, updated with what was written.
fn next_manifest(plan: &Plan, files: &[LocalFile], executed: &Executed) -> Manifest {
    let mut objects: BTreeMap<Key, ObjectRecord> = plan.known.clone();
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
            ObjectRecord {
                size: file.size,
                blake3: file.blake3.clone(),
                etag,
                headers: file.resolved.headers.fingerprint(),
            },
        );
    }
    Manifest::new(objects)
}
