//! The DynamoDB `SagaStore`: saga records, namespace guards and idempotency keys in one table.
//!
//! # Table (single-table design)
//!
//! | item                | `pk`             | `sk`     | other attributes                                                                                              |
//! |---------------------|------------------|----------|---------------------------------------------------------------------------------------------------------------|
//! | saga record         | `SAGA#<id>`      | `SAGA`   | `version` N, `status` S, `namespace` S, `leaseExpiresAt` N, `updatedAt` N, `body` S (record JSON), `gsi1pk`, `gsi1sk`, `ttl`? |
//! | namespace guard     | `NS#<namespace>` | `ACTIVE` | `sagaId` S                                                                                                    |
//! | idempotency key     | `IDEM#<key>`     | `IDEM`   | `payloadHash` S, `status` S (`IN_PROGRESS`/`COMPLETED`), `inProgressUntil` N, `expiresAt` N, `sagaId` S?, `ttl` N |
//! | resource lock       | `LOCK#<resource>`| `LOCK`   | `owner` S, `expiresAt` N (millis), `ttl` N                                                                    |
//!
//! * `body` holds the whole record as JSON so its shape lives in one place (`onboard-core`);
//!   the other saga attributes are copies used only for conditions, the index and filters.
//! * Index `gsi1` (projection ALL): `gsi1pk = STATUS#<status>`,
//!   `gsi1sk = <updatedAt zero-padded to 15 digits>#<id>`, so a query lists one status oldest
//!   update first. `list_stalled` queries it per runnable status with the filter
//!   `leaseExpiresAt <= now` (an absent lease is stored as 0).
//! * `ttl` is epoch **seconds** (DynamoDB TTL). Finished sagas get one only when a retention is
//!   configured; idempotency keys always get one. TTL deletion lags by up to days, so reads
//!   compare the exact `expiresAt` (millis) rather than trusting the item to be gone.
//! * A saga that holds its namespace (active or ROLLBACK_FAILED) owns the guard item; `create`
//!   writes both in one transaction and the update that leaves the namespace deletes the guard
//!   in the same transaction, only if it is still this saga's. An update that keeps holding is a
//!   single conditional put: it never re-acquires a guard (no status goes back from finished).
//! * `get` and `namespace_holder` read consistently; the listings read `gsi1`, which DynamoDB
//!   keeps eventually consistent, so they may lag a write by a moment (re-read a saga with `get`
//!   before acting on it).
//!
//! # Table definition (mirror it in the SAM template)
//!
//! ```text
//! BillingMode: PAY_PER_REQUEST
//! AttributeDefinitions: pk S, sk S, gsi1pk S, gsi1sk S
//! KeySchema: pk HASH, sk RANGE
//! GlobalSecondaryIndexes:
//!   - IndexName: gsi1
//!     KeySchema: gsi1pk HASH, gsi1sk RANGE
//!     Projection: ALL
//! TimeToLiveSpecification: { AttributeName: ttl, Enabled: true }
//! ```
//!
//! [`create_table`] creates exactly this (for tests and the local CLI).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CancellationReason, Delete,
    GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType, Projection, ProjectionType, Put,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
    TimeToLiveStatus, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use onboard_core::locks::ResourceLocks;
use onboard_core::record::{Millis, SagaRecord, SagaStatus};
use onboard_core::store::{IdempotencyClaim, Page, SagaStore, StoreError};

type Item = HashMap<String, AttributeValue>;

/// Name of the status/update-time index.
pub const GSI1: &str = "gsi1";
/// The TTL attribute (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "ttl";

const SAGA_SK: &str = "SAGA";
const GUARD_SK: &str = "ACTIVE";
const IDEM_SK: &str = "IDEM";
const LOCK_SK: &str = "LOCK";
const IN_PROGRESS: &str = "IN_PROGRESS";
const COMPLETED: &str = "COMPLETED";

/// How often a transaction cancelled only by `TransactionConflict` (another transaction on the
/// same item in flight) is retried before giving up; the SDK's own retries do not cover it.
const TX_CONFLICT_ATTEMPTS: u32 = 5;
/// Room left for the other attributes under DynamoDB's 400 KB item limit.
const MAX_BODY_BYTES: usize = 400 * 1024 - 2 * 1024;
/// How often a read-after-failed-condition race (the conflicting item vanished) is retried.
const RACE_ATTEMPTS: u32 = 3;

