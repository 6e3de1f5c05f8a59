//! [`NamedStore`] for S3: the raw-name operations `sync` needs. aws-cli names objects by their
//! raw key, so these take names relative to the prefix *verbatim* (`a//b`, `x/../y`, `dir/`): on
//! S3 such a name still lies under the prefix. `sync` decides which of them are safe to
//! download.

use std::path::Path;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_s3::types::{Delete, EncodingType, Object, ObjectIdentifier};
use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};

use super::{S3Store, decode_key, normalize_etag, storage_class_name, to_system_time};
use crate::headers::Headers;
use crate::key::Key;
use crate::store::{Error, ListHint, MetadataDirective, NamedObject, NamedStore, PutResult};

/// Stretches of a hinted listing in flight at once: each holds a page of up to 1,000 keys
/// (about half a megabyte as XML and again as parsed objects) while it is read, so this bounds
/// the listing's memory beside the round trips it saves (100,000 keys: 7 rounds, not 100).
const STRETCHES_IN_FLIGHT: usize = 16;

/// S3's longest key, in bytes: a split point beyond it cannot be a `StartAfter`.
const MAX_KEY_BYTES: usize = 1024;

impl S3Store {
    /// Every object under the prefix with its raw name. Without split points, page after page
    /// in the order the server lists them; with them, see [`Self::list_stretches`].
    pub(super) fn list_raw(&self, hint: ListHint) -> BoxStream<'_, Result<NamedObject, Error>> {
        if hint.splits().is_empty() {
            return self.list_pages();
        }
        stream::once(self.list_stretches(hint))
            .flat_map(move |stretches| match stretches {
                Ok(Some(stretches)) => {
                    stream::iter(stretches.into_iter().flatten().map(Ok)).boxed()
                }
                Ok(None) => self.list_pages(),
                Err(e) => stream::iter([Err(e)]).boxed(),
            })
            .boxed()
    }

    /// The whole listing in UTF-8 byte order, as runs to read one after the other (each can be
    /// freed once read, so that whoever converts the objects never holds two copies of the
    /// listing): the stretches of a hinted listing, or every page sorted here into one run.
    pub(super) async fn list_sorted(&self, hint: ListHint) -> Result<Vec<Vec<NamedObject>>, Error> {
        if !hint.splits().is_empty()
            && let Some(stretches) = self.list_stretches(hint).await?
        {
            return Ok(stretches);
        }
        let mut all: Vec<NamedObject> = self.list_pages().try_collect().await?;
        all.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Ok(vec![all])
    }

    /// The listing as stretches between the hint's split points, listed at once (up to
    /// [`STRETCHES_IN_FLIGHT`]), in order: the first from the start up to the first
    /// split point, each next one `StartAfter` a split point up to the next, the last to the
    /// end. Each stretch reads whole pages until one passes its upper bound, and keeps only
    /// the keys within it, so the stretches neither overlap nor leave a gap whatever the
    /// target holds. This needs the server to list in UTF-8 byte order, as S3 does; a stretch
    /// that sees a key out of that order (or one not after its `StartAfter`) gives `None`: the
    /// caller lists again page after page, in the server's own order.
    async fn list_stretches(&self, hint: ListHint) -> Result<Option<Vec<Vec<NamedObject>>>, Error> {
        let room = MAX_KEY_BYTES.saturating_sub(self.prefix.as_str().len());
        let splits: Vec<String> = hint
            .splits()
            .iter()
            .filter(|split| split.len() <= room)
            .cloned()
            .collect();
        let bounds: Vec<(Option<String>, Option<String>)> = (0..=splits.len())
            .map(|i| {
                let after = i.checked_sub(1).map(|j| splits[j].clone());
                (after, splits.get(i).cloned())
            })
            .collect();
        let stretches: Vec<Option<Vec<NamedObject>>> = stream::iter(bounds)
            .map(|(after, until)| self.list_stretch(after, until))
            .buffered(STRETCHES_IN_FLIGHT)
            .try_collect()
            .await?;
        let stretches: Option<Vec<Vec<NamedObject>>> = stretches.into_iter().collect();
        if stretches.is_none() {
            tracing::debug!("the server does not list in byte order: listing page after page");
        }
        Ok(stretches)
    }

    /// The keys after `after` (from the start when `None`) up to and including `until` (to
    /// the end when `None`), page after page; `None` when the server lists a key out of byte
    /// order.
    async fn list_stretch(
        &self,
        after: Option<String>,
        until: Option<String>,
    ) -> Result<Option<Vec<NamedObject>>, Error> {
        let until = until.as_deref();
        let mut pages = self
            .list_request()
            .set_start_after(
                after
                    .as_ref()
                    .map(|after| format!("{}{after}", self.prefix)),
            )
            .into_paginator()
            .send();
        let mut kept = Vec::new();
        let mut last = after;
        let mut passed = false;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("ListObjectsV2", None, e))?;
            let encoded = page.encoding_type() == Some(&EncodingType::Url);
            // The whole page is read, so an order the stretches cannot rely on shows itself.
            for object in page.contents() {
                let Some(named) = self.named_object(object, encoded) else {
                    continue;
                };
                if last
                    .as_deref()
                    .is_some_and(|last| named.name.as_str() <= last)
                {
                    return Ok(None);
                }
                last = Some(named.name.clone());
                if until.is_some_and(|until| named.name.as_str() > until) {
                    passed = true;
                } else {
                    kept.push(named);
                }
            }
            if passed || until.is_some_and(|until| last.as_deref() == Some(until)) {
                break;
            }
        }
        Ok(Some(kept))
    }

    /// Every object page after page, in the order the server lists them.
    fn list_pages(&self) -> BoxStream<'_, Result<NamedObject, Error>> {
        let pages = self.list_request().into_paginator().send();
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
                .filter_map(|object| self.named_object(object, encoded))
                .collect())
        })
        .flat_map(|page| match page {
            Ok(entries) => stream::iter(entries.into_iter().map(Ok)).boxed(),
            Err(e) => stream::iter([Err(e)]).boxed(),
        })
        .boxed()
    }

    /// A ListObjectsV2 of the prefix, keys URL-encoded, in `--page-size` pages.
    fn list_request(
        &self,
    ) -> aws_sdk_s3::operation::list_objects_v2::builders::ListObjectsV2FluentBuilder {
        self.client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.prefix.as_str())
            .encoding_type(EncodingType::Url)
            .set_max_keys(self.page_size)
    }

    /// A listed object by its name under the prefix (`None` for a key outside it).
    fn named_object(&self, object: &Object, encoded: bool) -> Option<NamedObject> {
        let full = decode_key(object.key()?, encoded);
        let name = self.prefix.strip(&full)?.to_string();
        Some(NamedObject {
            name,
            size: object.size().unwrap_or(0).max(0) as u64,
            last_modified: to_system_time(object.last_modified()),
            storage_class: object
                .storage_class()
                .map(|class| storage_class_name(class.as_str())),
            etag: object.e_tag().map(normalize_etag).filter(|e| !e.is_empty()),
        })
    }
}

