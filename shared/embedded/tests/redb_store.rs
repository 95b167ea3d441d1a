//! `RedbSagaStore` against the shared store contract, plus what only a real file can show:
//! durability across reopen, corrupt data, the file lock and racing writers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use onboard_core::record::{Lease, SagaStatus};
use onboard_core::store::{IdempotencyClaim, SagaStore, StoreError};
use onboard_core::testkit::store_contract::{advanced, run_all, sample_record};
use onboard_embedded::RedbSagaStore;
use redb::TableDefinition;

/// Same layout as the store's own tables, to plant bad data behind its back.
const SAGAS: TableDefinition<&str, &[u8]> = TableDefinition::new("sagas");
const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contract_on_file() {
    let dir = tempfile::tempdir().unwrap();
    let n = AtomicUsize::new(0);
    run_all(|| {
        let path = dir
            .path()
            .join(format!("case-{}.redb", n.fetch_add(1, Ordering::SeqCst)));
        async move { RedbSagaStore::open(&path).unwrap() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contract_in_memory() {
    run_all(|| async { RedbSagaStore::in_memory().unwrap() }).await;
}

#[tokio::test]
async fn data_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sagas.redb");
    let rec = sample_record("s1", "ns");
    let running = advanced(&rec, SagaStatus::Running, 2_000);
    {
        let store = RedbSagaStore::open(&path).unwrap();
        store.create(&rec).await.unwrap();
        store.update(&running, 1).await.unwrap();
        store.create(&sample_record("s2", "other")).await.unwrap();
        assert_eq!(
            store
                .claim_idempotency("k", "h", 1_000, 61_000, 10_000_000)
                .await
                .unwrap(),
            IdempotencyClaim::Claimed
        );
        store.complete_idempotency("k", "h", "s1").await.unwrap();
    }

    let store = RedbSagaStore::open(&path).unwrap();
    assert_eq!(store.get("s1").await.unwrap(), Some(running.clone()));
    assert_eq!(
        store.namespace_holder("ns").await.unwrap().as_deref(),
        Some("s1")
    );
    let listed = store
        .list_by_status(SagaStatus::Running, 10, None)
        .await
        .unwrap();
    assert_eq!(
        listed.items,
        vec![running.clone()],
        "status index persisted"
    );
    let pending = store
        .list_by_status(SagaStatus::Pending, 10, None)
        .await
        .unwrap();
    assert_eq!(
        pending
            .items
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        ["s2"]
    );
    assert_eq!(
        store
            .claim_idempotency("k", "h", 2_000, 62_000, 10_000_000)
            .await
            .unwrap(),
        IdempotencyClaim::Existing {
            saga_id: "s1".into()
        }
    );
    // The version check still holds after reopen.
    let err = store.update(&running, 1).await.unwrap_err();
    assert!(matches!(err, StoreError::VersionConflict { .. }), "{err:?}");
}

/// Write raw bytes into a table of a closed store's file.
fn plant(path: &Path, table: TableDefinition<&str, &[u8]>, key: &str, value: &[u8]) {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(table).unwrap().insert(key, value).unwrap();
    txn.commit().unwrap();
}

#[tokio::test]
async fn corrupt_values_are_reported_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sagas.redb");
    {
        let store = RedbSagaStore::open(&path).unwrap();
        store.create(&sample_record("s1", "ns")).await.unwrap();
    }
    plant(&path, SAGAS, "s1", b"{not json");
    plant(&path, IDEMPOTENCY, "k", b"\xff\x00");

    let store = RedbSagaStore::open(&path).unwrap();
    let err = store.get("s1").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(msg) if msg.contains("s1")),
        "get names the corrupt saga: {err:?}"
    );
    let err = store
        .list_by_status(SagaStatus::Pending, 10, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "listing: {err:?}");
    let err = store.list_stalled(u64::MAX, 10).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "stalled: {err:?}");
    let next = advanced(&sample_record("s1", "ns"), SagaStatus::Running, 2_000);
    let err = store.update(&next, 1).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "update: {err:?}");
    let err = store
        .claim_idempotency("k", "h", 1, 2, 3)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(msg) if msg.contains("k")),
        "idempotency: {err:?}"
    );
    // Other records stay readable.
    store.create(&sample_record("s2", "ns2")).await.unwrap();
    assert!(store.get("s2").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn many_racing_updates_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbSagaStore::open(&dir.path().join("sagas.redb")).unwrap());
    let rec = sample_record("s1", "ns");
    store.create(&rec).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let store = Arc::clone(&store);
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
            Err(StoreError::VersionConflict { id, expected: 1 }) => assert_eq!(id, "s1"),
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let stored = store.get("s1").await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(stored.updated_at, 2_000 + winners[0]);
    // Exactly one index entry survives the race.
    let running = store
        .list_by_status(SagaStatus::Running, 100, None)
        .await
        .unwrap();
    assert_eq!(running.items, vec![stored]);
    assert!(store
        .list_by_status(SagaStatus::Pending, 100, None)
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn second_open_of_the_same_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sagas.redb");
    let _first = RedbSagaStore::open(&path).unwrap();
    let err = RedbSagaStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
}

#[tokio::test]
async fn update_must_raise_the_version() {
    let store = RedbSagaStore::in_memory().unwrap();
    let rec = sample_record("s1", "ns");
    store.create(&rec).await.unwrap();
    let mut same = advanced(&rec, SagaStatus::Running, 2_000);
    same.version = 1;
    let err = store.update(&same, 1).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert_eq!(store.get("s1").await.unwrap(), Some(rec));
}

#[tokio::test]
async fn paging_is_stable_across_many_records_and_ties() {
    let store = RedbSagaStore::in_memory().unwrap();
    // Equal timestamps are ordered by id; an updated_at wider than 15 digits still sorts right.
    let stamps = [5, 5, 5, 1_000, 9_999_999_999_999_999, 7];
    for (i, at) in stamps.iter().enumerate() {
        let mut rec = sample_record(&format!("s{i}"), &format!("ns{i}"));
        rec.updated_at = *at;
        store.create(&rec).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_by_status(SagaStatus::Pending, 2, cursor)
            .await
            .unwrap();
        seen.extend(page.items.into_iter().map(|r| r.id));
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["s0", "s1", "s2", "s5", "s3", "s4"]);
    let err = store
        .list_by_status(SagaStatus::Running, 2, Some("PENDING#junk".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(_)),
        "foreign cursor: {err:?}"
    );
    let err = store
        .list_by_status(SagaStatus::Pending, 2, Some("PENDING#junk".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(_)),
        "malformed cursor of the right status: {err:?}"
    );
}

#[tokio::test]
async fn expired_idempotency_records_count_as_absent() {
    let store = RedbSagaStore::in_memory().unwrap();
    store
        .claim_idempotency("k", "h1", 1_000, 2_000, 5_000)
        .await
        .unwrap();
    store.complete_idempotency("k", "h1", "s1").await.unwrap();
    assert_eq!(
        store
            .claim_idempotency("k", "h2", 5_000, 6_000, 9_000)
            .await
            .unwrap(),
        IdempotencyClaim::PayloadMismatch {
            saga_id: Some("s1".into())
        },
        "still alive at expires_at"
    );
    assert_eq!(
        store
            .claim_idempotency("k", "h2", 5_001, 6_001, 9_000)
            .await
            .unwrap(),
        IdempotencyClaim::Claimed,
        "past its TTL the key is free again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_meet_the_contract() {
    onboard_core::testkit::lock_contract::run_all(|| async { RedbSagaStore::in_memory().unwrap() })
        .await;
}
