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
pub(crate) mod compress;
pub(crate) mod config;
pub(crate) mod edge;
mod error;
pub(crate) mod execute;
pub(crate) mod lint;
pub(crate) mod lock;
pub(crate) mod manifest;
pub(crate) mod plan;
mod previews;
mod probe;
pub(crate) mod release;
mod report;
mod rollback;
pub(crate) mod rules;
pub(crate) mod saved;
pub(crate) mod scan;
pub(crate) mod settings;
pub(crate) mod target;
pub(crate) mod verify;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::TryStreamExt;

pub(crate) use error::{DeployError, Failure, GuardError};
use execute::{Executed, Executor};
use manifest::{Manifest, ObjectRecord, ReleaseSummary};
use plan::{Action, Plan};
pub(crate) use report::SCHEMA as REPORT_SCHEMA;
pub(crate) use report::markdown;
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
use crate::store::s3::{Multipart, RequestOptions};
use crate::store::{self, Body, LIST_PAGE, ListHint, Listing, ObjectMeta, Store};

pub(crate) use edge::edge_build;
pub(crate) use previews::previews;
pub(crate) use rollback::{releases, rollback};

/// Runs `hoist deploy` with parsed flags.
pub(crate) async fn run(args: &DeployArgs, interrupt: &Interrupt) -> Result<(), DeployError> {
    let started = Instant::now();
    let result = deploy(args, interrupt).await;
    outcome(&args.target, &args.change, started, result)
}

/// Prints how a run ended: its report, or with `--output json` (or `markdown`) a report for
/// every failure too (the actions that completed, a refused dry run's whole plan, or just the
/// errors), so a script always reads one document. In GitHub Actions the Markdown report is
/// also appended to the job summary. Returns the error for the exit code and stderr.
pub(crate) fn outcome(
    target: &crate::cli::TargetArgs,
    change: &crate::cli::ChangeArgs,
    started: Instant,
    result: Result<DeployReport, Failure>,
) -> Result<(), DeployError> {
    let printer = Printer::new(target.output, target.quiet);
    let summary = step_summary(change);
    match result {
        Ok(report) => {
            report.print(&printer);
            if let Some(path) = &summary {
                append_step_summary(path, &report, &printer);
            }
            Ok(())
        }
        Err(Failure { error, report }) => {
            let report = report.map(|report| *report);
            if printer.is_human()
                && matches!(error, DeployError::Guard(_))
                && let Some(report) = report.as_ref().filter(|r| r.is_dryrun())
            {
                // A refused dry run still shows the whole plan's summary (one that failed
                // has no plan: its summary would read as an empty target).
                report.print(&printer);
            }
            if !printer.is_human() || summary.is_some() {
                let mut report = report.unwrap_or_else(|| {
                    DeployReport::empty(target.target.clone(), change.dryrun, started)
                });
                report.fail(error.status(), error.json_errors());
                if !printer.is_human() {
                    report.print(&printer);
                }
                if let Some(path) = &summary {
                    append_step_summary(path, &report, &printer);
                }
            }
            Err(error)
        }
    }
}

/// The job summary file GitHub Actions names in `GITHUB_STEP_SUMMARY`, unless
/// `--no-step-summary`.
fn step_summary(change: &crate::cli::ChangeArgs) -> Option<PathBuf> {
    if change.no_step_summary {
        return None;
    }
    std::env::var_os("GITHUB_STEP_SUMMARY")
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
}

/// Appends the Markdown report to the job summary; a summary that cannot be written is a
/// warning, never the run's failure (the deploy itself is done by then).
fn append_step_summary(path: &Path, report: &DeployReport, printer: &Printer) {
    use std::io::Write as _;
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| writeln!(file, "{}\n", report.markdown().trim_end()));
    if let Err(error) = written {
        printer.warn(&format!(
            "warning: cannot append the report to GITHUB_STEP_SUMMARY `{}`: {error}",
            escape(&path.display().to_string())
        ));
    }
}

/// Runs `hoist apply PLAN`: a deploy whose plan must be the saved one.
pub(crate) async fn apply(
    args: &crate::cli::ApplyArgs,
    interrupt: &Interrupt,
) -> Result<(), DeployError> {
    let started = Instant::now();
    let result = async {
        let mut settings = DeploySettings::resolve(&args.deploy)?;
        let reviewed = saved::SavedPlan::read(&args.plan)?;
        if reviewed.target != settings.target.url() {
            return Err(GuardError::PlanChanged {
                plan: args.plan.clone(),
                differences: vec![format!(
                    "the plan was made for {} but this run targets {}",
                    reviewed.target,
                    settings.target.url()
                )],
            }
            .into());
        }
        settings.reviewed = Some((args.plan.clone(), reviewed));
        Box::pin(deploy_with(settings, interrupt)).await
    }
    .await;
    outcome(&args.deploy.target, &args.deploy.change, started, result)
}

