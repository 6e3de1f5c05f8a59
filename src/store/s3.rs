//! S3 (and S3-compatible stores) through aws-sdk-s3.
//!
//! - Listing: ListObjectsV2, paginated, `encoding-type=url` (keys are decoded only when the
//!   server says it encoded them), ETags normalized (quoted, bare or missing all work).
//! - Uploads: in-memory bodies with a CRC32 computed here (or Content-MD5 when the user set
//!   `AWS_REQUEST_CHECKSUM_CALCULATION=when_required` for a store that rejects checksum headers);
//!   file bodies above the multipart threshold stream from disk in ranged, rewindable parts, so
//!   memory stays bounded and the SDK can retry a part. Payloads are not SHA-256 signed: the
//!   checksum carries the integrity (S3-PITFALLS.md; the cost is measured in `bench/`).
//! - A failed multipart upload is aborted, so no orphaned parts stay billed.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, Delete, EncodingType,
    MetadataDirective, ObjectCannedAcl, ObjectIdentifier, ServerSideEncryption, StorageClass,
};
use aws_smithy_types::byte_stream::Length;
use base64::Engine;
use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use tokio::sync::Semaphore;

use super::{Body, BoxError, Error, Listing, ObjectInfo, ObjectMeta, PutResult, Store};
use crate::headers::Headers;
use crate::key::{Key, Prefix};

/// How objects are protected in transit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// `x-amz-checksum-crc32`, verified by S3 (the SDK's default algorithm).
    Crc32,
    /// `Content-MD5`, for stores that reject the newer checksum headers.
    Md5,
}

#[derive(Debug, Clone, Copy)]
pub struct Multipart {
    pub threshold: u64,
    pub chunk_size: u64,
}

impl Default for Multipart {
    fn default() -> Self {
        // aws-cli's defaults.
        Multipart {
            threshold: 8 << 20,
            chunk_size: 8 << 20,
        }
    }
}

/// S3 allows at most 10,000 parts, each at least 5 MiB but the last.
const MAX_PARTS: u64 = 10_000;
const MIN_PART: u64 = 5 << 20;

#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: Prefix,
    endpoint: String,
    integrity: Integrity,
    multipart: Multipart,
    /// Bounds the parts in flight across every multipart upload of this store.
    parts: Arc<Semaphore>,
    /// Once set, multipart uploads start no new part and are aborted.
    interrupt: Option<crate::interrupt::Interrupt>,
    /// Whether [`PutResult::etag`] of a multipart upload must be the ETag listings show (one
    /// HEAD after the upload; deploy's manifest needs it), or may be Complete's answer (sync).
    listed_etags: bool,
}

impl S3Store {
    pub fn new(
        client: Client,
        bucket: impl Into<String>,
        prefix: Prefix,
        endpoint: impl Into<String>,
    ) -> S3Store {
        S3Store {
            client,
            bucket: bucket.into(),
            prefix,
            endpoint: endpoint.into(),
            integrity: Integrity::Crc32,
            multipart: Multipart::default(),
            parts: Arc::new(Semaphore::new(8)),
            interrupt: None,
            listed_etags: true,
        }
    }

    /// Multipart uploads return CompleteMultipartUpload's ETag without a HEAD to learn the
    /// one listings show (which some servers make different). For callers that do not keep it.
    pub fn without_listed_etags(mut self) -> Self {
        self.listed_etags = false;
        self
    }

    pub fn with_interrupt(mut self, interrupt: crate::interrupt::Interrupt) -> Self {
        self.interrupt = Some(interrupt);
        self
    }

    fn interrupted(&self) -> bool {
        self.interrupt.as_ref().is_some_and(|i| i.is_set())
    }

    pub fn with_integrity(mut self, integrity: Integrity) -> Self {
        self.integrity = integrity;
        self
    }

