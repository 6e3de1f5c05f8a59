//! The deploy manifest: what hoist knows about each object it published.
//!
//! Stored as `.hoist/manifest.json` under the target prefix and read with one GET at the next
//! deploy. An entry is trusted only while the listing still shows the same size and ETag, so an
//! object changed by another tool (or a server whose listing has no ETags) falls back to the
//! object itself. It is written last, after every other step succeeded: an interrupted deploy
//! leaves the previous manifest, whose entries no longer match what changed, and the next run
//! re-checks exactly those.
//!
//! With CloudFront configured, the manifest also records the keys whose invalidation is owed:
//! written before the uploads start (an intent record) and cleared after the invalidation
//! succeeded. A deploy that is interrupted, killed or whose invalidation fails leaves them, and
//! the next deploy invalidates them even though it finds nothing left to upload.
//!
//! Since version 2 it is also the index of the release lifecycle (`super::release`): the keys
//! kept after they left the site (`stale`, with when they left and the newest release that
//! published them), the retained releases newest first, the live one, and which kept bytes
//! under `.hoist/objects/` each release still needs (`blobs`).

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::digest::{Digest, Etag, Fingerprint};
use crate::key::Key;
use crate::store::{BoxError, Consumed, ObjectMeta};

/// The manifest's key, relative to the target prefix.
pub(crate) const MANIFEST_KEY: &str = ".hoist/manifest.json";
pub(crate) const VERSION: u32 = 2;

pub(crate) fn manifest_key() -> Key {
    Key::new(MANIFEST_KEY).expect("the manifest key is valid")
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    pub(crate) version: u32,
    /// Unique per deploy that wrote it.
    pub(crate) deploy_id: String,
    #[serde(deserialize_with = "dense_map")]
    pub(crate) objects: BTreeMap<Key, ObjectRecord>,
    /// Keys changed by a deploy whose CloudFront invalidation has not been confirmed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) pending_invalidation: Vec<String>,
    /// Keys no longer in the site that are kept for a while (hashed assets old pages use).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) stale: BTreeMap<Key, StaleRecord>,
    /// The retained releases, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) releases: Vec<ReleaseSummary>,
    /// The release the target serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) live: Option<u64>,
    /// blake3 of bytes kept under `.hoist/objects/` → the newest release that needs them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) blobs: BTreeMap<Digest, u64>,
    /// The CloudFront Functions hoist publishes, by name → the digest of the code they serve.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) functions: BTreeMap<String, Digest>,
}

/// Reads a JSON object into a map built in bulk (full nodes) rather than by one insert per key
/// (half-empty nodes when the keys come in order, as hoist writes them): at 100,000 entries the
/// difference is tens of megabytes. The entries are gathered [`DENSE_CHUNK`] at a time and
/// appended (a merge into a new dense tree, freeing the old one's nodes as it goes), so the
/// entries are never held twice (a vector of all of them beside the tree built from it was 12.6
/// MB over the tree's 8.9 at 100,000). A key given twice keeps its last value, as inserts would.
fn dense_map<'de, D, K, V>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    K: serde::Deserialize<'de> + Ord,
    V: serde::Deserialize<'de>,
{
    struct Entries<K, V>(std::marker::PhantomData<(K, V)>);
    impl<'de, K, V> serde::de::Visitor<'de> for Entries<K, V>
    where
        K: serde::Deserialize<'de> + Ord,
        V: serde::Deserialize<'de>,
    {
        type Value = BTreeMap<K, V>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut dense = Dense::new();
            while let Some((key, value)) = map.next_entry()? {
                dense.insert(key, value);
            }
            Ok(dense.finish())
        }
    }
    deserializer.deserialize_map(Entries(std::marker::PhantomData))
}

/// A map built in bulk from entries that come one at a time, for [`dense_map`] and for the
/// next manifest's objects: [`DENSE_CHUNK`] entries are gathered and appended to the tree at
/// once (a merge into a new dense tree). `BTreeMap::from_iter` gathers every entry into one
/// vector first: at 100,000 manifest entries that vector was 9.6 MB beside the tree.
pub(crate) struct Dense<K, V> {
    tree: BTreeMap<K, V>,
    chunk: Vec<(K, V)>,
}

