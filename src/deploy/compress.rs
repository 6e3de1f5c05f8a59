//! `compress:`: objects stored compressed, with `Content-Encoding`, decided per rule.
//!
//! - `gzip` or `br`: the object under the file's own key holds the compressed bytes.
//! - `variants`: the file is published as is, and beside it `NAME.br` and `NAME.gz`, each with
//!   the file's Content-Type and its own Content-Encoding; the generated CloudFront Function
//!   ([`super::edge`]) picks one by the request's `Accept-Encoding`.
//!
//! Change detection never looks at compressed bytes. An encoded object's identity (what the
//! manifest records as its blake3, and the object carries as `x-amz-meta-hoist-encoded`) is
//! [`Encoding::identity`]: a digest of the source's blake3 and the fixed compression settings.
//! An unchanged source with unchanged settings is never uploaded again, whatever bytes another
//! build of the compressor would produce; a changed level or algorithm changes the identity.
//! (Encoded objects do not carry `hoist-blake3`, which promises the digest of the object's own
//! bytes and is what `hoist sync` verifies downloads against.)
//!
//! The output is deterministic: gzip with no name, a zero mtime, a fixed OS byte and level 9;
//! Brotli at quality 11 with a 4 MiB window. Types that are compressed already (images but
//! SVG, fonts but TrueType and OpenType, audio, video, archives, PDF) are left as they are,
//! with a note.

use std::io::Write;

use super::rules::Rules;
use super::scan::LocalFile;
use crate::digest::Digest;
use crate::report::escape;

/// User metadata carrying an encoded object's identity ([`Encoding::identity`], hex).
pub(crate) const META_ENCODED: &str = "hoist-encoded";

/// A rule's `compress:` setting.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Compress {
    /// Stored gzip-compressed under its own key (every HTTP client accepts gzip).
    Gzip,
    /// Stored Brotli-compressed under its own key: only for clients that all accept br.
    Br,
    /// Stored as is, plus `NAME.br` and `NAME.gz` for an edge function to choose from.
    Variants,
}

/// How one object's bytes are encoded from its source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Encoding {
    Gzip,
    Br,
}

/// gzip's compression level.
const GZIP_LEVEL: u32 = 9;
/// Brotli's quality and window (log2 of its size).
const BROTLI_QUALITY: u32 = 11;
const BROTLI_WINDOW: u32 = 22;

impl Encoding {
    /// The `Content-Encoding` value.
    pub(crate) fn header(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Br => "br",
        }
    }

    /// The suffix of a variant's key: `app.js.br`.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Encoding::Gzip => ".gz",
            Encoding::Br => ".br",
        }
    }

    /// The settings that decide the output, as they enter the identity.
    fn settings(self) -> String {
        match self {
            Encoding::Gzip => format!("gzip level {GZIP_LEVEL}"),
            Encoding::Br => format!("br quality {BROTLI_QUALITY} window {BROTLI_WINDOW}"),
        }
    }

    /// The identity of the object that holds `source` (a blake3) encoded this way.
    pub(crate) fn identity(self, source: &Digest) -> Digest {
        let mut text = String::from("hoist-encoded\0");
        text.push_str(&self.settings());
        text.push('\0');
        text.push_str(&source.to_string());
        Digest::of(text.as_bytes())
    }

    /// The encoded bytes: the same for the same input, on every machine.
    pub(crate) fn encode(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            Encoding::Gzip => {
                // No file name, mtime 0, OS byte 255 ("unknown"): nothing of the machine.
                let mut encoder = flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(255)
                    .write(
                        Vec::with_capacity(bytes.len() / 3 + 64),
                        flate2::Compression::new(GZIP_LEVEL),
                    );
                encoder.write_all(bytes).expect("writing to memory");
                encoder.finish().expect("writing to memory")
            }
            Encoding::Br => {
                let mut out = Vec::with_capacity(bytes.len() / 3 + 64);
                let params = brotli::enc::BrotliEncoderParams {
                    quality: BROTLI_QUALITY as i32,
                    lgwin: BROTLI_WINDOW as i32,
                    ..brotli::enc::BrotliEncoderParams::default()
                };
                brotli::BrotliCompress(&mut &bytes[..], &mut out, &params)
                    .expect("compressing from memory to memory");
                out
            }
        }
    }
}

/// Whether a Content-Type is worth compressing: false for formats that are compressed already.
pub(crate) fn compressible(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return true;
    };
    let essence = crate::headers::essence(content_type);
    let (kind, subtype) = essence.split_once('/').unwrap_or((essence.as_str(), ""));
    match kind {
        "image" => subtype == "svg+xml" || subtype == "x-icon" || subtype == "vnd.microsoft.icon",
        "font" => matches!(subtype, "ttf" | "otf" | "sfnt" | "collection"),
        "audio" | "video" => false,
        "application" => !matches!(
            subtype,
            "zip"
                | "gzip"
                | "x-gzip"
                | "x-bzip2"
                | "x-xz"
                | "x-7z-compressed"
                | "vnd.rar"
                | "x-rar-compressed"
                | "zstd"
                | "pdf"
                | "wasm-compressed"
                | "x-brotli"
                | "font-woff"
                | "octet-stream"
        ),
        _ => true,
    }
}

