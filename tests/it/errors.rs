//! Bad input: each case ends with a one-line error naming what is wrong, the documented exit
//! code, and nothing changed in the target. Plus the security checks of issue #6: secrets never
//! printed, hostile keys escaped.

use std::time::{Duration, Instant};

use crate::backends::Server;
use crate::deploy::{FILES, Site};
use crate::util::{Hoist, write_tree};

/// A deploy in a temp dir with a local target, for cases that need no server.
fn local_case(config: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, Hoist) {
    let dir = tempfile::tempdir().expect("temp dir");
    write_tree(&dir.path().join("site"), files);
    std::fs::write(dir.path().join("deploy.yaml"), config).expect("config");
    let hoist = Hoist::new(dir.path()).arg("deploy");
    (dir, hoist)
}

#[track_caller]
fn assert_error(stderr: &str, wants: &[&str]) {
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("error: "), "{stderr}");
    for want in wants {
        assert!(stderr.contains(want), "`{want}` missing from:\n{stderr}");
    }
}

#[test]
fn config_errors_name_file_line_and_key_with_exit_2() {
    let cases: &[(&str, &[&str])] = &[
        (
            "source: site\ntarget: file://out\nrules: [\n",
            &["deploy.yaml", "line"],
        ),
        (
            "source: site\ntarget: file://out\nrulez: []\n",
            &["deploy.yaml", "unknown field `rulez`", "line 3"],
        ),
        (
            "source: site\ntarget: file://out\nmax_deletes: many\n",
            &["deploy.yaml", "max_deletes", "invalid type", "line 3"],
        ),
        (
            "source: site\ntarget: file://out\nrules:\n  - match: 'a/[z-a]'\n",
            &["deploy.yaml", "rules[0].match", "invalid glob", "line 4"],
        ),
        (
            "source: site\ntarget: file://out\nrules:\n  - match: '*'\n    acl: everyone\n",
            &["rules[0].acl", "unknown canned ACL `everyone`", "line 5"],
        ),
        (
            "source: site\ntarget: file://out\nrules:\n  - match: '*'\n    immutable: sometimes\n",
            &["rules[0].immutable", "line 5"],
        ),
    ];
    for (config, wants) in cases {
        let (dir, hoist) = local_case(config, &[("index.html", "x")]);
        let ran = hoist.run().exit(2);
        assert_error(&ran.stderr, wants);
        assert!(!dir.path().join("out").exists(), "{config}: target touched");
    }
}

#[test]
fn source_problems_exit_2_and_name_the_path() {
    let (dir, hoist) = local_case("source: nowhere\ntarget: file://out\n", &[]);
    let ran = hoist.run().exit(2);
    assert_error(&ran.stderr, &["nowhere", "does not exist"]);
    assert!(!dir.path().join("out").exists());

    let (dir, hoist) = local_case("source: file.txt\ntarget: file://out\n", &[]);
    std::fs::write(dir.path().join("file.txt"), "x").expect("write");
    let ran = hoist.run().exit(2);
    assert_error(&ran.stderr, &["file.txt", "not a directory"]);

    let (_dir, hoist) = local_case("target: file://out\n", &[]);
    assert_error(&hoist.run().exit(2).stderr, &["no source directory"]);

    let (_dir, hoist) = local_case("source: site\n", &[("a", "b")]);
    assert_error(&hoist.run().exit(2).stderr, &["no target"]);

    let (_dir, hoist) = local_case("source: site\ntarget: s4://bucket\n", &[("a", "b")]);
    assert_error(
        &hoist.run().exit(2).stderr,
        &["malformed target `s4://bucket`"],
    );

    let (_dir, hoist) = local_case("source: site\ntarget: s3://x\n", &[("a", "b")]);
    assert_error(&hoist.run().exit(2).stderr, &["bucket name `x`"]);

    let dir = tempfile::tempdir().expect("temp dir");
    let ran = Hoist::new(dir.path())
        .args(["deploy", "--config", "missing.yaml"])
        .run()
        .exit(2);
    assert_error(&ran.stderr, &["missing.yaml"]);
}