/// `SagaStore` on one DynamoDB table (see the module docs for the layout).
#[derive(Debug, Clone)]
pub struct DynamoSagaStore {
    client: Client,
    table: String,
    finished_retention_secs: Option<u64>,
}

impl DynamoSagaStore {
    /// A store on `table`; finished sagas are kept forever unless
    /// [`with_finished_retention`](Self::with_finished_retention) is set.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoSagaStore {
            client,
            table: table.into(),
            finished_retention_secs: None,
        }
    }

    /// Let DynamoDB TTL delete SUCCEEDED and ROLLED_BACK sagas `retention` after their last
    /// update, so the table does not grow forever. ROLLBACK_FAILED is never expired: it needs an
    /// operator.
    pub fn with_finished_retention(mut self, retention: Duration) -> Self {
        self.finished_retention_secs = Some(retention.as_secs());
        self
    }

    /// The table this store writes to.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn saga_item(&self, record: &SagaRecord) -> Result<Item, StoreError> {
        let body = serde_json::to_string(record).map_err(|e| {
            StoreError::Corrupt(format!("saga {} cannot be encoded: {e}", record.id))
        })?;
        if body.len() > MAX_BODY_BYTES {
            return Err(StoreError::Backend(format!(
                "saga {} is {} bytes as JSON; a DynamoDB item holds at most 400 KB \
                 (trim its log or node outputs)",
                record.id,
                body.len()
            )));
        }
        let mut item = saga_key(&record.id);
        item.insert("version".into(), n(record.version));
        item.insert("status".into(), s(record.status.as_str()));
        item.insert("namespace".into(), s(&record.namespace));
        item.insert("leaseExpiresAt".into(), n(record.lease_expires_at()));
        item.insert("updatedAt".into(), n(record.updated_at));
        item.insert("body".into(), s(body));
        item.insert("gsi1pk".into(), s(status_pk(record.status)));
        item.insert("gsi1sk".into(), s(sort_key(record.updated_at, &record.id)));
        if let (true, Some(retention)) = (record.status.is_finished(), self.finished_retention_secs)
        {
            let expires = (record.updated_at / 1000).saturating_add(retention);
            item.insert(TTL_ATTRIBUTE.into(), n(expires));
        }
        Ok(item)
    }

    /// A consistent read of one item by key.
    async fn get_item(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        Ok(out.item)
    }

    /// Runs a transaction, retrying while it is cancelled only by transaction conflicts.
    /// A cancellation with any other reason comes back as `TxError::Cancelled` for the caller
    /// to interpret per item.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), TxError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let err = match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .client_request_token(request_token())
                .send()
                .await
            {
                Ok(_) => return Ok(()),
                Err(err) => err,
            };
            if let Some(TransactWriteItemsError::TransactionCanceledException(e)) =
                err.as_service_error()
            {
                let reasons = e.cancellation_reasons();
                let conditional = reasons.iter().any(|r| r.code() == Some(CCF));
                let conflict = reasons
                    .iter()
                    .any(|r| r.code() == Some("TransactionConflict"));
                if conditional {
                    return Err(TxError::Cancelled(reasons.to_vec()));
                }
                if conflict && attempt < TX_CONFLICT_ATTEMPTS {
                    backoff(attempt).await;
                    continue;
                }
            }
            return Err(TxError::Store(sdk_error("TransactWriteItems", err)));
        }
    }

    /// Conditional put of a saga that keeps (or never had) the namespace guard.
    async fn put_saga_if_version(
        &self,
        record: &SagaRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.saga_item(record)?))
            .condition_expression("#version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":expected", n(expected_version))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => {
                if let Some(PutItemError::ConditionalCheckFailedException(e)) =
                    err.as_service_error()
                {
                    let exists = e.item().is_some_and(|i| !i.is_empty());
                    return Err(self
                        .version_failure(&record.id, expected_version, exists)
                        .await);
                }
                Err(sdk_error("PutItem", err))
            }
        }
    }

    /// The error for a failed `version = :expected` condition: NotFound when there is no item,
    /// else VersionConflict. `old_item_seen` comes from ReturnValuesOnConditionCheckFailure;
    /// without it a consistent read decides.
    async fn version_failure(&self, id: &str, expected: u64, old_item_seen: bool) -> StoreError {
        let exists = if old_item_seen {
            true
        } else {
            match self.get_item(saga_key(id)).await {
                Ok(item) => item.is_some(),
                Err(e) => return e,
            }
        };
        if exists {
            StoreError::VersionConflict {
                id: id.to_string(),
                expected,
            }
        } else {
            StoreError::NotFound { id: id.to_string() }
        }
    }

    /// One page of `gsi1` for `status`, optionally filtered to expired leases.
    async fn query_status(
        &self,
        status: SagaStatus,
        start: Option<Item>,
        limit: Option<usize>,
        lease_expired_at: Option<Millis>,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(":pk", s(status_pk(status)))
            .scan_index_forward(true)
            .set_exclusive_start_key(start)
            .set_limit(limit.map(|l| i32::try_from(l).unwrap_or(i32::MAX)));
        if let Some(now) = lease_expired_at {
            query = query
                .filter_expression("#lease <= :now")
                .expression_attribute_names("#lease", "leaseExpiresAt")
                .expression_attribute_values(":now", n(now));
        }
        let out = query.send().await.map_err(|e| sdk_error("Query", e))?;
        Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
    }

    async fn put_idempotency_claim(
        &self,
        key: &str,
        payload_hash: &str,
        now: Millis,
        in_progress_until: Millis,
        expires_at: Millis,
    ) -> Result<Option<Option<Item>>, StoreError> {
        let mut item = idem_key(key);
        item.insert("payloadHash".into(), s(payload_hash));
        item.insert("status".into(), s(IN_PROGRESS));
        item.insert("inProgressUntil".into(), n(in_progress_until));
        item.insert("expiresAt".into(), n(expires_at));
        item.insert(TTL_ATTRIBUTE.into(), n(expires_at.div_ceil(1000)));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // Free, expired (TTL lags), or an in-progress claim whose window has passed.
            .condition_expression(
                "attribute_not_exists(pk) OR #expires < :now \
                 OR (#status = :inprogress AND #until < :now)",
            )
            .expression_attribute_names("#expires", "expiresAt")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#until", "inProgressUntil")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":inprogress", s(IN_PROGRESS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(e)) => {
                    Ok(Some(e.item().filter(|i| !i.is_empty()).cloned()))
                }
                _ => Err(sdk_error("PutItem", err)),
            },
        }
    }
}

