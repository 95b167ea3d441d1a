//! Edit: fields, the instance set and profile grants change together; any failure rolls back to
//! the exact previous values.

use onboard_core::lifecycle::service::{parse_edit, LifecycleError};
use onboard_core::record::SagaStatus;
use onboard_integration_tests::*;
use serde_json::{json, Value};

use crate::support::*;

/// Onboarded on instances 1 and 2 (Agent profiles); the edit renames, describes, narrows the
/// permissions, clears the approved origins, moves from {1, 2} to {2, 3} and grants instance 2's
/// second profile.
fn the_edit() -> Value {
    json!({
        "displayName": "Acme CRM Next",
        "description": "CRM panel for agents",
        "permissions": ["User.Details.View"],
        "approvedOrigins": [],
        "instances": [instance(2), instance(3)],
        "securityProfiles": [
            {"instance": instance(2), "profiles": [profile(2, 1), profile(2, 2)]},
            {"instance": instance(3), "profiles": [profile(3, 1)]}
        ]
    })
}

async fn onboarded() -> (Lc, String, Value) {
    let lc = Lc::start().await;
    let pristine = lc.h.dump();
    let app = lc.onboard(&spec(&instances(2))).await;
    (lc, app, pristine)
}

async fn start_edit(
    lc: &Lc,
    app: &str,
    body: &Value,
) -> Result<onboard_core::lifecycle::service::Started, LifecycleError> {
    let req = parse_edit(body.to_string().as_bytes()).expect("the edit parses");
    lc.lifecycle
        .edit(app, &req, "bob@example.com", None, new_id("edit"))
        .await
}

#[tokio::test]
async fn edit_changes_fields_instances_and_grants_and_records_the_new_state() {
    let (lc, app, pristine) = onboarded().await;
    let started = start_edit(&lc, &app, &the_edit()).await.expect("accepted");
    assert_eq!(started.application_id, app);
    let rec = lc.run(&started).await;
    assert_eq!(rec.status, SagaStatus::Succeeded, "{:?}", rec.cause);
    assert_eq!(rec.kind, "change");
    assert_eq!(rec.parent.as_deref(), Some(app.as_str()));

    // AWS: exactly the new set-up, nothing else changed.
    let mut after = lc.h.dump();
    let grants = vec![
        (instance(2), profile(2, 1)),
        (instance(2), profile(2, 2)),
        (instance(3), profile(3, 1)),
    ];
    let found = strip_parts(
        &mut after,
        NAMESPACE,
        &[instance(2), instance(3)],
        &[instance(2), instance(3)],
        &grants,
    );
    assert_same(&pristine, &after, "only the edited set-up remains");
    let details =
        lc.h.ports
            .apps
            .get_application(&found.app_id)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(details.fields.display_name, "Acme CRM Next");
    assert_eq!(
        details.fields.description.as_deref(),
        Some("CRM panel for agents")
    );
    assert_eq!(details.fields.permissions, ["User.Details.View"]);
    assert!(details.fields.approved_origins.is_empty());

    // The record: the root's managed state is the new one, with this change as its last.
    let state = lc.state(&app).await;
    assert_eq!(state.fields, details.fields);
    assert_eq!(
        state.instances.iter().cloned().collect::<Vec<_>>(),
        [instance(2), instance(3)]
    );
    assert_eq!(state.last_change.as_deref(), Some(rec.id.as_str()));

    // A second edit builds on it; an edit built on the old state is refused by the saga.
    let stale = onboard_core::lifecycle::service::Started {
        ..start_edit(&lc, &app, &json!({"displayName": "Acme CRM Final"}))
            .await
            .unwrap()
    };
    let again = lc.run(&stale).await;
    assert_eq!(again.status, SagaStatus::Succeeded, "{:?}", again.cause);
    assert_eq!(lc.state(&app).await.fields.display_name, "Acme CRM Final");
}

