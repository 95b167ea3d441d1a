//! The HTTP API's routes against the API's own OpenAPI document: every operation the function
//! serves is reachable through a route that authenticates it, and in JWT mode with scopes the
//! route group is the right one (read for reads and preflight, write for changes, admin for
//! adopt). Matching follows API Gateway: an exact path beats `{proxy+}`, a longer literal
//! prefix beats a shorter one, a method beats ANY. And the only routes without an authorizer are
//! the ones that must be: health, the HMAC-checked webhooks, and the portal page with its static
//! files (not in the OpenAPI document).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use onboard_infra::template::{render, Template};
use onboard_infra::workspace_root;
use serde_norway::Value;

struct Route {
    id: String,
    method: String,
    path: String,
    auth: String,
    scopes: Vec<String>,
    target: String,
}

fn routes() -> Vec<Route> {
    let template = Template::load(&workspace_root().join("infra/template.yaml")).unwrap();
    template
        .resources()
        .into_iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::ApiGatewayV2::Route"))
        .map(|(id, r)| {
            let props = &r["Properties"];
            let key = props["RouteKey"].as_str().unwrap();
            let (method, path) = key.split_once(' ').unwrap();
            // `!If [UseJwtScopes, [..], NoValue]`: the scopes of the configured branch.
            let scopes = match &props["AuthorizationScopes"] {
                Value::Tagged(t) => match &t.value {
                    Value::Sequence(s) => s[1]
                        .as_sequence()
                        .map(|l| l.iter().map(render).collect())
                        .unwrap_or_default(),
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            };
            Route {
                id,
                method: method.to_string(),
                path: path.to_string(),
                auth: render(&props["AuthorizationType"]),
                scopes,
                target: render(&props["Target"]),
            }
        })
        .collect()
}

/// How specific a route is for a request, or `None` when it does not match. As API Gateway
/// picks: a full match (static segments or `{param}`) beats a greedy `{proxy+}`; then the route
/// with more literal segments (`/portal/{proxy+}` over `/{proxy+}`, `/applications/adopt` over
/// `/applications/{id}`); then a method beats ANY. `{proxy+}` needs at least one segment, so
/// `/{proxy+}` does not match `/`.
fn matches(route: &Route, method: &str, path: &str) -> Option<(u8, usize, u8)> {
    let method_rank = match route.method.as_str() {
        "ANY" => 0,
        m if m.eq_ignore_ascii_case(method) => 1,
        _ => return None,
    };
    let literal = |segments: &[&str]| {
        segments
            .iter()
            .filter(|s| !s.is_empty() && !s.starts_with('{'))
            .count()
    };
    let (path_rank, literal_segments) = if let Some(prefix) = route.path.strip_suffix("{proxy+}") {
        path.strip_prefix(prefix).filter(|rest| !rest.is_empty())?;
        (0, literal(&prefix.split('/').collect::<Vec<_>>()))
    } else {
        let want: Vec<_> = route.path.split('/').collect();
        let got: Vec<_> = path.split('/').collect();
        let same = want.len() == got.len()
            && want
                .iter()
                .zip(&got)
                .all(|(w, g)| w == g || (w.starts_with('{') && w.ends_with('}')));
        if !same {
            return None;
        }
        (1, literal(&want))
    };
    Some((path_rank, literal_segments, method_rank))
}

/// The route API Gateway picks for a request, `None` when none matches. Two equally specific
/// matches are a template error: which one wins would be up to API Gateway.
fn try_route_for<'a>(routes: &'a [Route], method: &str, path: &str) -> Option<&'a Route> {
    let mut candidates: Vec<_> = routes
        .iter()
        .filter_map(|r| matches(r, method, path).map(|rank| (rank, r)))
        .collect();
    candidates.sort_by_key(|(rank, _)| std::cmp::Reverse(*rank));
    if let [(a, first), (b, second), ..] = candidates.as_slice() {
        assert_ne!(
            a, b,
            "{method} {path}: {} and {} match equally",
            first.id, second.id
        );
    }
    candidates.first().map(|(_, r)| *r)
}

