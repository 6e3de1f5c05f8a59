//! `--output markdown`: a deploy's report as a short Markdown document for a pull-request
//! comment or a GitHub Actions job summary (issue #16).
//!
//! The document is the same [`DeployReport`] the JSON output prints, shaped for people: the
//! outcome in one line, a table of the phases, then every list (deletes first, the changes a
//! reviewer most needs to see) folded in a `<details>` block. GitHub refuses comments over
//! 65,536 characters, so every list is cut off at [`LIST_ITEMS`] entries and the document as a
//! whole at [`BUDGET`] characters, each cut saying how many entries it left out and where the
//! whole list is (`--output json`).

use std::fmt::Write;

use super::DeployReport;
use crate::deploy::plan::{Action, Op, Phase};
use crate::report::{escape, human_bytes};

/// At most this many characters in the document (GitHub's comment limit is 65,536; the rest is
/// room for what a workflow adds around it).
pub(crate) const BUDGET: usize = 60_000;

/// At most this many entries of one list are shown.
const LIST_ITEMS: usize = 200;

/// Room kept back for the closing lines of every list still to come.
const CLOSING: usize = 2_000;

impl DeployReport {
    /// The report as Markdown.
    pub(crate) fn markdown(&self) -> String {
        let mut out = String::new();
        self.headline(&mut out);
        self.phase_table(&mut out);
        self.notes(&mut out);
        let mut budget = Budget {
            left: BUDGET.saturating_sub(out.len()),
        };
        let by_op = |op: Op| -> Vec<String> {
            self.actions
                .iter()
                .filter(|a| a.op == op)
                .map(item)
                .collect()
        };
        let kept: Vec<String> = self
            .kept
            .iter()
            .map(|k| {
                let why = match (k.release, k.expires) {
                    (Some(release), _) => format!("release {release} publishes it"),
                    (None, Some(expires)) => format!("until {expires}"),
                    (None, None) => "kept".to_string(),
                };
                format!(
                    "{} (stale since {}, {why})",
                    code(k.key.as_str()),
                    k.stale_since
                )
            })
            .collect();
        let paths: Vec<String> = self
            .invalidation
            .as_ref()
            .map(|i| i.paths.iter().map(|p| code(p)).collect())
            .unwrap_or_default();
        let stale_uploads: Vec<String> = self.stale_uploads.iter().map(|u| code(&u.name)).collect();
        let verb = |done: &'static str, would: &'static str| if self.dryrun { would } else { done };
        let lists: [(&str, Vec<String>); 7] = [
            (verb("deleted", "to delete"), by_op(Op::Delete)),
            ("kept after leaving the site", kept),
            (
                verb("headers updated", "headers to update"),
                by_op(Op::UpdateHeaders),
            ),
            (verb("uploaded", "to upload"), by_op(Op::Upload)),
            (
                verb("kept for rollback", "to keep for rollback"),
                by_op(Op::Keep),
            ),
            (verb("invalidated paths", "paths to invalidate"), paths),
            (
                verb("abandoned uploads aborted", "abandoned uploads to abort"),
                stale_uploads,
            ),
        ];
        let remaining = lists.iter().filter(|(_, items)| !items.is_empty()).count();
        for (index, (title, items)) in lists.iter().filter(|(_, i)| !i.is_empty()).enumerate() {
            budget.fold(&mut out, title, items, remaining - index - 1);
        }
        out
    }

    /// Whether the report holds a plan (or what part of one completed): not when the run
    /// failed before it had one.
    fn has_plan(&self) -> bool {
        self.status == "ok" || !self.actions.is_empty() || self.summary.unchanged > 0
    }

