//! The lifecycle routes through the router with the in-memory store and queue; the queued
//! sagas are run on the per-kind engines over the fake AWS world, so each route is exercised on
//! a real onboarded application: 202 + Location, the recorded saga (kind, parent, requester),
//! idempotency, problem types for every refusal (and nothing recorded on a bad request), the
//! drift report and its fix, adopt, re-drive of NEEDS_ATTENTION, API Gateway v2 events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;

use common::world::*;
use common::*;
use onboard_core::lifecycle::{DriftItem, DriftKind, DriftReport};
use onboard_core::record::{SagaRecord, SagaStatus};
use onboard_core::testkit::fake_world as fw;
use serde_json::{json, Value};

/// An administrator of the API under test (`ADMIN_PRINCIPALS`).
const ADMIN: &str = "platform-admin@example.com";

/// The 202 checks every accepted lifecycle request must pass; returns the new saga's record.
async fn assert_accepted(
    w: &World,
    r: &Reply,
    kind: &str,
    operation: &str,
    app: &str,
) -> SagaRecord {
    assert_eq!(r.status, 202, "{}", r.text);
    let saga = r.json["sagaId"].as_str().unwrap();
    assert_eq!(
        r.header("location"),
        Some(format!("/applications/{saga}").as_str())
    );
    assert_eq!(r.json["statusUrl"], format!("/applications/{saga}"));
    assert_eq!(r.json["applicationId"], app);
    assert_eq!(r.json["applicationUrl"], format!("/applications/{app}"));
    assert_eq!(r.json["operation"], operation);
    assert_eq!(r.json["queued"], true);
    let sent = w.h.sent();
    assert_eq!(sent.last().map(|m| m.saga_id.as_str()), Some(saga));
    let record = w.record(saga).await;
    assert_eq!(record.kind, kind);
    assert_eq!(record.status, SagaStatus::Pending);
    record
}

#[tokio::test]
async fn an_edit_records_a_change_saga_of_the_application_and_is_idempotent() {
    let w = world();
    let app = w.onboarded().await;
    let patch = json!({"displayName": "Acme CRM v2"});

    let r = w
        .request(
            "PATCH",
            &format!("/applications/{app}"),
            Some(&patch),
            Some("e-1"),
        )
        .await;

    let record = assert_accepted(&w, &r, "change", "edit", &app).await;
    assert_eq!(record.parent.as_deref(), Some(app.as_str()));
    assert_eq!(record.input["requester"], ALICE);
    assert_eq!(
        record.input["after"]["fields"]["displayName"],
        "Acme CRM v2"
    );
    assert_eq!(r.json["created"], true);
    // The same request again: the same saga.
    let again = w
        .request(
            "PATCH",
            &format!("/applications/{app}"),
            Some(&patch),
            Some("e-1"),
        )
        .await;
    assert_eq!(again.status, 202);
    assert_eq!(again.json["sagaId"], r.json["sagaId"]);
    assert_eq!(again.json["created"], false);
    // The same key with another body: a conflict naming the first saga.
    let other = json!({"displayName": "Acme CRM v3"});
    let conflict = w
        .request(
            "PATCH",
            &format!("/applications/{app}"),
            Some(&other),
            Some("e-1"),
        )
        .await;
    assert_problem(&conflict, 409, ":idempotency-conflict");
    assert_eq!(conflict.json["sagaId"], r.json["sagaId"]);
    // Another change while this one is pending: the namespace is busy.
    let busy = w
        .request(
            "PATCH",
            &format!("/applications/{app}"),
            Some(&other),
            Some("e-2"),
        )
        .await;
    assert_problem(&busy, 409, ":namespace-busy");

    w.drain().await;
    assert_eq!(
        w.record(r.json["sagaId"].as_str().unwrap()).await.status,
        SagaStatus::Succeeded
    );
    let status = w.h.get(&format!("/applications/{app}")).await;
    assert_eq!(
        status.json["application"]["fields"]["displayName"],
        "Acme CRM v2"
    );
    assert_eq!(
        w.h.emf.total("SagasSubmitted"),
        2.0,
        "the onboarding and the edit"
    );
}

