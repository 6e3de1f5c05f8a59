//! The store contracts, checked on every backend: `hoist::store::Store` on the local directory,
//! moto_server and rclone serve s3; `hoist::store::NamedStore` (sync's raw-name operations) on
//! both servers. Like object_store's `integration.rs`: a list of cases, each
//! `async fn(&dyn Store)`, expanded into one test per backend × case so a failure names both.
//!
//! The servers differ (rclone lists ETags without quotes, moto with them; s3s-fs lists none);
//! the cases assert the normalized form hoist promises everywhere.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::TryStreamExt;
use hoist::headers::Headers;
use hoist::key::{Key, Prefix};
use hoist::store::local::LocalStore;
use hoist::store::s3::{Multipart, S3Store};
use hoist::store::{
    Body, Condition, Error, ListHint, Listing, MetadataDirective, NamedObject, NamedStore,
    ObjectMeta, Store,
};

use crate::backends::Server;
use crate::util::{block_on, fresh_bucket};

fn key(k: &str) -> Key {
    Key::new(k).expect("valid key")
}

async fn listed(store: &dyn Store) -> Vec<ObjectMeta> {
    listed_with(store, ListHint::none()).await
}

async fn listed_with(store: &dyn Store, hint: ListHint) -> Vec<ObjectMeta> {
    store
        .list(hint)
        .try_collect::<Vec<_>>()
        .await
        .expect("list")
        .into_iter()
        .map(|entry| match entry {
            Listing::Object(meta) => meta,
            Listing::Unnamed { name, .. } => panic!("unexpected unnamed entry {name}"),
        })
        .collect()
}

fn bytes(text: &str) -> Body {
    Body::Bytes(Bytes::from(text.to_string()))
}

fn full_headers() -> Headers {
    let mut metadata = BTreeMap::new();
    metadata.insert("team".to_string(), "web".to_string());
    metadata.insert("hoist-blake3".to_string(), "abc123".to_string());
    Headers {
        content_type: Some("text/html; charset=utf-8".into()),
        cache_control: Some("public, max-age=60".into()),
        content_disposition: Some("inline".into()),
        content_language: Some("en".into()),
        metadata,
        ..Headers::default()
    }
}

async fn put_then_head_round_trips_headers(store: &dyn Store) {
    let headers = full_headers();
    let put = store
        .put(&key("page.html"), bytes("<p>hi</p>"), &headers)
        .await
        .expect("put");
    let info = store.head(&key("page.html")).await.expect("head");
    assert_eq!(info.meta.size, 9);
    assert_eq!(info.headers.content_type, headers.content_type);
    assert_eq!(info.headers.cache_control, headers.cache_control);
    assert_eq!(
        info.headers.metadata.get("team").map(String::as_str),
        Some("web")
    );
    assert_eq!(
        info.headers
            .metadata
            .get("hoist-blake3")
            .map(String::as_str),
        Some("abc123")
    );
    assert!(
        !headers.differs_from_remote(&info.headers),
        "{:?}",
        info.headers
    );
    // The ETag from PUT is the ETag HEAD shows, normalized (no quotes).
    assert!(put.etag.is_some());
    assert_eq!(put.etag, info.meta.etag);
    assert!(!put.etag.as_deref().unwrap_or("").contains('"'));
}

async fn list_is_sorted_and_normalized(store: &dyn Store) {
    let names = ["b.txt", "a/b.txt", "a-b.txt", "a.txt", "a/a/z.txt", "Z.txt"];
    let mut etags = BTreeMap::new();
    for name in names {
        let put = store
            .put(&key(name), bytes(name), &Headers::default())
            .await
            .expect("put");
        etags.insert(name.to_string(), put.etag);
    }
    let metas = listed(store).await;
    let got: Vec<&str> = metas.iter().map(|m| m.key.as_str()).collect();
    // UTF-8 byte order: `-` (0x2d) < `.` (0x2e) < `/` (0x2f); upper case first.
    assert_eq!(
        got,
        ["Z.txt", "a-b.txt", "a.txt", "a/a/z.txt", "a/b.txt", "b.txt"]
    );
    for meta in &metas {
        assert_eq!(meta.size, meta.key.as_str().len() as u64, "{}", meta.key);
        if let Some(etag) = &meta.etag {
            assert!(!etag.contains('"'), "ETag not normalized: {etag}");
            assert_eq!(
                Some(etag),
                etags[meta.key.as_str()].as_ref(),
                "{}",
                meta.key
            );
        }
        assert!(meta.last_modified.is_some(), "{}", meta.key);
    }
}

