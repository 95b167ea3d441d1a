//! Embedded [`SagaStore`](onboard_core::store::SagaStore) for local use: the `onboard` CLI and
//! `serve --sandbox`.
//!
//! Backed by [redb](https://www.redb.org): ACID transactions with copy-on-write B-trees, so a
//! crash mid-write never leaves a half-updated saga; one single file, so local state is easy to
//! find, back up or delete; pure Rust, so there is no C toolchain or system library to install.
//! Every conditional write the port needs (version check, namespace guard, idempotency claim)
//! runs in one write transaction, which gives the same guarantees DynamoDB's conditional writes
//! give the deployed service.
//!
//! Single process only: redb locks the database file, so a second process opening the same file
//! gets an error instead of a corrupted database. Within a process, share one store (it is cheap
//! to clone the `Arc` inside) across tasks.

mod redb_store;

pub use redb_store::RedbSagaStore;
