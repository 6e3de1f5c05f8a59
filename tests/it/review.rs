//! Issue #16, deploys a team can review: `--output markdown` and the GitHub job summary. The
//! report is read back with a real Markdown parser (markdown-it-py, CommonMark with tables,
//! as GitHub renders a comment) through `tests/support/markdown_shape.py`, so "well-formed"
//! means what a reader sees: every table parses as a table, every `<details>` closes, and each
//! listed key comes back from its code span byte for byte.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::backends::Server;
use crate::cdn::{cloudfront, create_distribution};
use crate::deploy::Site;

/// GitHub refuses a comment longer than this many characters.
const GITHUB_COMMENT_LIMIT: usize = 65_536;

const CONFIG: &str = r#"
source: site
rules:
  - match: "*.html"
    cache_control: "public, max-age=300"
  - match: "assets/**"
    cache_control: "public, max-age=31536000, immutable"
    immutable: true
  - match: "**"
    cache_control: "public, max-age=3600"
"#;

/// A key no Markdown writer that pastes keys as text survives: backtick, HTML, a table pipe
/// and emphasis.
const HOSTILE: &str = "a`b <i>|*.html";

/// What a reader of the rendered `markdown` sees (see the module doc).
fn shape(markdown: &str) -> Value {
    let python = crate::servers::venv_bin("python").unwrap_or_else(|| {
        panic!("python not found in the test virtualenv: run scripts/install-test-servers")
    });
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/markdown_shape.py"
    );
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("markdown_shape.py runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(markdown.as_bytes())
        .expect("write markdown");
    let output = child.wait_with_output().expect("markdown_shape.py ends");
    assert!(
        output.status.success(),
        "markdown_shape.py failed (is markdown-it-py installed? run scripts/install-test-servers): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("markdown_shape.py prints JSON")
}

/// The fold whose summary ends with `title`.
fn fold<'a>(shape: &'a Value, title: &str) -> &'a Value {
    shape["folds"]
        .as_array()
        .expect("folds")
        .iter()
        .find(|f| f["summary"].as_str().is_some_and(|s| s.ends_with(title)))
        .unwrap_or_else(|| panic!("no fold `{title}` in {shape:#}"))
}

/// The first code span of each item of a fold, without the closing `… and N more` item.
fn keys(fold: &Value) -> Vec<String> {
    fold["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|item| {
            !item["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("… and "))
        })
        .filter_map(|item| item["code"][0].as_str().map(str::to_string))
        .collect()
}

