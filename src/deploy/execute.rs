//! Plan × Store → Outcome. The only code that mutates a store.
//!
//! Phases are barriers: immutable assets, other files, HTML, then deletes. Inside a phase,
//! requests run concurrently (bounded) and every outcome is collected; if any action failed, the
//! phase finishes what it started and no later phase begins, so the live site never points at
//! something missing and nothing is deleted after a failed upload. An interrupt stops
//! scheduling the same way.
//!
//! Before a file is sent it is hashed again and compared with the scan: a file that changed or
//! vanished in between is reported, never uploaded under the old hash. Small files are sent from
//! memory (bounded by a byte budget); large ones stream from disk.

use std::collections::BTreeMap;

use crate::store::budget::MemoryBudget;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream;

use super::plan::{Action, Op, Phase, Plan};
use super::scan::LocalFile;
use super::settings::DeploySettings;
use crate::digest::Digest;
use crate::error::ErrorChain;
use crate::headers::{Headers, META_BLAKE3};
use crate::interrupt::Interrupt;
use crate::key::Key;
use crate::store::retry::Retrier;
use crate::store::{self, Body, Store};

#[derive(Debug, Clone, Copy)]
pub(crate) struct ExecOptions {
    pub(crate) concurrency: usize,
    /// Files of at least this size are streamed from disk instead of read into memory.
    pub(crate) stream_threshold: u64,
    /// Upper bound on file bytes held in memory at once.
    pub(crate) memory_budget: u64,
}

impl ExecOptions {
    /// The deploy's concurrency; files from the multipart threshold up stream from disk; at
    /// most 32 MiB of file bytes in memory.
    pub(crate) fn new(settings: &DeploySettings) -> ExecOptions {
        ExecOptions {
            concurrency: settings.concurrency.get(),
            stream_threshold: settings.multipart_threshold,
            memory_budget: 32 << 20,
        }
    }
}

/// What executing a plan produced: the ETag of every key it wrote.
#[derive(Debug, Default)]
pub(crate) struct Executed {
    pub(crate) etags: BTreeMap<Key, Option<String>>,
    /// The stored size of each object uploaded compressed (`compress:`), whose source file
    /// has another size.
    pub(crate) sizes: BTreeMap<Key, u64>,
    /// Stale uploads aborted.
    pub(crate) aborted: Vec<store::Upload>,
    /// Stale uploads that could not be aborted (the deploy itself succeeded).
    pub(crate) warnings: Vec<String>,
    /// What `verify:` checked, when it ran.
    pub(crate) verified: Option<super::verify::Verified>,
    /// What publishing the CloudFront Functions did, a line per step.
    pub(crate) functions: Vec<String>,
}

/// What one write left: the object's ETag, and its size when it is not the file's.
struct Written {
    etag: Option<String>,
    size: Option<u64>,
}

impl Written {
    fn etag(etag: Option<String>) -> Written {
        Written { etag, size: None }
    }
}

#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) key: Key,
    pub(crate) error: store::Error,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ExecuteError {
    #[error("{}", phase_failed_message(*phase, failed, not_started, *done, *pending))]
    PhaseFailed {
        phase: Phase,
        failed: Vec<Failure>,
        not_started: Vec<&'static str>,
        /// Actions completed, in this phase and before it.
        done: usize,
        /// Actions of later phases that never started.
        pending: usize,
    },
    #[error("interrupted while {}; {} not started", phase.doing(), list(not_started))]
    Interrupted {
        phase: Phase,
        not_started: Vec<&'static str>,
    },
    #[error(
        "another run took over this run's lock before {}; {} not started",
        phase.doing(),
        list(not_started)
    )]
    LockLost {
        phase: Phase,
        not_started: Vec<&'static str>,
    },
    /// `verify:` found the live site broken after the HTML phase; the deletes and what follows
    /// them never started.
    #[error(
        "the live site failed verification after the HTML phase; {} not started",
        list(not_started)
    )]
    Verify {
        #[source]
        source: super::verify::VerifyError,
        not_started: Vec<&'static str>,
    },
    /// Publishing the CloudFront Functions failed after the assets and other files, before
    /// the HTML: the site still serves the old pages with the old functions.
    #[error(
        "the CloudFront Functions could not be published; {} not started",
        list(not_started)
    )]
    Function {
        #[source]
        source: super::edge::manage::ManageError,
        not_started: Vec<&'static str>,
    },
}

