//! Offboard: an application associated with three instances — one association made directly
//! through Connect, as the console would — leaves no trace, and the SLR policies are as before
//! onboarding. Failures recover forward: retried, or NEEDS_ATTENTION with what remains and a
//! re-drive that finishes the job.

use onboard_core::lifecycle::service::LifecycleError;
use onboard_core::lifecycle::StateError;
use onboard_core::record::SagaStatus;
use onboard_core::service::RunAction;
use onboard_integration_tests::*;
use serde_json::Value;

use crate::support::*;

/// Onboarded on instances 1 and 2, then associated with instance 3 outside the product.
/// Returns (harness, app, pristine world before onboarding).
async fn set_up() -> (Lc, String, Value) {
    let lc = Lc::start().await;
    let pristine = lc.world();
    let app = lc.onboard(&spec(&instances(2))).await;
    let arn = lc.state(&app).await.app.arn;
    lc.h.ports
        .connect
        .create_association(&instance(3), &arn)
        .await
        .expect("the console-style association");
    (lc, app, pristine)
}

async fn offboard(lc: &Lc, app: &str) -> onboard_core::record::SagaRecord {
    let started = lc
        .lifecycle
        .offboard(app, "ops@example.com", None, new_id("off"))
        .await
        .expect("accepted");
    assert_eq!(started.operation, "offboard");
    lc.run(&started).await
}

#[tokio::test]
async fn offboard_removes_every_trace_including_associations_made_elsewhere() {
    let (lc, app, pristine) = set_up().await;
    let rec = offboard(&lc, &app).await;
    assert_eq!(rec.status, SagaStatus::Succeeded, "{:?}", rec.cause);
    assert_same(&pristine, &lc.world(), "no trace of the application");
    let inventory = rec.output_of("inventory").unwrap();
    assert!(
        inventory["instances"][instance(3).as_str()]["association"].is_object(),
        "the inventory found the association made outside the product: {inventory}"
    );
    // The record says so, and the application can no longer be changed.
    assert!(matches!(
        lc.lifecycle.application(&app).await,
        Err(LifecycleError::State(StateError::Offboarded { .. }))
    ));
    let view = onboard_core::service::SagaView::from_record(&lc.h.record(&app).await);
    assert!(view.application.unwrap().offboarded);
    // A second offboard is refused before anything runs.
    assert!(matches!(
        lc.lifecycle
            .offboard(&app, "ops", None, new_id("off"))
            .await,
        Err(LifecycleError::State(StateError::Offboarded { .. }))
    ));
}

#[tokio::test]
async fn offboard_retries_throttling_at_every_mutating_call() {
    let (clean, app, _) = set_up().await;
    clean.h.sandbox().clear_calls();
    offboard(&clean, &app).await;
    let calls = clean.call_counts();
    let mut cases = 0;
    for (op, count) in calls {
        if !MUTATING.contains(&op.as_str()) {
            continue;
        }
        for n in 1..=count {
            let (lc, app, pristine) = set_up().await;
            lc.fault(throttled(&op, n));
            let rec = offboard(&lc, &app).await;
            assert_eq!(
                rec.status,
                SagaStatus::Succeeded,
                "{op} #{n}: {:?}",
                rec.cause
            );
            assert_same(&pristine, &lc.world(), &format!("{op} #{n}"));
            cases += 1;
        }
    }
    assert!(cases >= 5, "only {cases} calls were throttled");
}

#[tokio::test]
async fn a_terminal_failure_at_any_call_stops_in_needs_attention_and_a_redrive_finishes() {
    let (clean, app, _) = set_up().await;
    clean.h.sandbox().clear_calls();
    offboard(&clean, &app).await;
    let calls = clean.call_counts();
    let mut cases = 0;
    for (op, count) in calls {
        for n in 1..=count {
            let (lc, app, pristine) = set_up().await;
            lc.fault(denied(&op, n));
            let rec = offboard(&lc, &app).await;
            let expected = end_after_one_denial(&rec, &op, "inventory", SagaStatus::NeedsAttention);
            assert_eq!(rec.status, expected, "{op} #{n}: {:?}", rec.cause);
            if expected != SagaStatus::NeedsAttention {
                // Retried while IAM propagates (offboarded), or refused by the inventory before
                // anything was removed (the application is untouched).
                continue;
            }
            let cause = rec.cause.clone().unwrap();
            assert!(!cause.code.is_empty());
            let view = onboard_core::service::SagaView::from_record(&rec);
            assert!(
                view.next_action
                    .as_deref()
                    .is_some_and(|a| a.contains("re-drive")),
                "{:?}",
                view.next_action
            );
            // The namespace stays held: nothing else may start on a half-removed app.
            assert_eq!(
                onboard_core::store::SagaStore::namespace_holder(lc.h.store.as_ref(), NAMESPACE)
                    .await
                    .unwrap()
                    .as_deref(),
                Some(rec.id.as_str())
            );
            // The operator fixed the permission: re-drive carries on forward.
            lc.h.sandbox().clear_faults();
            let done = lc.drive(&rec.id, RunAction::Redrive).await;
            assert_eq!(
                done.status,
                SagaStatus::Succeeded,
                "{op} #{n}: {:?}",
                done.cause
            );
            assert_same(
                &pristine,
                &lc.world(),
                &format!("after re-drive ({op} #{n})"),
            );
            cases += 1;
        }
    }
    assert!(cases >= 10, "only {cases} calls were faulted");
}

#[tokio::test]
async fn an_association_that_survives_its_deletion_ends_in_needs_attention_naming_it() {
    let (lc, app, _) = set_up().await;
    let started = lc
        .lifecycle
        .offboard(&app, "ops", None, new_id("off"))
        .await
        .unwrap();
    // Instance 3's DeleteIntegrationAssociation (the third) answers "not found" although the
    // association stays — as if it lived somewhere this account cannot see — and says so
    // again when it is sent once more to confirm (the fourth). The verification through
    // AppIntegrations must notice instead of deleting the application blindly.
    for nth in [3, 4] {
        lc.fault(onboard_sandbox::FaultSpec::fail_nth(
            onboard_sandbox::Service::Connect,
            "DeleteIntegrationAssociation",
            nth,
            fault_error("ResourceNotFoundException", 404),
        ));
    }
    let rec = lc.run(&started).await;
    assert_eq!(rec.status, SagaStatus::NeedsAttention, "{:?}", rec.cause);
    let cause = rec.cause.clone().unwrap();
    assert_eq!(cause.code, "AssociationsRemain");
    assert!(
        cause.message.contains("application-association"),
        "{}",
        cause.message
    );
    assert!(cause.fix.unwrap().contains("re-drive"));
    assert!(
        lc.state(&app).await.app.arn.contains("application/"),
        "not offboarded yet"
    );
}