/// The plan of a 5,000-page change with an upload of every kind, a delete, a hashed asset
/// kept after it left the site and a CloudFront invalidation: one well-formed Markdown
/// document under GitHub's comment limit, the long lists folded and cut off with a count,
/// the same document appended to `$GITHUB_STEP_SUMMARY`, and counts equal to the JSON's.
#[test]
fn a_plan_in_markdown_is_well_formed_folded_and_fits_a_comment() {
    let Some(server) = Server::moto() else {
        return;
    };
    let v1 = [
        ("index.html", "<p>home</p>"),
        ("old.html", "<p>old</p>"),
        ("assets/app.1111.js", "app()"),
        ("assets/gone.2222.js", "gone()"),
        ("style.css", "body{}"),
    ];
    let site = Site::with_config(&server, &v1, CONFIG, "");
    let client = cloudfront(&server);
    let id = create_distribution(&client, &site.bucket, "");
    site.write_config(&format!(
        "{CONFIG}\ncloudfront:\n  distribution_id: {id}\n  endpoint_url: {}\n",
        server.endpoint().url
    ));
    site.deploy().success();

    std::fs::remove_file(site.source().join("old.html")).expect("rm old.html");
    std::fs::remove_file(site.source().join("assets/gone.2222.js")).expect("rm gone");
    site.write("index.html", "<p>home, again</p>");
    site.write(HOSTILE, "<p>hostile</p>");
    for i in 0..5000 {
        site.write(&format!("docs/page-{i:04}.html"), &format!("<p>{i}</p>"));
    }
    let summary = site.root().join("step-summary.md");
    std::fs::write(&summary, "# earlier step\n\n").expect("summary file");
    let ran = site
        .deploy()
        .args(["--dryrun", "--output", "markdown"])
        .env("GITHUB_STEP_SUMMARY", summary.display().to_string())
        .success();
    let markdown = ran.stdout.trim_end();
    assert!(
        markdown.chars().count() < GITHUB_COMMENT_LIMIT,
        "{} characters",
        markdown.chars().count()
    );
    let appended = std::fs::read_to_string(&summary).expect("read summary");
    assert_eq!(
        appended
            .strip_prefix("# earlier step\n\n")
            .map(str::trim_end),
        Some(markdown),
        "the job summary got another document (or lost what was there)"
    );

    let seen = shape(markdown);
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen:#}");
    assert_eq!(seen["open_details"], 0, "an unclosed <details>");
    let heading = seen["headings"][0].as_str().expect("heading");
    assert!(
        heading.contains("Deploy plan for") && heading.contains(&format!("s3://{}/", site.bucket)),
        "{heading}"
    );
    let table = &seen["tables"][0];
    assert_eq!(
        table[0],
        serde_json::json!([
            "phase",
            "uploads",
            "header updates",
            "deletes",
            "kept for rollback",
            "bytes"
        ])
    );
    let row = |name: &str| -> Vec<String> {
        table
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("no row {name:?} in {table:#}"))
            .as_array()
            .expect("cells")
            .iter()
            .map(|c| c.as_str().expect("cell").to_string())
            .collect()
    };
    // index.html, the hostile page and 5,000 new pages; old.html deleted; the two pages the
    // live release serves and this plan replaces or deletes kept for rollback.
    assert_eq!(row("3. HTML pages")[1], "5002");
    assert_eq!(row("4. deletes")[3], "1");
    assert_eq!(row("0. keep the live pages for rollback")[4], "2");

    assert_eq!(keys(fold(&seen, "to delete")), ["old.html"]);
    assert_eq!(
        keys(fold(&seen, "kept after leaving the site")),
        ["assets/gone.2222.js"]
    );
    let uploads = fold(&seen, "to upload");
    assert_eq!(uploads["summary"], "5002 to upload");
    let listed = keys(uploads);
    assert_eq!(
        listed[0], HOSTILE,
        "the hostile key did not survive its code span"
    );
    assert_eq!(listed[1], "docs/page-0000.html");
    assert!(listed.len() < 5002, "the upload list was not cut off");
    let last = uploads["items"]
        .as_array()
        .expect("items")
        .last()
        .expect("item");
    let more = 5002 - (listed.len());
    assert!(
        last["text"]
            .as_str()
            .is_some_and(|t| t.contains(&format!("and {more} more"))),
        "{last}"
    );
    assert!(!keys(fold(&seen, "paths to invalidate")).is_empty());

    // The same counts as the JSON document.
    let json = site.deploy_json().arg("--dryrun").success().json();
    assert_eq!(json["summary"]["uploaded"], 5002);
    assert_eq!(json["summary"]["deleted"], 1);
    assert_eq!(json["summary"]["kept"], 1);
    let sentence = seen["paragraphs"][0].as_str().expect("sentence");
    assert!(
        sentence.starts_with("Would upload 5002 (") && sentence.contains("delete 1; 2 unchanged"),
        "{sentence}"
    );

    // `hoist releases --output markdown`: one table row per release, the live one marked.
    let ran = crate::util::Hoist::on(site.root(), &server.endpoint())
        .args(["releases", "--output", "markdown"])
        .success();
    let releases = shape(&ran.stdout);
    let table = &releases["tables"][0];
    assert_eq!(table[0][0], "release", "{releases:#}");
    assert_eq!(table[1][0], "1 (live)", "{releases:#}");
    assert_eq!(table.as_array().map(Vec::len), Some(2), "{releases:#}");
}

