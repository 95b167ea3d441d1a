//! Property tests of the API's outside inputs (issue 15, fuzzing): request paths and query
//! strings on every method, request bodies, webhook bodies (signed, so they reach the mapping)
//! and signature headers. Whatever arrives, the router answers — never a panic, never a 5xx —
//! and every refusal is a problem+json document that says what to fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::LazyLock;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request};
use common::*;
use onboard_api::webhooks::signature::{self, SignatureConfig};
use proptest::prelude::*;
use serde_json::{json, Value};

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
});

fn assert_answered(r: &Reply, what: &str) {
    assert!(r.status < 500, "{what}: {} {}", r.status, r.text);
    if r.status >= 400 {
        assert!(
            r.content_type().starts_with("application/problem+json"),
            "{what}: {} {}",
            r.content_type(),
            r.text
        );
        assert!(
            r.json["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{what}: a problem says what is wrong: {}",
            r.text
        );
    }
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,30}".prop_map(Value::String),
        Just(json!("https://crm.example.com/agent")),
        Just(json!(ALPHA)),
    ];
    leaf.prop_recursive(3, 20, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("displayName".to_string()),
                    Just("accessUrl".to_string()),
                    Just("instances".to_string()),
                    Just("requester".to_string()),
                    Just("state".to_string()),
                    Just("fields".to_string()),
                    ".{0,10}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A path of known and random segments, with a random query string.
fn any_path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("applications".to_string()),
        Just("adopt".to_string()),
        Just("drift".to_string()),
        Just("fix".to_string()),
        Just("retry".to_string()),
        Just("instances".to_string()),
        Just("pause".to_string()),
        Just("webhooks".to_string()),
        Just("preflight".to_string()),
        Just("sg-0123".to_string()),
        "[a-zA-Z0-9%._~-]{0,12}",
    ];
    (
        prop::collection::vec(segment, 0..6),
        "[a-zA-Z0-9=&%+._-]{0,30}",
    )
        .prop_map(|(segs, q)| {
            let mut p = format!("/{}", segs.join("/"));
            if !q.is_empty() {
                p.push('?');
                p.push_str(&q);
            }
            p
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn any_request_is_answered_without_a_server_error(
        method in prop_oneof![Just(Method::GET), Just(Method::POST), Just(Method::PATCH), Just(Method::DELETE), Just(Method::PUT)],
        path in any_path(),
        body in any_json(),
        key in prop::option::of("[ -~]{0,300}"),
    ) {
        let h = harness();
        let mut req = Request::builder()
            .method(method.clone())
            .uri(&path)
            .header("content-type", "application/json")
            .header("x-onboard-principal", "fuzz@example.com");
        if let Some(k) = &key {
            if let Ok(v) = HeaderValue::from_str(k) {
                req = req.header("idempotency-key", v);
            }
        }
        let req = req.body(Body::from(body.to_string())).unwrap();
        let r = RUNTIME.block_on(h.send(req));
        assert_answered(&r, &format!("{method} {path}"));
    }

    #[test]
    fn signed_webhook_bodies_reach_the_mapping_and_are_answered(
        source in prop_oneof![Just("servicenow"), Just("jira"), Just("generic"), Just("other")],
        body in any_json(),
    ) {
        let h = harness();
        let r = RUNTIME.block_on(h.webhook(source, body.to_string().as_bytes()));
        assert_answered(&r, &format!("webhook {source}"));
    }

    #[test]
    fn signature_headers_never_panic_and_forgeries_fail(
        ts in "[ -~]{0,20}",
        sig in "[ -~,]{0,200}",
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let cfg = SignatureConfig::new(SECRET.as_bytes().to_vec());
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&ts) {
            headers.insert("x-onboard-timestamp", v);
        }
        if let Ok(v) = HeaderValue::from_str(&sig) {
            headers.insert("x-onboard-signature", v);
        }
        let now = ts.trim().parse::<u64>().unwrap_or(1_700_000_000);
        let verdict = signature::verify(&cfg, "generic", &headers, &body, now);
        let genuine = signature::sign(SECRET.as_bytes(), ts.trim(), &body);
        if !sig.contains(genuine.trim_start_matches("sha256=")) {
            prop_assert!(verdict.is_err(), "a forged signature passed: {sig}");
        }
    }
}
