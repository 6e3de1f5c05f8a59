//! The object-store abstraction, shared by `deploy` and `sync`: [`Store`], what every backend
//! (S3, a local directory) implements, and [`NamedStore`], the raw-name operations `sync` needs
//! on S3. The conformance suite (`tests/it/conformance.rs`) checks both contracts on every
//! backend that implements them.
//!
//! # Contract of [`Store`]
//! - Keys are relative to the store's prefix ([`crate::key`]): a store cannot be asked to touch
//!   anything outside its target.
//! - `list` yields every object under the prefix, in UTF-8 byte order of keys, each with its size
//!   and, when the backend has one, its ETag *normalized*: no quotes, no `W/`. Objects whose names
//!   are not valid [`Key`]s are yielded as [`Listing::Unnamed`], never silently dropped.
//! - `put` stores the bytes and exactly the given headers, and returns the new ETag when known.
//! - `copy_replace_headers` replaces an object's headers, keeping its bytes.
//! - `delete_batch` deletes what it can and returns each key that failed with its error.
//! - Errors are semantic ([`Error`]); no SDK type leaks out of a backend.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::headers::Headers;
use crate::key::{Key, KeyError};

pub(crate) mod budget;
pub mod local;
pub(crate) mod retry;
pub mod s3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: Key,
    pub size: u64,
    /// Normalized ETag (no quotes), when the backend reports one.
    pub etag: Option<String>,
    pub last_modified: Option<SystemTime>,
}

/// The keys of a full ListObjectsV2 page, S3's default and most.
pub const LIST_PAGE: usize = 1000;

/// Where the caller expects a listing's pages to end: every `stride`-th of the names (relative
/// to the prefix) it would find if the target held exactly what the caller holds, such as the
/// local tree a sync or a deploy is about to compare with it.
///
/// A listing is a chain of pages, each asking for the keys after the last one seen, so over a
/// network it costs one round trip per 1,000 keys. With split points a store may list each
/// stretch between two of them at once (`StartAfter` the lower one, up to the higher one) and
/// join the stretches in order. The result is the same listing whatever the target holds: a
/// wrong guess costs requests, not keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListHint {
    splits: Vec<String>,
}

impl ListHint {
    /// No expectation: the listing goes page after page.
    #[must_use]
    pub fn none() -> ListHint {
        ListHint::default()
    }

    /// Every `stride`-th of `names`, which must be sorted in UTF-8 byte order (as listings
    /// are): the names that would end each page of `stride` keys. The last name is never one
    /// (the stretch after it would hold nothing but keys the caller does not have).
    pub fn from_sorted<'a>(names: impl IntoIterator<Item = &'a str>, stride: usize) -> ListHint {
        let stride = stride.max(1);
        let mut splits: Vec<String> = Vec::new();
        let mut ended_on_split = false;
        for (i, name) in names.into_iter().enumerate() {
            ended_on_split = false;
            if (i + 1) % stride == 0 && splits.last().is_none_or(|last| last.as_str() < name) {
                splits.push(name.to_string());
                ended_on_split = true;
            }
        }
        if ended_on_split {
            splits.pop();
        }
        ListHint { splits }
    }

    /// The split points, strictly increasing.
    #[must_use]
    pub fn splits(&self) -> &[String] {
        &self.splits
    }
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    Object(ObjectMeta),
    /// An object under the prefix whose name is not a valid [`Key`] (e.g. `a//b`, `x/../y` or a
    /// `dir/` folder marker). hoist reports these and never modifies them.
    Unnamed {
        name: String,
        reason: KeyError,
    },
}

/// What HEAD returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub meta: ObjectMeta,
    pub headers: Headers,
}