#[tokio::test]
async fn an_edit_computed_from_an_older_state_is_refused_without_touching_anything() {
    let (lc, app, _) = onboarded().await;
    let first = start_edit(&lc, &app, &json!({"displayName": "First"}))
        .await
        .unwrap();
    // Recorded before the first ran: its `before` is the original state.
    lc.run(&first).await;
    let record = lc.h.record(&first.saga_id).await;
    assert_eq!(record.status, SagaStatus::Succeeded);
    // Forge a second change whose `before` predates the first (as a request read before it).
    let mut stale_input: onboard_core::lifecycle::change::ChangeInput =
        serde_json::from_value(record.input.clone()).unwrap();
    stale_input.after.fields.display_name = "Second".into();
    let def = onboard_core::lifecycle::change::definition(1);
    let rec = def.new_record(
        onboard_core::saga::NewSaga {
            id: new_id("stale"),
            namespace: NAMESPACE.into(),
            input: serde_json::to_value(&stale_input).unwrap(),
            targets: stale_input.targets(),
            idempotency_key: None,
            payload_hash: None,
            parent: Some(app.clone()),
        },
        0,
    );
    onboard_core::store::SagaStore::create(lc.h.store.as_ref(), &rec)
        .await
        .unwrap();
    let before = lc.world();
    let done = lc
        .drive(&rec.id, onboard_core::service::RunAction::Run)
        .await;
    assert_eq!(done.status, SagaStatus::Refused);
    assert_eq!(done.cause.as_ref().unwrap().code, "ApplicationChanged");
    assert_eq!(lc.world(), before);
    assert_eq!(lc.state(&app).await.fields.display_name, "First");
}

/// Runs the edit with `fault` installed after onboarding; returns (world before, record).
async fn edit_with(
    fault: Option<onboard_sandbox::FaultSpec>,
) -> (Lc, Value, onboard_core::record::SagaRecord) {
    let (lc, app, _) = onboarded().await;
    let before = lc.world();
    lc.h.sandbox().clear_calls();
    if let Some(f) = fault {
        lc.fault(f);
    }
    let started = start_edit(&lc, &app, &the_edit()).await.unwrap();
    let rec = lc.run(&started).await;
    (lc, before, rec)
}

#[tokio::test]
async fn a_failure_at_any_call_rolls_the_edit_back_to_the_exact_previous_values() {
    let (clean, _, rec) = edit_with(None).await;
    assert_eq!(rec.status, SagaStatus::Succeeded);
    let calls = clean.call_counts();
    assert!(
        calls.iter().any(|(op, _)| op == "UpdateApplication"),
        "{calls:?}"
    );
    let mut cases = 0;
    for (op, count) in calls {
        for n in 1..=count {
            let (lc, before, rec) = edit_with(Some(denied(&op, n))).await;
            let expected = end_after_one_denial(&rec, &op, "check", SagaStatus::RolledBack);
            assert_eq!(rec.status, expected, "{op} #{n}: {:?}", rec.cause);
            if expected == SagaStatus::Succeeded {
                continue; // retried while IAM propagates: the edit went through
            }
            assert_eq!(lc.h.fired(), [(op.clone(), 1)], "{op} #{n} fired once");
            assert_same(
                &before,
                &lc.world(),
                &format!("after a failure at {op} #{n}"),
            );
            let app = rec.parent.clone().unwrap();
            assert_eq!(
                lc.state(&app).await.fields.display_name,
                "Acme CRM",
                "the record keeps the previous state"
            );
            cases += 1;
        }
    }
    assert!(cases >= 10, "only {cases} calls were faulted");
}

/// The edit plus the two members AppIntegrations cannot unset once set.
fn the_frame_edit() -> Value {
    let mut edit = the_edit();
    edit["iframe"] =
        json!({"allow": ["clipboard-write"], "sandbox": ["allow-scripts", "allow-same-origin"]});
    edit["initializationTimeoutMs"] = json!(5000);
    edit
}

async fn frame_edit_with(
    fault: Option<onboard_sandbox::FaultSpec>,
) -> (Lc, String, Value, onboard_core::record::SagaRecord) {
    let (lc, app, _) = onboarded().await;
    let before = lc.world();
    lc.h.sandbox().clear_calls();
    if let Some(f) = fault {
        lc.fault(f);
    }
    let started = start_edit(&lc, &app, &the_frame_edit()).await.unwrap();
    let rec = lc.run(&started).await;
    (lc, app, before, rec)
}

