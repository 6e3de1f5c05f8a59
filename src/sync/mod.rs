//! `hoist sync SRC DST`: `aws s3 sync` (aws-cli v1.46) semantics, as specified in
//! `docs/sync-semantics.md`.
//!
//! The pipeline: [`paths`] reads the two arguments as aws-cli does; each side is listed
//! ([`local::walk`] or [`NamedStore::list_names`]), filtered by [`mod@filters`] and sorted; [`compare`]
//! merges the two into steps; [`transfer`] prints them (`--dryrun`) or runs them: every transfer
//! first, concurrently and bounded, then, only if all of them succeeded, the deletes. Output
//! lines, warnings and exit codes are aws-cli's.
//!
//! # Where hoist differs from aws-cli on purpose
//!
//! - **Deletes run last, and only after every transfer succeeded.** aws-cli interleaves deletes
//!   with transfers in key order and deletes even when an upload failed; hoist reaches the same
//!   final state on success, and deletes nothing after a failure or an interrupt (it says how many
//!   deletes it skipped).
//! - **Downloads never write outside the destination.** A key that does not map to exactly one
//!   path below it is skipped with a warning (exit 2): `..` segments (with aws-cli's own warning,
//!   `Skipping file ../x. File references a parent directory.`), but also keys aws-cli writes to
//!   a *normalized* path and then re-downloads on every run: a leading `/`, an empty segment
//!   (`a//b`), `.` or `..` segments that stay inside, a backslash, a drive letter (`C:`).
//!   Nor is a download written through a symlinked directory inside the destination.
//! - **Folder markers**: zero-byte `dir/` keys are ignored on both sides, as in aws-cli; a `dir/`
//!   key holding data is skipped with a warning on download (aws-cli fails the transfer, exit 1).
//! - **Symlink loops** are detected (a directory already being walked is skipped with a warning)
//!   instead of being followed until the kernel returns ELOOP.
//! - **Non-UTF-8 file names** are skipped with a warning (exit 2); aws-cli lists them and then
//!   fails the upload (exit 1).
//! - **Local deletes never follow a symlinked directory** out of the destination tree (aws-cli
//!   deletes the file at the link's target). Such files are left alone with a warning.
//! - **A directory that could not be listed is not treated as empty**: its counterpart at the
//!   destination is not deleted (nor is anything when the source root is a symlink under
//!   `--no-follow-symlinks`, where aws-cli would delete the whole destination).
//! - **Listings are sorted** before the merge; aws-cli trusts the server's order, and an unsorted
//!   listing (some S3-compatible stores) makes it upload and delete wrongly.
//! - `--expires` and `--metadata` are validated before the first request (aws-cli fails each
//!   file). `--expires` accepts RFC 3339, an HTTP date or epoch seconds.
//! - `--source-region` builds the source client with `--endpoint-url` too (aws-cli sends the
//!   source client to AWS even when an endpoint is given).
//! - `--dryrun` changes nothing: a missing download directory is not created (aws-cli creates
//!   it even in a dry run).
//! - Output: no `Completed ... file(s) remaining` lines on stdout; progress is a bar on stderr,
//!   shown only when stderr is a terminal and `CI` is unset. Control characters in names are
//!   shown escaped. An interrupt exits 130 (aws-cli: 1, `cancelled: ctrl-c received`).
//! - Prefixes with empty, `.` or `..` segments (`s3://b/p//`, `s3://b//x`) are refused.
//! - **Downloads are verified** against hoist's blake3 metadata, a single-part MD5 ETag or a
//!   multipart ETag (aws-cli checks none of these when the object has no stored checksum), and
//!   a body slower than 1 KiB/s over 10 s is cut off and resumed.
//! - **Retries**: 10 attempts a request unless the user set `AWS_MAX_ATTEMPTS` or
//!   `max_attempts`, then up to 3 whole-transfer retries within a run-wide budget.
//! - After a successful upload sync that sent a file in parts, unfinished multipart uploads older
//!   than a day for the names it wrote are aborted, with a note on stderr (one
//!   ListMultipartUploads request aws-cli does not send).
//! - The first interrupt cancels transfers still running 10 s later.
//! - **S3→S3 copies** are one CopyObject up to 5 GiB (aws-cli: in parts from its 8 MiB
//!   threshold), in parts above it or above the profile's `multipart_threshold` when it sets one;
//!   a copy in parts keeps the source's headers and metadata (aws-cli v1 drops them).
//! - `--case-conflict` counts every name of the run and `error` stops before any download
//!   (aws-cli's detection depends on which downloads already finished).
//! - `--checksum-algorithm XXHASH*` is refused before any request (aws-cli fails each upload
//!   unless its optional CRT package is installed).
//! - `--grants` errors are printed as hoist's `error:` (aws-cli: `fatal error:`), exit 1 both.

