//! Compiled deploy rules: a file's key → the headers it is published with. Pure: no I/O.
//!
//! `config` parses and compiles each pattern once (.gitignore habits, issue #2; see
//! [`super::config::compile_pattern`]); this module only groups the globs into sets and matches.
//! The first rule that matches wins.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use globset::{GlobSet, GlobSetBuilder};

use super::compress::{Compress, Encoding, compressible};
use super::config::{DeployConfig, Patterns, RuleConfig};
use crate::headers::{Headers, default_content_type};
use crate::key::Key;

fn compile_set(patterns: &Patterns) -> Result<GlobSet, globset::Error> {
    let mut builder = GlobSetBuilder::new();
    for glob in &patterns.globs {
        builder.add(glob.clone());
    }
    builder.build()
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum RuleError {
    #[error("invalid glob in {context}")]
    Glob {
        context: String,
        #[source]
        source: globset::Error,
    },
    #[error("{context}: {message}")]
    Invalid { context: String, message: String },
}

#[derive(Debug)]
struct Rule {
    set: GlobSet,
    headers: Headers,
    /// Whether the rule set a Content-Type; otherwise it is guessed per file.
    has_content_type: bool,
    immutable: bool,
    compress: Option<Compress>,
}

/// What a rule says about one file. The headers are shared by every file that resolves to the
/// same ones (a 100,000-file site has a handful of distinct sets), which keeps a scan small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub(crate) headers: Arc<Headers>,
    pub(crate) immutable: bool,
    /// Index of the rule that matched, if any.
    pub(crate) rule: Option<usize>,
    /// The object holds the file's bytes encoded so (`compress: gzip|br`, or a variant).
    pub(crate) encode: Option<Encoding>,
}

#[derive(Debug)]
pub(crate) struct Rules {
    /// In the file's order: the first that matches wins.
    ordered: Vec<Rule>,
    /// How each rule is named in plans: `rules[2] "assets/**"`.
    labels: Vec<String>,
    exclude: GlobSet,
    /// Each distinct set of resolved headers, once.
    interned: Mutex<HashMap<Headers, Arc<Headers>>>,
}

impl Rules {
    pub(crate) fn from_config(config: &DeployConfig) -> Result<Rules, RuleError> {
        let exclude = compile_set(&config.exclude).map_err(|source| RuleError::Glob {
            context: "exclude".into(),
            source,
        })?;
        let rules = config
            .rules
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                if rule.compress.is_some() && rule.content_encoding.is_some() {
                    return Err(RuleError::Invalid {
                        context: format!("rules[{index}]"),
                        message: "`compress` and `content_encoding` are both set; `compress` \
                                  sets Content-Encoding itself (keep `content_encoding` only \
                                  for files the build compressed already)"
                            .into(),
                    });
                }
                compile_rule(rule).map_err(|source| RuleError::Glob {
                    context: format!("rules[{index}].match"),
                    source,
                })
            })
            .collect::<Result<_, _>>()?;
        let labels = config
            .rules
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                let patterns: Vec<String> = rule
                    .patterns
                    .text
                    .iter()
                    .map(|p| format!("\"{p}\""))
                    .collect();
                format!("rules[{index}] {}", patterns.join(", "))
            })
            .collect();
        Ok(Rules {
            labels,
            ordered: rules,
            exclude,
            interned: Mutex::default(),
        })
    }

    /// How rule `index` is named in plans and warnings: `rules[2] "assets/**"`.
    pub(crate) fn label(&self, index: usize) -> &str {
        &self.labels[index]
    }

    /// How many rules there are.
    pub(crate) fn len(&self) -> usize {
        self.ordered.len()
    }

    /// Whether rule `index`'s patterns match `key`, whatever the rules before it say (to tell
    /// a shadowed rule from one that matches nothing).
    pub(crate) fn matches(&self, index: usize, key: &Key) -> bool {
        self.ordered[index].set.is_match(key.as_str())
    }

    /// Rule `index`'s `compress:` setting.
    pub(crate) fn compress(&self, index: usize) -> Option<Compress> {
        self.ordered[index].compress
    }

    /// What a variant of `file` encoded as `encoding` is published with: the file's headers
    /// (its Content-Type, not one guessed from `.br`) and the encoding's Content-Encoding.
    pub(crate) fn variant(&self, resolved: &Resolved, encoding: Encoding) -> Resolved {
        let mut headers = (*resolved.headers).clone();
        headers.content_encoding = Some(encoding.header().to_string());
        Resolved {
            headers: self.intern(headers),
            immutable: resolved.immutable,
            rule: resolved.rule,
            encode: Some(encoding),
        }
    }

    /// Whether a key is excluded: never uploaded, and never deleted when found remotely.
    pub(crate) fn is_excluded(&self, key: &str) -> bool {
        self.exclude.is_match(key)
    }

    fn intern(&self, headers: Headers) -> Arc<Headers> {
        let mut interned = self.interned.lock().expect("no panics while interning");
        Arc::clone(
            interned
                .entry(headers.clone())
                .or_insert_with(|| Arc::new(headers)),
        )
    }

    pub(crate) fn resolve(&self, key: &Key) -> Resolved {
        let matched = self
            .ordered
            .iter()
            .enumerate()
            .find(|(_, rule)| rule.set.is_match(key.as_str()));
        match matched {
            Some((index, rule)) => {
                let mut headers = rule.headers.clone();
                if !rule.has_content_type {
                    headers.content_type = Some(default_content_type(key.file_name()));
                }
                // In place: the object under the file's key holds the compressed bytes.
                let encode = match rule.compress {
                    Some(Compress::Gzip) => Some(Encoding::Gzip),
                    Some(Compress::Br) => Some(Encoding::Br),
                    Some(Compress::Variants) | None => None,
                }
                .filter(|_| compressible(headers.content_type.as_deref()));
                if let Some(encoding) = encode {
                    headers.content_encoding = Some(encoding.header().to_string());
                }
                Resolved {
                    headers: self.intern(headers),
                    immutable: rule.immutable,
                    rule: Some(index),
                    encode,
                }
            }
            None => Resolved {
                headers: self.intern(Headers {
                    content_type: Some(default_content_type(key.file_name())),
                    ..Headers::default()
                }),
                immutable: false,
                rule: None,
                encode: None,
            },
        }
    }
}

