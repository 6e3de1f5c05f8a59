//! The CloudFront calls a deploy makes, behind hoist's own types: read a distribution's
//! origins, create an invalidation, read its status. `deploy::cdn` decides what to invalidate
//! and when; this module only speaks the API, so no CloudFront SDK type reaches the pipeline.

use aws_sdk_cloudfront::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudfront::primitives::Blob;
use aws_sdk_cloudfront::types::{
    EventType, FunctionAssociation, FunctionAssociations, FunctionConfig, FunctionRuntime,
    FunctionStage, InvalidationBatch, Paths,
};

/// Why a CloudFront call failed: the service's code and message, or the transport's error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CloudFrontError {
    #[error("{}{}", code.as_deref().unwrap_or("error"), message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Service {
        code: Option<String>,
        message: Option<String>,
    },
    #[error("the request did not complete")]
    Transport {
        #[source]
        source: crate::store::BoxError,
    },
}

impl CloudFrontError {
    /// The function (or distribution) does not exist.
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, CloudFrontError::Service { code: Some(code), .. } if code == "NoSuchFunctionExists" || code == "NoSuchResource")
    }

    /// CloudFront's throttle on concurrent invalidations, worth waiting out.
    pub(crate) fn is_too_many_invalidations(&self) -> bool {
        matches!(self, CloudFrontError::Service { code: Some(code), .. } if code == "TooManyInvalidationsInProgress")
    }
}

impl<E> From<SdkError<E>> for CloudFrontError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn from(error: SdkError<E>) -> Self {
        // A service error's code and message are the cause; anything else (no connection,
        // a timeout) keeps the SDK's error as the source.
        match &error {
            SdkError::ServiceError(service) => CloudFrontError::Service {
                code: service.err().code().map(str::to_string),
                message: service.err().message().map(str::to_string),
            },
            _ => CloudFrontError::Transport {
                source: Box::new(error),
            },
        }
    }
}

/// One origin of a distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) domain: String,
    /// The OriginPath, `""` when there is none.
    pub(crate) path: String,
}

/// A CloudFront Function as one of its stages holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FunctionState {
    pub(crate) arn: String,
    /// The stage the service says this is (a server that ignores the stage asked for
    /// answers with the development stage).
    pub(crate) live: bool,
    /// For changing it (If-Match).
    pub(crate) etag: String,
}

/// The stage asked for: live, or development.
fn stage(live: bool) -> FunctionStage {
    if live {
        FunctionStage::Live
    } else {
        FunctionStage::Development
    }
}

/// Which event a function is associated with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum FunctionEvent {
    ViewerRequest,
    ViewerResponse,
}

impl FunctionEvent {
    fn sdk(self) -> EventType {
        match self {
            FunctionEvent::ViewerRequest => EventType::ViewerRequest,
            FunctionEvent::ViewerResponse => EventType::ViewerResponse,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FunctionEvent::ViewerRequest => "viewer-request",
            FunctionEvent::ViewerResponse => "viewer-response",
        }
    }
}

/// Sets the default cache behavior's function associations: `wanted` (event, ARN) replace
/// any association of the same event; the others (Lambda@Edge, other events) stay. Whether
/// anything changed.
pub(crate) fn associate(
    config: &mut aws_sdk_cloudfront::types::DistributionConfig,
    wanted: &[(FunctionEvent, String)],
) -> bool {
    let Some(behavior) = config.default_cache_behavior.as_mut() else {
        return false;
    };
    let mut items: Vec<FunctionAssociation> = behavior
        .function_associations
        .as_ref()
        .map(|a| a.items().to_vec())
        .unwrap_or_default();
    let before = items.clone();
    for (event, arn) in wanted {
        items.retain(|a| a.event_type() != &event.sdk());
        items.push(
            FunctionAssociation::builder()
                .function_arn(arn)
                .event_type(event.sdk())
                .build()
                .expect("ARN and event are set"),
        );
    }
    items.sort_by(|a, b| a.event_type().as_str().cmp(b.event_type().as_str()));
    let mut sorted_before = before;
    sorted_before.sort_by(|a, b| a.event_type().as_str().cmp(b.event_type().as_str()));
    if items == sorted_before {
        return false;
    }
    behavior.function_associations = Some(
        FunctionAssociations::builder()
            .quantity(i32::try_from(items.len()).expect("a few associations"))
            .set_items(Some(items))
            .build()
            .expect("quantity is set"),
    );
    true
}

