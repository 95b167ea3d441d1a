//! The reconciler against the in-memory store and the fake AWS world: a worker killed mid-saga
//! is finished after its lease expires, never-queued sagas (of any kind) get queued,
//! ROLLBACK_FAILED and NEEDS_ATTENTION sagas are counted. Drift checks run against the sandbox:
//! see `drift.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use onboard_core::engine::EngineConfig;
use onboard_core::error::{ErrorInfo, ErrorKind};
use onboard_core::idempotency::IdempotencyConfig;
use onboard_core::lifecycle::service::{LifecycleError, SagaSettings, Sagas};
use onboard_core::onboard::{self, OnboardConfig, OnboardPorts};
use onboard_core::record::{Millis, SagaRecord, SagaStatus};
use onboard_core::saga::SagaDef;
use onboard_core::service::{Onboarding, RunSagaMessage, SagaQueue, SubmitFailure};
use onboard_core::spec::{parse_spec, ApplicationSpec};
use onboard_core::store::{IdempotencyClaim, Page, SagaStore, StoreError};
use onboard_core::testkit::fake_world::{self as fw, FakeWorld};
use onboard_core::testkit::{FixedRandom, ManualClock, MemoryLocks, MemoryStore};
use onboard_lambda_common::Emf;
use onboard_reconciler::{Reconciler, ReconcilerConfig, Report};
use onboard_worker::{Disposition, Worker};
use serde_json::json;

/// A store whose `update` hangs forever after `allowed` updates while `armed`: a worker stuck
/// there is as good as killed once its future is dropped.
#[derive(Default)]
struct KillableStore {
    inner: MemoryStore,
    armed: AtomicBool,
    allowed: AtomicUsize,
}

#[async_trait]
impl SagaStore for KillableStore {
    async fn create(&self, r: &SagaRecord) -> Result<(), StoreError> {
        self.inner.create(r).await
    }
    async fn get(&self, id: &str) -> Result<Option<SagaRecord>, StoreError> {
        self.inner.get(id).await
    }
    async fn update(&self, r: &SagaRecord, v: u64) -> Result<(), StoreError> {
        if self.armed.load(Ordering::SeqCst) {
            let left = self.allowed.load(Ordering::SeqCst);
            if left == 0 {
                std::future::pending::<()>().await;
            }
            self.allowed.store(left - 1, Ordering::SeqCst);
        }
        self.inner.update(r, v).await
    }
    async fn list_by_status(
        &self,
        s: SagaStatus,
        l: usize,
        c: Option<String>,
    ) -> Result<Page, StoreError> {
        self.inner.list_by_status(s, l, c).await
    }
    async fn list_stalled(&self, now: Millis, l: usize) -> Result<Vec<SagaRecord>, StoreError> {
        self.inner.list_stalled(now, l).await
    }
    async fn namespace_holder(&self, ns: &str) -> Result<Option<String>, StoreError> {
        self.inner.namespace_holder(ns).await
    }
    async fn claim_idempotency(
        &self,
        k: &str,
        h: &str,
        n: Millis,
        i: Millis,
        e: Millis,
    ) -> Result<IdempotencyClaim, StoreError> {
        self.inner.claim_idempotency(k, h, n, i, e).await
    }
    async fn complete_idempotency(&self, k: &str, h: &str, s: &str) -> Result<(), StoreError> {
        self.inner.complete_idempotency(k, h, s).await
    }
    async fn release_idempotency(&self, k: &str, h: &str) -> Result<(), StoreError> {
        self.inner.release_idempotency(k, h).await
    }
}

/// A queue that records messages, or refuses them while `down`.
#[derive(Default)]
struct TestQueue {
    sent: Mutex<Vec<RunSagaMessage>>,
    down: AtomicBool,
}

#[async_trait]
impl SagaQueue for TestQueue {
    async fn enqueue(&self, m: &RunSagaMessage) -> Result<(), ErrorInfo> {
        if self.down.load(Ordering::SeqCst) {
            return Err(ErrorInfo::new(
                ErrorKind::ServerError,
                "ServiceUnavailable",
                "injected: SQS down",
            ));
        }
        self.sent.lock().unwrap().push(m.clone());
        Ok(())
    }
}

struct Harness {
    world: Arc<FakeWorld>,
    clock: Arc<ManualClock>,
    store: Arc<KillableStore>,
    queue: Arc<TestQueue>,
    ports: Arc<OnboardPorts>,
    def: Arc<SagaDef<OnboardPorts>>,
    reconciler: Reconciler,
}