    pub fn with_multipart(mut self, multipart: Multipart, concurrency: usize) -> Self {
        self.multipart = multipart;
        self.parts = Arc::new(Semaphore::new(concurrency.max(1)));
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn prefix(&self) -> &Prefix {
        &self.prefix
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn full(&self, key: &Key) -> String {
        self.prefix.join(key)
    }

    fn error<E>(&self, op: &'static str, key: Option<&Key>, err: SdkError<E>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        map_sdk_error(op, &self.url(key), &self.bucket, &self.endpoint, err)
    }

    async fn put_bytes(
        &self,
        key: &Key,
        bytes: Bytes,
        headers: &Headers,
    ) -> Result<PutResult, Error> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .content_length(bytes.len() as i64);
        request = match self.integrity {
            Integrity::Crc32 => request.checksum_crc32(crc32_base64(&bytes)),
            Integrity::Md5 => request.content_md5(md5_base64(&bytes)),
        };
        request = apply_put_headers!(request, headers);
        // Without a Content-Type, send none (the SDK would send application/octet-stream;
        // aws-cli sends nothing and S3 stores binary/octet-stream).
        let untyped = headers.content_type.is_none();
        let output = request
            .body(ByteStream::from(bytes))
            .customize()
            .disable_payload_signing()
            .mutate_request(move |request| {
                if untyped {
                    request.headers_mut().remove("content-type");
                }
            })
            .send()
            .await
            .map_err(|e| self.error("PutObject", Some(key), e))?;
        Ok(PutResult {
            etag: output.e_tag().map(normalize_etag),
        })
    }

    async fn put_multipart(
        &self,
        key: &Key,
        path: &Path,
        size: u64,
        headers: &Headers,
    ) -> Result<PutResult, Error> {
        let mut chunk = self.multipart.chunk_size.max(MIN_PART);
        while size.div_ceil(chunk) > MAX_PARTS {
            chunk *= 2;
        }
        let started = SystemTime::now();
        let mut create = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(self.full(key));
        if self.integrity == Integrity::Crc32 {
            create = create.checksum_algorithm(ChecksumAlgorithm::Crc32);
        }
        create = apply_put_headers!(create, headers);
        let upload_id = match create.send().await {
            Ok(created) => created.upload_id().map(str::to_string),
            // rclone serve s3 names the root element `InitiateMultipartUpload` (S3:
            // `InitiateMultipartUploadResult`), which the SDK refuses; take the id from the body.
            Err(error) => match upload_id_from_raw(&error) {
                Some(id) => Some(id),
                None => return Err(self.error("CreateMultipartUpload", Some(key), error)),
            },
        };
        let Some(upload_id) = upload_id.filter(|id| !id.is_empty()) else {
            return Err(Error::Service {
                op: "CreateMultipartUpload",
                url: self.url(Some(key)),
                code: None,
                message: Some("the answer carried no UploadId".into()),
                status: Some(200),
            });
        };

        let result = self.upload_parts(key, path, size, chunk, &upload_id).await;
        match result {
            Ok(parts) => {
                let completed = self
                    .client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(self.full(key))
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send()
                    .await;
                match completed {
                    // Some servers (rclone serve s3) answer CompleteMultipartUpload with a
                    // multipart ETag but list the object with its MD5; the manifest must hold
                    // what listings show, so ask once.
                    Ok(output) if self.listed_etags => Ok(PutResult {
                        etag: match self.head(key).await {
                            Ok(info) => info.meta.etag,
                            Err(_) => output.e_tag().map(normalize_etag),
                        },
                    }),
                    Ok(output) => Ok(PutResult {
                        etag: output.e_tag().map(normalize_etag),
                    }),
                    Err(e) => {
                        let error = self.error("CompleteMultipartUpload", Some(key), e);
                        // A retried Complete whose first answer was lost finds the upload gone
                        // (NoSuchUpload) although it succeeded: accept it if the object is ours.
                        if let Some(etag) = self
                            .completed_anyway(key, size, headers, started, &error)
                            .await
                        {
                            return Ok(PutResult { etag });
                        }
                        self.abort(key, &upload_id).await;
                        Err(error)
                    }
                }
            }
            Err(error) => {
                self.abort(key, &upload_id).await;
                Err(error)
            }
        }
    }

    /// Whether a failed CompleteMultipartUpload in fact completed: the object exists with the
    /// size and metadata of this upload and was written after the upload began.
    async fn completed_anyway(
        &self,
        key: &Key,
        size: u64,
        headers: &Headers,
        started: SystemTime,
        error: &Error,
    ) -> Option<Option<String>> {
        if !matches!(error, Error::Service { code: Some(code), .. } if code == "NoSuchUpload") {
            return None;
        }
        let info = self.head(key).await.ok()?;
        let recent = info
            .meta
            .last_modified
            .is_some_and(|modified| modified + std::time::Duration::from_secs(60) >= started);
        let ours = info.meta.size == size && info.headers.metadata == headers.metadata && recent;
        ours.then_some(info.meta.etag)
    }

    async fn upload_parts(
        &self,
        key: &Key,
        path: &Path,
        size: u64,
        chunk: u64,
        upload_id: &str,
    ) -> Result<Vec<CompletedPart>, Error> {
        let count = size.div_ceil(chunk).max(1);
        let mut parts: Vec<CompletedPart> = stream::iter(0..count)
            .map(|index| async move {
                let _permit = self
                    .parts
                    .acquire()
                    .await
                    .expect("semaphore is never closed");
                if self.interrupted() {
                    return Err(Error::Interrupted {
                        url: self.url(Some(key)),
                    });
                }
                let offset = index * chunk;
                let length = chunk.min(size - offset);
                self.upload_part(key, path, index as i32 + 1, offset, length, upload_id)
                    .await
            })
            .buffer_unordered(self.parts.available_permits().max(1))
            .try_collect()
            .await?;
        parts.sort_by_key(|part| part.part_number());
        Ok(parts)
    }

    async fn upload_part(
        &self,
        key: &Key,
        path: &Path,
        number: i32,
        offset: u64,
        length: u64,
        upload_id: &str,
    ) -> Result<CompletedPart, Error> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        // Checksum the range first (from the page cache), then stream it: the body is rebuilt
        // from the file on every retry, so nothing is held in memory.
        let checksum = {
            let path = path.to_owned();
            let integrity = self.integrity;
            tokio::task::spawn_blocking(move || range_checksum(&path, offset, length, integrity))
                .await
                .expect("checksum task does not panic")
                .map_err(io)?
        };
        let body = ByteStream::read_from()
            .path(path)
            .offset(offset)
            .length(Length::Exact(length))
            .build()
            .await
            .map_err(|e| io(std::io::Error::other(e)))?;
        let mut request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(self.full(key))
            .upload_id(upload_id)
            .part_number(number)
            .content_length(length as i64);
        request = match self.integrity {
            Integrity::Crc32 => request.checksum_crc32(checksum.clone()),
            Integrity::Md5 => request.content_md5(checksum.clone()),
        };
        let output = request
            .body(body)
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| self.error("UploadPart", Some(key), e))?;
        let mut part = CompletedPart::builder()
            .part_number(number)
            .set_e_tag(output.e_tag().map(str::to_string));
        if self.integrity == Integrity::Crc32 {
            part = part.checksum_crc32(checksum);
        }
        Ok(part.build())
    }

    async fn abort(&self, key: &Key, upload_id: &str) {
        let result = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(self.full(key))
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(e) = result {
            tracing::warn!(
                "could not abort the multipart upload of {}: {}",
                self.url(Some(key)),
                self.error("AbortMultipartUpload", Some(key), e)
            );
        }
    }

    /// Aborts every multipart upload left under the prefix (by an interrupted run).
    pub async fn abort_stale_uploads(&self) -> Result<usize, Error> {
        let listed = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(self.prefix.as_str())
            .send()
            .await
            .map_err(|e| self.error("ListMultipartUploads", None, e))?;
        let mut aborted = 0;
        for upload in listed.uploads() {
            if let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) {
                let result = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(id)
                    .send()
                    .await;
                if result.is_ok() {
                    aborted += 1;
                }
            }
        }
        Ok(aborted)
    }
}