/// Hints of every kind: right, off by some keys, naming keys that do not exist, past the end,
/// before the start, one per key.
fn hints(names: &[&str]) -> Vec<(String, ListHint)> {
    let mut sorted = names.to_vec();
    sorted.sort_unstable();
    let half: Vec<&str> = sorted.iter().step_by(2).copied().collect();
    let absent = ["!", "a", "a-b", "about", "m", "n/0015x", "zz", "~~~~"];
    let hints: Vec<(String, ListHint)> = vec![
        (
            "every key".into(),
            ListHint::from_sorted(sorted.iter().copied(), 1),
        ),
        (
            "every third key".into(),
            ListHint::from_sorted(sorted.iter().copied(), 3),
        ),
        (
            "half the keys".into(),
            ListHint::from_sorted(half.iter().copied(), 2),
        ),
        (
            "keys that do not exist".into(),
            ListHint::from_sorted(absent, 1),
        ),
        // (A hint never splits at its last name: the second is there to keep the first.)
        (
            "past the end".into(),
            ListHint::from_sorted(["~~~~", "~~~~~"], 1),
        ),
        (
            "before the start".into(),
            ListHint::from_sorted(["!", "!!"], 1),
        ),
    ];
    for (what, hint) in &hints {
        assert!(!hint.splits().is_empty(), "the hint {what} splits nothing");
    }
    hints
}

/// Keys where byte order and a directory walk's order differ, and a run of numbered ones.
fn hinted_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "a b.txt",
        "a-b.txt",
        "a/b.txt",
        "about.html",
        "about/index.html",
        "Z.txt",
        "caf\u{e9}.txt",
        "sub/x+y.txt",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    names.extend((0..24).map(|i| format!("n/{i:04}")));
    names
}

/// A hint may make a listing faster, never different: the same keys, sizes and ETags whatever
/// the hint says (each stretch between its split points is bounded on both sides).
async fn a_hint_never_changes_the_listing(store: &dyn Store) {
    let names = hinted_names();
    let headers = Headers::default();
    let keys: Vec<Key> = names.iter().map(|name| key(name)).collect();
    futures::future::try_join_all(
        keys.iter()
            .map(|k| store.put(k, bytes(k.as_str()), &headers)),
    )
    .await
    .expect("puts");
    let want = listed(store).await;
    let mut sorted: Vec<&str> = names.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let got: Vec<&str> = want.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(got, sorted, "the plain listing");
    for (what, hint) in hints(&sorted) {
        assert_eq!(listed_with(store, hint).await, want, "hint: {what}");
    }
}

async fn missing_objects_are_not_found(store: &dyn Store) {
    assert!(matches!(
        store.head(&key("missing.txt")).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.get(&key("missing/deeper.txt")).await,
        Err(Error::NotFound { .. })
    ));
}

async fn get_returns_the_bytes(store: &dyn Store) {
    let body = "x".repeat(100_000);
    store
        .put(&key("big/x.bin"), bytes(&body), &Headers::default())
        .await
        .expect("put");
    let got = store.get(&key("big/x.bin")).await.expect("get");
    assert_eq!(got.len(), body.len());
    assert_eq!(&got[..], body.as_bytes());
}

/// [`Store::open`]: the body as it arrives (several chunks for a large object on a server),
/// its length and the ETag a HEAD reports; pinned to that ETag it opens, pinned to another it
/// fails as a precondition, and a missing key is not found.
async fn open_streams_the_body_pinned_to_its_etag(store: &dyn Store) {
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let name = key("state/streamed.json");
    store
        .put(&name, Body::Bytes(body.clone().into()), &Headers::default())
        .await
        .expect("put");
    let etag = store.head(&name).await.expect("head").meta.etag;
    assert!(etag.is_some(), "a head names the ETag");
    let opened = store.open(&name, None).await.expect("open");
    assert_eq!(opened.etag, etag);
    assert_eq!(opened.length, Some(body.len() as u64));
    let chunks: Vec<Bytes> = opened.body.try_collect().await.expect("body");
    assert!(chunks.concat() == body, "the bytes as stored");
    let pinned = store
        .open(&name, etag.as_deref())
        .await
        .expect("pinned open");
    let chunks: Vec<Bytes> = pinned.body.try_collect().await.expect("body");
    assert!(chunks.concat() == body);
    let other = "0123456789abcdef0123456789abcdef";
    // Pinned to an ETag the object does not have: refused, or (a store that ignores If-Match
    // on a GET, rclone serve s3) answered with the object's own ETag, which `read` refuses.
    match store.open(&name, Some(other)).await {
        Err(Error::PreconditionFailed { .. }) => {}
        Ok(ignored) => assert_eq!(ignored.etag, etag, "the condition ignored, detectably"),
        Err(error) => panic!("pinned to another ETag: {error:?}"),
    }
    assert!(matches!(
        store.open(&key("state/missing.json"), None).await,
        Err(Error::NotFound { .. })
    ));
    // The free function reads the same bytes and ETag.
    let (read, read_etag) = hoist::store::get_tagged(store, &name).await.expect("get");
    assert!(read[..] == body[..]);
    assert_eq!(read_etag, etag);
}

