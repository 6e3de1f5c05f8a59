//! AWS SDK setup shared by `deploy` and `sync`: the standard credential and region chain
//! (environment, shared config and credentials files with profiles, SSO, web identity, instance
//! metadata), retries from `AWS_MAX_ATTEMPTS`/`AWS_RETRY_MODE`/the profile, and timeouts so a
//! stalled or unreachable endpoint fails a run instead of hanging it.
//!
//! This module and `store/` are the only places that name SDK types. A [`Session`] is the loaded
//! configuration; it opens the one kind of [`S3Store`] both commands use
//! ([`Session::s3_store`]) and the CloudFront client ([`cloudfront::CloudFront`]).
//!
//! Clients are built from `aws_config` with the latest behaviour version: clients built from a
//! bare `Config::builder()` had no retries before BehaviorVersion 2026-01-12
//! (`docs/s3-facts.md`).

pub(crate) mod cloudfront;
pub(crate) mod probe;
pub(crate) mod profile;
pub(crate) mod window;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use aws_config::default_provider::region::DefaultRegionChain;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::retry::RetryConfig;
use aws_types::sdk_config::{RequestChecksumCalculation, ResponseChecksumValidation};

use crate::interrupt::Interrupt;
use crate::key::Prefix;
use crate::store::s3::{ChecksumKind, Integrity, Multipart, RequestOptions, S3Store};
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use profile::{SharedFiles, profile_name};

/// How to reach AWS (or an S3-compatible store), as resolved from flags and config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AwsOptions {
    pub(crate) region: Option<String>,
    pub(crate) profile: Option<String>,
    /// S3 endpoint override; `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` apply when unset.
    pub(crate) endpoint_url: Option<String>,
    /// `Some(true)` forces path-style addressing; `None` picks it for IP and localhost endpoints.
    pub(crate) path_style: Option<bool>,
    pub(crate) timeouts: Timeouts,
    /// `--request-payer requester`: `x-amz-request-payer` on every S3 request.
    pub(crate) request_payer: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    /// Longest wait for response bytes; a stalled server fails the attempt, which is retried.
    pub(crate) read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            read: Duration::from_mins(1),
        }
    }
}

/// A loaded SDK configuration and the options it was loaded with.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    sdk: SdkConfig,
    options: AwsOptions,
}

/// How an [`S3Store`] transfers: the multipart sizes, the parts in flight, and whether a
/// multipart upload must learn the ETag listings show (deploy's manifest keeps it; sync does
/// not).
#[derive(Debug, Clone)]
pub(crate) struct StoreOptions {
    pub(crate) multipart: Multipart,
    pub(crate) concurrency: usize,
    pub(crate) listed_etags: bool,
    /// MaxKeys of each listing page (`None`: the server's default, 1000 on S3).
    pub(crate) page_size: Option<i32>,
    /// `sync`'s customer keys, grants and checksum choices.
    pub(crate) requests: RequestOptions,
}

impl Session {
    /// Loads the shared SDK configuration. Sends no request: credentials resolve lazily.
    pub(crate) async fn load(options: &AwsOptions) -> Session {
        Session {
            sdk: load(options).await,
            options: options.clone(),
        }
    }

    /// The S3 store of `bucket`/`prefix`: path style for local endpoints, CRC32 checksums or,
    /// where the user asked for checksums only when required, Content-MD5.
    pub(crate) fn s3_store(
        &self,
        bucket: &str,
        prefix: Prefix,
        options: StoreOptions,
        interrupt: &Interrupt,
    ) -> S3Store {
        let integrity = match self.sdk.request_checksum_calculation() {
            Some(RequestChecksumCalculation::WhenRequired) => Integrity::Md5,
            _ => Integrity::Checksum(ChecksumKind::Crc32),
        };
        let store = S3Store::new(
            s3_client(&self.sdk, &self.options, options.concurrency),
            bucket,
            prefix,
            endpoint_label(&self.sdk, &self.options),
        )
        .with_integrity(integrity)
        .with_requests(options.requests)
        .with_page_size(options.page_size)
        .with_multipart(options.multipart, options.concurrency)
        .with_interrupt(interrupt.clone());
        if options.listed_etags {
            store
        } else {
            store.without_listed_etags()
        }
    }

    /// The CloudFront client, signed for us-east-1 (a global service).
    pub(crate) fn cloudfront(&self, endpoint_url: Option<&str>) -> cloudfront::CloudFront {
        cloudfront::CloudFront::new(&self.sdk, endpoint_url)
    }
}

