//! A worker that dies right after any log write: a fresh worker (another owner) resumes after
//! the lease expires and converges to the same end state.

use std::sync::Arc;
use std::time::Duration;

use onboard_core::engine::EngineError;
use onboard_core::record::SagaStatus;
use onboard_core::store::SagaStore;
use onboard_integration_tests::*;
use serde_json::Value;

const LEASE: Duration = Duration::from_millis(150);

fn harness_options() -> Options {
    Options {
        lease_ttl: LEASE,
        ..Options::default()
    }
}

/// For a rollback run: every grant is refused, so the saga rolls back after the SLR step.
fn make_it_roll_back(h: &Harness) {
    h.fault(fail_always(
        "UpdateSecurityProfile",
        "AccessDeniedException",
        403,
    ));
}

/// How many record writes one uninterrupted run makes.
async fn writes_of_a_run(h: &Harness, spec: &Value, rollback: bool) -> u64 {
    h.sandbox().reset().unwrap();
    if rollback {
        make_it_roll_back(h);
    }
    let counting = Arc::new(CrashingStore::new(h.store.clone(), u64::MAX));
    let id = h.submit(spec).await;
    h.engine_on(counting.clone(), "w0").run(&id).await.unwrap();
    counting.updates()
}

async fn crash_after_writes_converges(instances_n: usize, rollback: bool, sample_every: u64) {
    let h = Harness::with(harness_options()).await;
    let pristine = h.dump();
    let spec = spec(&instances(instances_n));
    let expected_status = if rollback {
        SagaStatus::RolledBack
    } else {
        SagaStatus::Succeeded
    };
    let total = writes_of_a_run(&h, &spec, rollback).await;
    assert!(total >= 14, "before and after every node: {total} writes");
    let mut crash_points: Vec<u64> = (1..=total).step_by(sample_every as usize).collect();
    if crash_points.last() != Some(&total) {
        crash_points.push(total);
    }
    for crash_at in crash_points {
        h.sandbox().reset().unwrap();
        if rollback {
            make_it_roll_back(&h);
        }
        let crashing = Arc::new(CrashingStore::new(h.store.clone(), crash_at));
        let id = h.submit(&spec).await;
        let case = format!(
            "{instances_n} instance(s), crash after write {crash_at}/{total} (rollback: {rollback})"
        );
        match h.engine_on(crashing, "w1").run(&id).await {
            Err(EngineError::Store(_)) => {}
            other => panic!("{case}: the first worker should have died: {other:?}"),
        }
        // A fresh worker: Busy while the dead worker's lease lasts, then takes over.
        let status = run_to_end(&h.engine("w2"), &id).await;
        assert_eq!(status, expected_status, "{case}");
        let rec = h.record(&id).await;
        assert_eq!(rec.status, expected_status, "{case}");
        if crash_at < total {
            assert!(
                rec.log.iter().any(|l| l.owner == "w2"
                    && l.event == "lease_taken"
                    && l.detail.as_deref() == Some("took over from w1 (lease expired)")),
                "{case}: w2 took the saga over: {:?}",
                rec.log
                    .iter()
                    .map(|l| (&l.owner, &l.event, &l.detail))
                    .collect::<Vec<_>>()
            );
        }
        if rollback {
            assert_same(&pristine, &h.dump(), &case);
        } else {
            assert_onboarded(&pristine, &h.dump(), &spec);
        }
        assert_eq!(
            h.store.namespace_holder(NAMESPACE).await.unwrap(),
            None,
            "{case}"
        );
    }
}

#[tokio::test]
async fn a_crash_after_each_log_write_converges_forward() {
    crash_after_writes_converges(1, false, 1).await;
}

#[tokio::test]
async fn a_crash_after_each_log_write_converges_in_rollback() {
    crash_after_writes_converges(1, true, 1).await;
}

#[tokio::test]
async fn a_crash_after_sampled_log_writes_converges_with_five_instances() {
    crash_after_writes_converges(SLR_INSTANCES, false, 3).await;
    crash_after_writes_converges(SLR_INSTANCES, true, 4).await;
}
