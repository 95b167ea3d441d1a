//! Pause / resume on one instance: the association, the SLR statement and the profile entries
//! go for that instance only, and come back on resume — the same world as before the pause.

use onboard_core::lifecycle::service::LifecycleError;
use onboard_core::record::SagaStatus;
use onboard_integration_tests::*;
use onboard_sandbox::FaultSpec;
use serde_json::Value;

use crate::support::*;

/// Onboarded on instances 1–3; returns (harness, app, world after onboarding, pristine dump).
async fn onboarded() -> (Lc, String, Value, Value) {
    let lc = Lc::start().await;
    let pristine = lc.h.dump();
    let app = lc.onboard(&spec(&instances(3))).await;
    let world = lc.world();
    (lc, app, world, pristine)
}

async fn pause(lc: &Lc, app: &str, n: usize) -> onboard_core::record::SagaRecord {
    let started = lc
        .lifecycle
        .pause(app, &instance(n), "ops@example.com", None, new_id("pause"))
        .await
        .expect("accepted");
    lc.run(&started).await
}

async fn resume(lc: &Lc, app: &str, n: usize) -> onboard_core::record::SagaRecord {
    let started = lc
        .lifecycle
        .resume(app, &instance(n), "ops@example.com", None, new_id("resume"))
        .await
        .expect("accepted");
    lc.run(&started).await
}

/// The world is `pristine` plus the onboarding on 1–3 minus everything on instance 2.
fn assert_paused_on_2(lc: &Lc, pristine: &Value) {
    let mut after = lc.h.dump();
    let others = [instance(1), instance(3)];
    let grants = vec![(instance(1), profile(1, 1)), (instance(3), profile(3, 1))];
    strip_parts(&mut after, NAMESPACE, &others, &others, &grants);
    assert_same(pristine, &after, "only instance 2's set-up is gone");
}

#[tokio::test]
async fn pause_removes_one_instance_and_resume_restores_the_same_world() {
    let (lc, app, onboarded_world, pristine) = onboarded().await;
    let rec = pause(&lc, &app, 2).await;
    assert_eq!(rec.status, SagaStatus::Succeeded, "{:?}", rec.cause);
    assert_paused_on_2(&lc, &pristine);
    let state = lc.state(&app).await;
    assert!(state.paused.contains(&instance(2)));
    assert!(
        state.instances.contains(&instance(2)),
        "paused, not removed"
    );

    // Pausing twice is refused; resuming an active instance too.
    assert!(matches!(
        lc.lifecycle
            .pause(&app, &instance(2), "ops", None, new_id("p"))
            .await,
        Err(LifecycleError::Invalid(_))
    ));
    assert!(matches!(
        lc.lifecycle
            .resume(&app, &instance(1), "ops", None, new_id("r"))
            .await,
        Err(LifecycleError::Invalid(_))
    ));

    let rec = resume(&lc, &app, 2).await;
    assert_eq!(rec.status, SagaStatus::Succeeded, "{:?}", rec.cause);
    assert_same(&onboarded_world, &lc.world(), "resume restores the world");
    assert!(lc.state(&app).await.paused.is_empty());
}

async fn faulted_pause(fault: FaultSpec) -> (Lc, Value, onboard_core::record::SagaRecord) {
    let (lc, app, world, _) = onboarded().await;
    lc.h.sandbox().clear_calls();
    lc.fault(fault);
    let rec = pause(&lc, &app, 2).await;
    (lc, world, rec)
}

#[tokio::test]
async fn a_failure_at_any_call_of_pause_or_resume_leaves_the_world_as_it_was() {
    // Which calls a pause makes.
    let (lc, app, _, pristine) = onboarded().await;
    lc.h.sandbox().clear_calls();
    pause(&lc, &app, 2).await;
    let pause_calls = lc.call_counts();
    lc.h.sandbox().clear_calls();
    resume(&lc, &app, 2).await;
    let resume_calls = lc.call_counts();
    drop(pristine);

    let mut cases = 0;
    for (op, count) in pause_calls {
        for n in 1..=count {
            let (lc, before, rec) = faulted_pause(denied(&op, n)).await;
            let expected = end_after_one_denial(&rec, &op, "check", SagaStatus::RolledBack);
            assert_eq!(rec.status, expected, "pause, {op} #{n}: {:?}", rec.cause);
            if expected == SagaStatus::Succeeded {
                continue; // retried while IAM propagates: the pause went through
            }
            assert_same(&before, &lc.world(), &format!("pause failed at {op} #{n}"));
            assert!(lc
                .state(rec.parent.as_deref().unwrap())
                .await
                .paused
                .is_empty());
            cases += 1;
        }
    }
    for (op, count) in resume_calls {
        for n in 1..=count {
            let (lc, app, _, pristine) = onboarded().await;
            assert_eq!(pause(&lc, &app, 2).await.status, SagaStatus::Succeeded);
            let paused = lc.world();
            lc.fault(denied(&op, n));
            let rec = resume(&lc, &app, 2).await;
            let expected = end_after_one_denial(&rec, &op, "check", SagaStatus::RolledBack);
            assert_eq!(rec.status, expected, "resume, {op} #{n}: {:?}", rec.cause);
            if expected == SagaStatus::Succeeded {
                continue; // retried while IAM propagates: the resume went through
            }
            assert_same(&paused, &lc.world(), &format!("resume failed at {op} #{n}"));
            assert_paused_on_2(&lc, &pristine);
            cases += 1;
        }
    }
    assert!(cases >= 10, "only {cases} calls were faulted");
}
