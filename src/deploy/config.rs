//! The `deploy.yaml` schema and its loading.
//!
//! Every struct denies unknown fields, and values that can be wrong on their own (globs, header
//! values, metadata names) are checked while deserializing, so serde_yaml's error already names
//! the key path and line (`rules[1].match: invalid glob … at line 12 column 5`). Nothing here
//! touches the network; [`crate::deploy::settings`] combines this file with the command line.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobBuilder};
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("cannot read config file `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file `{}`", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: ParseError,
    },
    #[error("`{}` has no environment `{name}`; it defines: {}", path.display(), if defined.is_empty() { "none".to_string() } else { defined.join(", ") })]
    NoEnvironment {
        path: PathBuf,
        name: String,
        defined: Vec<String>,
    },
    #[error("invalid config file `{}`, environment `{name}`", path.display())]
    Environment {
        path: PathBuf,
        name: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("`{}` line {line}: {problem}", path.display())]
    Env {
        path: PathBuf,
        line: usize,
        problem: String,
    },
}

/// serde_yaml's error, with the line added where serde_yaml gives none (an unknown key at the
/// top level has no location).
#[derive(Debug)]
pub(crate) struct ParseError {
    error: serde_yaml::Error,
    line: Option<usize>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)?;
        if let Some(line) = self.line {
            write!(f, " at line {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

impl ParseError {
    fn new(error: serde_yaml::Error, text: &str) -> ParseError {
        let line = if error.to_string().contains(" line ") {
            None
        } else {
            unknown_field(&error.to_string())
                .and_then(|field| {
                    text.lines().position(|line| {
                        line.trim_start()
                            .strip_prefix(field)
                            .is_some_and(|rest| rest.trim_start().starts_with(':'))
                    })
                })
                .map(|index| index + 1)
        };
        ParseError { error, line }
    }
}

fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.split("unknown field `").nth(1)?;
    rest.split('`').next()
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeployConfig {
    /// Directory to publish, relative to the config file.
    pub(crate) source: Option<PathBuf>,
    /// Where to publish: `s3://bucket/`, `s3://bucket/prefix/` or `file://PATH`.
    pub(crate) target: Option<String>,
    /// The bucket's region (else AWS_REGION or the profile's).
    pub(crate) region: Option<String>,
    /// The S3 endpoint of an S3-compatible store.
    pub(crate) endpoint_url: Option<String>,
    /// Force path-style addressing (automatic for localhost and IP endpoints).
    pub(crate) path_style: Option<bool>,
    /// A profile of the AWS shared config and credentials files; replaces environment keys.
    pub(crate) profile: Option<String>,
    /// Remove stale keys under the prefix.
    pub(crate) delete: Option<bool>,
    /// A plan deleting more keys than this fails before changing anything, unless `--force`.
    pub(crate) max_deletes: Option<usize>,
    /// Requests in flight at once (128 by default).
    pub(crate) concurrency: Option<NonZeroUsize>,
    /// Publish what symlinks that lead outside `source` point to (refused by default).
    pub(crate) follow_symlinks: Option<bool>,
    /// Multipart uploads under the target begun longer ago than this (by a killed run) are
    /// aborted (`24h` by default; `30m`, `7d`, `1s`).
    pub(crate) abort_uploads_after: Option<Span>,
    /// Files at least this large are uploaded in parts (bytes, or `8MB`, `16MiB`).
    pub(crate) multipart_threshold: Option<ByteSize>,
    /// The size of each part of a multipart upload (`8MB` by default).
    pub(crate) multipart_chunksize: Option<ByteSize>,
    /// How long a stale key of an `immutable` rule outlives the site that used it (`7d` by
    /// default; `0s` deletes it at once unless a retained release publishes it).
    pub(crate) keep_stale_for: Option<Span>,
    /// How many releases are retained for `hoist rollback`.
    pub(crate) releases: Option<ReleasesConfig>,
    /// Checks on the resolved headers before anything is published.
    pub(crate) lint: Option<LintConfig>,
    /// Read the changed pages back after the HTML phase, before the deletes.
    pub(crate) verify: Option<VerifyConfig>,
    /// Previews per pull request (`hoist deploy --preview NAME`).
    pub(crate) previews: Option<PreviewsConfig>,
    /// Take `.hoist/lock.json` so two deploys of the target never interleave (default true).
    pub(crate) lock: Option<bool>,
    /// How long to wait for another run's lock (`5m` by default).
    pub(crate) lock_timeout: Option<Span>,
    /// Files never uploaded, and keys never deleted: one glob or a list.
    #[serde(default)]
    pub(crate) exclude: Patterns,
    /// Headers by path; the first rule whose `match` fits a file wins.
    #[serde(default)]
    pub(crate) rules: Vec<RuleConfig>,
    /// The CloudFront distribution to invalidate after a deploy.
    pub(crate) cloudfront: Option<CloudFrontConfig>,
    /// Redirects and rewrites (with the build's `_redirects` file): compiled to S3 website
    /// redirect objects and to a CloudFront Function (`hoist edge build`).
    #[serde(default)]
    pub(crate) redirects: Vec<super::edge::RedirectConfig>,
    /// A single-page app's page (`/index.html`) for paths with no file and no extension;
    /// never for paths under an immutable rule's directories.
    pub(crate) spa: Option<String>,
    /// `/about` serves `about/index.html` or `about.html`; `/about/`, `/about.html` and
    /// `/about/index.html` redirect to it.
    pub(crate) clean_urls: Option<bool>,
    /// With clean_urls: the canonical form is `/about/` instead.
    pub(crate) trailing_slash: Option<bool>,
    /// Headers S3 metadata cannot carry (HSTS, CSP, X-Frame-Options), by request path (with
    /// the build's `_headers` file): compiled to a viewer-response function.
    #[serde(default)]
    pub(crate) response_headers: Vec<super::edge::HeadersConfig>,
    /// How edge rules are compiled.
    pub(crate) edge: Option<super::edge::EdgeConfig>,
    /// Named environments (`staging`, `production`): each a map of top-level keys that
    /// `--env NAME` puts in place of the file's own.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, BTreeMap<String, serde_json::Value>>")]
    pub(crate) environments: BTreeMap<String, serde_yaml::Mapping>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleConfig {
    /// The files this rule applies to: one glob or a list (.gitignore habits).
    #[serde(rename = "match")]
    pub(crate) patterns: Patterns,
    /// The Cache-Control header.
    pub(crate) cache_control: Option<HeaderText>,
    /// The Content-Type header (guessed from the extension when not set).
    pub(crate) content_type: Option<HeaderText>,
    /// The Content-Encoding header, for files stored compressed.
    pub(crate) content_encoding: Option<HeaderText>,
    /// The Content-Language header.
    pub(crate) content_language: Option<HeaderText>,
    /// The Content-Disposition header.
    pub(crate) content_disposition: Option<HeaderText>,
    /// User metadata (`x-amz-meta-NAME`).
    #[serde(default)]
    pub(crate) metadata: BTreeMap<MetadataName, HeaderText>,
    /// A canned ACL.
    pub(crate) acl: Option<Acl>,
    /// The storage class (`STANDARD` by default).
    pub(crate) storage_class: Option<StorageClass>,
    /// Content-hashed names: uploaded first, never invalidated.
    #[serde(default)]
    pub(crate) immutable: bool,
    /// Store the files compressed: `gzip` or `br` in place (with Content-Encoding), or
    /// `variants` (the file, `NAME.br` and `NAME.gz`, for an edge function to choose from).
    /// Already-compressed types (images, fonts, archives, video) are left as they are.
    pub(crate) compress: Option<super::compress::Compress>,
}

/// `previews:`: where `hoist deploy --preview NAME` publishes, and for how long.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PreviewsConfig {
    /// Where previews live under the target (`_previews/` by default).
    pub(crate) prefix: Option<String>,
    /// `hoist previews prune` deletes previews not deployed for this long (`14d` by default).
    pub(crate) expire_after: Option<Span>,
    /// A preview's address, `{name}` replaced: `https://{name}.preview.example.com/`.
    pub(crate) url: Option<String>,
}

/// `verify:`: read the changed pages back from the live site before anything is deleted.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyConfig {
    /// Where the target is served (`https://www.example.com/`, or a bucket's URL).
    pub(crate) base_url: String,
    /// Check at most this many changed pages (all by default).
    pub(crate) sample: Option<usize>,
    /// How long each request may take (`10s` by default).
    pub(crate) timeout: Option<Span>,
}

/// `lint:`: the checks on headers before a deploy (see README, "Lint before publishing").
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LintConfig {
    /// Any finding stops the deploy before the target is touched (as `--strict`).
    #[serde(default)]
    pub(crate) strict: bool,
    /// Checks to skip, by name: long-cache-entry-point, immutable-without-hash,
    /// hash-without-long-cache, encoding-mismatch, web-type, charset, rule-shadowed,
    /// rule-unused.
    #[serde(default)]
    pub(crate) allow: Vec<LintCheck>,
}

/// The name of one lint check.
#[derive(Debug, Clone, PartialEq, Eq, schemars::JsonSchema)]
#[schemars(with = "String")]
pub(crate) struct LintCheck(pub(crate) String);

impl<'de> Deserialize<'de> for LintCheck {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        if crate::deploy::lint::CHECKS.contains(&name.as_str()) {
            Ok(LintCheck(name))
        } else {
            Err(de::Error::custom(format!(
                "unknown lint check `{name}`, expected one of {}",
                crate::deploy::lint::CHECKS.join(", ")
            )))
        }
    }
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleasesConfig {
    /// Releases retained for rollback, the live one included (10 by default; 0 turns
    /// releases off).
    pub(crate) keep: Option<usize>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CloudFrontConfig {
    /// The distribution's id (`E2EXAMPLE123`).
    pub(crate) distribution_id: Option<String>,
    /// Wait until the invalidation completes.
    #[serde(default)]
    pub(crate) wait: bool,
    /// Past this many paths, collapse them into wildcards.
    pub(crate) max_paths: Option<NonZeroUsize>,
    /// The CloudFront endpoint (for tests against a local server).
    pub(crate) endpoint_url: Option<String>,
    /// Whether to invalidate at all when a distribution is configured (default true).
    pub(crate) invalidate: Option<bool>,
    /// The CloudFront Functions `hoist deploy` publishes from the edge rules.
    pub(crate) function: Option<FunctionConfig>,
}

/// `cloudfront.function`: publish the generated functions with each deploy.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FunctionConfig {
    /// The viewer-request function's name (the viewer-response one is `NAME-response`).
    pub(crate) name: String,
    /// Create or update, publish and associate the functions on each deploy, before the HTML;
    /// `hoist rollback` restores the release's functions.
    #[serde(default)]
    pub(crate) manage: bool,
}

impl DeployConfig {
    /// Loads the file with environment `env` (`--env`) in effect. Every environment is
    /// checked, so a typo in `staging` is found by a production deploy.
    pub(crate) fn load_env(path: &Path, env: Option<&str>) -> Result<DeployConfig, ConfigError> {
        let text = DeployConfig::read_expanded(path)?;
        let config = DeployConfig::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        let mut chosen = None;
        for (name, overrides) in &config.environments {
            let merged = DeployConfig::with_environment(path, &text, name, overrides)?;
            if Some(name.as_str()) == env {
                chosen = Some(merged);
            }
        }
        match (env, chosen) {
            (None, _) => Ok(config),
            (Some(_), Some(merged)) => Ok(merged),
            (Some(name), None) => Err(ConfigError::NoEnvironment {
                path: path.to_owned(),
                name: name.to_string(),
                defined: config.environments.keys().cloned().collect(),
            }),
        }
    }

    /// The file's keys (`text`, already expanded) with an environment's in their place.
    fn with_environment(
        path: &Path,
        text: &str,
        name: &str,
        overrides: &serde_yaml::Mapping,
    ) -> Result<DeployConfig, ConfigError> {
        let failed = |source| ConfigError::Environment {
            path: path.to_owned(),
            name: name.to_string(),
            source,
        };
        let mut base: serde_yaml::Mapping = serde_yaml::from_str(text).map_err(failed)?;
        base.remove("environments");
        for (key, value) in overrides {
            base.insert(key.clone(), value.clone());
        }
        serde_yaml::from_value(serde_yaml::Value::Mapping(base)).map_err(failed)
    }

    /// The file's text with `${VAR}` expanded.
    fn read_expanded(path: &Path) -> Result<String, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        expand_env(&text, |name| std::env::var(name).ok()).map_err(|(line, problem)| {
            ConfigError::Env {
                path: path.to_owned(),
                line,
                problem,
            }
        })
    }

    pub(crate) fn parse(text: &str) -> Result<DeployConfig, ParseError> {
        let parse = || {
            // An empty file (or one holding only comments) is a valid, empty config.
            if serde_yaml::from_str::<serde_yaml::Value>(text)?.is_null() {
                return Ok(DeployConfig::default());
            }
            serde_yaml::from_str(text)
        };
        parse().map_err(|error| ParseError::new(error, text))
    }
}

