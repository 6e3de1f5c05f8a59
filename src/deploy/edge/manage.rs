//! `cloudfront.function: {name, manage: true}`: `hoist deploy` publishes the generated
//! functions itself, ordered with the deploy: after the assets and other files, before the
//! HTML that needs them (see `execute`), so the new rules go live with the pages. Each
//! function is created or updated (pinned to its ETag), published, and associated with the
//! distribution's default cache behavior (UpdateDistribution pinned to the config's ETag;
//! other associations stay). The manifest records the code each name serves, so a deploy
//! that changes neither sends no CloudFront request; the release record keeps the code, and
//! `hoist rollback` publishes the restored release's functions the same way.

use crate::aws::cloudfront::{CloudFront, CloudFrontError, FunctionEvent};
use crate::digest::Digest;

/// One function hoist publishes: the viewer-request function is `NAME`, the
/// viewer-response one `NAME-response`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ManagedFunction {
    pub(crate) name: String,
    pub(crate) event: FunctionEvent,
    pub(crate) code: String,
}

impl ManagedFunction {
    /// The digest the manifest records for it.
    pub(crate) fn digest(&self) -> Digest {
        Digest::of(self.code.as_bytes())
    }
}

/// The functions to publish under `name`, from what the compiler produced.
pub(crate) fn functions(name: &str, compiled: &super::function::Compiled) -> Vec<ManagedFunction> {
    let mut out = vec![ManagedFunction {
        name: name.to_string(),
        event: FunctionEvent::ViewerRequest,
        code: compiled.viewer_request.clone(),
    }];
    if let Some(code) = &compiled.viewer_response {
        out.push(ManagedFunction {
            name: format!("{name}-response"),
            event: FunctionEvent::ViewerResponse,
            code: code.clone(),
        });
    }
    out
}

/// Why publishing a function failed.
#[derive(Debug, thiserror::Error)]
#[error("{doing} CloudFront Function `{name}` failed")]
pub(crate) struct ManageError {
    pub(crate) doing: &'static str,
    pub(crate) name: String,
    #[source]
    pub(crate) source: CloudFrontError,
}

/// Publishes `functions` and associates them with `distribution`; one line per step taken.
pub(crate) async fn publish(
    client: &CloudFront,
    distribution: &str,
    functions: &[ManagedFunction],
) -> Result<Vec<String>, ManageError> {
    let mut lines = Vec::new();
    let mut wanted = Vec::new();
    for function in functions {
        let arn = publish_one(client, function, &mut lines).await?;
        wanted.push((function.event, arn));
    }
    let changed = client
        .associate_functions(distribution, &wanted)
        .await
        .map_err(|source| ManageError {
            doing: "associating",
            name: functions
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            source,
        })?;
    if changed {
        lines.push(format!(
            "associated {} with distribution {distribution}",
            functions
                .iter()
                .map(|f| format!("{} ({})", f.name, f.event.as_str()))
                .collect::<Vec<_>>()
                .join(" and ")
        ));
    }
    Ok(lines)
}

/// Creates or updates one function (pinned to its ETag) and publishes it unless its live
/// stage runs this code already: its ARN.
async fn publish_one(
    client: &CloudFront,
    function: &ManagedFunction,
    lines: &mut Vec<String>,
) -> Result<String, ManageError> {
    let fail = |doing: &'static str| {
        let name = function.name.clone();
        move |source| ManageError {
            doing,
            name,
            source,
        }
    };
    let name = function.name.as_str();
    let code = function.code.as_str();
    let (arn, etag) = match client
        .describe_function(name, false)
        .await
        .map_err(fail("reading"))?
    {
        None => {
            let created = client
                .create_function(name, code)
                .await
                .map_err(fail("creating"))?;
            lines.push(format!("created CloudFront Function {name}"));
            (created.arn, created.etag)
        }
        Some(state) => {
            let current = client
                .function_code(name, false)
                .await
                .map_err(fail("reading"))?;
            if current == code.as_bytes() {
                (state.arn, state.etag)
            } else {
                let etag = client
                    .update_function(name, &state.etag, code)
                    .await
                    .map_err(fail("updating"))?;
                lines.push(format!("updated CloudFront Function {name}"));
                (state.arn, etag)
            }
        }
    };
    // Published unless the live stage already runs this code.
    let live = client
        .describe_function(name, true)
        .await
        .map_err(fail("reading"))?
        .filter(|state| state.live);
    let live_code = match live {
        Some(_) => Some(
            client
                .function_code(name, true)
                .await
                .map_err(fail("reading"))?,
        ),
        None => None,
    };
    if live_code.as_deref() != Some(code.as_bytes()) {
        client
            .publish_function(name, &etag)
            .await
            .map_err(fail("publishing"))?;
        lines.push(format!(
            "published CloudFront Function {name} ({}, {} bytes)",
            function.event.as_str(),
            code.len()
        ));
    }
    Ok(arn)
}
