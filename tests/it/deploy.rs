//! `hoist deploy` end to end against moto_server and rclone serve s3: the measurable
//! requirements of issue #2. Ordering, no-op and dry-run claims are proved from moto's request
//! recording; content and headers by reading the bucket back with the SDK.

use std::path::{Path, PathBuf};

use crate::backends::{Server, for_servers};
use crate::servers::Recorded;
use crate::util::{Hoist, Ran, bucket_contents, fresh_bucket, head, put_object, write_tree};

pub const CONFIG: &str = r#"
source: site
exclude: ["*.map"]
rules:
  - match: "*.html"
    cache_control: "public, max-age=300, must-revalidate"
    content_type: "text/html; charset=utf-8"
  - match: "static/**"
    cache_control: "public, max-age=31536000, immutable"
    immutable: true
    metadata: { team: web }
  - match: "**"
    cache_control: "public, max-age=3600"
"#;

pub const FILES: &[(&str, &str)] = &[
    ("index.html", "<html>home</html>"),
    ("about/index.html", "<html>about</html>"),
    ("docs/guide/index.html", "<html>guide</html>"),
    ("static/app.3f2a1c.js", "console.log(1)"),
    ("static/style.9b8e7d.css", "body{}"),
    ("static/app.3f2a1c.js.map", "{}"),
    ("images/logo.svg", "<svg/>"),
    ("robots.txt", "User-agent: *"),
];

/// A site on disk and the bucket it deploys to.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub bucket: String,
    pub prefix: String,
    endpoint: crate::util::Endpoint,
    /// rclone serve s3 ignores conditional writes, so hoist refuses to lock there: the rclone
    /// cases of tests about other things run with `lock: false` (the refusal itself is tested
    /// in `releases.rs`).
    lock: bool,
}

impl Site {
    pub fn new(server: &Server, files: &[(&str, &str)]) -> Site {
        Site::with_config(server, files, CONFIG, "")
    }

    pub fn with_config(
        server: &Server,
        files: &[(&str, &str)],
        config: &str,
        prefix: &str,
    ) -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        let bucket = fresh_bucket(server.name());
        server.create_bucket(&bucket);
        write_tree(&dir.path().join("site"), files);
        std::fs::create_dir_all(dir.path().join("site")).expect("site dir");
        let site = Site {
            dir,
            bucket,
            prefix: prefix.to_string(),
            endpoint: server.endpoint(),
            lock: server.name() != "rclone",
        };
        site.write_config(config);
        site
    }

    pub fn write_config(&self, config: &str) {
        self.write_config_with_prefix(config, &self.prefix);
    }

    /// deploy.yaml for another prefix of the same bucket.
    pub fn write_config_with_prefix(&self, config: &str, prefix: &str) {
        let mut full = format!(
            "{config}\ntarget: s3://{}/{}\nendpoint_url: {}\n",
            self.bucket, prefix, self.endpoint.url
        );
        if !self.lock {
            full.push_str("lock: false\n");
        }
        std::fs::write(self.dir.path().join("deploy.yaml"), full).expect("deploy.yaml");
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn source(&self) -> PathBuf {
        self.dir.path().join("site")
    }

    pub fn write(&self, path: &str, content: &str) {
        write_tree(&self.source(), &[(path, content)]);
    }

    pub fn deploy(&self) -> Hoist {
        Hoist::on(self.root(), &self.endpoint).arg("deploy")
    }

    pub fn deploy_json(&self) -> Hoist {
        self.deploy().args(["--output", "json"])
    }

    pub fn client(&self) -> aws_sdk_s3::Client {
        self.endpoint.client()
    }

    /// The bucket as a site: every key, the manifest included, but not the release
    /// lifecycle's records and kept bytes (`.hoist/releases/`, `.hoist/objects/`).
    pub fn contents(&self) -> std::collections::BTreeMap<String, Vec<u8>> {
        let mut contents = self.all_contents();
        contents
            .retain(|key, _| !key.contains(".hoist/releases/") && !key.contains(".hoist/objects/"));
        contents
    }

    /// Every key of the bucket.
    pub fn all_contents(&self) -> std::collections::BTreeMap<String, Vec<u8>> {
        bucket_contents(&self.client(), &self.bucket)
    }

    pub fn put(&self, key: &str, body: &str) {
        put_object(&self.client(), &self.bucket, key, body);
    }
}

