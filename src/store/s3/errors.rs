//! SDK errors → [`Error`]'s semantic kinds, once for every S3 operation. The service's code and
//! message are kept (a bare `SdkError` displays as "service error").

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::store::Error;

/// Maps an SDK error to a semantic store error, keeping the service's code and message.
pub(super) fn map_sdk_error<E>(
    op: &'static str,
    url: &str,
    bucket: &str,
    endpoint: &str,
    err: SdkError<E>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let url = url.to_string();
    match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().map(str::to_string);
            let message = service.err().message().map(str::to_string);
            let status = service.raw().status().as_u16();
            match (code.as_deref(), status) {
                (Some("PreconditionFailed"), _) | (_, 412) => Error::PreconditionFailed { url },
                (Some("NoSuchBucket"), _) => Error::NoSuchBucket {
                    bucket: bucket.to_string(),
                },
                (Some("NoSuchKey" | "NotFound"), _) | (None, 404) => Error::NotFound { url },
                (
                    Some(
                        "AccessDenied"
                        | "InvalidAccessKeyId"
                        | "SignatureDoesNotMatch"
                        | "ExpiredToken"
                        | "InvalidToken"
                        | "AllAccessDisabled",
                    ),
                    _,
                )
                | (None, 403) => Error::AccessDenied {
                    op,
                    url,
                    message: message.or(code.clone()),
                    code,
                },
                _ => Error::Service {
                    op,
                    url,
                    code,
                    message,
                    status: Some(status),
                },
            }
        }
        SdkError::DispatchFailure(failure) if failure.is_timeout() && !is_connect_timeout(&err) => {
            Error::TimedOut {
                endpoint: endpoint.to_string(),
                source: Box::new(err),
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            if is_credentials_error(&err) {
                return Error::NoCredentials {
                    source: Box::new(err),
                };
            }
            Error::Unreachable {
                endpoint: endpoint.to_string(),
                source: Box::new(err),
            }
        }
        _ => {
            if is_credentials_error(&err) {
                return Error::NoCredentials {
                    source: Box::new(err),
                };
            }
            Error::Other {
                op,
                url,
                source: Box::new(err),
            }
        }
    }
}

fn is_credentials_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if e.downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
            .is_some()
        {
            return true;
        }
        let text = e.to_string();
        if text.contains("no credentials") || text.contains("resolve identity") {
            return true;
        }
        current = e.source();
    }
    false
}

/// Whether a timeout happened while connecting (the endpoint is unreachable), not while
/// waiting for an answer.
fn is_connect_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        let text = e.to_string().to_ascii_lowercase();
        if text.contains("connect") && text.contains("timed out")
            || text.contains("connect timeout")
        {
            return true;
        }
        current = e.source();
    }
    false
}