    /// `### ✅ Deployed to `s3://b/`` and the counts in one sentence.
    fn headline(&self, out: &mut String) {
        let target = self.target.as_deref().unwrap_or("(no target)");
        let (mark, what) = match (self.status, self.dryrun) {
            ("ok", true) => ("📝", "Deploy plan for"),
            ("ok", false) => ("✅", "Deployed to"),
            ("refused", _) => ("🛑", "Deploy refused for"),
            ("interrupted", _) => ("⚠️", "Deploy interrupted for"),
            _ => ("❌", "Deploy failed for"),
        };
        let _ = writeln!(out, "### {mark} hoist: {what} {}\n", code(target));
        if let Some(preview) = &self.preview {
            let _ = write!(out, "Preview {}", code(&preview.name));
            if let Some(url) = &preview.url {
                let _ = write!(out, ": <{}>", url.replace(['<', '>', ' '], ""));
            }
            out.push_str("\n\n");
        }
        if !self.has_plan() {
            // It failed before it had a plan: the errors say why.
            return;
        }
        let s = &self.summary;
        let (upload, update, delete) = if self.dryrun {
            ("Would upload", "update the headers of", "delete")
        } else {
            ("Uploaded", "updated the headers of", "deleted")
        };
        let _ = write!(
            out,
            "{upload} {} ({}), {update} {}, {delete} {}; {} unchanged",
            s.uploaded,
            human_bytes(s.bytes),
            s.headers_updated,
            s.deleted,
            s.unchanged
        );
        if s.stale_kept > 0 {
            let _ = write!(out, ", {} stale kept (deletion is off)", s.stale_kept);
        }
        if s.kept > 0 {
            let _ = write!(out, ", {} kept after leaving the site", s.kept);
        }
        if let Some(release) = &self.release {
            let _ = write!(out, "; release {}", release.id);
        }
        let _ = writeln!(out, ".\n");
    }

    /// One row per phase that has work, in execution order.
    fn phase_table(&self, out: &mut String) {
        if !self.has_plan() {
            return;
        }
        let phases = [
            (Phase::Preserve, "0. keep the live pages for rollback"),
            (Phase::Immutable, "1. immutable assets"),
            (Phase::Other, "2. other files"),
            (Phase::Html, "3. HTML pages"),
            (Phase::Delete, "4. deletes"),
        ];
        let rows: Vec<String> = phases
            .iter()
            .filter_map(|(phase, name)| {
                let actions: Vec<&Action> =
                    self.actions.iter().filter(|a| a.phase == *phase).collect();
                if actions.is_empty() {
                    return None;
                }
                let count = |op| actions.iter().filter(|a| a.op == op).count();
                let bytes: u64 = actions.iter().map(|a| a.bytes).sum();
                Some(format!(
                    "| {name} | {} | {} | {} | {} | {} |",
                    count(Op::Upload),
                    count(Op::UpdateHeaders),
                    count(Op::Delete),
                    count(Op::Keep),
                    human_bytes(bytes)
                ))
            })
            .collect();
        if rows.is_empty() {
            out.push_str("Nothing to change.\n\n");
            return;
        }
        out.push_str(
            "| phase | uploads | header updates | deletes | kept for rollback | bytes |\n",
        );
        out.push_str("|---|---:|---:|---:|---:|---:|\n");
        for row in rows {
            out.push_str(&row);
            out.push('\n');
        }
        out.push('\n');
    }

    /// Invalidation, guards and warnings: short, never folded.
    fn notes(&self, out: &mut String) {
        if let Some(invalidation) = &self.invalidation {
            let _ = writeln!(
                out,
                "**CloudFront** {}: {}.\n",
                code(&invalidation.distribution_id),
                text(&invalidation.summary())
            );
        }
        if !self.nested_sites.is_empty() {
            let sites: Vec<String> = self.nested_sites.iter().map(|s| code(s)).collect();
            let _ = writeln!(out, "**Nested sites left alone:** {}.\n", sites.join(", "));
        }
        for (title, lines) in [
            (
                "Errors",
                self.errors.iter().map(error_line).collect::<Vec<_>>(),
            ),
            (
                "Warnings",
                self.warnings.iter().map(|w| text(w)).collect::<Vec<_>>(),
            ),
        ] {
            if lines.is_empty() {
                continue;
            }
            let _ = writeln!(out, "**{title}** ({}):\n", lines.len());
            let mut shown = 0;
            for line in &lines {
                if shown == 20 {
                    break;
                }
                let _ = writeln!(out, "- {line}");
                shown += 1;
            }
            if lines.len() > shown {
                let _ = writeln!(
                    out,
                    "- … and {} more (all of them: `--output json`)",
                    lines.len() - shown
                );
            }
            out.push('\n');
        }
    }
}