impl<K: Ord, V> Dense<K, V> {
    pub(crate) fn new() -> Dense<K, V> {
        Dense {
            tree: BTreeMap::new(),
            chunk: Vec::new(),
        }
    }

    /// Adds an entry; a key given again keeps its last value, as inserts would.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        if self.chunk.capacity() == 0 {
            self.chunk.reserve_exact(DENSE_CHUNK);
        }
        self.chunk.push((key, value));
        if self.chunk.len() == DENSE_CHUNK {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.tree.append(&mut self.chunk.drain(..).collect());
    }

    pub(crate) fn finish(mut self) -> BTreeMap<K, V> {
        self.flush();
        self.tree
    }
}

/// How many entries [`Dense`] gathers before it appends them to the tree: each append
/// rebuilds the tree, so fewer, larger chunks cost less time and one chunk more memory.
const DENSE_CHUNK: usize = 16_384;

/// A key kept after it left the site.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StaleRecord {
    /// When a deploy first found it no longer in the site.
    pub(crate) since: crate::clock::Timestamp,
    /// The newest release that published it (none for keys hoist did not publish).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) release: Option<u64>,
    /// What the object was when hoist last knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) object: Option<ObjectRecord>,
}

/// One release in the index: what `hoist releases` lists.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleaseSummary {
    pub(crate) id: u64,
    pub(crate) created: crate::clock::Timestamp,
    #[serde(default)]
    pub(crate) commit: Option<String>,
    #[serde(default)]
    pub(crate) message: Option<String>,
    /// `deploy`, or `rollback` (then `restores` names the release it restored).
    pub(crate) kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) restores: Option<u64>,
    pub(crate) files: usize,
    pub(crate) bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ObjectRecord {
    pub(crate) size: u64,
    pub(crate) blake3: Digest,
    /// The ETag the store gave for the object (normalized), if it gave one. Shared, so that the
    /// plan's copy of an entry costs no allocation.
    pub(crate) etag: Option<Etag>,
    /// [`crate::headers::Headers::fingerprint`] of the headers it was published with.
    pub(crate) headers: Fingerprint,
}

/// How many chunks of a manifest's body wait for the parser at most.
const CHUNKS_AHEAD: usize = 4;

