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
            undo_error: None,
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
        managed: None,
        drift: None,
        drift_failure: None,
        parent: None,
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
    concurrent_creates_on_one_namespace_exactly_one_wins(Arc::new(make_store().await)).await;
    finished_create_takes_no_namespace(&make_store().await).await;
    list_by_status_pages_oldest_first(&make_store().await).await;
    list_by_status_ties_page_each_once(&make_store().await).await;
    list_stalled_finds_expired_and_unleased(&make_store().await).await;
    list_stalled_oldest_first(&make_store().await).await;
    invalid_requests_are_refused(&make_store().await).await;
    idempotency_claims(&make_store().await).await;
    idempotency_in_progress_expires(&make_store().await).await;
    idempotency_expired_in_progress_taken_over_by_other_payload(&make_store().await).await;
    idempotency_expired_completed_key_is_free(&make_store().await).await;
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

async fn concurrent_creates_on_one_namespace_exactly_one_wins<S: SagaStore + 'static>(
    store: Arc<S>,
) {
    let mut tasks = Vec::new();
    for i in 0..8u64 {
        let store = store.clone();
        let rec = sample_record(&format!("racer{i}"), "contested");
        tasks.push(tokio::spawn(async move { (i, store.create(&rec).await) }));
    }
    let mut winners = Vec::new();
    let mut named = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (i, Ok(())) => winners.push(format!("racer{i}")),
            (_, Err(StoreError::NamespaceBusy { namespace, saga_id })) => {
                assert_eq!(
                    namespace, "contested",
                    "concurrent creates: NamespaceBusy names the contested namespace"
                );
                named.push(saga_id);
            }
            (i, Err(e)) => panic!("concurrent create of racer{i} failed unexpectedly: {e:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 8 racing creates on one namespace wins: {winners:?}"
    );
    let winner = &winners[0];
    assert_eq!(named.len(), 7, "the other 7 creates get NamespaceBusy");
    assert!(
        named.iter().all(|holder| holder == winner),
        "every NamespaceBusy names the winner {winner}: {named:?}"
    );
    assert_eq!(
        store.namespace_holder("contested").await.unwrap().as_ref(),
        Some(winner),
        "the winner holds the namespace"
    );
    for i in 0..8u64 {
        let id = format!("racer{i}");
        let stored = store.get(&id).await.unwrap();
        assert_eq!(
            stored.is_some(),
            id == *winner,
            "only the winner's record exists after the race ({id}, winner {winner})"
        );
    }
}

async fn finished_create_takes_no_namespace(store: &dyn SagaStore) {
    let mut done = sample_record("done", "free-ns");
    done.status = SagaStatus::RolledBack;
    store.create(&done).await.unwrap();
    assert_eq!(
        store.namespace_holder("free-ns").await.unwrap(),
        None,
        "creating a ROLLED_BACK saga writes no namespace guard"
    );
    assert_eq!(
        store.get("done").await.unwrap(),
        Some(done),
        "the finished saga itself is stored"
    );
    store
        .create(&sample_record("holder", "busy-ns"))
        .await
        .unwrap();
    let mut late = sample_record("late", "busy-ns");
    late.status = SagaStatus::Succeeded;
    store.create(&late).await.unwrap_or_else(|e| {
        panic!("a finished saga does not conflict with the namespace's holder: {e:?}")
    });
    assert_eq!(
        store.namespace_holder("busy-ns").await.unwrap().as_deref(),
        Some("holder"),
        "creating a finished saga leaves the holder's guard alone"
    );
    store
        .create(&sample_record("next", "free-ns"))
        .await
        .unwrap_or_else(|e| panic!("a namespace with only finished sagas can be taken: {e:?}"));
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

async fn list_by_status_ties_page_each_once(store: &dyn SagaStore) {
    // Five sagas share one updated_at, created out of id order; one is older and one newer.
    for id in ["t3", "t1", "t5", "t2", "t4"] {
        let mut rec = sample_record(id, &format!("ns-{id}"));
        rec.updated_at = 5_000;
        store.create(&rec).await.unwrap();
    }
    let mut older = sample_record("z-old", "ns-old");
    older.updated_at = 4_999;
    store.create(&older).await.unwrap();
    let mut newer = sample_record("a-new", "ns-new");
    newer.updated_at = 5_001;
    store.create(&newer).await.unwrap();

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_by_status(SagaStatus::Pending, 1, cursor.clone())
            .await
            .unwrap();
        pages += 1;
        assert_eq!(
            page.items.len(),
            1,
            "ties on updated_at: every page of size 1 holds exactly one saga (page {pages})"
        );
        seen.extend(page.items.iter().map(|r| r.id.clone()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 20, "ties on updated_at: pagination terminates");
    }
    assert_eq!(
        seen,
        ["z-old", "t1", "t2", "t3", "t4", "t5", "a-new"],
        "ties on updated_at are ordered by id; every saga appears exactly once across pages"
    );
    assert_eq!(pages, 7, "the last full page carries no cursor");
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

async fn list_stalled_oldest_first(store: &dyn SagaStore) {
    let now = 50_000;
    // (id, status, updated_at): ids and statuses deliberately out of time order.
    let cases = [
        ("a", SagaStatus::Running, 4_000),
        ("b", SagaStatus::Pending, 1_000),
        ("c", SagaStatus::RollingBack, 3_000),
        ("d", SagaStatus::Pending, 5_000),
        ("e", SagaStatus::Running, 2_000),
        ("f", SagaStatus::RollingBack, 2_000),
    ];
    for (id, status, at) in cases {
        let mut rec = sample_record(id, id);
        rec.status = status;
        rec.updated_at = at;
        store.create(&rec).await.unwrap();
    }
    let ids = |recs: Vec<SagaRecord>| recs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_stalled(now, 100).await.unwrap()),
        ["b", "e", "f", "c", "a", "d"],
        "list_stalled returns oldest updated_at first across statuses, ties by id"
    );
    assert_eq!(
        ids(store.list_stalled(now, 3).await.unwrap()),
        ["b", "e", "f"],
        "a limited list_stalled returns the oldest ones"
    );
    assert!(
        store.list_stalled(now, 0).await.unwrap().is_empty(),
        "list_stalled with limit 0 returns nothing"
    );
}