/// What `compress:` leaves undone or needs saying, one line per rule: the files left as they
/// are because their type is compressed already, and that `br` in place serves Brotli to
/// every client.
pub(crate) fn notes(files: &[LocalFile], rules: &Rules) -> Vec<String> {
    struct Seen<'a> {
        skipped: Vec<&'a LocalFile>,
        types: std::collections::BTreeSet<String>,
        brotli: usize,
    }
    let mut by_rule: std::collections::BTreeMap<usize, Seen<'_>> =
        std::collections::BTreeMap::new();
    for file in files {
        let Some(rule) = file.resolved.rule else {
            continue;
        };
        let Some(compress) = rules.compress(rule) else {
            continue;
        };
        let seen = by_rule.entry(rule).or_insert_with(|| Seen {
            skipped: Vec::new(),
            types: std::collections::BTreeSet::new(),
            brotli: 0,
        });
        match file.resolved.encode {
            Some(Encoding::Br) if compress == Compress::Br => seen.brotli += 1,
            Some(_) => {}
            None => {
                let content_type = file.resolved.headers.content_type.as_deref();
                if !compressible(content_type) {
                    seen.skipped.push(file);
                    seen.types
                        .insert(content_type.map_or_else(String::new, crate::headers::essence));
                }
            }
        }
    }
    let mut notes = Vec::new();
    for (rule, seen) in by_rule {
        let label = rules.label(rule);
        if let Some(first) = seen.skipped.first() {
            let more = match seen.skipped.len() {
                1 => String::new(),
                n => format!(" and {} more", n - 1),
            };
            let types: Vec<&str> = seen.types.iter().map(String::as_str).collect();
            notes.push(format!(
                "{label}: compress leaves {} file(s) as they are, their type is compressed \
                 already ({}): `{}`{more}",
                seen.skipped.len(),
                types.join(", "),
                escape(first.key.as_str())
            ));
        }
        if seen.brotli > 0 {
            notes.push(format!(
                "{label}: compress: br stores {} file(s) Brotli-compressed for every client; \
                 one that does not send `Accept-Encoding: br` (curl without --compressed, some \
                 proxies and crawlers) gets bytes it cannot read. Use gzip, or variants with an \
                 edge function, unless every client accepts br",
                seen.brotli
            ));
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn gzip_and_br_are_deterministic_and_round_trip() {
        let text = "body { color: red }\n".repeat(500);
        for encoding in [Encoding::Gzip, Encoding::Br] {
            let once = encoding.encode(text.as_bytes());
            let twice = encoding.encode(text.as_bytes());
            assert_eq!(once, twice, "{encoding:?} output differs between runs");
            assert!(
                once.len() < text.len() / 10,
                "{encoding:?} barely compressed"
            );
            let mut back = Vec::new();
            match encoding {
                Encoding::Gzip => {
                    flate2::read::GzDecoder::new(&once[..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Encoding::Br => {
                    brotli::Decompressor::new(&once[..], 4096)
                        .read_to_end(&mut back)
                        .unwrap();
                }
            }
            assert_eq!(back, text.as_bytes());
        }
        // The gzip header: magic, deflate, no flags, mtime 0, XFL 2 (level 9), OS 255.
        let gz = Encoding::Gzip.encode(b"x");
        assert_eq!(&gz[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255]);
    }

    #[test]
    fn identity_depends_on_source_and_settings_only() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        assert_eq!(Encoding::Gzip.identity(&a), Encoding::Gzip.identity(&a));
        assert_ne!(Encoding::Gzip.identity(&a), Encoding::Gzip.identity(&b));
        assert_ne!(Encoding::Gzip.identity(&a), Encoding::Br.identity(&a));
        assert_ne!(Encoding::Gzip.identity(&a), a);
    }

    #[test]
    fn compressed_formats_are_left_alone() {
        for (content_type, want) in [
            (Some("text/html; charset=utf-8"), true),
            (Some("text/javascript"), true),
            (Some("application/json"), true),
            (Some("image/svg+xml"), true),
            (Some("font/ttf"), true),
            (Some("application/wasm"), true),
            (Some("image/png"), false),
            (Some("image/webp"), false),
            (Some("font/woff2"), false),
            (Some("video/mp4"), false),
            (Some("application/zip"), false),
            (Some("application/pdf"), false),
            (Some("application/octet-stream"), false),
            (None, true),
        ] {
            assert_eq!(compressible(content_type), want, "{content_type:?}");
        }
    }
}
