//! The test servers themselves: each guard starts its server, the helpers do what they say, and
//! a missing install fails loudly unless server tests are skipped. Everything else in this
//! binary builds on these, so when these fail, read them first.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::servers::{self, Moto, Rclone, Recorded};

fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn status_of(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> u16 {
    result.expect("an HTTP answer").status().as_u16()
}

/// The value of an `x-amz-checksum-crc32` header: big-endian CRC32, base64.
fn crc32_base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(crc32fast::hash(bytes).to_be_bytes())
}

fn describe(recording: &[Recorded]) -> Vec<String> {
    recording
        .iter()
        .map(|r| format!("{} {}?{}", r.method, r.path(), r.query()))
        .collect()
}

#[test]
fn moto_creates_buckets_and_serves_public_reads() {
    let Some(moto) = Moto::start() else { return };
    let endpoint = moto.endpoint();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
    let http = http();

    moto.create_bucket("smoke-public");
    let mut listing = http
        .get(&format!("{endpoint}/"))
        .call()
        .expect("ListBuckets");
    let listing = listing
        .body_mut()
        .read_to_string()
        .expect("ListBuckets body");
    assert!(listing.contains("<Name>smoke-public</Name>"), "{listing}");

    let object = format!("{endpoint}/smoke-public/page.html");
    assert_eq!(status_of(http.put(&object).send("<p>hi</p>")), 200);
    assert_eq!(
        status_of(http.get(&object).call()),
        403,
        "anonymous GET before the policy"
    );
    moto.allow_public_read("smoke-public");
    let mut page = http.get(&object).call().expect("GET page.html");
    assert_eq!(page.status().as_u16(), 200);
    assert_eq!(
        page.body_mut().read_to_string().expect("page body"),
        "<p>hi</p>"
    );
}

#[test]
fn moto_records_requests_in_arrival_order() {
    let Some(moto) = Moto::start() else { return };
    let endpoint = moto.endpoint();
    let http = http();
    moto.create_bucket("smoke-recorded");
    assert!(
        moto.recording().is_empty(),
        "setup traffic was recorded: {:?}",
        moto.recording()
    );

    moto.start_recording();
    let first = format!("{endpoint}/smoke-recorded/dir/a%20b.html");
    assert_eq!(
        status_of(
            http.put(&first)
                .header("cache-control", "max-age=60")
                .send("one")
        ),
        200
    );
    // SDK uploads, signed, with the SDK's default CRC32 checksum. A file body is streamed
    // `aws-chunked` with the checksum in a trailer; an in-memory one is sent as is, the
    // checksum in a header.
    let client = moto.client();
    let scratch = tempfile::tempdir().expect("scratch dir");
    let file = scratch.path().join("third.txt");
    std::fs::write(&file, "three").expect("write");
    servers::block_on_s3(client.clone(), |client| async move {
        let body = aws_sdk_s3::primitives::ByteStream::from_path(&file).await;
        let body = body.expect("a ByteStream over a file");
        let put = client
            .put_object()
            .bucket("smoke-recorded")
            .key("third.txt")
            .body(body);
        put.send().await.expect("SDK PutObject from a file");
    });
    servers::block_on_s3(client, |client| async move {
        client
            .put_object()
            .bucket("smoke-recorded")
            .key("second.txt")
            .content_type("text/plain")
            .body(b"two".to_vec().into())
            .send()
            .await
            .expect("SDK PutObject");
        client
            .copy_object()
            .bucket("smoke-recorded")
            .key("second.txt")
            .copy_source("smoke-recorded/second.txt")
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .cache_control("no-cache")
            .send()
            .await
            .expect("SDK CopyObject");
        let delete = aws_sdk_s3::types::Delete::builder()
            .objects(
                aws_sdk_s3::types::ObjectIdentifier::builder()
                    .key("dir/a b.html")
                    .build()?,
            )
            .objects(
                aws_sdk_s3::types::ObjectIdentifier::builder()
                    .key("second.txt")
                    .build()?,
            )
            .build()?;
        client
            .delete_objects()
            .bucket("smoke-recorded")
            .delete(delete)
            .send()
            .await
            .expect("SDK DeleteObjects");
        Ok::<_, aws_sdk_s3::error::BuildError>(())
    })
    .expect("build the DeleteObjects request");
    moto.stop_recording();
    assert_eq!(status_of(http.get(&format!("{endpoint}/")).call()), 200);

    let recording = moto.recording();
    let described = describe(&recording);
    assert_eq!(
        described,
        [
            "PUT /smoke-recorded/dir/a b.html?",
            "PUT /smoke-recorded/third.txt?x-id=PutObject",
            "PUT /smoke-recorded/second.txt?x-id=PutObject",
            "PUT /smoke-recorded/second.txt?x-id=CopyObject",
            "POST /smoke-recorded/?delete",
        ],
        "the request after stop_recording must not be recorded"
    );
    let [put, file_put, sdk_put, copy, delete] = &recording[..] else {
        unreachable!("five, as asserted")
    };
    assert_eq!(put.body, "one");
    assert_eq!(put.header("Cache-Control"), Some("max-age=60"));
    assert!(put.is_mutating() && !put.is_copy());
    assert!(file_put.is_aws_chunked(), "{file_put:#?}");
    assert_ne!(file_put.body, "three", "the recorder keeps the framing");
    assert_eq!(file_put.payload(), b"three");
    assert_eq!(file_put.header("x-amz-decoded-content-length"), Some("5"));
    assert_eq!(file_put.header("x-amz-checksum-crc32"), None);
    assert_eq!(
        file_put.header_or_trailer("x-amz-checksum-crc32"),
        Some(crc32_base64(b"three"))
    );
    assert!(!sdk_put.is_aws_chunked(), "{sdk_put:#?}");
    assert_eq!(sdk_put.body_bytes, b"two");
    assert_eq!(sdk_put.payload(), b"two");
    assert_eq!(sdk_put.trailer("x-amz-checksum-crc32"), None);
    assert_eq!(
        sdk_put.header_or_trailer("x-amz-checksum-crc32"),
        Some(crc32_base64(b"two"))
    );
    assert!(sdk_put.headers.contains_key("authorization"));
    assert!(copy.is_copy() && copy.body.is_empty());
    assert_eq!(
        copy.header("x-amz-copy-source"),
        Some("smoke-recorded/second.txt")
    );
    assert_eq!(copy.header("x-amz-metadata-directive"), Some("REPLACE"));
    assert!(delete.is_delete_objects() && delete.is_mutating() && !delete.is_copy());
    assert!(
        delete.body.contains("<Key>dir/a b.html</Key>"),
        "{}",
        delete.body
    );
    assert!(
        delete.body.contains("<Key>second.txt</Key>"),
        "{}",
        delete.body
    );

    moto.start_recording();
    assert!(
        moto.recording().is_empty(),
        "start_recording clears the previous recording"
    );
    assert!(
        moto.log()
            .contains("\"POST /smoke-recorded/?delete HTTP/1.1\" 200"),
        "{}",
        moto.log()
    );
}

