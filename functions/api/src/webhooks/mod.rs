//! `POST /webhooks/{source}`: an approved change ticket becomes a submission.
//!
//! Order of checks: known source → body within the limit → signature and timestamp (401 with
//! nothing recorded on failure) → JSON → mapping (ignored tickets answer 200 with the reason) →
//! the spec with the ticket as requester → the same submit path as the portal, keyed by the
//! ticket id, so a re-delivered webhook returns the same saga and a changed spec on an already
//! submitted ticket is a 409.

pub mod mapping;
pub mod signature;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use onboard_core::idempotency;
use onboard_core::spec::RequestSource;
use onboard_core::validation::{Problem, ValidationErrors};
use onboard_lambda_common::Metric;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

pub use mapping::{MappingConfig, Source};
pub use signature::SignatureConfig;

use crate::problem::{ApiProblem, Kind};
use crate::routes::{accept, body, spec_with_requester};
use crate::Api;

/// How webhooks are verified and mapped.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub signature: SignatureConfig,
    pub mapping: MappingConfig,
}

impl WebhookConfig {
    /// Webhooks verified with `secret` and the default headers, tolerance and ticket mapping.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        WebhookConfig {
            signature: SignatureConfig::new(secret),
            mapping: MappingConfig::default(),
        }
    }
}

/// 200 answer for a ticket that is not (yet) approved.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ignored {
    /// Always true.
    pub ignored: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<String>,
    pub reason: String,
}

/// Prefix each problem's field with where the spec sits in the webhook body.
fn under(path: &str, errors: ValidationErrors) -> ValidationErrors {
    let fix = |p: Problem| {
        let field = if p.field == "$" {
            path.to_string()
        } else {
            format!("{path}.{}", p.field)
        };
        Problem { field, ..p }
    };
    ValidationErrors {
        problems: errors.problems.into_iter().map(fix).collect(),
        warnings: errors.warnings.into_iter().map(fix).collect(),
    }
}

/// Receive a signed ticket webhook.
#[utoipa::path(
    post,
    path = "/webhooks/{source}",
    tag = "webhooks",
    params(
        ("source" = String, Path, description = "`servicenow`, `jira` or `generic`"),
        ("X-Onboard-Timestamp" = String, Header, description = "Unix seconds (header name configurable)"),
        ("X-Onboard-Signature" = String, Header,
            description = "sha256=hex(HMAC-SHA256(secret, timestamp + \".\" + raw body)) (header name configurable)"),
    ),
    request_body(content = Object, content_type = "application/json", description = "The ticketing system's payload (see the README for each shape)"),
    responses(
        (status = 202, description = "Approved ticket recorded and queued", body = crate::routes::Submitted,
            headers(("Location" = String, description = "The saga's status URL"))),
        (status = 200, description = "Ticket not approved: ignored, with the reason", body = Ignored),
        (status = 400, description = "Approved ticket without a valid spec", body = ApiProblem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, stale or wrong signature; nothing recorded", body = ApiProblem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown source", body = ApiProblem, content_type = "application/problem+json"),
        (status = 409, description = "Ticket already submitted with a different spec, or namespace busy", body = ApiProblem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ApiProblem, content_type = "application/problem+json"),
    )
)]
pub async fn receive(
    State(api): State<Arc<Api>>,
    Path(source): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    let run = async {
        let source = Source::parse(&source).ok_or_else(|| {
            ApiProblem::new(Kind::NotFound, format!("no webhook source {source:?}"))
                .fix("Use /webhooks/servicenow, /webhooks/jira or /webhooks/generic.")
        })?;
        let raw = body(&api, raw)?;
        let cfg = &api.webhooks;
        let now_secs = api.onboarding.clock.now() / 1000;
        if let Err(reason) =
            signature::verify(&cfg.signature, source.as_str(), &headers, &raw, now_secs)
        {
            tracing::warn!(source = source.as_str(), reason = %reason, "webhook refused");
            api.emf.emit(
                &[("Source", source.as_str())],
                &[Metric::count("WebhookSignatureFailures", 1.0)],
                &[],
            );
            return Err(ApiProblem::new(Kind::BadSignature, reason)
                .fix(format!(
                    "Sign the request: {} = Unix seconds, {} = sha256=hex(HMAC-SHA256(secret, \
                 timestamp + \".\" + raw body)), sent within {} s.",
                    cfg.signature.timestamp_header,
                    cfg.signature.signature_header,
                    cfg.signature.tolerance_secs
                ))
                .into());
        }
        let payload: Value = serde_json::from_slice(&raw).map_err(|e| {
            ApiProblem::validation(ValidationErrors::from(Problem::new(
                "$",
                format!("the webhook body is not valid JSON: {e}"),
                "Send the ticket as a JSON object.",
            )))
        })?;
        let approved = match mapping::decide(source, &payload, &cfg.mapping) {
            Err(problems) => {
                return Err(ApiProblem::validation(ValidationErrors::new(problems)).into())
            }
            Ok(mapping::Decision::Ignored { ticket_id, reason }) => {
                tracing::info!(source = source.as_str(), ticket_id = ticket_id.as_deref().unwrap_or(""), reason = %reason, "webhook ignored");
                let body = Ignored {
                    ignored: true,
                    ticket_id,
                    reason,
                };
                return Ok((StatusCode::OK, Json(body)).into_response());
            }
            Ok(mapping::Decision::Approved(a)) => a,
        };
        tracing::Span::current().record("ticket_id", approved.ticket_id.as_str());
        let spec_bytes = serde_json::to_vec(&approved.spec).unwrap_or_default();
        let spec = spec_with_requester(
            &spec_bytes,
            RequestSource::Ticket,
            &approved.principal,
            Some(&approved.ticket_id),
        )
        .and_then(|spec| spec.validate().map(|_| spec))
        .map_err(|e| ApiProblem::validation(under(&approved.spec_path, e)))?;
        // Keyed per ticketing system: the same ticket id from two systems is two requests.
        let key = idempotency::ticket_key(source.as_str(), &approved.ticket_id);
        Ok::<_, Box<ApiProblem>>(accept(&api, &spec, Some(&key)).await)
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}
