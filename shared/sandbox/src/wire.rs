//! What goes on the wire: the three services, AWS-shaped errors, and rendering of rest-json and
//! awsQuery responses exactly as the SDKs parse them (the protocol the botocore service model names: awsQuery XML envelopes and error shapes).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The emulated services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Service {
    /// Amazon AppIntegrations (rest-json, signing name `app-integrations`).
    #[serde(rename = "appintegrations", alias = "app-integrations")]
    AppIntegrations,
    /// Amazon Connect (rest-json, signing name `connect`).
    #[serde(rename = "connect")]
    Connect,
    /// IAM (awsQuery, signing name `iam`).
    #[serde(rename = "iam")]
    Iam,
}

impl Service {
    /// The name used in the control API and the call log.
    pub fn name(self) -> &'static str {
        match self {
            Self::AppIntegrations => "appintegrations",
            Self::Connect => "connect",
            Self::Iam => "iam",
        }
    }

    /// From a SigV4 credential-scope service name.
    pub(crate) fn from_signing_name(name: &str) -> Option<Self> {
        match name {
            "app-integrations" => Some(Self::AppIntegrations),
            "connect" => Some(Self::Connect),
            "iam" => Some(Self::Iam),
            _ => None,
        }
    }

    /// The service's modeled 500.
    pub(crate) fn internal_error(self, message: &str) -> ApiError {
        let code = match self {
            Self::AppIntegrations => "InternalServiceError",
            Self::Connect => "InternalServiceException",
            Self::Iam => "ServiceFailure",
        };
        ApiError::new(code, 500, message)
    }

    /// The service's throttling error: 429 `ThrottlingException` for the rest-json services,
    /// 400 `Throttling` for IAM (the Rust SDK retries both by code).
    pub(crate) fn throttling(self, retry_after_ms: Option<u64>) -> ApiError {
        let mut error = match self {
            Self::Iam => ApiError::new("Throttling", 400, "Rate exceeded"),
            _ => ApiError::new("ThrottlingException", 429, "Rate exceeded"),
        };
        error.retry_after_ms = retry_after_ms;
        error
    }

    /// What the service answers for a request it has no operation for.
    pub(crate) fn unknown_operation(self, what: &str) -> ApiError {
        match self {
            Self::Iam => ApiError::new(
                "InvalidAction",
                400,
                &format!("Could not find operation {what} for version 2010-05-08"),
            ),
            _ => ApiError::new(
                "UnknownOperationException",
                404,
                &format!("No operation matches {what}"),
            ),
        }
    }
}

/// An error returned to the caller in the service's wire format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// The wire code: the shape name for rest-json, the short code (`NoSuchEntity`) for IAM.
    pub code: String,
    /// HTTP status.
    pub status: u16,
    /// Human message.
    pub message: String,
    /// Milliseconds sent in `x-amz-retry-after` (throttling only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    /// An error with the given code, status and message.
    pub fn new(code: &str, status: u16, message: &str) -> Self {
        Self {
            code: code.to_owned(),
            status,
            message: message.to_owned(),
            retry_after_ms: None,
        }
    }
}

/// A successful result, before the envelope.
#[derive(Debug, PartialEq)]
pub(crate) enum Reply {
    /// rest-json body.
    Json(Value),
    /// awsQuery: the XML inside `<OpResult>`, or `None` for operations without output.
    Query(Option<String>),
}

/// A handler's outcome.
pub(crate) type Outcome = Result<Reply, ApiError>;

const XMLNS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";

/// RFC 3986 unreserved characters stay; everything else is escaped (how IAM returns policy
/// documents and how the SDKs encode path labels).
pub(crate) const STRICT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes with [`STRICT`].
pub(crate) fn url_encode(text: &str) -> String {
    utf8_percent_encode(text, STRICT).to_string()
}

/// Escapes text for an XML element body.
pub(crate) fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            other => out.push(other),
        }
    }
    out
}

/// `<Name>escaped</Name>`.
pub(crate) fn xml_el(name: &str, text: &str) -> String {
    format!("<{name}>{}</{name}>", xml_escape(text))
}

/// The service named in the SigV4 credential scope (`AKID/date/region/service/aws4_request`),
/// from the `Authorization` header or a presigned URL's `X-Amz-Credential`.
pub(crate) fn signing_service(headers: &HeaderMap, query: &[(String, String)]) -> Option<String> {
    let from_header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| {
            let start = auth.find("Credential=")? + "Credential=".len();
            let rest = &auth[start..];
            let end = rest
                .find(|c: char| c == ',' || c.is_whitespace())
                .unwrap_or(rest.len());
            Some(rest[..end].to_owned())
        });
    let credential = from_header.or_else(|| {
        query
            .iter()
            .find(|(k, _)| k == "X-Amz-Credential")
            .map(|(_, v)| v.clone())
    })?;
    credential.split('/').nth(3).map(str::to_owned)
}

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn response(status: u16, content_type: &'static str, request_id: &str, body: String) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    headers.insert("x-amzn-requestid", header(request_id));
    resp
}

/// Renders an outcome in the service's protocol.
pub(crate) fn render(
    service: Service,
    operation: &str,
    request_id: &str,
    outcome: Outcome,
) -> Response {
    match outcome {
        Ok(Reply::Json(body)) => response(200, "application/json", request_id, body.to_string()),
        Ok(Reply::Query(result)) => {
            let result = result
                .map(|inner| format!("<{operation}Result>{inner}</{operation}Result>"))
                .unwrap_or_default();
            let body = format!(
                "<{operation}Response xmlns=\"{XMLNS}\">{result}<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{operation}Response>"
            );
            response(200, "text/xml", request_id, body)
        }
        Err(error) => render_error(service, request_id, &error),
    }
}

/// Renders an error: JSON with `x-amzn-ErrorType` for rest-json, `<ErrorResponse>` for IAM.
pub(crate) fn render_error(service: Service, request_id: &str, error: &ApiError) -> Response {
    let mut resp = match service {
        Service::Iam => {
            let kind = if error.status >= 500 {
                "Receiver"
            } else {
                "Sender"
            };
            let body = format!(
                "<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>{kind}</Type>{}{}</Error>{}</ErrorResponse>",
                xml_el("Code", &error.code),
                xml_el("Message", &error.message),
                xml_el("RequestId", request_id)
            );
            response(error.status, "text/xml", request_id, body)
        }
        Service::AppIntegrations | Service::Connect => {
            let body = serde_json::json!({"Message": error.message, "__type": error.code});
            let mut resp = response(
                error.status,
                "application/json",
                request_id,
                body.to_string(),
            );
            resp.headers_mut()
                .insert("x-amzn-errortype", header(&error.code));
            resp
        }
    };
    if let Some(ms) = error.retry_after_ms {
        resp.headers_mut()
            .insert("x-amz-retry-after", header(&ms.to_string()));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_service_reads_the_credential_scope() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/app-integrations/aws4_request, SignedHeaders=host, Signature=abc"),
        );
        assert_eq!(
            signing_service(&headers, &[]).as_deref(),
            Some("app-integrations")
        );
        assert_eq!(signing_service(&HeaderMap::new(), &[]), None);
    }

    #[test]
    fn url_encoding_matches_iam() {
        assert_eq!(
            url_encode("{\"Version\": \"2012-10-17\"+}"),
            "%7B%22Version%22%3A%20%222012-10-17%22%2B%7D"
        );
    }
}
