//! Core of the Amazon Connect third-party application onboarding service.
//!
//! Holds the application spec and its validation, the saga engine and its persisted record, and
//! the narrow ports (traits) that adapters implement. No AWS SDK lives here: the layering is
//! functions/cli → adapters → core.

pub mod access;
pub mod asl;
pub mod clock;
pub mod confirm;
pub mod engine;
pub mod engine_step;
pub mod error;
pub mod history;
pub mod idempotency;
pub mod lifecycle;
pub mod locks;
pub mod onboard;
pub mod plan;
pub mod policy;
pub mod ports;
pub mod preflight;
pub mod problem;
pub mod record;
pub mod saga;
pub mod service;
pub mod spec;
pub mod store;
pub mod validation;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
