//! Issue #13, first steps: finding deploy.yaml, `--version`, shell completions, the man page,
//! and output that stays plain in a pipe.

use crate::util::{Hoist, write_tree};

/// `npm run deploy` from `site/src` finds `site/deploy.yaml`, says which file it uses, and
/// resolves the config's relative paths from the file's directory.
#[test]
fn deploy_yaml_is_found_in_a_parent_directory() {
    let repo = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(repo.path().join(".git")).expect(".git");
    write_tree(&repo.path().join("site/dist"), &[("index.html", "hi")]);
    std::fs::create_dir_all(repo.path().join("site/src/deep")).expect("src");
    std::fs::write(
        repo.path().join("site/deploy.yaml"),
        "source: dist\ntarget: file://out\n",
    )
    .expect("config");
    let ran = Hoist::new(&repo.path().join("site/src/deep"))
        .arg("deploy")
        .success();
    let used = repo.path().join("site/deploy.yaml");
    assert!(
        ran.stderr.contains(&format!("using {}", used.display())),
        "{}",
        ran.stderr
    );
    assert_eq!(
        std::fs::read(repo.path().join("site/out/index.html")).expect("published"),
        b"hi"
    );
}

/// With no deploy.yaml up to the repository root, the error says where hoist looked, and a
/// deploy.yaml above the root is not used.
#[test]
fn no_deploy_yaml_says_where_hoist_looked() {
    let outer = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        outer.path().join("deploy.yaml"),
        "source: .\ntarget: file://must-not-be-used\n",
    )
    .expect("config");
    let repo = outer.path().join("repo");
    std::fs::create_dir_all(repo.join(".git")).expect(".git");
    std::fs::create_dir_all(repo.join("web")).expect("web");
    let ran = Hoist::new(&repo.join("web")).arg("deploy").run().exit(2);
    let first = ran.stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: no deploy.yaml in "),
        "{}",
        ran.stderr
    );
    assert!(
        first.contains(&format!("up to {}", repo.display())) && first.contains("--config"),
        "{first}"
    );
    assert!(!outer.path().join("must-not-be-used").exists());
}

/// `hoist --version` names the commit it was built from.
#[test]
fn version_names_the_commit() {
    let here = env!("CARGO_MANIFEST_DIR");
    let ran = Hoist::new(std::path::Path::new(here))
        .arg("--version")
        .success();
    let git = std::process::Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .current_dir(here)
        .output()
        .expect("git runs");
    let commit = String::from_utf8_lossy(&git.stdout).trim().to_string();
    let want = format!(
        "hoist {} ({})",
        env!("CARGO_PKG_VERSION"),
        if git.status.success() {
            commit.as_str()
        } else {
            "unknown commit"
        }
    );
    assert_eq!(ran.stdout.trim(), want);
}

/// Each shell's completion script is what that shell loads: bash sources it and registers
/// the completion; the others carry their shells' own registration.
#[test]
fn completions_are_generated_for_each_shell() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bash = Hoist::new(dir.path())
        .args(["completions", "bash"])
        .success();
    let script = dir.path().join("hoist.bash");
    std::fs::write(&script, &bash.stdout).expect("script");
    let loaded = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p hoist", script.display()))
        .output()
        .expect("bash runs");
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    assert!(String::from_utf8_lossy(&loaded.stdout).contains("hoist"));
    for (shell, marker) in [
        ("zsh", "#compdef hoist"),
        ("fish", "complete -c hoist"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let ran = Hoist::new(dir.path())
            .args(["completions", shell])
            .success();
        assert!(ran.stdout.contains(marker), "{shell}");
        assert!(
            ran.stdout.contains("rollback"),
            "{shell}: subcommands missing"
        );
    }
}

/// `hoist man` is a roff page `man` renders, naming the commands.
#[test]
fn the_man_page_renders() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ran = Hoist::new(dir.path()).arg("man").success();
    assert!(
        ran.stdout.starts_with(".ie"),
        "{}",
        &ran.stdout[..80.min(ran.stdout.len())]
    );
    let page = dir.path().join("hoist.1");
    std::fs::write(&page, &ran.stdout).expect("page");
    let rendered = std::process::Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
        .expect("man runs");
    let text = String::from_utf8_lossy(&rendered.stdout);
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    for word in ["deploy", "sync", "rollback", "releases"] {
        assert!(text.contains(word), "{word} missing from the man page");
    }
}