/// A plan the delete guard refuses: exit 1 as in every output, nothing changed, and the
/// report names the guard: the dry run's (the one a pull request shows) with the refused plan
/// in it, the real run's in the job summary beside human output. `--no-step-summary` writes
/// no summary.
#[test]
fn a_refused_deploy_in_markdown_names_the_guard() {
    let Some(server) = Server::moto() else {
        return;
    };
    let site = Site::with_config(&server, &[("index.html", "home")], CONFIG, "");
    for i in 0..4 {
        site.put(&format!("stale/{i}.html"), "old");
    }
    site.write_config(&format!("{CONFIG}\nmax_deletes: 2\n"));
    let before = site.contents();
    let ran = site
        .deploy()
        .args(["--dryrun", "--output", "markdown"])
        .run()
        .exit(1);
    assert!(ran.stderr.contains("max_deletes (2)"), "{}", ran.stderr);
    let seen = shape(&ran.stdout);
    assert_eq!(seen["open_details"], 0);
    let heading = seen["headings"][0].as_str().expect("heading");
    assert!(heading.contains("Deploy refused"), "{heading}");
    assert!(ran.stdout.contains("**TooManyDeletes**"), "{}", ran.stdout);
    assert_eq!(keys(fold(&seen, "to delete")).len(), 4, "{seen:#}");
    assert_eq!(site.contents(), before, "a refused plan changed the bucket");

    let summary = site.root().join("summary.md");
    let ran = site
        .deploy()
        .env("GITHUB_STEP_SUMMARY", summary.display().to_string())
        .run()
        .exit(1);
    assert!(
        !ran.stdout.contains("###"),
        "human output got Markdown: {}",
        ran.stdout
    );
    let written = std::fs::read_to_string(&summary).expect("the job summary was written");
    assert!(
        written.contains("Deploy refused") && written.contains("TooManyDeletes"),
        "{written}"
    );

    std::fs::remove_file(&summary).expect("rm summary");
    site.deploy()
        .arg("--no-step-summary")
        .env("GITHUB_STEP_SUMMARY", summary.display().to_string())
        .run()
        .exit(1);
    assert!(!summary.exists(), "--no-step-summary wrote the summary");
    assert_eq!(site.contents(), before);
}

/// A rule set with one of every mistake the lint knows, each on files that show it.
const LINT_CONFIG: &str = r#"
source: site
rules:
  - match: "**/*.html"
    cache_control: "public, max-age=31536000"
  - match: "assets/**"
    cache_control: "public, max-age=31536000, immutable"
    immutable: true
  - match: "static/**"
    cache_control: "public, max-age=60"
  - match: "data/*.json"
    content_encoding: gzip
  - match: "*.wasm"
    content_type: "application/octet-stream"
  - match: "*.txt"
    content_type: "text/plain"
  - match: "assets/*.svg"
    cache_control: "public, max-age=60"
  - match: "*.woff3"
    cache_control: "public, max-age=60"
"#;

const LINT_FILES: &[(&str, &str)] = &[
    ("index.html", "<p>home</p>"),
    ("docs/index.html", "<p>docs</p>"),
    ("assets/index-BkXr3f9a.js", "app()"),
    ("assets/logo.svg", "<svg/>"),
    ("static/app-Dk3jR9aZ.js", "chunk()"),
    ("data/x.json", "{\"plain\": true}"),
    ("app.wasm", "\0asm"),
    ("robots.txt", "User-agent: *"),
];

/// (check, file or rule the finding names, rule label) for each mistake of [`LINT_CONFIG`].
const EXPECTED: &[(&str, &str, &str)] = &[
    (
        "long-cache-entry-point",
        "`docs/index.html` and 1 more file(s)",
        "rules[0] \"**/*.html\"",
    ),
    (
        "immutable-without-hash",
        "`assets/logo.svg`",
        "rules[1] \"assets/**\"",
    ),
    (
        "hash-without-long-cache",
        "`static/app-Dk3jR9aZ.js`",
        "rules[2] \"static/**\"",
    ),
    (
        "encoding-mismatch",
        "`data/x.json`",
        "rules[3] \"data/*.json\"",
    ),
    ("web-type", "`app.wasm`", "rules[4] \"*.wasm\""),
    ("charset", "`robots.txt`", "rules[5] \"*.txt\""),
    (
        "rule-shadowed",
        "`assets/logo.svg`",
        "rules[6] \"assets/*.svg\"",
    ),
    ("rule-unused", "matches no file", "rules[7] \"*.woff3\""),
];

