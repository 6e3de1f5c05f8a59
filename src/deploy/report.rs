//! What a deploy tells the user: one line per action, the summary line, or the JSON document
//! (`--output json`). [`DeployReport::new`] is the one place a report and its [`Summary`] are
//! built, for dry runs, finished runs and failed ones alike.

use std::time::Instant;

use super::cdn::InvalidationReport;
use super::manifest::ReleaseSummary;
use super::plan::{Action, Kept, Op, Plan};
use crate::cli::OutputFormat;
use crate::key::Key;
use crate::report::{Printer, escape, human_bytes};

pub(crate) mod markdown;

/// The version of the JSON document's shape; a field changes meaning only with a new one.
pub(crate) const SCHEMA: u32 = 1;

/// The JSON document `--output json` prints, for every outcome.
#[derive(Debug, serde::Serialize)]
pub(crate) struct DeployReport {
    schema: u32,
    /// `ok`, `failed`, `refused` (a guard, nothing changed) or `interrupted`.
    status: &'static str,
    dryrun: bool,
    /// None when the run failed before it knew its target (an invalid deploy.yaml).
    target: Option<String>,
    actions: Vec<Action>,
    summary: Summary,
    invalidation: Option<InvalidationReport>,
    /// Multipart uploads killed runs left, aborted after the deletes (or, dry, to be).
    stale_uploads: Vec<crate::store::Upload>,
    /// Stale keys kept by the release lifecycle, and until when.
    kept: Vec<Kept>,
    /// Sub-prefixes holding another hoist site, left alone.
    nested_sites: Vec<String>,
    /// The release this run published (none for a dry run or a run that changed nothing).
    pub(crate) release: Option<ReleaseSummary>,
    /// What `verify:` checked, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) verified: Option<super::verify::Verified>,
    /// The preview this run published (`--preview NAME`), with its address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) preview: Option<PreviewReport>,
    /// The run deleted a preview (`hoist previews prune`) rather than deploying: its summary
    /// line says so.
    #[serde(skip)]
    pub(crate) pruned: bool,
    /// What the edge compilers produced (redirect objects, the CloudFront Function's size
    /// and tables), one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) edge: Vec<String>,
    warnings: Vec<String>,
    /// One entry per failure, short: the key and phase when there is one.
    errors: Vec<JsonError>,
}

/// [`DeployReport::preview`].
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct PreviewReport {
    pub(crate) name: String,
    /// From `previews.url`, when set.
    pub(crate) url: Option<String>,
}

/// One failure in [`DeployReport::errors`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct JsonError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) phase: Option<super::plan::Phase>,
    /// A stable name: the store's error code (`NoSuchBucket`, `AccessDenied`, `SlowDown`) or
    /// hoist's (`TooManyDeletes`, `LockHeld`, `InvalidConfig`).
    pub(crate) code: String,
    pub(crate) message: String,
}

impl JsonError {
    /// An error of no key and no phase.
    pub(crate) fn new(code: &str, message: String) -> JsonError {
        JsonError {
            key: None,
            phase: None,
            code: code.to_string(),
            message,
        }
    }
}

#[derive(Debug, Default, serde::Serialize)]
struct Summary {
    uploaded: usize,
    headers_updated: usize,
    deleted: usize,
    unchanged: usize,
    stale_kept: usize,
    kept: usize,
    bytes: u64,
    /// Requests that were retried (transport errors, throttling, 5xx), counted per attempt.
    retries: u64,
    seconds: f64,
}

/// How a run ended, for the report.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ending {
    DryRun,
    Deployed,
    /// Failed while executing; `actions` holds what completed (its errors are added by
    /// [`DeployReport::fail`]).
    Failed,
}

impl DeployReport {
    /// The report of `actions` (the plan's, or those that completed before a failure).
    pub(crate) fn new(
        ending: Ending,
        target: String,
        actions: Vec<Action>,
        plan: &Plan,
        started: Instant,
        invalidation: Option<InvalidationReport>,
        warnings: Vec<String>,
    ) -> DeployReport {
        let count = |op| actions.iter().filter(|a| a.op == op).count();
        let summary = Summary {
            uploaded: count(Op::Upload),
            headers_updated: count(Op::UpdateHeaders),
            deleted: count(Op::Delete),
            unchanged: plan.unchanged,
            stale_kept: plan.stale_kept.len(),
            kept: plan.kept.len(),
            bytes: actions.iter().map(|a| a.bytes).sum(),
            retries: crate::aws::REQUEST_STATS.retries(),
            seconds: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        };
        let dryrun = matches!(ending, Ending::DryRun);
        DeployReport {
            schema: SCHEMA,
            status: if matches!(ending, Ending::Failed) {
                "failed"
            } else {
                "ok"
            },
            dryrun,
            target: Some(target),
            actions,
            summary,
            invalidation,
            stale_uploads: plan.stale_uploads.clone(),
            kept: plan.kept.clone(),
            nested_sites: plan.nested.clone(),
            release: None,
            verified: None,
            preview: None,
            pruned: false,
            edge: Vec::new(),
            warnings,
            errors: Vec::new(),
        }
    }

    /// The report of a run that failed before it had a plan.
    pub(crate) fn empty(target: Option<String>, dryrun: bool, started: Instant) -> DeployReport {
        let mut report = DeployReport::new(
            if dryrun {
                Ending::DryRun
            } else {
                Ending::Failed
            },
            String::new(),
            Vec::new(),
            &Plan::default(),
            started,
            None,
            Vec::new(),
        );
        report.target = target;
        report
    }