fn list(items: &[&'static str]) -> String {
    if items.is_empty() {
        "nothing else was".into()
    } else {
        items.join(", ")
    }
}

/// Keys listed by name in a failure message; the rest are counted.
const LISTED_FAILURES: usize = 20;

/// One line per failed key with its short cause, each distinct cause's full chain once, and a
/// tally: a phase with 900 failures reads in a screen, not 900 chains.
fn phase_failed_message(
    phase: Phase,
    failed: &[Failure],
    not_started: &[&'static str],
    done: usize,
    pending: usize,
) -> String {
    let mut message = format!(
        "{} action(s) failed while {}; done {done}, failed {}; not started: {}",
        failed.len(),
        phase.doing(),
        failed.len(),
        if not_started.is_empty() {
            "none".to_string()
        } else {
            format!("{} ({pending} actions)", not_started.join(", "))
        }
    );
    for failure in failed.iter().take(LISTED_FAILURES) {
        message.push_str(&format!(
            "\n  {}: {}",
            crate::report::escape(failure.key.as_str()),
            failure.error.short_cause()
        ));
    }
    if failed.len() > LISTED_FAILURES {
        message.push_str(&format!(
            "\n  ... and {} more",
            failed.len() - LISTED_FAILURES
        ));
    }
    let mut causes: Vec<String> = Vec::new();
    for failure in failed {
        let cause = failure.error.short_cause();
        if !causes.contains(&cause) {
            message.push_str(&format!("\n  cause: {}", ErrorChain(&failure.error)));
            causes.push(cause);
        }
    }
    message
}

/// The stages after uploads, named in errors so the user knows what did not happen.
const LATER: [(Phase, &str); 4] = [
    (Phase::Immutable, "immutable assets"),
    (Phase::Other, "other files"),
    (Phase::Html, "HTML pages"),
    (Phase::Delete, "deletes"),
];

fn not_started_after(phase: Phase, extra: &[&'static str]) -> Vec<&'static str> {
    LATER
        .iter()
        .filter(|(p, _)| *p > phase)
        .map(|(_, name)| *name)
        .chain(extra.iter().copied())
        .collect()
}

pub(crate) struct Executor<'a> {
    pub(crate) store: &'a dyn Store,
    pub(crate) files: &'a [LocalFile],
    pub(crate) options: ExecOptions,
    pub(crate) interrupt: &'a Interrupt,
    /// Called once per completed action.
    pub(crate) on_done: &'a (dyn Fn(&Action) + Sync),
    /// Stages that run after the executor (invalidation, manifest), for error messages.
    pub(crate) after: &'a [&'static str],
    /// Whole-action retries once an action's requests used up their attempts.
    pub(crate) retrier: &'a Retrier,
    /// Set when another run took the lock over: no further phase starts.
    pub(crate) lock_lost: Option<&'a std::sync::atomic::AtomicBool>,
    /// `verify:`, run after the HTML phase and before the deletes, with this run's nonce.
    pub(crate) verify: Option<(&'a super::verify::VerifySettings, &'a str)>,
    /// The CloudFront Functions to publish before the HTML phase, and where.
    pub(crate) functions: Option<(&'a crate::aws::cloudfront::CloudFront, &'a str)>,
}

impl Executor<'_> {
    pub(crate) async fn run(&self, plan: &Plan) -> Result<Executed, ExecuteError> {
        let mut executed = Executed::default();
        let memory = MemoryBudget::new(self.options.memory_budget);
        for phase in [
            Phase::Preserve,
            Phase::Immutable,
            Phase::Other,
            Phase::Html,
            Phase::Delete,
        ] {
            if phase == Phase::Delete
                && let Some((settings, nonce)) = self.verify
                && !self.interrupt.is_set()
            {
                executed.verified = Some(
                    super::verify::verify(settings, plan, self.files, nonce)
                        .await
                        .map_err(|source| ExecuteError::Verify {
                            source,
                            not_started: not_started_after(Phase::Html, self.after),
                        })?,
                );
            }
            if phase == Phase::Html {
                executed.functions = self.publish_functions(plan).await?;
            }
            let actions: Vec<&Action> = plan.phase(phase).collect();
            if actions.is_empty() {
                continue;
            }
            if self
                .lock_lost
                .is_some_and(|lost| lost.load(std::sync::atomic::Ordering::SeqCst))
            {
                return Err(ExecuteError::LockLost {
                    phase,
                    not_started: not_started_after(phase, self.after),
                });
            }
            if self.interrupt.is_set() {
                return Err(ExecuteError::Interrupted {
                    phase,
                    not_started: not_started_after(phase, self.after),
                });
            }
            let failed = if phase == Phase::Delete {
                self.delete_phase(&actions).await
            } else {
                self.write_phase(&actions, &memory, &mut executed).await
            };
            // An interrupt explains any failure it caused (aborted multipart uploads).
            if self.interrupt.is_set() {
                return Err(ExecuteError::Interrupted {
                    phase,
                    not_started: not_started_after(phase, self.after),
                });
            }
            if !failed.is_empty() {
                let before = plan.actions.iter().filter(|a| a.phase < phase).count();
                return Err(ExecuteError::PhaseFailed {
                    phase,
                    done: before + actions.len() - failed.len(),
                    pending: plan.actions.iter().filter(|a| a.phase > phase).count(),
                    failed,
                    not_started: not_started_after(phase, self.after),
                });
            }
        }
        self.abort_stale_uploads(&plan.stale_uploads, &mut executed)
            .await;
        Ok(executed)
    }

    async fn write_phase(
        &self,
        actions: &[&Action],
        memory: &MemoryBudget,
        executed: &mut Executed,
    ) -> Vec<Failure> {
        let interrupt = self.interrupt;
        let results: Vec<(&Action, Result<Written, store::Error>)> =
            stream::iter(actions.iter().copied())
                // Stop scheduling once interrupted; requests in flight finish.
                .take_while(|_| futures::future::ready(!interrupt.is_set()))
                .map(|action| async move {
                    let result = self
                        .interrupt
                        .within_grace(self.write_one(action, memory))
                        .await
                        .unwrap_or_else(|| {
                            Err(store::Error::Interrupted {
                                url: self.store.url(Some(&action.key)),
                            })
                        });
                    if result.is_ok() {
                        (self.on_done)(action);
                    }
                    (action, result)
                })
                .buffer_unordered(self.options.concurrency.max(1))
                .collect()
                .await;
        let mut failed = Vec::new();
        for (action, result) in results {
            match result {
                Ok(Written { etag, size }) => {
                    executed.etags.insert(action.key.clone(), etag);
                    if let Some(size) = size {
                        executed.sizes.insert(action.key.clone(), size);
                    }
                }
                Err(error) => failed.push(Failure {
                    key: action.key.clone(),
                    error,
                }),
            }
        }
        failed.sort_by(|a, b| a.key.cmp(&b.key));
        failed
    }

    /// Before the HTML phase: the CloudFront Functions the new pages need, when the plan
    /// changes them (a failure stops the run with the old pages and functions serving).
    async fn publish_functions(&self, plan: &Plan) -> Result<Vec<String>, ExecuteError> {
        let Some((client, distribution)) = self.functions else {
            return Ok(Vec::new());
        };
        if !plan.publish_functions || self.interrupt.is_set() {
            return Ok(Vec::new());
        }
        super::edge::manage::publish(client, distribution, &plan.functions)
            .await
            .map_err(|source| ExecuteError::Function {
                source,
                not_started: not_started_after(Phase::Other, self.after),
            })
    }

    async fn write_one(
        &self,
        action: &Action,
        memory: &MemoryBudget,
    ) -> Result<Written, store::Error> {
        let store = self.store;
        if let Some(from) = &action.copy_from {
            let what = action.key.as_str();
            let headers = match action.file {
                Some(index) => headers_for(&self.files[index]),
                None => kept_headers(),
            };
            let etag = action.copy_etag.as_deref();
            let result = if action.copy_from_origin {
                self.retrier
                    .run(what, || {
                        store.copy_from_origin(from, &action.key, &headers, etag)
                    })
                    .await?
            } else {
                self.retrier
                    .run(what, || store.copy(from, &action.key, &headers, etag))
                    .await?
            };
            return Ok(Written::etag(result.etag));
        }
        let file = &self.files[action.file.expect("write actions name a file")];
        let headers = headers_for(file);
        let what = action.key.as_str();
        let result = match action.op {
            // Compressed in memory (sources of compressed files are text, a few MB at most).
            Op::Upload if let Some(encoding) = file.resolved.encode => {
                let _budget = memory.reserve(file.size).await;
                let source = read_verified(file).await?;
                let bytes = Bytes::from(
                    tokio::task::spawn_blocking(move || encoding.encode(&source))
                        .await
                        .expect("compression does not panic"),
                );
                let size = bytes.len() as u64;
                let result = self
                    .retrier
                    .run(what, || {
                        store.put(&file.key, Body::Bytes(bytes.clone()), &headers)
                    })
                    .await?;
                return Ok(Written {
                    etag: result.etag,
                    size: Some(size),
                });
            }
            Op::Upload if file.size < self.options.stream_threshold => {
                let _budget = memory.reserve(file.size).await;
                let bytes = read_verified(file).await?;
                self.retrier
                    .run(what, || {
                        store.put(&file.key, Body::Bytes(bytes.clone()), &headers)
                    })
                    .await?
            }
            Op::Upload => {
                verify_streamed(file).await?;
                let body = Body::File {
                    path: file.path.clone(),
                    size: file.size,
                    blake3: Some(file.blake3),
                };
                let result = self
                    .retrier
                    .run(what, || store.put(&file.key, body.clone(), &headers))
                    .await?;
                verify_unchanged_since_scan(file)?;
                result
            }
            Op::UpdateHeaders => {
                self.retrier
                    .run(what, || store.copy_replace_headers(&file.key, &headers))
                    .await?
            }
            Op::Delete => unreachable!("deletes run in their own phase"),
            Op::Keep => unreachable!("keeps are copies"),
        };
        Ok(Written::etag(result.etag))
    }

    async fn delete_phase(&self, actions: &[&Action]) -> Vec<Failure> {
        let keys: Vec<Key> = actions.iter().map(|a| a.key.clone()).collect();
        let by_key: BTreeMap<&Key, &Action> = actions.iter().map(|a| (&a.key, *a)).collect();
        let by_key = &by_key;
        let failures: Vec<Vec<(Key, store::Error)>> = stream::iter(keys.chunks(1000))
            .take_while(|_| futures::future::ready(!self.interrupt.is_set()))
            .map(|chunk| async move {
                let failed = self.delete_with_retries(chunk).await;
                for key in chunk {
                    if !failed.iter().any(|(k, _)| k == key) {
                        (self.on_done)(by_key[key]);
                    }
                }
                failed
            })
            .buffer_unordered(self.options.concurrency.clamp(1, 4))
            .collect()
            .await;
        let mut failed: Vec<Failure> = failures
            .into_iter()
            .flatten()
            .map(|(key, error)| Failure { key, error })
            .collect();
        failed.sort_by(|a, b| a.key.cmp(&b.key));
        failed
    }
}

impl Executor<'_> {
    /// Last, once every phase succeeded: aborts the uploads killed runs left, so their parts
    /// stop costing storage. A failure is a warning; the site is published.
    async fn abort_stale_uploads(&self, uploads: &[store::Upload], executed: &mut Executed) {
        let results: Vec<(&store::Upload, Result<(), store::Error>)> = stream::iter(uploads)
            .take_while(|_| futures::future::ready(!self.interrupt.is_set()))
            .map(|upload| async move { (upload, self.store.abort_upload(upload).await) })
            .buffer_unordered(self.options.concurrency.clamp(1, 4))
            .collect()
            .await;
        for (upload, result) in results {
            match result {
                Ok(()) => executed.aborted.push(upload.clone()),
                Err(error) => executed.warnings.push(format!(
                    "could not abort the stale upload of `{}`: {}",
                    crate::report::escape(&upload.name),
                    ErrorChain(&error)
                )),
            }
        }
    }

    /// Deletes a batch, then the keys that failed transiently again, a few rounds at most.
    async fn delete_with_retries(&self, chunk: &[Key]) -> Vec<(Key, store::Error)> {
        self.retrier
            .run_batch("DeleteObjects", chunk, |keys| async move {
                self.store.delete_batch(&keys).await
            })
            .await
    }
}

