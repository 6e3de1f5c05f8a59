//! Issue #14: the `aws s3 sync` flags hoist lacked, each run with the real `aws s3 sync` and
//! with `hoist sync` on identical fresh buckets and trees (moto, whose recorder shows the
//! headers each tool sent): exit codes, output lines, warnings and the final state (keys,
//! bytes, headers, checksums, grants).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::servers::Recorded;
use crate::sync_compat::{Kind, Side, error_lines, local_tree, pair, same};
use crate::util::{Hoist, Ran, block_on};

/// Runs one tool on its side with the recorder on; returns the run and what moto saw.
fn recorded(side: &Side, is_aws: bool, args: &[&str]) -> (Ran, Vec<Recorded>) {
    let moto = side.server.moto_server().expect("moto");
    moto.start_recording();
    let ran = if is_aws {
        side.aws(args)
    } else {
        side.hoist(args)
    };
    moto.stop_recording();
    (ran, moto.recording())
}

/// The S3 operation of an object request; `None` for listings and deletes.
fn operation(request: &Recorded) -> Option<&'static str> {
    let query = request.query();
    let has = |name: &str| {
        query
            .split('&')
            .any(|pair| pair == name || pair.starts_with(&format!("{name}=")))
    };
    Some(match request.method.as_str() {
        "GET" if has("list-type") || has("uploads") || has("acl") => return None,
        "GET" => "GetObject",
        "HEAD" => "HeadObject",
        "PUT" if request.is_copy() && has("partNumber") => "UploadPartCopy",
        "PUT" if request.is_copy() => "CopyObject",
        "PUT" if has("partNumber") => "UploadPart",
        "PUT" => "PutObject",
        "POST" if has("uploads") => "CreateMultipartUpload",
        "POST" if has("uploadId") => "CompleteMultipartUpload",
        _ => return None,
    })
}

const SSE_C_HEADERS: [&str; 6] = [
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-server-side-encryption-customer-key",
    "x-amz-server-side-encryption-customer-key-md5",
    "x-amz-copy-source-server-side-encryption-customer-algorithm",
    "x-amz-copy-source-server-side-encryption-customer-key",
    "x-amz-copy-source-server-side-encryption-customer-key-md5",
];

/// Each operation's customer-key headers, as sent (one entry per distinct set).
fn customer_key_headers(recording: &[Recorded]) -> BTreeMap<&'static str, BTreeSet<Vec<String>>> {
    let mut out: BTreeMap<&'static str, BTreeSet<Vec<String>>> = BTreeMap::new();
    for request in recording {
        let Some(op) = operation(request) else {
            continue;
        };
        let values = SSE_C_HEADERS
            .iter()
            .map(|name| request.header(name).unwrap_or("-").to_string())
            .collect();
        out.entry(op).or_default().insert(values);
    }
    out
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn md5_base64(bytes: &[u8]) -> String {
    use md5::Digest as _;
    base64(&md5::Md5::digest(bytes))
}

/// A 9 MiB file: above aws-cli's (and hoist's) 8 MiB multipart threshold.
fn write_big(path: &Path) {
    let data: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 241) as u8).collect();
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, data).expect("write");
}

fn small_tree(side: &Side) {
    let local = side.local();
    std::fs::create_dir_all(local.join("sub")).expect("mkdir");
    std::fs::write(local.join("index.html"), "<html>hi</html>").expect("write");
    std::fs::write(local.join("sub/a.txt"), "a").expect("write");
    write_big(&local.join("big.bin"));
}

/// The keys of a bucket with their bytes.
fn objects(side: &Side, bucket: &str) -> BTreeMap<String, Vec<u8>> {
    crate::util::bucket_contents(&side.endpoint.client(), bucket)
}