pub(crate) mod compare;
pub(crate) mod filters;
pub(crate) mod local;
pub(crate) mod mime;
pub(crate) mod paths;
pub(crate) mod profile;
pub(crate) mod transfer;

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;

use futures::TryStreamExt;

use crate::aws::{AwsOptions, EnvError, Session, StoreOptions, Timeouts};
use crate::cli::{FilterArg, SyncArgs};
use crate::error::ExitCode;
use crate::headers::Headers;
use crate::interrupt::Interrupt;
use crate::key::Prefix;
use crate::store::s3::requests::{ChecksumKind, CustomerKey, Grants, RequestOptions};
use crate::store::s3::{MAX_SINGLE_COPY, Multipart};
use crate::store::{LIST_PAGE, ListHint, NamedStore};

use compare::{Direction, Listed, Strategy, micros};
use filters::{FilterKind, Filters};
use paths::Location;
pub(crate) use transfer::Outcome;

/// Everything a sync needs, validated before the first request.
#[derive(Debug)]
pub(crate) struct SyncSettings {
    pub(crate) source: Location,
    pub(crate) destination: Location,
    pub(crate) direction: Direction,
    pub(crate) cwd: PathBuf,
    pub(crate) filters: Filters,
    pub(crate) strategy: Strategy,
    pub(crate) delete: bool,
    pub(crate) dryrun: bool,
    pub(crate) follow_symlinks: bool,
    /// Headers for uploads (Content-Type is added per file) and copies.
    pub(crate) headers: Headers,
    pub(crate) guess_mime_type: bool,
    pub(crate) metadata_directive: Option<String>,
    pub(crate) concurrency: NonZeroUsize,
    /// `--page-size`: MaxKeys of each ListObjectsV2.
    pub(crate) page_size: Option<i32>,
    /// `--force-glacier-transfer`: transfer archived objects anyway (restored ones succeed).
    pub(crate) force_glacier_transfer: bool,
    /// `--ignore-glacier-warnings`: skip archived objects silently (no warning, no exit 2).
    pub(crate) ignore_glacier_warnings: bool,
    pub(crate) transfer: profile::TransferConfig,
    /// Customer keys, grants and checksums of the source store's requests (downloads: `--sse-c`
    /// and `--checksum-mode`; copies: `--sse-c-copy-source`).
    pub(crate) source_requests: RequestOptions,
    /// The same for the destination store (uploads and copies: `--sse-c`, `--grants`,
    /// `--checksum-algorithm`; copies also `--sse-c-copy-source`).
    pub(crate) destination_requests: RequestOptions,
    /// `--case-conflict`, for downloads.
    pub(crate) case_conflict: CaseConflict,
    pub(crate) aws: AwsOptions,
    pub(crate) source_aws: AwsOptions,
    pub(crate) verbosity: transfer::Verbosity,
    pub(crate) progress: bool,
}

/// Why a sync did not start. Each variant's text is aws-cli's where aws-cli has one.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SyncError {
    /// Arguments aws-cli rejects after parsing, with its exit code 255.
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read the working directory")]
    WorkingDirectory(#[source] std::io::Error),
    #[error("cannot read --exclude-from `{}`", path.display())]
    ExcludeFrom {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A flag value hoist validates before the first request (`--expires`, `--metadata`).
    #[error("{0}")]
    Value(String),
    /// A flag value aws-cli rejects with a `fatal error` and exit 1 (`--grants`).
    #[error("{0}")]
    Fatal(String),
    #[error(transparent)]
    Env(#[from] EnvError),
}

impl SyncError {
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            SyncError::Invalid(_) => ExitCode::AwsCliUsage,
            SyncError::Fatal(_) => ExitCode::Failure,
            _ => ExitCode::Usage,
        }
    }
}