#[tokio::test]
async fn an_edit_adds_frame_settings_last_so_any_failure_still_rolls_back_exactly() {
    let (clean, app, _, rec) = frame_edit_with(None).await;
    assert_eq!(rec.status, SagaStatus::Succeeded, "{:?}", rec.cause);
    // The saga's own calls, before this test reads the application itself.
    let calls = clean.call_counts();
    let state = clean.state(&app).await;
    assert_eq!(state.fields.initialization_timeout_ms, Some(5000));
    assert!(state.fields.iframe.is_some());
    let details = clean
        .h
        .ports
        .apps
        .get_application(&state.app.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        details.fields.initialization_timeout_ms,
        Some(5000),
        "set in AWS"
    );
    assert_eq!(details.fields.iframe, state.fields.iframe, "set in AWS");
    let node = rec.node("set_frame_settings", None).unwrap();
    assert_eq!(node.output, Some(json!({"changed": true})));
    let updates = calls
        .iter()
        .find(|(op, _)| op == "UpdateApplication")
        .map_or(0, |(_, n)| *n);
    assert!(
        updates >= 2,
        "the frame settings are a call of their own: {calls:?}"
    );

    // Every call faulted, including the last UpdateApplication: nothing is left set.
    let mut cases = 0;
    for (op, count) in calls {
        for n in 1..=count {
            let (lc, app, before, rec) = frame_edit_with(Some(denied(&op, n))).await;
            let expected = end_after_one_denial(&rec, &op, "check", SagaStatus::RolledBack);
            assert_eq!(rec.status, expected, "{op} #{n}: {:?}", rec.cause);
            if expected == SagaStatus::Succeeded {
                continue;
            }
            assert_same(
                &before,
                &lc.world(),
                &format!("after a failure at {op} #{n}"),
            );
            let state = lc.state(&app).await;
            assert_eq!(state.fields.iframe, None, "{op} #{n}");
            assert_eq!(state.fields.initialization_timeout_ms, None, "{op} #{n}");
            cases += 1;
        }
    }
    assert!(cases >= 10, "only {cases} calls were faulted");
}

/// Asserts the world is `pristine` plus exactly the edited set-up.
async fn assert_edited(lc: &Lc, pristine: &Value, what: &str) {
    let mut after = lc.h.dump();
    let grants = vec![
        (instance(2), profile(2, 1)),
        (instance(2), profile(2, 2)),
        (instance(3), profile(3, 1)),
    ];
    let found = strip_parts(
        &mut after,
        NAMESPACE,
        &[instance(2), instance(3)],
        &[instance(2), instance(3)],
        &grants,
    );
    assert_same(pristine, &after, what);
    let details =
        lc.h.ports
            .apps
            .get_application(&found.app_id)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(details.fields.display_name, "Acme CRM Next", "{what}");
    assert_eq!(details.fields.permissions, ["User.Details.View"], "{what}");
}

#[tokio::test]
async fn throttling_at_any_mutating_call_is_retried_to_the_same_result() {
    let (clean, _, _) = edit_with(None).await;
    let mut cases = 0;
    for (op, count) in clean.call_counts() {
        if !MUTATING.contains(&op.as_str()) {
            continue;
        }
        for n in 1..=count {
            let lc = Lc::start().await;
            let pristine = lc.h.dump();
            let app = lc.onboard(&spec(&instances(2))).await;
            lc.fault(throttled(&op, n));
            let started = start_edit(&lc, &app, &the_edit()).await.unwrap();
            let rec = lc.run(&started).await;
            assert_eq!(
                rec.status,
                SagaStatus::Succeeded,
                "{op} #{n}: {:?}",
                rec.cause
            );
            assert_eq!(lc.h.fired(), [(op.clone(), 1)], "{op} #{n} fired once");
            assert_edited(&lc, &pristine, &format!("{op} #{n}")).await;
            cases += 1;
        }
    }
    assert!(cases >= 5, "only {cases} mutating calls were throttled");
}

#[tokio::test]
async fn edits_that_cannot_be_done_or_undone_are_refused_before_anything_is_recorded() {
    let (lc, app, _) = onboarded().await;
    let refused = |body: Value| {
        let lc = &lc;
        let app = app.clone();
        async move {
            match start_edit(lc, &app, &body).await {
                Err(LifecycleError::Invalid(errs)) => errs,
                other => panic!("{body}: expected a refusal, got {other:?}"),
            }
        }
    };
    let e = refused(json!({"namespace": "other.example.com"})).await;
    assert_eq!(e.problems[0].field, "namespace");
    assert!(e.problems[0].problem.contains("immutable"), "{e}");
    let e = refused(json!({"displayName": "Acme CRM"})).await;
    assert!(e.problems[0].problem.contains("changes nothing"), "{e}");
    let e = refused(json!({"accessUrl": "http://crm.example.com/agent"})).await;
    assert_eq!(e.problems[0].field, "accessUrl", "{e}");
    let e = refused(json!({"instances": [LEGACY_INSTANCE, "not-an-instance"]})).await;
    assert!(
        e.problems.iter().any(|p| p.field.starts_with("instances")),
        "{e}"
    );
    // Unknown fields name the field.
    match parse_edit(br#"{"tags": {"a": "b"}}"#) {
        Err(e) => assert!(e.to_string().contains("tags"), "{e}"),
        Ok(r) => panic!("parsed {r:?}"),
    }
    // Nothing was recorded: the state is unchanged and no change saga exists.
    assert_eq!(lc.state(&app).await.last_change, None);
    // An application that does not exist.
    assert!(matches!(
        start_edit(&lc, "sg-nope", &json!({"displayName": "X"})).await,
        Err(LifecycleError::NotFound(_))
    ));
}