/// Sets the headers an upload or a replacing copy carries. A macro because the SDK's request
/// builders share these setters without sharing a trait.
macro_rules! apply_put_headers {
    ($request:expr, $headers:expr) => {{
        let headers: &Headers = $headers;
        let mut request = $request
            .set_content_type(headers.content_type.clone())
            .set_cache_control(headers.cache_control.clone())
            .set_content_encoding(headers.content_encoding.clone())
            .set_content_language(headers.content_language.clone())
            .set_content_disposition(headers.content_disposition.clone())
            .set_website_redirect_location(headers.website_redirect.clone())
            .set_ssekms_key_id(headers.sse_kms_key_id.clone())
            .set_metadata(if headers.metadata.is_empty() {
                None
            } else {
                Some(
                    headers
                        .metadata
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<HashMap<_, _>>(),
                )
            });
        if let Some(expires) = &headers.expires {
            request = request.set_expires(
                aws_smithy_types::DateTime::from_str(
                    expires,
                    aws_smithy_types::date_time::Format::HttpDate,
                )
                .ok(),
            );
        }
        if let Some(acl) = &headers.acl {
            request = request.acl(ObjectCannedAcl::from(acl.as_str()));
        }
        if let Some(class) = &headers.storage_class {
            request = request.storage_class(StorageClass::from(class.as_str()));
        }
        if let Some(sse) = &headers.sse {
            request = request.server_side_encryption(ServerSideEncryption::from(sse.as_str()));
        }
        request
    }};
}
use apply_put_headers;