/// `--sse-c`, `--sse-c-key` and `--sse-c-copy-source*` on upload (single and multipart),
/// download and S3→S3 copy: every request that reads or writes an object carries the same
/// customer-key headers in both tools (hoist's extra part HEAD of a download carries them
/// too), the lines and exit codes match, and the key never appears in hoist's output.
#[test]
fn customer_keys_travel_like_aws_cli() {
    let Some((aws, hoist)) = pair(Kind::Moto) else {
        return;
    };
    let key = "SENTINELcustomerKEY0123456789abc";
    let copy_key = "SENTINELdestinationKEY456789abc!";
    assert_eq!((key.len(), copy_key.len()), (32, 32));
    for side in [&aws, &hoist] {
        small_tree(side);
    }
    let runs: [(&str, Vec<&str>); 3] = [
        (
            "upload",
            vec!["local", "s3://bkt/enc", "--sse-c", "--sse-c-key", key],
        ),
        (
            "download",
            vec![
                "s3://bkt/enc",
                "down",
                "--sse-c",
                "AES256",
                "--sse-c-key",
                key,
            ],
        ),
        (
            "copy",
            vec![
                "s3://bkt/enc",
                "s3://dst/enc",
                "--sse-c-copy-source",
                "--sse-c-copy-source-key",
                key,
                "--sse-c",
                "--sse-c-key",
                copy_key,
            ],
        ),
    ];
    for (what, args) in runs {
        let mut args = args.clone();
        args.push("--no-progress");
        let (a, aws_seen) = recorded(&aws, true, &args);
        let (h, hoist_seen) = recorded(&hoist, false, &args);
        same(what, &a, &h);
        assert_eq!(a.code(), Some(0), "{what}: {}", a.stderr);
        let (mut aws_ops, hoist_ops) = (
            customer_key_headers(&aws_seen),
            customer_key_headers(&hoist_seen),
        );
        if what == "copy" {
            // aws-cli copies the 9 MiB object in parts (its 8 MiB threshold); hoist in one
            // CopyObject up to 5 GiB: its CopyObject must carry what aws-cli's parts carry.
            aws_ops.remove("CreateMultipartUpload");
            aws_ops.remove("CompleteMultipartUpload");
            if let Some(parts) = aws_ops.remove("UploadPartCopy") {
                aws_ops.entry("CopyObject").or_default().extend(parts);
            }
        }
        for (op, sent) in &aws_ops {
            assert_eq!(
                hoist_ops.get(op),
                Some(sent),
                "{what}: {op} headers differ (aws: {aws_ops:#?}, hoist: {hoist_ops:#?})"
            );
        }
        // Whatever hoist sends beyond aws-cli (a download's part HEAD) carries the key too.
        let (object_key, source_key) = match what {
            "copy" => (copy_key, Some(key)),
            _ => (key, None),
        };
        for (op, sent) in &hoist_ops {
            for values in sent {
                assert_eq!(values[1], base64(object_key.as_bytes()), "{what}: {op}");
                assert_eq!(values[2], md5_base64(object_key.as_bytes()), "{what}: {op}");
                let copying = matches!(*op, "CopyObject" | "UploadPartCopy");
                let expected_source = source_key.filter(|_| copying).map(|k| base64(k.as_bytes()));
                assert_eq!(
                    values[4],
                    expected_source.unwrap_or_else(|| "-".into()),
                    "{what}: {op}"
                );
            }
        }
        assert!(
            hoist_ops.contains_key(match what {
                "upload" => "UploadPart",
                "download" => "GetObject",
                _ => "CopyObject",
            }),
            "{what}: {hoist_ops:?}"
        );
        let all = format!("{}{}", h.stdout, h.stderr);
        assert!(!all.contains("SENTINEL") && !all.contains(&base64(key.as_bytes())));
    }
    assert_eq!(local_tree(&hoist.local()), local_tree(&aws.local()));
    assert_eq!(
        local_tree(&hoist.cwd.path().join("down")),
        local_tree(&aws.cwd.path().join("down"))
    );
    assert_eq!(objects(&hoist, "dst"), objects(&aws, "dst"));
    assert_eq!(objects(&hoist, "dst").len(), 3);
}

