//! The local side of a sync: aws-cli's `FileGenerator`, made safe against symlink loops.
//!
//! The walk yields every regular file below the root (following symlinks unless told not to),
//! named by its `/`-separated path relative to the root and sorted in byte order, which is the
//! order aws-cli's per-directory sort produces and the order S3 lists keys in. What it skips it
//! reports with aws-cli's warning text (`Skipping file <absolute path>. <reason>`), and each
//! skip makes the run exit 2:
//!
//! - a broken symlink (or one the kernel refuses, ELOOP): `File does not exist.`
//! - a FIFO, socket or device: `File is character special device, block special device, FIFO, or socket.`
//! - a file or directory that cannot be opened: `File/Directory is not readable.`
//! - hoist only: a name that is not valid UTF-8, and a directory that is already being walked
//!   (a symlink loop), which aws-cli follows until the kernel gives up.
//!
//! A directory that could not be listed is recorded in [`Walk::incomplete`] ([`Unlisted`]), so `--delete` can
//! leave its counterpart alone instead of treating it as empty.

use std::fs::Metadata;
use std::path::{Path, PathBuf};

use super::compare::{Listed, micros};

/// A regular file found by the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WalkedFile {
    pub(crate) entry: Listed,
    pub(crate) path: PathBuf,
    /// Reached through a symlinked directory (deletes never follow those: the file lives
    /// outside the tree).
    pub(crate) through_symlink: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Walk {
    pub(crate) files: Vec<WalkedFile>,
    /// Warning texts, without the `warning: ` prefix.
    pub(crate) warnings: Vec<String>,
    pub(crate) incomplete: Unlisted,
}

/// Relative names of directories whose contents are unknown (`""`: the root itself).
#[derive(Debug, Default, Clone)]
pub(crate) struct Unlisted(Vec<String>);

impl Unlisted {
    fn push(&mut self, relative: &str) {
        self.0.push(relative.to_string());
    }

    /// Whether a relative name lies in a directory the walk could not list.
    pub(crate) fn covers(&self, name: &str) -> bool {
        self.0.iter().any(|dir| {
            dir.is_empty()
                || name
                    .strip_prefix(dir.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        })
    }
}

const NOT_EXIST: &str = "File does not exist.";
const SPECIAL: &str = "File is character special device, block special device, FIFO, or socket.";
const UNREADABLE: &str = "File/Directory is not readable.";

fn skip(path: &Path, reason: &str) -> String {
    format!("Skipping file {}. {reason}", path.display())
}

/// Walks `root` (absolute). A missing root yields nothing (the caller decides whether that is an
/// error). Blocking: run it on a blocking thread.
pub(crate) fn walk(root: &Path, follow_symlinks: bool) -> Walk {
    let mut walk = Walk::default();
    let Ok(link) = std::fs::symlink_metadata(root) else {
        return walk;
    };
    if link.file_type().is_symlink() && !follow_symlinks {
        // aws-cli silently generates nothing; with --delete it would then delete everything at
        // the destination. hoist treats the tree as unknown instead.
        walk.incomplete.push("");
        return walk;
    }
    match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => {
            let mut ancestors = vec![dir_id(&meta, root)];
            visit(
                root,
                "",
                follow_symlinks,
                link.file_type().is_symlink(),
                &mut ancestors,
                &mut walk,
            );
        }
        _ => {
            // aws-cli formats a file root as `/abs/file/` and warns that it does not exist.
            walk.warnings
                .push(format!("Skipping file {}/. {NOT_EXIST}", root.display()));
            walk.incomplete.push("");
        }
    }
    walk.files.sort_by(|a, b| a.entry.name.cmp(&b.entry.name));
    walk
}

/// Lists `dir` and walks each entry in name order, descending into directories.
fn visit(
    dir: &Path,
    relative: &str,
    follow_symlinks: bool,
    through_symlink: bool,
    ancestors: &mut Vec<DirId>,
    walk: &mut Walk,
) {
    let Some(names) = sorted_names(dir, relative, walk) else {
        return;
    };
    for os_name in names {
        let path = dir.join(&os_name);
        let Some(name) = os_name.to_str() else {
            walk.warnings.push(format!(
                "Skipping file {}. File name is not valid UTF-8.",
                path.display()
            ));
            continue;
        };
        let child = if relative.is_empty() {
            name.to_string()
        } else {
            format!("{relative}/{name}")
        };
        let Some((meta, is_link)) = resolve(&path, follow_symlinks, walk) else {
            continue;
        };
        if meta.is_dir() {
            let id = dir_id(&meta, &path);
            if ancestors.contains(&id) {
                walk.warnings.push(skip(
                    &path,
                    "Symbolic link loop: the directory is already being walked.",
                ));
                continue;
            }
            ancestors.push(id);
            let through = through_symlink || is_link;
            visit(&path, &child, follow_symlinks, through, ancestors, walk);
            ancestors.pop();
        } else {
            add_file(path, child, &meta, through_symlink, walk);
        }
    }
}

