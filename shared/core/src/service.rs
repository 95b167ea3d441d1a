//! The use cases every entry point shares (HTTP API, SQS worker, CLI): submit a spec, read a
//! saga's status, list sagas, and run a queued saga. Entry points stay thin: they parse their
//! event, call one of these, and render the result.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::Clock;
use crate::engine::{Engine, EngineError, RunOutcome};
use crate::error::{ErrorInfo, ErrorKind};
use crate::idempotency::{self, IdempotencyConfig, SubmitError};
use crate::onboard::{self, OnboardPorts};
use crate::record::{LogEntry, Millis, NodeRecord, NodeState, SagaRecord, SagaStatus};
use crate::saga::SagaDef;
use crate::spec::ApplicationSpec;
use crate::store::{SagaStore, StoreError};
use crate::validation::{Problem, ValidationErrors};

/// What a queue message carries: which saga to run. Typed so producers and the worker agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunSagaMessage {
    pub saga_id: String,
    /// FIFO message group: one namespace's sagas run in order.
    pub namespace: String,
    /// `run` for a new or resumed saga, `redrive` after an operator fixed a ROLLBACK_FAILED one.
    #[serde(default)]
    pub action: RunAction,
}

/// What the worker should do with a saga.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunAction {
    #[default]
    Run,
    Redrive,
}

/// Where accepted sagas go to be run (SQS in AWS, a channel in `onboard serve`).
#[async_trait::async_trait]
pub trait SagaQueue: Send + Sync {
    async fn enqueue(&self, message: &RunSagaMessage) -> Result<(), ErrorInfo>;
}

/// A submission's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    pub saga_id: String,
    pub namespace: String,
    /// False when an earlier submission with the same key already created this saga.
    pub created: bool,
    /// Non-blocking findings (unknown permission names and the like).
    pub warnings: Vec<Problem>,
}

/// Why a submission was refused. Each variant maps to one HTTP status and CLI exit code.
#[derive(Debug, thiserror::Error)]
pub enum SubmitFailure {
    #[error("the spec is invalid:\n{0}")]
    Invalid(ValidationErrors),
    #[error(transparent)]
    Refused(SubmitError),
    /// The saga was recorded but could not be queued; it stays PENDING and the reconciler
    /// (or a retried submission) queues it again.
    #[error("saga {saga_id} was recorded but not queued: {error}")]
    NotQueued { saga_id: String, error: ErrorInfo },
}

/// Why a re-drive was refused.
#[derive(Debug, thiserror::Error)]
pub enum RedriveFailure {
    #[error("saga {0} does not exist")]
    NotFound(String),
    #[error(
        "saga {id} is {status}; only a ROLLBACK_FAILED or NEEDS_ATTENTION saga can be re-driven"
    )]
    NotRedrivable { id: String, status: SagaStatus },
    #[error("the re-drive could not be queued: {0}")]
    NotQueued(ErrorInfo),
    #[error(transparent)]
    Store(StoreError),
}

/// The submit / status / run use cases over one store and queue.
pub struct Onboarding {
    pub store: Arc<dyn SagaStore>,
    pub clock: Arc<dyn Clock>,
    pub queue: Arc<dyn SagaQueue>,
    pub definition: Arc<SagaDef<OnboardPorts>>,
    pub idempotency: IdempotencyConfig,
}

impl Onboarding {
    /// Validate `spec`, record a PENDING onboard saga exactly once per `key` (or, for a
    /// ticket-sourced spec without one, per [`idempotency::ticket_key`] of its ticket id), and
    /// queue it. A portal or CLI spec's `requester.ticketId` is only a reference, never a key:
    /// otherwise a portal user could claim the key of a ticket not yet approved.
    pub async fn submit(
        &self,
        spec: &ApplicationSpec,
        key: Option<&str>,
        new_id: impl FnOnce() -> String,
    ) -> Result<Accepted, SubmitFailure> {
        let validated = spec.validate().map_err(SubmitFailure::Invalid)?;
        let new = onboard::new_saga(new_id(), &validated).map_err(|e| {
            SubmitFailure::Invalid(ValidationErrors::new(vec![Problem::new(
                "$",
                e.message,
                "Submit a valid spec.",
            )]))
        })?;
        let record = self.definition.new_record(new, self.clock.now());
        let ticket_key = spec
            .requester
            .ticket_id
            .as_deref()
            .filter(|_| spec.requester.source == crate::spec::RequestSource::Ticket)
            .map(|t| idempotency::ticket_key(idempotency::SPEC_TICKETS, t));
        let key = key.map(str::to_string).or(ticket_key);
        let submitted = idempotency::submit(
            self.store.as_ref(),
            self.clock.as_ref(),
            &self.idempotency,
            record,
            key.as_deref(),
            &spec.payload_hash(),
        )
        .await
        .map_err(SubmitFailure::Refused)?;
        let message = RunSagaMessage {
            saga_id: submitted.saga_id.clone(),
            namespace: validated.namespace.clone(),
            action: RunAction::Run,
        };
        // Every accepted submission is queued, repeats included: running a running or finished
        // saga is a no-op, and a repeat recovers a first submission whose enqueue failed.
        if let Err(error) = self.queue.enqueue(&message).await {
            return Err(SubmitFailure::NotQueued {
                saga_id: submitted.saga_id,
                error,
            });
        }
        Ok(Accepted {
            saga_id: submitted.saga_id,
            namespace: validated.namespace,
            created: submitted.created,
            warnings: validated.warnings,
        })
    }

