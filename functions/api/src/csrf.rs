//! Cross-site request forgery guard for every state-changing route but the signed webhooks.
//!
//! The API's credentials (SigV4, a JWT bearer token, serve's token) are never ambient, so a
//! foreign page cannot ride on them today; this guard keeps it so if a deployment puts a
//! cookie-based proxy in front. A browser says where a request comes from (`Sec-Fetch-Site`,
//! `Origin`), and the only bodies a foreign page can send without a CORS preflight are form
//! and plain-text ones: each of those is refused.

use axum::extract::Request;
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::problem::{ApiProblem, Kind};

/// Content types a cross-site `<form>` or `fetch` may send without a CORS preflight.
const SIMPLE_TYPES: [&str; 3] = [
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "text/plain",
];

/// Refuses a state-changing request that a browser marks as cross-site, whose `Origin` is not
/// the API's own, or whose body is form-encoded or plain text.
pub async fn guard(req: Request, next: Next) -> Response {
    if safe(req.method()) || req.uri().path().starts_with("/webhooks/") {
        return next.run(req).await;
    }
    match refusal(req.headers()) {
        Some(detail) => ApiProblem::new(Kind::Forbidden, detail)
            .fix(
                "Call the API from the portal page it serves or from a non-browser client; send \
                 JSON bodies with Content-Type: application/json.",
            )
            .into_response(),
        None => next.run(req).await,
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the `host[:port]` the request was sent to.
fn same_authority(origin: &str, own: &str) -> bool {
    let Ok(from) = url::Url::parse(origin) else {
        return false;
    };
    let (host, port) = match own.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || own.starts_with('[') => match p.parse::<u16>() {
            Ok(p) => (h, Some(p)),
            Err(_) => (own, None),
        },
        _ => (own, None),
    };
    let same_host = from
        .host_str()
        .is_some_and(|h| h.eq_ignore_ascii_case(host));
    let same_port = match port {
        Some(p) => from.port_or_known_default() == Some(p),
        None => from.port().is_none(),
    };
    same_host && same_port
}

fn safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Why the request looks forged, if it does.
fn refusal(headers: &HeaderMap) -> Option<String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        if site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site") {
            return Some(format!(
                "the browser says this request comes from another site (Sec-Fetch-Site: {site})"
            ));
        }
    }
    if let Some(origin) = text(header::ORIGIN.as_str()) {
        let own = text("x-forwarded-host").or(text(header::HOST.as_str()));
        if !own.is_some_and(|own| same_authority(origin, own)) {
            return Some(format!(
                "the request comes from origin `{origin}`, not from this API's own page"
            ));
        }
    }
    if let Some(kind) = text(header::CONTENT_TYPE.as_str()) {
        let essence = kind.split(';').next().unwrap_or("").trim();
        if SIMPLE_TYPES.iter().any(|t| essence.eq_ignore_ascii_case(t)) {
            return Some(format!(
                "a `{essence}` body is what a cross-site form sends; this API takes JSON"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn same_origin_json_and_non_browser_clients_pass() {
        assert_eq!(refusal(&headers(&[])), None);
        assert_eq!(
            refusal(&headers(&[
                ("host", "api.example.com"),
                ("origin", "https://api.example.com"),
                ("sec-fetch-site", "same-origin"),
                ("content-type", "application/json"),
            ])),
            None
        );
        assert_eq!(
            refusal(&headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080"),
            ])),
            None
        );
        assert_eq!(
            refusal(&headers(&[
                ("host", "api.example.com:443"),
                ("origin", "https://api.example.com"),
            ])),
            None
        );
    }

    #[test]
    fn cross_site_foreign_origins_and_form_bodies_are_refused() {
        for h in [
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[("sec-fetch-site", "same-site")]),
            headers(&[
                ("host", "api.example.com"),
                ("origin", "https://evil.example"),
            ]),
            headers(&[("host", "api.example.com"), ("origin", "null")]),
            headers(&[
                ("host", "api.example.com:443"),
                ("origin", "https://api.example.com:8443"),
            ]),
            headers(&[("content-type", "text/plain;charset=UTF-8")]),
            headers(&[("content-type", "application/x-www-form-urlencoded")]),
            headers(&[("content-type", "multipart/form-data; boundary=x")]),
        ] {
            assert!(refusal(&h).is_some(), "{h:?} should be refused");
        }
    }
}
