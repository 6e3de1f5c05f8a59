//! The HTTP headers and S3 settings hoist gives an object, and how they are compared.
//!
//! `Headers` is what a rule (deploy) or the command line (sync) resolves to, and what a store
//! reads back with HEAD. Two sets of headers are compared by [`Headers::differs_from_remote`]
//! on what a HEAD can return; the ACL cannot be read back that way, so it only enters the
//! [`Headers::fingerprint`] that the deploy manifest records.

use std::collections::BTreeMap;

/// User-metadata keys hoist itself writes; they are ignored when comparing metadata.
pub const META_PREFIX: &str = "hoist-";
/// User metadata carrying the object's blake3 digest (hex).
pub const META_BLAKE3: &str = "hoist-blake3";

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Headers {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    /// An HTTP date, as S3 returns it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub website_redirect: Option<String>,
    /// User metadata (`x-amz-meta-*`), names lower-case and without the prefix.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Canned ACL. Write-only: HEAD does not return it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acl: Option<String>,
    /// `None` means the store's default (`STANDARD` on S3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// Server-side encryption (`AES256` or `aws:kms`) and the KMS key; write-mostly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sse: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sse_kms_key_id: Option<String>,
}

impl Headers {
    /// A short, stable digest of every field, written to the manifest so a later deploy can tell
    /// whether a rule changed without a HEAD.
    pub fn fingerprint(&self) -> crate::digest::Fingerprint {
        let canonical = serde_json::to_vec(self).expect("headers serialize to JSON");
        crate::digest::Fingerprint::of(&canonical)
    }

    /// User metadata without hoist's own entries.
    pub fn user_metadata(&self) -> impl Iterator<Item = (&String, &String)> {
        self.metadata
            .iter()
            .filter(|(name, _)| !name.starts_with(META_PREFIX))
    }

    /// The headers that are set, for a log line: `content-type: text/html, cache-control: ...`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (name, value) in [
            ("content-type", &self.content_type),
            ("cache-control", &self.cache_control),
            ("content-encoding", &self.content_encoding),
            ("content-language", &self.content_language),
            ("content-disposition", &self.content_disposition),
            ("website-redirect-location", &self.website_redirect),
            ("acl", &self.acl),
            ("storage-class", &self.storage_class),
            ("sse", &self.sse),
        ] {
            if let Some(value) = value {
                parts.push(format!("{name}: {value}"));
            }
        }
        for (name, value) in self.user_metadata() {
            parts.push(format!("x-amz-meta-{name}: {value}"));
        }
        parts.join(", ")
    }

    /// What differs between `remote` (read back with HEAD) and these headers, as
    /// `(header, remote value, new value)`, over what HEAD returns.
    pub fn changes_from(&self, remote: &Headers) -> Vec<(String, Option<String>, Option<String>)> {
        let mut changes = Vec::new();
        let mut field = |name: &str, old: &Option<String>, new: &Option<String>| {
            if old != new {
                changes.push((name.to_string(), old.clone(), new.clone()));
            }
        };
        field("content-type", &remote.content_type, &self.content_type);
        field("cache-control", &remote.cache_control, &self.cache_control);
        field(
            "content-encoding",
            &remote.content_encoding,
            &self.content_encoding,
        );
        field(
            "content-language",
            &remote.content_language,
            &self.content_language,
        );
        field(
            "content-disposition",
            &remote.content_disposition,
            &self.content_disposition,
        );
        field(
            "website-redirect-location",
            &remote.website_redirect,
            &self.website_redirect,
        );
        let class = |c: &Option<String>| Some(c.clone().unwrap_or_else(|| "STANDARD".into()));
        field(
            "storage-class",
            &class(&remote.storage_class),
            &class(&self.storage_class),
        );
        let old: BTreeMap<&String, &String> = remote.user_metadata().collect();
        let new: BTreeMap<&String, &String> = self.user_metadata().collect();
        for name in old
            .keys()
            .chain(new.keys())
            .collect::<std::collections::BTreeSet<_>>()
        {
            let (a, b) = (
                old.get(name).map(|v| (*v).clone()),
                new.get(name).map(|v| (*v).clone()),
            );
            if a != b {
                changes.push((format!("x-amz-meta-{name}"), a, b));
            }
        }
        changes
    }

    /// Whether `remote` (read back with HEAD) lacks something these headers would set. Fields
    /// HEAD cannot return (ACL, SSE details) are not compared.
    pub fn differs_from_remote(&self, remote: &Headers) -> bool {
        fn storage(class: &Option<String>) -> &str {
            class.as_deref().unwrap_or("STANDARD")
        }
        self.content_type != remote.content_type
            || self.cache_control != remote.cache_control
            || self.content_encoding != remote.content_encoding
            || self.content_language != remote.content_language
            || self.content_disposition != remote.content_disposition
            || self.website_redirect != remote.website_redirect
            || storage(&self.storage_class) != storage(&remote.storage_class)
            || !self.user_metadata().eq(remote.user_metadata())
    }
}

