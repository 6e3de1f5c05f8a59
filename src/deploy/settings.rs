//! Flags > deploy.yaml > defaults, validated into typed values before the first request.
//!
//! Relative paths in deploy.yaml are relative to the file; on the command line, to the working
//! directory. The default config (`deploy.yaml` in the working directory) may be absent when
//! `--source` and `--target` are given; a config named with `--config` must exist.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use super::config::{ConfigError, DeployConfig, Span};
use super::lock::{self, LockOptions};
use super::release::Lifecycle;
use super::rules::{RuleError, Rules};
use super::target::{Target, TargetError};
use crate::aws::{AwsOptions, EnvError, ProfileNotFound, Timeouts};
use crate::cli::DeployArgs;
use crate::cli::OutputFormat;

/// Flags and deploy.yaml that do not make a deploy: exit 2, before any request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SettingsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("no source directory: set `source` in deploy.yaml or pass --source")]
    NoSource,
    #[error("no target: set `target` in deploy.yaml or pass --target")]
    NoTarget,
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Rules(#[from] RuleError),
    #[error("invalid CloudFront distribution id `{0}`")]
    DistributionId(String),
    #[error(
        "--invalidate needs a distribution: pass --distribution-id or set cloudfront.distribution_id"
    )]
    InvalidateWithoutDistribution,
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error(transparent)]
    Profile(#[from] ProfileNotFound),
    #[error("{flag} {value}: {message}")]
    Flag {
        flag: &'static str,
        value: String,
        message: String,
    },
}

pub(crate) const DEFAULT_CONFIG: &str = "deploy.yaml";
pub(crate) const DEFAULT_CONCURRENCY: usize = 16;
pub(crate) const DEFAULT_MAX_DELETES: usize = 256;
pub(crate) const DEFAULT_MAX_PATHS: usize = 100;
/// A multipart upload this old is no live run's: S3's own lifecycle examples use a day.
pub(crate) const DEFAULT_ABORT_UPLOADS_AFTER: std::time::Duration =
    std::time::Duration::from_hours(24);
/// How long stale hashed assets outlive the site that used them.
pub(crate) const DEFAULT_KEEP_STALE_FOR: std::time::Duration =
    std::time::Duration::from_hours(24 * 7);
pub(crate) const DEFAULT_KEEP_RELEASES: usize = 10;
/// aws-cli's multipart threshold and part size.
pub(crate) const DEFAULT_MULTIPART_SIZE: u64 = 8 << 20;

#[derive(Debug)]
pub(crate) struct DeploySettings {
    pub(crate) source: PathBuf,
    pub(crate) target: Target,
    pub(crate) aws: AwsOptions,
    pub(crate) dryrun: bool,
    pub(crate) delete: bool,
    pub(crate) max_deletes: usize,
    pub(crate) force: bool,
    /// Publish the targets of symlinks that lead outside the source.
    pub(crate) follow_symlinks: bool,
    /// Multipart uploads begun longer ago than this are a killed run's, and aborted.
    pub(crate) abort_uploads_after: std::time::Duration,
    /// `--check`: HEAD every object instead of trusting the manifest.
    pub(crate) check: bool,
    pub(crate) concurrency: NonZeroUsize,
    /// Files at least this large are uploaded in parts of `multipart_chunksize`.
    pub(crate) multipart_threshold: u64,
    pub(crate) multipart_chunksize: u64,
    pub(crate) rules: std::sync::Arc<Rules>,
    pub(crate) output: OutputFormat,
    pub(crate) quiet: bool,
    pub(crate) cloudfront: Option<CloudFrontSettings>,
    pub(crate) lifecycle: Lifecycle,
    /// How the run takes the target's lock; `None` with `--no-lock` or `lock: false`.
    pub(crate) lock: Option<LockOptions>,
    /// `--message`, for the release record.
    pub(crate) message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloudFrontSettings {
    pub(crate) distribution_id: String,
    pub(crate) wait: bool,
    pub(crate) max_paths: usize,
    pub(crate) endpoint_url: Option<String>,
}

impl DeploySettings {
    pub(crate) fn resolve(args: &DeployArgs) -> Result<DeploySettings, SettingsError> {
        Self::resolve_with(args, true)
    }

    /// For commands that work on the target alone (`rollback`, `releases`): no source needed.
    pub(crate) fn resolve_target(args: &DeployArgs) -> Result<DeploySettings, SettingsError> {
        Self::resolve_with(args, false)
    }