/// The grants of one object, as S3 reports them: (grantee, permission), sorted.
fn grants(side: &Side, bucket: &str, key: &str) -> Vec<String> {
    let acl = block_on(
        side.endpoint
            .client()
            .get_object_acl()
            .bucket(bucket)
            .key(key)
            .send(),
    )
    .expect("get acl");
    let mut out: Vec<String> = acl
        .grants()
        .iter()
        .map(|grant| {
            let grantee = grant.grantee();
            format!(
                "{} {} {}",
                grantee
                    .and_then(|g| g.uri().or(g.id()).or(g.email_address()))
                    .unwrap_or("?"),
                grantee.map_or("?", |g| g.r#type().as_str()),
                grant.permission().map_or("?", |p| p.as_str())
            )
        })
        .collect();
    out.sort();
    out
}

/// `--grants` with `uri=`, `id=` and several grantees of one permission, on uploads (single
/// and multipart) and S3→S3 copies: each object ends with the same ACL from both tools.
#[test]
fn grants_are_stored_like_aws_cli() {
    let Some((aws, hoist)) = pair(Kind::Moto) else {
        return;
    };
    for side in [&aws, &hoist] {
        small_tree(side);
    }
    let flags = [
        "--grants",
        "read=uri=http://acs.amazonaws.com/groups/global/AllUsers",
        "readacl=id=reader1,id=reader2",
        "full=id=owner-canonical-id",
        "--no-progress",
    ];
    for direction in [["local", "s3://bkt/g"], ["s3://bkt/g", "s3://dst/g"]] {
        let mut args = direction.to_vec();
        args.extend(flags);
        let (a, h) = (aws.aws(&args), hoist.hoist(&args));
        same(&format!("{direction:?}"), &a, &h);
        assert_eq!(a.code(), Some(0), "{}", a.stderr);
    }
    let mut checked = 0;
    for bucket in ["bkt", "dst"] {
        for key in objects(&aws, bucket).keys() {
            let (want, got) = (grants(&aws, bucket, key), grants(&hoist, bucket, key));
            assert_eq!(got, want, "s3://{bucket}/{key}");
            assert!(
                got.iter()
                    .any(|g| g.contains("AllUsers") && g.ends_with("READ")),
                "{got:?}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 6);
    // aws-cli's own errors for a malformed grant, before any transfer.
    for bad in ["bogus", "write=id=1"] {
        let args = ["local", "s3://bkt/bad", "--grants", bad];
        let (a, h) = (aws.aws(&args), hoist.hoist(&args));
        assert_eq!((h.code(), a.code()), (Some(1), Some(1)), "{}", h.stderr);
        let message = a.stderr.trim().trim_start_matches("fatal error: ");
        assert!(h.stderr.contains(message), "{bad}: {}", h.stderr);
        assert!(
            objects(&hoist, "bkt")
                .keys()
                .all(|k| !k.starts_with("bad/"))
        );
    }
}

/// The stored checksum of an object, as HeadObject with checksum mode shows it.
fn stored_checksum(side: &Side, bucket: &str, key: &str) -> String {
    let head = block_on(
        side.endpoint
            .client()
            .head_object()
            .bucket(bucket)
            .key(key)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send(),
    )
    .expect("head");
    [
        ("CRC32", head.checksum_crc32()),
        ("CRC32C", head.checksum_crc32_c()),
        ("CRC64NVME", head.checksum_crc64_nvme()),
        ("SHA1", head.checksum_sha1()),
        ("SHA256", head.checksum_sha256()),
        ("SHA512", head.checksum_sha512()),
    ]
    .iter()
    .filter_map(|(name, value)| value.map(|v| format!("{name}={v}")))
    .collect::<Vec<_>>()
    .join(" ")
}

/// `--checksum-algorithm` on uploads (one request and in parts) and copies: the object is
/// stored with that algorithm and the same checksum value from both tools (aws-cli computes
/// CRC32C and CRC64NVME with its CRT package, which the test virtualenv installs).
#[test]
fn checksum_algorithms_are_stored_like_aws_cli() {
    let Some((aws, hoist)) = pair(Kind::Moto) else {
        return;
    };
    for side in [&aws, &hoist] {
        small_tree(side);
    }
    for algorithm in ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256", "SHA512"] {
        let prefix = algorithm.to_lowercase();
        let up = format!("s3://bkt/{prefix}");
        let copy = format!("s3://dst/{prefix}");
        for direction in [["local", up.as_str()], [up.as_str(), copy.as_str()]] {
            let mut args = direction.to_vec();
            args.extend(["--checksum-algorithm", algorithm, "--no-progress"]);
            let (a, h) = (aws.aws(&args), hoist.hoist(&args));
            same(&format!("{args:?}"), &a, &h);
            assert_eq!(a.code(), Some(0), "{args:?}: {}", a.stderr);
        }
        for bucket in ["bkt", "dst"] {
            for key in ["index.html", "sub/a.txt", "big.bin"] {
                let key = format!("{prefix}/{key}");
                let (want, got) = (
                    stored_checksum(&aws, bucket, &key),
                    stored_checksum(&hoist, bucket, &key),
                );
                assert!(got.starts_with(&format!("{algorithm}=")), "{key}: {got:?}");
                if bucket == "dst" && key.ends_with("big.bin") {
                    // aws-cli copies 9 MiB in parts (its 8 MiB threshold) and gets a checksum
                    // of parts; hoist copies it in one CopyObject (up to 5 GiB), so S3 stores
                    // the whole object's checksum.
                    if algorithm == "CRC32" {
                        let data = std::fs::read(hoist.local().join("big.bin")).expect("read");
                        let whole = base64(&crc32fast::hash(&data).to_be_bytes());
                        assert_eq!(got, format!("CRC32={whole}"));
                    }
                    continue;
                }
                assert_eq!(got, want, "{algorithm}: s3://{bucket}/{key}");
            }
        }
    }
    // aws-cli's checks of where the checksum flags apply.
    let cases: [&[&str]; 2] = [
        &["s3://bkt/crc32", "down", "--checksum-algorithm", "CRC32"],
        &["local", "s3://bkt/x", "--checksum-mode", "ENABLED"],
    ];
    for args in cases {
        let (a, h) = (aws.aws(args), hoist.hoist(args));
        assert_eq!((h.code(), a.code()), (Some(255), Some(255)), "{}", h.stderr);
        assert!(
            h.stderr.contains(a.stderr.trim()),
            "{}\n{}",
            a.stderr,
            h.stderr
        );
    }
}

/// `--checksum-mode ENABLED` on download: an object whose stored checksum does not match its
/// bytes fails with botocore's message and exit 1, and nothing of it is left on disk; good
/// objects (a stored checksum, or none) download.
#[test]
fn checksum_mode_fails_a_corrupt_download_like_aws_cli() {
    let Some((aws, hoist)) = pair(Kind::Moto) else {
        return;
    };
    for side in [&aws, &hoist] {
        let client = side.endpoint.client();
        // moto stores the checksum a client names without checking it: a corrupt object.
        block_on(
            client
                .put_object()
                .bucket("bkt")
                .key("cm/corrupt.txt")
                .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32)
                .checksum_crc32("AAAAAA==")
                .body(b"hello\n".to_vec().into())
                .send(),
        )
        .expect("put");
        block_on(
            client
                .put_object()
                .bucket("bkt")
                .key("cm/good.txt")
                .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
                .body(b"good\n".to_vec().into())
                .send(),
        )
        .expect("put");
        side.put("bkt", "cm/plain.txt", "no checksum");
    }
    let args = [
        "s3://bkt/cm",
        "local",
        "--checksum-mode",
        "ENABLED",
        "--no-progress",
    ];
    let (a, h) = (aws.aws(&args), hoist.hoist(&args));
    same("checksum mode", &a, &h);
    assert_eq!(h.code(), Some(1), "{}", h.stderr);
    assert_eq!(error_lines(&h, &hoist), error_lines(&a, &aws));
    assert!(
        h.stderr
            .contains("Expected checksum AAAAAA== did not match calculated checksum: NjowIA=="),
        "{}",
        h.stderr
    );
    let tree = local_tree(&hoist.local());
    assert_eq!(tree, local_tree(&aws.local()));
    assert_eq!(
        tree.keys().cloned().collect::<Vec<_>>(),
        ["good.txt", "plain.txt"],
        "a corrupt download was kept (or a temporary file left)"
    );
}

/// `--case-conflict skip|warn|error` on downloads of keys that differ only by case: aws-cli's
/// warnings (which do not change the exit code), its fatal error for `error`, the same files.
#[test]
fn case_conflicts_like_aws_cli() {
    for mode in ["skip", "warn", "error", "ignore"] {
        let Some((aws, hoist)) = pair(Kind::Moto) else {
            return;
        };
        for side in [&aws, &hoist] {
            for key in ["A.txt", "a.txt", "B.TXT", "b.txt", "c.txt"] {
                side.put("bkt", &format!("cc/{key}"), key);
            }
        }
        let args = [
            "s3://bkt/cc",
            "local",
            "--case-conflict",
            mode,
            "--no-progress",
        ];
        let (a, h) = (aws.aws(&args), hoist.hoist(&args));
        same(mode, &a, &h);
        assert_eq!(
            error_lines(&h, &hoist),
            error_lines(&a, &aws),
            "{mode}: stderr"
        );
        let tree = local_tree(&hoist.local());
        match mode {
            "error" => {
                assert_eq!(h.code(), Some(1));
                // aws-cli stops its pipeline at the conflict (a download it started may
                // finish); hoist checks every name before the first transfer.
                assert!(tree.is_empty(), "{tree:?}");
            }
            _ => {
                assert_eq!(h.code(), Some(0), "{}", h.stderr);
                assert_eq!(tree, local_tree(&aws.local()), "{mode}");
                let expected = if mode == "skip" { 3 } else { 5 };
                assert_eq!(tree.len(), expected, "{mode}: {tree:?}");
            }
        }
    }
}

/// Copies of objects at or above the profile's `multipart_threshold` go in parts
/// (UploadPartCopy) in aws-cli's part size, which the listing's multipart ETag (the same in
/// both tools) proves; hoist keeps the source's headers and metadata as it does for a one-
/// request copy, where aws-cli v1's multipart copy drops them (a deliberate difference).
#[test]
fn large_copies_go_in_parts_like_aws_cli() {
    let Some((aws, hoist)) = pair(Kind::Moto) else {
        return;
    };
    let config = tempfile::NamedTempFile::new().expect("config");
    std::fs::write(
        config.path(),
        "[default]\ns3 =\n  multipart_threshold = 5MB\n  multipart_chunksize = 5MB\n",
    )
    .expect("write config");
    let data: Vec<u8> = (0..(12u32 << 20)).map(|i| (i % 239) as u8).collect();
    for side in [&aws, &hoist] {
        block_on(
            side.endpoint
                .client()
                .put_object()
                .bucket("bkt")
                .key("mp/big.css")
                .content_type("text/css")
                .cache_control("max-age=60")
                .metadata("team", "web")
                .body(data.clone().into())
                .send(),
        )
        .expect("put");
        side.put("bkt", "mp/small.txt", "small");
    }
    let args = ["s3://bkt/mp", "s3://dst/mp", "--no-progress"];
    let run = |side: &Side, is_aws: bool| {
        let moto = side.server.moto_server().expect("moto");
        moto.start_recording();
        let base = if is_aws {
            Hoist::aws(side.cwd.path(), &side.endpoint).args(["s3", "sync"])
        } else {
            Hoist::on(side.cwd.path(), &side.endpoint).args([
                "sync",
                "--endpoint-url",
                &side.endpoint.url,
            ])
        };
        let ran = base
            .env("AWS_CONFIG_FILE", config.path().display().to_string())
            .args(args)
            .run();
        moto.stop_recording();
        let parts = moto
            .recording()
            .iter()
            .filter(|r| operation(r) == Some("UploadPartCopy"))
            .count();
        (ran, parts)
    };
    let ((a, aws_parts), (h, hoist_parts)) = (run(&aws, true), run(&hoist, false));
    same("multipart copy", &a, &h);
    assert_eq!(a.code(), Some(0), "{}", a.stderr);
    assert_eq!((hoist_parts, aws_parts), (3, 3), "12 MiB in 5 MiB parts");
    let listed = |side: &Side| {
        let listing = block_on(
            side.endpoint
                .client()
                .list_objects_v2()
                .bucket("dst")
                .send(),
        )
        .expect("list");
        listing
            .contents()
            .iter()
            .map(|o| {
                format!(
                    "{} {} {}",
                    o.key().unwrap_or_default(),
                    o.size().unwrap_or_default(),
                    o.e_tag().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
    };
    let hoist_listing = listed(&hoist);
    assert_eq!(hoist_listing, listed(&aws));
    assert!(hoist_listing[0].ends_with("-3\""), "{hoist_listing:?}");
    assert_eq!(objects(&hoist, "dst"), objects(&aws, "dst"));
    let head = crate::util::head(&hoist.endpoint.client(), "dst", "mp/big.css");
    assert_eq!(head.content_type(), Some("text/css"));
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("team"))
            .map(String::as_str),
        Some("web")
    );
}

/// aws-cli's checks of the customer-key flags, before any request: the same message and
/// exit 255 (the endpoint here accepts no connection).
#[test]
fn customer_key_flags_are_checked_like_aws_cli() {
    let Some((aws, hoist)) = pair(Kind::Moto) else {
        return;
    };
    for side in [&aws, &hoist] {
        std::fs::create_dir_all(side.local()).expect("mkdir");
    }
    let cases: [&[&str]; 5] = [
        &["local", "s3://bkt/p", "--sse-c"],
        &["local", "s3://bkt/p", "--sse-c-key", "k"],
        &["s3://bkt/p", "s3://dst/p", "--sse-c-copy-source", "AES256"],
        &[
            "local",
            "s3://bkt/p",
            "--sse-c-copy-source",
            "--sse-c-copy-source-key",
            "k",
        ],
        &[
            "local",
            "s3://bkt/p",
            "--sse-c",
            "--sse-c-key",
            "fileb:///nonexistent/key",
        ],
    ];
    for case in cases {
        let mut args = case.to_vec();
        args.extend(["--endpoint-url", "http://127.0.0.1:9"]);
        let a = Hoist::aws(aws.cwd.path(), &aws.endpoint)
            .args(["s3", "sync"])
            .args(&args)
            .run();
        let h = Hoist::on(hoist.cwd.path(), &hoist.endpoint)
            .arg("sync")
            .args(&args)
            .run();
        assert_eq!(a.code(), Some(255), "{case:?}: {}", a.stderr);
        assert_eq!(h.code(), a.code(), "{case:?}: {}", h.stderr);
        let message = a.stderr.trim();
        assert!(!message.is_empty());
        assert!(
            h.stderr.contains(message),
            "{case:?}:\n{}\n{}",
            a.stderr,
            h.stderr
        );
    }
}

/// A local file whose mtime Python's datetime cannot hold (year 14645, which tmpfs stores):
/// aws-cli warns `File has an invalid timestamp. Passing epoch time as timestamp.`, exits 2
/// and compares the file as 1970, so a second run uploads nothing; hoist the same.
#[cfg(target_os = "linux")]
#[test]
fn an_unrepresentable_mtime_warns_like_aws_cli() {
    let Some((aws, hoist)) = pair(Kind::Moto) else {
        return;
    };
    let shm = tempfile::tempdir_in("/dev/shm").expect("a directory in /dev/shm (tmpfs)");
    let mut trees = Vec::new();
    for name in ["aws", "hoist"] {
        let root = shm.path().join(name);
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::write(root.join("far.txt"), "far future").expect("write");
        std::fs::write(root.join("now.txt"), "now").expect("write");
        let far = std::time::UNIX_EPOCH + std::time::Duration::from_secs(400_000_000_000);
        crate::sync_compat::set_mtime(&root.join("far.txt"), far);
        let seen = std::fs::metadata(root.join("far.txt"))
            .and_then(|m| m.modified())
            .expect("mtime");
        assert_eq!(seen, far, "/dev/shm did not keep a year-14645 mtime");
        trees.push(root);
    }
    // LastModified has whole seconds: an upload in the second now.txt was written would leave
    // the file newer than its object (by the fraction), and either tool would send it again.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for run in ["first", "second"] {
        let a = aws.aws(&[trees[0].to_str().unwrap(), "s3://bkt/mt", "--no-progress"]);
        let h = hoist.hoist(&[trees[1].to_str().unwrap(), "s3://bkt/mt", "--no-progress"]);
        let strip = |ran: &Ran, root: &Path| {
            crate::sync_compat::lines(ran)
                .iter()
                .map(|l| l.replace(&root.display().to_string(), "ROOT"))
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&h, &trees[1]), strip(&a, &trees[0]), "{run}");
        assert_eq!(
            (h.code(), a.code()),
            (Some(2), Some(2)),
            "{run}: {}",
            h.stderr
        );
        let warning = "warning: File has an invalid timestamp. Passing epoch time as timestamp.";
        assert_eq!(h.stderr.trim(), warning, "{run}");
        assert_eq!(a.stderr.trim(), warning, "{run}");
        if run == "second" {
            assert!(
                crate::sync_compat::lines(&h).is_empty(),
                "re-uploaded: {}",
                h.stdout
            );
        }
    }
    assert_eq!(objects(&hoist, "bkt"), objects(&aws, "bkt"));
}