fn range_checksum(
    path: &Path,
    offset: u64,
    length: u64,
    integrity: Integrity,
) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = file.take(length);
    let mut buffer = vec![0; 256 * 1024];
    let mut crc = crc32fast::Hasher::new();
    let mut md5 = Md5::new();
    let mut read = 0u64;
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        match integrity {
            Integrity::Crc32 => crc.update(&buffer[..n]),
            Integrity::Md5 => md5.update(&buffer[..n]),
        }
        read += n as u64;
    }
    if read != length {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "file shrank while it was uploaded",
        ));
    }
    Ok(match integrity {
        Integrity::Crc32 => {
            base64::engine::general_purpose::STANDARD.encode(crc.finalize().to_be_bytes())
        }
        Integrity::Md5 => base64::engine::general_purpose::STANDARD.encode(md5.finalize()),
    })
}

pub fn crc32_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(crc32fast::hash(bytes).to_be_bytes())
}

pub fn md5_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(bytes))
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
        match builder.tempfile_in(parent) {
            // The directory went away (or was never made): make it, as `create_dir_all` would.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(parent)
                    .map_err(|e| std::io::Error::new(e.kind(), MakeParent(e)))?;
                builder.tempfile_in(parent)
            }
            result => result,
        }
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
        let (parent, prefix, file) = (self.parent, self.prefix, self.file);
        let make_parent = self.make_parent;
        tokio::task::spawn_blocking(move || {
            let mut file = match file {
                Some(file) => file,
                None => Spool::create(&parent, &prefix, make_parent)?,
            };
            file.write_all(&pending)?;
            let times_error = modified.and_then(|time| {
                let times = std::fs::FileTimes::new()
                    .set_accessed(time)
                    .set_modified(time);
                file.as_file().set_times(times).err()
            });
            file.persist(&destination).map_err(|e| e.error)?;
            Ok(times_error)
        })
        .await
        .expect("file task does not panic")
    }
}

/// The UploadId in a successful (200) CreateMultipartUpload answer the SDK could not parse.
fn upload_id_from_raw<E>(error: &SdkError<E>) -> Option<String> {
    let raw = match error {
        SdkError::ServiceError(e) => e.raw(),
        SdkError::ResponseError(e) => e.raw(),
        _ => return None,
    };
    if raw.status().as_u16() != 200 {
        return None;
    }
    let body = std::str::from_utf8(raw.body().bytes()?).ok()?;
    let start = body.find("<UploadId>")? + "<UploadId>".len();
    let end = start + body[start..].find("</UploadId>")?;
    Some(body[start..end].trim().to_string())
}

/// `"abc"`, `abc` and `W/"abc"` all become `abc`.
pub fn normalize_etag(etag: &str) -> String {
    etag.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_string()
}

fn to_system_time(time: Option<&aws_smithy_types::DateTime>) -> Option<SystemTime> {
    time.and_then(|t| SystemTime::try_from(*t).ok())
}

/// Percent-encodes a `bucket/key` for `x-amz-copy-source`, keeping `/`.
pub fn copy_source(bucket: &str, key: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    format!(
        "{}/{}",
        bucket,
        percent_encoding::utf8_percent_encode(key, SET)
    )
}

