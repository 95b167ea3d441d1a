//! A store wrapper that simulates a worker dying right after a chosen write, for crash tests.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use crate::record::{Millis, SagaRecord, SagaStatus};
use crate::store::{IdempotencyClaim, Page, SagaStore, StoreError};

/// A store that "crashes" at its `crash_at`-th update: that write lands, then it and every
/// later call fail, like a worker that died right after the write.
pub struct CrashingStore {
    pub inner: Arc<dyn SagaStore>,
    pub updates: AtomicU64,
    pub crash_at: u64,
    pub dead: AtomicBool,
}

impl CrashingStore {
    pub fn new(inner: Arc<dyn SagaStore>, crash_at: u64) -> Self {
        CrashingStore {
            inner,
            updates: AtomicU64::new(0),
            crash_at,
            dead: AtomicBool::new(false),
        }
    }

    pub fn updates(&self) -> u64 {
        self.updates.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("crashed".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl SagaStore for CrashingStore {
    async fn create(&self, r: &SagaRecord) -> Result<(), StoreError> {
        self.check()?;
        self.inner.create(r).await
    }
    async fn get(&self, id: &str) -> Result<Option<SagaRecord>, StoreError> {
        self.check()?;
        self.inner.get(id).await
    }
    async fn update(&self, r: &SagaRecord, v: u64) -> Result<(), StoreError> {
        self.check()?;
        self.inner.update(r, v).await?;
        if self.updates.fetch_add(1, Ordering::SeqCst) + 1 == self.crash_at {
            self.dead.store(true, Ordering::SeqCst);
            return Err(StoreError::Backend("crashed right after this write".into()));
        }
        Ok(())
    }
    async fn list_by_status(
        &self,
        s: SagaStatus,
        l: usize,
        c: Option<String>,
    ) -> Result<Page, StoreError> {
        self.check()?;
        self.inner.list_by_status(s, l, c).await
    }
    async fn list_stalled(&self, now: Millis, l: usize) -> Result<Vec<SagaRecord>, StoreError> {
        self.check()?;
        self.inner.list_stalled(now, l).await
    }
    async fn namespace_holder(&self, ns: &str) -> Result<Option<String>, StoreError> {
        self.check()?;
        self.inner.namespace_holder(ns).await
    }
    async fn claim_idempotency(
        &self,
        k: &str,
        h: &str,
        n: Millis,
        u: Millis,
        e: Millis,
    ) -> Result<IdempotencyClaim, StoreError> {
        self.check()?;
        self.inner.claim_idempotency(k, h, n, u, e).await
    }
    async fn complete_idempotency(&self, k: &str, h: &str, s: &str) -> Result<(), StoreError> {
        self.check()?;
        self.inner.complete_idempotency(k, h, s).await
    }
    async fn release_idempotency(&self, k: &str, h: &str) -> Result<(), StoreError> {
        self.check()?;
        self.inner.release_idempotency(k, h).await
    }
}
