//! Naming things the way aws-cli does: which argument is S3, the roots filters are joined to,
//! how paths are shown, and which keys hoist refuses to download.
//!
//! Pure functions over strings and paths; no I/O except reading the working directory in the
//! caller.

use std::path::{Component, Path, PathBuf};

/// One side of a sync as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// `s3://bucket/prefix`: `prefix` is normalized to `""` or a string ending in `/`.
    S3 {
        bucket: String,
        prefix: String,
        /// aws-cli's filter root: `bucket/` + the key part as typed (`b/pre`, `b/pre/`, `b/`).
        filter_root: String,
    },
    Local {
        /// As typed.
        typed: String,
        /// `os.path.abspath`: absolute and lexically normalized, symlinks not resolved.
        absolute: PathBuf,
    },
}

impl Location {
    /// An argument is S3 iff it starts with the exact string `s3://` (aws-cli's rule).
    pub(crate) fn parse(argument: &str, cwd: &Path) -> Result<Location, String> {
        if let Some(rest) = argument.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("Invalid S3 URI `{argument}`: no bucket name"));
            }
            let prefix = if key.is_empty() || key.ends_with('/') {
                key.to_string()
            } else {
                format!("{key}/")
            };
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                prefix,
                filter_root: format!("{bucket}/{key}"),
            });
        }
        Ok(Location::Local {
            typed: argument.to_string(),
            absolute: absolute(Path::new(argument), cwd),
        })
    }

    /// The root `--exclude`/`--include` patterns are joined to.
    pub(crate) fn filter_root(&self) -> String {
        match self {
            Location::S3 { filter_root, .. } => filter_root.clone(),
            Location::Local { absolute, .. } => absolute.to_string_lossy().into_owned(),
        }
    }
}

/// Python's `os.path.abspath`: join to `cwd`, then drop `.` and empty segments and resolve `..`
/// lexically (`/..` stays `/`). Symlinks are not resolved.
pub(crate) fn absolute(path: &Path, cwd: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    let mut out = PathBuf::from("/");
    for component in joined.components() {
        match component {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
        }
    }
    out
}

/// aws-cli's `relative_path`: `os.path.join(os.path.relpath(dirname, cwd), basename)`, so a file
/// in the working directory shows as `./name` and one elsewhere as `../x/name`.
pub(crate) fn display_local(file: &Path, cwd: &Path) -> String {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = file.parent().unwrap_or(Path::new("/"));
    let dir: Vec<_> = dir.components().collect();
    let cwd: Vec<_> = cwd.components().collect();
    let common = dir.iter().zip(&cwd).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = Vec::new();
    for _ in common..cwd.len() {
        parts.push("..".into());
    }
    for component in &dir[common..] {
        parts.push(component.as_os_str().to_string_lossy().into_owned());
    }
    let relative = if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    };
    format!("{relative}/{name}")
}

