//! Portal routes through the router (`tower::ServiceExt::oneshot`) with the in-memory store and
//! queue: problem+json, 202 + Location, idempotency, listing, status, preflight, limits, the
//! OpenAPI document, and principals from real API Gateway v2 events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::*;
use onboard_core::preflight::{FetchError, FetchedHeaders, PageFetcher};
use onboard_core::record::SagaStatus;
use onboard_core::store::SagaStore;
use serde_json::{json, Value};

#[tokio::test]
async fn an_invalid_spec_is_a_400_problem_listing_every_field_with_its_fix() {
    let h = harness();
    let body = json!({
        "displayName": "",
        "accessUrl": "http://crm.example.com",
        "instances": ["not-an-instance"],
        "permissions": ["User.Detail.View"]
    });
    let r = h.submit(&body, Some("k-invalid")).await;

    assert_problem(&r, 400, ":validation");
    let problems = r.json["problems"].as_array().unwrap();
    let fields: Vec<&str> = problems
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    for f in ["displayName", "accessUrl", "instances[0]"] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
    assert!(problems
        .iter()
        .all(|p| p["fix"].as_str().is_some_and(|s| !s.is_empty())
            && p["problem"].as_str().is_some_and(|s| !s.is_empty())));
    assert!(r.json["detail"]
        .as_str()
        .unwrap()
        .contains(&problems.len().to_string()));
    assert_eq!(h.saga_count().await, 0, "nothing recorded");
    assert!(h.sent().is_empty(), "nothing queued");
}

#[tokio::test]
async fn malformed_json_is_a_validation_problem_at_the_document() {
    let h = harness();
    let r = h
        .post_raw(
            "/applications",
            b"{\"displayName\": ".to_vec(),
            &[("x-onboard-principal", "alice@example.com")],
        )
        .await;
    assert_problem(&r, 400, ":validation");
    assert!(r.json["problems"][0]["problem"]
        .as_str()
        .unwrap()
        .contains("not valid JSON"));
    let r = h
        .post_raw(
            "/applications",
            b"[1,2]".to_vec(),
            &[("x-onboard-principal", "a@b.c")],
        )
        .await;
    assert_problem(&r, 400, ":validation");
}

#[tokio::test]
async fn a_valid_spec_is_recorded_queued_and_answered_202_with_location() {
    let h = harness();
    let r = h
        .submit(&spec("https://crm.example.com/agent"), Some("k-1"))
        .await;

    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.json["sagaId"].as_str().unwrap().to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("/applications/{id}").as_str())
    );
    assert_eq!(r.json["statusUrl"], format!("/applications/{id}"));
    assert_eq!(r.json["namespace"], "crm.example.com/agent");
    assert_eq!(r.json["created"], true);
    assert_eq!(r.json["queued"], true);
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].saga_id, id);
    assert_eq!(sent[0].namespace, "crm.example.com/agent");
    let record = h.store.get(&id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Pending);
    assert_eq!(record.input["requester"]["principal"], "alice@example.com");
    assert_eq!(record.input["requester"]["source"], "PORTAL");
    assert_eq!(h.emf.total("SagasSubmitted"), 1.0);

    // The status page is the core's SagaView.
    let s = h.get(&format!("/applications/{id}")).await;
    assert_eq!(s.status, 200);
    assert_eq!(s.json["id"], id.as_str());
    assert_eq!(s.json["status"], "PENDING");
    assert!(s.json["steps"].as_array().unwrap().len() >= 6);
    assert!(s.json["resources"].is_object());
}

#[tokio::test]
async fn an_unknown_saga_is_a_404_problem() {
    let h = harness();
    assert_problem(&h.get("/applications/sg-nope").await, 404, ":not-found");
    assert_problem(&h.get("/no/such/route").await, 404, ":not-found");
}

#[tokio::test]
async fn idempotency_repeat_returns_the_same_saga_and_a_changed_body_conflicts() {
    let h = harness();
    let first = h
        .submit(&spec("https://crm.example.com/agent"), Some("k-2"))
        .await;
    let again = h
        .submit(&spec("https://crm.example.com/agent"), Some("k-2"))
        .await;
    assert_eq!(again.status, 202);
    assert_eq!(again.json["sagaId"], first.json["sagaId"]);
    assert_eq!(again.json["created"], false);
    assert_eq!(again.header("location"), first.header("location"));

    let mut changed = spec("https://crm.example.com/agent");
    changed["displayName"] = json!("Acme CRM v2");
    let conflict = h.submit(&changed, Some("k-2")).await;
    assert_problem(&conflict, 409, ":idempotency-conflict");
    assert_eq!(conflict.json["sagaId"], first.json["sagaId"]);
    assert!(conflict.json["fix"].as_str().unwrap().contains("new"));
    assert_eq!(h.saga_count().await, 1);
}

