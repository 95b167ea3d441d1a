//! A worker process killed mid-saga (SIGKILL while a sandbox call hangs, as a Lambda timeout or
//! crash would leave it): once its lease expires, the reconciler process re-queues the saga and a
//! fresh worker process finishes it.

use std::time::{Duration, Instant};

use onboard_core::clock::{Clock, SystemClock};
use onboard_core::record::SagaStatus;
use onboard_integration_tests::lambda_runtime::InvokeError;
use onboard_integration_tests::{assert_onboarded, fail_nth, instances, spec, spec_namespace};
use onboard_sandbox::{FaultMode, FaultSpec};
use serde_json::json;

use crate::events::scheduled_event;
use crate::portal::{assert_resent_run_message, assert_run_message, submit};
use crate::stack::{Stack, INVOKE_TIMEOUT};

/// The killed worker's lease: short, so the test waits seconds, not the production five minutes.
const LEASE_SECONDS: &str = "2";
/// How long the hung call would take: far beyond the test, so it never completes during it.
const HANG_MS: u64 = 600_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_saga_is_finished_after_the_reconciler_requeues_it() {
    let stack = Stack::start().await;
    let pristine = stack.dump();
    // The reconciler sends to its own queue. In production its re-send comes after the lease
    // (300 s) ran out, outside SQS's five-minute deduplication window of the api's send of the
    // same `<saga>:run`; with a 2 s lease a re-send on the same queue would be deduplicated, so
    // the test keeps the two sends apart instead of waiting five minutes.
    let requeue = stack.new_queue("requeue").await;
    // The first CreateIntegrationAssociation hangs: the worker is mid-step when it dies.
    let hang = stack.sandbox().add_fault(FaultSpec {
        error: None,
        latency_ms: Some(HANG_MS),
        mode: Some(FaultMode::Delay),
        ..fail_nth("CreateIntegrationAssociation", 1, "unused", 500)
    });
    let (api, doomed) = tokio::join!(
        stack.api(),
        stack.worker(&[("LEASE_TTL_SECONDS", LEASE_SECONDS)])
    );
    let spec = spec(&instances(2));
    let namespace = spec_namespace(&spec);

    let saga_id = submit(&api, &spec, "portal-e2e-crash").await;
    let messages = stack.receive(&stack.queue, 1).await;
    assert_run_message(&messages[0], &saga_id, &namespace);
    let in_flight = doomed
        .submit(
            &crate::events::sqs_event(&stack.queue.arn, &messages),
            INVOKE_TIMEOUT,
        )
        .expect("the event is queued");

    // Wait until the worker is stuck in the hung call, then kill it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stack
        .sandbox()
        .faults()
        .iter()
        .any(|r| r.id == hang && r.fired == 1)
    {
        assert!(
            doomed.exit_status().is_none(),
            "the worker exited early: {:?}",
            doomed.logs()
        );
        assert!(
            Instant::now() < deadline,
            "the worker never reached CreateIntegrationAssociation: {:?}",
            doomed.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = stack.record(&saga_id).await;
    assert_eq!(before.status, SagaStatus::Running, "mid-saga");
    let dead_owner = before.lease.as_ref().expect("a lease").owner.clone();
    assert!(
        before
            .node("create_application", None)
            .is_some_and(|n| n.output.is_some()),
        "the application was created before the crash"
    );
    doomed.kill();
    match doomed.answer(in_flight).await {
        Err(InvokeError::Exited { .. }) => {}
        other => panic!("the killed worker cannot have answered: {other:?}"),
    }

    // The saga stays RUNNING under the dead worker's lease until it expires.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rec = stack.record(&saga_id).await;
        assert_eq!(rec.status, SagaStatus::Running);
        assert_eq!(
            rec.lease.as_ref().map(|l| l.owner.as_str()),
            Some(dead_owner.as_str())
        );
        if rec.lease_expires_at() < SystemClock.now() {
            break;
        }
        assert!(Instant::now() < deadline, "the lease never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let reconciler = stack.reconciler(&requeue).await;
    let report = reconciler.call(&scheduled_event()).await;
    assert_eq!(
        report,
        json!({"stalled": 1, "requeued": 1, "tooRecent": 0, "requeueFailed": 0, "rollbackFailed": 0,
               "needsAttention": 0, "driftChecked": 0, "drifted": 0, "driftCheckFailed": 0,
               "driftSkippedBusy": 0}),
        "the sweep's report (no managed application yet: nothing to check for drift)"
    );
    let requeued = stack.receive(&requeue, 1).await;
    assert_resent_run_message(&requeued[0], &saga_id, &namespace);

    let fresh = stack.worker(&[("LEASE_TTL_SECONDS", LEASE_SECONDS)]).await;
    let failed = fresh.run_batch(&requeue, &requeued).await;
    assert!(failed.is_empty(), "batchItemFailures: {failed:?}");
    stack.delete(&requeue, &requeued).await;

    let page = api.status_page(&saga_id).await;
    assert_eq!(page["status"], "SUCCEEDED", "{page}");
    let took_over = format!("took over from {dead_owner} ");
    assert!(
        page["log"].as_array().expect("a log").iter().any(|l| {
            l["event"] == "lease_taken"
                && l["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with(&took_over))
        }),
        "the fresh worker took over from the dead one: {page}"
    );
    // Exactly one onboarding: the hung call never completed and nothing was duplicated.
    let onboarded = assert_onboarded(&pristine, &stack.dump(), &spec);
    assert_eq!(
        page["resources"]["applicationArn"],
        onboarded.app_arn.as_str()
    );
}