/// Maps an SDK error to a semantic store error, keeping the service's code and message.
pub fn map_sdk_error<E>(
    op: &'static str,
    url: &str,
    bucket: &str,
    endpoint: &str,
    err: SdkError<E>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let url = url.to_string();
    match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().map(str::to_string);
            let message = service.err().message().map(str::to_string);
            let status = service.raw().status().as_u16();
            match (code.as_deref(), status) {
                (Some("NoSuchBucket"), _) => Error::NoSuchBucket {
                    bucket: bucket.to_string(),
                },
                (Some("NoSuchKey" | "NotFound"), _) | (None, 404) => Error::NotFound { url },
                (
                    Some(
                        "AccessDenied"
                        | "InvalidAccessKeyId"
                        | "SignatureDoesNotMatch"
                        | "ExpiredToken"
                        | "InvalidToken"
                        | "AllAccessDisabled",
                    ),
                    _,
                )
                | (None, 403) => Error::AccessDenied {
                    op,
                    url,
                    message: message.or(code),
                },
                _ => Error::Service {
                    op,
                    url,
                    code,
                    message,
                    status: Some(status),
                },
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            if is_credentials_error(&err) {
                return Error::NoCredentials {
                    source: Box::new(err),
                };
            }
            Error::Unreachable {
                endpoint: endpoint.to_string(),
                source: Box::new(err),
            }
        }
        _ => {
            if is_credentials_error(&err) {
                return Error::NoCredentials {
                    source: Box::new(err),
                };
            }
            Error::Other {
                op,
                url,
                source: Box::new(err),
            }
        }
    }
}

fn is_credentials_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if e.downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
            .is_some()
        {
            return true;
        }
        let text = e.to_string();
        if text.contains("no credentials") || text.contains("resolve identity") {
            return true;
        }
        current = e.source();
    }
    false
}

fn decode_key(raw: &str, url_encoded: bool) -> String {
    if !url_encoded {
        return raw.to_string();
    }
    // `encoding-type=url` encodes spaces as `+`.
    let plus_as_space = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8_lossy()
        .into_owned()
}

#[async_trait]
impl Store for S3Store {
    fn url(&self, key: Option<&Key>) -> String {
        match key {
            Some(key) => format!("s3://{}/{}", self.bucket, self.full(key)),
            None => format!("s3://{}/{}", self.bucket, self.prefix),
        }
    }

    fn list(&self) -> BoxStream<'_, Result<Listing, Error>> {
        self.list_names()
            .map(|named| {
                let named = named?;
                Ok(match Key::new(named.name.clone()) {
                    Ok(key) => Listing::Object(ObjectMeta {
                        key,
                        size: named.size,
                        etag: named.etag,
                        last_modified: named.last_modified,
                    }),
                    Err(reason) => Listing::Unnamed {
                        name: named.name,
                        reason,
                    },
                })
            })
            .boxed()
    }

    async fn head(&self, key: &Key) -> Result<ObjectInfo, Error> {
        let output = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .send()
            .await
            .map_err(|e| self.error("HeadObject", Some(key), e))?;
        let metadata = output
            .metadata()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(ObjectInfo {
            meta: ObjectMeta {
                key: key.clone(),
                size: output.content_length().unwrap_or(0).max(0) as u64,
                etag: output.e_tag().map(normalize_etag),
                last_modified: to_system_time(output.last_modified()),
            },
            headers: Headers {
                content_type: output.content_type().map(str::to_string),
                cache_control: output.cache_control().map(str::to_string),
                content_encoding: output.content_encoding().map(str::to_string),
                content_language: output.content_language().map(str::to_string),
                content_disposition: output.content_disposition().map(str::to_string),
                expires: output.expires_string().map(str::to_string),
                website_redirect: output.website_redirect_location().map(str::to_string),
                metadata,
                acl: None,
                storage_class: output.storage_class().map(|c| c.as_str().to_string()),
                sse: output
                    .server_side_encryption()
                    .map(|s| s.as_str().to_string()),
                sse_kms_key_id: output.ssekms_key_id().map(str::to_string),
            },
        })
    }

    async fn get(&self, key: &Key) -> Result<Bytes, Error> {
        // The SDK retries failed requests but not an error while reading a body stream
        // (S3-PITFALLS.md): re-issue the GET, pinned to the first answer's ETag.
        const ATTEMPTS: u32 = 5;
        let mut etag: Option<String> = None;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let output = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(self.full(key))
                .set_if_match(etag.clone())
                .send()
                .await
                .map_err(|e| self.error("GetObject", Some(key), e))?;
            etag = etag.or_else(|| output.e_tag().map(str::to_string));
            let expected = output.content_length();
            let error: BoxError = match output.body.collect().await {
                Ok(body) => {
                    let bytes = body.into_bytes();
                    if expected.is_none_or(|n| n == bytes.len() as i64) {
                        return Ok(bytes);
                    }
                    format!(
                        "body was {} bytes, expected {}",
                        bytes.len(),
                        expected.unwrap_or_default()
                    )
                    .into()
                }
                Err(e) => Box::new(e),
            };
            if attempt >= ATTEMPTS {
                return Err(Error::Other {
                    op: "GetObject",
                    url: self.url(Some(key)),
                    source: error,
                });
            }
            tracing::debug!("reading {} failed ({error}); retrying", self.url(Some(key)));
            tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt))).await;
        }
    }

    async fn put(&self, key: &Key, body: Body, headers: &Headers) -> Result<PutResult, Error> {
        match body {
            Body::Bytes(bytes) => self.put_bytes(key, bytes, headers).await,
            Body::File { path, size } if size < self.multipart.threshold => {
                let bytes = tokio::fs::read(&path).await.map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
                if bytes.len() as u64 != size {
                    return Err(Error::Changed { path });
                }
                self.put_bytes(key, Bytes::from(bytes), headers).await
            }
            Body::File { path, size } => self.put_multipart(key, &path, size, headers).await,
        }
    }

    async fn copy_replace_headers(&self, key: &Key, headers: &Headers) -> Result<PutResult, Error> {
        let mut request = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .copy_source(copy_source(&self.bucket, &self.full(key)))
            .metadata_directive(MetadataDirective::Replace);
        request = apply_put_headers!(request, headers);
        let output = request
            .send()
            .await
            .map_err(|e| self.error("CopyObject", Some(key), e))?;
        Ok(PutResult {
            etag: output
                .copy_object_result()
                .and_then(|r| r.e_tag())
                .map(normalize_etag),
        })
    }

    async fn delete_batch(&self, keys: &[Key]) -> Vec<(Key, Error)> {
        let names: Vec<String> = keys.iter().map(|key| key.as_str().to_string()).collect();
        self.delete_names(&names)
            .await
            .into_iter()
            .map(|(name, error)| {
                (
                    Key::new(name).expect("a name made from a Key is a Key"),
                    error,
                )
            })
            .collect()
    }
}

