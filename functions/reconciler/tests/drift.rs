//! Drift reporting by the reconciler against the sandbox (AppIntegrations, Connect and IAM
//! through the real SDK clients, `onboard_aws::onboard_ports`) with the saga log in DynamoDB on
//! moto — the harness of the cross-crate tests (`tests/src/lib.rs`). Needs `MOTO_ENDPOINT`
//! (`scripts/test.sh` starts moto).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use onboard_core::clock::SystemRandom;
use onboard_core::engine::EngineConfig;
use onboard_core::idempotency::IdempotencyConfig;
use onboard_core::lifecycle::service::{Lifecycle, SagaSettings, Sagas};
use onboard_core::lifecycle::{DriftKind, LifecyclePorts};
use onboard_core::onboard::OnboardConfig;
use onboard_core::record::{SagaRecord, SagaStatus};
use onboard_core::service::{NoQueue, RunAction, RunSagaMessage};
use onboard_core::store::SagaStore;
use onboard_core::testkit::ManualClock;
use onboard_integration_tests::{
    denied_for, fail_always, instance, instances, spec, spec_for, Harness,
};
use onboard_lambda_common::Emf;
use onboard_reconciler::{Reconciler, ReconcilerConfig};

/// A reconciler on the harness's store and sandbox, drift checks on (`drift: true`) or off.
fn reconciler(
    h: &Harness,
    clock: &Arc<ManualClock>,
    config: ReconcilerConfig,
    drift: bool,
) -> Reconciler {
    Reconciler {
        store: h.store.clone(),
        queue: Arc::new(NoQueue),
        clock: clock.clone(),
        emf: Emf::capture("reconciler"),
        config,
        drift: drift.then(|| Arc::new(ports(h))),
    }
}

fn ports(h: &Harness) -> LifecyclePorts {
    LifecyclePorts {
        aws: h.ports.clone(),
        store: h.store.clone(),
    }
}

fn lifecycle(h: &Harness, clock: &Arc<ManualClock>) -> Lifecycle {
    Lifecycle {
        store: h.store.clone(),
        clock: clock.clone(),
        queue: Arc::new(NoQueue),
        idempotency: IdempotencyConfig::default(),
    }
}

/// Run a recorded lifecycle saga to its end with the per-kind engines.
async fn run(h: &Harness, id: &str) -> SagaRecord {
    let sagas = Sagas::new(
        h.ports.clone(),
        h.store.clone(),
        h.clock.clone(),
        Arc::new(SystemRandom),
        SagaSettings {
            onboard: OnboardConfig::default(),
            engine: EngineConfig::default(),
            owner: "drift-test".into(),
        },
    );
    let before = h.record(id).await;
    let message = RunSagaMessage {
        saga_id: id.to_string(),
        namespace: before.namespace.clone(),
        action: RunAction::Run,
    };
    sagas.run(&before.kind, &message).await.unwrap();
    h.record(id).await
}

async fn onboarded(h: &Harness, name: &str, url: &str, n: usize) -> SagaRecord {
    let rec = h.onboard(&spec_for(name, url, &instances(n))).await;
    assert_eq!(rec.status, SagaStatus::Succeeded, "{:?}", rec.cause);
    rec
}