fn keys(ran: &Ran) -> Vec<(String, String, String)> {
    ran.actions()
        .into_iter()
        .map(|(op, key, reason, _, _)| (op, key, reason))
        .collect()
}

fn triple(op: &str, key: &str, reason: &str) -> (String, String, String) {
    (op.into(), key.into(), reason.into())
}

/// The object key a recorded path-style request names, if it names one in `bucket`.
pub fn object_key(request: &Recorded, bucket: &str) -> Option<String> {
    let path = request.path();
    let rest = path.strip_prefix(&format!("/{bucket}/"))?;
    (!rest.is_empty()).then(|| rest.to_string())
}

/// Uploads in order (PutObject and multipart parts, not copies), as object keys.
pub fn uploads(recording: &[Recorded], bucket: &str) -> Vec<String> {
    recording
        .iter()
        .filter(|r| r.method == "PUT" && !r.is_copy())
        .filter_map(|r| object_key(r, bucket))
        .collect()
}

for_servers!(
    headers_follow_rules,
    one_change_reuploads_one_file,
    stale_keys_deleted_and_guarded,
    keys_round_trip_exactly,
    prefix_never_touches_neighbours,
    second_deploy_is_a_noop,
);

fn headers_follow_rules(server: &Server) {
    let site = Site::new(server, FILES);
    site.deploy().success();
    let client = site.client();
    let cases = [
        (
            "index.html",
            "public, max-age=300, must-revalidate",
            "text/html; charset=utf-8",
            None,
        ),
        (
            "docs/guide/index.html",
            "public, max-age=300, must-revalidate",
            "text/html; charset=utf-8",
            None,
        ),
        (
            "static/app.3f2a1c.js",
            "public, max-age=31536000, immutable",
            "text/javascript; charset=utf-8",
            Some("web"),
        ),
        (
            "static/style.9b8e7d.css",
            "public, max-age=31536000, immutable",
            "text/css; charset=utf-8",
            Some("web"),
        ),
        (
            "images/logo.svg",
            "public, max-age=3600",
            "image/svg+xml; charset=utf-8",
            None,
        ),
        (
            "robots.txt",
            "public, max-age=3600",
            "text/plain; charset=utf-8",
            None,
        ),
    ];
    for (key, cache_control, content_type, team) in cases {
        let object = head(&client, &site.bucket, key);
        assert_eq!(object.cache_control(), Some(cache_control), "{key}");
        assert_eq!(object.content_type(), Some(content_type), "{key}");
        let metadata = object.metadata().cloned().unwrap_or_default();
        assert_eq!(metadata.get("team").map(String::as_str), team, "{key}");
        let content = FILES.iter().find(|(k, _)| *k == key).expect("fixture").1;
        assert_eq!(
            metadata.get("hoist-blake3").map(String::as_str),
            Some(blake3::hash(content.as_bytes()).to_hex().as_str()),
            "{key}"
        );
    }
    // Excluded files are never uploaded; the manifest is there.
    let contents = site.contents();
    assert!(!contents.contains_key("static/app.3f2a1c.js.map"));
    assert!(contents.contains_key(".hoist/manifest.json"));
    assert_eq!(contents.len(), FILES.len() - 1 + 1);
}

fn second_deploy_is_a_noop(server: &Server) {
    let site = Site::new(server, FILES);
    site.deploy().success();
    let before = site.contents();
    let ran = site.deploy_json().success();
    assert!(ran.actions().is_empty(), "{}", ran.stdout);
    let summary = &ran.json()["summary"];
    assert_eq!(summary["unchanged"], FILES.len() - 1);
    assert_eq!(summary["uploaded"], 0);
    assert_eq!(site.contents(), before);
}

