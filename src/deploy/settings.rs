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
    #[error("no source directory: set `source` in {} or pass --source", config_named(.0))]
    NoSource(Option<PathBuf>),
    #[error("no target: set `target` in {} or pass --target", config_named(.0))]
    NoTarget(Option<PathBuf>),
    #[error(
        "no deploy.yaml in {} or its parent directories (up to {}); pass --config FILE, or \
         --source and --target",
        .searched.display(),
        .stopped.display()
    )]
    NoConfig { searched: PathBuf, stopped: PathBuf },
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
    #[error(transparent)]
    Edge(#[from] super::edge::EdgeError),
    #[error("verify.base_url `{url}`: {message}")]
    VerifyUrl { url: String, message: String },
    #[error("{flag} {value}: {message}")]
    Flag {
        flag: &'static str,
        value: String,
        message: String,
    },
}

pub(crate) const DEFAULT_CONFIG: &str = "deploy.yaml";

/// Where previews live under the target unless `previews.prefix` says otherwise.
pub(crate) const DEFAULT_PREVIEWS_PREFIX: &str = "_previews/";

/// How long a preview lives without a deploy unless `previews.expire_after` says otherwise.
const DEFAULT_PREVIEW_EXPIRY: std::time::Duration = std::time::Duration::from_hours(14 * 24);

/// `previews:`, with its defaults.
#[derive(Debug, Clone)]
pub(crate) struct PreviewsSettings {
    /// Under the target, ending in `/`: production never deletes under it.
    pub(crate) prefix: String,
    pub(crate) expire_after: std::time::Duration,
    /// `{name}` not yet replaced.
    pub(crate) url: Option<String>,
}

impl PreviewsSettings {
    fn from_config(config: Option<&super::config::PreviewsConfig>) -> PreviewsSettings {
        PreviewsSettings {
            prefix: config
                .and_then(|p| p.prefix.clone())
                .map_or(DEFAULT_PREVIEWS_PREFIX.to_string(), |p| {
                    format!("{}/", p.trim_matches('/'))
                }),
            expire_after: config
                .and_then(|p| p.expire_after.as_ref())
                .map_or(DEFAULT_PREVIEW_EXPIRY, |span| span.0),
            url: config.and_then(|p| p.url.clone()),
        }
    }
}

/// A preview this run publishes.
#[derive(Debug, Clone)]
pub(crate) struct Preview {
    pub(crate) name: String,
    /// The production site's target, whose hashed assets are copied.
    pub(crate) origin: Target,
    /// Its address, from `previews.url`.
    pub(crate) url: Option<String>,
}

/// A preview's name: 1 to 63 of `A-Z a-z 0-9 . _ -`, not `.` or `..`, so it is one key segment
/// and a DNS label.
pub(crate) fn check_preview_name(name: &str) -> Result<(), SettingsError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(SettingsError::Flag {
            flag: "--preview",
            value: name.to_string(),
            message: "a preview name is 1 to 63 letters, digits, `.`, `_` or `-`".into(),
        })
    }
}

/// The target of preview `name` under `origin`.
pub(crate) fn preview_target(
    origin: &Target,
    prefix: &str,
    name: &str,
) -> Result<Target, SettingsError> {
    Ok(match origin {
        Target::S3 {
            bucket,
            prefix: site,
        } => Target::S3 {
            bucket: bucket.clone(),
            prefix: crate::key::Prefix::new(&format!("{}{prefix}{name}/", site.as_str())).map_err(
                |e| SettingsError::Flag {
                    flag: "--preview",
                    value: name.to_string(),
                    message: e.to_string(),
                },
            )?,
        },
        Target::Local { path } => Target::Local {
            path: path.join(prefix).join(name),
        },
    })
}

