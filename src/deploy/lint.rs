//! Checks on the resolved headers before anything is published (issue #16): the mistakes that
//! leave a site serving stale pages for a year, fonts the browser refuses, or garbled text,
//! none of which S3 itself objects to.
//!
//! Each [`Finding`] is one check on one rule (files are grouped, so 5,000 pages under one bad
//! rule are one finding), naming the first file, how many files, the rule and the fix. They
//! are warnings by default; with `--strict` (or `lint: {strict: true}`) any finding stops the
//! deploy before the target is touched. `lint: {allow: [check, ...]}` silences a check.

use std::collections::BTreeMap;
use std::io::Read;

use super::rules::Rules;
use super::scan::LocalFile;
use crate::headers::is_html;
use crate::report::escape;

/// Every check, by its stable name (the one `lint.allow` takes).
pub(crate) const CHECKS: &[&str] = &[
    "long-cache-entry-point",
    "immutable-without-hash",
    "hash-without-long-cache",
    "encoding-mismatch",
    "web-type",
    "charset",
    "rule-shadowed",
    "rule-unused",
];

/// A `max-age` of at least this many seconds is long (a day): an entry point cached that long
/// keeps old pages alive after a deploy.
const LONG: u64 = 86_400;

/// One check's verdict on one rule's files.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Finding {
    /// One of [`CHECKS`].
    pub(crate) check: &'static str,
    /// The first file the check found (or the rule's pattern, for rule checks).
    pub(crate) key: String,
    /// How many files it found under this rule.
    pub(crate) files: usize,
    /// `rules[2] "assets/**"`, or none when no rule matched.
    pub(crate) rule: Option<String>,
    pub(crate) problem: String,
    pub(crate) fix: String,
}

impl Finding {
    /// `lint charset: `a.html` and 3 more file(s) (rules[0] "*.html"): … fix: …`, or for a
    /// rule check `lint rule-unused: rules[1] "*.woff2" matches no file …; fix: …`.
    pub(crate) fn line(&self) -> String {
        if self.check.starts_with("rule-") {
            let example = match self.files {
                0 => String::new(),
                1 => format!(" (`{}`)", escape(&self.key)),
                n => format!(" (`{}` and {} more file(s))", escape(&self.key), n - 1),
            };
            return format!(
                "lint {}: {} {}{example}; fix: {}",
                self.check,
                self.rule.as_deref().unwrap_or(""),
                self.problem,
                self.fix
            );
        }
        let more = if self.files > 1 {
            format!(" and {} more file(s)", self.files - 1)
        } else {
            String::new()
        };
        let rule = self
            .rule
            .as_deref()
            .map_or("no rule".to_string(), str::to_string);
        format!(
            "lint {}: `{}`{more} ({rule}): {}; fix: {}",
            self.check,
            escape(&self.key),
            self.problem,
            self.fix
        )
    }
}

/// Runs every check not in `allow` on the walked files (`resolved` set, blake3 not needed).
/// Reads the first bytes of files that declare a Content-Encoding, nothing else.
pub(crate) fn lint(files: &[LocalFile], rules: &Rules, allow: &[String]) -> Vec<Finding> {
    // (check, rule) -> (first key, count, problem, fix)
    let mut found: BTreeMap<(usize, Option<usize>), Finding> = BTreeMap::new();
    let mut note = |check: &'static str, file: &LocalFile, problem: String, fix: String| {
        let at = CHECKS
            .iter()
            .position(|c| *c == check)
            .expect("a known check");
        found
            .entry((at, file.resolved.rule))
            .and_modify(|f| f.files += 1)
            .or_insert_with(|| Finding {
                check,
                key: file.key.as_str().to_string(),
                files: 1,
                rule: file.resolved.rule.map(|i| rules.label(i).to_string()),
                problem,
                fix,
            });
    };
    for file in files {
        check_file(file, &mut note);
    }
    let mut findings: Vec<Finding> = found.into_values().collect();
    findings.extend(rule_checks(files, rules));
    findings.retain(|f| !allow.iter().any(|a| a == f.check));
    findings
}