/// The bytes to store.
#[derive(Debug, Clone)]
pub enum Body {
    /// Already in memory (small files, the manifest).
    Bytes(Bytes),
    /// Streamed from disk (large files; multipart on S3). `size` is the size the caller
    /// verified; `blake3`, when given, the digest the stored bytes must have: a multipart upload
    /// checks the file against it (and each part against the checksum it was sent with) before
    /// it completes, and aborts with [`Error::Changed`] when the file changed under it.
    File {
        path: PathBuf,
        size: u64,
        blake3: Option<crate::digest::Digest>,
    },
}

impl Body {
    pub fn len(&self) -> u64 {
        match self {
            Body::Bytes(bytes) => bytes.len() as u64,
            Body::File { size, .. } => *size,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutResult {
    pub etag: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{url}` not found")]
    NotFound { url: String },
    #[error("bucket `{bucket}` does not exist")]
    NoSuchBucket { bucket: String },
    #[error("access denied: {op} `{url}`{}", detail(message))]
    AccessDenied {
        op: &'static str,
        url: String,
        /// The service's code (`AccessDenied`, `ExpiredToken`, `InvalidAccessKeyId`, ...).
        code: Option<String>,
        message: Option<String>,
    },
    #[error("no AWS credentials were found")]
    NoCredentials {
        #[source]
        source: BoxError,
    },
    #[error("cannot reach the endpoint {endpoint}")]
    Unreachable {
        endpoint: String,
        #[source]
        source: BoxError,
    },
    /// The server accepted the connection, then sent nothing for the read timeout.
    #[error("no answer from the endpoint {endpoint} within the read timeout")]
    TimedOut {
        endpoint: String,
        #[source]
        source: BoxError,
    },
    #[error("{op} `{url}` failed: {}{}", code.as_deref().unwrap_or("error"), detail(message))]
    Service {
        op: &'static str,
        url: String,
        code: Option<String>,
        message: Option<String>,
        status: Option<u16>,
    },
    #[error("{op} `{url}` failed")]
    Other {
        op: &'static str,
        url: String,
        #[source]
        source: BoxError,
    },
    #[error("cannot read `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` changed after it was scanned; run again to publish the new content", path.display())]
    Changed { path: PathBuf },
    #[error("upload of `{url}` stopped by an interrupt")]
    Interrupted { url: String },
    #[error("`{key}` is reserved by the local store")]
    Reserved { key: String },
    /// A conditional write's condition did not hold (HTTP 412): the object exists, or has
    /// another ETag.
    #[error("`{url}` was changed by someone else (precondition failed)")]
    PreconditionFailed { url: String },
    /// `--checksum-mode ENABLED`: the downloaded bytes do not have the checksum stored with
    /// the object (base64, as S3 shows it).
    #[error(
        "the bytes of `{url}` do not match its stored checksum: expected {expected}, calculated {calculated}"
    )]
    ChecksumMismatch {
        url: String,
        expected: String,
        calculated: String,
    },
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn detail(message: &Option<String>) -> String {
    match message {
        Some(message) if !message.is_empty() => format!(" ({message})"),
        _ => String::new(),
    }
}

impl Error {
    /// The cause without the key, to group failures that share it: `InternalError (...)`.
    pub fn short_cause(&self) -> String {
        match self {
            Error::Service { code, message, .. } => {
                format!("{}{}", code.as_deref().unwrap_or("error"), detail(message))
            }
            Error::AccessDenied { code, message, .. } => {
                format!(
                    "{}{}",
                    code.as_deref().unwrap_or("AccessDenied"),
                    detail(message)
                )
            }
            Error::Other { op, source, .. } => format!("{op} failed: {source}"),
            Error::Io { source, .. } => format!("cannot read the file: {source}"),
            Error::Changed { .. } => "changed after it was scanned".to_string(),
            Error::Interrupted { .. } => "stopped by an interrupt".to_string(),
            other => other.to_string(),
        }
    }

    /// A stable name for scripts: the service's code where it gave one, else the kind.
    pub fn code(&self) -> &str {
        match self {
            Error::Service { code, .. } => code.as_deref().unwrap_or("ServiceError"),
            Error::AccessDenied { code, .. } => code.as_deref().unwrap_or("AccessDenied"),
            Error::NotFound { .. } => "NotFound",
            Error::NoSuchBucket { .. } => "NoSuchBucket",
            Error::NoCredentials { .. } => "NoCredentials",
            Error::Unreachable { .. } => "Unreachable",
            Error::TimedOut { .. } => "TimedOut",
            Error::Other { .. } => "RequestFailed",
            Error::Io { .. } => "Io",
            Error::Changed { .. } => "FileChanged",
            Error::Interrupted { .. } => "Interrupted",
            Error::Reserved { .. } => "Reserved",
            Error::PreconditionFailed { .. } => "PreconditionFailed",
            Error::ChecksumMismatch { .. } => "ChecksumMismatch",
        }
    }

    /// Advice for the user, printed after the error chain.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::AccessDenied {
                code: Some(code), ..
            } if matches!(
                code.as_str(),
                "ExpiredToken" | "ExpiredTokenException" | "TokenRefreshRequired"
            ) =>
            {
                Some(
                    "the session credentials have expired: refresh the credentials (`aws sso \
                     login`, or run the step that assumes the role again) and run the same \
                     command again"
                        .into(),
                )
            }
            Error::Service {
                code: Some(code), ..
            } if code == "RequestTimeTooSkewed" => Some(
                "this machine's clock differs from the server's by more than 15 minutes: \
                 check the system clock (NTP), then run the same command again"
                    .into(),
            ),
            Error::TimedOut { .. } => Some(
                "the server stopped answering; run the same command again (HOIST_READ_TIMEOUT \
                 sets the read timeout, 60 s by default)"
                    .into(),
            ),
            Error::NoCredentials { .. } => Some(
                "provide credentials the standard AWS way: AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY, a profile (--profile or AWS_PROFILE) in ~/.aws/credentials \
                 or ~/.aws/config, `aws sso login`, or a web identity token in CI"
                    .into(),
            ),
            Error::Unreachable { .. } => {
                Some("check --endpoint-url (or endpoint_url in deploy.yaml) and the network".into())
            }
            Error::Service { code, status, .. } => match (code.as_deref(), status) {
                (Some("PermanentRedirect" | "AuthorizationHeaderMalformed"), _) => Some(
                    "the bucket is in another region: pass --region (or region in deploy.yaml)"
                        .into(),
                ),
                (Some("NotImplemented" | "InvalidArgument" | "InvalidRequest"), _)
                | (_, Some(501)) => Some(
                    "if this store does not support S3's checksum headers, set \
                     AWS_REQUEST_CHECKSUM_CALCULATION=when_required (or \
                     request_checksum_calculation in the AWS profile)"
                        .into(),
                ),
                _ => None,
            },
            _ => None,
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync + Debug {
    /// How a key (or, with `None`, the whole target) is shown to the user: `s3://bucket/pre/key`
    /// or a local path.
    fn url(&self, key: Option<&Key>) -> String;

    /// Every object under the prefix, in key order; `hint` may make it faster, never
    /// different.
    fn list(&self, hint: ListHint) -> BoxStream<'_, Result<Listing, Error>>;

    async fn head(&self, key: &Key) -> Result<ObjectInfo, Error>;

    /// The whole object, for small objects such as the manifest.
    async fn get(&self, key: &Key) -> Result<Bytes, Error>;

    async fn put(&self, key: &Key, body: Body, headers: &Headers) -> Result<PutResult, Error>;

    async fn copy_replace_headers(&self, key: &Key, headers: &Headers) -> Result<PutResult, Error>;

    /// Deletes the keys; returns the ones that failed.
    async fn delete_batch(&self, keys: &[Key]) -> Vec<(Key, Error)>;

    /// The object's body as it arrives, with its normalized ETag and length; with `if_match`
    /// (a normalized ETag), only while the object still has it, else
    /// [`Error::PreconditionFailed`] (a store that ignores the condition, as rclone serve s3
    /// does, answers with the object's other ETag: callers compare). A body that breaks off is
    /// not retried here: [`read`] and [`get_tagged`] read it again.
    async fn open(&self, key: &Key, if_match: Option<&str>) -> Result<Opened, Error>;

    /// Stores small bytes only if `condition` holds, else [`Error::PreconditionFailed`]. A store
    /// that ignores the condition writes anyway: callers that depend on it detect that.
    async fn put_if(
        &self,
        key: &Key,
        bytes: Bytes,
        headers: &Headers,
        condition: &Condition,
    ) -> Result<PutResult, Error>;

    /// Deletes the object only while it has this ETag, else [`Error::PreconditionFailed`]; a
    /// missing object is not a failure.
    async fn delete_if(&self, key: &Key, etag: &str) -> Result<(), Error>;

    /// Copies `from` to `to` server-side with exactly `headers`. With `from_etag`, only while
    /// the source still has that ETag (S3's `x-amz-copy-source-if-match`, where the store
    /// honours it).
    async fn copy(
        &self,
        from: &Key,
        to: &Key,
        headers: &Headers,
        from_etag: Option<&str>,
    ) -> Result<PutResult, Error>;

    /// Copies `from`, a key of the origin site (the site this target is a preview of, set when
    /// the store was opened), to `to` under this target, with exactly `headers`, only while
    /// `from` has `from_etag` when given. Reads outside the target; writes only inside it.
    /// Without an origin it fails with [`Error::NotFound`] for `from`.
    async fn copy_from_origin(
        &self,
        from: &Key,
        to: &Key,
        headers: &Headers,
        from_etag: Option<&str>,
    ) -> Result<PutResult, Error>;

    /// Multipart uploads under the prefix begun before `before` and never completed (a killed
    /// run's), oldest first. A backend without multipart uploads has none.
    async fn stale_uploads(&self, before: SystemTime) -> Result<Vec<Upload>, Error>;

    /// Aborts one of [`Store::stale_uploads`], freeing its parts.
    async fn abort_upload(&self, upload: &Upload) -> Result<(), Error>;
}

/// An object's body as it arrives ([`Store::open`]).
pub struct Opened {
    /// Normalized, when the store gave one.
    pub etag: Option<String>,
    /// `Content-Length`, when the store gave one.
    pub length: Option<u64>,
    pub body: BoxStream<'static, Result<Bytes, BoxError>>,
}

impl Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("etag", &self.etag)
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

/// Why a reader given to [`read`] stopped before the end of a body.
#[derive(Debug)]
pub enum Consumed<E> {
    /// The body broke off (or was longer or shorter than its length): [`read`] reads the
    /// object again.
    Broken(BoxError),
    /// The reader refused what it read (a manifest that is not JSON): final.
    Refused(E),
}

/// How many times [`read`] issues the GET of one object whose body keeps breaking off.
const READ_ATTEMPTS: u32 = 5;

/// Reads `key` with `consume` as its body arrives, so a large object (the manifest) is never
/// held whole unless the reader wants it so. The SDK retries a failed request but not a body
/// that breaks off (docs/s3-facts.md): then the GET is issued again, pinned to the first
/// answer's ETag so two versions are never mixed (a changed object fails with
/// [`Error::PreconditionFailed`]), up to [`READ_ATTEMPTS`] times in all. A body shorter or
/// longer than its `Content-Length` counts as broken. Returns what `consume` made of the body
/// or why it refused it, and the object's ETag.
pub async fn read<T, E, F, Fut>(
    store: &dyn Store,
    key: &Key,
    mut consume: F,
) -> Result<(Result<T, E>, Option<String>), Error>
where
    F: FnMut(Opened) -> Fut,
    Fut: Future<Output = Result<T, Consumed<E>>>,
{
    let mut pinned: Option<String> = None;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut opened = store.open(key, pinned.as_deref()).await?;
        if pinned.is_some() && opened.etag != pinned {
            // A store that ignores If-Match on a GET (rclone serve s3) shows it by the ETag.
            return Err(Error::PreconditionFailed {
                url: store.url(Some(key)),
            });
        }
        pinned = pinned.or_else(|| opened.etag.clone());
        if let Some(expected) = opened.length {
            opened.body = exactly(opened.body, expected);
        }
        let error = match consume(opened).await {
            Ok(value) => return Ok((Ok(value), pinned)),
            Err(Consumed::Refused(refused)) => return Ok((Err(refused), pinned)),
            Err(Consumed::Broken(error)) => error,
        };
        if attempt >= READ_ATTEMPTS {
            return Err(Error::Other {
                op: "GetObject",
                url: store.url(Some(key)),
                source: error,
            });
        }
        tracing::debug!(
            "reading {} failed ({error}); retrying",
            store.url(Some(key))
        );
        tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt))).await;
    }
}