#[tokio::test]
async fn invalid_requests_are_400_with_field_problems_and_record_nothing() {
    let w = world();
    let app = w.onboarded().await;
    let before = w.h.saga_count().await;
    let path = format!("/applications/{app}");

    let r = w
        .request(
            "PATCH",
            &path,
            Some(&json!({"namespace": "other.example.com"})),
            None,
        )
        .await;
    assert_problem(&r, 400, ":validation");
    assert_eq!(r.json["problems"][0]["field"], "namespace");
    assert!(r.json["problems"][0]["fix"]
        .as_str()
        .unwrap()
        .contains("onboard a new application"));

    let r = w
        .request(
            "PATCH",
            &path,
            Some(&json!({"accessUrl": "http://crm.example.com", "displayNam": "x"})),
            None,
        )
        .await;
    assert_problem(&r, 400, ":validation");
    let r = w
        .request(
            "PATCH",
            &path,
            Some(&json!({"accessUrl": "http://crm.example.com"})),
            None,
        )
        .await;
    assert_problem(&r, 400, ":validation");
    assert_eq!(r.json["problems"][0]["field"], "accessUrl");
    let r = w
        .request(
            "PATCH",
            &path,
            Some(&json!({"displayName": "Acme CRM"})),
            None,
        )
        .await;
    assert_problem(&r, 400, ":validation");
    assert!(r.json["problems"][0]["problem"]
        .as_str()
        .unwrap()
        .contains("changes nothing"));

    let r = w
        .request(
            "POST",
            &format!("{path}/instances/not-an-instance/pause"),
            None,
            None,
        )
        .await;
    assert_problem(&r, 400, ":validation");
    assert_eq!(r.json["problems"][0]["field"], "instance");
    let r = w
        .request(
            "POST",
            &format!("{path}/instances/{}/pause", fw::INSTANCE_GAMMA),
            None,
            None,
        )
        .await;
    assert_problem(&r, 400, ":validation");
    let r = w
        .request(
            "POST",
            &format!("{path}/instances/{BETA}/resume"),
            None,
            None,
        )
        .await;
    assert_problem(&r, 400, ":validation");
    assert!(r.json["problems"][0]["problem"]
        .as_str()
        .unwrap()
        .contains("not paused"));

    let r = w
        .request(
            "POST",
            "/applications/adopt",
            Some(&json!({"ns": "x"})),
            None,
        )
        .await;
    assert_problem(&r, 400, ":validation");
    let r = w
        .request(
            "POST",
            "/applications/adopt",
            Some(&json!({"namespace": ""})),
            None,
        )
        .await;
    assert_problem(&r, 400, ":validation");
    let r = w
        .request(
            "PATCH",
            &path,
            Some(&json!({"displayName": "x"})),
            Some("ticket:1"),
        )
        .await;
    assert_problem(&r, 400, ":bad-request");

    assert_eq!(w.h.saga_count().await, before, "nothing recorded");
    assert!(w.h.sent().is_empty(), "nothing queued");
}

#[tokio::test]
async fn state_errors_are_404_or_409_problems_with_stable_types() {
    let w = world();
    let r = w
        .request("DELETE", "/applications/sg-nope", None, None)
        .await;
    assert_problem(&r, 404, ":not-found");

    // An onboarding that has not run yet.
    let pending =
        w.h.submit(&spec("https://kb.example.com"), Some("k-kb"))
            .await;
    let kb = pending.json["sagaId"].as_str().unwrap().to_string();
    let r = w
        .request("DELETE", &format!("/applications/{kb}"), None, None)
        .await;
    assert_problem(&r, 409, ":application-not-onboarded");
    assert_eq!(r.json["sagaId"], kb.as_str());
    w.drain().await;

    let app = w.onboarded().await;
    let r = w
        .request(
            "POST",
            &format!("/applications/{app}/instances/{BETA}/pause"),
            None,
            None,
        )
        .await;
    let pause = r.json["sagaId"].as_str().unwrap().to_string();
    w.drain().await;
    // A change saga's id is not an application: the problem names the application's id.
    let r = w
        .request("DELETE", &format!("/applications/{pause}"), None, None)
        .await;
    assert_problem(&r, 409, ":not-an-application");
    assert!(r.json["fix"].as_str().unwrap().contains(&app));
    let r = w.h.get(&format!("/applications/{pause}/drift")).await;
    assert_problem(&r, 409, ":not-an-application");

    let r = w
        .request("DELETE", &format!("/applications/{app}"), None, None)
        .await;
    assert_accepted(&w, &r, "offboard", "offboard", &app).await;
    w.drain().await;
    for (method, path) in [
        ("DELETE", format!("/applications/{app}")),
        ("PATCH", format!("/applications/{app}")),
        (
            "POST",
            format!("/applications/{app}/instances/{BETA}/resume"),
        ),
        ("POST", format!("/applications/{app}/drift/fix")),
    ] {
        let r = w
            .request(method, &path, Some(&json!({"displayName": "x"})), None)
            .await;
        assert_problem(&r, 409, ":application-offboarded");
    }
    let view = w.h.get(&format!("/applications/{app}")).await;
    assert_eq!(view.json["application"]["offboarded"], true);
}

