//! Issue #15: requests in flight at the defaults and at each setting, observed at a proxy that
//! holds every PutObject for a while so requests pile up to the client's limit. Not a timed
//! test: it counts requests in flight, which is what decides the time over a real network
//! (the speed itself is measured by `bench/run-latency`).

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::backends::Server;
use crate::deploy::Site;
use crate::proxy::{Fault, FaultProxy, Plan};
use crate::util::Hoist;

/// A proxy that holds every object PUT for `hold`. Long enough that a client on a loaded
/// CI machine (tests run in parallel on two cores) has opened every connection it is allowed
/// before the first answer comes back: at 300 ms a default run was once seen with 58 in flight.
fn slow_puts(server: &Server, hold: Duration) -> FaultProxy {
    FaultProxy::start(
        &server.endpoint().url,
        Plan::new().rule(
            |request| request.method == "PUT" && request.path().matches('/').count() > 1,
            Fault::Delay(hold),
            None,
        ),
    )
}

/// How long the proxy holds a PUT when the test is about the default of 128 in flight: long
/// enough for a busy two-core machine to open every allowed connection.
const HOLD_FOR_DEFAULT: Duration = Duration::from_secs(3);

/// How long it holds one when the test is about a small setting.
const HOLD_FOR_FEW: Duration = Duration::from_millis(300);

fn small_files(root: &std::path::Path, count: usize) {
    std::fs::create_dir_all(root).expect("mkdir");
    for i in 0..count {
        std::fs::write(
            root.join(format!("page-{i:03}.html")),
            format!("<p>{i}</p>"),
        )
        .expect("write");
    }
}

/// Runs `hoist sync` of `files` small files through a slow proxy; the most PUTs it had in
/// flight at once.
fn sync_in_flight(
    files: usize,
    hold: Duration,
    extra: &[&str],
    config: Option<&str>,
) -> Option<usize> {
    let server = Server::moto()?;
    let bucket = crate::util::fresh_bucket("conc");
    server.create_bucket(&bucket);
    let dir = tempfile::tempdir().expect("temp dir");
    small_files(&dir.path().join("local"), files);
    let proxy = slow_puts(&server, hold);
    let mut run = Hoist::on(dir.path(), &server.endpoint())
        .args([
            "sync",
            "local",
            &format!("s3://{bucket}/p"),
            "--no-progress",
        ])
        .args(["--endpoint-url", &proxy.endpoint()])
        .args(extra);
    if let Some(config) = config {
        let path = dir.path().join("aws-config");
        std::fs::write(&path, config).expect("config");
        run = run.env("AWS_CONFIG_FILE", path.display().to_string());
    }
    let ran = run.run();
    assert_eq!(ran.code(), Some(0), "{}", ran.stderr);
    assert_eq!(ran.stdout.lines().count(), files, "{}", ran.stdout);
    Some(proxy.stats.max_in_flight.load(Ordering::SeqCst))
}

/// Files enough for the window to reach the default: it starts at 16 places and doubles each
/// round of answers (16 + 32 + 64 uploads), then a round of 128.
const FILES_FOR_DEFAULT: usize = 250;

/// The default user: up to 128 uploads in flight (aws-cli keeps 10), so a deploy across 20 ms
/// of round trip is not bound by one request at a time per slot. The window starts at 16 and
/// doubles each round of answers, so 250 files held 3 s each reach 128 in the fourth round.
#[test]
fn sync_keeps_128_requests_in_flight_by_default() {
    let Some(most) = sync_in_flight(FILES_FOR_DEFAULT, HOLD_FOR_DEFAULT, &[], None) else {
        return;
    };
    assert!((120..=128).contains(&most), "{most} PUTs in flight at once");
}

/// `--concurrency` and the profile's `s3.max_concurrent_requests` still win over the default.
#[test]
fn concurrency_settings_win_over_the_default() {
    let Some(most) = sync_in_flight(30, HOLD_FOR_FEW, &["--concurrency", "3"], None) else {
        return;
    };
    assert_eq!(most, 3, "--concurrency 3");
    let profile = "[default]\ns3 =\n  max_concurrent_requests = 7\n";
    let most = sync_in_flight(30, HOLD_FOR_FEW, &[], Some(profile)).expect("moto");
    assert_eq!(most, 7, "max_concurrent_requests = 7");
}

