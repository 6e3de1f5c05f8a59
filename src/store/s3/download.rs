//! Downloads for `sync`: GetObject streamed through a [`Spool`] into a temporary file beside
//! the destination, resumed with ranged GETs pinned to the first ETag, checked (the length, and
//! hoist's blake3, a single-part MD5 ETag or a multipart ETag: [`Check`]), then renamed into
//! place.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use md5::{Digest, Md5};

use super::requests::{ChecksumKind, with_customer_key};
use super::{S3Store, errors::map_sdk_error, normalize_etag};
use crate::store::{BoxError, Error, NamedStore, hex};

impl S3Store {
    /// Streams an object into a temporary file beside `destination`, checks it received every
    /// byte the response announced, sets its access and modification times to `modified`, and
    /// renames it over `destination` (replacing a file or symlink, never writing through one).
    /// The temporary file is removed on failure. With `make_parent` the parent directory is
    /// made first (on the same trip to the blocking pool as the file), and failing to make it
    /// is an [`Error::Io`] naming the directory.
    ///
    /// Returns the error of setting the times, if that alone failed (the file is kept).
    ///
    /// A body that fails mid-stream is resumed with ranged GETs pinned to the first ETag. The
    /// bytes are checked here, not by the SDK ([`Check`]): the length always, then hoist's
    /// blake3 metadata where the object has it, else the MD5 of a single-part ETag, else the
    /// MD5 of each part against a multipart ETag.
    pub(super) async fn get_to_file(
        &self,
        name: &str,
        destination: &Path,
        modified: Option<SystemTime>,
        make_parent: bool,
    ) -> Result<Option<std::io::Error>, Error> {
        let url = self.named_url(name);
        let parent = destination.parent().unwrap_or(Path::new(".")).to_owned();
        let mut spool = Spool::new(parent.clone(), temp_prefix(destination), make_parent);
        let io = |source: std::io::Error| io_error(source, &parent, destination);
        // The SDK retries requests, not a body that fails mid-stream (docs/s3-facts.md): resume
        // with a ranged GET pinned to the first answer's ETag, so the pieces are one object.
        let mut received = Received::default();
        let mut attempt = 0;
        let failure = loop {
            attempt += 1;
            let output = self.get_from(name, &url, &received).await?;
            let length = output.content_length().map(|n| n.max(0) as u64);
            if received.etag.is_none() {
                received.etag = output.e_tag().map(str::to_string);
                received.total = length;
                let blake3 = output
                    .metadata()
                    .and_then(|m| m.get(crate::headers::META_BLAKE3))
                    .cloned();
                received.check = self
                    .expectation(name, &url, &received, blake3, md5_etag(&output))
                    .await?;
                if self.requests.checksum_mode {
                    received.stored = stored_checksum(&output);
                }
            }
            spool.reserve(length.unwrap_or(0));
            if received.written > 0 && output.content_range().is_none() {
                // The server ignored the range and sent the whole object: start over.
                received.restart(&mut spool).await.map_err(io)?;
            }
            let error = match received.body(output.body, &mut spool).await {
                Ok(Some(error)) => Some(error),
                Ok(None) => self
                    .verify(name, &url, &mut received, &mut spool)
                    .await
                    .map_err(io)?,
                Err(source) => return Err(io(source)),
            };
            let Some(error) = error else {
                break None;
            };
            if attempt >= DOWNLOAD_ATTEMPTS {
                break Some(error);
            }
            if received.total == Some(received.written) {
                // Every byte arrived but they are wrong: fetch them all again.
                received.restart(&mut spool).await.map_err(io)?;
            }
            tracing::debug!(
                "download of {url} interrupted at {} bytes ({error}); resuming",
                received.written
            );
            tokio::time::sleep(std::time::Duration::from_millis(100 * u64::from(attempt))).await;
        };
        if let Some(source) = failure {
            return Err(Error::Other {
                op: "GetObject",
                url,
                source,
            });
        }
        if let Some((kind, expected)) = received.stored.take() {
            let calculated = spool.checksum(kind).await.map_err(io)?;
            if calculated != expected {
                // The spool drops here, and its temporary file with it: nothing is left.
                return Err(Error::ChecksumMismatch {
                    url,
                    expected,
                    calculated,
                });
            }
        }
        spool.finish(destination, modified).await.map_err(io)
    }

