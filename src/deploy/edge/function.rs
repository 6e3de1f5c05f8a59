//! The CloudFront Functions compiler: an [`EdgeRules`] and the site's keys → a viewer-request
//! function (redirects, rewrites, directory indexes, clean URLs, the SPA fallback, encoding
//! variants) and, when headers or variants need it, a viewer-response function. Both are
//! CloudFront Functions runtime 2.0 code with a `handler(event)`; pure, no I/O.
//!
//! The function knows the site through one table, path → what is there: `d` a directory page
//! (`/about` → `about/index.html`), `h` a flat page (`/about` → `about.html`), `v` a file with
//! `.br` and `.gz` variants, `f` any other file it must know of (extensionless files for the
//! SPA fallback; files where a rule that is not forced would otherwise apply). Exact redirects
//! are a second table, path → `STATUS TO`. Both are inline while the code fits CloudFront's
//! 10,240-byte limit, else they move to a KeyValueStore ([`Compiled::kvs`], keys prefixed `k`
//! and `r`), read with `cf.kvs()`; pattern rules always stay in the code, in order.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{CleanUrls, EdgeRules, PathPattern, Redirect};
use crate::deploy::compress::{Compress, Encoding};
use crate::deploy::rules::Rules;
use crate::deploy::scan::LocalFile;

/// CloudFront Functions' maximum code size, in bytes.
pub(crate) const CODE_LIMIT: usize = 10_240;
/// A KeyValueStore's limits: key and value length, and the whole store.
const KVS_KEY_LIMIT: usize = 512;
const KVS_VALUE_LIMIT: usize = 1024;
const KVS_SIZE_LIMIT: usize = 5 * 1024 * 1024;

/// A KeyValueStore's entries: key, value.
pub(crate) type KvsEntries = Vec<(String, String)>;

/// What the compiler produced.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub(crate) viewer_request: String,
    pub(crate) viewer_response: Option<String>,
    /// The KeyValueStore's entries, when the tables did not fit the code (or `edge.kvs`).
    pub(crate) kvs: Option<Vec<(String, String)>>,
    /// One line per thing produced or left out, for the plan and `hoist edge build`.
    pub(crate) summary: Vec<String>,
    /// Rules that never apply (shadowed), each naming its origin.
    pub(crate) notes: Vec<String>,
}

/// A problem the function cannot get around (too big for CloudFront's limits).
#[derive(Debug, thiserror::Error)]
#[error("the CloudFront Function cannot be built: {0}")]
pub(crate) struct CompileError(pub(crate) String);

/// What the function knows of the site, and which rules apply, from the files.
struct Site {
    table: BTreeMap<String, &'static str>,
    exact: BTreeMap<String, String>,
    patterns: Vec<Redirect>,
    immutable_dirs: Vec<String>,
    variants: bool,
    notes: Vec<String>,
}

/// The page a key is (`about/index.html` → (`/about`, `d`), `about.html` → (`/about`, `h`)).
fn page_alias(key: &str) -> Option<(String, &'static str)> {
    if key == "index.html" {
        return Some(("/".into(), "d"));
    }
    if let Some(dir) = key.strip_suffix("/index.html") {
        return Some((format!("/{dir}"), "d"));
    }
    key.strip_suffix(".html")
        .map(|stem| (format!("/{stem}"), "h"))
}

fn has_extension(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'))
}

