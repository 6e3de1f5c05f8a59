//! Source tree → sorted `Vec<LocalFile>`: key, size, blake3 digest, resolved headers.
//!
//! Runs on blocking threads: the walk is sequential (walkdir, following symlinks with loop
//! detection), the hashing is spread over the machine's cores and streams each file, so memory
//! does not grow with file size. Every problem is an error naming the path: a deploy publishes
//! exactly the tree it was given or nothing.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use crate::deploy::compress::{Compress, Encoding, compressible};
use crate::deploy::rules::{Resolved, Rules};
use crate::digest::Digest;
use crate::key::{Key, KeyError};

/// Keys under this directory belong to hoist (the deploy manifest) and are never site files.
pub(crate) const RESERVED_DIR: &str = ".hoist";

#[derive(Debug, Clone)]
pub(crate) struct LocalFile {
    pub(crate) key: Key,
    pub(crate) path: PathBuf,
    pub(crate) size: u64,
    pub(crate) mtime: SystemTime,
    /// The blake3 digest of the content.
    pub(crate) blake3: Digest,
    pub(crate) resolved: Resolved,
    /// For a rollback: the key whose bytes the object is copied from server-side (`path` is
    /// then unused). `None` for files of a build.
    pub(crate) copy_from: Option<Key>,
    /// For a preview: the origin site's object with the same bytes, copied server-side
    /// instead of uploaded (boxed: most files have none, and every file carries the field).
    pub(crate) from_origin: Option<Box<OriginCopy>>,
}

/// An object of the origin site (a preview's production) that holds a file's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OriginCopy {
    pub(crate) key: Key,
    /// The ETag it must still have when copied.
    pub(crate) etag: Option<String>,
    /// Its size (a compressed object's differs from the file's).
    pub(crate) size: u64,
}

impl LocalFile {
    /// What the file's object is identified by, given the blake3 of the file's bytes: that
    /// digest, or for a compressed object [`super::compress::Encoding::identity`].
    pub(crate) fn identity(&self, source: Digest) -> Digest {
        match self.resolved.encode {
            None => source,
            Some(encoding) => encoding.identity(&source),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ScanError {
    #[error("source directory `{}` does not exist", path.display())]
    Missing { path: PathBuf },
    #[error("source `{}` is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot walk `{}`", path.display())]
    Walk {
        path: PathBuf,
        #[source]
        source: walkdir::Error,
    },
    #[error(
        "`{}` is in the build and is also the name of a compressed variant of `{}` \
         (compress: variants); remove or exclude one of them",
        path.display(),
        source_path.display()
    )]
    VariantCollision { path: PathBuf, source_path: PathBuf },
    #[error("symlink loop at `{}` (it leads back to `{}`)", path.display(), ancestor.display())]
    Loop { path: PathBuf, ancestor: PathBuf },
    #[error("file name `{}` is not valid UTF-8, so it has no S3 key", path.display())]
    NonUtf8 { path: PathBuf },
    #[error("`{}` cannot be published as key `{key}`", path.display())]
    InvalidKey {
        path: PathBuf,
        key: String,
        #[source]
        source: KeyError,
    },
    #[error("`{}` is not a regular file or directory (a socket, FIFO or device)", path.display())]
    Special { path: PathBuf },
    #[error(
        "symlink `{}` leads outside the source directory, to `{}`; refusing to publish it",
        path.display(),
        target.display()
    )]
    LinkOutside { path: PathBuf, target: PathBuf },
}

impl ScanError {
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            ScanError::LinkOutside { .. } => Some(
                "remove the link from the build output, or pass --follow-symlinks (or set \
                 follow_symlinks: true in deploy.yaml) to publish what it points to"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// What a scan found besides the files.
#[derive(Debug, Default)]
pub(crate) struct ScanReport {
    pub(crate) files: Vec<LocalFile>,
    /// Files left out because they sit in the reserved `.hoist/` directory.
    pub(crate) reserved: Vec<PathBuf>,
}

/// Checks that `root` is a readable directory, before anything else happens.
pub(crate) fn check_root(root: &Path) -> Result<(), ScanError> {
    let metadata = std::fs::metadata(root).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ScanError::Missing {
            path: root.to_owned(),
        },
        _ => ScanError::Read {
            path: root.to_owned(),
            source,
        },
    })?;
    if !metadata.is_dir() {
        return Err(ScanError::NotADirectory {
            path: root.to_owned(),
        });
    }
    // Fail early with a clear message on an unreadable root.
    std::fs::read_dir(root).map_err(|source| ScanError::Read {
        path: root.to_owned(),
        source,
    })?;
    Ok(())
}

