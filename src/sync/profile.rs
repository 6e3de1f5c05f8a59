//! The transfer settings aws-cli reads from the `s3 =` section of a profile in `~/.aws/config`
//! (`AWS_CONFIG_FILE` honoured): `max_concurrent_requests`, `multipart_threshold`,
//! `multipart_chunksize`, `max_bandwidth`, validated with aws-cli's rules and messages
//! (`transferconfig.py`, `utils.py:human_readable_to_bytes`).
//!
//! ```ini
//! [profile ci]
//! s3 =
//!   max_concurrent_requests = 20
//!   multipart_threshold = 64MB
//!   max_bandwidth = 50MB/s
//! ```

use crate::aws::profile::SharedFiles;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TransferConfig {
    /// `None` when the profile does not set it: hoist's default applies, not aws-cli's 10.
    pub(crate) max_concurrent_requests: Option<usize>,
    pub(crate) multipart_threshold: u64,
    pub(crate) multipart_chunksize: u64,
    /// Whether the profile set `multipart_threshold`: only then do S3→S3 copies go in parts
    /// below 5 GiB (by default one CopyObject copies up to S3's 5 GiB limit).
    pub(crate) threshold_set: bool,
    /// Bytes per second; `None` is unlimited.
    pub(crate) max_bandwidth: Option<u64>,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            max_concurrent_requests: None,
            multipart_threshold: 8 << 20,
            multipart_chunksize: 8 << 20,
            threshold_set: false,
            max_bandwidth: None,
        }
    }
}

/// Loads the settings of `profile`; a missing file or section gives the defaults.
pub(crate) fn load(files: &SharedFiles, profile: &str) -> Result<TransferConfig, String> {
    resolve(&files.s3_section(profile))
}

fn resolve(values: &[(String, String)]) -> Result<TransferConfig, String> {
    let mut config = TransferConfig::default();
    for (key, value) in values {
        match key.as_str() {
            "max_concurrent_requests" => {
                config.max_concurrent_requests =
                    Some(positive(key, value, python_int(value))? as usize);
            }
            "multipart_threshold" => {
                config.multipart_threshold = positive(key, value, Ok(size(value)?))?;
                config.threshold_set = true;
            }
            "multipart_chunksize" => {
                config.multipart_chunksize = positive(key, value, Ok(size(value)?))?;
            }
            "max_bandwidth" => {
                let Some(number) = value.strip_suffix("B/s") else {
                    return Err(format!(
                        "Invalid rate: {value}. The value must be expressed as a rate in terms of \
                         bytes per seconds (e.g. 10MB/s or 800KB/s)"
                    ));
                };
                // aws-cli strips only `/s` and parses the rest as a size (`10MB`).
                let bytes = size(&format!("{number}B"))?;
                config.max_bandwidth = Some(positive(key, value, Ok(bytes))?);
            }
            // max_queue_size, addressing_style, use_accelerate_endpoint, ...: not transfer sizes
            // hoist uses.
            _ => {}
        }
    }
    Ok(config)
}

fn positive(key: &str, value: &str, parsed: Result<i128, ()>) -> Result<u64, String> {
    match parsed {
        Ok(n) if n > 0 => u64::try_from(n).map_err(|_| format!("{key} is too large: {value}")),
        _ => Err(format!(
            "Value for {key} must be a positive integer: {value}"
        )),
    }
}

/// Python's `int(text)`: surrounding whitespace allowed, an optional sign, `_` between digits.
fn python_int(text: &str) -> Result<i128, ()> {
    let text = text.trim();
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return Err(());
    }
    text.replace('_', "").parse().map_err(|_| ())
}