#[tokio::test]
async fn pause_and_resume_record_change_sagas_on_one_instance() {
    let w = world();
    let app = w.onboarded().await;

    let r = w
        .request(
            "POST",
            &format!("/applications/{app}/instances/{BETA}/pause"),
            None,
            Some("p-1"),
        )
        .await;
    let record = assert_accepted(&w, &r, "change", "pause", &app).await;
    assert_eq!(record.input["instance"], BETA);
    w.drain().await;
    let view = w.h.get(&format!("/applications/{app}")).await;
    assert_eq!(view.json["application"]["paused"], json!([BETA]));
    assert!(w.aws.calls("delete_association") >= 1);

    // The instance's alias (as the status shows it) names it as well as its id.
    let r = w
        .request(
            "POST",
            &format!("/applications/{app}/instances/Beta/resume"),
            None,
            None,
        )
        .await;
    let record = assert_accepted(&w, &r, "change", "resume", &app).await;
    assert_eq!(record.input["instance"], BETA);
    w.drain().await;
    let view = w.h.get(&format!("/applications/{app}")).await;
    assert_eq!(view.json["application"]["paused"], json!([]));
}

#[tokio::test]
async fn an_offboard_that_needs_attention_is_re_driven_by_retry() {
    let w = world();
    let app = w.onboarded().await;
    w.aws.fail_always("delete_application", fw::access_denied());

    let r = w
        .request(
            "DELETE",
            &format!("/applications/{app}"),
            None,
            Some("off-1"),
        )
        .await;
    let off = assert_accepted(&w, &r, "offboard", "offboard", &app).await;
    assert_eq!(off.parent.as_deref(), Some(app.as_str()));
    w.drain().await;
    let view = w.h.get(&format!("/applications/{}", off.id)).await;
    assert_eq!(view.json["status"], "NEEDS_ATTENTION");
    assert!(view.json["nextAction"].as_str().unwrap().contains("/retry"));

    w.aws.clear_faults();
    let retry =
        w.h.post(
            &format!("/applications/{}/retry", off.id),
            &json!({}),
            &[("x-onboard-principal", ALICE)],
        )
        .await;
    assert_eq!(retry.status, 202, "{}", retry.text);
    w.drain().await;
    assert_eq!(w.record(&off.id).await.status, SagaStatus::Succeeded);
    let again =
        w.h.post(
            &format!("/applications/{}/retry", off.id),
            &json!({}),
            &[("x-onboard-principal", ALICE)],
        )
        .await;
    assert_problem(&again, 409, ":wrong-state");
    assert!(again.json["fix"]
        .as_str()
        .unwrap()
        .contains("NEEDS_ATTENTION"));
}

fn report(items: Vec<DriftItem>) -> DriftReport {
    DriftReport {
        checked_at: 1_700_000_000_000,
        items,
    }
}

fn item(kind: DriftKind, instance: Option<&str>) -> DriftItem {
    DriftItem {
        kind,
        instance: instance.map(str::to_string),
        detail: format!("{kind:?}"),
    }
}

