//! Mapping AWS SDK errors to the core's classes, keeping the service's code and message.
//!
//! The engine only asks "retry or roll back?": throttling, 5xx, timeouts and IAM's
//! concurrent-modification answers are retryable; validation, denial, conflicts and quotas are
//! terminal. The SDK has already made its own (short) retries before an error reaches here.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
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

/// Why a request got no answer from the service, as one line: `(code, message)`. The SDK's
/// own rendering (`DisplayErrorContext`) ends in a `Debug` dump of the whole error tree; people
/// need the cause (no credentials, connection refused, unknown host, ...) and what to do.
pub fn unanswered(err: &(dyn std::error::Error + 'static)) -> (&'static str, String) {
    let mut chain: Vec<String> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        // Each layer often repeats the one below; keep the new part only.
        if !chain.iter().any(|c| c.contains(&text)) {
            chain.push(text);
        }
        next = e.source();
    }
    let all = chain.join(": ").replace('\n', " ");
    let lower = all.to_ascii_lowercase();
    let code = if lower.contains("no credentials") || lower.contains("credentialsnotloaded") {
        "NoCredentials"
    } else if lower.contains("connection refused") {
        "ConnectionRefused"
    } else if lower.contains("dns error") || lower.contains("failed to lookup address") {
        "UnknownHost"
    } else if lower.contains("certificate") || lower.contains("tls") {
        "TlsFailure"
    } else if lower.contains("timed out") || lower.contains("timeout") {
        "Timeout"
    } else if lower.contains("region") {
        "NoRegion"
    } else {
        "NoAnswer"
    };
    let message = match code {
        "NoCredentials" => "no AWS credentials were found (environment variables, profile, web \
                            identity, container or instance metadata)"
            .to_string(),
        "ConnectionRefused" => {
            "the endpoint refused the connection (nothing listens there)".to_string()
        }
        "UnknownHost" => "the endpoint's host name does not resolve".to_string(),
        // The chain names the exact condition; keep it, without the dump.
        _ => all,
    };
    (code, message)
}

/// What to do about an error code from [`unanswered`] or from the service, when it is about
/// the caller's set-up (credentials, Region, endpoint, permission) rather than the request.
pub fn setup_fix(code: &str) -> Option<&'static str> {
    Some(match code {
        "NoCredentials" => {
            "Give the command AWS credentials: `aws configure` or `aws sso login`, AWS_PROFILE, or \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (add --sandbox to try it locally \
             without AWS)."
        }
        "ConnectionRefused" | "UnknownHost" | "TlsFailure" | "NoAnswer" => {
            "Check --endpoint-url / AWS_ENDPOINT_URL (is the emulator running at that address?) \
             or drop it to reach AWS, and that AWS_REGION names a real Region."
        }
        "Timeout" => {
            "Check the network path to the endpoint (proxy, VPC endpoint, firewall), or raise \
             SDK_CONNECT_TIMEOUT_MS / SDK_OPERATION_TIMEOUT_MS."
        }
        "NoRegion" => "Set AWS_REGION (or the profile's region), e.g. AWS_REGION=us-east-1.",
        "UnrecognizedClientException" | "InvalidClientTokenId" | "SignatureDoesNotMatch" => {
            "The credentials are not valid for this account: check AWS_PROFILE / the access key \
             pair, and that AWS_REGION is the intended one."
        }
        "ExpiredToken" | "ExpiredTokenException" => {
            "The session credentials expired: refresh them (`aws sso login`, re-assume the role)."
        }
        "AccessDeniedException" | "AccessDenied" => {
            "Allow this identity the named action on the resource (see the README's IAM policy), \
             or run with a role that has it."
        }
        "ResourceNotFoundException" => {
            "Check the resource name and the Region (for the saga table: --table / \
             ONBOARD_TABLE and AWS_REGION)."
        }
        _ => return None,
    })
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
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) => {
            let (code, why) = unanswered(&err);
            // Missing credentials or Region never heal by retrying; a refused or lost
            // connection may (a restarting endpoint), as a timeout may.
            let kind = match code {
                "NoCredentials" | "NoRegion" => ErrorKind::Invalid,
                _ if matches!(err, SdkError::ConstructionFailure(_)) => ErrorKind::Invalid,
                _ => ErrorKind::Timeout,
            };
            let fix = setup_fix(code).map(str::to_string);
            return ErrorInfo {
                kind,
                code: code.to_string(),
                message: format!("{action} was not answered: {why}"),
                fix,
            };
        }
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
                    format!("{action} failed: {}", unanswered(&err).1),
                ),
            }
        }
    };
    let fix = match code.as_str() {
        "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "ExpiredTokenException" => setup_fix(&code).map(str::to_string),
        _ => default_fix(kind, action),
    };
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