impl SyncSettings {
    pub(crate) fn resolve(args: &SyncArgs) -> Result<SyncSettings, SyncError> {
        let cwd = std::env::current_dir().map_err(SyncError::WorkingDirectory)?;
        // aws-cli loads `fileb://` keys while it parses, before it looks at the paths.
        let sse_c_key = customer_key("--sse-c-key", args.sse_c.as_deref(), &args.sse_c_key)?;
        let copy_source_key = customer_key(
            "--sse-c-copy-source-key",
            args.sse_c_copy_source.as_deref(),
            &args.sse_c_copy_source_key,
        )?;
        let (source, destination, direction) = locations(args, &cwd)?;
        let (source_requests, destination_requests) =
            requests(args, direction, sse_c_key, copy_source_key)?;
        let filters = filters(args, &source, &destination)?;
        crate::aws::check_profile(args.profile.as_deref())
            .map_err(|e| SyncError::Invalid(e.to_string()))?;
        let profile_name = crate::aws::profile::profile_name(args.profile.as_deref());
        let files = crate::aws::profile::SharedFiles::load();
        let transfer = profile::load(&files, &profile_name).map_err(SyncError::Invalid)?;
        let aws = AwsOptions {
            region: args.region.clone(),
            profile: args.profile.clone(),
            endpoint_url: args.endpoint_url.clone(),
            path_style: None,
            timeouts: Timeouts::from_env()?,
            request_payer: args.request_payer.is_some(),
        };
        let source_aws = AwsOptions {
            region: args.source_region.clone().or(args.region.clone()),
            ..aws.clone()
        };
        let verbosity = if args.quiet {
            transfer::Verbosity::Quiet
        } else if args.only_show_errors {
            transfer::Verbosity::OnlyErrors
        } else {
            transfer::Verbosity::Normal
        };
        // `--concurrency`, then the profile's `max_concurrent_requests`, then hoist's default,
        // chosen for a network with latency (aws-cli's is 10; see crate::DEFAULT_CONCURRENCY).
        let concurrency = args
            .concurrency
            .or(transfer.max_concurrent_requests.and_then(NonZeroUsize::new))
            .unwrap_or(crate::DEFAULT_CONCURRENCY);
        Ok(SyncSettings {
            direction,
            cwd,
            filters,
            strategy: Strategy::from_flags(args.size_only, args.exact_timestamps),
            delete: args.delete,
            dryrun: args.dryrun,
            follow_symlinks: !args.no_follow_symlinks,
            headers: headers(args)?,
            guess_mime_type: !args.no_guess_mime_type,
            metadata_directive: args.metadata_directive.clone(),
            concurrency,
            page_size: args.page_size,
            force_glacier_transfer: args.force_glacier_transfer,
            ignore_glacier_warnings: args.ignore_glacier_warnings,
            transfer,
            source_requests,
            destination_requests,
            case_conflict: CaseConflict::parse(&args.case_conflict),
            aws,
            source_aws,
            progress: !args.no_progress && verbosity == transfer::Verbosity::Normal,
            verbosity,
            source,
            destination,
        })
    }
}

