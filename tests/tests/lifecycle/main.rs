//! The lifecycle sagas (edit, pause/resume, offboard, drift fix, adopt) with the real SDK
//! clients against the sandbox and the saga log on moto DynamoDB, each with a fault injected at
//! every call the saga makes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a broken fixture should fail loudly

mod adopt;
mod crash;
mod drift;
mod edit;
mod offboard;
mod pause;
mod support;
