//! What the user typed: clap derive structs and nothing more. [`crate::deploy::settings`] turns these
//! into validated values; nothing downstream reads a flag.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Parser, Subcommand};

/// Why the command line was not parsed.
#[derive(Debug)]
pub enum Rejected {
    /// `hoist sync` with options (or extra arguments) aws-cli does not know: aws-cli prints
    /// `Unknown options: --a, --b` and exits 255, and so does hoist.
    UnknownSyncOptions(Vec<String>),
    /// Any other usage error: clap's message, exit 2 (help and version: exit 0).
    Clap(clap::Error),
}

/// Parses `args` (the program name first).
pub fn parse(args: Vec<OsString>) -> Result<Cli, Rejected> {
    match Cli::try_parse_from(&args) {
        Ok(cli) => Ok(cli),
        Err(error) if error.kind() == ErrorKind::UnknownArgument && is_sync(&args) => {
            unknown_sync_options(args).map_or(Err(Rejected::Clap(error)), |unknown| {
                Err(Rejected::UnknownSyncOptions(unknown))
            })
        }
        Err(error) => Err(Rejected::Clap(error)),
    }
}

/// Whether the subcommand is `sync` (the first argument that is not a global flag).
fn is_sync(args: &[OsString]) -> bool {
    args.iter()
        .skip(1)
        .find(|a| !a.to_string_lossy().starts_with('-'))
        .is_some_and(|a| a == "sync")
}

/// Every argument clap rejects as unknown, in order, as aws-cli lists them: each is taken out
/// and the rest parsed again, until the rest parses (or fails for another reason, which clap
/// then reports as usual).
fn unknown_sync_options(mut args: Vec<OsString>) -> Option<Vec<String>> {
    let mut unknown = Vec::new();
    for _ in 0..64 {
        match Cli::try_parse_from(&args) {
            Ok(_) => return (!unknown.is_empty()).then_some(unknown),
            Err(error) if error.kind() == ErrorKind::UnknownArgument => {
                let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg) else {
                    return None;
                };
                let arg = arg.clone();
                let at = args.iter().position(|a| {
                    let a = a.to_string_lossy();
                    a == arg.as_str() || a.starts_with(&format!("{arg}="))
                })?;
                unknown.push(args.remove(at).to_string_lossy().into_owned());
            }
            Err(_) => return None,
        }
    }
    None
}

#[derive(Debug, Parser)]
#[command(
    name = "hoist",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("HOIST_COMMIT"), ")"),
    about = "Publish static websites to Amazon S3 and S3-compatible stores",
    after_help = "Exit codes: 0 success, 1 the run failed, 2 bad usage, invalid config or input \
                  (sync: also files skipped with warnings), 130 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// More logging on stderr: -v for hoist's events, -vv for the AWS SDK's too.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
// Parsed once per run; boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Publish a built site to S3 following deploy.yaml: assets first, HTML last, then deletes.
    #[command(after_help = DEPLOY_EXAMPLES)]
    Deploy(DeployArgs),
    /// Sync directories and S3 prefixes with aws-cli's flags, lines and exit codes.
    Sync(SyncArgs),
    /// Serve a retained release again (default: the one before the live release), by
    /// server-side copies: no build needed.
    #[command(after_help = ROLLBACK_EXAMPLES)]
    Rollback(RollbackArgs),
    /// Deploy exactly the plan a `deploy --dryrun --plan-out FILE` saved; refuse, changing
    /// nothing, when the source or the bucket changed since (naming the keys).
    Apply(ApplyArgs),
    /// List or prune the previews `deploy --preview NAME` published.
    Previews(PreviewsArgs),
    /// List the retained releases, newest first, marking the live one.
    Releases(ReleasesArgs),
    /// Compile the edge rules (redirects, spa, clean_urls, response_headers, the build's
    /// _redirects and _headers) into CloudFront Functions.
    #[command(
        after_help = "Example:\n  hoist edge build --out edge/     writes viewer-request.js, viewer-response.js, kvs.json, README.txt"
    )]
    Edge(EdgeArgs),
    /// Write a commented deploy.yaml for the project here: its framework's output directory
    /// and rules for its hashed files.
    #[command(
        after_help = "Examples:\n  hoist init                               asks for the bucket on a terminal\n  hoist init --target s3://my-site/        then: npm run build && hoist deploy --dryrun"
    )]
    Init(InitArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    #[command(
        after_help = "Examples:\n  hoist completions bash > ~/.local/share/bash-completion/completions/hoist\n  hoist completions zsh > \"${fpath[1]}/_hoist\"\n  hoist completions fish > ~/.config/fish/completions/hoist.fish"
    )]
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Check, read-only, what a deploy needs: config, credentials, bucket, store, CloudFront,
    /// and that `.hoist/` is private. Exit 0 when a deploy would work, 1 otherwise.
    Doctor(DoctorArgs),
    /// Print the JSON Schema of deploy.yaml, for editors (yaml-language-server) and checks.
    #[command(
        after_help = "Example:\n  hoist schema > deploy.schema.json\n  # then, first line of deploy.yaml:\n  # yaml-language-server: $schema=deploy.schema.json"
    )]
    Schema,
    /// Print hoist's man page (roff), for `man -l -` or a man directory.
    #[command(after_help = "Example:\n  hoist man > /usr/local/share/man/man1/hoist.1")]
    Man,
}

