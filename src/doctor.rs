//! `hoist doctor`: checks, read-only, what a first deploy needs, and says what to fix.
//!
//! Each check is one [`Check`]: the config file, the source directory, the credentials and
//! whose they are, the bucket and its region, the kind of store (and the checksum mode it
//! needs), the CloudFront distribution's origin, and whether anonymous readers get
//! `.hoist/`. Requests: STS GetCallerIdentity, HeadBucket, one unsigned GetObject, and
//! GetDistribution when CloudFront is configured. Nothing is written.

use crate::aws::Session;
use crate::aws::probe::{self, AnonymousRead};
use crate::cli::{BuildArgs, ChangeArgs, DeployArgs, DoctorArgs, OutputFormat};
use crate::deploy::settings::DeploySettings;
use crate::deploy::target::Target;
use crate::error::ErrorChain;
use crate::report::{Printer, escape};
use crate::store;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Ok,
    /// Worth knowing; a deploy would still work.
    Warn,
    /// A deploy would fail (or publish something it should not).
    Fail,
}

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Check {
    pub(crate) name: &'static str,
    pub(crate) status: Status,
    pub(crate) detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) fix: Option<String>,
}

fn check(name: &'static str, status: Status, detail: String, fix: Option<&str>) -> Check {
    Check {
        name,
        status,
        detail,
        fix: fix.map(str::to_string),
    }
}

/// Runs every check and prints them; returns whether a deploy would work.
pub(crate) async fn run(args: &DoctorArgs) -> bool {
    let checks = checks(args).await;
    let ok = checks.iter().all(|c| c.status != Status::Fail);
    let printer = Printer::new(args.target.output, false);
    if args.target.output == OutputFormat::Json {
        let document = serde_json::json!({
            "schema": crate::deploy::REPORT_SCHEMA,
            "status": if ok { "ok" } else { "failed" },
            "checks": checks,
        });
        printer.data(&serde_json::to_string_pretty(&document).expect("checks serialize"));
    } else if args.target.output == OutputFormat::Markdown {
        printer.data(&markdown(&checks, ok));
    } else {
        for c in &checks {
            let mark = match c.status {
                Status::Ok => console::style("ok  ").green(),
                Status::Warn => console::style("warn").yellow(),
                Status::Fail => console::style("FAIL").red(),
            };
            printer.data(&format!("{mark}  {:<12} {}", c.name, c.detail));
            if let Some(fix) = &c.fix {
                printer.data(&format!("                    fix: {fix}"));
            }
        }
        printer.data(if ok {
            "a deploy would work"
        } else {
            "a deploy would not work: fix what FAIL says"
        });
    }
    ok
}

/// `hoist doctor --output markdown`: the checks as a table.
fn markdown(checks: &[Check], ok: bool) -> String {
    use crate::deploy::markdown::{cell, code};
    let mut out =
        String::from("### hoist doctor\n\n| check | status | detail | fix |\n|---|---|---|---|\n");
    for c in checks {
        let status = match c.status {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "**FAIL**",
        };
        out.push_str(&format!(
            "| {} | {status} | {} | {} |\n",
            code(c.name),
            cell(&c.detail),
            c.fix.as_deref().map_or(String::new(), cell)
        ));
    }
    out.push_str(if ok {
        "\nA deploy would work."
    } else {
        "\nA deploy would not work: fix what FAIL says."
    });
    out
}

async fn checks(args: &DoctorArgs) -> Vec<Check> {
    let mut checks = Vec::new();
    let settings = match DeploySettings::resolve_target(&DeployArgs {
        target: args.target.clone(),
        change: ChangeArgs::default(),
        build: BuildArgs::default(),
    }) {
        Ok(settings) => settings,
        Err(error) => {
            checks.push(check(
                "config",
                Status::Fail,
                ErrorChain(&error).to_string(),
                Some("`hoist init` writes one; `hoist schema` lets an editor check it"),
            ));
            return checks;
        }
    };
    let config = settings
        .config_path
        .as_ref()
        .map_or("no deploy.yaml (flags only)".to_string(), |p| {
            format!("`{}` is valid", p.display())
        });
    checks.push(check("config", Status::Ok, config, None));
    checks.push(source_check(&settings));
    let Target::S3 { bucket, prefix } = &settings.target else {
        checks.push(check(
            "target",
            Status::Ok,
            format!("a local directory, `{}`", settings.target.url()),
            None,
        ));
        return checks;
    };
    let session = Session::load(&settings.aws).await;
    checks.push(credentials_check(&session).await);
    let (bucket_ok, headers) = bucket_check(&session, &settings, bucket).await;
    checks.push(store_check(&settings, &headers));
    let reachable = bucket_ok.status != Status::Fail;
    checks.push(bucket_ok);
    if let Some(cloudfront) = &settings.cloudfront {
        checks.push(cloudfront_check(&session, cloudfront, bucket, prefix.as_str()).await);
    }
    // Whether anonymous readers get `.hoist/` means something only for a bucket that exists.
    if reachable {
        checks.push(state_check(&session, bucket, prefix.as_str()).await);
    }
    checks
}