#[test]
fn noop_deploy_sends_only_the_listing_and_one_get() {
    let Some(server) = Server::moto() else { return };
    let moto = server.moto_server().expect("moto");
    let site = Site::new(&server, FILES);
    site.deploy().success();
    moto.start_recording();
    site.deploy().success();
    moto.stop_recording();
    let recording = moto.recording();
    let described: Vec<String> = recording
        .iter()
        .map(|r| format!("{} {}", r.method, r.url))
        .collect();
    assert!(!recording.is_empty(), "the recorder saw nothing");
    let lists = recording
        .iter()
        .filter(|r| r.method == "GET" && r.query().contains("list-type=2"))
        .count();
    let gets: Vec<_> = recording
        .iter()
        .filter(|r| r.method == "GET" && object_key(r, &site.bucket).is_some())
        .collect();
    // The lock: created, the check that a second create fails, released.
    let lock: Vec<&str> = recording
        .iter()
        .filter(|r| object_key(r, &site.bucket).as_deref() == Some(".hoist/lock.json"))
        .map(|r| r.method.as_str())
        .collect();
    assert!(lists >= 1, "{described:#?}");
    assert_eq!(gets.len(), 1, "{described:#?}");
    assert_eq!(
        object_key(gets[0], &site.bucket).as_deref(),
        Some(".hoist/manifest.json")
    );
    assert_eq!(lock, ["PUT", "PUT", "DELETE"], "{described:#?}");
    assert_eq!(
        lists + gets.len() + lock.len(),
        recording.len(),
        "{described:#?}"
    );
}

#[test]
fn uploads_are_ordered_immutable_then_other_then_html_then_deletes() {
    let Some(server) = Server::moto() else { return };
    let moto = server.moto_server().expect("moto");
    let site = Site::new(&server, FILES);
    for stale in ["old/page.html", "old/asset.js", "zzz.txt"] {
        site.put(stale, "stale");
    }
    moto.start_recording();
    site.deploy().success();
    moto.stop_recording();
    let recording = moto.recording();
    let uploaded = uploads(&recording, &site.bucket);
    let position = |key: &str| {
        uploaded
            .iter()
            .position(|k| k == key)
            .unwrap_or_else(|| panic!("{key} was not uploaded: {uploaded:?}"))
    };
    let immutable = ["static/app.3f2a1c.js", "static/style.9b8e7d.css"];
    let other = ["images/logo.svg", "robots.txt"];
    let html = ["index.html", "about/index.html", "docs/guide/index.html"];
    let last_immutable = immutable.iter().map(|k| position(k)).max().expect("some");
    let first_other = other.iter().map(|k| position(k)).min().expect("some");
    let last_other = other.iter().map(|k| position(k)).max().expect("some");
    let first_html = html.iter().map(|k| position(k)).min().expect("some");
    assert!(last_immutable < first_other, "{uploaded:?}");
    assert!(last_other < first_html, "{uploaded:?}");

    // Every delete follows every upload of a site file; the manifest comes last of all.
    let index_of = |predicate: &dyn Fn(&Recorded) -> bool| -> Vec<usize> {
        recording
            .iter()
            .enumerate()
            .filter(|(_, r)| predicate(r))
            .map(|(i, _)| i)
            .collect()
    };
    let deletes = index_of(&|r| r.is_delete_objects());
    // Site files only: hoist's own state (lock, release record, manifest) is not the site.
    let site_puts = index_of(&|r| {
        r.method == "PUT" && object_key(r, &site.bucket).is_some_and(|k| !k.starts_with(".hoist/"))
    });
    let manifest_puts = index_of(&|r| {
        r.method == "PUT" && object_key(r, &site.bucket).as_deref() == Some(".hoist/manifest.json")
    });
    assert_eq!(deletes.len(), 1, "one DeleteObjects call for three keys");
    assert!(site_puts.iter().all(|p| *p < deletes[0]));
    assert_eq!(manifest_puts.len(), 1);
    assert!(manifest_puts[0] > deletes[0]);
    // After the manifest, only the lock is released.
    let last_mutating = recording
        .iter()
        .rposition(|r| {
            r.is_mutating() && object_key(r, &site.bucket).as_deref() != Some(".hoist/lock.json")
        })
        .expect("the deploy mutated the bucket");
    assert_eq!(
        manifest_puts[0], last_mutating,
        "the manifest is written last"
    );
    let body = &recording[deletes[0]].body;
    for stale in ["old/page.html", "old/asset.js", "zzz.txt"] {
        assert!(body.contains(stale), "{stale} not in {body}");
    }
    let contents = site.contents();
    assert!(!contents.contains_key("zzz.txt") && !contents.contains_key("old/page.html"));
}