async fn copy_replaces_headers_and_keeps_bytes(store: &dyn Store) {
    store
        .put(&key("style.css"), bytes("body{}"), &full_headers())
        .await
        .expect("put");
    let mut changed = full_headers();
    changed.cache_control = Some("no-cache".into());
    changed.content_type = Some("text/css".into());
    changed.metadata.remove("team");
    store
        .copy_replace_headers(&key("style.css"), &changed)
        .await
        .expect("copy");
    let info = store.head(&key("style.css")).await.expect("head");
    assert_eq!(info.headers.cache_control.as_deref(), Some("no-cache"));
    assert_eq!(info.headers.content_type.as_deref(), Some("text/css"));
    assert_eq!(info.headers.metadata.get("team"), None);
    assert_eq!(
        info.headers
            .metadata
            .get("hoist-blake3")
            .map(String::as_str),
        Some("abc123")
    );
    assert_eq!(
        &store.get(&key("style.css")).await.expect("get")[..],
        b"body{}"
    );
}

async fn copy_to_another_key_sets_headers_and_keeps_the_source(store: &dyn Store) {
    let put = store
        .put(&key("index.html"), bytes("<p>v1</p>"), &full_headers())
        .await
        .expect("put");
    let mut kept = full_headers();
    kept.cache_control = Some("no-store".into());
    kept.content_type = Some("application/octet-stream".into());
    let copied = store
        .copy(
            &key("index.html"),
            &key(".hoist/objects/abc"),
            &kept,
            put.etag.as_deref(),
        )
        .await
        .expect("copy");
    let info = store.head(&key(".hoist/objects/abc")).await.expect("head");
    assert_eq!(info.headers.cache_control.as_deref(), Some("no-store"));
    assert_eq!(
        info.headers.content_type.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(copied.etag, info.meta.etag);
    let (body, etag) = hoist::store::get_tagged(store, &key(".hoist/objects/abc"))
        .await
        .expect("get");
    assert_eq!(&body[..], b"<p>v1</p>");
    assert_eq!(etag, info.meta.etag);
    // The source is untouched.
    let source = store.head(&key("index.html")).await.expect("head source");
    assert_eq!(source.headers.cache_control, full_headers().cache_control);
    assert_eq!(source.meta.etag, put.etag);
}

async fn delete_batch_deletes_and_tolerates_missing(store: &dyn Store) {
    for name in ["a.txt", "d/b.txt", "d/c.txt", "keep.txt"] {
        store
            .put(&key(name), bytes(name), &Headers::default())
            .await
            .expect("put");
    }
    let failed = store
        .delete_batch(&[
            key("a.txt"),
            key("d/b.txt"),
            key("d/c.txt"),
            key("never-existed.txt"),
        ])
        .await;
    assert!(failed.is_empty(), "{failed:?}");
    let left: Vec<String> = listed(store)
        .await
        .into_iter()
        .map(|m| m.key.to_string())
        .collect();
    assert_eq!(left, ["keep.txt"]);
}

async fn delete_batch_over_a_thousand_keys(store: &dyn Store) {
    let keys: Vec<Key> = (0..1005)
        .map(|i| key(&format!("many/{i:04}.txt")))
        .collect();
    let headers = Headers::default();
    futures::future::try_join_all(keys.iter().map(|k| store.put(k, bytes("x"), &headers)))
        .await
        .expect("puts");
    assert_eq!(
        listed(store).await.len(),
        1005,
        "listing pages past 1,000 keys"
    );
    let failed = store.delete_batch(&keys).await;
    assert!(failed.is_empty(), "{failed:?}");
    assert!(listed(store).await.is_empty());
}

async fn awkward_keys_round_trip(store: &dyn Store) {
    let names = [
        "with space.txt",
        "plus+sign.txt",
        "per%cent.txt",
        "ünïcödé/文件.txt",
        "amp&eq=semi;colon.txt",
        "tilde~star*.txt",
    ];
    for name in names {
        store
            .put(&key(name), bytes(name), &Headers::default())
            .await
            .expect(name);
    }
    let mut got: Vec<String> = listed(store)
        .await
        .into_iter()
        .map(|m| m.key.to_string())
        .collect();
    got.sort();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want);
    for name in names {
        assert_eq!(
            &store.get(&key(name)).await.expect(name)[..],
            name.as_bytes()
        );
    }
}