/// A portal body's `requester.ticketId` is a reference, never the idempotency key: otherwise
/// a portal user could submit with the next change number and squat the key the approved
/// ticket's webhook needs (it would get 409 for 30 days). Without a header, a repeat is a new
/// request, refused while the first holds the namespace.
#[tokio::test]
async fn a_portal_ticket_id_is_a_reference_not_the_key() {
    let h = harness();
    let mut body = spec("https://crm.example.com/agent");
    body["requester"] =
        json!({"source": "PORTAL", "principal": "ignored", "ticketId": "CHG0000042"});
    let a = h.submit(&body, None).await;
    assert_eq!(a.status, 202, "{}", a.text);
    assert_eq!(a.json["ticketId"], "CHG0000042");
    let b = h.submit(&body, None).await;
    assert_problem(&b, 409, ":namespace-busy");
    assert_eq!(h.saga_count().await, 1);
}

#[tokio::test]
async fn bad_keys_busy_namespaces_and_missing_principals_are_refused() {
    let h = harness();
    let bad = h
        .submit(&spec("https://crm.example.com/agent"), Some("ticket:CHG1"))
        .await;
    assert_problem(&bad, 400, ":bad-request");

    h.submit(&spec("https://crm.example.com/agent"), Some("k-a"))
        .await;
    let busy = h
        .submit(&spec("https://crm.example.com/agent"), Some("k-b"))
        .await;
    assert_problem(&busy, 409, ":namespace-busy");
    assert!(busy.json["sagaId"].is_string());

    let anon = h
        .post("/applications", &spec("https://kb.example.com"), &[])
        .await;
    assert_problem(&anon, 401, ":unauthenticated");
    assert_eq!(h.saga_count().await, 1);
}

#[tokio::test]
async fn a_saga_recorded_but_not_queued_is_still_accepted() {
    let h = harness();
    h.queue.down.store(true, Ordering::SeqCst);
    let r = h
        .submit(&spec("https://crm.example.com/agent"), Some("k-q"))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["queued"], false);
    assert_eq!(h.saga_count().await, 1);
    assert_eq!(h.emf.total("EnqueueFailures"), 1.0);
}

#[tokio::test]
async fn listing_pages_through_every_saga_and_filters_by_status() {
    let h = harness();
    for i in 0..5 {
        let r = h
            .submit(
                &spec(&format!("https://app{i}.example.com")),
                Some(&format!("k-{i}")),
            )
            .await;
        assert_eq!(r.status, 202);
    }
    let mut seen = Vec::new();
    let mut url = "/applications?limit=2".to_string();
    let mut pages = 0;
    loop {
        let r = h.get(&url).await;
        assert_eq!(r.status, 200, "{}", r.text);
        pages += 1;
        let items = r.json["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        for it in items {
            seen.push(it["id"].as_str().unwrap().to_string());
            assert_eq!(it["requestedBy"], "alice@example.com");
        }
        match r.json["nextCursor"].as_str() {
            Some(c) => url = format!("/applications?limit=2&cursor={c}"),
            None => break,
        }
        assert!(pages < 10);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5);

    let pending = h.get("/applications?status=PENDING&limit=100").await;
    assert_eq!(pending.json["items"].as_array().unwrap().len(), 5);
    assert!(pending.json.get("nextCursor").is_none());
    let none = h.get("/applications?status=SUCCEEDED").await;
    assert_eq!(none.json["items"], json!([]));

    assert_problem(
        &h.get("/applications?status=DONE").await,
        400,
        ":bad-request",
    );
    assert_problem(&h.get("/applications?limit=0").await, 400, ":bad-request");
    assert_problem(&h.get("/applications?limit=ten").await, 400, ":bad-request");
    assert_problem(&h.get("/applications?cursor=zz").await, 400, ":bad-request");
    // A cursor for another status filter is refused.
    let first = h.get("/applications?status=PENDING&limit=1").await;
    let c = first.json["nextCursor"].as_str().unwrap().to_string();
    assert_problem(
        &h.get(&format!("/applications?status=SUCCEEDED&cursor={c}"))
            .await,
        400,
        ":bad-request",
    );
}

