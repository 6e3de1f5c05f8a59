//! The S3 website endpoint's compiler: each exact-path redirect becomes a zero-byte object
//! whose `x-amz-website-redirect-location` the endpoint answers with a 301 (`/old` → key
//! `old`, and `old/index.html` so `/old/` redirects too). What the endpoint cannot express is
//! said in the plan: pattern rules, rewrites, the SPA fallback, clean URLs beyond its own
//! directory indexes, response headers, encoding variants, and statuses other than 301.
//! The objects go through the plan like files (new, changed, stale, deleted), so removing a
//! redirect removes its object.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use super::{CleanUrls, EdgeRules};
use crate::deploy::rules::Resolved;
use crate::deploy::scan::LocalFile;
use crate::digest::Digest;
use crate::headers::Headers;
use crate::key::Key;

/// The redirect objects, and one line per rule or feature the endpoint leaves out.
#[derive(Debug, Default)]
pub(crate) struct Website {
    pub(crate) objects: Vec<LocalFile>,
    pub(crate) summary: Vec<String>,
}

/// The zero-byte object that redirects `key` to `to`.
pub(crate) fn redirect_object(key: Key, to: &str) -> LocalFile {
    LocalFile {
        key,
        path: PathBuf::new(),
        size: 0,
        mtime: SystemTime::UNIX_EPOCH,
        blake3: Digest::of(b""),
        resolved: Resolved {
            headers: Arc::new(Headers {
                website_redirect: Some(to.to_string()),
                ..Headers::default()
            }),
            immutable: false,
            rule: None,
            encode: None,
        },
        copy_from: None,
        from_origin: None,
    }
}

/// Compiles the rules for the website endpoint, next to the build's `files` (sorted by key): a
/// rule whose key the build already has a file at is left to the file (and said).
pub(crate) fn compile(rules: &EdgeRules, files: &[LocalFile]) -> Website {
    let mut out = Website::default();
    if !rules.redirect_objects {
        return out;
    }
    // The scan's files are sorted by key.
    let has = |key: &str| files.binary_search_by(|f| f.key.as_str().cmp(key)).is_ok();
    let mut unsupported: Vec<String> = Vec::new();
    let mut made = 0;
    let mut seen = std::collections::BTreeSet::new();
    for rule in &rules.redirects {
        if !rule.from.is_exact() {
            unsupported.push(format!("{} (`{}`: a pattern)", rule.origin, rule.from.text));
            continue;
        }
        if rule.status == 200 {
            unsupported.push(format!("{} (`{}`: a rewrite)", rule.origin, rule.from.text));
            continue;
        }
        let path = rule.from.exact_path();
        if path == "/" || !seen.insert(path.clone()) {
            continue;
        }
        let stem = path.trim_start_matches('/');
        let mut wrote = false;
        for key in [stem.to_string(), format!("{stem}/index.html")] {
            if has(&key) {
                continue;
            }
            if let Ok(key) = Key::new(key) {
                out.objects.push(redirect_object(key, &rule.to));
                wrote = true;
            }
        }
        if wrote {
            made += 1;
            if rule.status != 301 {
                unsupported.push(format!(
                    "{} (status {}: the website endpoint answers 301)",
                    rule.origin, rule.status
                ));
            }
        }
    }
    if made > 0 {
        out.summary.push(format!(
            "S3 website endpoint: {made} redirect(s) as {} zero-byte object(s) with \
             x-amz-website-redirect-location",
            out.objects.len()
        ));
    }
    if rules.spa.is_some() {
        unsupported.push("spa (set the bucket's error document, or use the edge function)".into());
    }
    if rules.clean_urls != CleanUrls::Off {
        unsupported.push("clean_urls (the endpoint's own: `/about` → `/about/`)".into());
    }
    if !rules.headers.is_empty() {
        unsupported.push(format!("{} response header rule(s)", rules.headers.len()));
    }
    if !unsupported.is_empty() {
        out.summary.push(format!(
            "S3 website endpoint cannot express: {}; `hoist edge build` compiles them for \
             CloudFront",
            unsupported.join(", ")
        ));
    }
    out
}