fn config_named(path: &Option<PathBuf>) -> String {
    match path {
        Some(path) => format!("`{}`", path.display()),
        None => "deploy.yaml".to_string(),
    }
}
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
    /// `--strict` or `lint.strict`: a lint finding refuses the deploy.
    pub(crate) lint_strict: bool,
    /// The lint checks `lint.allow` skips.
    pub(crate) lint_allow: Vec<String>,
    /// `verify:`, when set.
    pub(crate) verify: Option<super::verify::VerifySettings>,
    /// `--preview NAME`: this run publishes a preview; `target` is then the preview's.
    pub(crate) preview: Option<Preview>,
    /// `previews:`.
    pub(crate) previews: PreviewsSettings,
    /// `--plan-out`: where a dry run saves its plan.
    pub(crate) plan_out: Option<PathBuf>,
    /// `hoist apply`: the reviewed plan (and its file) this run must equal.
    pub(crate) reviewed: Option<(PathBuf, super::saved::SavedPlan)>,
    pub(crate) concurrency: NonZeroUsize,
    /// Files at least this large are uploaded in parts of `multipart_chunksize`.
    pub(crate) multipart_threshold: u64,
    pub(crate) multipart_chunksize: u64,
    pub(crate) rules: std::sync::Arc<Rules>,
    pub(crate) output: OutputFormat,
    pub(crate) quiet: bool,
    pub(crate) cloudfront: Option<CloudFrontSettings>,
    /// The deploy.yaml in use, when there is one.
    pub(crate) config_path: Option<PathBuf>,
    pub(crate) lifecycle: Lifecycle,
    /// How the run takes the target's lock; `None` with `--no-lock` or `lock: false`.
    pub(crate) lock: Option<LockOptions>,
    /// `--message`, for the release record.
    pub(crate) message: Option<String>,
    /// deploy.yaml's edge rules (the build's `_redirects` and `_headers` join them at scan).
    pub(crate) edge: super::edge::ConfiguredEdge,
    /// The CloudFront Functions this deploy publishes, when it manages them.
    pub(crate) function: Option<FunctionSettings>,
}

/// `cloudfront.function` with `manage: true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FunctionSettings {
    pub(crate) name: String,
    pub(crate) distribution_id: String,
    pub(crate) endpoint_url: Option<String>,
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
        let found = find_config(args.target.config.as_deref());
        let (config, base, config_path) = match &found {
            Found::File(path) => (
                DeployConfig::load_env(path, args.target.env.as_deref())?,
                base_of(path),
                Some(path.clone()),
            ),
            Found::None { .. } => (DeployConfig::default(), PathBuf::from("."), None),
        };
        let (source, site) = resolve_paths(args, &config, &base, &found, needs_source)?;
        let previews = PreviewsSettings::from_config(config.previews.as_ref());
        let (preview, target) =
            resolve_preview(args, site, &previews.prefix, previews.url.as_deref())?;
        let is_preview = preview.is_some();
        let rules = Rules::from_config(&config)?;
        let edge = super::edge::ConfiguredEdge::from_config(&config)?;
        let function = resolve_function(args, &config)?;
        let profile = args.target.profile.clone().or(config.profile.clone());
        // A local target needs no AWS configuration at all.
        if matches!(target, Target::S3 { .. }) {
            crate::aws::check_profile(profile.as_deref())?;
        }
        let cloudfront = resolve_cloudfront(args, &config)?;
        let (lifecycle, lock) = resolve_lifecycle(args, &config)?;
        Ok(DeploySettings {
            edge,
            // A preview serves from its own prefix; production's functions are production's.
            function: if is_preview { None } else { function },
            config_path,
            lifecycle,
            lock,
            message: args.change.message.clone(),
            source,
            target,
            aws: AwsOptions {
                region: args.target.region.clone().or(config.region.clone()),
                profile,
                endpoint_url: args
                    .target
                    .endpoint_url
                    .clone()
                    .or(config.endpoint_url.clone()),
                path_style: if args.target.path_style {
                    Some(true)
                } else {
                    config.path_style
                },
                timeouts: Timeouts::from_env()?,
                request_payer: false,
            },
            dryrun: args.change.dryrun,
            delete: !args.change.no_delete && config.delete.unwrap_or(true),
            max_deletes: config.max_deletes.unwrap_or(DEFAULT_MAX_DELETES),
            force: args.change.force,
            check: args.build.check,
            lint_strict: args.build.strict || config.lint.as_ref().is_some_and(|l| l.strict),
            verify: resolve_verify(config.verify.as_ref(), preview.as_ref())?,
            plan_out: args.build.plan_out.clone(),
            preview,
            previews,
            reviewed: None,
            lint_allow: lint_allow(&config),
            abort_uploads_after: config
                .abort_uploads_after
                .map_or(DEFAULT_ABORT_UPLOADS_AFTER, |span| span.0),
            follow_symlinks: args.build.follow_symlinks || config.follow_symlinks.unwrap_or(false),
            concurrency: args
                .change
                .concurrency
                .or(config.concurrency)
                .unwrap_or(crate::DEFAULT_CONCURRENCY),
            multipart_threshold: config
                .multipart_threshold
                .map_or(DEFAULT_MULTIPART_SIZE, |s| s.0),
            multipart_chunksize: config
                .multipart_chunksize
                .map_or(DEFAULT_MULTIPART_SIZE, |s| s.0),
            rules: std::sync::Arc::new(rules),
            output: args.target.output,
            quiet: args.target.quiet,
            // The distribution serves production: a preview invalidates nothing of it.
            cloudfront: if is_preview { None } else { cloudfront },
        })
    }
}