#[test]
fn empty_source_never_wipes_a_site() {
    let (dir, hoist) = local_case("source: site\ntarget: file://out\n", &[("index.html", "x")]);
    hoist.success();
    std::fs::remove_file(dir.path().join("site/index.html")).expect("rm");
    let ran = Hoist::new(dir.path()).arg("deploy").run().exit(1);
    assert_error(&ran.stderr, &["no files to publish", "--force"]);
    assert!(
        dir.path().join("out/index.html").exists(),
        "the site was wiped"
    );
    Hoist::new(dir.path()).args(["deploy", "--force"]).success();
    assert!(!dir.path().join("out/index.html").exists());
}

#[cfg(unix)]
#[test]
fn unpublishable_files_exit_2_before_any_change() {
    use std::os::unix::ffi::OsStrExt;
    // A symlink loop.
    let (dir, hoist) = local_case(
        "source: site\ntarget: file://out\n",
        &[("a/index.html", "x")],
    );
    std::os::unix::fs::symlink("..", dir.path().join("site/a/up")).expect("symlink");
    assert_error(&hoist.run().exit(2).stderr, &["symlink loop"]);
    assert!(!dir.path().join("out").exists());

    // A non-UTF-8 name.
    let (dir, hoist) = local_case("source: site\ntarget: file://out\n", &[("ok.html", "x")]);
    let name = std::ffi::OsStr::from_bytes(b"bad\xffname.html");
    std::fs::write(dir.path().join("site").join(name), "x").expect("write");
    assert_error(&hoist.run().exit(2).stderr, &["not valid UTF-8"]);
    assert!(!dir.path().join("out").exists());

    // A key longer than S3 allows (a deep path of long names).
    let (dir, hoist) = local_case("source: site\ntarget: file://out\n", &[("ok.html", "x")]);
    let long: std::path::PathBuf = (0..5).map(|i| format!("{i}{}", "d".repeat(240))).collect();
    let deep = dir.path().join("site").join(long);
    std::fs::create_dir_all(&deep).expect("mkdir");
    std::fs::write(deep.join("f.html"), "x").expect("write");
    assert_error(&hoist.run().exit(2).stderr, &["longer than the 1024 bytes"]);
    assert!(!dir.path().join("out").exists());

    // A FIFO (reading it would block forever).
    let (dir, hoist) = local_case("source: site\ntarget: file://out\n", &[("ok.html", "x")]);
    let status = std::process::Command::new("mkfifo")
        .arg(dir.path().join("site/pipe"))
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    assert_error(&hoist.run().exit(2).stderr, &["pipe", "not a regular file"]);
    assert!(!dir.path().join("out").exists());

    // A broken symlink.
    let (dir, hoist) = local_case("source: site\ntarget: file://out\n", &[("ok.html", "x")]);
    std::os::unix::fs::symlink("nothing-here", dir.path().join("site/dangling")).expect("symlink");
    assert_error(&hoist.run().exit(2).stderr, &["dangling"]);
    assert!(!dir.path().join("out").exists());
}

#[test]
fn missing_bucket_exits_1_and_names_it() {
    let Some(server) = Server::moto() else { return };
    let site = Site::new(&server, FILES);
    let ran = site
        .deploy()
        .args(["--target", "s3://no-such-bucket-here/"])
        .run()
        .exit(1);
    assert_error(
        &ran.stderr,
        &["bucket `no-such-bucket-here` does not exist"],
    );
}

#[test]
fn no_credentials_exit_1_with_a_hint() {
    let Some(server) = Server::moto() else { return };
    let site = Site::new(&server, FILES);
    let ran = site
        .deploy()
        .remove_env("AWS_ACCESS_KEY_ID")
        .remove_env("AWS_SECRET_ACCESS_KEY")
        .run()
        .exit(1);
    assert_error(
        &ran.stderr,
        &["no AWS credentials", "hint:", "AWS_ACCESS_KEY_ID"],
    );
    // A dry run that never listed the target has no plan to summarize: no "would deploy ...
    // 0 unchanged" line that reads as if the target were empty.
    let dry = site
        .deploy()
        .arg("--dryrun")
        .remove_env("AWS_ACCESS_KEY_ID")
        .remove_env("AWS_SECRET_ACCESS_KEY")
        .run()
        .exit(1);
    assert_error(&dry.stderr, &["no AWS credentials", "hint:"]);
    assert_eq!(dry.stdout, "", "a failed dry run prints no summary");
}

