//! Issue #13: the npm package, end to end. `npm/stage.mjs` packs the launcher (hoist-deploy)
//! and this machine's binary (hoist-deploy-linux-x64) the way the release workflow does; the
//! tarballs are installed into a fresh npm project, and `hoist` runs from its package.json
//! scripts and from node_modules/.bin with the binary's output and exit codes.

use std::path::Path;
use std::process::Command;

fn npm(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("npm")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("npm runs (Node.js and npm are needed for the npm package test)")
}

#[test]
fn the_npm_package_runs_the_binary_from_package_json_scripts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().expect("temp dir");
    let packed = work.path().join("packed");
    let staged = Command::new("node")
        .arg(root.join("npm/stage.mjs"))
        .arg("--out")
        .arg(&packed)
        .arg("--binary")
        .arg(format!("linux-x64={}", env!("CARGO_BIN_EXE_hoist")))
        .arg("--pack")
        .output()
        .expect("node runs");
    assert!(
        staged.status.success(),
        "{}",
        String::from_utf8_lossy(&staged.stderr)
    );
    let tarballs: Vec<String> = String::from_utf8_lossy(&staged.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(tarballs.len(), 2, "{tarballs:?}");

    let project = work.path().join("site");
    std::fs::create_dir_all(project.join("dist")).expect("project");
    std::fs::write(project.join("dist/index.html"), "<p>hi</p>").expect("page");
    std::fs::write(
        project.join("deploy.yaml"),
        "source: dist\ntarget: file://out\n",
    )
    .expect("config");
    std::fs::write(
        project.join("package.json"),
        r#"{ "name": "site", "private": true, "version": "1.0.0",
  "scripts": { "deploy:review": "hoist deploy --dryrun", "hoist-version": "hoist --version" } }
"#,
    )
    .expect("package.json");
    let mut install = vec!["install", "--no-audit", "--no-fund", "--loglevel=error"];
    install.extend(tarballs.iter().map(String::as_str));
    let installed = npm(&project, &install);
    assert!(
        installed.status.success(),
        "{}",
        String::from_utf8_lossy(&installed.stderr)
    );

    let version = npm(&project, &["run", "--silent", "hoist-version"]);
    assert!(version.status.success());
    assert!(
        String::from_utf8_lossy(&version.stdout)
            .starts_with(&format!("hoist {} (", env!("CARGO_PKG_VERSION"))),
        "{}",
        String::from_utf8_lossy(&version.stdout)
    );

    let review = npm(&project, &["run", "--silent", "deploy:review"]);
    let stdout = String::from_utf8_lossy(&review.stdout);
    assert!(
        review.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&review.stderr)
    );
    assert!(
        stdout.contains("(dryrun) upload  index.html  (new)"),
        "{stdout}"
    );
    assert!(!project.join("out").exists(), "the dry run published");

    // The launcher passes the binary's exit code through: 2 for a bad flag.
    let bad = Command::new(project.join("node_modules/.bin/hoist"))
        .args(["deploy", "--no-such-flag"])
        .current_dir(&project)
        .output()
        .expect("launcher runs");
    assert_eq!(bad.status.code(), Some(2));
}
