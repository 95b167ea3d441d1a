//! A worker that dies right after any log write of a lifecycle saga: a fresh worker resumes
//! after the lease expires and converges to the same end state.

use std::sync::Arc;
use std::time::Duration;

use onboard_core::clock::Clock;
use onboard_core::clock::{SystemClock, SystemRandom};
use onboard_core::engine::{Engine, EngineError, RunOutcome};
use onboard_core::lifecycle::{change, offboard, LifecyclePorts};
use onboard_core::record::SagaStatus;
use onboard_core::saga::SagaDef;
use onboard_core::store::SagaStore;
use onboard_integration_tests::*;
use serde_json::json;

use crate::support::*;

const LEASE: Duration = Duration::from_millis(150);

async fn lc() -> Lc {
    Lc::from(
        Harness::with(Options {
            lease_ttl: LEASE,
            ..Options::default()
        })
        .await,
    )
}

/// An engine whose store (for the log and for the commit step) is `store`.
fn engine_on(
    lc: &Lc,
    def: SagaDef<LifecyclePorts>,
    store: Arc<dyn SagaStore>,
) -> Engine<LifecyclePorts> {
    let ctx = Arc::new(LifecyclePorts {
        aws: lc.h.ports.clone(),
        store: store.clone(),
    });
    Engine::new(
        Arc::new(with_retry(def, test_retry(10))),
        ctx,
        store,
        lc.h.clock.clone(),
        Arc::new(SystemRandom),
        "doomed-worker",
    )
    .with_config(lc.h.engine_config.clone())
}

async fn run_to_end_any(engine: &Engine<LifecyclePorts>, id: &str) -> SagaStatus {
    for _ in 0..200 {
        match engine.run(id).await.expect("the engine runs") {
            RunOutcome::Finished(s) | RunOutcome::AlreadyFinished(s) => return s,
            RunOutcome::Busy { until, .. } => {
                let wait = until.saturating_sub(SystemClock.now()) + 10;
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
        }
    }
    panic!("saga {id} never finished");
}

/// Crash after every `step`-th write of a pause, then of an offboard; a fresh worker finishes.
#[tokio::test]
async fn a_crash_after_any_write_of_pause_or_offboard_converges() {
    for kind in ["pause", "offboard"] {
        // How many writes an uninterrupted run makes.
        let total = {
            let lc = lc().await;
            let app = lc.onboard(&spec(&instances(2))).await;
            let counting = Arc::new(CrashingStore::new(lc.h.store.clone(), u64::MAX));
            let (def, id) = start(&lc, &app, kind).await;
            engine_on(&lc, def, counting.clone())
                .run(&id)
                .await
                .unwrap();
            counting.updates()
        };
        assert!(total > 8, "{kind}: {total} writes");
        for crash_at in (1..total).step_by(3) {
            let lc = lc().await;
            let app = lc.onboard(&spec(&instances(2))).await;
            let before = lc.world();
            let (def, id) = start(&lc, &app, kind).await;
            let crashing = Arc::new(CrashingStore::new(lc.h.store.clone(), crash_at));
            match engine_on(&lc, def, crashing).run(&id).await {
                Err(EngineError::Store(_)) => {}
                other => panic!("{kind} crash {crash_at}: the worker should have died: {other:?}"),
            }
            let engine = if kind == "pause" {
                &lc.sagas.change
            } else {
                &lc.sagas.offboard
            };
            let status = run_to_end_any(engine, &id).await;
            assert_eq!(
                status,
                SagaStatus::Succeeded,
                "{kind} crash {crash_at}/{total}"
            );
            if kind == "offboard" {
                assert!(lc.lifecycle.application(&app).await.is_err(), "offboarded");
                assert_ne!(before, lc.world());
                assert!(!lc.world()["applications"]
                    .as_object()
                    .unwrap()
                    .values()
                    .any(|a| a["namespace"] == json!(NAMESPACE)));
            } else {
                let state = lc.state(&app).await;
                assert!(
                    state.paused.contains(&instance(2)),
                    "{kind} crash {crash_at}"
                );
                assert_eq!(state.last_change.as_deref(), Some(id.as_str()));
                let assoc =
                    lc.h.ports
                        .connect
                        .find_association(&instance(2), &state.app.arn)
                        .await
                        .unwrap();
                assert!(assoc.is_none(), "{kind} crash {crash_at}: paused on 2");
            }
        }
    }
}

async fn start(lc: &Lc, app: &str, kind: &str) -> (SagaDef<LifecyclePorts>, String) {
    if kind == "pause" {
        let s = lc
            .lifecycle
            .pause(app, &instance(2), "ops", None, new_id("pause"))
            .await
            .unwrap();
        (change::definition(4), s.saga_id)
    } else {
        let s = lc
            .lifecycle
            .offboard(app, "ops", None, new_id("off"))
            .await
            .unwrap();
        (offboard::definition(), s.saga_id)
    }
}