fn one_change_reuploads_one_file(server: &Server) {
    let site = Site::new(server, FILES);
    site.deploy().success();

    site.write("robots.txt", "User-agent: *\nDisallow: /private");
    let ran = site.deploy_json().success();
    // The release before keeps its robots.txt (server-side, under .hoist/objects/) for a
    // rollback, then the new one is uploaded.
    let old = blake3::hash(b"User-agent: *").to_hex();
    assert_eq!(
        keys(&ran),
        [
            triple(
                "keep",
                &format!(".hoist/objects/{old}"),
                "kept for rollback"
            ),
            triple("upload", "robots.txt", "content changed")
        ]
    );
    assert_eq!(
        site.contents()["robots.txt"],
        b"User-agent: *\nDisallow: /private"
    );

    // A rule's cache_control changes: only the objects it matches are updated, by copy.
    site.write_config(&CONFIG.replace("public, max-age=3600", "public, max-age=60"));
    let ran = site.deploy_json().success();
    assert_eq!(
        keys(&ran),
        [
            triple("update_headers", "images/logo.svg", "headers changed"),
            triple("update_headers", "robots.txt", "headers changed"),
        ]
    );
    let client = site.client();
    assert_eq!(
        head(&client, &site.bucket, "robots.txt").cache_control(),
        Some("public, max-age=60")
    );
    assert_eq!(
        head(&client, &site.bucket, "index.html").cache_control(),
        Some("public, max-age=300, must-revalidate")
    );
    // The copy kept the bytes and hoist's digest.
    let object = head(&client, &site.bucket, "images/logo.svg");
    assert_eq!(
        object
            .metadata()
            .and_then(|m| m.get("hoist-blake3"))
            .map(String::as_str),
        Some(blake3::hash(b"<svg/>").to_hex().as_str())
    );
    assert_eq!(site.contents()["images/logo.svg"], b"<svg/>");
    // And the next run is a no-op again.
    assert!(site.deploy_json().success().actions().is_empty());
}

#[test]
fn header_update_is_a_copy_not_a_reupload() {
    let Some(server) = Server::moto() else { return };
    let moto = server.moto_server().expect("moto");
    let site = Site::new(&server, FILES);
    site.deploy().success();
    site.write_config(&CONFIG.replace("public, max-age=3600", "no-cache"));
    moto.start_recording();
    site.deploy().success();
    moto.stop_recording();
    let recording = moto.recording();
    let mut copied: Vec<String> = recording
        .iter()
        .filter(|r| r.is_copy())
        .filter_map(|r| object_key(r, &site.bucket))
        .collect();
    copied.sort();
    assert_eq!(copied, ["images/logo.svg", "robots.txt"]);
    let uploaded = uploads(&recording, &site.bucket);
    assert_eq!(
        uploaded,
        [
            ".hoist/lock.json",
            ".hoist/lock.json",
            ".hoist/releases/00000002.json",
            ".hoist/manifest.json"
        ],
        "no site file is re-uploaded: only the lock (create, then the check that the store \
         honours conditions), the release record and the manifest"
    );
}

#[test]
fn dryrun_sends_no_mutating_request_and_predicts_the_deploy() {
    let Some(server) = Server::moto() else { return };
    let moto = server.moto_server().expect("moto");
    let site = Site::new(&server, FILES);
    site.deploy().success();
    site.put("stale.html", "old");
    site.write("robots.txt", "changed");
    site.write("new/page.html", "<p>new</p>");
    site.write_config(&CONFIG.replace("public, max-age=31536000, immutable", "max-age=1"));

    moto.start_recording();
    let dry = site.deploy_json().arg("--dryrun").success();
    moto.stop_recording();
    let recording = moto.recording();
    let mutating: Vec<String> = recording
        .iter()
        .filter(|r| r.is_mutating())
        .map(|r| format!("{} {}", r.method, r.url))
        .collect();
    assert!(mutating.is_empty(), "dry run sent {mutating:?}");
    assert!(!recording.is_empty(), "the recorder saw nothing");
    assert_eq!(dry.json()["dryrun"], true);

    // `--dry-run` is the same flag; human output marks every line.
    let human = site.deploy().arg("--dry-run").success();
    assert!(
        human
            .stdout
            .lines()
            .filter(|l| l.contains("  ("))
            .all(|l| l.starts_with("(dryrun) "))
    );

    let real = site.deploy_json().success();
    assert_eq!(dry.actions(), real.actions());
    assert!(dry.actions().len() >= 5, "{}", dry.stdout);
    assert!(real.actions().contains(&(
        "delete".into(),
        "stale.html".into(),
        "stale".into(),
        "delete".into(),
        0
    )));
}