#[tokio::test]
async fn the_drift_report_is_served_and_fixed_only_when_there_is_fixable_drift() {
    let w = world();
    let app = w.onboarded().await;
    let drift = format!("/applications/{app}/drift");
    let fix = format!("{drift}/fix");

    assert_problem(&w.h.get(&drift).await, 404, ":not-found");
    assert_problem(
        &w.request("POST", &fix, None, None).await,
        409,
        ":drift-not-checked",
    );

    let uc = w.lifecycle();
    uc.record_drift(&app, &report(vec![])).await.unwrap();
    let r = w.h.get(&drift).await;
    assert_eq!((r.status, r.json["drifted"].clone()), (200, json!(false)));
    assert_problem(&w.request("POST", &fix, None, None).await, 409, ":no-drift");

    uc.record_drift(
        &app,
        &report(vec![item(DriftKind::ApplicationMissing, None)]),
    )
    .await
    .unwrap();
    assert_eq!(w.h.get(&drift).await.json["fixable"], false);
    assert_problem(
        &w.request("POST", &fix, None, None).await,
        409,
        ":drift-not-fixable",
    );
    assert_eq!(w.h.sent().len(), 0, "nothing queued by a refused fix");

    uc.record_drift(
        &app,
        &report(vec![item(DriftKind::AssociationMissing, Some(BETA))]),
    )
    .await
    .unwrap();
    let r = w.h.get(&drift).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["applicationId"], app.as_str());
    assert_eq!(r.json["checkedAt"], 1_700_000_000_000u64);
    assert_eq!(r.json["items"][0]["kind"], "ASSOCIATION_MISSING");
    assert_eq!(r.json["items"][0]["instance"], BETA);

    let r = w.request("POST", &fix, None, None).await;
    let record = assert_accepted(&w, &r, "fix", "fix", &app).await;
    assert_eq!(record.parent.as_deref(), Some(app.as_str()));
    w.drain().await;
    assert_eq!(w.record(&record.id).await.status, SagaStatus::Succeeded);
}

#[tokio::test]
async fn a_drift_check_that_failed_is_shown_with_its_error() {
    let w = world();
    let app = w.onboarded().await;
    let drift = format!("/applications/{app}/drift");
    let uc = w.lifecycle();
    let ports = w.sagas.lifecycle_ports();
    w.aws.fail_always("get_application", fw::access_denied());

    assert!(uc.check_drift(&ports, &app).await.is_err());
    let r = w.h.get(&drift).await;
    assert_problem(&r, 404, ":not-found");
    let detail = r.json["detail"].as_str().unwrap();
    assert!(detail.contains("failed"), "{detail}");
    assert!(detail.contains("AccessDenied"), "{detail}");

    w.aws.clear_faults();
    uc.check_drift(&ports, &app).await.unwrap();
    let r = w.h.get(&drift).await;
    assert_eq!((r.status, r.json["drifted"].clone()), (200, json!(false)));
    assert!(r.json.get("lastFailure").is_none(), "{}", r.json);

    // A later failure keeps the last report and says the check after it failed.
    w.aws.fail_always("get_application", fw::access_denied());
    assert!(uc.check_drift(&ports, &app).await.is_err());
    let r = w.h.get(&drift).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["drifted"], false);
    assert!(r.json["lastFailure"]["at"].is_u64(), "{}", r.json);
    assert_eq!(
        r.json["lastFailure"]["error"]["code"],
        fw::access_denied().code
    );
    let view = w.h.get(&format!("/applications/{app}")).await;
    assert!(view.json["driftFailure"].is_object(), "{}", view.json);
}

#[tokio::test]
async fn adopt_records_a_root_saga_whose_id_is_the_application_id() {
    let w = world_with(&[("ADMIN_PRINCIPALS", ADMIN)]);
    let made = w
        .aws
        .seed_application("console.example.com", "Console CRM", Default::default());
    w.aws.seed_association(fw::INSTANCE_ALPHA, &made.arn);

    // Adopting makes the adopter the owner (who could then delete it): administrators only.
    let refused = w
        .request(
            "POST",
            "/applications/adopt",
            Some(&json!({"namespace": "console.example.com"})),
            Some("a-0"),
        )
        .await;
    assert_problem(&refused, 403, ":forbidden");
    assert!(refused.json["fix"].as_str().unwrap().contains(ADMIN));
    assert_eq!(w.h.saga_count().await, 0);

    let r = w
        .request_as(
            ADMIN,
            "POST",
            "/applications/adopt",
            Some(&json!({"namespace": "console.example.com"})),
            Some("a-1"),
        )
        .await;

    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.json["sagaId"].as_str().unwrap().to_string();
    let record = assert_accepted(&w, &r, "adopt", "adopt", &id).await;
    assert!(record.parent.is_none());
    assert_eq!(record.namespace, "console.example.com");
    assert_eq!(record.input["requester"], ADMIN);
    assert_eq!(record.log[0].event, "authorized");
    let again = w
        .request_as(
            ADMIN,
            "POST",
            "/applications/adopt",
            Some(&json!({"namespace": "console.example.com"})),
            Some("a-1"),
        )
        .await;
    assert_eq!(
        (again.json["sagaId"].clone(), again.json["created"].clone()),
        (json!(id), json!(false))
    );
    w.drain().await;
    let view = w.h.get_as(&format!("/applications/{id}"), ADMIN).await;
    assert_eq!(view.json["status"], "SUCCEEDED");
    assert_eq!(
        view.json["application"]["instances"],
        json!([fw::INSTANCE_ALPHA])
    );
}