    /// Queue a re-drive of a ROLLBACK_FAILED saga after the operator fixed the cause.
    pub async fn redrive(&self, id: &str) -> Result<RunSagaMessage, RedriveFailure> {
        self.redrive_by(id, "").await
    }

    /// [`Self::redrive`], recording who asked (and by which rule) in the saga's log first, so
    /// the record says who re-drove it. An empty `by` records nothing.
    pub async fn redrive_by(&self, id: &str, by: &str) -> Result<RunSagaMessage, RedriveFailure> {
        let mut record = self
            .store
            .get(id)
            .await
            .map_err(RedriveFailure::Store)?
            .ok_or_else(|| RedriveFailure::NotFound(id.to_string()))?;
        if !record.status.is_redrivable() {
            return Err(RedriveFailure::NotRedrivable {
                id: id.to_string(),
                status: record.status,
            });
        }
        if !by.is_empty() {
            // A terminal saga has no lease holder; the version condition refuses a record that
            // changed since it was read (then the caller retries).
            let expected = record.version;
            record.version += 1;
            let now = self.clock.now();
            record.updated_at = now;
            record.log.push(crate::record::LogEntry {
                at: now,
                node: "saga".into(),
                event: "redrive_requested".into(),
                detail: Some(by.to_string()),
                owner: "api".into(),
            });
            self.store
                .update(&record, expected)
                .await
                .map_err(RedriveFailure::Store)?;
        }
        let message = RunSagaMessage {
            saga_id: record.id,
            namespace: record.namespace,
            action: RunAction::Redrive,
        };
        self.queue
            .enqueue(&message)
            .await
            .map_err(RedriveFailure::NotQueued)?;
        Ok(message)
    }

    /// A saga's status page.
    pub async fn status(&self, id: &str) -> Result<Option<SagaView>, StoreError> {
        Ok(self.store.get(id).await?.map(|r| SagaView::from_record(&r)))
    }
}

/// Run (or re-drive) the saga a message names. A saga that is finished or held by another
/// worker is a successful no-op: redelivery must not fail the batch.
pub async fn run_message(
    engine: &Engine<OnboardPorts>,
    message: &RunSagaMessage,
) -> Result<RunOutcome, EngineError> {
    match message.action {
        RunAction::Run => engine.run(&message.saga_id).await,
        RunAction::Redrive => engine.redrive(&message.saga_id).await,
    }
}

/// One node on the status page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepView {
    pub step: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub state: NodeState,
    pub attempts: u32,
    pub undo_attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undo_error: Option<ErrorInfo>,
}

impl From<&NodeRecord> for StepView {
    fn from(n: &NodeRecord) -> Self {
        StepView {
            step: n.step.clone(),
            instance: n.target.clone(),
            state: n.state,
            attempts: n.attempts,
            undo_attempts: n.undo_attempts,
            started_at: n.started_at,
            finished_at: n.finished_at,
            output: n.output.clone(),
            error: n.error.clone(),
            undo_error: n.undo_error.clone(),
        }
    }
}

/// The resources a saga created, as far as the record knows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_arn: Option<String>,
    /// Instance id → association ARN.
    pub associations: std::collections::BTreeMap<String, String>,
}

