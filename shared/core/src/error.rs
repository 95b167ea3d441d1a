//! Error classification shared by ports and the saga engine.
//!
//! Adapters map each service error to an [`ErrorKind`]; the engine only looks at
//! [`ErrorKind::is_retryable`] to choose between backoff and rollback. The service's own code and
//! message are kept so the record says exactly what AWS said.

use serde::{Deserialize, Serialize};

/// What kind of failure a port call had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorKind {
    /// Throttling / rate exceeded (HTTP 429 or a throttling code).
    Throttled,
    /// A 5xx or service-internal error.
    ServerError,
    /// A request that timed out or a dropped connection.
    Timeout,
    /// IAM or another eventually consistent service has not caught up yet.
    NotYetConsistent,
    /// Another saga holds the lock on a shared resource (an SLR policy, a security profile).
    Locked,
    /// The request is invalid; retrying will not help.
    Invalid,
    /// The caller lacks permission.
    Denied,
    /// A conflicting resource or concurrent change (e.g. namespace taken by someone else).
    Conflict,
    /// A service quota or a size budget (e.g. the 10,240-character inline policy budget).
    QuotaExceeded,
    /// The resource does not exist.
    NotFound,
    /// Retries ran out inside the step's budget.
    BudgetExhausted,
    /// Anything an adapter could not classify; treated as terminal.
    Other,
}

impl ErrorKind {
    /// Retryable errors are retried with backoff; everything else ends the step.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Throttled
                | ErrorKind::ServerError
                | ErrorKind::Timeout
                | ErrorKind::NotYetConsistent
                | ErrorKind::Locked
        )
    }
}

/// A classified error as the record keeps it: what failed, why, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{kind:?} {code}: {message}")]
pub struct ErrorInfo {
    pub kind: ErrorKind,
    /// The service's error code (e.g. `DuplicateResourceException`) or our own.
    pub code: String,
    pub message: String,
    /// What an operator should do about it, when we know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl ErrorInfo {
    pub fn new(kind: ErrorKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorInfo {
            kind,
            code: code.into(),
            message: message.into(),
            fix: None,
        }
    }

    /// Attach the action that fixes it.
    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

/// What a step action or undo returns on failure.
pub type StepError = ErrorInfo;
