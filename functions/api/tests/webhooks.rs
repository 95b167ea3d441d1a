//! Ticket webhooks through the router: HMAC verification (ok, bad, stale, missing → 401 with
//! nothing recorded), ServiceNow / Jira / generic mapping, redelivery and conflicts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use onboard_api::webhooks::signature;
use onboard_core::store::SagaStore;
use serde_json::{json, Value};

const SERVICENOW: &str = include_str!("fixtures/servicenow-approved.json");
const JIRA: &str = include_str!("fixtures/jira-approved.json");
const JIRA_IN_REVIEW: &str = include_str!("fixtures/jira-in-review.json");
const GENERIC: &str = include_str!("fixtures/generic-approved.json");

async fn requester(h: &Harness, r: &Reply) -> Value {
    let id = r.json["sagaId"].as_str().unwrap();
    h.store.get(id).await.unwrap().unwrap().input["requester"].clone()
}

#[tokio::test]
async fn a_signed_servicenow_approval_is_recorded_and_queued() {
    let h = harness();
    let r = h.webhook("servicenow", SERVICENOW.as_bytes()).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["ticketId"], "CHG0012345");
    assert_eq!(r.json["namespace"], "crm.example.com/agent");
    assert!(r
        .header("location")
        .unwrap()
        .starts_with("/applications/sg-"));
    assert_eq!(
        requester(&h, &r).await,
        json!({"source": "TICKET", "principal": "servicenow:bob.approver", "ticketId": "CHG0012345"})
    );
    assert_eq!(h.sent().len(), 1);
}

#[tokio::test]
async fn the_api_gateway_fixture_with_its_recorded_signature_verifies_once_in_the_window() {
    let h = harness();
    let event = include_str!("fixtures/apigw-v2-webhook-servicenow.json");
    let r = h.send_event(event).await;
    assert_eq!(r.status, 202, "{}", r.text);

    // The same delivery replayed after the window: refused, nothing new recorded.
    h.clock.advance(Duration::from_secs(301));
    let replay = h.send_event(event).await;
    assert_problem(&replay, 401, ":bad-signature");
    assert!(replay.json["detail"]
        .as_str()
        .unwrap()
        .contains("replay window"));
    assert_eq!(h.saga_count().await, 1);
}

#[tokio::test]
async fn bad_stale_and_missing_signatures_are_401_with_nothing_recorded() {
    let h = harness();
    let body = SERVICENOW.as_bytes();
    let ts = h.now_secs().to_string();
    let wrong = signature::sign(b"not-the-secret", &ts, body);
    let r = h
        .post_raw(
            "/webhooks/servicenow",
            body.to_vec(),
            &[
                ("x-onboard-timestamp", &ts),
                ("x-onboard-signature", &wrong),
            ],
        )
        .await;
    assert_problem(&r, 401, ":bad-signature");
    assert!(r.json["fix"].as_str().unwrap().contains("HMAC-SHA256"));

    // Signed over a different body (tampered in transit).
    let good_for_other = signature::sign(SECRET.as_bytes(), &ts, b"{}");
    let r = h
        .post_raw(
            "/webhooks/servicenow",
            body.to_vec(),
            &[
                ("x-onboard-timestamp", &ts),
                ("x-onboard-signature", &good_for_other),
            ],
        )
        .await;
    assert_problem(&r, 401, ":bad-signature");

    let stale = (h.now_secs() - 600).to_string();
    let sig = signature::sign(SECRET.as_bytes(), &stale, body);
    let r = h
        .post_raw(
            "/webhooks/servicenow",
            body.to_vec(),
            &[
                ("x-onboard-timestamp", &stale),
                ("x-onboard-signature", &sig),
            ],
        )
        .await;
    assert_problem(&r, 401, ":bad-signature");

    let r = h.post_raw("/webhooks/servicenow", body.to_vec(), &[]).await;
    assert_problem(&r, 401, ":bad-signature");

    assert_eq!(h.saga_count().await, 0);
    assert!(h.sent().is_empty());
    assert_eq!(h.emf.total("WebhookSignatureFailures"), 4.0);
}

#[tokio::test]
async fn header_names_are_configurable() {
    let h = harness_with(&[
        ("WEBHOOK_SIGNATURE_HEADER", "X-Hub-Signature-256"),
        ("WEBHOOK_TIMESTAMP_HEADER", "X-Request-Timestamp"),
    ]);
    let ts = h.now_secs().to_string();
    let sig = signature::sign(SECRET.as_bytes(), &ts, GENERIC.as_bytes());
    let r = h
        .post_raw(
            "/webhooks/generic",
            GENERIC.as_bytes().to_vec(),
            &[("x-request-timestamp", &ts), ("x-hub-signature-256", &sig)],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    // The default names no longer count.
    let r = h.webhook("generic", GENERIC.as_bytes()).await;
    assert_problem(&r, 401, ":bad-signature");
}

#[tokio::test]
async fn a_source_with_its_own_secret_refuses_the_shared_one_and_cannot_sign_for_others() {
    const JIRA_SECRET: &str = "jira-own-secret-0123456789abcdef0123";
    let h = harness_with(&[("WEBHOOK_SECRET_JIRA", JIRA_SECRET)]);
    let ts = h.now_secs().to_string();
    let post = |path: &'static str, body: &'static str, secret: &'static str| {
        let sig = signature::sign(secret.as_bytes(), &ts, body.as_bytes());
        let ts = ts.clone();
        let h = &h;
        async move {
            h.post_raw(
                path,
                body.as_bytes().to_vec(),
                &[("x-onboard-timestamp", &ts), ("x-onboard-signature", &sig)],
            )
            .await
        }
    };
    // The shared secret no longer signs for Jira.
    let r = post("/webhooks/jira", JIRA, SECRET).await;
    assert_problem(&r, 401, ":bad-signature");
    assert_eq!(h.saga_count().await, 0);
    // Jira's own secret cannot sign for another source.
    let r = post("/webhooks/generic", GENERIC, JIRA_SECRET).await;
    assert_problem(&r, 401, ":bad-signature");
    assert_eq!(h.saga_count().await, 0);
    let r = post("/webhooks/jira", JIRA, JIRA_SECRET).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let r = post("/webhooks/generic", GENERIC, SECRET).await;
    assert_eq!(r.status, 202, "{}", r.text);

    let err = onboard_api::config::webhooks_from_env(&onboard_lambda_common::Env::from_pairs([
        ("WEBHOOK_SECRET", SECRET),
        ("WEBHOOK_SECRET_JIRA", "short"),
    ]))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("WEBHOOK_SECRET_JIRA") && !err.contains("short"),
        "{err}"
    );
}