fn learn(rules: &EdgeRules, files: &[LocalFile], file_rules: &Rules) -> Site {
    let keys: std::collections::BTreeSet<&str> = files.iter().map(|f| f.key.as_str()).collect();
    // Files whose `.br` and `.gz` variants hoist publishes.
    let varied: std::collections::BTreeSet<&str> = files
        .iter()
        .filter(|f| {
            f.resolved.encode == Some(Encoding::Br)
                && f.resolved
                    .rule
                    .is_some_and(|r| file_rules.compress(r) == Some(Compress::Variants))
        })
        .filter_map(|f| f.key.as_str().strip_suffix(Encoding::Br.suffix()))
        .collect();
    // The files themselves, not the `.br`/`.gz` variants hoist adds beside them.
    let is_variant = |f: &&LocalFile| {
        f.resolved.encode.is_some_and(|encoding| {
            f.key
                .as_str()
                .strip_suffix(encoding.suffix())
                .is_some_and(|source| varied.contains(source))
        })
    };
    let primaries: Vec<&LocalFile> = files.iter().filter(|f| !is_variant(f)).collect();
    let mut pages: BTreeMap<String, &'static str> = BTreeMap::new();
    for file in &primaries {
        if let Some((alias, kind)) = page_alias(file.key.as_str()) {
            // A directory's index wins over a flat page of the same name.
            let entry = pages.entry(alias).or_insert(kind);
            if kind == "d" {
                *entry = "d";
            }
        }
    }
    let (exact, patterns, notes) = split_redirects(rules, &keys, &pages);
    let needs_pages = rules.spa.is_some() || rules.clean_urls != CleanUrls::Off;
    let mut table: BTreeMap<String, &'static str> = BTreeMap::new();
    if needs_pages {
        table.extend(pages.iter().map(|(alias, kind)| (alias.clone(), *kind)));
    }
    for file in &primaries {
        let key = file.key.as_str();
        let path = format!("/{key}");
        let shadowing = patterns
            .iter()
            .any(|p| !p.force && p.from.captures(&path).is_some());
        let flag = if varied.contains(key) {
            Some("v")
        } else if (needs_pages && !has_extension(key)) || shadowing {
            Some("f")
        } else {
            None
        };
        if let Some(flag) = flag {
            // A file at a page's path is served as the file.
            table.insert(path, flag);
        }
    }
    // Pages that would shadow rules that are not forced.
    for (alias, kind) in &pages {
        if patterns
            .iter()
            .any(|p| !p.force && p.from.captures(alias).is_some())
        {
            table.entry(alias.clone()).or_insert(kind);
        }
    }
    Site {
        table,
        exact,
        patterns,
        immutable_dirs: immutable_dirs(files),
        variants: !varied.is_empty(),
        notes,
    }
}

/// The rules in the two forms the code holds: exact paths (a table) and patterns (in order),
/// leaving out, with a note, the rules that never apply.
fn split_redirects(
    rules: &EdgeRules,
    keys: &std::collections::BTreeSet<&str>,
    pages: &BTreeMap<String, &'static str>,
) -> (BTreeMap<String, String>, Vec<Redirect>, Vec<String>) {
    // The key the build serves at a path, if any.
    let at_path = |path: &str| -> Option<String> {
        let key = path.trim_start_matches('/');
        if keys.contains(key) {
            return Some(key.to_string());
        }
        match pages.get(super::normalize(path)) {
            Some(&"d") => Some(format!("{}index.html", dir_of(path))),
            Some(_) => Some(format!(
                "{}.html",
                super::normalize(path).trim_start_matches('/')
            )),
            None => None,
        }
    };
    let mut notes = Vec::new();
    let mut exact: BTreeMap<String, String> = BTreeMap::new();
    let mut patterns: Vec<Redirect> = Vec::new();
    for rule in &rules.redirects {
        if rule.from.is_exact() {
            let path = rule.from.exact_path();
            if let Some(earlier) = patterns.iter().find(|p| p.from.captures(&path).is_some()) {
                notes.push(format!(
                    "{}: never applies, {} matches `{path}` first",
                    rule.origin, earlier.origin
                ));
                continue;
            }
            if exact.contains_key(&path) {
                notes.push(format!(
                    "{}: never applies, an earlier rule redirects `{path}`",
                    rule.origin
                ));
                continue;
            }
            if !rule.force
                && let Some(key) = at_path(&path)
            {
                notes.push(format!(
                    "{}: never applies, the build has `{key}` at `{path}` (force it with `!` \
                     after the status, or `force: true`)",
                    rule.origin
                ));
                continue;
            }
            exact.insert(path, format!("{} {}", rule.status, rule.to));
        } else {
            patterns.push(rule.clone());
        }
    }
    (exact, patterns, notes)
}