/// Walks and hashes `root`. Excluded paths are pruned during the walk. Symlinks are followed;
/// one that leads outside `root` is an error unless `follow_outside`. (A deploy runs the two
/// halves apart: [`walk_source`], its guards, then [`hash_files`] beside the listing.)
#[cfg(test)]
pub(crate) fn scan(
    root: &Path,
    rules: &Rules,
    follow_outside: bool,
) -> Result<ScanReport, ScanError> {
    let mut report = walk_source(root, rules, follow_outside)?;
    hash_files(&mut report.files)?;
    Ok(report)
}

/// The walk half of a scan: every file with its key, size, mtime and rule, sorted, but its
/// `blake3` still empty until [`hash_files`]. A deploy checks its guards on this, then hashes
/// while it lists the target (the two largest costs of a no-op deploy, overlapped).
pub(crate) fn walk_source(
    root: &Path,
    rules: &Rules,
    follow_outside: bool,
) -> Result<ScanReport, ScanError> {
    check_root(root)?;
    let inside = if follow_outside {
        None
    } else {
        Some(
            std::fs::canonicalize(root).map_err(|source| ScanError::Read {
                path: root.to_owned(),
                source,
            })?,
        )
    };
    let (files, reserved) = walk(root, rules, inside.as_deref())?;
    Ok(ScanReport { files, reserved })
}

fn relative_key(root: &Path, path: &Path) -> Result<String, ScanError> {
    let relative = path
        .strip_prefix(root)
        .expect("walkdir yields paths under its root");
    let mut key = String::new();
    for component in relative.components() {
        let part = component
            .as_os_str()
            .to_str()
            .ok_or_else(|| ScanError::NonUtf8 {
                path: path.to_owned(),
            })?;
        if !key.is_empty() {
            key.push('/');
        }
        key.push_str(part);
    }
    Ok(key)
}

/// Refuses a symlink whose target lies outside `inside` (the canonical source root).
fn check_link(entry: &walkdir::DirEntry, inside: Option<&Path>) -> Result<(), ScanError> {
    let Some(inside) = inside else {
        return Ok(());
    };
    if !entry.path_is_symlink() {
        return Ok(());
    }
    let target = std::fs::canonicalize(entry.path()).map_err(|source| ScanError::Read {
        path: entry.path().to_owned(),
        source,
    })?;
    if target.starts_with(inside) {
        return Ok(());
    }
    Err(ScanError::LinkOutside {
        path: entry.path().to_owned(),
        target,
    })
}

/// Netlify's and Cloudflare's rule files, at the root, are read as edge rules, never published.
fn is_edge_file(key: &str) -> bool {
    key == super::edge::REDIRECTS_FILE || key == super::edge::HEADERS_FILE
}

fn walk(
    root: &Path,
    rules: &Rules,
    inside: Option<&Path>,
) -> Result<(Vec<LocalFile>, Vec<PathBuf>), ScanError> {
    let mut entries = Vec::new();
    let mut reserved = Vec::new();
    let mut walker = walkdir::WalkDir::new(root)
        .follow_links(true)
        .min_depth(1)
        .into_iter();
    while let Some(next) = walker.next() {
        let entry = next.map_err(|source| {
            if let Some(ancestor) = source.loop_ancestor() {
                return ScanError::Loop {
                    path: source.path().unwrap_or(root).to_owned(),
                    ancestor: ancestor.to_owned(),
                };
            }
            ScanError::Walk {
                path: source.path().unwrap_or(root).to_owned(),
                source,
            }
        })?;
        let path = entry.path();
        let key = relative_key(root, path)?;
        if rules.is_excluded(&key) {
            if entry.file_type().is_dir() {
                walker.skip_current_dir();
            }
            continue;
        }
        if is_edge_file(&key) {
            continue;
        }
        if key == RESERVED_DIR || key.starts_with(&format!("{RESERVED_DIR}/")) {
            if entry.file_type().is_dir() {
                walker.skip_current_dir();
            }
            reserved.push(path.to_owned());
            continue;
        }
        check_link(&entry, inside)?;
        let file_type = entry.file_type();
        if file_type.is_dir() {
            continue;
        }
        if !file_type.is_file() {
            return Err(ScanError::Special {
                path: path.to_owned(),
            });
        }
        let metadata = entry.metadata().map_err(|source| ScanError::Walk {
            path: path.to_owned(),
            source,
        })?;
        let key = Key::new(key.clone()).map_err(|source| ScanError::InvalidKey {
            path: path.to_owned(),
            key,
            source,
        })?;
        entries.push(LocalFile {
            resolved: rules.resolve(&key),
            key,
            path: path.to_owned(),
            size: metadata.len(),
            mtime: metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            blake3: Digest::default(),
            copy_from: None,
            from_origin: None,
        });
    }
    add_variants(&mut entries, rules)?;
    // S3 lists keys in UTF-8 byte order; keep the same order (see docs/s3-facts.md).
    entries.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    check_variants(&entries)?;
    // Held for the whole run: no room for growth is kept (a fifth of it, on average).
    entries.shrink_to_fit();
    Ok((entries, reserved))
}

