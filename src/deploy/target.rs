//! Where a deploy goes: `s3://bucket[/prefix/]` or `file://PATH`, parsed once.

use std::path::PathBuf;

use crate::key::Prefix;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    S3 { bucket: String, prefix: Prefix },
    Local { path: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed target `{url}`: {reason} (expected s3://bucket[/prefix/] or file://PATH)")]
pub(crate) struct TargetError {
    pub(crate) url: String,
    pub(crate) reason: String,
}

impl Target {
    /// How the target is shown: `s3://bucket/prefix/`, or the local path.
    pub(crate) fn url(&self) -> String {
        match self {
            Target::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
            Target::Local { path } => path.display().to_string(),
        }
    }

    pub(crate) fn parse(url: &str) -> Result<Target, TargetError> {
        let fail = |reason: &str| TargetError {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
            validate_bucket(bucket).map_err(|reason| fail(&reason))?;
            let prefix = Prefix::new(path).map_err(|e| fail(&format!("invalid prefix: {e}")))?;
            return Ok(Target::S3 {
                bucket: bucket.to_string(),
                prefix,
            });
        }
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err(fail("empty path"));
            }
            return Ok(Target::Local {
                path: PathBuf::from(path),
            });
        }
        Err(fail("unknown scheme"))
    }
}

/// S3's bucket naming rules, loosened to what S3-compatible stores also accept (upper case
/// and `_`), so the error comes before any request.
pub(crate) fn validate_bucket(bucket: &str) -> Result<(), String> {
    if bucket.is_empty() {
        return Err("no bucket name".into());
    }
    if bucket.len() < 3 || bucket.len() > 63 {
        return Err(format!("bucket name `{bucket}` must be 3 to 63 characters"));
    }
    if let Some(bad) = bucket
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!("bucket name `{bucket}` contains {bad:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        let cases: &[(&str, Target)] = &[
            (
                "s3://my-bucket",
                Target::S3 {
                    bucket: "my-bucket".into(),
                    prefix: Prefix::new("").unwrap(),
                },
            ),
            (
                "s3://my-bucket/",
                Target::S3 {
                    bucket: "my-bucket".into(),
                    prefix: Prefix::new("").unwrap(),
                },
            ),
            (
                "s3://my-bucket/site",
                Target::S3 {
                    bucket: "my-bucket".into(),
                    prefix: Prefix::new("site/").unwrap(),
                },
            ),
            (
                "s3://b.example/a/b/",
                Target::S3 {
                    bucket: "b.example".into(),
                    prefix: Prefix::new("a/b/").unwrap(),
                },
            ),
            (
                "file:///tmp/out",
                Target::Local {
                    path: "/tmp/out".into(),
                },
            ),
            ("file://out", Target::Local { path: "out".into() }),
        ];
        for (url, want) in cases {
            assert_eq!(&Target::parse(url).expect(url), want, "{url}");
        }
    }

    #[test]
    fn rejects_malformed_targets() {
        for url in [
            "my-bucket",
            "s3:/b",
            "s3://",
            "s3:///prefix",
            "s3://ab",
            "s3://bad bucket/x",
            "s3://b@d/x",
            "s3://bucket/a/../b",
            "http://bucket/x",
            "file://",
        ] {
            let err = Target::parse(url).expect_err(url);
            assert!(err.to_string().contains(url), "{err}");
        }
    }
}
