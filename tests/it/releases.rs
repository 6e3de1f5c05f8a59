//! Issue #12, the release lifecycle, against moto_server (its recorder, anonymous GETs through
//! a bucket policy) and rclone serve s3 (which ignores conditional writes): a real Vite build
//! deployed three times while a browser-like prober holds on to every page it saw, rollback,
//! pruning, the lock between two deploys and after a SIGKILL, and nested sites.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::backends::Server;
use crate::deploy::Site;
use crate::proxy::{Fault, FaultProxy, Plan};
use crate::util::{Hoist, head};

const VITE_CONFIG: &str = r#"
source: site
rules:
  - match: "assets/**"
    cache_control: "public, max-age=31536000, immutable"
    immutable: true
  - match: "*.html"
    cache_control: "public, max-age=300, must-revalidate"
  - match: "**"
    cache_control: "public, max-age=3600"
"#;

/// The Vite fixture (`tests/fixtures/vite-app`), its dependencies installed once with `npm ci`
/// from the committed lock file.
pub fn vite_fixture() -> &'static Path {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vite-app");
        if !dir.join("node_modules/vite/bin/vite.js").exists() {
            let status = std::process::Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .status()
                .expect("npm runs (Node.js and npm are needed for the Vite tests)");
            assert!(status.success(), "npm ci in {} failed", dir.display());
        }
        dir
    })
}

/// Builds the Vite app as release `version` into `site/` of the site's directory: every
/// chunk (entry, lazy chunk, CSS) gets new content, so new hashed names.
fn vite_build(site: &Site, version: &str) {
    let fixture = vite_fixture();
    let app = site.root().join("app");
    std::fs::create_dir_all(app.join("src")).expect("app dir");
    for file in ["index.html", "package.json"] {
        std::fs::copy(fixture.join(file), app.join(file)).expect("copy fixture");
    }
    for file in ["main.js", "lazy.js"] {
        std::fs::copy(fixture.join("src").join(file), app.join("src").join(file))
            .expect("copy fixture");
    }
    let lazy = std::fs::read_to_string(fixture.join("src/lazy.js")).expect("lazy.js");
    std::fs::write(
        app.join("src/lazy.js"),
        lazy.replace("'v0'", &format!("'{version}'")),
    )
    .expect("lazy.js");
    std::fs::write(
        app.join("src/version.js"),
        format!("export const version = '{version}';\n"),
    )
    .expect("version.js");
    std::fs::write(
        app.join("src/style.css"),
        format!("body::after {{ content: '{version}'; }}\n"),
    )
    .expect("style.css");
    let modules = app.join("node_modules");
    if !modules.exists() {
        std::os::unix::fs::symlink(fixture.join("node_modules"), &modules).expect("symlink");
    }
    let out = std::process::Command::new("node")
        .arg(fixture.join("node_modules/vite/bin/vite.js"))
        .args(["build", "--emptyOutDir", "--logLevel", "error", "--outDir"])
        .arg(site.source())
        .current_dir(&app)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "vite build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The files of the build in `site/`, key → bytes.
fn built(site: &Site) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in walkdir::WalkDir::new(site.source()) {
        let entry = entry.expect("walk");
        if entry.file_type().is_file() {
            let key = entry
                .path()
                .strip_prefix(site.source())
                .expect("under site")
                .to_string_lossy()
                .replace('\\', "/");
            files.insert(key, std::fs::read(entry.path()).expect("read"));
        }
    }
    files
}

