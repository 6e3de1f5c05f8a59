//! The read-only probes of `hoist doctor`: whose credentials these are (STS
//! GetCallerIdentity), what kind of store an endpoint is, and what an anonymous reader gets.

use aws_config::BehaviorVersion;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use super::{AwsOptions, Session, s3_client};

/// Whose credentials a run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) arn: String,
    pub(crate) account: Option<String>,
}

/// What an unsigned GET of an object answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AnonymousRead {
    /// 200: anyone can read it.
    Readable,
    /// 403: anonymous readers are refused.
    Denied,
    /// 404 to an anonymous reader: the bucket lets anyone read (or list), so the object would
    /// be readable once it exists.
    Missing,
    Failed(String),
}

/// A store, as its endpoint names it, and whether it needs checksums only when required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoreKind {
    pub(crate) name: &'static str,
    /// Rejects the SDK's default checksum headers (R2, B2, GCS): hoist then sends Content-MD5.
    pub(crate) checksums_when_required: bool,
}

/// The kind of store an endpoint URL names (`None`: AWS).
pub(crate) fn store_kind(endpoint: Option<&str>) -> StoreKind {
    let host = endpoint
        .map(|url| {
            let rest = url.split("://").nth(1).unwrap_or(url);
            rest.split(['/', ':'])
                .next()
                .unwrap_or("")
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let kind = |name, checksums_when_required| StoreKind {
        name,
        checksums_when_required,
    };
    if host.is_empty() || host.ends_with(".amazonaws.com") {
        kind("Amazon S3", false)
    } else if host.ends_with(".r2.cloudflarestorage.com") {
        kind("Cloudflare R2", true)
    } else if host.ends_with(".backblazeb2.com") {
        kind("Backblaze B2", true)
    } else if host == "storage.googleapis.com" {
        kind("Google Cloud Storage", true)
    } else if host == "localhost" || host.starts_with("127.") || host == "[::1]" {
        kind("an S3-compatible server on this machine", false)
    } else {
        kind("an S3-compatible store", false)
    }
}

/// The kind of store the endpoint and a response's headers name: the headers tell apart what
/// an endpoint cannot (MinIO and Ceph behind any host name).
pub(crate) fn store_kind_from(endpoint: Option<&str>, headers: &[(String, String)]) -> StoreKind {
    let by_endpoint = store_kind(endpoint);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let has_prefix = |prefix: &str| headers.iter().any(|(n, _)| n.starts_with(prefix));
    let server = header("server").unwrap_or("").to_ascii_lowercase();
    let kind = |name, checksums_when_required| StoreKind {
        name,
        checksums_when_required,
    };
    if server.contains("minio") {
        kind("MinIO", false)
    } else if server.contains("ceph") || has_prefix("x-rgw-") {
        kind("Ceph RGW", false)
    } else if server.contains("cloudflare") || header("cf-ray").is_some() {
        kind("Cloudflare R2", true)
    } else if header("x-guploader-uploadid").is_some() || server.contains("uploadserver") {
        kind("Google Cloud Storage", true)
    } else if server == "amazons3" {
        kind("Amazon S3", false)
    } else {
        by_endpoint
    }
}

/// The S3 endpoint in effect: the option, else `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`.
pub(crate) fn endpoint_in_effect(options: &AwsOptions) -> Option<String> {
    options.endpoint_url.clone().or_else(|| {
        ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
            .iter()
            .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    })
}

impl Session {
    /// STS GetCallerIdentity, at the S3 endpoint when one is set (moto serves both).
    pub(crate) async fn caller_identity(&self) -> Result<Identity, String> {
        let mut builder = aws_sdk_sts::config::Builder::from(&self.sdk);
        if let Some(url) = &self.options.endpoint_url {
            builder = builder.endpoint_url(url);
        }
        let client = aws_sdk_sts::Client::from_conf(builder.build());
        match client.get_caller_identity().send().await {
            Ok(out) => Ok(Identity {
                arn: out.arn().unwrap_or("an unnamed principal").to_string(),
                account: out.account().map(str::to_string),
            }),
            Err(error) => Err(describe(&error)),
        }
    }

    /// An unsigned GET of `key` in `bucket`, as a visitor's browser would send it.
    pub(crate) async fn anonymous_get(&self, bucket: &str, key: &str) -> AnonymousRead {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).no_credentials();
        if let Some(region) = self.sdk.region() {
            loader = loader.region(region.clone());
        }
        let anonymous = loader.load().await;
        let client = s3_client(&anonymous, &self.options, 1);
        match client.get_object().bucket(bucket).key(key).send().await {
            Ok(_) => AnonymousRead::Readable,
            Err(SdkError::ServiceError(service)) => match service.raw().status().as_u16() {
                403 => AnonymousRead::Denied,
                404 => AnonymousRead::Missing,
                status => AnonymousRead::Failed(format!(
                    "{status} {}",
                    service.err().code().unwrap_or("error")
                )),
            },
            Err(error) => AnonymousRead::Failed(describe(&error)),
        }
    }
}

fn describe<E: ProvideErrorMetadata + std::error::Error + 'static>(error: &SdkError<E>) -> String {
    match error {
        SdkError::ServiceError(service) => format!(
            "{}{}",
            service.err().code().unwrap_or("error"),
            service
                .err()
                .message()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        ),
        other => crate::error::ErrorChain(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_are_told_apart_by_response_headers() {
        let headers = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        let on = Some("https://storage.example.com");
        assert_eq!(
            store_kind_from(on, &headers(&[("server", "MinIO")])).name,
            "MinIO"
        );
        assert_eq!(
            store_kind_from(on, &headers(&[("x-rgw-object-type", "Normal")])).name,
            "Ceph RGW"
        );
        assert!(store_kind_from(on, &headers(&[("cf-ray", "8f1")])).checksums_when_required);
        assert_eq!(
            store_kind_from(None, &headers(&[("server", "AmazonS3")])).name,
            "Amazon S3"
        );
        assert_eq!(store_kind_from(on, &[]).name, "an S3-compatible store");
    }

    #[test]
    fn stores_are_told_apart_by_endpoint() {
        let name = |url: Option<&str>| store_kind(url).name;
        assert_eq!(name(None), "Amazon S3");
        assert_eq!(
            name(Some("https://s3.eu-west-1.amazonaws.com")),
            "Amazon S3"
        );
        let r2 = store_kind(Some("https://abc123.r2.cloudflarestorage.com"));
        assert_eq!(
            (r2.name, r2.checksums_when_required),
            ("Cloudflare R2", true)
        );
        assert!(store_kind(Some("https://s3.us-west-004.backblazeb2.com")).checksums_when_required);
        assert!(store_kind(Some("https://storage.googleapis.com")).checksums_when_required);
        assert_eq!(
            name(Some("http://127.0.0.1:9000")),
            "an S3-compatible server on this machine"
        );
        assert!(!store_kind(Some("https://minio.example.com")).checksums_when_required);
    }
}