/// A body that ends in an error unless it has exactly `expected` bytes.
fn exactly(
    body: BoxStream<'static, Result<Bytes, BoxError>>,
    expected: u64,
) -> BoxStream<'static, Result<Bytes, BoxError>> {
    use futures::StreamExt;
    let wrong = move |seen: u64| -> BoxError {
        format!("body was {seen} bytes or more, expected {expected}").into()
    };
    futures::stream::unfold(Some((body, 0u64)), move |state| async move {
        let (mut body, seen) = state?;
        match body.next().await {
            Some(Ok(chunk)) => {
                let seen = seen + chunk.len() as u64;
                if seen > expected {
                    Some((Err(wrong(seen)), None))
                } else {
                    Some((Ok(chunk), Some((body, seen))))
                }
            }
            Some(Err(error)) => Some((Err(error), None)),
            None if seen == expected => None,
            None => Some((Err(wrong(seen)), None)),
        }
    })
    .boxed()
}

/// The most a body read whole is sized for up front from its `Content-Length`.
const MAX_PREALLOCATED: u64 = 256 << 20;

/// The whole object and its normalized ETag, for hoist's own small state objects (the lock,
/// release records): [`read`] into one buffer sized from the body's length.
pub async fn get_tagged(store: &dyn Store, key: &Key) -> Result<(Bytes, Option<String>), Error> {
    use futures::StreamExt;
    let (bytes, etag) = read(store, key, |opened| async move {
        let capacity = opened.length.unwrap_or(0).min(MAX_PREALLOCATED);
        let mut buffer = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
        let mut body = opened.body;
        while let Some(chunk) = body.next().await {
            buffer.extend_from_slice(&chunk.map_err(Consumed::Broken)?);
        }
        Ok::<_, Consumed<std::convert::Infallible>>(Bytes::from(buffer))
    })
    .await?;
    Ok((bytes.unwrap_or_else(|never| match never {}), etag))
}

