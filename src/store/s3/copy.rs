//! Server-side copies for `sync`: one CopyObject up to the copy threshold (5 GiB, S3's limit for
//! one request, unless the profile's `multipart_threshold` is lower), else a multipart copy
//! with UploadPartCopy in aws-cli's part size.
//!
//! A multipart copy does not carry the source's headers by itself (UploadPartCopy copies bytes
//! only), so hoist reads them with one HEAD and gives them to CreateMultipartUpload: a large
//! copy keeps Content-Type, Cache-Control and metadata exactly as a small one does (aws-cli
//! v1's multipart copies drop them). The parts are pinned to the HEAD's ETag, so a source
//! replaced mid-copy fails the copy instead of splicing two versions.

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures::{StreamExt, TryStreamExt, stream};

use super::requests::{set_checksum, with_copy_source_key, with_customer_key, with_grants};
use super::{
    MAX_SINGLE_COPY, S3Store, apply_put_headers, copy_source, head_headers, map_sdk_error,
};
use crate::headers::Headers;
use crate::store::{Error, MetadataDirective, NamedStore};

/// S3 allows at most 10,000 parts, each at least 5 MiB (but the last) and at most 5 GiB.
const MAX_PARTS: u64 = 10_000;
const MIN_PART: u64 = 5 << 20;
const MAX_PART: u64 = 5 << 30;

/// aws-cli's (s3transfer's `ChunksizeAdjuster`) part size for an object of `size` bytes: the
/// configured chunk size within S3's limits, doubled until the parts number at most 10,000.
pub(super) fn part_size(configured: u64, size: u64) -> u64 {
    let mut chunk = configured.clamp(MIN_PART, MAX_PART);
    while size.div_ceil(chunk) > MAX_PARTS {
        chunk *= 2;
    }
    chunk.min(MAX_PART)
}

impl S3Store {
    /// Copies `source_bucket/source_key` (a full key, `size` bytes) to `name` under this
    /// prefix: the headers as `directive` says (S3's default, COPY, when `None`), plus the
    /// run's customer keys, grants and checksum algorithm.
    pub(super) async fn copy_named(
        &self,
        source_bucket: &str,
        source_key: &str,
        size: u64,
        name: &str,
        headers: &Headers,
        directive: Option<MetadataDirective>,
    ) -> Result<(), Error> {
        if size >= self.multipart.copy_threshold {
            let copied = self
                .copy_in_parts(source_bucket, source_key, size, name, headers, directive)
                .await;
            match copied {
                // A store without UploadPartCopy (rclone serve s3 answers 411
                // MissingContentLength): one CopyObject still copies up to 5 GiB.
                Err(error) if size <= MAX_SINGLE_COPY && lacks_part_copy(&error) => {
                    tracing::debug!("UploadPartCopy unsupported here ({error}); one CopyObject");
                }
                result => return result,
            }
        }
        let url = self.named_url(name);
        let directive = directive.map(|directive| match directive {
            MetadataDirective::Copy => aws_sdk_s3::types::MetadataDirective::Copy,
            MetadataDirective::Replace => aws_sdk_s3::types::MetadataDirective::Replace,
        });
        let mut request = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(format!("{}{}", self.prefix, name))
            .copy_source(copy_source(source_bucket, source_key))
            .set_metadata_directive(directive)
            .set_checksum_algorithm(self.requests.checksum.map(super::ChecksumKind::sdk));
        request = apply_put_headers!(request, headers);
        request = with_customer_key!(request, self.requests.customer_key.as_ref());
        request = with_copy_source_key!(request, self.requests.copy_source_key.as_ref());
        request = with_grants!(request, &self.requests.grants);
        request
            .send()
            .await
            .map_err(|e| map_sdk_error("CopyObject", &url, &self.bucket, &self.endpoint, e))?;
        Ok(())
    }

    /// HEAD of the source (its headers, ETag and size), create, UploadPartCopy each range
    /// pinned to the ETag, complete; any failure aborts the upload.
    async fn copy_in_parts(
        &self,
        source_bucket: &str,
        source_key: &str,
        size: u64,
        name: &str,
        headers: &Headers,
        directive: Option<MetadataDirective>,
    ) -> Result<(), Error> {
        let url = self.named_url(name);
        let key = format!("{}{}", self.prefix, name);
        let (size, etag, carried) = self
            .source_headers(source_bucket, source_key, size, headers, directive)
            .await?;
        let upload_id = self
            .create_upload(&key, &url, &carried, self.requests.checksum)
            .await?;

        let parts = self
            .copy_parts(
                source_bucket,
                source_key,
                size,
                &key,
                &upload_id,
                etag.as_deref(),
                &url,
            )
            .await;
        let mut parts = match parts {
            Ok(parts) => parts,
            Err(e) => {
                self.abort_full(&key, &upload_id).await;
                return Err(e);
            }
        };
        parts.sort_by_key(CompletedPart::part_number);
        let complete = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        let completed = with_customer_key!(complete, self.requests.customer_key.as_ref())
            .send()
            .await
            .map_err(|e| {
                map_sdk_error(
                    "CompleteMultipartUpload",
                    &url,
                    &self.bucket,
                    &self.endpoint,
                    e,
                )
            });
        if let Err(e) = completed {
            self.abort_full(&key, &upload_id).await;
            return Err(e);
        }
        Ok(())
    }