/// Expands `${NAME}` and `${NAME:-default}` from the environment (`lookup`), line by line;
/// `$${` is a literal `${`, and comment lines are left as they are. The value is inserted as
/// text: quote it in YAML if it may hold `#` or `: `. An unset variable without a default, a
/// value with a line break, or an unclosed `${` is an error naming the line and its key.
pub(crate) fn expand_env(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, (usize, String)> {
    let mut out = String::with_capacity(text.len());
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let number = index + 1;
        if line.trim_start().starts_with('#') || !line.contains("${") {
            out.push_str(line);
            continue;
        }
        let key = line
            .trim_start()
            .trim_start_matches("- ")
            .split(':')
            .next()
            .unwrap_or("")
            .trim();
        let fail = |what: String| (number, format!("{what} (in `{key}`)"));
        let mut rest = line;
        while let Some(at) = rest.find("${") {
            if rest[..at].ends_with('$') {
                out.push_str(&rest[..at - 1]);
                out.push_str("${");
                rest = &rest[at + 2..];
                continue;
            }
            out.push_str(&rest[..at]);
            let Some(end) = rest[at..].find('}') else {
                return Err(fail("`${` is not closed by `}`".into()));
            };
            let inner = &rest[at + 2..at + end];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(fail(format!("`${{{inner}}}` is not a variable name")));
            }
            let value = match (lookup(name).filter(|v| !v.is_empty()), default) {
                (Some(value), _) => value,
                (None, Some(default)) => default.to_string(),
                (None, None) => {
                    return Err(fail(format!(
                        "${{{name}}} is not set (write ${{{name}:-default}} for a default)"
                    )));
                }
            };
            if value.contains(['\n', '\r']) {
                return Err(fail(format!("${{{name}}} holds a line break")));
            }
            out.push_str(&value);
            rest = &rest[at + end + 1..];
        }
        out.push_str(rest);
    }
    Ok(out)
}