const DEPLOY_EXAMPLES: &str = "Examples:
  hoist deploy --dryrun                      review the plan; only List, Get and Head are sent
  hoist deploy                               publish with ./deploy.yaml
  hoist deploy -c site/deploy.yaml --output json
  hoist deploy --target s3://bucket/pr-42/ --no-invalidate
  hoist deploy --endpoint-url http://127.0.0.1:9000 --keep-stale-for 1d

Environment: AWS_* as for aws-cli (credentials, region, AWS_ENDPOINT_URL_S3, AWS_MAX_ATTEMPTS,
AWS_REQUEST_CHECKSUM_CALCULATION); HOIST_CONNECT_TIMEOUT and HOIST_READ_TIMEOUT (seconds, 5
and 60 by default); HOIST_LOCK_TTL (seconds a lock stays valid without refresh, 120).";

const ROLLBACK_EXAMPLES: &str = "Examples:
  hoist releases                             which releases are retained, and the live one
  hoist rollback --dryrun                    the plan to serve the previous release again
  hoist rollback                             ... and do it
  hoist rollback 7                           serve release 7 (rolling forward is a rollback too)";

/// Where the target is and how to reach it: every command on a deploy target.
#[derive(Debug, Clone, Args, Default)]
pub struct TargetArgs {
    /// The rule file [default: deploy.yaml in the working directory]
    #[arg(long, short = 'c', value_name = "FILE", help_heading = "Target")]
    pub config: Option<PathBuf>,

    /// Where to publish: s3://bucket[/prefix/] or file://PATH (overrides `target`)
    #[arg(long, value_name = "URL", help_heading = "Target")]
    pub target: Option<String>,

    /// Use deploy.yaml's environment NAME (`environments: {NAME: {...}}`) over its top level
    #[arg(long, value_name = "NAME", help_heading = "Target")]
    pub env: Option<String>,

    /// S3 endpoint for S3-compatible stores (also AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL)
    #[arg(long, value_name = "URL", help_heading = "AWS")]
    pub endpoint_url: Option<String>,

    /// The bucket's region (overrides `region`, AWS_REGION and the profile's)
    #[arg(long, value_name = "REGION", help_heading = "AWS")]
    pub region: Option<String>,

    /// A profile from the AWS shared config and credentials files; replaces environment keys
    #[arg(long, value_name = "NAME", help_heading = "AWS")]
    pub profile: Option<String>,

    /// Force path-style addressing (automatic for localhost and IP endpoints)
    #[arg(long, help_heading = "AWS")]
    pub path_style: bool,

    /// `human`: one line per action and a summary; `json`: one document on stdout; `markdown`
    /// (deploy, rollback): one report for a pull-request comment
    #[arg(long, value_enum, default_value_t = OutputFormat::Human, help_heading = "Output")]
    pub output: OutputFormat,

    /// Print only errors and the final summary
    #[arg(long, short, help_heading = "Output")]
    pub quiet: bool,
}