/// Only a variant can repeat a key (the list is sorted): then the build holds a file of that
/// name too, which is an error naming both.
fn check_variants(entries: &[LocalFile]) -> Result<(), ScanError> {
    if let Some(pair) = entries.windows(2).find(|pair| pair[0].key == pair[1].key) {
        let (file, variant) = if pair[0].resolved.encode.is_some() {
            (&pair[1], &pair[0])
        } else {
            (&pair[0], &pair[1])
        };
        return Err(ScanError::VariantCollision {
            path: file.path.clone(),
            source_path: variant.path.clone(),
        });
    }
    Ok(())
}

/// `compress: variants`: beside each compressible file of such a rule, `NAME.br` and
/// `NAME.gz`: the same source, encoded, with the file's headers and its own Content-Encoding.
fn add_variants(entries: &mut Vec<LocalFile>, rules: &Rules) -> Result<(), ScanError> {
    let mut variants = Vec::new();
    for file in entries.iter() {
        let Some(rule) = file.resolved.rule else {
            continue;
        };
        if rules.compress(rule) != Some(Compress::Variants)
            || !compressible(file.resolved.headers.content_type.as_deref())
        {
            continue;
        }
        for encoding in [Encoding::Br, Encoding::Gzip] {
            let name = format!("{}{}", file.key.as_str(), encoding.suffix());
            let key = Key::new(name.clone()).map_err(|source| ScanError::InvalidKey {
                path: file.path.clone(),
                key: name,
                source,
            })?;
            variants.push(LocalFile {
                key,
                resolved: rules.variant(&file.resolved, encoding),
                ..file.clone()
            });
        }
    }
    entries.extend(variants);
    Ok(())
}

/// Bytes read from a file at a time while hashing it.
const HASH_BUFFER: usize = 64 * 1024;

/// Hashes a file with blake3, streaming it.
pub(crate) fn hash_file(path: &Path) -> std::io::Result<(Digest, u64)> {
    hash_file_with(path, &mut vec![0; HASH_BUFFER])
}

