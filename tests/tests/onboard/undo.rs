//! An undo that keeps failing ends ROLLBACK_FAILED with the error and what remains on record;
//! a re-drive after the cause is fixed ends ROLLED_BACK with a pristine world.

use onboard_core::engine::{EngineError, RunOutcome};
use onboard_core::error::ErrorKind;
use onboard_core::record::{NodeState, SagaStatus};
use onboard_core::store::SagaStore;
use onboard_integration_tests::*;

#[tokio::test]
async fn a_failing_undo_ends_rollback_failed_and_a_redrive_ends_pristine() {
    let h = Harness::start().await;
    let pristine = h.dump();
    let all = instances(3);
    let spec = spec(&all);
    // The second grant is refused, so the saga rolls back; deleting associations is denied.
    h.fault(fail_nth(
        "UpdateSecurityProfile",
        2,
        "AccessDeniedException",
        403,
    ));
    h.fault(fail_always(
        "DeleteIntegrationAssociation",
        "AccessDeniedException",
        403,
    ));
    let rec = h.onboard(&spec).await;
    assert_eq!(
        rec.status,
        SagaStatus::RollbackFailed,
        "{:?}",
        node_states(&rec)
    );
    let undo_error = rec.undo_error.clone().unwrap();
    assert_eq!(
        (undo_error.kind, undo_error.code.as_str()),
        (ErrorKind::Denied, "AccessDeniedException"),
        "{undo_error:?}"
    );
    assert!(undo_error.fix.is_some(), "the record says what to do");
    assert_eq!(rec.cause.as_ref().unwrap().code, "AccessDeniedException");
    let state = |step: &str, t: Option<&str>| rec.node(step, t).unwrap().state;
    for i in &all {
        assert_eq!(
            state("grant_security_profiles", Some(i)),
            NodeState::Undone,
            "{i}"
        );
        assert_eq!(state("grant_slr_policy", Some(i)), NodeState::Undone, "{i}");
        assert_eq!(
            state("associate", Some(i)),
            NodeState::UndoFailed,
            "siblings are all tried: {i}"
        );
    }
    assert_eq!(
        state("create_application", None),
        NodeState::UndoBlocked,
        "not skipped silently"
    );
    assert!(rec.log.iter().any(|l| l.event == "rollback_failed"
        && l.detail
            .as_deref()
            .is_some_and(|d| d.contains("AccessDeniedException"))));

    // What remains is exactly the application and its associations; grants and statements are
    // gone.
    let mut dump = h.dump();
    strip_parts(&mut dump, NAMESPACE, &all, &[], &[]);
    assert_same(
        &pristine,
        &dump,
        "only the application and associations remain",
    );

    assert_eq!(
        h.store
            .namespace_holder(NAMESPACE)
            .await
            .unwrap()
            .as_deref(),
        Some(rec.id.as_str()),
        "a ROLLBACK_FAILED saga keeps its namespace"
    );
    assert_eq!(
        h.engine("w2").run(&rec.id).await.unwrap(),
        RunOutcome::AlreadyFinished(SagaStatus::RollbackFailed),
        "a plain run does not retry it"
    );
    // Still failing: a re-drive ends ROLLBACK_FAILED again, nothing lost.
    assert_eq!(
        h.engine("w2").redrive(&rec.id).await.unwrap(),
        RunOutcome::Finished(SagaStatus::RollbackFailed)
    );

    // The operator fixes the permission and re-drives.
    h.sandbox().clear_faults();
    assert_eq!(
        h.engine("w3").redrive(&rec.id).await.unwrap(),
        RunOutcome::Finished(SagaStatus::RolledBack)
    );
    assert_same(&pristine, &h.dump(), "pristine after the re-drive");
    let rec = h.record(&rec.id).await;
    assert!(rec.log.iter().any(|l| l.event == "redriven"));
    assert!(rec.undo_error.is_none());
    assert_eq!(h.store.namespace_holder(NAMESPACE).await.unwrap(), None);
    assert!(matches!(
        h.engine("w4").redrive(&rec.id).await,
        Err(EngineError::NotRedrivable {
            status: SagaStatus::RolledBack,
            ..
        })
    ));
}

/// A retryable undo failure that outlasts the undo's retry budget also ends ROLLBACK_FAILED
/// (budget exhausted, the service's code kept), never a silent success.
#[tokio::test]
async fn an_undo_that_keeps_being_throttled_ends_rollback_failed() {
    let h = Harness::with(Options {
        step_retry: test_retry(3),
        ..Options::default()
    })
    .await;
    let pristine = h.dump();
    let spec = spec(&instances(1));
    h.fault(fail_always(
        "UpdateSecurityProfile",
        "AccessDeniedException",
        403,
    ));
    h.fault(fail_always(
        "DeleteApplication",
        "InternalServiceError",
        500,
    ));
    let rec = h.onboard(&spec).await;
    assert_eq!(rec.status, SagaStatus::RollbackFailed);
    let err = rec.undo_error.clone().unwrap();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (ErrorKind::BudgetExhausted, "InternalServiceError"),
        "{err:?}"
    );
    h.sandbox().clear_faults();
    assert_eq!(
        h.engine("w2").redrive(&rec.id).await.unwrap(),
        RunOutcome::Finished(SagaStatus::RolledBack)
    );
    assert_same(&pristine, &h.dump(), "pristine after the re-drive");
}
