//! Test servers as guards: `moto_server` (S3 and CloudFront in memory, with a request recorder)
//! and `rclone serve s3` (S3 over a directory). Each guard owns one process listening on a free
//! 127.0.0.1 port and one temporary directory (log, recording, rclone's data); `Drop` kills the
//! process and waits for it, then removes the directory.
//!
//! The binaries come from the virtualenv that `scripts/install-test-servers` makes: `.venv` at
//! the package root, or `$HOIST_TEST_VENV`. A missing binary panics with that command; only
//! `HOIST_SKIP_SERVER_TESTS=1` skips, by making `start()` return `None` (object_store's
//! `maybe_skip_integration!`, inverted: forgetting to install is a failure, not a pass).
//!
//! # moto's recorder
//!
//! Every moto gets its own `MOTO_RECORDER_FILEPATH` (the default file, `./moto_recording`, is
//! shared by every moto started from the same directory). moto 5.2.5 appends one JSON object a
//! line, written when the request arrives, before it is handled, so requests that then fail
//! are recorded too. What a line looks like (aws-cli 1.46.3 uploading `sub/a b.css`):
//!
//! ```text
//! {"headers": {"Host": "127.0.0.1:45123", "Content-Type": "text/css", "X-Amz-Checksum-Crc32": "RuoIHw==",
//!              "Authorization": "AWS4-HMAC-SHA256 ...", "Content-Length": "2", ...},
//!  "method": "PUT", "url": "http://127.0.0.1:45123/site1/sub/a%20b.css",
//!  "body": "eAo=", "body_encoded": true}
//! ```
//!
//! - `url` is werkzeug's `raw_url`: absolute, still percent-encoded, query included.
//! - `headers` keep the case werkzeug gives them (`X-Amz-Copy-Source`); [`Recorded`] lowercases.
//! - `body` is base64 when `body_encoded` is true (any request with a `Content-Length`, even
//!   `0`), else the plain string `""`. A request without `Content-Length` (chunked transfer
//!   encoding) is recorded with an empty body.
//! - A server-side copy is `PUT /bucket/key` with `x-amz-copy-source` (aws-cli sends it as
//!   `bucket/key`, without a leading `/`) and an empty body; DeleteObjects is
//!   `POST /bucket?delete` whose body is the `<Delete><Object><Key>…` XML.
//! - `MOTO_ENABLE_RECORDING` is read as a Python truthy string: any non-empty value, even
//!   `False`, records from the first request. [`Moto::start`] stops the recorder once the
//!   server is up, so setup traffic is not written to disk; [`Moto::start_recording`] clears
//!   the file and starts again.
//! - moto serves requests on threads and appends a long line in more than one `write`, so two
//!   large concurrent requests could in principle interleave; lines are parsed as a stream of
//!   JSON values, which tolerates a missing or doubled newline but not a torn object.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use tempfile::TempDir;

/// How long a server may take to answer HTTP after it was spawned. moto imports its whole
/// backend catalogue first: about 2 s on an idle core, several times that while the tests
/// compete for two cores.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Attempts to start a server when the free port found was taken before the server bound it.
const START_ATTEMPTS: usize = 3;

/// The environment variable that turns the server tests off.
const SKIP_VARIABLE: &str = "HOIST_SKIP_SERVER_TESTS";

/// The virtualenv the servers are installed in: `$HOIST_TEST_VENV` if set, else `.venv` at the
/// package root (where `scripts/install-test-servers` puts it).
pub fn venv_dir() -> PathBuf {
    match std::env::var_os("HOIST_TEST_VENV") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"),
    }
}

/// `<venv>/bin/<name>`, if that file exists.
pub fn venv_bin(name: &str) -> Option<PathBuf> {
    let path = venv_dir().join("bin").join(name);
    path.is_file().then_some(path)
}

/// True iff `HOIST_SKIP_SERVER_TESTS=1`: server tests then pass without running.
pub fn skip_server_tests() -> bool {
    std::env::var(SKIP_VARIABLE).is_ok_and(|value| value == "1")
}

/// The binary a server guard runs, `None` when server tests are skipped; panics with the
/// install command when it is missing.
fn server_binary(name: &str) -> Option<PathBuf> {
    if skip_server_tests() {
        eprintln!("{SKIP_VARIABLE}=1: not starting {name}");
        return None;
    }
    match venv_bin(name) {
        Some(path) => Some(path),
        None => panic!(
            "{name} not found at {}: run scripts/install-test-servers \
             (or set {SKIP_VARIABLE}=1 to skip server tests)",
            venv_dir().join("bin").join(name).display()
        ),
    }
}