/// A created invalidation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalidation {
    pub(crate) id: Option<String>,
    pub(crate) status: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct CloudFront {
    client: aws_sdk_cloudfront::Client,
}

impl CloudFront {
    pub(super) fn new(sdk: &aws_config::SdkConfig, endpoint_url: Option<&str>) -> CloudFront {
        let mut builder = aws_sdk_cloudfront::config::Builder::from(sdk)
            // CloudFront is a global service, signed for us-east-1.
            .region(aws_config::Region::from_static("us-east-1"));
        if let Some(url) = endpoint_url {
            builder = builder.endpoint_url(url);
        }
        CloudFront {
            client: aws_sdk_cloudfront::Client::from_conf(builder.build()),
        }
    }

    /// GetDistribution: the distribution's origins.
    pub(crate) async fn origins(&self, distribution: &str) -> Result<Vec<Origin>, CloudFrontError> {
        let output = self
            .client
            .get_distribution()
            .id(distribution)
            .send()
            .await?;
        Ok(output
            .distribution()
            .and_then(|d| d.distribution_config())
            .and_then(|c| c.origins())
            .map(|o| {
                o.items()
                    .iter()
                    .map(|origin| Origin {
                        domain: origin.domain_name().to_string(),
                        path: origin.origin_path().unwrap_or("").to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// CreateInvalidation of exactly `paths` (already encoded), idempotent per
    /// `caller_reference`.
    pub(crate) async fn create_invalidation(
        &self,
        distribution: &str,
        paths: &[String],
        caller_reference: &str,
    ) -> Result<Invalidation, CloudFrontError> {
        let batch = InvalidationBatch::builder()
            .paths(
                Paths::builder()
                    .quantity(i32::try_from(paths.len()).expect("at most 3,000 paths"))
                    .set_items(Some(paths.to_vec()))
                    .build()
                    .expect("quantity is set"),
            )
            .caller_reference(caller_reference)
            .build()
            .expect("paths and caller reference are set");
        let output = self
            .client
            .create_invalidation()
            .distribution_id(distribution)
            .invalidation_batch(batch)
            .send()
            .await?;
        let invalidation = output.invalidation();
        Ok(Invalidation {
            id: invalidation.map(|i| i.id().to_string()),
            status: invalidation.map(|i| i.status().to_string()),
        })
    }

    /// DescribeFunction of a stage; `None` when there is no such function.
    pub(crate) async fn describe_function(
        &self,
        name: &str,
        live: bool,
    ) -> Result<Option<FunctionState>, CloudFrontError> {
        match self
            .client
            .describe_function()
            .name(name)
            .stage(stage(live))
            .send()
            .await
        {
            Ok(output) => {
                let metadata = output
                    .function_summary()
                    .and_then(|s| s.function_metadata());
                Ok(Some(FunctionState {
                    arn: metadata
                        .map(|m| m.function_arn().to_string())
                        .unwrap_or_default(),
                    live: metadata.and_then(|m| m.stage()) == Some(&FunctionStage::Live),
                    etag: output.e_tag().unwrap_or_default().to_string(),
                }))
            }
            Err(error) => {
                let error = CloudFrontError::from(error);
                if error.is_not_found() {
                    Ok(None)
                } else {
                    Err(error)
                }
            }
        }
    }

    /// GetFunction: the code of a stage.
    pub(crate) async fn function_code(
        &self,
        name: &str,
        live: bool,
    ) -> Result<Vec<u8>, CloudFrontError> {
        let output = self
            .client
            .get_function()
            .name(name)
            .stage(stage(live))
            .send()
            .await?;
        Ok(output
            .function_code()
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default())
    }

    fn function_config() -> FunctionConfig {
        FunctionConfig::builder()
            .comment("published by hoist deploy; generated from deploy.yaml and the build")
            .runtime(FunctionRuntime::CloudfrontJs20)
            .build()
            .expect("comment and runtime are set")
    }

    /// CreateFunction (in the development stage): its ARN and ETag.
    pub(crate) async fn create_function(
        &self,
        name: &str,
        code: &str,
    ) -> Result<FunctionState, CloudFrontError> {
        let output = self
            .client
            .create_function()
            .name(name)
            .function_config(Self::function_config())
            .function_code(Blob::new(code.as_bytes()))
            .send()
            .await?;
        Ok(FunctionState {
            arn: output
                .function_summary()
                .and_then(|s| s.function_metadata())
                .map(|m| m.function_arn().to_string())
                .unwrap_or_default(),
            live: false,
            etag: output.e_tag().unwrap_or_default().to_string(),
        })
    }

    /// UpdateFunction (the development stage), pinned to `etag`: the new ETag.
    pub(crate) async fn update_function(
        &self,
        name: &str,
        etag: &str,
        code: &str,
    ) -> Result<String, CloudFrontError> {
        let output = self
            .client
            .update_function()
            .name(name)
            .if_match(etag)
            .function_config(Self::function_config())
            .function_code(Blob::new(code.as_bytes()))
            .send()
            .await?;
        Ok(output.e_tag().unwrap_or_default().to_string())
    }

    /// PublishFunction: the development stage goes live, pinned to `etag`.
    pub(crate) async fn publish_function(
        &self,
        name: &str,
        etag: &str,
    ) -> Result<(), CloudFrontError> {
        self.client
            .publish_function()
            .name(name)
            .if_match(etag)
            .send()
            .await?;
        Ok(())
    }

    /// GetDistributionConfig, [`associate`], then UpdateDistribution pinned to the config's
    /// ETag when anything changed. Whether it did.
    pub(crate) async fn associate_functions(
        &self,
        distribution: &str,
        wanted: &[(FunctionEvent, String)],
    ) -> Result<bool, CloudFrontError> {
        let output = self
            .client
            .get_distribution_config()
            .id(distribution)
            .send()
            .await?;
        let etag = output.e_tag().unwrap_or_default().to_string();
        let Some(mut config) = output.distribution_config().cloned() else {
            return Ok(false);
        };
        if !associate(&mut config, wanted) {
            return Ok(false);
        }
        self.client
            .update_distribution()
            .id(distribution)
            .if_match(etag)
            .distribution_config(config)
            .send()
            .await?;
        Ok(true)
    }

    /// GetInvalidation: its status (`InProgress`, `Completed`).
    pub(crate) async fn invalidation_status(
        &self,
        distribution: &str,
        id: &str,
    ) -> Result<String, CloudFrontError> {
        let output = self
            .client
            .get_invalidation()
            .distribution_id(distribution)
            .id(id)
            .send()
            .await?;
        Ok(output
            .invalidation()
            .map(|i| i.status().to_string())
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudfront::types::{
        DefaultCacheBehavior, DistributionConfig, ViewerProtocolPolicy,
    };

    fn config(associations: Vec<FunctionAssociation>) -> DistributionConfig {
        let behavior = DefaultCacheBehavior::builder()
            .target_origin_id("site")
            .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
            .function_associations(
                FunctionAssociations::builder()
                    .quantity(i32::try_from(associations.len()).unwrap())
                    .set_items(Some(associations))
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        DistributionConfig::builder()
            .caller_reference("x")
            .comment("")
            .enabled(true)
            .default_cache_behavior(behavior)
            .build()
            .unwrap()
    }

    fn association(event: EventType, arn: &str) -> FunctionAssociation {
        FunctionAssociation::builder()
            .event_type(event)
            .function_arn(arn)
            .build()
            .unwrap()
    }

    #[test]
    fn association_replaces_only_the_events_hoist_publishes() {
        let mut distribution = config(vec![
            association(EventType::ViewerRequest, "arn:old"),
            association(EventType::OriginRequest, "arn:someone-elses"),
        ]);
        let wanted = [
            (FunctionEvent::ViewerRequest, "arn:new".to_string()),
            (FunctionEvent::ViewerResponse, "arn:response".to_string()),
        ];
        assert!(associate(&mut distribution, &wanted));
        let items = distribution
            .default_cache_behavior
            .as_ref()
            .unwrap()
            .function_associations
            .as_ref()
            .unwrap();
        assert_eq!(items.quantity(), 3);
        let mut got: Vec<(String, String)> = items
            .items()
            .iter()
            .map(|a| {
                (
                    a.event_type().as_str().to_string(),
                    a.function_arn().to_string(),
                )
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                (
                    "origin-request".to_string(),
                    "arn:someone-elses".to_string()
                ),
                ("viewer-request".to_string(), "arn:new".to_string()),
                ("viewer-response".to_string(), "arn:response".to_string()),
            ]
        );
        // Again: nothing to change, so no UpdateDistribution.
        assert!(!associate(&mut distribution, &wanted));
    }
}