async fn deploy(args: &DeployArgs, interrupt: &Interrupt) -> Result<DeployReport, Failure> {
    Box::pin(deploy_with(DeploySettings::resolve(args)?, interrupt)).await
}

/// A deploy with its settings resolved (by `deploy`, or by `apply` with the reviewed plan).
async fn deploy_with(
    settings: DeploySettings,
    interrupt: &Interrupt,
) -> Result<DeployReport, Failure> {
    scan::check_root(&settings.source)?;
    let (commit, message) = release::source_commit(&settings.source, settings.message.as_deref());
    let origin = Origin {
        kind: "deploy",
        restores: None,
        commit,
        message,
    };
    if settings.dryrun {
        // A dry run takes no lock and changes nothing, so the hashes run beside the listing,
        // which the walk's keys let list its pages at once: a no-op plan costs the walk and
        // about the longer of the other two.
        return locked(
            &settings,
            interrupt,
            "deploy",
            async |deploy: &Deploy<'_>| {
                let scanned = scan_source(&settings).await?;
                let hint = listing_hint(&scanned.files);
                let hashing = async {
                    guard_source(&settings, &scanned)?;
                    hash_source(scanned).await
                };
                let (scanned, listed) = tokio::join!(hashing, list_target(deploy.store, hint));
                let gathered = gather(scanned?, listed?);
                Box::pin(deploy.plan_and_apply(gathered, &origin)).await
            },
        )
        .await;
    }
    // A source that cannot be published is refused before the target is touched (even by
    // the lock): a usage error, a guard, or a file that cannot be read. Its listing must
    // follow the lock, so a real deploy cannot overlap the two.
    let scanned = scan_source(&settings).await?;
    guard_source(&settings, &scanned)?;
    let scanned = hash_source(scanned).await?;
    locked(
        &settings,
        interrupt,
        "deploy",
        async |deploy: &Deploy<'_>| {
            let hint = listing_hint(&scanned.files);
            let gathered = gather(scanned, list_target(deploy.store, hint).await?);
            Box::pin(deploy.plan_and_apply(gathered, &origin)).await
        },
    )
    .await
}

/// Opens the target, takes its lock (a dry run only looks at it), runs `body`, and releases
/// the lock however `body` ended.
async fn locked<F>(
    settings: &DeploySettings,
    interrupt: &Interrupt,
    command: &str,
    body: F,
) -> Result<DeployReport, Failure>
where
    F: AsyncFnOnce(&Deploy<'_>) -> Result<DeployReport, Failure>,
{
    let printer = Printer::new(settings.output, settings.quiet);
    let started = Instant::now();
    if let Some(path) = settings.config_path.as_ref().filter(|p| p.is_absolute()) {
        printer.status(&format!("using {}", escape(&path.display().to_string())));
    }
    let (store, session) = open_store(settings, interrupt).await;
    let cloudfront = match (&settings.cloudfront, &session) {
        (Some(cloudfront), Some(session)) => {
            Some(session.cloudfront(cloudfront.endpoint_url.as_deref()))
        }
        _ => None,
    };
    let functions = match (&settings.function, &session) {
        (Some(function), Some(session)) => {
            Some(session.cloudfront(function.endpoint_url.as_deref()))
        }
        _ => None,
    };
    // A failure before a plan still reports the target.
    let unplanned = |error: DeployError| {
        let report = DeployReport::empty(Some(store.url(None)), settings.dryrun, started);
        Failure::with_report(error, report)
    };
    let lock = match (settings.lock, settings.dryrun) {
        (Some(options), false) => Some(
            lock::acquire(&store, command, options, &printer, interrupt)
                .await
                .map_err(|e| unplanned(e.into()))?,
        ),
        (Some(_), true) => {
            if let Some(holder) = lock::holder(store.as_ref())
                .await
                .map_err(|e| unplanned(e.into()))?
            {
                printer.warn(&format!(
                    "{} holds the lock on this target: the plan may change before it ends",
                    holder.describe()
                ));
            }
            None
        }
        (None, _) => None,
    };
    let deploy = Deploy {
        settings,
        store: store.as_ref(),
        cloudfront: cloudfront.as_ref(),
        functions: functions.as_ref(),
        printer: &printer,
        interrupt,
        started,
        lock_lost: lock.as_ref().map(lock::Lock::lost),
    };
    let result = body(&deploy).await.map_err(|failure| match failure.report {
        Some(_) => failure,
        None => unplanned(failure.error),
    });
    if let Some(lock) = lock
        && let Some(warning) = lock.release().await
    {
        printer.warn(&warning);
    }
    result
}

/// Where a release comes from, for its record.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) kind: &'static str,
    pub(crate) restores: Option<u64>,
    pub(crate) commit: Option<String>,
    pub(crate) message: Option<String>,
}

