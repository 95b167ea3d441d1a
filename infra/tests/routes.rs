//! The HTTP API's routes against the API's own OpenAPI document: every operation the function
//! serves is reachable through a route that authenticates it, and in JWT mode with scopes the
//! route group is the right one (read for reads and preflight, write for changes, admin for
//! adopt). Matching follows API Gateway: an exact path beats `{proxy+}`, a method beats ANY.

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
            }
        })
        .collect()
}

/// How specific a route is for a request, or `None` when it does not match.
fn matches(route: &Route, method: &str, path: &str) -> Option<(u8, u8)> {
    let method_rank = match route.method.as_str() {
        "ANY" => 0,
        m if m.eq_ignore_ascii_case(method) => 1,
        _ => return None,
    };
    let path_rank = if let Some(prefix) = route.path.strip_suffix("{proxy+}") {
        path.strip_prefix(prefix).filter(|rest| !rest.is_empty())?;
        0
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
        1
    };
    Some((path_rank, method_rank))
}

fn route_for<'a>(routes: &'a [Route], method: &str, path: &str) -> &'a Route {
    routes
        .iter()
        .filter_map(|r| matches(r, method, path).map(|rank| (rank, r)))
        .max_by_key(|(rank, _)| *rank)
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("no route serves {method} {path}"))
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