/// Why a transaction did not apply.
enum TxError {
    /// Cancelled with at least one failed condition; one reason per item, in order.
    Cancelled(Vec<CancellationReason>),
    Store(StoreError),
}

const CCF: &str = "ConditionalCheckFailed";

fn failed_condition(reasons: &[CancellationReason], index: usize) -> bool {
    reasons.get(index).and_then(|r| r.code()) == Some(CCF)
}

fn describe_reasons(reasons: &[CancellationReason]) -> String {
    reasons
        .iter()
        .map(|r| r.code().unwrap_or("None"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait]
impl SagaStore for DynamoSagaStore {
    async fn create(&self, record: &SagaRecord) -> Result<(), StoreError> {
        let saga_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.saga_item(record)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_error)?;
        let mut items = vec![TransactWriteItem::builder().put(saga_put).build()];
        if record.status.holds_namespace() {
            let mut guard = guard_key(&record.namespace);
            guard.insert("sagaId".into(), s(&record.id));
            let guard_put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(guard))
                .condition_expression("attribute_not_exists(pk)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(build_error)?;
            items.push(TransactWriteItem::builder().put(guard_put).build());
        }
        for _ in 0..RACE_ATTEMPTS {
            let reasons = match self.transact(items.clone()).await {
                Ok(()) => return Ok(()),
                Err(TxError::Store(e)) => return Err(e),
                Err(TxError::Cancelled(reasons)) => reasons,
            };
            if failed_condition(&reasons, 0) {
                return Err(StoreError::AlreadyExists {
                    id: record.id.clone(),
                });
            }
            if !failed_condition(&reasons, 1) {
                return Err(StoreError::Backend(format!(
                    "DynamoDB TransactWriteItems(create {}) cancelled: {}",
                    record.id,
                    describe_reasons(&reasons)
                )));
            }
            let holder = match reasons[1].item().and_then(|i| str_attr(i, "sagaId")) {
                Some(h) => Some(h.to_string()),
                None => self.namespace_holder(&record.namespace).await?,
            };
            match holder {
                Some(saga_id) => {
                    return Err(StoreError::NamespaceBusy {
                        namespace: record.namespace.clone(),
                        saga_id,
                    })
                }
                // Released between our write and the read: try again.
                None => continue,
            }
        }
        Err(StoreError::Backend(format!(
            "creating saga {}: the guard of namespace {} kept changing; retry",
            record.id, record.namespace
        )))
    }

    async fn get(&self, id: &str) -> Result<Option<SagaRecord>, StoreError> {
        match self.get_item(saga_key(id)).await? {
            Some(item) => decode_saga(&item, id).map(Some),
            None => Ok(None),
        }
    }

    async fn update(&self, record: &SagaRecord, expected_version: u64) -> Result<(), StoreError> {
        if record.version <= expected_version {
            return Err(StoreError::Invalid(format!(
                "update of saga {} must raise its version above {expected_version} (got {})",
                record.id, record.version
            )));
        }
        if record.status.holds_namespace() {
            return self.put_saga_if_version(record, expected_version).await;
        }
        // Leaving the namespace: release the guard atomically with the status change, and only
        // if it is ours (or already gone).
        let saga_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.saga_item(record)?))
            .condition_expression("#version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":expected", n(expected_version))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)?;
        let guard_delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(guard_key(&record.namespace)))
            .condition_expression("attribute_not_exists(pk) OR sagaId = :id")
            .expression_attribute_values(":id", s(&record.id))
            .build()
            .map_err(build_error)?;
        let items = vec![
            TransactWriteItem::builder().put(saga_put).build(),
            TransactWriteItem::builder().delete(guard_delete).build(),
        ];
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(TxError::Store(e)) => Err(e),
            Err(TxError::Cancelled(reasons)) if failed_condition(&reasons, 0) => {
                let seen = reasons[0].item().is_some_and(|i| !i.is_empty());
                Err(self
                    .version_failure(&record.id, expected_version, seen)
                    .await)
            }
            // The guard belongs to another saga: leave it alone and just write ours.
            Err(TxError::Cancelled(reasons)) if failed_condition(&reasons, 1) => {
                self.put_saga_if_version(record, expected_version).await
            }
            Err(TxError::Cancelled(reasons)) => Err(StoreError::Backend(format!(
                "DynamoDB TransactWriteItems(update {}) cancelled: {}",
                record.id,
                describe_reasons(&reasons)
            ))),
        }
    }

    async fn list_by_status(
        &self,
        status: SagaStatus,
        limit: usize,
        cursor: Option<String>,
    ) -> Result<Page, StoreError> {
        if limit == 0 {
            // A page of nothing could never make progress.
            return Err(StoreError::Invalid(format!(
                "listing {status} sagas needs a page size of at least 1"
            )));
        }
        // One extra row tells whether another page exists, so the last page has no cursor.
        let want = limit.saturating_add(1);
        let mut start = cursor.map(|c| cursor_key(status, &c)).transpose()?;
        let mut rows: Vec<Item> = Vec::new();
        loop {
            let (items, last) = self
                .query_status(status, start, Some(want - rows.len()), None)
                .await?;
            rows.extend(items);
            match last {
                Some(last) if rows.len() < want => start = Some(last),
                _ => break,
            }
        }
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last()
                .and_then(|i| str_attr(i, "gsi1sk"))
                .map(|sk| format!("{status}#{sk}"))
        } else {
            None
        };
        let items = rows.iter().map(decode_row).collect::<Result<_, _>>()?;
        Ok(Page { items, next })
    }

    async fn list_stalled(&self, now: Millis, limit: usize) -> Result<Vec<SagaRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        for status in SagaStatus::ALL.into_iter().filter(|s| s.is_runnable()) {
            let mut start = None;
            let mut of_status = 0;
            loop {
                // No Limit: it would apply before the filter and cut pages short.
                let (items, last) = self.query_status(status, start, None, Some(now)).await?;
                for item in &items {
                    found.push(decode_row(item)?);
                    of_status += 1;
                }
                match last {
                    Some(last) if of_status < limit => start = Some(last),
                    _ => break,
                }
            }
        }
        // The oldest across statuses first, so a busy status cannot starve the others.
        found.sort_by(|a, b| (a.updated_at, &a.id).cmp(&(b.updated_at, &b.id)));
        found.truncate(limit);
        Ok(found)
    }

    async fn namespace_holder(&self, namespace: &str) -> Result<Option<String>, StoreError> {
        let Some(item) = self.get_item(guard_key(namespace)).await? else {
            return Ok(None);
        };
        match str_attr(&item, "sagaId") {
            Some(id) => Ok(Some(id.to_string())),
            None => Err(StoreError::Corrupt(format!(
                "namespace guard {namespace} has no sagaId"
            ))),
        }
    }

    async fn claim_idempotency(
        &self,
        key: &str,
        payload_hash: &str,
        now: Millis,
        in_progress_until: Millis,
        expires_at: Millis,
    ) -> Result<IdempotencyClaim, StoreError> {
        for _ in 0..RACE_ATTEMPTS {
            let existing = match self
                .put_idempotency_claim(key, payload_hash, now, in_progress_until, expires_at)
                .await?
            {
                None => return Ok(IdempotencyClaim::Claimed),
                Some(Some(item)) => item,
                Some(None) => match self.get_item(idem_key(key)).await? {
                    Some(item) => item,
                    // Released or deleted in between: claim again.
                    None => continue,
                },
            };
            return decide_claim(key, &existing, payload_hash);
        }
        Err(StoreError::Backend(format!(
            "claiming idempotency key {key:?}: the key kept changing; retry"
        )))
    }

    async fn complete_idempotency(
        &self,
        key: &str,
        payload_hash: &str,
        saga_id: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(idem_key(key)))
            .update_expression("SET #status = :completed, sagaId = :saga")
            .condition_expression("payloadHash = :hash")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":completed", s(COMPLETED))
            .expression_attribute_values(":saga", s(saga_id))
            .expression_attribute_values(":hash", s(payload_hash))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if is_conditional_failure(&err) => Err(StoreError::Invalid(format!(
                "idempotency key {key:?} is not claimed with this payload"
            ))),
            Err(err) => Err(sdk_error("UpdateItem", err)),
        }
    }

    async fn release_idempotency(&self, key: &str, payload_hash: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(idem_key(key)))
            .condition_expression("payloadHash = :hash AND #status = :inprogress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":hash", s(payload_hash))
            .expression_attribute_values(":inprogress", s(IN_PROGRESS))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Completed, taken over by another payload, or gone: nothing of ours to release.
            Err(err) if is_conditional_failure(&err) => Ok(()),
            Err(err) => Err(sdk_error("DeleteItem", err)),
        }
    }
}

