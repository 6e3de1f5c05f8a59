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

/// The site's keys a deploy uploads (PutObject or parts), hoist's own state left out, in
/// the order moto received them.
fn deploy_uploads(moto: &crate::servers::Moto, site: &Site) -> Vec<String> {
    moto.start_recording();
    site.deploy().success();
    moto.stop_recording();
    uploads(&moto.recording(), &site.bucket)
        .into_iter()
        .filter(|k| !k.contains(".hoist/"))
        .collect()
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
    let mut uploaded = deploy_uploads(moto, &site);
    uploaded.sort();
    assert_eq!(uploaded, ["index.html", "index.html.br", "index.html.gz"]);

    site.write_config(&COMPRESS.replace("compress: gzip", "compress: br"));
    let uploaded = deploy_uploads(moto, &site);
    assert_eq!(uploaded, ["assets/app.4f2a1c9e.js"]);
    let object = head(&site.client(), &site.bucket, "assets/app.4f2a1c9e.js");
    assert_eq!(object.content_encoding(), Some("br"));
}

/// The rules of the request table below: every redirect status, a rewrite, placeholders and
/// splats, the SPA fallback, clean URLs, variants and response headers, from deploy.yaml and
/// from the build's `_redirects` and `_headers`.
const EDGE: &str = r#"
source: site
spa: /index.html
clean_urls: true
rules:
  - match: "assets/**"
    cache_control: "public, max-age=31536000, immutable"
    immutable: true
    compress: variants
  - match: "*.html"
    cache_control: "public, max-age=60"
redirects:
  - { from: /old, to: /new-page }
  - { from: /temp, to: /elsewhere, status: 302 }
  - { from: /see, to: /other, status: 303 }
  - { from: /tmp307, to: /t, status: 307 }
  - { from: /perm, to: /p, status: 308 }
  - { from: /external, to: "https://example.com/x" }
  - { from: "/users/:id/profile", to: "/u/:id" }
  - { from: "/shop/*", to: "/store/:splat" }
  - { from: "/app/*", to: /index.html, status: 200 }
  - { from: /contact, to: /nope }
response_headers:
  - match: "/*"
    headers:
      X-Frame-Options: DENY
      Strict-Transport-Security: "max-age=63072000"
"#;

const EDGE_FILES: &[(&str, &str)] = &[
    ("index.html", "<p>app</p>"),
    ("about/index.html", "<p>about</p>"),
    ("contact.html", "<p>contact</p>"),
    ("docs/guide/index.html", "<p>guide</p>"),
    ("blog/existing.html", "<p>an existing post</p>"),
    (
        "assets/app.1a2b3c4d.js",
        "console.log('app'); // some text to compress",
    ),
    ("assets/logo.4d3c2b1a.png", "png"),
    ("LICENSE", "MIT"),
    ("favicon.ico", "ico"),
    (
        "_redirects",
        "# moved\n/blog/* /posts/:splat 301\n/legacy/:year/:slug /archive/:year/:slug 308\n/forced /forced-target 302!\n/geo/* /de/:splat 302 Country=de\n",
    ),
    (
        "_headers",
        "/assets/*\n  ! X-Frame-Options\n/embed/*\n  Content-Security-Policy: frame-ancestors 'self'\n",
    ),
];

/// Runs the generated functions under Node.js (tests/support/cloudfront-functions.mjs).
fn run_functions(dir: &std::path::Path, cases: &serde_json::Value) -> serde_json::Value {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/cloudfront-functions.mjs"
    );
    let mut child = std::process::Command::new("node")
        .arg(script)
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node runs (Node.js is needed for the edge function tests)");
    std::io::Write::write_all(
        &mut child.stdin.take().expect("stdin"),
        cases.to_string().as_bytes(),
    )
    .expect("write cases");
    let output = child.wait_with_output().expect("node ends");
    assert!(
        output.status.success(),
        "the harness failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the harness prints JSON")
}

/// What one request should come to: a redirect (`"301 /new"`) or the object key asked of the
/// origin (`"/about/index.html"`).
fn outcome(result: &serde_json::Value) -> String {
    match result["status"].as_u64() {
        Some(status) => format!("{status} {}", result["location"].as_str().unwrap()),
        None => result["uri"].as_str().unwrap().to_string(),
    }
}