fn harness() -> Harness {
    let world = Arc::new(FakeWorld::standard());
    let clock = Arc::new(ManualClock::default());
    let store = Arc::new(KillableStore::default());
    let queue = Arc::new(TestQueue::default());
    let ports = Arc::new(OnboardPorts {
        apps: world.clone(),
        connect: world.clone(),
        iam: world.clone(),
        locks: Arc::new(MemoryLocks::new()),
        clock: clock.clone(),
    });
    let reconciler = Reconciler {
        store: store.clone(),
        queue: queue.clone(),
        clock: clock.clone(),
        emf: Emf::capture("reconciler"),
        config: ReconcilerConfig::default(),
        drift: None,
    };
    Harness {
        world,
        clock,
        store,
        queue,
        ports,
        def: Arc::new(onboard::definition(&OnboardConfig::default())),
        reconciler,
    }
}

impl Harness {
    fn worker(&self, owner: &str) -> Worker {
        Worker {
            sagas: Sagas::new(
                self.ports.clone(),
                self.store.clone(),
                self.clock.clone(),
                Arc::new(FixedRandom(0.5)),
                SagaSettings {
                    onboard: OnboardConfig::default(),
                    engine: EngineConfig::default(),
                    owner: owner.into(),
                },
            ),
            store: self.store.clone(),
            clock: self.clock.clone(),
            emf: Emf::capture("worker"),
            concurrency: 2,
            dead_letters: None,
            poison: onboard_worker::poison::PoisonPolicy::default(),
        }
    }

    fn onboarding(&self) -> Onboarding {
        Onboarding {
            store: self.store.clone(),
            clock: self.clock.clone(),
            queue: self.queue.clone(),
            definition: self.def.clone(),
            idempotency: IdempotencyConfig::default(),
        }
    }

    async fn submit(&self, url: &str) -> Result<String, SubmitFailure> {
        self.onboarding()
            .submit(&spec(url), Some(url), || "unused".into())
            .await
            .map(|a| a.saga_id)
    }

    fn take_sent(&self) -> Vec<RunSagaMessage> {
        std::mem::take(&mut *self.queue.sent.lock().unwrap())
    }

    async fn record(&self, id: &str) -> SagaRecord {
        self.store.get(id).await.unwrap().unwrap()
    }
}

fn spec(url: &str) -> ApplicationSpec {
    let body = json!({
        "displayName": "Acme CRM",
        "accessUrl": url,
        "permissions": ["User.Details.View"],
        "instances": [fw::INSTANCE_ALPHA, fw::INSTANCE_BETA],
        "requester": {"source": "PORTAL", "principal": "alice@example.com"}
    });
    parse_spec(body.to_string().as_bytes()).unwrap()
}

#[tokio::test]
async fn a_worker_killed_mid_saga_is_finished_after_its_lease_expires() {
    let h = harness();
    let id = h.submit("https://crm.example.com/agent").await.unwrap();
    let message = h.take_sent().pop().unwrap();

    // Worker A dies after a handful of writes: mid-way through the saga.
    h.store.allowed.store(5, Ordering::SeqCst);
    h.store.armed.store(true, Ordering::SeqCst);
    let a = h.worker("worker-a");
    let killed = tokio::time::timeout(Duration::from_millis(300), a.handle_message(&message)).await;
    assert!(killed.is_err(), "worker A should have been stuck");
    drop(a);
    h.store.armed.store(false, Ordering::SeqCst);
    let stuck = h.record(&id).await;
    assert_eq!(stuck.status, SagaStatus::Running);
    assert_eq!(stuck.lease.as_ref().unwrap().owner, "worker-a");

    // While the lease is live, the reconciler leaves it alone.
    let report = h.reconciler.sweep().await.unwrap();
    assert_eq!(report.requeued, 0);
    assert!(h.take_sent().is_empty());

    // After the lease expired, it re-queues the saga and a new worker finishes it.
    h.clock.advance(Duration::from_secs(301));
    let report = h.reconciler.sweep().await.unwrap();
    assert_eq!(
        report,
        Report {
            stalled: 1,
            requeued: 1,
            ..Report::default()
        }
    );
    let requeued = h.take_sent();
    assert_eq!(requeued, vec![message]);
    let b = h.worker("worker-b");
    assert_eq!(b.handle_message(&requeued[0]).await, Disposition::Done);
    let done = h.record(&id).await;
    assert_eq!(done.status, SagaStatus::Succeeded);
    assert!(done
        .log
        .iter()
        .any(|e| e.event == "lease_taken" && e.owner == "worker-b"));
    assert_eq!(h.world.calls("create_application"), 1);
    assert_eq!(h.reconciler.emf.total("SagasRequeued"), 1.0);
}

