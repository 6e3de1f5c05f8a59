//! Steps × stores → output lines and an exit code. The only part of `sync` that writes.
//!
//! Like `execute.rs`: transfers run concurrently (bounded `buffer_unordered`), every outcome is
//! collected, an interrupt stops scheduling, and deletes start only after every transfer
//! succeeded. Each completion prints its aws-cli line at once (`upload: a to s3://b/a`), so lines
//! come in completion order as with aws-cli; `--dryrun` prints them in merged key order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream;

use super::compare::{Direction, Step};
use super::paths::{self, Location, display_local, display_s3};
use super::{CaseConflict, Side, SyncSettings, local};
use crate::error::{ErrorChain, ExitCode};
use crate::interrupt::Interrupt;
use crate::key::Key;
use crate::report::{Printer, escape};
use crate::store::budget::MemoryBudget;
use crate::store::retry::Retrier;
use crate::store::{self, Body, MetadataDirective, NamedStore};

/// aws-cli's printers: `ResultPrinter`, `OnlyShowErrorsResultPrinter`, or none (`--quiet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verbosity {
    Normal,
    /// `--only-show-errors`: no success lines; dry-run lines, warnings and errors still shown.
    OnlyErrors,
    /// `--quiet`: nothing at all, not even fatal errors; the exit code still tells.
    Quiet,
}

/// How the run ended, for the exit code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) failed: usize,
    pub(crate) warned: usize,
    pub(crate) interrupted: bool,
}

impl Outcome {
    /// aws-cli's rule: 1 if anything failed, else 2 if anything was skipped with a warning, else
    /// 0. An interrupt is 130 (hoist's convention).
    pub(crate) fn exit_code(&self) -> ExitCode {
        if self.interrupted {
            ExitCode::Interrupted
        } else if self.failed > 0 {
            ExitCode::Failure
        } else if self.warned > 0 {
            ExitCode::Usage
        } else {
            ExitCode::Success
        }
    }
}

/// Prints aws-cli's lines and counts failures and warnings.
#[derive(Debug)]
pub(crate) struct Output<'a> {
    printer: &'a Printer,
    verbosity: Verbosity,
    failed: AtomicUsize,
    warned: AtomicUsize,
}