/// The `assets/...` names a page or a script refers to.
fn references(body: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = body;
    while let Some(at) = rest.find("assets/") {
        let name: String = rest[at + 7..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .collect();
        if name.contains('.') {
            found.insert(format!("assets/{name}"));
        }
        rest = &rest[at + 7..];
    }
    found
}

/// A browser-like visitor: it fetches the page again and again, keeps every version it saw
/// (a cached page, an open tab) and fetches everything each of them refers to, scripts'
/// lazy chunks included. Every failed fetch is recorded.
struct Prober {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<ProbeReport>>,
}

#[derive(Debug, Default)]
struct ProbeReport {
    pages_seen: BTreeSet<String>,
    fetches: usize,
    broken: Vec<String>,
}

impl Prober {
    fn start(base: String) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            let get = |path: &str| -> Option<String> {
                let mut response = agent.get(&format!("{base}/{path}")).call().ok()?;
                (response.status() == 200)
                    .then(|| response.body_mut().read_to_string().ok())
                    .flatten()
            };
            let mut report = ProbeReport::default();
            let mut wanted: BTreeSet<String> = BTreeSet::new();
            while !flag.load(Ordering::SeqCst) {
                if let Some(page) = get("index.html") {
                    report.pages_seen.insert(page.clone());
                    wanted.extend(references(&page));
                }
                report.fetches += 1;
                let mut found = BTreeSet::new();
                for asset in &wanted {
                    report.fetches += 1;
                    match get(asset) {
                        Some(body) => found.extend(references(&body)),
                        None => report.broken.push(asset.clone()),
                    }
                }
                wanted.extend(found);
                std::thread::sleep(Duration::from_millis(20));
            }
            report
        });
        Prober {
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> ProbeReport {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().expect("running").join().expect("prober")
    }
}

fn public_base(server: &Server, site: &Site) -> String {
    let moto = server.moto_server().expect("moto");
    moto.allow_public_read(&site.bucket);
    format!("{}/{}", moto.endpoint(), site.bucket)
}

