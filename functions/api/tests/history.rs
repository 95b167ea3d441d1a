//! `GET /applications/{id}/history` through the router: the owner reads every saga on the
//! application oldest first, each with requester, source, ticket (the onboarding's from its
//! body, the lifecycle requests' from `X-Onboard-Ticket`) and before → after; a stranger gets
//! the 403 `GET /applications/{id}` gives; unknown ids are 404 and a lifecycle saga's id 409.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use common::world::*;
use common::*;
use serde_json::{json, Value};

/// A request as [`ALICE`] naming `ticket` in `X-Onboard-Ticket`.
async fn with_ticket(
    w: &World,
    method: &str,
    path: &str,
    body: Option<&Value>,
    ticket: &str,
) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header("x-onboard-principal", ALICE)
        .header("x-onboard-ticket", ticket)
        .body(body.map_or_else(Body::empty, |v| Body::from(v.to_string())))
        .unwrap();
    w.h.send(req).await
}

/// Onboard (ticket CHG-1 in the body), edit (CHG-2) and pause BETA (CHG-3), a second apart.
async fn application_with_history(w: &World) -> (String, Vec<String>) {
    let mut body = spec("https://crm.example.com/agent");
    body["requester"] = json!({"ticketId": "CHG-1"});
    let r = w.h.submit(&body, Some("k-history")).await;
    assert_eq!(r.status, 202, "{}", r.text);
    w.drain().await;
    let app = r.json["sagaId"].as_str().unwrap().to_string();
    let mut sagas = vec![app.clone()];
    let steps = [
        (
            "PATCH",
            format!("/applications/{app}"),
            Some(json!({"displayName": "Acme CRM v2"})),
            "CHG-2",
        ),
        (
            "POST",
            format!("/applications/{app}/instances/{BETA}/pause"),
            None,
            "CHG-3",
        ),
    ];
    for (method, path, body, ticket) in steps {
        w.h.clock.advance(Duration::from_secs(1));
        let r = with_ticket(w, method, &path, body.as_ref(), ticket).await;
        assert_eq!(r.status, 202, "{method} {path}: {}", r.text);
        sagas.push(r.json["sagaId"].as_str().unwrap().to_string());
        w.drain().await;
    }
    (app, sagas)
}

#[tokio::test]
async fn the_owner_reads_every_saga_oldest_first_with_requester_ticket_and_changes() {
    let w = world();
    let (app, sagas) = application_with_history(&w).await;

    let r = w.h.get(&format!("/applications/{app}/history")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["applicationId"], app.as_str());
    assert_eq!(r.json["namespace"], w.record(&app).await.namespace.as_str());
    let entries = r.json["entries"].as_array().unwrap();
    let ids: Vec<&str> = entries
        .iter()
        .map(|e| e["sagaId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, sagas.iter().map(String::as_str).collect::<Vec<_>>());
    let what: Vec<(&str, &str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["operation"].as_str().unwrap(),
                e["requester"].as_str().unwrap(),
                e["ticketId"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        what,
        [
            ("onboard", ALICE, "CHG-1", "SUCCEEDED"),
            ("edit", ALICE, "CHG-2", "SUCCEEDED"),
            ("pause", ALICE, "CHG-3", "SUCCEEDED"),
        ]
    );
    assert!(
        entries.iter().all(|e| e["source"] == "PORTAL"),
        "{}",
        r.text
    );
    assert!(entries
        .iter()
        .all(|e| e["finishedAt"].as_str().is_some_and(|t| t.ends_with('Z'))));

    assert_eq!(entries[0]["created"], true);
    assert_eq!(entries[0]["instances"].as_array().unwrap().len(), 2);
    assert_eq!(
        entries[1]["fields"],
        json!([{"field": "displayName", "before": "Acme CRM", "after": "Acme CRM v2"}])
    );
    let paused = entries[2]["instances"].as_array().unwrap();
    assert_eq!(paused.len(), 1, "{}", r.text);
    assert_eq!(
        (&paused[0]["instance"], &paused[0]["change"]),
        (&json!(BETA), &json!("paused"))
    );
}

#[tokio::test]
async fn a_stranger_gets_what_the_application_route_gives_and_unknown_ids_are_404() {
    let w = world();
    let (app, sagas) = application_with_history(&w).await;

    let own =
        w.h.get_as(&format!("/applications/{app}"), "mallory@example.com")
            .await;
    let trail =
        w.h.get_as(
            &format!("/applications/{app}/history"),
            "mallory@example.com",
        )
        .await;
    assert_problem(&trail, 403, ":forbidden");
    assert_eq!(trail.status, own.status);

    let unknown = w.h.get("/applications/sg-nope/history").await;
    assert_problem(&unknown, 404, ":not-found");
    assert_problem(
        &w.h.get_as("/applications/sg-nope/history", "").await,
        401,
        ":unauthenticated",
    );

    // A lifecycle saga's id points at its application.
    let edit =
        w.h.get(&format!("/applications/{}/history", sagas[1]))
            .await;
    assert_problem(&edit, 409, ":not-an-application");
    assert!(
        edit.json["fix"].as_str().unwrap().contains(&app),
        "{}",
        edit.text
    );
}

#[tokio::test]
async fn a_ticket_header_that_is_not_an_id_is_refused_and_nothing_is_recorded() {
    let w = world();
    let app = w.onboarded().await;
    let before = w.h.saga_count().await;
    let r = with_ticket(
        &w,
        "POST",
        &format!("/applications/{app}/instances/{BETA}/pause"),
        None,
        " ",
    )
    .await;
    assert_problem(&r, 400, ":bad-request");
    assert_eq!(w.h.saga_count().await, before);
}

#[tokio::test]
async fn the_openapi_document_describes_the_history_route() {
    let w = world();
    let doc = w.h.get_as("/openapi.json", "").await;
    let op = &doc.json["paths"]["/applications/{id}/history"]["get"];
    assert!(op["responses"]["200"].is_object(), "{}", doc.text);
    assert!(op["responses"]["404"].is_object());
    assert!(doc.json["components"]["schemas"]["HistoryEntry"].is_object());
}