/// One glob or a list of them, each compiled once, when the file is read.
#[derive(Debug, Default, Clone)]
pub(crate) struct Patterns {
    /// As the user wrote them.
    pub(crate) text: Vec<String>,
    /// What they compile to ([`compile_pattern`]), for [`crate::deploy::rules`] to match with.
    pub(crate) globs: Vec<Glob>,
}

impl Patterns {
    fn push(&mut self, pattern: &str) -> Result<(), String> {
        if pattern.is_empty() {
            return Err("empty glob pattern".into());
        }
        let globs =
            compile_pattern(pattern).map_err(|e| format!("invalid glob `{pattern}`: {e}"))?;
        self.text.push(pattern.to_string());
        self.globs.extend(globs);
        Ok(())
    }
}

/// Compiles one user pattern into the globs that implement .gitignore's habits: a pattern
/// without `/` matches the file name at any depth, one with `/` is anchored at the source root
/// (a leading `/` is allowed), `*` stays within a segment and `**` crosses directories. A
/// pattern that names a directory also matches everything below it (`exclude: [node_modules]`).
pub(crate) fn compile_pattern(pattern: &str) -> Result<Vec<Glob>, globset::Error> {
    // A trailing `/` does not anchor (gitignore: `drafts/` matches `a/drafts/`).
    let anchored = pattern.trim_end_matches('/').contains('/');
    let body = pattern.trim_start_matches('/').trim_end_matches('/');
    let base = if anchored || body.starts_with("**") {
        body.to_string()
    } else {
        format!("**/{body}")
    };
    let build = |glob: &str| {
        GlobBuilder::new(glob)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
    };
    let mut globs = vec![build(&base)?];
    if !base.ends_with("/**") && base != "**" {
        globs.push(build(&format!("{base}/**"))?);
    }
    Ok(globs)
}

