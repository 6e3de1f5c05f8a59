//! [`NamedStore`] for S3: the raw-name operations `sync` needs. aws-cli names objects by their
//! raw key, so these take names relative to the prefix *verbatim* (`a//b`, `x/../y`, `dir/`): on
//! S3 such a name still lies under the prefix. `sync` decides which of them are safe to
//! download.

use std::path::Path;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_s3::types::{Delete, EncodingType, ObjectIdentifier};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::{self, BoxStream};

use super::{S3Store, decode_key, normalize_etag, to_system_time};
use crate::headers::Headers;
use crate::key::Key;
use crate::store::{Error, MetadataDirective, NamedObject, NamedStore, PutResult};

impl S3Store {
    /// Every object under the prefix with its raw name, in the order the server lists them.
    pub(super) fn list_raw(&self) -> BoxStream<'_, Result<NamedObject, Error>> {
        let pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.prefix.as_str())
            .encoding_type(EncodingType::Url)
            .set_max_keys(self.page_size)
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
}

#[async_trait]
impl NamedStore for S3Store {
    fn named_url(&self, name: &str) -> String {
        format!("s3://{}/{}{}", self.bucket, self.prefix, name)
    }

    fn list_names(&self) -> BoxStream<'_, Result<NamedObject, Error>> {
        self.list_raw()
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