/// The Content-Type for a file name: mime_guess's first guess, with `charset=utf-8` for text
/// types (browsers otherwise guess the charset of a `text/html` page), or
/// `application/octet-stream` when nothing is known.
pub fn default_content_type(file_name: &str) -> String {
    match mime_guess::from_path(file_name).first() {
        Some(mime) => {
            let essence = mime.essence_str();
            if is_text(essence) {
                format!("{essence}; charset=utf-8")
            } else {
                essence.to_string()
            }
        }
        None => "application/octet-stream".to_string(),
    }
}

fn is_text(essence: &str) -> bool {
    essence.starts_with("text/")
        || matches!(
            essence,
            "application/javascript"
                | "application/json"
                | "application/xml"
                | "application/manifest+json"
                | "image/svg+xml"
        )
}

/// A Content-Type's type and subtype, lower case, without parameters (`text/html`).
pub(crate) fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether a Content-Type is an HTML page, which deploys publish last.
pub fn is_html(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return false;
    };
    let essence = essence(content_type);
    essence == "text/html" || essence == "application/xhtml+xml"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_guesses() {
        let cases = [
            ("index.html", "text/html; charset=utf-8"),
            ("style.css", "text/css; charset=utf-8"),
            ("app.js", "text/javascript; charset=utf-8"),
            ("data.json", "application/json; charset=utf-8"),
            ("logo.svg", "image/svg+xml; charset=utf-8"),
            ("photo.png", "image/png"),
            ("font.woff2", "font/woff2"),
            ("noextension", "application/octet-stream"),
            ("archive.unknownext", "application/octet-stream"),
        ];
        for (name, want) in cases {
            assert_eq!(default_content_type(name), want, "{name}");
        }
    }

    #[test]
    fn html_detection() {
        assert!(is_html(Some("text/html")));
        assert!(is_html(Some("text/html; charset=utf-8")));
        assert!(is_html(Some("TEXT/HTML")));
        assert!(is_html(Some("application/xhtml+xml")));
        assert!(!is_html(Some("text/css")));
        assert!(!is_html(None));
    }

    #[test]
    fn fingerprint_tracks_every_field() {
        let base = Headers::default();
        let mut acl = base.clone();
        acl.acl = Some("public-read".into());
        let mut cache = base.clone();
        cache.cache_control = Some("max-age=1".into());
        assert_ne!(base.fingerprint(), acl.fingerprint());
        assert_ne!(base.fingerprint(), cache.fingerprint());
        assert_eq!(base.fingerprint(), Headers::default().fingerprint());
    }

    #[test]
    fn remote_comparison_ignores_hoist_metadata_and_unreadable_fields() {
        let mut want = Headers {
            content_type: Some("text/html".into()),
            acl: Some("public-read".into()),
            ..Headers::default()
        };
        want.metadata.insert("team".into(), "web".into());
        let mut remote = want.clone();
        remote.acl = None;
        remote.metadata.insert(META_BLAKE3.into(), "abc".into());
        remote.storage_class = Some("STANDARD".into());
        assert!(!want.differs_from_remote(&remote));

        remote.cache_control = Some("max-age=1".into());
        assert!(want.differs_from_remote(&remote));
        remote.cache_control = None;
        remote.metadata.insert("team".into(), "ops".into());
        assert!(want.differs_from_remote(&remote));
    }
}