/// The generated CloudFront Functions, run under Node.js with CloudFront's event objects,
/// against a table of requests: every redirect status, placeholders and splats, a rewrite,
/// SPA fallback hits and misses (a missing hashed asset stays a 404), clean URLs both ways,
/// `Accept-Encoding` choosing br, gzip or identity, and the response headers.
#[test]
fn the_edge_function_answers_a_table_of_requests() {
    let dir = tempfile::tempdir().expect("temp dir");
    crate::util::write_tree(&dir.path().join("site"), EDGE_FILES);
    std::fs::write(
        dir.path().join("deploy.yaml"),
        format!("{EDGE}\ntarget: s3://example-bucket/\n"),
    )
    .expect("deploy.yaml");
    let out = dir.path().join("edge");
    let ran = crate::util::Hoist::new(dir.path())
        .args(["edge", "build", "--out"])
        .arg(out.display().to_string())
        .success();
    // What the build files say that a static edge cannot honour, and the shadowed rule.
    assert!(
        ran.stderr
            .contains("_redirects line 5: conditions (`Country=de`) cannot be honoured"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains(
            "deploy.yaml redirects[9]: never applies, the build has `contact.html` at `/contact`"
        ),
        "{}",
        ran.stderr
    );
    assert!(out.join("viewer-response.js").exists());
    assert!(!out.join("kvs.json").exists(), "small tables stay inline");

    let br = Some("gzip, deflate, br");
    #[rustfmt::skip]
    let table: &[(&str, Option<&str>, Option<&str>, &str)] = &[
        // (path, query, Accept-Encoding, outcome)
        ("/", None, None, "/index.html"),
        ("/index.html", None, None, "301 /"),
        ("/about", None, None, "/about/index.html"),
        ("/about/", None, None, "301 /about"),
        ("/about/index.html", None, None, "301 /about"),
        ("/about/", Some("lang=de"), None, "301 /about?lang=de"),
        ("/contact", None, None, "/contact.html"),
        ("/contact.html", None, None, "301 /contact"),
        ("/docs/guide", None, None, "/docs/guide/index.html"),
        ("/docs/guide/", Some("x=1"), None, "301 /docs/guide?x=1"),
        ("/old", None, None, "301 /new-page"),
        ("/old/", None, None, "301 /new-page"),
        ("/old", Some("utm=a&b=2"), None, "301 /new-page?utm=a&b=2"),
        ("/old", Some("tag=a&tag=b"), None, "301 /new-page?tag=a&tag=b"),
        ("/temp", None, None, "302 /elsewhere"),
        ("/see", None, None, "303 /other"),
        ("/tmp307", None, None, "307 /t"),
        ("/perm", None, None, "308 /p"),
        ("/external", None, None, "301 https://example.com/x"),
        ("/users/42/profile", None, None, "301 /u/42"),
        ("/users/42/profile/", None, None, "301 /u/42"),
        ("/users//profile", None, None, "/index.html"),
        ("/shop/a/b", None, None, "301 /store/a/b"),
        ("/shop", None, None, "301 /store/"),
        ("/app/settings", None, None, "/index.html"),
        ("/blog/hello-world", None, None, "301 /posts/hello-world"),
        ("/blog/existing", None, None, "/blog/existing.html"),
        ("/blog/existing.html", None, None, "301 /blog/existing"),
        ("/legacy/2020/post", None, None, "308 /archive/2020/post"),
        ("/forced", None, None, "302 /forced-target"),
        ("/geo/page", None, None, "/index.html"),
        ("/dashboard", None, None, "/index.html"),
        ("/dashboard/settings/", None, None, "/index.html"),
        ("/missing.png", None, None, "/missing.png"),
        ("/assets/app.1a2b3c4d.js", None, br, "/assets/app.1a2b3c4d.js.br"),
        ("/assets/app.1a2b3c4d.js", None, Some("gzip, deflate"), "/assets/app.1a2b3c4d.js.gz"),
        ("/assets/app.1a2b3c4d.js", None, Some("br;q=0, gzip"), "/assets/app.1a2b3c4d.js.gz"),
        ("/assets/app.1a2b3c4d.js", None, Some("identity"), "/assets/app.1a2b3c4d.js"),
        ("/assets/app.1a2b3c4d.js", None, None, "/assets/app.1a2b3c4d.js"),
        ("/assets/app.1a2b3c4d.js", None, Some("*"), "/assets/app.1a2b3c4d.js.br"),
        ("/assets/logo.4d3c2b1a.png", None, br, "/assets/logo.4d3c2b1a.png"),
        ("/assets/missing-0000.js", None, br, "/assets/missing-0000.js"),
        ("/assets/chunk", None, None, "/assets/chunk"),
        ("/LICENSE", None, None, "/LICENSE"),
        ("/favicon.ico", None, None, "/favicon.ico"),
        ("/embed/widget", None, None, "/index.html"),
    ];
    let cases: Vec<serde_json::Value> = table
        .iter()
        .map(|(uri, query, encoding, _)| {
            let mut headers = serde_json::Map::new();
            if let Some(encoding) = encoding {
                headers.insert("Accept-Encoding".into(), (*encoding).into());
            }
            serde_json::json!({"uri": uri, "query": query, "headers": headers})
        })
        .collect();
    let ran = run_functions(&out, &serde_json::Value::Array(cases));
    let results = ran["results"].as_array().expect("results");
    let mut wrong = Vec::new();
    for ((uri, query, encoding, want), result) in table.iter().zip(results) {
        let got = outcome(result);
        if got != *want {
            wrong.push(format!(
                "{uri} ?{query:?} [{encoding:?}]: want {want}, got {got}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {}:\n{}",
        wrong.len(),
        table.len(),
        wrong.join("\n")
    );
    assert!(table.len() >= 40);
    assert!(ran["sizes"]["request"].as_u64().unwrap() < 10_240);

    // The headers: every path gets HSTS and X-Frame-Options, but `/assets/*` removes the
    // latter (`_headers`), `/embed/*` adds a CSP, and a variant is served with Vary.
    let headers = |index: usize| results[index]["headers"].clone();
    let about = headers(2);
    assert_eq!(about["x-frame-options"], "DENY");
    assert_eq!(about["strict-transport-security"], "max-age=63072000");
    assert_eq!(about["vary"], serde_json::Value::Null);
    let asset = headers(34);
    assert_eq!(asset["x-frame-options"], serde_json::Value::Null, "{asset}");
    assert_eq!(asset["strict-transport-security"], "max-age=63072000");
    assert_eq!(asset["vary"], "Accept-Encoding");
    let embed = headers(table.len() - 1);
    assert_eq!(embed["content-security-policy"], "frame-ancestors 'self'");
    assert_eq!(embed["x-frame-options"], "DENY");
}

/// A 2,000-line `_redirects`: the function stays under CloudFront's 10,240 bytes by moving
/// the exact paths to a KeyValueStore (kvs.json in CloudFront's import format), and answers
/// from it; the pattern rules stay in the code.
#[test]
fn a_large_redirect_table_moves_to_a_key_value_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut redirects: String = (0..2000)
        .map(|i| format!("/old/page-{i} /new/page-{i} 301\n"))
        .collect();
    redirects.push_str("/blog/* /posts/:splat 302\n");
    crate::util::write_tree(
        &dir.path().join("site"),
        &[("index.html", "<p>home</p>"), ("_redirects", &redirects)],
    );
    std::fs::write(
        dir.path().join("deploy.yaml"),
        "source: site\ntarget: s3://example-bucket/\n",
    )
    .expect("deploy.yaml");
    let out = dir.path().join("edge");
    let ran = crate::util::Hoist::new(dir.path())
        .args(["edge", "build", "--output", "json", "--out"])
        .arg(out.display().to_string())
        .success();
    let report: serde_json::Value = serde_json::from_str(&ran.stdout).expect("JSON");
    assert_eq!(report["kvs_entries"], 2000, "{report:#}");
    let kvs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("kvs.json")).expect("kvs.json"))
            .expect("kvs.json is JSON");
    let data = kvs["data"].as_array().expect("data");
    assert_eq!(data.len(), 2000);
    assert!(
        data.iter()
            .all(|e| e["key"].is_string() && e["value"].is_string())
    );
    let code = std::fs::read_to_string(out.join("viewer-request.js")).expect("code");
    assert!(code.len() < 10_240, "{} bytes", code.len());
    assert!(code.contains("import cf from 'cloudfront';"));
    let cases = serde_json::json!([
        {"uri": "/old/page-0"},
        {"uri": "/old/page-1999/"},
        {"uri": "/old/page-2000"},
        {"uri": "/blog/x"},
        {"uri": "/"},
    ]);
    let ran = run_functions(&out, &cases);
    let got: Vec<String> = ran["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(outcome)
        .collect();
    assert_eq!(
        got,
        [
            "301 /new/page-0",
            "301 /new/page-1999",
            "/old/page-2000",
            "302 /posts/x",
            "/index.html"
        ]
    );
    assert!(ran["reads"].as_u64().unwrap() > 0, "the store was read");
}

/// For the S3 website endpoint: each exact redirect is a zero-byte object carrying
/// `x-amz-website-redirect-location` (at `old` and `old/index.html`), the plan says what the
/// endpoint cannot express, a second deploy sends no PutObject, and a redirect taken out of
/// deploy.yaml takes its objects with it.
#[test]
fn exact_redirects_become_website_redirect_objects() {
    let Some(server) = Server::moto() else { return };
    let moto = server.moto_server().expect("moto");
    let config = r#"
source: site
spa: /index.html
redirects:
  - { from: /old, to: /new }
  - { from: /moved/, to: "https://example.com/", status: 302 }
  - { from: "/blog/*", to: "/posts/:splat" }
  - { from: /about, to: /nowhere }
"#;
    let site = Site::with_config(
        &server,
        &[
            ("index.html", "<p>home</p>"),
            ("about.html", "<p>about</p>"),
            ("new.html", "<p>new</p>"),
        ],
        config,
        "",
    );
    // The plan says what each compiler produced, in the JSON a script reads too.
    let dry = site.deploy_json().arg("--dryrun").success().json();
    let edge: Vec<&str> = dry["edge"]
        .as_array()
        .expect("edge lines")
        .iter()
        .filter_map(|line| line.as_str())
        .collect();
    assert!(
        edge.iter()
            .any(|l| l.starts_with("S3 website endpoint: 3 redirect(s)"))
            && edge
                .iter()
                .any(|l| l.starts_with("CloudFront Function (hoist edge build): viewer-request")),
        "{edge:#?}"
    );
    let ran = site.deploy().success();
    assert!(
        ran.stderr.contains(
            "S3 website endpoint: 3 redirect(s) as 6 zero-byte object(s) with \
             x-amz-website-redirect-location"
        ),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .contains("deploy.yaml redirects[2] (`/blog/*`: a pattern)")
            && ran.stderr.contains(
                "deploy.yaml redirects[1] (status 302: the website endpoint answers 301)"
            )
            && ran.stderr.contains("spa (set the bucket's error document"),
        "{}",
        ran.stderr
    );
    let client = site.client();
    for (key, to) in [
        ("old", "/new"),
        ("old/index.html", "/new"),
        ("moved", "https://example.com/"),
        ("moved/index.html", "https://example.com/"),
        // The website endpoint serves `/about` from the key `about`, not from about.html.
        ("about", "/nowhere"),
        ("about/index.html", "/nowhere"),
    ] {
        let object = head(&client, &site.bucket, key);
        assert_eq!(object.website_redirect_location(), Some(to), "{key}");
        assert_eq!(object.content_length(), Some(0), "{key}");
    }
    let contents = site.contents();
    assert_eq!(
        contents.get("about.html").map(Vec::as_slice),
        Some(&b"<p>about</p>"[..])
    );

    let uploaded = deploy_uploads(moto, &site);
    assert!(uploaded.is_empty(), "{uploaded:?}");

    site.write_config(&config.replace("  - { from: /old, to: /new }\n", ""));
    site.deploy().success();
    let contents = site.contents();
    assert!(
        !contents.contains_key("old") && !contents.contains_key("old/index.html"),
        "{:?}",
        contents.keys().collect::<Vec<_>>()
    );
    assert!(contents.contains_key("moved"));
}

/// `cloudfront.function: {manage: true}` against moto's CloudFront, as far as moto goes: a dry
/// run sends no CloudFront request that changes anything and says what it would publish; a
/// deploy uploads the assets, then creates the function with exactly the code `hoist edge
/// build` writes, then publishes it before any HTML is written. moto implements
/// CreateFunction, DescribeFunction and GetFunction but not PublishFunction (nor
/// UpdateFunction, nor function associations), so here the publish fails: the deploy stops
/// with exit 1 and `CloudFrontFunction`, and the HTML phase never starts, which leaves the
/// site serving its old pages (the safety this order is for).
#[test]
fn managed_functions_go_out_after_the_assets_and_before_the_html() {
    let Some(server) = Server::moto() else { return };
    let moto = server.moto_server().expect("moto");
    let client = crate::cdn::cloudfront(&server);
    let files = [
        ("index.html", "<p>home</p>"),
        ("about/index.html", "<p>about</p>"),
        ("assets/app.1a2b3c4d.js", "console.log(1)"),
    ];
    let site = Site::with_config(&server, &files, "source: site\n", "");
    let id = crate::cdn::create_distribution(&client, &site.bucket, "");
    let config = format!(
        r#"
source: site
clean_urls: true
rules:
  - match: "assets/**"
    immutable: true
    cache_control: "public, max-age=31536000, immutable"
redirects:
  - {{ from: /old, to: /about }}
response_headers:
  - {{ match: "/*", headers: {{ X-Frame-Options: DENY }} }}
cloudfront:
  distribution_id: {id}
  endpoint_url: {}
  function: {{ name: site-edge, manage: true }}
"#,
        server.endpoint().url
    );
    site.write_config(&config);
    let function_requests = |recording: &[crate::servers::Recorded]| -> Vec<String> {
        recording
            .iter()
            .filter(|r| r.path().starts_with("/2020-05-31/function"))
            .map(|r| format!("{} {}", r.method, r.path()))
            .collect()
    };

    moto.start_recording();
    let dry = site.deploy().arg("--dryrun").success();
    moto.stop_recording();
    assert!(
        dry.stdout
            .contains("(dryrun) publish CloudFront Function site-edge (viewer-request, ")
            && dry
                .stdout
                .contains("(dryrun) publish CloudFront Function site-edge-response"),
        "{}",
        dry.stdout
    );
    let recording = moto.recording();
    assert!(
        function_requests(&recording).is_empty(),
        "{:?}",
        function_requests(&recording)
    );
    assert!(recording.iter().all(|r| !r.is_mutating()));

    moto.start_recording();
    let ran = site.deploy_json().run();
    moto.stop_recording();
    assert_eq!(ran.code(), Some(1), "{}\n{}", ran.stdout, ran.stderr);
    let report = ran.json();
    assert_eq!(
        report["errors"][0]["code"], "CloudFrontFunction",
        "{report:#}"
    );
    assert!(
        report["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("publishing CloudFront Function `site-edge` failed"),
        "{report:#}"
    );
    let recording = moto.recording();
    let order: Vec<String> = recording
        .iter()
        .filter_map(|r| {
            if r.path().starts_with("/2020-05-31/function") {
                Some(format!("{} function", r.method))
            } else {
                crate::deploy::object_key(r, &site.bucket)
                    .filter(|k| r.method == "PUT" && !k.starts_with(".hoist/"))
                    .map(|k| format!("PUT {k}"))
            }
        })
        .collect();
    let create = order
        .iter()
        .position(|r| r == "POST function")
        .unwrap_or_else(|| panic!("no CreateFunction: {order:?}"));
    let asset = order
        .iter()
        .position(|r| r == "PUT assets/app.1a2b3c4d.js")
        .unwrap_or_else(|| panic!("no asset upload: {order:?}"));
    assert!(asset < create, "{order:?}");
    assert!(
        !order
            .iter()
            .any(|r| r == "PUT index.html" || r == "PUT about/index.html"),
        "HTML written although the function was not published: {order:?}"
    );

    // What moto stored is exactly what `hoist edge build` writes.
    let out = site.root().join("edge");
    crate::util::Hoist::on(site.root(), &server.endpoint())
        .args(["edge", "build", "--out"])
        .arg(out.display().to_string())
        .success();
    let stored = crate::util::block_on(async {
        client
            .get_function()
            .name("site-edge")
            .send()
            .await
            .expect("GetFunction")
    });
    assert_eq!(
        stored.function_code().map(|b| b.as_ref().to_vec()),
        Some(std::fs::read(out.join("viewer-request.js")).unwrap())
    );
}

/// A managed function whose tables need a KeyValueStore is refused before any request that
/// changes anything (exit 2, naming the setting), since hoist does not yet fill the store.
#[test]
fn a_managed_function_that_needs_a_key_value_store_is_refused() {
    let Some(server) = Server::moto() else { return };
    let moto = server.moto_server().expect("moto");
    let redirects: String = (0..2000)
        .map(|i| format!("/old/page-{i} /new/page-{i} 301\n"))
        .collect();
    let site = Site::with_config(
        &server,
        &[("index.html", "<p>home</p>"), ("_redirects", &redirects)],
        "source: site\n",
        "",
    );
    site.write_config(&format!(
        "source: site\ncloudfront:\n  distribution_id: E123\n  endpoint_url: {}\n  function: {{ name: big, manage: true }}\n",
        server.endpoint().url
    ));
    moto.start_recording();
    let ran = site.deploy().run();
    moto.stop_recording();
    assert_eq!(ran.code(), Some(2), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("deploy.yaml cloudfront.function: manage: true cannot publish a function whose tables need a KeyValueStore (2000 entries)"),
        "{}",
        ran.stderr
    );
    assert!(moto.recording().iter().all(|r| !r.is_mutating()));
    assert!(site.contents().is_empty());
}

/// Releases of compressed pages: a page stored gzip-compressed and its variants are kept
/// for rollback under their own identity (not the source's digest, which the plain file
/// shares), and `hoist rollback` brings back bytes that decode to the first release's page,
/// with its Content-Encoding.
#[test]
fn rollback_restores_compressed_pages() {
    let Some(server) = Server::moto() else { return };
    let config = r#"
source: site
rules:
  - match: "*.html"
    cache_control: "no-cache"
    compress: variants
  - match: "**"
    compress: gzip
"#;
    let v1 = "<p>release one</p>\n".repeat(40);
    let site = Site::with_config(
        &server,
        &[("index.html", &v1), ("notes.txt", &"one\n".repeat(100))],
        config,
        "",
    );
    site.deploy().success();
    site.write("index.html", &"<p>release two</p>\n".repeat(40));
    site.write("notes.txt", &"two\n".repeat(100));
    site.deploy().success();
    assert_eq!(
        unbrotli(&site.contents()["index.html.br"]),
        "<p>release two</p>\n".repeat(40).as_bytes()
    );
    let report = crate::util::Hoist::on(site.root(), &server.endpoint())
        .args(["rollback", "--output", "json"])
        .success()
        .json();
    assert_eq!(report["release"]["restores"], 1, "{report:#}");
    let contents = site.contents();
    assert_eq!(contents["index.html"], v1.as_bytes());
    assert_eq!(gunzip(&contents["index.html.gz"]), v1.as_bytes());
    assert_eq!(unbrotli(&contents["index.html.br"]), v1.as_bytes());
    assert_eq!(
        gunzip(&contents["notes.txt"]),
        "one\n".repeat(100).as_bytes()
    );
    let client = site.client();
    assert_eq!(
        head(&client, &site.bucket, "notes.txt").content_encoding(),
        Some("gzip")
    );
    assert_eq!(
        head(&client, &site.bucket, "index.html.br").content_encoding(),
        Some("br")
    );
    assert_eq!(
        head(&client, &site.bucket, "index.html").content_encoding(),
        None
    );
}
