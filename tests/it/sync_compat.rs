//! `hoist sync` beside `aws s3 sync` (issue #4): the same trees and buckets, the same flags,
//! the same output lines, exit codes and final state.
//!
//! Each tool gets its own server of the same kind and its own working directory with the same
//! layout, so bucket names and the relative paths in output lines are identical and compare
//! without rewriting. Every case runs a dry run, a real run and a second real run, and compares
//! the sorted stdout lines, the exit codes and the destination after each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::backends::Server;
use crate::util::{Endpoint, Hoist, Ran, block_on, bucket_contents, put_object};

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Moto,
    Rclone,
}

#[derive(Debug, Clone, Copy)]
pub enum Direction {
    Upload,
    Download,
    Copy,
}

impl Direction {
    fn args(self) -> [&'static str; 2] {
        match self {
            Direction::Upload => ["local", "s3://bkt/site"],
            Direction::Download => ["s3://bkt/site", "local"],
            Direction::Copy => ["s3://bkt/site", "s3://dst/site/"],
        }
    }
}

/// One tool's world: a server, a working directory, and how to reach the server.
pub struct Side {
    pub server: Server,
    pub cwd: tempfile::TempDir,
    pub endpoint: Endpoint,
}

fn start(kind: Kind) -> Option<Server> {
    match kind {
        Kind::Moto => Server::moto(),
        Kind::Rclone => Server::rclone(),
    }
}

impl Side {
    fn new(kind: Kind) -> Option<Side> {
        let server = start(kind)?;
        let endpoint = server.endpoint();
        server.create_bucket("bkt");
        server.create_bucket("dst");
        Some(Side {
            server,
            cwd: tempfile::tempdir().expect("temp dir"),
            endpoint,
        })
    }

    pub fn local(&self) -> PathBuf {
        self.cwd.path().join("local")
    }

    /// Puts an object whose LastModified is the same on both sides' servers. moto lists whole
    /// seconds; rclone lists the upload time to the millisecond, so each tool's server gave
    /// its own fractions, and a `--exact-timestamps` download (local mtimes are whole seconds)
    /// re-downloaded an object on one side only when its time fell on a whole second: a rare
    /// flake in `download_*_time*::rclone`. rclone takes the time from `x-amz-meta-mtime`:
    /// give every object the current second plus a half.
    pub fn put(&self, bucket: &str, key: &str, body: &str) {
        if self.server.name() != "rclone" {
            put_object(&self.endpoint.client(), bucket, key, body);
            return;
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        block_on(
            self.endpoint
                .client()
                .put_object()
                .bucket(bucket)
                .key(key)
                .metadata("mtime", format!("{now}.5"))
                .body(body.as_bytes().to_vec().into())
                .send(),
        )
        .expect("put");
    }

    pub fn aws(&self, args: &[&str]) -> Ran {
        Hoist::aws(self.cwd.path(), &self.endpoint)
            .args(["s3", "sync"])
            .args(args)
            .run()
    }

    pub fn hoist(&self, args: &[&str]) -> Ran {
        Hoist::on(self.cwd.path(), &self.endpoint)
            .arg("sync")
            .args(args)
            .args(["--endpoint-url", &self.endpoint.url])
            .run()
    }

    /// Everything a sync can change: both buckets (key → bytes, Content-Type, Cache-Control)
    /// and the local tree (path → bytes).
    fn state(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let client = self.endpoint.client();
        for bucket in ["bkt", "dst"] {
            for (key, body) in bucket_contents(&client, bucket) {
                let head = crate::util::head(&client, bucket, &key);
                out.insert(
                    format!("s3://{bucket}/{key}"),
                    format!(
                        "{} type={:?} cache={:?}",
                        String::from_utf8_lossy(&body),
                        head.content_type(),
                        head.cache_control()
                    ),
                );
            }
        }
        for (path, body) in local_tree(&self.local()) {
            out.insert(
                format!("local/{path}"),
                String::from_utf8_lossy(&body).into_owned(),
            );
        }
        out
    }
}

pub fn local_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if !root.exists() {
        return out;
    }
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.expect("walk");
        if entry.file_type().is_file() {
            let relative = entry
                .path()
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            out.insert(relative, std::fs::read(entry.path()).expect("read"));
        }
    }
    out
}

pub fn set_mtime(path: &Path, time: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open")
        .set_modified(time)
        .expect("set mtime");
}

