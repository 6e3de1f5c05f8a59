//! Content-Type guessing as aws-cli does it: Python's `mimetypes.guess_type(name)` (strict).
//!
//! Python starts from a built-in table, then reads whichever of `mimetypes.knownfiles` exist
//! (`/etc/mime.types` on Debian's `media-types`), later entries overriding earlier ones. So the
//! guess depends on the host; hoist does the same thing the same way, so `hoist sync` and
//! `aws s3 sync` agree on any machine. `BUILTIN` is CPython 3.11's `_types_map_default`,
//! printed by `scripts/gen-mime-table.py`; `scripts/test` runs it with `--check` on the Python
//! aws-cli runs on, so the table cannot drift from the reference.

/// CPython's built-in strict table: (extension with its dot, type).
pub(crate) const BUILTIN: &[(&str, &str)] = &[
    (".3g2", "audio/3gpp2"),
    (".3gp", "audio/3gpp"),
    (".3gpp", "audio/3gpp"),
    (".3gpp2", "audio/3gpp2"),
    (".a", "application/octet-stream"),
    (".aac", "audio/aac"),
    (".adts", "audio/aac"),
    (".ai", "application/postscript"),
    (".aif", "audio/x-aiff"),
    (".aifc", "audio/x-aiff"),
    (".aiff", "audio/x-aiff"),
    (".ass", "audio/aac"),
    (".au", "audio/basic"),
    (".avi", "video/x-msvideo"),
    (".avif", "image/avif"),
    (".bat", "text/plain"),
    (".bcpio", "application/x-bcpio"),
    (".bin", "application/octet-stream"),
    (".bmp", "image/bmp"),
    (".c", "text/plain"),
    (".cdf", "application/x-netcdf"),
    (".cpio", "application/x-cpio"),
    (".csh", "application/x-csh"),
    (".css", "text/css"),
    (".csv", "text/csv"),
    (".dll", "application/octet-stream"),
    (".doc", "application/msword"),
    (".dot", "application/msword"),
    (".dvi", "application/x-dvi"),
    (".eml", "message/rfc822"),
    (".eps", "application/postscript"),
    (".etx", "text/x-setext"),
    (".exe", "application/octet-stream"),
    (".gif", "image/gif"),
    (".gtar", "application/x-gtar"),
    (".h", "text/plain"),
    (".h5", "application/x-hdf5"),
    (".hdf", "application/x-hdf"),
    (".heic", "image/heic"),
    (".heif", "image/heif"),
    (".htm", "text/html"),
    (".html", "text/html"),
    (".ico", "image/vnd.microsoft.icon"),
    (".ief", "image/ief"),
    (".jpe", "image/jpeg"),
    (".jpeg", "image/jpeg"),
    (".jpg", "image/jpeg"),
    (".js", "application/javascript"),
    (".json", "application/json"),
    (".ksh", "text/plain"),
    (".latex", "application/x-latex"),
    (".loas", "audio/aac"),
    (".m1v", "video/mpeg"),
    (".m3u", "application/vnd.apple.mpegurl"),
    (".m3u8", "application/vnd.apple.mpegurl"),
    (".man", "application/x-troff-man"),
    (".me", "application/x-troff-me"),
    (".mht", "message/rfc822"),
    (".mhtml", "message/rfc822"),
    (".mif", "application/x-mif"),
    (".mjs", "application/javascript"),
    (".mov", "video/quicktime"),
    (".movie", "video/x-sgi-movie"),
    (".mp2", "audio/mpeg"),
    (".mp3", "audio/mpeg"),
    (".mp4", "video/mp4"),
    (".mpa", "video/mpeg"),
    (".mpe", "video/mpeg"),
    (".mpeg", "video/mpeg"),
    (".mpg", "video/mpeg"),
    (".ms", "application/x-troff-ms"),
    (".n3", "text/n3"),
    (".nc", "application/x-netcdf"),
    (".nq", "application/n-quads"),
    (".nt", "application/n-triples"),
    (".nws", "message/rfc822"),
    (".o", "application/octet-stream"),
    (".obj", "application/octet-stream"),
    (".oda", "application/oda"),
    (".opus", "audio/opus"),
    (".p12", "application/x-pkcs12"),
    (".p7c", "application/pkcs7-mime"),
    (".pbm", "image/x-portable-bitmap"),
    (".pdf", "application/pdf"),
    (".pfx", "application/x-pkcs12"),
    (".pgm", "image/x-portable-graymap"),
    (".pl", "text/plain"),
    (".png", "image/png"),
    (".pnm", "image/x-portable-anymap"),
    (".pot", "application/vnd.ms-powerpoint"),
    (".ppa", "application/vnd.ms-powerpoint"),
    (".ppm", "image/x-portable-pixmap"),
    (".pps", "application/vnd.ms-powerpoint"),
    (".ppt", "application/vnd.ms-powerpoint"),
    (".ps", "application/postscript"),
    (".pwz", "application/vnd.ms-powerpoint"),
    (".py", "text/x-python"),
    (".pyc", "application/x-python-code"),
    (".pyo", "application/x-python-code"),
    (".qt", "video/quicktime"),
    (".ra", "audio/x-pn-realaudio"),
    (".ram", "application/x-pn-realaudio"),
    (".ras", "image/x-cmu-raster"),
    (".rdf", "application/xml"),
    (".rgb", "image/x-rgb"),
    (".roff", "application/x-troff"),
    (".rtx", "text/richtext"),
    (".sgm", "text/x-sgml"),
    (".sgml", "text/x-sgml"),
    (".sh", "application/x-sh"),
    (".shar", "application/x-shar"),
    (".snd", "audio/basic"),
    (".so", "application/octet-stream"),
    (".src", "application/x-wais-source"),
    (".srt", "text/plain"),
    (".sv4cpio", "application/x-sv4cpio"),
    (".sv4crc", "application/x-sv4crc"),
    (".svg", "image/svg+xml"),
    (".swf", "application/x-shockwave-flash"),
    (".t", "application/x-troff"),
    (".tar", "application/x-tar"),
    (".tcl", "application/x-tcl"),
    (".tex", "application/x-tex"),
    (".texi", "application/x-texinfo"),
    (".texinfo", "application/x-texinfo"),
    (".tif", "image/tiff"),
    (".tiff", "image/tiff"),
    (".tr", "application/x-troff"),
    (".trig", "application/trig"),
    (".tsv", "text/tab-separated-values"),
    (".txt", "text/plain"),
    (".ustar", "application/x-ustar"),
    (".vcf", "text/x-vcard"),
    (".vtt", "text/vtt"),
    (".wasm", "application/wasm"),
    (".wav", "audio/x-wav"),
    (".webm", "video/webm"),
    (".webmanifest", "application/manifest+json"),
    (".wiz", "application/msword"),
    (".wsdl", "application/xml"),
    (".xbm", "image/x-xbitmap"),
    (".xlb", "application/vnd.ms-excel"),
    (".xls", "application/vnd.ms-excel"),
    (".xml", "text/xml"),
    (".xpdl", "application/xml"),
    (".xpm", "image/x-xpixmap"),
    (".xsl", "application/xml"),
    (".xwd", "image/x-xwindowdump"),
    (".zip", "application/zip"),
];