/// Opens the store a target names, and the AWS session behind it. Sends no request.
pub(crate) async fn open_store(
    settings: &DeploySettings,
    interrupt: &Interrupt,
) -> (Arc<dyn Store>, Option<Session>) {
    let origin = settings.preview.as_ref().map(|p| &p.origin);
    open_store_at(settings, &settings.target, origin, interrupt).await
}

/// A store for `target` (the run's, or a preview's or its production's), with `origin` as
/// the site [`Store::copy_from_origin`] copies from.
pub(crate) async fn open_store_at(
    settings: &DeploySettings,
    target: &Target,
    origin: Option<&Target>,
    interrupt: &Interrupt,
) -> (Arc<dyn Store>, Option<Session>) {
    match target {
        Target::Local { path } => {
            let origin = match origin {
                Some(Target::Local { path }) => Some(path.clone()),
                _ => None,
            };
            (
                Arc::new(LocalStore::new(path.clone()).with_origin(origin)),
                None,
            )
        }
        Target::S3 { bucket, prefix } => {
            let session = Session::load(&settings.aws).await;
            let options = StoreOptions {
                multipart: Multipart {
                    threshold: settings.multipart_threshold,
                    chunk_size: settings.multipart_chunksize,
                    ..Multipart::default()
                },
                concurrency: settings.concurrency.get(),
                // The manifest records the ETag a listing shows.
                listed_etags: true,
                page_size: None,
                requests: RequestOptions::default(),
            };
            let origin = match origin {
                Some(Target::S3 { prefix, .. }) => Some(prefix.clone()),
                _ => None,
            };
            let store = session
                .s3_store(bucket, prefix.clone(), options, interrupt)
                .with_origin(origin);
            (Arc::new(store), Some(session))
        }
    }
}