    /// Marks the report as the failure `status` with `errors`.
    pub(crate) fn fail(&mut self, status: &'static str, errors: Vec<JsonError>) {
        self.status = status;
        self.errors = errors;
    }

    pub(crate) fn is_dryrun(&self) -> bool {
        self.dryrun
    }

    /// Prints the JSON document, the Markdown one, or the human summary line.
    pub(crate) fn print(&self, printer: &Printer) {
        match printer.format() {
            OutputFormat::Json => {
                printer.data(&serde_json::to_string_pretty(self).expect("report serializes"));
                return;
            }
            OutputFormat::Markdown => {
                printer.data(self.markdown().trim_end());
                return;
            }
            OutputFormat::Human => {}
        }
        let s = &self.summary;
        let verb = match (self.dryrun, self.pruned) {
            (true, false) => "(dryrun) would deploy to",
            (false, false) => "deployed to",
            (true, true) => "(dryrun) would prune",
            (false, true) => "pruned",
        };
        let mut line = format!(
            "{verb} {}: {} uploaded ({}), {} headers updated, {} deleted, {} unchanged",
            escape(self.target.as_deref().unwrap_or("")),
            s.uploaded,
            human_bytes(s.bytes),
            s.headers_updated,
            s.deleted,
            s.unchanged
        );
        if s.stale_kept > 0 {
            line.push_str(&format!(", {} stale kept", s.stale_kept));
        }
        if s.kept > 0 {
            line.push_str(&format!(", {} old asset(s) kept", s.kept));
        }
        if let Some(release) = &self.release {
            line.push_str(&format!(", release {}", release.id));
        }
        if s.retries > 0 {
            line.push_str(&format!(", {} retried request(s)", s.retries));
        }
        if let Some(invalidation) = &self.invalidation {
            line.push_str(&format!(", {}", invalidation.summary()));
        }
        if let Some(PreviewReport { name, url }) = &self.preview {
            line.push_str(&format!(", preview {}", escape(name)));
            if let Some(url) = url {
                line.push_str(&format!(" at {}", escape(url)));
            }
        }
        line.push_str(&format!(" in {:.1}s", s.seconds));
        printer.data(&line);
    }
}

/// `kept  assets/app.1.js  (stale since 2026-12-01T22:15:00Z, expires in 5d)`.
pub(crate) fn kept_line(kept: &Kept, dryrun: bool) -> String {
    let why = match (kept.release, kept.expires) {
        (Some(release), _) => format!("release {release} publishes it"),
        (None, Some(expires)) => format!(
            "expires in {}",
            crate::clock::span(expires.since(crate::clock::Timestamp::now()))
        ),
        (None, None) => "kept".to_string(),
    };
    format!(
        "{}{}  {}  (stale since {}, {why})",
        if dryrun { "(dryrun) " } else { "" },
        console::style("kept").dim(),
        escape(kept.key.as_str()),
        kept.stale_since
    )
}

/// `abort  video.mp4  (an upload begun 26h ago, never completed)`.
pub(crate) fn abort_line(upload: &crate::store::Upload, dryrun: bool) -> String {
    let hours = upload
        .initiated
        .elapsed()
        .map_or(0, |age| age.as_secs() / 3600);
    format!(
        "{}{}  {}  (an upload begun {hours}h ago, never completed)",
        if dryrun { "(dryrun) " } else { "" },
        console::style("abort").red(),
        escape(&upload.name)
    )
}

/// `upload  assets/app.js  (new)`, prefixed `(dryrun) ` in a dry run.
pub(crate) fn action_line(action: &Action, dryrun: bool) -> String {
    let op = match action.op {
        Op::Upload => console::style("upload").green(),
        Op::UpdateHeaders => console::style("update").yellow(),
        Op::Delete => console::style("delete").red(),
        Op::Keep => console::style("keep").cyan(),
    };
    if action.op == Op::Keep {
        return format!(
            "{}{op}  {}  (as {}, for rollback)",
            if dryrun { "(dryrun) " } else { "" },
            escape(action.copy_from.as_ref().map_or("", Key::as_str)),
            escape(action.key.as_str()),
        );
    }
    if let Some(from) = action
        .copy_from
        .as_ref()
        .filter(|_| action.copy_from_origin)
    {
        return format!(
            "{}{}  {}  ({}, copied from the production site's {})",
            if dryrun { "(dryrun) " } else { "" },
            console::style("copy").green(),
            escape(action.key.as_str()),
            action.reason.as_str(),
            escape(from.as_str())
        );
    }
    if let Some(from) = &action.copy_from {
        return format!(
            "{}{}  {}  ({}, copied from {})",
            if dryrun { "(dryrun) " } else { "" },
            console::style("restore").green(),
            escape(action.key.as_str()),
            action.reason.as_str(),
            escape(from.as_str())
        );
    }
    let mut line = format!(
        "{}{op}  {}  ({})",
        if dryrun { "(dryrun) " } else { "" },
        escape(action.key.as_str()),
        action.reason.as_str()
    );
    if let Some(rule) = &action.rule {
        line.push_str(&format!("  {}", escape(rule)));
    }
    let shown = |value: &Option<String>| match value {
        Some(value) => format!("\"{}\"", escape(value)),
        None => "none".to_string(),
    };
    for (i, change) in action.header_changes.iter().enumerate() {
        line.push_str(if i == 0 { ": " } else { ", " });
        line.push_str(&format!(
            "{} {} -> {}",
            change.header,
            shown(&change.from),
            shown(&change.to)
        ));
    }
    line
}