fn route_for<'a>(routes: &'a [Route], method: &str, path: &str) -> &'a Route {
    try_route_for(routes, method, path).unwrap_or_else(|| panic!("no route serves {method} {path}"))
}

fn group(scopes: &[String]) -> &'static str {
    let has = |s: &str| scopes.iter().any(|x| x.ends_with(&format!("}}{s}")));
    match (has("read"), has("write"), has("admin")) {
        (true, true, true) => "read",
        (false, true, true) => "write",
        (false, false, true) => "admin",
        _ => "unexpected",
    }
}

#[test]
fn every_operation_is_authenticated_and_scoped_by_what_it_does() {
    let routes = routes();
    let doc = serde_json::to_value(onboard_api::openapi()).unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            let route = route_for(&routes, method, path);
            let what = format!("{} {path} -> {}", method.to_uppercase(), route.id);
            match path.as_str() {
                "/health" | "/openapi.json" if route.auth == "NONE" => continue,
                p if p.starts_with("/webhooks/") => {
                    assert_eq!(route.auth, "NONE", "{what}: HMAC-checked in the function");
                    continue;
                }
                _ => {}
            }
            assert_eq!(route.auth, "!If [UseJwt, JWT, AWS_IAM]", "{what}");
            let expected = match (method.as_str(), path.as_str()) {
                ("get", _) | ("post", "/preflight") => "read",
                ("post", "/applications/adopt") => "admin",
                _ => "write",
            };
            assert_eq!(group(&route.scopes), expected, "{what}: {:?}", route.scopes);
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} operations checked");
}

const AUTHENTICATED: &str = "!If [UseJwt, JWT, AWS_IAM]";

#[test]
fn the_portal_page_and_its_files_load_without_credentials() {
    let routes = routes();
    for (path, id) in [
        ("/", "HttpApiPortalPageRoute"),
        ("/portal/portal.js", "HttpApiPortalAssetsRoute"),
        ("/portal/portal.css", "HttpApiPortalAssetsRoute"),
    ] {
        let route = route_for(&routes, "get", path);
        let what = format!("GET {path} -> {}", route.id);
        assert_eq!(route.id, id, "{what}");
        assert_eq!(
            route.auth, "NONE",
            "{what}: a browser loads it without a token"
        );
        assert_eq!(
            route.target, "!Sub integrations/${HttpApiIntegration}",
            "{what}: served by the API function"
        );
    }
    // Only GET, and only under /portal/: everything else the page calls stays authenticated.
    for (method, path) in [
        ("post", "/portal/portal.js"),
        ("put", "/portal/portal.js"),
        ("delete", "/portal/portal.js"),
        ("get", "/portalx"),
        ("get", "/portal"),
        ("get", "/applications"),
        ("get", "/openapi.json"),
        ("post", "/applications"),
    ] {
        let route = route_for(&routes, method, path);
        assert_eq!(
            route.auth,
            AUTHENTICATED,
            "{} {path} -> {}",
            method.to_uppercase(),
            route.id
        );
    }
    // No route serves any other method on `/` (`{proxy+}` needs a segment).
    for method in ["post", "put", "patch", "delete"] {
        if let Some(route) = try_route_for(&routes, method, "/") {
            assert_eq!(route.auth, AUTHENTICATED, "{method} / -> {}", route.id);
        }
    }
}

#[test]
fn only_health_webhooks_and_the_portal_files_skip_the_authorizer() {
    let routes = routes();
    let mut open = Vec::new();
    for route in &routes {
        let key = format!("{} {} ({})", route.method, route.path, route.id);
        match route.auth.as_str() {
            AUTHENTICATED => {}
            "NONE" => {
                assert!(
                    route.scopes.is_empty(),
                    "{key}: scopes without an authorizer"
                );
                open.push(key);
            }
            other => panic!("{key}: unexpected AuthorizationType {other}"),
        }
    }
    open.sort();
    assert_eq!(
        open,
        [
            "GET / (HttpApiPortalPageRoute)",
            "GET /health (HttpApiHealthRoute)",
            "GET /portal/{proxy+} (HttpApiPortalAssetsRoute)",
            "POST /webhooks/{source} (HttpApiWebhookRoute)",
        ],
        "the routes without IAM or JWT authorization"
    );
}
