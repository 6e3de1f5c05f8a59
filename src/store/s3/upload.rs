//! Uploads: one PutObject from memory, or a multipart upload streamed from disk in ranged,
//! rewindable parts (bounded in flight across the store), each part carrying its checksum.
//! A failed multipart upload is aborted; a lost CompleteMultipartUpload answer is recognised.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::SystemTime;

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_types::byte_stream::Length;
use base64::Engine;
use bytes::Bytes;
use futures::stream;
use futures::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};

use super::requests::{Summer, set_checksum, with_customer_key, with_grants};
use super::{Integrity, S3Store, normalize_etag};
use crate::headers::Headers;
use crate::key::Key;
use crate::store::{Condition, Error, PutResult, Store};

/// S3 allows at most 10,000 parts, each at least 5 MiB but the last.
const MAX_PARTS: u64 = 10_000;
const MIN_PART: u64 = 5 << 20;

impl S3Store {
    pub(super) async fn put_bytes(
        &self,
        key: &Key,
        bytes: Bytes,
        headers: &Headers,
        condition: Option<&Condition>,
    ) -> Result<PutResult, Error> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .content_length(bytes.len() as i64);
        request = match condition {
            None => request,
            Some(Condition::Absent) => request.if_none_match("*"),
            Some(Condition::Matches(etag)) => request.if_match(format!("\"{etag}\"")),
        };
        request = match self.integrity {
            // The algorithm too: S3 infers it from the value's header, but some stores (moto)
            // keep the checksum only when it is named, as the SDKs name it.
            Integrity::Checksum(kind) => {
                set_checksum!(
                    request.checksum_algorithm(kind.sdk()),
                    kind,
                    kind.of(&bytes)
                )
            }
            Integrity::Md5 => request.content_md5(md5_base64(&bytes)),
        };
        request = apply_put_headers!(request, headers);
        request = with_customer_key!(request, self.requests.customer_key.as_ref());
        request = with_grants!(request, &self.requests.grants);
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

    /// A multipart upload streamed from `path`: create, upload the parts, complete. Any failure
    /// aborts the upload, so no parts stay billed.
    pub(super) async fn put_multipart(
        &self,
        key: &Key,
        path: &Path,
        size: u64,
        blake3: Option<crate::digest::Digest>,
        headers: &Headers,
    ) -> Result<PutResult, Error> {
        let mut chunk = self.multipart.chunk_size.max(MIN_PART);
        while size.div_ceil(chunk) > MAX_PARTS {
            chunk *= 2;
        }
        let started = SystemTime::now();
        let upload_id = self.create_multipart(key, headers).await?;
        let uploaded = match self.upload_parts(key, path, size, chunk, &upload_id).await {
            Ok(parts) => match blake3 {
                Some(digest) => self
                    .check_sent(path, chunk, digest, &parts)
                    .await
                    .map(|()| parts),
                None => Ok(parts),
            },
            Err(error) => Err(error),
        };
        let parts = match uploaded {
            Ok(parts) => parts.into_iter().map(|(part, _)| part).collect(),
            Err(error) => {
                self.abort(key, &upload_id).await;
                return Err(error);
            }
        };
        match self.complete_multipart(key, &upload_id, parts).await {
            Ok(result) => Ok(result),
            Err(error) => {
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

    /// CreateMultipartUpload with the object's headers; returns the UploadId.
    async fn create_multipart(&self, key: &Key, headers: &Headers) -> Result<String, Error> {
        let checksum = match self.integrity {
            Integrity::Checksum(kind) => Some(kind),
            Integrity::Md5 => None,
        };
        self.create_upload(&self.full(key), &self.url(Some(key)), headers, checksum)
            .await
    }

    /// CreateMultipartUpload of a full key with the object's headers, the run's customer key
    /// and grants, and the checksum algorithm the parts will carry; returns the UploadId.
    /// Shared by uploads and multipart copies.
    pub(super) async fn create_upload(
        &self,
        full_key: &str,
        url: &str,
        headers: &Headers,
        checksum: Option<super::ChecksumKind>,
    ) -> Result<String, Error> {
        let mut create = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(full_key)
            .set_checksum_algorithm(checksum.map(super::ChecksumKind::sdk));
        create = apply_put_headers!(create, headers);
        create = with_customer_key!(create, self.requests.customer_key.as_ref());
        create = with_grants!(create, &self.requests.grants);
        let upload_id = match create.send().await {
            Ok(created) => created.upload_id().map(str::to_string),
            // rclone serve s3 names the root element `InitiateMultipartUpload` (S3:
            // `InitiateMultipartUploadResult`), which the SDK refuses; take the id from the body.
            Err(error) => match upload_id_from_raw(&error) {
                Some(id) => Some(id),
                None => {
                    return Err(super::map_sdk_error(
                        "CreateMultipartUpload",
                        url,
                        &self.bucket,
                        &self.endpoint,
                        error,
                    ));
                }
            },
        };
        upload_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| Error::Service {
                op: "CreateMultipartUpload",
                url: url.to_string(),
                code: None,
                message: Some("the answer carried no UploadId".into()),
                status: Some(200),
            })
    }

    /// CompleteMultipartUpload, and the ETag the object will be listed with.
    async fn complete_multipart(
        &self,
        key: &Key,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<PutResult, Error> {
        let request = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(self.full(key))
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        let output = with_customer_key!(request, self.requests.customer_key.as_ref())
            .send()
            .await
            .map_err(|e| self.error("CompleteMultipartUpload", Some(key), e))?;
        // Some servers (rclone serve s3) answer CompleteMultipartUpload with a multipart ETag
        // but list the object with its MD5; the manifest must hold what listings show, so ask
        // once.
        if self.listed_etags
            && let Ok(info) = self.head(key).await
        {
            return Ok(PutResult {
                etag: info.meta.etag,
            });
        }
        Ok(PutResult {
            etag: output.e_tag().map(normalize_etag),
        })
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
            .is_some_and(|modified| modified + std::time::Duration::from_mins(1) >= started);
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
    ) -> Result<Vec<(CompletedPart, String)>, Error> {
        let count = size.div_ceil(chunk).max(1);
        let mut parts: Vec<(CompletedPart, String)> = stream::iter(0..count)
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
        parts.sort_by_key(|(part, _)| part.part_number());
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
    ) -> Result<(CompletedPart, String), Error> {
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
            Integrity::Checksum(kind) => {
                set_checksum!(
                    request.checksum_algorithm(kind.sdk()),
                    kind,
                    checksum.clone()
                )
            }
            Integrity::Md5 => request.content_md5(checksum.clone()),
        };
        request = with_customer_key!(request, self.requests.customer_key.as_ref());
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
        if let Integrity::Checksum(kind) = self.integrity {
            part = set_checksum!(part, kind, checksum.clone());
        }
        Ok((part.build(), checksum))
    }

    /// Before CompleteMultipartUpload: the file must still be the scanned one (its blake3) and
    /// every part must have the checksum it was sent with, or the object would go live with
    /// bytes that match no local file while the manifest vouched for the scanned digest.
    async fn check_sent(
        &self,
        path: &Path,
        chunk: u64,
        digest: crate::digest::Digest,
        parts: &[(CompletedPart, String)],
    ) -> Result<(), Error> {
        let sent: Vec<String> = parts.iter().map(|(_, sum)| sum.clone()).collect();
        let owned = path.to_owned();
        let integrity = self.integrity;
        let now = tokio::task::spawn_blocking(move || file_digests(&owned, chunk, integrity))
            .await
            .expect("digest task does not panic")
            .map_err(|source| Error::Io {
                path: path.to_owned(),
                source,
            })?;
        if now.0 != digest || now.1 != sent {
            return Err(Error::Changed {
                path: path.to_owned(),
            });
        }
        Ok(())
    }

    async fn abort(&self, key: &Key, upload_id: &str) {
        self.abort_full(&self.full(key), upload_id).await;
    }

    /// AbortMultipartUpload of a full key (an upload's or a multipart copy's); a failure is
    /// only a warning, as the run already failed.
    pub(super) async fn abort_full(&self, full_key: &str, upload_id: &str) {
        let url = format!("s3://{}/{full_key}", self.bucket);
        let result = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(full_key)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(e) = result {
            tracing::warn!(
                "could not abort the multipart upload of {url}: {}",
                super::map_sdk_error(
                    "AbortMultipartUpload",
                    &url,
                    &self.bucket,
                    &self.endpoint,
                    e
                )
            );
        }
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
                        .collect::<::std::collections::HashMap<_, _>>(),
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
            request = request.acl(aws_sdk_s3::types::ObjectCannedAcl::from(acl.as_str()));
        }
        if let Some(class) = &headers.storage_class {
            request = request.storage_class(aws_sdk_s3::types::StorageClass::from(class.as_str()));
        }
        if let Some(sse) = &headers.sse {
            request = request.server_side_encryption(
                aws_sdk_s3::types::ServerSideEncryption::from(sse.as_str()),
            );
        }
        request
    }};
}
pub(super) use apply_put_headers;

