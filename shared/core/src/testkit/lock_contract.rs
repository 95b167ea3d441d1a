//! The contract every [`ResourceLocks`] must meet; adapters call [`run_all`] with a factory
//! returning a fresh, empty lock table.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;

use crate::locks::ResourceLocks;

/// Run every case, each against fresh locks from `make`.
pub async fn run_all<F, Fut, L>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = L>,
    L: ResourceLocks + 'static,
{
    exclusive_until_released(&make().await).await;
    expired_locks_can_be_taken(&make().await).await;
    only_the_owner_releases(&make().await).await;
    resources_are_independent(&make().await).await;
    racing_owners_exactly_one_wins(Arc::new(make().await)).await;
}

async fn exclusive_until_released(locks: &dyn ResourceLocks) {
    assert!(
        locks.try_lock("r", "a", 1_000, 61_000).await.unwrap(),
        "a free lock is taken"
    );
    assert!(
        !locks.try_lock("r", "b", 2_000, 62_000).await.unwrap(),
        "a held lock refuses another owner"
    );
    assert!(
        locks.try_lock("r", "a", 3_000, 63_000).await.unwrap(),
        "the holder may take it again (a retried step)"
    );
    assert!(
        !locks.try_lock("r", "b", 62_000, 122_000).await.unwrap(),
        "re-taking extended the holder's expiry"
    );
    locks.unlock("r", "a").await.unwrap();
    assert!(
        locks.try_lock("r", "b", 4_000, 64_000).await.unwrap(),
        "a released lock is free"
    );
}

async fn expired_locks_can_be_taken(locks: &dyn ResourceLocks) {
    assert!(locks.try_lock("r", "a", 1_000, 2_000).await.unwrap());
    assert!(
        !locks.try_lock("r", "b", 2_000, 3_000).await.unwrap(),
        "not expired at its expiry"
    );
    assert!(
        locks.try_lock("r", "b", 2_001, 3_001).await.unwrap(),
        "a crashed holder's lock expires"
    );
    locks.unlock("r", "a").await.unwrap();
    assert!(
        !locks.try_lock("r", "c", 2_500, 3_500).await.unwrap(),
        "the old holder's late unlock does not free the new holder's lock"
    );
}

async fn only_the_owner_releases(locks: &dyn ResourceLocks) {
    assert!(locks.try_lock("r", "a", 1_000, 61_000).await.unwrap());
    locks.unlock("r", "b").await.unwrap();
    assert!(
        !locks.try_lock("r", "b", 1_001, 61_001).await.unwrap(),
        "unlock by another owner does nothing"
    );
    locks.unlock("never-locked", "a").await.unwrap();
}

async fn resources_are_independent(locks: &dyn ResourceLocks) {
    assert!(locks
        .try_lock("iam-role/x", "a", 1_000, 61_000)
        .await
        .unwrap());
    assert!(locks
        .try_lock("iam-role/y", "b", 1_000, 61_000)
        .await
        .unwrap());
    assert!(!locks
        .try_lock("iam-role/x", "b", 1_000, 61_000)
        .await
        .unwrap());
}

async fn racing_owners_exactly_one_wins<L: ResourceLocks + 'static>(locks: Arc<L>) {
    let mut tasks = Vec::new();
    for i in 0..8 {
        let locks = locks.clone();
        tasks.push(tokio::spawn(async move {
            locks
                .try_lock("r", &format!("w{i}"), 1_000, 61_000)
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1, "exactly one racing owner takes the lock");
}