/// SRC and DST as aws-cli reads them, and the direction they make; prefixes with empty, `.` or
/// `..` segments and a missing local source are refused.
fn locations(
    args: &SyncArgs,
    cwd: &std::path::Path,
) -> Result<(Location, Location, Direction), SyncError> {
    let source = Location::parse(&args.source, cwd).map_err(SyncError::Invalid)?;
    let destination = Location::parse(&args.destination, cwd).map_err(SyncError::Invalid)?;
    let direction = match (&source, &destination) {
        (Location::Local { .. }, Location::S3 { .. }) => Direction::Upload,
        (Location::S3 { .. }, Location::Local { .. }) => Direction::Download,
        (Location::S3 { .. }, Location::S3 { .. }) => Direction::Copy,
        (Location::Local { .. }, Location::Local { .. }) => {
            return Err(SyncError::Invalid(
                "usage: hoist sync <LocalPath> <S3Uri> or <S3Uri> <LocalPath> or <S3Uri> <S3Uri>\n\
                 Error: Invalid argument type"
                    .into(),
            ));
        }
    };
    for location in [&source, &destination] {
        if let Location::S3 { prefix, .. } = location {
            let valid = Prefix::new(prefix).is_ok_and(|p| p.as_str() == prefix);
            if !valid {
                return Err(SyncError::Invalid(format!(
                    "hoist does not sync the prefix `{prefix}`: it has an empty, `.` or `..` segment"
                )));
            }
        }
    }
    if let Location::Local { typed, absolute } = &source
        && !absolute.exists()
    {
        return Err(SyncError::Invalid(format!(
            "The user-provided path {typed} does not exist."
        )));
    }
    // S3 Express directory buckets (`name--usw2-az1--x-s3`) list in no defined order, so
    // aws-cli refuses to sync them, before any request.
    for location in [&source, &destination] {
        if let Location::S3 { bucket, .. } = location
            && bucket.ends_with("--x-s3")
        {
            return Err(SyncError::Invalid(
                "Cannot use sync command with a directory bucket.".into(),
            ));
        }
    }
    Ok((source, destination, direction))
}

/// `--case-conflict`: what a download does with a key that differs only by case from one
/// already downloaded in this run or from a file at the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CaseConflict {
    /// aws-cli's default: download it anyway.
    Ignore,
    /// Skip it with a warning.
    Skip,
    /// Download it with a warning.
    Warn,
    /// Stop the sync before any download.
    Error,
}

impl CaseConflict {
    fn parse(value: &str) -> CaseConflict {
        match value {
            "skip" => CaseConflict::Skip,
            "warn" => CaseConflict::Warn,
            "error" => CaseConflict::Error,
            _ => CaseConflict::Ignore,
        }
    }
}

/// A customer key flag's bytes: the value as typed (UTF-8), or a file's bytes for
/// `fileb://PATH` (`file://PATH` too, as aws-cli's paramfile rules allow), with aws-cli's error
/// for a file it cannot read.
fn customer_key(
    flag: &str,
    algorithm: Option<&str>,
    value: &Option<String>,
) -> Result<Option<(String, Vec<u8>)>, SyncError> {
    let Some(value) = value.as_deref().filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let raw = match value
        .strip_prefix("fileb://")
        .or_else(|| value.strip_prefix("file://"))
    {
        Some(path) => std::fs::read(path).map_err(|e| {
            SyncError::Invalid(format!(
                "Error parsing parameter '{flag}': Unable to load paramfile {value}: {}",
                transfer::os_error_text(&e, std::path::Path::new(path))
            ))
        })?,
        None => value.as_bytes().to_vec(),
    };
    Ok(Some((algorithm.unwrap_or_default().to_string(), raw)))
}

