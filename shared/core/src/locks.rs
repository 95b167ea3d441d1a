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

/// The lock an edit holds, to renew right before its write.
///
/// IAM and Connect writes are not conditional, so nothing stops a holder that stalled past
/// [`LOCK_TTL`] between its read and its write (a slow call, a paused process) from writing
/// over an edit made meanwhile by the saga that took the expired lock: a lost statement or
/// grant. [`LockGuard::renew`] right before the write closes that: it takes the lock again for
/// a full [`LOCK_TTL`] (the write's SDK timeout is shorter), and fails with a retryable
/// `ResourceLocked` if someone else holds it now, so the step starts over from a fresh read.
pub struct LockGuard<'a> {
    locks: &'a dyn ResourceLocks,
    clock: &'a dyn Clock,
    resource: String,
    owner: String,
}

impl LockGuard<'_> {
    pub async fn renew(&self) -> Result<(), ErrorInfo> {
        let now = self.clock.now();
        let until = now.saturating_add(LOCK_TTL.as_millis() as u64);
        if self
            .locks
            .try_lock(&self.resource, &self.owner, now, until)
            .await
            .map_err(store_error)?
        {
            return Ok(());
        }
        Err(ErrorInfo::new(
            ErrorKind::Locked,
            "ResourceLockLost",
            format!(
                "the lock on {} expired during this edit and another saga took it; the edit \
                 starts over from a fresh read",
                self.resource
            ),
        ))
    }
}

/// Run `edit` while holding `resource`, waiting up to [`LOCK_WAIT`] for another saga's edit
/// (or a crashed worker's lock) to end. If it is still busy after that, fail with a retryable
/// `ResourceLocked` error so the engine backs off and tries again. `edit` gets the
/// [`LockGuard`] to renew right before its write.
pub async fn with_lock<'a, T, F, Fut>(
    locks: &'a dyn ResourceLocks,
    clock: &'a dyn Clock,
    resource: &str,
    owner: &str,
    edit: F,
) -> Result<T, ErrorInfo>
where
    F: FnOnce(LockGuard<'a>) -> Fut,
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
    let guard = LockGuard {
        locks,
        clock,
        resource: resource.to_string(),
        owner: owner.to_string(),
    };
    let result = edit(guard).await;
    if let Err(err) = locks.unlock(resource, owner).await {
        // The lock expires on its own; the edit's result stands.
        tracing::warn!(resource, owner, error = %err, "could not release resource lock");
    }
    result
}

#[cfg(test)]
mod guard_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::testkit::{ManualClock, MemoryLocks};

    /// Issue 15 (lock fencing): a holder that stalled past LOCK_TTL between its read and its
    /// write used to write over the edit of the saga that took the expired lock meanwhile (a
    /// lost SLR statement, found by the chaos campaign at seed 7). Renewing before the write
    /// refuses it with a retryable error, and the new holder keeps the lock.
    #[tokio::test]
    async fn a_holder_that_outlived_its_lock_cannot_write_over_the_next_one() {
        let locks = MemoryLocks::new();
        let clock = ManualClock::new(1_000);
        let (l, c) = (&locks, &clock);
        let result = with_lock(l, c, "iam-role/r/p", "a", |guard| async move {
            let (locks, clock) = (l, c);
            clock.advance(LOCK_TTL + Duration::from_secs(1));
            let now = clock.now();
            let until = now + LOCK_TTL.as_millis() as u64;
            assert!(locks
                .try_lock("iam-role/r/p", "b", now, until)
                .await
                .unwrap());
            guard.renew().await
        })
        .await;
        let err = result.unwrap_err();
        assert_eq!(
            (err.kind, err.code.as_str()),
            (ErrorKind::Locked, "ResourceLockLost")
        );
        assert!(err.kind.is_retryable());
        assert_eq!(locks.holder("iam-role/r/p").as_deref(), Some("b"));
    }

    #[tokio::test]
    async fn renewing_an_expired_lock_nobody_took_succeeds() {
        let locks = MemoryLocks::new();
        let clock = ManualClock::new(1_000);
        let c = &clock;
        with_lock(&locks, c, "res", "a", |guard| async move {
            c.advance(LOCK_TTL * 2);
            guard.renew().await
        })
        .await
        .unwrap();
        assert_eq!(locks.holder("res"), None, "released after the edit");
    }
}