impl<'de> Deserialize<'de> for Patterns {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PatternsVisitor;
        impl<'de> Visitor<'de> for PatternsVisitor {
            type Value = Patterns;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a glob pattern or a list of glob patterns")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Patterns, E> {
                let mut patterns = Patterns::default();
                patterns.push(value).map_err(E::custom)?;
                Ok(patterns)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Patterns, A::Error> {
                let mut patterns = Patterns::default();
                while let Some(value) = seq.next_element::<String>()? {
                    patterns.push(&value).map_err(de::Error::custom)?;
                }
                Ok(patterns)
            }
        }
        deserializer.deserialize_any(PatternsVisitor)
    }
}

/// Deserializes a string and checks it *inside* the deserializer call, so serde_yaml's error
/// carries the full key path (`rules[0].acl`) and the line.
fn checked_str<'de, D, T>(
    deserializer: D,
    check: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct CheckedVisitor<T>(fn(&str) -> Result<T, String>);
    impl<T> Visitor<'_> for CheckedVisitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
            (self.0)(value).map_err(E::custom)
        }
    }
    deserializer.deserialize_str(CheckedVisitor(check))
}

/// A header value: printable ASCII (S3 rejects or mangles anything else).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderText(pub(crate) String);

impl<'de> Deserialize<'de> for HeaderText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked_str(deserializer, |value| {
            if let Some(bad) = value
                .chars()
                .find(|c| !(' '..='~').contains(c) && *c != '\t')
            {
                return Err(format!(
                    "header value `{}` contains {bad:?}: only printable ASCII is allowed",
                    value.escape_debug()
                ));
            }
            Ok(HeaderText(value.to_string()))
        })
    }
}