/// How a command that changes the target does it: `deploy` and `rollback`.
#[derive(Debug, Clone, Args, Default)]
pub struct ChangeArgs {
    /// Print the plan and change nothing: only List, Get and Head requests are sent
    #[arg(long = "dryrun", visible_alias = "dry-run", help_heading = "Safety")]
    pub dryrun: bool,

    /// Override the safety guards: `max_deletes`, and publishing an empty source
    #[arg(long, help_heading = "Safety")]
    pub force: bool,

    /// Keep stale keys instead of deleting them
    #[arg(long, help_heading = "Safety")]
    pub no_delete: bool,

    /// Requests in flight at once [default: 128]
    #[arg(long, value_name = "N", help_heading = "Transfer")]
    pub concurrency: Option<NonZeroUsize>,

    /// CloudFront distribution to invalidate (overrides cloudfront.distribution_id)
    #[arg(long, value_name = "ID", help_heading = "CloudFront")]
    pub distribution_id: Option<String>,

    /// Invalidate CloudFront after the deploy (the default when a distribution is configured)
    #[arg(long, overrides_with = "no_invalidate", help_heading = "CloudFront")]
    pub invalidate: bool,

    /// Do not invalidate CloudFront
    #[arg(long, overrides_with = "invalidate", help_heading = "CloudFront")]
    pub no_invalidate: bool,

    /// Wait until the CloudFront invalidation completes
    #[arg(long, help_heading = "CloudFront")]
    pub wait: bool,

    /// Keep stale hashed assets this long after they left the site (`7d`, `12h`, `0s`)
    #[arg(long, value_name = "DURATION", help_heading = "Releases")]
    pub keep_stale_for: Option<String>,

    /// Releases retained for rollback, the live one included [default: 10; 0: none]
    #[arg(long, value_name = "N", help_heading = "Releases")]
    pub keep_releases: Option<usize>,

    /// The release's message [default: the commit's subject, when known]
    #[arg(long, short = 'm', value_name = "TEXT", help_heading = "Releases")]
    pub message: Option<String>,

    /// How long to wait for another run's lock on the target [default: 5m]
    #[arg(long, value_name = "DURATION", help_heading = "Releases")]
    pub lock_timeout: Option<String>,

    /// Do not append the Markdown report to `$GITHUB_STEP_SUMMARY` (GitHub Actions' job summary)
    #[arg(long, help_heading = "Output")]
    pub no_step_summary: bool,

    /// Run without the lock (for stores that ignore conditional writes)
    #[arg(long, help_heading = "Releases")]
    pub no_lock: bool,
}

/// What is published: `deploy` only.
#[derive(Debug, Clone, Args, Default)]
pub struct BuildArgs {
    /// The directory to publish (overrides `source`)
    #[arg(long, value_name = "DIR", help_heading = "Target")]
    pub source: Option<PathBuf>,

    /// Publish what symlinks that lead outside the source point to (refused by default)
    #[arg(long, help_heading = "Rules")]
    pub follow_symlinks: bool,

    /// Read every object's headers (HEAD) instead of trusting the manifest, and repair what
    /// another tool changed: content by upload, headers by copy
    #[arg(long, help_heading = "Rules")]
    pub check: bool,

    /// Refuse to deploy when a lint check finds anything (warnings otherwise)
    #[arg(long, help_heading = "Rules")]
    pub strict: bool,

    /// Publish the build as the preview NAME (`pr-123`): an independent site under the
    /// target's previews prefix, hashed assets production has copied, not uploaded
    #[arg(long, value_name = "NAME", help_heading = "Target")]
    pub preview: Option<String>,

    /// With --dryrun: write the plan and what it was computed against, for `hoist apply`
    #[arg(
        long,
        value_name = "FILE",
        requires = "dryrun",
        help_heading = "Safety"
    )]
    pub plan_out: Option<PathBuf>,
}

/// `hoist edge build`.
#[derive(Debug, Args)]
pub struct EdgeArgs {
    #[command(subcommand)]
    pub action: EdgeAction,
}

