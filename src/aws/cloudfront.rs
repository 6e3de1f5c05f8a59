//! The CloudFront calls a deploy makes, behind hoist's own types: read a distribution's
//! origins, create an invalidation, read its status. `deploy::cdn` decides what to invalidate
//! and when; this module only speaks the API, so no CloudFront SDK type reaches the pipeline.

use aws_sdk_cloudfront::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};

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