/// The top directories of immutable files (`/assets/`): the SPA fallback never answers there.
fn immutable_dirs(files: &[LocalFile]) -> Vec<String> {
    let mut dirs: Vec<String> = files
        .iter()
        .filter(|f| f.resolved.immutable)
        .filter_map(|f| {
            f.key
                .as_str()
                .split_once('/')
                .map(|(dir, _)| format!("/{dir}/"))
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// `/about/` or `/about` → `/about/`; `/` → `/`.
fn dir_of(path: &str) -> String {
    let path = super::normalize(path);
    if path == "/" {
        "/".into()
    } else {
        format!("{path}/")
    }
}

/// The JSON text of a value (strings escaped as JavaScript reads them).
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("JSON serializes")
}

/// A `to` template as the code fills it: literal text and capture numbers.
fn template(rule: &Redirect) -> serde_json::Value {
    let names: Vec<String> = rule.from.captures_names().map(str::to_string).collect();
    let mut parts: Vec<serde_json::Value> = Vec::new();
    let mut literal = String::new();
    for part in super::to_parts(&rule.to) {
        // `redirect` checked that `from` captures every placeholder.
        match part {
            super::ToPart::Placeholder(name)
                if let Some(index) = names.iter().position(|n| n == name) =>
            {
                if !literal.is_empty() {
                    parts.push(std::mem::take(&mut literal).into());
                }
                parts.push((index + 1).into());
            }
            super::ToPart::Placeholder(name) => {
                literal.push(':');
                literal.push_str(name);
            }
            super::ToPart::Text(text) => literal.push_str(text),
        }
    }
    if !literal.is_empty() {
        parts.push(literal.into());
    }
    serde_json::Value::Array(parts)
}

impl PathPattern {
    /// The capture names in the order [`PathPattern::js_regex`] captures them.
    fn captures_names(&self) -> impl Iterator<Item = &str> {
        self.names().chain(self.splat.then_some("splat"))
    }
}

const REQUEST_CODE: &str = r"var DESC = {301: 'Moved Permanently', 302: 'Found', 303: 'See Other', 307: 'Temporary Redirect', 308: 'Permanent Redirect'};
for (var i = 0; i < P.length; i++) P[i][0] = new RegExp(P[i][0]);
async function get(t, p, k) {
  if (!KV) return t[k];
  try { return await kvs.get(p + k); } catch (e) { return undefined; }
}
function qs(q) {
  var s = [];
  for (var n in q) {
    var v = q[n], a = v.multiValue || [v];
    for (var i = 0; i < a.length; i++) s.push(a[i].value === '' ? n : n + '=' + a[i].value);
  }
  return s.length ? '?' + s.join('&') : '';
}
function go(s, to) {
  return {statusCode: s, statusDescription: DESC[s], headers: {location: {value: to}}};
}
function norm(u) { return u.length > 1 && u[u.length - 1] === '/' ? u.slice(0, -1) : u; }
function ext(u) { return u.slice(u.lastIndexOf('/') + 1).indexOf('.') >= 0; }
function enc(h) {
  if (!h) return '';
  var br = false, gz = false, a = h.value.toLowerCase().split(',');
  for (var i = 0; i < a.length; i++) {
    var p = a[i].split(';'), n = p[0].trim(), q = 1;
    for (var j = 1; j < p.length; j++) { var x = p[j].trim(); if (x.indexOf('q=') === 0) q = parseFloat(x.slice(2)); }
    if (q > 0) { if (n === 'br' || n === '*') br = true; if (n === 'gzip' || n === 'x-gzip' || n === '*') gz = true; }
  }
  return br ? '.br' : gz ? '.gz' : '';
}
async function handler(event) {
  var req = event.request, asked = req.uri, uri = asked, q = qs(req.querystring);
  var path = norm(uri), st = 0, to = '', hit = await get(R, 'r', path);
  if (hit !== undefined) { st = +hit.slice(0, 3); to = hit.slice(4); }
  else for (var i = 0; i < P.length; i++) {
    var m = P[i][0].exec(path);
    if (!m || (!P[i][3] && (await get(K, 'k', path)) !== undefined)) continue;
    st = P[i][2];
    to = P[i][1].map(function (x) { return typeof x === 'number' ? (m[x] || '') : x; }).join('');
    break;
  }
  if (st && st !== 200) return go(st, to.indexOf('?') < 0 ? to + q : to);
  if (st === 200) { uri = to; path = norm(to); }
  else if (CLEAN) {
    var page = null, want = 'p';
    if (uri.slice(-11) === '/index.html') { page = uri.slice(0, -11) || '/'; want = 'd'; }
    else if (uri.slice(-5) === '.html') { page = uri.slice(0, -5); want = 'h'; }
    else if (CLEAN === 1 && uri !== path) page = path;
    else if (CLEAN === 2 && uri[uri.length - 1] !== '/') page = uri;
    if (page !== null) {
      var pk = await get(K, 'k', page), c = CLEAN === 2 && page !== '/' ? page + '/' : page;
      if ((want === 'p' ? pk === 'd' || pk === 'h' : pk === want) && c !== uri) return go(301, c + q);
    }
  }
  var pf = await get(K, 'k', path), k;
  if (pf === 'd') k = (path === '/' ? '' : path) + '/index.html';
  else if (pf === 'h') k = path + '.html';
  else if (uri[uri.length - 1] === '/') k = uri + 'index.html';
  else k = uri;
  if (SPA && pf === undefined && !ext(path) && !IMM.some(function (d) { return (path + '/').indexOf(d) === 0; })) k = SPA;
  if ((k === path ? pf : await get(K, 'k', k)) === 'v') k += enc(req.headers['accept-encoding']);
  if (HDR && k !== asked) req.headers['x-hoist-path'] = {value: asked};
  req.uri = k;
  return req;
}
";

const RESPONSE_CODE: &str = r"for (var i = 0; i < H.length; i++) H[i][0] = new RegExp(H[i][0]);
function handler(event) {
  var req = event.request, res = event.response, h = req.headers['x-hoist-path'];
  var u = h ? h.value : req.uri, p = u.length > 1 && u[u.length - 1] === '/' ? u.slice(0, -1) : u;
  var set = {};
  for (var i = 0; i < H.length; i++) {
    if (!H[i][0].test(p)) continue;
    for (var j = 0; j < H[i][1].length; j++) {
      var n = H[i][1][j][0], v = H[i][1][j][1];
      if (v === null) { delete res.headers[n]; delete set[n]; }
      else if (set[n]) res.headers[n].value += ', ' + v;
      else { res.headers[n] = {value: v}; set[n] = 1; }
    }
  }
  if (VARY && /\.(br|gz)$/.test(req.uri)) res.headers['vary'] = {value: 'Accept-Encoding'};
  return res;
}
";

/// Compiles the rules for the site `files` make (the scan's files, variants included).
pub(crate) fn compile(
    rules: &EdgeRules,
    files: &[LocalFile],
    file_rules: &Rules,
) -> Result<Compiled, CompileError> {
    let site = learn(rules, files, file_rules);
    let patterns: Vec<serde_json::Value> = site
        .patterns
        .iter()
        .map(|rule| {
            serde_json::json!([
                rule.from.js_regex(),
                template(rule),
                rule.status,
                rule.force
            ])
        })
        .collect();
    let clean = match rules.clean_urls {
        CleanUrls::Off => 0,
        CleanUrls::NoSlash => 1,
        CleanUrls::TrailingSlash => 2,
    };
    let header = format!(
        "// hoist {}: viewer-request function (CloudFront Functions runtime 2.0). Generated \
         from deploy.yaml and the build; do not edit.\n",
        env!("CARGO_PKG_VERSION")
    );
    let mut constants = String::new();
    let _ = writeln!(constants, "var P = {};", json(&patterns));
    let _ = writeln!(constants, "var IMM = {};", json(&site.immutable_dirs));
    let _ = writeln!(constants, "var SPA = {};", json(&rules.spa));
    let _ = writeln!(constants, "var CLEAN = {clean};");
    let _ = writeln!(constants, "var HDR = {};", !rules.headers.is_empty());
    let inline = format!(
        "{header}var KV = false;\nvar R = {};\nvar K = {};\n{constants}{REQUEST_CODE}",
        json(&site.exact),
        json(&site.table)
    );
    let mut summary = Vec::new();
    let (viewer_request, kvs) =
        place_tables(&site, inline, &header, &constants, rules.kvs, &mut summary)?;
    summary.push(format!(
        "{} exact redirect(s) and rewrite(s), {} pattern rule(s), {} path(s) known to the \
         function{}{}{}",
        site.exact.len(),
        site.patterns.len(),
        site.table.len(),
        rules
            .spa
            .as_deref()
            .map(|spa| format!(", SPA fallback to {spa}"))
            .unwrap_or_default(),
        match rules.clean_urls {
            CleanUrls::Off => "",
            CleanUrls::NoSlash => ", clean URLs (/about)",
            CleanUrls::TrailingSlash => ", clean URLs (/about/)",
        },
        if site.variants {
            ", br/gzip variants by Accept-Encoding"
        } else {
            ""
        }
    ));
    let viewer_response = response_function(rules, site.variants)?;
    if let Some(code) = &viewer_response {
        summary.push(format!(
            "viewer-response function: {} bytes of CloudFront's {CODE_LIMIT}, {} header rule(s)",
            code.len(),
            rules.headers.len()
        ));
    }
    Ok(Compiled {
        viewer_request,
        viewer_response,
        kvs,
        summary,
        notes: site.notes,
    })
}

/// The viewer-request code with its tables inline when it fits (and `edge.kvs` is off), else
/// with them in a KeyValueStore.
fn place_tables(
    site: &Site,
    inline: String,
    header: &str,
    constants: &str,
    force_kvs: bool,
    summary: &mut Vec<String>,
) -> Result<(String, Option<KvsEntries>), CompileError> {
    Ok(if inline.len() <= CODE_LIMIT && !force_kvs {
        summary.push(format!(
            "viewer-request function: {} bytes of CloudFront's {CODE_LIMIT}, tables inline",
            inline.len()
        ));
        (inline, None)
    } else {
        let code = format!(
            "{header}import cf from 'cloudfront';\nvar kvs = cf.kvs();\nvar KV = true;\nvar R = \
             {{}};\nvar K = {{}};\n{constants}{REQUEST_CODE}"
        );
        if code.len() > CODE_LIMIT {
            return Err(CompileError(format!(
                "its pattern rules take {} bytes of CloudFront's {CODE_LIMIT} even with the \
                 tables in a KeyValueStore; use fewer splat or placeholder rules (exact paths \
                 go to the store)",
                code.len()
            )));
        }
        let entries = kvs_entries(site)?;
        summary.push(format!(
            "viewer-request function: {} bytes of CloudFront's {CODE_LIMIT}, its tables in a \
             KeyValueStore of {} entries (kvs.json)",
            code.len(),
            entries.len()
        ));
        (code, Some(entries))
    })
}

fn kvs_entries(site: &Site) -> Result<Vec<(String, String)>, CompileError> {
    let mut entries = Vec::new();
    let mut total = 0;
    let tables = site
        .exact
        .iter()
        .map(|(path, value)| (format!("r{path}"), value.clone()))
        .chain(
            site.table
                .iter()
                .map(|(path, flag)| (format!("k{path}"), (*flag).to_string())),
        );
    for (key, value) in tables {
        if key.len() > KVS_KEY_LIMIT || value.len() > KVS_VALUE_LIMIT {
            return Err(CompileError(format!(
                "`{}` is longer than a KeyValueStore entry may be ({KVS_KEY_LIMIT}-byte keys, \
                 {KVS_VALUE_LIMIT}-byte values)",
                &key[1..]
            )));
        }
        total += key.len() + value.len();
        entries.push((key, value));
    }
    if total > KVS_SIZE_LIMIT {
        return Err(CompileError(format!(
            "its tables take {total} bytes, more than a KeyValueStore's {KVS_SIZE_LIMIT}"
        )));
    }
    Ok(entries)
}

fn response_function(rules: &EdgeRules, variants: bool) -> Result<Option<String>, CompileError> {
    if rules.headers.is_empty() && !variants {
        return Ok(None);
    }
    let table: Vec<serde_json::Value> = rules
        .headers
        .iter()
        .map(|rule| serde_json::json!([rule.path.js_regex(), rule.headers]))
        .collect();
    let code = format!(
        "// hoist {}: viewer-response function (CloudFront Functions runtime 2.0). Generated \
         from deploy.yaml and the build; do not edit.\nvar H = {};\nvar VARY = {variants};\n\
         {RESPONSE_CODE}",
        env!("CARGO_PKG_VERSION"),
        json(&table)
    );
    if code.len() > CODE_LIMIT {
        return Err(CompileError(format!(
            "its response headers take {} bytes of CloudFront's {CODE_LIMIT}; use a CloudFront \
             response headers policy for the headers every path gets",
            code.len()
        )));
    }
    Ok(Some(code))
}

/// The KeyValueStore import file CloudFront reads: `{"data":[{"key":…,"value":…}]}`.
pub(crate) fn kvs_json(entries: &[(String, String)]) -> String {
    let data: Vec<serde_json::Value> = entries
        .iter()
        .map(|(key, value)| serde_json::json!({"key": key, "value": value}))
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({ "data": data })).expect("JSON serializes")
}