/// `lint.allow`: the checks to skip, by name.
fn lint_allow(config: &DeployConfig) -> Vec<String> {
    config
        .lint
        .as_ref()
        .map(|l| l.allow.iter().map(|c| c.0.clone()).collect())
        .unwrap_or_default()
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
            .change
            .keep_releases
            .or(config.releases.as_ref().and_then(|r| r.keep))
            .unwrap_or(DEFAULT_KEEP_RELEASES),
        keep_stale_for: span(
            "--keep-stale-for",
            &args.change.keep_stale_for,
            config.keep_stale_for.as_ref(),
            DEFAULT_KEEP_STALE_FOR,
        )?,
    };
    let lock_wait = span(
        "--lock-timeout",
        &args.change.lock_timeout,
        config.lock_timeout.as_ref(),
        lock::DEFAULT_WAIT,
    )?;
    let lock = (!args.change.no_lock && config.lock.unwrap_or(true))
        .then(|| {
            Ok::<_, SettingsError>(LockOptions {
                ttl: lock::ttl_from_env()?,
                wait: lock_wait,
            })
        })
        .transpose()?;
    Ok((lifecycle, lock))
}

/// `--preview NAME`: the preview and its target under `site`; without it, `site` itself.
fn resolve_preview(
    args: &DeployArgs,
    site: Target,
    prefix: &str,
    url: Option<&str>,
) -> Result<(Option<Preview>, Target), SettingsError> {
    let Some(name) = &args.build.preview else {
        return Ok((None, site));
    };
    check_preview_name(name)?;
    let target = preview_target(&site, prefix, name)?;
    let preview = Preview {
        name: name.clone(),
        origin: site,
        url: url.map(|url| url.replace("{name}", name)),
    };
    Ok((Some(preview), target))
}

/// `verify:`, for production; a preview is verified at its own address, when `previews.url`
/// gives one, and not at all otherwise.
fn resolve_verify(
    config: Option<&super::config::VerifyConfig>,
    preview: Option<&Preview>,
) -> Result<Option<super::verify::VerifySettings>, SettingsError> {
    match (config, preview) {
        (Some(verify), None) => Ok(Some(verify_settings(verify)?)),
        (Some(verify), Some(Preview { url: Some(url), .. })) => {
            Ok(Some(verify_settings(&super::config::VerifyConfig {
                base_url: url.clone(),
                sample: verify.sample,
                timeout: verify.timeout,
            })?))
        }
        _ => Ok(None),
    }
}

/// `verify:` checked: an http(s) base URL (made to end in `/`, so keys resolve under it).
fn verify_settings(
    config: &super::config::VerifyConfig,
) -> Result<super::verify::VerifySettings, SettingsError> {
    let wrong = |message: &str| SettingsError::VerifyUrl {
        url: config.base_url.clone(),
        message: message.to_string(),
    };
    let mut base_url = url::Url::parse(&config.base_url).map_err(|e| wrong(&e.to_string()))?;
    if !matches!(base_url.scheme(), "http" | "https") {
        return Err(wrong("must be an http:// or https:// URL"));
    }
    if base_url.query().is_some() || base_url.fragment().is_some() {
        return Err(wrong("must have no query or fragment"));
    }
    if !base_url.path().ends_with('/') {
        let path = format!("{}/", base_url.path());
        base_url.set_path(&path);
    }
    Ok(super::verify::VerifySettings {
        base_url,
        sample: config.sample,
        timeout: config
            .timeout
            .as_ref()
            .map_or(std::time::Duration::from_secs(10), |span| span.0),
    })
}