    /// GetObject from where `received` stopped, pinned to its ETag once it has one.
    async fn get_from(
        &self,
        name: &str,
        url: &str,
        received: &Received,
    ) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput, Error> {
        let mut request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(format!("{}{}", self.prefix, name))
            .set_if_match(received.etag.clone());
        request = with_customer_key!(request, self.requests.customer_key.as_ref());
        if received.written > 0 {
            request = request.range(format!("bytes={}-", received.written));
        }
        // `--checksum-mode`: ask for the stored checksum with a header of hoist's own, not the
        // SDK's ChecksumMode, so that the SDK does not validate it (see below); hoist checks it
        // over the whole file once every range arrived.
        let checksum_mode = self.requests.checksum_mode;
        // hoist checks the bytes itself, over every resumed range. No ChecksumMode: with it the
        // SDK validates whatever checksum the server sends, and servers get these wrong (rclone
        // sends the whole object's CRC32 on a ranged answer; moto stores a multipart source's
        // composite CRC32 on a single-part copy).
        request
            .customize()
            .config_override(
                aws_sdk_s3::config::Builder::default().response_checksum_validation(
                    aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
                ),
            )
            .mutate_request(move |request| {
                if checksum_mode {
                    request
                        .headers_mut()
                        .insert("x-amz-checksum-mode", "ENABLED");
                }
            })
            .send()
            .await
            .map_err(|e| map_sdk_error("GetObject", url, &self.bucket, &self.endpoint, e))
    }
}

/// GETs of one download, counting the first: each resumes where the last one stopped.
const DOWNLOAD_ATTEMPTS: u32 = 6;

/// A body must bring at least this many bytes a second, averaged over [`RATE_WINDOW`].
const MIN_RATE: u64 = 1024;
const RATE_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// How a download's bytes are proved to be the object's, strongest first.
enum Check {
    /// hoist wrote the object: the blake3 in its `hoist-blake3` metadata.
    Blake3 {
        expected: String,
        hasher: Box<blake3::Hasher>,
    },
    /// A single-part ETag is the MD5 of the bytes.
    Md5 { expected: String, hasher: Md5 },
    /// A multipart ETag is the MD5 of the parts' MD5s, then `-N`: the bytes are hashed in
    /// parts of the first part's size (HEAD `?partNumber=1`), the layout every S3 client uses;
    /// another layout is read from every part's HEAD before anything is called corrupt.
    Parts {
        expected: String,
        count: usize,
        part_size: u64,
        done: Vec<[u8; 16]>,
        current: Md5,
        in_part: u64,
    },
    /// Nothing to compare with (an ETag of another form): the length alone.
    Length,
}

impl Check {
    fn update(&mut self, mut chunk: &[u8]) {
        match self {
            Check::Blake3 { hasher, .. } => {
                hasher.update(chunk);
            }
            Check::Md5 { hasher, .. } => hasher.update(chunk),
            Check::Parts {
                part_size,
                done,
                current,
                in_part,
                ..
            } => {
                while !chunk.is_empty() {
                    let room = (*part_size - *in_part).min(chunk.len() as u64) as usize;
                    current.update(&chunk[..room]);
                    *in_part += room as u64;
                    chunk = &chunk[room..];
                    if *in_part == *part_size {
                        done.push(std::mem::take(current).finalize().into());
                        *in_part = 0;
                    }
                }
            }
            Check::Length => {}
        }
    }

