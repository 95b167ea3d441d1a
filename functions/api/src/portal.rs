//! The self-service portal: one page and its script and stylesheet, embedded in the binary
//! and served by the API's own router (Lambda and `onboard serve`), so no web server or CDN
//! is needed. The page holds no data: everything it shows comes from the API routes, called
//! with the caller's own credentials, and every value is inserted as text, never as markup.

use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::Api;

const INDEX: &str = include_str!("../portal/index.html");
const SCRIPT: &str = include_str!("../portal/portal.js");
const STYLE: &str = include_str!("../portal/portal.css");

/// The page's policy: its own script and stylesheet only (no inline script or style), calls
/// to its own origin only, and never framed.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                            img-src 'self' data:; connect-src 'self'; form-action 'none'; \
                            base-uri 'none'; frame-ancestors 'none'";

/// Every other answer (JSON, problem+json): nothing to run, never framed.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The routes of the page and its assets; not in the OpenAPI document.
pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/portal/portal.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/portal/portal.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Not fingerprinted: revalidate so a new deployment's page and script arrive together.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    resp
}

/// Security headers on every answer; the page's own CSP is set where it is served.
pub async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(API_CSP));
    resp
}