/// The files Python's `mimetypes.init()` reads, in order (`mimetypes.knownfiles`).
pub(crate) const KNOWN_FILES: &[&str] = &[
    "/etc/mime.types",
    "/etc/httpd/mime.types",
    "/etc/httpd/conf/mime.types",
    "/etc/apache/mime.types",
    "/etc/apache2/mime.types",
    "/usr/local/etc/httpd/conf/mime.types",
    "/usr/local/lib/netscape/mime.types",
    "/usr/local/etc/httpd/conf/mime.types",
    "/usr/local/etc/mime.types",
];

use std::collections::HashMap;
use std::sync::OnceLock;

/// `mimetypes.suffix_map`: compound extensions rewritten before the lookup.
const SUFFIX_MAP: &[(&str, &str)] = &[
    (".svgz", ".svg.gz"),
    (".tgz", ".tar.gz"),
    (".taz", ".tar.gz"),
    (".tz", ".tar.gz"),
    (".tbz2", ".tar.bz2"),
    (".txz", ".tar.xz"),
];

/// `mimetypes.encodings_map` keys (case-sensitive in Python): stripped before the lookup.
const ENCODINGS: &[&str] = &[".gz", ".Z", ".bz2", ".xz", ".br"];

/// Python's strict types map: extension (with its dot) → type.
#[derive(Debug, Clone)]
pub(crate) struct MimeTable {
    types: HashMap<String, String>,
}