    /// The same expectation, with nothing hashed yet.
    fn restarted(&self) -> Check {
        match self {
            Check::Blake3 { expected, .. } => Check::Blake3 {
                expected: expected.clone(),
                hasher: Box::default(),
            },
            Check::Md5 { expected, .. } => Check::Md5 {
                expected: expected.clone(),
                hasher: Md5::new(),
            },
            Check::Parts {
                expected,
                count,
                part_size,
                ..
            } => Check::Parts {
                expected: expected.clone(),
                count: *count,
                part_size: *part_size,
                done: Vec::new(),
                current: Md5::new(),
                in_part: 0,
            },
            Check::Length => Check::Length,
        }
    }
}

/// `md5(md5(part 1) ‖ … ‖ md5(part N))-N`, S3's multipart ETag.
fn multipart_etag(parts: &[[u8; 16]]) -> String {
    let mut outer = Md5::new();
    for part in parts {
        outer.update(part);
    }
    format!("{}-{}", hex(&outer.finalize()), parts.len())
}

/// A multipart ETag's part count: `…-N`.
fn parts_count(etag: &str) -> Option<usize> {
    let (digest, count) = etag.rsplit_once('-')?;
    (digest.len() == 32 && digest.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| count.parse().ok())
        .flatten()
        .filter(|&n| n > 0)
}

