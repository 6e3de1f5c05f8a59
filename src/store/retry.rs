//! Whole-transfer retries, above the SDK's request retries.
//!
//! Each request already makes up to [`crate::aws::DEFAULT_MAX_ATTEMPTS`] attempts with backoff.
//! A transfer whose request used them all up (a long outage, a store throttling hard, the SDK's
//! retry quota spent), or whose body broke where the SDK does not retry, is tried again whole,
//! after a pause: up to [`PER_TRANSFER`] more times, and at most a run-wide budget in all, so a
//! dead endpoint fails the run in bounded time instead of retrying forever. Only transient
//! errors are retried: a 5xx, throttling, a broken connection. An interrupt stops retrying.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::Error;
use crate::interrupt::Interrupt;

/// Whole retries of one transfer, after its first try.
pub(crate) const PER_TRANSFER: u32 = 3;

/// The run-wide budget of whole retries.
#[derive(Debug)]
pub(crate) struct Retrier {
    budget: AtomicUsize,
    interrupt: Interrupt,
}

impl Retrier {
    /// A budget for a run of `transfers`: a quarter of them, at least 16.
    pub(crate) fn new(transfers: usize, interrupt: &Interrupt) -> Retrier {
        Retrier {
            budget: AtomicUsize::new((transfers / 4).max(16)),
            interrupt: interrupt.clone(),
        }
    }

    /// Runs `transfer` until it succeeds, fails for a reason a retry cannot fix, or the
    /// retries (its own or the run's) are used up.
    pub(crate) async fn run<T, F, Fut>(&self, what: &str, mut transfer: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut retry = 0;
        loop {
            let error = match transfer().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if retry >= PER_TRANSFER || !error.is_transient() {
                return Err(error);
            }
            retry += 1;
            tracing::info!("{what} failed: {}", crate::error::ErrorChain(&error));
            if !self.pause(what, retry).await {
                return Err(error);
            }
        }
    }

    /// Runs a batch operation (DeleteObjects) whose per-item failures come back as a list, then
    /// runs it again for the items that failed transiently, a few rounds at most. Returns what
    /// still failed.
    pub(crate) async fn run_batch<N, F, Fut>(
        &self,
        what: &str,
        items: &[N],
        mut batch: F,
    ) -> Vec<(N, Error)>
    where
        N: Clone,
        F: FnMut(Vec<N>) -> Fut,
        Fut: Future<Output = Vec<(N, Error)>>,
    {
        let mut failed = batch(items.to_vec()).await;
        let mut retry = 0;
        while retry < PER_TRANSFER && failed.iter().any(|(_, e)| e.is_transient()) {
            retry += 1;
            if !self.pause(what, retry).await {
                break;
            }
            let (again, permanent): (Vec<_>, Vec<_>) =
                failed.into_iter().partition(|(_, e)| e.is_transient());
            failed = permanent;
            failed.extend(batch(again.into_iter().map(|(item, _)| item).collect()).await);
        }
        failed
    }

    /// Before retry number `retry` of something: takes one retry from the run's budget and
    /// waits the backoff. `false` when the budget is spent or the run was interrupted.
    pub(crate) async fn pause(&self, what: &str, retry: u32) -> bool {
        let took = !self.interrupt.is_set()
            && self
                .budget
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                })
                .is_ok();
        if !took {
            return false;
        }
        let pause = backoff(retry);
        tracing::info!("trying {what} again in {:.1}s", pause.as_secs_f64());
        tokio::time::sleep(pause).await;
        !self.interrupt.is_set()
    }
}

/// 1 s, 2 s, 4 s..., with up to half of it added at random so retries do not align.
fn backoff(retry: u32) -> Duration {
    let base = Duration::from_secs(1 << (retry - 1).min(4));
    let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
    base + base.mul_f64(f64::from(jitter) / 2000.0)
}

impl Error {
    /// Whether trying again may succeed: throttling, a 5xx, a broken connection or body.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } | Error::TimedOut { .. } | Error::Other { .. } => true,
            Error::Service { code, status, .. } => {
                status.is_some_and(|s| s >= 500 || s == 429 || s == 408)
                    || code.as_deref().is_some_and(|code| {
                        matches!(
                            code,
                            "SlowDown"
                                | "Throttling"
                                | "ThrottlingException"
                                | "RequestTimeout"
                                | "InternalError"
                                | "ServiceUnavailable"
                        )
                    })
            }
            Error::NotFound { .. }
            | Error::NoSuchBucket { .. }
            | Error::AccessDenied { .. }
            | Error::NoCredentials { .. }
            | Error::Io { .. }
            | Error::Changed { .. }
            | Error::Interrupted { .. }
            | Error::Reserved { .. }
            | Error::PreconditionFailed { .. }
            | Error::ChecksumMismatch { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(code: Option<&str>, status: Option<u16>) -> Error {
        Error::Service {
            op: "PutObject",
            url: "s3://b/k".into(),
            code: code.map(str::to_string),
            message: None,
            status,
        }
    }

    #[test]
    fn transient_errors() {
        assert!(service(Some("SlowDown"), Some(503)).is_transient());
        assert!(service(None, Some(500)).is_transient());
        assert!(service(Some("InternalError"), None).is_transient());
        assert!(!service(Some("InvalidArgument"), Some(400)).is_transient());
        assert!(
            !Error::AccessDenied {
                op: "PutObject",
                url: "s3://b/k".into(),
                code: None,
                message: None
            }
            .is_transient()
        );
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        assert!(backoff(1) >= Duration::from_secs(1) && backoff(1) < Duration::from_secs(2));
        assert!(backoff(3) >= Duration::from_secs(4));
        assert!(backoff(30) <= Duration::from_secs(24));
    }

    #[tokio::test]
    async fn retries_transient_failures_within_the_budget() {
        tokio::time::pause();
        let retrier = Retrier::new(0, &Interrupt::new());
        let mut calls = 0;
        let result = retrier
            .run("upload", || {
                calls += 1;
                let fail = calls < 3;
                async move {
                    if fail {
                        Err(service(Some("SlowDown"), Some(503)))
                    } else {
                        Ok(calls)
                    }
                }
            })
            .await;
        assert_eq!(result.expect("third try succeeds"), 3);

        let mut calls = 0;
        let result: Result<(), Error> = retrier
            .run("upload", || {
                calls += 1;
                async { Err(service(Some("AccessDenied"), Some(403))) }
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls, 1, "a permanent error is not retried");
    }
}