async fn large_file_streams_in_parts(store: &dyn Store) {
    // 11 MiB with a 5 MiB threshold and chunk: three parts on S3, a streamed copy locally.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("big.bin");
    let data: Vec<u8> = (0..11 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &data).expect("write");
    let put = store
        .put(
            &key("big.bin"),
            Body::File {
                path: path.clone(),
                size: data.len() as u64,
                blake3: Some(hoist::digest::Digest::of(&data)),
            },
            &full_headers(),
        )
        .await
        .expect("put");
    let info = store.head(&key("big.bin")).await.expect("head");
    assert_eq!(info.meta.size, data.len() as u64);
    assert_eq!(info.headers.cache_control, full_headers().cache_control);
    assert_eq!(put.etag, info.meta.etag);
    let got = store.get(&key("big.bin")).await.expect("get");
    assert!(got[..] == data[..], "content differs");
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod local {
            $(
                #[test]
                fn $case() {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let store = hoist::store::local::LocalStore::new(dir.path().join("store"));
                    crate::util::block_on(super::$case(&store));
                }
            )*
        }
        mod moto {
            $(
                #[test]
                fn $case() {
                    let Some(server) = crate::backends::Server::moto() else { return };
                    let store = super::s3_store(&server, "");
                    crate::util::block_on(super::$case(&store));
                }
            )*
        }
        mod rclone {
            $(
                #[test]
                fn $case() {
                    let Some(server) = crate::backends::Server::rclone() else { return };
                    let store = super::s3_store(&server, "");
                    crate::util::block_on(super::$case(&store));
                }
            )*
        }
        mod moto_prefixed {
            $(
                #[test]
                fn $case() {
                    let Some(server) = crate::backends::Server::moto() else { return };
                    let store = super::s3_store(&server, "site/");
                    crate::util::block_on(super::$case(&store));
                }
            )*
        }
    };
}

conformance!(
    put_then_head_round_trips_headers,
    list_is_sorted_and_normalized,
    missing_objects_are_not_found,
    get_returns_the_bytes,
    copy_replaces_headers_and_keeps_bytes,
    delete_batch_deletes_and_tolerates_missing,
    delete_batch_over_a_thousand_keys,
    awkward_keys_round_trip,
    large_file_streams_in_parts,
    copy_to_another_key_sets_headers_and_keeps_the_source,
    a_hint_never_changes_the_listing,
    open_streams_the_body_pinned_to_its_etag,
);

/// The contract of conditional writes (and of a GET pinned by `If-Match`): a store honours
/// every condition, or (rclone serve s3) ignores them all, which the second `Absent` write
/// shows. Returns whether it honours them.
async fn conditional_writes(store: &dyn Store) -> bool {
    let lock = key(".hoist/lock.json");
    let first = store
        .put_if(
            &lock,
            Bytes::from("one"),
            &Headers::default(),
            &Condition::Absent,
        )
        .await
        .expect("the first create succeeds");
    let second = store
        .put_if(
            &lock,
            Bytes::from("two"),
            &Headers::default(),
            &Condition::Absent,
        )
        .await;
    let honoured = match second {
        Err(Error::PreconditionFailed { .. }) => true,
        Ok(_) => false,
        Err(other) => panic!("unexpected error: {other}"),
    };
    if !honoured {
        return false;
    }
    let (body, etag) = hoist::store::get_tagged(store, &lock).await.expect("get");
    assert_eq!(&body[..], b"one");
    assert_eq!(etag, first.etag);
    let etag = etag.expect("an etag");
    assert!(
        matches!(
            store
                .open(&lock, Some("0123456789abcdef0123456789abcdef"))
                .await,
            Err(Error::PreconditionFailed { .. })
        ),
        "a GET pinned to another ETag"
    );
    let stale = Condition::Matches("0123456789abcdef0123456789abcdef".into());
    assert!(matches!(
        store
            .put_if(&lock, Bytes::from("three"), &Headers::default(), &stale)
            .await,
        Err(Error::PreconditionFailed { .. })
    ));
    let replaced = store
        .put_if(
            &lock,
            Bytes::from("four"),
            &Headers::default(),
            &Condition::Matches(etag.clone()),
        )
        .await
        .expect("a write with the current ETag succeeds");
    assert!(matches!(
        store.delete_if(&lock, &etag).await,
        Err(Error::PreconditionFailed { .. })
    ));
    assert_eq!(&store.get(&lock).await.expect("still there")[..], b"four");
    store
        .delete_if(&lock, replaced.etag.as_deref().expect("etag"))
        .await
        .expect("delete with the current ETag");
    assert!(matches!(
        store.head(&lock).await,
        Err(Error::NotFound { .. })
    ));
    // Deleting what is already gone is not a failure.
    store
        .delete_if(&lock, &etag)
        .await
        .expect("missing is fine");
    true
}

mod conditional {
    #[test]
    fn local_honours_conditions() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = hoist::store::local::LocalStore::new(dir.path().join("store"));
        assert!(crate::util::block_on(super::conditional_writes(&store)));
    }

    #[test]
    fn moto_honours_conditions() {
        let Some(server) = crate::backends::Server::moto() else {
            return;
        };
        let store = super::s3_store(&server, "site/");
        assert!(crate::util::block_on(super::conditional_writes(&store)));
    }

    /// rclone serve s3 1.75 ignores If-None-Match and If-Match: hoist's lock must detect it.
    #[test]
    fn rclone_ignores_conditions_detectably() {
        let Some(server) = crate::backends::Server::rclone() else {
            return;
        };
        let store = super::s3_store(&server, "");
        assert!(!crate::util::block_on(super::conditional_writes(&store)));
    }
}