fn is_plain_md5(etag: &str) -> bool {
    etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

impl S3Store {
    /// What the download's bytes will be checked against, from the first answer.
    async fn expectation(
        &self,
        name: &str,
        url: &str,
        received: &Received,
        blake3: Option<String>,
        md5_etag: bool,
    ) -> Result<Check, Error> {
        if let Some(expected) = blake3 {
            return Ok(Check::Blake3 {
                expected,
                hasher: Box::default(),
            });
        }
        let Some(etag) = received.etag.as_deref().map(normalize_etag) else {
            return Ok(Check::Length);
        };
        if !md5_etag {
            return Ok(Check::Length);
        }
        if is_plain_md5(&etag) {
            return Ok(Check::Md5 {
                expected: etag,
                hasher: Md5::new(),
            });
        }
        let Some(count) = parts_count(&etag) else {
            return Ok(Check::Length);
        };
        let part_size = self.part_size(name, url, 1).await?;
        Ok(Check::Parts {
            expected: etag,
            count,
            part_size: part_size.max(1),
            done: Vec::new(),
            current: Md5::new(),
            in_part: 0,
        })
    }

    /// HEAD `?partNumber=N`: the size of part N. Not pinned with If-Match: moto answers a
    /// part's HEAD with the part's own ETag, so the precondition would fail there; an object
    /// replaced meanwhile fails the check and the download starts over.
    async fn part_size(&self, name: &str, url: &str, number: usize) -> Result<u64, Error> {
        let request = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(format!("{}{}", self.prefix, name))
            .part_number(i32::try_from(number).unwrap_or(i32::MAX));
        let output = with_customer_key!(request, self.requests.customer_key.as_ref())
            .send()
            .await
            .map_err(|e| map_sdk_error("HeadObject", url, &self.bucket, &self.endpoint, e))?;
        Ok(output.content_length().unwrap_or(0).max(0) as u64)
    }

    /// Once every byte arrived: `Some` when they are not the object's bytes (the download
    /// starts over). Objects in parts of uneven size are re-read with their real layout.
    async fn verify(
        &self,
        name: &str,
        url: &str,
        received: &mut Received,
        spool: &mut Spool,
    ) -> std::io::Result<Option<BoxError>> {
        // A mismatch starts the download over, with the same expectation.
        let restarted = received.check.restarted();
        let check = std::mem::replace(&mut received.check, restarted);
        let mismatch = |what: &str, got: &str, expected: &str| -> Option<BoxError> {
            (!got.eq_ignore_ascii_case(expected)).then(|| {
                format!("downloaded bytes have {what} {got}, the object's is {expected}").into()
            })
        };
        Ok(match check {
            Check::Blake3 { expected, hasher } => {
                mismatch("blake3", hasher.finalize().to_hex().as_str(), &expected)
            }
            Check::Md5 { expected, hasher } => mismatch("MD5", &hex(&hasher.finalize()), &expected),
            Check::Parts {
                expected,
                count,
                mut done,
                current,
                in_part,
                ..
            } => {
                if in_part > 0 || done.is_empty() {
                    done.push(current.finalize().into());
                }
                let got = multipart_etag(&done);
                if got.eq_ignore_ascii_case(&expected) {
                    return Ok(None);
                }
                // Uneven parts: learn each part's size, then hash the file again by them.
                let mut sizes = Vec::with_capacity(count);
                for number in 1..=count {
                    match self.part_size(name, url, number).await {
                        Ok(size) => sizes.push(size),
                        Err(error) => return Ok(Some(Box::new(error))),
                    }
                }
                let parts = spool.part_md5s(sizes).await?;
                mismatch("multipart ETag", &multipart_etag(&parts), &expected)
            }
            Check::Length => None,
        })
    }
}

/// What a download has received so far, over all its attempts.
struct Received {
    /// The first answer's ETag, which every later range must match.
    etag: Option<String>,
    /// The first answer's length: the object's size.
    total: Option<u64>,
    written: u64,
    check: Check,
    /// `--checksum-mode`: the full-object checksum stored with the object, from the first
    /// answer, which the finished file must have.
    stored: Option<(ChecksumKind, String)>,
}

impl Default for Received {
    fn default() -> Self {
        Received {
            etag: None,
            total: None,
            written: 0,
            check: Check::Length,
            stored: None,
        }
    }
}

/// Whether an answer's ETag is the MD5 of its bytes (or of its parts): not when S3 encrypted
/// the object with a customer key or with KMS, whose ETags are digests of something else.
fn md5_etag(output: &aws_sdk_s3::operation::get_object::GetObjectOutput) -> bool {
    use aws_sdk_s3::types::ServerSideEncryption as Sse;
    output.sse_customer_algorithm().is_none()
        && !matches!(
            output.server_side_encryption(),
            Some(Sse::AwsKms | Sse::AwsKmsDsse)
        )
}

/// The full-object checksum an answer carries (`x-amz-checksum-*`); a composite checksum of
/// parts (`…-N`, or type COMPOSITE) checks nothing a whole-file digest can, so it is skipped,
/// as botocore skips it.
fn stored_checksum(
    output: &aws_sdk_s3::operation::get_object::GetObjectOutput,
) -> Option<(ChecksumKind, String)> {
    if output.checksum_type() == Some(&aws_sdk_s3::types::ChecksumType::Composite) {
        return None;
    }
    [
        (ChecksumKind::Crc64Nvme, output.checksum_crc64_nvme()),
        (ChecksumKind::Crc32, output.checksum_crc32()),
        (ChecksumKind::Crc32c, output.checksum_crc32_c()),
        (ChecksumKind::Sha1, output.checksum_sha1()),
        (ChecksumKind::Sha256, output.checksum_sha256()),
        (ChecksumKind::Sha512, output.checksum_sha512()),
    ]
    .into_iter()
    .find_map(|(kind, value)| Some((kind, value?.to_string())))
    .filter(|(_, value)| !value.contains('-'))
}

impl Received {
    /// Forgets every byte, to fetch the object from its start.
    async fn restart(&mut self, spool: &mut Spool) -> std::io::Result<()> {
        spool.reset().await?;
        self.written = 0;
        self.check = self.check.restarted();
        Ok(())
    }

    /// Spools one answer's body. `Ok(Some(_))` when the body ended early or failed (worth
    /// resuming); `Err` when the file itself could not be written.
    ///
    /// A body slower than [`MIN_RATE`] bytes a second over a [`RATE_WINDOW`] is cut off (and
    /// resumed): a server that trickles bytes never trips the read timeout, which only waits
    /// for the next byte.
    async fn body(
        &mut self,
        mut body: aws_sdk_s3::primitives::ByteStream,
        spool: &mut Spool,
    ) -> std::io::Result<Option<BoxError>> {
        let mut window = (tokio::time::Instant::now(), 0u64);
        loop {
            let next = tokio::time::timeout_at(window.0 + RATE_WINDOW, body.try_next()).await;
            if window.0.elapsed() >= RATE_WINDOW {
                if window.1 < MIN_RATE * RATE_WINDOW.as_secs() {
                    return Ok(Some(
                        format!(
                            "the server sent {} bytes in {}s, slower than {MIN_RATE} bytes a second",
                            window.1,
                            RATE_WINDOW.as_secs()
                        )
                        .into(),
                    ));
                }
                window = (tokio::time::Instant::now(), 0);
            }
            let Ok(next) = next else {
                continue; // the window ended with enough bytes; keep reading
            };
            match next {
                Ok(Some(chunk)) => {
                    spool.push(&chunk).await?;
                    self.check.update(&chunk);
                    self.written += chunk.len() as u64;
                    window.1 += chunk.len() as u64;
                }
                Ok(None) if self.total.is_none_or(|t| t == self.written) => return Ok(None),
                Ok(None) => {
                    let total = self.total.unwrap_or(0);
                    return Ok(Some(
                        format!("received {} bytes of {total}", self.written).into(),
                    ));
                }
                Err(e) => return Ok(Some(Box::new(e))),
            }
        }
    }
}

/// aws-cli's temporary name: the file name (cut to fit 255 bytes), a dot, then the random
/// characters the spool adds.
fn temp_prefix(destination: &Path) -> String {
    let mut base = destination
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    while base.len() > 255 - 9 {
        base.pop();
    }
    format!("{base}.")
}

fn is_make_parent(error: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    error.is::<MakeParent>()
}

/// Names the directory when making it failed, else the destination.
fn io_error(source: std::io::Error, parent: &Path, destination: &Path) -> Error {
    if source.get_ref().is_some_and(is_make_parent) {
        let inner = source.into_inner().expect("checked above");
        let MakeParent(source) = *inner.downcast::<MakeParent>().expect("checked above");
        return Error::Io {
            path: parent.to_owned(),
            source,
        };
    }
    Error::Io {
        path: destination.to_owned(),
        source,
    }
}

/// A download on its way to a temporary file beside its destination: bytes are gathered in
/// memory and written with one blocking call per [`Spool::FLUSH`] bytes (a small file: one
/// call that makes the directory if asked, creates, writes, sets the times and renames),
/// instead of one hop to the blocking pool per network chunk. Dropped unfinished, the
/// temporary file is removed.
///
/// File system calls stay on the blocking pool even for small files: finishing them on the
/// runtime's threads saved 12% of a download's CPU on tmpfs, but on a busy ext4 disk a stalled
/// rename held a runtime thread and the download took up to 28% longer.
struct Spool {
    parent: PathBuf,
    prefix: String,
    /// Make `parent` (and its parents) before the file.
    make_parent: bool,
    file: Option<tempfile::NamedTempFile>,
    pending: Vec<u8>,
}

/// The failure to make a download's directory, told apart from failures on the file itself.
#[derive(Debug)]
struct MakeParent(std::io::Error);

impl std::fmt::Display for MakeParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for MakeParent {}

impl Spool {
    const FLUSH: usize = 4 << 20;

    fn new(parent: PathBuf, prefix: String, make_parent: bool) -> Spool {
        Spool {
            parent,
            prefix,
            make_parent,
            file: None,
            pending: Vec::new(),
        }
    }

    fn create(
        parent: &Path,
        prefix: &str,
        make_parent: bool,
    ) -> std::io::Result<tempfile::NamedTempFile> {
        if make_parent {
            std::fs::create_dir_all(parent)
                .map_err(|e| std::io::Error::new(e.kind(), MakeParent(e)))?;
        }
        let mut builder = tempfile::Builder::new();
        builder.prefix(prefix).rand_bytes(8);
        // tempfile creates 0600 files; a download gets the usual 0666 minus the umask.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let file = match builder.tempfile_in(parent) {
            // The directory went away (or was never made): make it, as `create_dir_all` would.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(parent)
                    .map_err(|e| std::io::Error::new(e.kind(), MakeParent(e)))?;
                builder.tempfile_in(parent)
            }
            result => result,
        }?;
        // A second Ctrl-C exits without running destructors: it removes tracked files itself.
        crate::interrupt::track(file.path());
        Ok(file)
    }

    /// Room for the next `bytes` (up to one flush), so a body is gathered without regrowing.
    fn reserve(&mut self, bytes: u64) {
        let room = usize::try_from(bytes)
            .unwrap_or(usize::MAX)
            .min(Self::FLUSH);
        self.pending
            .reserve(room.saturating_sub(self.pending.len()));
    }

    async fn push(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.pending.extend_from_slice(chunk);
        if self.pending.len() >= Self::FLUSH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Runs `f` on the temporary file (created on first use) on a blocking thread.
    async fn with_file<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut tempfile::NamedTempFile) -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        let (parent, prefix) = (self.parent.clone(), self.prefix.clone());
        let (file, make_parent) = (self.file.take(), self.make_parent);
        let (file, result) = tokio::task::spawn_blocking(move || {
            let mut file = match file {
                Some(file) => file,
                None => Spool::create(&parent, &prefix, make_parent)?,
            };
            let result = f(&mut file);
            Ok::<_, std::io::Error>((file, result))
        })
        .await
        .expect("file task does not panic")?;
        self.file = Some(file);
        result
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        let mut pending = std::mem::take(&mut self.pending);
        let (pending, result) = self
            .with_file(move |file| {
                let result = file.write_all(&pending);
                pending.clear();
                Ok((pending, result))
            })
            .await?;
        self.pending = pending; // keep the buffer for the next FLUSH bytes
        result
    }

    /// The MD5 of each part of the bytes spooled so far, cut at `sizes`.
    async fn part_md5s(&mut self, sizes: Vec<u64>) -> std::io::Result<Vec<[u8; 16]>> {
        self.flush().await?;
        self.with_file(move |file| {
            use std::io::Read;
            let mut handle = file.reopen()?;
            let mut buffer = vec![0; 256 * 1024];
            let mut parts = Vec::with_capacity(sizes.len());
            for size in sizes {
                let mut part = (&mut handle).take(size);
                let mut md5 = Md5::new();
                loop {
                    let n = part.read(&mut buffer)?;
                    if n == 0 {
                        break;
                    }
                    md5.update(&buffer[..n]);
                }
                parts.push(md5.finalize().into());
            }
            Ok(parts)
        })
        .await
    }

    /// The base64 checksum of `kind` of every byte spooled so far.
    async fn checksum(&mut self, kind: ChecksumKind) -> std::io::Result<String> {
        self.flush().await?;
        self.with_file(move |file| {
            use std::io::Read;
            let mut handle = file.reopen()?;
            let mut buffer = vec![0; 256 * 1024];
            let mut summer = kind.summer();
            loop {
                let n = handle.read(&mut buffer)?;
                if n == 0 {
                    break;
                }
                summer.update(&buffer[..n]);
            }
            Ok(summer.finish())
        })
        .await
    }

    /// Forgets everything written, to start the object over.
    async fn reset(&mut self) -> std::io::Result<()> {
        self.pending.clear();
        if self.file.is_some() {
            self.with_file(|file| {
                file.as_file().set_len(0)?;
                file.seek(SeekFrom::Start(0)).map(|_| ())
            })
            .await?;
        }
        Ok(())
    }

    /// Writes what is left, sets the times and renames the file over `destination`. Returns the
    /// error of setting the times, if that alone failed (the file is kept).
    async fn finish(
        mut self,
        destination: &Path,
        modified: Option<SystemTime>,
    ) -> std::io::Result<Option<std::io::Error>> {
        let pending = std::mem::take(&mut self.pending);
        let destination = destination.to_owned();
        let (parent, prefix, file) = (self.parent.clone(), self.prefix.clone(), self.file.take());
        let make_parent = self.make_parent;
        tokio::task::spawn_blocking(move || {
            let mut file = match file {
                Some(file) => file,
                None => Spool::create(&parent, &prefix, make_parent)?,
            };
            let temporary = file.path().to_owned();
            let result = (|| {
                file.write_all(&pending)?;
                let times_error = modified.and_then(|time| {
                    let times = std::fs::FileTimes::new()
                        .set_accessed(time)
                        .set_modified(time);
                    file.as_file().set_times(times).err()
                });
                file.persist(&destination).map_err(|e| e.error)?;
                Ok(times_error)
            })();
            // Renamed into place, or removed as the NamedTempFile dropped.
            crate::interrupt::untrack(&temporary);
            result
        })
        .await
        .expect("file task does not panic")
    }
}