/// `s3://bucket/key`, the raw key as aws-cli shows it.
pub(crate) fn display_s3(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

/// Why a listed key is not downloaded. hoist only writes a key whose relative name maps to
/// exactly one path below the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UnsafeKey {
    /// Zero-byte `dir/` keys: console "folders". Ignored silently, as aws-cli does.
    FolderMarker,
    /// A `dir/` key holding data: it cannot be a file (aws-cli fails on it).
    TrailingSlash,
    /// `..` that climbs out of the destination: aws-cli's own warning, with its wording.
    ParentReference { normalized: String },
    /// Any other name that does not map 1:1 to a relative path: a leading `/`, an empty, `.` or
    /// `..` segment, a backslash, a drive letter, a NUL byte.
    Unmappable { reason: &'static str },
}

impl UnsafeKey {
    /// The warning printed for a skipped key (`None`: skipped silently).
    pub(crate) fn warning(&self, url: &str) -> Option<String> {
        match self {
            UnsafeKey::FolderMarker => None,
            UnsafeKey::TrailingSlash => Some(format!(
                "Skipping file {url}. Key ends with \"/\" and holds data, so it cannot be written as a file."
            )),
            // aws-cli: `warning: Skipping file ../escape.txt. File references a parent directory.`
            UnsafeKey::ParentReference { normalized } => Some(format!(
                "Skipping file {normalized}. File references a parent directory."
            )),
            UnsafeKey::Unmappable { reason } => Some(format!(
                "Skipping file {url}. The key {reason}, so it does not name exactly one local file."
            )),
        }
    }
}

/// Checks a key's name relative to the source prefix before it is downloaded.
pub(crate) fn check_download_key(relative: &str, size: u64) -> Result<(), UnsafeKey> {
    if relative.is_empty() || relative.ends_with('/') {
        return Err(if size == 0 {
            UnsafeKey::FolderMarker
        } else {
            UnsafeKey::TrailingSlash
        });
    }
    // aws-cli's own check first, so its warning text is kept where it applies.
    let normalized = normpath(&format!("./{relative}"));
    if normalized == ".." || normalized.starts_with("../") {
        return Err(UnsafeKey::ParentReference { normalized });
    }
    let unmappable = |reason| Err(UnsafeKey::Unmappable { reason });
    if relative.starts_with('/') {
        return unmappable("starts with \"/\"");
    }
    if relative.contains('\\') {
        return unmappable("contains a backslash");
    }
    if relative.contains('\0') {
        return unmappable("contains a NUL byte");
    }
    // `C:/x` is an absolute path on Windows, so it is refused everywhere (a tree synced on
    // Linux may be copied to Windows). A colon elsewhere (`a:colon.txt`) is an ordinary name
    // on Unix, as aws-cli writes it; on Windows it would name an NTFS stream of `a`.
    let bytes = relative.as_bytes();
    if bytes.len() >= 3
        && bytes[0].is_ascii_alphabetic()
        && bytes[1] == b':'
        && matches!(bytes[2], b'/' | b'\\')
    {
        return unmappable("starts with a drive letter");
    }
    if cfg!(windows) && relative.contains(':') {
        return unmappable("contains a colon (an NTFS stream name on Windows)");
    }
    for segment in relative.split('/') {
        match segment {
            "" => return unmappable("has an empty segment (\"//\")"),
            "." | ".." => return unmappable("has a \".\" or \"..\" segment"),
            _ => {}
        }
    }
    Ok(())
}

/// Python's `posixpath.normpath` for relative paths.
fn normpath(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|last| *last != "..") {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    if out.is_empty() {
        ".".into()
    } else {
        out.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let cwd = Path::new("/work");
        let cases = [
            ("s3://b", "b", "", "b/"),
            ("s3://b/", "b", "", "b/"),
            ("s3://b/pre", "b", "pre/", "b/pre"),
            ("s3://b/pre/", "b", "pre/", "b/pre/"),
            ("s3://b/p//", "b", "p//", "b/p//"),
        ];
        for (input, bucket, prefix, root) in cases {
            assert_eq!(
                Location::parse(input, cwd).unwrap(),
                Location::S3 {
                    bucket: bucket.into(),
                    prefix: prefix.into(),
                    filter_root: root.into(),
                },
                "{input}"
            );
        }
        assert!(Location::parse("s3://", cwd).is_err());
        // Case-sensitive scheme: `S3://b` is a local directory, as in aws-cli.
        assert!(matches!(
            Location::parse("S3://b", cwd).unwrap(),
            Location::Local { .. }
        ));
        let local = Location::parse("./site//x/../y/", cwd).unwrap();
        assert_eq!(local.filter_root(), "/work/site/y");
    }

    #[test]
    fn abspath_is_lexical() {
        let cwd = Path::new("/a/b");
        let cases = [
            (".", "/a/b"),
            ("..", "/a"),
            ("../../../..", "/"),
            ("x/./y//", "/a/b/x/y"),
            ("/abs/../z", "/z"),
        ];
        for (input, want) in cases {
            assert_eq!(
                absolute(Path::new(input), cwd),
                PathBuf::from(want),
                "{input}"
            );
        }
    }

    #[test]
    fn local_display_is_relative_to_cwd() {
        let cases = [
            ("/tmp/r/t4/m.json", "/tmp/r/nb", "../t4/m.json"),
            ("/tmp/r/t4/m.json", "/", "tmp/r/t4/m.json"),
            ("/tmp/r/t4/m.json", "/tmp/r/t4", "./m.json"),
            ("/tmp/r/d1/dbl.txt", "/tmp/r", "d1/dbl.txt"),
            ("/tmp/r/site/a/b.html", "/tmp/r", "site/a/b.html"),
            ("/x/y.txt", "/tmp/r", "../../x/y.txt"),
        ];
        for (file, cwd, want) in cases {
            assert_eq!(
                display_local(Path::new(file), Path::new(cwd)),
                want,
                "{file} from {cwd}"
            );
        }
    }

    #[test]
    fn download_key_safety_table() {
        use UnsafeKey::*;
        let parent = |n: &str| {
            Err(ParentReference {
                normalized: n.into(),
            })
        };
        let cases: Vec<(&str, u64, Result<(), UnsafeKey>)> = vec![
            ("a.txt", 1, Ok(())),
            ("dir/sub/a.txt", 1, Ok(())),
            ("..hidden", 1, Ok(())),
            ("a/...", 1, Ok(())),
            ("dir/", 0, Err(FolderMarker)),
            ("", 0, Err(FolderMarker)),
            ("dir/", 5, Err(TrailingSlash)),
            ("../escape.txt", 1, parent("../escape.txt")),
            ("a/../../x", 1, parent("../x")),
            ("..", 1, parent("..")),
            (
                "x/../y.txt",
                1,
                Err(Unmappable {
                    reason: "has a \".\" or \"..\" segment",
                }),
            ),
            (
                "./a",
                1,
                Err(Unmappable {
                    reason: "has a \".\" or \"..\" segment",
                }),
            ),
            (
                "/dbl.txt",
                1,
                Err(Unmappable {
                    reason: "starts with \"/\"",
                }),
            ),
            // normpath('.//../x') is '../x': aws-cli's parent-directory warning applies.
            ("/../x", 1, parent("../x")),
            (
                "a//b",
                1,
                Err(Unmappable {
                    reason: "has an empty segment (\"//\")",
                }),
            ),
            (
                "a\\..\\b",
                1,
                Err(Unmappable {
                    reason: "contains a backslash",
                }),
            ),
            (
                "C:/x",
                1,
                Err(Unmappable {
                    reason: "starts with a drive letter",
                }),
            ),
            // A colon without a separator is an ordinary name off Windows.
            #[cfg(not(windows))]
            ("c:x", 1, Ok(())),
            #[cfg(not(windows))]
            ("a:colon.txt", 1, Ok(())),
            (
                "a\0b",
                1,
                Err(Unmappable {
                    reason: "contains a NUL byte",
                }),
            ),
        ];
        for (key, size, want) in cases {
            assert_eq!(check_download_key(key, size), want, "{key:?}");
        }
    }

    #[test]
    fn warnings_use_aws_cli_wording_where_it_has_one() {
        let skip = check_download_key("../escape.txt", 3).unwrap_err();
        assert_eq!(
            skip.warning("s3://b/pre/../escape.txt").unwrap(),
            "Skipping file ../escape.txt. File references a parent directory."
        );
        assert_eq!(UnsafeKey::FolderMarker.warning("s3://b/d/"), None);
    }
}