fn stale_keys_deleted_and_guarded(server: &Server) {
    let site = Site::new(server, FILES);
    site.deploy().success();
    for i in 0..5 {
        site.put(&format!("stale/{i}.html"), "old");
    }
    site.write_config(&format!("{CONFIG}\nmax_deletes: 3\n"));
    let before = site.contents();
    let ran = site.deploy().run().exit(1);
    assert!(ran.stderr.contains("deletes 5 objects"), "{}", ran.stderr);
    assert!(ran.stderr.contains("max_deletes (3)"), "{}", ran.stderr);
    assert!(ran.stderr.contains("--force"), "{}", ran.stderr);
    assert_eq!(site.contents(), before, "a refused plan changed the bucket");

    let ran = site.deploy_json().arg("--force").success();
    assert_eq!(ran.json()["summary"]["deleted"], 5);
    assert!(site.contents().keys().all(|k| !k.starts_with("stale/")));
}

#[test]
fn refused_plan_sends_no_mutating_request() {
    let Some(server) = Server::moto() else { return };
    let moto = server.moto_server().expect("moto");
    let site = Site::new(&server, FILES);
    for i in 0..4 {
        site.put(&format!("stale/{i}.html"), "old");
    }
    site.write_config(&format!("{CONFIG}\nmax_deletes: 2\n"));
    moto.start_recording();
    site.deploy().run().exit(1);
    moto.stop_recording();
    let recording = moto.recording();
    let mutating: Vec<String> = recording
        .iter()
        .filter(|r| r.is_mutating())
        .filter(|r| object_key(r, &site.bucket).as_deref() != Some(".hoist/lock.json"))
        .map(|r| format!("{} {}", r.method, r.url))
        .collect();
    assert!(mutating.is_empty(), "{mutating:?}");
    // The lock was taken and released.
    let lock: Vec<&str> = recording
        .iter()
        .filter(|r| object_key(r, &site.bucket).as_deref() == Some(".hoist/lock.json"))
        .map(|r| r.method.as_str())
        .collect();
    assert_eq!(lock, ["PUT", "PUT", "DELETE"]);
}

pub const AWKWARD: &[(&str, &str)] = &[
    ("with space/a b.txt", "space"),
    ("plus+sign.txt", "plus"),
    ("per%cent/100%.txt", "percent"),
    ("ünïcödé/文件.txt", "unicode"),
    ("deep/a/b/c/d/e.html", "<p>deep</p>"),
    ("amp&eq=semi;colon.txt", "punct"),
    ("tilde~star*.txt", "tilde"),
    ("a-b.txt", "dash sorts before slash"),
    ("a/b.txt", "slash"),
];

fn keys_round_trip_exactly(server: &Server) {
    let site = Site::new(server, AWKWARD);
    site.deploy().success();
    let contents = site.contents();
    for (key, body) in AWKWARD {
        assert_eq!(
            contents.get(*key).map(Vec::as_slice),
            Some(body.as_bytes()),
            "{key} in {:?}",
            contents.keys().collect::<Vec<_>>()
        );
    }
    assert_eq!(contents.len(), AWKWARD.len() + 1, "{:?}", contents.keys());
    // And they compare equal on the next run (listing decode and manifest agree).
    assert!(site.deploy_json().success().actions().is_empty());
}

fn prefix_never_touches_neighbours(server: &Server) {
    let site = Site::with_config(server, &[("index.html", "<p>new</p>")], CONFIG, "site/");
    site.put("site-old/index.html", "neighbour");
    site.put("site-old/stale.html", "neighbour");
    site.put("sitemap.xml", "root");
    site.put("site/stale.html", "stale");
    let ran = site.deploy_json().success();
    assert_eq!(
        keys(&ran),
        [
            triple("upload", "index.html", "new"),
            triple("delete", "stale.html", "stale")
        ]
    );
    let contents = site.contents();
    assert_eq!(contents["site-old/index.html"], b"neighbour");
    assert_eq!(contents["site-old/stale.html"], b"neighbour");
    assert_eq!(contents["sitemap.xml"], b"root");
    assert_eq!(contents["site/index.html"], b"<p>new</p>");
    assert!(!contents.contains_key("site/stale.html"));
    assert!(contents.contains_key("site/.hoist/manifest.json"));
}