    /// One HEAD of a copy's source: its size, its ETag (to pin the parts to), and the headers
    /// the copy carries: with REPLACE the given ones; with COPY the source's content headers
    /// and metadata, with the storage class, ACL and encryption of the flags, as a one-request
    /// COPY copy gets them.
    async fn source_headers(
        &self,
        source_bucket: &str,
        source_key: &str,
        size: u64,
        headers: &Headers,
        directive: Option<MetadataDirective>,
    ) -> Result<(u64, Option<String>, Headers), Error> {
        let head = self
            .client
            .head_object()
            .bucket(source_bucket)
            .key(source_key);
        let head = with_customer_key!(head, self.requests.copy_source_key.as_ref())
            .send()
            .await
            .map_err(|e| {
                let source_url = format!("s3://{source_bucket}/{source_key}");
                map_sdk_error("HeadObject", &source_url, source_bucket, &self.endpoint, e)
            })?;
        let carried = match directive {
            Some(MetadataDirective::Replace) => headers.clone(),
            _ => Headers {
                acl: headers.acl.clone(),
                storage_class: headers.storage_class.clone(),
                sse: headers.sse.clone(),
                sse_kms_key_id: headers.sse_kms_key_id.clone(),
                ..head_headers(&head)
            },
        };
        Ok((
            head.content_length().map_or(size, |n| n.max(0) as u64),
            head.e_tag().map(str::to_string),
            carried,
        ))
    }

    /// UploadPartCopy of every range of the source, in aws-cli's part size, pinned to `etag`,
    /// bounded in flight by the store's part permits.
    #[allow(clippy::too_many_arguments)]
    async fn copy_parts(
        &self,
        source_bucket: &str,
        source_key: &str,
        size: u64,
        key: &str,
        upload_id: &str,
        etag: Option<&str>,
        url: &str,
    ) -> Result<Vec<CompletedPart>, Error> {
        let chunk = part_size(self.multipart.chunk_size, size);
        let count = size.div_ceil(chunk).max(1);
        let source = copy_source(source_bucket, source_key);
        stream::iter(0..count)
            .map(|index| {
                let source = &source;
                async move {
                    let _permit = self.parts.acquire().await.expect("never closed");
                    if self.interrupted() {
                        return Err(Error::Interrupted {
                            url: url.to_string(),
                        });
                    }
                    let first = index * chunk;
                    let last = (first + chunk).min(size).saturating_sub(1);
                    let request = self
                        .client
                        .upload_part_copy()
                        .bucket(&self.bucket)
                        .key(key)
                        .upload_id(upload_id)
                        .part_number(index as i32 + 1)
                        .copy_source(source)
                        .copy_source_range(format!("bytes={first}-{last}"))
                        .set_copy_source_if_match(etag.map(str::to_string));
                    let request = with_customer_key!(request, self.requests.customer_key.as_ref());
                    let request =
                        with_copy_source_key!(request, self.requests.copy_source_key.as_ref());
                    let output = request.send().await.map_err(|e| {
                        map_sdk_error("UploadPartCopy", url, &self.bucket, &self.endpoint, e)
                    })?;
                    let result = output.copy_part_result();
                    let mut part = CompletedPart::builder()
                        .part_number(index as i32 + 1)
                        .set_e_tag(result.and_then(|r| r.e_tag()).map(str::to_string));
                    if let Some(kind) = self.requests.checksum
                        && let Some(value) = result.and_then(|r| part_checksum(r, kind))
                    {
                        part = set_checksum!(part, kind, value);
                    }
                    Ok(part.build())
                }
            })
            .buffer_unordered(self.parts.available_permits().max(1))
            .try_collect()
            .await
    }
}

/// Whether a multipart copy failed because the store does not implement UploadPartCopy.
fn lacks_part_copy(error: &Error) -> bool {
    matches!(
        error,
        Error::Service { op: "UploadPartCopy", code, status, .. }
            if matches!(status, Some(411 | 501))
                || code.as_deref() == Some("NotImplemented")
    )
}

/// The part checksum of `kind` S3 computed for an UploadPartCopy.
fn part_checksum(
    result: &aws_sdk_s3::types::CopyPartResult,
    kind: super::ChecksumKind,
) -> Option<String> {
    use super::ChecksumKind as K;
    match kind {
        K::Crc32 => result.checksum_crc32(),
        K::Crc32c => result.checksum_crc32_c(),
        K::Crc64Nvme => result.checksum_crc64_nvme(),
        K::Sha1 => result.checksum_sha1(),
        K::Sha256 => result.checksum_sha256(),
        K::Sha512 => result.checksum_sha512(),
    }
    .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_follow_s3transfer() {
        let mib = 1 << 20;
        // The configured size, raised to S3's minimum.
        assert_eq!(part_size(8 * mib, 100 * mib), 8 * mib);
        assert_eq!(part_size(mib, 100 * mib), 5 * mib);
        // Doubled until 10,000 parts suffice: 6 GiB in 8 MiB parts is 768 parts; 100 GiB is
        // 12,800, so 16 MiB.
        assert_eq!(part_size(8 * mib, 6 << 30), 8 * mib);
        assert_eq!(part_size(8 * mib, 100 << 30), 16 * mib);
        assert!(part_size(8 * mib, 5 << 40) <= MAX_PART);
    }
}