impl Drop for Spool {
    /// The NamedTempFile removes an unfinished download's file; it needs no tracking then.
    fn drop(&mut self) {
        if let Some(file) = &self.file {
            crate::interrupt::untrack(file.path());
        }
    }
}

#[cfg(test)]
mod spool_tests {
    use super::*;

    async fn spool_to(parent: &Path, name: &str, chunks: &[&[u8]]) -> PathBuf {
        let destination = parent.join(name);
        let mut spool = Spool::new(parent.to_owned(), format!("{name}."), true);
        spool.reserve(chunks.iter().map(|c| c.len() as u64).sum());
        for chunk in chunks {
            spool.push(chunk).await.unwrap();
        }
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let times_error = spool.finish(&destination, Some(time)).await.unwrap();
        assert!(times_error.is_none());
        assert_eq!(
            std::fs::metadata(&destination).unwrap().modified().unwrap(),
            time
        );
        destination
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn small_file_is_finished_into_the_directory_it_makes() {
        let tmp = tempfile::tempdir().unwrap();
        let parent = tmp.path().join("made/on/demand");
        let path = spool_to(&parent, "a.html", &[b"<p>", b"hi", b"</p>"]).await;
        assert_eq!(std::fs::read(path).unwrap(), b"<p>hi</p>");
        assert_eq!(leftovers(&parent), ["a.html"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_file_goes_through_flushes_and_the_blocking_pool() {
        let tmp = tempfile::tempdir().unwrap();
        // Over FLUSH, in uneven chunks: written in flushes, finished on the blocking pool.
        let chunk: Vec<u8> = (0..=255u8).cycle().take(1_000_003).collect();
        let chunks: Vec<&[u8]> = std::iter::repeat_n(chunk.as_slice(), 5).collect();
        let path = spool_to(tmp.path(), "big.bin", &chunks).await;
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(bytes.len(), 5 * chunk.len());
        assert!(bytes.chunks(chunk.len()).all(|c| c == chunk.as_slice()));
        assert_eq!(leftovers(tmp.path()), ["big.bin"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_directory_that_cannot_be_made_is_told_apart() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("file"), "x").unwrap();
        let parent = tmp.path().join("file/sub");
        let mut spool = Spool::new(parent.clone(), "a.".into(), true);
        spool.push(b"body").await.unwrap();
        let error = spool.finish(&parent.join("a"), None).await.unwrap_err();
        assert!(error.get_ref().is_some_and(is_make_parent), "{error:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reset_forgets_what_was_written() {
        let tmp = tempfile::tempdir().unwrap();
        let destination = tmp.path().join("r.bin");
        let mut spool = Spool::new(tmp.path().to_owned(), "r.bin.".into(), false);
        spool.push(&vec![1u8; Spool::FLUSH + 1]).await.unwrap();
        spool.reset().await.unwrap();
        spool.push(b"second").await.unwrap();
        spool.finish(&destination, None).await.unwrap();
        assert_eq!(std::fs::read(&destination).unwrap(), b"second");
    }
}
