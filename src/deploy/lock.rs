//! One deploy at a time: `.hoist/lock.json` under the target, created with a conditional write
//! (`If-None-Match: *`), so of two runs that try at once exactly one gets it.
//!
//! The object says who holds it (host, pid, command, the CI run's URL when the environment
//! names one), since when, when it was last refreshed and for how long it stays valid (its
//! TTL). The holder refreshes it every quarter TTL with `If-Match` on its own ETag, so a
//! long deploy keeps it, and a holder that was killed (SIGKILL, a cancelled CI job) leaves a
//! lock that expires. A waiting run takes an expired lock over with `If-Match` on the ETag it
//! read, so two takers cannot both win. The lock is deleted (again with `If-Match`) at the end
//! of the run, on success, failure or interrupt.
//!
//! A store that ignores conditional writes (rclone serve s3 1.75) cannot keep two runs apart:
//! the second `If-None-Match: *` create right after the first then succeeds, and hoist refuses
//! to run unless the lock is turned off (`--no-lock`, `lock: false`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::clock::{Timestamp, span};
use crate::headers::Headers;
use crate::interrupt::Interrupt;
use crate::key::Key;
use crate::report::{Printer, escape};
use crate::store::{self, Condition, Store};

pub(crate) const LOCK_KEY: &str = ".hoist/lock.json";
/// How long a lock stays valid without a refresh (`HOIST_LOCK_TTL`, seconds, overrides).
pub(crate) const DEFAULT_TTL: Duration = Duration::from_mins(2);
/// How long a run waits for another's lock (`--lock-timeout`).
pub(crate) const DEFAULT_WAIT: Duration = Duration::from_mins(5);
/// How often a waiting run looks again.
const POLL: Duration = Duration::from_secs(2);

pub(crate) fn lock_key() -> Key {
    Key::new(LOCK_KEY).expect("the lock key is valid")
}

/// What the lock object says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Holder {
    /// Unique per run: a run recognises its own lock (a create the SDK retried).
    pub(crate) id: String,
    pub(crate) command: String,
    pub(crate) host: String,
    pub(crate) pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ci_run: Option<String>,
    pub(crate) since: Timestamp,
    pub(crate) refreshed: Timestamp,
    pub(crate) ttl_seconds: u64,
}

impl Holder {
    fn new(command: &str, ttl: Duration) -> Holder {
        let now = Timestamp::now();
        Holder {
            id: uuid::Uuid::new_v4().to_string(),
            command: command.to_string(),
            host: host_name(),
            pid: std::process::id(),
            ci_run: ci_run_url(),
            since: now,
            refreshed: now,
            ttl_seconds: ttl.as_secs().max(1),
        }
    }

    /// `hoist deploy on ci-runner-7 (pid 4121) since 2026-12-01T22:15:00Z, run <url>`.
    pub(crate) fn describe(&self) -> String {
        let mut text = format!(
            "`hoist {}` on {} (pid {}) since {}",
            escape(&self.command),
            escape(&self.host),
            self.pid,
            self.since
        );
        if let Some(url) = &self.ci_run {
            text.push_str(&format!(", CI run {}", escape(url)));
        }
        text
    }

    /// Whether its holder stopped refreshing it longer than its TTL ago.
    pub(crate) fn expired(&self, now: Timestamp) -> bool {
        now.since(self.refreshed) > Duration::from_secs(self.ttl_seconds)
    }

    fn to_bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec_pretty(self).expect("the lock serializes"))
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum LockError {
    #[error("another run holds the lock `{url}`: {holder}; waited {waited}, nothing was changed")]
    Held {
        url: String,
        holder: String,
        waited: String,
    },
    #[error(
        "`{url}` accepted a second create with If-None-Match: *: this store ignores conditional \
         writes, so hoist's lock cannot keep two deploys apart"
    )]
    Unsupported { url: String },
    #[error("interrupted while waiting for the lock `{url}`")]
    Interrupted { url: String },
    #[error("cannot take the lock `{url}`")]
    Store {
        url: String,
        #[source]
        source: store::Error,
    },
}

impl LockError {
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            LockError::Unsupported { .. } => Some(
                "make sure no two deploys of this target run at once (a CI concurrency group), \
                 then pass --no-lock or set `lock: false` in deploy.yaml"
                    .into(),
            ),
            LockError::Held { .. } => Some(
                "run again once it has finished; --lock-timeout waits longer. A lock whose \
                 holder was killed is taken over once it is older than its TTL"
                    .into(),
            ),
            LockError::Store { source, .. } => source.hint(),
            LockError::Interrupted { .. } => None,
        }
    }
}

/// How a run takes the lock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LockOptions {
    pub(crate) ttl: Duration,
    pub(crate) wait: Duration,
}

/// A lock this run holds. [`Lock::release`] it; a run that never does leaves a lock that
/// expires after its TTL.
pub(crate) struct Lock {
    store: Arc<dyn Store>,
    state: Arc<Mutex<(Holder, String)>>,
    lost: Arc<AtomicBool>,
    heartbeat: tokio::task::JoinHandle<()>,
}

