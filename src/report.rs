//! What the user sees, and the only module that writes to the terminal. stdout carries data (a
//! line per action, or exactly one JSON document); stderr carries warnings, errors and progress.
//! One [`Printer`], passed down, decides what is shown: progress only when stderr is a terminal,
//! `CI` is unset and output is human.
//!
//! Every key printed passes through [`escape`], so a hostile key cannot send terminal escape
//! sequences. Meaning never rests on color alone: the words are always there.

// This module is where hoist writes to the terminal; `eprintln!` is allowed here alone.
#![allow(clippy::print_stderr)]

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use console::style;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::OutputFormat;

/// Replaces control characters (ESC, BEL, newlines, C1 controls, bidi overrides) with visible
/// escapes. See fd's `sanitize.rs`.
pub(crate) fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Prints a failure the way every command ends with one: `error: …`, one `caused by: …` per
/// source, then a blank line and `hint: …` when there is one (uv's `STYLE.md`).
/// aws-cli's report of options it does not know: a blank line, then `Unknown options: ...`.
pub fn print_unknown_options(unknown: &[String]) {
    eprintln!("\nUnknown options: {}", unknown.join(","));
}

pub fn print_error(error: &(dyn std::error::Error + 'static), hint: Option<&str>) {
    let red = style("error:").red().bold();
    eprintln!("{red} {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        eprintln!("  caused by: {cause}");
        source = cause.source();
    }
    if let Some(hint) = hint {
        eprintln!("\n{} {hint}", style("hint:").cyan().bold());
    }
}

/// A line on stderr from code that has no [`Printer`] (the interrupt handler).
pub(crate) fn notice(text: &str) {
    eprintln!("{text}");
}

/// A question on stderr, the answer typed after it on the same line.
pub(crate) fn prompt(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{text}");
    let _ = err.flush();
}

/// One line of a command's result on stdout.
pub(crate) fn out_line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

/// Writes generated text (a completion script, a man page) to stdout.
pub(crate) fn shell_text(write: impl FnOnce(&mut dyn Write)) {
    let mut out = std::io::stdout().lock();
    write(&mut out);
    let _ = out.flush();
}

/// Formats a byte count the way people read it (`1.5 MiB`).
pub(crate) fn human_bytes(bytes: u64) -> String {
    indicatif::BinaryBytes(bytes).to_string()
}

#[derive(Debug)]
pub(crate) struct Printer {
    format: OutputFormat,
    quiet: bool,
    progress: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Printer {
    /// Progress is shown when stderr is a terminal, `CI` is unset, output is human and not quiet.
    pub(crate) fn new(format: OutputFormat, quiet: bool) -> Printer {
        let interactive = console::Term::stderr().is_term() && std::env::var_os("CI").is_none();
        Printer {
            format,
            quiet,
            progress: interactive && format == OutputFormat::Human && !quiet,
            bar: Mutex::new(None),
        }
    }

    pub(crate) fn is_human(&self) -> bool {
        self.format == OutputFormat::Human
    }

    pub(crate) fn format(&self) -> OutputFormat {
        self.format
    }

    fn with_bar_suspended(&self, f: impl FnOnce()) {
        let bar = self.bar.lock().expect("printer lock");
        match bar.as_ref() {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    /// A data line on stdout (human output only, not when quiet).
    pub(crate) fn line(&self, text: &str) {
        if !self.is_human() || self.quiet {
            return;
        }
        self.with_bar_suspended(|| {
            // A closed stdout (`hoist deploy | head`) ends the output, not the run.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
        });
    }

    /// A line on stdout even when quiet (the final summary, a JSON document).
    pub(crate) fn data(&self, text: &str) {
        self.with_bar_suspended(|| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        });
    }

    pub(crate) fn warn(&self, text: &str) {
        self.with_bar_suspended(|| {
            eprintln!("{} {text}", style("warning:").yellow().bold());
        });
    }

    /// A status message on stderr (human output, not quiet).
    pub(crate) fn status(&self, text: &str) {
        if self.quiet {
            return;
        }
        self.with_bar_suspended(|| eprintln!("{text}"));
    }

    /// Starts a byte-counting progress bar, when progress is shown.
    pub(crate) fn start_progress(&self, total_bytes: u64, actions: u64) {
        if !self.progress {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} \
                 {binary_bytes_per_sec} eta {eta} {msg}",
            )
            .expect("valid template"),
        );
        bar.set_message(format!("0/{actions} actions"));
        bar.enable_steady_tick(Duration::from_millis(120));
        *self.bar.lock().expect("printer lock") = Some(bar);
    }

    pub(crate) fn advance(&self, bytes: u64, done: u64, total: u64) {
        if let Some(bar) = self.bar.lock().expect("printer lock").as_ref() {
            bar.inc(bytes);
            bar.set_message(format!("{done}/{total} actions"));
        }
    }

    /// [`Printer::advance`], naming what the run is doing now (a deploy's phase).
    pub(crate) fn advance_in(&self, bytes: u64, done: u64, total: u64, doing: &str) {
        if let Some(bar) = self.bar.lock().expect("printer lock").as_ref() {
            bar.inc(bytes);
            bar.set_message(format!("{done}/{total} actions, {doing}"));
        }
    }

    pub(crate) fn finish_progress(&self) {
        if let Some(bar) = self.bar.lock().expect("printer lock").take() {
            bar.finish_and_clear();
        }
    }

    /// A spinner with a message, for waits (CloudFront); a plain line per update otherwise.
    pub(crate) fn spinner(&self, message: &str) -> Option<ProgressBar> {
        if !self.progress {
            self.status(message);
            return None;
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Some(bar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters() {
        assert_eq!(escape("plain/key.html"), "plain/key.html");
        assert_eq!(escape("unicodé 文件"), "unicodé 文件");
        assert_eq!(escape("evil\x1b[2Jkey"), "evil\\u{1b}[2Jkey");
        assert_eq!(escape("a\nb\r"), "a\\nb\\r");
        assert_eq!(escape("bidi\u{202e}txt"), "bidi\\u{202e}txt");
        assert_eq!(escape("c1\u{9b}x"), "c1\\u{9b}x");
    }

    #[test]
    fn bytes_read_well() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
    }
}