/// The source directory and the target: flags, else the config (relative to its file).
fn resolve_paths(
    args: &DeployArgs,
    config: &DeployConfig,
    base: &Path,
    found: &Found,
    needs_source: bool,
) -> Result<(PathBuf, Target), SettingsError> {
    let missing = |error: fn(Option<PathBuf>) -> SettingsError| match found {
        // Nothing was found and nothing given: say where hoist looked.
        Found::None { searched, stopped } => SettingsError::NoConfig {
            searched: searched.clone(),
            stopped: stopped.clone(),
        },
        Found::File(path) => error(Some(path.clone())),
    };
    let source = match (&args.build.source, &config.source) {
        (Some(source), _) => source.clone(),
        (None, Some(source)) => base.join(source),
        (None, None) if needs_source => return Err(missing(SettingsError::NoSource)),
        (None, None) => PathBuf::new(),
    };
    let target_url = args
        .target
        .target
        .clone()
        .or(config.target.clone())
        .ok_or_else(|| missing(SettingsError::NoTarget))?;
    let mut target = Target::parse(&target_url)?;
    if let (Target::Local { path }, None) = (&mut target, &args.target.target) {
        // A file:// target from the config file is relative to the file.
        if path.is_relative() {
            *path = base.join(&*path);
        }
    }
    Ok((source, target))
}

/// Which deploy.yaml a run uses.
enum Found {
    File(PathBuf),
    /// None in `searched` or its parents up to `stopped` (a repository root, or `/`).
    None {
        searched: PathBuf,
        stopped: PathBuf,
    },
}

/// `--config FILE` (which must exist), else `deploy.yaml` in the working directory or the
/// nearest parent that has one, stopping at the repository root (a directory with `.git`):
/// `npm run deploy` from `site/src` finds `site/deploy.yaml`.
fn find_config(explicit: Option<&Path>) -> Found {
    if let Some(path) = explicit {
        return Found::File(path.to_path_buf());
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let mut dir = Some(cwd.as_path());
    let mut last = cwd.clone();
    while let Some(current) = dir {
        let candidate = current.join(DEFAULT_CONFIG);
        if candidate.is_file() {
            // Shown relative to the working directory when it is there.
            let shown = if current == cwd {
                PathBuf::from(DEFAULT_CONFIG)
            } else {
                candidate
            };
            return Found::File(shown);
        }
        last = current.to_path_buf();
        if current.join(".git").exists() {
            break;
        }
        dir = current.parent();
    }
    Found::None {
        searched: cwd,
        stopped: last,
    }
}

/// Relative paths in a config file are relative to its directory.
fn base_of(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// `cloudfront.function` with `manage: true`: a valid name and a distribution to attach to.
fn resolve_function(
    args: &DeployArgs,
    config: &DeployConfig,
) -> Result<Option<FunctionSettings>, SettingsError> {
    let Some(section) = config.cloudfront.as_ref() else {
        return Ok(None);
    };
    let Some(function) = section.function.as_ref().filter(|f| f.manage) else {
        return Ok(None);
    };
    let invalid = |message: String| {
        SettingsError::Edge(super::edge::EdgeError {
            origin: "deploy.yaml cloudfront.function".into(),
            message,
        })
    };
    let name = &function.name;
    // CloudFront's rule for names, with room for `-response`.
    if name.is_empty()
        || name.len() > 55
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(invalid(format!(
            "name `{name}`: 1 to 55 letters, digits, `-` and `_`"
        )));
    }
    let distribution_id = args
        .change
        .distribution_id
        .clone()
        .or_else(|| section.distribution_id.clone())
        .ok_or_else(|| {
            invalid("manage: true needs cloudfront.distribution_id to associate with".into())
        })?;
    Ok(Some(FunctionSettings {
        name: name.clone(),
        distribution_id,
        endpoint_url: section.endpoint_url.clone(),
    }))
}

fn resolve_cloudfront(
    args: &DeployArgs,
    config: &DeployConfig,
) -> Result<Option<CloudFrontSettings>, SettingsError> {
    let section = config.cloudfront.as_ref();
    let distribution_id = args
        .change
        .distribution_id
        .clone()
        .or_else(|| section.and_then(|c| c.distribution_id.clone()));
    let enabled = if args.change.no_invalidate {
        false
    } else if args.change.invalidate {
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
                wait: args.change.wait || section.is_some_and(|c| c.wait),
                max_paths: section
                    .and_then(|c| c.max_paths)
                    .map_or(DEFAULT_MAX_PATHS, NonZeroUsize::get),
                endpoint_url: section.and_then(|c| c.endpoint_url.clone()),
            }))
        }
        (None, true) if args.change.invalidate => Err(SettingsError::InvalidateWithoutDistribution),
        _ => Ok(None),
    }
}
