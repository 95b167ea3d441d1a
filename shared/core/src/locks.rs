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

/// How long a lock is held at most; an edit is a few API calls that the SDK's timeouts bound
/// well below this.
pub const LOCK_TTL: Duration = Duration::from_secs(30);

/// How long `with_lock` waits for a busy lock before giving up with a retryable error: longer
/// than [`LOCK_TTL`], so a lock left by a crashed worker is always outlived.
pub const LOCK_WAIT: Duration = Duration::from_secs(40);

/// Pause between attempts to take a busy lock.
const LOCK_POLL: Duration = Duration::from_millis(500);

fn store_error(err: StoreError) -> ErrorInfo {
    ErrorInfo::new(
        ErrorKind::ServerError,
        "LockStoreUnavailable",
        err.to_string(),
    )
}

/// Run `edit` while holding `resource`, waiting up to [`LOCK_WAIT`] for another saga's edit
/// (or a crashed worker's lock) to end. If it is still busy after that, fail with a retryable
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
    let started = clock.now();
    loop {
        let now = clock.now();
        let until = now.saturating_add(LOCK_TTL.as_millis() as u64);
        if locks
            .try_lock(resource, owner, now, until)
            .await
            .map_err(store_error)?
        {
            break;
        }
        if now.saturating_sub(started) >= LOCK_WAIT.as_millis() as u64 {
            return Err(ErrorInfo::new(
                ErrorKind::Locked,
                "ResourceLocked",
                format!(
                    "{resource} has been locked by another onboarding saga for over {} s",
                    LOCK_WAIT.as_secs()
                ),
            ));
        }
        clock.sleep(LOCK_POLL).await;
    }
    let result = edit().await;
    if let Err(err) = locks.unlock(resource, owner).await {
        // The lock expires on its own; the edit's result stands.
        tracing::warn!(resource, owner, error = %err, "could not release resource lock");
    }
    result
}