#[tokio::test]
async fn a_request_recorded_but_not_queued_is_still_accepted() {
    let w = world();
    let app = w.onboarded().await;
    w.h.queue.down.store(true, Ordering::SeqCst);

    let r = w
        .request(
            "POST",
            &format!("/applications/{app}/instances/{BETA}/pause"),
            None,
            None,
        )
        .await;

    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["queued"], false);
    assert_eq!(r.json["operation"], "pause");
    assert_eq!(r.json["applicationId"], app.as_str());
    let saga = w.record(r.json["sagaId"].as_str().unwrap()).await;
    assert_eq!(
        (saga.kind.as_str(), saga.status),
        ("change", SagaStatus::Pending)
    );
    assert_eq!(w.h.emf.total("EnqueueFailures"), 1.0);
}

#[tokio::test]
async fn api_gateway_events_carry_the_authorizer_identity_into_the_saga() {
    // The IAM caller is an administrator; the JWT caller is in the admin group its token lists.
    let w = world_with(&[
        (
            "ADMIN_PRINCIPALS",
            "arn:aws:sts::111122223333:assumed-role/PortalUsers/alice",
        ),
        ("ADMIN_GROUPS", "platform-admins"),
    ]);
    let app = w.onboarded().await;
    let edit = include_str!("fixtures/apigw-v2-edit-iam.json").replace("{{APP}}", &app);

    let r = w.h.send_event(&edit).await;

    let record = assert_accepted(&w, &r, "change", "edit", &app).await;
    assert_eq!(
        record.input["requester"], "arn:aws:sts::111122223333:assumed-role/PortalUsers/alice",
        "the authorizer's identity wins over the header"
    );
    assert_eq!(
        record.idempotency_key.as_deref(),
        Some("7d2e9b10-portal-edit-0001")
    );
    w.drain().await;

    // No principal header at all: the JWT authorizer's claims name the caller.
    let off = include_str!("fixtures/apigw-v2-offboard-jwt.json").replace("{{APP}}", &app);
    let r = w.h.send_event(&off).await;
    let record = assert_accepted(&w, &r, "offboard", "offboard", &app).await;
    let bob = "jwt:https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE|8f0c1d2e-0000-4000-8000-00000000b0b0";
    assert_eq!(
        record.input["requester"], bob,
        "issuer and subject, not the mutable email"
    );
    assert_eq!(
        record.log[0].detail.clone().unwrap(),
        format!("{bob} may offboard: rule admin-group (group platform-admins)")
    );
}

#[tokio::test]
async fn openapi_documents_every_lifecycle_route() {
    let r = harness().get("/openapi.json").await;
    let doc: Value = serde_json::from_str(&r.text).unwrap();
    for (path, method) in [
        ("/applications/{id}", "patch"),
        ("/applications/{id}", "delete"),
        ("/applications/{id}", "get"),
        ("/applications/{id}/instances/{instance}/pause", "post"),
        ("/applications/{id}/instances/{instance}/resume", "post"),
        ("/applications/{id}/drift", "get"),
        ("/applications/{id}/drift/fix", "post"),
        ("/applications/adopt", "post"),
        ("/applications/{id}/retry", "post"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing");
        if method != "get" && path != "/applications/{id}/retry" {
            assert!(
                op["responses"]["202"].is_object(),
                "{method} {path}: no 202"
            );
        }
    }
    for schema in [
        "LifecycleAccepted",
        "AdoptRequest",
        "DriftReport",
        "DriftItem",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
    let patch = &doc["paths"]["/applications/{id}"]["patch"];
    assert!(patch["responses"]["409"]["content"]["application/problem+json"].is_object());
}