impl<'a> Output<'a> {
    pub(crate) fn new(printer: &'a Printer, verbosity: Verbosity) -> Output<'a> {
        Output {
            printer,
            verbosity,
            failed: AtomicUsize::new(0),
            warned: AtomicUsize::new(0),
        }
    }

    pub(crate) fn printer(&self) -> &Printer {
        self.printer
    }

    /// A success line on stdout.
    pub(crate) fn done(&self, line: &str) {
        if self.verbosity == Verbosity::Normal {
            self.printer.line(line);
        }
    }

    /// A `(dryrun) ` line on stdout (shown with `--only-show-errors` too).
    pub(crate) fn dryrun(&self, line: &str) {
        if self.verbosity != Verbosity::Quiet {
            self.printer.data(&format!("(dryrun) {line}"));
        }
    }

    /// `warning: <text>` on stderr; the run exits 2 unless something failed.
    pub(crate) fn warn(&self, text: &str) {
        self.warned.fetch_add(1, Ordering::SeqCst);
        if self.verbosity != Verbosity::Quiet {
            self.printer.warn(&escape(text));
        }
    }

    /// `warning: <text>` on stderr that does not change the exit code (aws-cli prints its
    /// `--case-conflict` warnings straight to stderr, outside its result counts).
    pub(crate) fn advise(&self, text: &str) {
        if self.verbosity != Verbosity::Quiet {
            self.printer.warn(&escape(text));
        }
    }

    /// A failure line on stderr; the run exits 1.
    pub(crate) fn fail(&self, line: &str) {
        self.failed.fetch_add(1, Ordering::SeqCst);
        if self.verbosity != Verbosity::Quiet {
            self.printer.status(line);
        }
    }

    /// `fatal error: <text>` on stderr; the run exits 1.
    pub(crate) fn fatal(&self, text: &str) {
        self.fail(&format!("fatal error: {text}"));
    }

    /// A note of hoist's own on stderr, not counted.
    pub(crate) fn note(&self, text: &str) {
        if self.verbosity != Verbosity::Quiet {
            self.printer.status(text);
        }
    }

    pub(crate) fn outcome(&self, interrupted: bool) -> Outcome {
        Outcome {
            failed: self.failed.load(Ordering::SeqCst),
            warned: self.warned.load(Ordering::SeqCst),
            interrupted,
        }
    }
}

/// `{verb}: {src} to {dst}` — aws-cli's success line (and, with the prefix, its dry-run line).
pub(crate) fn transfer_line(verb: &str, source: &str, destination: &str) -> String {
    format!("{verb}: {} to {}", escape(source), escape(destination))
}

/// `{verb} failed: {src} to {dst} {exception}`.
pub(crate) fn failure_line(verb: &str, source: &str, destination: &str, exception: &str) -> String {
    format!(
        "{verb} failed: {} to {} {exception}",
        escape(source),
        escape(destination)
    )
}

pub(crate) fn delete_line(path: &str) -> String {
    format!("delete: {}", escape(path))
}

/// The text of a Python `OSError`: `[Errno 13] Permission denied: '/path'`.
pub(crate) fn os_error_text(error: &std::io::Error, path: &Path) -> String {
    match error.raw_os_error() {
        Some(code) => format!("[Errno {code}] {}: '{}'", strerror(error), path.display()),
        None => format!("{error}: '{}'", path.display()),
    }
}

/// `Permission denied` from `Permission denied (os error 13)`.
pub(crate) fn strerror(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// How aws-cli words an exception (`str(exc)` of botocore's `ClientError` and friends), from
/// hoist's semantic store error. `op` names the operation when the error does not.
pub(crate) fn exception_text(error: &store::Error, op: &str) -> String {
    use store::Error as E;
    let client_error = |code: &str, op: &str, message: &str| {
        format!("An error occurred ({code}) when calling the {op} operation: {message}")
    };
    match error {
        E::NoSuchBucket { .. } => {
            client_error("NoSuchBucket", op, "The specified bucket does not exist")
        }
        E::NotFound { .. } => client_error("404", op, "Not Found"),
        // aws-cli keeps the service's code: `(ExpiredToken)`, `(InvalidAccessKeyId)`.
        E::AccessDenied {
            op, code, message, ..
        } => client_error(
            code.as_deref().unwrap_or("AccessDenied"),
            op,
            message.as_deref().unwrap_or("Access Denied"),
        ),
        E::Service {
            op, code, message, ..
        } => client_error(
            code.as_deref().unwrap_or("Unknown"),
            op,
            message.as_deref().unwrap_or(""),
        ),
        E::NoCredentials { .. } => "Unable to locate credentials".to_string(),
        E::Unreachable { endpoint, .. } => {
            format!("Could not connect to the endpoint URL: \"{endpoint}\"")
        }
        E::TimedOut { endpoint, .. } => format!("Read timeout on endpoint URL: \"{endpoint}\""),
        E::Io { path, source } => os_error_text(source, path),
        // botocore's FlexibleChecksumError.
        E::ChecksumMismatch {
            expected,
            calculated,
            ..
        } => {
            format!("Expected checksum {expected} did not match calculated checksum: {calculated}")
        }
        other => ErrorChain(other).to_string(),
    }
}

/// `--expires`: RFC 3339 (`2030-01-01T00:00:00Z`), an HTTP date, or epoch seconds, as the
/// HTTP date S3 stores.
pub(crate) fn http_date(text: &str) -> Result<String, String> {
    crate::aws::http_date(text).ok_or_else(|| {
        format!(
            "invalid --expires `{text}`: expected an ISO-8601 date such as \
             2030-01-01T00:00:00Z, an HTTP date, or epoch seconds"
        )
    })
}

/// `--metadata`: `KEY=VALUE,KEY2=VALUE2` (aws-cli's shorthand) or a JSON object of strings.
pub(crate) fn parse_metadata(text: &str) -> Result<BTreeMap<String, String>, String> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        return serde_json::from_str(trimmed)
            .map_err(|e| format!("invalid --metadata JSON `{text}`: {e}"));
    }
    let mut map = BTreeMap::new();
    for pair in trimmed.split(',') {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!(
                "invalid --metadata `{text}`: expected KEY=VALUE,KEY2=VALUE2"
            ));
        };
        map.insert(key.trim().to_string(), value.trim().to_string());
    }
    Ok(map)
}

/// The Content-Type aws-cli sends for an upload: Python's `mimetypes.guess_type(path)[0]`, which
/// first maps `.tgz`-style suffixes, then drops one encoding suffix (`.gz`, `.bz2`, `.xz`, `.br`,
/// `.Z`) and looks up the extension before it. `None` sends no Content-Type (S3 then stores
/// `binary/octet-stream`). The table is CPython's built-in one updated from the host's
/// `/etc/mime.types`, as Python reads it (see [`super::mime`]).
pub(crate) fn python_content_type(file_name: &str) -> Option<String> {
    super::mime::MimeTable::host()
        .guess(file_name)
        .map(str::to_string)
}