fn compile_rule(rule: &RuleConfig) -> Result<Rule, globset::Error> {
    let text =
        |value: &Option<crate::deploy::config::HeaderText>| value.as_ref().map(|v| v.0.clone());
    let headers = Headers {
        content_type: text(&rule.content_type),
        cache_control: text(&rule.cache_control),
        content_encoding: text(&rule.content_encoding),
        content_language: text(&rule.content_language),
        content_disposition: text(&rule.content_disposition),
        metadata: rule
            .metadata
            .iter()
            .map(|(name, value)| (name.0.clone(), value.0.clone()))
            .collect(),
        acl: rule.acl.as_ref().map(|acl| acl.0.clone()),
        storage_class: rule.storage_class.as_ref().map(|class| class.0.clone()),
        ..Headers::default()
    };
    Ok(Rule {
        set: compile_set(&rule.patterns)?,
        has_content_type: rule.content_type.is_some(),
        headers,
        immutable: rule.immutable,
        compress: rule.compress,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(yaml: &str) -> Rules {
        Rules::from_config(&DeployConfig::parse(yaml).unwrap()).unwrap()
    }

    fn key(k: &str) -> Key {
        Key::new(k).unwrap()
    }

    #[test]
    fn pattern_matching_table() {
        // (pattern, key, matches)
        let cases = [
            ("*.html", "index.html", true),
            ("*.html", "a/b/page.html", true),
            ("*.html", "index.htm", false),
            ("assets/**", "assets/app.js", true),
            ("assets/**", "assets/x/y.png", true),
            ("assets/**", "static/assets/app.js", false),
            ("/assets/*", "assets/app.js", true),
            // gitignore: `assets/*` matches the directory `assets/x`, so everything below it.
            ("assets/*", "assets/x/y.png", true),
            ("**", "anything/at/all", true),
            ("*.map", "js/app.js.map", true),
            ("node_modules", "node_modules/pkg/index.js", true),
            ("node_modules", "a/node_modules/x", true),
            ("docs/api", "docs/api/index.html", true),
            ("docs/api", "x/docs/api/index.html", false),
            (".DS_Store", "a/.DS_Store", true),
            ("img/*.png", "img/a.png", true),
            ("img/*.png", "img/sub/a.png", false),
            ("**/*.css", "style.css", true),
            ("[ab].txt", "a.txt", true),
            ("file\\*.txt", "file*.txt", true),
            ("file\\*.txt", "fileX.txt", false),
        ];
        for (pattern, k, want) in cases {
            let patterns = Patterns {
                text: vec![pattern.to_string()],
                globs: crate::deploy::config::compile_pattern(pattern).unwrap(),
            };
            let set = compile_set(&patterns).unwrap();
            assert_eq!(set.is_match(k), want, "pattern {pattern:?} on {k:?}");
        }
    }

    #[test]
    fn first_match_wins_and_defaults() {
        let r = rules(
            r#"
rules:
  - match: "*.html"
    cache_control: "no-cache"
    content_type: "text/html; charset=utf-8"
  - match: ["assets/**", "*.woff2"]
    cache_control: "immutable"
    immutable: true
    metadata: { Team: web }
  - match: "**"
    cache_control: "max-age=3600"
"#,
        );
        let html = r.resolve(&key("assets/page.html"));
        assert_eq!(html.rule, Some(0));
        assert_eq!(html.headers.cache_control.as_deref(), Some("no-cache"));
        assert!(!html.immutable);

        let asset = r.resolve(&key("assets/app.123.js"));
        assert_eq!(asset.rule, Some(1));
        assert!(asset.immutable);
        assert_eq!(
            asset.headers.content_type.as_deref(),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(
            asset.headers.metadata.get("team").map(String::as_str),
            Some("web")
        );

        let font = r.resolve(&key("fonts/a.woff2"));
        assert_eq!(font.rule, Some(1));

        let other = r.resolve(&key("robots.txt"));
        assert_eq!(other.rule, Some(2));
        assert_eq!(other.headers.cache_control.as_deref(), Some("max-age=3600"));

        let none = rules("rules: []").resolve(&key("x.png"));
        assert_eq!(none.rule, None);
        assert_eq!(none.headers.content_type.as_deref(), Some("image/png"));
        assert_eq!(none.headers.cache_control, None);
    }

    #[test]
    fn equal_headers_are_shared() {
        let r = rules("rules:\n  - match: '*.html'\n    cache_control: x\n");
        let a = r.resolve(&key("a/index.html"));
        let b = r.resolve(&key("b/page.html"));
        let c = r.resolve(&key("c.css"));
        assert!(Arc::ptr_eq(&a.headers, &b.headers));
        assert!(!Arc::ptr_eq(&a.headers, &c.headers));
    }

    #[test]
    fn exclusion() {
        let r = rules("exclude: ['*.map', '.DS_Store', 'drafts/']\n");
        assert!(r.is_excluded("js/app.js.map"));
        assert!(r.is_excluded(".DS_Store"));
        assert!(r.is_excluded("drafts/post.html"));
        assert!(!r.is_excluded("js/app.js"));
        assert!(!r.is_excluded("mydrafts/post.html"));
    }
}