#[test]
fn wrong_secret_is_access_denied() {
    let Some(server) = Server::rclone() else {
        return;
    };
    let site = Site::new(&server, FILES);
    let before = site.contents();
    let ran = site
        .deploy()
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        .run()
        .exit(1);
    assert_error(&ran.stderr, &["access denied"]);
    assert!(!ran.stderr.contains("not-the-secret"));
    assert_eq!(site.contents(), before);
}

#[test]
fn unreachable_endpoint_fails_fast() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_tree(&dir.path().join("site"), &[("index.html", "x")]);
    // A port nothing listens on: connection refused, retried, then a clear error.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let started = Instant::now();
    let ran = Hoist::new(dir.path())
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "s")
        .args([
            "deploy",
            "--source",
            "site",
            "--target",
            "s3://some-bucket/",
            "--endpoint-url",
            &format!("http://127.0.0.1:{port}"),
        ])
        .run()
        .exit(1);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert_error(
        &ran.stderr,
        &["cannot reach the endpoint", &port.to_string()],
    );
}

#[test]
fn secrets_never_appear_in_output() {
    let Some(server) = Server::moto() else { return };
    let site = Site::new(&server, FILES);
    let secret = "SENTINELsecretKEY0123456789abcdefSENTINEL";
    let token = "SENTINELsessionTOKENzyxwvutsrqponmSENTINEL";
    for args in [
        &["-vv"][..],
        &["-vv", "--dryrun"][..],
        &["-vv", "--output", "json"][..],
    ] {
        let ran = site
            .deploy()
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_SESSION_TOKEN", token)
            .args(args)
            .run();
        let all = format!("{}{}", ran.stdout, ran.stderr);
        assert!(all.len() > 1000, "-vv printed little: {all}");
        assert!(!all.contains(secret), "secret key printed with {args:?}");
        assert!(!all.contains(token), "session token printed with {args:?}");
        assert!(
            !all.contains("SENTINEL"),
            "part of a secret printed with {args:?}"
        );
    }
    // Issue #14: a customer key (`--sse-c-key`) is a secret too, raw or as the base64 it is
    // sent as, on upload and download, in hoist's own and the SDK's debug output.
    let key = "SENTINELcustomerKEY0123456789abc";
    let encoded = "U0VOVElORUxjdXN0b21lcktFWTAxMjM0NTY3ODlhYmM=";
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("up")).expect("mkdir");
    std::fs::write(dir.path().join("up/a.txt"), "a").expect("write");
    let endpoint = server.endpoint();
    for (source, destination) in [
        ("up", "s3://sse-c-secret/p"),
        ("s3://sse-c-secret/p", "down"),
    ] {
        server.create_bucket("sse-c-secret");
        let ran = Hoist::on(dir.path(), &endpoint)
            .args([
                "-vv",
                "sync",
                source,
                destination,
                "--sse-c",
                "--sse-c-key",
                key,
            ])
            .args(["--endpoint-url", &endpoint.url])
            .run();
        assert_eq!(ran.code(), Some(0), "{}", ran.stderr);
        let all = format!("{}{}", ran.stdout, ran.stderr);
        assert!(all.len() > 1000, "-vv printed little: {all}");
        assert!(
            !all.contains("SENTINEL") && !all.contains(encoded),
            "the customer key was printed: {source} -> {destination}"
        );
    }
}

#[test]
fn hostile_keys_are_escaped_on_the_terminal() {
    let (dir, hoist) = local_case(
        "source: site\ntarget: file://out\n",
        &[("evil\u{1b}[2Jname.html", "x"), ("ok.html", "y")],
    );
    let ran = hoist.success();
    assert!(!ran.stdout.contains('\u{1b}'), "{:?}", ran.stdout);
    assert!(
        ran.stdout.contains("evil\\u{1b}[2Jname.html"),
        "{}",
        ran.stdout
    );
    let _ = dir;
}

