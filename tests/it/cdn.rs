//! CloudFront invalidation against moto_server's CloudFront (issue #3), with a distribution
//! the test creates whose origin is the deployed bucket.

use aws_sdk_cloudfront::types::{
    DefaultCacheBehavior, DistributionConfig, Origin, Origins, S3OriginConfig, ViewerProtocolPolicy,
};

use crate::backends::Server;
use crate::deploy::Site;
use crate::util::block_on;

const CDN_CONFIG: &str = r#"
source: site
rules:
  - match: "*.html"
    cache_control: "public, max-age=300"
  - match: "assets/**"
    cache_control: "public, max-age=31536000, immutable"
    immutable: true
  - match: "**"
    cache_control: "public, max-age=3600"
"#;

pub fn cloudfront(server: &Server) -> aws_sdk_cloudfront::Client {
    let endpoint = server.endpoint();
    let config = aws_sdk_cloudfront::config::Builder::new()
        .behavior_version(aws_sdk_cloudfront::config::BehaviorVersion::latest())
        .region(aws_sdk_cloudfront::config::Region::new("us-east-1"))
        .endpoint_url(&endpoint.url)
        .credentials_provider(aws_sdk_cloudfront::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .build();
    aws_sdk_cloudfront::Client::from_conf(config)
}

/// Creates a distribution whose origin is `bucket` with the given OriginPath; returns its id.
pub fn create_distribution(
    client: &aws_sdk_cloudfront::Client,
    bucket: &str,
    origin_path: &str,
) -> String {
    let origin = Origin::builder()
        .id("site")
        .domain_name(format!("{bucket}.s3.amazonaws.com"))
        .origin_path(origin_path)
        .s3_origin_config(S3OriginConfig::builder().origin_access_identity("").build())
        .build()
        .expect("origin");
    let config = DistributionConfig::builder()
        .caller_reference(uuid::Uuid::new_v4().to_string())
        .comment("hoist test")
        .enabled(true)
        .origins(
            Origins::builder()
                .quantity(1)
                .items(origin)
                .build()
                .expect("origins"),
        )
        .default_cache_behavior(
            DefaultCacheBehavior::builder()
                .target_origin_id("site")
                .viewer_protocol_policy(ViewerProtocolPolicy::AllowAll)
                .build()
                .expect("behaviour"),
        )
        .build()
        .expect("distribution config");
    block_on(async {
        client
            .create_distribution()
            .distribution_config(config)
            .send()
            .await
            .expect("create distribution")
            .distribution()
            .expect("distribution")
            .id()
            .to_string()
    })
}

/// Every invalidation's paths, sorted.
fn invalidations(client: &aws_sdk_cloudfront::Client, id: &str) -> Vec<Vec<String>> {
    block_on(async {
        let listed = client
            .list_invalidations()
            .distribution_id(id)
            .send()
            .await
            .expect("list invalidations");
        let mut out = Vec::new();
        let items = listed
            .invalidation_list()
            .map(|l| l.items().to_vec())
            .unwrap_or_default();
        for summary in items {
            let got = client
                .get_invalidation()
                .distribution_id(id)
                .id(summary.id())
                .send()
                .await
                .expect("get invalidation");
            let mut paths = got
                .invalidation()
                .and_then(|i| i.invalidation_batch())
                .and_then(|b| b.paths())
                .map(|p| p.items().to_vec())
                .unwrap_or_default();
            paths.sort();
            out.push(paths);
        }
        out
    })
}

fn site_with_distribution(
    server: &Server,
    files: &[(&str, &str)],
    extra: &str,
    prefix: &str,
    origin_path: &str,
) -> (Site, String, aws_sdk_cloudfront::Client) {
    let client = cloudfront(server);
    let site = Site::with_config(server, files, CDN_CONFIG, prefix);
    let id = create_distribution(&client, &site.bucket, origin_path);
    site.write_config(&format!(
        "{CDN_CONFIG}\ncloudfront:\n  distribution_id: {id}\n  endpoint_url: {}\n{extra}",
        server.endpoint().url
    ));
    (site, id, client)
}

const PAGES: &[(&str, &str)] = &[
    ("index.html", "home"),
    ("docs/index.html", "docs"),
    ("style.css", "body{}"),
    ("assets/app.1a2b.js", "js"),
    ("caf\u{e9} menu.html", "unicode"),
];

#[test]
fn invalidates_exactly_the_changed_paths() {
    let Some(server) = Server::moto() else { return };
    let (site, id, client) = site_with_distribution(&server, PAGES, "", "", "");
    // First deploy: everything is new, nothing to invalidate.
    let first = site.deploy_json().success();
    assert_eq!(first.json()["invalidation"]["paths"], serde_json::json!([]));
    assert!(invalidations(&client, &id).is_empty());

    site.write("index.html", "home v2");
    site.write("docs/index.html", "docs v2");
    site.write("style.css", "body{color:red}");
    site.write("caf\u{e9} menu.html", "unicode v2");
    site.write("new.html", "brand new");
    let ran = site.deploy_json().success();
    let want = [
        "/",
        "/caf%C3%A9%20menu.html",
        "/docs",
        "/docs/",
        "/docs/index.html",
        "/index.html",
        "/style.css",
    ];
    assert_eq!(invalidations(&client, &id), [want.to_vec()]);
    let report = &ran.json()["invalidation"];
    assert_eq!(report["distribution_id"], id.as_str());
    assert_eq!(report["paths"], serde_json::json!(want));
    assert!(report["id"].is_string());

    // An immutable asset change creates none.
    site.write("assets/app.1a2b.js", "js v2");
    let ran = site.deploy_json().success();
    let uploads = ran
        .actions()
        .into_iter()
        .filter(|a| a.0 == "upload")
        .count();
    assert_eq!(uploads, 1, "{}", ran.stdout);
    assert_eq!(invalidations(&client, &id).len(), 1, "no new invalidation");
    assert_eq!(ran.json()["invalidation"]["status"], "none");
}

#[test]
fn deletes_and_header_updates_are_invalidated_and_origin_path_is_removed() {
    let Some(server) = Server::moto() else { return };
    let (site, id, client) = site_with_distribution(&server, PAGES, "", "site/", "/site");
    site.deploy().success();
    std::fs::remove_file(site.source().join("docs/index.html")).expect("rm");
    site.write_config(&format!(
        "{}\ncloudfront:\n  distribution_id: {id}\n  endpoint_url: {}\n",
        CDN_CONFIG.replace("max-age=3600", "max-age=60"),
        server.endpoint().url
    ));
    site.deploy().success();
    assert_eq!(
        invalidations(&client, &id),
        [vec![
            "/docs".to_string(),
            "/docs/".into(),
            "/docs/index.html".into(),
            "/style.css".into()
        ]]
    );
}

#[test]
fn many_pages_collapse_into_few_wildcards() {
    let Some(server) = Server::moto() else { return };
    let pages: Vec<(String, String)> = (0..500)
        .map(|i| (format!("section{}/page{i}.html", i % 5), format!("v1 {i}")))
        .collect();
    let files: Vec<(&str, &str)> = pages
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (site, id, client) = site_with_distribution(&server, &files, "  max_paths: 100\n", "", "");
    site.deploy().success();
    for (key, _) in &pages {
        site.write(key, "v2");
    }
    site.deploy().success();
    let all = invalidations(&client, &id);
    assert_eq!(all.len(), 1);
    let paths = &all[0];
    let wildcards = paths.iter().filter(|p| p.ends_with('*')).count();
    assert!(wildcards <= 15, "{paths:?}");
    assert!(paths.len() <= 100, "{paths:?}");
    for (key, _) in &pages {
        let url = format!("/{key}");
        let covered = paths.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => url.starts_with(prefix),
            None => *p == url,
        });
        assert!(covered, "{url} not covered by {paths:?}");
    }
}