/// By default each lint finding is a warning that names the check, the file (and how many
/// more), the rule and the fix, and the deploy goes on; the standard fixture has none.
#[test]
fn lint_findings_name_the_file_the_rule_and_the_fix() {
    let Some(server) = Server::moto() else {
        return;
    };
    let site = Site::with_config(&server, LINT_FILES, LINT_CONFIG, "");
    let ran = site.deploy().arg("--dryrun").success();
    for (check, what, rule) in EXPECTED {
        let line = ran
            .stderr
            .lines()
            .find(|l| l.contains(&format!("lint {check}:")))
            .unwrap_or_else(|| panic!("no `{check}` finding in:\n{}", ran.stderr));
        assert!(
            line.contains(what) && line.contains(rule),
            "{check}: {line}"
        );
        assert!(line.contains("; fix: "), "{check} says no fix: {line}");
    }
    let lints = ran.stderr.lines().filter(|l| l.contains("lint ")).count();
    assert_eq!(lints, EXPECTED.len(), "{}", ran.stderr);
    let json = site.deploy_json().arg("--dryrun").success().json();
    let warnings = json["warnings"].as_array().expect("warnings");
    assert_eq!(
        warnings
            .iter()
            .filter(|w| w.as_str().is_some_and(|w| w.starts_with("lint ")))
            .count(),
        EXPECTED.len(),
        "{json:#}"
    );

    let good = Site::new(&server, crate::deploy::FILES);
    let ran = good.deploy().arg("--dryrun").success();
    assert!(
        !ran.stderr.contains("lint "),
        "false positives: {}",
        ran.stderr
    );
}

