//! `hoist sync SRC DST`: `aws s3 sync` (aws-cli v1.46) semantics, as specified in
//! `docs/sync-semantics.md`.
//!
//! The pipeline: [`paths`] reads the two arguments as aws-cli does; each side is listed
//! ([`local::walk`] or [`S3Store::list_names`]), filtered by [`filters`] and sorted; [`compare`]
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
//! - Not implemented: multipart copies (objects over 5 GiB fail with S3's error), `--grants`,
//!   `--sse-c*`, `--request-payer`, `--page-size`, `--force-glacier-transfer`,
//!   `--ignore-glacier-warnings`, `--case-conflict`, `--checksum-*`. Glacier objects are always
//!   skipped with aws-cli's warning.

pub mod compare;
pub mod filters;
pub mod local;
pub mod mime;
pub mod paths;
pub mod profile;
pub mod transfer;

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;

use futures::TryStreamExt;

use crate::aws::{AwsOptions, Timeouts};
use crate::cli::{FilterArg, SyncArgs};
use crate::error::Error;
use crate::headers::Headers;
use crate::interrupt::Interrupt;
use crate::key::Prefix;
use crate::store::s3::{Integrity, Multipart, S3Store};

use compare::{Direction, Entry, Strategy, micros};
use filters::{FilterKind, Filters};
use paths::Location;
pub use transfer::Outcome;

/// Everything a sync needs, validated before the first request.
#[derive(Debug)]
pub struct SyncSettings {
    pub source: Location,
    pub destination: Location,
    pub direction: Direction,
    pub cwd: PathBuf,
    pub filters: Filters,
    pub strategy: Strategy,
    pub delete: bool,
    pub dryrun: bool,
    pub follow_symlinks: bool,
    /// Headers for uploads (Content-Type is added per file) and copies.
    pub headers: Headers,
    pub guess_mime_type: bool,
    pub metadata_directive: Option<String>,
    pub concurrency: NonZeroUsize,
    pub transfer: profile::TransferConfig,
    pub aws: AwsOptions,
    pub source_aws: AwsOptions,
    pub verbosity: transfer::Verbosity,
    pub progress: bool,
}

impl SyncSettings {
    pub fn resolve(args: &SyncArgs) -> Result<SyncSettings, Error> {
        let cwd = std::env::current_dir()
            .map_err(|e| Error::Usage(format!("cannot read the working directory: {e}")))?;
        let source = Location::parse(&args.source, &cwd).map_err(Error::SyncInvalid)?;
        let destination = Location::parse(&args.destination, &cwd).map_err(Error::SyncInvalid)?;
        let direction = match (&source, &destination) {
            (Location::Local { .. }, Location::S3 { .. }) => Direction::Upload,
            (Location::S3 { .. }, Location::Local { .. }) => Direction::Download,
            (Location::S3 { .. }, Location::S3 { .. }) => Direction::Copy,
            (Location::Local { .. }, Location::Local { .. }) => {
                return Err(Error::SyncInvalid(
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
                    return Err(Error::SyncInvalid(format!(
                        "hoist does not sync the prefix `{prefix}`: it has an empty, `.` or `..` segment"
                    )));
                }
            }
        }
        if let Location::Local { typed, absolute } = &source
            && !absolute.exists()
        {
            return Err(Error::SyncInvalid(format!(
                "The user-provided path {typed} does not exist."
            )));
        }

        let mut patterns = Vec::new();
        for filter in &args.filters.filters {
            match filter {
                FilterArg::Exclude(p) => patterns.push((FilterKind::Exclude, p.clone())),
                FilterArg::Include(p) => patterns.push((FilterKind::Include, p.clone())),
                FilterArg::ExcludeFrom(path) => {
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        Error::Usage(format!(
                            "cannot read --exclude-from `{}`: {e}",
                            path.display()
                        ))
                    })?;
                    patterns.extend(
                        filters::parse_exclude_file(&text)
                            .into_iter()
                            .map(|p| (FilterKind::Exclude, p)),
                    );
                }
            }
        }
        let filters = Filters::new(&patterns, &source.filter_root(), &destination.filter_root());