#[tokio::test]
async fn a_saga_recorded_but_never_queued_is_queued_after_the_grace_period() {
    let h = harness();
    h.queue.down.store(true, Ordering::SeqCst);
    let err = h.submit("https://crm.example.com/agent").await.unwrap_err();
    let SubmitFailure::NotQueued { saga_id, .. } = err else {
        panic!("expected NotQueued, got {err:?}");
    };
    h.queue.down.store(false, Ordering::SeqCst);

    let report = h.reconciler.sweep().await.unwrap();
    assert_eq!(
        (report.stalled, report.too_recent, report.requeued),
        (1, 1, 0)
    );

    h.clock.advance(Duration::from_secs(121));
    let report = h.reconciler.sweep().await.unwrap();
    assert_eq!(report.requeued, 1);
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].saga_id, saga_id);
    assert_eq!(sent[0].namespace, "crm.example.com/agent");
}

#[tokio::test]
async fn queue_failures_are_counted_and_retried_on_the_next_sweep() {
    let h = harness();
    h.submit("https://crm.example.com/agent").await.unwrap();
    h.take_sent();
    h.clock.advance(Duration::from_secs(600));
    h.queue.down.store(true, Ordering::SeqCst);
    let report = h.reconciler.sweep().await.unwrap();
    assert_eq!((report.requeued, report.requeue_failed), (0, 1));
    assert_eq!(h.reconciler.emf.total("RequeueFailures"), 1.0);
    h.queue.down.store(false, Ordering::SeqCst);
    assert_eq!(h.reconciler.sweep().await.unwrap().requeued, 1);
}

#[tokio::test]
async fn rollback_failed_sagas_are_reported_as_a_metric_and_not_requeued() {
    let h = harness();
    let id = h.submit("https://crm.example.com/agent").await.unwrap();
    let message = h.take_sent().pop().unwrap();
    h.world
        .fail_always("create_association", fw::access_denied());
    h.world
        .fail_always("delete_application", fw::access_denied());
    assert_eq!(
        h.worker("w").handle_message(&message).await,
        Disposition::Done
    );
    assert_eq!(h.record(&id).await.status, SagaStatus::RollbackFailed);

    h.clock.advance(Duration::from_secs(3600));
    let report = h.reconciler.sweep().await.unwrap();
    assert_eq!(report.rollback_failed, 1);
    assert_eq!(
        report.requeued, 0,
        "a ROLLBACK_FAILED saga waits for an operator"
    );
    assert_eq!(h.reconciler.emf.total("SagasInRollbackFailed"), 1.0);
}

#[test]
fn the_scheduled_event_fixture_is_what_the_handler_accepts() {
    let event: EventBridgeEvent =
        serde_json::from_str(include_str!("fixtures/eventbridge-schedule.json")).unwrap();
    assert_eq!(event.detail_type, "Scheduled Event");
    assert_eq!(event.source, "aws.events");
    let report = serde_json::to_value(Report {
        stalled: 2,
        requeued: 1,
        too_recent: 1,
        rollback_failed: 3,
        needs_attention: 4,
        drifted: 5,
        ..Report::default()
    })
    .unwrap();
    assert_eq!(report["rollbackFailed"], 3);
    assert_eq!(report["needsAttention"], 4);
    assert_eq!(report["drifted"], 5);
}

impl Harness {
    /// Onboard through a worker; returns the application id.
    async fn onboarded(&self, url: &str) -> String {
        let id = self.submit(url).await.unwrap();
        let message = self.take_sent().pop().unwrap();
        assert_eq!(
            self.worker("w").handle_message(&message).await,
            Disposition::Done
        );
        assert_eq!(self.record(&id).await.status, SagaStatus::Succeeded);
        id
    }
}

#[tokio::test]
async fn a_lifecycle_saga_recorded_but_never_queued_is_queued_and_runs_on_its_engine() {
    let h = harness();
    let app = h.onboarded("https://crm.example.com/agent").await;
    h.queue.down.store(true, Ordering::SeqCst);
    let err = h
        .onboarding()
        .lifecycle()
        .pause(
            &app,
            fw::INSTANCE_BETA,
            "ops@example.com",
            None,
            "sg-pause".into(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LifecycleError::NotQueued { .. }), "{err:?}");
    h.queue.down.store(false, Ordering::SeqCst);

    h.clock.advance(Duration::from_secs(121));
    let report = h.reconciler.sweep().await.unwrap();

    assert_eq!(report.requeued, 1);
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].saga_id, "sg-pause");
    assert_eq!(
        h.worker("w2").handle_message(&sent[0]).await,
        Disposition::Done
    );
    let pause = h.record("sg-pause").await;
    assert_eq!(
        (pause.kind.as_str(), pause.status),
        ("change", SagaStatus::Succeeded)
    );
}