/// At every verbosity, a pipe gets no colour codes, even with NO_COLOR unset.
#[test]
fn verbose_output_in_a_pipe_has_no_colour() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_tree(&dir.path().join("site"), &[("index.html", "x")]);
    std::fs::write(
        dir.path().join("deploy.yaml"),
        "source: site\ntarget: file://out\n",
    )
    .expect("config");
    for verbosity in ["-v", "-vv"] {
        let ran = Hoist::new(dir.path())
            .remove_env("NO_COLOR")
            .args([verbosity, "deploy"])
            .success();
        assert!(!ran.stderr.is_empty() || !ran.stdout.is_empty());
        assert!(
            !ran.stderr.contains('\u{1b}'),
            "{verbosity}: {:?}",
            ran.stderr
        );
        assert!(
            !ran.stdout.contains('\u{1b}'),
            "{verbosity}: {:?}",
            ran.stdout
        );
    }
}

/// `--output json` prints one document with `schema` and `status` for every outcome, its
/// `errors` one short entry per failure (issue #13).
mod json {
    use std::time::Duration;

    use crate::backends::Server;
    use crate::deploy::{FILES, Site};
    use crate::proxy::{Fault, FaultProxy, Plan};
    use crate::util::{Hoist, Ran};

    #[track_caller]
    fn document(ran: &Ran, status: &str) -> serde_json::Value {
        let doc: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap_or_else(|e| {
            panic!(
                "not one JSON document ({e}): {}\n{}",
                ran.stdout, ran.stderr
            )
        });
        assert_eq!(doc["schema"], 1, "{doc}");
        assert_eq!(doc["status"], status, "{doc}");
        doc
    }

    fn codes(doc: &serde_json::Value) -> Vec<String> {
        doc["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["code"].as_str().expect("code").to_string())
            .collect()
    }

    #[test]
    fn bad_yaml() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("deploy.yaml"), "source: [unclosed\n").expect("config");
        let ran = Hoist::new(dir.path())
            .args(["deploy", "--output", "json"])
            .run()
            .exit(2);
        let doc = document(&ran, "failed");
        assert_eq!(codes(&doc), ["InvalidConfig"]);
        assert!(doc["target"].is_null());
        assert!(
            doc["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("deploy.yaml")
        );
    }

    #[test]
    fn unknown_bucket_wrong_credentials_unreachable() {
        let Some(server) = Server::moto() else { return };
        let site = Site::new(&server, FILES);
        let ran = site
            .deploy_json()
            .args(["--target", "s3://no-such-bucket-here/"])
            .run()
            .exit(1);
        let doc = document(&ran, "failed");
        assert_eq!(codes(&doc), ["NoSuchBucket"]);
        assert_eq!(doc["target"], "s3://no-such-bucket-here/");

        // Few attempts: this is about the document, not the retries.
        let ran = site
            .deploy_json()
            .args(["--endpoint-url", "http://127.0.0.1:9"])
            .env("AWS_MAX_ATTEMPTS", "1")
            .run()
            .exit(1);
        assert_eq!(codes(&document(&ran, "failed")), ["Unreachable"]);

        let Some(rclone) = Server::rclone() else {
            return;
        };
        let site = Site::new(&rclone, FILES);
        let ran = site
            .deploy_json()
            .env("AWS_SECRET_ACCESS_KEY", "wrong-secret-wrong-secret")
            .run()
            .exit(1);
        let doc = document(&ran, "failed");
        let code = &codes(&doc)[0];
        assert!(
            [
                "SignatureDoesNotMatch",
                "AccessDenied",
                "InvalidAccessKeyId"
            ]
            .contains(&code.as_str()),
            "{doc}"
        );
        assert!(
            !ran.stdout.contains("wrong-secret"),
            "the secret was printed"
        );
    }