/// A blocking [`std::io::Read`] over the chunks a channel delivers; an `Err` chunk (the body
/// broke off) is its reader's error.
struct ChunkReader {
    received: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl ChunkReader {
    fn new(received: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>) -> ChunkReader {
        ChunkReader {
            received,
            current: Bytes::new(),
        }
    }
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.received.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Hands `body` to the parser chunk by chunk until it ends, breaks off (returned: the parser
/// gets it as an I/O error) or the parser stops receiving (it found an error, or the end of the
/// JSON): then the rest of the body is not waited for.
async fn feed(
    mut body: BoxStream<'static, Result<Bytes, BoxError>>,
    chunks: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
) -> Option<BoxError> {
    loop {
        let chunk = tokio::select! {
            chunk = body.next() => chunk,
            () = chunks.closed() => return None,
        };
        match chunk? {
            Ok(chunk) => {
                if chunks.send(Ok(chunk)).await.is_err() {
                    return None;
                }
            }
            Err(error) => {
                let _ = chunks
                    .send(Err(std::io::Error::other(error.to_string())))
                    .await;
                return Some(error);
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the manifest is not readable (it will be rewritten)")]
pub(crate) struct ManifestError(#[source] pub serde_json::Error);

impl Manifest {
    pub(crate) fn new(objects: BTreeMap<Key, ObjectRecord>) -> Manifest {
        Manifest {
            version: VERSION,
            deploy_id: uuid::Uuid::new_v4().to_string(),
            objects,
            pending_invalidation: Vec::new(),
            stale: BTreeMap::new(),
            releases: Vec::new(),
            live: None,
            blobs: BTreeMap::new(),
            functions: BTreeMap::new(),
        }
    }

    /// Parses a manifest from a reader (a body as it arrives, or bytes).
    pub(crate) fn from_reader(reader: impl std::io::Read) -> Result<Manifest, ManifestError> {
        let mut manifest: Manifest = serde_json::from_reader(reader).map_err(ManifestError)?;
        // Version 1 had no lifecycle fields; it reads as a version 2 without releases.
        if manifest.version == 1 {
            manifest.version = VERSION;
        }
        if manifest.version != VERSION {
            return Err(ManifestError(serde::de::Error::custom(format!(
                "unsupported manifest version {}",
                manifest.version
            ))));
        }
        Ok(manifest)
    }

    /// Parses a manifest as its body arrives: a blocking thread parses what a bounded channel
    /// hands it chunk by chunk, so the JSON (18 MB at 100,000 files) is never held whole beside
    /// the map it becomes, and a manifest that is not JSON is refused from its first bytes.
    pub(crate) async fn read(
        body: BoxStream<'static, Result<Bytes, BoxError>>,
    ) -> Result<Manifest, Consumed<ManifestError>> {
        let (chunks, received) = tokio::sync::mpsc::channel(CHUNKS_AHEAD);
        let parser = tokio::task::spawn_blocking(move || {
            Manifest::from_reader(std::io::BufReader::with_capacity(
                64 << 10,
                ChunkReader::new(received),
            ))
        });
        let broken = feed(body, &chunks).await;
        drop(chunks);
        let parsed = parser.await.expect("the manifest parser does not panic");
        match broken {
            Some(error) => Err(Consumed::Broken(error)),
            None => parsed.map_err(Consumed::Refused),
        }
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("manifest serializes")
    }

    /// The entry for a listed object, if it still describes that object: same size, and an
    /// ETag that the listing shows and that equals the recorded one.
    pub(crate) fn valid_entry(&self, listed: &ObjectMeta) -> Option<&ObjectRecord> {
        let entry = self.objects.get(&listed.key)?;
        let listed_etag = listed.etag.as_deref()?;
        (entry.size == listed.size && entry.etag.as_ref().is_some_and(|e| e.is(listed_etag)))
            .then_some(entry)
    }

    /// Whether two manifests say the same (ignoring the deploy id).
    pub(crate) fn same_content(&self, other: &Manifest) -> bool {
        self.objects == other.objects
            && self.pending_invalidation == other.pending_invalidation
            && self.stale == other.stale
            && self.releases == other.releases
            && self.live == other.live
            && self.blobs == other.blobs
            && self.functions == other.functions
    }

    /// What hoist last knew of a key, in the site or kept stale, if the listing still shows
    /// that object (same size and ETag).
    pub(crate) fn known_entry(&self, listed: &ObjectMeta) -> Option<&ObjectRecord> {
        self.known_where(listed).map(|(entry, _)| entry)
    }

    /// [`Manifest::known_entry`], with where the manifest holds it: a plan keeps that instead
    /// of a copy of the entry (at 100,000 unchanged files the copies were 8 MB).
    pub(crate) fn known_where(&self, listed: &ObjectMeta) -> Option<(&ObjectRecord, Held)> {
        if let Some(entry) = self.valid_entry(listed) {
            return Some((entry, Held::InSite));
        }
        let record = self.held(&listed.key, Held::Stale)?;
        let etag = listed.etag.as_deref()?;
        (record.size == listed.size && record.etag.as_ref().is_some_and(|e| e.is(etag)))
            .then_some((record, Held::Stale))
    }

    /// The entry of `key` that [`Manifest::known_where`] found `held` there.
    pub(crate) fn held(&self, key: &Key, held: Held) -> Option<&ObjectRecord> {
        match held {
            Held::InSite => self.objects.get(key),
            Held::Stale => self.stale.get(key)?.object.as_ref(),
        }
    }
}

/// Where a manifest holds an entry it vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Held {
    /// In `objects`: the key is in the site.
    InSite,
    /// In `stale`: the key left the site and is kept, and a file claims it again.
    Stale,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(key: &str, size: u64, etag: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            key: Key::new(key).unwrap(),
            size,
            etag: etag.map(str::to_string),
            last_modified: None,
        }
    }

    fn manifest() -> Manifest {
        let mut objects = BTreeMap::new();
        objects.insert(
            Key::new("a.html").unwrap(),
            ObjectRecord {
                size: 3,
                blake3: Digest::of(b"abc"),
                etag: Some("e1".into()),
                headers: Fingerprint::of(b"headers"),
            },
        );
        Manifest::new(objects)
    }

    #[test]
    fn entry_trusted_only_when_listing_matches() {
        let m = manifest();
        assert!(m.valid_entry(&listed("a.html", 3, Some("e1"))).is_some());
        assert!(m.valid_entry(&listed("a.html", 4, Some("e1"))).is_none());
        assert!(m.valid_entry(&listed("a.html", 3, Some("e2"))).is_none());
        // A server whose listing has no ETags never validates an entry.
        assert!(m.valid_entry(&listed("a.html", 3, None)).is_none());
        assert!(m.valid_entry(&listed("b.html", 3, Some("e1"))).is_none());
    }

    #[test]
    fn round_trip_and_rejects_garbage() {
        let m = manifest();
        let parsed = Manifest::from_reader(&m.to_bytes()[..]).unwrap();
        assert_eq!(parsed, m);
        assert!(Manifest::from_reader(&b"not json"[..]).is_err());
        let mut old = m.clone();
        old.version = 1;
        assert_eq!(Manifest::from_reader(&old.to_bytes()[..]).unwrap(), m);
        let mut other = m.clone();
        other.version = 99;
        assert!(Manifest::from_reader(&other.to_bytes()[..]).is_err());
        assert!(Manifest::new(m.objects.clone()).same_content(&m));
    }

    #[test]
    fn pending_invalidation_is_optional_and_round_trips() {
        let m = manifest();
        // Without pending keys the field is left out: manifests read as before.
        let text = String::from_utf8(m.to_bytes()).unwrap();
        assert!(!text.contains("pending_invalidation"), "{text}");
        let mut owed = m.clone();
        owed.pending_invalidation = vec!["a.html".into()];
        let parsed = Manifest::from_reader(&owed.to_bytes()[..]).unwrap();
        assert_eq!(parsed.pending_invalidation, ["a.html"]);
        assert!(!parsed.same_content(&m));
    }

    #[test]
    fn a_key_given_twice_keeps_its_last_entry() {
        let m = manifest();
        let text = String::from_utf8(m.to_bytes()).unwrap();
        let entry = serde_json::to_string(&m.objects[&Key::new("a.html").unwrap()]).unwrap();
        let mut other = m.objects[&Key::new("a.html").unwrap()].clone();
        other.size = 99;
        let twice = text.replacen(
            &format!("\"a.html\":{entry}"),
            &format!(
                "\"a.html\":{entry},\"a.html\":{}",
                serde_json::to_string(&other).unwrap()
            ),
            1,
        );
        assert_ne!(twice, text);
        let parsed = Manifest::from_reader(twice.as_bytes()).unwrap();
        assert_eq!(parsed.objects.len(), 1);
        assert_eq!(parsed.objects[&Key::new("a.html").unwrap()].size, 99);
    }

    /// A manifest of `n` entries, in key order.
    fn large(n: usize) -> Manifest {
        let objects = (0..n)
            .map(|i| {
                let record = ObjectRecord {
                    size: i as u64,
                    blake3: Digest::of(&i.to_le_bytes()),
                    etag: Some(format!("{i:032x}").as_str().into()),
                    headers: Fingerprint::of(b"headers"),
                };
                (Key::new(format!("f{i:06}.html")).unwrap(), record)
            })
            .collect();
        Manifest::new(objects)
    }

    fn chunked(bytes: &[u8], size: usize) -> Vec<Result<Bytes, BoxError>> {
        bytes
            .chunks(size)
            .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
            .collect()
    }

    #[tokio::test]
    async fn a_manifest_reads_the_same_in_any_chunks() {
        // More entries than one chunk of the dense map, so it appends several times.
        let m = large(2 * DENSE_CHUNK + 17);
        let bytes = m.to_bytes();
        for size in [1 << 20, 65_537, 4093] {
            let body = futures::stream::iter(chunked(&bytes, size)).boxed();
            let read = Manifest::read(body).await.expect("read");
            assert!(read == m, "chunks of {size} bytes");
        }
        let one = manifest();
        for size in [1, 7] {
            let body = futures::stream::iter(chunked(&one.to_bytes(), size)).boxed();
            assert_eq!(Manifest::read(body).await.expect("read"), one);
        }
    }

    #[test]
    fn a_key_repeated_in_a_later_chunk_keeps_its_last_entry() {
        let m = large(DENSE_CHUNK + 10);
        let text = String::from_utf8(m.to_bytes()).unwrap();
        // `{"version":2,"deploy_id":"...","objects":{...}}`: the repeat goes last in `objects`.
        let end = text.strip_suffix("}}").expect("objects end the manifest");
        let first = Key::new("f000000.html").unwrap();
        let mut other = m.objects[&first].clone();
        other.size = u64::MAX;
        let repeated = format!(
            "{end},\"f000000.html\":{}}}}}",
            serde_json::to_string(&other).unwrap()
        );
        let parsed = Manifest::from_reader(repeated.as_bytes()).unwrap();
        assert_eq!(parsed.objects.len(), m.objects.len());
        assert_eq!(parsed.objects[&first].size, u64::MAX);
        assert_eq!(
            parsed
                .objects
                .values()
                .filter(|r| r.size == u64::MAX)
                .count(),
            1
        );
    }

    #[test]
    fn a_dense_map_is_the_map_inserts_build() {
        // Out of order, with keys repeated within a chunk and across chunks.
        let entries: Vec<(u64, usize)> = (0..3 * DENSE_CHUNK + 7)
            .map(|i| ((i as u64 * 7_919) % (2 * DENSE_CHUNK as u64), i))
            .collect();
        let mut dense = Dense::new();
        let mut inserted = BTreeMap::new();
        for (key, value) in entries {
            dense.insert(key, value);
            inserted.insert(key, value);
        }
        assert_eq!(dense.finish(), inserted);
        assert!(Dense::<u8, u8>::new().finish().is_empty());
    }

    #[tokio::test]
    async fn a_body_that_breaks_off_is_broken_not_refused() {
        let bytes = large(100).to_bytes();
        let mut chunks = chunked(&bytes[..bytes.len() / 2], 1000);
        chunks.push(Err("connection reset".into()));
        let body = futures::stream::iter(chunks).boxed();
        match Manifest::read(body).await {
            Err(Consumed::Broken(error)) => assert_eq!(error.to_string(), "connection reset"),
            other => panic!("expected a broken body, got {other:?}"),
        }
        // Cut at a chunk boundary without an error, the JSON ends early: refused.
        let body = futures::stream::iter(chunked(&bytes[..bytes.len() / 2], 1000)).boxed();
        assert!(matches!(
            Manifest::read(body).await,
            Err(Consumed::Refused(_))
        ));
    }

    #[tokio::test]
    async fn a_manifest_that_is_not_json_is_refused_before_its_body_ends() {
        // A body whose first bytes are not a manifest, then nothing, ever: the parser refuses
        // it from what arrived, without waiting for the rest.
        let body = futures::stream::iter([Ok(Bytes::from_static(b"<html>"))])
            .chain(futures::stream::pending())
            .boxed();
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), Manifest::read(body))
            .await
            .expect("refused without waiting for the end");
        assert!(matches!(read, Err(Consumed::Refused(_))), "{read:?}");
    }
}