fn range_checksum(
    path: &Path,
    offset: u64,
    length: u64,
    integrity: Integrity,
) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut buffer = vec![0; 256 * 1024];
    let (checksum, read) = part_checksum(file.take(length), integrity, &mut buffer, None)?;
    if read != length {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "file shrank while it was uploaded",
        ));
    }
    Ok(checksum)
}

/// The checksum a part is sent with (base64, of the store's [`Integrity`]) of everything
/// `reader` yields, and how many bytes that was; the bytes also go into `whole` when given.
fn part_checksum(
    mut reader: impl Read,
    integrity: Integrity,
    buffer: &mut [u8],
    mut whole: Option<&mut blake3::Hasher>,
) -> std::io::Result<(String, u64)> {
    let mut summer = match integrity {
        Integrity::Checksum(kind) => kind.summer(),
        Integrity::Md5 => Summer::Md5(Md5::new()),
    };
    let mut read = 0u64;
    loop {
        let n = reader.read(buffer)?;
        if n == 0 {
            break;
        }
        if let Some(whole) = whole.as_deref_mut() {
            whole.update(&buffer[..n]);
        }
        summer.update(&buffer[..n]);
        read += n as u64;
    }
    Ok((summer.finish(), read))
}

/// The blake3 of a whole file and the checksum of each `chunk`-sized part, in one read.
fn file_digests(
    path: &Path,
    chunk: u64,
    integrity: Integrity,
) -> std::io::Result<(crate::digest::Digest, Vec<String>)> {
    let mut file = std::fs::File::open(path)?;
    let mut whole = blake3::Hasher::new();
    let mut parts = Vec::new();
    let mut buffer = vec![0; 256 * 1024];
    loop {
        let reader = (&mut file).take(chunk);
        let (checksum, read) = part_checksum(reader, integrity, &mut buffer, Some(&mut whole))?;
        if read == 0 && !parts.is_empty() {
            break;
        }
        parts.push(checksum);
        if read < chunk {
            break;
        }
    }
    Ok((whole.finalize().into(), parts))
}

pub(super) fn md5_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(bytes))
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
