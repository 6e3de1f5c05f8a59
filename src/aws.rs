//! AWS SDK setup shared by S3 and CloudFront: the standard credential and region chain
//! (environment, shared config and credentials files with profiles, SSO, web identity, instance
//! metadata), retries from `AWS_MAX_ATTEMPTS`/`AWS_RETRY_MODE`/the profile, and timeouts so a
//! stalled or unreachable endpoint fails a run instead of hanging it.
//!
//! Clients are built from `aws_config` with the latest behaviour version: clients built from a
//! bare `Config::builder()` had no retries before BehaviorVersion 2026-01-12 (S3-PITFALLS.md).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use aws_config::meta::region::RegionProviderChain;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// How to reach AWS (or an S3-compatible store), as resolved from flags and config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsOptions {
    pub region: Option<String>,
    pub profile: Option<String>,
    /// S3 endpoint override; `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` apply when unset.
    pub endpoint_url: Option<String>,
    /// `Some(true)` forces path-style addressing; `None` picks it for IP and localhost endpoints.
    pub path_style: Option<bool>,
    pub timeouts: Timeouts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// Longest wait for response bytes; a stalled server fails the attempt, which is retried.
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(60),
        }
    }
}

/// Loads the shared SDK configuration. Sends no request: credentials resolve lazily.
pub async fn load(options: &AwsOptions) -> SdkConfig {
    let region = RegionProviderChain::first_try(options.region.clone().map(Region::new))
        .or_default_provider()
        .or_else(Region::from_static("us-east-1"));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(options.timeouts.connect)
                .read_timeout(options.timeouts.read)
                .build(),
        );
    if let Some(profile) = &options.profile {
        loader = loader.profile_name(profile);
    }
    loader.load().await
}

/// Whether an endpoint names a host that cannot take virtual-hosted bucket names.
pub fn wants_path_style(endpoint: &str) -> bool {
    let rest = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        return v6.contains(']');
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host)
    };
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<std::net::Ipv4Addr>().is_ok()
}

/// Requests and attempts of every S3 client in this process, to report how much was retried.
/// Process-wide because a run has one S3 configuration and the report is the process's.
#[derive(Debug, Default)]
pub struct RequestStats {
    operations: AtomicU64,
    attempts: AtomicU64,
}

impl RequestStats {
    /// Attempts beyond the first of each operation.
    pub fn retries(&self) -> u64 {
        self.attempts
            .load(Ordering::Relaxed)
            .saturating_sub(self.operations.load(Ordering::Relaxed))
    }
}

pub static REQUEST_STATS: RequestStats = RequestStats {
    operations: AtomicU64::new(0),
    attempts: AtomicU64::new(0),
};

#[derive(Debug)]
struct CountAttempts;

impl Intercept for CountAttempts {
    fn name(&self) -> &'static str {
        "CountAttempts"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        REQUEST_STATS.operations.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        REQUEST_STATS.attempts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

pub fn s3_client(sdk: &SdkConfig, options: &AwsOptions) -> aws_sdk_s3::Client {
    let mut builder = aws_sdk_s3::config::Builder::from(sdk).interceptor(CountAttempts);
    let endpoint = options
        .endpoint_url
        .clone()
        .or_else(|| sdk.endpoint_url().map(str::to_string));
    if let Some(url) = &options.endpoint_url {
        builder = builder.endpoint_url(url);
    }
    let path_style = options
        .path_style
        .unwrap_or_else(|| endpoint.as_deref().is_some_and(wants_path_style));
    builder = builder.force_path_style(path_style);
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// The endpoint shown in messages: the override, or the AWS default.
pub fn endpoint_label(sdk: &SdkConfig, options: &AwsOptions) -> String {
    options
        .endpoint_url
        .clone()
        .or_else(|| sdk.endpoint_url().map(str::to_string))
        .unwrap_or_else(|| {
            format!(
                "Amazon S3 ({})",
                sdk.region().map_or("us-east-1", |r| r.as_ref())
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_style_detection() {
        let cases = [
            ("http://127.0.0.1:9000", true),
            ("http://localhost:4566", true),
            ("http://minio.localhost", true),
            ("http://[::1]:9000", true),
            ("https://s3.example.com", false),
            ("https://10.0.0.5", true),
            ("https://bucket.s3.amazonaws.com/", false),
        ];
        for (endpoint, want) in cases {
            assert_eq!(wants_path_style(endpoint), want, "{endpoint}");
        }
    }
}