/// The precondition of [`Store::put_if`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `If-None-Match: *`: only if no object has the key.
    Absent,
    /// `If-Match: ETAG`: only if the object still has this (normalized) ETag.
    Matches(String),
}

/// A multipart upload that was begun and never completed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Upload {
    /// The name it would have had, relative to the prefix.
    pub name: String,
    #[serde(skip)]
    pub id: String,
    #[serde(skip)]
    pub initiated: SystemTime,
}

/// One object of a [`NamedStore::list_names`] listing: the name relative to the prefix, verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedObject {
    pub name: String,
    pub size: u64,
    pub last_modified: Option<SystemTime>,
    /// A listing names one for every object: S3's own classes are `Borrowed`, with no
    /// allocation (100,000 of them were 3 MB).
    pub storage_class: Option<std::borrow::Cow<'static, str>>,
    /// Normalized ETag; a multipart object's ends in `-N`.
    pub etag: Option<String>,
}

/// `x-amz-metadata-directive` of a server-side copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataDirective {
    /// Keep the source's headers and metadata.
    Copy,
    /// Use the headers given with the copy.
    Replace,
}

/// The operations `hoist sync` needs beyond [`Store`], with aws-cli's raw names.
///
/// # Contract
/// - A *name* is relative to the store's prefix and taken verbatim: `a//b`, `x/../y` and `dir/`
///   are names of objects under the prefix, never paths outside it. `sync` decides which names
///   are safe to write locally; the store only speaks to the bucket.
/// - `list_names` yields every object under the prefix (folder markers included), in the
///   server's order, with its size, time, storage class and normalized ETag (or none).
/// - `put_single` stores an in-memory body with one request, whatever its size, with exactly the
///   given headers: no Content-Type is sent when none is given.
/// - `download_to` writes an object's bytes to `destination` through a temporary file in the
///   same directory, renamed into place only once every byte arrived and matched the object
///   (length; hoist's blake3 metadata, a single-part MD5 ETag or a multipart ETag). On failure
///   nothing is left behind. It returns the
///   error of setting the file's times when that alone failed (the file is kept).
/// - `copy_from` copies a full key (of `size` bytes) of any bucket on the same endpoint to a
///   name here, server-side, keeping or replacing headers as the directive says (S3's default,
///   COPY, when `None`), in one request or in parts: the result is the same object either way,
///   headers included.
/// - `delete_names` deletes what it can and returns each name that failed with its error; a
///   missing object is not a failure.
#[async_trait]
pub trait NamedStore: Store {
    /// How a name is shown to the user: `s3://bucket/prefix/name`.
    fn named_url(&self, name: &str) -> String;