/// With `--strict` or `lint: {strict: true}`, any finding refuses the deploy with exit 1
/// and no mutating request (moto's recorder); `lint.allow` silences checks by name, and a
/// name it does not know is a config error.
#[test]
fn strict_lint_refuses_before_any_change() {
    let Some(server) = Server::moto() else {
        return;
    };
    let moto = server.moto_server().expect("moto");
    let site = Site::with_config(&server, LINT_FILES, LINT_CONFIG, "");
    moto.start_recording();
    let ran = site.deploy_json().arg("--strict").run().exit(1);
    moto.stop_recording();
    let mutating: Vec<String> = moto
        .recording()
        .iter()
        .filter(|r| r.is_mutating())
        .map(|r| format!("{} {}", r.method, r.url))
        .collect();
    assert_eq!(
        mutating,
        Vec::<String>::new(),
        "strict lint still changed the bucket"
    );
    assert!(
        ran.stderr.contains("lint is strict; nothing was changed"),
        "{}",
        ran.stderr
    );
    let json = ran.json();
    assert_eq!(json["status"], "refused");
    let errors = json["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), EXPECTED.len(), "{json:#}");
    assert!(errors.iter().all(|e| e["code"] == "LintFailed"), "{json:#}");
    assert!(site.contents().is_empty());

    site.write_config(&format!("{LINT_CONFIG}\nlint:\n  strict: true\n"));
    site.deploy().run().exit(1);
    let all: Vec<String> = EXPECTED
        .iter()
        .map(|(c, _, _)| format!("    - {c}\n"))
        .collect();
    site.write_config(&format!(
        "{LINT_CONFIG}\nlint:\n  strict: true\n  allow:\n{}",
        all.concat()
    ));
    let ran = site.deploy().success();
    assert!(!ran.stderr.contains("lint "), "{}", ran.stderr);
    let published = site
        .contents()
        .into_keys()
        .filter(|k| !k.starts_with(".hoist/"))
        .count();
    assert_eq!(published, LINT_FILES.len());

    site.write_config(&format!("{LINT_CONFIG}\nlint:\n  allow: [charsets]\n"));
    let ran = site.deploy().run().exit(2);
    assert!(
        ran.stderr
            .contains("unknown lint check `charsets`, expected one of"),
        "{}",
        ran.stderr
    );
}

const VERIFY_CONFIG: &str = r#"
source: site
exclude: ["assets/missing*"]
rules:
  - match: "*.html"
    cache_control: "public, max-age=0, must-revalidate"
  - match: "assets/**"
    cache_control: "public, max-age=31536000, immutable"
    immutable: true
"#;

/// A page referencing a script, a stylesheet (which references a font) and, from a second
/// page, the same script again.
fn verify_build(script: &str) -> Vec<(String, String)> {
    vec![
        (
            "index.html".into(),
            format!(
                "<html><head><link rel=\"stylesheet\" href=\"assets/style.3c1d2e4f.css\">\
                 <script type=\"module\" src=\"{script}\"></script></head>\
                 <body><a href=\"about/\">about</a></body></html>"
            ),
        ),
        (
            "about/index.html".into(),
            format!("<html><script src=\"../{script}\"></script></html>"),
        ),
        ("assets/app.5e6f7a8b.js".into(), "app()".into()),
        (
            "assets/style.3c1d2e4f.css".into(),
            "@font-face{src:url(font.9a8b7c6d.woff2)}".into(),
        ),
        ("assets/font.9a8b7c6d.woff2".into(), "wOF2".into()),
        (
            "assets/missing.1a2b3c4d.js".into(),
            "never published".into(),
        ),
    ]
}

/// The requests `verify:` sent (its user agent), as `METHOD key?query`.
fn verify_requests(moto: &crate::servers::Moto, bucket: &str) -> Vec<String> {
    let mut seen: Vec<String> = moto
        .recording()
        .iter()
        .filter(|r| {
            r.header("user-agent")
                .is_some_and(|ua| ua.ends_with("(verify)"))
        })
        .map(|r| {
            let key = r
                .path()
                .strip_prefix(&format!("/{bucket}/"))
                .unwrap_or("?")
                .to_string();
            let query = r.query();
            if query.is_empty() {
                format!("{} {key}", r.method)
            } else {
                format!(
                    "{} {key}?{}",
                    r.method,
                    query.split('=').next().unwrap_or("")
                )
            }
        })
        .collect();
    seen.sort();
    seen
}

/// `verify:` against the bucket itself (moto serves anonymous GETs with the stored headers):
/// a good build passes with one GET per changed page and one request per referenced asset,
/// and its stale page is deleted after; a page referencing an asset the build excluded, or
/// an asset whose Content-Type was changed behind hoist's back, fails verification with
/// exit 1 and nothing deleted.
#[test]
fn verify_checks_the_live_pages_before_anything_is_deleted() {
    let Some(server) = Server::moto() else {
        return;
    };
    let moto = server.moto_server().expect("moto");
    let first = [("index.html", "<p>v1</p>"), ("old.html", "<p>old</p>")];
    let site = Site::with_config(&server, &first, VERIFY_CONFIG, "");
    moto.allow_public_read(&site.bucket);
    site.deploy().success();
    let config = format!(
        "{VERIFY_CONFIG}\nverify:\n  base_url: {}/{}\n",
        server.endpoint().url,
        site.bucket
    );
    site.write_config(&config);

    // A good build.
    std::fs::remove_file(site.source().join("old.html")).expect("rm old.html");
    for (path, body) in verify_build("assets/app.5e6f7a8b.js") {
        site.write(&path, &body);
    }
    moto.start_recording();
    let ran = site.deploy().success();
    moto.stop_recording();
    assert!(
        ran.stderr.contains("verified 2 page(s) and 3 asset(s)"),
        "{}",
        ran.stderr
    );
    assert_eq!(
        verify_requests(moto, &site.bucket),
        [
            "GET about/index.html?hoist-verify",
            "GET assets/app.5e6f7a8b.js",
            "GET assets/font.9a8b7c6d.woff2",
            "GET assets/style.3c1d2e4f.css",
            "GET index.html?hoist-verify",
        ]
    );
    assert!(
        !site.contents().contains_key("old.html"),
        "the stale page outlived a good build"
    );

    // A page that needs an asset the build excluded (so it was never uploaded).
    site.write("stale.html", "<p>stale</p>");
    site.deploy().success();
    std::fs::remove_file(site.source().join("stale.html")).expect("rm stale.html");
    site.write(
        "index.html",
        "<html><script src=\"assets/missing.1a2b3c4d.js\"></script></html>",
    );
    let ran = site.deploy_json().run().exit(1);
    assert!(
        ran.stderr
            .contains("assets/missing.1a2b3c4d.js (from index.html): answered 404"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("hoist rollback"), "{}", ran.stderr);
    let json = ran.json();
    assert_eq!(json["errors"][0]["code"], "VerifyFailed", "{json:#}");
    assert!(
        site.contents().contains_key("stale.html"),
        "a failed verification deleted"
    );

    // An asset whose Content-Type another tool changed (the manifest still vouches for it).
    site.write(
        "index.html",
        "<html><script src=\"assets/app.5e6f7a8b.js\"></script></html>",
    );
    let client = site.client();
    crate::util::block_on(async {
        client
            .copy_object()
            .bucket(&site.bucket)
            .key("assets/app.5e6f7a8b.js")
            .copy_source(format!("{}/assets/app.5e6f7a8b.js", site.bucket))
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .content_type("text/plain")
            .send()
            .await
            .expect("copy");
    });
    let ran = site.deploy().run().exit(1);
    assert!(
        ran.stderr
            .contains("Content-Type `text/plain`, the plan gave it `text/javascript"),
        "{}",
        ran.stderr
    );
    assert!(
        site.contents().contains_key("stale.html"),
        "a failed verification deleted"
    );
}

/// The object keys of mutating requests (a DeleteObjects counts each key it names), without
/// the lock's, sorted: `PUT key`, `COPY key`, `DELETE key`.
fn mutations(moto: &crate::servers::Moto, bucket: &str) -> Vec<String> {
    let mut out = Vec::new();
    for r in moto.recording().iter().filter(|r| r.is_mutating()) {
        let key = r
            .path()
            .strip_prefix(&format!("/{bucket}/"))
            .unwrap_or("")
            .to_string();
        if key == ".hoist/lock.json" {
            continue;
        }
        if r.is_delete_objects() {
            for part in r.body.split("<Key>").skip(1) {
                let name = part.split("</Key>").next().unwrap_or("");
                out.push(format!("DELETE {name}"));
            }
        } else if r.is_copy() {
            out.push(format!("COPY {key}"));
        } else {
            out.push(format!("{} {key}", r.method));
        }
    }
    out.sort();
    out
}

/// `deploy --dryrun --plan-out` then `apply`: the reviewed plan runs with exactly the
/// mutating requests a plain deploy of the same change sends (moto's recorder, beside a twin
/// bucket); after one source file or one bucket object changes, `apply` refuses, naming the
/// key, and sends no mutating request; a plan for another target or from a newer hoist is
/// refused with a message that says so.
#[test]
fn apply_runs_exactly_the_reviewed_plan_or_nothing() {
    let Some(server) = Server::moto() else {
        return;
    };
    let moto = server.moto_server().expect("moto");
    let v1 = [
        ("index.html", "<p>v1</p>"),
        ("old.html", "<p>old</p>"),
        ("assets/app.1a2b3c4d.js", "v1()"),
    ];
    let change = |site: &Site| {
        site.write("index.html", "<p>v2</p>");
        site.write("new.html", "<p>new</p>");
        std::fs::remove_file(site.source().join("old.html")).expect("rm old.html");
    };
    // The twin: the same change by a plain deploy, for the requests it sends.
    let twin = Site::with_config(&server, &v1, CONFIG, "");
    twin.deploy().success();
    change(&twin);
    moto.start_recording();
    twin.deploy().success();
    moto.stop_recording();
    let plain = mutations(moto, &twin.bucket);
    assert!(plain.contains(&"DELETE old.html".to_string()), "{plain:?}");

    let site = Site::with_config(&server, &v1, CONFIG, "");
    site.deploy().success();
    change(&site);
    let plan = site.root().join("plan.json");
    let ran = site
        .deploy()
        .args(["--dryrun", "--plan-out", &plan.display().to_string()])
        .success();
    assert!(ran.stderr.contains("saved the plan to"), "{}", ran.stderr);
    moto.start_recording();
    crate::util::Hoist::on(site.root(), &server.endpoint())
        .args(["apply", &plan.display().to_string()])
        .success();
    moto.stop_recording();
    let applied = mutations(moto, &site.bucket);
    // Release records and kept bytes are named by content and time; compare the rest.
    let comparable = |m: &[String]| -> Vec<String> {
        m.iter()
            .filter(|l| !l.contains(".hoist/releases/") && !l.contains(".hoist/objects/"))
            .cloned()
            .collect()
    };
    assert_eq!(comparable(&applied), comparable(&plain));
    assert_eq!(applied.len(), plain.len(), "{applied:?} vs {plain:?}");
    let published = |site: &Site| {
        let mut contents = site.contents();
        contents.retain(|k, _| !k.starts_with(".hoist/"));
        contents
    };
    assert_eq!(published(&site), published(&twin));

    // Refusals: each sends no mutating request but the lock's.
    let refused = |what: &str, expect: &str| {
        moto.start_recording();
        let ran = crate::util::Hoist::on(site.root(), &server.endpoint())
            .args(["apply", &plan.display().to_string(), "--output", "json"])
            .run()
            .exit(1);
        moto.stop_recording();
        assert_eq!(
            mutations(moto, &site.bucket),
            Vec::<String>::new(),
            "{what}"
        );
        assert!(ran.stderr.contains(expect), "{what}: {}", ran.stderr);
        assert_eq!(ran.json()["status"], "refused", "{what}");
    };
    let again = |site: &Site| {
        site.deploy()
            .args(["--dryrun", "--plan-out", &plan.display().to_string()])
            .success();
    };
    site.write("index.html", "<p>v3</p>");
    again(&site);
    site.write("index.html", "<p>v3, edited after the review</p>");
    refused(
        "a source file changed",
        "source file `index.html`: content changed",
    );
    again(&site);
    site.put("new.html", "changed by another tool");
    refused(
        "a bucket object changed",
        "bucket object `new.html`: changed (size or ETag)",
    );

    let mut other: Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).expect("plan")).expect("json");
    other["target"] = Value::from("s3://another-bucket/");
    std::fs::write(&plan, other.to_string()).expect("write plan");
    refused(
        "another target",
        "the plan was made for s3://another-bucket/",
    );
    other["format"] = Value::from(99);
    std::fs::write(&plan, other.to_string()).expect("write plan");
    let ran = crate::util::Hoist::on(site.root(), &server.endpoint())
        .args(["apply", &plan.display().to_string()])
        .run()
        .exit(2);
    assert!(
        ran.stderr.contains("written by a newer hoist"),
        "{}",
        ran.stderr
    );
}

/// Every key of the bucket under `prefix`.
fn keys_under(site: &Site, prefix: &str) -> Vec<String> {
    site.all_contents()
        .into_keys()
        .filter(|k| k.starts_with(prefix))
        .collect()
}

/// `deploy --preview NAME`: the production site's hashed assets are server-side copied into
/// `_previews/NAME/` (CopyObject, not PutObject), nothing outside that prefix is written, and
/// the report prints the preview's address; a production deploy after it leaves every preview
/// key alone; `previews prune NAME` and `previews prune --older-than` delete exactly one
/// preview's keys (moto's recorder), through the guard and the dry run.
#[test]
fn previews_copy_production_assets_and_prune_exactly_their_keys() {
    let Some(server) = Server::moto() else {
        return;
    };
    let moto = server.moto_server().expect("moto");
    let config = format!("{CONFIG}\npreviews:\n  url: \"https://{{name}}.preview.example.com/\"\n");
    let v1 = [
        ("index.html", "<p>v1</p>"),
        ("assets/app.1a2b3c4d.js", "app()"),
        ("assets/vendor.5e6f7a8b.js", "vendor()"),
    ];
    let site = Site::with_config(&server, &v1, &config, "");
    site.deploy().success();
    site.write("index.html", "<p>pull request</p>");
    site.write("assets/new.9a9b9c9d.js", "new()");

    moto.start_recording();
    let ran = site.deploy().args(["--preview", "pr-7"]).success();
    moto.stop_recording();
    assert!(
        ran.stdout
            .contains("preview pr-7 at https://pr-7.preview.example.com/"),
        "{}",
        ran.stdout
    );
    let recording = moto.recording();
    let writes: Vec<&crate::servers::Recorded> =
        recording.iter().filter(|r| r.is_mutating()).collect();
    let outside: Vec<String> = writes
        .iter()
        .map(|r| r.path())
        .filter(|p| !p.starts_with(&format!("/{}/_previews/pr-7/", site.bucket)))
        .collect();
    assert_eq!(
        outside,
        Vec::<String>::new(),
        "a preview wrote outside its prefix"
    );
    for asset in ["assets/app.1a2b3c4d.js", "assets/vendor.5e6f7a8b.js"] {
        let to = format!("/{}/_previews/pr-7/{asset}", site.bucket);
        let sent: Vec<&&crate::servers::Recorded> =
            writes.iter().filter(|r| r.path() == to).collect();
        assert_eq!(sent.len(), 1, "{asset}: {sent:?}");
        assert!(sent[0].is_copy(), "{asset} was uploaded, not copied");
        let source = sent[0].header("x-amz-copy-source").expect("copy source");
        assert!(
            source.ends_with(&format!("{}/{asset}", site.bucket)),
            "{source}"
        );
    }
    let new = format!("/{}/_previews/pr-7/assets/new.9a9b9c9d.js", site.bucket);
    assert!(
        writes.iter().any(|r| r.path() == new && !r.is_copy()),
        "an asset production lacks must be uploaded"
    );
    let copied = crate::util::head(
        &site.client(),
        &site.bucket,
        "_previews/pr-7/assets/app.1a2b3c4d.js",
    );
    assert_eq!(
        copied.cache_control(),
        Some("public, max-age=31536000, immutable"),
        "the copy keeps the rule's headers"
    );

    // A second preview, then production deploys (and deletes a stale asset of its own).
    site.deploy().args(["--preview", "pr-8"]).success();
    let pr7 = keys_under(&site, "_previews/pr-7/");
    let pr8 = keys_under(&site, "_previews/pr-8/");
    assert!(
        pr7.contains(&"_previews/pr-7/.hoist/manifest.json".to_string()),
        "{pr7:?}"
    );
    std::fs::remove_file(site.source().join("assets/vendor.5e6f7a8b.js")).expect("rm vendor");
    site.write_config(&format!(
        "{config}\nkeep_stale_for: 0s\nreleases:\n  keep: 0\n"
    ));
    moto.start_recording();
    let ran = site.deploy().success();
    moto.stop_recording();
    assert!(!ran.stderr.contains("another hoist site"), "{}", ran.stderr);
    assert!(
        moto.recording()
            .iter()
            .filter(|r| r.is_mutating())
            .all(|r| !r.path().contains("/_previews/") && !r.body.contains("_previews/")),
        "a production deploy touched a preview"
    );
    assert_eq!(keys_under(&site, "_previews/pr-7/"), pr7);
    assert_eq!(keys_under(&site, "_previews/pr-8/"), pr8);
    site.write_config(&config);

    let list = crate::util::Hoist::on(site.root(), &server.endpoint())
        .args(["previews", "list", "--output", "json"])
        .success()
        .json();
    let names: Vec<&str> = list["previews"]
        .as_array()
        .expect("previews")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["pr-7", "pr-8"]);

    let previews = |args: &[&str]| {
        crate::util::Hoist::on(site.root(), &server.endpoint())
            .arg("previews")
            .args(args)
    };
    let dry = previews(&["prune", "pr-7", "--dryrun"]).success();
    assert_eq!(
        dry.stdout.matches("(dryrun) delete").count(),
        pr7.len(),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("(dryrun) would prune"),
        "{}",
        dry.stdout
    );
    assert_eq!(
        keys_under(&site, "_previews/pr-7/"),
        pr7,
        "a dry run deleted"
    );
    previews(&["prune", "--older-than", "1d"]).success();
    assert_eq!(
        keys_under(&site, "_previews/pr-7/"),
        pr7,
        "a fresh preview was pruned"
    );

    let before = site.all_contents();
    moto.start_recording();
    let pruned = previews(&["prune", "pr-7"]).success();
    assert!(pruned.stdout.contains("pruned s3://"), "{}", pruned.stdout);
    moto.stop_recording();
    let deleted = mutations(moto, &site.bucket)
        .into_iter()
        .filter_map(|m| m.strip_prefix("DELETE ").map(str::to_string))
        .collect::<std::collections::BTreeSet<_>>();
    // Its keys, and the lock prune itself took on the preview.
    let mut expected_deletes: std::collections::BTreeSet<String> = pr7.iter().cloned().collect();
    expected_deletes.insert("_previews/pr-7/.hoist/lock.json".into());
    assert_eq!(deleted, expected_deletes, "prune deleted other keys");
    let mut expected = before;
    expected.retain(|k, _| !k.starts_with("_previews/pr-7/"));
    assert_eq!(site.all_contents(), expected);

    // Expired (here: older than 0s): exactly pr-8's keys go, once the delete guard is
    // overridden (`max_deletes: 2` refuses its 6 keys, changing nothing).
    site.write_config(&format!("{config}\nmax_deletes: 2\n"));
    let refused = previews(&["prune", "--older-than", "0s"]).run().exit(1);
    assert!(
        refused.stderr.contains("max_deletes (2)"),
        "{}",
        refused.stderr
    );
    assert_eq!(keys_under(&site, "_previews/pr-8/"), pr8);
    previews(&["prune", "--older-than", "0s", "--force"]).success();
    assert_eq!(keys_under(&site, "_previews/"), Vec::<String>::new());
    assert!(site.contents().contains_key("index.html"));
    let missing = previews(&["prune", "pr-9"]).run().exit(1);
    assert!(
        missing.stderr.contains("no preview `pr-9`"),
        "{}",
        missing.stderr
    );
}