/// aws-cli's `human_readable_to_bytes`: `kb|mb|gb|tb|kib|mib|gib|tib` (all 1024ⁿ, any case) or
/// a plain integer.
pub(crate) fn size(value: &str) -> Result<i128, String> {
    let lower = value.to_lowercase();
    let suffix_len = if lower.ends_with("ib") { 3 } else { 2 };
    let suffix = lower
        .char_indices()
        .rev()
        .nth(suffix_len - 1)
        .map_or("", |(i, _)| &lower[i..]);
    let multiplier: i128 = match suffix {
        "kb" | "kib" => 1 << 10,
        "mb" | "mib" => 1 << 20,
        "gb" | "gib" => 1 << 30,
        "tb" | "tib" => 1 << 40,
        _ => {
            return python_int(&lower).map_err(|()| format!("Invalid size value: {lower}"));
        }
    };
    let number = &lower[..lower.len() - suffix.len()];
    python_int(number)
        .map(|n| n * multiplier)
        .map_err(|()| format!("invalid literal for int() with base 10: '{number}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_aws_cli() {
        let cases: &[(&str, Result<i128, &str>)] = &[
            ("8388608", Ok(8 << 20)),
            ("8MB", Ok(8 << 20)),
            ("8MiB", Ok(8 << 20)),
            ("8 MB", Ok(8 << 20)),
            ("8mb", Ok(8 << 20)),
            ("1KB", Ok(1024)),
            ("2GiB", Ok(2 << 30)),
            ("1TB", Ok(1 << 40)),
            ("8M", Err("Invalid size value: 8m")),
            ("8b", Err("Invalid size value: 8b")),
            (
                "1.5MB",
                Err("invalid literal for int() with base 10: '1.5'"),
            ),
            ("", Err("Invalid size value: ")),
        ];
        for (input, want) in cases {
            assert_eq!(size(input), want.map_err(str::to_string), "{input:?}");
        }
    }

    const CONFIG: &str = "\
[default]
region = us-east-1
s3 =
  max_concurrent_requests = 20
  multipart_threshold = 64MB
output = json

[profile ci]
s3 =
    multipart_chunksize = 16MiB
    max_bandwidth = 10MB/s
[profile other]
s3 =
  max_concurrent_requests = 99
";

    #[test]
    fn nested_s3_section_of_the_profile() {
        assert_eq!(
            SharedFiles::from_text(CONFIG, "").s3_section("default"),
            [
                ("max_concurrent_requests".into(), "20".into()),
                ("multipart_threshold".into(), "64MB".into())
            ]
        );
        let ci = resolve(&SharedFiles::from_text(CONFIG, "").s3_section("ci")).unwrap();
        assert_eq!(
            ci,
            TransferConfig {
                multipart_chunksize: 16 << 20,
                max_bandwidth: Some(10 << 20),
                ..TransferConfig::default()
            }
        );
        assert_eq!(SharedFiles::from_text(CONFIG, "").s3_section("missing"), []);
        // `[ci]` without `profile ` is not the profile ci in ~/.aws/config.
        assert_eq!(
            SharedFiles::from_text("[ci]\ns3 =\n  max_bandwidth = 1MB/s\n", "").s3_section("ci"),
            []
        );
    }

    #[test]
    fn invalid_values_use_aws_cli_messages() {
        let check = |key: &str, value: &str, want: &str| {
            let error = resolve(&[(key.to_string(), value.to_string())]).unwrap_err();
            assert_eq!(error, want, "{key} = {value}");
        };
        check(
            "max_concurrent_requests",
            "0",
            "Value for max_concurrent_requests must be a positive integer: 0",
        );
        check(
            "max_concurrent_requests",
            "ten",
            "Value for max_concurrent_requests must be a positive integer: ten",
        );
        check(
            "max_bandwidth",
            "10MB",
            "Invalid rate: 10MB. The value must be expressed as a rate in terms of bytes per \
             seconds (e.g. 10MB/s or 800KB/s)",
        );
        check("multipart_threshold", "8M", "Invalid size value: 8m");
        assert_eq!(
            resolve(&[("max_bandwidth".into(), "800KB/s".into())])
                .unwrap()
                .max_bandwidth,
            Some(800 << 10)
        );
    }
}