/// The names in `dir`, sorted; `None` (recorded as unlisted, with a warning) when it cannot be
/// read whole.
fn sorted_names(dir: &Path, relative: &str, walk: &mut Walk) -> Option<Vec<std::ffi::OsString>> {
    let names: Result<Vec<_>, _> = std::fs::read_dir(dir)
        .and_then(|entries| entries.map(|entry| entry.map(|e| e.file_name())).collect());
    if let Ok(mut names) = names {
        names.sort();
        Some(names)
    } else {
        walk.warnings.push(skip(dir, UNREADABLE));
        walk.incomplete.push(relative);
        None
    }
}

/// The metadata a path is walked by (its target's, for a followed symlink), and whether it is a
/// link; `None` for what the walk passes over (an unfollowed link) or skips with a warning.
fn resolve(path: &Path, follow_symlinks: bool, walk: &mut Walk) -> Option<(Metadata, bool)> {
    let Ok(link) = std::fs::symlink_metadata(path) else {
        walk.warnings.push(skip(path, NOT_EXIST));
        return None;
    };
    let is_link = link.file_type().is_symlink();
    if !is_link {
        return Some((link, false));
    }
    if !follow_symlinks {
        return None;
    }
    if let Ok(meta) = std::fs::metadata(path) {
        Some((meta, true))
    } else {
        walk.warnings.push(skip(path, NOT_EXIST));
        None
    }
}

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z, the range of Python's `datetime`, in
/// microseconds since the epoch.
const PYTHON_MIN_MICROS: i64 = -62_135_596_800_000_000;
const PYTHON_MAX_MICROS: i64 = 253_402_300_799_999_999;

/// Adds a regular, readable file to the walk, or skips it with aws-cli's warning.
fn add_file(path: PathBuf, name: String, meta: &Metadata, through_symlink: bool, walk: &mut Walk) {
    if is_special(meta) {
        walk.warnings.push(skip(&path, SPECIAL));
    } else if std::fs::File::open(&path).is_err() {
        walk.warnings.push(skip(&path, UNREADABLE));
    } else {
        // Python's datetime holds years 1 to 9999; aws-cli passes any other time (and one the
        // OS cannot give) as the epoch, with this warning, and so compares it as 1970.
        let modified = match meta.modified().map(micros) {
            Ok(time) if (PYTHON_MIN_MICROS..=PYTHON_MAX_MICROS).contains(&time) => time,
            _ => {
                walk.warnings
                    .push("File has an invalid timestamp. Passing epoch time as timestamp.".into());
                0
            }
        };
        walk.files.push(WalkedFile {
            entry: Listed {
                name,
                size: meta.len(),
                modified,
            },
            path,
            through_symlink,
        });
    }
}

/// What identifies a directory, to detect a symlink loop: device and inode on Unix; elsewhere
/// the canonical path.
#[cfg(unix)]
type DirId = (u64, u64);
#[cfg(not(unix))]
type DirId = PathBuf;