/// Resource locks as items `LOCK#<resource>` / `LOCK` with `owner` and `expiresAt`, taken with
/// a conditional put and released with a conditional delete; `ttl` cleans up stale ones.
#[async_trait]
impl ResourceLocks for DynamoSagaStore {
    async fn try_lock(
        &self,
        resource: &str,
        owner: &str,
        now: Millis,
        expires_at: Millis,
    ) -> Result<bool, StoreError> {
        let mut item = lock_key(resource);
        item.insert("owner".into(), s(owner));
        item.insert("expiresAt".into(), n(expires_at));
        item.insert(TTL_ATTRIBUTE.into(), n(expires_at.div_ceil(1000) + 3600));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #owner = :owner OR expiresAt < :now")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if is_conditional_failure(&err) => Ok(false),
            Err(err) => Err(sdk_error("PutItem", err)),
        }
    }

    async fn unlock(&self, resource: &str, owner: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(lock_key(resource)))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Someone else's (ours expired and was taken) or already gone: nothing to release.
            Err(err) if is_conditional_failure(&err) => Ok(()),
            Err(err) => Err(sdk_error("DeleteItem", err)),
        }
    }
}

/// The claim outcome from the item that made our conditional put fail.
fn decide_claim(
    key: &str,
    item: &Item,
    payload_hash: &str,
) -> Result<IdempotencyClaim, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("idempotency key {key:?}: {what}"));
    let stored_hash = str_attr(item, "payloadHash").ok_or_else(|| corrupt("no payloadHash"))?;
    let saga_id = str_attr(item, "sagaId").map(str::to_string);
    let same = stored_hash == payload_hash;
    match str_attr(item, "status") {
        Some(COMPLETED) if same => match saga_id {
            Some(saga_id) => Ok(IdempotencyClaim::Existing { saga_id }),
            None => Err(corrupt("COMPLETED without sagaId")),
        },
        Some(COMPLETED) => Ok(IdempotencyClaim::PayloadMismatch { saga_id }),
        // Another request is working on a different payload under this key.
        Some(IN_PROGRESS) if !same => Ok(IdempotencyClaim::PayloadMismatch { saga_id: None }),
        Some(IN_PROGRESS) => Ok(IdempotencyClaim::InProgress {
            expires_at: num_attr(item, "inProgressUntil")
                .ok_or_else(|| corrupt("no inProgressUntil"))?,
        }),
        Some(other) => Err(corrupt(&format!("unknown status {other:?}"))),
        None => Err(corrupt("no status")),
    }
}