/// What `GET /applications/{id}` and `onboard status` show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SagaView {
    pub id: String,
    pub kind: String,
    pub namespace: String,
    pub status: SagaStatus,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub steps: Vec<StepView>,
    pub resources: Resources,
    /// The error that made the saga roll back or refused it (or the undo error when the
    /// rollback failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<ErrorInfo>,
    /// What the operator should do next, when anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_action: Option<String>,
    /// For an application's root saga: the application as managed now (after every edit,
    /// pause, resume and fix); absent while onboarding or after a rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<crate::lifecycle::ManagedApp>,
    /// For an application's root saga: the last drift check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<crate::lifecycle::DriftReport>,
    /// For an application's root saga: the last drift check, when it could not finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_failure: Option<crate::lifecycle::DriftCheckFailure>,
    /// For a lifecycle saga: the application it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub log: Vec<LogEntry>,
}

impl SagaView {
    pub fn from_record(r: &SagaRecord) -> Self {
        let mut resources = Resources {
            application_arn: r
                .output_of("create_application")
                .and_then(|o| o.get("arn"))
                .and_then(Value::as_str)
                .map(str::to_string),
            ..Resources::default()
        };
        for n in r.nodes.iter().filter(|n| n.step == "associate") {
            let live = matches!(
                n.state,
                NodeState::Succeeded | NodeState::UndoFailed | NodeState::UndoBlocked
            );
            if let (true, Some(t), Some(arn)) = (
                live,
                n.target.as_ref(),
                n.output
                    .as_ref()
                    .and_then(|o| o.get("arn"))
                    .and_then(Value::as_str),
            ) {
                resources.associations.insert(t.clone(), arn.to_string());
            }
        }
        if let Some(m) = &r.managed {
            // Changed since onboarding: never show an association a pause, an edit or the
            // offboarding removed (ones a later change made are in that change's record).
            resources.application_arn = (!m.offboarded).then(|| m.app.arn.clone());
            resources
                .associations
                .retain(|instance, _| m.is_active(instance));
        }
        let last_error = r.undo_error.clone().or_else(|| r.cause.clone());
        let next_action = match r.status {
            SagaStatus::RollbackFailed => Some(format!(
                "{} Then re-drive the rollback: POST /applications/{}/retry or `onboard retry {}`.",
                last_error
                    .as_ref()
                    .and_then(|e| e.fix.clone())
                    .unwrap_or_else(|| "Fix the cause shown in lastError.".into()),
                r.id,
                r.id
            )),
            SagaStatus::NeedsAttention => Some(format!(
                "{} Then re-drive it to carry on: POST /applications/{}/retry or `onboard retry {}`.",
                last_error
                    .as_ref()
                    .and_then(|e| e.fix.clone())
                    .unwrap_or_else(|| "Remove the resources lastError lists.".into()),
                r.id,
                r.id
            )),
            SagaStatus::RolledBack => last_error
                .as_ref()
                .and_then(|e| e.fix.clone())
                .map(|fix| format!("{fix} Then submit the request again.")),
            // Nothing was changed; the namespace is free for the corrected request.
            SagaStatus::Refused => Some(format!(
                "Nothing was changed. {} Then submit the corrected request again.",
                last_error
                    .as_ref()
                    .and_then(|e| e.fix.clone())
                    .unwrap_or_else(|| "Fix what lastError lists.".into())
            )),
            _ => None,
        };
        SagaView {
            id: r.id.clone(),
            kind: r.kind.clone(),
            namespace: r.namespace.clone(),
            status: r.status,
            created_at: r.created_at,
            updated_at: r.updated_at,
            steps: r.nodes.iter().map(StepView::from).collect(),
            resources,
            last_error,
            next_action,
            application: crate::lifecycle::current_state(r)
                .ok()
                .or_else(|| r.managed.clone().filter(|m| m.offboarded)),
            drift: r.drift.clone(),
            drift_failure: r.drift_failure.clone(),
            parent: r.parent.clone(),
            log: r.log.clone(),
        }
    }
}

/// A queue that drops messages, for tools that run the saga themselves right after submitting
/// (the CLI's `apply`).
pub struct NoQueue;

#[async_trait::async_trait]
impl SagaQueue for NoQueue {
    async fn enqueue(&self, _: &RunSagaMessage) -> Result<(), ErrorInfo> {
        Ok(())
    }
}

/// The classified error for a queue failure, used by queue adapters.
pub fn queue_error(code: &str, message: impl Into<String>) -> ErrorInfo {
    ErrorInfo::new(ErrorKind::ServerError, code, message)
}
