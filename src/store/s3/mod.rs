//! S3 (and S3-compatible stores) through aws-sdk-s3: the [`Store`] trait for `deploy` and the
//! [`NamedStore`] trait for `sync`, over one client.
//!
//! - Listing (here): ListObjectsV2, paginated, `encoding-type=url` (keys are decoded only when
//!   the server says it encoded them), ETags normalized (quoted, bare or missing all work).
//! - [`upload`]: in-memory bodies with a CRC32 computed here (or Content-MD5 when the user set
//!   `AWS_REQUEST_CHECKSUM_CALCULATION=when_required` for a store that rejects checksum headers);
//!   file bodies above the multipart threshold stream from disk in ranged, rewindable parts, so
//!   memory stays bounded and the SDK can retry a part. Payloads are not SHA-256 signed: the
//!   checksum carries the integrity (`docs/s3-facts.md`; the cost is measured in `bench/`). A
//!   failed multipart upload is aborted, so no orphaned parts stay billed.
//! - [`download`]: GetObject streamed through a spool into a temporary file, resumed with ranged
//!   GETs and checked against the object's ETag.
//! - [`named`]: the raw-name operations `sync` needs ([`NamedStore`]).
//! - [`errors`]: SDK errors mapped once into [`Error`]'s semantic kinds, keeping the service's
//!   code and message.

mod copy;
mod download;
mod errors;
mod named;
pub(crate) mod requests;
mod upload;

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::MetadataDirective;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use tokio::sync::Semaphore;

use super::{
    Body, BoxError, Error, ListHint, Listing, NamedStore, ObjectInfo, ObjectMeta, Opened,
    PutResult, Store,
};
use crate::headers::Headers;
use crate::key::{Key, Prefix};
use errors::map_sdk_error;
pub use requests::{ChecksumKind, RequestOptions};
use upload::apply_put_headers;

/// How objects are protected in transit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// A flexible checksum (`x-amz-checksum-crc32` by default, the SDK's default algorithm;
    /// `--checksum-algorithm` picks another), verified and stored by S3.
    Checksum(ChecksumKind),
    /// `Content-MD5`, for stores that reject the newer checksum headers.
    Md5,
}

#[derive(Debug, Clone, Copy)]
pub struct Multipart {
    pub threshold: u64,
    pub chunk_size: u64,
    /// Server-side copies at least this large are copied in parts (UploadPartCopy); below it,
    /// one CopyObject. S3 copies at most 5 GiB in one request.
    pub copy_threshold: u64,
}

/// The largest object one CopyObject copies.
pub const MAX_SINGLE_COPY: u64 = 5 << 30;