#[test]
fn rclone_serves_a_directory_as_buckets() {
    let Some(rclone) = Rclone::start() else {
        return;
    };
    assert!(
        rclone.endpoint().starts_with("http://127.0.0.1:"),
        "{}",
        rclone.endpoint()
    );
    assert_eq!(
        status_of(http().get(&format!("{}/", rclone.endpoint())).call()),
        400,
        "rclone refuses unsigned requests"
    );
    assert!(rclone.list_buckets().is_empty());

    rclone.create_bucket("smoke-one");
    assert!(rclone.root().join("smoke-one").is_dir());
    assert_eq!(rclone.list_buckets(), ["smoke-one"]);
    // A second bucket after the root was listed: this is what a plain mkdir gets wrong.
    rclone.create_bucket("smoke-two");
    assert_eq!(rclone.list_buckets(), ["smoke-one", "smoke-two"]);

    servers::block_on_s3(rclone.client(), |client| async move {
        client
            .put_object()
            .bucket("smoke-two")
            .key("dir/page.html")
            .cache_control("max-age=60")
            .body(b"<p>rclone</p>".to_vec().into())
            .send()
            .await
            .expect("SDK PutObject to rclone");
    });
    let stored = std::fs::read_to_string(rclone.root().join("smoke-two/dir/page.html"))
        .expect("the object is a file under root()");
    assert_eq!(stored, "<p>rclone</p>");
    assert!(!rclone.log().contains("ERROR"), "{}", rclone.log());
}

#[test]
fn aws_cli_lists_an_rclone_bucket() {
    let Some(rclone) = Rclone::start() else {
        return;
    };
    let aws = servers::venv_bin("aws").expect("aws is installed beside rclone");
    rclone.create_bucket("smoke-cli");
    let home = tempfile::tempdir().expect("temporary HOME");
    let output = Command::new(aws)
        .args(["--endpoint-url", &rclone.endpoint(), "s3", "ls"])
        .env("HOME", home.path())
        .env("AWS_CONFIG_FILE", home.path().join("config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.path().join("credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", rclone.access_key())
        .env("AWS_SECRET_ACCESS_KEY", rclone.secret_key())
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .expect("run aws");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "aws s3 ls failed: {stderr}");
    assert!(
        stdout.lines().any(|line| line.ends_with(" smoke-cli")),
        "{stdout}"
    );
}

/// Runs one test of this binary in a child process with `env` changed.
fn run_self(test: &str, venv: &Path, skip: Option<&str>) -> (bool, String) {
    let mut command = Command::new(std::env::current_exe().expect("the test binary's path"));
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("HOIST_TEST_VENV", venv);
    match skip {
        Some(value) => command.env("HOIST_SKIP_SERVER_TESTS", value),
        None => command.env_remove("HOIST_SKIP_SERVER_TESTS"),
    };
    let output = command.output().expect("run the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn missing_servers_fail_with_the_install_hint_unless_skipped() {
    let empty = tempfile::tempdir().expect("an empty directory for a virtualenv");
    for test in [
        "server_smoke::moto_creates_buckets_and_serves_public_reads",
        "server_smoke::rclone_serves_a_directory_as_buckets",
    ] {
        let (passed, output) = run_self(test, empty.path(), None);
        assert!(!passed, "{test} passed without servers:\n{output}");
        assert!(output.contains("1 failed"), "{test} did not run:\n{output}");
        assert!(
            output.contains("run scripts/install-test-servers"),
            "{output}"
        );
        assert!(
            output.contains(&empty.path().join("bin").display().to_string()),
            "{output}"
        );

        let (passed, output) = run_self(test, empty.path(), Some("1"));
        assert!(
            passed && output.contains("1 passed"),
            "{test} with the skip variable:\n{output}"
        );

        // Only "1" skips.
        let (passed, output) = run_self(test, empty.path(), Some("true"));
        assert!(
            !passed,
            "{test} skipped with HOIST_SKIP_SERVER_TESTS=true:\n{output}"
        );
    }
}
