//! hoist publishes static websites to Amazon S3 and S3-compatible stores, and is a faithful,
//! faster `aws s3 sync`.
//!
//! Two products over one store. [`deploy`] is the rule-driven publisher: settings → scan →
//! plan (pure) → execute in phases → CloudFront → manifest. [`sync`] is `aws s3 sync` with
//! aws-cli's semantics: its own walk, filters, comparison and executor, because its contract
//! (aws-cli's lines, raw key names, mtime comparison) is not deploy's (content hashes, phases,
//! a manifest). What they share sits here: [`cli`] (what the user typed), [`error`] (one
//! [`ExitCode`] for both), [`aws`] (the SDK session and the S3 store it
//! opens), [`store`] (the [`Store`](store::Store) trait deploy uses and the
//! [`NamedStore`](store::NamedStore) trait sync uses, over the S3 and local backends),
//! [`key`] (the only way to name a remote object, so nothing can name one outside the target),
//! [`headers`], [`interrupt`] and [`report`] (the printer, the only code that writes to the
//! terminal).

pub(crate) mod aws;
pub mod cli;
mod clock;
pub(crate) mod deploy;
pub mod digest;
mod doctor;
pub mod error;
pub mod headers;
mod init;
pub(crate) mod interrupt;
pub mod key;
pub(crate) mod report;
pub mod store;
pub(crate) mod sync;

pub use error::ExitCode;

/// Requests in flight when the user set none (`deploy` and `sync`): a deploy crosses 10-50 ms
/// of round trip to S3, where the number of requests in flight, not CPU, decides the time
/// (`bench/run-latency`); aws-cli's 10 left hoist 4x behind s5cmd there, and at 20 ms 128
/// took 0.85x of 64's upload time and download time (s5cmd keeps 256). It is the ceiling of
/// each S3 client's congestion window ([`aws::window`]), which starts lower and halves when the
/// store throttles (503 SlowDown, 429). Memory stays bounded by each executor's byte budget,
/// not by this number.
pub(crate) const DEFAULT_CONCURRENCY: std::num::NonZeroUsize =
    std::num::NonZeroUsize::new(128).expect("non-zero");
pub use report::{print_error, print_unknown_options};

use clap::CommandFactory;
use cli::Command;
use deploy::DeployError;
use interrupt::Interrupt;
use sync::SyncError;

/// Runs one command to its end. Installs the SIGINT/SIGTERM handler first: the first signal
/// stops scheduling and lets requests in flight finish; the second exits at once.
pub async fn run(command: Command) -> Result<ExitCode, Error> {
    let interrupt = Interrupt::new();
    interrupt.install();
    match command {
        Command::Deploy(args) => {
            deploy::run(&args, &interrupt).await?;
            Ok(ExitCode::Success)
        }
        Command::Rollback(args) => {
            deploy::rollback(&args, &interrupt).await?;
            Ok(ExitCode::Success)
        }
        Command::Previews(args) => {
            deploy::previews(&args, &interrupt).await?;
            Ok(ExitCode::Success)
        }
        Command::Apply(args) => {
            deploy::apply(&args, &interrupt).await?;
            Ok(ExitCode::Success)
        }
        Command::Edge(args) => {
            deploy::edge_build(&args)?;
            Ok(ExitCode::Success)
        }
        Command::Releases(args) => {
            deploy::releases(&args, &interrupt).await?;
            Ok(ExitCode::Success)
        }
        Command::Completions { shell } => {
            report::shell_text(|out| {
                clap_complete::generate(shell, &mut cli::Cli::command(), "hoist", out);
            });
            Ok(ExitCode::Success)
        }
        Command::Init(args) => {
            for line in init::run(&args).map_err(|e| Error(Kind::Init(e)))? {
                report::out_line(&line);
            }
            Ok(ExitCode::Success)
        }
        Command::Doctor(args) => Ok(if doctor::run(&args).await {
            ExitCode::Success
        } else {
            ExitCode::Failure
        }),
        Command::Schema => {
            let schema = deploy::config::schema();
            report::out_line(&serde_json::to_string_pretty(&schema).expect("schema serializes"));
            Ok(ExitCode::Success)
        }
        Command::Man => {
            report::shell_text(|out| {
                // Writing to stdout fails only when it is closed: nothing left to tell.
                let _ = clap_mangen::Man::new(cli::Cli::command()).render(out);
            });
            Ok(ExitCode::Success)
        }
        // sync prints its own failures and warnings, aws-cli style; its outcome is the code.
        Command::Sync(args) => Ok(sync::run(&args, &interrupt).await?.exit_code()),
    }
}

/// How a command failed. Opaque outside the crate: its message, its sources, its exit code and
/// its hint are what a caller gets.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(Kind);

#[derive(Debug, thiserror::Error)]
enum Kind {
    #[error(transparent)]
    Deploy(DeployError),
    #[error(transparent)]
    Sync(SyncError),
    #[error(transparent)]
    Init(init::InitError),
}

impl From<DeployError> for Error {
    fn from(error: DeployError) -> Self {
        Error(Kind::Deploy(error))
    }
}

impl From<SyncError> for Error {
    fn from(error: SyncError) -> Self {
        Error(Kind::Sync(error))
    }
}

impl Error {
    pub fn exit_code(&self) -> ExitCode {
        match &self.0 {
            Kind::Deploy(error) => error.exit_code(),
            Kind::Sync(error) => error.exit_code(),
            Kind::Init(init::InitError::Write { .. }) => ExitCode::Failure,
            Kind::Init(_) => ExitCode::Usage,
        }
    }

    /// Advice printed after the error chain.
    pub fn hint(&self) -> Option<String> {
        match &self.0 {
            Kind::Deploy(error) => error.hint(),
            Kind::Init(init::InitError::Exists(_)) => {
                Some("edit the existing file, or move it away and run hoist init again".into())
            }
            Kind::Sync(_) | Kind::Init(_) => None,
        }
    }
}
