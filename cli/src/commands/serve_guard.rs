//! What keeps `onboard serve` local. It runs sagas with the operator's AWS credentials and
//! trusts the `X-Onboard-Principal` header, so any web page the operator visits must not reach
//! it: a page can make the browser send requests to 127.0.0.1 (with a simple POST) or, through
//! DNS rebinding, under its own host name. Three checks stop that, before any route runs:
//!
//! * the `Host` must be one this server answers to (127.0.0.1, localhost or [::1] on its port,
//!   or a `--allow-host`), which a rebinding page cannot fake;
//! * an `Origin`, when the browser sends one, must be `http://` and one of those hosts;
//! * every route but `/health`, `/openapi.json`, the portal page and its assets (which hold
//!   no data) and the HMAC-signed webhooks needs the per-run token printed at start
//!   (`Authorization: Bearer <token>`), which no other page knows. The printed portal link
//!   carries it in the URL fragment, which the browser never sends to any server.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use onboard_api::{ApiProblem, Kind};

/// The allowed hosts and the token of one `serve` run.
#[derive(Debug, Clone)]
pub struct Guard {
    hosts: BTreeSet<String>,
    token: String,
}

impl Guard {
    /// The loopback names on `port`, plus `extra` (`name` gets `:port`; `name:port` is kept).
    pub fn new(port: u16, extra: &[String], token: String) -> Self {
        let mut hosts: BTreeSet<String> = ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .map(|h| format!("{h}:{port}"))
            .collect();
        for h in extra {
            let h = h.trim().to_ascii_lowercase();
            if h.is_empty() {
                continue;
            }
            let has_port = h
                .rsplit_once(':')
                .is_some_and(|(name, p)| !name.ends_with(':') && p.parse::<u16>().is_ok());
            // A bare IPv6 literal (`::1`) has colons but no port.
            let bare_ipv6 = h.contains("::") && !h.starts_with('[');
            if has_port && !bare_ipv6 {
                hosts.insert(h);
            } else {
                hosts.insert(format!("{h}:{port}"));
            }
        }
        Guard { hosts, token }
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.hosts.contains(&host.trim().to_ascii_lowercase())
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        origin
            .trim()
            .to_ascii_lowercase()
            .strip_prefix("http://")
            .is_some_and(|h| self.hosts.contains(h))
    }

    fn token_matches(&self, sent: &str) -> bool {
        // Constant-time: the comparison does not stop at the first differing byte.
        let (a, b) = (sent.as_bytes(), self.token.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    fn allowed_list(&self) -> String {
        self.hosts.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// Routes a caller without the token may use: liveness, the API description, the portal page
/// and its assets, and the webhooks (authenticated by their HMAC signature instead).
fn open_route(method: &Method, path: &str) -> bool {
    (method == Method::GET
        && (matches!(path, "/" | "/health" | "/openapi.json") || path.starts_with("/portal/")))
        || (method == Method::POST && path.starts_with("/webhooks/"))
}

/// The middleware: refuse what fails a check with problem+json, pass the rest on.
pub async fn check(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !guard.host_allowed(host) {
        return ApiProblem::new(
            Kind::Forbidden,
            format!("Host {host:?} is not one this local server answers to"),
        )
        .fix(format!(
            "Call it as one of {} (or start it with --allow-host NAME).",
            guard.allowed_list()
        ))
        .into_response();
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !guard.origin_allowed(origin) {
            return ApiProblem::new(
                Kind::Forbidden,
                format!("requests from the web origin {origin:?} are refused"),
            )
            .fix(
                "Only pages served by this server (or tools that send no Origin) may call it; \
                 a page of another site cannot.",
            )
            .into_response();
        }
    }
    if !open_route(req.method(), req.uri().path()) {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !guard.token_matches(sent.trim()) {
            return ApiProblem::new(
                Kind::Unauthenticated,
                "the request does not carry this server's token",
            )
            .fix(
                "Send `Authorization: Bearer <token>` with the token `onboard serve` printed at \
                 start (or set it with --token / ONBOARD_SERVE_TOKEN).",
            )
            .into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_and_extra_hosts_on_the_port_are_allowed() {
        let g = Guard::new(
            8080,
            &["onboard.test".into(), "Box:9000".into()],
            "t".into(),
        );
        for ok in [
            "127.0.0.1:8080",
            "LOCALHOST:8080",
            "[::1]:8080",
            "onboard.test:8080",
            "box:9000",
        ] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for bad in ["evil.example:8080", "127.0.0.1:8081", "127.0.0.1", ""] {
            assert!(!g.host_allowed(bad), "{bad}");
        }
        assert!(g.origin_allowed("http://localhost:8080"));
        assert!(!g.origin_allowed("https://localhost:8080"));
        assert!(!g.origin_allowed("null"));
        assert!(!g.origin_allowed("http://evil.example:8080"));
    }

    #[test]
    fn the_token_must_match_exactly() {
        let g = Guard::new(1, &[], "abc123".into());
        assert!(g.token_matches("abc123"));
        for bad in ["abc12", "abc1234", "ABC123", ""] {
            assert!(!g.token_matches(bad), "{bad}");
        }
    }

    #[test]
    fn only_the_page_its_assets_liveness_the_description_and_webhooks_go_without_the_token() {
        for (m, p) in [
            (Method::GET, "/"),
            (Method::GET, "/portal/portal.js"),
            (Method::GET, "/health"),
            (Method::GET, "/openapi.json"),
            (Method::POST, "/webhooks/jira"),
        ] {
            assert!(open_route(&m, p), "{m} {p}");
        }
        for (m, p) in [
            (Method::GET, "/applications"),
            (Method::POST, "/"),
            (Method::POST, "/portal/portal.js"),
            (Method::POST, "/preflight"),
            (Method::GET, "/portalx"),
        ] {
            assert!(!open_route(&m, p), "{m} {p}");
        }
    }
}