#[cfg(unix)]
#[test]
fn an_unreadable_file_exits_2_naming_it_before_any_change() {
    use std::os::unix::fs::PermissionsExt;
    // Root reads any file, so as root the run drops to `nobody` (util-linux setpriv), which
    // CI has as it is on every Debian machine.
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .expect("id runs");
    let (dir, _) = local_case(
        "source: site\ntarget: file://out\n",
        &[("ok.html", "x"), ("secret.html", "y")],
    );
    for path in [dir.path().to_path_buf(), dir.path().join("site")] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    for file in ["ok.html", "deploy.yaml"] {
        let path = if file == "ok.html" {
            dir.path().join("site").join(file)
        } else {
            dir.path().join(file)
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let secret = dir.path().join("site/secret.html");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let hoist = env!("CARGO_BIN_EXE_hoist");
    let mut command = if root {
        let mut command = std::process::Command::new("setpriv");
        command.args(["--reuid=65534", "--regid=65534", "--clear-groups", hoist]);
        command
    } else {
        std::process::Command::new(hoist)
    };
    let output = command
        .arg("deploy")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .output()
        .expect("hoist runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_error(
        &stderr,
        &["cannot read", "secret.html", "Permission denied"],
    );
    assert!(!dir.path().join("out").exists(), "the target was touched");
}

/// Issue #11: a symlink in the build output that leads outside the source (a stray link to
/// `.env` or `~/.aws`) is refused by default, naming the link and its target; links inside the
/// tree keep working, and `follow_symlinks: true` (or `--follow-symlinks`) allows the rest.
#[cfg(unix)]
#[test]
fn symlinks_out_of_the_source_are_refused_unless_allowed() {
    let config = "source: site\ntarget: file://out\n";
    let (dir, hoist) = local_case(config, &[("index.html", "x"), ("style.css", "body{}")]);
    let site = dir.path().join("site");
    std::fs::write(dir.path().join("secret.env"), "AWS_SECRET=hunter2").expect("secret");
    std::os::unix::fs::symlink("style.css", site.join("alias.css")).expect("inner link");
    std::os::unix::fs::symlink("../secret.env", site.join("config.env")).expect("outer link");
    let ran = hoist.run().exit(2);
    assert_error(&ran.stderr, &["config.env", "secret.env", "outside"]);
    assert!(
        !dir.path().join("out").join("config.env").exists(),
        "the secret was published"
    );

    // The inner link alone is fine.
    std::fs::remove_file(site.join("config.env")).expect("unlink");
    Hoist::new(dir.path()).arg("deploy").success();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out").join("alias.css")).expect("alias"),
        "body{}"
    );

    // Allowed explicitly, by flag or by config.
    std::os::unix::fs::symlink("../secret.env", site.join("config.env")).expect("outer link");
    Hoist::new(dir.path())
        .args(["deploy", "--follow-symlinks"])
        .success();
    assert!(dir.path().join("out").join("config.env").exists());
    std::fs::write(
        dir.path().join("deploy.yaml"),
        format!("{config}follow_symlinks: true\n"),
    )
    .expect("config");
    Hoist::new(dir.path()).arg("deploy").success();
}

/// Issue #11: keys browsers and CloudFront cannot reach by their natural URL. A `+` (read as a
/// space in a URL path) is warned about by name; two names equal after NFC normalization (one
/// NFC, one NFD, identical on screen) are refused unless `--force`.
#[test]
fn keys_a_browser_cannot_reach_are_reported() {
    let config = "source: site\ntarget: file://out\n";
    let (dir, hoist) = local_case(
        config,
        &[
            ("index.html", "x"),
            ("c++.html", "plus"),
            ("caf\u{e9}.html", "nfc"),
            ("cafe\u{301}.html", "nfd"),
        ],
    );
    let ran = hoist.run().exit(1);
    assert_error(
        &ran.stderr,
        &["caf\u{e9}.html", "cafe\u{301}.html", "NFC", "--force"],
    );
    assert!(
        !dir.path().join("out").join("index.html").exists(),
        "nothing published"
    );

    let ran = Hoist::new(dir.path()).args(["deploy", "--force"]).success();
    assert!(ran.stderr.contains("warning:"), "{}", ran.stderr);
    assert!(ran.stderr.contains("c++.html"), "{}", ran.stderr);
    assert!(ran.stderr.contains("as a space"), "{}", ran.stderr);
}

/// A deploy to a local directory needs no AWS configuration: a profile named in the
/// environment that no file defines does not stop it (the profile check is for S3 targets).
#[test]
fn a_local_deploy_ignores_an_unknown_aws_profile() {
    let (dir, hoist) = local_case("source: site\ntarget: file://out\n", &[("index.html", "x")]);
    hoist.env("AWS_PROFILE", "not-on-this-machine").success();
    assert!(dir.path().join("out").join("index.html").exists());
}
