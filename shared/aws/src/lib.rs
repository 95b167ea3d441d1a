//! AWS adapters for `onboard-core`: implementations of the core's ports on the aws-sdk crates.
//!
//! The core holds no AWS SDK; everything that talks to AWS lives here so the functions and the
//! CLI can build clients once at init and hand them to the core. Tests drive these same clients
//! over HTTP against local emulators (moto), never against AWS.

pub mod appintegrations;
pub mod config;
pub mod connect;
pub mod dynamodb_store;
pub mod iam;
pub mod page_fetcher;
pub mod permission_simulator;
pub mod preflight;
pub mod sdk_errors;
pub mod sqs_queue;

pub use appintegrations::SdkAppIntegrations;
pub use config::{sdk_config, SdkTimeouts};
pub use connect::{ConnectRate, SdkConnect};
pub use dynamodb_store::{create_table, DynamoSagaStore};
pub use iam::SdkIam;
pub use sqs_queue::SqsQueue;

/// The onboard saga's ports on real AWS clients, built from one shared
/// [`aws_config::SdkConfig`]; `locks` is the saga store's lock table. Every port confirms
/// ambiguous answers (NotFound, Duplicate, IAM refusals while propagating) before a saga acts
/// on them ([`onboard_core::confirm`]).
pub fn onboard_ports(
    sdk: &aws_config::SdkConfig,
    connect_rate: ConnectRate,
    locks: std::sync::Arc<dyn onboard_core::locks::ResourceLocks>,
    clock: std::sync::Arc<dyn onboard_core::clock::Clock>,
) -> onboard_core::onboard::OnboardPorts {
    use onboard_core::confirm::{ConfirmPolicy, Confirming};
    use std::sync::Arc;
    let policy = ConfirmPolicy::default();
    let apps = SdkAppIntegrations::new(aws_sdk_appintegrations::Client::new(sdk));
    let connect = SdkConnect::new(aws_sdk_connect::Client::new(sdk), connect_rate);
    let iam = SdkIam::new(aws_sdk_iam::Client::new(sdk));
    onboard_core::onboard::OnboardPorts {
        apps: Arc::new(Confirming::new(Box::new(apps), clock.clone(), policy)),
        connect: Arc::new(Confirming::new(Box::new(connect), clock.clone(), policy)),
        iam: Arc::new(Confirming::new(Box::new(iam), clock.clone(), policy)),
        locks,
        clock,
    }
}
