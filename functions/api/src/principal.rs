//! Who is calling: the authenticated principal recorded as the requester of a submission.
//!
//! Behind API Gateway the identity comes from the request context `lambda_http` attaches to the
//! request, in this order:
//!
//! 1. HTTP API IAM authorization: `authorizer.iam.userArn` (else `callerId`);
//! 2. HTTP API JWT authorizer (e.g. Cognito, Entra ID): `jwt:<iss>|<sub>` — the issuer and the
//!    subject, which the identity provider never reassigns; never the `email` or a username,
//!    which a user may be able to change (and then take over another user's applications);
//! 3. Lambda authorizer context: `authorizer:<principal>` (else `principalId`);
//! 4. REST API (payload v1): `identity.userArn`, else `identity.caller`.
//!
//! The caller's groups (for owner-group and admin-group rules) come from the JWT's
//! `cognito:groups` or `groups` claim, a Lambda authorizer's `groups` field or, locally, the
//! `X-Onboard-Groups` header (comma-separated) when the principal header is trusted.
//!
//! Only IAM principals are recorded bare (their ARN); every other kind carries its prefix, so a
//! claim or authorizer value shaped like an ARN can never pass for an IAM principal (preflight
//! simulates IAM principals only).
//!
//! Without a request context (`onboard serve`, tests) the identity is taken from a header
//! (`X-Onboard-Principal` by default) when the configuration allows it. A request with neither
//! is refused with 401: a submission is never recorded without a requester.

use std::collections::{BTreeSet, HashMap};

use axum::http::{Extensions, HeaderMap, HeaderName};
use lambda_http::request::RequestContext;
use serde_json::Value;

/// The default header for the principal when running without API Gateway.
pub const DEFAULT_PRINCIPAL_HEADER: &str = "x-onboard-principal";

/// The caller's groups when running without API Gateway (only read when the principal header
/// is trusted).
pub const GROUPS_HEADER: &str = "x-onboard-groups";

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

/// The authenticated caller's groups (empty when the identity carries none).
pub fn groups(ext: &Extensions, headers: &HeaderMap, cfg: &PrincipalConfig) -> BTreeSet<String> {
    let from_ctx = match ext.get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(c)) => c.authorizer.as_ref().and_then(|auth| {
            auth.jwt
                .as_ref()
                .and_then(|jwt| {
                    ["cognito:groups", "groups"]
                        .iter()
                        .find_map(|k| jwt.claims.get(*k))
                        .map(|v| split_groups(v))
                })
                .or_else(|| auth.fields.get("groups").map(groups_field))
        }),
        Some(RequestContext::ApiGatewayV1(c)) => {
            c.authorizer.fields.get("groups").map(groups_field)
        }
        #[allow(unreachable_patterns)]
        _ => None,
    };
    if let Some(g) = from_ctx {
        return g;
    }
    if from_context(ext).is_some() || cfg.trusted_header.is_none() {
        // An API Gateway identity without groups: never fall back to a header.
        return BTreeSet::new();
    }
    headers
        .get(GROUPS_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(split_groups)
        .unwrap_or_default()
}

/// `[a b]` (how HTTP APIs flatten an array claim), `a,b` or `["a","b"]` → {a, b}.
fn split_groups(raw: &str) -> BTreeSet<String> {
    raw.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(|g| g.trim().trim_matches('"'))
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect()
}

fn groups_field(v: &Value) -> BTreeSet<String> {
    match v {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .flat_map(split_groups)
            .collect(),
        Value::String(s) => split_groups(s),
        _ => BTreeSet::new(),
    }
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
    let nonblank = |k: &str| claims.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let (iss, sub) = (nonblank("iss")?, nonblank("sub")?);
    Some(format!("jwt:{iss}|{sub}"))
}

fn from_fields(fields: &HashMap<String, Value>) -> Option<String> {
    ["principal", "principalId"]
        .iter()
        .find_map(|k| fields.get(*k).and_then(Value::as_str))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| format!("authorizer:{p}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn jwt_principals_are_issuer_and_subject_never_the_mutable_email() {
        let claims: HashMap<String, String> = [
            ("iss", "https://issuer.example"),
            ("sub", "8f0c"),
            ("email", "arn:aws:iam::111122223333:role/Admin"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            from_claims(&claims).as_deref(),
            Some("jwt:https://issuer.example|8f0c")
        );
        let mut no_sub = claims.clone();
        no_sub.remove("sub");
        assert_eq!(from_claims(&no_sub), None, "no subject: no identity (401)");
        let fields: HashMap<String, Value> = [(
            "principal".to_string(),
            Value::from("arn:aws:iam::1:role/X"),
        )]
        .into();
        assert_eq!(
            from_fields(&fields).as_deref(),
            Some("authorizer:arn:aws:iam::1:role/X")
        );
    }

    #[test]
    fn groups_claims_are_split_however_the_gateway_flattened_them() {
        let want: BTreeSet<String> = ["admins", "crm-team"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(split_groups("[admins crm-team]"), want);
        assert_eq!(split_groups("admins, crm-team"), want);
        assert_eq!(split_groups(r#"["admins","crm-team"]"#), want);
        assert!(split_groups("[]").is_empty());
    }

    #[test]
    fn the_groups_header_is_read_only_when_the_principal_header_is_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert(GROUPS_HEADER, "admins".parse().unwrap());
        let ext = Extensions::new();
        assert_eq!(groups(&ext, &headers, &PrincipalConfig::local()).len(), 1);
        let lambda = PrincipalConfig {
            trusted_header: None,
        };
        assert!(groups(&ext, &headers, &lambda).is_empty());
    }
}
