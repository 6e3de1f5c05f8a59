//! The shared AWS config and credentials files, read the way aws-cli reads them: which
//! profiles exist, and a profile's top-level settings (`max_attempts`, `retry_mode`) and its
//! nested `s3 =` section (sync's transfer settings).
//!
//! `AWS_CONFIG_FILE` and `AWS_SHARED_CREDENTIALS_FILE` are honoured. In the config file a
//! profile is `[profile NAME]` (or `[default]`); in the credentials file it is `[NAME]`.

use std::path::PathBuf;

/// The config file aws-cli reads: `AWS_CONFIG_FILE`, else `~/.aws/config`.
fn config_path() -> Option<PathBuf> {
    env_path("AWS_CONFIG_FILE", "config")
}

/// The credentials file: `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`.
fn credentials_path() -> Option<PathBuf> {
    env_path("AWS_SHARED_CREDENTIALS_FILE", "credentials")
}

fn env_path(variable: &str, file: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(variable) {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".aws").join(file))
}

/// The profile in effect: `--profile`, `AWS_PROFILE`, `AWS_DEFAULT_PROFILE`, or `default`.
pub(crate) fn profile_name(flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| std::env::var("AWS_PROFILE").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_PROFILE").ok())
        .unwrap_or_else(|| "default".to_string())
}

/// The text of both files (empty where a file is missing or unreadable).
#[derive(Debug, Default, Clone)]
pub(crate) struct SharedFiles {
    config: String,
    credentials: String,
}

impl SharedFiles {
    pub(crate) fn load() -> SharedFiles {
        let read = |path: Option<PathBuf>| {
            path.and_then(|path| std::fs::read_to_string(path).ok())
                .unwrap_or_default()
        };
        SharedFiles {
            config: read(config_path()),
            credentials: read(credentials_path()),
        }
    }

    #[cfg(test)]
    pub(crate) fn from_text(config: &str, credentials: &str) -> SharedFiles {
        SharedFiles {
            config: config.to_string(),
            credentials: credentials.to_string(),
        }
    }

    /// Every profile either file defines, sorted, each once.
    pub(crate) fn profiles(&self) -> Vec<String> {
        let mut names: Vec<String> = sections(&self.config)
            .filter_map(config_profile)
            .chain(sections(&self.credentials))
            .map(str::to_string)
            .collect();
        names.sort();
        names.dedup();
        names
    }

    pub(crate) fn has_profile(&self, name: &str) -> bool {
        self.profiles().iter().any(|p| p == name)
    }

    /// A top-level `key = value` of the profile's section in the config file.
    pub(crate) fn value(&self, profile: &str, key: &str) -> Option<String> {
        let mut in_profile = false;
        for line in self.config.lines() {
            let trimmed = line.trim();
            if let Some(section) = section_name(trimmed) {
                in_profile = config_profile(section).is_some_and(|name| name == profile);
                continue;
            }
            // Nested lines (`s3 =` sub-settings) are indented.
            if !in_profile || line.starts_with([' ', '\t']) {
                continue;
            }
            if let Some((name, value)) = trimmed.split_once('=')
                && name.trim() == key
            {
                return Some(value.trim().to_string());
            }
        }
        None
    }

    /// The `key = value` pairs nested under `s3 =` in the profile's section.
    pub(crate) fn s3_section(&self, profile: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut in_profile = false;
        let mut in_s3 = false;
        for raw in self.config.lines() {
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            if let Some(section) = section_name(trimmed) {
                in_profile = config_profile(section).is_some_and(|name| name == profile);
                in_s3 = false;
                continue;
            }
            if !in_profile {
                continue;
            }
            let indented = raw.starts_with([' ', '\t']);
            let Some((key, value)) = trimmed.split_once('=') else {
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            if indented && in_s3 {
                out.push((key.to_string(), value.to_string()));
            } else {
                in_s3 = key == "s3" && value.is_empty();
            }
        }
        out
    }
}

fn sections(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter_map(|line| section_name(line.trim()))
}

fn section_name(trimmed: &str) -> Option<&str> {
    trimmed
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .map(str::trim)
}

/// The profile a config-file section names: `[profile NAME]`, or `[default]`.
fn config_profile(section: &str) -> Option<&str> {
    match section.strip_prefix("profile ") {
        Some(name) => Some(name.trim()),
        None if section == "default" => Some("default"),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "[default]\nregion = us-east-1\n\n[profile prod]\nmax_attempts = 7\nretry_mode=adaptive\ns3 =\n  max_concurrent_requests = 20\n  multipart_threshold = 64MB\nregion = eu-west-1\n\n[sso-session corp]\nsso_region = us-east-1\n";
    const CREDENTIALS: &str = "[ci]\naws_access_key_id = A\n[prod]\naws_access_key_id = B\n";

    #[test]
    fn profiles_of_both_files() {
        let files = SharedFiles::from_text(CONFIG, CREDENTIALS);
        assert_eq!(files.profiles(), ["ci", "default", "prod"]);
        assert!(files.has_profile("ci"));
        assert!(
            !files.has_profile("corp"),
            "an sso-session is not a profile"
        );
        assert!(!files.has_profile("nosuch"));
    }

    #[test]
    fn top_level_values_skip_nested_ones() {
        let files = SharedFiles::from_text(CONFIG, "");
        assert_eq!(files.value("prod", "max_attempts").as_deref(), Some("7"));
        assert_eq!(
            files.value("prod", "retry_mode").as_deref(),
            Some("adaptive")
        );
        assert_eq!(files.value("prod", "region").as_deref(), Some("eu-west-1"));
        assert_eq!(files.value("prod", "max_concurrent_requests"), None);
        assert_eq!(files.value("default", "max_attempts"), None);
    }

    #[test]
    fn s3_section_is_the_nested_block() {
        let files = SharedFiles::from_text(CONFIG, "");
        assert_eq!(
            files.s3_section("prod"),
            [
                ("max_concurrent_requests".to_string(), "20".to_string()),
                ("multipart_threshold".to_string(), "64MB".to_string()),
            ]
        );
        assert!(files.s3_section("default").is_empty());
    }
}
