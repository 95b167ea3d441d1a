//! Test helpers shared by this crate's tests and the adapter crates (feature `testkit`):
//! an in-memory store, a manual clock, the store contract suite and a fake AWS world.

pub mod clock;
pub mod crashing_store;
pub mod fake_world;
pub mod lock_contract;
pub mod memory_locks;
pub mod memory_store;
pub mod store_contract;

pub use clock::{FixedRandom, ManualClock};
pub use crashing_store::CrashingStore;
pub use fake_world::FakeWorld;
pub use memory_locks::MemoryLocks;
pub use memory_store::MemoryStore;