#[test]
fn manifest_missing_falls_back_to_the_objects() {
    // First deploy over a bucket hoist did not write: objects uploaded by another tool with
    // the same bytes are recognised by their MD5 ETag and only get their headers set.
    let Some(server) = Server::moto() else { return };
    let site = Site::new(&server, FILES);
    site.put("robots.txt", "User-agent: *");
    site.put("index.html", "<html>OLD</html>");
    let ran = site.deploy_json().success();
    let actions = keys(&ran);
    assert!(
        actions.contains(&triple("update_headers", "robots.txt", "headers changed")),
        "{actions:?}"
    );
    assert!(
        actions.contains(&triple("upload", "index.html", "content changed")),
        "{actions:?}"
    );

    // Deleting the manifest changes nothing but costs HEADs: still a no-op.
    let client = site.client();
    crate::util::block_on(async {
        client
            .delete_object()
            .bucket(&site.bucket)
            .key(".hoist/manifest.json")
            .send()
            .await
            .expect("delete manifest");
    });
    assert!(site.deploy_json().success().actions().is_empty());
    assert!(
        site.contents().contains_key(".hoist/manifest.json"),
        "manifest rewritten"
    );
}

#[test]
fn every_upload_carries_a_checksum_computed_independently() {
    // Neither moto nor rclone verifies checksums (TEST-SERVERS.md), so check what hoist
    // sends: each PutObject and UploadPart body against its CRC32 header, computed here.
    let Some(server) = Server::moto() else { return };
    let moto = server.moto_server().expect("moto");
    let config = format!("{CONFIG}\nmultipart_threshold: 5MB\nmultipart_chunksize: 5MB\n");
    let site = Site::with_config(&server, FILES, &config, "");
    let big: String = (0..(11 << 20))
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    site.write("downloads/big.txt", &big);
    moto.start_recording();
    site.deploy().success();
    moto.stop_recording();
    let mut checked = 0;
    for request in moto.recording() {
        if request.method != "PUT" || request.is_copy() {
            continue;
        }
        let payload = request.payload();
        let sent = request
            .header_or_trailer("x-amz-checksum-crc32")
            .unwrap_or_else(|| panic!("no checksum on {}", request.url));
        let want = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            crc32fast::hash(&payload).to_be_bytes(),
        );
        assert_eq!(sent, want, "{}", request.url);
        checked += 1;
    }
    // 8 site files, three parts of the big file, and hoist's state: the manifest, the release
    // record and the lock (created, then checked).
    assert_eq!(checked, FILES.len() - 1 + 3 + 4);
    assert_eq!(site.contents()["downloads/big.txt"], big.as_bytes());
}

#[test]
fn remote_keys_hoist_cannot_name_are_left_alone() {
    let Some(server) = Server::moto() else { return };
    let site = Site::with_config(&server, &[("index.html", "x")], CONFIG, "site/");
    for key in [
        "site/a/../b.html",
        "site/folder/",
        "site//double.html",
        "site/./dot.html",
    ] {
        site.put(key, "foreign");
    }
    site.put("site/stale.html", "stale");
    let ran = site.deploy_json().success();
    let warnings = ran.json()["warnings"].to_string();
    for name in ["a/../b.html", "folder/", "/double.html", "./dot.html"] {
        assert!(warnings.contains(name), "{name} not reported: {warnings}");
    }
    assert_eq!(
        keys(&ran),
        [
            triple("upload", "index.html", "new"),
            triple("delete", "stale.html", "stale")
        ]
    );
    let contents = site.contents();
    for key in [
        "site/a/../b.html",
        "site/folder/",
        "site//double.html",
        "site/./dot.html",
    ] {
        assert_eq!(
            contents.get(key).map(Vec::as_slice),
            Some(&b"foreign"[..]),
            "{key}"
        );
    }
}