impl Default for Multipart {
    fn default() -> Self {
        // aws-cli's defaults.
        Multipart {
            threshold: 8 << 20,
            chunk_size: 8 << 20,
            copy_threshold: MAX_SINGLE_COPY + 1,
        }
    }
}

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
    /// MaxKeys of each ListObjectsV2 page (`--page-size`).
    page_size: Option<i32>,
    /// Customer keys, grants and checksum choices of `sync`'s flags.
    requests: RequestOptions,
    /// The prefix of the site this target is a preview of, for [`Store::copy_from_origin`].
    origin: Option<Prefix>,
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
            integrity: Integrity::Checksum(ChecksumKind::Crc32),
            multipart: Multipart::default(),
            parts: Arc::new(Semaphore::new(8)),
            interrupt: None,
            listed_etags: true,
            page_size: None,
            requests: RequestOptions::default(),
            origin: None,
        }
    }

    /// The site this target is a preview of: [`Store::copy_from_origin`] copies from it.
    #[must_use]
    pub fn with_origin(mut self, origin: Option<Prefix>) -> Self {
        self.origin = origin;
        self
    }

    /// Customer keys, grants and checksum choices for every request that takes them. An
    /// explicit checksum algorithm replaces the store's default integrity.
    #[must_use]
    pub fn with_requests(mut self, requests: RequestOptions) -> Self {
        if let Some(kind) = requests.checksum {
            self.integrity = Integrity::Checksum(kind);
        }
        self.requests = requests;
        self
    }

    /// Multipart uploads return CompleteMultipartUpload's ETag without a HEAD to learn the
    /// one listings show (which some servers make different). For callers that do not keep it.
    #[must_use]
    pub fn without_listed_etags(mut self) -> Self {
        self.listed_etags = false;
        self
    }

    #[must_use]
    pub(crate) fn with_interrupt(mut self, interrupt: crate::interrupt::Interrupt) -> Self {
        self.interrupt = Some(interrupt);
        self
    }

    fn interrupted(&self) -> bool {
        self.interrupt
            .as_ref()
            .is_some_and(super::super::interrupt::Interrupt::is_set)
    }

    /// MaxKeys of each ListObjectsV2 page (`None`: the server's default).
    #[must_use]
    pub fn with_page_size(mut self, page_size: Option<i32>) -> Self {
        self.page_size = page_size;
        self
    }

    #[must_use]
    pub fn with_integrity(mut self, integrity: Integrity) -> Self {
        if self.requests.checksum.is_none() {
            self.integrity = integrity;
        }
        self
    }

    #[must_use]
    pub fn with_multipart(mut self, multipart: Multipart, concurrency: usize) -> Self {
        self.multipart = multipart;
        self.parts = Arc::new(Semaphore::new(concurrency.max(1)));
        self
    }

    /// HeadBucket: the bucket's region when the store names it, and the response headers
    /// that tell stores apart (`server`, and names like `x-rgw-*`, `cf-ray`,
    /// `x-guploader-uploadid`), lower-case; a missing bucket is [`Error::NoSuchBucket`].
    pub async fn head_bucket(&self) -> Result<(Option<String>, Vec<(String, String)>), Error> {
        let seen = ResponseHeaders::default();
        match self
            .client
            .head_bucket()
            .bucket(&self.bucket)
            .customize()
            .interceptor(seen.clone())
            .send()
            .await
        {
            Ok(out) => Ok((out.bucket_region().map(str::to_string), seen.take())),
            Err(error) => match self.error("HeadBucket", None, error) {
                Error::NotFound { .. } => Err(Error::NoSuchBucket {
                    bucket: self.bucket.clone(),
                }),
                other => Err(other),
            },
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn prefix(&self) -> &Prefix {
        &self.prefix
    }

    fn full(&self, key: &Key) -> String {
        self.prefix.join(key)
    }

    /// One CopyObject of the bucket's `source` (a full key) to `to` with exactly `headers`,
    /// only while the source has `from_etag` when given: `Store::copy` and
    /// `Store::copy_from_origin` differ only in the source.
    async fn copy_object(
        &self,
        source: &str,
        to: &Key,
        headers: &Headers,
        from_etag: Option<&str>,
    ) -> Result<PutResult, Error> {
        let mut request = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(self.full(to))
            .copy_source(copy_source(&self.bucket, source))
            .set_copy_source_if_match(from_etag.map(|etag| format!("\"{etag}\"")))
            .metadata_directive(MetadataDirective::Replace);
        request = apply_put_headers!(request, headers);
        let output = request
            .send()
            .await
            .map_err(|e| self.error("CopyObject", Some(to), e))?;
        Ok(PutResult {
            etag: output
                .copy_object_result()
                .and_then(|r| r.e_tag())
                .map(normalize_etag),
        })
    }

    fn error<E>(&self, op: &'static str, key: Option<&Key>, err: SdkError<E>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        map_sdk_error(op, &self.url(key), &self.bucket, &self.endpoint, err)
    }
}

/// `"abc"`, `abc` and `W/"abc"` all become `abc`.
/// Records the response headers of one request (for [`S3Store::head_bucket`]).
#[derive(Debug, Clone, Default)]
struct ResponseHeaders(Arc<std::sync::Mutex<Vec<(String, String)>>>);

impl ResponseHeaders {
    fn take(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.0.lock().expect("headers lock"))
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for ResponseHeaders {
    fn name(&self) -> &'static str {
        "ResponseHeaders"
    }

    fn read_before_deserialization(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let mut seen = self.0.lock().expect("headers lock");
        for (name, value) in context.response().headers() {
            seen.push((name.to_ascii_lowercase(), value.to_string()));
        }
        Ok(())
    }
}

pub fn normalize_etag(etag: &str) -> String {
    etag.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_string()
}

fn to_system_time(time: Option<&aws_smithy_types::DateTime>) -> Option<SystemTime> {
    time.and_then(|t| SystemTime::try_from(*t).ok())
}

/// The headers a HeadObject answer shows (user metadata names lower-cased; no ACL, which HEAD
/// does not return).
fn head_headers(output: &aws_sdk_s3::operation::head_object::HeadObjectOutput) -> Headers {
    let metadata = output
        .metadata()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    Headers {
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
    }
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

/// A listed storage class: one of the SDK's names when it is one (no allocation), else its
/// own text.
fn storage_class_name(name: &str) -> std::borrow::Cow<'static, str> {
    aws_sdk_s3::types::ObjectStorageClass::values()
        .iter()
        .find(|known| **known == name)
        .map_or_else(|| name.to_owned().into(), |known| (*known).into())
}

#[async_trait]
impl Store for S3Store {
    fn url(&self, key: Option<&Key>) -> String {
        match key {
            Some(key) => format!("s3://{}/{}", self.bucket, self.full(key)),
            None => format!("s3://{}/{}", self.bucket, self.prefix),
        }
    }

    /// The server's listing, sorted here: the contract promises UTF-8 byte order, and some
    /// S3-compatible stores list in another.
    fn list(&self, hint: ListHint) -> BoxStream<'_, Result<Listing, Error>> {
        stream::once(self.list_sorted(hint))
            .flat_map(|listed| match listed {
                // Run after run, each freed once converted.
                Ok(runs) => stream::iter(runs.into_iter().flatten().map(|named| {
                    Ok(match Key::check(&named.name) {
                        Ok(()) => Listing::Object(ObjectMeta {
                            key: Key::new(named.name).expect("checked"),
                            size: named.size,
                            etag: named.etag,
                            last_modified: named.last_modified,
                        }),
                        Err(reason) => Listing::Unnamed {
                            name: named.name,
                            reason,
                        },
                    })
                }))
                .boxed(),
                Err(e) => stream::iter([Err(e)]).boxed(),
            })
            .boxed()
    }

    async fn head(&self, key: &Key) -> Result<ObjectInfo, Error> {
        let output = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.full(key));
        let output = requests::with_customer_key!(output, self.requests.customer_key.as_ref())
            .send()
            .await
            .map_err(|e| self.error("HeadObject", Some(key), e))?;
        Ok(ObjectInfo {
            meta: ObjectMeta {
                key: key.clone(),
                size: output.content_length().unwrap_or(0).max(0) as u64,
                etag: output.e_tag().map(normalize_etag),
                last_modified: to_system_time(output.last_modified()),
            },
            headers: head_headers(&output),
        })
    }

    async fn get(&self, key: &Key) -> Result<Bytes, Error> {
        Ok(super::get_tagged(self, key).await?.0)
    }

    async fn put(&self, key: &Key, body: Body, headers: &Headers) -> Result<PutResult, Error> {
        match body {
            Body::Bytes(bytes) => self.put_bytes(key, bytes, headers, None).await,
            Body::File { path, size, .. } if size < self.multipart.threshold => {
                let bytes = tokio::fs::read(&path).await.map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
                if bytes.len() as u64 != size {
                    return Err(Error::Changed { path });
                }
                self.put_bytes(key, Bytes::from(bytes), headers, None).await
            }
            Body::File { path, size, blake3 } => {
                self.put_multipart(key, &path, size, blake3, headers).await
            }
        }
    }

    async fn copy_replace_headers(&self, key: &Key, headers: &Headers) -> Result<PutResult, Error> {
        self.copy(key, key, headers, None).await
    }

    async fn stale_uploads(&self, before: SystemTime) -> Result<Vec<super::Upload>, Error> {
        let mut uploads = Vec::new();
        let mut markers: (Option<String>, Option<String>) = (None, None);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(self.prefix.as_str())
                .set_key_marker(markers.0.take())
                .set_upload_id_marker(markers.1.take())
                .send()
                .await
                .map_err(|e| self.error("ListMultipartUploads", None, e))?;
            for upload in page.uploads() {
                let (Some(full), Some(id)) = (upload.key(), upload.upload_id()) else {
                    continue;
                };
                let Some(initiated) = to_system_time(upload.initiated()) else {
                    continue;
                };
                let Some(name) = self.prefix.strip(full) else {
                    continue;
                };
                if initiated < before {
                    uploads.push(super::Upload {
                        name: name.to_string(),
                        id: id.to_string(),
                        initiated,
                    });
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            markers = (
                page.next_key_marker().map(str::to_string),
                page.next_upload_id_marker().map(str::to_string),
            );
            if markers.0.is_none() {
                break;
            }
        }
        uploads.sort_by_key(|u| u.initiated);
        Ok(uploads)
    }

    async fn abort_upload(&self, upload: &super::Upload) -> Result<(), Error> {
        let url = format!("s3://{}/{}{}", self.bucket, self.prefix, upload.name);
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(format!("{}{}", self.prefix, upload.name))
            .upload_id(&upload.id)
            .send()
            .await
            .map_err(|e| {
                map_sdk_error(
                    "AbortMultipartUpload",
                    &url,
                    &self.bucket,
                    &self.endpoint,
                    e,
                )
            }) {
            // Already gone (aborted or completed by someone else): the goal is reached.
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(Error::Service {
                code: Some(code), ..
            }) if code == "NoSuchUpload" => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn open(&self, key: &Key, if_match: Option<&str>) -> Result<Opened, Error> {
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .set_if_match(if_match.map(|etag| format!("\"{etag}\"")))
            .send()
            .await
            .map_err(|e| self.error("GetObject", Some(key), e))?;
        let etag = output.e_tag().map(normalize_etag);
        let length = output.content_length().and_then(|n| u64::try_from(n).ok());
        let body = stream::try_unfold(output.body, |mut body| async move {
            let chunk = body.try_next().await.map_err(BoxError::from)?;
            Ok(chunk.map(|chunk| (chunk, body)))
        })
        .boxed();
        Ok(Opened { etag, length, body })
    }

    async fn put_if(
        &self,
        key: &Key,
        bytes: Bytes,
        headers: &Headers,
        condition: &super::Condition,
    ) -> Result<PutResult, Error> {
        self.put_bytes(key, bytes, headers, Some(condition)).await
    }

    async fn delete_if(&self, key: &Key, etag: &str) -> Result<(), Error> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .if_match(format!("\"{etag}\""))
            .send()
            .await
            .map_err(|e| self.error("DeleteObject", Some(key), e))
        {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn copy(
        &self,
        from: &Key,
        to: &Key,
        headers: &Headers,
        from_etag: Option<&str>,
    ) -> Result<PutResult, Error> {
        self.copy_object(&self.full(from), to, headers, from_etag)
            .await
    }

    async fn copy_from_origin(
        &self,
        from: &Key,
        to: &Key,
        headers: &Headers,
        from_etag: Option<&str>,
    ) -> Result<PutResult, Error> {
        let Some(origin) = &self.origin else {
            return Err(Error::NotFound {
                url: format!("(no origin site for) {}", self.url(Some(from))),
            });
        };
        self.copy_object(&origin.join(from), to, headers, from_etag)
            .await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_storage_classes_cost_no_allocation_when_s3_names_them() {
        for class in ["STANDARD", "GLACIER", "DEEP_ARCHIVE", "STANDARD_IA"] {
            let name = storage_class_name(class);
            assert!(matches!(name, std::borrow::Cow::Borrowed(_)), "{class}");
            assert_eq!(name, class);
        }
        let other = storage_class_name("COLD_LINE");
        assert!(matches!(other, std::borrow::Cow::Owned(_)));
        assert_eq!(other, "COLD_LINE");
    }

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
        assert_eq!(ChecksumKind::Crc32.of(b"hello"), "NhCmhg==");
        assert_eq!(upload::md5_base64(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
    }
}
