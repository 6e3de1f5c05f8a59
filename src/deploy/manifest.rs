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

use crate::digest::{Digest, Etag, Fingerprint};
use crate::key::Key;
use crate::store::ObjectMeta;

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
/// difference is tens of megabytes. A key given twice keeps its last value, as inserts would.
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
            let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
            while let Some(entry) = map.next_entry()? {
                entries.push(entry);
            }
            Ok(entries.into_iter().collect())
        }
    }
    deserializer.deserialize_map(Entries(std::marker::PhantomData))
}

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

    pub(crate) fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let mut manifest: Manifest = serde_json::from_slice(bytes).map_err(ManifestError)?;
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
        self.valid_entry(listed).or_else(|| {
            let record = self.stale.get(&listed.key)?.object.as_ref()?;
            let etag = listed.etag.as_deref()?;
            (record.size == listed.size && record.etag.as_ref().is_some_and(|e| e.is(etag)))
                .then_some(record)
        })
    }
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
        let parsed = Manifest::parse(&m.to_bytes()).unwrap();
        assert_eq!(parsed, m);
        assert!(Manifest::parse(b"not json").is_err());
        let mut old = m.clone();
        old.version = 1;
        assert_eq!(Manifest::parse(&old.to_bytes()).unwrap(), m);
        let mut other = m.clone();
        other.version = 99;
        assert!(Manifest::parse(&other.to_bytes()).is_err());
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
        let parsed = Manifest::parse(&owed.to_bytes()).unwrap();
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
        let parsed = Manifest::parse(twice.as_bytes()).unwrap();
        assert_eq!(parsed.objects.len(), 1);
        assert_eq!(parsed.objects[&Key::new("a.html").unwrap()].size, 99);
    }
}
