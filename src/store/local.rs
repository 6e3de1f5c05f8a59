//! A local directory as an object store (`file://PATH` targets).
//!
//! Objects are plain files under the root, so the result can be served or inspected as is.
//! Headers and the ETag (MD5 of the content, as S3 gives single-part objects) are kept beside
//! them in `ROOT/.hoist-store/meta/KEY.json`, so they round-trip like S3 metadata; that folder is
//! not part of the keyspace. Writes go to a temporary file renamed into place, so a reader never
//! sees half a file. All filesystem work runs on blocking threads.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use md5::{Digest, Md5};

use super::{
    Body, Condition, Error, ListHint, Listing, ObjectInfo, ObjectMeta, Opened, PutResult, Store,
    Upload, hex,
};
use crate::headers::Headers;
use crate::key::Key;

/// The folder under the root that holds hoist's sidecar metadata.
pub const META_DIR: &str = ".hoist-store";

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    /// The directory of the site this target is a preview of.
    origin: Option<PathBuf>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Sidecar {
    etag: String,
    headers: Headers,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> LocalStore {
        LocalStore {
            root: root.into(),
            origin: None,
        }
    }

    /// The site this target is a preview of: [`Store::copy_from_origin`] copies from it.
    #[must_use]
    pub fn with_origin(mut self, origin: Option<PathBuf>) -> Self {
        self.origin = origin;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &Key) -> Result<PathBuf, Error> {
        if key.as_str() == META_DIR || key.is_under(META_DIR) {
            return Err(Error::Reserved {
                key: key.to_string(),
            });
        }
        // Key's invariants (no `..`, no leading `/`, no empty segment) keep this under root.
        Ok(self.root.join(key.as_str()))
    }

    fn sidecar_path(&self, key: &Key) -> PathBuf {
        self.root
            .join(META_DIR)
            .join("meta")
            .join(format!("{}.json", key.as_str()))
    }

    fn read_sidecar(&self, key: &Key) -> Option<Sidecar> {
        let text = std::fs::read(self.sidecar_path(key)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_owned(),
            source,
        }
    }

    fn not_found_or_io(&self, key: &Key, path: &Path, source: std::io::Error) -> Error {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound {
                url: self.url(Some(key)),
            }
        } else {
            Error::Io {
                path: path.to_owned(),
                source,
            }
        }
    }

    fn meta_of(&self, key: &Key, path: &Path) -> Result<ObjectMeta, Error> {
        let metadata = std::fs::metadata(path).map_err(|e| self.not_found_or_io(key, path, e))?;
        if !metadata.is_file() {
            return Err(Error::NotFound {
                url: self.url(Some(key)),
            });
        }
        Ok(ObjectMeta {
            key: key.clone(),
            size: metadata.len(),
            etag: self.read_sidecar(key).map(|s| s.etag),
            last_modified: metadata.modified().ok(),
        })
    }

    fn list_blocking(&self) -> Result<Vec<Listing>, Error> {
        let mut out = Vec::new();
        if !self.root.exists() {
            return Ok(out);
        }
        let mut walker = walkdir::WalkDir::new(&self.root).min_depth(1).into_iter();
        while let Some(entry) = walker.next() {
            let entry = entry.map_err(|e| Error::Io {
                path: e.path().unwrap_or(&self.root).to_owned(),
                source: e.into(),
            })?;
            let relative = entry
                .path()
                .strip_prefix(&self.root)
                .expect("walkdir yields paths under its root");
            // Its own metadata, and that of a store nested in it (a preview's), are no keys.
            if entry.file_type().is_dir() && entry.file_name() == META_DIR {
                walker.skip_current_dir();
                continue;
            }
            if entry.file_type().is_dir() {
                continue;
            }
            let name = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let key = match relative.to_str().map(|_| Key::new(name.clone())) {
                Some(Ok(key)) => key,
                Some(Err(reason)) => {
                    out.push(Listing::Unnamed { name, reason });
                    continue;
                }
                None => {
                    out.push(Listing::Unnamed {
                        name,
                        reason: crate::key::KeyError::Nul,
                    });
                    continue;
                }
            };
            out.push(Listing::Object(self.meta_of(&key, entry.path())?));
        }
        out.sort_by(|a, b| listing_name(a).cmp(listing_name(b)));
        Ok(out)
    }

    fn put_blocking(&self, key: &Key, body: Body, headers: &Headers) -> Result<PutResult, Error> {
        let path = self.path(key)?;
        let parent = path.parent().expect("a key path has a parent");
        std::fs::create_dir_all(parent).map_err(Self::io(parent))?;
        let mut temp = tempfile::Builder::new()
            .prefix(".hoist-tmp-")
            .tempfile_in(parent)
            .map_err(Self::io(parent))?;
        let mut md5 = Md5::new();
        match body {
            Body::Bytes(bytes) => {
                md5.update(&bytes);
                temp.write_all(&bytes).map_err(Self::io(temp.path()))?;
            }
            Body::File {
                path: source, size, ..
            } => {
                let mut file = std::fs::File::open(&source).map_err(Self::io(&source))?;
                let mut buffer = vec![0; 256 * 1024];
                let mut copied = 0u64;
                loop {
                    let n = file.read(&mut buffer).map_err(Self::io(&source))?;
                    if n == 0 {
                        break;
                    }
                    md5.update(&buffer[..n]);
                    temp.write_all(&buffer[..n])
                        .map_err(Self::io(temp.path()))?;
                    copied += n as u64;
                }
                if copied != size {
                    return Err(Error::Changed { path: source });
                }
            }
        }
        let etag = hex(&md5.finalize());
        self.write_sidecar(key, &etag, headers)?;
        temp.persist(&path).map_err(|e| Error::Io {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(PutResult { etag: Some(etag) })
    }

    fn write_sidecar(&self, key: &Key, etag: &str, headers: &Headers) -> Result<(), Error> {
        let sidecar = self.sidecar_path(key);
        let parent = sidecar.parent().expect("a sidecar path has a parent");
        std::fs::create_dir_all(parent).map_err(Self::io(parent))?;
        let json = serde_json::to_vec_pretty(&Sidecar {
            etag: etag.to_string(),
            headers: headers.clone(),
        })
        .expect("sidecar serializes");
        let mut temp = tempfile::NamedTempFile::new_in(parent).map_err(Self::io(parent))?;
        temp.write_all(&json).map_err(Self::io(&sidecar))?;
        temp.persist(&sidecar).map_err(|e| Error::Io {
            path: sidecar.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    /// The ETag a sidecar records, or the MD5 of the file (an object put by hand).
    fn etag_of(&self, key: &Key, path: &Path) -> Result<String, Error> {
        if let Some(sidecar) = self.read_sidecar(key) {
            return Ok(sidecar.etag);
        }
        let bytes = std::fs::read(path).map_err(|e| self.not_found_or_io(key, path, e))?;
        Ok(hex(&Md5::digest(&bytes)))
    }

    /// `put_if`: an absent key is claimed by hard-linking a finished temporary file to it, which
    /// fails if the name exists, so two processes cannot both win. `Matches` compares the ETag
    /// first (not atomic across processes; S3 targets get S3's guarantee).
    fn put_if_blocking(
        &self,
        key: &Key,
        bytes: &[u8],
        headers: &Headers,
        condition: &Condition,
    ) -> Result<PutResult, Error> {
        let path = self.path(key)?;
        let failed = || Error::PreconditionFailed {
            url: self.url(Some(key)),
        };
        match condition {
            Condition::Absent => {
                let parent = path.parent().expect("a key path has a parent");
                std::fs::create_dir_all(parent).map_err(Self::io(parent))?;
                let mut temp = tempfile::Builder::new()
                    .prefix(".hoist-tmp-")
                    .tempfile_in(parent)
                    .map_err(Self::io(parent))?;
                temp.write_all(bytes).map_err(Self::io(temp.path()))?;
                match std::fs::hard_link(temp.path(), &path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(failed()),
                    Err(e) => return Err(Self::io(&path)(e)),
                }
                let etag = hex(&Md5::digest(bytes));
                self.write_sidecar(key, &etag, headers)?;
                Ok(PutResult { etag: Some(etag) })
            }
            Condition::Matches(expected) => match self.etag_of(key, &path) {
                Ok(etag) if &etag == expected => {
                    self.put_blocking(key, Body::Bytes(Bytes::copy_from_slice(bytes)), headers)
                }
                Ok(_) | Err(Error::NotFound { .. }) => Err(failed()),
                Err(error) => Err(error),
            },
        }
    }

    fn delete_blocking(&self, key: &Key) -> Result<(), Error> {
        let path = self.path(key)?;
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            // Deleting a missing key succeeds, as on S3.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Self::io(&path)(e)),
        }
        // The sidecar may never have been written (an object put by hand).
        let _ = std::fs::remove_file(self.sidecar_path(key));
        // Prune directories the delete left empty, up to the root.
        let mut dir = path.parent();
        while let Some(current) = dir {
            if current == self.root || std::fs::remove_dir(current).is_err() {
                break;
            }
            dir = current.parent();
        }
        Ok(())
    }
}

fn listing_name(listing: &Listing) -> &str {
    match listing {
        Listing::Object(meta) => meta.key.as_str(),
        Listing::Unnamed { name, .. } => name,
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking store task does not panic")
}

#[async_trait]
impl Store for LocalStore {
    fn url(&self, key: Option<&Key>) -> String {
        match key {
            Some(key) => self.root.join(key.as_str()).display().to_string(),
            None => self.root.display().to_string(),
        }
    }

    /// A directory is listed in one walk: the hint has nothing to save.
    fn list(&self, _hint: ListHint) -> BoxStream<'_, Result<Listing, Error>> {
        let this = self.clone();
        stream::once(async move { blocking(move || this.list_blocking()).await })
            .flat_map(|result| match result {
                Ok(entries) => stream::iter(entries.into_iter().map(Ok)).boxed(),
                Err(e) => stream::iter([Err(e)]).boxed(),
            })
            .boxed()
    }

    async fn head(&self, key: &Key) -> Result<ObjectInfo, Error> {
        let this = self.clone();
        let key = key.clone();
        blocking(move || {
            let path = this.path(&key)?;
            let meta = this.meta_of(&key, &path)?;
            let headers = this
                .read_sidecar(&key)
                .map(|s| s.headers)
                .unwrap_or_default();
            Ok(ObjectInfo { meta, headers })
        })
        .await
    }

    async fn get(&self, key: &Key) -> Result<Bytes, Error> {
        let this = self.clone();
        let key = key.clone();
        blocking(move || {
            let path = this.path(&key)?;
            std::fs::read(&path)
                .map(Bytes::from)
                .map_err(|e| this.not_found_or_io(&key, &path, e))
        })
        .await
    }

    async fn put(&self, key: &Key, body: Body, headers: &Headers) -> Result<PutResult, Error> {
        let this = self.clone();
        let key = key.clone();
        let headers = headers.clone();
        blocking(move || this.put_blocking(&key, body, &headers)).await
    }

    async fn copy_replace_headers(&self, key: &Key, headers: &Headers) -> Result<PutResult, Error> {
        let this = self.clone();
        let key = key.clone();
        let headers = headers.clone();
        blocking(move || {
            let path = this.path(&key)?;
            this.meta_of(&key, &path)?;
            let etag = if let Some(sidecar) = this.read_sidecar(&key) {
                sidecar.etag
            } else {
                let bytes = std::fs::read(&path).map_err(Self::io(&path))?;
                hex(&Md5::digest(&bytes))
            };
            this.write_sidecar(&key, &etag, &headers)?;
            Ok(PutResult { etag: Some(etag) })
        })
        .await
    }

    async fn stale_uploads(&self, _before: std::time::SystemTime) -> Result<Vec<Upload>, Error> {
        Ok(Vec::new())
    }

    async fn abort_upload(&self, _upload: &Upload) -> Result<(), Error> {
        Ok(())
    }

    /// The whole file in one chunk: a local target's manifest is read from the disk at once.
    async fn open(&self, key: &Key, if_match: Option<&str>) -> Result<Opened, Error> {
        let this = self.clone();
        let key = key.clone();
        let if_match = if_match.map(str::to_string);
        blocking(move || {
            let path = this.path(&key)?;
            let bytes = std::fs::read(&path).map_err(|e| this.not_found_or_io(&key, &path, e))?;
            let etag = this.etag_of(&key, &path)?;
            if if_match.is_some_and(|expected| expected != etag) {
                return Err(Error::PreconditionFailed {
                    url: this.url(Some(&key)),
                });
            }
            Ok(Opened {
                etag: Some(etag),
                length: Some(bytes.len() as u64),
                body: stream::iter([Ok(Bytes::from(bytes))]).boxed(),
            })
        })
        .await
    }

    async fn put_if(
        &self,
        key: &Key,
        bytes: Bytes,
        headers: &Headers,
        condition: &Condition,
    ) -> Result<PutResult, Error> {
        let this = self.clone();
        let key = key.clone();
        let headers = headers.clone();
        let condition = condition.clone();
        blocking(move || this.put_if_blocking(&key, &bytes, &headers, &condition)).await
    }

    async fn delete_if(&self, key: &Key, etag: &str) -> Result<(), Error> {
        let this = self.clone();
        let key = key.clone();
        let etag = etag.to_string();
        blocking(move || {
            let path = this.path(&key)?;
            match this.etag_of(&key, &path) {
                Ok(current) if current == etag => this.delete_blocking(&key),
                Ok(_) => Err(Error::PreconditionFailed {
                    url: this.url(Some(&key)),
                }),
                Err(Error::NotFound { .. }) => Ok(()),
                Err(error) => Err(error),
            }
        })
        .await
    }

    async fn copy_from_origin(
        &self,
        from: &Key,
        to: &Key,
        headers: &Headers,
        from_etag: Option<&str>,
    ) -> Result<PutResult, Error> {
        let Some(root) = &self.origin else {
            return Err(Error::NotFound {
                url: format!("(no origin site for) {}", self.url(Some(from))),
            });
        };
        let origin = LocalStore::new(root.clone());
        let (bytes, etag) = super::get_tagged(&origin, from).await?;
        if let Some(expected) = from_etag
            && etag.as_deref() != Some(expected)
        {
            return Err(Error::PreconditionFailed {
                url: origin.url(Some(from)),
            });
        }
        self.put(to, Body::Bytes(bytes), headers).await
    }

    async fn copy(
        &self,
        from: &Key,
        to: &Key,
        headers: &Headers,
        from_etag: Option<&str>,
    ) -> Result<PutResult, Error> {
        if from == to {
            return self.copy_replace_headers(to, headers).await;
        }
        let this = self.clone();
        let (from, to) = (from.clone(), to.clone());
        let headers = headers.clone();
        let from_etag = from_etag.map(str::to_string);
        blocking(move || {
            let source = this.path(&from)?;
            if let Some(expected) = from_etag
                && this.etag_of(&from, &source)? != expected
            {
                return Err(Error::PreconditionFailed {
                    url: this.url(Some(&from)),
                });
            }
            this.meta_of(&from, &source)?;
            let size = std::fs::metadata(&source).map_err(Self::io(&source))?.len();
            let body = Body::File {
                path: source,
                size,
                blake3: None,
            };
            this.put_blocking(&to, body, &headers)
        })
        .await
    }

    async fn delete_batch(&self, keys: &[Key]) -> Vec<(Key, Error)> {
        let this = self.clone();
        let keys = keys.to_vec();
        blocking(move || {
            keys.into_iter()
                .filter_map(|key| this.delete_blocking(&key).err().map(|e| (key, e)))
                .collect()
        })
        .await
    }
}
