//! Test support: run the `hoist` binary in a clean environment, build source trees, and talk to
//! the test servers with the AWS SDK to check what hoist did.
//!
//! Every run gets a temporary HOME and AWS config/credentials files written by the test, the
//! instance-metadata lookup disabled, and only the variables the test sets (ripgrep's `util.rs`
//! and xh's tests isolate theirs the same way), so nothing on the developer's machine leaks in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use aws_sdk_s3::Client;

/// A shared runtime for the SDK calls tests make (the binary under test has its own).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("test runtime starts")
    })
}

pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

/// Credentials and endpoint of an S3-compatible server under test.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    pub access_key: String,
    pub secret_key: String,
}

impl Endpoint {
    pub fn client(&self) -> Client {
        let base = crate::servers::s3_client(&self.url, &self.access_key, &self.secret_key);
        let config = base
            .config()
            .to_builder()
            // Tests compare bytes themselves; moto stores a multipart source's composite CRC32
            // on a single-part copy, which the SDK's own validation would reject.
            .response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            )
            .build();
        Client::from_conf(config)
    }
}

/// A builder for one run of the binary (just's `Test`, ripgrep's `TestCommand`).
#[must_use]
pub struct Hoist {
    program: PathBuf,
    home: tempfile::TempDir,
    cwd: PathBuf,
    args: Vec<String>,
    env: BTreeMap<String, String>,
}

pub struct Ran {
    pub output: Output,
    pub stdout: String,
    pub stderr: String,
    pub args: Vec<String>,
}

impl Hoist {
    pub fn new(cwd: &Path) -> Hoist {
        let home = tempfile::tempdir().expect("temp HOME");
        let aws = home.path().join(".aws");
        std::fs::create_dir_all(&aws).expect("~/.aws");
        std::fs::write(aws.join("config"), "[default]\nregion = us-east-1\n").expect("config");
        std::fs::write(aws.join("credentials"), "").expect("credentials");
        let mut env = BTreeMap::new();
        for (name, value) in [
            ("HOME", home.path().display().to_string()),
            ("AWS_CONFIG_FILE", aws.join("config").display().to_string()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                aws.join("credentials").display().to_string(),
            ),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("NO_COLOR", "1".into()),
        ] {
            env.insert(name.to_string(), value);
        }
        Hoist {
            program: PathBuf::from(env!("CARGO_BIN_EXE_hoist")),
            home,
            cwd: cwd.to_owned(),
            args: Vec::new(),
            env,
        }
    }

    /// A run against a test server, with its credentials in the environment.
    pub fn on(cwd: &Path, endpoint: &Endpoint) -> Hoist {
        Hoist::new(cwd)
            .env("AWS_ACCESS_KEY_ID", &endpoint.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &endpoint.secret_key)
            .env("AWS_REGION", "us-east-1")
    }

    /// The reference client, `aws` from the test virtualenv, in the same clean environment.
    pub fn aws(cwd: &Path, endpoint: &Endpoint) -> Hoist {
        let aws = crate::servers::venv_bin("aws")
            .filter(|p| p.exists())
            .unwrap_or_else(|| {
                panic!("aws not found in the test virtualenv: run scripts/install-test-servers")
            });
        let mut run = Hoist::on(cwd, endpoint)
            .env("PYTHONWARNINGS", "ignore")
            .args(["--endpoint-url", &endpoint.url]);
        run.program = aws;
        run
    }

