//! AWS adapters for `onboard-core`: implementations of the core's ports on the aws-sdk crates.
//!
//! The core holds no AWS SDK; everything that talks to AWS lives here so the functions and the
//! CLI can build clients once at init and hand them to the core. Tests drive these same clients
//! over HTTP against local emulators (moto), never against AWS.

pub mod config;
pub mod dynamodb_store;

pub use config::sdk_config;
pub use dynamodb_store::{create_table, DynamoSagaStore};