/// Decode a saga item; `id` is the one it was looked up by.
fn decode_saga(item: &Item, id: &str) -> Result<SagaRecord, StoreError> {
    let body = str_attr(item, "body")
        .ok_or_else(|| StoreError::Corrupt(format!("saga {id}: item has no string body")))?;
    let record: SagaRecord = serde_json::from_str(body)
        .map_err(|e| StoreError::Corrupt(format!("saga {id}: body is not a saga record: {e}")))?;
    if record.id != id {
        return Err(StoreError::Corrupt(format!(
            "saga {id}: body belongs to saga {}",
            record.id
        )));
    }
    match num_attr(item, "version") {
        Some(v) if v == record.version => Ok(record),
        other => Err(StoreError::Corrupt(format!(
            "saga {id}: version attribute {other:?} does not match body version {}",
            record.version
        ))),
    }
}

/// Decode a saga item found by a query (the id comes from its key).
fn decode_row(item: &Item) -> Result<SagaRecord, StoreError> {
    let id = str_attr(item, "pk")
        .and_then(|pk| pk.strip_prefix("SAGA#"))
        .ok_or_else(|| {
            StoreError::Corrupt(format!("{GSI1} row is not a saga: {:?}", item.get("pk")))
        })?;
    decode_saga(item, id)
}