    #[test]
    fn a_refused_plan_is_printed_whole() {
        let Some(server) = Server::moto() else { return };
        let site = Site::new(&server, FILES);
        for i in 0..4 {
            site.put(&format!("stale/{i}.html"), "old");
        }
        site.write_config(&format!("{}\nmax_deletes: 2\n", crate::deploy::CONFIG));
        for dry in [true, false] {
            let mut hoist = site.deploy_json();
            if dry {
                hoist = hoist.arg("--dryrun");
            }
            let ran = hoist.run().exit(1);
            let doc = document(&ran, "refused");
            assert_eq!(codes(&doc), ["TooManyDeletes"]);
            if dry {
                let deletes = doc["actions"]
                    .as_array()
                    .expect("actions")
                    .iter()
                    .filter(|a| a["op"] == "delete")
                    .count();
                assert_eq!(deletes, 4, "the dry run's plan is in the document: {doc}");
            }
        }
        assert!(!site.contents().contains_key("index.html"));
    }

    #[test]
    fn a_failed_phase_names_each_key_and_what_completed() {
        let Some(server) = Server::moto() else { return };
        let site = Site::new(&server, FILES);
        let proxy = FaultProxy::start(
            &server.endpoint().url,
            Plan::new().rule(
                |r| r.method == "PUT" && r.path().ends_with("/robots.txt"),
                Fault::InternalError,
                None,
            ),
        );
        let ran = site
            .deploy_json()
            .args(["--endpoint-url", &proxy.endpoint()])
            .env("AWS_MAX_ATTEMPTS", "2")
            .run()
            .exit(1);
        let doc = document(&ran, "failed");
        let errors = doc["errors"].as_array().expect("errors");
        assert_eq!(errors.len(), 1, "{doc}");
        assert_eq!(errors[0]["key"], "robots.txt");
        assert_eq!(errors[0]["phase"], "other");
        assert_eq!(errors[0]["code"], "InternalError");
        assert!(errors[0]["message"].as_str().unwrap().lines().count() == 1);
        let done: Vec<&str> = doc["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .map(|a| a["key"].as_str().unwrap())
            .collect();
        assert!(done.contains(&"static/app.3f2a1c.js"), "{done:?}");
        assert!(!done.contains(&"index.html"), "{done:?}");
    }

    #[test]
    fn an_interrupted_run_and_a_success() {
        let Some(server) = Server::moto() else { return };
        let site = Site::new(&server, FILES);
        let proxy = FaultProxy::start(
            &server.endpoint().url,
            Plan::new().rule(
                |r| r.method == "PUT" && r.path().contains("/static/"),
                Fault::Stall(Duration::from_secs(30)),
                None,
            ),
        );
        let running = site
            .deploy_json()
            .args(["--endpoint-url", &proxy.endpoint()])
            .spawn();
        std::thread::sleep(Duration::from_secs(2));
        running.signal("INT");
        let ran = running.wait(Duration::from_secs(30));
        assert_eq!(ran.code(), Some(130), "{}", ran.stderr);
        assert_eq!(codes(&document(&ran, "interrupted")), ["Interrupted"]);

        let ran = site.deploy_json().success();
        let doc = document(&ran, "ok");
        assert!(doc["errors"].as_array().expect("errors").is_empty());
    }
}

/// The GitHub Action's deploy step, run as the runner would run it (its `run` script with the
/// inputs in the environment, `hoist` on PATH): it passes the inputs through, writes the
/// run's status and release to `GITHUB_OUTPUT`, and exits with hoist's code. Its inputs are
/// documented in the README; the release workflow builds for Linux, macOS and Windows.
#[test]
fn the_github_action_runs_hoist_with_its_inputs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let action: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(root.join("action.yml")).expect("action.yml"),
    )
    .expect("action.yml is YAML");
    assert_eq!(action["runs"]["using"], "composite");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    let inputs = action["inputs"].as_mapping().expect("inputs");
    for name in inputs.keys() {
        let name = name.as_str().expect("input name");
        assert!(
            readme.contains(&format!("`{name}`")),
            "input {name} undocumented"
        );
    }
    let steps = action["runs"]["steps"].as_sequence().expect("steps");
    let deploy = steps
        .iter()
        .find(|s| s["id"] == "deploy")
        .expect("a deploy step");
    let script = deploy["run"].as_str().expect("run");
    // Inputs reach the script through the environment, never pasted into it.
    assert!(
        !script.contains("${{"),
        "inputs interpolated into the script"
    );

    let work = tempfile::tempdir().expect("temp dir");
    write_tree(
        &work.path().join("site/dist"),
        &[("index.html", "<p>hi</p>")],
    );
    std::fs::write(
        work.path().join("site/deploy.yaml"),
        "source: dist\ntarget: file://out\n",
    )
    .expect("config");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_hoist"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let run = |dryrun: &str, args: &str| {
        let output = work.path().join("github_output");
        let _ = std::fs::remove_file(&output);
        let ran = std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(work.path().join("site"))
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("RUNNER_TEMP", work.path())
            .env("GITHUB_OUTPUT", &output)
            .env("HOIST_CONFIG", "")
            .env("HOIST_DRYRUN", dryrun)
            .env("HOIST_ARGS", args)
            .env("NO_COLOR", "1")
            .output()
            .expect("bash runs");
        let outputs = std::fs::read_to_string(&output).unwrap_or_default();
        (ran.status.code(), outputs)
    };
    let (code, outputs) = run("true", "");
    assert_eq!(code, Some(0), "{outputs}");
    assert!(outputs.contains("status=ok"), "{outputs}");
    assert!(
        !work.path().join("site/out").exists(),
        "the dry run published"
    );
    let (code, outputs) = run("false", "--keep-releases 3 --message ci");
    assert_eq!(code, Some(0), "{outputs}");
    assert!(outputs.contains("release=1"), "{outputs}");
    assert!(work.path().join("site/out/index.html").exists());
    let (code, outputs) = run("false", "--no-such-flag");
    assert_eq!(code, Some(2));
    assert!(outputs.contains("status=failed"), "{outputs}");

    let release: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(root.join(".github/workflows/release.yml")).expect("release.yml"),
    )
    .expect("release.yml is YAML");
    let targets: Vec<&str> = release["jobs"]["build"]["strategy"]["matrix"]["include"]
        .as_sequence()
        .expect("matrix")
        .iter()
        .map(|t| t["target"].as_str().expect("target"))
        .collect();
    for os in ["linux", "apple-darwin", "windows"] {
        assert!(
            targets.iter().any(|t| t.contains(os)),
            "{os} missing: {targets:?}"
        );
    }
}

