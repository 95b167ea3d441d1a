//! What the onboarding Lambda functions share, so each `main` stays a few lines:
//!
//! * [`clients`]: the AWS clients, built once at init;
//! * [`env`]: configuration from environment variables, failing fast with a message that names
//!   the missing or malformed variable;
//! * [`logging`]: JSON logs through `tracing-subscriber`, with the fields of every enclosing span
//!   (Lambda request id, saga id, namespace, ticket id) on every line;
//! * [`emf`]: CloudWatch embedded-metric-format lines on stdout;
//! * [`saga_metrics`]: the saga metrics (started, succeeded, rolled back, rollback failed, step
//!   latency, retries) derived from a saga record after a run.

pub mod clients;
pub mod emf;
pub mod env;
pub mod logging;
pub mod saga_metrics;

pub use emf::{Emf, Metric, Unit};
pub use env::{ConfigError, Env};