/// What is left of [`BUDGET`].
struct Budget {
    left: usize,
}

impl Budget {
    /// Appends `items` as a folded list; `later` lists still need their closing room.
    fn fold(&mut self, out: &mut String, title: &str, items: &[String], later: usize) {
        let mut block = format!(
            "<details><summary>{} {}</summary>\n\n",
            items.len(),
            html(title)
        );
        let reserve = CLOSING * (later + 1);
        let mut shown = 0;
        for item in items.iter().take(LIST_ITEMS) {
            let line = format!("- {item}\n");
            if block.len() + line.len() + reserve > self.left {
                break;
            }
            block.push_str(&line);
            shown += 1;
        }
        if shown < items.len() {
            let _ = writeln!(
                block,
                "- … and {} more (the whole list: `--output json`)",
                items.len() - shown
            );
        }
        block.push_str("\n</details>\n\n");
        self.left = self.left.saturating_sub(block.len());
        out.push_str(&block);
    }
}

/// `upload `assets/app.js` (new)`: one entry of an action list.
fn item(action: &Action) -> String {
    let mut line = code(action.key.as_str());
    match (&action.copy_from, action.op) {
        (Some(from), Op::Keep) => {
            line = format!("{} as {}", code(from.as_str()), line);
        }
        (Some(from), _) if action.copy_from_origin => {
            let _ = write!(line, " (copied from production's {})", code(from.as_str()));
        }
        (Some(from), _) => {
            let _ = write!(line, " (copied from {})", code(from.as_str()));
        }
        (None, _) => {
            let _ = write!(line, " ({})", action.reason.as_str());
        }
    }
    if action.op == Op::Upload && action.bytes > 0 {
        let _ = write!(line, ", {}", human_bytes(action.bytes));
    }
    for change in &action.header_changes {
        let _ = write!(
            line,
            "; {}: {} → {}",
            change.header,
            change.from.as_deref().map_or("none".to_string(), code),
            change.to.as_deref().map_or("none".to_string(), code)
        );
    }
    line
}

fn error_line(error: &super::JsonError) -> String {
    let mut line = format!("**{}**", text(&error.code));
    if let Some(key) = &error.key {
        let _ = write!(line, " {}", code(key));
    }
    let _ = write!(line, ": {}", text(&error.message));
    line
}

/// A code span that shows `value` exactly, whatever backticks or HTML it holds: the fence is
/// one backtick longer than the longest run inside, padded when the value starts or ends with
/// one (CommonMark's rule). Control characters are escaped first.
pub(crate) fn code(value: &str) -> String {
    let value = escape(value);
    let mut longest = 0;
    let mut run = 0;
    for c in value.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let pad = if value.starts_with('`') || value.ends_with('`') || value.is_empty() {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{value}{pad}{fence}")
}

/// A message as Markdown text: one line, HTML and emphasis characters shown as themselves
/// (a key inside a message could hold anything).
fn text(value: &str) -> String {
    let value = escape(value);
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// Text for a table cell: as [`text`], which also escapes `|`.
pub(crate) fn cell(value: &str) -> String {
    text(value)
}

/// Text inside an HTML element (the `<summary>` of a fold).
fn html(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_hold_any_key() {
        assert_eq!(code("a.html"), "`a.html`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`x"), "`` `x ``");
        assert_eq!(code("a``b"), "```a``b```");
        assert_eq!(code("new\nline"), "`new\\nline`");
    }

    #[test]
    fn text_shows_markup_as_itself() {
        assert_eq!(
            text("`a` <b> *c* _d_ | e"),
            "\\`a\\` &lt;b&gt; \\*c\\* \\_d\\_ \\| e"
        );
    }
}
