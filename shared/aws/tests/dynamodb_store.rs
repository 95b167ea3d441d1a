//! `DynamoSagaStore` against moto server: the shared store contract plus DynamoDB specifics.
//!
//! Reaches DynamoDB only through `MOTO_ENDPOINT` with fake credentials, never AWS; every test
//! gets its own table.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failing test should fail loudly

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use onboard_aws::dynamodb_store::{create_table, DynamoSagaStore};
use onboard_core::record::{Lease, SagaRecord, SagaStatus};
use onboard_core::store::{IdempotencyClaim, SagaStore, StoreError};
use onboard_core::testkit::store_contract;

fn moto_endpoint() -> String {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "MOTO_ENDPOINT is not set: these tests need moto server; run the suite via \
             scripts/test.sh, which starts moto and exports MOTO_ENDPOINT"
        ),
    }
}

/// A client for moto only: explicit fake credentials, region and endpoint, nothing from the
/// environment's AWS configuration.
fn client_for(endpoint: &str) -> Client {
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(conf)
}

fn unique_table() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "sagas-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh, empty table and a store on it.
async fn fresh() -> (Client, String, DynamoSagaStore) {
    let client = client_for(&moto_endpoint());
    let table = unique_table();
    if let Err(e) = create_table(&client, &table).await {
        panic!("creating table {table} on moto failed: {e}");
    }
    let store = DynamoSagaStore::new(client.clone(), table.clone());
    (client, table, store)
}

async fn new_store() -> DynamoSagaStore {
    fresh().await.2
}

fn record(id: &str, namespace: &str, status: SagaStatus, updated_at: u64) -> SagaRecord {
    SagaRecord {
        id: id.to_string(),
        kind: "onboard".to_string(),
        namespace: namespace.to_string(),
        status,
        version: 1,
        lease: None,
        input: serde_json::json!({ "name": id }),
        targets: vec![],
        nodes: vec![],
        log: vec![],
        cause: None,
        undo_error: None,
        idempotency_key: None,
        payload_hash: None,
        managed: None,
        drift: None,
        drift_failure: None,
        parent: None,
        created_at: updated_at,
        updated_at,
    }
}

