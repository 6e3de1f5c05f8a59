//! How a deploy fails: each stage's error, wrapped once, with its exit code and hint.

use std::path::PathBuf;

use super::cdn::CdnError;
use super::execute::ExecuteError;
use super::lock::LockError;
use super::report::{DeployReport, JsonError};
use super::scan::ScanError;
use super::settings::SettingsError;
use crate::error::ExitCode;
use crate::store;

#[derive(Debug, thiserror::Error)]
pub(crate) enum DeployError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Guard(#[from] GuardError),
    #[error(transparent)]
    Execute(#[from] ExecuteError),
    #[error(transparent)]
    Cdn(#[from] CdnError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Rollback(#[from] RollbackError),
    #[error(transparent)]
    Saved(#[from] super::saved::SavedPlanError),
}

/// A failed run: the error, and the report of what it did when it got that far (the actions
/// that completed; a refused dry run's whole plan), for `--output json`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: DeployError,
    pub(crate) report: Option<Box<DeployReport>>,
}

impl Failure {
    pub(crate) fn with_report(error: DeployError, report: DeployReport) -> Failure {
        Failure {
            error,
            report: Some(Box::new(report)),
        }
    }
}

impl<E: Into<DeployError>> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure {
            error: error.into(),
            report: None,
        }
    }
}

/// A rollback that cannot be made; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RollbackError {
    #[error("{target} has no releases yet: deploy first (releases.keep is {keep})")]
    NoReleases { target: String, keep: usize },
    #[error("there is no release before the live one ({live}) to roll back to")]
    NothingBefore { live: u64 },
    #[error(
        "release {id} is not retained; the retained releases are {}",
        list(retained)
    )]
    NotRetained { id: u64, retained: Vec<u64> },
    #[error("the record of release {id} (`{url}`) is missing or unreadable")]
    Record {
        id: u64,
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "release {id} cannot be restored: the bytes of {} are no longer kept (first: `{}`);          nothing was changed",
        if keys.len() == 1 { "1 key".to_string() } else { format!("{} keys", keys.len()) },
        keys.first().map_or("", String::as_str)
    )]
    Unrestorable { id: u64, keys: Vec<String> },
}

fn list(ids: &[u64]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    ids.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A safety guard refused the plan before anything changed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GuardError {
    #[error(
        "source `{}` has no files to publish; refusing to deploy an empty site to {target}",
        dir.display()
    )]
    EmptySource { dir: PathBuf, target: String },
    #[error(
        "{} pair(s) of files have names equal after Unicode NFC normalization: {}; a typed URL \
         reaches only one of each; nothing was changed",
        twins.len(),
        twins.iter().map(|(a, b)| format!("`{a}` and `{b}`")).collect::<Vec<_>>().join(", ")
    )]
    NormalizationTwins { twins: Vec<(String, String)> },
    #[error(
        "the plan deletes {count} objects under {target}, more than max_deletes ({max}); nothing was changed"
    )]
    TooManyDeletes {
        count: usize,
        target: String,
        max: usize,
    },
    #[error(
        "{} lint finding(s), and lint is strict; nothing was changed:\n  {}",
        findings.len(),
        findings.join("\n  ")
    )]
    Lint { findings: Vec<String> },
    #[error(
        "{} no longer matches this run, so nothing was changed:\n  {}",
        plan.display(),
        differences.join("\n  ")
    )]
    PlanChanged {
        plan: PathBuf,
        differences: Vec<String>,
    },
    #[error("no preview `{name}` under {target}")]
    NoSuchPreview { name: String, target: String },
}