/// An S3 store and the test's own SDK client for its bucket, to plant objects hoist would
/// refuse to name.
pub struct S3Case {
    store: S3Store,
    client: aws_sdk_s3::Client,
    /// rclone serve s3 keeps objects as files: it cannot hold `a//b` or a `dir/` marker beside
    /// files, guesses a Content-Type where none was sent, and merges user metadata on a
    /// REPLACE copy (see notes/test-servers.md). The cases assert those only elsewhere.
    filesystem: bool,
    /// moto reports every multipart upload as begun in 2010; rclone keeps the real time.
    upload_times: bool,
    endpoint: crate::util::Endpoint,
}

fn s3_case(server: &Server, prefix: &str) -> S3Case {
    S3Case {
        store: s3_store(server, prefix),
        client: server.endpoint().client(),
        filesystem: server.name() == "rclone",
        upload_times: server.name() == "rclone",
        endpoint: server.endpoint(),
    }
}

/// Puts an object by its raw full key, past hoist's `Key` rules (`a//b`, `dir/`).
async fn put_raw(case: &S3Case, name: &str, body: &[u8]) {
    let store = &case.store;
    case.client
        .put_object()
        .bucket(store.bucket())
        .key(format!("{}{name}", store.prefix()))
        .body(body.to_vec().into())
        .send()
        .await
        .expect("raw put");
}

async fn names(store: &S3Store) -> Vec<NamedObject> {
    names_with(store, ListHint::none()).await
}

async fn names_with(store: &S3Store, hint: ListHint) -> Vec<NamedObject> {
    let mut names: Vec<NamedObject> = store.list_names(hint).try_collect().await.expect("list");
    names.sort_by(|a, b| a.name.cmp(&b.name));
    names
}

/// With pages of three keys every stretch between two split points takes pages of its own,
/// and a wrong hint leaves stretches that run past their bound: the raw-name listing is the
/// same whatever the hint says, folder markers and doubled slashes included.
async fn a_hinted_listing_is_the_listing_across_pages(case: &S3Case) {
    let store = case.store.clone().with_page_size(Some(3));
    let mut raw = hinted_names();
    if !case.filesystem {
        raw.extend(["dir/".to_string(), "odd//name".to_string()]);
    }
    for name in &raw {
        put_raw(case, name, name.as_bytes()).await;
    }
    let want = names(&store).await;
    assert_eq!(want.len(), raw.len(), "the plain listing");
    let sorted: Vec<&str> = want.iter().map(|n| n.name.as_str()).collect();
    for (what, hint) in hints(&sorted) {
        let got = names_with(&store, hint).await;
        let pairs = |listed: &[NamedObject]| -> Vec<(String, u64, Option<String>)> {
            listed
                .iter()
                .map(|n| (n.name.clone(), n.size, n.etag.clone()))
                .collect()
        };
        assert_eq!(pairs(&got), pairs(&want), "hint: {what}");
    }
}

async fn names_are_listed_verbatim(case: &S3Case) {
    let store = &case.store;
    store
        .put_single(
            &key("a.txt"),
            Bytes::from_static(b"aa"),
            &Headers::default(),
        )
        .await
        .expect("put");
    let want: &[(&str, u64)] = if case.filesystem {
        put_raw(case, "sub/b c+d.txt", b"odd").await;
        &[("a.txt", 2), ("sub/b c+d.txt", 3)]
    } else {
        put_raw(case, "dir/", b"").await;
        put_raw(case, "odd//name", b"odd").await;
        &[("a.txt", 2), ("dir/", 0), ("odd//name", 3)]
    };
    let listed = names(store).await;
    let got: Vec<(&str, u64)> = listed.iter().map(|n| (n.name.as_str(), n.size)).collect();
    assert_eq!(got, want);
    for object in &listed {
        assert!(object.last_modified.is_some(), "{}", object.name);
        if let Some(etag) = &object.etag {
            assert!(!etag.contains('"'), "ETag not normalized: {etag}");
        }
    }
    assert_eq!(
        store.named_url("odd//name"),
        format!("s3://{}/{}odd//name", store.bucket(), store.prefix())
    );
}

