//! A saga-store wrapper that injects worker deaths and stalls at a chosen log write.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use onboard_core::record::{Millis, SagaRecord, SagaStatus};
use onboard_core::store::{IdempotencyClaim, Page, SagaStore, StoreError};
use tokio::sync::Notify;

/// What happens at the chosen update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFault {
    /// The worker dies before the write reaches the store: the write is lost.
    CrashBefore,
    /// The write lands, then the worker dies before it hears back.
    CrashAfter,
    /// The write lands, then the worker stalls (a frozen process) until released: another
    /// worker takes over meanwhile, and the stale one then wakes and tries to go on.
    StallAfter,
}

/// Wraps the real store; at update number `at` (1-based) applies `fault`.
pub struct ChaosStore {
    inner: Arc<dyn SagaStore>,
    at: u64,
    fault: WriteFault,
    updates: AtomicU64,
    dead: AtomicBool,
    fired: AtomicBool,
    /// Signalled when the stall begins.
    pub stalled: Notify,
    /// Signalled to end the stall.
    pub release: Notify,
}

impl ChaosStore {
    pub fn new(inner: Arc<dyn SagaStore>, at: u64, fault: WriteFault) -> Self {
        ChaosStore {
            inner,
            at,
            fault,
            updates: AtomicU64::new(0),
            dead: AtomicBool::new(false),
            fired: AtomicBool::new(false),
            stalled: Notify::new(),
            release: Notify::new(),
        }
    }

    /// Whether the fault happened (the saga had at least `at` writes).
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("chaos: this worker is dead".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl SagaStore for ChaosStore {
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
        let n = self.updates.fetch_add(1, Ordering::SeqCst) + 1;
        if n != self.at {
            return self.inner.update(r, v).await;
        }
        self.fired.store(true, Ordering::SeqCst);
        match self.fault {
            WriteFault::CrashBefore => {
                self.dead.store(true, Ordering::SeqCst);
                Err(StoreError::Backend("chaos: died before this write".into()))
            }
            WriteFault::CrashAfter => {
                self.inner.update(r, v).await?;
                self.dead.store(true, Ordering::SeqCst);
                Err(StoreError::Backend(
                    "chaos: died right after this write".into(),
                ))
            }
            WriteFault::StallAfter => {
                let result = self.inner.update(r, v).await;
                let released = self.release.notified();
                self.stalled.notify_one();
                released.await;
                result
            }
        }
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
