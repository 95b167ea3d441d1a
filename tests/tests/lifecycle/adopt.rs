//! Adopt: an application made in the console comes under management, and offboarding it
//! afterwards cleans up an app the product did not create.

use std::collections::BTreeMap;

use onboard_core::lifecycle::service::Started;
use onboard_core::ports::{CreateApplication, ProfileApplication};
use onboard_core::record::SagaStatus;
use onboard_core::service::RunAction;
use onboard_core::spec::parse_spec;
use onboard_integration_tests::*;

use crate::support::*;

const CONSOLE_NS: &str = "kb.example.com";

/// What someone clicking through the console does: create the app (no tags of ours),
/// associate it with instances 1 and 2, grant it in instance 1's second profile.
async fn console_app(lc: &Lc) {
    let spec = parse_spec(
        spec_for("Knowledge Base", "https://kb.example.com", &[])
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let app =
        lc.h.ports
            .apps
            .create_application(&CreateApplication {
                spec,
                namespace: CONSOLE_NS.into(),
                client_token: "console-click".into(),
                tags: BTreeMap::new(),
            })
            .await
            .unwrap();
    for n in [1, 2] {
        lc.h.ports
            .connect
            .create_association(&instance(n), &app.arn)
            .await
            .unwrap();
    }
    let mut apps =
        lc.h.ports
            .connect
            .profile_applications(&instance(1), &profile(1, 2))
            .await
            .unwrap();
    apps.push(ProfileApplication {
        namespace: CONSOLE_NS.into(),
        permissions: vec!["ACCESS".into()],
        kind: None,
    });
    lc.h.ports
        .connect
        .set_profile_applications(&instance(1), &profile(1, 2), &apps)
        .await
        .unwrap();
}

async fn adopt(lc: &Lc, namespace: &str) -> (Started, onboard_core::record::SagaRecord) {
    let started = lc
        .lifecycle
        .adopt(namespace, "ops@example.com", None, new_id("adopt"))
        .await
        .unwrap();
    let rec = lc.run(&started).await;
    (started, rec)
}

async fn offboard(lc: &Lc, app: &str) -> onboard_core::record::SagaRecord {
    let started = lc
        .lifecycle
        .offboard(app, "ops@example.com", None, new_id("off"))
        .await
        .unwrap();
    lc.run(&started).await
}

#[tokio::test]
async fn adopt_then_offboard_cleans_up_an_app_the_product_did_not_create() {
    let lc = Lc::start().await;
    let pristine = lc.world();
    console_app(&lc).await;
    let (started, rec) = adopt(&lc, CONSOLE_NS).await;
    assert_eq!(rec.status, SagaStatus::Succeeded, "{:?}", rec.cause);
    assert_eq!(
        started.application_id, rec.id,
        "the adopt saga is the application"
    );
    let state = lc.state(&rec.id).await;
    assert_eq!(
        state.instances.iter().cloned().collect::<Vec<_>>(),
        [instance(1), instance(2)]
    );
    assert_eq!(
        state
            .profiles
            .get(&instance(1))
            .map(|p| p.iter().cloned().collect::<Vec<_>>()),
        Some(vec![profile(1, 2)])
    );
    assert!(
        !state.slr_statements,
        "the console added no statement of ours"
    );
    assert_eq!(state.fields.display_name, "Knowledge Base");
    let report = lc
        .lifecycle
        .check_drift(&lc.ports(), &rec.id)
        .await
        .unwrap();
    assert!(!report.drifted(), "{report:?}");

    let off = offboard(&lc, &rec.id).await;
    assert_eq!(off.status, SagaStatus::Succeeded, "{:?}", off.cause);
    assert_same(&pristine, &lc.world(), "no trace of the console-made app");
}

#[tokio::test]
async fn offboarding_the_adopted_foreign_app_removes_its_grants_on_every_instance() {
    let lc = Lc::start().await;
    let before = lc.h.dump();
    let (_, rec) = adopt(&lc, FOREIGN_NAMESPACE).await;
    assert_eq!(rec.status, SagaStatus::Succeeded, "{:?}", rec.cause);
    let off = offboard(&lc, &rec.id).await;
    assert_eq!(off.status, SagaStatus::Succeeded, "{:?}", off.cause);
    // Expected: the seed without the foreign app, its two associations and the Agent-profile
    // grants on all five instances (also those it was never associated with).
    let mut expected = before.clone();
    let apps = expected["applications"].as_object_mut().unwrap();
    apps.retain(|_, a| a["namespace"] != FOREIGN_NAMESPACE);
    let foreign_arn = before["applications"]
        .as_object()
        .unwrap()
        .values()
        .find(|a| a["namespace"] == FOREIGN_NAMESPACE)
        .unwrap()["arn"]
        .clone();
    expected["integration_associations"]
        .as_object_mut()
        .unwrap()
        .retain(|_, a| a["integration_arn"] != foreign_arn);
    expected["application_associations"]
        .as_object_mut()
        .unwrap()
        .retain(|_, a| a["application_arn"] != foreign_arn);
    for n in 1..=SLR_INSTANCES {
        expected["instances"][instance(n).as_str()]["security_profiles"][profile(n, 1).as_str()]
            ["applications"]
            .as_array_mut()
            .unwrap()
            .retain(|g| g["Namespace"] != FOREIGN_NAMESPACE);
    }
    assert_same(
        &canonical(expected),
        &lc.world(),
        "the foreign app is gone everywhere",
    );
}

#[tokio::test]
async fn adopt_of_an_unknown_namespace_rolls_back_recording_nothing_managed() {
    let lc = Lc::start().await;
    let (started, rec) = adopt(&lc, "nobody.example.com").await;
    assert_eq!(rec.status, SagaStatus::RolledBack);
    assert_eq!(rec.cause.as_ref().unwrap().code, "ApplicationNotFound");
    assert!(lc.lifecycle.application(&started.saga_id).await.is_err());
}

#[tokio::test]
async fn adopt_refuses_an_application_this_product_already_manages() {
    let lc = Lc::start().await;
    let app = lc.onboard(&spec(&instances(1))).await;
    let (_, rec) = adopt(&lc, NAMESPACE).await;
    assert_eq!(rec.status, SagaStatus::RolledBack);
    let cause = rec.cause.unwrap();
    assert_eq!(cause.code, "AlreadyManaged");
    assert!(cause.fix.unwrap().contains(&app));
}

#[tokio::test]
async fn offboard_of_an_adopted_app_recovers_from_a_failure_at_any_call() {
    let clean = Lc::start().await;
    console_app(&clean).await;
    let (_, rec) = adopt(&clean, CONSOLE_NS).await;
    clean.h.sandbox().clear_calls();
    offboard(&clean, &rec.id).await;
    let calls = clean.call_counts();
    for (op, count) in calls {
        if !MUTATING.contains(&op.as_str()) {
            continue;
        }
        for n in 1..=count {
            let lc = Lc::start().await;
            let pristine = lc.world();
            console_app(&lc).await;
            let (_, rec) = adopt(&lc, CONSOLE_NS).await;
            lc.fault(denied(&op, n));
            let off = offboard(&lc, &rec.id).await;
            assert_eq!(off.status, SagaStatus::NeedsAttention, "{op} #{n}");
            lc.h.sandbox().clear_faults();
            let done = lc.drive(&off.id, RunAction::Redrive).await;
            assert_eq!(
                done.status,
                SagaStatus::Succeeded,
                "{op} #{n}: {:?}",
                done.cause
            );
            assert_same(&pristine, &lc.world(), &format!("{op} #{n}"));
        }
    }
}

#[tokio::test]
async fn a_second_adopt_of_the_same_application_is_refused() {
    let lc = Lc::start().await;
    console_app(&lc).await;
    let (_, first) = adopt(&lc, CONSOLE_NS).await;
    assert_eq!(first.status, SagaStatus::Succeeded, "{:?}", first.cause);
    let tags =
        lc.h.ports
            .apps
            .find_application(CONSOLE_NS)
            .await
            .unwrap()
            .unwrap()
            .tags;
    assert_eq!(
        tags.get(onboard_core::onboard::SAGA_TAG),
        Some(&first.id),
        "adoption tags the application"
    );
    let (_, second) = adopt(&lc, CONSOLE_NS).await;
    assert_eq!(second.status, SagaStatus::RolledBack);
    let cause = second.cause.unwrap();
    assert_eq!(cause.code, "AlreadyManaged");
    assert!(cause.fix.unwrap().contains(&first.id));
}

#[tokio::test]
async fn a_failed_adopt_leaves_the_application_untagged() {
    // Refused before the tag, and applied-but-answered-with-an-error (the undo must untag).
    let faults = [
        ("refused", denied("TagResource", 1)),
        (
            "applied then denied",
            apply_then_drop("TagResource", 1, Some(("AccessDeniedException", 403))),
        ),
    ];
    for (what, fault) in faults {
        let lc = Lc::start().await;
        console_app(&lc).await;
        let before = lc.world();
        lc.fault(fault);
        let (_, rec) = adopt(&lc, CONSOLE_NS).await;
        assert_eq!(rec.status, SagaStatus::RolledBack, "{what}");
        assert_same(&before, &lc.world(), what);
    }
}
