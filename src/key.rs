//! Names of remote objects, relative to the target prefix.
//!
//! A [`Key`] is the only way code above the store layer names an object. It is always
//! *relative to the store's prefix*: a store joins its own [`Prefix`] in front, so no code that
//! holds a `Key` can name an object outside the target (`site/` can never touch `site-old/`).
//!
//! Invariants of a `Key` (checked by [`Key::new`]):
//! - non-empty valid UTF-8, at most [`MAX_KEY_BYTES`] bytes once the prefix is added (checked
//!   by the store, which knows its prefix; [`Key::new`] checks the key alone);
//! - no leading `/`, no empty segment (`a//b`, `a/`), no `.` or `..` segment;
//! - no NUL byte.
//!
//! Those are the rules that make a key map to exactly one relative file path, so the local
//! backend and `sync` downloads can rely on them. Listed remote keys that break them are
//! reported and left alone: hoist never deletes what it cannot name.

use std::fmt;

/// S3 limits a key to 1,024 bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Key(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("empty key")]
    Empty,
    #[error("key is {len} bytes, longer than the {MAX_KEY_BYTES} bytes S3 allows")]
    TooLong { len: usize },
    #[error("key starts with `/`")]
    LeadingSlash,
    #[error("key has an empty segment (`//` or a trailing `/`)")]
    EmptySegment,
    #[error("key has a `.` or `..` segment")]
    DotSegment,
    #[error("key contains a NUL byte")]
    Nul,
}

impl Key {
    pub fn new(key: impl Into<String>) -> Result<Key, KeyError> {
        let key = key.into();
        Key::check(&key)?;
        Ok(Key(key))
    }

    /// Whether `key` may name an object, and if not why (what [`Key::new`] checks).
    pub fn check(key: &str) -> Result<(), KeyError> {
        if key.is_empty() {
            return Err(KeyError::Empty);
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(KeyError::TooLong { len: key.len() });
        }
        if key.starts_with('/') {
            return Err(KeyError::LeadingSlash);
        }
        if key.contains('\0') {
            return Err(KeyError::Nul);
        }
        for segment in key.split('/') {
            match segment {
                "" => return Err(KeyError::EmptySegment),
                "." | ".." => return Err(KeyError::DotSegment),
                _ => {}
            }
        }
        Ok(())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment (the file name).
    pub fn file_name(&self) -> &str {
        self.0
            .rsplit('/')
            .next()
            .expect("split yields at least one item")
    }

    /// Whether this key lies in the directory `dir` (given without trailing slash) or below.
    pub fn is_under(&self, dir: &str) -> bool {
        self.0
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?})", self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Key::new(s.clone()).map_err(|e| serde::de::Error::custom(format!("`{s}`: {e}")))
    }
}

/// The part of the bucket a store is confined to: empty, or a string ending in `/` with no
/// leading `/` and no empty, `.` or `..` segments.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prefix(String);

impl Prefix {
    /// Builds a prefix from the path part of a target URL. `site`, `site/` and `/site/` all mean
    /// the directory `site/`, as in aws-cli, so a listing of `site/` can never match `site-old/`.
    pub fn new(path: &str) -> Result<Prefix, KeyError> {
        let trimmed = path.trim_start_matches('/').trim_end_matches('/');
        if trimmed.is_empty() {
            return Ok(Prefix(String::new()));
        }
        // Validate the segments with the key rules.
        Key::new(trimmed)?;
        Ok(Prefix(format!("{trimmed}/")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The full object name of `key` in the bucket.
    pub fn join(&self, key: &Key) -> String {
        format!("{}{}", self.0, key.as_str())
    }

    /// The key of a full object name, if it lies under this prefix.
    pub fn strip<'a>(&self, full: &'a str) -> Option<&'a str> {
        full.strip_prefix(self.0.as_str())
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_keys() {
        for k in [
            "index.html",
            "a/b/c.txt",
            "with space.txt",
            "plus+sign.txt",
            "per%cent.txt",
            "unicodé/文件.txt",
            ".well-known/x",
            "..hidden",
            "a/...",
            "back\\slash",
        ] {
            assert_eq!(Key::new(k).expect(k).as_str(), k);
        }
    }

    #[test]
    fn invalid_keys() {
        let cases: &[(&str, KeyError)] = &[
            ("", KeyError::Empty),
            ("/abs", KeyError::LeadingSlash),
            ("a//b", KeyError::EmptySegment),
            ("dir/", KeyError::EmptySegment),
            ("./a", KeyError::DotSegment),
            ("a/../b", KeyError::DotSegment),
            ("..", KeyError::DotSegment),
            ("a/..", KeyError::DotSegment),
            ("a\0b", KeyError::Nul),
        ];
        for (input, want) in cases {
            assert_eq!(Key::new(*input).unwrap_err(), *want, "{input:?}");
        }
        let long = "x".repeat(MAX_KEY_BYTES + 1);
        assert_eq!(
            Key::new(long).unwrap_err(),
            KeyError::TooLong {
                len: MAX_KEY_BYTES + 1
            }
        );
        assert!(Key::new("x".repeat(MAX_KEY_BYTES)).is_ok());
    }

    #[test]
    fn prefix_normalizes_and_confines() {
        assert_eq!(Prefix::new("").unwrap().as_str(), "");
        assert_eq!(Prefix::new("/").unwrap().as_str(), "");
        assert_eq!(Prefix::new("site").unwrap().as_str(), "site/");
        assert_eq!(Prefix::new("/site/").unwrap().as_str(), "site/");
        assert_eq!(Prefix::new("a/b/").unwrap().as_str(), "a/b/");
        assert!(Prefix::new("a/../b").is_err());
        assert!(Prefix::new("a//b").is_err());

        let site = Prefix::new("site").unwrap();
        let key = Key::new("index.html").unwrap();
        assert_eq!(site.join(&key), "site/index.html");
        // `site/` never matches `site-old/`: see docs/s3-facts.md (`-` sorts before `/`).
        assert_eq!(site.strip("site-old/index.html"), None);
        assert_eq!(site.strip("site/index.html"), Some("index.html"));
        assert_eq!(site.strip("site"), None);
    }

    #[test]
    fn under_directory() {
        let k = Key::new("docs/index.html").unwrap();
        assert!(k.is_under("docs"));
        assert!(!k.is_under("doc"));
        assert_eq!(k.file_name(), "index.html");
    }
}