/// The per-file checks.
fn check_file(file: &LocalFile, note: &mut impl FnMut(&'static str, &LocalFile, String, String)) {
    let headers = &file.resolved.headers;
    let cache = headers.cache_control.as_deref().unwrap_or("");
    let content_type = headers.content_type.as_deref().unwrap_or("");
    let immutable = file.resolved.immutable || has_directive(cache, "immutable");
    let long = max_age(cache).is_some_and(|age| age >= LONG);
    let name = file.key.file_name();
    let entry_point = is_html(Some(content_type))
        || matches!(name, "service-worker.js" | "sw.js" | "manifest.webmanifest")
        || file.key.as_str() == "index.html";
    if entry_point && (immutable || long) {
        note(
            "long-cache-entry-point",
            file,
            format!(
                "an entry point browsers must fetch again after each deploy is cached as `{}`{}",
                escape(cache),
                if file.resolved.immutable {
                    " under an immutable rule"
                } else {
                    ""
                }
            ),
            "give HTML, service workers and web manifests a short cache in a rule before this \
             one, e.g. cache_control: \"public, max-age=0, must-revalidate\""
                .into(),
        );
    } else if immutable && !looks_hashed(file.key.as_str()) {
        note(
            "immutable-without-hash",
            file,
            "immutable, but its name carries no content hash, so a changed file keeps its URL \
             and browsers keep the old bytes"
                .into(),
            "narrow the rule's match to the build's hashed output (assets/**), or let the \
             bundler hash these names"
                .into(),
        );
    } else if !entry_point && !immutable && !long && strictly_hashed(name) {
        note(
            "hash-without-long-cache",
            file,
            format!(
                "a content-hashed name cached only as `{}`: every visit asks again for bytes \
                 that never change",
                if cache.is_empty() {
                    "(no Cache-Control)"
                } else {
                    cache
                }
            ),
            "add a rule for these paths with immutable: true and cache_control: \"public, \
             max-age=31536000, immutable\""
                .into(),
        );
    }
    // Files hoist compresses itself (`compress:`) are plain in the build.
    let encoded = file.resolved.encode.is_some();
    if !encoded
        && let Some(encoding) = headers.content_encoding.as_deref()
        && let Some(problem) = encoding_mismatch(file, encoding)
    {
        note(
            "encoding-mismatch",
            file,
            problem,
            "remove content_encoding from the rule, or compress the files in the build".into(),
        );
    }
    // A variant (`app.js.br`) has its source's type, not one its suffix suggests.
    if !encoded && let Some(expected) = web_type(name) {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if matches!(
            essence,
            "" | "application/octet-stream" | "binary/octet-stream"
        ) {
            note(
                "web-type",
                file,
                format!(
                    "served as `{}`, which browsers refuse or download for this kind of file",
                    if essence.is_empty() {
                        "(no type)"
                    } else {
                        essence
                    }
                ),
                format!("content_type: \"{expected}\""),
            );
        }
    }
    if is_text_type(content_type) && !content_type.to_ascii_lowercase().contains("charset=") {
        note(
            "charset",
            file,
            format!(
                "text served as `{}` without a charset: browsers guess, and non-ASCII text \
                 comes out garbled",
                escape(content_type)
            ),
            format!(
                "content_type: \"{}; charset=utf-8\"",
                escape(content_type.trim_end_matches(';'))
            ),
        );
    }
}

/// Rules no file resolves to: shadowed when their globs match files an earlier rule took,
/// unused when they match nothing.
fn rule_checks(files: &[LocalFile], rules: &Rules) -> Vec<Finding> {
    let mut used = vec![false; rules.len()];
    for file in files {
        if let Some(index) = file.resolved.rule {
            used[index] = true;
        }
    }
    let mut findings = Vec::new();
    for (index, _) in used.iter().enumerate().filter(|(_, used)| !**used) {
        let matched: Vec<&LocalFile> = files
            .iter()
            .filter(|f| rules.matches(index, &f.key))
            .collect();
        // A fallback (`**` last) whose files earlier rules share between them is no mistake;
        // a rule whose every file one earlier rule takes is.
        let takers: std::collections::BTreeSet<Option<usize>> =
            matched.iter().map(|f| f.resolved.rule).collect();
        if takers.len() > 1 {
            continue;
        }
        let finding = match matched.first() {
            Some(file) => Finding {
                check: "rule-shadowed",
                key: file.key.as_str().to_string(),
                files: matched.len(),
                rule: Some(rules.label(index).to_string()),
                problem: format!(
                    "never applies: {} takes every file it matches (the first matching rule wins)",
                    file.resolved
                        .rule
                        .map_or("an earlier rule", |earlier| rules.label(earlier))
                ),
                fix: "move the rule above the one that takes its files, or narrow that one".into(),
            },
            None => Finding {
                check: "rule-unused",
                key: rules.label(index).to_string(),
                files: 0,
                rule: Some(rules.label(index).to_string()),
                problem: "matches no file in the source".into(),
                fix: "fix the pattern (globs match keys relative to the source, `**/` for any \
                      depth), or remove the rule"
                    .into(),
            },
        };
        findings.push(finding);
    }
    findings
}

/// The `max-age` (or `s-maxage`, whichever is longer) of a Cache-Control value.
fn max_age(cache: &str) -> Option<u64> {
    cache
        .split(',')
        .filter_map(|part| {
            let (name, value) = part.split_once('=')?;
            matches!(
                name.trim().to_ascii_lowercase().as_str(),
                "max-age" | "s-maxage"
            )
            .then(|| value.trim().trim_matches('"').parse().ok())
            .flatten()
        })
        .max()
}

fn has_directive(cache: &str, directive: &str) -> bool {
    cache
        .split(',')
        .any(|part| part.trim().eq_ignore_ascii_case(directive))
}

/// Whether some part of the key (a directory or a `.`-separated piece of the name) looks like
/// a content hash or a build id: 8 or more letters and digits with both in it, 6 or more hex
/// digits with both a digit and a letter, or a [`bundler_suffix`]. Generous on purpose: this
/// decides a warning, and a word with a digit in it only silences one.
fn looks_hashed(key: &str) -> bool {
    key.split(['/', '.']).any(|part| {
        let alnum = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        let digit = part.chars().any(|c| c.is_ascii_digit());
        let letter = part.chars().any(|c| c.is_ascii_alphabetic());
        let hex = part.chars().all(|c| c.is_ascii_hexdigit());
        let mixed = part.chars().all(alnum)
            && digit
            && letter
            && (part.len() >= 8 || (hex && part.len() >= 6));
        mixed || bundler_suffix(part)
    })
}

/// Whether `stem` ends with `-` and 8 URL-safe base64 characters that look random: what
/// Vite, Rollup and esbuild append (`index-BkXr3f9a`, `index-DEMwCuSk`).
fn bundler_suffix(stem: &str) -> bool {
    stem.len() > 9
        && stem.as_bytes()[stem.len() - 9] == b'-'
        && stem.is_char_boundary(stem.len() - 8)
        && random_looking(&stem[stem.len() - 8..])
}

/// URL-safe base64 that is not a word: a digit and a letter, or upper and lower case mixed
/// other than as one capitalized word (`Homepage`).
fn random_looking(text: &str) -> bool {
    let url_safe = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let digit = text.chars().any(|c| c.is_ascii_digit());
    let letter = text.chars().any(|c| c.is_ascii_alphabetic());
    let upper = text.chars().filter(char::is_ascii_uppercase).count();
    let lower = text.chars().any(|c| c.is_ascii_lowercase());
    let capitalized = upper == 1 && text.starts_with(|c: char| c.is_ascii_uppercase());
    url_safe && ((digit && letter) || (upper > 0 && lower && !capitalized))
}

/// Whether the file name carries what bundlers write as a content hash: a `.`-separated piece
/// of 8 or more hex digits with a digit and a letter (webpack, Parcel, Hugo's fingerprints),
/// or a stem ending as [`bundler_suffix`] says (Vite, Rollup, esbuild). Strict on purpose:
/// this decides a warning that a plain name must never get.
fn strictly_hashed(name: &str) -> bool {
    let hex_piece = name.split('.').any(|piece| {
        piece.len() >= 8
            && piece.chars().all(|c| c.is_ascii_hexdigit())
            && piece.chars().any(|c| c.is_ascii_digit())
            && piece.chars().any(|c| c.is_ascii_alphabetic())
    });
    let stem = name.split('.').next().unwrap_or(name);
    hex_piece || bundler_suffix(stem)
}

/// The type browsers need for web files S3 and old tables get wrong.
fn web_type(name: &str) -> Option<&'static str> {
    let extension = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match extension.as_str() {
        "wasm" => "application/wasm",
        "mjs" => "text/javascript; charset=utf-8",
        "woff2" => "font/woff2",
        "avif" => "image/avif",
        "webmanifest" => "application/manifest+json",
        "json" | "map" => "application/json",
        _ => return None,
    })
}