/// A user-metadata name: an HTTP token, stored lower-case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct MetadataName(pub(crate) String);

impl<'de> Deserialize<'de> for MetadataName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked_str(deserializer, |name| {
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !valid {
                return Err(format!(
                    "metadata name `{}` is not a valid HTTP header token",
                    name.escape_debug()
                ));
            }
            let lower = name.to_ascii_lowercase();
            if lower.starts_with(crate::headers::META_PREFIX) {
                return Err(format!(
                    "metadata name `{name}`: names starting with `{}` are reserved for hoist",
                    crate::headers::META_PREFIX
                ));
            }
            Ok(MetadataName(lower))
        })
    }
}

pub(crate) const CANNED_ACLS: &[&str] = &[
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
    "log-delivery-write",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Acl(pub(crate) String);

impl<'de> Deserialize<'de> for Acl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked_str(deserializer, |value| {
            if !CANNED_ACLS.contains(&value) {
                return Err(format!(
                    "unknown canned ACL `{value}`, expected one of {}",
                    CANNED_ACLS.join(", ")
                ));
            }
            Ok(Acl(value.to_string()))
        })
    }
}

pub(crate) const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "GLACIER_IR",
    "EXPRESS_ONEZONE",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StorageClass(pub(crate) String);

impl<'de> Deserialize<'de> for StorageClass {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked_str(deserializer, |value| {
            if !STORAGE_CLASSES.contains(&value) {
                return Err(format!(
                    "unknown storage class `{value}`, expected one of {}",
                    STORAGE_CLASSES.join(", ")
                ));
            }
            Ok(StorageClass(value.to_string()))
        })
    }
}

/// A size in bytes: a number, or a number with a unit (`8MB`, `16MiB`, `1GB`), read the way
/// aws-cli reads `s3.multipart_threshold` (`MB` and `MiB` both mean 2^20).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteSize(pub(crate) u64);