/// Takes the lock for `command`, waiting up to `options.wait` for another run's.
pub(crate) async fn acquire(
    store: &Arc<dyn Store>,
    command: &str,
    options: LockOptions,
    printer: &Printer,
    interrupt: &Interrupt,
) -> Result<Lock, LockError> {
    let key = lock_key();
    let url = store.url(Some(&key));
    let failed = |source| LockError::Store {
        url: url.clone(),
        source,
    };
    let started = Instant::now();
    let mut announced: Option<String> = None;
    loop {
        let holder = Holder::new(command, options.ttl);
        let attempt = store
            .put_if(&key, holder.to_bytes(), &lock_headers(), &Condition::Absent)
            .await;
        match attempt {
            Ok(put) => {
                let etag = confirm_conditions(store.as_ref(), &key, &holder, put.etag).await?;
                return Ok(Lock::held(store, holder, etag, options.ttl));
            }
            Err(store::Error::PreconditionFailed { .. }) => {}
            Err(error) => return Err(failed(error)),
        }
        let (current, etag) = match read(store.as_ref(), &key).await {
            Ok(Some(found)) => found,
            // Released between the two requests: try again at once.
            Ok(None) => continue,
            Err(error) => return Err(failed(error)),
        };
        if current.expired(Timestamp::now()) {
            printer.warn(&format!(
                "taking over the lock `{url}` of {}: not refreshed for {} (its TTL is {})",
                current.describe(),
                span(Timestamp::now().since(current.refreshed)),
                span(Duration::from_secs(current.ttl_seconds))
            ));
            let holder = Holder::new(command, options.ttl);
            match store
                .put_if(
                    &key,
                    holder.to_bytes(),
                    &lock_headers(),
                    &Condition::Matches(etag.clone()),
                )
                .await
            {
                Ok(put) => {
                    let etag = put.etag.unwrap_or(etag);
                    return Ok(Lock::held(store, holder, etag, options.ttl));
                }
                // Another run took it over first: wait for that one.
                Err(store::Error::PreconditionFailed { .. }) => continue,
                Err(error) => return Err(failed(error)),
            }
        }
        let waited = started.elapsed();
        if waited >= options.wait {
            return Err(LockError::Held {
                url,
                holder: current.describe(),
                waited: span(waited),
            });
        }
        if announced.as_ref() != Some(&current.id) {
            printer.status(&format!(
                "waiting for the lock `{url}`: held by {} (up to {} more)",
                current.describe(),
                span(options.wait.saturating_sub(waited))
            ));
            announced = Some(current.id.clone());
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = interrupt.cancelled() => return Err(LockError::Interrupted { url }),
        }
    }
}

/// After a successful create: a second `If-None-Match: *` create must fail, or the store
/// ignores conditions. Returns the lock's ETag.
async fn confirm_conditions(
    store: &dyn Store,
    key: &Key,
    holder: &Holder,
    etag: Option<String>,
) -> Result<String, LockError> {
    let url = store.url(Some(key));
    match store
        .put_if(key, holder.to_bytes(), &lock_headers(), &Condition::Absent)
        .await
    {
        Err(store::Error::PreconditionFailed { .. }) => {}
        Ok(_) => {
            // The object now holds this run's holder either way: remove it.
            let _ = store.delete_batch(std::slice::from_ref(key)).await;
            return Err(LockError::Unsupported { url });
        }
        Err(source) => return Err(LockError::Store { url, source }),
    }
    match etag {
        Some(etag) => Ok(etag),
        None => match read(store, key).await {
            Ok(Some((_, etag))) => Ok(etag),
            Ok(None) => Err(LockError::Store {
                url: url.clone(),
                source: store::Error::NotFound { url },
            }),
            Err(source) => Err(LockError::Store { url, source }),
        },
    }
}