/// Hashes a file with blake3, streaming it through `buffer`, which a caller hashing many files
/// reuses. (blake3's `update_reader` zeroes a fresh 64 KiB buffer for every file: at 100,000
/// small files that was about 0.06 of the scan's 0.45-0.52 user CPU-s.)
fn hash_file_with(path: &Path, buffer: &mut [u8]) -> std::io::Result<(Digest, u64)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    loop {
        match file.read(buffer) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buffer[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((hasher.finalize().into(), hasher.count()))
}

/// Fills in the blake3 of every walked file, on all cores; the first unreadable file is the
/// error.
pub(crate) fn hash_files(entries: &mut [LocalFile]) -> Result<(), ScanError> {
    let threads = std::thread::available_parallelism()
        .map_or(2, std::num::NonZero::get)
        .min(entries.len().max(1));
    let next = AtomicUsize::new(0);
    // A digest per file (32 bytes each) and the failures apart: a result per file with room
    // for an error in each was 80 bytes a file, 8 MB at 100,000 files.
    let digests: Mutex<Vec<Digest>> = Mutex::new(vec![Digest::default(); entries.len()]);
    let failures: Mutex<Vec<(usize, ScanError)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut buffer = vec![0; HASH_BUFFER];
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(entry) = entries.get(index) else {
                        break;
                    };
                    // A redirect object (`edge::website`) has no file; its digest is set.
                    if entry.path.as_os_str().is_empty() {
                        continue;
                    }
                    match hash_file_with(&entry.path, &mut buffer) {
                        Ok((digest, _)) => {
                            digests.lock().expect("no panics while holding the lock")[index] =
                                digest;
                        }
                        Err(source) => failures
                            .lock()
                            .expect("no panics while holding the lock")
                            .push((
                                index,
                                ScanError::Read {
                                    path: entry.path.clone(),
                                    source,
                                },
                            )),
                    }
                }
            });
        }
    });
    // The first file that could not be read, in key order, as a walk in order would find it.
    let failures = failures
        .into_inner()
        .expect("no panics while holding the lock");
    if let Some((_, error)) = failures.into_iter().min_by_key(|(index, _)| *index) {
        return Err(error);
    }
    let digests = digests
        .into_inner()
        .expect("no panics while holding the lock");
    for (entry, digest) in entries.iter_mut().zip(digests) {
        if !entry.path.as_os_str().is_empty() {
            entry.blake3 = entry.identity(digest);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::config::DeployConfig;

    fn rules(yaml: &str) -> Rules {
        Rules::from_config(&DeployConfig::parse(yaml).unwrap()).unwrap()
    }

    #[test]
    fn scans_sorted_hashed_and_excluded() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::create_dir_all(root.join("node_modules/x")).unwrap();
        std::fs::create_dir_all(root.join(".hoist")).unwrap();
        std::fs::write(root.join("a/b.txt"), "b").unwrap();
        std::fs::write(root.join("a-b.txt"), "ab").unwrap();
        std::fs::write(root.join("index.html"), "<html>").unwrap();
        std::fs::write(root.join("app.js.map"), "{}").unwrap();
        std::fs::write(root.join("node_modules/x/y.js"), "y").unwrap();
        std::fs::write(root.join(".hoist/manifest.json"), "{}").unwrap();
        let report = scan(root, &rules("exclude: ['*.map', node_modules]\n"), false).unwrap();
        let keys: Vec<_> = report.files.iter().map(|f| f.key.as_str()).collect();
        // Byte order: `-` (0x2d) sorts before `/` (0x2f).
        assert_eq!(keys, ["a-b.txt", "a/b.txt", "index.html"]);
        assert_eq!(report.reserved.len(), 1);
        let b = &report.files[1];
        assert_eq!(b.size, 1);
        assert_eq!(b.blake3, Digest::of(b"b"));
    }

    #[test]
    fn a_reused_buffer_hashes_each_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        // Larger than the buffer (three reads, the last short), then smaller files and an
        // empty one through the same buffer: nothing of an earlier file may leak into a digest.
        let large: Vec<u8> = (0..2 * HASH_BUFFER + 123)
            .map(|i| (i % 251) as u8)
            .collect();
        let files: [&[u8]; 4] = [&large, b"small", b"", b"sm"];
        let mut buffer = vec![0; HASH_BUFFER];
        for (i, bytes) in files.iter().enumerate() {
            let path = dir.path().join(format!("f{i}"));
            std::fs::write(&path, bytes).unwrap();
            let (digest, size) = hash_file_with(&path, &mut buffer).unwrap();
            assert_eq!(
                (digest, size),
                (Digest::of(bytes), bytes.len() as u64),
                "file {i}"
            );
            assert_eq!(hash_file(&path).unwrap(), (digest, size));
        }
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = scan(&missing, &rules(""), false).unwrap_err();
        assert!(matches!(err, ScanError::Missing { .. }), "{err}");
        assert!(err.to_string().contains("nope"));

        let file = dir.path().join("file.txt");
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(
            scan(&file, &rules(""), false).unwrap_err(),
            ScanError::NotADirectory { .. }
        ));
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loop_and_broken_link_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("site");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::os::unix::fs::symlink("..", root.join("sub/up")).unwrap();
        let err = scan(&root, &rules(""), false).unwrap_err();
        assert!(matches!(err, ScanError::Loop { .. }), "{err}");

        let root2 = dir.path().join("site2");
        std::fs::create_dir_all(&root2).unwrap();
        std::os::unix::fs::symlink("missing-target", root2.join("dangling")).unwrap();
        let err = scan(&root2, &rules(""), false).unwrap_err();
        assert!(err.to_string().contains("dangling"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_name_is_an_error() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let name = std::ffi::OsStr::from_bytes(b"bad\xffname");
        std::fs::write(dir.path().join(name), "x").unwrap();
        let err = scan(dir.path(), &rules(""), false).unwrap_err();
        assert!(matches!(err, ScanError::NonUtf8 { .. }), "{err}");
    }
}