#[derive(Debug, Subcommand)]
pub enum EdgeAction {
    /// Write viewer-request.js (and viewer-response.js, kvs.json when needed) to DIR, with a
    /// note of what to attach where
    Build {
        /// The directory to write the functions to
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The build directory (overrides `source`)
        #[arg(long, value_name = "DIR", help_heading = "Target")]
        source: Option<PathBuf>,
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// `hoist previews list|prune`.
#[derive(Debug, Args)]
pub struct PreviewsArgs {
    #[command(subcommand)]
    pub action: PreviewsAction,
}

#[derive(Debug, Subcommand)]
pub enum PreviewsAction {
    /// The target's previews, with when each was last deployed
    List {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Delete previews: the NAMEs given, or those not deployed for --older-than (default
    /// `previews.expire_after`, 14d); locked, guarded by max_deletes, --dryrun shows them
    Prune {
        /// Previews to delete
        #[arg(value_name = "NAME")]
        names: Vec<String>,
        /// Delete the previews not deployed for this long (`7d`, `24h`)
        #[arg(long, value_name = "DURATION", conflicts_with = "names")]
        older_than: Option<String>,
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        change: ChangeArgs,
    },
}

/// `hoist apply PLAN`: run exactly a plan `--plan-out` saved, or refuse.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The plan `hoist deploy --dryrun --plan-out FILE` wrote
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    #[command(flatten)]
    pub deploy: DeployArgs,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub build: BuildArgs,
}

/// `hoist rollback [RELEASE]`: serve a retained release again, by server-side copies.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The release to restore [default: the one before the live release]
    #[arg(value_name = "RELEASE")]
    pub release: Option<u64>,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub change: ChangeArgs,
}

/// `hoist init`: a deploy.yaml for the project in the working directory.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to publish: s3://bucket[/prefix/] (asked for on a terminal when not given)
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,

    /// The project directory [default: the working directory]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `hoist doctor`: what a first deploy needs, checked read-only.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub target: TargetArgs,
}

/// `hoist releases`: the retained releases, newest first.
#[derive(Debug, Args)]
pub struct ReleasesArgs {
    #[command(flatten)]
    pub target: TargetArgs,
}

/// `hoist sync SRC DST`: the flags of `aws s3 sync` (aws-cli v1), plus `--concurrency`.
///
/// Long options may be abbreviated to any unambiguous prefix (`--dry`), as argparse allows.
#[derive(Debug, Args)]
#[command(infer_long_args = true)]
pub struct SyncArgs {
    /// Source: a local directory or s3://bucket[/prefix]
    #[arg(value_name = "SRC")]
    pub source: String,

    /// Destination: a local directory or s3://bucket[/prefix]
    #[arg(value_name = "DST")]
    pub destination: String,

    /// Delete files at the destination that are not at the source (never excluded ones)
    #[arg(long)]
    pub delete: bool,

    /// Show what would be done without doing it
    #[arg(long = "dryrun")]
    pub dryrun: bool,

    /// --exclude/--include/--exclude-from, in command-line order (the last match wins)
    #[command(flatten)]
    pub filters: FilterArgs,

    /// Compare sizes only, not modification times
    #[arg(long)]
    pub size_only: bool,

    /// Downloads: transfer when the times differ at all, not only when the local file is newer
    #[arg(long)]
    pub exact_timestamps: bool,

    /// Follow symbolic links (the default)
    #[arg(long, overrides_with = "no_follow_symlinks")]
    pub follow_symlinks: bool,

    /// Skip symbolic links silently
    #[arg(long, overrides_with = "follow_symlinks")]
    pub no_follow_symlinks: bool,

    /// Cache-Control of uploaded and copied objects
    #[arg(long, value_name = "VALUE")]
    pub cache_control: Option<String>,

    /// Content-Type for every upload or copy (default: guessed from the file name on upload)
    #[arg(long, value_name = "TYPE")]
    pub content_type: Option<String>,

    /// Content-Encoding of uploaded and copied objects
    #[arg(long, value_name = "VALUE")]
    pub content_encoding: Option<String>,

    /// Content-Language of uploaded and copied objects
    #[arg(long, value_name = "VALUE")]
    pub content_language: Option<String>,

    /// Content-Disposition of uploaded and copied objects
    #[arg(long, value_name = "VALUE")]
    pub content_disposition: Option<String>,

