//! The onboard saga end to end: the real engine, the real AWS SDK clients over HTTP against the
//! in-process sandbox (AppIntegrations, Connect, IAM), the saga log in DynamoDB on moto.
//! Every assertion on the world is on the sandbox's state dump ("pristine" = the dump taken
//! before the saga). One test binary with modules, to keep link time down.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failing test should fail loudly

mod concurrency;
mod crash;
mod failures;
mod happy;
mod regressions;
mod retries;
mod undo;
mod validation;
