//! The top-level error: every failure a command can end with, and its exit code.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success (a deploy with nothing to do too) |
//! | 1 | the run failed: a store error, a failed phase, a safety guard refused |
//! | 2 | bad usage, an invalid config, or a source tree hoist will not publish |
//! | 130 | interrupted (SIGINT/SIGTERM) |
//! | 255 | `sync`: arguments aws-cli rejects after parsing (local to local, a missing local source,
//! an invalid `s3` setting in the AWS profile), with aws-cli's code |
//!
//! `sync` reports transfer failures and skipped files itself, aws-cli style, and exits 1 or 2
//! through [`crate::sync::Outcome`]; only fatal errors reach this type.

use crate::config::ConfigError;
use crate::execute::ExecuteError;
use crate::scan::ScanError;
use crate::store;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A safety guard refused the plan before anything changed.
    #[error("{message}")]
    Guard { message: String, hint: String },
    #[error(transparent)]
    Execute(ExecuteError),
    #[error("{message}")]
    Cdn {
        message: String,
        hint: Option<String>,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// `sync` arguments that aws-cli rejects after parsing, with its exit code 255.
    #[error("{0}")]
    SyncInvalid(String),
}

impl From<ExecuteError> for Error {
    fn from(error: ExecuteError) -> Self {
        Error::Execute(error)
    }
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Config(_) | Error::Scan(_) => 2,
            Error::Execute(ExecuteError::Interrupted { .. }) => 130,
            Error::Store(_) | Error::Guard { .. } | Error::Execute(_) | Error::Cdn { .. } => 1,
            Error::SyncInvalid(_) => 255,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Store(error) => error.hint(),
            Error::Guard { hint, .. } => Some(hint.clone()),
            Error::Cdn { hint, .. } => hint.clone(),
            Error::Execute(ExecuteError::PhaseFailed { failed, .. }) => {
                failed.iter().find_map(|f| f.error.hint()).or_else(|| {
                    Some("run the same command again: hoist picks up where it stopped".into())
                })
            }
            Error::Execute(ExecuteError::Interrupted { .. }) => {
                Some("run the same command again to finish the deploy".into())
            }
            _ => None,
        }
    }
}
