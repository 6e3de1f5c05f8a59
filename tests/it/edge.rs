//! Issue #17, beyond object metadata. Precompression against the servers: compressed objects
//! carry Content-Encoding and decompress to their source; an unchanged build uploads nothing.

use std::io::Read;

use crate::backends::{Server, for_servers};
use crate::deploy::{Site, uploads};
use crate::util::head;

const COMPRESS: &str = r#"
source: site
rules:
  - match: "*.html"
    cache_control: "public, max-age=300"
    compress: variants
  - match: "assets/**"
    cache_control: "public, max-age=31536000, immutable"
    immutable: true
    compress: gzip
  - match: "**"
    cache_control: "public, max-age=3600"
    compress: br
"#;

fn app_js() -> String {
    (0..400)
        .map(|i| format!("export function f{i}(x) {{ return x * {i}; }}\n"))
        .collect()
}

fn files() -> Vec<(&'static str, String)> {
    vec![
        ("index.html", "<!doctype html><p>home</p>\n".repeat(50)),
        ("assets/app.4f2a1c9e.js", app_js()),
        (
            "assets/logo.png",
            "not really a png, but typed as one".into(),
        ),
        ("robots.txt", "User-agent: *\nAllow: /\n".repeat(20)),
    ]
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a gzip stream");
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096)
        .read_to_end(&mut out)
        .expect("a brotli stream");
    out
}

for_servers!(compressed_objects_decode_to_their_source);

/// `compress: gzip|br` in place and `variants`: each object's Content-Encoding and
/// Content-Type, its bytes decoded back to the source byte for byte, the skipped PNG and the
/// br warning said once each; and `hoist sync` downloads the compressed objects (their
/// integrity metadata is not the source's blake3, which sync would check the bytes against).
fn compressed_objects_decode_to_their_source(server: &Server) {
    let owned = files();
    let tree: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let site = Site::with_config(server, &tree, COMPRESS, "");
    let ran = site.deploy().success();
    assert!(
        ran.stderr.contains("compress leaves 1 file(s) as they are")
            && ran.stderr.contains("(image/png): `assets/logo.png`"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("compress: br stores 1 file(s)"),
        "{}",
        ran.stderr
    );
    let contents = site.contents();
    let client = site.client();
    let source = |key: &str| owned.iter().find(|(k, _)| *k == key).unwrap().1.as_bytes();
    for (key, encoding, content_type, decode) in [
        (
            "assets/app.4f2a1c9e.js",
            Some("gzip"),
            "text/javascript; charset=utf-8",
            Some(gunzip as fn(&[u8]) -> Vec<u8>),
        ),
        (
            "robots.txt",
            Some("br"),
            "text/plain; charset=utf-8",
            Some(unbrotli),
        ),
        ("index.html", None, "text/html; charset=utf-8", None),
        (
            "index.html.gz",
            Some("gzip"),
            "text/html; charset=utf-8",
            Some(gunzip),
        ),
        (
            "index.html.br",
            Some("br"),
            "text/html; charset=utf-8",
            Some(unbrotli),
        ),
        ("assets/logo.png", None, "image/png", None),
    ] {
        let object = head(&client, &site.bucket, key);
        assert_eq!(object.content_encoding(), encoding, "{key}");
        assert_eq!(object.content_type(), Some(content_type), "{key}");
        let stored = contents.get(key).unwrap_or_else(|| panic!("no {key}"));
        let original = key
            .strip_suffix(".gz")
            .or(key.strip_suffix(".br"))
            .unwrap_or(key);
        match decode {
            Some(decode) => {
                assert!(stored.len() < source(original).len(), "{key} not smaller");
                assert_eq!(decode(stored), source(original), "{key}");
            }
            None => assert_eq!(stored, source(original), "{key}"),
        }
    }
    assert!(!contents.contains_key("assets/logo.png.gz"));

    let backup = site.root().join("backup");
    let ran = crate::util::Hoist::on(site.root(), &server.endpoint())
        .args(["sync", &format!("s3://{}/assets", site.bucket)])
        .arg(backup.display().to_string())
        .args(["--endpoint-url", &server.endpoint().url])
        .success();
    assert!(ran.stdout.contains("download:"), "{}", ran.stdout);
    let downloaded = std::fs::read(backup.join("app.4f2a1c9e.js")).expect("downloaded");
    assert_eq!(gunzip(&downloaded), source("assets/app.4f2a1c9e.js"));
}

/// Change detection stays on the source: a rebuild that rewrites every file with the same
/// bytes sends no PutObject; a changed source re-uploads that file and its variants only; a
/// changed `compress:` setting re-uploads what it covers.
#[test]
fn an_unchanged_build_is_never_uploaded_again() {
    let Some(server) = Server::moto() else { return };
    let moto = server.moto_server().expect("moto");
    let owned = files();
    let tree: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let site = Site::with_config(&server, &tree, COMPRESS, "");
    site.deploy().success();

    // A rebuild: every file written again, same bytes, new mtimes.
    std::thread::sleep(std::time::Duration::from_millis(20));
    for (key, content) in &owned {
        site.write(key, content);
    }
    moto.start_recording();
    let ran = site.deploy().success();
    moto.stop_recording();
    let uploaded = uploads(&moto.recording(), &site.bucket);
    let site_uploads: Vec<&String> = uploaded.iter().filter(|k| !k.contains(".hoist/")).collect();
    assert!(site_uploads.is_empty(), "{site_uploads:?}\n{}", ran.stderr);

    site.write("index.html", "<!doctype html><p>home, changed</p>\n");
    moto.start_recording();
    site.deploy().success();
    moto.stop_recording();
    let mut uploaded: Vec<String> = uploads(&moto.recording(), &site.bucket)
        .into_iter()
        .filter(|k| !k.contains(".hoist/"))
        .collect();
    uploaded.sort();
    assert_eq!(uploaded, ["index.html", "index.html.br", "index.html.gz"]);

    site.write_config(&COMPRESS.replace("compress: gzip", "compress: br"));
    moto.start_recording();
    site.deploy().success();
    moto.stop_recording();
    let uploaded: Vec<String> = uploads(&moto.recording(), &site.bucket)
        .into_iter()
        .filter(|k| !k.contains(".hoist/"))
        .collect();
    assert_eq!(uploaded, ["assets/app.4f2a1c9e.js"]);
    let object = head(&site.client(), &site.bucket, "assets/app.4f2a1c9e.js");
    assert_eq!(object.content_encoding(), Some("br"));
}