    /// Every object under the prefix with its raw name; `hint` may make it faster, never
    /// different.
    fn list_names(&self, hint: ListHint) -> BoxStream<'_, Result<NamedObject, Error>>;

    async fn put_single(
        &self,
        key: &Key,
        bytes: Bytes,
        headers: &Headers,
    ) -> Result<PutResult, Error>;

    async fn download_to(
        &self,
        name: &str,
        destination: &Path,
        modified: Option<SystemTime>,
        make_parent: bool,
    ) -> Result<Option<std::io::Error>, Error>;

    async fn copy_from(
        &self,
        source_bucket: &str,
        source_key: &str,
        size: u64,
        name: &str,
        headers: &Headers,
        directive: Option<MetadataDirective>,
    ) -> Result<(), Error>;

    async fn delete_names(&self, names: &[String]) -> Vec<(String, Error)>;
}

/// Lower-case hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::ListHint;

    #[test]
    fn a_hint_keeps_the_name_that_ends_each_page() {
        let names: Vec<String> = (0..2500).map(|i| format!("f/{i:04}")).collect();
        let hint = ListHint::from_sorted(names.iter().map(String::as_str), 1000);
        assert_eq!(hint.splits(), ["f/0999", "f/1999"]);
        // 3,000 names are three pages: the stretch after the last name would be a fourth.
        let names: Vec<String> = (0..3000).map(|i| format!("f/{i:04}")).collect();
        let hint = ListHint::from_sorted(names.iter().map(String::as_str), 1000);
        assert_eq!(hint.splits(), ["f/0999", "f/1999"]);
        let few = ListHint::from_sorted(["a", "b", "c"], 1000);
        assert!(few.splits().is_empty(), "one page: nothing to split");
        // Out of order or repeated names are skipped: split points only ever increase.
        let odd = ListHint::from_sorted(["b", "a", "a", "c", "d"], 1);
        assert_eq!(odd.splits(), ["b", "c"]);
        assert!(ListHint::from_sorted(["a"], 0).splits().is_empty());
    }
}
