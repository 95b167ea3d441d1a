//! The worker handler on real SQS event shapes, against the in-memory store and the fake AWS
//! world: partial batch responses, no-op redelivery, per-namespace ordering and concurrency,
//! metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsEvent;
use onboard_core::engine::EngineConfig;
use onboard_core::error::ErrorInfo;
use onboard_core::idempotency::IdempotencyConfig;
use onboard_core::lifecycle::service::{SagaSettings, Sagas};
use onboard_core::onboard::{self, OnboardConfig, OnboardPorts};
use onboard_core::record::{Millis, SagaRecord, SagaStatus};
use onboard_core::service::{Onboarding, RunAction, RunSagaMessage, SagaQueue};
use onboard_core::spec::parse_spec;
use onboard_core::store::{IdempotencyClaim, Page, SagaStore, StoreError};
use onboard_core::testkit::fake_world::{self as fw, FakeWorld};
use onboard_core::testkit::{FixedRandom, ManualClock, MemoryLocks, MemoryStore};
use onboard_lambda_common::Emf;
use onboard_worker::poison::{DeadLetters, PoisonPolicy};
use onboard_worker::{Disposition, Worker};
use serde_json::json;
use tokio::sync::Barrier;

/// A store that can fail or hold `get` for chosen sagas.
#[derive(Default)]
struct TestStore {
    inner: MemoryStore,
    failing: Mutex<BTreeSet<String>>,
    /// Sagas whose first `get` waits at the barrier (to prove concurrency).
    gated: Mutex<BTreeSet<String>>,
    barrier: Mutex<Option<Arc<Barrier>>>,
}