/// The ExclusiveStartKey for a `list_by_status` cursor: `<STATUS>#<gsi1sk of the last row>`,
/// so a cursor from another status's listing is refused instead of starting mid-way.
fn cursor_key(status: SagaStatus, cursor: &str) -> Result<Item, StoreError> {
    let invalid = || {
        StoreError::Invalid(format!(
            "cursor {cursor:?} does not come from a listing of {status} sagas"
        ))
    };
    let sk = cursor
        .strip_prefix(status.as_str())
        .and_then(|rest| rest.strip_prefix('#'))
        .ok_or_else(invalid)?;
    let id = sk
        .split_once('#')
        .filter(|(ts, id)| {
            ts.len() == 15 && ts.bytes().all(|b| b.is_ascii_digit()) && !id.is_empty()
        })
        .map(|(_, id)| id)
        .ok_or_else(invalid)?;
    let mut key = saga_key(id);
    key.insert("gsi1pk".into(), s(status_pk(status)));
    key.insert("gsi1sk".into(), s(sk));
    Ok(key)
}

fn saga_key(id: &str) -> Item {
    key(format!("SAGA#{id}"), SAGA_SK)
}

fn guard_key(namespace: &str) -> Item {
    key(format!("NS#{namespace}"), GUARD_SK)
}

fn lock_key(resource: &str) -> Item {
    key(format!("LOCK#{resource}"), LOCK_SK)
}