#[async_trait]
impl NamedStore for S3Store {
    fn named_url(&self, name: &str) -> String {
        format!("s3://{}/{}{}", self.bucket, self.prefix, name)
    }

    fn list_names(&self, hint: ListHint) -> BoxStream<'_, Result<NamedObject, Error>> {
        self.list_raw(hint)
    }

    async fn put_single(
        &self,
        key: &Key,
        bytes: Bytes,
        headers: &Headers,
    ) -> Result<PutResult, Error> {
        self.put_bytes(key, bytes, headers, None).await
    }

    async fn download_to(
        &self,
        name: &str,
        destination: &Path,
        modified: Option<SystemTime>,
        make_parent: bool,
    ) -> Result<Option<std::io::Error>, Error> {
        self.get_to_file(name, destination, modified, make_parent)
            .await
    }

    /// Server-side copy of `source_bucket/source_key` (a full key, `size` bytes) to `name`
    /// under this prefix, with the given headers and metadata directive (S3's default, COPY,
    /// when `None`); in parts from the copy threshold on (see [`super::copy`]).
    async fn copy_from(
        &self,
        source_bucket: &str,
        source_key: &str,
        size: u64,
        name: &str,
        headers: &Headers,
        directive: Option<MetadataDirective>,
    ) -> Result<(), Error> {
        self.copy_named(source_bucket, source_key, size, name, headers, directive)
            .await
    }

    /// Deletes objects by raw name (DeleteObjects, 1,000 a call, every per-key error read);
    /// returns the names that failed.
    async fn delete_names(&self, names: &[String]) -> Vec<(String, Error)> {
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