async fn invalid_requests_are_refused(store: &dyn SagaStore) {
    let rec = sample_record("s1", "ns");
    store.create(&rec).await.unwrap();
    for version in [1, 0] {
        let mut not_raised = advanced(&rec, SagaStatus::Running, 2_000);
        not_raised.version = version;
        let err = store.update(&not_raised, 1).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Invalid(_)),
            "update to version {version} from expected version 1 is Invalid: {err:?}"
        );
    }
    assert_eq!(
        store.get("s1").await.unwrap(),
        Some(rec.clone()),
        "a refused update changes nothing"
    );

    let err = store
        .list_by_status(SagaStatus::Pending, 0, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(_)),
        "list_by_status with limit 0 is Invalid: {err:?}"
    );

    let mut second = sample_record("s2", "ns2");
    second.updated_at = 2_000;
    store.create(&second).await.unwrap();
    let page = store
        .list_by_status(SagaStatus::Pending, 1, None)
        .await
        .unwrap();
    let pending_cursor = page
        .next
        .expect("two PENDING sagas in pages of 1 leave a cursor");
    let err = store
        .list_by_status(SagaStatus::Running, 1, Some(pending_cursor))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(_)),
        "a cursor from the PENDING listing is Invalid for the RUNNING listing: {err:?}"
    );
    let err = store
        .list_by_status(SagaStatus::Pending, 1, Some("garbage".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(_)),
        "a cursor this store never handed out is Invalid: {err:?}"
    );

    let err = store
        .complete_idempotency("never-claimed", "h", "s1")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(_)),
        "completing an unclaimed idempotency key is Invalid: {err:?}"
    );
    assert_eq!(
        store
            .claim_idempotency("never-claimed", "h", 1_000, 61_000, 10_000_000)
            .await
            .unwrap(),
        IdempotencyClaim::Claimed,
        "a refused completion leaves the key free"
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
    let err = store
        .complete_idempotency("k", "other-hash", "s1")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(_)),
        "completing with another payload's hash is refused as Invalid: {err:?}"
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

async fn idempotency_expired_in_progress_taken_over_by_other_payload(store: &dyn SagaStore) {
    assert_eq!(
        store
            .claim_idempotency("k", "h1", 1_000, 2_000, 10_000_000)
            .await
            .unwrap(),
        IdempotencyClaim::Claimed
    );
    assert_eq!(
        store
            .claim_idempotency("k", "h2", 2_000, 3_000, 10_000_000)
            .await
            .unwrap(),
        IdempotencyClaim::PayloadMismatch { saga_id: None },
        "at the last millisecond of its window the claim is still live"
    );
    assert_eq!(
        store
            .claim_idempotency("k", "h2", 2_001, 3_001, 10_000_000)
            .await
            .unwrap(),
        IdempotencyClaim::Claimed,
        "an expired in-progress claim can be taken over by a different payload"
    );
    assert_eq!(
        store
            .claim_idempotency("k", "h2", 2_002, 3_002, 10_000_000)
            .await
            .unwrap(),
        IdempotencyClaim::InProgress { expires_at: 3_001 },
        "the taker's claim is live for the same payload"
    );
    assert_eq!(
        store
            .claim_idempotency("k", "h1", 2_002, 3_002, 10_000_000)
            .await
            .unwrap(),
        IdempotencyClaim::PayloadMismatch { saga_id: None },
        "the taker's payload replaced the original one"
    );
    let err = store
        .complete_idempotency("k", "h1", "s-old")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(_)),
        "the original claimant lost the key and cannot complete it: {err:?}"
    );
    store
        .complete_idempotency("k", "h2", "s-new")
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_idempotency("k", "h2", 2_003, 3_003, 10_000_000)
            .await
            .unwrap(),
        IdempotencyClaim::Existing {
            saga_id: "s-new".into()
        },
        "the taker completes the key as its own"
    );
}

async fn idempotency_expired_completed_key_is_free(store: &dyn SagaStore) {
    assert_eq!(
        store
            .claim_idempotency("k", "h1", 1_000, 2_000, 5_000)
            .await
            .unwrap(),
        IdempotencyClaim::Claimed
    );
    store.complete_idempotency("k", "h1", "s1").await.unwrap();
    assert_eq!(
        store
            .claim_idempotency("k", "h1", 5_000, 6_000, 9_000)
            .await
            .unwrap(),
        IdempotencyClaim::Existing {
            saga_id: "s1".into()
        },
        "a completed key is still in force at its expires_at"
    );
    assert_eq!(
        store
            .claim_idempotency("k", "h1", 5_001, 6_001, 9_000)
            .await
            .unwrap(),
        IdempotencyClaim::Claimed,
        "a completed key whose expires_at has passed can be claimed again"
    );
    assert_eq!(
        store
            .claim_idempotency("k", "h1", 5_002, 6_002, 9_000)
            .await
            .unwrap(),
        IdempotencyClaim::InProgress { expires_at: 6_001 },
        "the re-claimed key is a fresh in-progress claim"
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