/// A blocking HTTP client for the servers' unsigned endpoints. Status codes are returned, not
/// raised, and proxy variables are ignored: every server is on 127.0.0.1.
fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// A port that was free a moment ago. The server may still lose it to another process before
/// it binds; [`ServerProcess::spawn`] retries then.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    listener
        .local_addr()
        .expect("a bound listener has an address")
        .port()
}

/// The last `bytes` of a log file, for panic messages.
fn log_tail(path: &Path, bytes: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let length = file.metadata().map(|metadata| metadata.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(length.saturating_sub(bytes)));
    let mut tail = Vec::new();
    let _ = file.read_to_end(&mut tail);
    String::from_utf8_lossy(&tail).into_owned()
}

/// One server process and the temporary directory it writes into.
struct ServerProcess {
    name: &'static str,
    child: Child,
    port: u16,
    log: PathBuf,
    /// Where this attempt's output starts in `log`, which earlier attempts also wrote.
    log_start: usize,
    // Declared last so it is removed after `Drop::drop` has stopped the process.
    dir: TempDir,
}

impl ServerProcess {
    /// Spawns `binary`, set up by `configure(command, dir, port)`, until one attempt answers
    /// HTTP on its port. Ready means: the process is alive, its log names `http://127.0.0.1:PORT` (both
    /// servers print that once they have bound the port, so a different server that took the
    /// port cannot pass for ours), and a request to `/` gets any HTTP answer.
    fn spawn(
        name: &'static str,
        binary: &Path,
        mut dir: TempDir,
        configure: impl Fn(&mut Command, &Path, u16),
    ) -> ServerProcess {
        let log = dir.path().join(format!("{name}.log"));
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let log_start = fs::metadata(&log).map_or(0, |metadata| metadata.len() as usize);
            let output = File::options()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap_or_else(|error| panic!("open {}: {error}", log.display()));
            let errors = output.try_clone().expect("clone the log file handle");
            let mut command = Command::new(binary);
            command
                .stdin(Stdio::null())
                .stdout(output)
                .stderr(errors)
                .current_dir(dir.path());
            configure(&mut command, dir.path(), port);
            let child = command
                .spawn()
                .unwrap_or_else(|error| panic!("spawn {}: {error}", binary.display()));
            let mut server = ServerProcess {
                name,
                child,
                port,
                log: log.clone(),
                log_start,
                dir,
            };
            match server.wait_until_ready() {
                Ok(()) => return server,
                Err(Exit::PortTaken) if attempt < START_ATTEMPTS => {
                    eprintln!("{name}: port {port} was taken before it bound it; retrying");
                    dir = server.into_dir();
                }
                Err(Exit::PortTaken) => server.fail(&format!(
                    "lost the race for a free port {START_ATTEMPTS} times"
                )),
                Err(Exit::Exited(status)) => {
                    server.fail(&format!("exited with {status} before it answered"))
                }
                Err(Exit::TimedOut) => server.fail(&format!(
                    "did not answer on port {port} within {STARTUP_TIMEOUT:?}"
                )),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn wait_until_ready(&mut self) -> Result<(), Exit> {
        let marker = format!("http://127.0.0.1:{}", self.port);
        let url = format!("http://127.0.0.1:{}/", self.port);
        let probe = agent(Duration::from_secs(2));
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the server process") {
                return Err(
                    if self
                        .output()
                        .to_ascii_lowercase()
                        .contains("address already in use")
                    {
                        Exit::PortTaken
                    } else {
                        Exit::Exited(status)
                    },
                );
            }
            if self.output().contains(&marker) && probe.get(&url).call().is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Exit::TimedOut);
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// What this attempt has written to the log so far.
    fn output(&self) -> String {
        let log = fs::read(&self.log).unwrap_or_default();
        String::from_utf8_lossy(log.get(self.log_start..).unwrap_or_default()).into_owned()
    }

    /// Stops the process and hands back the directory for the next attempt.
    fn into_dir(mut self) -> TempDir {
        self.stop();
        let placeholder = tempfile::tempdir().expect("create a temporary directory");
        std::mem::replace(&mut self.dir, placeholder)
    }

    fn fail(mut self, what: &str) -> ! {
        self.stop();
        panic!(
            "{} {what}; last lines of {}:\n{}",
            self.name,
            self.log.display(),
            log_tail(&self.log, 4000)
        )
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Why a start attempt failed.
enum Exit {
    PortTaken,
    Exited(std::process::ExitStatus),
    TimedOut,
}

/// A `moto_server` on its own port with its own recorder file.
pub struct Moto {
    process: ServerProcess,
    agent: ureq::Agent,
}

impl Moto {
    /// Starts moto; `None` only when [`skip_server_tests`]. Panics when the binary is missing
    /// or the server does not come up.
    pub fn start() -> Option<Moto> {
        let binary = server_binary("moto_server")?;
        let dir = tempfile::Builder::new()
            .prefix("hoist-moto-")
            .tempdir()
            .expect("create a temporary directory for moto");
        let process = ServerProcess::spawn("moto_server", &binary, dir, |command, dir, port| {
            command
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("MOTO_ENABLE_RECORDING", "True")
                .env("MOTO_RECORDER_FILEPATH", dir.join("recording.jsonl"))
                .env("PYTHONUNBUFFERED", "1");
        });
        let moto = Moto {
            process,
            agent: agent(Duration::from_secs(60)),
        };
        // Recording is on from the start (see the module docs): stop it, and create the
        // file so that a download before any recording returns nothing rather than a 500.
        moto.stop_recording();
        moto.post("/moto-api/recorder/reset-recording");
        Some(moto)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        self.process.endpoint()
    }

    /// The server's stdout and stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.process.log).unwrap_or_default()
    }

    /// An SDK client for this server (path-style, us-east-1; moto takes any keys).
    pub fn client(&self) -> aws_sdk_s3::Client {
        s3_client(&self.endpoint(), "testing", "testing")
    }

    /// Creates a bucket with an unsigned `PUT /name` (moto accepts it). Names need at least
    /// three characters. Creating a bucket that exists succeeds (us-east-1 behaviour).
    pub fn create_bucket(&self, name: &str) {
        let url = format!("{}/{name}", self.endpoint());
        let (status, body) = self.send(self.agent.put(&url).send_empty(), "PUT", &url);
        assert_eq!(status, 200, "moto: create bucket `{name}`: {body}");
    }

    /// Lets anonymous clients `GET` every object in `bucket` (moto otherwise answers 403).
    pub fn allow_public_read(&self, bucket: &str) {
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "PublicRead",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": format!("arn:aws:s3:::{bucket}/*"),
            }],
        })
        .to_string();
        let url = format!("{}/{bucket}?policy", self.endpoint());
        // Not form-encoded: flask would consume the body as a form and moto would see none.
        let request = self
            .agent
            .put(&url)
            .header("content-type", "application/json");
        let (status, body) = self.send(request.send(policy.as_str()), "PUT", &url);
        assert!(
            (200..300).contains(&status),
            "moto: put policy on `{bucket}`: {status} {body}"
        );
    }

    /// Clears the recording and starts recording.
    pub fn start_recording(&self) {
        self.post("/moto-api/recorder/reset-recording");
        self.post("/moto-api/recorder/start-recording");
    }

    pub fn stop_recording(&self) {
        self.post("/moto-api/recorder/stop-recording");
    }

    /// Every request recorded since [`Moto::start_recording`], in the order moto received
    /// them. Stop recording first if requests may still be arriving.
    pub fn recording(&self) -> Vec<Recorded> {
        let url = format!("{}/moto-api/recorder/download-recording", self.endpoint());
        let response = self.agent.get(&url).call();
        let mut response = response.unwrap_or_else(|error| panic!("moto: GET {url}: {error}"));
        assert_eq!(response.status().as_u16(), 200, "moto: GET {url}");
        let text = response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_string()
            .unwrap_or_else(|error| panic!("moto: read the recording: {error}"));
        parse_recording(&text)
    }

    fn post(&self, path: &str) {
        let url = format!("{}{path}", self.endpoint());
        let (status, body) = self.send(self.agent.post(&url).send_empty(), "POST", &url);
        assert_eq!(status, 200, "moto: POST {path}: {body}");
    }

    fn send(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        method: &str,
        url: &str,
    ) -> (u16, String) {
        let mut response = result.unwrap_or_else(|error| {
            panic!(
                "moto: {method} {url}: {error}; log:\n{}",
                log_tail(&self.process.log, 2000)
            )
        });
        let status = response.status().as_u16();
        (
            status,
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    }
}

/// One request as moto's recorder saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Absolute and still percent-encoded: `http://127.0.0.1:PORT/bucket/a%20b?x=y`.
    pub url: String,
    /// Names lowercased.
    pub headers: BTreeMap<String, String>,
    /// The body as sent, as text (lossy UTF-8): still `aws-chunked` framed when the SDK
    /// streamed it (see [`Recorded::payload`]); empty when there was no `Content-Length`.
    pub body: String,
    /// The body as sent, as bytes.
    pub body_bytes: Vec<u8>,
}

impl Recorded {
    /// The URL's path, percent-decoded: `/bucket/a b`.
    pub fn path(&self) -> String {
        let after_scheme = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, rest)| rest);
        let path_and_query = after_scheme
            .find('/')
            .map_or("/", |start| &after_scheme[start..]);
        let raw = path_and_query
            .split_once('?')
            .map_or(path_and_query, |(path, _)| path);
        percent_encoding::percent_decode_str(raw)
            .decode_utf8_lossy()
            .into_owned()
    }

    /// The raw query string after `?`, or `""`.
    pub fn query(&self) -> String {
        self.url
            .split_once('?')
            .map_or("", |(_, query)| query)
            .to_string()
    }

    /// A header's value, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// PUT, POST or DELETE.
    pub fn is_mutating(&self) -> bool {
        matches!(self.method.as_str(), "PUT" | "POST" | "DELETE")
    }

    /// A server-side copy: a PUT with `x-amz-copy-source`.
    pub fn is_copy(&self) -> bool {
        self.method == "PUT" && self.headers.contains_key("x-amz-copy-source")
    }

    /// A DeleteObjects call: `POST /bucket?delete` (the Rust SDK sends `/bucket/?delete`).
    pub fn is_delete_objects(&self) -> bool {
        self.method == "POST"
            && self
                .query()
                .split('&')
                .any(|part| part == "delete" || part == "delete=")
    }

    /// True when the body is `aws-chunked`: the SDK's framing for streaming bodies (for
    /// example `ByteStream::from_path`), whose checksum travels in a trailer, not a header.
    pub fn is_aws_chunked(&self) -> bool {
        self.header("content-encoding")
            .is_some_and(|encoding| encoding.split(',').any(|part| part.trim() == "aws-chunked"))
    }

    /// The bytes the request carried for the object: `body_bytes` with any `aws-chunked`
    /// framing (chunk sizes, chunk signatures, trailers) removed.
    pub fn payload(&self) -> Vec<u8> {
        if !self.is_aws_chunked() {
            return self.body_bytes.clone();
        }
        decode_aws_chunked(&self.body_bytes)
            .unwrap_or_else(|| panic!("malformed aws-chunked body: {}", self.body))
            .0
    }

    /// A trailer sent after an `aws-chunked` body (such as `x-amz-checksum-crc32`), by
    /// case-insensitive name.
    pub fn trailer(&self, name: &str) -> Option<String> {
        if !self.is_aws_chunked() {
            return None;
        }
        let (_, trailers) = decode_aws_chunked(&self.body_bytes)?;
        trailers.get(&name.to_ascii_lowercase()).cloned()
    }

    /// A header, or else the trailer of the same name: where a checksum such as
    /// `x-amz-checksum-crc32` is, whichever way the body was sent.
    pub fn header_or_trailer(&self, name: &str) -> Option<String> {
        self.header(name)
            .map(str::to_string)
            .or_else(|| self.trailer(name))
    }
}

/// Splits an `aws-chunked` body into its data and its trailers (names lowercased):
/// `SIZE[;chunk-signature=…]\r\nDATA\r\n` repeated, a zero-size chunk, then `name:value\r\n`
/// trailers and an empty line. `None` if the framing is broken.
fn decode_aws_chunked(mut rest: &[u8]) -> Option<(Vec<u8>, BTreeMap<String, String>)> {
    fn line(rest: &mut &[u8]) -> Option<String> {
        let end = rest.windows(2).position(|pair| pair == b"\r\n")?;
        let text = String::from_utf8(rest[..end].to_vec()).ok()?;
        *rest = &rest[end + 2..];
        Some(text)
    }
    let mut data = Vec::new();
    loop {
        let header = line(&mut rest)?;
        let size = header.split(';').next()?.trim();
        let size = usize::from_str_radix(size, 16).ok()?;
        if size == 0 {
            break;
        }
        data.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size..)?.strip_prefix(b"\r\n")?;
    }
    let mut trailers = BTreeMap::new();
    while let Some(trailer) = line(&mut rest) {
        if trailer.is_empty() {
            break;
        }
        let (name, value) = trailer.split_once(':')?;
        trailers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    Some((data, trailers))
}

/// Parses a downloaded recording. See the module docs for the format.
fn parse_recording(text: &str) -> Vec<Recorded> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<serde_json::Value>()
        .map(|entry| {
            let entry = entry.unwrap_or_else(|error| panic!("moto recording: {error}:\n{text}"));
            let field = |name: &str| entry.get(name).and_then(serde_json::Value::as_str);
            let headers = entry
                .get("headers")
                .and_then(serde_json::Value::as_object)
                .into_iter()
                .flatten()
                .map(|(name, value)| {
                    let value = value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_string);
                    (name.to_ascii_lowercase(), value)
                })
                .collect();
            let body = field("body").unwrap_or_default();
            let encoded = entry
                .get("body_encoded")
                .and_then(serde_json::Value::as_bool);
            let body_bytes = if encoded == Some(true) {
                base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .unwrap_or_else(|error| panic!("moto recording: body is not base64: {error}"))
            } else {
                body.as_bytes().to_vec()
            };
            Recorded {
                method: field("method").unwrap_or_default().to_string(),
                url: field("url").unwrap_or_default().to_string(),
                headers,
                body: String::from_utf8_lossy(&body_bytes).into_owned(),
                body_bytes,
            }
        })
        .collect()
}

/// An `rclone serve s3` over a temporary directory: a bucket is a subdirectory of
/// [`Rclone::root`]. Requests must be signed with [`Rclone::access_key`] and
/// [`Rclone::secret_key`]; unsigned ones get 400 `UnsupportedAlgorithm`.
pub struct Rclone {
    process: ServerProcess,
    root: PathBuf,
    access_key: String,
    secret_key: String,
}

impl Rclone {
    /// Starts rclone; `None` only when [`skip_server_tests`]. Panics when the binary is
    /// missing or the server does not come up.
    pub fn start() -> Option<Rclone> {
        let binary = server_binary("rclone")?;
        let dir = tempfile::Builder::new()
            .prefix("hoist-rclone-")
            .tempdir()
            .expect("create a temporary directory for rclone");
        let root = dir.path().join("data");
        fs::create_dir(&root).expect("create rclone's data directory");
        // An empty config file, so a developer's ~/.config/rclone/rclone.conf cannot change
        // the server (and rclone does not log that it found none).
        fs::write(dir.path().join("rclone.conf"), "").expect("write rclone.conf");
        let access_key = "hoist-test-key".to_string();
        // Unique per server, so a test can assert the secret never reaches any output.
        let secret_key = format!("hoist-test-secret-{}", uuid::Uuid::new_v4().simple());
        let auth = format!("{access_key},{secret_key}");
        let process = ServerProcess::spawn("rclone", &binary, dir, |command, dir, port| {
            command
                .arg("serve")
                .arg("s3")
                .arg("--config")
                .arg(dir.join("rclone.conf"))
                .args(["--addr", &format!("127.0.0.1:{port}")])
                .args(["--auth-key", &auth])
                .arg(dir.join("data"));
        });
        Some(Rclone {
            process,
            root,
            access_key,
            secret_key,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        self.process.endpoint()
    }

    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// The directory served: `root/bucket/key`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The server's stdout and stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.process.log).unwrap_or_default()
    }

    /// Creates `root/name` through the S3 API (CreateBucket).
    ///
    /// Not with `mkdir`: rclone's VFS caches directory listings for `--dir-cache-time` (5
    /// minutes), so a directory made behind its back after the first listing stays invisible
    /// (NoSuchBucket). `--dir-cache-time 0s` would fix that but makes parallel PUTs hang.
    pub fn create_bucket(&self, name: &str) {
        if self.root.join(name).is_dir() {
            return;
        }
        let bucket = name.to_string();
        let result =
            self.s3(|client| async move { client.create_bucket().bucket(bucket).send().await });
        if let Err(error) = result {
            panic!(
                "rclone: create bucket `{name}`: {}; log:\n{}",
                aws_sdk_s3::error::DisplayErrorContext(error),
                log_tail(&self.process.log, 2000)
            );
        }
        assert!(
            self.root.join(name).is_dir(),
            "rclone created no directory for bucket `{name}`"
        );
    }

    /// The bucket names a signed ListBuckets (`GET /`) returns.
    pub fn list_buckets(&self) -> Vec<String> {
        let output = self
            .s3(|client| async move { client.list_buckets().send().await })
            .unwrap_or_else(|error| {
                panic!(
                    "rclone: list buckets: {}",
                    aws_sdk_s3::error::DisplayErrorContext(error)
                )
            });
        output
            .buckets()
            .iter()
            .filter_map(|bucket| bucket.name().map(str::to_string))
            .collect()
    }

    /// An SDK client for this server (path-style, us-east-1, this server's keys).
    pub fn client(&self) -> aws_sdk_s3::Client {
        s3_client(&self.endpoint(), &self.access_key, &self.secret_key)
    }

    fn s3<F, Fut, T>(&self, call: F) -> T
    where
        F: FnOnce(aws_sdk_s3::Client) -> Fut + Send,
        Fut: Future<Output = T>,
        T: Send,
    {
        block_on_s3(self.client(), call)
    }
}

/// An SDK client for a test server: path-style addressing, us-east-1, static keys.
pub fn s3_client(endpoint: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    let credentials = aws_sdk_s3::config::Credentials::new(
        access_key,
        secret_key,
        None,
        None,
        "hoist-test-servers",
    );
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(credentials)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Runs an SDK call to completion from synchronous code. It runs on a thread of its own with
/// its own runtime, so this works inside `#[tokio::test]` too (a nested `block_on` would
/// panic there).
pub fn block_on_s3<F, Fut, T>(client: aws_sdk_s3::Client, call: F) -> T
where
    F: FnOnce(aws_sdk_s3::Client) -> Fut + Send,
    Fut: Future<Output = T>,
    T: Send,
{
    thread::scope(|scope| {
        let worker = scope.spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build a tokio runtime for an S3 call");
            runtime.block_on(call(client))
        });
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_moto_recording_lines() {
        // Shapes copied from a moto 5.2.5 recording (see the module docs); the second and
        // third lines are run together, as concurrent writers could leave them.
        let text = concat!(
            r#"{"headers": {"Host": "127.0.0.1:1", "X-Amz-Copy-Source": "b/k"}, "method": "PUT", "url": "http://127.0.0.1:1/bkt/a%20b.html", "body": "", "body_encoded": false}"#,
            "\n",
            r#"{"headers": {"Content-Length": "5"}, "method": "POST", "url": "http://127.0.0.1:1/bkt?delete", "body": "PERlbD4=", "body_encoded": true}"#,
            r#"{"headers": {}, "method": "GET", "url": "http://127.0.0.1:1/bkt?list-type=2&prefix=", "body": "", "body_encoded": false}"#,
            "\n\n",
        );
        let recording = parse_recording(text);
        assert_eq!(recording.len(), 3);
        assert_eq!(recording[0].path(), "/bkt/a b.html");
        assert_eq!(recording[0].query(), "");
        assert!(recording[0].is_copy() && recording[0].is_mutating());
        assert_eq!(recording[0].header("X-AMZ-COPY-SOURCE"), Some("b/k"));
        assert_eq!(recording[1].body, "<Del>");
        assert!(recording[1].is_delete_objects() && !recording[1].is_copy());
        assert_eq!(recording[2].path(), "/bkt");
        assert_eq!(recording[2].query(), "list-type=2&prefix=");
        assert!(!recording[2].is_mutating());
    }

    #[test]
    fn decodes_aws_chunked_bodies() {
        // As the Rust SDK 1.157 sent `ByteStream::from_path` over plain HTTP to moto.
        let signed = b"5;chunk-signature=9f4e\r\nthree\r\n0;chunk-signature=fc51\r\n\
            x-amz-checksum-crc32:RsXY9Q==\r\nx-amz-trailer-signature:8a54\r\n\r\n";
        let (data, trailers) = decode_aws_chunked(signed).expect("well-formed");
        assert_eq!(data, b"three");
        assert_eq!(trailers["x-amz-checksum-crc32"], "RsXY9Q==");
        let unsigned = b"3\r\nabc\r\n2\r\nde\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n";
        let (data, trailers) = decode_aws_chunked(unsigned).expect("well-formed");
        assert_eq!(data, b"abcde");
        assert_eq!(trailers.len(), 1);
        assert_eq!(decode_aws_chunked(b"5\r\nabc"), None);
    }
}