#[test]
fn credentials_come_from_a_named_profile() {
    // rclone checks signatures, so only the right secret from the right profile works.
    let Some(server) = Server::rclone() else {
        return;
    };
    let site = Site::new(&server, FILES);
    let endpoint = server.endpoint();
    let profiles = site.root().join("credentials");
    std::fs::write(
        &profiles,
        format!(
            "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n\
             [ci]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            endpoint.access_key, endpoint.secret_key
        ),
    )
    .expect("credentials file");
    let base = || {
        site.deploy()
            .remove_env("AWS_ACCESS_KEY_ID")
            .remove_env("AWS_SECRET_ACCESS_KEY")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                profiles.display().to_string(),
            )
    };
    base().run().exit(1);
    base().args(["--profile", "ci"]).success();
    assert!(
        base()
            .env("AWS_PROFILE", "ci")
            .args(["--output", "json"])
            .success()
            .actions()
            .is_empty()
    );
}

/// Issue #11: an explicit profile replaces the environment's keys, as in aws-cli (botocore drops
/// its environment provider when `--profile` is given). rclone checks signatures, so the wrong
/// keys in the environment fail and only the profile's succeed.
#[test]
fn an_explicit_profile_beats_environment_keys() {
    let Some(server) = Server::rclone() else {
        return;
    };
    let site = Site::new(&server, FILES);
    let endpoint = server.endpoint();
    let profiles = site.root().join("credentials");
    std::fs::write(
        &profiles,
        format!(
            "[ci]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            endpoint.access_key, endpoint.secret_key
        ),
    )
    .expect("credentials file");
    let wrong_env = || {
        site.deploy()
            .env("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
            .env("AWS_SECRET_ACCESS_KEY", "wrong-secret-wrong-secret")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                profiles.display().to_string(),
            )
    };
    // The environment's keys alone are wrong: the deploy fails.
    wrong_env().run().exit(1);
    // `--profile ci` uses the profile's keys, not the environment's.
    wrong_env().args(["--profile", "ci"]).success();
    // So does `profile:` in deploy.yaml.
    site.write("robots.txt", "changed");
    site.write_config(&format!("{CONFIG}\nprofile: ci\n"));
    let ran = wrong_env().args(["--output", "json"]).success();
    let uploads = ran
        .actions()
        .into_iter()
        .filter(|a| a.0 == "upload")
        .count();
    assert_eq!(uploads, 1, "{}", ran.stdout);
    // AWS_PROFILE is not explicit: aws-cli lets environment keys win over it, and so does hoist.
    site.write_config(CONFIG);
    wrong_env().env("AWS_PROFILE", "ci").run().exit(1);
}

