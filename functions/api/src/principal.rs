//! Who is calling: the authenticated principal recorded as the requester of a submission.
//!
//! Behind API Gateway the identity comes from the request context `lambda_http` attaches to the
//! request, in this order:
//!
//! 1. HTTP API IAM authorization: `authorizer.iam.userArn` (else `callerId`);
//! 2. HTTP API JWT authorizer (e.g. Cognito, Entra ID): claim `email`, else
//!    `preferred_username`, `username`, `sub`;
//! 3. Lambda authorizer context: `principal`, else `principalId`;
//! 4. REST API (payload v1): `identity.userArn`, else `identity.caller`.
//!
//! Without a request context (`onboard serve`, tests) the identity is taken from a header
//! (`X-Onboard-Principal` by default) when the configuration allows it. A request with neither
//! is refused with 401: a submission is never recorded without a requester.

use std::collections::HashMap;

use axum::http::{Extensions, HeaderMap, HeaderName};
use lambda_http::request::RequestContext;
use serde_json::Value;

/// The default header for the principal when running without API Gateway.
pub const DEFAULT_PRINCIPAL_HEADER: &str = "x-onboard-principal";

/// Where the principal may come from.
#[derive(Debug, Clone)]
pub struct PrincipalConfig {
    /// Accept this header when the request has no API Gateway identity. `None` in Lambda
    /// deployments, where only the authorizer's word counts.
    pub trusted_header: Option<HeaderName>,
}

impl PrincipalConfig {
    /// Local use: trust [`DEFAULT_PRINCIPAL_HEADER`].
    pub fn local() -> Self {
        PrincipalConfig {
            trusted_header: Some(HeaderName::from_static(DEFAULT_PRINCIPAL_HEADER)),
        }
    }
}

/// The caller's API Gateway request id, when the request came through API Gateway.
pub fn gateway_request_id(ext: &Extensions) -> Option<String> {
    match ext.get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(c) => c.request_id.clone(),
        RequestContext::ApiGatewayV1(c) => c.request_id.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The authenticated principal, if any.
pub fn principal(ext: &Extensions, headers: &HeaderMap, cfg: &PrincipalConfig) -> Option<String> {
    from_context(ext).or_else(|| {
        let name = cfg.trusted_header.as_ref()?;
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    })
}

fn from_context(ext: &Extensions) -> Option<String> {
    match ext.get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(c) => {
            let auth = c.authorizer.as_ref()?;
            auth.iam
                .as_ref()
                .and_then(|iam| iam.user_arn.clone().or_else(|| iam.caller_id.clone()))
                .or_else(|| auth.jwt.as_ref().and_then(|jwt| from_claims(&jwt.claims)))
                .or_else(|| from_fields(&auth.fields))
        }
        RequestContext::ApiGatewayV1(c) => c
            .identity
            .user_arn
            .clone()
            .or_else(|| c.identity.caller.clone())
            .or_else(|| from_fields(&c.authorizer.fields)),
        #[allow(unreachable_patterns)]
        _ => None,
    }
    .filter(|p| !p.trim().is_empty())
}

fn from_claims(claims: &HashMap<String, String>) -> Option<String> {
    ["email", "preferred_username", "username", "sub"]
        .iter()
        .find_map(|k| claims.get(*k).cloned())
}

fn from_fields(fields: &HashMap<String, Value>) -> Option<String> {
    ["principal", "principalId"]
        .iter()
        .find_map(|k| fields.get(*k).and_then(Value::as_str).map(str::to_string))
}