/// Which store's requests carry which of the customer keys, grants and checksum flags, after
/// aws-cli's checks of their combinations (its messages, exit 255; `--grants`: exit 1).
fn requests(
    args: &SyncArgs,
    direction: Direction,
    sse_c_key: Option<(String, Vec<u8>)>,
    copy_source_key: Option<(String, Vec<u8>)>,
) -> Result<(RequestOptions, RequestOptions), SyncError> {
    let paths = |direction: Direction| match direction {
        Direction::Upload => "<LocalPath> <S3Uri>",
        Direction::Download => "<S3Uri> <LocalPath>",
        Direction::Copy => "<S3Uri> <S3Uri>",
    };
    if args.checksum_algorithm.is_some() && direction == Direction::Download {
        return Err(SyncError::Invalid(format!(
            "Expected checksum-algorithm parameter to be used with one of following path \
             formats: <LocalPath> <S3Uri>, <S3Uri> <S3Uri>. Instead, received {}.",
            paths(direction)
        )));
    }
    if args.checksum_mode.is_some() && direction != Direction::Download {
        return Err(SyncError::Invalid(format!(
            "Expected checksum-mode parameter to be used with one of following path formats: \
             <S3Uri> <LocalPath>. Instead, received {}.",
            paths(direction)
        )));
    }
    for (algorithm, key, algorithm_flag, key_flag) in [
        (&args.sse_c, &sse_c_key, "--sse-c", "--sse-c-key"),
        (
            &args.sse_c_copy_source,
            &copy_source_key,
            "--sse-c-copy-source",
            "--sse-c-copy-source-key",
        ),
    ] {
        if algorithm.is_some() && key.is_none() {
            return Err(SyncError::Invalid(format!(
                "It {algorithm_flag} is specified, {key_flag} must be specified as well."
            )));
        }
        if key.is_some() && algorithm.is_none() {
            return Err(SyncError::Invalid(format!(
                "It {key_flag} is specified, {algorithm_flag} must be specified as well."
            )));
        }
    }
    if args.sse_c_copy_source.is_some() && direction != Direction::Copy {
        return Err(SyncError::Invalid(
            "--sse-c-copy-source is only supported for copy operations.".into(),
        ));
    }
    let checksum = match args.checksum_algorithm.as_deref() {
        None => None,
        Some(name) => Some(ChecksumKind::parse(name).ok_or_else(|| {
            SyncError::Invalid(format!(
                "hoist does not compute {name} checksums (aws-cli needs its optional CRT \
                 package for them): use CRC64NVME, CRC32, CRC32C, SHA1, SHA256 or SHA512"
            ))
        })?),
    };
    let grants = Grants::parse(args.grants.iter().map(String::as_str)).map_err(SyncError::Fatal)?;
    let key = |pair: Option<(String, Vec<u8>)>| pair.map(|(alg, raw)| CustomerKey::new(&alg, &raw));
    let sse_c_key = key(sse_c_key);
    let copy_source_key = key(copy_source_key);
    let mut source = RequestOptions::default();
    let mut destination = RequestOptions {
        grants,
        checksum,
        ..RequestOptions::default()
    };
    match direction {
        Direction::Download => {
            source.customer_key = sse_c_key;
            source.checksum_mode = args.checksum_mode.is_some();
        }
        Direction::Upload => destination.customer_key = sse_c_key,
        Direction::Copy => {
            destination.customer_key = sse_c_key;
            destination.copy_source_key.clone_from(&copy_source_key);
            source.customer_key = copy_source_key;
        }
    }
    Ok((source, destination))
}

/// `--exclude`, `--include` and `--exclude-from`, in the order given.
fn filters(
    args: &SyncArgs,
    source: &Location,
    destination: &Location,
) -> Result<Filters, SyncError> {
    let mut patterns = Vec::new();
    for filter in &args.filters.filters {
        match filter {
            FilterArg::Exclude(p) => patterns.push((FilterKind::Exclude, p.clone())),
            FilterArg::Include(p) => patterns.push((FilterKind::Include, p.clone())),
            FilterArg::ExcludeFrom(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| SyncError::ExcludeFrom {
                        path: path.clone(),
                        source,
                    })?;
                patterns.extend(
                    filters::parse_exclude_file(&text)
                        .into_iter()
                        .map(|p| (FilterKind::Exclude, p)),
                );
            }
        }
    }
    Ok(Filters::new(
        &patterns,
        &source.filter_root(),
        &destination.filter_root(),
    ))
}

/// The headers uploads and copies carry, validated before the first request.
fn headers(args: &SyncArgs) -> Result<Headers, SyncError> {
    Ok(Headers {
        content_type: non_empty(&args.content_type),
        cache_control: non_empty(&args.cache_control),
        content_encoding: non_empty(&args.content_encoding),
        content_language: non_empty(&args.content_language),
        content_disposition: non_empty(&args.content_disposition),
        expires: match non_empty(&args.expires) {
            Some(text) => Some(transfer::http_date(&text).map_err(SyncError::Value)?),
            None => None,
        },
        website_redirect: non_empty(&args.website_redirect),
        metadata: match non_empty(&args.metadata) {
            Some(text) => transfer::parse_metadata(&text).map_err(SyncError::Value)?,
            None => BTreeMap::new(),
        },
        acl: args.acl.clone(),
        storage_class: args.storage_class.clone(),
        sse: args.sse.clone(),
        sse_kms_key_id: non_empty(&args.sse_kms_key_id),
    })
}