impl ByteSize {
    pub(crate) fn parse(text: &str) -> Result<ByteSize, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("invalid size `{text}`: expected e.g. 8388608, 8MB or 8MiB"))?;
        let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" | "kib" => 1 << 10,
            "mb" | "mib" => 1 << 20,
            "gb" | "gib" => 1 << 30,
            "tb" | "tib" => 1 << 40,
            _ => return Err(format!("invalid size unit in `{text}`")),
        };
        number
            .checked_mul(multiplier)
            .map(ByteSize)
            .ok_or_else(|| format!("size `{text}` is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size in bytes, or a string like \"8MB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

/// A length of time: a number and a unit, `s`, `m`, `h` or `d` (`90s`, `30m`, `24h`, `7d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span(pub(crate) std::time::Duration);

impl Span {
    pub(crate) fn parse(text: &str) -> Result<Span, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("invalid duration `{text}`: expected e.g. 90s, 30m, 24h or 7d"))?;
        let seconds = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => {
                return Err(format!(
                    "invalid duration unit in `{text}`: use s, m, h or d (e.g. 24h)"
                ));
            }
        };
        number
            .checked_mul(seconds)
            .map(|s| Span(std::time::Duration::from_secs(s)))
            .ok_or_else(|| format!("duration `{text}` is too long"))
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked_str(deserializer, Span::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_variables_expand_with_defaults_and_errors_name_the_line() {
        let env = |name: &str| match name {
            "BUCKET" => Some("my-site".to_string()),
            "EMPTY" => Some(String::new()),
            "BROKEN" => Some("a\nb".to_string()),
            _ => None,
        };
        let text = "# ${NOT_EXPANDED}\ntarget: s3://${BUCKET}/${PREFIX:-live}/\nregion: ${EMPTY:-eu-west-1}\nliteral: $${HOME}\n";
        assert_eq!(
            expand_env(text, env).unwrap(),
            "# ${NOT_EXPANDED}\ntarget: s3://my-site/live/\nregion: eu-west-1\nliteral: ${HOME}\n"
        );
        let (line, problem) =
            expand_env("source: dist\ntarget: s3://${MISSING}/\n", env).unwrap_err();
        assert_eq!(line, 2);
        assert!(
            problem.contains("${MISSING} is not set") && problem.contains("`target`"),
            "{problem}"
        );
        assert!(
            expand_env("a: ${BROKEN}\n", env)
                .unwrap_err()
                .1
                .contains("line break")
        );
        assert!(
            expand_env("a: ${OPEN\n", env)
                .unwrap_err()
                .1
                .contains("not closed")
        );
        assert!(
            expand_env("a: ${9X}\n", env)
                .unwrap_err()
                .1
                .contains("not a variable")
        );
    }

    #[test]
    fn example_file_parses() {
        let text = include_str!("../../deploy.example.yaml");
        let config = DeployConfig::parse(text).expect("deploy.example.yaml is valid");
        assert!(!config.rules.is_empty());
        assert!(config.cloudfront.is_some());
    }

    #[test]
    fn errors_name_key_and_line() {
        let cases = [
            (
                "rules:\n  - match: '*.html'\n    cache_contrl: x\n",
                &["rules[0]", "unknown field `cache_contrl`", "line 3"][..],
            ),
            (
                "target: s3://b/\nrules:\n  - match: '*.html'\n  - match: 'a/[z-a]'\n",
                &["rules[1].match", "invalid glob `a/[z-a]`", "line 4"][..],
            ),
            (
                "max_deletes: lots\n",
                &["max_deletes", "invalid type", "line 1"][..],
            ),
            ("bogus: 1\n", &["unknown field `bogus`", "line 1"][..]),
            (
                "rules:\n  - match: x\n    acl: world\n",
                &["rules[0].acl", "unknown canned ACL `world`", "line 3"][..],
            ),
            (
                "rules:\n  - match: x\n    metadata: {'bad name': v}\n",
                &["rules[0].metadata", "not a valid HTTP header token"][..],
            ),
            (
                "rules:\n  - match: x\n    cache_control: \"caf\u{e9}\"\n",
                &["rules[0].cache_control", "only printable ASCII"][..],
            ),
            ("rules: [\n", &["line"][..]),
        ];
        for (yaml, wants) in cases {
            let err = DeployConfig::parse(yaml).expect_err(yaml).to_string();
            for want in wants {
                assert!(err.contains(want), "{yaml:?}: `{err}` lacks `{want}`");
            }
        }
    }

    #[test]
    fn match_takes_string_or_list() {
        let config = DeployConfig::parse("rules:\n  - match: a\n  - match: [b, 'c/**']\n").unwrap();
        assert_eq!(config.rules[0].patterns.text, ["a"]);
        assert_eq!(config.rules[1].patterns.text, ["b", "c/**"]);
    }

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("8388608"), Ok(ByteSize(8 << 20)));
        assert_eq!(ByteSize::parse("8MB"), Ok(ByteSize(8 << 20)));
        assert_eq!(ByteSize::parse("16MiB"), Ok(ByteSize(16 << 20)));
        assert_eq!(ByteSize::parse("1 GB"), Ok(ByteSize(1 << 30)));
        assert_eq!(ByteSize::parse("64KB"), Ok(ByteSize(64 << 10)));
        assert!(ByteSize::parse("8XB").is_err());
        assert!(ByteSize::parse("MB").is_err());
    }

    #[test]
    fn spans() {
        assert_eq!(
            Span::parse("90s"),
            Ok(Span(std::time::Duration::from_secs(90)))
        );
        assert_eq!(
            Span::parse("24h"),
            Ok(Span(std::time::Duration::from_hours(24)))
        );
        assert_eq!(
            Span::parse("7d"),
            Ok(Span(std::time::Duration::from_hours(168)))
        );
        assert!(Span::parse("7 weeks").is_err());
        assert!(Span::parse("h").is_err());
    }

    #[test]
    fn empty_file_is_empty_config() {
        let config = DeployConfig::parse("# nothing\n").unwrap();
        assert!(config.rules.is_empty());
    }
}