/// What the source and the target hold before anything is decided.
pub(crate) struct Gathered {
    files: Vec<LocalFile>,
    objects: Vec<ObjectMeta>,
    manifest: Option<Manifest>,
    warnings: Vec<String>,
    /// What the edge compilers produced (status lines, not warnings).
    notes: Vec<String>,
    /// The CloudFront Functions to serve the site with, when hoist manages them.
    functions: Vec<edge::manage::ManagedFunction>,
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

/// The scanned source, and what the scan found to warn about.
pub(crate) struct Scanned {
    /// Without their blake3 until [`hash_source`].
    files: Vec<LocalFile>,
    warnings: Vec<String>,
    /// Pairs of files whose names are equal after NFC normalization.
    twins: Vec<(Key, Key)>,
    /// What the edge compilers produced, for the plan.
    notes: Vec<String>,
    /// The CloudFront Functions to serve the build with, when hoist manages them.
    functions: Vec<edge::manage::ManagedFunction>,
    /// With `--strict`, what the lint found (the deploy is then refused); else empty, the
    /// findings being warnings.
    lint: Vec<lint::Finding>,
}

/// Walks the source on a blocking thread: every file's key, size, mtime and rule, enough for
/// the source guards; [`hash_source`] then adds each file's blake3.
async fn scan_source(settings: &DeploySettings) -> Result<Scanned, DeployError> {
    let source = settings.source.clone();
    let rules = Arc::clone(&settings.rules);
    let follow = settings.follow_symlinks;
    let scanned = tokio::task::spawn_blocking(move || scan::walk_source(&source, &rules, follow))
        .await
        .expect("scan task does not panic");
    let ScanReport {
        mut files,
        reserved,
    } = scanned?;
    let (edge_rules, edge_notes) = settings
        .edge
        .load(&settings.source)
        .map_err(settings::SettingsError::from)?;
    let notes = compile_edge(
        &edge_rules,
        &mut files,
        &settings.rules,
        settings.function.as_ref().map(|f| f.name.as_str()),
    )
    .map_err(settings::SettingsError::from)?;
    let unreachable = plan::unreachable_keys(&files);
    let mut warnings = unreachable.warnings();
    warnings.extend(edge_notes);
    warnings.extend(notes.warnings);
    warnings.extend(compress::notes(&files, &settings.rules));
    let findings = lint::lint(&files, &settings.rules, &settings.lint_allow);
    if !settings.lint_strict {
        warnings.extend(findings.iter().map(lint::Finding::line));
    }
    for path in reserved {
        warnings.push(format!(
            "skipping `{}`: `{}/` is reserved for hoist's manifest",
            escape(&path.display().to_string()),
            scan::RESERVED_DIR
        ));
    }
    Ok(Scanned {
        files,
        warnings,
        notes: notes.summary,
        functions: notes.functions,
        twins: unreachable.twins,
        lint: if settings.lint_strict {
            findings
        } else {
            Vec::new()
        },
    })
}

/// What [`compile_edge`] says: what it produced, and what never applies or failed.
struct EdgeNotes {
    summary: Vec<String>,
    warnings: Vec<String>,
    /// With `cloudfront.function.manage`, the functions to publish.
    functions: Vec<edge::manage::ManagedFunction>,
}

/// The edge rules' two compilers, run on every deploy: the website endpoint's redirect
/// objects join the files; the CloudFront Function is compiled to check it fits and to say
/// what it would hold (`hoist edge build` writes it). With `managed` (the function's name),
/// the functions are the deploy's to publish, and one that cannot be built, or needs a
/// KeyValueStore, is an error before anything happens.
fn compile_edge(
    rules: &edge::EdgeRules,
    files: &mut Vec<LocalFile>,
    file_rules: &rules::Rules,
    managed: Option<&str>,
) -> Result<EdgeNotes, edge::EdgeError> {
    let website = edge::website::compile(rules, files);
    let mut notes = EdgeNotes {
        summary: website.summary,
        warnings: Vec::new(),
        functions: Vec::new(),
    };
    // The function is compiled for the build alone: redirect objects are not pages.
    // Without rules or a function to publish there is nothing to compile.
    if managed.is_some() || !rules.is_empty() {
        match (edge::function::compile(rules, files, file_rules), managed) {
            (Ok(compiled), managed) => {
                if let Some(name) = managed {
                    if let Some(entries) = &compiled.kvs {
                        return Err(managed_error(format!(
                            "manage: true cannot publish a function whose tables need a \
                             KeyValueStore ({} entries) yet; write it with `hoist edge build` \
                             and import kvs.json, or set manage: false",
                            entries.len()
                        )));
                    }
                    notes.functions = edge::manage::functions(name, &compiled);
                }
                notes.summary.extend(
                    compiled
                        .summary
                        .into_iter()
                        .map(|line| format!("CloudFront Function (hoist edge build): {line}")),
                );
                notes.warnings.extend(compiled.notes);
            }
            (Err(error), Some(_)) => return Err(managed_error(error.to_string())),
            (Err(error), None) => notes.warnings.push(error.to_string()),
        }
    }
    if !website.objects.is_empty() {
        files.extend(website.objects);
        files.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    }
    Ok(notes)
}

fn managed_error(message: String) -> edge::EdgeError {
    edge::EdgeError {
        origin: "deploy.yaml cloudfront.function".into(),
        message,
    }
}

/// Hashes every walked file (blake3, on all cores).
async fn hash_source(mut scanned: Scanned) -> Result<Scanned, DeployError> {
    let mut files = std::mem::take(&mut scanned.files);
    scanned.files =
        tokio::task::spawn_blocking(move || scan::hash_files(&mut files).map(|()| files))
            .await
            .expect("hash task does not panic")?;
    Ok(scanned)
}

/// The scanned source and the listed target, as the plan takes them.
fn gather(scanned: Scanned, listed: Listed) -> Gathered {
    let (objects, manifest, listed_warnings) = listed;
    let mut warnings = scanned.warnings;
    warnings.extend(listed_warnings);
    Gathered {
        files: scanned.files,
        objects,
        manifest,
        warnings,
        notes: scanned.notes,
        functions: scanned.functions,
    }
}

/// What [`list_target`] read: the objects, the manifest, and warnings about the listing.
pub(crate) type Listed = (Vec<ObjectMeta>, Option<Manifest>, Vec<String>);

/// Where the target's listing pages would end if it held exactly the build's keys.
fn listing_hint(files: &[LocalFile]) -> ListHint {
    ListHint::from_sorted(files.iter().map(|file| file.key.as_str()), LIST_PAGE)
}

/// The listing and the manifest, read at once; objects hoist cannot name are warned about.
/// The objects come back in key order, which [`plan::classify`] relies on, even from a store
/// that lists in another.
pub(crate) async fn list_target(store: &dyn Store, hint: ListHint) -> Result<Listed, DeployError> {
    // Each entry is moved into place as it comes: the listing is never held twice.
    let listing = async {
        let mut objects = Vec::new();
        let mut unnamed = Vec::new();
        let mut entries = store.list(hint);
        while let Some(entry) = entries.try_next().await? {
            match entry {
                Listing::Object(meta) => objects.push(meta),
                Listing::Unnamed { name, reason } => {
                    unnamed.push(format!("leaving `{}` alone: {reason}", escape(&name)));
                }
            }
        }
        Ok::<_, store::Error>((objects, unnamed))
    };
    let (listing, manifest) = tokio::join!(listing, fetch_manifest(store));
    let (manifest, warning) = manifest?;
    let (mut objects, unnamed) = listing?;
    let warnings: Vec<String> = warning.into_iter().chain(unnamed).collect();
    if !objects.is_sorted_by(|a: &ObjectMeta, b: &ObjectMeta| a.key <= b.key) {
        // Stable: a key listed twice keeps its entries' order.
        objects.sort_by(|a, b| a.key.cmp(&b.key));
    }
    Ok((objects, manifest, warnings))
}

/// The guards on the source, before the target is touched: an empty source (a failed build)
/// and two names equal after Unicode NFC normalization are refused unless `--force`.
fn guard_source(settings: &DeploySettings, scanned: &Scanned) -> Result<(), GuardError> {
    // Not overridden by --force: strict lint is a choice of the project, not a safety net.
    if !scanned.lint.is_empty() {
        return Err(GuardError::Lint {
            findings: scanned.lint.iter().map(lint::Finding::line).collect(),
        });
    }
    if settings.force {
        return Ok(());
    }
    if scanned.files.is_empty() {
        return Err(GuardError::EmptySource {
            dir: settings.source.clone(),
            target: settings.target.url(),
        });
    }
    if !scanned.twins.is_empty() {
        let name = |key: &Key| escape(key.as_str()).into_owned();
        return Err(GuardError::NormalizationTwins {
            twins: scanned
                .twins
                .iter()
                .map(|(a, b)| (name(a), name(b)))
                .collect(),
        });
    }
    Ok(())
}

/// The guard on the plan, before any mutating request: more deletes than `max_deletes` (a
/// wrong `--source` or `--target`) are refused unless `--force`. Kept stale keys do not count.
fn guard(settings: &DeploySettings, plan: &Plan, store: &dyn Store) -> Result<(), GuardError> {
    if !settings.force && plan.delete_count() > settings.max_deletes {
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
    /// The CloudFront client for `cloudfront.function.manage`.
    functions: Option<&'a CloudFront>,
    printer: &'a Printer,
    interrupt: &'a Interrupt,
    started: Instant,
    /// Set when another run took this run's lock over.
    lock_lost: Option<&'a std::sync::atomic::AtomicBool>,
}

impl Deploy<'_> {
    /// From what was gathered to the report: the plan (with the lifecycle's decisions), the
    /// guards, then the dry run or the publish. Shared by `deploy` and `rollback`.
    async fn plan_and_apply(
        &self,
        mut gathered: Gathered,
        origin: &Origin,
    ) -> Result<DeployReport, Failure> {
        let settings = self.settings;
        self.mark_origin_copies(&mut gathered.files).await?;
        let (mut plan, lifecycle_warnings) = probe::plan(
            settings,
            self.store,
            &gathered.files,
            &gathered.objects,
            gathered.manifest.as_ref(),
        )
        .await?;
        gathered.warnings.extend(lifecycle_warnings);
        decide_functions(&mut plan, &gathered);
        // Previews are nested sites by design: not worth a warning on every production deploy.
        let previews = settings
            .preview
            .is_none()
            .then_some(settings.previews.prefix.as_str());
        for prefix in plan
            .nested
            .iter()
            .filter(|p| !previews.is_some_and(|previews| p.starts_with(previews)))
        {
            gathered.warnings.push(format!(
                "leaving `{}` alone: another hoist site lives there",
                escape(prefix)
            ));
        }
        let (stale, stale_warning) = stale_uploads(settings, self.store, &plan).await;
        plan.stale_uploads = stale;
        gathered.warnings.extend(stale_warning);
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
            self.printer.warn(warning);
        }
        for note in &gathered.notes {
            self.printer.status(note);
        }
        let edge = gathered.notes.clone();
        self.check_saved(&gathered, &plan)?;
        let changes = changes_to_invalidate(self, &plan, gathered.manifest.as_ref());
        if settings.dryrun {
            // A reviewer sees the whole plan, then the guard's verdict.
            let mut report = self
                .dry_run(&plan, &changes, gathered.warnings.clone())
                .await?;
            report.edge = edge;
            return match guard(settings, &plan, self.store) {
                Ok(()) => Ok(report),
                Err(refused) => Err(Failure::with_report(refused.into(), report)),
            };
        }
        guard(settings, &plan, self.store)?;
        let mut report = self.publish(&plan, &changes, gathered, origin).await?;
        report.edge = edge;
        Ok(report)
    }

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
        for kept in &plan.kept {
            self.printer.line(&report::kept_line(kept, true));
        }
        if plan.publish_functions
            && let Some(function) = &self.settings.function
        {
            for managed in &plan.functions {
                self.printer.line(&format!(
                    "(dryrun) publish CloudFront Function {} ({}, {} bytes) on {} before the \
                     HTML",
                    managed.name,
                    managed.event.as_str(),
                    managed.code.len(),
                    function.distribution_id
                ));
            }
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
        origin: &Origin,
    ) -> Result<DeployReport, Failure> {
        let Gathered {
            files,
            manifest,
            warnings,
            objects,
            ..
        } = gathered;
        // `manifest` stays what the plan was made from; `intent`, when written, is what the
        // target stores until the final manifest (a copy only a run that changes something
        // with CloudFront on makes).
        let owed = manifest
            .as_ref()
            .map_or(&[][..], |m| m.pending_invalidation.as_slice());
        let mut intent = None;
        if self.settings.cloudfront.is_some() && changes.keys.as_slice() != owed {
            let mut record = manifest
                .clone()
                .unwrap_or_else(|| Manifest::new(BTreeMap::new()));
            record.pending_invalidation.clone_from(&changes.keys);
            put_manifest(self.store, &record).await?;
            intent = Some(record);
        }
        let remote_manifest = intent.as_ref().or(manifest.as_ref());
        let executed = self.execute(plan, &files, warnings.clone()).await?;
        let mut warnings = warnings;
        self.show_executed(&executed, &mut warnings);
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
        for kept in &plan.kept {
            self.printer.line(&report::kept_line(kept, false));
        }
        // Nothing is owed any more, unless invalidation is off for this run
        // (`--no-invalidate`), which leaves what an earlier run owed.
        let mut next = next_manifest(plan, &files, manifest.as_ref(), &executed);
        next.functions = plan
            .functions
            .iter()
            .map(|f| (f.name.clone(), f.digest()))
            .collect();
        if self.settings.cloudfront.is_none()
            && let Some(old) = remote_manifest
        {
            next.pending_invalidation
                .clone_from(&old.pending_invalidation);
        }
        let summary = self
            .finish(
                manifest.as_ref(),
                remote_manifest,
                &objects,
                plan,
                &files,
                next,
                origin,
                &mut warnings,
            )
            .await?;
        let mut report = self.report(
            Ending::Deployed,
            plan.actions.clone(),
            plan,
            invalidation,
            warnings,
        );
        report.release = summary;
        report.verified = executed.verified;
        Ok(report)
    }