impl DeployError {
    /// The report's `status`: `refused` when a guard said no (nothing changed),
    /// `interrupted`, or `failed`.
    pub(crate) fn status(&self) -> &'static str {
        match self {
            DeployError::Guard(_) => "refused",
            DeployError::Execute(ExecuteError::Interrupted { .. })
            | DeployError::Lock(LockError::Interrupted { .. }) => "interrupted",
            _ => "failed",
        }
    }

    /// The report's `errors`: one short entry per failure.
    pub(crate) fn json_errors(&self) -> Vec<JsonError> {
        let one = |code: &str, message: String| vec![JsonError::new(code, message)];
        let chain = || crate::error::ErrorChain(self).to_string();
        let each = |code: &str, messages: &[String]| {
            messages
                .iter()
                .map(|message| JsonError {
                    key: None,
                    phase: None,
                    code: code.to_string(),
                    message: message.clone(),
                })
                .collect()
        };
        match self {
            DeployError::Execute(ExecuteError::PhaseFailed { phase, failed, .. }) => failed
                .iter()
                .map(|failure| JsonError {
                    key: Some(failure.key.as_str().to_string()),
                    phase: Some(*phase),
                    code: failure.error.code().to_string(),
                    message: failure.error.short_cause(),
                })
                .collect(),
            DeployError::Execute(
                ExecuteError::Interrupted { phase, .. } | ExecuteError::LockLost { phase, .. },
            ) => vec![JsonError {
                key: None,
                phase: Some(*phase),
                code: if matches!(self, DeployError::Execute(ExecuteError::LockLost { .. })) {
                    "LockLost".into()
                } else {
                    "Interrupted".into()
                },
                message: chain(),
            }],
            DeployError::Execute(ExecuteError::Verify { source, .. }) => match source {
                super::verify::VerifyError::Failed { problems, .. } => problems
                    .iter()
                    .map(|p| JsonError {
                        key: None,
                        phase: None,
                        code: "VerifyFailed".into(),
                        message: format!("{} (from {}): {}", p.url, p.page, p.what),
                    })
                    .collect(),
                super::verify::VerifyError::Client(_) => one("VerifyFailed", chain()),
            },
            DeployError::Execute(ExecuteError::Function { .. }) => {
                one("CloudFrontFunction", chain())
            }
            DeployError::Store(error) => one(error.code(), chain()),
            DeployError::Settings(_) => one("InvalidConfig", chain()),
            DeployError::Scan(_) => one("UnpublishableSource", chain()),
            DeployError::Guard(GuardError::EmptySource { .. }) => one("EmptySource", chain()),
            DeployError::Guard(GuardError::NormalizationTwins { .. }) => {
                one("NormalizationTwins", chain())
            }
            DeployError::Guard(GuardError::TooManyDeletes { .. }) => one("TooManyDeletes", chain()),
            DeployError::Guard(GuardError::PlanChanged { differences, .. }) => {
                each("PlanChanged", differences)
            }
            DeployError::Saved(_) => one("InvalidPlan", chain()),
            DeployError::Guard(GuardError::NoSuchPreview { .. }) => one("NoSuchPreview", chain()),
            DeployError::Guard(GuardError::Lint { findings }) => each("LintFailed", findings),
            DeployError::Cdn(_) => one("CloudFront", chain()),
            DeployError::Lock(LockError::Held { .. }) => one("LockHeld", chain()),
            DeployError::Lock(LockError::Unsupported { .. }) => one("NoConditionalWrites", chain()),
            DeployError::Lock(LockError::Interrupted { .. }) => one("Interrupted", chain()),
            DeployError::Lock(LockError::Store { source, .. }) => one(source.code(), chain()),
            DeployError::Rollback(RollbackError::Unrestorable { .. }) => {
                one("Unrestorable", chain())
            }
            DeployError::Rollback(_) => one("NoSuchRelease", chain()),
        }
    }

    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            DeployError::Settings(_)
            | DeployError::Saved(_)
            | DeployError::Scan(_)
            | DeployError::Lock(LockError::Unsupported { .. })
            | DeployError::Rollback(RollbackError::NotRetained { .. }) => ExitCode::Usage,
            DeployError::Execute(ExecuteError::Interrupted { .. })
            | DeployError::Lock(LockError::Interrupted { .. }) => ExitCode::Interrupted,
            DeployError::Lock(_)
            | DeployError::Rollback(_)
            | DeployError::Store(_)
            | DeployError::Guard(_)
            | DeployError::Execute(_)
            | DeployError::Cdn(_) => ExitCode::Failure,
        }
    }

    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            DeployError::Settings(SettingsError::Profile(missing)) => Some(missing.hint()),
            DeployError::Scan(error) => error.hint(),
            DeployError::Store(error) => error.hint(),
            DeployError::Guard(GuardError::EmptySource { .. }) => Some(
                "an empty build usually means the build failed; pass --force to publish it anyway"
                    .into(),
            ),
            DeployError::Guard(GuardError::NormalizationTwins { .. }) => Some(
                "rename one file of each pair (macOS tools write NFD names), or pass --force"
                    .into(),
            ),
            DeployError::Guard(GuardError::TooManyDeletes { .. }) => Some(
                "check --source and --target, then raise max_deletes in deploy.yaml or pass --force"
                    .into(),
            ),
            DeployError::Guard(GuardError::PlanChanged { .. }) => Some(
                "review the plan again: `hoist deploy --dryrun --plan-out FILE`, then `hoist \
                 apply FILE`"
                    .into(),
            ),
            DeployError::Guard(GuardError::Lint { .. }) => Some(
                "fix what each finding says, or skip a check with `lint: {allow: [NAME]}` in \
                 deploy.yaml"
                    .into(),
            ),
            DeployError::Cdn(error) => error.hint(),
            DeployError::Execute(ExecuteError::PhaseFailed { failed, .. }) => {
                failed.iter().find_map(|f| f.error.hint()).or_else(|| {
                    Some("run the same command again: hoist picks up where it stopped".into())
                })
            }
            DeployError::Execute(ExecuteError::Interrupted { .. } | ExecuteError::LockLost { .. }) => {
                Some("run the same command again to finish the deploy".into())
            }
            DeployError::Execute(ExecuteError::Function { .. }) => Some(
                "the site still serves the previous pages and functions; fix the cause and run \
                 the same command again, or attach the functions by hand (`hoist edge build`)"
                    .into(),
            ),
            DeployError::Execute(ExecuteError::Verify { .. }) => Some(
                "the new pages are live and every old file is still there: `hoist rollback` \
                 serves the previous release again (with releases on), or fix the build and \
                 deploy again"
                    .into(),
            ),
            DeployError::Lock(error) => error.hint(),
            DeployError::Rollback(RollbackError::Unrestorable { .. }) => Some(
                "choose a newer release (`hoist releases`), or deploy that release's build".into(),
            ),
            DeployError::Guard(GuardError::NoSuchPreview { .. }) => {
                Some("`hoist previews list` names the previews there are".into())
            }
            DeployError::Settings(_) | DeployError::Rollback(_) | DeployError::Saved(_) => None,
        }
    }
}