/// Three deploys of a real Vite build while a prober that keeps every page it saw fetches
/// their assets: old assets survive (the grace period and the retained releases), no fetch
/// ever fails; then `hoist rollback` restores release 2 byte for byte and header for header,
/// by server-side copies only, and `hoist releases` lists all four.
#[test]
fn vite_releases_keep_old_assets_and_roll_back_by_copies() {
    let Some(server) = Server::moto() else { return };
    let moto = server.moto_server().expect("moto");
    let site = Site::with_config(&server, &[], VITE_CONFIG, "");
    let base = public_base(&server, &site);
    let mut builds = Vec::new();
    for version in ["v1", "v2", "v3"] {
        vite_build(&site, version);
        builds.push(built(&site));
        let prober = Prober::start(base.clone());
        std::thread::sleep(Duration::from_millis(150));
        // CI names the commit; `--message` the release.
        site.deploy()
            .env("GITHUB_SHA", format!("{version}0000000000"))
            .args(["--message", &format!("build {version}")])
            .success();
        std::thread::sleep(Duration::from_millis(150));
        let report = prober.finish();
        assert!(
            report.broken.is_empty(),
            "{version}: broken {:?}",
            report.broken
        );
        assert!(report.fetches > 0, "the prober ran");
    }
    // Each build has new hashed names, and every asset v1's page refers to still answers.
    let v1_assets: Vec<&String> = builds[0]
        .keys()
        .filter(|k| k.starts_with("assets/"))
        .collect();
    assert_eq!(v1_assets.len(), 3, "{v1_assets:?}");
    for asset in &v1_assets {
        assert!(!builds[2].contains_key(*asset), "{asset} was not renamed");
        let url = format!("{base}/{asset}");
        let status = ureq::get(&url)
            .call()
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        assert_eq!(status, 200, "{url}");
    }

    // A dry run of the rollback sends no mutating request.
    moto.start_recording();
    let ran = Hoist::on(site.root(), &server.endpoint())
        .args(["rollback", "--dryrun", "--output", "json"])
        .success();
    moto.stop_recording();
    let mutating: Vec<String> = moto
        .recording()
        .iter()
        .filter(|r| r.is_mutating())
        .map(|r| format!("{} {}", r.method, r.url))
        .collect();
    assert!(mutating.is_empty(), "{mutating:?}");
    let planned = ran.json();
    assert_eq!(planned["dryrun"], true);
    assert!(
        !planned["actions"].as_array().expect("actions").is_empty(),
        "{planned}"
    );

    // The rollback: release 2 again, by copies.
    moto.start_recording();
    let ran = Hoist::on(site.root(), &server.endpoint())
        .args(["rollback", "--output", "json"])
        .success();
    moto.stop_recording();
    let report = ran.json();
    assert_eq!(report["release"]["restores"], 2, "{report}");
    let site_puts: Vec<String> = moto
        .recording()
        .iter()
        .filter(|r| r.method == "PUT" && !r.is_copy())
        .map(|r| r.path())
        .filter(|path| !path.contains("/.hoist/"))
        .collect();
    assert!(
        site_puts.is_empty(),
        "site content was uploaded: {site_puts:?}"
    );
    let client = site.client();
    let contents = site.contents();
    for (key, bytes) in &builds[1] {
        assert_eq!(
            contents.get(key),
            Some(bytes),
            "{key} does not serve v2's bytes"
        );
        let object = head(&client, &site.bucket, key);
        let want = if key.starts_with("assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "public, max-age=300, must-revalidate"
        };
        assert_eq!(object.cache_control(), Some(want), "{key}");
    }
    // v3's assets are kept stale (its pages may be cached), as the rules say.
    let kept: BTreeSet<String> = report["kept"]
        .as_array()
        .expect("kept")
        .iter()
        .map(|k| k["key"].as_str().expect("key").to_string())
        .collect();
    for asset in builds[2].keys().filter(|k| k.starts_with("assets/")) {
        assert!(kept.contains(asset), "{asset} not kept: {kept:?}");
        assert!(contents.contains_key(asset), "{asset} deleted");
    }

    // `hoist releases` lists the three deploys and the rollback, newest first.
    let listed = Hoist::on(site.root(), &server.endpoint())
        .args(["releases", "--output", "json"])
        .success()
        .json();
    let releases = listed["releases"].as_array().expect("releases");
    let ids: Vec<u64> = releases
        .iter()
        .map(|r| r["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, [4, 3, 2, 1], "{listed}");
    assert_eq!(releases[0]["live"], true);
    assert_eq!(releases[0]["kind"], "rollback");
    assert_eq!(releases[0]["restores"], 2);
    assert!(releases[1..].iter().all(|r| r["live"] == false));
    assert_eq!(releases[1]["commit"], "v30000000000");
    assert_eq!(releases[1]["message"], "build v3");
    assert_eq!(
        releases[0]["commit"], "v20000000000",
        "a rollback names the commit it restores"
    );
    assert_eq!(releases[0]["message"], "rollback to release 2");
    assert_eq!(releases[2]["files"], builds[1].len());

    // Rolling forward is another rollback.
    Hoist::on(site.root(), &server.endpoint())
        .args(["rollback", "3"])
        .success();
    let contents = site.contents();
    for (key, bytes) in &builds[2] {
        assert_eq!(
            contents.get(key),
            Some(bytes),
            "{key} does not serve v3's bytes"
        );
    }
}

/// Synthetic hashed builds: `index.html` referring to `assets/app.<version>.js`.
fn small_build(site: &Site, version: &str) {
    let _ = std::fs::remove_dir_all(site.source());
    crate::util::write_tree(
        &site.source(),
        &[
            (
                "index.html",
                &format!("<script src=\"/assets/app.{version}.js\"></script>"),
            ),
            (
                &format!("assets/app.{version}.js"),
                &format!("js {version}"),
            ),
            (
                &format!("assets/style.{version}.css"),
                &format!("css {version}"),
            ),
        ],
    );
}

/// `releases.keep: 2` and `--keep-stale-for 1s`: after v4 (and the second passing), v1's and
/// v2's assets are gone, v3's and v4's are there, and nothing else was deleted.
#[test]
fn keeping_two_releases_prunes_what_only_older_ones_used() {
    let Some(server) = Server::moto() else { return };
    let site = Site::with_config(
        &server,
        &[],
        &format!("{VITE_CONFIG}releases:\n  keep: 2\n"),
        "",
    );
    site.put("notes/keep-me.txt", "not hoist's");
    site.write_config(&format!(
        "{VITE_CONFIG}releases:\n  keep: 2\nexclude: [\"notes/**\"]\n"
    ));
    // Every key any of the four deploys deleted.
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    for version in ["v1", "v2", "v3", "v4"] {
        if version == "v4" {
            std::thread::sleep(Duration::from_millis(2100));
        }
        small_build(&site, version);
        let ran = site
            .deploy_json()
            .args(["--keep-stale-for", "1s"])
            .success();
        deleted.extend(
            ran.actions()
                .into_iter()
                .filter(|a| a.0 == "delete")
                .map(|a| a.1),
        );
    }
    let want: BTreeSet<String> = ["v1", "v2"]
        .iter()
        .flat_map(|v| {
            [
                format!("assets/app.{v}.js"),
                format!("assets/style.{v}.css"),
            ]
        })
        .collect();
    assert_eq!(deleted, want);
    let contents = site.all_contents();
    for v in ["v3", "v4"] {
        assert!(contents.contains_key(&format!("assets/app.{v}.js")), "{v}");
        assert!(
            contents.contains_key(&format!("assets/style.{v}.css")),
            "{v}"
        );
    }
    for v in ["v1", "v2"] {
        assert!(!contents.contains_key(&format!("assets/app.{v}.js")), "{v}");
    }
    assert!(contents.contains_key("notes/keep-me.txt"));
    // Only releases 3 and 4 are retained; their records and nothing older remain.
    let records: Vec<&String> = contents
        .keys()
        .filter(|k| k.starts_with(".hoist/releases/"))
        .collect();
    assert_eq!(
        records,
        [
            ".hoist/releases/00000003.json",
            ".hoist/releases/00000004.json"
        ]
    );
}

/// Two deploys of different builds started a second apart: the second waits for the first's
/// lock, a prober never sees a page whose assets are missing, and the end state is the second
/// build, whole.
#[test]
fn two_deploys_at_once_take_turns() {
    let Some(server) = Server::moto() else { return };
    let site = Site::with_config(&server, &[], VITE_CONFIG, "");
    let base = public_base(&server, &site);
    small_build(&site, "v1");
    site.deploy().success();

    // Two working copies of the same target, with different builds.
    let other = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        site.root().join("deploy.yaml"),
        other.path().join("deploy.yaml"),
    )
    .expect("config");
    crate::util::write_tree(
        &other.path().join("site"),
        &[
            ("index.html", "<script src=\"/assets/app.b.js\"></script>"),
            ("assets/app.b.js", "js b"),
        ],
    );
    small_build(&site, "a");
    // The first deploy is slow: each upload waits 300 ms at a proxy.
    let proxy = FaultProxy::start(
        &server.endpoint().url,
        Plan::new().rule(
            |r| r.method == "PUT" && r.path().contains("/assets/"),
            Fault::Delay(Duration::from_secs(3)),
            None,
        ),
    );
    let prober = Prober::start(base.clone());
    let first = site
        .deploy()
        .args(["--endpoint-url", &proxy.endpoint()])
        .spawn();
    std::thread::sleep(Duration::from_secs(1));
    let second = Hoist::on(other.path(), &server.endpoint())
        .arg("deploy")
        .run();
    let first = first.wait(Duration::from_secs(60));
    let report = prober.finish();
    assert_eq!(first.code(), Some(0), "{}", first.stderr);
    assert_eq!(second.code(), Some(0), "{}", second.stderr);
    assert!(
        second.stderr.contains("waiting for the lock"),
        "the second deploy did not wait: {}",
        second.stderr
    );
    assert!(report.broken.is_empty(), "broken: {:?}", report.broken);
    assert!(report.pages_seen.len() >= 2, "{:?}", report.pages_seen);
    let contents = site.contents();
    assert_eq!(
        contents["index.html"],
        b"<script src=\"/assets/app.b.js\"></script>"
    );
    assert_eq!(contents["assets/app.b.js"], b"js b");
    assert!(!contents.contains_key(".hoist/lock.json"));
}

/// A deploy killed while it holds the lock leaves it; the next deploy waits, then takes it over
/// once it is older than its TTL (`HOIST_LOCK_TTL`, 2 s here), with a warning naming the holder.
#[test]
fn a_killed_deploys_lock_is_taken_over_after_its_ttl() {
    let Some(server) = Server::moto() else { return };
    let site = Site::with_config(&server, &[], VITE_CONFIG, "");
    small_build(&site, "v1");
    let proxy = FaultProxy::start(
        &server.endpoint().url,
        Plan::new().rule(
            |r| r.method == "PUT" && r.path().contains("/assets/"),
            Fault::Stall(Duration::from_secs(30)),
            None,
        ),
    );
    let killed = site
        .deploy()
        .args(["--endpoint-url", &proxy.endpoint()])
        .env("HOIST_LOCK_TTL", "2")
        .spawn();
    // Wait until it holds the lock.
    let client = site.client();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while crate::util::block_on(
        client
            .head_object()
            .bucket(&site.bucket)
            .key(".hoist/lock.json")
            .send(),
    )
    .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the deploy never took the lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    killed.signal("KILL");
    let _ = killed.wait(Duration::from_secs(10));
    let ran = site.deploy().success();
    assert!(
        ran.stderr.contains("waiting for the lock"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("taking over the lock"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("(pid "), "{}", ran.stderr);
    assert!(!site.contents().contains_key(".hoist/lock.json"));
}

/// rclone serve s3 ignores If-None-Match: hoist finds out and refuses to run unlocked
/// silently; `--no-lock` runs without.
#[test]
fn a_store_that_ignores_conditional_writes_is_refused_unless_no_lock() {
    let Some(server) = Server::rclone() else {
        return;
    };
    let site = Site::with_config(&server, &[], VITE_CONFIG, "");
    small_build(&site, "v1");
    // The Site helper turns the lock off for rclone; put it back to the default.
    let config = std::fs::read_to_string(site.root().join("deploy.yaml")).expect("config");
    std::fs::write(
        site.root().join("deploy.yaml"),
        config.replace("lock: false\n", ""),
    )
    .expect("config");
    let ran = site.deploy().run().exit(2);
    assert!(
        ran.stderr.contains("ignores conditional writes") && ran.stderr.contains("--no-lock"),
        "{}",
        ran.stderr
    );
    assert!(
        !site.contents().contains_key("index.html"),
        "it deployed anyway"
    );
    assert!(!site.contents().contains_key(".hoist/lock.json"));
    site.deploy().arg("--no-lock").success();
    assert!(site.contents().contains_key("index.html"));
}

/// A deploy to the bucket root next to a hoist site under `pr-1/` leaves every `pr-1/` key
/// alone, and says so once.
#[test]
fn a_root_deploy_leaves_a_nested_site_alone() {
    let Some(server) = Server::moto() else { return };
    let nested = Site::with_config(&server, &[], VITE_CONFIG, "pr-1/");
    small_build(&nested, "pr");
    nested.deploy().success();
    let before: BTreeMap<String, Vec<u8>> = nested
        .all_contents()
        .into_iter()
        .filter(|(k, _)| k.starts_with("pr-1/"))
        .collect();
    assert!(before.len() >= 4, "{:?}", before.keys());
    // The same bucket, deployed at its root.
    nested.write_config_with_prefix(VITE_CONFIG, "");
    small_build(&nested, "root");
    let ran = nested.deploy().success();
    assert_eq!(
        ran.stderr
            .matches("leaving `pr-1/` alone: another hoist site lives there")
            .count(),
        1,
        "{}",
        ran.stderr
    );
    let after: BTreeMap<String, Vec<u8>> = nested
        .all_contents()
        .into_iter()
        .filter(|(k, _)| k.starts_with("pr-1/"))
        .collect();
    assert_eq!(after, before);
    assert!(nested.all_contents().contains_key("index.html"));
}

/// A site with a page that the next build removes and a page whose headers change.
fn paged_build(site: &Site, version: &str) {
    let _ = std::fs::remove_dir_all(site.source());
    let mut files = vec![
        (
            "index.html".to_string(),
            format!("<script src=\"/assets/app.{version}.js\"></script>"),
        ),
        (format!("assets/app.{version}.js"), format!("js {version}")),
        ("robots.txt".to_string(), format!("robots {version}")),
    ];
    if version == "v1" {
        files.push(("about.html".to_string(), "about v1".to_string()));
    }
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    crate::util::write_tree(&site.source(), &files);
}

crate::backends::for_servers!(rollback_restores_pages_deleted_and_changed);

/// On both servers: a rollback brings back a page the newer release deleted and one it
/// changed, byte for byte and with the rules' headers of the time, and the rerun is a no-op.
fn rollback_restores_pages_deleted_and_changed(server: &Server) {
    let site = Site::with_config(server, &[], VITE_CONFIG, "");
    paged_build(&site, "v1");
    site.deploy().success();
    let v1 = built(&site);
    paged_build(&site, "v2");
    // Release 2 also gives robots.txt other headers.
    site.write_config(&VITE_CONFIG.replace("public, max-age=3600", "no-cache"));
    site.deploy().success();
    assert!(!site.contents().contains_key("about.html"));
    let ran = site.deploy().arg("--dryrun").success();
    assert!(
        !ran.stdout.lines().any(|l| l.starts_with("(dryrun) upload")),
        "{}",
        ran.stdout
    );
    let ran = Hoist::on(site.root(), &server.endpoint())
        .args(["rollback", "--output", "json"])
        .args(if server.name() == "rclone" {
            &["--no-lock"][..]
        } else {
            &[]
        })
        .success();
    let report = ran.json();
    assert_eq!(report["release"]["id"], 3, "{report}");
    let contents = site.contents();
    let client = site.client();
    for (key, bytes) in &v1 {
        assert_eq!(contents.get(key), Some(bytes), "{key}");
    }
    assert_eq!(
        head(&client, &site.bucket, "robots.txt").cache_control(),
        Some("public, max-age=3600")
    );
    assert_eq!(
        head(&client, &site.bucket, "about.html").cache_control(),
        Some("public, max-age=300, must-revalidate")
    );
    // v2's asset is kept for v2's cached pages.
    assert!(contents.contains_key("assets/app.v2.js"));
    // Rolling back to the same release again changes nothing.
    let again = Hoist::on(site.root(), &server.endpoint())
        .args(["rollback", "1", "--output", "json"])
        .args(if server.name() == "rclone" {
            &["--no-lock"][..]
        } else {
            &[]
        })
        .success();
    let actions = again.json()["actions"].as_array().expect("actions").len();
    assert_eq!(actions, 0, "{}", again.stdout);
}

/// A rollback that fails half-way (CopyObject of the page keeps failing) changes no page and
/// deletes nothing; run again at the defaults, it converges.
#[test]
fn a_failed_rollback_converges_when_run_again() {
    let Some(server) = Server::moto() else { return };
    let site = Site::with_config(&server, &[], VITE_CONFIG, "");
    paged_build(&site, "v1");
    site.deploy().success();
    let v1 = built(&site);
    paged_build(&site, "v2");
    site.deploy().success();
    let before = site.contents();
    let proxy = FaultProxy::start(
        &server.endpoint().url,
        Plan::new().rule(
            |r| r.method == "PUT" && r.path().ends_with("/index.html"),
            Fault::InternalError,
            None,
        ),
    );
    // Few attempts, so the failure comes quickly: this run is about what a failure leaves.
    let ran = Hoist::on(site.root(), &server.endpoint())
        .args(["rollback", "--endpoint-url", &proxy.endpoint()])
        .env("AWS_MAX_ATTEMPTS", "2")
        .run()
        .exit(1);
    assert!(ran.stderr.contains("index.html"), "{}", ran.stderr);
    let after = site.contents();
    assert_eq!(
        after["index.html"], before["index.html"],
        "the page changed"
    );
    assert!(
        after.contains_key("assets/app.v2.js"),
        "an asset was deleted"
    );
    assert!(!after.contains_key(".hoist/lock.json"), "the lock was left");
    Hoist::on(site.root(), &server.endpoint())
        .arg("rollback")
        .success();
    let contents = site.contents();
    for (key, bytes) in &v1 {
        assert_eq!(contents.get(key), Some(bytes), "{key}");
    }
}

/// A live lock (refreshed just now) makes a deploy wait `--lock-timeout`, then exit 1 naming
/// its holder, having changed nothing; `--dryrun` runs and says the lock is held.
#[test]
fn a_held_lock_times_out_naming_its_holder() {
    let Some(server) = Server::moto() else { return };
    let site = Site::with_config(&server, &[], VITE_CONFIG, "");
    small_build(&site, "v1");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let stamp = crate::util::rfc3339(now);
    let holder = serde_json::json!({
        "id": "other-run",
        "command": "deploy",
        "host": "ci-runner-7",
        "pid": 4121,
        "ci_run": "https://github.com/acme/site/actions/runs/42",
        "since": stamp,
        "refreshed": stamp,
        "ttl_seconds": 600,
    });
    crate::util::put_object(
        &site.client(),
        &site.bucket,
        ".hoist/lock.json",
        &holder.to_string(),
    );
    let ran = site.deploy().args(["--lock-timeout", "3s"]).run().exit(1);
    for part in [
        "ci-runner-7",
        "pid 4121",
        "actions/runs/42",
        "nothing was changed",
    ] {
        assert!(ran.stderr.contains(part), "{part} missing: {}", ran.stderr);
    }
    assert!(!site.contents().contains_key("index.html"));
    let dry = site.deploy().arg("--dryrun").success();
    assert!(dry.stderr.contains("holds the lock"), "{}", dry.stderr);
    // The lock is the other run's: still there.
    assert!(site.contents().contains_key(".hoist/lock.json"));
}

/// A run whose lock another run took over (it stalled past the TTL) notices at its next
/// heartbeat and starts no further phase: no page is replaced, nothing deleted.
#[test]
fn a_run_whose_lock_was_taken_over_stops_before_the_next_phase() {
    let Some(server) = Server::moto() else { return };
    let site = Site::with_config(&server, &[], VITE_CONFIG, "");
    small_build(&site, "v1");
    site.deploy().success();
    let before = site.contents();
    small_build(&site, "v2");
    let proxy = FaultProxy::start(
        &server.endpoint().url,
        Plan::new().rule(
            |r| r.method == "PUT" && r.path().contains("/assets/"),
            Fault::Delay(Duration::from_secs(4)),
            None,
        ),
    );
    let running = site
        .deploy()
        .args(["--endpoint-url", &proxy.endpoint()])
        .env("HOIST_LOCK_TTL", "2")
        .spawn();
    std::thread::sleep(Duration::from_secs(1));
    // Another run takes the lock over (as it would after the TTL).
    crate::util::put_object(
        &site.client(),
        &site.bucket,
        ".hoist/lock.json",
        r#"{"id":"thief","command":"deploy","host":"elsewhere","pid":1,"since":"2026-01-01T00:00:00Z","refreshed":"2026-01-01T00:00:00Z","ttl_seconds":120}"#,
    );
    let ran = running.wait(Duration::from_secs(60));
    assert_eq!(ran.code(), Some(1), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("took over this run's lock"),
        "{}",
        ran.stderr
    );
    let after = site.contents();
    assert_eq!(
        after["index.html"], before["index.html"],
        "a page was replaced"
    );
    assert!(after.contains_key("assets/app.v1.js"));
    // The lock is the other run's: left alone.
    assert!(after[".hoist/lock.json"].starts_with(b"{\"id\":\"thief\""));
}