    /// A preview: each immutable file whose bytes the production site's manifest has under
    /// the same key is copied from there server-side instead of uploaded (one GET of that
    /// manifest; the copy is pinned to the ETag it records).
    async fn mark_origin_copies(&self, files: &mut [LocalFile]) -> Result<(), DeployError> {
        let Some(preview) = &self.settings.preview else {
            return Ok(());
        };
        let (origin, _session) =
            open_store_at(self.settings, &preview.origin, None, self.interrupt).await;
        let (manifest, warning) = fetch_manifest(origin.as_ref()).await?;
        if let Some(warning) = warning {
            self.printer.warn(&warning);
        }
        let Some(manifest) = manifest else {
            return Ok(());
        };
        for file in files
            .iter_mut()
            .filter(|f| f.resolved.immutable && f.copy_from.is_none())
        {
            if let Some(entry) = manifest.objects.get(&file.key)
                && entry.blake3 == file.blake3
                && (file.resolved.encode.is_some() || entry.size == file.size)
            {
                file.from_origin = Some(Box::new(scan::OriginCopy {
                    key: file.key.clone(),
                    etag: entry.etag.as_ref().map(ToString::to_string),
                    size: entry.size,
                }));
            }
        }
        Ok(())
    }

    /// `--plan-out`: saves the plan with what it was computed against. `apply`: refuses,
    /// before any change, unless this run computed exactly the reviewed plan from exactly
    /// its inputs (see `saved.rs`).
    fn check_saved(&self, gathered: &Gathered, plan: &Plan) -> Result<(), DeployError> {
        let settings = self.settings;
        if settings.plan_out.is_none() && settings.reviewed.is_none() {
            return Ok(());
        }
        let now = saved::SavedPlan::capture(
            settings.target.url(),
            &gathered.files,
            &gathered.objects,
            plan,
        );
        if let Some((path, reviewed)) = &settings.reviewed {
            let differences = reviewed.differences(&now);
            if !differences.is_empty() {
                return Err(GuardError::PlanChanged {
                    plan: path.clone(),
                    differences,
                }
                .into());
            }
        }
        if let Some(path) = &settings.plan_out {
            now.write(path)?;
            self.printer.status(&format!(
                "saved the plan to {} (apply it with `hoist apply {}`)",
                escape(&path.display().to_string()),
                escape(&path.display().to_string())
            ));
        }
        Ok(())
    }