/// JSON Schemas of the value types whose deserializers check more than their shape.
mod schemas {
    use std::borrow::Cow;

    use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

    use super::{
        Acl, ByteSize, CANNED_ACLS, HeaderText, MetadataName, Patterns, STORAGE_CLASSES, Span,
        StorageClass,
    };

    macro_rules! schema {
        ($type:ty, $name:literal, $schema:expr) => {
            impl JsonSchema for $type {
                fn schema_name() -> Cow<'static, str> {
                    $name.into()
                }
                fn json_schema(_: &mut SchemaGenerator) -> Schema {
                    $schema
                }
            }
        };
    }

    schema!(
        Patterns,
        "Patterns",
        json_schema!({
            "description": "One glob or a list: without a `/` a pattern matches the file name at any depth, with one it is anchored at the source root; `**` crosses directories.",
            "anyOf": [
                { "type": "string", "minLength": 1 },
                { "type": "array", "items": { "type": "string", "minLength": 1 } }
            ]
        })
    );
    schema!(
        HeaderText,
        "HeaderText",
        json_schema!({ "type": "string", "pattern": "^[\\t -~]*$" })
    );
    schema!(
        MetadataName,
        "MetadataName",
        json_schema!({ "type": "string", "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" })
    );
    schema!(
        Acl,
        "Acl",
        json_schema!({ "type": "string", "enum": CANNED_ACLS })
    );
    schema!(
        StorageClass,
        "StorageClass",
        json_schema!({ "type": "string", "enum": STORAGE_CLASSES })
    );
    schema!(
        ByteSize,
        "ByteSize",
        json_schema!({
            "description": "Bytes, or a number with a unit: `8MB`, `16MiB`.",
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": "^\\s*[0-9]+\\s*([kKmMgGtT][iI]?[bB]|[bB])?\\s*$" }
            ]
        })
    );
    schema!(
        Span,
        "Span",
        json_schema!({
            "description": "A duration: a number and a unit, `30s`, `15m`, `24h`, `7d`.",
            "type": "string",
            "pattern": "^\\s*[0-9]+\\s*[smhd]\\s*$"
        })
    );
}

/// The JSON Schema of deploy.yaml, from the types serde reads it with.
pub(crate) fn schema() -> serde_json::Value {
    let schema = schemars::schema_for!(DeployConfig);
    serde_json::to_value(&schema).expect("the schema serializes")
}
