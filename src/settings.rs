//! Flags > deploy.yaml > defaults, validated into typed values before the first request.
//!
//! Relative paths in deploy.yaml are relative to the file; on the command line, to the working
//! directory. The default config (`deploy.yaml` in the working directory) may be absent when
//! `--source` and `--target` are given; a config named with `--config` must exist.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use crate::aws::{AwsOptions, Timeouts};
use crate::cli::DeployArgs;
use crate::config::{ConfigError, DeployConfig};
use crate::error::Error;
use crate::execute::ExecOptions;
use crate::report::OutputFormat;
use crate::rules::Rules;
use crate::store::s3::Multipart;
use crate::target::Target;

pub const DEFAULT_CONFIG: &str = "deploy.yaml";
pub const DEFAULT_CONCURRENCY: usize = 16;
pub const DEFAULT_MAX_DELETES: usize = 256;
pub const DEFAULT_MAX_PATHS: usize = 100;

#[derive(Debug)]
pub struct DeploySettings {
    pub source: PathBuf,
    pub target: Target,
    pub aws: AwsOptions,
    pub dryrun: bool,
    pub delete: bool,
    pub max_deletes: usize,
    pub force: bool,
    pub concurrency: NonZeroUsize,
    pub multipart: Multipart,
    pub rules: std::sync::Arc<Rules>,
    pub output: OutputFormat,
    pub quiet: bool,
    pub cloudfront: Option<CloudFrontSettings>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudFrontSettings {
    pub distribution_id: String,
    pub wait: bool,
    pub max_paths: usize,
    pub endpoint_url: Option<String>,
}

impl DeploySettings {
    pub fn resolve(args: &DeployArgs) -> Result<DeploySettings, Error> {
        let (config, base) = load_config(args.config.as_deref())?;
        let source = match (&args.source, &config.source) {
            (Some(source), _) => source.clone(),
            (None, Some(source)) => base.join(source),
            (None, None) => {
                return Err(Error::Usage(
                    "no source directory: set `source` in deploy.yaml or pass --source".into(),
                ));
            }
        };
        let target_url = args
            .target
            .clone()
            .or(config.target.clone())
            .ok_or_else(|| {
                Error::Usage("no target: set `target` in deploy.yaml or pass --target".into())
            })?;
        let mut target = Target::parse(&target_url).map_err(|e| Error::Usage(e.to_string()))?;
        if let (Target::Local { path }, None) = (&mut target, &args.target) {
            // A file:// target from the config file is relative to the file.
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        let rules = Rules::from_config(&config).map_err(|e| Error::Usage(e.to_string()))?;
        let cloudfront = resolve_cloudfront(args, &config)?;
        let multipart = Multipart {
            threshold: config
                .multipart_threshold
                .map_or(Multipart::default().threshold, |s| s.0),
            chunk_size: config
                .multipart_chunksize
                .map_or(Multipart::default().chunk_size, |s| s.0),
        };
        Ok(DeploySettings {
            source,
            target,
            aws: AwsOptions {
                region: args.region.clone().or(config.region.clone()),
                profile: args.profile.clone().or(config.profile.clone()),
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
            concurrency: args
                .concurrency
                .or(config.concurrency)
                .unwrap_or(NonZeroUsize::new(DEFAULT_CONCURRENCY).expect("non-zero")),
            multipart,
            rules: std::sync::Arc::new(rules),
            output: args.output,
            quiet: args.quiet,
            cloudfront,
        })
    }

    pub fn exec_options(&self) -> ExecOptions {
        ExecOptions {
            concurrency: self.concurrency.get(),
            stream_threshold: self.multipart.threshold,
            ..ExecOptions::default()
        }
    }
}

fn load_config(explicit: Option<&Path>) -> Result<(DeployConfig, PathBuf), Error> {
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
) -> Result<Option<CloudFrontSettings>, Error> {
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
                return Err(Error::Usage(format!(
                    "invalid CloudFront distribution id `{id}`"
                )));
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
        (None, true) if args.invalidate => Err(Error::Usage(
            "--invalidate needs a distribution: pass --distribution-id or set cloudfront.distribution_id"
                .into(),
        )),
        _ => Ok(None),
    }
}

impl Timeouts {
    /// Defaults, overridable with `HOIST_CONNECT_TIMEOUT` and `HOIST_READ_TIMEOUT` (seconds).
    pub fn from_env() -> Result<Timeouts, Error> {
        let mut timeouts = Timeouts::default();
        for (name, slot) in [
            ("HOIST_CONNECT_TIMEOUT", &mut timeouts.connect),
            ("HOIST_READ_TIMEOUT", &mut timeouts.read),
        ] {
            if let Ok(value) = std::env::var(name) {
                let seconds: f64 = value
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| {
                        Error::Usage(format!("{name}={value}: expected a number of seconds"))
                    })?;
                *slot = std::time::Duration::from_secs_f64(seconds);
            }
        }
        Ok(timeouts)
    }
}