/// Issue #13's first deploy: a freshly built Vite project, `hoist init` naming the bucket,
/// then `hoist deploy`: hashed assets are immutable for a year and pages revalidated, with no
/// edit of the generated deploy.yaml. A second `hoist init` refuses to overwrite it.
#[cfg(unix)]
#[test]
fn init_then_deploy_a_fresh_vite_build() {
    use crate::backends::Server;
    let Some(server) = Server::moto() else { return };
    let fixture = crate::releases::vite_fixture();
    let project = tempfile::tempdir().expect("temp dir");
    let app = project.path();
    std::fs::create_dir_all(app.join("src")).expect("src");
    for file in [
        "index.html",
        "package.json",
        "src/main.js",
        "src/lazy.js",
        "src/version.js",
        "src/style.css",
    ] {
        std::fs::copy(fixture.join(file), app.join(file)).expect("copy fixture");
    }
    std::os::unix::fs::symlink(fixture.join("node_modules"), app.join("node_modules"))
        .expect("link");
    let built = std::process::Command::new("npm")
        .args(["run", "build", "--silent"])
        .current_dir(app)
        .output()
        .expect("npm runs");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );

    let bucket = crate::util::fresh_bucket("init");
    server.create_bucket(&bucket);
    let endpoint = server.endpoint();
    let ran = Hoist::new(app)
        .args(["init", "--target", &format!("s3://{bucket}/")])
        .success();
    assert!(
        ran.stdout.contains("for Vite (source `dist`"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("hoist deploy --dryrun"),
        "{}",
        ran.stdout
    );
    let written = std::fs::read_to_string(app.join("deploy.yaml")).expect("deploy.yaml");
    let again = Hoist::new(app)
        .args(["init", "--target", "s3://other/"])
        .run()
        .exit(2);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert_eq!(
        std::fs::read_to_string(app.join("deploy.yaml")).unwrap(),
        written
    );

    // The rules init writes for a real Vite build pass the lint, even strict (issue #16).
    let deployed = Hoist::on(app, &endpoint)
        .args(["deploy", "--strict", "--endpoint-url", &endpoint.url])
        .success();
    assert!(!deployed.stderr.contains("lint "), "{}", deployed.stderr);
    let client = endpoint.client();
    let mut assets = 0;
    for entry in walkdir::WalkDir::new(app.join("dist")) {
        let entry = entry.expect("walk");
        if !entry.file_type().is_file() {
            continue;
        }
        let key = entry
            .path()
            .strip_prefix(app.join("dist"))
            .unwrap()
            .to_string_lossy()
            .to_string();
        let object = crate::util::head(&client, &bucket, &key);
        let want = if key.starts_with("assets/") {
            assets += 1;
            "public, max-age=31536000, immutable"
        } else if key.ends_with(".html") {
            "public, max-age=0, must-revalidate"
        } else {
            "public, max-age=3600"
        };
        assert_eq!(object.cache_control(), Some(want), "{key}");
    }
    assert!(assets >= 3, "{assets} hashed assets");
}

