//! The top-level error, the exit codes, and the one-line rendering of an error chain.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success (a deploy with nothing to do too) |
//! | 1 | the run failed: a store error, a failed phase, a safety guard refused |
//! | 2 | bad usage, an invalid config, or a source tree hoist will not publish; `sync`: files were skipped with warnings |
//! | 130 | interrupted (SIGINT/SIGTERM) |
//! | 255 | `sync`: arguments aws-cli rejects after parsing (local to local, a missing local source, an invalid `s3` setting in the AWS profile), with aws-cli's code |
//!
//! Each module owns its error enum, which knows its [`ExitCode`]; [`crate::Error`] wraps the
//! commands' errors, like just's `Error::code()`. A variant's message says what hoist was doing
//! and its `source` says why, so `main` prints the chain without repeating a cause. This module
//! depends on nothing else in the crate.

use std::fmt;

/// Every exit code hoist uses, in one place (fd's `exit_codes.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Success,
    /// The run failed.
    Failure,
    /// Bad usage or input; for `sync`, files were skipped with warnings.
    Usage,
    /// SIGINT or SIGTERM.
    Interrupted,
    /// `sync`: aws-cli's code for arguments it rejects after parsing.
    AwsCliUsage,
}

impl ExitCode {
    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Success => 0,
            ExitCode::Failure => 1,
            ExitCode::Usage => 2,
            ExitCode::Interrupted => 130,
            ExitCode::AwsCliUsage => 255,
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

/// Displays an error and its sources on one line: `what: why: why`.
pub(crate) struct ErrorChain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}
