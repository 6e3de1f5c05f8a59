//! Ctrl-C and SIGTERM: stop scheduling, let in-flight requests finish, never start a later phase.
//!
//! `main` installs the handler; the executor checks [`Interrupt::is_set`] before each action and
//! between phases. A second signal exits at once with 130.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    flag: Arc<AtomicBool>,
    notify: Arc<tokio::sync::Notify>,
}

impl Interrupt {
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    pub fn set(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Resolves once the interrupt is set.
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }

    /// Listens for SIGINT and SIGTERM (Ctrl-C elsewhere). The first sets the flag; the second
    /// exits the process with 130.
    pub fn install(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut signals = 0;
            loop {
                wait_for_signal().await;
                signals += 1;
                if signals > 1 {
                    eprintln!("interrupted again: exiting now");
                    std::process::exit(130);
                }
                eprintln!(
                    "interrupted: finishing requests in flight, starting nothing new (press Ctrl-C again to exit now)"
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
