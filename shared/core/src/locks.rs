//! Short leases on shared AWS resources (one SLR's inline policy, one security profile) so
//! that read-modify-write edits from concurrent sagas are serialized and never lose an entry.
//!
//! IAM and Connect have no conditional writes for these documents, so the lock lives in the
//! saga store. A lock expires on its own, so a crashed holder blocks others only briefly.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::error::{ErrorInfo, ErrorKind};
use crate::record::Millis;
use crate::store::StoreError;

/// Named, expiring locks.
#[async_trait]
pub trait ResourceLocks: Send + Sync {
    /// Take `resource` for `owner` until `expires_at` if it is free, expired, or already
    /// `owner`'s. Returns whether `owner` holds it now.
    async fn try_lock(
        &self,
        resource: &str,
        owner: &str,
        now: Millis,
        expires_at: Millis,
    ) -> Result<bool, StoreError>;

    /// Release `resource` if `owner` holds it; otherwise do nothing.
    async fn unlock(&self, resource: &str, owner: &str) -> Result<(), StoreError>;
}

/// How long a lock is held at most; an edit is a couple of API calls.
pub const LOCK_TTL: Duration = Duration::from_secs(60);

fn store_error(err: StoreError) -> ErrorInfo {
    ErrorInfo::new(
        ErrorKind::ServerError,
        "LockStoreUnavailable",
        err.to_string(),
    )
}

/// Run `edit` while holding `resource`. When another saga holds it, fail with a retryable
/// `ResourceLocked` error so the engine backs off and tries again.
pub async fn with_lock<T, F, Fut>(
    locks: &dyn ResourceLocks,
    clock: &dyn Clock,
    resource: &str,
    owner: &str,
    edit: F,
) -> Result<T, ErrorInfo>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, ErrorInfo>>,
{
    let now = clock.now();
    let until = now.saturating_add(LOCK_TTL.as_millis() as u64);
    if !locks
        .try_lock(resource, owner, now, until)
        .await
        .map_err(store_error)?
    {
        return Err(ErrorInfo::new(
            ErrorKind::Locked,
            "ResourceLocked",
            format!("{resource} is being edited by another onboarding saga"),
        ));
    }
    let result = edit().await;
    if let Err(err) = locks.unlock(resource, owner).await {
        // The lock expires on its own; the edit's result stands.
        tracing::warn!(resource, owner, error = %err, "could not release resource lock");
    }
    result
}