#[tokio::test]
async fn preflight_plans_without_recording_anything() {
    let h = harness();
    let r = h
        .post(
            "/preflight",
            &spec("https://crm.example.com/agent"),
            &[("x-onboard-principal", "alice@example.com")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["ok"], true);
    assert_eq!(r.json["namespace"], "crm.example.com/agent");
    let plan: Vec<(String, Option<String>)> = r.json["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["instance"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(plan.first().unwrap().0, "validate");
    assert!(plan.contains(&("associate".to_string(), Some(ALPHA.to_string()))));
    assert!(plan.contains(&("associate".to_string(), Some(BETA.to_string()))));
    assert_eq!(plan.last().unwrap().0, "activate");
    assert_eq!(h.saga_count().await, 0);
    assert!(h.sent().is_empty());

    let bad = h
        .post(
            "/preflight",
            &json!({"displayName": "x"}),
            &[("x-onboard-principal", "a@b.c")],
        )
        .await;
    assert_eq!(bad.status, 200);
    assert_eq!(bad.json["ok"], false);
    assert!(!bad.json["problems"].as_array().unwrap().is_empty());

    // A namespace held by a running saga is reported.
    h.submit(&spec("https://crm.example.com/agent"), Some("k-1"))
        .await;
    let held = h
        .post(
            "/preflight",
            &spec("https://crm.example.com/agent"),
            &[("x-onboard-principal", "a@b.c")],
        )
        .await;
    assert_eq!(held.json["ok"], false);
    assert_eq!(held.json["problems"][0]["field"], "namespace");
}

/// Answers every fetch with one fixed header.
struct StubFetcher(&'static str, &'static str);

#[async_trait::async_trait]
impl PageFetcher for StubFetcher {
    async fn fetch_headers(&self, url: &str) -> Result<FetchedHeaders, FetchError> {
        Ok(FetchedHeaders {
            final_url: url.to_string(),
            status: 200,
            headers: vec![(self.0.to_string(), self.1.to_string())],
            redirects: Vec::new(),
        })
    }
}

#[tokio::test]
async fn preflight_warns_when_the_access_url_cannot_be_framed() {
    let h = harness_custom(&[], |api| {
        api.fetcher = Some(Arc::new(StubFetcher("X-Frame-Options", "DENY")));
    });
    let r = h
        .post(
            "/preflight",
            &spec("https://crm.example.com/agent"),
            &[("x-onboard-principal", "alice@example.com")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Warnings do not block a submission.
    assert_eq!(r.json["ok"], true, "{}", r.text);
    let warnings = r.json["warnings"].as_array().unwrap();
    let framing: Vec<&Value> = warnings
        .iter()
        .filter(|w| w["field"] == "accessUrl")
        .collect();
    assert_eq!(framing.len(), 2, "{}", r.text);
    let problem = framing[0]["problem"].as_str().unwrap();
    assert!(problem.contains("X-Frame-Options: DENY"), "{problem}");
    assert!(problem.contains("placeholder alias"), "{problem}");
    let fixes: Vec<&str> = framing.iter().map(|w| w["fix"].as_str().unwrap()).collect();
    assert!(
        fixes[0].contains("Content-Security-Policy: frame-ancestors https://*.my.connect.aws"),
        "{}",
        fixes[0]
    );
    assert!(
        fixes[1].contains("Content-Security-Policy: frame-ancestors https://*.awsapps.com"),
        "{}",
        fixes[1]
    );

    // A page that allows the agent workspace gets no framing warning.
    let h = harness_custom(&[], |api| {
        api.fetcher = Some(Arc::new(StubFetcher(
            "Content-Security-Policy",
            "frame-ancestors https://*.my.connect.aws https://*.awsapps.com",
        )));
    });
    let r = h
        .post(
            "/preflight",
            &spec("https://crm.example.com/agent"),
            &[("x-onboard-principal", "alice@example.com")],
        )
        .await;
    assert!(
        !r.json["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["field"] == "accessUrl"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn oversized_bodies_are_413_problems() {
    let h = harness();
    let big = vec![b' '; 20_000];
    let r = h
        .post_raw(
            "/applications",
            big.clone(),
            &[("x-onboard-principal", "a@b.c")],
        )
        .await;
    assert_problem(&r, 413, ":payload-too-large");
    let r = h.post_raw("/webhooks/generic", big, &[]).await;
    assert_problem(&r, 413, ":payload-too-large");
    assert_eq!(h.saga_count().await, 0);
}

#[tokio::test]
async fn health_answers_ok() {
    let r = harness().get("/health").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json, json!({"status": "ok"}));
}

#[tokio::test]
async fn openapi_json_is_valid_and_documents_every_route() {
    let r = harness().get("/openapi.json").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type(), "application/json");
    let doc: Value = serde_json::from_str(&r.text).expect("valid JSON");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for (path, method) in [
        ("/applications", "post"),
        ("/applications", "get"),
        ("/applications/{id}", "get"),
        ("/preflight", "post"),
        ("/webhooks/{source}", "post"),
        ("/openapi.json", "get"),
        ("/health", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
    let post = &doc["paths"]["/applications"]["post"];
    assert!(post["responses"]["202"].is_object());
    assert!(post["responses"]["400"]["content"]["application/problem+json"].is_object());
    assert!(doc["components"]["schemas"]["ApiProblem"].is_object());
    assert!(doc["components"]["schemas"]["SagaView"].is_object());
}

#[tokio::test]
async fn the_principal_comes_from_the_api_gateway_iam_context() {
    let h = harness();
    let r = h
        .send_event(include_str!("fixtures/apigw-v2-submit-iam.json"))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.json["sagaId"].as_str().unwrap();
    let record = h.store.get(id).await.unwrap().unwrap();
    assert_eq!(
        record.input["requester"]["principal"],
        "arn:aws:sts::111122223333:assumed-role/PortalUsers/alice",
        "the authorizer's identity wins over the body and the header"
    );
    assert_eq!(record.input["requester"]["source"], "PORTAL");
    assert_eq!(
        record.idempotency_key.as_deref(),
        Some("3f1c2a8e-portal-0001")
    );
}

#[tokio::test]
async fn without_a_trusted_header_only_the_gateway_identity_counts() {
    let h = harness_with(&[("TRUST_PRINCIPAL_HEADER", "false")]);
    let r = h
        .submit(&spec("https://crm.example.com/agent"), Some("k"))
        .await;
    assert_problem(&r, 401, ":unauthenticated");
    let r = h
        .send_event(include_str!("fixtures/apigw-v2-submit-iam.json"))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
}

#[test]
fn a_missing_webhook_secret_names_the_variable() {
    let err = onboard_api::config::webhooks_from_env(&onboard_lambda_common::Env::from_pairs([]))
        .unwrap_err();
    assert!(err.to_string().contains("WEBHOOK_SECRET"), "{err}");
}

#[test]
fn a_short_webhook_secret_is_refused_at_init_without_echoing_it() {
    for (name, pairs) in [
        (
            "WEBHOOK_SECRET",
            vec![("WEBHOOK_SECRET", "hunter2-too-short")],
        ),
        (
            "WEBHOOK_SECRET_PREVIOUS",
            vec![
                ("WEBHOOK_SECRET", SECRET),
                ("WEBHOOK_SECRET_PREVIOUS", "old-and-short"),
            ],
        ),
    ] {
        let err =
            onboard_api::config::webhooks_from_env(&onboard_lambda_common::Env::from_pairs(pairs))
                .unwrap_err()
                .to_string();
        assert!(
            err.contains(name) && err.contains("at least 32 bytes"),
            "{err}"
        );
        assert!(!err.contains("short"), "the secret is not echoed: {err}");
    }
}

#[tokio::test]
async fn retry_queues_a_redrive_only_for_a_rollback_failed_saga() {
    let h = harness();
    let r = h
        .submit(&spec("https://crm.example.com/agent"), Some("k-retry"))
        .await;
    let id = r.json["sagaId"].as_str().unwrap().to_string();
    let path = format!("/applications/{id}/retry");
    let alice = [("x-onboard-principal", "alice@example.com")];

    // Someone who does not own it may not re-drive it.
    let stranger = h
        .post(
            &path,
            &serde_json::json!({}),
            &[("x-onboard-principal", "mallory@example.com")],
        )
        .await;
    assert_problem(&stranger, 403, ":forbidden");

    // PENDING: nothing to re-drive.
    let refused = h.post(&path, &serde_json::json!({}), &alice).await;
    assert_problem(&refused, 409, ":wrong-state");
    assert!(refused.json["detail"].as_str().unwrap().contains("PENDING"));

    // The saga's rollback failed: a re-drive is queued and the answer points at its status.
    let mut rec = h.store.get(&id).await.unwrap().unwrap();
    rec.version += 1;
    rec.status = SagaStatus::RollbackFailed;
    h.store.update(&rec, rec.version - 1).await.unwrap();
    let ok = h.post(&path, &serde_json::json!({}), &alice).await;
    assert_eq!(ok.status, 202, "{}", ok.text);
    assert_eq!(
        ok.header("location"),
        Some(format!("/applications/{id}").as_str())
    );
    let sent = h.sent();
    let last = sent.last().unwrap();
    assert_eq!(
        (last.saga_id.as_str(), last.action),
        (id.as_str(), onboard_core::service::RunAction::Redrive)
    );
    // The record says who asked for the re-drive, and by which rule.
    let rec = h.store.get(&id).await.unwrap().unwrap();
    let asked = rec
        .log
        .iter()
        .rfind(|l| l.event == "redrive_requested")
        .unwrap();
    assert_eq!(
        asked.detail.as_deref(),
        Some("alice@example.com may retry: rule owner")
    );

    assert_problem(
        &h.post(
            "/applications/sg-nope/retry",
            &serde_json::json!({}),
            &alice,
        )
        .await,
        404,
        ":not-found",
    );
}
