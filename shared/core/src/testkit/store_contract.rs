//! The contract every `SagaStore` must meet. Each adapter's tests call [`run_all`] with a
//! factory that returns a fresh, empty store; a failure panics with the case's name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;

use serde_json::json;

use crate::record::{Lease, LogEntry, NodeRecord, NodeState, SagaRecord, SagaStatus};
use crate::store::{IdempotencyClaim, SagaStore, StoreError};

/// A record as an engine would create it.
pub fn sample_record(id: &str, namespace: &str) -> SagaRecord {
    SagaRecord {
        id: id.to_string(),
        kind: "onboard".into(),
        namespace: namespace.to_string(),
        status: SagaStatus::Pending,
        version: 1,
        lease: None,
        input: json!({"displayName": "CRM — ünïcödé", "instances": ["i-1", "i-2"]}),
        targets: vec!["i-1".into(), "i-2".into()],
        nodes: vec![NodeRecord {
            step: "associate".into(),
            target: Some("i-1".into()),
            state: NodeState::Pending,
            attempts: 0,
            undo_attempts: 0,
            output: None,
            error: None,
            started_at: None,
            finished_at: None,
        }],
        log: vec![LogEntry {
            at: 1,
            node: "saga".into(),
            event: "created".into(),
            detail: Some("quotes \" and newlines\n".into()),
            owner: "w1".into(),
        }],
        cause: None,
        undo_error: None,
        idempotency_key: None,
        payload_hash: Some("abc".into()),
        created_at: 1_000,
        updated_at: 1_000,
    }
}

/// `record` advanced by one version with `status`, at `at`.
pub fn advanced(record: &SagaRecord, status: SagaStatus, at: u64) -> SagaRecord {
    let mut next = record.clone();
    next.version += 1;
    next.status = status;
    next.updated_at = at;
    next
}

/// Run every contract case, each against a fresh store from `make_store`.
pub async fn run_all<F, Fut, S>(make_store: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: SagaStore + 'static,
{
    create_then_get_round_trips(&make_store().await).await;
    duplicate_id_is_refused(&make_store().await).await;
    namespace_is_held_until_finished(&make_store().await).await;
    rollback_failed_keeps_namespace(&make_store().await).await;
    stale_finished_saga_never_releases_anothers_namespace(&make_store().await).await;
    update_checks_version(&make_store().await).await;
    concurrent_updates_exactly_one_wins(Arc::new(make_store().await)).await;
    list_by_status_pages_oldest_first(&make_store().await).await;
    list_stalled_finds_expired_and_unleased(&make_store().await).await;
    idempotency_claims(&make_store().await).await;
    idempotency_in_progress_expires(&make_store().await).await;
    idempotency_release(&make_store().await).await;
}

async fn create_then_get_round_trips(store: &dyn SagaStore) {
    let rec = sample_record("s1", "crm.example.com");
    store.create(&rec).await.unwrap();
    let got = store.get("s1").await.unwrap();
    assert_eq!(got.as_ref(), Some(&rec), "create_then_get_round_trips");
    assert_eq!(
        store.get("nope").await.unwrap(),
        None,
        "missing saga is None"
    );
    assert_eq!(
        store
            .namespace_holder("crm.example.com")
            .await
            .unwrap()
            .as_deref(),
        Some("s1"),
        "a pending saga holds its namespace"
    );
}

async fn duplicate_id_is_refused(store: &dyn SagaStore) {
    let rec = sample_record("s1", "a");
    store.create(&rec).await.unwrap();
    let err = store.create(&sample_record("s1", "b")).await.unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyExists { ref id } if id == "s1"),
        "duplicate_id_is_refused: {err:?}"
    );
    assert_eq!(
        store.namespace_holder("b").await.unwrap(),
        None,
        "a refused create writes nothing (no namespace guard for b)"
    );
    assert_eq!(store.get("s1").await.unwrap().unwrap().namespace, "a");
}

async fn namespace_is_held_until_finished(store: &dyn SagaStore) {
    let first = sample_record("s1", "ns");
    store.create(&first).await.unwrap();
    let err = store.create(&sample_record("s2", "ns")).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NamespaceBusy { ref saga_id, ref namespace } if saga_id == "s1" && namespace == "ns"),
        "namespace_is_held_until_finished: {err:?}"
    );
    assert_eq!(
        store.get("s2").await.unwrap(),
        None,
        "a refused create writes no saga"
    );
    let running = advanced(&first, SagaStatus::Running, 2_000);
    store.update(&running, 1).await.unwrap();
    assert_eq!(
        store.namespace_holder("ns").await.unwrap().as_deref(),
        Some("s1")
    );
    let done = advanced(&running, SagaStatus::Succeeded, 3_000);
    store.update(&done, 2).await.unwrap();
    assert_eq!(
        store.namespace_holder("ns").await.unwrap(),
        None,
        "a finished saga releases its namespace in the same write"
    );
    store.create(&sample_record("s2", "ns")).await.unwrap();
    assert_eq!(
        store.namespace_holder("ns").await.unwrap().as_deref(),
        Some("s2")
    );
}