/// The headers an object is published with: the rule's, plus its blake3 digest in metadata
/// (for a compressed object, its identity: see [`super::compress`]).
pub(crate) fn headers_for(file: &LocalFile) -> Headers {
    let mut headers = (*file.resolved.headers).clone();
    let name = if file.resolved.encode.is_some() {
        super::compress::META_ENCODED
    } else {
        META_BLAKE3
    };
    headers
        .metadata
        .insert(name.to_string(), file.blake3.to_string());
    headers
}

/// The headers of bytes kept under `.hoist/objects/`: never cached, never served as a page (a
/// rollback copies them back with the release's headers).
fn kept_headers() -> Headers {
    Headers {
        content_type: Some("application/octet-stream".into()),
        cache_control: Some("no-store".into()),
        ..Headers::default()
    }
}

fn changed(file: &LocalFile) -> store::Error {
    store::Error::Changed {
        path: file.path.clone(),
    }
}

/// Reads a small file and checks it is still the file that was scanned.
async fn read_verified(file: &LocalFile) -> Result<Bytes, store::Error> {
    // A redirect object (`super::edge::website`) has no file: its body is empty.
    if file.path.as_os_str().is_empty() && file.size == 0 && file.blake3 == Digest::of(b"") {
        return Ok(Bytes::new());
    }
    let path = file.path.clone();
    let bytes = tokio::task::spawn_blocking(move || std::fs::read(&path))
        .await
        .expect("read task does not panic")
        .map_err(|source| store::Error::Io {
            path: file.path.clone(),
            source,
        })?;
    if bytes.len() as u64 != file.size || file.identity(Digest::of(&bytes)) != file.blake3 {
        return Err(changed(file));
    }
    Ok(Bytes::from(bytes))
}

/// Hashes a large file again before it is streamed.
async fn verify_streamed(file: &LocalFile) -> Result<(), store::Error> {
    let path = file.path.clone();
    let (digest, size) = tokio::task::spawn_blocking(move || super::scan::hash_file(&path))
        .await
        .expect("hash task does not panic")
        .map_err(|source| store::Error::Io {
            path: file.path.clone(),
            source,
        })?;
    if size != file.size || file.identity(digest) != file.blake3 {
        return Err(changed(file));
    }
    Ok(())
}

/// After a streamed upload: the file must still have the scanned size and mtime.
fn verify_unchanged_since_scan(file: &LocalFile) -> Result<(), store::Error> {
    let metadata = std::fs::metadata(&file.path).map_err(|source| store::Error::Io {
        path: file.path.clone(),
        source,
    })?;
    if metadata.len() != file.size || metadata.modified().ok() != Some(file.mtime) {
        return Err(changed(file));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_stages_are_named() {
        assert_eq!(
            not_started_after(Phase::Other, &["manifest"]),
            ["HTML pages", "deletes", "manifest"]
        );
        assert_eq!(not_started_after(Phase::Delete, &[]), Vec::<&str>::new());
    }
}
