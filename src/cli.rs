//! What the user typed: clap derive structs and nothing more. [`crate::settings`] turns these
//! into validated values; nothing downstream reads a flag.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::report::OutputFormat;

#[derive(Debug, Parser)]
#[command(
    name = "hoist",
    version,
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
pub enum Command {
    /// Publish a built site to S3 following deploy.yaml: assets first, HTML last, then deletes.
    Deploy(DeployArgs),
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The rule file [default: deploy.yaml in the working directory]
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print the plan and change nothing: only List, Get and Head requests are sent
    #[arg(long = "dryrun", visible_alias = "dry-run")]
    pub dryrun: bool,

    /// The directory to publish (overrides `source`)
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,

    /// Where to publish: s3://bucket[/prefix/] or file://PATH (overrides `target`)
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,

    /// S3 endpoint for S3-compatible stores (also AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL)
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,

    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// A profile from the AWS shared config and credentials files
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// Force path-style addressing (automatic for localhost and IP endpoints)
    #[arg(long)]
    pub path_style: bool,

    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,

    /// Override the safety guards: `max_deletes`, and publishing an empty source
    #[arg(long)]
    pub force: bool,

    /// Keep stale keys instead of deleting them
    #[arg(long)]
    pub no_delete: bool,

    /// Requests in flight at once [default: 16]
    #[arg(long, value_name = "N")]
    pub concurrency: Option<NonZeroUsize>,

    /// Print only errors and the final summary
    #[arg(long, short)]
    pub quiet: bool,

    /// CloudFront distribution to invalidate (overrides cloudfront.distribution_id)
    #[arg(long, value_name = "ID")]
    pub distribution_id: Option<String>,

    /// Invalidate CloudFront after the deploy (the default when a distribution is configured)
    #[arg(long, overrides_with = "no_invalidate")]
    pub invalidate: bool,

    /// Do not invalidate CloudFront
    #[arg(long, overrides_with = "invalidate")]
    pub no_invalidate: bool,

    /// Wait until the CloudFront invalidation completes
    #[arg(long)]
    pub wait: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn deploy(args: &[&str]) -> DeployArgs {
        let cli = Cli::try_parse_from([&["hoist", "deploy"], args].concat()).expect("parses");
        match cli.command {
            Command::Deploy(args) => args,
        }
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn dryrun_and_its_alias() {
        assert!(deploy(&["--dryrun"]).dryrun);
        assert!(deploy(&["--dry-run"]).dryrun);
        assert!(!deploy(&[]).dryrun);
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
            args.config.as_deref(),
            Some(std::path::Path::new("site.yaml"))
        );
        assert_eq!(args.source.as_deref(), Some(std::path::Path::new("dist")));
        assert_eq!(args.target.as_deref(), Some("s3://b/p/"));
        assert_eq!(args.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(args.region.as_deref(), Some("eu-west-1"));
        assert_eq!(args.profile.as_deref(), Some("ci"));
        assert_eq!(args.output, OutputFormat::Json);
        assert!(args.force && args.path_style && args.no_delete && args.quiet);
        assert_eq!(args.concurrency.map(NonZeroUsize::get), Some(4));
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
        assert!(args.no_invalidate && !args.invalidate);
        let args = deploy(&["--no-invalidate", "--invalidate", "--wait"]);
        assert!(args.invalidate && !args.no_invalidate && args.wait);
        assert_eq!(
            deploy(&["--distribution-id", "E1"])
                .distribution_id
                .as_deref(),
            Some("E1")
        );
    }
}