/// `hoist schema` is a JSON Schema that accepts deploy.example.yaml, the fixture's config and
/// what `hoist init` writes, and rejects a typo'd key and a bad value (checked with Python's
/// jsonschema, from the test virtualenv).
#[test]
fn the_schema_validates_real_configs_and_rejects_typos() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().expect("temp dir");
    let schema = work.path().join("schema.json");
    let ran = Hoist::new(work.path()).arg("schema").success();
    std::fs::write(&schema, &ran.stdout).expect("schema");

    // What `hoist init` writes, for two layouts.
    let vite = work.path().join("vite");
    write_tree(
        &vite,
        &[("package.json", r#"{"devDependencies":{"vite":"7"}}"#)],
    );
    Hoist::new(&vite)
        .args(["init", "--target", "s3://my-site/"])
        .success();
    let hugo = work.path().join("hugo");
    write_tree(&hugo, &[("hugo.toml", "baseURL = '/'")]);
    Hoist::new(&hugo)
        .args(["init", "--target", "s3://my-site/site/"])
        .success();
    assert!(
        std::fs::read_to_string(vite.join("deploy.yaml"))
            .unwrap()
            .starts_with("# yaml-language-server: $schema=deploy.schema.json\n")
    );
    assert_eq!(
        std::fs::read_to_string(vite.join("deploy.schema.json"))
            .unwrap()
            .trim(),
        ran.stdout.trim()
    );

    let typo = work.path().join("typo.yaml");
    std::fs::write(&typo, "source: dist\ntarget: s3://b/\nrules:\n  - match: '*.html'\n    cache_controll: no-cache\n").unwrap();
    let bad_value = work.path().join("bad-value.yaml");
    std::fs::write(&bad_value, "source: dist\nkeep_stale_for: 7 weeks\n").unwrap();

    let python = crate::servers::venv_bin("python").expect("python in the test virtualenv");
    let check = r#"
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
validator = jsonschema.validators.validator_for(schema)(schema)
for path in sys.argv[2:]:
    errors = list(validator.iter_errors(yaml.safe_load(open(path)) or {}))
    print(path, "ok" if not errors else "invalid: " + errors[0].message)
"#;
    let files = [
        root.join("deploy.example.yaml"),
        root.join("fixtures/deploy.yaml"),
        vite.join("deploy.yaml"),
        hugo.join("deploy.yaml"),
        typo.clone(),
        bad_value.clone(),
    ];
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(check)
        .arg(&schema)
        .args(&files)
        .output()
        .expect("python runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (file, line) in files.iter().zip(report.lines()) {
        let valid = !(file == &typo || file == &bad_value);
        assert_eq!(line.ends_with(" ok"), valid, "{line}");
    }
    assert!(report.contains("cache_controll"), "{report}");
}

/// A plan a reviewer can read: each action names its rule, a header update says which
/// header changes from what to what, `-v` logs the resolved headers, and a rule that
/// matches no file is warned about.
#[test]
fn plans_name_rules_and_header_changes() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_tree(
        &dir.path().join("site"),
        &[("index.html", "x"), ("robots.txt", "r")],
    );
    let config = |html: &str| {
        format!(
            "source: site\ntarget: file://out\nrules:\n  - match: \"*.html\"\n    cache_control: \"{html}\"\n  - match: \"*.woff2\"\n    cache_control: \"max-age=1\"\n"
        )
    };
    std::fs::write(dir.path().join("deploy.yaml"), config("no-cache")).expect("config");
    let first = Hoist::new(dir.path()).args(["deploy"]).success();
    assert!(
        first
            .stdout
            .contains("upload  index.html  (new)  rules[0] \"*.html\""),
        "{}",
        first.stdout
    );
    assert!(
        first
            .stderr
            .contains("rules[1] \"*.woff2\" matches no file"),
        "{}",
        first.stderr
    );
    std::fs::write(dir.path().join("deploy.yaml"), config("max-age=60")).expect("config");
    let ran = Hoist::new(dir.path())
        .args(["deploy", "--dryrun"])
        .success();
    assert!(
        ran.stdout.contains(
            "(dryrun) update  index.html  (headers changed)  rules[0] \"*.html\": cache-control \"no-cache\" -> \"max-age=60\""
        ),
        "{}",
        ran.stdout
    );
    let json = Hoist::new(dir.path())
        .args(["deploy", "--dryrun", "--output", "json"])
        .success()
        .json();
    let action = &json["actions"][0];
    assert_eq!(action["rule"], "rules[0] \"*.html\"");
    assert_eq!(
        action["header_changes"],
        serde_json::json!([{"header": "cache-control", "from": "no-cache", "to": "max-age=60"}])
    );
    let verbose = Hoist::new(dir.path())
        .args(["-v", "deploy", "--dryrun"])
        .success();
    assert!(
        verbose.stderr.contains("index.html: rules[0] \"*.html\" -> content-type: text/html; charset=utf-8, cache-control: max-age=60"),
        "{}",
        verbose.stderr
    );
}