async fn put_single_sends_exactly_the_given_headers(case: &S3Case) {
    let store = &case.store;
    let headers = full_headers();
    store
        .put_single(&key("page"), Bytes::from_static(b"<p>"), &headers)
        .await
        .expect("put");
    let info = store.head(&key("page")).await.expect("head");
    assert_eq!(info.headers.content_type, headers.content_type);
    assert_eq!(info.headers.cache_control, headers.cache_control);
    // Without a Content-Type none is sent: the server's default, never the SDK's
    // `application/octet-stream`.
    store
        .put_single(&key("blob"), Bytes::from_static(b"x"), &Headers::default())
        .await
        .expect("put");
    let untyped = store.head(&key("blob")).await.expect("head");
    if !case.filesystem {
        assert_ne!(
            untyped.headers.content_type.as_deref(),
            Some("application/octet-stream")
        );
    }
}

async fn download_writes_bytes_and_time_then_renames(case: &S3Case) {
    let store = &case.store;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    store
        .put_single(
            &key("d/f.bin"),
            Bytes::from(data.clone()),
            &Headers::default(),
        )
        .await
        .expect("put");
    let dir = tempfile::tempdir().expect("temp dir");
    let destination = dir.path().join("sub").join("f.bin");
    let modified = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let times = store
        .download_to("d/f.bin", &destination, Some(modified), true)
        .await
        .expect("download");
    assert!(times.is_none(), "{times:?}");
    assert_eq!(std::fs::read(&destination).expect("read"), data);
    let mtime = std::fs::metadata(&destination)
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(mtime, modified);
    let left: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, ["f.bin"], "a temporary file was left behind");
}

async fn download_of_a_missing_object_leaves_nothing(case: &S3Case) {
    let store = &case.store;
    let dir = tempfile::tempdir().expect("temp dir");
    let destination = dir.path().join("sub").join("gone.txt");
    let error = store
        .download_to("gone.txt", &destination, None, true)
        .await
        .expect_err("missing object");
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert!(!destination.exists());
    let left = std::fs::read_dir(dir.path().join("sub")).map_or(0, Iterator::count);
    assert_eq!(left, 0, "a temporary file was left behind");
}

/// A copy at or above the copy threshold goes in parts (UploadPartCopy): the bytes and every
/// header of the source arrive, as with one CopyObject, and REPLACE still replaces them.
async fn a_copy_in_parts_is_the_same_object(case: &S3Case) {
    let store = &case.store;
    let data: Vec<u8> = (0..(11u32 << 20)).map(|i| (i % 251) as u8).collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("big.bin");
    std::fs::write(&path, &data).expect("write");
    store
        .put(
            &key("big.bin"),
            Body::File {
                path,
                size: data.len() as u64,
                blake3: None,
            },
            &full_headers(),
        )
        .await
        .expect("put");
    let source = format!("{}big.bin", store.prefix());
    let size = data.len() as u64;
    store
        .copy_from(
            store.bucket(),
            &source,
            size,
            "big-copy.bin",
            &Headers::default(),
            None,
        )
        .await
        .expect("copy in parts");
    let copied = store.head(&key("big-copy.bin")).await.expect("head");
    let original = store.head(&key("big.bin")).await.expect("head");
    assert_eq!(copied.meta.size, size);
    assert_eq!(copied.headers.cache_control, full_headers().cache_control);
    assert_eq!(copied.headers.content_type, original.headers.content_type);
    assert_eq!(
        copied.headers.metadata.get("team").map(String::as_str),
        Some("web")
    );
    if !case.filesystem {
        // 11 MiB in 5 MiB parts.
        let etag = copied.meta.etag.clone().unwrap_or_default();
        assert!(etag.ends_with("-3"), "not copied in parts: {etag}");
    }
    assert_eq!(
        store.get(&key("big-copy.bin")).await.expect("get").as_ref(),
        &data[..]
    );
    let replacement = Headers {
        content_type: Some("application/x-big".into()),
        ..Headers::default()
    };
    store
        .copy_from(
            store.bucket(),
            &source,
            size,
            "big-replaced.bin",
            &replacement,
            Some(MetadataDirective::Replace),
        )
        .await
        .expect("copy in parts");
    let replaced = store.head(&key("big-replaced.bin")).await.expect("head");
    assert_eq!(
        replaced.headers.content_type.as_deref(),
        Some("application/x-big")
    );
    if !case.filesystem {
        // rclone serve s3 keeps the old Cache-Control on a REPLACE copy (see the small copy).
        assert_eq!(replaced.headers.cache_control, None);
    }
}

