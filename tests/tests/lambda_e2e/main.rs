//! The Lambda functions end to end: the **compiled** `onboard-api`, `onboard-worker` and
//! `onboard-reconciler` binaries, each under its own local Lambda Runtime API
//! (`onboard_integration_tests::lambda_runtime`), with the saga table and the FIFO queue on moto
//! and AppIntegrations/Connect/IAM in the in-process sandbox. The test plays API Gateway, the
//! SQS event source mapping and the EventBridge schedule: it builds their real event shapes,
//! moves messages from moto's queue into SQS events, and deletes what a mapping would delete.
//!
//! The functions find every service through the SDK's per-service endpoint variables; the
//! catch-all `AWS_ENDPOINT_URL` points at a closed local port, and the processes inherit no
//! environment, so nothing can reach AWS.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failing test should fail loudly

mod crash;
mod errors;
mod events;
mod portal;
mod stack;