/// `hoist deploy` at its defaults reaches 128 uploads in flight too; `concurrency:` wins.
#[test]
fn deploy_keeps_128_requests_in_flight_by_default() {
    let Some(server) = Server::moto() else {
        return;
    };
    let files: Vec<(String, String)> = (0..FILES_FOR_DEFAULT)
        .map(|i| {
            (
                format!("static/chunk-{i:03}.js"),
                format!("console.log({i})"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    for (config, want, hold, count) in [
        (
            "source: site\n",
            120..=128,
            HOLD_FOR_DEFAULT,
            FILES_FOR_DEFAULT,
        ),
        ("source: site\nconcurrency: 5\n", 5..=5, HOLD_FOR_FEW, 30),
    ] {
        let refs = &refs[..count];
        let site = Site::with_config(&server, refs, config, "");
        let proxy = slow_puts(&server, hold);
        let ran = site
            .deploy()
            .args(["--endpoint-url", &proxy.endpoint()])
            .run();
        assert_eq!(ran.code(), Some(0), "{}", ran.stderr);
        let most = proxy.stats.max_in_flight.load(Ordering::SeqCst);
        assert!(want.contains(&most), "{config:?}: {most} PUTs in flight");
    }
}

/// A proxy that holds every ListObjectsV2 for `hold`, so the pages asked for at once pile up.
fn slow_listings(server: &Server, hold: Duration) -> FaultProxy {
    FaultProxy::start(
        &server.endpoint().url,
        Plan::new().rule(
            |request| request.method == "GET" && request.target.contains("list-type=2"),
            Fault::Delay(hold),
            None,
        ),
    )
}

/// How long the proxy holds a listing page: long enough that pages asked for one after the
/// other never overlap, and ones asked for at once always do, on a loaded machine.
const HOLD_LISTING: Duration = Duration::from_secs(1);

/// `count` pages `local/page-NNNN.html` in a temporary directory, written over a second before
/// they are first synced: LastModified has whole seconds, and an upload in the second the
/// files were written would leave them looking newer than their objects.
fn numbered_pages(count: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("local");
    std::fs::create_dir_all(&root).expect("mkdir");
    for i in 0..count {
        std::fs::write(
            root.join(format!("page-{i:04}.html")),
            format!("<p>{i}</p>"),
        )
        .expect("write");
    }
    std::thread::sleep(Duration::from_millis(1100));
    (dir, root)
}

/// A no-op sync of 2,001 files at the defaults lists its three pages at once: the local names
/// say where each page of 1,000 would begin, so over 20 ms of round trip the listing costs one
/// round trip, not one per page. The listing is still the whole listing: keys only the bucket
/// has, before, between and after the split points (one makes the first stretch a page and a
/// key longer than 1,000), are the ones `--delete` deletes, and nothing else moves.
#[test]
fn a_no_op_sync_lists_its_pages_at_once() {
    let Some(server) = Server::moto() else {
        return;
    };
    let bucket = crate::util::fresh_bucket("list");
    server.create_bucket(&bucket);
    let (dir, _) = numbered_pages(2001);
    let target = format!("s3://{bucket}/p/");
    let sync = |endpoint: &str, extra: &[&str]| {
        Hoist::on(dir.path(), &server.endpoint())
            .args(["sync", "local", &target, "--no-progress"])
            .args(["--endpoint-url", endpoint])
            .args(extra)
            .run()
    };
    let first = sync(&server.endpoint().url, &[]);
    assert_eq!(first.code(), Some(0), "{}", first.stderr);
    assert_eq!(first.stdout.lines().count(), 2001);
    let extras = [
        "a.html",
        "page-0999a.html",
        "page-1500-old.html",
        "page-1999a.html",
        "zz.html",
    ];
    let client = server.endpoint().client();
    for extra in extras {
        crate::util::put_object(&client, &bucket, &format!("p/{extra}"), "old");
    }

    let proxy = slow_listings(&server, HOLD_LISTING);
    let ran = sync(&proxy.endpoint(), &["--delete"]);
    assert_eq!(ran.code(), Some(0), "{}", ran.stderr);
    let mut lines: Vec<&str> = ran.stdout.lines().collect();
    lines.sort_unstable();
    let want: Vec<String> = extras
        .iter()
        .map(|extra| format!("delete: {target}{extra}"))
        .collect();
    assert_eq!(lines, want, "exactly the bucket's own keys are deleted");
    let most = proxy.stats.max_in_flight.load(Ordering::SeqCst);
    assert_eq!(most, 3, "listing pages in flight at once");

    let proxy = slow_listings(&server, HOLD_LISTING);
    let again = sync(&proxy.endpoint(), &["--delete"]);
    assert_eq!(again.code(), Some(0), "{}", again.stderr);
    assert_eq!(again.stdout, "", "a no-op");
    assert_eq!(proxy.stats.max_in_flight.load(Ordering::SeqCst), 3);
    assert_eq!(
        proxy.stats.requests.load(Ordering::SeqCst),
        3,
        "one request a page"
    );
}

/// A store that ignores `StartAfter` answers every stretch from the start: hoist sees a key it
/// has already passed, lists again page after page, and the listing is still the listing.
#[test]
fn a_store_that_ignores_start_after_still_lists_everything() {
    let Some(server) = Server::moto() else {
        return;
    };
    let bucket = crate::util::fresh_bucket("list");
    server.create_bucket(&bucket);
    let (dir, root) = numbered_pages(1100);
    let target = format!("s3://{bucket}/p/");
    let sync = |endpoint: &str| {
        Hoist::on(dir.path(), &server.endpoint())
            .args(["sync", "local", &target, "--no-progress", "--delete"])
            .args(["--endpoint-url", endpoint])
            .run()
    };
    let first = sync(&server.endpoint().url);
    assert_eq!(first.code(), Some(0), "{}", first.stderr);
    let client = server.endpoint().client();
    crate::util::put_object(&client, &bucket, "p/page-1050-old.html", "old");
    std::fs::remove_file(root.join("page-0005.html")).expect("rm");
    let proxy = FaultProxy::start(
        &server.endpoint().url,
        Plan::new().rule(
            |request| request.target.contains("start-after="),
            Fault::DropStartAfter,
            None,
        ),
    );
    let ran = sync(&proxy.endpoint());
    assert_eq!(ran.code(), Some(0), "{}", ran.stderr);
    let mut lines: Vec<&str> = ran.stdout.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            format!("delete: {target}page-0005.html"),
            format!("delete: {target}page-1050-old.html"),
        ]
    );
    assert!(
        proxy.stats.faults.load(Ordering::SeqCst) >= 1,
        "the stretch after the split point was asked for"
    );
}

/// `hoist deploy` lists at once too: a no-op deploy of 2,001 files asks for its three pages
/// together (beside the manifest's GET), where page after page keeps one in flight.
#[test]
fn a_no_op_deploy_lists_its_pages_at_once() {
    let Some(server) = Server::moto() else {
        return;
    };
    let files: Vec<(String, String)> = (0..2001)
        .map(|i| {
            (
                format!("static/chunk-{i:04}.js"),
                format!("console.log({i})"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let site = Site::with_config(&server, &refs, "source: site\n", "");
    let first = site.deploy().run();
    assert_eq!(first.code(), Some(0), "{}", first.stderr);
    for dry in [true, false] {
        let proxy = slow_listings(&server, HOLD_LISTING);
        let mut run = site.deploy().args(["--endpoint-url", &proxy.endpoint()]);
        if dry {
            run = run.arg("--dryrun");
        }
        let ran = run.run();
        assert_eq!(ran.code(), Some(0), "{}", ran.stderr);
        let most = proxy.stats.max_in_flight.load(Ordering::SeqCst);
        assert!(most >= 3, "dry run {dry}: {most} requests in flight");
    }
}
