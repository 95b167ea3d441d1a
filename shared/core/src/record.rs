//! The persisted saga record: status, lease, per-node states and the append-only log.
//!
//! One record per saga; every change bumps `version` and is written with a condition on the
//! previous version, so two workers can never both advance one saga.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ErrorInfo;
use crate::lifecycle::{DriftCheckFailure, DriftReport, ManagedApp};

/// Milliseconds since the Unix epoch; every timestamp in a record uses it.
pub use crate::clock::Millis;

/// Overall state of a saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SagaStatus {
    /// Recorded, no step started yet.
    Pending,
    /// Running actions forward.
    Running,
    /// A terminal failure happened; undoing completed steps in reverse order.
    RollingBack,
    /// Every action succeeded.
    Succeeded,
    /// Every touched resource was undone; `cause` says why.
    RolledBack,
    /// Refused before any side effect: a step that changes nothing (preflight) failed
    /// terminally before any step that changes something started. `cause` carries every
    /// finding and its fix; nothing was done, so there was nothing to roll back.
    Refused,
    /// An undo failed; resources may remain; needs an operator and a re-drive.
    RollbackFailed,
    /// A saga that recovers forward (offboard) hit a failure it cannot retry: `cause` names
    /// what remains; an operator fixes it and re-drives, which resumes forward.
    NeedsAttention,
}

impl SagaStatus {
    pub const ALL: [SagaStatus; 8] = [
        SagaStatus::Pending,
        SagaStatus::Running,
        SagaStatus::RollingBack,
        SagaStatus::Succeeded,
        SagaStatus::RolledBack,
        SagaStatus::Refused,
        SagaStatus::RollbackFailed,
        SagaStatus::NeedsAttention,
    ];

    /// The wire name, e.g. `ROLLBACK_FAILED`.
    pub fn as_str(self) -> &'static str {
        match self {
            SagaStatus::Pending => "PENDING",
            SagaStatus::Running => "RUNNING",
            SagaStatus::RollingBack => "ROLLING_BACK",
            SagaStatus::Succeeded => "SUCCEEDED",
            SagaStatus::RolledBack => "ROLLED_BACK",
            SagaStatus::Refused => "REFUSED",
            SagaStatus::RollbackFailed => "ROLLBACK_FAILED",
            SagaStatus::NeedsAttention => "NEEDS_ATTENTION",
        }
    }

    pub fn parse(s: &str) -> Option<SagaStatus> {
        SagaStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Finished for good: nothing more will happen without a new saga.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            SagaStatus::Succeeded | SagaStatus::RolledBack | SagaStatus::Refused
        )
    }

    /// Stopped until an operator re-drives it (ROLLBACK_FAILED or NEEDS_ATTENTION).
    pub fn is_redrivable(self) -> bool {
        matches!(
            self,
            SagaStatus::RollbackFailed | SagaStatus::NeedsAttention
        )
    }

    /// Holds its namespace: an active or ROLLBACK_FAILED saga blocks other sagas on the same
    /// namespace, because its resources may still exist. A REFUSED saga touched nothing, so
    /// it releases the namespace like a ROLLED_BACK one.
    pub fn holds_namespace(self) -> bool {
        !self.is_finished()
    }

    /// An engine may pick it up and make progress.
    pub fn is_runnable(self) -> bool {
        matches!(
            self,
            SagaStatus::Pending | SagaStatus::Running | SagaStatus::RollingBack
        )
    }
}

impl std::fmt::Display for SagaStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of one node (a step, or one fan-out branch of a step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeState {
    Pending,
    /// Written before the action's side effect; on resume the action runs again.
    Started,
    Succeeded,
    /// The action failed terminally; it may still have had an effect, so it is undone too.
    Failed,
    /// Written before the undo's side effect; on resume the undo runs again.
    UndoStarted,
    Undone,
    UndoFailed,
    /// Not undone because an undo of a later step failed first; a re-drive undoes it.
    UndoBlocked,
}

impl NodeState {
    /// Whether the node's action may have touched the world, so rollback must undo it.
    pub fn needs_undo(self) -> bool {
        matches!(
            self,
            NodeState::Started
                | NodeState::Succeeded
                | NodeState::Failed
                | NodeState::UndoStarted
                | NodeState::UndoFailed
                | NodeState::UndoBlocked
        )
    }
}

/// One node of a saga: a step, or one target of a fan-out step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    pub step: String,
    /// The fan-out target (an instance id) or `None` for a step that runs once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub state: NodeState,
    /// Action attempts made, across resumes.
    #[serde(default)]
    pub attempts: u32,
    /// Undo attempts made, across resumes.
    #[serde(default)]
    pub undo_attempts: u32,
    /// What the action produced (ARNs, ids); kept for the undo and for status pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Why the action failed; kept after a successful undo so the record shows what happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// Why the undo failed (cleared when a re-drive undoes the node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo_error: Option<ErrorInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Millis>,
}