    /// What the executor did besides the plan's actions: aborted uploads, warnings, what
    /// `verify:` checked.
    fn show_executed(&self, executed: &Executed, warnings: &mut Vec<String>) {
        for line in &executed.functions {
            self.printer.line(line);
        }
        for upload in &executed.aborted {
            self.printer.line(&report::abort_line(upload, false));
        }
        for warning in &executed.warnings {
            self.printer.warn(warning);
        }
        warnings.extend(executed.warnings.iter().cloned());
        if let (Some(verified), Some(settings)) = (&executed.verified, &self.settings.verify) {
            self.printer.status(&format!(
                "verified {} page(s) and {} asset(s) at {}",
                verified.pages, verified.assets, settings.base_url
            ));
        }
    }

    /// After the site is published: the release record, the manifest (skipped when it would
    /// say the same), then pruning what no retained release needs.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        previous: Option<&Manifest>,
        stored: Option<&Manifest>,
        objects: &[ObjectMeta],
        plan: &Plan,
        files: &[LocalFile],
        mut next: Manifest,
        origin: &Origin,
        warnings: &mut Vec<String>,
    ) -> Result<Option<ReleaseSummary>, DeployError> {
        let ledger = release::Ledger::new(
            previous,
            objects,
            self.settings.lifecycle,
            &self.settings.rules,
            plan.creates_release,
        );
        let summary = self
            .write_release(&ledger, plan, files, &next, origin)
            .await?;
        let state = ledger.next_state(plan, summary.clone());
        next.stale = state.stale;
        next.releases = state.releases;
        next.live = state.live;
        next.blobs = state.blobs;
        if !stored.is_some_and(|old| old.same_content(&next)) {
            put_manifest(self.store, &next).await?;
        }
        if !state.pruned.is_empty() {
            for (key, error) in self.store.delete_batch(&state.pruned).await {
                let warning = format!(
                    "could not prune `{}` (the next deploy tries again): {}",
                    escape(key.as_str()),
                    ErrorChain(&error)
                );
                self.printer.warn(&warning);
                warnings.push(warning);
            }
        }
        Ok(summary)
    }

    /// Writes the record of the release this run published, when it changed the site and
    /// releases are on. Its objects are the manifest's, with each one's full headers.
    async fn write_release(
        &self,
        ledger: &release::Ledger<'_>,
        plan: &Plan,
        files: &[LocalFile],
        next: &Manifest,
        origin: &Origin,
    ) -> Result<Option<ReleaseSummary>, DeployError> {
        if !plan.creates_release || !ledger.releases_on() {
            return Ok(None);
        }
        let mut objects = BTreeMap::new();
        for file in files {
            let Some(entry) = next.objects.get(&file.key) else {
                continue;
            };
            objects.insert(
                file.key.clone(),
                release::ReleasedObject {
                    // The object's size (a compressed object's is not its file's).
                    size: entry.size,
                    blake3: file.blake3,
                    headers: (*file.resolved.headers).clone(),
                    immutable: file.resolved.immutable,
                    encode: file.resolved.encode,
                },
            );
        }
        let summary = ReleaseSummary {
            id: ledger.next_id(),
            created: crate::clock::Timestamp::now(),
            commit: origin.commit.clone(),
            message: origin.message.clone(),
            kind: origin.kind.to_string(),
            restores: origin.restores,
            files: objects.len(),
            bytes: objects.values().map(|o| o.size).sum(),
        };
        let record = release::Release {
            version: release::RECORD_VERSION,
            summary: summary.clone(),
            objects,
            functions: plan.functions.clone(),
        };
        put_state(
            self.store,
            &release::record_key(summary.id),
            record.to_bytes(),
        )
        .await?;
        Ok(Some(summary))
    }

    /// Runs the executor with a progress bar and one line per completed action. On failure
    /// with `--output json`, prints the report of what completed before returning the error.
    async fn execute(
        &self,
        plan: &Plan,
        files: &[LocalFile],
        warnings: Vec<String>,
    ) -> Result<Executed, Failure> {
        let printer = self.printer;
        let completed: Mutex<Vec<Action>> = Mutex::new(Vec::new());
        let total = plan.actions.len() as u64;
        printer.start_progress(plan.actions.iter().map(|a| a.bytes).sum(), total);
        let on_done = |action: &Action| {
            let mut completed = completed.lock().expect("completed lock");
            completed.push(action.clone());
            printer.advance_in(
                action.bytes,
                completed.len() as u64,
                total,
                action.phase.doing(),
            );
            printer.line(&action_line(action, false));
        };
        let after: &[&str] = if self.settings.cloudfront.is_some() {
            &["invalidation", "manifest"]
        } else {
            &["manifest"]
        };
        let retrier = Retrier::new(plan.actions.len(), self.interrupt);
        // Makes the verified pages' URLs this run's own, past every cache.
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let executor = Executor {
            retrier: &retrier,
            store: self.store,
            files,
            options: execute::ExecOptions::new(self.settings),
            interrupt: self.interrupt,
            on_done: &on_done,
            after,
            lock_lost: self.lock_lost,
            verify: self
                .settings
                .verify
                .as_ref()
                .map(|settings| (settings, nonce.as_str())),
            functions: match (self.functions, &self.settings.function) {
                (Some(client), Some(function)) => Some((client, function.distribution_id.as_str())),
                _ => None,
            },
        };
        let executed = executor.run(plan).await;
        printer.finish_progress();
        executed.map_err(|error| {
            // The report of what completed, for `--output json`.
            let mut actions = completed.into_inner().expect("completed lock");
            actions.sort_by(|a, b| (a.phase, &a.key).cmp(&(b.phase, &b.key)));
            let report = self.report(Ending::Failed, actions, plan, None, warnings);
            Failure::with_report(error.into(), report)
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
        let mut report = DeployReport::new(
            ending,
            self.store.url(None),
            actions,
            plan,
            self.started,
            invalidation,
            warnings,
        );
        report.preview = self
            .settings
            .preview
            .as_ref()
            .map(|p| report::PreviewReport {
                name: p.name.clone(),
                url: p.url.clone(),
            });
        report
    }
}

async fn put_manifest(store: &dyn Store, manifest: &Manifest) -> Result<(), store::Error> {
    put_state(store, &manifest::manifest_key(), manifest.to_bytes()).await
}

/// Writes one of hoist's own JSON objects under `.hoist/`: never cached.
async fn put_state(store: &dyn Store, key: &Key, bytes: Vec<u8>) -> Result<(), store::Error> {
    let headers = crate::headers::Headers {
        content_type: Some("application/json".into()),
        cache_control: Some("no-store".into()),
        ..Default::default()
    };
    store.put(key, Body::Bytes(bytes.into()), &headers).await?;
    Ok(())
}

/// Reads the previous manifest; a missing one is normal, an unreadable one a warning.
pub(crate) async fn fetch_manifest(
    store: &dyn Store,
) -> Result<(Option<Manifest>, Option<String>), store::Error> {
    match store::read(store, &manifest::manifest_key(), |opened| {
        Manifest::read(opened.body)
    })
    .await
    {
        Ok((Ok(manifest), _)) => Ok((Some(manifest), None)),
        Ok((Err(error), _)) => Ok((None, Some(ErrorChain(&error).to_string()))),
        Err(store::Error::NotFound { .. }) => Ok((None, None)),
        Err(error) => Err(error),
    }
}

/// With `cloudfront.function.manage`: the functions the plan serves the site with, and
/// whether they must be published (the manifest records another code for a name, or none).
/// Publishing makes the run a release, so a rollback can restore the functions too.
fn decide_functions(plan: &mut Plan, gathered: &Gathered) {
    plan.functions.clone_from(&gathered.functions);
    if plan.functions.is_empty() {
        return;
    }
    let published = gathered.manifest.as_ref().map(|m| &m.functions);
    plan.publish_functions = plan
        .functions
        .iter()
        .any(|f| published.and_then(|p| p.get(&f.name)) != Some(&f.digest()));
    if plan.publish_functions {
        plan.creates_release = true;
    }
}

/// The manifest after a successful run: what was known, updated with what was written.
/// `manifest` is the one the plan was made from. Built file by file in key order, in bulk
/// ([`manifest::Dense`]): at 100,000 files a map collected at once was 24 MB at its peak.
fn next_manifest(
    plan: &Plan,
    files: &[LocalFile],
    manifest: Option<&Manifest>,
    executed: &Executed,
) -> Manifest {
    let mut written: Vec<usize> = plan.actions.iter().filter_map(|a| a.file).collect();
    written.sort_unstable();
    let mut known = plan.known_entries(files, manifest).peekable();
    let mut objects = manifest::Dense::new();
    for (index, file) in files.iter().enumerate() {
        let known = known
            .next_if(|(at, _)| *at == index)
            .map(|(_, entry)| entry);
        if written.binary_search(&index).is_err() {
            if let Some(entry) = known {
                objects.insert(file.key.clone(), entry.clone());
            }
            continue;
        }
        let etag = executed
            .etags
            .get(&file.key)
            .and_then(|etag| etag.as_deref())
            .map(crate::digest::Etag::from)
            .or_else(|| known.and_then(|e| e.etag.clone()));
        // A compressed object's size is what was stored, not its file's.
        let size = match file.resolved.encode {
            None => file.size,
            Some(_) => executed
                .sizes
                .get(&file.key)
                .copied()
                .or_else(|| file.from_origin.as_ref().map(|origin| origin.size))
                .or_else(|| known.map(|e| e.size))
                .unwrap_or(file.size),
        };
        objects.insert(
            file.key.clone(),
            ObjectRecord {
                size,
                blake3: file.blake3,
                etag,
                headers: file.resolved.headers.fingerprint(),
            },
        );
    }
    Manifest::new(objects.finish())
}