/// Attempts per S3 or CloudFront request when the user set none: the SDK's standard mode
/// makes 3, which a flaky network or a throttling store exhausts (rclone makes 10 low-level
/// retries, s5cmd 10).
pub(crate) const DEFAULT_MAX_ATTEMPTS: u32 = 10;
/// The backoff of those attempts: exponential from 0.5 s, capped at 4 s, with full jitter, so
/// all ten wait at most 27.5 s in all and a dead endpoint fails a run in bounded time (the
/// SDK's 1 s to 20 s would wait up to 111 s a request).
const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(4);

async fn load(options: &AwsOptions) -> SdkConfig {
    let files = SharedFiles::load();
    let mut region = DefaultRegionChain::builder();
    if let Some(profile) = &options.profile {
        region = region.profile_name(profile);
    }
    let region = RegionProviderChain::first_try(options.region.clone().map(Region::new))
        .or_else(region.build())
        .or_else(Region::from_static("us-east-1"));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(options.timeouts.connect)
                .read_timeout(options.timeouts.read)
                .build(),
        );
    if let Some(retry) = default_retry_config(&files, options.profile.as_deref()) {
        loader = loader.retry_config(retry);
    }
    // Stores that reject the SDK's default checksum headers get checksums only when required
    // (hoist then sends Content-MD5), unless the user chose a mode.
    let profile = profile_name(options.profile.as_deref());
    let chosen = |variable: &str, key: &str| {
        std::env::var(variable).is_ok_and(|v| !v.is_empty()) || files.value(&profile, key).is_some()
    };
    if probe::store_kind(probe::endpoint_in_effect(options).as_deref()).checksums_when_required {
        if !chosen(
            "AWS_REQUEST_CHECKSUM_CALCULATION",
            "request_checksum_calculation",
        ) {
            loader = loader.request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
        }
        if !chosen(
            "AWS_RESPONSE_CHECKSUM_VALIDATION",
            "response_checksum_validation",
        ) {
            loader = loader.response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
    }
    if let Some(profile) = &options.profile {
        // An explicit profile replaces the environment's keys, as in aws-cli (botocore drops
        // its environment provider when `--profile` is given). AWS_PROFILE does not: there the
        // environment's keys still win, in both tools.
        let credentials = ProfileFileCredentialsProvider::builder()
            .profile_name(profile)
            .build();
        loader = loader
            .profile_name(profile)
            .credentials_provider(credentials);
    }
    loader.load().await
}

/// hoist's retry configuration, unless the user chose the number of attempts
/// (`AWS_MAX_ATTEMPTS`, or `max_attempts` in the profile in effect): standard mode (or the
/// `AWS_RETRY_MODE` / `retry_mode` the user asked for) with [`DEFAULT_MAX_ATTEMPTS`].
fn default_retry_config(files: &SharedFiles, flag: Option<&str>) -> Option<RetryConfig> {
    let profile = profile_name(flag);
    let setting = |variable: &str, key: &str| {
        std::env::var(variable)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| files.value(&profile, key))
    };
    if setting("AWS_MAX_ATTEMPTS", "max_attempts").is_some() {
        return None;
    }
    let retry = match setting("AWS_RETRY_MODE", "retry_mode").as_deref() {
        Some("adaptive") => RetryConfig::adaptive(),
        _ => RetryConfig::standard(),
    };
    Some(
        retry
            .with_max_attempts(DEFAULT_MAX_ATTEMPTS)
            .with_initial_backoff(INITIAL_BACKOFF)
            .with_max_backoff(MAX_BACKOFF),
    )
}

/// A profile named with `--profile`, `profile:` or `AWS_PROFILE` that neither shared file
/// defines.
#[derive(Debug, thiserror::Error)]
#[error("The config profile ({name}) could not be found")]
pub(crate) struct ProfileNotFound {
    pub(crate) name: String,
    /// The profiles the files do define, for the hint.
    pub(crate) known: Vec<String>,
}

impl ProfileNotFound {
    pub(crate) fn hint(&self) -> String {
        if self.known.is_empty() {
            "no profiles are defined in ~/.aws/config or ~/.aws/credentials \
             (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE)"
                .to_string()
        } else {
            format!("the profiles found are: {}", self.known.join(", "))
        }
    }
}