#[tokio::test]
async fn needs_attention_sagas_are_reported_as_a_metric_and_not_requeued() {
    let h = harness();
    let app = h.onboarded("https://crm.example.com/agent").await;
    h.world
        .fail_always("delete_application", fw::access_denied());
    h.onboarding()
        .lifecycle()
        .offboard(&app, "ops@example.com", None, "sg-off".into())
        .await
        .unwrap();
    let message = h.take_sent().pop().unwrap();
    assert_eq!(
        h.worker("w").handle_message(&message).await,
        Disposition::Done
    );
    assert_eq!(h.record("sg-off").await.status, SagaStatus::NeedsAttention);

    h.clock.advance(Duration::from_secs(3600));
    let report = h.reconciler.sweep().await.unwrap();

    assert_eq!((report.needs_attention, report.rollback_failed), (1, 0));
    assert_eq!(report.requeued, 0, "it waits for an operator's re-drive");
    assert_eq!(h.reconciler.emf.total("SagasInNeedsAttention"), 1.0);
    assert_eq!(h.reconciler.emf.total("SagasInRollbackFailed"), 0.0);
    assert_eq!(
        h.reconciler.emf.total("DriftChecks"),
        0.0,
        "no drift metrics when drift checking is off"
    );
    assert!(h
        .reconciler
        .emf
        .documents()
        .iter()
        .all(|d| d.get("ApplicationsDrifted").is_none()));
}

/// The reconciler's re-send reaches the worker's FIFO queue (moto's SQS) even when the saga's
/// first message is still on the queue, i.e. within SQS's five-minute deduplication window of
/// the first send: SQS drops a message whose deduplication id it saw in that window, so the
/// re-send must not reuse the first send's `<saga>:run`.
#[tokio::test]
async fn a_resend_within_the_deduplication_window_of_the_first_send_is_delivered() {
    use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
    use onboard_lambda_common::clients;

    let moto = std::env::var("MOTO_ENDPOINT")
        .expect("MOTO_ENDPOINT: run via scripts/test.sh, which starts moto");
    let sdk =
        onboard_integration_tests::sdk_config(&moto, aws_config::retry::RetryConfig::standard())
            .await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let name = format!("requeue-{}-{}.fifo", std::process::id(), unique_suffix());
    let url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();

    // Production wiring: the API's first send, the reconciler's re-sends.
    let mut h = harness();
    let first_sends = clients::saga_queue(&sdk, &url);
    h.reconciler.queue = clients::resend_queue(&sdk, &url);
    let onboarding = Onboarding {
        queue: first_sends,
        ..h.onboarding()
    };
    let id = onboarding
        .submit(&spec("https://crm.example.com/agent"), None, || {
            "sg-dedup-window".into()
        })
        .await
        .unwrap()
        .saga_id;

    // A worker dies mid-saga; its message is still on the queue (in flight, never deleted).
    h.store.allowed.store(3, Ordering::SeqCst);
    h.store.armed.store(true, Ordering::SeqCst);
    let first = RunSagaMessage {
        saga_id: id.clone(),
        namespace: "crm.example.com/agent".into(),
        action: onboard_core::service::RunAction::Run,
    };
    let a = h.worker("worker-a");
    let killed = tokio::time::timeout(Duration::from_millis(300), a.handle_message(&first)).await;
    assert!(killed.is_err(), "worker A should have been stuck");
    drop(a);
    h.store.armed.store(false, Ordering::SeqCst);

    // Its lease expired (on the saga clock; SQS's clock has moved on a second at most).
    h.clock.advance(Duration::from_secs(301));
    let report = h.reconciler.sweep().await.unwrap();
    assert_eq!((report.stalled, report.requeued), (1, 1), "{report:?}");

    let mut got = Vec::new();
    for _ in 0..5 {
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        for m in out.messages() {
            let body: RunSagaMessage = serde_json::from_str(m.body().unwrap()).unwrap();
            let dedup = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageDeduplicationId))
                .cloned()
                .unwrap_or_default();
            got.push((body, dedup));
            sqs.delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        if got.len() >= 2 {
            break;
        }
    }
    assert_eq!(
        got.len(),
        2,
        "the first send and the reconciler's re-send are both on the queue: {got:?}"
    );
    assert!(got.iter().all(|(m, _)| *m == first), "{got:?}");
    assert_eq!(got[0].1, format!("{id}:run"), "the first send keeps its id");
    assert!(
        got[1].1.starts_with(&format!("{id}:run:resend:")),
        "the re-send has its own id: {got:?}"
    );

    // The re-sent message finishes the saga.
    let b = h.worker("worker-b");
    assert_eq!(b.handle_message(&got[1].0).await, Disposition::Done);
    assert_eq!(h.record(&id).await.status, SagaStatus::Succeeded);
}

/// A queue-name suffix unique within this process run.
fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