async fn rollback_failed_keeps_namespace(store: &dyn SagaStore) {
    let rec = sample_record("s1", "ns");
    store.create(&rec).await.unwrap();
    let failed = advanced(&rec, SagaStatus::RollbackFailed, 2_000);
    store.update(&failed, 1).await.unwrap();
    assert_eq!(
        store.namespace_holder("ns").await.unwrap().as_deref(),
        Some("s1"),
        "ROLLBACK_FAILED may have left resources, so it keeps the namespace"
    );
    let rolled_back = advanced(&failed, SagaStatus::RolledBack, 3_000);
    store.update(&rolled_back, 2).await.unwrap();
    assert_eq!(store.namespace_holder("ns").await.unwrap(), None);
}

async fn stale_finished_saga_never_releases_anothers_namespace(store: &dyn SagaStore) {
    let a = sample_record("a", "ns");
    store.create(&a).await.unwrap();
    let a2 = advanced(&a, SagaStatus::Succeeded, 2_000);
    store.update(&a2, 1).await.unwrap();
    store.create(&sample_record("b", "ns")).await.unwrap();
    let a3 = advanced(&a2, SagaStatus::Succeeded, 3_000);
    store.update(&a3, 2).await.unwrap();
    assert_eq!(
        store.namespace_holder("ns").await.unwrap().as_deref(),
        Some("b"),
        "updating a finished saga must not delete another saga's guard"
    );
}

async fn update_checks_version(store: &dyn SagaStore) {
    let rec = sample_record("s1", "ns");
    store.create(&rec).await.unwrap();
    let mut next = advanced(&rec, SagaStatus::Running, 2_000);
    next.lease = Some(Lease {
        owner: "w1".into(),
        expires_at: 9_000,
    });
    store.update(&next, 1).await.unwrap();
    let stale = advanced(&rec, SagaStatus::RollingBack, 2_500);
    let err = store.update(&stale, 1).await.unwrap_err();
    assert!(
        matches!(err, StoreError::VersionConflict { expected: 1, .. }),
        "update_checks_version: {err:?}"
    );
    assert_eq!(
        store.get("s1").await.unwrap(),
        Some(next),
        "a refused update changes nothing"
    );
    let ghost = advanced(&sample_record("ghost", "g"), SagaStatus::Running, 1);
    let err = store.update(&ghost, 1).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { .. }),
        "update of a missing saga: {err:?}"
    );
    assert_eq!(
        store.get("ghost").await.unwrap(),
        None,
        "update never creates"
    );
}