/// Long ago, and tomorrow: local times that compare the same way against any LastModified.
fn old() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800) // 2020-01-01
}

fn future() -> SystemTime {
    SystemTime::now() + Duration::from_secs(86_400)
}

/// The same starting point on a side: a local tree, a source prefix and a destination bucket
/// that overlap in every way the comparison rules care about.
fn setup(side: &Side) {
    let local = side.local();
    let files: &[(&str, &str, SystemTime)] = &[
        ("index.html", "<html>v1</html>", old()),
        ("about.html", "about", old()),
        ("app.js", "js", old()),
        ("debug.log", "log", old()),
        ("sub/a.txt", "a", old()),
        ("sub/keep/b.txt", "b", old()),
        ("sub/skip.tmp", "tmp", old()),
        ("space name+plus.txt", "space", old()),
        ("same-size.txt", "12345", future()),
        ("old-same-size.txt", "12345", old()),
    ];
    for (path, body, mtime) in files {
        let path = local.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, body).expect("write");
        set_mtime(&path, *mtime);
    }
    // The source prefix, put before the destination so the destination is never older.
    for (key, body) in [
        ("site/index.html", "<html>v2, longer</html>"),
        ("site/app.js", "js"),
        ("site/same-size.txt", "abcde"),
        ("site/old-same-size.txt", "abcde"),
        ("site/stale.html", "stale"),
        ("site/debug.log", "remote log!"),
        ("site/sub/old.txt", "old"),
        ("site/sub/keep/c.txt", "c"),
        ("elsewhere/untouched.txt", "outside the prefix"),
    ] {
        side.put("bkt", key, body);
    }
    for (key, body) in [
        ("site/index.html", "x"),
        ("site/app.js", "js"),
        ("site/gone.txt", "gone"),
        ("site/debug.log", "dst"),
        ("site-old/keep.txt", "neighbour"),
    ] {
        side.put("dst", key, body);
    }
}

/// Stdout as a sorted list of lines (transfers run concurrently, so order is free).
pub fn lines(ran: &Ran) -> Vec<String> {
    let mut lines: Vec<String> = ran
        .stdout
        .split(['\n', '\r'])
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    lines
}

