//! The store contract against the in-memory store the engine tests use, so those tests run
//! on the same semantics as the real stores.

use onboard_core::testkit::{store_contract, MemoryStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_meets_the_contract() {
    store_contract::run_all(|| async { MemoryStore::new() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_locks_meet_the_contract() {
    onboard_core::testkit::lock_contract::run_all(|| async {
        onboard_core::testkit::MemoryLocks::new()
    })
    .await;
}