fn app_arn(rec: &SagaRecord) -> String {
    rec.output_of("create_application").unwrap()["arn"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_drifted_application_is_recorded_logged_and_counted() {
    let h = Harness::start().await;
    let crm = h.onboard(&spec(&instances(2))).await;
    assert_eq!(crm.status, SagaStatus::Succeeded);
    let kb = onboarded(&h, "Knowledge", "https://kb.example.com", 1).await;
    // Someone removes the CRM's association with instance 2 in the console.
    let connect = &h.ports.connect;
    let assoc = connect
        .find_association(&instance(2), &app_arn(&crm))
        .await
        .unwrap()
        .expect("onboarding associated instance 2");
    connect
        .delete_association(&instance(2), &assoc.id)
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::default());
    let r = reconciler(&h, &clock, ReconcilerConfig::default(), true);

    let report = r.sweep().await.unwrap();

    assert_eq!(
        (
            report.drift_checked,
            report.drifted,
            report.drift_check_failed
        ),
        (2, 1, 0)
    );
    let drift = h.record(&crm.id).await.drift.expect("a recorded report");
    assert_eq!(drift.checked_at, clock_now(&clock));
    let kinds: Vec<_> = drift
        .items
        .iter()
        .map(|i| (i.kind, i.instance.clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![(DriftKind::AssociationMissing, Some(instance(2)))]
    );
    let clean = h.record(&kb.id).await.drift.expect("a recorded report");
    assert!(clean.items.is_empty(), "{clean:?}");
    assert_eq!(r.emf.total("ApplicationsDrifted"), 1.0);
    assert_eq!(r.emf.total("DriftChecks"), 2.0);
    assert_eq!(r.emf.total("DriftCheckFailures"), 0.0);
    let untouched = h.dump();
    r.sweep().await.unwrap();
    assert_eq!(h.dump(), untouched, "a drift check changes nothing in AWS");
}

fn clock_now(clock: &Arc<ManualClock>) -> u64 {
    onboard_core::clock::Clock::now(clock.as_ref())
}

#[tokio::test]
async fn checks_are_bounded_per_sweep_and_the_least_recently_checked_go_first() {
    let h = Harness::start().await;
    let mut ids = Vec::new();
    for (name, url) in [
        ("One", "https://one.example.com"),
        ("Two", "https://two.example.com"),
        ("Three", "https://three.example.com"),
    ] {
        ids.push(onboarded(&h, name, url, 1).await.id);
    }
    let clock = Arc::new(ManualClock::default());
    let config = ReconcilerConfig {
        drift_check_limit: 2,
        ..ReconcilerConfig::default()
    };
    let r = reconciler(&h, &clock, config, true);

    let first = r.sweep().await.unwrap();
    assert_eq!(first.drift_checked, 2);
    let t1 = clock_now(&clock);
    let mut checked = Vec::new();
    for id in &ids {
        checked.push(h.record(id).await.drift.map(|d| d.checked_at));
    }
    assert_eq!(checked.iter().filter(|c| **c == Some(t1)).count(), 2);
    let never = ids[checked.iter().position(Option::is_none).unwrap()].clone();

    clock.advance(Duration::from_secs(300));
    let second = r.sweep().await.unwrap();

    assert_eq!(second.drift_checked, 2);
    let t2 = clock_now(&clock);
    assert_eq!(
        h.record(&never).await.drift.map(|d| d.checked_at),
        Some(t2),
        "the application never checked goes first"
    );
    let mut latest = 0;
    for id in &ids {
        if h.record(id).await.drift.map(|d| d.checked_at) == Some(t2) {
            latest += 1;
        }
    }
    assert_eq!(latest, 2, "still two per sweep");
}

#[tokio::test]
async fn off_busy_offboarded_or_out_of_budget_applications_are_not_checked() {
    let h = Harness::start().await;
    let crm = h.onboard(&spec(&instances(1))).await;
    let gone = onboarded(&h, "Gone", "https://gone.example.com", 1).await;
    let clock = Arc::new(ManualClock::default());
    let off = lifecycle(&h, &clock)
        .offboard(&gone.id, "ops@example.com", None, "sg-off-gone".into())
        .await
        .unwrap();
    assert_eq!(run(&h, &off.saga_id).await.status, SagaStatus::Succeeded);

    // Drift checking off: no AWS call at all.
    h.sandbox().clear_calls();
    let report = reconciler(&h, &clock, ReconcilerConfig::default(), false)
        .sweep()
        .await
        .unwrap();
    assert_eq!(report.drift_checked, 0);
    assert!(h.sandbox().calls().is_empty(), "{:?}", h.sandbox().calls());
    assert!(h.record(&crm.id).await.drift.is_none());

    // No budget left: no check starts.
    let config = ReconcilerConfig {
        drift_budget: Duration::ZERO,
        ..ReconcilerConfig::default()
    };
    let report = reconciler(&h, &clock, config, true).sweep().await.unwrap();
    assert_eq!(report.drift_checked, 0);
    assert!(h.sandbox().calls().is_empty());

    // A pause in flight holds the CRM's namespace: its state is changing, so it is skipped;
    // the offboarded application is not a managed application any more.
    lifecycle(&h, &clock)
        .pause(
            &crm.id,
            &instance(1),
            "ops@example.com",
            None,
            "sg-pause".into(),
        )
        .await
        .unwrap();
    let r = reconciler(&h, &clock, ReconcilerConfig::default(), true);
    let report = r.sweep().await.unwrap();
    assert_eq!(
        (report.drift_checked, report.drift_skipped_busy),
        (0, 1),
        "{report:?}"
    );
    assert!(h.sandbox().calls().is_empty());
    assert!(h.record(&gone.id).await.drift.is_none());
    assert_eq!(r.emf.total("DriftChecks"), 0.0);

    // Once the pause finished, the CRM is checked against its new (paused) state.
    assert_eq!(run(&h, "sg-pause").await.status, SagaStatus::Succeeded);
    let report = r.sweep().await.unwrap();
    assert_eq!((report.drift_checked, report.drifted), (1, 0), "{report:?}");
    let store: &dyn SagaStore = h.store.as_ref();
    assert!(store.get(&crm.id).await.unwrap().unwrap().drift.is_some());
}

#[tokio::test]
async fn a_failed_check_is_recorded_and_does_not_hold_the_first_slot_of_every_sweep() {
    let h = Harness::start().await;
    let one = onboarded(&h, "One", "https://one.example.com", 1).await;
    let two = onboarded(&h, "Two", "https://two.example.com", 1).await;
    let clock = Arc::new(ManualClock::default());
    let config = ReconcilerConfig {
        drift_check_limit: 1,
        ..ReconcilerConfig::default()
    };
    let r = reconciler(&h, &clock, config, true);
    // Both never checked: the first sweep takes one of them, and AWS refuses the read.
    let (code, status) = denied_for("GetApplication");
    h.fault(fail_always("GetApplication", code, status));

    let first = r.sweep().await.unwrap();

    assert_eq!((first.drift_checked, first.drift_check_failed), (0, 1));
    let t1 = clock_now(&clock);
    let mut failed = None;
    for id in [&one.id, &two.id] {
        let rec = h.record(id).await;
        if let Some(f) = rec.drift_failure {
            assert_eq!(f.at, t1);
            assert_eq!(f.error.code, "AccessDeniedException");
            assert!(
                rec.drift.is_none(),
                "no report from a check that did not finish"
            );
            failed = Some(id.clone());
        }
    }
    let failed = failed.expect("the failed check is recorded on its application");
    assert_eq!(r.emf.total("DriftCheckFailures"), 1.0);

    // The next sweep goes to the other application, not to the one that just failed.
    h.sandbox().clear_faults();
    clock.advance(Duration::from_secs(300));
    let second = r.sweep().await.unwrap();
    assert_eq!((second.drift_checked, second.drift_check_failed), (1, 0));
    let other = if failed == one.id { &two.id } else { &one.id };
    assert!(
        h.record(other).await.drift.is_some(),
        "the other application was checked"
    );
    assert!(h.record(&failed).await.drift.is_none());

    // Then the failed one again; a check that finishes clears its failure.
    clock.advance(Duration::from_secs(300));
    r.sweep().await.unwrap();
    let rec = h.record(&failed).await;
    assert_eq!(rec.drift.map(|d| d.checked_at), Some(clock_now(&clock)));
    assert!(
        rec.drift_failure.is_none(),
        "cleared by the check that finished"
    );
}