/// aws-cli sends a header only when its value is truthy: `--content-type ""` is ignored.
fn non_empty(value: &Option<String>) -> Option<String> {
    value.clone().filter(|v| !v.is_empty())
}

/// One side of the sync, listed, filtered and sorted.
#[derive(Debug, Default)]
pub(crate) struct Side {
    pub(crate) entries: Vec<Listed>,
    /// Local side: the file behind each entry (same order).
    pub(crate) local: Vec<local::WalkedFile>,
    /// S3 side: the storage class of each entry (same order).
    pub(crate) storage_classes: Vec<Option<std::borrow::Cow<'static, str>>>,
    /// Local side: directories that could not be listed.
    pub(crate) walk_incomplete: local::Unlisted,
    /// Local side: where the other side's listing pages would end if it held every walked
    /// file, filtered or not (a listing lists them all).
    pub(crate) hint: ListHint,
}

/// Runs `hoist sync` with parsed flags: resolves them, builds the clients, lists both sides and
/// syncs. Fatal errors after validation are printed aws-cli style (`fatal error: ...`) and end
/// in [`Outcome`] with exit code 1; validation errors are returned.
pub(crate) async fn run(args: &SyncArgs, interrupt: &Interrupt) -> Result<Outcome, SyncError> {
    let settings = SyncSettings::resolve(args)?;
    let printer = crate::report::Printer::new(
        crate::cli::OutputFormat::Human,
        settings.verbosity == transfer::Verbosity::Quiet,
    );
    let output = transfer::Output::new(&printer, settings.verbosity);
    let source_store = open_store(
        &settings.source,
        &settings,
        &settings.source_aws,
        &settings.source_requests,
        interrupt,
    )
    .await;
    let destination_store = open_store(
        &settings.destination,
        &settings,
        &settings.aws,
        &settings.destination_requests,
        interrupt,
    )
    .await;

    if let (Location::Local { absolute, .. }, Direction::Download, false) =
        (&settings.destination, settings.direction, settings.dryrun)
        && let Err(e) = std::fs::create_dir_all(absolute)
    {
        output.fatal(&format!(
            "[Errno {}] {}: '{}'",
            e.raw_os_error().unwrap_or(0),
            transfer::strerror(&e),
            absolute.display()
        ));
        return Ok(output.outcome(false));
    }

    let (source, destination) = list_sides(
        &settings,
        source_store.as_ref(),
        destination_store.as_ref(),
        &output,
    )
    .await;
    let (source, destination) = match (source, destination) {
        (Ok(s), Ok(d)) => (s, d),
        (Err(e), _) | (_, Err(e)) => {
            output.fatal(&transfer::exception_text(&e, "ListObjectsV2"));
            return Ok(output.outcome(false));
        }
    };
    let steps = compare::merge(
        &source.entries,
        &destination.entries,
        settings.direction,
        settings.strategy,
        settings.delete,
    );
    let job = transfer::Job {
        settings: &settings,
        source: &source,
        destination: &destination,
        source_store: source_store.as_deref(),
        destination_store: destination_store.as_deref(),
        output: &output,
        interrupt,
        directories: transfer::Directories::default(),
        retrier: crate::store::retry::Retrier::new(steps.len(), interrupt),
        memory: crate::store::budget::MemoryBudget::new(transfer::MEMORY_BUDGET),
    };
    Ok(job.run(&steps).await)
}

async fn open_store(
    location: &Location,
    settings: &SyncSettings,
    aws: &AwsOptions,
    requests: &RequestOptions,
    interrupt: &Interrupt,
) -> Option<Arc<dyn NamedStore>> {
    let Location::S3 { bucket, prefix, .. } = location else {
        return None;
    };
    let prefix = Prefix::new(prefix).expect("validated in SyncSettings::resolve");
    let options = StoreOptions {
        multipart: Multipart {
            threshold: settings.transfer.multipart_threshold,
            chunk_size: settings.transfer.multipart_chunksize,
            // One CopyObject up to S3's limit, unless the profile asked for parts sooner.
            copy_threshold: if settings.transfer.threshold_set {
                settings.transfer.multipart_threshold.min(MAX_SINGLE_COPY)
            } else {
                MAX_SINGLE_COPY + 1
            },
        },
        concurrency: settings.concurrency.get(),
        // sync keeps no record of what it uploaded
        listed_etags: false,
        page_size: settings.page_size,
        requests: requests.clone(),
    };
    let session = Session::load(aws).await;
    Some(Arc::new(
        session.s3_store(bucket, prefix, options, interrupt),
    ))
}