async fn concurrent_updates_exactly_one_wins<S: SagaStore + 'static>(store: Arc<S>) {
    let rec = sample_record("s1", "ns");
    store.create(&rec).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8u64 {
        let store = store.clone();
        let mut next = advanced(&rec, SagaStatus::Running, 2_000 + i);
        next.lease = Some(Lease {
            owner: format!("w{i}"),
            expires_at: 10_000,
        });
        tasks.push(tokio::spawn(async move {
            store.update(&next, 1).await.map(|()| i)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(i) => winners.push(i),
            Err(StoreError::VersionConflict { .. }) => {}
            Err(e) => panic!("concurrent update failed unexpectedly: {e:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one of the racing writers wins: {winners:?}"
    );
    let stored = store.get("s1").await.unwrap().unwrap();
    assert_eq!(stored.lease.unwrap().owner, format!("w{}", winners[0]));
}

async fn list_by_status_pages_oldest_first(store: &dyn SagaStore) {
    for i in 0..7u64 {
        let mut rec = sample_record(&format!("s{i}"), &format!("ns{i}"));
        rec.updated_at = 10_000 - i * 100; // s6 is the oldest
        store.create(&rec).await.unwrap();
    }
    let moved = store.get("s0").await.unwrap().unwrap();
    store
        .update(&advanced(&moved, SagaStatus::Running, 20_000), 1)
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_by_status(SagaStatus::Pending, 4, cursor.clone())
            .await
            .unwrap();
        pages += 1;
        assert!(page.items.len() <= 4, "page size respected");
        seen.extend(page.items.iter().map(|r| r.id.clone()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 10, "pagination terminates");
    }
    assert_eq!(
        seen,
        ["s6", "s5", "s4", "s3", "s2", "s1"],
        "oldest update first, each once"
    );
    let running = store
        .list_by_status(SagaStatus::Running, 10, None)
        .await
        .unwrap();
    assert_eq!(
        running
            .items
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        ["s0"],
        "a status change moves the record between listings"
    );
    assert_eq!(running.next, None);
}

async fn list_stalled_finds_expired_and_unleased(store: &dyn SagaStore) {
    let now = 50_000;
    let cases = [
        ("unleased-pending", SagaStatus::Pending, None, true),
        ("expired-running", SagaStatus::Running, Some(now - 1), true),
        (
            "expired-rolling",
            SagaStatus::RollingBack,
            Some(now - 10),
            true,
        ),
        (
            "live-running",
            SagaStatus::Running,
            Some(now + 60_000),
            false,
        ),
        ("done", SagaStatus::Succeeded, None, false),
        ("rolled-back", SagaStatus::RolledBack, None, false),
        ("rollback-failed", SagaStatus::RollbackFailed, None, false),
    ];
    for (id, status, lease, _) in &cases {
        let rec = sample_record(id, id);
        store.create(&rec).await.unwrap();
        let mut next = advanced(&rec, *status, 2_000);
        next.lease = lease.map(|expires_at| Lease {
            owner: "w".into(),
            expires_at,
        });
        store.update(&next, 1).await.unwrap();
    }
    let mut stalled: Vec<String> = store
        .list_stalled(now, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    stalled.sort();
    let mut expected: Vec<String> = cases
        .iter()
        .filter(|c| c.3)
        .map(|c| c.0.to_string())
        .collect();
    expected.sort();
    assert_eq!(stalled, expected, "list_stalled");
    assert_eq!(
        store.list_stalled(now, 1).await.unwrap().len(),
        1,
        "limit respected"
    );
}

async fn idempotency_claims(store: &dyn SagaStore) {
    let (now, until, exp) = (1_000, 61_000, 10_000_000);
    assert_eq!(
        store
            .claim_idempotency("k", "h1", now, until, exp)
            .await
            .unwrap(),
        IdempotencyClaim::Claimed
    );
    assert_eq!(
        store
            .claim_idempotency("k", "h1", now + 1, until + 1, exp)
            .await
            .unwrap(),
        IdempotencyClaim::InProgress { expires_at: until },
        "a live claim blocks a repeat"
    );
    assert_eq!(
        store
            .claim_idempotency("k", "h2", now + 1, until + 1, exp)
            .await
            .unwrap(),
        IdempotencyClaim::PayloadMismatch { saga_id: None },
        "a different payload under a live claim is a mismatch"
    );
    assert!(
        store
            .complete_idempotency("k", "other-hash", "s1")
            .await
            .is_err(),
        "completing with another payload's hash is refused"
    );
    store.complete_idempotency("k", "h1", "s1").await.unwrap();
    assert_eq!(
        store
            .claim_idempotency("k", "h1", now + 2, until + 2, exp)
            .await
            .unwrap(),
        IdempotencyClaim::Existing {
            saga_id: "s1".into()
        }
    );
    assert_eq!(
        store
            .claim_idempotency("k", "h2", now + 2, until + 2, exp)
            .await
            .unwrap(),
        IdempotencyClaim::PayloadMismatch {
            saga_id: Some("s1".into())
        }
    );
    assert_eq!(
        store
            .claim_idempotency("k", "h1", 200_000, 260_000, exp)
            .await
            .unwrap(),
        IdempotencyClaim::Existing {
            saga_id: "s1".into()
        },
        "a completed key does not expire with the in-progress window"
    );
    store.release_idempotency("k", "h1").await.unwrap();
    assert_eq!(
        store
            .claim_idempotency("k", "h1", now + 3, until + 3, exp)
            .await
            .unwrap(),
        IdempotencyClaim::Existing {
            saga_id: "s1".into()
        },
        "release never removes a completed key"
    );
}

async fn idempotency_in_progress_expires(store: &dyn SagaStore) {
    assert_eq!(
        store
            .claim_idempotency("k", "h1", 1_000, 2_000, 10_000_000)
            .await
            .unwrap(),
        IdempotencyClaim::Claimed
    );
    assert_eq!(
        store
            .claim_idempotency("k", "h1", 2_001, 3_001, 10_000_000)
            .await
            .unwrap(),
        IdempotencyClaim::Claimed,
        "a crashed claim's in-progress window expired: the key can be taken over"
    );
    assert_eq!(
        store
            .claim_idempotency("k", "h1", 2_002, 3_002, 10_000_000)
            .await
            .unwrap(),
        IdempotencyClaim::InProgress { expires_at: 3_001 }
    );
}

async fn idempotency_release(store: &dyn SagaStore) {
    store
        .claim_idempotency("k", "h1", 1_000, 61_000, 10_000_000)
        .await
        .unwrap();
    store.release_idempotency("k", "wrong").await.unwrap();
    assert_eq!(
        store
            .claim_idempotency("k", "h1", 1_001, 61_001, 10_000_000)
            .await
            .unwrap(),
        IdempotencyClaim::InProgress { expires_at: 61_000 },
        "release with another payload's hash does nothing"
    );
    store.release_idempotency("k", "h1").await.unwrap();
    assert_eq!(
        store
            .claim_idempotency("k", "h2", 1_002, 61_002, 10_000_000)
            .await
            .unwrap(),
        IdempotencyClaim::Claimed,
        "a released key is free"
    );
    store
        .release_idempotency("never-claimed", "h")
        .await
        .unwrap();
}