fn idem_key(idempotency_key: &str) -> Item {
    key(format!("IDEM#{idempotency_key}"), IDEM_SK)
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

fn status_pk(status: SagaStatus) -> String {
    format!("STATUS#{status}")
}

/// `gsi1sk`: sorts by update time, then id. A cursor is `<STATUS>#` and this, the same shape
/// `MemoryStore` hands out.
fn sort_key(updated_at: Millis, id: &str) -> String {
    format!("{updated_at:015}#{id}")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn str_attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn num_attr(item: &Item, name: &str) -> Option<u64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn is_conditional_failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.code() == Some("ConditionalCheckFailedException")
}

/// `DynamoDB <Operation> failed: <code>: <message>`, or the whole error chain when the request
/// never got a service answer (timeout, connection refused).
fn sdk_error<E, R>(operation: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match err.code() {
        Some(code) => StoreError::Backend(format!(
            "DynamoDB {operation} failed: {code}: {}",
            err.message().unwrap_or("(no message)")
        )),
        None => {
            let (code, why) = crate::sdk_errors::unanswered(&err);
            StoreError::Backend(format!("DynamoDB {operation} failed: {code}: {why}"))
        }
    }
}

fn build_error(err: BuildError) -> StoreError {
    StoreError::Backend(format!("building a DynamoDB request failed: {err}"))
}

/// A unique token per transaction attempt: if the SDK retries a transaction that DynamoDB
/// already applied (the response was lost), DynamoDB answers success instead of our own write
/// failing its condition and surfacing as a false VersionConflict/AlreadyExists.
fn request_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    // At most 36 characters, as TransactWriteItems requires.
    let mut token = format!("{nanos:x}-{:x}-{count:x}", std::process::id());
    token.truncate(36);
    token
}

/// Exponential backoff with a little jitter (from the clock: no RNG dependency needed).
async fn backoff(attempt: u32) {
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()) % 20);
    let base = 20u64 << attempt.min(5);
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}

/// Create the saga table as described in the module docs (on-demand, `gsi1`, TTL on `ttl`) and
/// wait until it is usable. Idempotent: an existing table is accepted and only TTL is ensured.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(build_error)
    };
    let key_elem = |name: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(build_error)
    };
    let gsi = GlobalSecondaryIndex::builder()
        .index_name(GSI1)
        .key_schema(key_elem("gsi1pk", KeyType::Hash)?)
        .key_schema(key_elem("gsi1sk", KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(build_error)?;
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk")?)
        .attribute_definitions(attr("sk")?)
        .attribute_definitions(attr("gsi1pk")?)
        .attribute_definitions(attr("gsi1sk")?)
        .key_schema(key_elem("pk", KeyType::Hash)?)
        .key_schema(key_elem("sk", KeyType::Range)?)
        .global_secondary_indexes(gsi)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(err)
            if matches!(
                err.as_service_error(),
                Some(CreateTableError::ResourceInUseException(_))
            ) => {}
        Err(err) => return Err(sdk_error("CreateTable", err)),
    }
    wait_until_active(client, table).await?;

    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| sdk_error("DescribeTimeToLive", e))?;
    let enabled = matches!(
        ttl.time_to_live_description()
            .and_then(|d| d.time_to_live_status()),
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    );
    if !enabled {
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(TTL_ATTRIBUTE)
            .enabled(true)
            .build()
            .map_err(build_error)?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| sdk_error("UpdateTimeToLive", e))?;
    }
    Ok(())
}

/// Poll until the table and its indexes are ACTIVE (seconds on AWS, immediate on moto).
async fn wait_until_active(client: &Client, table: &str) -> Result<(), StoreError> {
    for _ in 0..240 {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeTable", e))?;
        if let Some(desc) = out.table() {
            let table_active = desc.table_status() == Some(&TableStatus::Active);
            let indexes_active = desc
                .global_secondary_indexes()
                .iter()
                .all(|i| i.index_status().is_none_or(|s| *s == IndexStatus::Active));
            if table_active && indexes_active {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(StoreError::Backend(format!(
        "DynamoDB table {table} did not become ACTIVE within 2 minutes"
    )))
}