#[cfg(unix)]
fn dir_id(meta: &Metadata, _path: &Path) -> DirId {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn dir_id(_meta: &Metadata, path: &Path) -> DirId {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A FIFO, socket or device (aws-cli skips these).
#[cfg(unix)]
fn is_special(meta: &Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let file_type = meta.file_type();
    file_type.is_fifo()
        || file_type.is_socket()
        || file_type.is_char_device()
        || file_type.is_block_device()
}

#[cfg(not(unix))]
fn is_special(meta: &Metadata) -> bool {
    !meta.is_file() && !meta.is_dir()
}

/// Whether writing `relative` below `root` would pass through a symlink that exists now (a
/// download must not write outside the destination through a symlinked directory). The final
/// component may be a symlink: the download replaces it, never writes through it.
pub(crate) fn passes_through_symlink(root: &Path, relative: &str) -> bool {
    let mut path = root.to_path_buf();
    let segments: Vec<&str> = relative.split('/').collect();
    for segment in &segments[..segments.len().saturating_sub(1)] {
        path.push(segment);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

// The walk's cases build symlinks and non-UTF-8 names: Unix only.
#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn names(walk: &Walk) -> Vec<&str> {
        walk.files.iter().map(|f| f.entry.name.as_str()).collect()
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (path, body) in [
            (".hf", "h"),
            (".hidden/h", "h"),
            ("a-b.txt", "ab"),
            ("a.txt", "a"),
            ("noext", "n"),
            ("sub-z", "z"),
            ("sub/c.json", "{}"),
            ("sub/deep/d.bin", "d"),
        ] {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        dir
    }

    #[test]
    fn byte_order_like_aws_cli() {
        let dir = tree();
        let walk = walk(dir.path(), true);
        assert_eq!(
            names(&walk),
            [
                ".hf",
                ".hidden/h",
                "a-b.txt",
                "a.txt",
                "noext",
                "sub-z",
                "sub/c.json",
                "sub/deep/d.bin"
            ]
        );
        assert!(walk.warnings.is_empty() && walk.incomplete.0.is_empty());
        assert_eq!(walk.files[2].entry.size, 2);
    }

    #[test]
    fn symlinks_followed_or_skipped_silently() {
        let dir = tree();
        let root = dir.path();
        symlink(root.join("sub"), root.join("linkdir")).unwrap();
        symlink(root.join("a.txt"), root.join("linkfile")).unwrap();
        symlink(root.join("nowhere"), root.join("broken")).unwrap();

        let followed = walk(root, true);
        assert!(names(&followed).contains(&"linkdir/deep/d.bin"));
        assert!(names(&followed).contains(&"linkfile"));
        let through: Vec<_> = followed
            .files
            .iter()
            .filter(|f| f.through_symlink)
            .map(|f| f.entry.name.as_str())
            .collect();
        assert_eq!(through, ["linkdir/c.json", "linkdir/deep/d.bin"]);
        assert_eq!(
            followed.warnings,
            [format!(
                "Skipping file {}/broken. File does not exist.",
                root.display()
            )]
        );

        let skipped = walk(root, false);
        assert!(!names(&skipped).iter().any(|n| n.starts_with("link")));
        assert!(skipped.warnings.is_empty(), "{:?}", skipped.warnings);
    }

    #[test]
    fn symlink_loops_are_detected() {
        let dir = tree();
        let root = dir.path();
        symlink("..", root.join("sub/loop")).unwrap();
        let walk = walk(root, true);
        assert!(!names(&walk).iter().any(|n| n.contains("loop")));
        assert_eq!(walk.warnings.len(), 1);
        assert!(walk.warnings[0].contains("sub/loop. Symbolic link loop"));
    }

    #[test]
    fn special_files_and_bad_roots() {
        let dir = tree();
        let root = dir.path();
        let fifo = root.join("fifo");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status();
        if status.is_ok_and(|s| s.success()) {
            let walk = walk(root, true);
            assert_eq!(
                walk.warnings,
                [format!(
                    "Skipping file {}. File is character special device, block special device, FIFO, or socket.",
                    fifo.display()
                )]
            );
        }
        let file_root = walk(&root.join("a.txt"), true);
        assert!(file_root.files.is_empty());
        assert_eq!(
            file_root.warnings,
            [format!(
                "Skipping file {}/a.txt/. File does not exist.",
                root.display()
            )]
        );
        assert!(file_root.incomplete.covers("anything"));

        let link_root = root.join("rootlink");
        symlink(root.join("sub"), &link_root).unwrap();
        let unfollowed = walk(&link_root, false);
        assert!(unfollowed.files.is_empty() && unfollowed.incomplete.covers("c.json"));
        assert!(walk(&root.join("missing"), true).files.is_empty());
    }

    #[test]
    fn non_utf8_names_are_skipped() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tree();
        let bad = dir.path().join(std::ffi::OsStr::from_bytes(b"bad\xffname"));
        if std::fs::write(&bad, "x").is_err() {
            return; // the filesystem refuses non-UTF-8 names
        }
        let walk = walk(dir.path(), true);
        assert!(
            walk.warnings
                .iter()
                .any(|w| w.ends_with("File name is not valid UTF-8."))
        );
        assert_eq!(walk.files.len(), 8);
    }

    #[test]
    fn unknown_directories() {
        let walk = Walk {
            incomplete: Unlisted(vec!["sub".into()]),
            ..Walk::default()
        };
        assert!(walk.incomplete.covers("sub/a"));
        assert!(!walk.incomplete.covers("sub-z"));
        assert!(!walk.incomplete.covers("sub"));
    }

    #[test]
    fn symlinked_parents_are_detected() {
        let dir = tree();
        let root = dir.path();
        symlink(root.join("sub"), root.join("linkdir")).unwrap();
        assert!(passes_through_symlink(root, "linkdir/x.txt"));
        assert!(!passes_through_symlink(root, "linkdir"));
        assert!(!passes_through_symlink(root, "sub/deep/new/x.txt"));
    }
}