async fn copy_keeps_or_replaces_headers(case: &S3Case) {
    let store = &case.store;
    store
        .put_single(
            &key("src.txt"),
            Bytes::from_static(b"copy me"),
            &full_headers(),
        )
        .await
        .expect("put");
    let source = format!("{}src.txt", store.prefix());
    store
        .copy_from(
            store.bucket(),
            &source,
            7,
            "kept.txt",
            &Headers::default(),
            None,
        )
        .await
        .expect("copy");
    let kept = store.head(&key("kept.txt")).await.expect("head");
    assert_eq!(kept.headers.cache_control, full_headers().cache_control);
    assert_eq!(
        kept.headers.metadata.get("team").map(String::as_str),
        Some("web")
    );
    let replacement = Headers {
        content_type: Some("text/plain".into()),
        cache_control: Some("no-cache".into()),
        ..Headers::default()
    };
    store
        .copy_from(
            store.bucket(),
            &source,
            7,
            "replaced.txt",
            &replacement,
            Some(MetadataDirective::Replace),
        )
        .await
        .expect("copy");
    let replaced = store.head(&key("replaced.txt")).await.expect("head");
    assert_eq!(replaced.headers.cache_control.as_deref(), Some("no-cache"));
    assert_eq!(replaced.headers.content_type.as_deref(), Some("text/plain"));
    if !case.filesystem {
        assert!(!replaced.headers.metadata.contains_key("team"));
    }
    assert_eq!(
        &store.get(&key("replaced.txt")).await.expect("get")[..],
        b"copy me"
    );
}

async fn delete_names_takes_raw_names_and_tolerates_missing(case: &S3Case) {
    let store = &case.store;
    let raw: &[&str] = if case.filesystem {
        &["sub/b c+d.txt"]
    } else {
        &["odd//name", "dir/"]
    };
    for name in raw {
        put_raw(case, name, b"raw").await;
    }
    store
        .put_single(&key("a.txt"), Bytes::from_static(b"a"), &Headers::default())
        .await
        .expect("put");
    let mut doomed: Vec<String> = raw.iter().map(ToString::to_string).collect();
    doomed.extend(["a.txt".to_string(), "missing".to_string()]);
    let failed = store.delete_names(&doomed).await;
    assert!(failed.is_empty(), "{failed:?}");
    assert!(names(store).await.is_empty());
}

async fn stale_uploads_are_listed_and_aborted(case: &S3Case) {
    let store = &case.store;
    // A killed run's upload, begun by aws-cli (the SDK cannot parse rclone's answer to
    // CreateMultipartUpload; hoist reads its UploadId from the raw body).
    let dir = tempfile::tempdir().expect("temp dir");
    let created = crate::util::Hoist::aws(dir.path(), &case.endpoint)
        .args([
            "s3api",
            "create-multipart-upload",
            "--bucket",
            store.bucket(),
        ])
        .args(["--key", &format!("{}killed/run.bin", store.prefix())])
        .args(["--query", "UploadId", "--output", "text"])
        .success();
    let id = created.stdout.trim().to_string();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    let stale = store.stale_uploads(later).await.expect("list uploads");
    let names: Vec<&str> = stale.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["killed/run.bin"]);
    assert_eq!(stale[0].id, id);
    if case.upload_times {
        let earlier = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        assert!(
            store.stale_uploads(earlier).await.expect("list").is_empty(),
            "a recent upload counted as stale"
        );
    }
    store.abort_upload(&stale[0]).await.expect("abort");
    assert!(store.stale_uploads(later).await.expect("list").is_empty());
    // Aborting what is already gone is not an error.
    store.abort_upload(&stale[0]).await.expect("abort again");
}

macro_rules! named_conformance {
    ($($case:ident),* $(,)?) => {
        mod named_moto {
            $(
                #[test]
                fn $case() {
                    let Some(server) = crate::backends::Server::moto() else { return };
                    let case = super::s3_case(&server, "");
                    crate::util::block_on(super::$case(&case));
                }
            )*
        }
        mod named_rclone {
            $(
                #[test]
                fn $case() {
                    let Some(server) = crate::backends::Server::rclone() else { return };
                    let case = super::s3_case(&server, "");
                    crate::util::block_on(super::$case(&case));
                }
            )*
        }
        mod named_moto_prefixed {
            $(
                #[test]
                fn $case() {
                    let Some(server) = crate::backends::Server::moto() else { return };
                    let case = super::s3_case(&server, "site/");
                    crate::util::block_on(super::$case(&case));
                }
            )*
        }
    };
}

named_conformance!(
    names_are_listed_verbatim,
    put_single_sends_exactly_the_given_headers,
    download_writes_bytes_and_time_then_renames,
    download_of_a_missing_object_leaves_nothing,
    copy_keeps_or_replaces_headers,
    a_copy_in_parts_is_the_same_object,
    delete_names_takes_raw_names_and_tolerates_missing,
    stale_uploads_are_listed_and_aborted,
    a_hinted_listing_is_the_listing_across_pages,
);