fn source_check(settings: &DeploySettings) -> Check {
    let source = &settings.source;
    if source.as_os_str().is_empty() {
        return check(
            "source",
            Status::Warn,
            "no source directory set".into(),
            Some("set `source` in deploy.yaml (what the build writes)"),
        );
    }
    if source.is_dir() {
        check(
            "source",
            Status::Ok,
            format!("`{}` exists", source.display()),
            None,
        )
    } else {
        check(
            "source",
            Status::Warn,
            format!("`{}` does not exist yet", source.display()),
            Some("run the build first"),
        )
    }
}

async fn credentials_check(session: &Session) -> Check {
    match session.caller_identity().await {
        Ok(identity) => check(
            "credentials",
            Status::Ok,
            format!(
                "{}{}",
                escape(&identity.arn),
                identity
                    .account
                    .map(|a| format!(" (account {a})"))
                    .unwrap_or_default()
            ),
            None,
        ),
        Err(error) if error.contains("no credentials") || error.contains("NoCredentials") => check(
            "credentials",
            Status::Fail,
            format!("no credentials were found: {error}"),
            Some(
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, --profile, `aws sso login`, \
                     or aws-actions/configure-aws-credentials in CI",
            ),
        ),
        Err(error)
            if [
                "InvalidClientTokenId",
                "SignatureDoesNotMatch",
                "ExpiredToken",
                "AccessDenied",
            ]
            .iter()
            .any(|code| error.contains(code)) =>
        {
            check(
                "credentials",
                Status::Fail,
                format!("the credentials were refused: {error}"),
                Some("check the keys or the role; refresh expired session credentials"),
            )
        }
        Err(error) => check(
            "credentials",
            Status::Warn,
            format!("cannot tell whose credentials these are (STS GetCallerIdentity: {error})"),
            None,
        ),
    }
}

/// The kind of store (endpoint and response headers), and the checksum mode it gets.
fn store_check(settings: &DeploySettings, headers: &[(String, String)]) -> Check {
    let endpoint = probe::endpoint_in_effect(&settings.aws);
    let by_endpoint = probe::store_kind(endpoint.as_deref());
    let kind = probe::store_kind_from(endpoint.as_deref(), headers);
    if kind.checksums_when_required && !by_endpoint.checksums_when_required {
        return check(
            "store",
            Status::Warn,
            format!(
                "{} (from its response headers), which rejects the SDK's default checksums",
                kind.name
            ),
            Some("set AWS_REQUEST_CHECKSUM_CALCULATION=when_required for its deploys"),
        );
    }
    let detail = if kind.checksums_when_required {
        format!(
            "{}: checksums only when required (Content-MD5), applied automatically \
             (AWS_REQUEST_CHECKSUM_CALCULATION overrides)",
            kind.name
        )
    } else if matches!(kind.name, "MinIO" | "Ceph RGW") {
        format!(
            "{}: CRC32 checksums on every upload (older releases reject them: then set \
             AWS_REQUEST_CHECKSUM_CALCULATION=when_required)",
            kind.name
        )
    } else {
        format!("{}: CRC32 checksums on every upload", kind.name)
    };
    check("store", Status::Ok, detail, None)
}