/// The lock's holder and ETag, or `None` when there is no lock. A lock object hoist cannot
/// read (written by hand, or truncated) counts as expired, so it does not block forever.
async fn read(store: &dyn Store, key: &Key) -> Result<Option<(Holder, String)>, store::Error> {
    match store::get_tagged(store, key).await {
        Ok((bytes, etag)) => {
            let holder = serde_json::from_slice(&bytes).unwrap_or_else(|_| Holder {
                id: "unreadable".into(),
                command: "?".into(),
                host: "an unknown host".into(),
                pid: 0,
                ci_run: None,
                since: Timestamp(0),
                refreshed: Timestamp(0),
                ttl_seconds: DEFAULT_TTL.as_secs(),
            });
            Ok(Some((holder, etag.unwrap_or_default())))
        }
        Err(store::Error::NotFound { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Who holds the lock now, if anyone (for `--dryrun`, which never takes it).
pub(crate) async fn holder(store: &dyn Store) -> Result<Option<Holder>, store::Error> {
    Ok(read(store, &lock_key())
        .await?
        .map(|(holder, _)| holder)
        .filter(|holder| !holder.expired(Timestamp::now())))
}

fn lock_headers() -> Headers {
    Headers {
        content_type: Some("application/json".into()),
        cache_control: Some("no-store".into()),
        ..Headers::default()
    }
}

impl Lock {
    fn held(store: &Arc<dyn Store>, holder: Holder, etag: String, ttl: Duration) -> Lock {
        let state = Arc::new(Mutex::new((holder, etag)));
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn(refresh(
            Arc::clone(store),
            Arc::clone(&state),
            Arc::clone(&lost),
            ttl / 4,
        ));
        Lock {
            store: Arc::clone(store),
            state,
            lost,
            heartbeat,
        }
    }

    /// Set once another run took the lock over (this run stalled past the TTL).
    pub(crate) fn lost(&self) -> &AtomicBool {
        &self.lost
    }

    /// Stops refreshing and deletes the lock, if it is still this run's. Returns a warning
    /// when it was not, or could not be deleted (it then expires after its TTL).
    pub(crate) async fn release(self) -> Option<String> {
        self.heartbeat.abort();
        let _ = self.heartbeat.await;
        let key = lock_key();
        let url = self.store.url(Some(&key));
        if self.lost.load(Ordering::SeqCst) {
            return Some(format!(
                "the lock `{url}` was taken over by another run while this one ran"
            ));
        }
        let etag = self.state.lock().expect("lock state").1.clone();
        match self.store.delete_if(&key, &etag).await {
            Ok(()) => None,
            Err(store::Error::PreconditionFailed { .. }) => Some(format!(
                "the lock `{url}` was taken over by another run while this one ran"
            )),
            // A store without conditional deletes: delete it plainly, it is this run's.
            Err(store::Error::Service { .. }) => {
                let failed = self.store.delete_batch(std::slice::from_ref(&key)).await;
                failed.into_iter().next().map(|(_, error)| {
                    format!(
                        "could not delete the lock `{url}` (it expires after its TTL): {}",
                        crate::error::ErrorChain(&error)
                    )
                })
            }
            Err(error) => Some(format!(
                "could not delete the lock `{url}` (it expires after its TTL): {}",
                crate::error::ErrorChain(&error)
            )),
        }
    }
}

/// The heartbeat: rewrites the lock with a new `refreshed` time, conditionally on its ETag.
async fn refresh(
    store: Arc<dyn Store>,
    state: Arc<Mutex<(Holder, String)>>,
    lost: Arc<AtomicBool>,
    every: Duration,
) {
    let key = lock_key();
    loop {
        tokio::time::sleep(every.max(Duration::from_millis(250))).await;
        let (mut holder, etag) = state.lock().expect("lock state").clone();
        holder.refreshed = Timestamp::now();
        match store
            .put_if(
                &key,
                holder.to_bytes(),
                &lock_headers(),
                &Condition::Matches(etag),
            )
            .await
        {
            Ok(put) => {
                if let Some(etag) = put.etag {
                    *state.lock().expect("lock state") = (holder, etag);
                }
            }
            Err(store::Error::PreconditionFailed { .. }) => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
            // A failed refresh is tried again at the next beat.
            Err(error) => tracing::info!(
                "refreshing the lock failed: {}",
                crate::error::ErrorChain(&error)
            ),
        }
    }
}

/// This machine's name, as the environment or the system gives it.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .or_else(|_| std::env::var("COMPUTERNAME"))
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "an unknown host".into())
}

/// The URL of the CI run, when the environment names one (GitHub Actions, GitLab CI,
/// Buildkite, CircleCI).
fn ci_run_url() -> Option<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let (Some(server), Some(repo), Some(run)) = (
        var("GITHUB_SERVER_URL"),
        var("GITHUB_REPOSITORY"),
        var("GITHUB_RUN_ID"),
    ) {
        return Some(format!("{server}/{repo}/actions/runs/{run}"));
    }
    var("CI_JOB_URL")
        .or_else(|| var("BUILDKITE_BUILD_URL"))
        .or_else(|| var("CIRCLE_BUILD_URL"))
}

/// `HOIST_LOCK_TTL` (whole seconds), else [`DEFAULT_TTL`].
pub(crate) fn ttl_from_env() -> Result<Duration, crate::aws::EnvError> {
    match std::env::var("HOIST_LOCK_TTL") {
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
            _ => Err(crate::aws::EnvError {
                name: "HOIST_LOCK_TTL",
                value: text,
            }),
        },
        Err(_) => Ok(DEFAULT_TTL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_expires_after_its_ttl_without_refresh() {
        let mut holder = Holder::new("deploy", Duration::from_mins(1));
        holder.refreshed = Timestamp(1000);
        assert!(!holder.expired(Timestamp(1060)));
        assert!(holder.expired(Timestamp(1061)));
        let text = String::from_utf8(holder.to_bytes().to_vec()).unwrap();
        let back: Holder = serde_json::from_str(&text).unwrap();
        assert_eq!(back, holder);
        assert!(holder.describe().starts_with("`hoist deploy` on "));
    }
}