async fn raw_item(
    client: &Client,
    table: &str,
    pk: &str,
    sk: &str,
) -> Option<HashMap<String, AttributeValue>> {
    client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

fn num(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn passes_the_store_contract() {
    store_contract::run_all(new_store).await;
}

#[tokio::test]
async fn create_table_is_idempotent() {
    let (client, table, _) = fresh().await;
    create_table(&client, &table).await.unwrap();
    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let desc = ttl.time_to_live_description().unwrap();
    assert_eq!(desc.attribute_name(), Some("ttl"));
}

#[tokio::test]
async fn finished_saga_gets_ttl_only_with_retention() {
    let (client, table, store) = fresh().await;
    let store = store.with_finished_retention(Duration::from_secs(3600));
    let mut rec = record("s1", "ns1", SagaStatus::Running, 1_700_000_000_500);
    store.create(&rec).await.unwrap();
    let item = raw_item(&client, &table, "SAGA#s1", "SAGA").await.unwrap();
    assert_eq!(num(&item, "ttl"), None, "an active saga never expires");

    rec.status = SagaStatus::Succeeded;
    rec.version = 2;
    rec.updated_at = 1_700_000_100_900;
    store.update(&rec, 1).await.unwrap();
    let item = raw_item(&client, &table, "SAGA#s1", "SAGA").await.unwrap();
    assert_eq!(num(&item, "ttl"), Some(1_700_000_100 + 3600));
    assert_eq!(num(&item, "version"), Some(2));

    // ROLLBACK_FAILED needs an operator: no TTL even with a retention.
    let mut failed = record("s2", "ns2", SagaStatus::Running, 1_700_000_000_000);
    store.create(&failed).await.unwrap();
    failed.status = SagaStatus::RollbackFailed;
    failed.version = 2;
    store.update(&failed, 1).await.unwrap();
    let item = raw_item(&client, &table, "SAGA#s2", "SAGA").await.unwrap();
    assert_eq!(num(&item, "ttl"), None);

    // Without a retention finished sagas are kept.
    let plain = DynamoSagaStore::new(client.clone(), table.clone());
    let mut rec3 = record("s3", "ns3", SagaStatus::Running, 1_700_000_000_000);
    plain.create(&rec3).await.unwrap();
    rec3.status = SagaStatus::RolledBack;
    rec3.version = 2;
    plain.update(&rec3, 1).await.unwrap();
    let item = raw_item(&client, &table, "SAGA#s3", "SAGA").await.unwrap();
    assert_eq!(num(&item, "ttl"), None);
}

#[tokio::test]
async fn corrupt_body_is_reported_with_the_saga_id() {
    let (client, table, store) = fresh().await;
    client
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S("SAGA#bad".into()))
        .item("sk", AttributeValue::S("SAGA".into()))
        .item("version", AttributeValue::N("1".into()))
        .item("status", AttributeValue::S("RUNNING".into()))
        .item("gsi1pk", AttributeValue::S("STATUS#RUNNING".into()))
        .item("gsi1sk", AttributeValue::S("000000000000001#bad".into()))
        .item("leaseExpiresAt", AttributeValue::N("0".into()))
        .item("body", AttributeValue::S("{not json".into()))
        .send()
        .await
        .unwrap();
    match store.get("bad").await {
        Err(StoreError::Corrupt(msg)) => assert!(msg.contains("bad"), "{msg}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    match store.list_by_status(SagaStatus::Running, 10, None).await {
        Err(StoreError::Corrupt(msg)) => assert!(msg.contains("bad"), "{msg}"),
        other => panic!("expected Corrupt from listing, got {other:?}"),
    }
}

#[tokio::test]
async fn list_by_status_is_oldest_first_across_pages() {
    let (_, _, store) = fresh().await;
    // Created out of order; one SUCCEEDED saga must not show up.
    for (id, at) in [("c", 30), ("a", 10), ("e", 50), ("b", 20), ("d", 40)] {
        store
            .create(&record(id, &format!("ns-{id}"), SagaStatus::Running, at))
            .await
            .unwrap();
    }
    store
        .create(&record("z", "ns-z", SagaStatus::Succeeded, 5))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_by_status(SagaStatus::Running, 2, cursor)
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.items.into_iter().map(|r| r.id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    assert_eq!(pages, 3);

    // Exactly one full page: no cursor pointing at an empty page.
    let page = store
        .list_by_status(SagaStatus::Succeeded, 1, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.next, None);

    let bad = store
        .list_by_status(SagaStatus::Running, 2, Some("garbage".into()))
        .await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))), "{bad:?}");
}

