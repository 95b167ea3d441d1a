//! The `SagaStore` port: where saga records and idempotency keys live.
//!
//! Two adapters implement it (DynamoDB and an embedded database) and both must pass
//! `testkit::store_contract`. Every write that changes a saga is conditional on its version.

use async_trait::async_trait;

use crate::record::{Millis, SagaRecord, SagaStatus};

/// Errors a store returns. `VersionConflict` and `NamespaceBusy` are expected outcomes of
/// races; `Invalid` is a caller bug; `Corrupt` and `Backend` are data and infrastructure
/// failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The saga's stored version is not the one the write expected: someone else advanced it.
    #[error("saga {id} was changed concurrently (expected version {expected}); reload and retry")]
    VersionConflict { id: String, expected: u64 },
    /// A saga with this id already exists.
    #[error("saga {id} already exists")]
    AlreadyExists { id: String },
    /// Another saga that still holds the namespace (active or ROLLBACK_FAILED) exists.
    #[error(
        "namespace {namespace} is held by saga {saga_id}; wait for it to finish or re-drive it"
    )]
    NamespaceBusy { namespace: String, saga_id: String },
    /// The saga does not exist.
    #[error("saga {id} not found")]
    NotFound { id: String },
    /// The caller asked for something the store refuses: a version that was not raised, a
    /// cursor from another listing, a page size of 0, completing an idempotency key not claimed
    /// with this payload. Retrying the same request fails the same way.
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// A stored item could not be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The backing database failed (network, throttling, I/O).
    #[error("store backend failed: {0}")]
    Backend(String),
}

/// The result of claiming an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// The key is ours now (it was free, or a previous claim's in-progress window expired).
    Claimed,
    /// The key was already completed with the same payload: here is its saga.
    Existing { saga_id: String },
    /// The key was already used with a different payload.
    PayloadMismatch { saga_id: Option<String> },
    /// Another request holds the key and its in-progress window has not expired.
    InProgress { expires_at: Millis },
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<SagaRecord>,
    /// Opaque; pass back to get the next page. `None` when there are no more.
    pub next: Option<String>,
}

/// Persistence for saga records and idempotency keys.
#[async_trait]
pub trait SagaStore: Send + Sync {
    /// Store a new saga (its `version` is the initial one). Fails with `AlreadyExists` for a
    /// known id and `NamespaceBusy` when another saga holds the namespace; on failure nothing
    /// is written. Of concurrent creates on one namespace exactly one wins. A saga whose status
    /// does not hold a namespace (SUCCEEDED, ROLLED_BACK) takes no guard and is never refused
    /// for one.
    async fn create(&self, record: &SagaRecord) -> Result<(), StoreError>;

    /// Load a saga.
    async fn get(&self, id: &str) -> Result<Option<SagaRecord>, StoreError>;

    /// Replace a saga if its stored version is `expected_version`; `record.version` must be
    /// greater (else `Invalid`, checked before anything is read or written). When the new status no longer holds the namespace, the namespace is released in
    /// the same atomic write.
    async fn update(&self, record: &SagaRecord, expected_version: u64) -> Result<(), StoreError>;

    /// Sagas with `status`, oldest `updated_at` first (ties broken by id), at most `limit` per
    /// page; every matching saga appears exactly once across the pages. `limit` must be at least
    /// 1 (`Invalid` otherwise). `cursor` is the `next` of the previous page of this same listing;
    /// one from another status, or not from this store, is `Invalid`.
    async fn list_by_status(
        &self,
        status: SagaStatus,
        limit: usize,
        cursor: Option<String>,
    ) -> Result<Page, StoreError>;

    /// Runnable sagas (PENDING, RUNNING, ROLLING_BACK) whose lease is absent or expired at
    /// `now` (`expires_at <= now`): the reconciler resumes them. The `limit` oldest by
    /// `updated_at` across all three statuses (ties broken by id), oldest first, so a busy status
    /// cannot starve the others. Not paged: `limit == 0` returns nothing.
    async fn list_stalled(&self, now: Millis, limit: usize) -> Result<Vec<SagaRecord>, StoreError>;

    /// The saga that currently holds `namespace`, if any.
    async fn namespace_holder(&self, namespace: &str) -> Result<Option<String>, StoreError>;

    /// Claim `key` for a request whose payload hashes to `payload_hash`. A claim is in progress
    /// until `in_progress_until`; after that another request may take it over (a crashed claim
    /// never blocks forever), whatever its payload: the taker's payload replaces the old one.
    /// `expires_at` is when the whole record may be deleted (TTL); once it is before `now` the
    /// key counts as free, even if it was completed.
    async fn claim_idempotency(
        &self,
        key: &str,
        payload_hash: &str,
        now: Millis,
        in_progress_until: Millis,
        expires_at: Millis,
    ) -> Result<IdempotencyClaim, StoreError>;

    /// Mark a claimed key as done with `saga_id`. `Invalid` when the key is not claimed with
    /// `payload_hash` (never claimed, released, or taken over by another payload after the
    /// in-progress window expired).
    async fn complete_idempotency(
        &self,
        key: &str,
        payload_hash: &str,
        saga_id: &str,
    ) -> Result<(), StoreError>;

    /// Give a claimed key back (the request failed before creating anything).
    async fn release_idempotency(&self, key: &str, payload_hash: &str) -> Result<(), StoreError>;
}

/// Every saga in `statuses` that `keep` accepts, following each listing to its last page. For
/// an operator's terminal and the audit trail, which need the whole log; never a hot path.
pub async fn every_saga(
    store: &dyn SagaStore,
    statuses: &[SagaStatus],
    keep: impl Fn(&SagaRecord) -> bool,
) -> Result<Vec<SagaRecord>, StoreError> {
    let mut all = Vec::new();
    for status in statuses {
        let mut cursor = None;
        loop {
            let page = store.list_by_status(*status, 100, cursor).await?;
            all.extend(page.items.into_iter().filter(|r| keep(r)));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    Ok(all)
}
