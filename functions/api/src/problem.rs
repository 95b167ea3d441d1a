//! Errors as `application/problem+json` (RFC 9457): a stable `type` URI per kind of failure, a
//! `title` that never varies for a type, a human `detail` for this occurrence and, where it
//! helps, the fix, the field-level problems and the saga concerned.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use onboard_core::validation::Problem as SpecProblem;

/// The `Content-Type` of every error response.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The stable problem types. Their URIs never change; clients may switch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 400: the spec (or mapped ticket) breaks one or more rules; see `problems`.
    Validation,
    /// 400: a header, query parameter or path segment is malformed.
    BadRequest,
    /// 401: no authenticated principal.
    Unauthenticated,
    /// 401: a webhook's signature or timestamp did not verify.
    BadSignature,
    /// 403: the caller is authenticated but may not do this to the application.
    Forbidden,
    /// 404: no such saga, webhook source or route.
    NotFound,
    /// 405: the route exists, but not for this method.
    MethodNotAllowed,
    /// 409: the idempotency key (or ticket) was used with a different request.
    IdempotencyConflict,
    /// 409: a request with the same key is still being recorded.
    InProgress,
    /// 409: another saga holds the namespace.
    NamespaceBusy,
    /// The saga is not in a state the request applies to (e.g. re-drive of a running saga).
    WrongState,
    /// 413: the body is larger than the limit.
    TooLarge,
    /// 503: the saga store failed.
    Unavailable,
    /// 503: an AWS service preflight reads throttled or failed transiently.
    AwsUnavailable,
    /// 409: the application was offboarded; nothing can change it any more.
    ApplicationOffboarded,
    /// 409: the application's onboarding (or adoption) has not succeeded (yet).
    NotOnboarded,
    /// 409: the id names a lifecycle saga (change, offboard), not an application.
    NotAnApplication,
    /// 409: a drift fix was asked before any drift check ran.
    DriftNotChecked,
    /// 409: the last drift check found no difference; there is nothing to fix.
    NoDrift,
    /// 409: the drift cannot be fixed in place (the application was deleted outside).
    DriftNotFixable,
    /// 500: a stored record cannot be read as what it claims to be.
    RecordCorrupt,
}