/// Issue #11: `--profile nosuch` is an error naming the profile (aws-cli: exit 255, `The config
/// profile (nosuch) could not be found`); deploy exits 2 and lists the profiles it found.
#[test]
fn an_unknown_profile_is_an_error() {
    let Some(server) = Server::moto() else {
        return;
    };
    let site = Site::new(&server, FILES);
    let credentials = site.root().join("credentials");
    std::fs::write(
        &credentials,
        "[ci]\naws_access_key_id = a\naws_secret_access_key = b\n",
    )
    .expect("credentials file");
    let with_files = |run: Hoist| {
        run.env(
            "AWS_SHARED_CREDENTIALS_FILE",
            credentials.display().to_string(),
        )
    };
    let ran = with_files(site.deploy().args(["--profile", "nosuch"]))
        .run()
        .exit(2);
    assert!(
        ran.stderr
            .contains("The config profile (nosuch) could not be found"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("ci"),
        "the hint lists the profiles: {}",
        ran.stderr
    );
    assert!(site.contents().is_empty(), "nothing was published");
    // sync: aws-cli's code and line, side by side.
    let endpoint = server.endpoint();
    let sync_args = [
        "sync",
        "site",
        &format!("s3://{}/x", site.bucket),
        "--profile",
        "nosuch",
    ];
    let aws = with_files(
        Hoist::aws(site.root(), &endpoint)
            .arg("s3")
            .args(&sync_args[..]),
    )
    .run()
    .exit(255);
    let hoist = with_files(
        Hoist::on(site.root(), &endpoint)
            .args(&sync_args[..])
            .args(["--endpoint-url", &endpoint.url]),
    )
    .run()
    .exit(255);
    let line = "The config profile (nosuch) could not be found";
    assert!(aws.stderr.contains(line), "{}", aws.stderr);
    assert!(hoist.stderr.contains(line), "{}", hoist.stderr);
    assert!(site.contents().is_empty(), "nothing was synced");
}

/// Issue #11: a header change made by another tool keeps the ETag, so the manifest still
/// vouches for the object; `--check` reads every object instead, reports the drift and repairs
/// it with a copy.
#[test]
fn check_finds_and_repairs_what_another_tool_changed() {
    let Some(server) = Server::moto() else {
        return;
    };
    let site = Site::new(&server, FILES);
    site.deploy().success();
    let endpoint = server.endpoint();
    let object = format!("s3://{}/index.html", site.bucket);
    Hoist::aws(site.root(), &endpoint)
        .args(["s3", "cp", &object, &object])
        .args([
            "--metadata-directive",
            "REPLACE",
            "--content-type",
            "text/plain",
        ])
        .success();
    let client = site.client();
    assert_eq!(
        head(&client, &site.bucket, "index.html").content_type(),
        Some("text/plain")
    );
    // The manifest is trusted: a plain deploy sees nothing to do (the README says when to
    // run --check).
    assert!(site.deploy_json().success().actions().is_empty());
    let ran = site.deploy_json().arg("--check").success();
    assert_eq!(
        keys(&ran),
        [triple("update_headers", "index.html", "headers changed")],
        "{}",
        ran.stdout
    );
    let warnings = ran.json()["warnings"].to_string();
    assert!(warnings.contains("index.html"), "{warnings}");
    assert_eq!(
        head(&client, &site.bucket, "index.html").content_type(),
        Some("text/html; charset=utf-8")
    );
    // Repaired: the next --check finds nothing.
    assert!(
        site.deploy_json()
            .arg("--check")
            .success()
            .actions()
            .is_empty()
    );
}

/// Starts a multipart upload and never completes it, as a SIGKILLed run leaves one.
fn abandon_upload(site: &Site, key: &str) -> String {
    let client = site.client();
    let created = crate::util::block_on(
        client
            .create_multipart_upload()
            .bucket(&site.bucket)
            .key(key)
            .send(),
    )
    .expect("create multipart upload");
    created.upload_id().expect("upload id").to_string()
}

fn open_uploads(site: &Site) -> Vec<String> {
    let client = site.client();
    let listed = crate::util::block_on(client.list_multipart_uploads().bucket(&site.bucket).send())
        .expect("list uploads");
    let mut keys: Vec<String> = listed
        .uploads()
        .iter()
        .filter_map(|u| u.key().map(str::to_string))
        .collect();
    keys.sort();
    keys
}

/// Issue #11: a SIGKILLed run leaves its multipart upload open (billed storage). A later deploy
/// names hoist's stale uploads under its target in the plan and aborts them after the deletes;
/// a dry run sends no abort; uploads outside the prefix are left alone. (moto reports every
/// upload as begun in 2010, so recent uploads being spared is checked on rclone, in the
/// conformance suite.)
#[test]
fn stale_multipart_uploads_under_the_target_are_aborted() {
    let Some(server) = Server::moto() else {
        return;
    };
    let moto = server.moto_server().expect("moto");
    let site = Site::with_config(&server, FILES, CONFIG, "site/");
    // Uploads are looked for when the plan uploads a file in parts, as a killed run's rerun does.
    site.write("video.bin", &"v".repeat(9 << 20));
    abandon_upload(&site, "site/static/big.bin");
    abandon_upload(&site, "site-old/big.bin");

    moto.start_recording();
    let dry = site.deploy_json().arg("--dryrun").success();
    moto.stop_recording();
    assert!(
        !moto.recording().iter().any(Recorded::is_mutating),
        "a dry run sent a mutating request"
    );
    assert_eq!(
        dry.json()["stale_uploads"],
        serde_json::json!([{"name": "static/big.bin"}]),
        "{}",
        dry.stdout
    );
    let human = site.deploy().arg("--dryrun").success();
    assert!(
        human.stdout.contains("(dryrun) abort  static/big.bin"),
        "{}",
        human.stdout
    );

    site.deploy().success();
    assert_eq!(open_uploads(&site), ["site-old/big.bin"]);
}