#[tokio::test]
async fn a_jira_approval_maps_to_a_spec_and_earlier_states_are_ignored() {
    let h = harness();
    let ignored = h.webhook("jira", JIRA_IN_REVIEW.as_bytes()).await;
    assert_eq!(ignored.status, 200, "{}", ignored.text);
    assert_eq!(ignored.json["ignored"], true);
    assert_eq!(ignored.json["ticketId"], "OPS-1234");
    assert!(ignored.json["reason"]
        .as_str()
        .unwrap()
        .contains("In Review"));
    assert_eq!(h.saga_count().await, 0);

    let r = h.webhook("jira", JIRA.as_bytes()).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["namespace"], "kb.example.com");
    assert_eq!(
        requester(&h, &r).await,
        json!({"source": "TICKET", "principal": "jira:bob@example.com", "ticketId": "OPS-1234"})
    );
}

#[tokio::test]
async fn a_generic_ticket_maps_too() {
    let h = harness();
    let r = h.webhook("generic", GENERIC.as_bytes()).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(
        requester(&h, &r).await["principal"],
        "ticket:carol@example.com"
    );
}

#[tokio::test]
async fn redelivery_returns_the_same_saga_and_a_changed_spec_conflicts() {
    let h = harness();
    let first = h.webhook("servicenow", SERVICENOW.as_bytes()).await;
    h.clock.advance(Duration::from_secs(30));
    let again = h.webhook("servicenow", SERVICENOW.as_bytes()).await;
    assert_eq!(again.status, 202);
    assert_eq!(again.json["sagaId"], first.json["sagaId"]);
    assert_eq!(again.json["created"], false);

    let mut changed: Value = serde_json::from_str(SERVICENOW).unwrap();
    changed["u_onboarding_spec"]["displayName"] = json!("Acme CRM renamed");
    let r = h
        .webhook("servicenow", changed.to_string().as_bytes())
        .await;
    assert_problem(&r, 409, ":idempotency-conflict");
    assert_eq!(h.saga_count().await, 1);
}

#[tokio::test]
async fn the_same_ticket_id_from_two_systems_is_two_requests() {
    let h = harness();
    let servicenow = h.webhook("servicenow", SERVICENOW.as_bytes()).await;
    assert_eq!(servicenow.status, 202, "{}", servicenow.text);
    let mut generic: Value = serde_json::from_str(GENERIC).unwrap();
    generic["ticketId"] = json!("CHG0012345");
    let r = h.webhook("generic", generic.to_string().as_bytes()).await;
    assert_eq!(r.status, 202, "keys are namespaced by source: {}", r.text);
    assert_eq!(r.json["created"], true);
    assert_ne!(r.json["sagaId"], servicenow.json["sagaId"]);
    let rec = h
        .store
        .get(r.json["sagaId"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        rec.idempotency_key.as_deref(),
        Some("ticket:generic:CHG0012345")
    );
}

#[tokio::test]
async fn an_approved_ticket_with_a_bad_spec_points_into_the_webhook_body() {
    let h = harness();
    let mut body: Value = serde_json::from_str(JIRA).unwrap();
    body["issue"]["fields"]["onboardingSpec"] =
        json!({"displayName": "KB", "accessUrl": "ftp://kb.example.com", "instances": []});
    let r = h.webhook("jira", body.to_string().as_bytes()).await;
    assert_problem(&r, 400, ":validation");
    let fields: Vec<&str> = r.json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert!(
        fields
            .iter()
            .all(|f| f.starts_with("issue.fields.onboardingSpec")),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"issue.fields.onboardingSpec.accessUrl"),
        "{fields:?}"
    );

    let mut body: Value = serde_json::from_str(SERVICENOW).unwrap();
    body.as_object_mut().unwrap().remove("u_onboarding_spec");
    let r = h.webhook("servicenow", body.to_string().as_bytes()).await;
    assert_problem(&r, 400, ":validation");
    assert_eq!(r.json["problems"][0]["field"], "u_onboarding_spec");

    let r = h.webhook("servicenow", b"not json").await;
    assert_problem(&r, 400, ":validation");
    assert_eq!(h.saga_count().await, 0);
}

#[tokio::test]
async fn unknown_sources_are_404() {
    let h = harness();
    let r = h.webhook("remedy", GENERIC.as_bytes()).await;
    assert_problem(&r, 404, ":not-found");
}