/// A crude `max_bandwidth`: transfers are paced so that their body bytes average at most `rate`
/// bytes a second (each transfer reserves its bytes before it starts; bursts within one large
/// file are not smoothed).
#[derive(Debug)]
pub(crate) struct Bandwidth {
    rate: u64,
    next: tokio::sync::Mutex<Instant>,
}

impl Bandwidth {
    pub(crate) fn new(rate: u64) -> Bandwidth {
        Bandwidth {
            rate: rate.max(1),
            next: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    pub(crate) async fn reserve(&self, bytes: u64) {
        let wait = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let start = (*next).max(now);
            *next = start + Duration::from_secs_f64(bytes as f64 / self.rate as f64);
            start - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Whole seconds, as aws-cli sets a downloaded file's times (`int(time.mktime(...))`).
fn whole_seconds(micros: i64) -> SystemTime {
    let seconds = micros.div_euclid(1_000_000);
    if seconds >= 0 {
        UNIX_EPOCH + Duration::from_secs(seconds as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
    }
}

/// Everything a run needs.
pub(crate) struct Job<'a> {
    pub(crate) settings: &'a SyncSettings,
    pub(crate) source: &'a Side,
    pub(crate) destination: &'a Side,
    pub(crate) source_store: Option<&'a dyn NamedStore>,
    pub(crate) destination_store: Option<&'a dyn NamedStore>,
    pub(crate) output: &'a Output<'a>,
    pub(crate) interrupt: &'a Interrupt,
    /// Local directories this run made or found, so each is created once, not once per file.
    pub(crate) directories: Directories,
    /// Whole-transfer retries once a transfer's requests used up their attempts.
    pub(crate) retrier: Retrier,
    /// File bytes held in memory at once: small uploads are read whole, downloads gather up
    /// to a spool's flush size; with many transfers in flight, this bounds the memory.
    pub(crate) memory: MemoryBudget,
}

/// [`Job::memory`]'s size: 64 MiB, whatever the concurrency.
pub(crate) const MEMORY_BUDGET: u64 = 64 << 20;

/// What one download holds in memory before it writes to its file (the spool's flush size).
const DOWNLOAD_BUFFER: u64 = 4 << 20;

/// Directories known to exist under a download's destination, so each is made once per run,
/// on the same trip to the blocking pool as its first file, not once per file.
#[derive(Debug, Default)]
pub(crate) struct Directories(std::sync::Mutex<std::collections::HashSet<PathBuf>>);

impl Directories {
    fn known(&self, directory: &Path) -> bool {
        self.0.lock().expect("not poisoned").contains(directory)
    }

    fn remember(&self, directory: &Path) {
        self.0
            .lock()
            .expect("not poisoned")
            .insert(directory.to_owned());
    }
}

/// A transfer that passed the pre-checks.
struct Transfer {
    index: usize,
    source_display: String,
    destination_display: String,
    bytes: u64,
}

impl Job<'_> {
    fn source_name(&self, index: usize) -> &str {
        &self.source.entries[index].name
    }

    fn display(&self, location: &Location, name: &str) -> String {
        match location {
            Location::S3 { bucket, prefix, .. } => display_s3(bucket, &format!("{prefix}{name}")),
            Location::Local { absolute, .. } => {
                display_local(&local_path(absolute, name), &self.settings.cwd)
            }
        }
    }

    /// Pre-checks a transfer (download safety, Glacier); `None` when it was skipped with a
    /// warning.
    fn admit(&self, index: usize) -> Option<Transfer> {
        let settings = self.settings;
        let entry = &self.source.entries[index];
        let verb = settings.direction.verb();
        let source_display = self.display(&settings.source, &entry.name);
        if settings.direction != Direction::Upload {
            let class = self.source.storage_classes[index].as_deref();
            // A listing never says an archived object was restored, so aws-cli skips every
            // one unless forced; its warning names GLACIER for DEEP_ARCHIVE too, and hoist
            // prints the same text (scripts match it).
            if matches!(class, Some("GLACIER" | "DEEP_ARCHIVE")) && !settings.force_glacier_transfer
            {
                if !settings.ignore_glacier_warnings {
                    self.output.warn(&format!(
                        "Skipping file {source_display}. Object is of storage class GLACIER. \
                         Unable to perform {verb} operations on GLACIER objects. You must \
                         restore the object to be able to perform the operation. See aws s3 \
                         {verb} help for additional parameter options to ignore or force these \
                         transfers."
                    ));
                }
                return None;
            }
        }
        if let (Direction::Download, Location::Local { absolute, .. }) =
            (settings.direction, &settings.destination)
        {
            if let Err(unsafe_key) = paths::check_download_key(&entry.name, entry.size) {
                if let Some(warning) = unsafe_key.warning(&source_display) {
                    self.output.warn(&warning);
                }
                return None;
            }
            if local::passes_through_symlink(absolute, &entry.name) {
                self.output.warn(&format!(
                    "Skipping file {source_display}. Its destination {} lies behind a symbolic \
                     link to a directory; hoist does not write through it.",
                    local_path(absolute, &entry.name).display()
                ));
                return None;
            }
        }
        Some(Transfer {
            index,
            destination_display: self.display(&settings.destination, &entry.name),
            source_display,
            bytes: entry.size,
        })
    }

    /// `--case-conflict` for a download of a name not at the destination: whether to download
    /// it, after aws-cli's warning, or `Err` with its fatal message (`error`). A conflict is a
    /// name whose lower case was already admitted in this run, or whose destination path
    /// exists (on a case-insensitive filesystem, a file of another case). aws-cli forgets a
    /// name once its download finished, so its detection depends on timing; hoist remembers
    /// every name of the run.
    fn case_conflict(
        &self,
        index: usize,
        admitted: &mut std::collections::HashSet<String>,
    ) -> Result<bool, String> {
        let settings = self.settings;
        let (
            Direction::Download,
            Location::Local { absolute, .. },
            Location::S3 { bucket, prefix, .. },
        ) = (settings.direction, &settings.destination, &settings.source)
        else {
            return Ok(true);
        };
        if settings.case_conflict == CaseConflict::Ignore {
            return Ok(true);
        }
        let name = &self.source.entries[index].name;
        let lower = name.to_lowercase();
        let destination = local_path(absolute, name);
        if admitted.contains(&lower) || destination.exists() {
            let source = format!("{bucket}/{prefix}{name}");
            let destination = destination.display();
            match settings.case_conflict {
                CaseConflict::Ignore => {}
                CaseConflict::Skip => {
                    self.output.advise(&format!(
                        "Skipping {source} -> {destination} because a file whose name differs \
                         only by case either exists or is being downloaded."
                    ));
                    return Ok(false);
                }
                CaseConflict::Warn => self.output.advise(&format!(
                    "Downloading {source} -> {destination} despite a file whose name differs \
                     only by case either existing or being downloaded. This behavior is not \
                     defined on case-insensitive filesystems and may result in overwriting \
                     existing files or race conditions between concurrent downloads. For more \
                     information, see \
                     https://docs.aws.amazon.com/cli/v1/topic/s3-case-insensitivity.html."
                )),
                CaseConflict::Error => {
                    return Err(format!(
                        "Failed to download {source} -> {destination} because a file whose name \
                         differs only by case either exists or is being downloaded."
                    ));
                }
            }
        }
        admitted.insert(lower);
        Ok(true)
    }

    /// The transfers and deletes that pass the pre-checks and guards, printing each with
    /// `--dryrun` in merged name order; `Err` with a fatal message when `--case-conflict error`
    /// found a conflict (nothing runs then).
    fn admit_all(&self, steps: &[Step]) -> Result<(Vec<Transfer>, Vec<usize>), String> {
        let settings = self.settings;
        let verb = settings.direction.verb();
        let mut transfers = Vec::new();
        let mut deletes = Vec::new();
        let mut admitted = std::collections::HashSet::new();
        for step in steps {
            match *step {
                Step::Transfer {
                    source,
                    destination,
                } => {
                    if destination.is_none() && !self.case_conflict(source, &mut admitted)? {
                        continue;
                    }
                    if let Some(transfer) = self.admit(source) {
                        if settings.dryrun {
                            self.output.dryrun(&transfer_line(
                                verb,
                                &transfer.source_display,
                                &transfer.destination_display,
                            ));
                        }
                        transfers.push(transfer);
                    }
                }
                Step::Delete { destination } => {
                    let name = &self.destination.entries[destination].name;
                    if !self.may_delete(destination) {
                        continue;
                    }
                    if settings.dryrun {
                        self.output
                            .dryrun(&delete_line(&self.display(&settings.destination, name)));
                    }
                    deletes.push(destination);
                }
            }
        }
        Ok((transfers, deletes))
    }

    /// Runs (or, with `--dryrun`, prints) the steps and returns how the run ended.
    pub(crate) async fn run(&self, steps: &[Step]) -> Outcome {
        let settings = self.settings;
        let (transfers, deletes) = match self.admit_all(steps) {
            Ok(admitted) => admitted,
            Err(fatal) => {
                self.output.fatal(&fatal);
                return self.output.outcome(false);
            }
        };
        if settings.dryrun {
            return self.output.outcome(false);
        }

        let printer = self.output.printer();
        if settings.progress {
            printer.start_progress(
                transfers.iter().map(|t| t.bytes).sum(),
                (transfers.len() + deletes.len()) as u64,
            );
        }
        let bandwidth = settings.transfer.max_bandwidth.map(Bandwidth::new);
        let bandwidth = bandwidth.as_ref();
        let done = AtomicUsize::new(0);
        let total = (transfers.len() + deletes.len()) as u64;
        let interrupt = self.interrupt;
        let results: Vec<bool> = stream::iter(transfers.iter())
            .take_while(|_| futures::future::ready(!interrupt.is_set()))
            .map(|transfer| async {
                if let Some(bandwidth) = bandwidth
                    && settings.direction != Direction::Copy
                {
                    bandwidth.reserve(transfer.bytes).await;
                }
                let ok = self.transfer_one(transfer).await;
                let count = done.fetch_add(1, Ordering::SeqCst) as u64 + 1;
                printer.advance(transfer.bytes, count, total);
                ok
            })
            .buffer_unordered(settings.concurrency.get())
            .collect()
            .await;
        let failed = results.iter().filter(|ok| !**ok).count();
        let interrupted = interrupt.is_set() || results.len() < transfers.len();
        if failed > 0 || interrupted {
            printer.finish_progress();
            if !deletes.is_empty() {
                self.output.note(&format!(
                    "hoist: {} delete(s) not run because {}",
                    deletes.len(),
                    if interrupted {
                        "the run was interrupted".to_string()
                    } else {
                        format!("{failed} transfer(s) failed")
                    }
                ));
            }
            return self.output.outcome(interrupted);
        }
        self.delete_all(&deletes, &done, total).await;
        printer.finish_progress();
        // A killed run left its upload for a large file, which this run uploaded in parts
        // again: only such a run looks, so small-file and no-op syncs send no extra request.
        let in_parts = settings.direction == Direction::Upload
            && transfers
                .iter()
                .any(|t| t.bytes >= settings.transfer.multipart_threshold);
        if in_parts && !interrupt.is_set() {
            self.abort_stale_uploads().await;
        }
        self.output.outcome(interrupt.is_set())
    }

    /// After an upload sync that succeeded and sent a file in parts: aborts the multipart
    /// uploads a killed run left (begun more than a day ago) for names this sync writes, so
    /// their parts stop costing storage.
    /// aws-cli does not do this; hoist says so on stderr, and a failure is only a note.
    async fn abort_stale_uploads(&self) {
        let Some(store) = self.destination_store else {
            return;
        };
        let before = SystemTime::now() - STALE_UPLOAD_AGE;
        let uploads = match store.stale_uploads(before).await {
            Ok(uploads) => uploads,
            Err(error) => {
                tracing::debug!("not cleaning up multipart uploads: {}", ErrorChain(&error));
                return;
            }
        };
        let ours: std::collections::HashSet<&str> = self
            .source
            .entries
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        for upload in uploads.iter().filter(|u| ours.contains(u.name.as_str())) {
            let display = self.display(&self.settings.destination, &upload.name);
            match store.abort_upload(upload).await {
                Ok(()) => self.output.note(&format!(
                    "hoist: aborted an unfinished multipart upload of {} left by an earlier run",
                    escape(&display)
                )),
                Err(error) => self.output.note(&format!(
                    "hoist: could not abort the unfinished multipart upload of {}: {}",
                    escape(&display),
                    ErrorChain(&error)
                )),
            }
        }
    }

    /// hoist's delete guards: never a file reached through a symlinked directory, never
    /// something under a source directory the walk could not list.
    fn may_delete(&self, destination: usize) -> bool {
        let name = &self.destination.entries[destination].name;
        let unknown = self.source.walk_incomplete.covers(name);
        if unknown {
            tracing::debug!("not deleting {name}: its source directory could not be listed");
            return false;
        }
        if let Some(file) = self.destination.local.get(destination)
            && file.through_symlink
        {
            self.output.warn(&format!(
                "Skipping file {}. Not deleted: it lies behind a symbolic link to a directory.",
                file.path.display()
            ));
            return false;
        }
        true
    }

    async fn transfer_one(&self, transfer: &Transfer) -> bool {
        let verb = self.settings.direction.verb();
        let result = self
            .interrupt
            .within_grace(self.transfer_inner(transfer.index))
            .await
            .unwrap_or_else(|| Err("cancelled: ctrl-c received".to_string()));
        match result {
            Ok(warning) => {
                self.output.done(&transfer_line(
                    verb,
                    &transfer.source_display,
                    &transfer.destination_display,
                ));
                if let Some(warning) = warning {
                    self.output.warn(&warning);
                }
                true
            }
            Err(exception) => {
                self.output.fail(&failure_line(
                    verb,
                    &transfer.source_display,
                    &transfer.destination_display,
                    &exception,
                ));
                false
            }
        }
    }

    /// One transfer; `Ok(Some(warning))` when it succeeded with a warning. The error is
    /// aws-cli's exception text.
    async fn transfer_inner(&self, index: usize) -> Result<Option<String>, String> {
        let settings = self.settings;
        match (&settings.source, &settings.destination) {
            (Location::Local { .. }, Location::S3 { .. }) => {
                self.upload(index).await.map(|()| None)
            }
            (Location::S3 { .. }, Location::Local { absolute, .. }) => {
                self.download(index, absolute).await
            }
            (
                Location::S3 {
                    bucket: source_bucket,
                    prefix: source_prefix,
                    ..
                },
                Location::S3 { .. },
            ) => {
                let source_key = format!("{source_prefix}{}", self.source_name(index));
                self.copy(index, source_bucket, &source_key)
                    .await
                    .map(|()| None)
            }
            (Location::Local { .. }, Location::Local { .. }) => {
                unreachable!("local to local is rejected by SyncSettings::resolve")
            }
        }
    }

    /// Local file → S3: one PutObject below the multipart threshold (read into memory), else a
    /// multipart upload streamed from disk. Content-Type is guessed as aws-cli guesses it.
    async fn upload(&self, index: usize) -> Result<(), String> {
        let settings = self.settings;
        let name = self.source_name(index);
        let file = &self.source.local[index];
        let store = self.destination_store.expect("S3 destination has a store");
        let key = Key::new(name).map_err(|e| format!("invalid key `{name}`: {e}"))?;
        let mut headers = settings.headers.clone();
        if headers.content_type.is_none() && settings.guess_mime_type {
            headers.content_type = file
                .path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(python_content_type);
        }
        let size = file.entry.size;
        if size >= settings.transfer.multipart_threshold {
            let body = Body::File {
                path: file.path.clone(),
                size,
                blake3: None,
            };
            self.retrier
                .run(name, || store.put(&key, body.clone(), &headers))
                .await
                .map_err(|e| exception_text(&e, "CreateMultipartUpload"))?;
            return Ok(());
        }
        let _budget = self.memory.reserve(size).await;
        let path = file.path.clone();
        let bytes = tokio::task::spawn_blocking(move || std::fs::read(path))
            .await
            .expect("read task does not panic")
            .map_err(|e| os_error_text(&e, &file.path))?;
        if bytes.len() as u64 != size {
            let changed = store::Error::Changed {
                path: file.path.clone(),
            };
            return Err(exception_text(&changed, "PutObject"));
        }
        let bytes = Bytes::from(bytes);
        self.retrier
            .run(name, || store.put_single(&key, bytes.clone(), &headers))
            .await
            .map_err(|e| exception_text(&e, "PutObject"))?;
        Ok(())
    }

    /// S3 → a file below `root`, its times set to the object's LastModified (whole seconds).
    async fn download(&self, index: usize, root: &Path) -> Result<Option<String>, String> {
        let name = self.source_name(index);
        let store = self.source_store.expect("S3 source has a store");
        let path = local_path(root, name);
        let parent = path.parent().expect("a file below the root has a parent");
        let make_parent = !self.directories.known(parent);
        let modified = whole_seconds(self.source.entries[index].modified);
        let _budget = self
            .memory
            .reserve(self.source.entries[index].size.min(DOWNLOAD_BUFFER))
            .await;
        let times = self
            .retrier
            .run(name, || {
                store.download_to(name, &path, Some(modified), make_parent)
            })
            .await
            .map_err(|e| exception_text(&e, "GetObject"))?;
        if make_parent {
            self.directories.remember(parent);
        }
        Ok(times.map(|error| {
            format!(
                "Skipping file {0}. Successfully Downloaded {0} but was unable to update \
                 the last modified time. {1}",
                path.display(),
                os_error_text(&error, &path)
            )
        }))
    }

    /// S3 → S3, server-side, with aws-cli's metadata directive (`--metadata` alone implies
    /// REPLACE).
    async fn copy(
        &self,
        index: usize,
        source_bucket: &str,
        source_key: &str,
    ) -> Result<(), String> {
        let settings = self.settings;
        let store = self.destination_store.expect("S3 destination has a store");
        let directive = match settings.metadata_directive.as_deref() {
            Some("REPLACE") => Some(MetadataDirective::Replace),
            Some(_) => Some(MetadataDirective::Copy),
            None if !settings.headers.metadata.is_empty() => Some(MetadataDirective::Replace),
            None => None,
        };
        let name = self.source_name(index);
        let size = self.source.entries[index].size;
        self.retrier
            .run(name, || {
                store.copy_from(
                    source_bucket,
                    source_key,
                    size,
                    name,
                    &settings.headers,
                    directive,
                )
            })
            .await
            .map_err(|e| exception_text(&e, "CopyObject"))
    }

    async fn delete_all(&self, deletes: &[usize], done: &AtomicUsize, total: u64) {
        if deletes.is_empty() {
            return;
        }
        let printer = self.output.printer();
        match &self.settings.destination {
            Location::S3 { .. } => {
                let store = self.destination_store.expect("S3 destination has a store");
                let names: Vec<String> = deletes
                    .iter()
                    .map(|&i| self.destination.entries[i].name.clone())
                    .collect();
                let interrupt = self.interrupt;
                stream::iter(names.chunks(1000))
                    .take_while(|_| futures::future::ready(!interrupt.is_set()))
                    .map(|chunk| async move {
                        let failed = self.delete_with_retries(store, chunk).await;
                        for name in chunk {
                            let display = self.display(&self.settings.destination, name);
                            match failed.iter().find(|(n, _)| n == name) {
                                Some((_, error)) => self.output.fail(&format!(
                                    "delete failed: {} {}",
                                    escape(&display),
                                    exception_text(error, "DeleteObjects")
                                )),
                                None => self.output.done(&delete_line(&display)),
                            }
                            let count = done.fetch_add(1, Ordering::SeqCst) as u64 + 1;
                            printer.advance(0, count, total);
                        }
                    })
                    .buffer_unordered(self.settings.concurrency.get().clamp(1, 4))
                    .collect::<Vec<()>>()
                    .await;
            }
            Location::Local { .. } => {
                for &index in deletes {
                    if self.interrupt.is_set() {
                        return;
                    }
                    let file = &self.destination.local[index];
                    let display = display_local(&file.path, &self.settings.cwd);
                    let path = file.path.clone();
                    let result = tokio::task::spawn_blocking(move || std::fs::remove_file(path))
                        .await
                        .expect("remove task does not panic");
                    match result {
                        Ok(()) => self.output.done(&delete_line(&display)),
                        // Already gone: the goal is reached.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            self.output.done(&delete_line(&display));
                        }
                        Err(e) => self.output.fail(&format!(
                            "delete failed: {} {}",
                            escape(&display),
                            os_error_text(&e, &file.path)
                        )),
                    }
                    let count = done.fetch_add(1, Ordering::SeqCst) as u64 + 1;
                    printer.advance(0, count, total);
                }
            }
        }
    }
}

impl Job<'_> {
    /// Deletes names, then those that failed transiently again, a few rounds at most.
    async fn delete_with_retries(
        &self,
        store: &dyn NamedStore,
        names: &[String],
    ) -> Vec<(String, store::Error)> {
        self.retrier
            .run_batch("DeleteObjects", names, |names| async move {
                store.delete_names(&names).await
            })
            .await
    }
}

/// An unfinished multipart upload this old is no live run's (S3's lifecycle examples use a day).
const STALE_UPLOAD_AGE: Duration = Duration::from_hours(24);

/// The local path of a `/`-separated relative name.
fn local_path(root: &Path, name: &str) -> PathBuf {
    let mut path = root.to_path_buf();
    for segment in name.split('/') {
        path.push(segment);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_lines() {
        assert_eq!(
            transfer_line("upload", "site/a.html", "s3://b/a.html"),
            "upload: site/a.html to s3://b/a.html"
        );
        assert_eq!(
            transfer_line("download", "s3://b/a.html", "dl/a.html"),
            "download: s3://b/a.html to dl/a.html"
        );
        assert_eq!(
            transfer_line("copy", "s3://a/k", "s3://b/k"),
            "copy: s3://a/k to s3://b/k"
        );
        assert_eq!(delete_line("s3://b/old.html"), "delete: s3://b/old.html");
        assert_eq!(
            failure_line(
                "upload",
                "t4/g.txt.gz",
                "s3://fb/p/g.txt.gz",
                "An error occurred (AccessDenied) when calling the PutObject operation: Access Denied"
            ),
            "upload failed: t4/g.txt.gz to s3://fb/p/g.txt.gz An error occurred (AccessDenied) \
             when calling the PutObject operation: Access Denied"
        );
        // Control characters never reach the terminal raw.
        assert_eq!(
            delete_line("s3://b/evil\x1b[2J"),
            "delete: s3://b/evil\\u{1b}[2J"
        );
    }

    #[test]
    fn exit_codes() {
        let outcome = |failed, warned, interrupted| Outcome {
            failed,
            warned,
            interrupted,
        };
        assert_eq!(outcome(0, 0, false).exit_code().code(), 0);
        assert_eq!(outcome(0, 3, false).exit_code().code(), 2);
        assert_eq!(outcome(1, 3, false).exit_code().code(), 1);
        assert_eq!(outcome(1, 0, true).exit_code().code(), 130);
    }

    #[test]
    fn exceptions_read_like_botocore() {
        let denied = store::Error::AccessDenied {
            op: "PutObject",
            url: "s3://b/k".into(),
            code: Some("AccessDenied".into()),
            message: Some("Access Denied".into()),
        };
        assert_eq!(
            exception_text(&denied, "x"),
            "An error occurred (AccessDenied) when calling the PutObject operation: Access Denied"
        );
        // Issue #11: the service's code is kept, as aws-cli keeps it.
        let expired = store::Error::AccessDenied {
            op: "ListObjectsV2",
            url: "s3://b/".into(),
            code: Some("ExpiredToken".into()),
            message: Some("The provided token has expired.".into()),
        };
        assert_eq!(
            exception_text(&expired, "x"),
            "An error occurred (ExpiredToken) when calling the ListObjectsV2 operation: The \
             provided token has expired."
        );
        assert!(
            expired
                .hint()
                .is_some_and(|h| h.contains("refresh the credentials"))
        );
        let skewed = store::Error::Service {
            op: "PutObject",
            url: "s3://b/k".into(),
            code: Some("RequestTimeTooSkewed".into()),
            message: None,
            status: Some(403),
        };
        assert!(
            skewed
                .hint()
                .is_some_and(|h| h.contains("check the system clock"))
        );
        let timed_out = store::Error::TimedOut {
            endpoint: "http://127.0.0.1:9".into(),
            source: "read timed out".into(),
        };
        assert_eq!(
            exception_text(&timed_out, "GetObject"),
            "Read timeout on endpoint URL: \"http://127.0.0.1:9\""
        );
        assert_eq!(
            exception_text(
                &store::Error::NoSuchBucket {
                    bucket: "nosuchbucket1".into()
                },
                "ListObjectsV2"
            ),
            "An error occurred (NoSuchBucket) when calling the ListObjectsV2 operation: The \
             specified bucket does not exist"
        );
        let io = store::Error::Io {
            path: "/d/x.tmp".into(),
            source: std::io::Error::from_raw_os_error(13),
        };
        assert_eq!(
            exception_text(&io, "GetObject"),
            "[Errno 13] Permission denied: '/d/x.tmp'"
        );
    }

    #[test]
    fn expires_and_metadata() {
        assert_eq!(
            http_date("2030-01-01T00:00:00Z").unwrap(),
            "Tue, 01 Jan 2030 00:00:00 GMT"
        );
        assert_eq!(http_date("0").unwrap(), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date("Tue, 01 Jan 2030 00:00:00 GMT").unwrap(),
            "Tue, 01 Jan 2030 00:00:00 GMT"
        );
        assert!(http_date("garbage").is_err());

        let map = parse_metadata("a=1,b=x=y").unwrap();
        assert_eq!(map.get("a").map(String::as_str), Some("1"));
        assert_eq!(map.get("b").map(String::as_str), Some("x=y"));
        let json = parse_metadata(r#"{"k": "v"}"#).unwrap();
        assert_eq!(json.get("k").map(String::as_str), Some("v"));
        assert!(parse_metadata("novalue").is_err());
    }

    #[test]
    fn download_times_are_whole_seconds() {
        assert_eq!(
            whole_seconds(1_700_000_000_999_999),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
    }

    #[tokio::test]
    async fn bandwidth_paces_bytes() {
        let bandwidth = Bandwidth::new(1_000_000);
        let start = Instant::now();
        bandwidth.reserve(50_000).await; // starts at once
        bandwidth.reserve(50_000).await; // waits ~50 ms for the first
        assert!(start.elapsed() >= Duration::from_millis(45));
    }
}
