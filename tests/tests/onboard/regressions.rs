//! Regressions: rollbacks that once did not give back the world exactly as it was, each a
//! precise reproduction of a bug found and fixed.

use onboard_core::record::SagaStatus;
use onboard_integration_tests::*;
use onboard_sandbox::GrantSeed;

/// A stale `{namespace, ACCESS}` grant (left by an application deleted without offboarding;
/// Connect does not remove grants when an association goes) is in a requested profile before
/// the saga. `grant_profile` sees it and writes nothing, but the undo's `revoke_profile`
/// removed every entry with the namespace, so the rollback deleted an entry it never added.
/// Fixed: validate records such pre-existing grants and the undo leaves them alone.
#[tokio::test]
async fn a_rollback_keeps_a_profile_grant_that_existed_before() {
    let mut o = Options::default();
    o.seed.instances[0].security_profiles[0]
        .applications
        .push(GrantSeed {
            namespace: NAMESPACE.to_string(),
            permissions: vec!["ACCESS".to_string()],
        });
    let h = Harness::with(o).await;
    let pristine = h.dump();
    // activate's first lookup (after associate's two) fails: everything is rolled back.
    h.fault(fail_nth(
        "ListIntegrationAssociations",
        3,
        "AccessDeniedException",
        403,
    ));
    let rec = h.onboard(&spec(&instances(2))).await;
    assert_eq!(rec.status, SagaStatus::RolledBack);
    assert_same(&pristine, &h.dump(), "the pre-existing grant survives");
}

/// Our inline policy already exists in a hand-written layout (another statement in it). The
/// rollback used to write the document back re-serialized (keys sorted, whitespace dropped):
/// the same policy semantically, a different text. Fixed: the grant records the previous text
/// and the undo gives it back when the statements left are the same.
#[tokio::test]
async fn a_rollback_gives_back_a_hand_written_policy_byte_for_byte() {
    let mut o = Options::default();
    let existing = "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {\"Sid\": \"ManualGrant\", \"Effect\": \"Allow\", \"Action\": \"app-integrations:GetApplication\", \"Resource\": \"*\"}\n  ]\n}";
    o.seed.instances[0]
        .slr_inline_policies
        .insert(POLICY_NAME.to_string(), existing.into());
    let h = Harness::with(o).await;
    let pristine = h.dump();
    h.fault(fail_nth(
        "ListIntegrationAssociations",
        3,
        "AccessDeniedException",
        403,
    ));
    let rec = h.onboard(&spec(&instances(2))).await;
    assert_eq!(rec.status, SagaStatus::RolledBack);
    assert_same(&pristine, &h.dump(), "the policy text is unchanged");
}

/// A worker that dies while editing an SLR policy (e.g. a Lambda timeout between
/// GetRolePolicy and PutRolePolicy) leaves its lock until `LOCK_TTL`. Another saga that needs
/// the same role used to retry `ResourceLocked` on the step schedule (at most 25.4 s), give up
/// before the lock expired and end ROLLBACK_FAILED (its SLR undo needs the same lock). Fixed:
/// `with_lock` waits up to `LOCK_WAIT` (longer than `LOCK_TTL`). Runs production's retry
/// policy on a clock that skips the waits: no wall time.
#[tokio::test]
async fn a_lock_left_by_a_dead_worker_does_not_roll_back_other_sagas() {
    use onboard_core::clock::Clock;
    use onboard_core::locks::{ResourceLocks, LOCK_TTL};
    use onboard_core::saga::RetryPolicy;
    use std::sync::Arc;

    let clock = Arc::new(SkippingClock::default());
    let h = Harness::with(Options {
        step_retry: RetryPolicy::default(),
        clock: clock.clone(),
        ..Options::default()
    })
    .await;
    let now = clock.now();
    let resource = format!("iam-role/{}/{POLICY_NAME}", slr_role(1));
    assert!(h
        .store
        .try_lock(
            &resource,
            "sg-dead/instance",
            now,
            now + LOCK_TTL.as_millis() as u64
        )
        .await
        .unwrap());
    let pristine = h.dump();
    let spec = spec(&instances(1));
    let rec = h.onboard(&spec).await;
    assert_eq!(
        rec.status,
        SagaStatus::Succeeded,
        "{:?} {:?}",
        rec.cause,
        node_states(&rec)
    );
    assert_onboarded(&pristine, &h.dump(), &spec);
}
