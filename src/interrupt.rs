//! Ctrl-C and SIGTERM: stop scheduling, let in-flight requests finish, never start a later phase.
//!
//! `main` installs the handler; the executor checks [`Interrupt::is_set`] before each action and
//! between phases. A second signal exits at once with [`ExitCode::Interrupted`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::ExitCode;

#[derive(Debug, Clone, Default)]
pub(crate) struct Interrupt {
    flag: Arc<AtomicBool>,
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
                    std::process::exit(i32::from(ExitCode::Interrupted.code()));
                }
                crate::report::notice(
                    "interrupted: finishing requests in flight, starting nothing new (press Ctrl-C again to exit now)",
                );
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