fn is_text_type(content_type: &str) -> bool {
    let essence = crate::headers::essence(content_type);
    essence.starts_with("text/")
        || matches!(
            essence.as_str(),
            "application/javascript" | "application/json" | "application/xml"
        )
}

/// Whether a file's first bytes contradict its declared Content-Encoding (`gzip` must start
/// 1f 8b, `zstd` 28 b5 2f fd; `br` has no signature, so it is not checked).
fn encoding_mismatch(file: &LocalFile, encoding: &str) -> Option<String> {
    let magic: &[u8] = match encoding.trim().to_ascii_lowercase().as_str() {
        "gzip" | "x-gzip" => &[0x1f, 0x8b],
        "zstd" => &[0x28, 0xb5, 0x2f, 0xfd],
        _ => return None,
    };
    let mut start = [0; 4];
    let read = std::fs::File::open(&file.path)
        .and_then(|mut f| f.read(&mut start))
        .ok()?;
    (!start[..read].starts_with(magic)).then(|| {
        format!(
            "declared Content-Encoding `{}` but the bytes are not {encoding}-compressed: \
             browsers fail to decode the file",
            escape(encoding)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names() {
        for hashed in [
            "assets/index-BkXr3f9a.js",
            "static/app.3f2a1c.js",
            "_next/static/chunks/main-5a1c2b3d4e5f6a7b.js",
            "_next/static/X7fj2kL9qPz/_buildManifest.js",
        ] {
            assert!(looks_hashed(hashed), "{hashed}");
        }
        for plain in ["assets/logo.svg", "assets/app.js", "fonts/inter.woff2"] {
            assert!(!looks_hashed(plain), "{plain}");
        }
        for strict in [
            "index-BkXr3f9a.js",
            "index-DEMwCuSk.css",
            "app.3f2a1c9d.js",
            "chunk-B_k3r-9A.css",
        ] {
            assert!(strictly_hashed(strict), "{strict}");
        }
        for plain in [
            "page-0000.html",
            "bootstrap4.css",
            "my-picture.png",
            "2024-report.pdf",
            "index-abcdefgh.js",
            "about-Homepage.js",
            "deadbeef.txt",
        ] {
            assert!(!strictly_hashed(plain), "{plain}");
        }
    }

    #[test]
    fn cache_control_parts() {
        assert_eq!(
            max_age("public, max-age=31536000, immutable"),
            Some(31_536_000)
        );
        assert_eq!(max_age("max-age=60, s-maxage=86400"), Some(86_400));
        assert_eq!(max_age("no-store"), None);
        assert!(has_directive("public, Immutable", "immutable"));
        assert!(!has_directive("public, max-age=1", "immutable"));
    }
}
