//! Ctrl-C and SIGTERM: stop scheduling, let in-flight requests finish, never start a later phase.
//!
//! `main` installs the handler; the executor checks [`Interrupt::is_set`] before each action and
//! between phases. Requests still in flight [`GRACE`] after the signal are cancelled
//! ([`Interrupt::cancelled`]), so a stuck server cannot hold the exit. A second signal exits at
//! once with [`ExitCode::Interrupted`], after removing the temporary files of downloads in
//! flight ([`track`]), which would otherwise stay in the destination.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::ExitCode;

/// How long requests in flight may finish after the first signal.
pub(crate) const GRACE: Duration = Duration::from_secs(10);

/// Temporary files that exist only until their download finishes.
static TEMPORARY: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Records a temporary file to remove if the process exits on a second signal.
pub(crate) fn track(path: &Path) {
    TEMPORARY
        .lock()
        .expect("no panics while tracking")
        .insert(path.to_owned());
}

/// The file was renamed into place or removed.
pub(crate) fn untrack(path: &Path) {
    TEMPORARY
        .lock()
        .expect("no panics while tracking")
        .remove(path);
}

fn remove_tracked() {
    let paths = std::mem::take(&mut *TEMPORARY.lock().expect("no panics while tracking"));
    for path in paths {
        // Gone already is fine: the point is that it is gone.
        let _ = std::fs::remove_file(path);
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Interrupt {
    flag: Arc<AtomicBool>,
    notify: Arc<tokio::sync::Notify>,
}

impl Interrupt {
    pub(crate) fn new() -> Interrupt {
        Interrupt::default()
    }

    pub(crate) fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    pub(crate) fn set(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Resolves [`GRACE`] after the interrupt is set: race a request against it to cancel the
    /// request if it has not finished by then.
    pub(crate) async fn cancelled(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_set() {
                break;
            }
            notified.await;
        }
        tokio::time::sleep(GRACE).await;
    }

    /// Runs `work` to its end, unless the interrupt came more than [`GRACE`] ago: then `None`,
    /// and `work` is dropped (its temporary files with it).
    pub(crate) async fn within_grace<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            done = work => Some(done),
            () = self.cancelled() => None,
        }
    }

    /// Listens for SIGINT and SIGTERM (Ctrl-C elsewhere). The first sets the flag; the second
    /// exits the process with [`ExitCode::Interrupted`].
    pub(crate) fn install(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut signals = 0;
            loop {
                wait_for_signal().await;
                signals += 1;
                if signals > 1 {
                    crate::report::notice("interrupted again: exiting now");
                    remove_tracked();
                    std::process::exit(i32::from(ExitCode::Interrupted.code()));
                }
                crate::report::notice(&format!(
                    "interrupted: finishing requests in flight (for up to {}s), starting nothing new (press Ctrl-C again to exit now)",
                    GRACE.as_secs()
                ));
                this.set();
            }
        });
    }
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("can listen for SIGTERM");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