#[test]
fn dryrun_prints_paths_and_creates_nothing() {
    let Some(server) = Server::moto() else { return };
    let (site, id, client) = site_with_distribution(&server, PAGES, "", "", "");
    site.deploy().success();
    site.write("index.html", "home v2");
    let ran = site.deploy().arg("--dryrun").success();
    assert!(
        ran.stdout.contains("(dryrun) invalidate  /index.html"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("(dryrun) invalidate  /\n"),
        "{}",
        ran.stdout
    );
    let json = site.deploy_json().arg("--dryrun").success().json();
    assert_eq!(
        json["invalidation"]["paths"],
        serde_json::json!(["/", "/index.html"])
    );
    assert_eq!(json["invalidation"]["status"], "dryrun");
    assert!(
        invalidations(&client, &id).is_empty(),
        "a dry run created an invalidation"
    );

    // --no-invalidate skips it; --wait waits for completion.
    site.deploy().arg("--no-invalidate").success();
    assert!(invalidations(&client, &id).is_empty());
    site.write("index.html", "home v3");
    let ran = site.deploy_json().arg("--wait").success();
    // CloudFront says `Completed`; moto says `COMPLETED`.
    let status = ran.json()["invalidation"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(status.eq_ignore_ascii_case("completed"), "{status}");
    assert_eq!(invalidations(&client, &id).len(), 1);
}

#[test]
fn failed_invalidation_exits_1_and_the_next_deploy_owes_it() {
    let Some(server) = Server::moto() else { return };
    let site = Site::with_config(&server, PAGES, CDN_CONFIG, "");
    site.write_config(&format!(
        "{CDN_CONFIG}\ncloudfront:\n  distribution_id: ENOSUCHDIST\n  endpoint_url: {}\n",
        server.endpoint().url
    ));
    site.deploy().success();
    site.write("index.html", "v2");
    let ran = site.deploy().run().exit(1);
    assert!(ran.stderr.contains("ENOSUCHDIST"), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("were not invalidated: / /index.html"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("aws cloudfront create-invalidation --distribution-id ENOSUCHDIST --paths '/' '/index.html'"),
        "{}",
        ran.stderr
    );
    // The upload happened, and the manifest records the invalidation it owes.
    assert_eq!(site.contents()["index.html"], b"v2");
    let manifest: serde_json::Value =
        serde_json::from_slice(&site.contents()[".hoist/manifest.json"]).expect("manifest");
    assert_eq!(
        manifest["pending_invalidation"],
        serde_json::json!(["index.html"])
    );

    // With the distribution fixed, the next deploy finds nothing to upload and still
    // invalidates what the failed one changed; the one after owes nothing.
    let client = cloudfront(&server);
    let id = create_distribution(&client, &site.bucket, "");
    site.write_config(&format!(
        "{CDN_CONFIG}\ncloudfront:\n  distribution_id: {id}\n  endpoint_url: {}\n",
        server.endpoint().url
    ));
    let dry = site.deploy_json().arg("--dryrun").success();
    assert_eq!(
        dry.json()["invalidation"]["paths"],
        serde_json::json!(["/", "/index.html"])
    );
    assert!(
        invalidations(&client, &id).is_empty(),
        "a dry run invalidates nothing"
    );
    let rerun = site.deploy_json().success();
    assert!(rerun.actions().is_empty(), "{}", rerun.stdout);
    assert!(
        rerun
            .stderr
            .contains("never invalidated; invalidating them now"),
        "{}",
        rerun.stderr
    );
    assert_eq!(
        invalidations(&client, &id),
        [vec!["/".to_string(), "/index.html".into()]]
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&site.contents()[".hoist/manifest.json"]).expect("manifest");
    assert!(manifest.get("pending_invalidation").is_none(), "{manifest}");
    let settled = site.deploy_json().success();
    assert_eq!(settled.json()["invalidation"]["status"], "none");
    assert_eq!(invalidations(&client, &id).len(), 1);
}

#[test]
fn too_many_invalidations_in_progress_is_waited_out() {
    let Some(server) = Server::moto() else { return };
    let (site, id, client) = site_with_distribution(&server, PAGES, "", "", "");
    site.deploy().success();
    site.write("index.html", "home v2");
    let proxy = crate::proxy::FaultProxy::start(
        &server.endpoint().url,
        crate::proxy::Plan::new().rule(
            |r| r.method == "POST" && r.path().ends_with("/invalidation"),
            crate::proxy::Fault::TooManyInvalidations,
            Some(1),
        ),
    );
    site.write_config(&format!(
        "{CDN_CONFIG}\ncloudfront:\n  distribution_id: {id}\n  endpoint_url: {}\n",
        proxy.endpoint()
    ));
    let ran = site.deploy().success();
    assert_eq!(proxy.faults(), 1);
    assert!(
        ran.stderr
            .contains("too many invalidations in progress; retrying in"),
        "{}",
        ran.stderr
    );
    assert_eq!(
        invalidations(&client, &id),
        [vec!["/".to_string(), "/index.html".into()]]
    );
}

/// Issue #12: `hoist rollback` invalidates exactly the paths whose objects it changed; hashed
/// assets (restored or kept) are never invalidated.
#[test]
fn rollback_invalidates_exactly_what_it_changes() {
    let Some(server) = Server::moto() else { return };
    let (site, id, client) = site_with_distribution(&server, PAGES, "", "", "");
    site.deploy().success();
    site.write("index.html", "home v2");
    std::fs::remove_file(site.source().join("assets/app.1a2b.js")).expect("remove");
    site.write("assets/app.3c4d.js", "js v2");
    site.deploy().success();
    let before = invalidations(&client, &id);
    let ran = crate::util::Hoist::on(site.root(), &server.endpoint())
        .args(["rollback", "--output", "json"])
        .success();
    let report = ran.json();
    assert_eq!(
        report["invalidation"]["paths"],
        serde_json::json!(["/", "/index.html"]),
        "{report}"
    );
    let after = invalidations(&client, &id);
    assert_eq!(after.len(), before.len() + 1);
    assert!(after.contains(&vec!["/".to_string(), "/index.html".to_string()]));
    assert_eq!(site.contents()["index.html"], b"home");
}

/// A site whose deploy.yaml names a distribution whose origin is `other_bucket`, not the
/// site's (for `hoist doctor`).
pub fn site_with_distribution_to(server: &Server, other_bucket: &str) -> (Site, String) {
    let client = cloudfront(server);
    let site = Site::with_config(server, PAGES, CDN_CONFIG, "");
    let id = create_distribution(&client, other_bucket, "");
    site.write_config(&format!(
        "{CDN_CONFIG}\ncloudfront:\n  distribution_id: {id}\n  endpoint_url: {}\n",
        server.endpoint().url
    ));
    (site, id)
}