    /// ISO-8601 date or epoch seconds
    #[arg(long, value_name = "DATE")]
    pub expires: Option<String>,

    /// User metadata: KEY=VALUE,KEY2=VALUE2 or a JSON object
    #[arg(long, value_name = "KEY=VALUE,...")]
    pub metadata: Option<String>,

    /// Copies: COPY keeps the source's metadata, REPLACE uses the flags
    #[arg(long, value_name = "DIRECTIVE", value_parser = ["COPY", "REPLACE"])]
    pub metadata_directive: Option<String>,

    /// x-amz-website-redirect-location: where the S3 website endpoint redirects the object
    #[arg(long, value_name = "URL")]
    pub website_redirect: Option<String>,

    /// Canned ACL of uploaded and copied objects
    #[arg(long, value_name = "ACL", value_parser = [
        "private", "public-read", "public-read-write", "authenticated-read", "aws-exec-read",
        "bucket-owner-read", "bucket-owner-full-control", "log-delivery-write",
    ])]
    pub acl: Option<String>,

    /// Server-side encryption [default when given without a value: AES256]
    #[arg(long, value_name = "ALGORITHM", num_args = 0..=1, default_missing_value = "AES256",
        value_parser = ["AES256", "aws:kms"])]
    pub sse: Option<String>,

    /// The KMS key for `--sse aws:kms`
    #[arg(long, value_name = "KEY_ID")]
    pub sse_kms_key_id: Option<String>,

    /// Storage class of uploaded and copied objects
    #[arg(long, value_name = "CLASS", value_parser = [
        "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING",
        "GLACIER", "DEEP_ARCHIVE", "GLACIER_IR",
    ])]
    pub storage_class: Option<String>,

    /// Send no Content-Type unless --content-type is given
    #[arg(long)]
    pub no_guess_mime_type: bool,

    /// Region of the source bucket (S3 to S3)
    #[arg(long, value_name = "REGION")]
    pub source_region: Option<String>,

    /// Transfer GLACIER and DEEP_ARCHIVE objects instead of skipping them (restored ones work)
    #[arg(long)]
    pub force_glacier_transfer: bool,

    /// Skip GLACIER and DEEP_ARCHIVE objects without a warning (and without exit 2)
    #[arg(long)]
    pub ignore_glacier_warnings: bool,

    /// `requester`: the requester pays for the requests and transfer (x-amz-request-payer)
    #[arg(long, value_name = "PAYER", value_parser = ["requester"])]
    pub request_payer: Option<String>,

    /// Encrypt uploads and copies with a customer-provided key, and decrypt downloads with it
    /// (SSE-C) [default when given without a value: AES256]
    #[arg(long, value_name = "ALGORITHM", num_args = 0..=1, default_missing_value = "AES256",
        value_parser = ["AES256"])]
    pub sse_c: Option<String>,

    /// The customer-provided key for --sse-c: the raw key (not base64), or fileb://PATH
    #[arg(long, value_name = "KEY")]
    pub sse_c_key: Option<String>,

    /// S3 to S3: the source objects are encrypted with a customer-provided key
    /// [default when given without a value: AES256]
    #[arg(long, value_name = "ALGORITHM", num_args = 0..=1, default_missing_value = "AES256",
        value_parser = ["AES256"])]
    pub sse_c_copy_source: Option<String>,

    /// The source objects' customer-provided key for --sse-c-copy-source (raw, or fileb://PATH)
    #[arg(long, value_name = "KEY")]
    pub sse_c_copy_source_key: Option<String>,

    /// ACL grants of uploads and copies: PERMISSION=GRANTEE_TYPE=GRANTEE_ID ... (read,
    /// readacl, writeacl, full; uri=, id=, emailaddress=)
    #[arg(long, value_name = "GRANT", num_args = 1..)]
    pub grants: Vec<String>,

    /// The checksum S3 stores with uploads and copies
    #[arg(long, value_name = "ALGORITHM", value_parser = [
        "CRC64NVME", "CRC32", "SHA256", "SHA1", "CRC32C", "SHA512", "XXHASH64", "XXHASH3",
        "XXHASH128",
    ])]
    pub checksum_algorithm: Option<String>,

    /// `ENABLED`: downloads check their bytes against the checksum stored with the object
    #[arg(long, value_name = "MODE", value_parser = ["ENABLED"])]
    pub checksum_mode: Option<String>,

    /// Downloads: what to do with keys that differ only by case (they collide on a
    /// case-insensitive filesystem)
    #[arg(long, value_name = "ACTION", default_value = "ignore",
        value_parser = ["ignore", "skip", "warn", "error"])]
    pub case_conflict: String,

    /// Keys per ListObjectsV2 response (MaxKeys; S3 returns at most 1000)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub page_size: Option<i32>,

    /// The region of the bucket (overrides AWS_REGION and the profile's)
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// S3 endpoint for S3-compatible stores (also AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL)
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// A profile from the AWS shared config and credentials files
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// Print nothing at all (the exit code still tells)
    #[arg(long)]
    pub quiet: bool,

    /// Print only warnings, errors and dry-run lines
    #[arg(long)]
    pub only_show_errors: bool,

    /// Show no progress
    #[arg(long)]
    pub no_progress: bool,

    /// Transfers in flight at once [default: s3.max_concurrent_requests in the AWS profile, or
    /// 64: more than aws-cli's 10, for networks with latency]
    #[arg(long, value_name = "N")]
    pub concurrency: Option<NonZeroUsize>,
}