/// One object of a [`S3Store::list_names`] listing: the name relative to the prefix, verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedObject {
    pub name: String,
    pub size: u64,
    pub last_modified: Option<SystemTime>,
    pub storage_class: Option<String>,
    /// Normalized ETag; a multipart object's ends in `-N`.
    pub etag: Option<String>,
}

/// Sync-only operations (`hoist sync`). aws-cli names objects by their raw key, so these take
/// names relative to the prefix *verbatim* (`a//b`, `x/../y`, `dir/`): on S3 such a name still
/// lies under the prefix. `sync` decides which of them are safe to download.
impl S3Store {
    fn named_url(&self, name: &str) -> String {
        format!("s3://{}/{}{}", self.bucket, self.prefix, name)
    }

    /// A single-request upload of an in-memory body, whatever its size (sync decides between
    /// this and multipart itself). Without a Content-Type none is sent.
    pub async fn put_small(
        &self,
        key: &Key,
        bytes: Bytes,
        headers: &Headers,
    ) -> Result<PutResult, Error> {
        self.put_bytes(key, bytes, headers).await
    }

    /// Every object under the prefix with its raw name, in the order the server lists them.
    pub fn list_names(&self) -> BoxStream<'_, Result<NamedObject, Error>> {
        let pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.prefix.as_str())
            .encoding_type(EncodingType::Url)
            .into_paginator()
            .send();
        stream::unfold(pages, |mut pages| async move {
            let page = pages.next().await?;
            Some((page, pages))
        })
        .map(move |page| -> Result<Vec<NamedObject>, Error> {
            let page = page.map_err(|e| self.error("ListObjectsV2", None, e))?;
            let encoded = page.encoding_type() == Some(&EncodingType::Url);
            Ok(page
                .contents()
                .iter()
                .filter_map(|object| {
                    let full = decode_key(object.key()?, encoded);
                    let name = self.prefix.strip(&full)?.to_string();
                    Some(NamedObject {
                        name,
                        size: object.size().unwrap_or(0).max(0) as u64,
                        last_modified: to_system_time(object.last_modified()),
                        storage_class: object.storage_class().map(|c| c.as_str().to_string()),
                        etag: object.e_tag().map(normalize_etag).filter(|e| !e.is_empty()),
                    })
                })
                .collect())
        })
        .flat_map(|page| match page {
            Ok(entries) => stream::iter(entries.into_iter().map(Ok)).boxed(),
            Err(e) => stream::iter([Err(e)]).boxed(),
        })
        .boxed()
    }

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
    /// bytes are checked here, not by the SDK: the length always, and the MD5 against a
    /// single-part ETag (objects uploaded in parts are checked by length).
    pub async fn download_to(
        &self,
        name: &str,
        destination: &Path,
        modified: Option<SystemTime>,
        make_parent: bool,
    ) -> Result<Option<std::io::Error>, Error> {
        let url = self.named_url(name);
        let parent = destination.parent().unwrap_or(Path::new(".")).to_owned();
        // aws-cli's temporary name: the file name (cut to fit 255 bytes) and 8 random characters.
        let mut base = destination
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        while base.len() > 255 - 9 {
            base.pop();
        }
        let mut spool = Spool::new(parent.clone(), format!("{base}."), make_parent);
        let io = |source: std::io::Error| {
            if source.get_ref().is_some_and(|e| e.is::<MakeParent>()) {
                let inner = source.into_inner().expect("checked above");
                let MakeParent(source) = *inner.downcast::<MakeParent>().expect("checked above");
                return Error::Io {
                    path: parent.clone(),
                    source,
                };
            }
            Error::Io {
                path: destination.to_owned(),
                source,
            }
        };

        // The SDK retries requests, not a body that fails mid-stream (S3-PITFALLS.md): resume
        // with a ranged GET pinned to the first answer's ETag, so the pieces are one object.
        const ATTEMPTS: u32 = 6;
        let mut etag: Option<String> = None;
        let mut total: Option<u64> = None;
        let mut written: u64 = 0;
        let mut md5 = Md5::new();
        let mut attempt = 0;
        let failure = loop {
            attempt += 1;
            let mut request = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(format!("{}{}", self.prefix, name))
                .set_if_match(etag.clone());
            if written > 0 {
                request = request.range(format!("bytes={written}-"));
            }
            // hoist checks the bytes itself (below), over every resumed range. No ChecksumMode:
            // with it the SDK validates whatever checksum the server sends, and servers get
            // these wrong (rclone sends the whole object's CRC32 on a ranged answer; moto
            // stores a multipart source's composite CRC32 on a single-part copy).
            let output = request
                .customize()
                .config_override(
                    aws_sdk_s3::config::Builder::default().response_checksum_validation(
                        aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
                    ),
                )
                .send()
                .await
                .map_err(|e| map_sdk_error("GetObject", &url, &self.bucket, &self.endpoint, e))?;
            let length = output.content_length().map(|n| n.max(0) as u64);
            if etag.is_none() {
                etag = output.e_tag().map(str::to_string);
                total = length;
            }
            spool.reserve(length.unwrap_or(0));
            if written > 0 && output.content_range().is_none() {
                // The server ignored the range and sent the whole object: start over.
                spool.reset().await.map_err(io)?;
                written = 0;
                md5 = Md5::new();
            }
            let mut body = output.body;
            let error: Option<BoxError> = loop {
                match body.try_next().await {
                    Ok(Some(chunk)) => {
                        spool.push(&chunk).await.map_err(io)?;
                        md5.update(&chunk);
                        written += chunk.len() as u64;
                    }
                    Ok(None) if total.is_none_or(|t| t == written) => break None,
                    Ok(None) => {
                        break Some(
                            format!("received {written} bytes of {}", total.unwrap_or(0)).into(),
                        );
                    }
                    Err(e) => break Some(Box::new(e)),
                }
            };
            // A single-part ETag is the MD5 of the bytes: check the whole file against it (aws-cli
            // accepted a corrupted download when the object had no stored checksum). A mismatch
            // starts the download over.
            let error = error.or_else(|| {
                let expected = etag.as_deref().map(normalize_etag)?;
                if expected.len() != 32 || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                let got = super::local::hex(&std::mem::take(&mut md5).finalize());
                (!got.eq_ignore_ascii_case(&expected)).then(|| -> BoxError {
                    format!("downloaded bytes have MD5 {got}, the object's ETag is {expected}")
                        .into()
                })
            });
            let Some(error) = error else {
                break None;
            };
            if attempt >= ATTEMPTS {
                break Some(error);
            }
            if total.is_some_and(|t| t == written) {
                // Every byte arrived but they are wrong: fetch them all again.
                spool.reset().await.map_err(io)?;
                written = 0;
                md5 = Md5::new();
            }
            tracing::debug!("download of {url} interrupted at {written} bytes ({error}); resuming");
            tokio::time::sleep(std::time::Duration::from_millis(100 * u64::from(attempt))).await;
        };
        if let Some(source) = failure {
            return Err(Error::Other {
                op: "GetObject",
                url,
                source,
            });
        }
        spool.finish(destination, modified).await.map_err(io)
    }

    /// Server-side copy of `source_bucket/source_key` (a full key) to `name` under this prefix,
    /// with the given headers and metadata directive (S3's default, COPY, when `None`).
    /// Single-request CopyObject: objects over 5 GiB fail with S3's error.
    pub async fn copy_from(
        &self,
        source_bucket: &str,
        source_key: &str,
        name: &str,
        headers: &Headers,
        directive: Option<MetadataDirective>,
    ) -> Result<(), Error> {
        let url = self.named_url(name);
        let mut request = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(format!("{}{}", self.prefix, name))
            .copy_source(copy_source(source_bucket, source_key))
            .set_metadata_directive(directive);
        request = apply_put_headers!(request, headers);
        request
            .send()
            .await
            .map_err(|e| map_sdk_error("CopyObject", &url, &self.bucket, &self.endpoint, e))?;
        Ok(())
    }

    /// Deletes objects by raw name (DeleteObjects, 1,000 a call, every per-key error read);
    /// returns the names that failed.
    pub async fn delete_names(&self, names: &[String]) -> Vec<(String, Error)> {
        let mut failed = Vec::new();
        for chunk in names.chunks(1000) {
            let objects = chunk
                .iter()
                .map(|name| {
                    ObjectIdentifier::builder()
                        .key(format!("{}{}", self.prefix, name))
                        .build()
                        .expect("key is set")
                })
                .collect::<Vec<_>>();
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .expect("objects are set");
            let result = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await;
            match result {
                Ok(output) => {
                    for error in output.errors() {
                        let full = error.key().unwrap_or_default();
                        let Some(name) = self.prefix.strip(full) else {
                            continue;
                        };
                        failed.push((
                            name.to_string(),
                            Error::Service {
                                op: "DeleteObjects",
                                url: self.named_url(name),
                                code: error.code().map(str::to_string),
                                message: error.message().map(str::to_string),
                                status: None,
                            },
                        ));
                    }
                }
                Err(e) => {
                    let error = self.error("DeleteObjects", None, e).to_string();
                    for name in chunk {
                        failed.push((
                            name.clone(),
                            Error::Service {
                                op: "DeleteObjects",
                                url: self.named_url(name),
                                code: None,
                                message: Some(error.clone()),
                                status: None,
                            },
                        ));
                    }
                }
            }
        }
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_normalize() {
        assert_eq!(normalize_etag("\"abc\""), "abc");
        assert_eq!(normalize_etag("abc"), "abc");
        assert_eq!(normalize_etag("W/\"abc-2\""), "abc-2");
    }

    #[test]
    fn copy_source_encodes_key() {
        assert_eq!(copy_source("b", "a b/c+d%e.txt"), "b/a%20b/c%2Bd%25e.txt");
        assert_eq!(copy_source("b", "ü.txt"), "b/%C3%BC.txt");
    }

    #[test]
    fn url_encoded_listing_keys_decode() {
        assert_eq!(decode_key("a+b%2Bc%25", true), "a b+c%");
        assert_eq!(decode_key("a+b", false), "a+b");
        assert_eq!(decode_key("%E6%96%87", true), "文");
    }

    #[test]
    fn checksums() {
        // CRC32 of "hello" is 0x3610a686.
        assert_eq!(crc32_base64(b"hello"), "NhCmhg==");
        assert_eq!(md5_base64(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
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
        assert!(
            error.get_ref().is_some_and(|e| e.is::<MakeParent>()),
            "{error:?}"
        );
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