impl MimeTable {
    pub(crate) fn builtin() -> MimeTable {
        MimeTable {
            types: BUILTIN
                .iter()
                .map(|(ext, ty)| (ext.to_string(), ty.to_string()))
                .collect(),
        }
    }

    /// What aws-cli's Python sees on this host: the built-in table, then every known file that
    /// exists, in order.
    pub(crate) fn host() -> &'static MimeTable {
        static HOST: OnceLock<MimeTable> = OnceLock::new();
        HOST.get_or_init(|| {
            let mut table = MimeTable::builtin();
            for file in KNOWN_FILES {
                if let Ok(text) = std::fs::read(file) {
                    table.read(&String::from_utf8_lossy(&text));
                }
            }
            table
        })
    }

    /// `MimeTypes.readfp`: `type ext ext ...` lines, `#` starting a comment word.
    pub(crate) fn read(&mut self, text: &str) {
        for line in text.lines() {
            let words: Vec<&str> = line
                .split_whitespace()
                .take_while(|word| !word.starts_with('#'))
                .collect();
            let Some((ty, suffixes)) = words.split_first() else {
                continue;
            };
            for suffix in suffixes {
                self.types.insert(format!(".{suffix}"), ty.to_string());
            }
        }
    }

    /// `mimetypes.guess_type(path)[0]` in strict mode.
    pub(crate) fn guess(&self, path: &str) -> Option<&str> {
        let mut name = path.to_string();
        // Python loops while the extension is in suffix_map; no target is itself a key, so
        // this ends after one rewrite, and the bound only makes that visible.
        for _ in 0..=SUFFIX_MAP.len() {
            let (base, ext) = split_extension(&name);
            let lower = ext.to_ascii_lowercase();
            match SUFFIX_MAP.iter().find(|(from, _)| *from == lower) {
                Some((_, to)) => name = format!("{base}{to}"),
                None => break,
            }
        }
        let (base, mut ext) = split_extension(&name);
        if ENCODINGS.contains(&ext) {
            ext = split_extension(base).1;
        }
        self.types.get(&ext.to_lowercase()).map(String::as_str)
    }
}

/// `posixpath.splitext`: the extension starts at the last `.` of the last segment, unless only
/// dots come before it in that segment (`.hf` and `..x` have none).
pub(crate) fn split_extension(path: &str) -> (&str, &str) {
    let start = path.rfind('/').map_or(0, |i| i + 1);
    let name = &path[start..];
    match name.rfind('.') {
        Some(dot) if name[..dot].chars().any(|c| c != '.') => {
            (&path[..start + dot], &path[start + dot..])
        }
        _ => (path, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_matches_cpython() {
        let table = MimeTable::builtin();
        let cases = [
            ("index.html", Some("text/html")),
            ("A.TXT", Some("text/plain")),
            ("app.js", Some("application/javascript")),
            ("m.json", Some("application/json")),
            ("style.css", Some("text/css")),
            ("photo.png", Some("image/png")),
            ("g.txt.gz", Some("text/plain")),
            ("x.gz", None),
            ("x.tar.gz", Some("application/x-tar")),
            ("x.tgz", Some("application/x-tar")),
            ("x.TGZ", Some("application/x-tar")),
            ("logo.svgz", Some("image/svg+xml")),
            ("debug.log", None),
            ("font.woff2", None),
            (".hf", None),
            ("noext", None),
            ("..", None),
            ("dir.d/noext", None),
        ];
        for (name, want) in cases {
            assert_eq!(table.guess(name), want, "{name}");
        }
    }

    #[test]
    fn host_files_override_the_builtin_table() {
        let mut table = MimeTable::builtin();
        table.read("# comment\ntext/javascript js mjs # trailing\nfont/woff2 woff2\n\nbad\n");
        assert_eq!(table.guess("a/app.js"), Some("text/javascript"));
        assert_eq!(table.guess("x.mjs"), Some("text/javascript"));
        assert_eq!(table.guess("f.woff2"), Some("font/woff2"));
        assert_eq!(table.guess("trailing"), None);
    }

    #[test]
    fn splitext_like_python() {
        assert_eq!(split_extension("a.txt"), ("a", ".txt"));
        assert_eq!(split_extension(".hf"), (".hf", ""));
        assert_eq!(split_extension("..x"), ("..x", ""));
        assert_eq!(split_extension("d.d/noext"), ("d.d/noext", ""));
        assert_eq!(split_extension("a.b.c"), ("a.b", ".c"));
    }
}