impl NodeRecord {
    /// `step` or `step[target]`: the node's name in logs and errors.
    pub fn key(&self) -> String {
        node_key(&self.step, self.target.as_deref())
    }
}

/// `step` or `step[target]`.
pub fn node_key(step: &str, target: Option<&str>) -> String {
    match target {
        Some(t) => format!("{step}[{t}]"),
        None => step.to_string(),
    }
}

/// One line of the saga's append-only history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    pub at: Millis,
    /// `step` or `step[target]`, or `saga` for saga-level events.
    pub node: String,
    /// e.g. `started`, `succeeded`, `failed`, `retry`, `undo_started`, `undone`, `undo_failed`,
    /// `undo_blocked`, `lease_taken`, `rollback_started`, `refused`, `redriven`.
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The worker that wrote it.
    pub owner: String,
}

/// Who holds the saga and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    pub owner: String,
    pub expires_at: Millis,
}

/// The whole persisted state of one saga.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SagaRecord {
    pub id: String,
    /// The saga definition's name, e.g. `onboard`.
    pub kind: String,
    /// The AppIntegrations namespace the saga works on; one active saga per namespace.
    pub namespace: String,
    pub status: SagaStatus,
    /// Bumped on every write; writes are conditional on the previous value.
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// The request the saga carries out (e.g. the application spec), as submitted.
    pub input: Value,
    /// Fan-out targets (instance ids), fixed at creation.
    #[serde(default)]
    pub targets: Vec<String>,
    pub nodes: Vec<NodeRecord>,
    #[serde(default)]
    pub log: Vec<LogEntry>,
    /// Why the saga rolled back, was refused or needs attention (the first terminal action
    /// error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<ErrorInfo>,
    /// Why the rollback failed (the first undo error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo_error: Option<ErrorInfo>,
    /// The idempotency key it was submitted under, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Hash of the submitted payload, to tell a repeat from a different request under one key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_hash: Option<String>,
    /// On an application's root saga (onboard, adopt): the application as managed now, written
    /// by every lifecycle saga that finished; `None` while the root's own result is current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedApp>,
    /// On an application's root saga: what the last drift check found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftReport>,
    /// On an application's root saga: the last drift check, when it could not finish (cleared
    /// by the next one that does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_failure: Option<DriftCheckFailure>,
    /// On a lifecycle saga (edit, pause, resume, fix, offboard): the application's root saga.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl SagaRecord {
    /// The lease's expiry, or 0 when nobody holds it (used by the reconciler's query).
    pub fn lease_expires_at(&self) -> Millis {
        self.lease.as_ref().map_or(0, |l| l.expires_at)
    }

    /// When a drift check last ran on this application, finished or not (0 = never): the
    /// reconciler checks the least recently attempted first.
    pub fn drift_attempted_at(&self) -> Millis {
        let checked = self.drift.as_ref().map_or(0, |d| d.checked_at);
        let failed = self.drift_failure.as_ref().map_or(0, |f| f.at);
        checked.max(failed)
    }

    /// The node for `step` and `target`, if the saga has one.
    pub fn node(&self, step: &str, target: Option<&str>) -> Option<&NodeRecord> {
        self.nodes
            .iter()
            .find(|n| n.step == step && n.target.as_deref() == target)
    }

    /// The output of a step that runs once (e.g. the created application's ARN).
    pub fn output_of(&self, step: &str) -> Option<&Value> {
        self.node(step, None).and_then(|n| n.output.as_ref())
    }
}