/// What [`list_sides`] found on each side.
type Sides = (
    Result<Side, crate::store::Error>,
    Result<Side, crate::store::Error>,
);

/// Lists both sides. Between a directory and a bucket the walk goes first: its names tell the
/// listing where its pages would end if the bucket held the same files, so the listing asks for
/// them at once instead of one round trip per page ([`ListHint`]); two buckets are listed at
/// once, page after page.
async fn list_sides(
    settings: &SyncSettings,
    source_store: Option<&Arc<dyn NamedStore>>,
    destination_store: Option<&Arc<dyn NamedStore>>,
    output: &transfer::Output<'_>,
) -> Sides {
    let side = |location, store, hint| list_side(location, store, hint, settings, output);
    let none = ListHint::none;
    match (&settings.source, &settings.destination) {
        (Location::Local { .. }, Location::S3 { .. }) => {
            let source = side(&settings.source, None, none()).await;
            let hint = source.as_ref().map_or_else(|_| none(), |s| s.hint.clone());
            let destination = side(&settings.destination, destination_store, hint).await;
            (source, destination)
        }
        (Location::S3 { .. }, Location::Local { .. }) => {
            let destination = side(&settings.destination, None, none()).await;
            let hint = destination
                .as_ref()
                .map_or_else(|_| none(), |d| d.hint.clone());
            let source = side(&settings.source, source_store, hint).await;
            (source, destination)
        }
        _ => {
            futures::join!(
                side(&settings.source, source_store, none()),
                side(&settings.destination, destination_store, none()),
            )
        }
    }
}

/// The split points of a walk's names, one per `--page-size` page.
fn hint_of(walk: &local::Walk, settings: &SyncSettings) -> ListHint {
    let stride = settings
        .page_size
        .and_then(|size| usize::try_from(size).ok())
        .map_or(LIST_PAGE, |size| size.min(LIST_PAGE));
    ListHint::from_sorted(
        walk.files.iter().map(|file| file.entry.name.as_str()),
        stride,
    )
}

/// Lists one side: walk or ListObjectsV2, zero-byte `dir/` markers dropped, filters applied,
/// sorted by name.
async fn list_side(
    location: &Location,
    store: Option<&Arc<dyn NamedStore>>,
    hint: ListHint,
    settings: &SyncSettings,
    output: &transfer::Output<'_>,
) -> Result<Side, crate::store::Error> {
    let mut side = Side::default();
    match (location, store) {
        (Location::Local { absolute, .. }, _) => {
            let root = absolute.clone();
            let follow = settings.follow_symlinks;
            let walk = tokio::task::spawn_blocking(move || local::walk(&root, follow))
                .await
                .expect("the walk does not panic");
            for warning in &walk.warnings {
                output.warn(warning);
            }
            side.hint = hint_of(&walk, settings);
            side.walk_incomplete = walk.incomplete;
            for file in walk.files {
                if settings.filters.includes(&file.path.to_string_lossy()) {
                    side.entries.push(file.entry.clone());
                    side.local.push(file);
                }
            }
        }
        (Location::S3 { bucket, prefix, .. }, Some(store)) => {
            let mut objects: Vec<_> = store.list_names(hint).try_collect().await?;
            objects.sort_by(|a, b| a.name.cmp(&b.name));
            for object in objects {
                if object.size == 0 && (object.name.is_empty() || object.name.ends_with('/')) {
                    continue;
                }
                if !settings
                    .filters
                    .includes(&format!("{bucket}/{prefix}{}", object.name))
                {
                    continue;
                }
                side.entries.push(Listed {
                    name: object.name,
                    size: object.size,
                    modified: object.last_modified.map_or(0, micros),
                });
                side.storage_classes.push(object.storage_class);
            }
        }
        (Location::S3 { .. }, None) => unreachable!("S3 locations get a store"),
    }
    Ok(side)
}