/// One `--exclude`, `--include` or `--exclude-from`, in command-line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterArg {
    Exclude(String),
    Include(String),
    /// A file of exclude patterns, one a line.
    ExcludeFrom(PathBuf),
}

/// The filter flags in the order they were typed. clap's derive keeps each flag's values apart,
/// so this reads them back with their indices (`ArgMatches::indices_of`) and merges them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterArgs {
    pub filters: Vec<FilterArg>,
}

impl clap::FromArgMatches for FilterArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut indexed: Vec<(usize, FilterArg)> = Vec::new();
        for id in ["exclude", "include"] {
            if let (Some(values), Some(indices)) =
                (matches.get_many::<String>(id), matches.indices_of(id))
            {
                for (value, index) in values.zip(indices) {
                    let filter = if id == "exclude" {
                        FilterArg::Exclude(value.clone())
                    } else {
                        FilterArg::Include(value.clone())
                    };
                    indexed.push((index, filter));
                }
            }
        }
        if let (Some(values), Some(indices)) = (
            matches.get_many::<PathBuf>("exclude_from"),
            matches.indices_of("exclude_from"),
        ) {
            for (value, index) in values.zip(indices) {
                indexed.push((index, FilterArg::ExcludeFrom(value.clone())));
            }
        }
        indexed.sort_by_key(|(index, _)| *index);
        Ok(FilterArgs {
            filters: indexed.into_iter().map(|(_, filter)| filter).collect(),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for FilterArgs {
    fn augment_args(command: clap::Command) -> clap::Command {
        use clap::{Arg, ArgAction};
        command
            .arg(
                Arg::new("exclude")
                    .long("exclude")
                    .value_name("PATTERN")
                    .action(ArgAction::Append)
                    .help("Exclude files matching PATTERN (fnmatch; `*` also matches `/`)"),
            )
            .arg(
                Arg::new("include")
                    .long("include")
                    .value_name("PATTERN")
                    .action(ArgAction::Append)
                    .help("Include files matching PATTERN again (the last matching filter wins)"),
            )
            .arg(
                Arg::new("exclude_from")
                    .long("exclude-from")
                    .value_name("FILE")
                    .value_parser(clap::value_parser!(PathBuf))
                    .action(ArgAction::Append)
                    .help("Exclude the patterns in FILE, one a line (blank lines and # comments skipped)"),
            )
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn deploy(args: &[&str]) -> DeployArgs {
        let cli = Cli::try_parse_from([&["hoist", "deploy"], args].concat()).expect("parses");
        match cli.command {
            Command::Deploy(args) => args,
            _ => panic!("expected deploy"),
        }
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every flag and argument of every command says what it does.
    #[test]
    fn every_flag_has_a_description() {
        fn check(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") || arg.is_hide_set() {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(format!("{path} {}", sub.get_name()));
                }
                check(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        check(&Cli::command(), "hoist", &mut missing);
        assert!(missing.is_empty(), "no description: {missing:?}");
    }

    #[test]
    fn dryrun_and_its_alias() {
        assert!(deploy(&["--dryrun"]).change.dryrun);
        assert!(deploy(&["--dry-run"]).change.dryrun);
        assert!(!deploy(&[]).change.dryrun);
    }

    #[test]
    fn flags_parse() {
        let args = deploy(&[
            "--config",
            "site.yaml",
            "--source",
            "dist",
            "--target",
            "s3://b/p/",
            "--endpoint-url",
            "http://127.0.0.1:9000",
            "--region",
            "eu-west-1",
            "--profile",
            "ci",
            "--output",
            "json",
            "--force",
            "--concurrency",
            "4",
            "--path-style",
            "--no-delete",
            "-q",
        ]);
        assert_eq!(
            args.target.config.as_deref(),
            Some(std::path::Path::new("site.yaml"))
        );
        assert_eq!(
            args.build.source.as_deref(),
            Some(std::path::Path::new("dist"))
        );
        assert_eq!(args.target.target.as_deref(), Some("s3://b/p/"));
        assert_eq!(
            args.target.endpoint_url.as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(args.target.region.as_deref(), Some("eu-west-1"));
        assert_eq!(args.target.profile.as_deref(), Some("ci"));
        assert_eq!(args.target.output, OutputFormat::Json);
        assert!(
            args.change.force
                && args.target.path_style
                && args.change.no_delete
                && args.target.quiet
        );
        assert_eq!(args.change.concurrency.map(NonZeroUsize::get), Some(4));
    }

    #[test]
    fn invalid_values_are_rejected() {
        for bad in [
            &["--concurrency", "0"][..],
            &["--output", "xml"][..],
            &["--bogus"][..],
        ] {
            assert!(
                Cli::try_parse_from([&["hoist", "deploy"], bad].concat()).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn invalidate_flags_override_each_other() {
        let args = deploy(&["--invalidate", "--no-invalidate"]);
        assert!(args.change.no_invalidate && !args.change.invalidate);
        let args = deploy(&["--no-invalidate", "--invalidate", "--wait"]);
        assert!(args.change.invalidate && !args.change.no_invalidate && args.change.wait);
        assert_eq!(
            deploy(&["--distribution-id", "E1"])
                .change
                .distribution_id
                .as_deref(),
            Some("E1")
        );
    }
    fn sync(args: &[&str]) -> SyncArgs {
        let cli = Cli::try_parse_from([&["hoist", "sync", "src", "s3://b/p"], args].concat())
            .expect("parses");
        match cli.command {
            Command::Sync(args) => args,
            _ => panic!("expected sync"),
        }
    }

    #[test]
    fn sync_positionals_and_defaults() {
        let args = sync(&[]);
        assert_eq!(args.source, "src");
        assert_eq!(args.destination, "s3://b/p");
        assert!(!args.delete && !args.dryrun && !args.size_only && !args.exact_timestamps);
        assert!(!args.follow_symlinks && !args.no_follow_symlinks);
        assert!(args.filters.filters.is_empty());
        assert_eq!(args.concurrency, None);
        assert_eq!(args.sse, None);
        assert!(Cli::try_parse_from(["hoist", "sync", "only-one"]).is_err());
    }

    #[test]
    fn sync_filters_keep_their_order() {
        let args = sync(&[
            "--exclude",
            "*",
            "--include",
            "*.txt",
            "--exclude-from",
            "list",
            "--exclude",
            "b*",
            "--include",
            "b1",
        ]);
        assert_eq!(
            args.filters.filters,
            [
                FilterArg::Exclude("*".into()),
                FilterArg::Include("*.txt".into()),
                FilterArg::ExcludeFrom(PathBuf::from("list")),
                FilterArg::Exclude("b*".into()),
                FilterArg::Include("b1".into()),
            ]
        );
        // `--include=x` and `--exclude x` spellings, interleaved with other flags.
        let args = sync(&["--include=a", "--delete", "--exclude", "a"]);
        assert_eq!(
            args.filters.filters,
            [
                FilterArg::Include("a".into()),
                FilterArg::Exclude("a".into())
            ]
        );
        assert!(args.delete);
    }

    #[test]
    fn sync_flags_parse() {
        let args = sync(&[
            "--delete",
            "--dryrun",
            "--size-only",
            "--exact-timestamps",
            "--no-follow-symlinks",
            "--cache-control",
            "max-age=60",
            "--content-type",
            "text/plain",
            "--content-encoding",
            "gzip",
            "--content-language",
            "en",
            "--content-disposition",
            "inline",
            "--expires",
            "2030-01-01T00:00:00Z",
            "--metadata",
            "a=1,b=2",
            "--metadata-directive",
            "REPLACE",
            "--website-redirect",
            "/other",
            "--acl",
            "public-read",
            "--sse",
            "aws:kms",
            "--sse-kms-key-id",
            "k1",
            "--storage-class",
            "STANDARD_IA",
            "--no-guess-mime-type",
            "--source-region",
            "eu-west-1",
            "--region",
            "us-west-2",
            "--endpoint-url",
            "http://127.0.0.1:5000",
            "--profile",
            "ci",
            "--quiet",
            "--only-show-errors",
            "--no-progress",
            "--concurrency",
            "32",
        ]);
        assert!(args.delete && args.dryrun && args.size_only && args.exact_timestamps);
        assert!(args.no_follow_symlinks && !args.follow_symlinks);
        assert_eq!(args.cache_control.as_deref(), Some("max-age=60"));
        assert_eq!(args.content_type.as_deref(), Some("text/plain"));
        assert_eq!(args.content_encoding.as_deref(), Some("gzip"));
        assert_eq!(args.content_language.as_deref(), Some("en"));
        assert_eq!(args.content_disposition.as_deref(), Some("inline"));
        assert_eq!(args.expires.as_deref(), Some("2030-01-01T00:00:00Z"));
        assert_eq!(args.metadata.as_deref(), Some("a=1,b=2"));
        assert_eq!(args.metadata_directive.as_deref(), Some("REPLACE"));
        assert_eq!(args.website_redirect.as_deref(), Some("/other"));
        assert_eq!(args.acl.as_deref(), Some("public-read"));
        assert_eq!(args.sse.as_deref(), Some("aws:kms"));
        assert_eq!(args.sse_kms_key_id.as_deref(), Some("k1"));
        assert_eq!(args.storage_class.as_deref(), Some("STANDARD_IA"));
        assert!(args.no_guess_mime_type);
        assert_eq!(args.source_region.as_deref(), Some("eu-west-1"));
        assert_eq!(args.region.as_deref(), Some("us-west-2"));
        assert_eq!(args.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(args.profile.as_deref(), Some("ci"));
        assert!(args.quiet && args.only_show_errors && args.no_progress);
        assert_eq!(args.concurrency.map(NonZeroUsize::get), Some(32));
    }

    #[test]
    fn sync_sse_value_is_optional() {
        assert_eq!(sync(&["--sse"]).sse.as_deref(), Some("AES256"));
        assert_eq!(sync(&["--sse", "AES256"]).sse.as_deref(), Some("AES256"));
    }

    #[test]
    fn sync_symlink_flags_override_each_other() {
        let args = sync(&["--no-follow-symlinks", "--follow-symlinks"]);
        assert!(args.follow_symlinks && !args.no_follow_symlinks);
    }

    #[test]
    fn sync_long_options_may_be_abbreviated() {
        assert!(sync(&["--dry"]).dryrun);
        assert!(sync(&["--del"]).delete);
    }

    #[test]
    fn sync_invalid_values_are_rejected() {
        for bad in [
            &["--acl", "everyone"][..],
            &["--sse", "rot13"][..],
            &["--storage-class", "cold"][..],
            &["--metadata-directive", "MERGE"][..],
            &["--concurrency", "0"][..],
            &["--bogus"][..],
        ] {
            assert!(
                Cli::try_parse_from([&["hoist", "sync", "a", "s3://b"], bad].concat()).is_err(),
                "{bad:?}"
            );
        }
    }
}

/// `--output`: lines for people, one JSON document for scripts, or (deploy and rollback) one
/// Markdown document for a pull-request comment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    #[default]
    Human,
    Json,
    Markdown,
}
