//! Day-two operations on an onboarded application, each a saga on the same engine:
//!
//! * [`change`]: edit (fields, instance set, profiles), pause / resume on one instance, and the
//!   drift fix — one definition whose nodes converge each aspect from a `before` to an `after`
//!   state, so the undo of every node is the same convergence towards `before`.
//! * [`offboard`]: remove grants, statements, every association (also ones made outside this
//!   product) and the application; recovers forward.
//! * [`adopt`]: bring an application created elsewhere (the console) under management.
//! * [`drift`]: compare the managed state with AWS (read-only).
//!
//! The application's *root* saga (its onboard or adopt saga) is the application's identity in
//! the API (`/applications/{id}`); its record carries the current [`ManagedApp`] once a
//! lifecycle saga changed it.

pub mod adopt;
pub mod change;
pub mod drift;
pub mod offboard;
pub mod service;
pub mod state;

use std::sync::Arc;

use crate::error::{ErrorInfo, ErrorKind};
use crate::onboard::OnboardPorts;
use crate::store::{SagaStore, StoreError};

pub use drift::{DriftCheckFailure, DriftItem, DriftKind, DriftReport};
pub use state::{current_state, ManagedApp, StateError};

/// What lifecycle steps call: the AWS ports of the onboard saga plus the saga store, to write
/// the application's new state into its root record.
pub struct LifecyclePorts {
    pub aws: Arc<OnboardPorts>,
    pub store: Arc<dyn SagaStore>,
}

/// Every lifecycle saga definition (change, offboard, adopt): the step handler and the Step
/// Functions export take their kinds from here, so a new kind is one line.
pub fn definitions(instance_concurrency: usize) -> Vec<crate::saga::SagaDef<LifecyclePorts>> {
    vec![
        change::definition(instance_concurrency),
        change::fix_definition(instance_concurrency),
        offboard::definition(),
        adopt::definition(),
    ]
}

/// A store failure inside a step: version races and backend hiccups are retried, the rest ends
/// the step.
pub(crate) fn store_error(e: StoreError) -> ErrorInfo {
    let kind = match &e {
        StoreError::VersionConflict { .. } | StoreError::Backend(_) => ErrorKind::ServerError,
        StoreError::NotFound { .. } => ErrorKind::NotFound,
        _ => ErrorKind::Other,
    };
    ErrorInfo::new(kind, "SagaStoreError", e.to_string())
}