    pub fn arg(mut self, arg: impl AsRef<str>) -> Hoist {
        self.args.push(arg.as_ref().to_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Hoist
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    pub fn env(mut self, name: &str, value: impl AsRef<str>) -> Hoist {
        self.env
            .insert(name.to_string(), value.as_ref().to_string());
        self
    }

    pub fn remove_env(mut self, name: &str) -> Hoist {
        self.env.remove(name);
        self
    }

    pub fn run(self) -> Ran {
        let output = Command::new(&self.program)
            .args(&self.args)
            .current_dir(&self.cwd)
            .env_clear()
            .envs(&self.env)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("hoist runs");
        Ran {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            output,
            args: self.args,
        }
    }

    #[track_caller]
    pub fn success(self) -> Ran {
        self.run().success()
    }

    /// Starts the binary without waiting, for tests that signal it.
    pub fn spawn(self) -> Spawned {
        let child = Command::new(&self.program)
            .args(&self.args)
            .current_dir(&self.cwd)
            .env_clear()
            .envs(&self.env)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("hoist starts");
        Spawned {
            child,
            args: self.args,
            _home: self.home,
        }
    }
}

pub struct Spawned {
    pub child: std::process::Child,
    args: Vec<String>,
    _home: tempfile::TempDir,
}

impl Spawned {
    /// Sends a signal by name (`INT`, `TERM`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits at most `limit` for the process to end.
    pub fn wait(mut self, limit: std::time::Duration) -> Ran {
        let started = std::time::Instant::now();
        loop {
            if self.child.try_wait().expect("try_wait").is_some() {
                break;
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                panic!("hoist {:?} still running after {limit:?}", self.args);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let output = self.child.wait_with_output().expect("output");
        Ran {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            output,
            args: self.args,
        }
    }
}

impl Ran {
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    #[track_caller]
    pub fn success(self) -> Ran {
        assert!(
            self.output.status.success(),
            "hoist {:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
            self.args,
            self.output.status,
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn exit(self, code: i32) -> Ran {
        assert_eq!(
            self.code(),
            Some(code),
            "hoist {:?}: wanted exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.args,
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", self.stdout))
    }

    /// `(op, key, reason, phase, bytes)` of each action in a JSON report.
    pub fn actions(&self) -> Vec<(String, String, String, String, u64)> {
        self.json()["actions"]
            .as_array()
            .expect("actions array")
            .iter()
            .map(|a| {
                (
                    a["op"].as_str().unwrap_or_default().to_string(),
                    a["key"].as_str().unwrap_or_default().to_string(),
                    a["reason"].as_str().unwrap_or_default().to_string(),
                    a["phase"].as_str().unwrap_or_default().to_string(),
                    a["bytes"].as_u64().unwrap_or_default(),
                )
            })
            .collect()
    }
}

/// Writes a tree of files: `(relative path, content)`.
pub fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
        std::fs::write(&path, content).expect("write");
    }
}

/// Every key in a bucket, with its bytes.
pub fn bucket_contents(client: &Client, bucket: &str) -> BTreeMap<String, Vec<u8>> {
    block_on(async {
        let mut out = BTreeMap::new();
        let mut pages = client
            .list_objects_v2()
            .bucket(bucket)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.expect("list");
            for object in page.contents() {
                let key = object.key().expect("key").to_string();
                let body = client
                    .get_object()
                    .bucket(bucket)
                    .key(&key)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("GET {bucket}/{key}: {e:?}"))
                    .body
                    .collect()
                    .await
                    .unwrap_or_else(|e| panic!("body of {bucket}/{key}: {e:?}"))
                    .into_bytes()
                    .to_vec();
                out.insert(key, body);
            }
        }
        out
    })
}

pub fn put_object(client: &Client, bucket: &str, key: &str, body: &str) {
    block_on(async {
        client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .expect("put");
    });
}

pub fn head(
    client: &Client,
    bucket: &str,
    key: &str,
) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
    block_on(async {
        client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("HEAD {key}: {e:?}"))
    })
}

/// A bucket name unique within this test process.
pub fn fresh_bucket(tag: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}-{}-{n}",
        tag.to_ascii_lowercase().replace('_', "-"),
        std::process::id()
    )
}

#[cfg(unix)]
/// Seconds since the epoch as RFC 3339 UTC (`2026-12-01T22:15:00Z`), as hoist writes times.
pub fn rfc3339(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}
