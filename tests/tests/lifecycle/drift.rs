//! Drift: each kind of change made outside the product is found, and the fix re-applies the
//! recorded state.

use onboard_core::lifecycle::DriftKind;
use onboard_core::policy;
use onboard_core::record::{NodeState, SagaStatus};
use onboard_core::service::RunAction;
use onboard_integration_tests::*;
use serde_json::Value;

use crate::support::*;

/// Onboarded on instances 1 and 2; returns (harness, app, world after onboarding).
async fn onboarded() -> (Lc, String, Value) {
    let lc = Lc::start().await;
    let app = lc.onboard(&spec(&instances(2))).await;
    let world = lc.world();
    (lc, app, world)
}

/// Breaks the set-up in one way, as someone in the console would.
async fn inject(lc: &Lc, app: &str, kind: DriftKind) {
    let state = lc.state(app).await;
    let ports = &lc.h.ports;
    match kind {
        DriftKind::FieldsChanged => {
            let mut fields = state.fields.clone();
            fields.display_name = "Renamed in the console".into();
            fields.permissions.push("Contact.Attributes.View".into());
            ports
                .apps
                .update_application(&state.app.id, &fields, Some(&state.fields))
                .await
                .unwrap();
        }
        DriftKind::AssociationMissing => {
            let assoc = ports
                .connect
                .find_association(&instance(2), &state.app.arn)
                .await
                .unwrap()
                .unwrap();
            ports
                .connect
                .delete_association(&instance(2), &assoc.id)
                .await
                .unwrap();
        }
        DriftKind::AssociationExtra => {
            ports
                .connect
                .create_association(&instance(3), &state.app.arn)
                .await
                .unwrap();
        }
        DriftKind::StatementMissing => {
            let role = slr_role(1);
            let doc = ports
                .iam
                .get_role_policy(&role, POLICY_NAME)
                .await
                .unwrap()
                .unwrap();
            match policy::without_statement(&doc, &policy::statement_sid(&state.app.id)).unwrap() {
                Some(rest) => ports.iam.put_role_policy(&role, POLICY_NAME, &rest).await,
                None => ports.iam.delete_role_policy(&role, POLICY_NAME).await,
            }
            .unwrap();
        }
        DriftKind::ProfileEntryMissing => {
            let apps = ports
                .connect
                .profile_applications(&instance(1), &profile(1, 1))
                .await
                .unwrap();
            let rest: Vec<_> = apps
                .into_iter()
                .filter(|a| a.namespace != NAMESPACE)
                .collect();
            ports
                .connect
                .set_profile_applications(&instance(1), &profile(1, 1), &rest)
                .await
                .unwrap();
        }
        DriftKind::ApplicationMissing => unreachable!("not injected here"),
    }
}

const KINDS: [DriftKind; 5] = [
    DriftKind::FieldsChanged,
    DriftKind::AssociationMissing,
    DriftKind::AssociationExtra,
    DriftKind::StatementMissing,
    DriftKind::ProfileEntryMissing,
];

#[tokio::test]
async fn no_drift_right_after_onboarding() {
    let (lc, app, _) = onboarded().await;
    let report = lc.lifecycle.check_drift(&lc.ports(), &app).await.unwrap();
    assert!(!report.drifted(), "{report:?}");
    // The report is recorded in the application's record.
    assert_eq!(lc.h.record(&app).await.drift, Some(report));
}

#[tokio::test]
async fn a_check_reads_only_the_recorded_profiles_not_every_profile() {
    let (lc, app, _) = onboarded().await;
    let state = lc.state(&app).await;
    let recorded: usize = state.profiles.values().map(|p| p.len()).sum();
    assert!(recorded > 0, "the spec grants profiles");
    let lists_before = lc.h.calls_named("ListSecurityProfiles");
    let reads_before = lc.h.calls_named("ListSecurityProfileApplications");

    let report = lc.lifecycle.check_drift(&lc.ports(), &app).await.unwrap();

    assert!(!report.drifted(), "{report:?}");
    assert_eq!(
        lc.h.calls_named("ListSecurityProfiles") - lists_before,
        0,
        "no profile listing: a grant nobody recorded is not drift"
    );
    assert_eq!(
        lc.h.calls_named("ListSecurityProfileApplications") - reads_before,
        recorded,
        "one read per recorded grant (the seeded instances have more profiles)"
    );
}

