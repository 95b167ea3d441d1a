//! Who may do what (issue 21): an application's owner, its owner group and the administrators
//! may read and change it; anyone else gets 403 problem+json naming who may, and nothing is
//! recorded, queued or changed in AWS. Listings show a non-administrator only what they own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::world::*;
use common::*;
use serde_json::{json, Value};

const MALLORY: &str = "mallory@example.com";
const ADMIN: &str = "platform-admin@example.com";

fn admin_world() -> World {
    world_with(&[("ADMIN_PRINCIPALS", ADMIN), ("ADMIN_GROUPS", "platform")])
}

/// Every request a stranger might try on application `app`: (method, path, body).
fn attempts(app: &str) -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        ("GET", format!("/applications/{app}"), None),
        ("GET", format!("/applications/{app}/drift"), None),
        ("GET", format!("/applications/{app}/history"), None),
        (
            "PATCH",
            format!("/applications/{app}"),
            Some(json!({"displayName": "Hijacked"})),
        ),
        (
            "POST",
            format!("/applications/{app}/instances/{ALPHA}/pause"),
            None,
        ),
        ("POST", format!("/applications/{app}/drift/fix"), None),
        ("POST", format!("/applications/{app}/retry"), None),
        ("DELETE", format!("/applications/{app}"), None),
    ]
}

#[tokio::test]
async fn another_principal_can_neither_read_nor_change_an_application_and_nothing_changes() {
    let w = admin_world();
    let app = w.onboarded().await;
    let sagas = w.h.saga_count().await;
    let queued = w.h.sent().len();
    let aws = w.aws.snapshot();

    for (method, path, body) in attempts(&app) {
        let r = w
            .request_as(MALLORY, method, &path, body.as_ref(), None)
            .await;
        assert_problem(&r, 403, ":forbidden");
        let detail = r.json["detail"].as_str().unwrap();
        assert!(detail.starts_with(MALLORY), "{method} {path}: {detail}");
        let fix = r.json["fix"].as_str().unwrap();
        assert!(
            fix.contains(ALICE) && fix.contains(ADMIN),
            "{method} {path}: the fix names who may: {fix}"
        );
    }

    assert_eq!(w.h.saga_count().await, sagas, "nothing recorded");
    assert_eq!(w.h.sent().len(), queued, "nothing queued");
    assert_eq!(w.aws.snapshot(), aws, "nothing changed in AWS");
}

#[tokio::test]
async fn an_administrator_may_change_any_application_and_the_record_says_by_which_rule() {
    let w = admin_world();
    let app = w.onboarded().await;

    let view = w.h.get_as(&format!("/applications/{app}"), ADMIN).await;
    assert_eq!(view.status, 200, "{}", view.text);
    let r = w
        .request_as(
            ADMIN,
            "POST",
            &format!("/applications/{app}/instances/{ALPHA}/pause"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let saga = w.record(r.json["sagaId"].as_str().unwrap()).await;
    assert_eq!(saga.log[0].event, "authorized");
    assert_eq!(
        saga.log[0].detail.as_deref(),
        Some("platform-admin@example.com may change: rule admin")
    );
    w.drain().await;
    assert_eq!(
        w.record(&saga.id).await.status,
        onboard_core::record::SagaStatus::Succeeded
    );

    // A member of an administrator group, too.
    let r = w
        .request_as_in(
            "carol@example.com",
            "platform",
            "POST",
            &format!("/applications/{app}/instances/{ALPHA}/resume"),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let saga = w.record(r.json["sagaId"].as_str().unwrap()).await;
    assert!(saga.log[0]
        .detail
        .as_deref()
        .unwrap()
        .ends_with("rule admin-group (group platform)"));
}

#[tokio::test]
async fn the_owner_group_named_in_the_spec_may_change_the_application() {
    let w = admin_world();
    let mut body = spec("https://crm.example.com/agent");
    body["ownerGroup"] = json!("crm-team");
    let r = w.h.submit(&body, Some("k-group")).await;
    assert_eq!(r.status, 202, "{}", r.text);
    w.drain().await;
    let app = r.json["sagaId"].as_str().unwrap().to_string();
    let pause = format!("/applications/{app}/instances/{ALPHA}/pause");

    let outsider = w
        .request_as_in("dave@example.com", "sales-team", "POST", &pause)
        .await;
    assert_problem(&outsider, 403, ":forbidden");
    assert!(outsider.json["fix"].as_str().unwrap().contains("crm-team"));

    let member = w
        .request_as_in("erin@example.com", "crm-team", "POST", &pause)
        .await;
    assert_eq!(member.status, 202, "{}", member.text);
    let saga = w.record(member.json["sagaId"].as_str().unwrap()).await;
    assert_eq!(
        saga.log[0].detail.as_deref(),
        Some("erin@example.com may change: rule owner-group (group crm-team)")
    );
}

#[tokio::test]
async fn a_listing_shows_a_non_administrator_only_their_own_sagas() {
    let w = admin_world();
    let app = w.onboarded().await;
    // Alice's application gets a change saga; Bob onboards one of his own.
    let r = w
        .request(
            "POST",
            &format!("/applications/{app}/instances/{ALPHA}/pause"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let mut bobs = spec("https://tickets.example.com/agent");
    bobs["namespace"] = json!("tickets.example.com");
    let r =
        w.h.post(
            "/applications",
            &bobs,
            &[("x-onboard-principal", "bob@example.com")],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let bob_app = r.json["sagaId"].as_str().unwrap().to_string();

    let ids = |r: &Reply| -> Vec<String> {
        let mut v: Vec<String> = r.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let alice = w.h.get("/applications?limit=100").await;
    assert_eq!(alice.status, 200, "{}", alice.text);
    let alice_ids = ids(&alice);
    assert_eq!(
        alice_ids.len(),
        2,
        "her onboarding and its change: {alice_ids:?}"
    );
    assert!(!alice_ids.contains(&bob_app));

    let bob =
        w.h.get_as("/applications?limit=100", "bob@example.com")
            .await;
    assert_eq!(ids(&bob), vec![bob_app.clone()]);

    let stranger = w.h.get_as("/applications?limit=100", MALLORY).await;
    assert_eq!(ids(&stranger), Vec::<String>::new());

    let admin = w.h.get_as("/applications?limit=100", ADMIN).await;
    assert_eq!(ids(&admin).len(), 3);
}

#[tokio::test]
async fn reads_and_retries_need_an_authenticated_caller() {
    let w = admin_world();
    let app = w.onboarded().await;
    for path in [
        format!("/applications/{app}"),
        format!("/applications/{app}/drift"),
        "/applications".to_string(),
    ] {
        assert_problem(&w.h.get_as(&path, "").await, 401, ":unauthenticated");
    }
    let r =
        w.h.post(&format!("/applications/{app}/retry"), &json!({}), &[])
            .await;
    assert_problem(&r, 401, ":unauthenticated");
}