/// Checks, before any request, that the profile in effect exists (aws-cli refuses a missing
/// one, from `--profile` or `AWS_PROFILE`, with exit 255). The implicit `default` may be absent.
pub(crate) fn check_profile(flag: Option<&str>) -> Result<(), ProfileNotFound> {
    let name = profile_name(flag);
    if name == "default" && flag.is_none() {
        return Ok(());
    }
    let files = SharedFiles::load();
    if files.has_profile(&name) {
        return Ok(());
    }
    Err(ProfileNotFound {
        name,
        known: files.profiles(),
    })
}

/// An environment variable hoist reads that holds no valid value.
#[derive(Debug, thiserror::Error)]
#[error("{name}={value}: expected a number of seconds")]
pub(crate) struct EnvError {
    pub(crate) name: &'static str,
    pub(crate) value: String,
}

impl Timeouts {
    /// Defaults, overridable with `HOIST_CONNECT_TIMEOUT` and `HOIST_READ_TIMEOUT` (seconds).
    pub(crate) fn from_env() -> Result<Timeouts, EnvError> {
        let mut timeouts = Timeouts::default();
        for (name, slot) in [
            ("HOIST_CONNECT_TIMEOUT", &mut timeouts.connect),
            ("HOIST_READ_TIMEOUT", &mut timeouts.read),
        ] {
            if let Ok(value) = std::env::var(name) {
                let seconds: f64 = value
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or(EnvError { name, value })?;
                *slot = Duration::from_secs_f64(seconds);
            }
        }
        Ok(timeouts)
    }
}

/// `--expires` and the like: RFC 3339 (`2030-01-01T00:00:00Z`), an HTTP date, or epoch
/// seconds, as the HTTP date S3 stores; `None` when the text is none of these.
pub(crate) fn http_date(text: &str) -> Option<String> {
    use aws_smithy_types::DateTime;
    use aws_smithy_types::date_time::Format;
    let parsed = DateTime::from_str(text, Format::DateTime)
        .or_else(|_| DateTime::from_str(text, Format::HttpDate))
        .ok()
        .or_else(|| {
            text.trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite())
                .map(DateTime::from_secs_f64)
        })?;
    parsed.fmt(Format::HttpDate).ok()
}

/// Whether an endpoint names a host that cannot take virtual-hosted bucket names.
pub(crate) fn wants_path_style(endpoint: &str) -> bool {
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
pub(crate) struct RequestStats {
    operations: AtomicU64,
    attempts: AtomicU64,
}

impl RequestStats {
    /// Attempts beyond the first of each operation.
    pub(crate) fn retries(&self) -> u64 {
        self.attempts
            .load(Ordering::Relaxed)
            .saturating_sub(self.operations.load(Ordering::Relaxed))
    }
}

pub(crate) static REQUEST_STATS: RequestStats = RequestStats {
    operations: AtomicU64::new(0),
    attempts: AtomicU64::new(0),
};

/// Adds `x-amz-request-payer: requester` to every request, listings included, before it is
/// signed (as aws-cli's `--request-payer requester` does).
#[derive(Debug)]
struct RequesterPays;

impl Intercept for RequesterPays {
    fn name(&self) -> &'static str {
        "RequesterPays"
    }

    fn modify_before_signing(
        &self,
        context: &mut aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context
            .request_mut()
            .headers_mut()
            .insert("x-amz-request-payer", "requester");
        Ok(())
    }
}

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

/// The S3 client of a session: its attempts counted ([`REQUEST_STATS`]) and windowed to at
/// most `concurrency` in flight ([`window`]).
fn s3_client(sdk: &SdkConfig, options: &AwsOptions, concurrency: usize) -> aws_sdk_s3::Client {
    let mut builder = aws_sdk_s3::config::Builder::from(sdk)
        .interceptor(CountAttempts)
        .http_client(window::WindowedClient::new(concurrency));
    if options.request_payer {
        builder = builder.interceptor(RequesterPays);
    }
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
fn endpoint_label(sdk: &SdkConfig, options: &AwsOptions) -> String {
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
    fn retries_default_to_ten_attempts_unless_the_user_chose() {
        if std::env::var_os("AWS_MAX_ATTEMPTS").is_some() {
            return; // the user's choice wins; nothing to check here
        }
        let none = SharedFiles::from_text("[default]\n", "");
        let retry = default_retry_config(&none, None).expect("hoist's default");
        assert_eq!(retry.max_attempts(), DEFAULT_MAX_ATTEMPTS);
        let chosen = SharedFiles::from_text("[profile ci]\nmax_attempts = 4\n", "");
        assert!(default_retry_config(&chosen, Some("ci")).is_none());
        assert!(default_retry_config(&chosen, Some("other")).is_some());
    }

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
