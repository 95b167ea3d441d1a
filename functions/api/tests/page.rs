//! The portal page through the router: its assets and security headers, the CSRF guard on
//! state-changing routes, and the API answers the page relies on (the preview, the suggested
//! namespace, the listing filters).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::Request;
use common::*;
use serde_json::json;

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_a_strict_policy() {
    let h = harness();
    for (path, kind) in [
        ("/", "text/html"),
        ("/portal/portal.js", "text/javascript"),
        ("/portal/portal.css", "text/css"),
    ] {
        // No identity needed: the page holds no data.
        let r = h.get_as(path, "").await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert!(
            r.content_type().starts_with(kind),
            "{path}: {}",
            r.content_type()
        );
        let csp = r.header("content-security-policy").unwrap();
        for part in [
            "script-src 'self'",
            "frame-ancestors 'none'",
            "default-src 'none'",
        ] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    let page = h.get_as("/", "").await.text;
    // Every script and style comes from a file the policy admits: none inline.
    assert!(page.contains(r#"<script src="/portal/portal.js""#));
    assert!(
        !page.contains("<script>") && !page.contains("style="),
        "{page}"
    );
    assert!(page.contains(">Acting as</label>"), "{page}");
    let script = h.get_as("/portal/portal.js", "").await.text;
    for label in [
        "Display name",
        "Namespace",
        "Access URL",
        "Approved origins",
        "Permissions",
        "Instances",
        "Preview plan",
        "Submit",
    ] {
        assert!(script.contains(&format!("\"{label}\"")), "{label}");
    }
    // Values go in as text only.
    assert!(!script.contains("innerHTML") && !script.contains("insertAdjacentHTML"));
}

#[tokio::test]
async fn api_answers_carry_security_headers_too() {
    let h = harness();
    let r = h.get("/applications").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        r.header("content-security-policy"),
        Some("default-src 'none'; frame-ancestors 'none'")
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
}

#[tokio::test]
async fn state_changing_requests_from_another_site_are_refused_and_record_nothing() {
    let h = harness();
    let alice = ("x-onboard-principal", "alice@example.com");
    let body = spec("https://crm.example.com/panel").to_string();
    for headers in [
        vec![("sec-fetch-site", "cross-site")],
        vec![
            ("host", "api.example.com"),
            ("origin", "https://evil.example"),
        ],
    ] {
        let mut req = Request::post("/applications").header("content-type", "application/json");
        for (k, v) in headers.iter().chain([&alice]) {
            req = req.header(*k, *v);
        }
        let r = h.send(req.body(Body::from(body.clone())).unwrap()).await;
        assert_problem(&r, 403, ":forbidden");
        assert!(r.json["fix"].as_str().unwrap().contains("portal page"));
    }
    // A form-encoded body is what a foreign <form> can send without a CORS preflight.
    let req = Request::post("/applications")
        .header("content-type", "text/plain")
        .header(alice.0, alice.1)
        .body(Body::from(body.clone()))
        .unwrap();
    assert_problem(&h.send(req).await, 403, ":forbidden");
    assert_eq!(h.saga_count().await, 0, "nothing recorded");
    assert!(h.sent().is_empty());

    // The page's own requests (same origin) and non-browser clients pass.
    let req = Request::post("/applications")
        .header("content-type", "application/json")
        .header("host", "api.example.com")
        .header("origin", "https://api.example.com")
        .header("sec-fetch-site", "same-origin")
        .header(alice.0, alice.1)
        .body(Body::from(body))
        .unwrap();
    assert_eq!(h.send(req).await.status, 202);
    // Reads are never refused for where they come from.
    let req = Request::get("/applications")
        .header("sec-fetch-site", "cross-site")
        .header(alice.0, alice.1)
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.send(req).await.status, 200);
}

#[tokio::test]
async fn preflight_previews_the_plan_and_suggests_the_namespace_even_when_invalid() {
    let h = harness();
    let alice = [("x-onboard-principal", "alice@example.com")];
    let r = h
        .post("/preflight", &spec("https://crm.example.com/panel"), &alice)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let preview = &r.json["preview"];
    assert_eq!(preview["namespace"], r.json["namespace"]);
    let steps = preview["steps"].as_array().unwrap();
    assert!(steps.iter().any(|s| s["step"] == "grant_slr_policy"
        && s["action"].as_str().unwrap().contains("PutRolePolicy")));
    let policies = preview["slrPolicies"].as_array().unwrap();
    assert_eq!(policies.len(), 2, "one per instance");
    assert!(policies[0]["diff"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l.as_str().unwrap().starts_with("+ ")));

    // Invalid (no display name), yet the namespace the URL gives is answered for the form.
    let r = h
        .post(
            "/preflight",
            &json!({"displayName": "", "accessUrl": "https://crm.example.com/panel", "instances": []}),
            &alice,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["ok"], false);
    assert_eq!(r.json["namespace"], "crm.example.com/panel");
    assert!(r.json.get("preview").is_none());
    assert!(r.json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["field"] == "displayName"));
}

#[tokio::test]
async fn the_listing_filters_by_kind_namespace_and_requester() {
    let h = harness();
    for (url, key) in [
        ("https://crm.example.com/a", "k-a"),
        ("https://crm.example.com/b", "k-b"),
    ] {
        assert_eq!(h.submit(&spec(url), Some(key)).await.status, 202);
    }
    let ids = |r: &Reply| -> Vec<String> {
        r.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["namespace"].as_str().unwrap().to_string())
            .collect()
    };
    let all = h.get("/applications").await;
    assert_eq!(ids(&all).len(), 2);
    let one = h.get("/applications?namespace=crm.example.com/b").await;
    assert_eq!(ids(&one), vec!["crm.example.com/b"]);
    let none = h.get("/applications?kind=offboard").await;
    assert!(ids(&none).is_empty(), "{}", none.text);
    let onboards = h.get("/applications?kind=onboard").await;
    assert_eq!(ids(&onboards).len(), 2);
    let mine = h.get("/applications?requester=alice@example.com").await;
    assert_eq!(ids(&mine).len(), 2);
    let theirs = h.get("/applications?requester=bob@example.com").await;
    assert!(ids(&theirs).is_empty());
}