#[async_trait]
impl SagaStore for TestStore {
    async fn create(&self, r: &SagaRecord) -> Result<(), StoreError> {
        self.inner.create(r).await
    }
    async fn get(&self, id: &str) -> Result<Option<SagaRecord>, StoreError> {
        if self.failing.lock().unwrap().contains(id) {
            return Err(StoreError::Backend("injected: DynamoDB unavailable".into()));
        }
        let gate = self.gated.lock().unwrap().remove(id);
        let barrier = self.barrier.lock().unwrap().clone();
        if let (true, Some(b)) = (gate, barrier) {
            b.wait().await;
        }
        self.inner.get(id).await
    }
    async fn update(&self, r: &SagaRecord, v: u64) -> Result<(), StoreError> {
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

#[derive(Default)]
struct RecordingQueue(Mutex<Vec<RunSagaMessage>>);

#[async_trait]
impl SagaQueue for RecordingQueue {
    async fn enqueue(&self, m: &RunSagaMessage) -> Result<(), ErrorInfo> {
        self.0.lock().unwrap().push(m.clone());
        Ok(())
    }
}

struct Harness {
    world: Arc<FakeWorld>,
    store: Arc<TestStore>,
    onboarding: Onboarding,
    queue: Arc<RecordingQueue>,
    worker: Worker,
}

fn harness() -> Harness {
    let world = Arc::new(FakeWorld::standard());
    let clock = Arc::new(ManualClock::default());
    let store = Arc::new(TestStore::default());
    let ports = Arc::new(OnboardPorts {
        apps: world.clone(),
        connect: world.clone(),
        iam: world.clone(),
        locks: Arc::new(MemoryLocks::new()),
        clock: clock.clone(),
    });
    let def = Arc::new(onboard::definition(&OnboardConfig::default()));
    let queue = Arc::new(RecordingQueue::default());
    let onboarding = Onboarding {
        store: store.clone(),
        clock: clock.clone(),
        queue: queue.clone(),
        definition: def.clone(),
        idempotency: IdempotencyConfig::default(),
    };
    let sagas = Sagas::new(
        ports,
        store.clone(),
        clock.clone(),
        Arc::new(FixedRandom(0.5)),
        SagaSettings {
            onboard: OnboardConfig::default(),
            engine: EngineConfig::default(),
            owner: "worker-test".into(),
        },
    );
    Harness {
        world,
        store: store.clone(),
        onboarding,
        queue,
        worker: Worker {
            sagas,
            store,
            clock,
            emf: Emf::capture("worker"),
            concurrency: 4,
            dead_letters: None,
            poison: PoisonPolicy::default(),
        },
    }
}

fn spec(url: &str) -> onboard_core::spec::ApplicationSpec {
    let body = json!({
        "displayName": "Acme CRM",
        "accessUrl": url,
        "permissions": ["User.Details.View"],
        "instances": [fw::INSTANCE_ALPHA, fw::INSTANCE_BETA],
        "requester": {"source": "TICKET", "principal": "bob@example.com", "ticketId": "CHG0012345"}
    });
    parse_spec(body.to_string().as_bytes()).unwrap()
}

impl Harness {
    async fn submit(&self, url: &str) -> RunSagaMessage {
        let mut s = spec(url);
        s.requester.ticket_id = Some(format!("CHG{}", url.len() * 7919 % 100_000));
        let accepted = self
            .onboarding
            .submit(&s, Some(url), || "unused".into())
            .await
            .unwrap();
        let sent = self.queue.0.lock().unwrap().last().cloned().unwrap();
        assert_eq!(sent.saga_id, accepted.saga_id);
        sent
    }

    async fn status(&self, id: &str) -> SagaStatus {
        self.store.get(id).await.unwrap().unwrap().status
    }

    /// The message the last use case queued.
    fn last_sent(&self) -> RunSagaMessage {
        self.queue.0.lock().unwrap().last().cloned().unwrap()
    }

    /// Onboard an application through the worker; returns its id (the root saga).
    async fn onboarded(&self, url: &str) -> String {
        let m = self.submit(url).await;
        assert!(failures(&self.worker.handle(event(&[("on", body(&m))])).await).is_empty());
        assert_eq!(self.status(&m.saga_id).await, SagaStatus::Succeeded);
        m.saga_id
    }
}

fn event(messages: &[(&str, String)]) -> SqsEvent {
    let records: Vec<_> = messages
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id,
                "receiptHandle": format!("rh-{id}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:111122223333:onboard-runs.fifo",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn body(m: &RunSagaMessage) -> String {
    serde_json::to_string(m).unwrap()
}

fn failures(resp: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    resp.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

#[tokio::test]
async fn a_bad_message_fails_alone_and_its_good_neighbour_runs() {
    let h = harness();
    let good = h.submit("https://crm.example.com/agent").await;
    let fixture = include_str!("fixtures/sqs-batch-mixed.json").replace("{{SAGA}}", &good.saga_id);
    let event: SqsEvent = serde_json::from_str(&fixture).unwrap();

    let resp = h.worker.handle(event).await;

    assert_eq!(
        failures(&resp),
        vec![
            "11111111-aaaa-4aaa-8aaa-000000000002".to_string(),
            "11111111-aaaa-4aaa-8aaa-000000000003".to_string()
        ],
        "only the malformed bodies fail"
    );
    assert_eq!(h.status(&good.saga_id).await, SagaStatus::Succeeded);
    let emf = &h.worker.emf;
    assert_eq!(emf.total("SagasStarted"), 1.0);
    assert_eq!(emf.total("SagasSucceeded"), 1.0);
    assert_eq!(emf.total("MessagesRejected"), 2.0);
    assert!(emf.total("StepLatency") >= 0.0);
    assert!(emf
        .documents()
        .iter()
        .any(|d| d["Step"] == "associate" && d["sagaId"] == good.saga_id.as_str()));
    // The batch response serializes as Lambda expects.
    let wire = serde_json::to_value(&resp).unwrap();
    assert_eq!(
        wire["batchItemFailures"][0]["itemIdentifier"],
        "11111111-aaaa-4aaa-8aaa-000000000002"
    );
}

#[tokio::test]
async fn redelivery_of_a_finished_saga_is_a_no_op_success() {
    let h = harness();
    let m = h.submit("https://crm.example.com/agent").await;
    let first = h.worker.handle(event(&[("m1", body(&m))])).await;
    assert!(failures(&first).is_empty());
    assert_eq!(h.status(&m.saga_id).await, SagaStatus::Succeeded);
    let world_before = h.world.snapshot();
    let calls_before = h.world.call_log().len();

    let again = h.worker.handle(event(&[("m1-again", body(&m))])).await;

    assert!(failures(&again).is_empty());
    assert_eq!(h.world.snapshot(), world_before);
    assert_eq!(
        h.world.call_log().len(),
        calls_before,
        "no AWS call on redelivery"
    );
    assert_eq!(h.worker.emf.total("SagasSucceeded"), 1.0, "counted once");
}

#[tokio::test]
async fn a_terminal_failure_rolls_back_and_is_counted() {
    let h = harness();
    let m = h.submit("https://crm.example.com/agent").await;
    let pristine = h.world.snapshot();
    h.world
        .fail_always("create_association", fw::access_denied());

    let resp = h.worker.handle(event(&[("m1", body(&m))])).await;

    assert!(
        failures(&resp).is_empty(),
        "a rolled-back saga is a handled message"
    );
    assert_eq!(h.status(&m.saga_id).await, SagaStatus::RolledBack);
    assert_eq!(h.world.snapshot(), pristine);
    assert_eq!(h.worker.emf.total("SagasRolledBack"), 1.0);
    assert_eq!(h.worker.emf.total("SagasSucceeded"), 0.0);
}

#[tokio::test]
async fn store_errors_fail_the_message_and_hold_back_its_namespace() {
    let h = harness();
    let a = h.submit("https://crm.example.com/agent").await;
    let b = h.submit("https://kb.example.com").await;
    h.store.failing.lock().unwrap().insert(a.saga_id.clone());
    let a_again = RunSagaMessage {
        action: RunAction::Run,
        ..a.clone()
    };

    let resp = h
        .worker
        .handle(event(&[
            ("a1", body(&a)),
            ("b1", body(&b)),
            ("a2", body(&a_again)),
        ]))
        .await;

    let mut got = failures(&resp);
    got.sort();
    assert_eq!(got, vec!["a1".to_string(), "a2".to_string()]);
    assert_eq!(h.status(&b.saga_id).await, SagaStatus::Succeeded);
    assert_eq!(h.worker.emf.total("MessagesFailed"), 2.0);
}

#[tokio::test]
async fn unknown_sagas_fail_and_redrives_of_healthy_sagas_are_no_ops() {
    let h = harness();
    let m = h.submit("https://crm.example.com/agent").await;
    let ghost = RunSagaMessage {
        saga_id: "sg-does-not-exist".into(),
        namespace: "ghost.example.com".into(),
        action: RunAction::Run,
    };
    assert!(matches!(
        h.worker.handle_message(&ghost).await,
        Disposition::Hopeless(reason) if reason.contains("does not exist")
    ));
    let redrive = RunSagaMessage {
        action: RunAction::Redrive,
        ..m.clone()
    };
    assert_eq!(h.worker.handle_message(&redrive).await, Disposition::Done);
    assert_eq!(
        h.status(&m.saga_id).await,
        SagaStatus::Pending,
        "not touched"
    );
}

#[tokio::test]
async fn different_namespaces_in_one_batch_run_concurrently() {
    let h = harness();
    let a = h.submit("https://crm.example.com/agent").await;
    let b = h.submit("https://kb.example.com").await;
    // Each saga's first read waits until the other's has started: sequential runs would hang.
    *h.store.barrier.lock().unwrap() = Some(Arc::new(Barrier::new(2)));
    h.store
        .gated
        .lock()
        .unwrap()
        .extend([a.saga_id.clone(), b.saga_id.clone()]);

    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        h.worker
            .handle(event(&[("a1", body(&a)), ("b1", body(&b))])),
    )
    .await
    .expect("the two namespaces did not run concurrently");

    assert!(failures(&resp).is_empty());
    let statuses: BTreeMap<_, _> = [
        (a.saga_id.clone(), h.status(&a.saga_id).await),
        (b.saga_id.clone(), h.status(&b.saga_id).await),
    ]
    .into();
    assert!(
        statuses.values().all(|s| *s == SagaStatus::Succeeded),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn lifecycle_sagas_run_on_the_engine_of_their_kind() {
    let h = harness();
    let app = h.onboarded("https://crm.example.com/agent").await;
    let lifecycle = h.onboarding.lifecycle();
    let deletes_before = h.world.calls("delete_association");

    let paused = lifecycle
        .pause(
            &app,
            fw::INSTANCE_BETA,
            "ops@example.com",
            None,
            "sg-pause".into(),
        )
        .await
        .unwrap();
    let m = h.last_sent();
    assert_eq!(m.saga_id, paused.saga_id);
    let resp = h.worker.handle(event(&[("p1", body(&m))])).await;
    assert!(failures(&resp).is_empty());
    let record = h.store.get(&paused.saga_id).await.unwrap().unwrap();
    assert_eq!(
        (record.kind.as_str(), record.status),
        ("change", SagaStatus::Succeeded)
    );
    assert_eq!(record.parent.as_deref(), Some(app.as_str()));
    assert_eq!(
        h.world.calls("delete_association"),
        deletes_before + 1,
        "beta was detached"
    );

    let off = lifecycle
        .offboard(&app, "ops@example.com", None, "sg-off".into())
        .await
        .unwrap();
    let m = h.last_sent();
    assert!(failures(&h.worker.handle(event(&[("o1", body(&m))])).await).is_empty());
    let record = h.store.get(&off.saga_id).await.unwrap().unwrap();
    assert_eq!(
        (record.kind.as_str(), record.status),
        ("offboard", SagaStatus::Succeeded)
    );
    assert_eq!(h.world.calls("delete_application"), 1);
    let docs = h.worker.emf.documents();
    for kind in ["onboard", "change", "offboard"] {
        assert!(
            docs.iter()
                .any(|d| d["kind"] == kind && d["SagasSucceeded"] == 1.0),
            "a SagasSucceeded document for {kind}: {docs:?}"
        );
    }
}

#[tokio::test]
async fn an_offboard_that_cannot_finish_needs_attention_is_counted_and_a_redrive_finishes_it() {
    let h = harness();
    let app = h.onboarded("https://crm.example.com/agent").await;
    h.world
        .fail_always("delete_application", fw::access_denied());
    let off = h
        .onboarding
        .lifecycle()
        .offboard(&app, "ops@example.com", None, "sg-off".into())
        .await
        .unwrap();
    let m = h.last_sent();

    let resp = h.worker.handle(event(&[("o1", body(&m))])).await;

    assert!(
        failures(&resp).is_empty(),
        "a stopped saga is a handled message"
    );
    assert_eq!(h.status(&off.saga_id).await, SagaStatus::NeedsAttention);
    assert_eq!(h.worker.emf.total("SagasNeedsAttention"), 1.0);
    assert_eq!(h.worker.emf.total("SagasRollbackFailed"), 0.0);

    // The operator fixed the permission: the re-drive carries on forward.
    h.world.clear_faults();
    let redrive = h.onboarding.redrive(&off.saga_id).await.unwrap();
    assert_eq!(redrive.action, RunAction::Redrive);
    let resp = h.worker.handle(event(&[("o2", body(&redrive))])).await;
    assert!(failures(&resp).is_empty());
    assert_eq!(h.status(&off.saga_id).await, SagaStatus::Succeeded);
    assert_eq!(
        h.worker.emf.total("SagasNeedsAttention"),
        1.0,
        "counted once"
    );
}

#[tokio::test]
async fn a_saga_of_an_unknown_kind_fails_without_touching_aws() {
    let h = harness();
    let m = h.submit("https://crm.example.com/agent").await;
    let mut odd = h.store.get(&m.saga_id).await.unwrap().unwrap();
    odd.id = "sg-odd".into();
    odd.kind = "teleport".into();
    odd.namespace = "odd.example.com".into();
    h.store.create(&odd).await.unwrap();
    let message = RunSagaMessage {
        saga_id: "sg-odd".into(),
        namespace: "odd.example.com".into(),
        action: RunAction::Run,
    };

    let outcome = h.worker.handle_message(&message).await;

    assert!(
        matches!(&outcome, Disposition::Hopeless(r) if r.contains("teleport") && r.contains("retrying will not help")),
        "{outcome:?}"
    );
    assert!(h.world.call_log().is_empty(), "no AWS call");
}

/// What the worker did through its dead-letter port.
#[derive(Default)]
struct RecordingDeadLetters {
    parked: Mutex<Vec<(String, String, String)>>,
    paced: Mutex<Vec<(String, Duration)>>,
}

#[async_trait]
impl DeadLetters for RecordingDeadLetters {
    async fn park(&self, id: &str, group: &str, _body: &str, reason: &str) -> Result<(), String> {
        self.parked
            .lock()
            .unwrap()
            .push((id.to_string(), group.to_string(), reason.to_string()));
        Ok(())
    }
    async fn retry_after(&self, receipt: &str, delay: Duration) -> Result<(), String> {
        self.paced
            .lock()
            .unwrap()
            .push((receipt.to_string(), delay));
        Ok(())
    }
}

fn with_dead_letters(mut h: Harness) -> (Harness, Arc<RecordingDeadLetters>) {
    let dl = Arc::new(RecordingDeadLetters::default());
    h.worker.dead_letters = Some(dl.clone());
    (h, dl)
}

/// `event` with each message's `ApproximateReceiveCount`.
fn event_received(messages: &[(&str, String, u32)]) -> SqsEvent {
    let mut e = event(
        &messages
            .iter()
            .map(|(id, b, _)| (*id, b.clone()))
            .collect::<Vec<_>>(),
    );
    for (r, (_, _, n)) in e.records.iter_mut().zip(messages) {
        r.attributes
            .insert("ApproximateReceiveCount".into(), n.to_string());
    }
    e
}

/// Issue 15 (poison messages): a message that can never succeed used to fail on every
/// delivery and hold its namespace's FIFO group for visibility timeout × maxReceiveCount
/// (about 2.5 h) before the redrive policy moved it. It is now parked on the dead-letter queue
/// at once, with the reason, and the next message of the namespace runs in the same batch.
#[tokio::test]
async fn a_hopeless_message_is_parked_at_once_and_its_namespace_goes_on() {
    let (h, dl) = with_dead_letters(harness());
    let good = h.submit("https://crm.example.com/agent").await;
    let ghost = RunSagaMessage {
        saga_id: "sg-does-not-exist".into(),
        ..good.clone()
    };
    let resp = h
        .worker
        .handle(event(&[
            ("ghost", body(&ghost)),
            ("garbage", "{not json".into()),
            ("good", body(&good)),
        ]))
        .await;
    assert!(failures(&resp).is_empty(), "{:?}", failures(&resp));
    assert_eq!(h.status(&good.saga_id).await, SagaStatus::Succeeded);
    let parked = dl.parked.lock().unwrap().clone();
    let ids: BTreeSet<&str> = parked.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids, BTreeSet::from(["ghost", "garbage"]));
    let ghost_reason = &parked.iter().find(|p| p.0 == "ghost").unwrap().2;
    assert!(ghost_reason.contains("does not exist"), "{ghost_reason}");
    assert_eq!(
        parked.iter().find(|p| p.0 == "garbage").unwrap().1,
        "unreadable"
    );
    assert_eq!(h.worker.emf.total("MessagesParked"), 2.0);
}

/// A message failing for a reason that may pass comes back after a short growing delay (not
/// the 30-minute visibility timeout), its namespace held meanwhile; on its third failed
/// delivery it is parked and the namespace goes on. The saga stays runnable for the reconciler.
#[tokio::test]
async fn a_message_that_keeps_failing_is_paced_then_parked_on_its_third_delivery() {
    let (h, dl) = with_dead_letters(harness());
    let a = h.submit("https://crm.example.com/agent").await;
    h.store.failing.lock().unwrap().insert(a.saga_id.clone());
    let a_later = RunSagaMessage {
        action: RunAction::Run,
        ..a.clone()
    };

    for n in 1..=2u32 {
        let resp = h
            .worker
            .handle(event_received(&[
                ("a1", body(&a), n),
                ("a2", body(&a_later), 1),
            ]))
            .await;
        let mut got = failures(&resp);
        got.sort();
        assert_eq!(got, ["a1", "a2"], "delivery {n}: held, in order");
        let paced = dl.paced.lock().unwrap().clone();
        let a1 = paced.iter().rev().find(|(r, _)| r == "rh-a1").unwrap().1;
        assert_eq!(a1, PoisonPolicy::default().delay(n), "delivery {n}");
        assert!(dl.parked.lock().unwrap().is_empty());
    }

    let resp = h
        .worker
        .handle(event_received(&[
            ("a1", body(&a), 3),
            ("a2", body(&a_later), 1),
        ]))
        .await;
    // a1 is parked; a2 runs next and fails in turn (the store still fails), for its first time.
    assert_eq!(failures(&resp), ["a2"]);
    let parked = dl.parked.lock().unwrap().clone();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].0, "a1");
    assert_eq!(parked[0].1, a.namespace);
    assert!(
        parked[0].2.contains("failed 3 deliveries"),
        "{}",
        parked[0].2
    );
}