async fn bucket_check(
    session: &Session,
    settings: &DeploySettings,
    bucket: &str,
) -> (Check, Vec<(String, String)>) {
    let store = session.s3_store(
        bucket,
        crate::key::Prefix::new("").expect("the empty prefix"),
        crate::aws::StoreOptions {
            multipart: store::s3::Multipart::default(),
            concurrency: 1,
            listed_etags: false,
            page_size: None,
            requests: store::s3::RequestOptions::default(),
        },
        &crate::interrupt::Interrupt::new(),
    );
    match store.head_bucket().await {
        Ok((region, headers)) => {
            let configured = settings.aws.region.as_deref();
            let result = match (region.as_deref(), configured) {
                (Some(actual), Some(configured)) if actual != configured => check(
                    "bucket",
                    Status::Fail,
                    format!("`{bucket}` is in {actual}, the config says {configured}"),
                    Some("set `region` to the bucket's region"),
                ),
                (Some(actual), _) => check(
                    "bucket",
                    Status::Ok,
                    format!("`{bucket}` is reachable (region {actual})"),
                    None,
                ),
                (None, _) => check(
                    "bucket",
                    Status::Ok,
                    format!("`{bucket}` is reachable"),
                    None,
                ),
            };
            (result, headers)
        }
        Err(store::Error::NoSuchBucket { .. }) => (
            check(
                "bucket",
                Status::Fail,
                format!("bucket `{bucket}` does not exist"),
                Some("create it, or fix `target` in deploy.yaml"),
            ),
            Vec::new(),
        ),
        Err(error) => (
            check(
                "bucket",
                Status::Fail,
                ErrorChain(&error).to_string(),
                error.hint().as_deref(),
            ),
            Vec::new(),
        ),
    }
}

async fn cloudfront_check(
    session: &Session,
    cloudfront: &crate::deploy::settings::CloudFrontSettings,
    bucket: &str,
    prefix: &str,
) -> Check {
    let client = session.cloudfront(cloudfront.endpoint_url.as_deref());
    let id = &cloudfront.distribution_id;
    match client.origins(id).await {
        Ok(origins) => {
            let wanted_path = format!("/{}", prefix.trim_end_matches('/'));
            let matching = origins.iter().any(|origin| {
                let serves_bucket =
                    origin.domain == bucket || origin.domain.starts_with(&format!("{bucket}.s3"));
                let path = if origin.path.is_empty() {
                    "/"
                } else {
                    &origin.path
                };
                serves_bucket && (prefix.is_empty() || path.trim_end_matches('/') == wanted_path)
            });
            let listed: Vec<String> = origins
                .iter()
                .map(|o| format!("{}{}", o.domain, o.path))
                .collect();
            if matching {
                check(
                    "cloudfront",
                    Status::Ok,
                    format!("{id} serves `{bucket}/{prefix}`"),
                    None,
                )
            } else {
                check(
                    "cloudfront",
                    Status::Fail,
                    format!(
                        "{id}'s origins ({}) are not `{bucket}/{prefix}`: its caches would not see \
                         this deploy",
                        listed.join(", ")
                    ),
                    Some("fix cloudfront.distribution_id, or the distribution's origin"),
                )
            }
        }
        Err(error) => check(
            "cloudfront",
            Status::Fail,
            format!("cannot read distribution {id}: {}", ErrorChain(&error)),
            Some("check the id and cloudfront:GetDistribution permission"),
        ),
    }
}

async fn state_check(session: &Session, bucket: &str, prefix: &str) -> Check {
    let key = format!("{prefix}.hoist/manifest.json");
    match session.anonymous_get(bucket, &key).await {
        AnonymousRead::Denied => check(
            "state",
            Status::Ok,
            "`.hoist/` is not readable anonymously".into(),
            None,
        ),
        AnonymousRead::Readable => check(
            "state",
            Status::Fail,
            format!("anyone can read `{key}` (hoist's state and old page bytes)"),
            Some(
                "deny `.hoist/*` in the bucket policy or at CloudFront (README: Keep .hoist/ private)",
            ),
        ),
        AnonymousRead::Missing => check(
            "state",
            Status::Warn,
            format!(
                "anonymous readers may read the bucket; `{key}` would be readable once written"
            ),
            Some("deny `.hoist/*` in the bucket policy (README: Keep .hoist/ private)"),
        ),
        AnonymousRead::Failed(why) => check(
            "state",
            Status::Warn,
            format!("cannot tell whether `.hoist/` is public: {why}"),
            None,
        ),
    }
}