/// Stderr lines with each side's working directory replaced, sorted.
pub fn error_lines(ran: &Ran, side: &Side) -> Vec<String> {
    let cwd = side.cwd.path().display().to_string();
    let mut lines: Vec<String> = ran
        .stderr
        .lines()
        .map(|l| l.replace(&cwd, "CWD").trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    lines
}

#[track_caller]
pub fn same(step: &str, aws: &Ran, hoist: &Ran) {
    assert_eq!(
        lines(hoist),
        lines(aws),
        "{step}: stdout differs\naws stderr:\n{}\nhoist stderr:\n{}",
        aws.stderr,
        hoist.stderr
    );
    assert_eq!(
        hoist.code(),
        aws.code(),
        "{step}: exit codes differ\naws stderr:\n{}\nhoist stderr:\n{}",
        aws.stderr,
        hoist.stderr
    );
}

pub fn pair(kind: Kind) -> Option<(Side, Side)> {
    Some((Side::new(kind)?, Side::new(kind)?))
}

fn case(kind: Kind, direction: Direction, flags: &[&str]) {
    let Some((aws, hoist)) = pair(kind) else {
        return;
    };
    setup(&aws);
    setup(&hoist);
    let mut args: Vec<&str> = direction.args().to_vec();
    args.extend_from_slice(flags);
    args.push("--no-progress");

    let before = hoist.state();
    let mut dry_args = args.clone();
    dry_args.push("--dryrun");
    let (a, h) = (aws.aws(&dry_args), hoist.hoist(&dry_args));
    same("dry run", &a, &h);
    assert!(
        lines(&h).iter().all(|l| l.starts_with("(dryrun) ")),
        "{}",
        h.stdout
    );
    assert_eq!(hoist.state(), before, "a dry run changed something");

    let (a, h) = (aws.aws(&args), hoist.hoist(&args));
    same("real run", &a, &h);
    assert!(
        !lines(&h).is_empty(),
        "the case transfers nothing: {args:?}"
    );
    assert_eq!(hoist.state(), aws.state(), "final states differ");
    assert_eq!(
        error_lines(&h, &hoist),
        error_lines(&a, &aws),
        "stderr differs"
    );

    let (a, h) = (aws.aws(&args), hoist.hoist(&args));
    same("second run", &a, &h);
    assert_eq!(
        hoist.state(),
        aws.state(),
        "states differ after a second run"
    );
}

macro_rules! compat {
    ($($name:ident: $direction:ident, [$($flag:expr),*];)*) => {
        $(
            mod $name {
                use super::{Direction, Kind, case};

                #[test]
                fn moto() {
                    case(Kind::Moto, Direction::$direction, &[$($flag),*]);
                }

                #[test]
                fn rclone() {
                    case(Kind::Rclone, Direction::$direction, &[$($flag),*]);
                }
            }
        )*
    };
}

compat! {
    upload_plain: Upload, [];
    upload_delete: Upload, ["--delete"];
    upload_exclude_log_delete: Upload, ["--exclude", "*.log", "--delete"];
    upload_only_html: Upload, ["--exclude", "*", "--include", "*.html", "--delete"];
    upload_exclude_dir_include_sub: Upload, ["--exclude", "sub/*", "--include", "sub/keep/*", "--delete"];
    upload_size_only: Upload, ["--size-only"];
    upload_exact_timestamps: Upload, ["--exact-timestamps", "--delete"];
    download_plain: Download, [];
    download_delete: Download, ["--delete"];
    download_exclude_delete: Download, ["--exclude", "*.log", "--exclude", "sub/*", "--delete"];
    download_size_only: Download, ["--size-only"];
    download_exact_timestamps: Download, ["--exact-timestamps"];
    download_both_time_flags: Download, ["--size-only", "--exact-timestamps", "--delete"];
    copy_plain: Copy, [];
    copy_delete: Copy, ["--delete"];
    copy_filters_delete: Copy, ["--exclude", "*", "--include", "*.html", "--include", "sub/*", "--delete"];
    copy_size_only: Copy, ["--size-only", "--delete"];
    // Issue #14: a REPLACE copy without --content-type (or `--metadata` alone, which implies
    // REPLACE). The issue expected a type guessed from the key; aws-cli 1.46.3 sends none (its
    // CopyRequestSubmitter adds no content-type subscriber), so S3 stores its default, and
    // hoist does what aws-cli does: the final states are compared.
    copy_replace_sends_no_type: Copy, ["--metadata-directive", "REPLACE"];
    copy_metadata_alone_sends_no_type: Copy, ["--metadata", "team=web"];
    upload_headers: Upload, ["--cache-control", "max-age=60", "--content-type", "text/plain", "--metadata", "team=web"];
}

#[cfg(unix)]
#[test]
fn warnings_for_unpublishable_files_match_with_exit_2() {
    let Some((aws, hoist)) = pair(Kind::Moto) else {
        return;
    };
    for side in [&aws, &hoist] {
        let local = side.local();
        std::fs::create_dir_all(&local).expect("mkdir");
        std::fs::write(local.join("ok.txt"), "ok").expect("write");
        std::os::unix::fs::symlink("missing-target", local.join("dangling")).expect("symlink");
        let status = std::process::Command::new("mkfifo")
            .arg(local.join("pipe"))
            .status()
            .expect("mkfifo");
        assert!(status.success());
    }
    let args = ["local", "s3://bkt/w", "--no-progress"];
    let (a, h) = (aws.aws(&args), hoist.hoist(&args));
    same("warnings", &a, &h);
    assert_eq!(h.code(), Some(2));
    assert_eq!(error_lines(&h, &hoist), error_lines(&a, &aws));
    assert!(h.stderr.contains("warning: Skipping file"), "{}", h.stderr);
}

#[test]
fn a_missing_bucket_fails_both_with_exit_1() {
    let Some((aws, hoist)) = pair(Kind::Moto) else {
        return;
    };
    for side in [&aws, &hoist] {
        std::fs::create_dir_all(side.local()).expect("mkdir");
        std::fs::write(side.local().join("a.txt"), "a").expect("write");
    }
    for args in [
        &["local", "s3://no-such-bucket/x"][..],
        &["s3://no-such-bucket/x", "local"][..],
    ] {
        let (a, h) = (aws.aws(args), hoist.hoist(args));
        assert_eq!(
            h.code(),
            a.code(),
            "{args:?}\naws: {}\nhoist: {}",
            a.stderr,
            h.stderr
        );
        assert_eq!(h.code(), Some(1));
        assert!(h.stderr.contains("NoSuchBucket"), "{}", h.stderr);
    }
}

#[test]
fn downloads_never_leave_the_destination() {
    // Keys planted by someone else: hoist skips every one that would not map to a plain path
    // under the destination, warns, exits 2, and downloads the rest.
    let Some(hoist) = Side::new(Kind::Moto) else {
        return;
    };
    let planted = [
        "p/../escape.txt",
        "p/a/../../up.txt",
        "p//abs.txt",
        "p/back\\slash.txt",
        "p/C:/drive.txt",
        "p/folder/",
        "p/./dot.txt",
    ];
    for key in planted {
        hoist.put("bkt", key, "planted");
    }
    hoist.put("bkt", "p/fine/ok.txt", "fine");
    let dest = hoist.cwd.path().join("dl");
    let ran = hoist.hoist(&["s3://bkt/p/", "dl", "--no-progress"]);
    assert_eq!(ran.code(), Some(2), "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stderr.contains("warning: Skipping file"),
        "{}",
        ran.stderr
    );
    let everything = local_tree(hoist.cwd.path());
    assert_eq!(
        everything.keys().collect::<Vec<_>>(),
        ["dl/fine/ok.txt"],
        "files written: {everything:?}"
    );
    assert_eq!(local_tree(&dest)["fine/ok.txt"], b"fine");
    // A second run changes nothing and says the same.
    let again = hoist.hoist(&["s3://bkt/p/", "dl", "--no-progress"]);
    assert_eq!(again.code(), Some(2));
    assert!(lines(&again).is_empty(), "{}", again.stdout);
}

#[test]
fn a_multipart_upload_sends_what_aws_cli_sends_and_no_head() {
    // sync keeps no record of ETags, so a multipart upload is Create, the parts and Complete
    // (as aws-cli), with no HEAD after it to learn the ETag listings show.
    let Some(hoist) = Side::new(Kind::Moto) else {
        return;
    };
    let moto = hoist.server.moto_server().expect("moto");
    let big: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::create_dir_all(hoist.local()).expect("mkdir");
    std::fs::write(hoist.local().join("big.bin"), &big).expect("write");
    moto.start_recording();
    let ran = hoist.hoist(&["local", "s3://bkt/m/", "--no-progress"]);
    moto.stop_recording();
    assert_eq!(ran.code(), Some(0), "{}", ran.stderr);
    let operations: Vec<String> = moto
        .recording()
        .iter()
        .map(|r| {
            let query = r.query();
            let op = if query.contains("list-type=2") {
                "ListObjectsV2"
            } else if r.method == "POST" && query.contains("uploads") {
                "CreateMultipartUpload"
            } else if r.method == "PUT" && query.contains("partNumber") {
                "UploadPart"
            } else if r.method == "POST" && query.contains("uploadId") {
                "CompleteMultipartUpload"
            } else if r.method == "GET" && query.contains("uploads") {
                "ListMultipartUploads"
            } else {
                return format!("{} {}", r.method, r.url);
            };
            op.to_string()
        })
        .collect();
    assert_eq!(
        operations,
        [
            "ListObjectsV2",
            "CreateMultipartUpload",
            "UploadPart",
            "UploadPart",
            "UploadPart",
            "CompleteMultipartUpload",
            // hoist's one addition, after a run that uploaded in parts: find the uploads a
            // killed run left, to abort them (issue #11).
            "ListMultipartUploads"
        ]
    );
    let stored = bucket_contents(&hoist.endpoint.client(), "bkt");
    assert!(stored["m/big.bin"] == big, "the object's bytes differ");
}

/// Issue #14: a colon in a key (`a:colon.txt`, `12:30/log.txt`) is an ordinary file name on a
/// Unix destination: downloaded like aws-cli does, same lines, same tree.
#[cfg(unix)]
#[test]
fn keys_with_a_colon_download_like_aws_cli() {
    let Some((aws, hoist)) = pair(Kind::Moto) else {
        return;
    };
    for side in [&aws, &hoist] {
        side.put("bkt", "p/a:colon.txt", "colon");
        side.put("bkt", "p/12:30/log.txt", "log");
    }
    let args = ["s3://bkt/p/", "local", "--no-progress"];
    let (a, h) = (aws.aws(&args), hoist.hoist(&args));
    same("colon keys", &a, &h);
    assert_eq!(h.code(), Some(0), "{}", h.stderr);
    assert_eq!(
        local_tree(&hoist.local()).keys().collect::<Vec<_>>(),
        ["12:30/log.txt", "a:colon.txt"]
    );
    assert_eq!(local_tree(&hoist.local()), local_tree(&aws.local()));
}

/// Issue #14: options aws-cli does not know (`--recursive`, `--bogus`, an extra argument) make
/// both tools print the same `Unknown options:` report and exit 255.
#[test]
fn unknown_options_are_reported_like_aws_cli() {
    let Some((aws, hoist)) = pair(Kind::Moto) else {
        return;
    };
    for side in [&aws, &hoist] {
        std::fs::create_dir_all(side.local()).expect("mkdir");
    }
    for extra in [
        &["--recursive"][..],
        &["--bogus", "--recursive"][..],
        &["extra", "--bogus=3"][..],
    ] {
        let mut args = vec!["local", "s3://bkt/p"];
        args.extend_from_slice(extra);
        let (a, h) = (aws.aws(&args), hoist.hoist(&args));
        assert_eq!(a.code(), Some(255), "{}", a.stderr);
        assert_eq!(h.code(), a.code(), "{extra:?}: {}", h.stderr);
        assert_eq!(h.stderr, a.stderr, "{extra:?}");
        assert!(h.stdout.is_empty());
    }
}

/// Issue #14: an S3 Express directory bucket on either side is refused before any request
/// (the endpoint here accepts no connection), with aws-cli's message and exit code.
#[test]
fn directory_buckets_are_refused_like_aws_cli() {
    let Some((aws, hoist)) = pair(Kind::Moto) else {
        return;
    };
    for side in [&aws, &hoist] {
        std::fs::create_dir_all(side.local()).expect("mkdir");
    }
    let bucket = "s3://site--usw2-az1--x-s3/p";
    for args in [
        ["local", bucket, "--endpoint-url", "http://127.0.0.1:9"],
        [bucket, "local", "--endpoint-url", "http://127.0.0.1:9"],
    ] {
        let a = Hoist::aws(aws.cwd.path(), &aws.endpoint)
            .args(["s3", "sync"])
            .args(args)
            .run();
        let h = Hoist::on(hoist.cwd.path(), &hoist.endpoint)
            .arg("sync")
            .args(args)
            .run();
        assert_eq!(a.code(), Some(255), "{}", a.stderr);
        assert_eq!(h.code(), a.code(), "{}", h.stderr);
        let sentence = "Cannot use sync command with a directory bucket.";
        assert!(
            a.stderr.contains(sentence) && h.stderr.contains(sentence),
            "{}",
            h.stderr
        );
    }
}

/// Issue #14: `--page-size N` lists N keys a page (MaxKeys), across page boundaries with `+`,
/// spaces and non-ASCII in keys: the same lines and tree as aws-cli, and both send
/// `max-keys=2` on every listing.
#[test]
fn page_size_lists_in_pages_like_aws_cli() {
    let Some((aws, hoist)) = pair(Kind::Moto) else {
        return;
    };
    let keys = [
        "a+b.txt",
        "c d.txt",
        "caf\u{e9}.txt",
        "z/1.txt",
        "z/2.txt",
        "z/3 + 4.txt",
    ];
    for side in [&aws, &hoist] {
        for key in keys {
            side.put("bkt", &format!("pg/{key}"), key);
        }
    }
    let args = ["s3://bkt/pg/", "local", "--page-size", "2", "--no-progress"];
    let mut listed = Vec::new();
    let mut runs = Vec::new();
    for (side, is_aws) in [(&aws, true), (&hoist, false)] {
        let moto = side.server.moto_server().expect("moto");
        moto.start_recording();
        runs.push(if is_aws {
            side.aws(&args)
        } else {
            side.hoist(&args)
        });
        moto.stop_recording();
        let pages: Vec<String> = moto
            .recording()
            .into_iter()
            .filter(|r| r.method == "GET" && r.query().contains("list-type=2"))
            .map(|r| r.query())
            .collect();
        listed.push(pages);
    }
    same("page size", &runs[0], &runs[1]);
    assert_eq!(local_tree(&hoist.local()), local_tree(&aws.local()));
    assert_eq!(local_tree(&hoist.local()).len(), keys.len());
    for pages in &listed {
        assert!(pages.len() >= 3, "{pages:?}");
        assert!(pages.iter().all(|q| q.contains("max-keys=2")), "{pages:?}");
    }
}

/// Issue #14: `--request-payer requester` puts `x-amz-request-payer: requester` on every
/// request, listings included, in both tools, which print the same lines.
#[test]
fn request_payer_is_sent_on_every_request_like_aws_cli() {
    let Some((aws, hoist)) = pair(Kind::Moto) else {
        return;
    };
    for side in [&aws, &hoist] {
        setup(side);
    }
    // The upload below rewrites site/debug.log, which the copy then compares with the
    // destination's (same size): LastModified has whole seconds, so the upload must land in a
    // later second than setup's puts on both sides, or either tool may see them as equal.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for args in [
        &["local", "s3://bkt/site", "--delete"][..],
        &["s3://bkt/site", "local", "--delete"][..],
        &["s3://bkt/site", "s3://dst/site"][..],
    ] {
        let mut args = args.to_vec();
        args.extend(["--request-payer", "requester", "--no-progress"]);
        let mut runs = Vec::new();
        for (side, is_aws) in [(&aws, true), (&hoist, false)] {
            let moto = side.server.moto_server().expect("moto");
            moto.start_recording();
            runs.push(if is_aws {
                side.aws(&args)
            } else {
                side.hoist(&args)
            });
            moto.stop_recording();
            let recording = moto.recording();
            assert!(!recording.is_empty());
            let without: Vec<String> = recording
                .iter()
                .filter(|r| r.header("x-amz-request-payer") != Some("requester"))
                .map(|r| format!("{} {}", r.method, r.url))
                .collect();
            assert!(
                without.is_empty(),
                "{} sent requests without the header: {without:?}",
                if is_aws { "aws" } else { "hoist" }
            );
        }
        same("request payer", &runs[0], &runs[1]);
        assert_eq!(hoist.state(), aws.state(), "{args:?}");
    }
}