#[tokio::test]
async fn list_stalled_uses_the_lease_and_runnable_statuses() {
    let (_, _, store) = fresh().await;
    let now = 1_000_000;
    let lease = |expires_at| {
        Some(Lease {
            owner: "w".into(),
            expires_at,
        })
    };
    let mut expired = record("expired", "n1", SagaStatus::Running, 300);
    expired.lease = lease(now - 1);
    let mut at_now = record("at-now", "n2", SagaStatus::RollingBack, 200);
    at_now.lease = lease(now);
    let never = record("never-leased", "n3", SagaStatus::Pending, 100);
    let mut live = record("live", "n4", SagaStatus::Running, 50);
    live.lease = lease(now + 1);
    let failed = record("failed", "n5", SagaStatus::RollbackFailed, 10);
    for r in [&expired, &at_now, &never, &live, &failed] {
        store.create(r).await.unwrap();
    }
    let ids: Vec<String> = store
        .list_stalled(now, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["never-leased", "at-now", "expired"]);
    assert_eq!(store.list_stalled(now, 2).await.unwrap().len(), 2);
    assert!(store.list_stalled(now, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn finishing_releases_only_our_own_guard() {
    let (client, table, store) = fresh().await;
    let mut rec = record("mine", "shared-ns", SagaStatus::Running, 1);
    store.create(&rec).await.unwrap();
    assert!(raw_item(&client, &table, "NS#shared-ns", "ACTIVE")
        .await
        .is_some());

    // Simulate a guard that (wrongly) points at another saga: finishing must not delete it.
    client
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S("NS#shared-ns".into()))
        .item("sk", AttributeValue::S("ACTIVE".into()))
        .item("sagaId", AttributeValue::S("other".into()))
        .send()
        .await
        .unwrap();
    rec.status = SagaStatus::RolledBack;
    rec.version = 2;
    store.update(&rec, 1).await.unwrap();
    assert_eq!(
        store
            .namespace_holder("shared-ns")
            .await
            .unwrap()
            .as_deref(),
        Some("other")
    );
    assert_eq!(store.get("mine").await.unwrap().unwrap().version, 2);

    // The normal path: the guard goes with the status change.
    let mut rec2 = record("two", "ns-two", SagaStatus::Running, 1);
    store.create(&rec2).await.unwrap();
    rec2.status = SagaStatus::Succeeded;
    rec2.version = 2;
    store.update(&rec2, 1).await.unwrap();
    assert!(raw_item(&client, &table, "NS#ns-two", "ACTIVE")
        .await
        .is_none());
}

#[tokio::test]
async fn update_distinguishes_missing_from_stale_in_both_write_paths() {
    let (_, _, store) = fresh().await;
    let mut rec = record("s", "ns", SagaStatus::Running, 1);
    store.create(&rec).await.unwrap();
    for status in [SagaStatus::Running, SagaStatus::Succeeded] {
        let mut stale = rec.clone();
        stale.status = status;
        stale.version = 8;
        let err = store.update(&stale, 7).await.unwrap_err();
        assert!(
            matches!(err, StoreError::VersionConflict { expected: 7, .. }),
            "{err:?}"
        );
        let mut missing = stale.clone();
        missing.id = "nope".into();
        let err = store.update(&missing, 7).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    }
    rec.version = 1;
    let err = store.update(&rec, 1).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
}

#[tokio::test]
async fn idempotency_key_gets_a_ttl_and_expired_keys_are_free() {
    let (client, table, store) = fresh().await;
    let claim = store
        .claim_idempotency("k", "h1", 1_000, 61_000, 10_000_500)
        .await
        .unwrap();
    assert_eq!(claim, IdempotencyClaim::Claimed);
    let item = raw_item(&client, &table, "IDEM#k", "IDEM").await.unwrap();
    assert_eq!(
        num(&item, "ttl"),
        Some(10_001),
        "ttl is seconds, rounded up"
    );
    store
        .complete_idempotency("k", "h1", "saga-1")
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_idempotency("k", "h1", 2_000, 62_000, 10_000_500)
            .await
            .unwrap(),
        IdempotencyClaim::Existing {
            saga_id: "saga-1".into()
        }
    );
    // Past expires_at the item may still exist (TTL lags): it must not block a new claim.
    assert_eq!(
        store
            .claim_idempotency("k", "h2", 10_000_501, 10_060_501, 20_000_000)
            .await
            .unwrap(),
        IdempotencyClaim::Claimed
    );
}

#[tokio::test]
async fn oversized_record_is_refused_with_a_clear_error() {
    let (_, _, store) = fresh().await;
    let mut rec = record("big", "ns-big", SagaStatus::Pending, 1);
    rec.input = serde_json::json!({ "blob": "x".repeat(500 * 1024) });
    match store.create(&rec).await {
        Err(StoreError::Backend(msg)) => assert!(msg.contains("400 KB"), "{msg}"),
        other => panic!("expected Backend, got {other:?}"),
    }
    assert_eq!(store.get("big").await.unwrap(), None);
    assert_eq!(store.namespace_holder("ns-big").await.unwrap(), None);
}

#[tokio::test]
async fn unreachable_endpoint_is_a_backend_error_naming_the_operation() {
    let client = client_for("http://127.0.0.1:9");
    let store = DynamoSagaStore::new(client, "nowhere");
    match store.get("x").await {
        Err(StoreError::Backend(msg)) => {
            assert!(msg.starts_with("DynamoDB GetItem failed"), "{msg}")
        }
        other => panic!("expected Backend, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_meet_the_contract() {
    onboard_core::testkit::lock_contract::run_all(new_store).await;
}