    fn resolve_with(
        args: &DeployArgs,
        needs_source: bool,
    ) -> Result<DeploySettings, SettingsError> {
        let (config, base) = load_config(args.config.as_deref())?;
        let source = match (&args.source, &config.source) {
            (Some(source), _) => source.clone(),
            (None, Some(source)) => base.join(source),
            (None, None) if needs_source => return Err(SettingsError::NoSource),
            (None, None) => PathBuf::new(),
        };
        let target_url = args
            .target
            .clone()
            .or(config.target.clone())
            .ok_or(SettingsError::NoTarget)?;
        let mut target = Target::parse(&target_url)?;
        if let (Target::Local { path }, None) = (&mut target, &args.target) {
            // A file:// target from the config file is relative to the file.
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        let rules = Rules::from_config(&config)?;
        let profile = args.profile.clone().or(config.profile.clone());
        // A local target needs no AWS configuration at all.
        if matches!(target, Target::S3 { .. }) {
            crate::aws::check_profile(profile.as_deref())?;
        }
        let cloudfront = resolve_cloudfront(args, &config)?;
        let (lifecycle, lock) = resolve_lifecycle(args, &config)?;
        Ok(DeploySettings {
            lifecycle,
            lock,
            message: args.message.clone(),
            source,
            target,
            aws: AwsOptions {
                region: args.region.clone().or(config.region.clone()),
                profile,
                endpoint_url: args.endpoint_url.clone().or(config.endpoint_url.clone()),
                path_style: if args.path_style {
                    Some(true)
                } else {
                    config.path_style
                },
                timeouts: Timeouts::from_env()?,
            },
            dryrun: args.dryrun,
            delete: !args.no_delete && config.delete.unwrap_or(true),
            max_deletes: config.max_deletes.unwrap_or(DEFAULT_MAX_DELETES),
            force: args.force,
            check: args.check,
            abort_uploads_after: config
                .abort_uploads_after
                .map_or(DEFAULT_ABORT_UPLOADS_AFTER, |span| span.0),
            follow_symlinks: args.follow_symlinks || config.follow_symlinks.unwrap_or(false),
            concurrency: args
                .concurrency
                .or(config.concurrency)
                .unwrap_or(NonZeroUsize::new(DEFAULT_CONCURRENCY).expect("non-zero")),
            multipart_threshold: config
                .multipart_threshold
                .map_or(DEFAULT_MULTIPART_SIZE, |s| s.0),
            multipart_chunksize: config
                .multipart_chunksize
                .map_or(DEFAULT_MULTIPART_SIZE, |s| s.0),
            rules: std::sync::Arc::new(rules),
            output: args.output,
            quiet: args.quiet,
            cloudfront,
        })
    }
}

/// The release lifecycle and the lock: flags > deploy.yaml > defaults.
fn resolve_lifecycle(
    args: &DeployArgs,
    config: &DeployConfig,
) -> Result<(Lifecycle, Option<LockOptions>), SettingsError> {
    let span =
        |flag: &'static str, value: &Option<String>, config: Option<&Span>, default| match value {
            Some(text) => Span::parse(text)
                .map(|s| s.0)
                .map_err(|message| SettingsError::Flag {
                    flag,
                    value: text.clone(),
                    message,
                }),
            None => Ok(config.map_or(default, |s| s.0)),
        };
    let lifecycle = Lifecycle {
        keep_releases: args
            .keep_releases
            .or(config.releases.as_ref().and_then(|r| r.keep))
            .unwrap_or(DEFAULT_KEEP_RELEASES),
        keep_stale_for: span(
            "--keep-stale-for",
            &args.keep_stale_for,
            config.keep_stale_for.as_ref(),
            DEFAULT_KEEP_STALE_FOR,
        )?,
    };
    let lock_wait = span(
        "--lock-timeout",
        &args.lock_timeout,
        config.lock_timeout.as_ref(),
        lock::DEFAULT_WAIT,
    )?;
    let lock = (!args.no_lock && config.lock.unwrap_or(true))
        .then(|| {
            Ok::<_, SettingsError>(LockOptions {
                ttl: lock::ttl_from_env()?,
                wait: lock_wait,
            })
        })
        .transpose()?;
    Ok((lifecycle, lock))
}

fn load_config(explicit: Option<&Path>) -> Result<(DeployConfig, PathBuf), SettingsError> {
    let path = explicit.unwrap_or(Path::new(DEFAULT_CONFIG));
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    match DeployConfig::load(path) {
        Ok(config) => Ok((config, base)),
        Err(ConfigError::Read { source, .. })
            if explicit.is_none() && source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok((DeployConfig::default(), PathBuf::from(".")))
        }
        Err(e) => Err(e.into()),
    }
}

fn resolve_cloudfront(
    args: &DeployArgs,
    config: &DeployConfig,
) -> Result<Option<CloudFrontSettings>, SettingsError> {
    let section = config.cloudfront.as_ref();
    let distribution_id = args
        .distribution_id
        .clone()
        .or_else(|| section.and_then(|c| c.distribution_id.clone()));
    let enabled = if args.no_invalidate {
        false
    } else if args.invalidate {
        true
    } else {
        section.and_then(|c| c.invalidate).unwrap_or(true)
    };
    match (distribution_id, enabled) {
        (Some(id), true) => {
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(SettingsError::DistributionId(id));
            }
            Ok(Some(CloudFrontSettings {
                distribution_id: id,
                wait: args.wait || section.is_some_and(|c| c.wait),
                max_paths: section
                    .and_then(|c| c.max_paths)
                    .map_or(DEFAULT_MAX_PATHS, NonZeroUsize::get),
                endpoint_url: section.and_then(|c| c.endpoint_url.clone()),
            }))
        }
        (None, true) if args.invalidate => Err(SettingsError::InvalidateWithoutDistribution),
        _ => Ok(None),
    }
}
