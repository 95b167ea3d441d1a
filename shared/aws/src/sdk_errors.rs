//! Mapping AWS SDK errors to the core's classes, keeping the service's code and message.
//!
//! The engine only asks "retry or roll back?": throttling, 5xx, timeouts and IAM's
//! concurrent-modification answers are retryable; validation, denial, conflicts and quotas are
//! terminal. The SDK has already made its own (short) retries before an error reaches here.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use onboard_core::error::{ErrorInfo, ErrorKind};

/// The kind for a service error code (and HTTP status, when the code is unknown).
pub fn kind_for(code: &str, status: Option<u16>) -> ErrorKind {
    match code {
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "ProvisionedThroughputExceededException"
        | "RequestThrottled"
        | "SlowDown" => ErrorKind::Throttled,
        "InternalServiceError"
        | "InternalServiceException"
        | "InternalFailure"
        | "InternalServerException"
        | "ServiceFailure"
        | "ServiceUnavailable"
        | "ServiceUnavailableException" => ErrorKind::ServerError,
        "RequestTimeout" | "RequestTimeoutException" => ErrorKind::Timeout,
        // IAM: "multiple requests to change this object were submitted simultaneously".
        "ConcurrentModification" | "ConcurrentModificationException" => ErrorKind::NotYetConsistent,
        "ResourceNotFoundException" | "NoSuchEntity" | "NotFoundException" => ErrorKind::NotFound,
        "AccessDeniedException"
        | "AccessDenied"
        | "UnauthorizedOperation"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "SignatureDoesNotMatch" => ErrorKind::Denied,
        "DuplicateResourceException"
        | "ConflictException"
        | "ResourceConflictException"
        | "ResourceInUseException"
        | "EntityAlreadyExists"
        | "ResourceExistsException" => ErrorKind::Conflict,
        "ResourceQuotaExceededException"
        | "ServiceQuotaExceededException"
        | "LimitExceeded"
        | "LimitExceededException" => ErrorKind::QuotaExceeded,
        "InvalidRequestException"
        | "InvalidParameterException"
        | "ValidationError"
        | "ValidationException"
        | "MalformedPolicyDocument"
        | "UnsupportedOperationException"
        | "UnmodifiableEntity"
        | "InvalidInput"
        | "SerializationException" => ErrorKind::Invalid,
        _ => match status {
            Some(429) => ErrorKind::Throttled,
            Some(s) if s >= 500 => ErrorKind::ServerError,
            _ => ErrorKind::Other,
        },
    }
}

/// A generic fix per kind; adapters add operation-specific ones where they know better.
fn default_fix(kind: ErrorKind, action: &str) -> Option<String> {
    match kind {
        ErrorKind::Denied => Some(format!(
            "Allow the onboarding role to call {action} on this resource (see the README's IAM \
             policy)."
        )),
        ErrorKind::QuotaExceeded => {
            Some("Raise the service quota (Service Quotas console) or free capacity.".to_string())
        }
        _ => None,
    }
}

/// Classify an SDK error from `action` (e.g. `connect:CreateIntegrationAssociation`).
pub fn classify<E>(action: &str, err: SdkError<E, HttpResponse>) -> ErrorInfo
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (kind, code, message) = match &err {
        SdkError::TimeoutError(_) => (
            ErrorKind::Timeout,
            "Timeout".to_string(),
            format!("{action} timed out"),
        ),
        SdkError::DispatchFailure(_) => (
            ErrorKind::Timeout,
            "DispatchFailure".to_string(),
            format!("{action} could not be sent: {}", DisplayErrorContext(&err)),
        ),
        SdkError::ConstructionFailure(_) => (
            ErrorKind::Invalid,
            "ConstructionFailure".to_string(),
            format!(
                "{action} request could not be built: {}",
                DisplayErrorContext(&err)
            ),
        ),
        _ => {
            let status = raw_status(&err);
            match err.code() {
                Some(code) => (
                    kind_for(code, status),
                    code.to_string(),
                    err.message().unwrap_or("(no message)").to_string(),
                ),
                None => (
                    kind_for("", status),
                    status.map_or("UnknownError".to_string(), |s| format!("Http{s}")),
                    format!("{action} failed: {}", DisplayErrorContext(&err)),
                ),
            }
        }
    };
    let fix = default_fix(kind, action);
    ErrorInfo {
        kind,
        code,
        message,
        fix,
    }
}

fn raw_status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_the_engine_classes() {
        assert!(kind_for("ThrottlingException", Some(429)).is_retryable());
        assert!(kind_for("Throttling", Some(400)).is_retryable());
        assert!(kind_for("ConcurrentModification", Some(409)).is_retryable());
        assert!(kind_for("Whatever", Some(503)).is_retryable());
        assert_eq!(kind_for("Whatever", Some(429)), ErrorKind::Throttled);
        assert_eq!(
            kind_for("LimitExceeded", Some(409)),
            ErrorKind::QuotaExceeded
        );
        assert_eq!(
            kind_for("DuplicateResourceException", Some(409)),
            ErrorKind::Conflict
        );
        assert_eq!(kind_for("NoSuchEntity", Some(404)), ErrorKind::NotFound);
        assert_eq!(
            kind_for("AccessDeniedException", Some(403)),
            ErrorKind::Denied
        );
        assert_eq!(
            kind_for("InvalidRequestException", Some(400)),
            ErrorKind::Invalid
        );
        assert_eq!(kind_for("Whatever", Some(400)), ErrorKind::Other);
        assert!(!ErrorKind::Other.is_retryable());
    }
}