#[tokio::test]
async fn each_kind_of_drift_is_found_and_the_fix_repairs_it() {
    for kind in KINDS {
        let (lc, app, onboarded_world) = onboarded().await;
        inject(&lc, &app, kind).await;
        let report = lc.lifecycle.check_drift(&lc.ports(), &app).await.unwrap();
        let kinds: Vec<DriftKind> = report.items.iter().map(|i| i.kind).collect();
        assert_eq!(kinds, [kind], "{kind:?}: {report:?}");
        assert_eq!(lc.h.record(&app).await.drift.as_ref(), Some(&report));

        let started = lc
            .lifecycle
            .fix(&app, &report, "ops@example.com", None, new_id("fix"))
            .await
            .unwrap();
        assert_eq!(started.operation, "fix");
        let rec = lc.run(&started).await;
        assert_eq!(
            rec.status,
            SagaStatus::Succeeded,
            "{kind:?}: {:?}",
            rec.cause
        );
        assert_same(&onboarded_world, &lc.world(), &format!("fixed {kind:?}"));
        let after = lc.lifecycle.check_drift(&lc.ports(), &app).await.unwrap();
        assert!(!after.drifted(), "{kind:?}: {after:?}");
    }
}

#[tokio::test]
async fn all_kinds_at_once_are_fixed_even_with_throttling_at_every_mutating_call() {
    let (lc, app, world) = onboarded().await;
    for kind in KINDS {
        inject(&lc, &app, kind).await;
    }
    let report = lc.lifecycle.check_drift(&lc.ports(), &app).await.unwrap();
    assert_eq!(report.items.len(), KINDS.len(), "{report:?}");
    for op in MUTATING {
        lc.fault(throttled(op, 1));
    }
    let started = lc
        .lifecycle
        .fix(&app, &report, "ops", None, new_id("fix"))
        .await
        .unwrap();
    let rec = lc.run(&started).await;
    assert_eq!(rec.status, SagaStatus::Succeeded, "{:?}", rec.cause);
    assert_same(&world, &lc.world(), "every drift repaired");
}

#[tokio::test]
async fn a_deleted_application_is_reported_and_not_fixable() {
    let (lc, app, _) = onboarded().await;
    let state = lc.state(&app).await;
    // Delete it the forceful way the console offers.
    for i in instances(2) {
        let a =
            lc.h.ports
                .connect
                .find_association(&i, &state.app.arn)
                .await
                .unwrap()
                .unwrap();
        lc.h.ports
            .connect
            .delete_association(&i, &a.id)
            .await
            .unwrap();
    }
    lc.h.ports
        .apps
        .delete_application(&state.app.id)
        .await
        .unwrap();
    let report = lc.lifecycle.check_drift(&lc.ports(), &app).await.unwrap();
    assert_eq!(report.items[0].kind, DriftKind::ApplicationMissing);
    assert!(!report.fixable());
    assert!(lc
        .lifecycle
        .fix(&app, &report, "ops", None, new_id("fix"))
        .await
        .is_err());
}

/// Issue 22.1: a fix that failed after repairing something was recorded ROLLED_BACK ("exactly
/// as it was"), yet its undo (which must never remove what the recorded state has) kept the
/// repair, so the world had changed. A fix now recovers forward: it stops NEEDS_ATTENTION
/// with each repair recorded as done or not, the repairs stay, and a re-drive finishes.
#[tokio::test]
async fn a_fix_that_fails_part_way_keeps_its_repairs_and_says_so() {
    let (lc, app, onboarded_world) = onboarded().await;
    inject(&lc, &app, DriftKind::AssociationMissing).await;
    inject(&lc, &app, DriftKind::ProfileEntryMissing).await;
    let drifted_world = lc.world();
    let report = lc.lifecycle.check_drift(&lc.ports(), &app).await.unwrap();
    assert_eq!(report.items.len(), 2, "{report:?}");
    lc.fault(fail_always(
        "UpdateSecurityProfile",
        "AccessDeniedException",
        403,
    ));
    let started = lc
        .lifecycle
        .fix(&app, &report, "ops", None, new_id("fix"))
        .await
        .unwrap();
    let rec = lc.run(&started).await;
    assert_eq!(rec.kind, "fix");
    assert_eq!(rec.status, SagaStatus::NeedsAttention, "{:?}", rec.cause);
    assert_eq!(
        rec.cause.as_ref().map(|c| c.code.as_str()),
        Some("AccessDeniedException")
    );
    let state_of = |node: &str| {
        rec.nodes
            .iter()
            .find(|n| n.key() == node)
            .map(|n| n.state)
            .unwrap_or_else(|| panic!("no node {node}"))
    };
    let i2 = instance(2);
    assert_eq!(
        state_of(&format!("attach_association[{i2}]")),
        NodeState::Succeeded
    );
    assert_eq!(
        state_of(&format!("attach_profiles[{}]", instance(1))),
        NodeState::Failed
    );
    // The association repair is kept: the world is neither drifted nor repaired, and the
    // record says which.
    assert_ne!(lc.world(), drifted_world, "the association was repaired");
    assert_ne!(lc.world(), onboarded_world, "the grant was not");

    lc.h.sandbox().clear_faults();
    let rec = lc.drive(&started.saga_id, RunAction::Redrive).await;
    assert_eq!(rec.status, SagaStatus::Succeeded, "{:?}", rec.cause);
    assert_same(
        &onboarded_world,
        &lc.world(),
        "the re-driven fix repaired the rest",
    );
}