/// A store over a fresh bucket, created through the binary's own client construction.
pub fn s3_store(server: &Server, prefix: &str) -> S3Store {
    let bucket = fresh_bucket(server.name());
    server.create_bucket(&bucket);
    let endpoint = server.endpoint();
    let store = S3Store::new(
        endpoint.client(),
        bucket,
        Prefix::new(prefix).expect("prefix"),
        endpoint.url.clone(),
    )
    .with_multipart(
        Multipart {
            threshold: 5 << 20,
            chunk_size: 5 << 20,
            copy_threshold: 5 << 20,
        },
        4,
    );
    if !prefix.is_empty() {
        // A neighbour that shares the prefix's first characters must stay invisible.
        let client = endpoint.client();
        let bucket = store.bucket().to_string();
        let neighbour = format!("{}-old/x.txt", prefix.trim_end_matches('/'));
        block_on(async {
            client
                .put_object()
                .bucket(bucket)
                .key(neighbour)
                .body(b"neighbour".to_vec().into())
                .send()
                .await
                .expect("put neighbour");
        });
    }
    store
}

#[test]
fn local_store_keeps_metadata_out_of_the_keyspace() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = LocalStore::new(dir.path());
    block_on(async {
        store
            .put(&key("a.txt"), bytes("a"), &full_headers())
            .await
            .expect("put");
        let names: Vec<String> = listed(&store)
            .await
            .into_iter()
            .map(|m| m.key.to_string())
            .collect();
        assert_eq!(names, ["a.txt"]);
        assert!(matches!(
            store
                .put(&key(".hoist-store/x"), bytes("x"), &Headers::default())
                .await,
            Err(Error::Reserved { .. })
        ));
    });
}

/// `Store::copy_from_origin` (a preview's copies of production's bytes): reads the origin's
/// key, writes only under the preview's own prefix with exactly the given headers, honours the
/// source ETag where the backend honours copy conditions (moto and rclone ignore
/// `x-amz-copy-source-if-match`: notes/test-servers.md), and leaves the origin as it was. One
/// test per backend; `origin` is the site, `preview` a store under it whose origin it is.
async fn a_copy_from_the_origin_stays_inside(
    origin: &dyn Store,
    preview: &dyn Store,
    honours_copy_conditions: bool,
) {
    let put = origin
        .put(&key("assets/app.js"), bytes("app()"), &Headers::default())
        .await
        .expect("put in the origin");
    let headers = full_headers();
    preview
        .copy_from_origin(
            &key("assets/app.js"),
            &key("assets/app.js"),
            &headers,
            put.etag.as_deref(),
        )
        .await
        .expect("copy from the origin");
    let copied = preview.head(&key("assets/app.js")).await.expect("head");
    assert_eq!(copied.headers.cache_control, headers.cache_control);
    assert_eq!(
        &preview.get(&key("assets/app.js")).await.expect("get")[..],
        b"app()"
    );
    if honours_copy_conditions {
        assert!(matches!(
            preview
                .copy_from_origin(
                    &key("assets/app.js"),
                    &key("assets/b.js"),
                    &headers,
                    Some("0123456789abcdef0123456789abcdef"),
                )
                .await,
            Err(Error::PreconditionFailed { .. })
        ));
    }
    assert!(matches!(
        preview
            .copy_from_origin(&key("nope.js"), &key("nope.js"), &headers, None)
            .await,
        Err(Error::NotFound { .. })
    ));
    // The origin holds its one object and the preview's (listed under the preview's prefix).
    let names: Vec<String> = listed(origin)
        .await
        .into_iter()
        .map(|m| m.key.as_str().to_string())
        .collect();
    assert_eq!(names, ["_previews/x/assets/app.js", "assets/app.js"]);
    let origin_head = origin
        .head(&key("assets/app.js"))
        .await
        .expect("origin head");
    assert_eq!(
        origin_head.meta.etag, put.etag,
        "the origin's object changed"
    );
}

mod origin {
    use hoist::key::Prefix;
    use hoist::store::local::LocalStore;
    use hoist::store::s3::S3Store;

    #[test]
    fn local() {
        let dir = tempfile::tempdir().expect("temp dir");
        let site = dir.path().join("store");
        let origin = LocalStore::new(site.clone());
        let preview = LocalStore::new(site.join("_previews/x")).with_origin(Some(site));
        crate::util::block_on(super::a_copy_from_the_origin_stays_inside(
            &origin, &preview, true,
        ));
    }

    fn s3(server: &crate::backends::Server) {
        let origin = super::s3_store(server, "site/");
        let endpoint = server.endpoint();
        let preview = S3Store::new(
            endpoint.client(),
            origin.bucket().to_string(),
            Prefix::new("site/_previews/x/").expect("prefix"),
            endpoint.url.clone(),
        )
        .with_origin(Some(origin.prefix().clone()));
        crate::util::block_on(super::a_copy_from_the_origin_stays_inside(
            &origin, &preview, false,
        ));
    }

    #[test]
    fn moto() {
        let Some(server) = crate::backends::Server::moto() else {
            return;
        };
        s3(&server);
    }

    #[test]
    fn rclone() {
        let Some(server) = crate::backends::Server::rclone() else {
            return;
        };
        s3(&server);
    }
}