        let profile_name = profile::profile_name(args.profile.as_deref());
        let transfer = profile::load(&profile_name).map_err(Error::SyncInvalid)?;
        let headers = Headers {
            content_type: non_empty(&args.content_type),
            cache_control: non_empty(&args.cache_control),
            content_encoding: non_empty(&args.content_encoding),
            content_language: non_empty(&args.content_language),
            content_disposition: non_empty(&args.content_disposition),
            expires: match non_empty(&args.expires) {
                Some(text) => Some(transfer::http_date(&text).map_err(Error::Usage)?),
                None => None,
            },
            website_redirect: non_empty(&args.website_redirect),
            metadata: match non_empty(&args.metadata) {
                Some(text) => transfer::parse_metadata(&text).map_err(Error::Usage)?,
                None => BTreeMap::new(),
            },
            acl: args.acl.clone(),
            storage_class: args.storage_class.clone(),
            sse: args.sse.clone(),
            sse_kms_key_id: non_empty(&args.sse_kms_key_id),
        };
        let timeouts = Timeouts::from_env()?;
        let aws = AwsOptions {
            region: args.region.clone(),
            profile: args.profile.clone(),
            endpoint_url: args.endpoint_url.clone(),
            path_style: None,
            timeouts,
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
        let concurrency = args.concurrency.unwrap_or(
            NonZeroUsize::new(transfer.max_concurrent_requests).expect("validated positive"),
        );
        Ok(SyncSettings {
            direction,
            cwd,
            filters,
            strategy: Strategy::from_flags(args.size_only, args.exact_timestamps),
            delete: args.delete,
            dryrun: args.dryrun,
            follow_symlinks: !args.no_follow_symlinks,
            headers,
            guess_mime_type: !args.no_guess_mime_type,
            metadata_directive: args.metadata_directive.clone(),
            concurrency,
            transfer,
            aws,
            source_aws,
            progress: !args.no_progress && verbosity == transfer::Verbosity::Normal,
            verbosity,
            source,
            destination,
        })
    }
}

/// aws-cli sends a header only when its value is truthy: `--content-type ""` is ignored.
fn non_empty(value: &Option<String>) -> Option<String> {
    value.clone().filter(|v| !v.is_empty())
}

/// One side of the sync, listed, filtered and sorted.
#[derive(Debug, Default)]
pub struct Side {
    pub entries: Vec<Entry>,
    /// Local side: the file behind each entry (same order).
    pub local: Vec<local::LocalFile>,
    /// S3 side: the storage class of each entry (same order).
    pub storage_classes: Vec<Option<String>>,
    /// Local side: directories that could not be listed.
    pub walk_incomplete: Vec<String>,
}

/// Runs `hoist sync` with parsed flags: resolves them, builds the clients, lists both sides and
/// syncs. Fatal errors after validation are printed aws-cli style (`fatal error: ...`) and end
/// in [`Outcome`] with exit code 1; validation errors are returned.
pub async fn run(args: &SyncArgs, interrupt: &Interrupt) -> Result<Outcome, Error> {
    let settings = SyncSettings::resolve(args)?;
    let printer = crate::report::Printer::new(
        crate::report::OutputFormat::Human,
        settings.verbosity == transfer::Verbosity::Quiet,
    );
    let output = transfer::Output::new(&printer, settings.verbosity);
    let source_store =
        open_store(&settings.source, &settings, &settings.source_aws, interrupt).await;
    let destination_store =
        open_store(&settings.destination, &settings, &settings.aws, interrupt).await;

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

    let (source, destination) = futures::join!(
        list_side(&settings.source, source_store.as_ref(), &settings, &output),
        list_side(
            &settings.destination,
            destination_store.as_ref(),
            &settings,
            &output
        ),
    );
    let (source, destination) = match (source, destination) {
        (Ok(s), Ok(d)) => (s, d),
        (Err(e), _) | (_, Err(e)) => {
            output.fatal(&transfer::exception_text(&e, "ListObjectsV2"));
            return Ok(output.outcome(false));
        }
    };
    let steps = compare::plan(
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
        directories: Default::default(),
    };
    Ok(job.run(&steps).await)
}

async fn open_store(
    location: &Location,
    settings: &SyncSettings,
    aws: &AwsOptions,
    interrupt: &Interrupt,
) -> Option<Arc<S3Store>> {
    let Location::S3 { bucket, prefix, .. } = location else {
        return None;
    };
    let sdk = crate::aws::load(aws).await;
    let client = crate::aws::s3_client(&sdk, aws);
    let integrity = match sdk.request_checksum_calculation() {
        Some(aws_types::sdk_config::RequestChecksumCalculation::WhenRequired) => Integrity::Md5,
        _ => Integrity::Crc32,
    };
    let prefix = Prefix::new(prefix).expect("validated in SyncSettings::resolve");
    let store = S3Store::new(
        client,
        bucket.clone(),
        prefix,
        crate::aws::endpoint_label(&sdk, aws),
    )
    .with_integrity(integrity)
    .with_multipart(
        Multipart {
            threshold: settings.transfer.multipart_threshold,
            chunk_size: settings.transfer.multipart_chunksize,
        },
        settings.concurrency.get(),
    )
    .with_interrupt(interrupt.clone())
    .without_listed_etags(); // sync keeps no record of what it uploaded
    Some(Arc::new(store))
}

/// Lists one side: walk or ListObjectsV2, zero-byte `dir/` markers dropped, filters applied,
/// sorted by name.
async fn list_side(
    location: &Location,
    store: Option<&Arc<S3Store>>,
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
            side.walk_incomplete = walk.incomplete;
            for file in walk.files {
                if settings.filters.includes(&file.path.to_string_lossy()) {
                    side.entries.push(file.entry.clone());
                    side.local.push(file);
                }
            }
        }
        (Location::S3 { bucket, prefix, .. }, Some(store)) => {
            let mut objects: Vec<_> = store.list_names().try_collect().await?;
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
                side.entries.push(Entry {
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