/// Issue #14: archived objects (GLACIER, DEEP_ARCHIVE) on download and S3→S3 copy: skipped
/// with aws-cli's warning (which says GLACIER for both) and exit 2; skipped silently with
/// `--ignore-glacier-warnings`; attempted with `--force-glacier-transfer` (moto, like S3,
/// refuses a GET of an unrestored object). Each case side by side: lines, stderr, exit code,
/// final state.
#[test]
fn archived_objects_like_aws_cli() {
    use aws_sdk_s3::types::StorageClass;
    for flags in [
        &[][..],
        &["--ignore-glacier-warnings"][..],
        &["--force-glacier-transfer"][..],
    ] {
        for direction in [["s3://bkt/arc", "local"], ["s3://bkt/arc", "s3://dst/arc"]] {
            let Some((aws, hoist)) = pair(Kind::Moto) else {
                return;
            };
            for side in [&aws, &hoist] {
                let client = side.endpoint.client();
                for (key, class) in [
                    ("arc/cold.txt", Some(StorageClass::Glacier)),
                    ("arc/colder.txt", Some(StorageClass::DeepArchive)),
                    ("arc/warm.txt", None),
                ] {
                    block_on(
                        client
                            .put_object()
                            .bucket("bkt")
                            .key(key)
                            .set_storage_class(class)
                            .body(key.as_bytes().to_vec().into())
                            .send(),
                    )
                    .expect("put");
                }
            }
            let mut args = direction.to_vec();
            args.extend_from_slice(flags);
            args.push("--no-progress");
            let (a, h) = (aws.aws(&args), hoist.hoist(&args));
            same(&format!("{args:?}"), &a, &h);
            assert_eq!(
                error_lines(&h, &hoist),
                error_lines(&a, &aws),
                "{args:?}: stderr"
            );
            // The state, without GETs (archived objects refuse them): the local tree and the
            // destination bucket's keys.
            let state = |side: &Side| {
                let listed = block_on(
                    side.endpoint
                        .client()
                        .list_objects_v2()
                        .bucket("dst")
                        .send(),
                )
                .expect("list");
                let keys: Vec<String> = listed
                    .contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string))
                    .collect();
                (local_tree(&side.local()), keys)
            };
            assert_eq!(state(&hoist), state(&aws), "{args:?}: final state");
            if flags.is_empty() {
                assert_eq!(h.code(), Some(2), "{}", h.stderr);
                assert_eq!(
                    h.stderr.matches("storage class GLACIER").count(),
                    2,
                    "{}",
                    h.stderr
                );
            }
        }
    }
}