impl Kind {
    /// `urn:connect-onboarding:problem:<slug>`.
    pub fn uri(self) -> &'static str {
        match self {
            Kind::Validation => "urn:connect-onboarding:problem:validation",
            Kind::BadRequest => "urn:connect-onboarding:problem:bad-request",
            Kind::Unauthenticated => "urn:connect-onboarding:problem:unauthenticated",
            Kind::BadSignature => "urn:connect-onboarding:problem:bad-signature",
            Kind::Forbidden => "urn:connect-onboarding:problem:forbidden",
            Kind::NotFound => "urn:connect-onboarding:problem:not-found",
            Kind::MethodNotAllowed => "urn:connect-onboarding:problem:method-not-allowed",
            Kind::IdempotencyConflict => "urn:connect-onboarding:problem:idempotency-conflict",
            Kind::InProgress => "urn:connect-onboarding:problem:request-in-progress",
            Kind::NamespaceBusy => "urn:connect-onboarding:problem:namespace-busy",
            Kind::WrongState => "urn:connect-onboarding:problem:wrong-state",
            Kind::TooLarge => "urn:connect-onboarding:problem:payload-too-large",
            Kind::Unavailable => "urn:connect-onboarding:problem:store-unavailable",
            Kind::AwsUnavailable => "urn:connect-onboarding:problem:aws-unavailable",
            Kind::ApplicationOffboarded => "urn:connect-onboarding:problem:application-offboarded",
            Kind::NotOnboarded => "urn:connect-onboarding:problem:application-not-onboarded",
            Kind::NotAnApplication => "urn:connect-onboarding:problem:not-an-application",
            Kind::DriftNotChecked => "urn:connect-onboarding:problem:drift-not-checked",
            Kind::NoDrift => "urn:connect-onboarding:problem:no-drift",
            Kind::DriftNotFixable => "urn:connect-onboarding:problem:drift-not-fixable",
            Kind::RecordCorrupt => "urn:connect-onboarding:problem:record-corrupt",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Kind::Validation => "The application spec is invalid",
            Kind::BadRequest => "The request is malformed",
            Kind::Unauthenticated => "No authenticated principal",
            Kind::BadSignature => "The webhook signature did not verify",
            Kind::Forbidden => "The caller may not do this to the application",
            Kind::NotFound => "Not found",
            Kind::MethodNotAllowed => "The route does not take this method",
            Kind::IdempotencyConflict => "The idempotency key was used for a different request",
            Kind::InProgress => "A request with this idempotency key is in progress",
            Kind::NamespaceBusy => "The namespace is held by another saga",
            Kind::WrongState => "The saga is not in a state this request applies to",
            Kind::TooLarge => "The request body is too large",
            Kind::Unavailable => "The saga store is unavailable",
            Kind::AwsUnavailable => "An AWS service did not answer in time",
            Kind::ApplicationOffboarded => "The application was offboarded",
            Kind::NotOnboarded => "The application is not onboarded",
            Kind::NotAnApplication => "The id names a saga, not an application",
            Kind::DriftNotChecked => "No drift check has run for the application",
            Kind::NoDrift => "The application has not drifted",
            Kind::DriftNotFixable => "The drift cannot be fixed in place",
            Kind::RecordCorrupt => "The saga record is unreadable",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Kind::Validation | Kind::BadRequest => StatusCode::BAD_REQUEST,
            Kind::Unauthenticated | Kind::BadSignature => StatusCode::UNAUTHORIZED,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Kind::IdempotencyConflict
            | Kind::InProgress
            | Kind::NamespaceBusy
            | Kind::WrongState
            | Kind::ApplicationOffboarded
            | Kind::NotOnboarded
            | Kind::NotAnApplication
            | Kind::DriftNotChecked
            | Kind::NoDrift
            | Kind::DriftNotFixable => StatusCode::CONFLICT,
            Kind::RecordCorrupt => StatusCode::INTERNAL_SERVER_ERROR,
            Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::Unavailable | Kind::AwsUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// One field-level problem: where, what, and the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldProblem {
    /// JSON path of the input, e.g. `approvedOrigins[2]`; `$` for the whole document.
    pub field: String,
    /// What is wrong, citing the rule.
    pub problem: String,
    /// The action that fixes it.
    pub fix: String,
}

impl From<SpecProblem> for FieldProblem {
    fn from(p: SpecProblem) -> Self {
        FieldProblem {
            field: p.field,
            problem: p.problem,
            fix: p.fix,
        }
    }
}

/// An `application/problem+json` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiProblem {
    /// Stable URI identifying the kind of problem.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    /// What happened in this request.
    pub detail: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Every field-level problem (validation), each with its fix.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<FieldProblem>,
    /// Non-blocking findings found in the same pass.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<FieldProblem>,
    /// The saga concerned (the existing one for conflicts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saga_id: Option<String>,
    /// When to retry, for `request-in-progress`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

impl ApiProblem {
    pub fn new(kind: Kind, detail: impl Into<String>) -> Self {
        ApiProblem {
            type_uri: kind.uri().to_string(),
            title: kind.title().to_string(),
            status: kind.status().as_u16(),
            detail: detail.into(),
            fix: None,
            problems: Vec::new(),
            warnings: Vec::new(),
            saga_id: None,
            retry_after_seconds: None,
        }
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    pub fn saga(mut self, id: impl Into<String>) -> Self {
        self.saga_id = Some(id.into());
        self
    }

    /// A 400 listing every problem of a spec, each with its fix.
    pub fn validation(errors: onboard_core::validation::ValidationErrors) -> Self {
        let n = errors.problems.len();
        let mut p = ApiProblem::new(
            Kind::Validation,
            format!(
                "{n} problem{} must be fixed before the application can be onboarded",
                if n == 1 { "" } else { "s" }
            ),
        )
        .fix("Correct every field listed in `problems` and submit again.");
        p.problems = errors
            .problems
            .into_iter()
            .map(FieldProblem::from)
            .collect();
        p.warnings = errors
            .warnings
            .into_iter()
            .map(FieldProblem::from)
            .collect();
        p
    }

    /// A 413/400 for a body that could not be read (too large, or broken).
    pub fn body_rejection(status: StatusCode, text: String, limit: usize) -> Self {
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiProblem::new(
                Kind::TooLarge,
                format!("the body exceeds the limit of {limit} bytes"),
            )
            .fix("Send a smaller body; an application spec is a few kilobytes.")
        } else {
            ApiProblem::new(
                Kind::BadRequest,
                format!("the body could not be read: {text}"),
            )
        }
    }

    /// A 503 for a store failure, with the error logged.
    pub fn store(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "saga store failed");
        ApiProblem::new(
            Kind::Unavailable,
            "the saga store could not be reached; nothing may have been recorded",
        )
        .fix("Retry the request with the same Idempotency-Key.")
    }
}

impl IntoResponse for Box<ApiProblem> {
    fn into_response(self) -> Response {
        (*self).into_response()
    }
}

impl IntoResponse for ApiProblem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry = self.retry_after_seconds;
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(s) = retry {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}