/// `${VAR}` and `${VAR:-default}` in deploy.yaml expand from the environment; an unset
/// variable without a default is an error naming the line and the key.
#[test]
fn deploy_yaml_expands_environment_variables() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_tree(&dir.path().join("site"), &[("index.html", "x")]);
    std::fs::write(
        dir.path().join("deploy.yaml"),
        "source: site\ntarget: file://${OUT_DIR:-out}/${SITE_NAME}\n",
    )
    .expect("config");
    let ran = Hoist::new(dir.path()).arg("deploy").run().exit(2);
    assert!(
        ran.stderr.contains("line 2: ${SITE_NAME} is not set") && ran.stderr.contains("`target`"),
        "{}",
        ran.stderr
    );
    Hoist::new(dir.path())
        .arg("deploy")
        .env("SITE_NAME", "blog")
        .success();
    assert!(dir.path().join("out/blog/index.html").exists());
}

/// `hoist doctor` against moto: exit 0 for a good setup; exit 1 naming the problem for a
/// missing bucket, missing credentials and a distribution whose origin is another bucket.
mod doctor {
    use crate::backends::Server;
    use crate::deploy::{FILES, Site};
    use crate::util::Ran;

    fn checks(ran: &Ran) -> serde_json::Value {
        let doc: serde_json::Value = serde_json::from_str(&ran.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\n{}", ran.stdout, ran.stderr));
        let mut by_name = serde_json::Map::new();
        for check in doc["checks"].as_array().expect("checks") {
            by_name.insert(
                check["name"].as_str().expect("name").to_string(),
                check.clone(),
            );
        }
        serde_json::Value::Object(by_name)
    }

    #[test]
    fn a_good_setup_passes_and_each_problem_is_named() {
        let Some(server) = Server::moto() else { return };
        let site = Site::new(&server, FILES);
        let run = |extra: &[&str], env: Option<(&str, &str)>, remove: bool| {
            let mut hoist = crate::util::Hoist::on(site.root(), &server.endpoint())
                .args(["doctor", "--output", "json"])
                .args(extra);
            if let Some((k, v)) = env {
                hoist = hoist.env(k, v);
            }
            if remove {
                hoist = hoist
                    .remove_env("AWS_ACCESS_KEY_ID")
                    .remove_env("AWS_SECRET_ACCESS_KEY");
            }
            hoist.run()
        };
        let good = run(&[], None, false);
        assert_eq!(good.code(), Some(0), "{}\n{}", good.stdout, good.stderr);
        let c = checks(&good);
        for name in ["config", "credentials", "store", "bucket"] {
            assert_eq!(c[name]["status"], "ok", "{name}: {}", good.stdout);
        }
        assert!(
            c["credentials"]["detail"]
                .as_str()
                .unwrap()
                .contains("arn:aws"),
            "{}",
            good.stdout
        );
        assert!(
            c["store"]["detail"]
                .as_str()
                .unwrap()
                .contains("on this machine")
        );

        let missing = run(&["--target", "s3://no-such-bucket-doctor/"], None, false);
        assert_eq!(missing.code(), Some(1));
        let c = checks(&missing);
        assert_eq!(c["bucket"]["status"], "fail");
        assert!(
            c["bucket"]["detail"]
                .as_str()
                .unwrap()
                .contains("no-such-bucket-doctor")
        );

        let anonymous = run(&[], None, true);
        assert_eq!(anonymous.code(), Some(1), "{}", anonymous.stdout);
        assert_eq!(
            checks(&anonymous)["credentials"]["status"],
            "fail",
            "{}",
            anonymous.stdout
        );

        // Human output names the failing check and its fix.
        let human = crate::util::Hoist::on(site.root(), &server.endpoint())
            .args(["doctor", "--target", "s3://no-such-bucket-doctor/"])
            .run();
        assert_eq!(human.code(), Some(1));
        assert!(human.stdout.contains("FAIL  bucket"), "{}", human.stdout);
        assert!(human.stdout.contains("fix: create it"), "{}", human.stdout);
    }

    /// rclone checks signatures: a wrong secret fails the bucket check (rclone serves no STS,
    /// so the credentials check itself can only warn there).
    #[test]
    fn wrong_credentials_fail() {
        let Some(server) = Server::rclone() else {
            return;
        };
        let site = Site::new(&server, FILES);
        let ran = crate::util::Hoist::on(site.root(), &server.endpoint())
            .args(["doctor", "--output", "json"])
            .env("AWS_SECRET_ACCESS_KEY", "wrong-secret-wrong-secret")
            .run();
        assert_eq!(ran.code(), Some(1), "{}", ran.stdout);
        let c = checks(&ran);
        assert_eq!(c["bucket"]["status"], "fail", "{}", ran.stdout);
        assert!(
            !ran.stdout.contains("wrong-secret"),
            "the secret was printed"
        );
    }

    #[test]
    fn a_distribution_serving_another_bucket_fails() {
        let Some(server) = Server::moto() else { return };
        let (site, id) = crate::cdn::site_with_distribution_to(&server, "some-other-bucket");
        let ran = crate::util::Hoist::on(site.root(), &server.endpoint())
            .args(["doctor", "--output", "json"])
            .run();
        assert_eq!(ran.code(), Some(1), "{}", ran.stdout);
        let c = checks(&ran);
        assert_eq!(c["cloudfront"]["status"], "fail", "{}", ran.stdout);
        let detail = c["cloudfront"]["detail"].as_str().unwrap();
        assert!(
            detail.contains(&id) && detail.contains("some-other-bucket"),
            "{detail}"
        );
        assert!(detail.contains(&site.bucket), "{detail}");
    }
}

/// Named environments: `--env NAME` puts that environment's keys over the file's; an unknown
/// name lists the defined ones; a typo in any environment is found by every run.
#[test]
fn environments_override_top_level_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_tree(&dir.path().join("site"), &[("index.html", "x")]);
    let config = |production: &str| {
        format!(
            "source: site\ntarget: file://default-out\nenvironments:\n  staging:\n    target: file://staging-out\n  production:\n    {production}\n"
        )
    };
    std::fs::write(
        dir.path().join("deploy.yaml"),
        config("target: file://prod-out"),
    )
    .unwrap();
    Hoist::new(dir.path())
        .args(["deploy", "--env", "staging"])
        .success();
    assert!(dir.path().join("staging-out/index.html").exists());
    assert!(!dir.path().join("default-out").exists());
    Hoist::new(dir.path())
        .args(["deploy", "--env", "production"])
        .success();
    assert!(dir.path().join("prod-out/index.html").exists());
    Hoist::new(dir.path()).arg("deploy").success();
    assert!(dir.path().join("default-out/index.html").exists());

    let unknown = Hoist::new(dir.path())
        .args(["deploy", "--env", "qa"])
        .run()
        .exit(2);
    assert!(
        unknown.stderr.contains("no environment `qa`")
            && unknown.stderr.contains("production, staging"),
        "{}",
        unknown.stderr
    );
    std::fs::write(
        dir.path().join("deploy.yaml"),
        config("targt: file://prod-out"),
    )
    .unwrap();
    let typo = Hoist::new(dir.path())
        .args(["deploy", "--env", "staging"])
        .run()
        .exit(2);
    assert!(
        typo.stderr.contains("environment `production`") && typo.stderr.contains("targt"),
        "{}",
        typo.stderr
    );
}
