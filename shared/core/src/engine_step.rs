//! One saga node per call, for an external orchestrator (Step Functions, see [`crate::asl`]).
//!
//! [`StepRunner`] keeps the engine's record discipline while the state machine decides the
//! order: the saga's lease belongs to the execution (`owner` = the execution id), every write
//! is conditional on the record's version and renews the lease, a node is marked STARTED /
//! UNDO_STARTED before its side effect and SUCCEEDED / FAILED / UNDONE / UNDO_FAILED after it,
//! and the end states are the engine's (SUCCEEDED, ROLLED_BACK, REFUSED, ROLLBACK_FAILED with
//! earlier nodes UNDO_BLOCKED, NEEDS_ATTENTION). Fan-out branches run as parallel invocations that write the same
//! record, so a version conflict under our own lease is a sibling's write: reload and re-apply.
//!
//! Retries belong to the state machine (its Retry mirrors the step's [`RetryPolicy`]); a
//! retryable error comes back as [`StepFailure::Retryable`] until the step's attempts or time
//! budget are spent, then it is recorded as a terminal `BudgetExhausted`, as the engine does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::asl;
use crate::clock::Clock;
use crate::engine::EngineConfig;
use crate::error::{ErrorInfo, ErrorKind};
use crate::lifecycle::{self, LifecyclePorts};
use crate::onboard::{self, OnboardConfig, OnboardPorts};
use crate::record::{Lease, LogEntry, NodeState, SagaRecord, SagaStatus};
use crate::saga::{NodeCtx, Recovery, RetryPolicy, SagaDef};
use crate::store::{SagaStore, StoreError};

/// How often a write lost to a sibling branch's write is re-applied.
const CONFLICT_ATTEMPTS: u32 = 20;

/// One call of the step handler (the Task payload the exported state machine sends).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRequest {
    /// `kind`, `begin`, `action`, `undo` or `finish` ([`asl::op`]).
    pub op: String,
    /// The saga kind whose runner handles the call (every Task of the exported machine names
    /// it); absent means `onboard`, the only kind of the first exported machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub saga_id: String,
    /// The execution that holds the saga's lease.
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `begin`: `run` or `redrive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// `finish`: `succeeded`, `rolled_back`, `refused`, `rollback_failed` or
    /// `needs_attention` ([`asl::outcome`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

/// What `begin` answers: where the state machine goes next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BeginResponse {
    /// `RUNNING` or `ROLLING_BACK` (ours to drive), `FINISHED` or `BUSY` (nothing to do).
    pub status: String,
    pub targets: Vec<String>,
}

/// Why a call did not succeed; [`StepFailure::error_name`] is the error the state machine
/// sees.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepFailure {
    #[error("retryable: {0}")]
    Retryable(ErrorInfo),
    #[error("terminal: {0}")]
    Terminal(ErrorInfo),
    #[error("lease lost on saga {0}: another worker or execution advanced it")]
    LeaseLost(String),
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl StepFailure {
    /// The ASL error name ([`asl::ERROR_RETRYABLE`] …).
    pub fn error_name(&self) -> &'static str {
        match self {
            StepFailure::Retryable(_) => asl::ERROR_RETRYABLE,
            StepFailure::Terminal(_) => asl::ERROR_TERMINAL,
            StepFailure::LeaseLost(_) => asl::ERROR_LEASE_LOST,
            StepFailure::Invalid(_) => asl::ERROR_INVALID,
        }
    }
}

fn store_failure(id: &str, e: StoreError) -> StepFailure {
    match e {
        StoreError::VersionConflict { .. } => StepFailure::LeaseLost(id.to_string()),
        StoreError::NotFound { .. } => StepFailure::Invalid(format!("saga {id} not found")),
        StoreError::Invalid(m) | StoreError::Corrupt(m) => {
            StepFailure::Terminal(ErrorInfo::new(ErrorKind::Other, "SagaStoreRefused", m))
        }
        other => StepFailure::Retryable(ErrorInfo::new(
            ErrorKind::ServerError,
            "SagaStoreUnavailable",
            other.to_string(),
        )),
    }
}

/// Handles one step request: a runner of one saga kind, or [`StepRunners`] for all of them.
/// The Lambda handler is generic over this, so tests drive it without AWS.
#[async_trait::async_trait]
pub trait RunsSteps: Send + Sync {
    async fn handle(&self, req: &StepRequest) -> Result<Value, StepFailure>;
}

/// What the combined state machine's first Task learns: which kind's states to enter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindResponse {
    pub kind: String,
}

/// Step runners for every saga kind, so one state machine and one step handler run whatever
/// the queue names (onboard, and [`crate::lifecycle::definitions`]).
pub struct StepRunners {
    onboard: StepRunner<OnboardPorts>,
    lifecycle: BTreeMap<&'static str, StepRunner<LifecyclePorts>>,
    store: Arc<dyn SagaStore>,
}

impl StepRunners {
    pub fn new(
        aws: Arc<OnboardPorts>,
        store: Arc<dyn SagaStore>,
        clock: Arc<dyn Clock>,
        onboard_config: &OnboardConfig,
        config: EngineConfig,
    ) -> Self {
        let ctx = Arc::new(LifecyclePorts {
            aws: aws.clone(),
            store: store.clone(),
        });
        let lifecycle = lifecycle::definitions(onboard_config.instance_concurrency)
            .into_iter()
            .map(|def| {
                let runner = StepRunner::new(
                    Arc::new(def),
                    ctx.clone(),
                    store.clone(),
                    clock.clone(),
                    config.clone(),
                );
                (runner.def.kind, runner)
            })
            .collect();
        StepRunners {
            onboard: StepRunner::new(
                Arc::new(onboard::definition(onboard_config)),
                aws,
                store.clone(),
                clock,
                config,
            ),
            lifecycle,
            store,
        }
    }

    /// The kind of saga `id` (the combined machine routes on it).
    pub async fn kind_of(&self, id: &str) -> Result<KindResponse, StepFailure> {
        let record = self
            .store
            .get(id)
            .await
            .map_err(|e| store_failure(id, e))?
            .ok_or_else(|| StepFailure::Invalid(format!("saga {id} not found")))?;
        Ok(KindResponse { kind: record.kind })
    }
}

#[async_trait::async_trait]
impl RunsSteps for StepRunners {
    async fn handle(&self, req: &StepRequest) -> Result<Value, StepFailure> {
        if req.op == asl::op::KIND {
            let answer = self.kind_of(&req.saga_id).await?;
            return serde_json::to_value(answer).map_err(|e| StepFailure::Invalid(e.to_string()));
        }
        let kind = req.kind.as_deref().unwrap_or(onboard::KIND);
        if kind == onboard::KIND {
            return self.onboard.handle(req).await;
        }
        match self.lifecycle.get(kind) {
            Some(runner) => runner.handle(req).await,
            None => Err(StepFailure::Invalid(format!(
                "no saga kind {kind:?}; this handler runs {} and {}",
                onboard::KIND,
                self.lifecycle
                    .keys()
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

#[async_trait::async_trait]
impl<C: ?Sized + Send + Sync + 'static> RunsSteps for StepRunner<C> {
    async fn handle(&self, req: &StepRequest) -> Result<Value, StepFailure> {
        StepRunner::handle(self, req).await
    }
}

/// Which direction a node runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Forward,
    Undo,
}

/// Runs single nodes of sagas of one definition over the ports `C`.
pub struct StepRunner<C: ?Sized + Send + Sync> {
    def: Arc<SagaDef<C>>,
    ctx: Arc<C>,
    store: Arc<dyn SagaStore>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
}

fn log(r: &mut SagaRecord, at: u64, node: &str, event: &str, detail: Option<String>, owner: &str) {
    r.log.push(LogEntry {
        at,
        node: node.to_string(),
        event: event.to_string(),
        detail,
        owner: owner.to_string(),
    });
}

impl<C: ?Sized + Send + Sync + 'static> StepRunner<C> {
    pub fn new(
        def: Arc<SagaDef<C>>,
        ctx: Arc<C>,
        store: Arc<dyn SagaStore>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Self {
        StepRunner {
            def,
            ctx,
            store,
            clock,
            config,
        }
    }

    /// Handle one Task payload.
    pub async fn handle(&self, req: &StepRequest) -> Result<Value, StepFailure> {
        let encode = |v: BeginResponse| {
            serde_json::to_value(v).map_err(|e| StepFailure::Invalid(e.to_string()))
        };
        match req.op.as_str() {
            asl::op::BEGIN => {
                let redrive = req.action.as_deref() == Some("redrive");
                encode(self.begin(&req.saga_id, &req.owner, redrive).await?)
            }
            asl::op::ACTION | asl::op::UNDO => {
                let step = req
                    .step
                    .as_deref()
                    .ok_or_else(|| StepFailure::Invalid("a node request needs a step".into()))?;
                let phase = if req.op == asl::op::ACTION {
                    Phase::Forward
                } else {
                    Phase::Undo
                };
                self.node(&req.saga_id, &req.owner, step, req.target.as_deref(), phase)
                    .await
            }
            asl::op::FINISH => {
                let outcome = req.outcome.as_deref().unwrap_or_default();
                self.finish(&req.saga_id, &req.owner, outcome).await?;
                Ok(Value::Null)
            }
            other => Err(StepFailure::Invalid(format!("unknown op {other:?}"))),
        }
    }

    async fn load(&self, id: &str) -> Result<SagaRecord, StepFailure> {
        let record = self
            .store
            .get(id)
            .await
            .map_err(|e| store_failure(id, e))?
            .ok_or_else(|| StepFailure::Invalid(format!("saga {id} not found")))?;
        if record.kind != self.def.kind {
            return Err(StepFailure::Invalid(format!(
                "saga {id} is a {} saga; this handler runs {} sagas",
                record.kind, self.def.kind
            )));
        }
        Ok(record)
    }

    /// Apply `change` to the latest record and write it conditionally on its version, renewing
    /// `owner`'s lease. A conflict while the lease is still ours is a sibling branch's write:
    /// reload and apply again. `take_over` lets `begin` take an absent or expired lease.
    async fn write<F>(
        &self,
        id: &str,
        owner: &str,
        take_over: bool,
        change: F,
    ) -> Result<SagaRecord, StepFailure>
    where
        F: Fn(&mut SagaRecord) -> Result<(), StepFailure>,
    {
        for attempt in 0..CONFLICT_ATTEMPTS {
            let current = self.load(id).await?;
            let now = self.clock.now();
            let ours = match &current.lease {
                Some(l) if l.owner == owner => true,
                Some(l) => take_over && l.expires_at <= now,
                None => take_over,
            };
            if !ours {
                return Err(StepFailure::LeaseLost(id.to_string()));
            }
            let mut next = current.clone();
            change(&mut next)?;
            next.version = current.version + 1;
            next.updated_at = now;
            next.lease = next.status.is_runnable().then(|| Lease {
                owner: owner.to_string(),
                expires_at: now.saturating_add(self.config.lease_ttl.as_millis() as u64),
            });
            let excess = next.log.len().saturating_sub(self.config.max_log_entries);
            if excess > 0 {
                next.log.drain(..excess);
            }
            match self.store.update(&next, current.version).await {
                Ok(()) => return Ok(next),
                Err(StoreError::VersionConflict { .. }) => {
                    self.clock
                        .sleep(Duration::from_millis(5 * u64::from(attempt + 1)))
                        .await;
                }
                Err(e) => return Err(store_failure(id, e)),
            }
        }
        Err(StepFailure::Retryable(ErrorInfo::new(
            ErrorKind::Locked,
            "SagaRecordContended",
            format!("saga {id} changed under every one of {CONFLICT_ATTEMPTS} writes"),
        )))
    }

    /// Take the lease (re-driving a ROLLBACK_FAILED saga when asked) and say where to go.
    pub async fn begin(
        &self,
        id: &str,
        owner: &str,
        redrive: bool,
    ) -> Result<BeginResponse, StepFailure> {
        let record = self.load(id).await?;
        let redrive = redrive && record.status.is_redrivable();
        if !redrive && !record.status.is_runnable() {
            return Ok(BeginResponse {
                status: "FINISHED".into(),
                targets: record.targets,
            });
        }
        let now = self.clock.now();
        let detail = record
            .lease
            .as_ref()
            .filter(|l| l.owner != owner)
            .map(|l| format!("took over from {} (lease expired)", l.owner));
        let taken = self
            .write(id, owner, true, |r| {
                if redrive && r.status == SagaStatus::NeedsAttention {
                    // Forward recovery: run the failed nodes again and carry on.
                    r.status = SagaStatus::Running;
                    r.cause = None;
                    for n in r.nodes.iter_mut().filter(|n| n.state == NodeState::Failed) {
                        n.state = NodeState::Pending;
                    }
                    log(r, now, "saga", "redriven", None, owner);
                } else if redrive {
                    r.status = SagaStatus::RollingBack;
                    r.undo_error = None;
                    log(r, now, "saga", "redriven", None, owner);
                }
                if r.status == SagaStatus::Pending {
                    r.status = SagaStatus::Running;
                }
                log(r, now, "saga", "lease_taken", detail.clone(), owner);
                Ok(())
            })
            .await;
        match taken {
            Ok(r) => Ok(BeginResponse {
                status: r.status.as_str().to_string(),
                targets: r.targets,
            }),
            Err(StepFailure::LeaseLost(_)) => Ok(BeginResponse {
                status: "BUSY".into(),
                targets: record.targets,
            }),
            Err(e) => Err(e),
        }
    }

    /// Run one node's action or undo once.
    async fn node(
        &self,
        id: &str,
        owner: &str,
        step_name: &str,
        target: Option<&str>,
        phase: Phase,
    ) -> Result<Value, StepFailure> {
        let step = self.def.step(step_name).ok_or_else(|| {
            StepFailure::Invalid(format!("no step {step_name} in {}", self.def.kind))
        })?;
        let record = self.load(id).await?;
        let idx = record
            .nodes
            .iter()
            .position(|n| n.step == step_name && n.target.as_deref() == target)
            .ok_or_else(|| {
                StepFailure::Invalid(format!(
                    "saga {id} has no node {step_name}[{}]",
                    target.unwrap_or("-")
                ))
            })?;
        let node = &record.nodes[idx];
        let key = node.key();
        let (policy, started): (&RetryPolicy, NodeState) = match phase {
            Phase::Forward => {
                if node.state == NodeState::Succeeded {
                    return Ok(node.output.clone().unwrap_or(Value::Null));
                }
                if node.state == NodeState::Failed {
                    return Err(StepFailure::Terminal(node.error.clone().unwrap_or_else(
                        || ErrorInfo::new(ErrorKind::Other, "Unknown", format!("{key} failed")),
                    )));
                }
                let failed = record.nodes.iter().any(|n| n.state == NodeState::Failed);
                if record.status != SagaStatus::Running || failed {
                    // A sibling failed (or the saga ended): start nothing new.
                    return Err(StepFailure::Terminal(ErrorInfo::new(
                        ErrorKind::Conflict,
                        "SagaNotRunning",
                        format!("saga {id} is {}; {key} was not started", record.status),
                    )));
                }
                (&step.retry, NodeState::Started)
            }
            Phase::Undo => {
                if !record.status.is_runnable() {
                    return Err(StepFailure::Terminal(ErrorInfo::new(
                        ErrorKind::Conflict,
                        "SagaNotRollingBack",
                        format!("saga {id} is {}; {key} was not undone", record.status),
                    )));
                }
                if !node.state.needs_undo() {
                    // Never started, or already undone: but the saga must be rolling back.
                    if record.status == SagaStatus::Running {
                        self.write(id, owner, false, |r| self.start_rollback(r, owner))
                            .await?;
                    }
                    return Ok(Value::Null);
                }
                (&step.undo_retry, NodeState::UndoStarted)
            }
        };

        // Before the side effect: mark the node started so a crash runs it again.
        let now = self.clock.now();
        let marked = self
            .write(id, owner, false, |r| {
                if phase == Phase::Undo && r.status == SagaStatus::Running {
                    self.start_rollback(r, owner)?;
                }
                let Some(n) = r.nodes.get_mut(idx) else {
                    return Err(StepFailure::Invalid(format!("node {key} vanished")));
                };
                let note = match phase {
                    Phase::Forward => {
                        let note = n.error.take().map(|e| {
                            format!("retry {} after {}: {}", n.attempts, e.code, e.message)
                        });
                        n.state = started;
                        n.attempts += 1;
                        n.started_at.get_or_insert(now);
                        note
                    }
                    Phase::Undo => {
                        let note = n.undo_error.take().filter(|_| n.state == started).map(|e| {
                            format!("retry {} after {}: {}", n.undo_attempts, e.code, e.message)
                        });
                        n.state = started;
                        n.undo_attempts += 1;
                        note
                    }
                };
                let event = if phase == Phase::Forward {
                    "started"
                } else {
                    "undo_started"
                };
                log(r, now, &key, event, note, owner);
                Ok(())
            })
            .await?;
        let (node_ctx, output) = node_ctx(&marked, idx, owner);
        let result = match phase {
            Phase::Forward => step.action.run(&self.ctx, &node_ctx).await,
            Phase::Undo => step
                .action
                .undo(&self.ctx, &node_ctx, output.as_ref())
                .await
                .map(|()| Value::Null),
        };
        let now = self.clock.now();
        match result {
            Ok(value) => {
                self.write(id, owner, false, |r| {
                    if let Some(n) = r.nodes.get_mut(idx) {
                        match phase {
                            Phase::Forward => {
                                n.state = NodeState::Succeeded;
                                n.error = None;
                                n.output = Some(value.clone());
                            }
                            Phase::Undo => {
                                n.state = NodeState::Undone;
                                n.undo_error = None;
                            }
                        }
                        n.finished_at = Some(now);
                    }
                    let event = if phase == Phase::Forward {
                        "succeeded"
                    } else {
                        "undone"
                    };
                    log(r, now, &key, event, None, owner);
                    Ok(())
                })
                .await?;
                Ok(value)
            }
            Err(err) => {
                let first_at = match phase {
                    Phase::Forward => marked.nodes[idx].started_at.unwrap_or(now),
                    Phase::Undo => first_undo_start(&marked, &key).unwrap_or(now),
                };
                let attempts = match phase {
                    Phase::Forward => marked.nodes[idx].attempts,
                    Phase::Undo => marked.nodes[idx].undo_attempts,
                };
                let elapsed = Duration::from_millis(now.saturating_sub(first_at));
                if err.is_retryable() && attempts < policy.max_attempts && elapsed < policy.budget {
                    // Kept on the node so the next attempt's STARTED line says why it retries.
                    self.write(id, owner, false, |r| {
                        if let Some(n) = r.nodes.get_mut(idx) {
                            match phase {
                                Phase::Forward => n.error = Some(err.clone()),
                                Phase::Undo => n.undo_error = Some(err.clone()),
                            }
                        }
                        Ok(())
                    })
                    .await?;
                    return Err(StepFailure::Retryable(err));
                }
                let final_err = if err.is_retryable() {
                    ErrorInfo {
                        kind: ErrorKind::BudgetExhausted,
                        message: format!(
                            "gave up after {attempts} attempts in {} ms: {}",
                            elapsed.as_millis(),
                            err.message
                        ),
                        ..err
                    }
                } else {
                    err
                };
                let detail = format!("{}: {}", final_err.code, final_err.message);
                self.write(id, owner, false, |r| {
                    if let Some(n) = r.nodes.get_mut(idx) {
                        match phase {
                            Phase::Forward => {
                                n.state = NodeState::Failed;
                                n.error = Some(final_err.clone());
                            }
                            Phase::Undo => {
                                n.state = NodeState::UndoFailed;
                                n.undo_error = Some(final_err.clone());
                            }
                        }
                        n.finished_at = Some(now);
                    }
                    let event = if phase == Phase::Forward {
                        "failed"
                    } else {
                        "undo_failed"
                    };
                    log(r, now, &key, event, Some(detail.clone()), owner);
                    let backward = self.def.recovery == Recovery::Backward;
                    // A refusal (nothing was changed) starts no rollback: the state machine
                    // goes on to `Record refused`.
                    if phase == Phase::Forward
                        && backward
                        && r.status == SagaStatus::Running
                        && !self.def.refuses(r)
                    {
                        r.status = SagaStatus::RollingBack;
                        r.cause = Some(final_err.clone());
                        log(
                            r,
                            now,
                            "saga",
                            "rollback_started",
                            Some(detail.clone()),
                            owner,
                        );
                    }
                    Ok(())
                })
                .await?;
                Err(StepFailure::Terminal(final_err))
            }
        }
    }

    /// RUNNING → ROLLING_BACK with the first failed node's error as the cause (the state
    /// machine reached the compensation without a recorded failure, e.g. after the Lambda
    /// service's retries ran out).
    fn start_rollback(&self, r: &mut SagaRecord, owner: &str) -> Result<(), StepFailure> {
        if r.status != SagaStatus::Running {
            return Ok(());
        }
        let cause = r
            .nodes
            .iter()
            .find(|n| n.state == NodeState::Failed)
            .and_then(|n| n.error.clone())
            .unwrap_or_else(|| {
                ErrorInfo::new(
                    ErrorKind::Other,
                    "OrchestratorRollback",
                    "the state machine started the rollback after a step could not complete",
                )
                .with_fix("See the Step Functions execution for the failed state's error.")
            });
        let detail = format!("{}: {}", cause.code, cause.message);
        r.status = SagaStatus::RollingBack;
        r.cause = Some(cause);
        log(
            r,
            self.clock.now(),
            "saga",
            "rollback_started",
            Some(detail),
            owner,
        );
        Ok(())
    }

    /// Record the end state the state machine reached.
    pub async fn finish(&self, id: &str, owner: &str, outcome: &str) -> Result<(), StepFailure> {
        let record = self.load(id).await?;
        let now = self.clock.now();
        let done = |s: SagaStatus| record.status == s && record.lease.is_none();
        match outcome {
            asl::outcome::SUCCEEDED => {
                if done(SagaStatus::Succeeded) {
                    return Ok(());
                }
                if let Some(n) = record
                    .nodes
                    .iter()
                    .find(|n| n.state != NodeState::Succeeded)
                {
                    return Err(StepFailure::Terminal(ErrorInfo::new(
                        ErrorKind::Other,
                        "InternalInconsistency",
                        format!("cannot record success: {} is {:?}", n.key(), n.state),
                    )));
                }
                self.write(id, owner, false, |r| {
                    if r.status != SagaStatus::Running {
                        return Err(StepFailure::Terminal(ErrorInfo::new(
                            ErrorKind::Conflict,
                            "SagaNotRunning",
                            format!("saga {id} is {}", r.status),
                        )));
                    }
                    r.status = SagaStatus::Succeeded;
                    log(r, now, "saga", "succeeded", None, owner);
                    Ok(())
                })
                .await?;
            }
            asl::outcome::ROLLED_BACK => {
                if done(SagaStatus::RolledBack) {
                    return Ok(());
                }
                if let Some(n) = record.nodes.iter().find(|n| n.state.needs_undo()) {
                    return Err(StepFailure::Terminal(ErrorInfo::new(
                        ErrorKind::Other,
                        "InternalInconsistency",
                        format!("cannot record the rollback: {} is {:?}", n.key(), n.state),
                    )));
                }
                self.write(id, owner, false, |r| {
                    self.start_rollback(r, owner)?;
                    r.status = SagaStatus::RolledBack;
                    log(r, now, "saga", "rolled_back", None, owner);
                    Ok(())
                })
                .await?;
            }
            asl::outcome::REFUSED => {
                if done(SagaStatus::Refused) {
                    return Ok(());
                }
                self.write(id, owner, false, |r| {
                    if r.status != SagaStatus::Running {
                        return Err(StepFailure::Terminal(ErrorInfo::new(
                            ErrorKind::Conflict,
                            "SagaNotRunning",
                            format!("saga {id} is {}", r.status),
                        )));
                    }
                    if self.def.side_effects_started(r) {
                        return Err(StepFailure::Terminal(ErrorInfo::new(
                            ErrorKind::Other,
                            "InternalInconsistency",
                            "cannot record a refusal: a step with side effects has started",
                        )));
                    }
                    let cause = r
                        .nodes
                        .iter()
                        .find(|n| n.state == NodeState::Failed)
                        .and_then(|n| n.error.clone())
                        .unwrap_or_else(|| {
                            ErrorInfo::new(
                                ErrorKind::Other,
                                "StepNotCompleted",
                                "the state machine could not complete a step that changes nothing",
                            )
                            .with_fix(
                                "See the Step Functions execution for the failed state's error, \
                                 then submit the request again.",
                            )
                        });
                    let detail = format!("{}: {}", cause.code, cause.message);
                    r.status = SagaStatus::Refused;
                    r.cause = Some(cause);
                    log(r, now, "saga", "refused", Some(detail), owner);
                    Ok(())
                })
                .await?;
            }
            asl::outcome::ROLLBACK_FAILED => {
                if done(SagaStatus::RollbackFailed) {
                    return Ok(());
                }
                self.write(id, owner, false, |r| {
                    self.start_rollback(r, owner)?;
                    let err = r
                        .nodes
                        .iter()
                        .find(|n| n.state == NodeState::UndoFailed)
                        .and_then(|n| n.undo_error.clone())
                        .unwrap_or_else(|| {
                            ErrorInfo::new(
                                ErrorKind::Other,
                                "UndoNotCompleted",
                                "the state machine could not complete an undo",
                            )
                        });
                    let blocked =
                        format!("not undone because an undo failed first: {}", err.message);
                    let mut lines = Vec::new();
                    for n in r.nodes.iter_mut() {
                        if n.state.needs_undo() && n.state != NodeState::UndoFailed {
                            n.state = NodeState::UndoBlocked;
                            lines.push(n.key());
                        }
                    }
                    for key in lines {
                        log(r, now, &key, "undo_blocked", Some(blocked.clone()), owner);
                    }
                    let detail = format!("{}: {}", err.code, err.message);
                    r.status = SagaStatus::RollbackFailed;
                    r.undo_error = Some(err);
                    log(r, now, "saga", "rollback_failed", Some(detail), owner);
                    Ok(())
                })
                .await?;
            }
            asl::outcome::NEEDS_ATTENTION => {
                if done(SagaStatus::NeedsAttention) {
                    return Ok(());
                }
                self.write(id, owner, false, |r| {
                    let cause = r
                        .nodes
                        .iter()
                        .find(|n| n.state == NodeState::Failed)
                        .and_then(|n| n.error.clone())
                        .unwrap_or_else(|| {
                            ErrorInfo::new(
                                ErrorKind::Other,
                                "StepNotCompleted",
                                "the state machine could not complete a step",
                            )
                            .with_fix(
                                "See the Step Functions execution for the failed state's error.",
                            )
                        });
                    let detail = format!("{}: {}", cause.code, cause.message);
                    r.status = SagaStatus::NeedsAttention;
                    r.cause = Some(cause);
                    log(r, now, "saga", "needs_attention", Some(detail), owner);
                    Ok(())
                })
                .await?;
            }
            other => {
                return Err(StepFailure::Invalid(format!("unknown outcome {other:?}")));
            }
        }
        Ok(())
    }
}

/// When the node's current undo began (its first `undo_started` since the last `undone`).
fn first_undo_start(r: &SagaRecord, key: &str) -> Option<u64> {
    let mut start = None;
    for e in r.log.iter().filter(|e| e.node == key) {
        match e.event.as_str() {
            "undo_started" if start.is_none() => start = Some(e.at),
            "undone" => start = None,
            _ => {}
        }
    }
    start
}

/// The context for node `idx` and its recorded output (for the undo).
fn node_ctx(r: &SagaRecord, idx: usize, owner: &str) -> (NodeCtx, Option<Value>) {
    let outputs: BTreeMap<String, Value> = r
        .nodes
        .iter()
        .filter_map(|n| n.output.clone().map(|o| (n.key(), o)))
        .collect();
    let node = r.nodes.get(idx);
    let ctx = NodeCtx {
        saga_id: r.id.clone(),
        namespace: r.namespace.clone(),
        input: Arc::new(r.input.clone()),
        target: node.and_then(|n| n.target.clone()),
        outputs: Arc::new(outputs),
        attempt: node.map_or(1, |n| n.attempts),
        worker: owner.to_string(),
    };
    (ctx, node.and_then(|n| n.output.clone()))
}

#[cfg(test)]
mod tests {
    //! The exported state machine ([`asl::export`]) interpreted here, Task by Task, against the
    //! runner and the fake AWS world: the ASL and the step handler together must do what the
    //! engine does.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::future::Future;
    use std::pin::Pin;

    use serde_json::{json, Map};

    use super::*;
    use crate::engine::Engine;
    use crate::onboard::{self, OnboardConfig, OnboardPorts};
    use crate::spec::parse_spec;
    use crate::testkit::fake_world::{self as fw, FakeWorld};
    use crate::testkit::{FixedRandom, ManualClock, MemoryLocks, MemoryStore};

    struct Harness {
        world: Arc<FakeWorld>,
        store: Arc<MemoryStore>,
        clock: Arc<ManualClock>,
        ports: Arc<OnboardPorts>,
        def: Arc<SagaDef<OnboardPorts>>,
        runner: StepRunner<OnboardPorts>,
    }

    impl Harness {
        fn new() -> Self {
            Self::with_recovery(Recovery::Backward)
        }

        fn with_recovery(recovery: Recovery) -> Self {
            let world = Arc::new(FakeWorld::standard());
            let clock = Arc::new(ManualClock::new(1_700_000_000_000));
            let store = Arc::new(MemoryStore::new());
            let ports = Arc::new(OnboardPorts {
                apps: world.clone(),
                connect: world.clone(),
                iam: world.clone(),
                locks: Arc::new(MemoryLocks::new()),
                clock: clock.clone(),
            });
            let mut def = onboard::definition(&OnboardConfig::default());
            def.recovery = recovery;
            let def = Arc::new(def);
            let runner = StepRunner::new(
                def.clone(),
                ports.clone(),
                store.clone(),
                clock.clone(),
                EngineConfig::default(),
            );
            Harness {
                world,
                store,
                clock,
                ports,
                def,
                runner,
            }
        }

        async fn submit(&self) -> String {
            submit_onboard(&self.def, &self.store, &self.clock).await
        }

        async fn record(&self, id: &str) -> SagaRecord {
            self.store.get(id).await.unwrap().unwrap()
        }

        /// Run one execution of the exported state machine; the name of its final state.
        async fn execute(&self, exec: &str, id: &str, action: &str) -> String {
            let machine = asl::export(&self.def, "arn:step");
            let sim = Sim {
                runner: &self.runner,
                clock: &self.clock,
                exec: exec.to_string(),
            };
            let input = json!({"sagaId": id, "action": action});
            match sim
                .run(machine["States"].as_object().unwrap(), "Begin", input)
                .await
            {
                Ok((end, _)) => end,
                Err((error, _)) => format!("error {error}"),
            }
        }
    }

    /// Records a new onboard saga for Acme CRM on alpha and beta; its id.
    async fn submit_onboard(
        def: &SagaDef<OnboardPorts>,
        store: &MemoryStore,
        clock: &ManualClock,
    ) -> String {
        let spec = parse_spec(
            json!({
                "displayName": "Acme CRM",
                "accessUrl": "https://crm.example.com/agent",
                "permissions": ["User.Details.View"],
                "instances": [fw::INSTANCE_ALPHA, fw::INSTANCE_BETA],
                "securityProfiles": [
                    {"instance": fw::INSTANCE_ALPHA, "profiles": [fw::PROFILE_ALPHA_1]},
                    {"instance": fw::INSTANCE_BETA, "profiles": [fw::PROFILE_BETA_1]}
                ],
                "requester": {"source": "PORTAL", "principal": "alice@example.com"}
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let validated = spec.validate().unwrap();
        let new = onboard::new_saga("sg-asl", &validated).unwrap();
        let record = def.new_record(new, clock.now());
        store.create(&record).await.unwrap();
        record.id
    }

    /// Just enough of Step Functions for the exported machine: Task (lambda:invoke), Map,
    /// Choice, Pass, Succeed, Fail, Retry (no jitter), Catch, ResultSelector, ResultPath.
    struct Sim<'a> {
        runner: &'a dyn RunsSteps,
        clock: &'a ManualClock,
        exec: String,
    }

    type Outcome = Result<(String, Value), (String, Value)>;

    fn path<'v>(v: &'v Value, p: &str) -> &'v Value {
        let rest = p.strip_prefix('$').unwrap().trim_start_matches('.');
        if rest.is_empty() {
            return v;
        }
        rest.split('.').fold(v, |acc, k| &acc[k])
    }

    impl Sim<'_> {
        fn resolve(&self, template: &Value, input: &Value, item: Option<&Value>) -> Value {
            let Value::Object(m) = template else {
                return template.clone();
            };
            let mut out = Map::new();
            for (k, v) in m {
                match (k.strip_suffix(".$"), v.as_str()) {
                    (Some(key), Some(expr)) => {
                        let value = if expr == "$$.Execution.Id" {
                            json!(self.exec)
                        } else if expr == "$$.Map.Item.Value" {
                            item.cloned().unwrap()
                        } else if let Some(arg) = expr
                            .strip_prefix("States.ArrayContains(")
                            .and_then(|s| s.strip_suffix(", false)"))
                        {
                            let arr = path(input, arg).as_array().unwrap();
                            json!(arr.contains(&json!(false)))
                        } else {
                            path(input, expr).clone()
                        };
                        out.insert(key.to_string(), value);
                    }
                    _ => {
                        out.insert(k.clone(), self.resolve(v, input, item));
                    }
                }
            }
            Value::Object(out)
        }

        fn place(input: &Value, state: &Value, result: Value) -> Value {
            match state.get("ResultPath") {
                Some(Value::Null) => input.clone(),
                Some(Value::String(p)) if p != "$" => {
                    let mut out = input.clone();
                    out[p.trim_start_matches("$.")] = result;
                    out
                }
                _ => result,
            }
        }

        fn caught(state: &Value, error: &str, input: &Value) -> Option<(String, Value)> {
            let catchers = state.get("Catch")?.as_array()?;
            let c = catchers.iter().find(|c| {
                c["ErrorEquals"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e == error || e == "States.ALL")
            })?;
            let err = json!({"Error": error});
            let out = match c.get("ResultPath") {
                Some(Value::String(p)) => {
                    let mut o = input.clone();
                    o[p.trim_start_matches("$.")] = err;
                    o
                }
                _ => err,
            };
            Some((c["Next"].as_str().unwrap().to_string(), out))
        }

        async fn invoke(
            &self,
            state: &Value,
            input: &Value,
            item: Option<&Value>,
        ) -> Result<Value, String> {
            let payload = self.resolve(&state["Parameters"]["Payload"], input, item);
            let req: StepRequest = serde_json::from_value(payload).unwrap();
            let mut tries: BTreeMap<usize, u32> = BTreeMap::new();
            loop {
                match self.runner.handle(&req).await {
                    Ok(v) => return Ok(json!({ "Payload": v })),
                    Err(f) => {
                        let name = f.error_name();
                        let retriers = state["Retry"].as_array().unwrap();
                        let found = retriers.iter().enumerate().find(|(_, r)| {
                            r["ErrorEquals"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .any(|e| e == name)
                        });
                        let Some((i, r)) = found else {
                            return Err(name.to_string());
                        };
                        let n = tries.entry(i).or_default();
                        if u64::from(*n) >= r["MaxAttempts"].as_u64().unwrap() {
                            return Err(name.to_string());
                        }
                        let wait = r["IntervalSeconds"].as_u64().unwrap() << *n;
                        self.clock.advance(Duration::from_secs(
                            wait.min(
                                r.get("MaxDelaySeconds")
                                    .and_then(Value::as_u64)
                                    .unwrap_or(u64::MAX),
                            ),
                        ));
                        *n += 1;
                    }
                }
            }
        }

        fn run<'s>(
            &'s self,
            states: &'s Map<String, Value>,
            start: &'s str,
            input: Value,
        ) -> Pin<Box<dyn Future<Output = Outcome> + 's>> {
            Box::pin(async move {
                let mut name = start.to_string();
                let mut data = input;
                loop {
                    let state = &states[&name];
                    let next = |s: &Value| s["Next"].as_str().map(str::to_string);
                    match state["Type"].as_str().unwrap() {
                        "Task" => match self.invoke(state, &data, None).await {
                            Ok(result) => {
                                let result = match state.get("ResultSelector") {
                                    Some(sel) => self.resolve(sel, &result, None),
                                    None => result,
                                };
                                data = Self::place(&data, state, result);
                                name = next(state).unwrap();
                            }
                            Err(e) => match Self::caught(state, &e, &data) {
                                Some((n, d)) => (name, data) = (n, d),
                                None => return Err((e, data)),
                            },
                        },
                        "Map" => {
                            let items = path(&data, state["ItemsPath"].as_str().unwrap())
                                .as_array()
                                .unwrap()
                                .clone();
                            let inner = state["ItemProcessor"]["States"].as_object().unwrap();
                            let start = state["ItemProcessor"]["StartAt"].as_str().unwrap();
                            let branches = items.iter().map(|item| {
                                let input = self.resolve(&state["ItemSelector"], &data, Some(item));
                                self.run(inner, start, input)
                            });
                            let results = futures::future::join_all(branches).await;
                            let mut values = Vec::new();
                            let mut failure = None;
                            for r in results {
                                match r {
                                    Ok((_, v)) => values.push(v),
                                    Err((e, _)) => failure = Some(e),
                                }
                            }
                            if let Some(e) = failure {
                                match Self::caught(state, &e, &data) {
                                    Some((n, d)) => (name, data) = (n, d),
                                    None => return Err((e, data)),
                                }
                                continue;
                            }
                            let result =
                                self.resolve(&state["ResultSelector"], &Value::Array(values), None);
                            data = Self::place(&data, state, result);
                            name = next(state).unwrap();
                        }
                        "Choice" => {
                            let chosen = state["Choices"].as_array().unwrap().iter().find(|c| {
                                let v = path(&data, c["Variable"].as_str().unwrap());
                                c.get("StringEquals").is_some_and(|x| x == v)
                                    || c.get("BooleanEquals").is_some_and(|x| x == v)
                            });
                            name = match chosen {
                                Some(c) => c["Next"].as_str().unwrap().to_string(),
                                None => state["Default"].as_str().unwrap().to_string(),
                            };
                        }
                        "Pass" => {
                            if let Some(r) = state.get("Result") {
                                data = r.clone();
                            }
                            if state.get("End") == Some(&json!(true)) {
                                return Ok((name, data));
                            }
                            name = next(state).unwrap();
                        }
                        "Succeed" => return Ok((name, data)),
                        "Fail" => return Err((state["Error"].as_str().unwrap().to_string(), data)),
                        other => panic!("state type {other}"),
                    }
                }
            })
        }
    }

    fn node_states(r: &SagaRecord) -> Vec<(String, NodeState)> {
        r.nodes.iter().map(|n| (n.key(), n.state)).collect()
    }

    #[tokio::test]
    async fn the_state_machine_onboards_like_the_engine() {
        let h = Harness::new();
        let id = h.submit().await;
        assert_eq!(h.execute("exec-1", &id, "run").await, "Succeeded");
        let r = h.record(&id).await;
        assert_eq!(r.status, SagaStatus::Succeeded);
        assert!(r.lease.is_none());
        assert!(
            r.nodes.iter().all(|n| n.state == NodeState::Succeeded),
            "{:?}",
            node_states(&r)
        );

        // The engine on a fresh world and store ends with the same world.
        let e = Harness::new();
        let id2 = e.submit().await;
        let engine = Engine::new(
            e.def.clone(),
            e.ports.clone(),
            e.store.clone(),
            e.clock.clone(),
            Arc::new(FixedRandom(0.5)),
            "w",
        );
        engine.run(&id2).await.unwrap();
        assert_eq!(h.world.snapshot(), e.world.snapshot());

        // A second execution finds nothing to do.
        assert_eq!(h.execute("exec-2", &id, "run").await, "Nothing to do");
    }

    #[tokio::test]
    async fn a_terminal_failure_at_any_step_rolls_the_world_back() {
        for (op, n) in [
            ("create_application", 1),
            ("create_association", 2),
            ("put_role_policy", 1),
            ("set_profile_applications", 2),
            ("find_association", 3),
        ] {
            let h = Harness::new();
            let pristine = h.world.snapshot();
            let id = h.submit().await;
            h.world.fail_nth(op, n, fw::access_denied());
            assert_eq!(h.execute("exec-1", &id, "run").await, "RolledBack", "{op}");
            let r = h.record(&id).await;
            assert_eq!(
                r.status,
                SagaStatus::RolledBack,
                "{op}: {:?}",
                node_states(&r)
            );
            assert!(!r.cause.as_ref().unwrap().is_retryable(), "{op}");
            assert_eq!(
                h.world.snapshot(),
                pristine,
                "{op}: the world is back as it was"
            );
            assert!(r.nodes.iter().all(|n| !n.state.needs_undo()), "{op}");
        }
    }

    /// A terminal failure in `validate` (no side effects, nothing before it): the machine ends
    /// in `Refused` without any undo, and the record is what the engine writes.
    #[tokio::test]
    async fn a_refusal_by_validate_ends_refused_without_a_rollback_like_the_engine() {
        let h = Harness::new();
        let pristine = h.world.snapshot();
        let id = h.submit().await;
        h.world
            .fail_nth("describe_instance", 2, fw::access_denied());
        assert_eq!(h.execute("exec-1", &id, "run").await, "Refused");
        let r = h.record(&id).await;
        assert_eq!(r.status, SagaStatus::Refused, "{:?}", node_states(&r));
        assert!(r.lease.is_none());
        let cause = r.cause.clone().unwrap();
        assert_eq!(cause.code, "AccessDeniedException", "{cause:?}");
        assert_eq!(
            r.node("validate", None).unwrap().state,
            NodeState::Failed,
            "nothing to undo: the failed node stays FAILED"
        );
        assert!(r
            .nodes
            .iter()
            .filter(|n| n.step != "validate")
            .all(|n| n.state == NodeState::Pending && n.attempts == 0));
        let events: Vec<&str> = r.log.iter().map(|e| e.event.as_str()).collect();
        assert!(events.contains(&"refused"), "{events:?}");
        assert!(
            !events
                .iter()
                .any(|e| e.starts_with("undo") || e.starts_with("rollback")),
            "no rollback phase: {events:?}"
        );
        assert_eq!(h.world.snapshot(), pristine);
        assert_eq!(h.store.namespace_holder(&r.namespace).await.unwrap(), None);
        // A repeated delivery finds nothing to do.
        assert_eq!(h.execute("exec-2", &id, "run").await, "Nothing to do");

        // The engine on the same fault ends the same way.
        let e = Harness::new();
        let id2 = e.submit().await;
        e.world
            .fail_nth("describe_instance", 2, fw::access_denied());
        let engine = Engine::new(
            e.def.clone(),
            e.ports.clone(),
            e.store.clone(),
            e.clock.clone(),
            Arc::new(FixedRandom(0.5)),
            "w",
        );
        engine.run(&id2).await.unwrap();
        let r2 = e.record(&id2).await;
        assert_eq!(r2.status, SagaStatus::Refused);
        assert_eq!(r2.cause, r.cause);
        assert_eq!(node_states(&r2), node_states(&r));
    }

    /// `finish refused` refuses to record a refusal once a step with side effects started.
    #[tokio::test]
    async fn a_refusal_cannot_be_recorded_after_a_side_effect() {
        let h = Harness::new();
        let id = h.submit().await;
        h.runner.begin(&id, "exec-1", false).await.unwrap();
        for step in ["validate", "create_application"] {
            let req = StepRequest {
                op: asl::op::ACTION.into(),
                kind: None,
                saga_id: id.clone(),
                owner: "exec-1".into(),
                step: Some(step.into()),
                target: None,
                action: None,
                outcome: None,
            };
            h.runner.handle(&req).await.unwrap();
        }
        let err = h
            .runner
            .finish(&id, "exec-1", asl::outcome::REFUSED)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("side effects"), "{err}");
        assert_eq!(h.record(&id).await.status, SagaStatus::Running);
    }

    #[tokio::test]
    async fn retryable_errors_are_retried_then_budgeted_like_the_engine() {
        let h = Harness::new();
        let id = h.submit().await;
        h.world.fail_nth("create_application", 1, fw::throttled());
        assert_eq!(h.execute("exec-1", &id, "run").await, "Succeeded");
        let r = h.record(&id).await;
        let node = r.node("create_application", None).unwrap();
        assert_eq!(node.attempts, 2);
        assert!(r.log.iter().any(|e| e.event == "started"
            && e.detail
                .as_deref()
                .is_some_and(|d| d.starts_with("retry 1 after ThrottlingException"))));

        // Always throttled: the step's attempts run out, recorded as BudgetExhausted.
        let h = Harness::new();
        let pristine = h.world.snapshot();
        let id = h.submit().await;
        h.world.fail_always("create_association", fw::throttled());
        assert_eq!(h.execute("exec-1", &id, "run").await, "RolledBack");
        let r = h.record(&id).await;
        assert_eq!(r.cause.as_ref().unwrap().kind, ErrorKind::BudgetExhausted);
        let attempts = r
            .nodes
            .iter()
            .filter(|n| n.step == "associate")
            .map(|n| n.attempts)
            .max();
        assert_eq!(attempts, Some(RetryPolicy::default().max_attempts));
        assert_eq!(h.world.snapshot(), pristine);
    }

    #[tokio::test]
    async fn a_failed_undo_ends_rollback_failed_and_a_redrive_finishes_it() {
        let h = Harness::new();
        let pristine = h.world.snapshot();
        let id = h.submit().await;
        h.world.fail_nth("put_role_policy", 2, fw::access_denied());
        h.world
            .fail_always("delete_association", fw::access_denied());
        assert_eq!(
            h.execute("exec-1", &id, "run").await,
            "error Saga.RollbackFailed"
        );
        let r = h.record(&id).await;
        assert_eq!(r.status, SagaStatus::RollbackFailed);
        assert!(r.undo_error.is_some());
        assert!(r.lease.is_none());
        let blocked = r.node("create_application", None).unwrap().state;
        assert_eq!(blocked, NodeState::UndoBlocked, "{:?}", node_states(&r));

        h.world.clear_faults();
        assert_eq!(h.execute("exec-2", &id, "redrive").await, "RolledBack");
        let r = h.record(&id).await;
        assert_eq!(r.status, SagaStatus::RolledBack, "{:?}", node_states(&r));
        assert_eq!(h.world.snapshot(), pristine);
    }

    #[tokio::test]
    async fn a_saga_that_recovers_forward_stops_for_an_operator_and_carries_on() {
        let h = Harness::with_recovery(Recovery::Forward);
        let id = h.submit().await;
        h.world
            .fail_nth("create_association", 2, fw::access_denied());
        assert_eq!(
            h.execute("exec-1", &id, "run").await,
            "error Saga.NeedsAttention"
        );
        let r = h.record(&id).await;
        assert_eq!(
            r.status,
            SagaStatus::NeedsAttention,
            "{:?}",
            node_states(&r)
        );
        assert!(r.cause.is_some());
        assert!(r.lease.is_none());
        // Nothing was undone: the application is still there.
        assert_eq!(
            r.node("create_application", None).unwrap().state,
            NodeState::Succeeded
        );
        assert!(r.nodes.iter().all(|n| n.undo_attempts == 0));

        h.world.clear_faults();
        assert_eq!(h.execute("exec-2", &id, "redrive").await, "Succeeded");
        let r = h.record(&id).await;
        assert_eq!(r.status, SagaStatus::Succeeded, "{:?}", node_states(&r));
        assert!(r.cause.is_none());
    }

    #[tokio::test]
    async fn only_the_lease_holder_advances_a_saga() {
        let h = Harness::new();
        let id = h.submit().await;
        let begun = h.runner.begin(&id, "exec-1", false).await.unwrap();
        assert_eq!(begun.status, "RUNNING");
        assert_eq!(begun.targets.len(), 2);
        // Another execution is told the saga is busy and cannot run a node.
        assert_eq!(
            h.runner.begin(&id, "exec-2", false).await.unwrap().status,
            "BUSY"
        );
        let req = StepRequest {
            op: asl::op::ACTION.into(),
            kind: None,
            saga_id: id.clone(),
            owner: "exec-2".into(),
            step: Some("validate".into()),
            target: None,
            action: None,
            outcome: None,
        };
        let err = h.runner.handle(&req).await.unwrap_err();
        assert_eq!(err.error_name(), asl::ERROR_LEASE_LOST);
        assert_eq!(
            h.record(&id).await.node("validate", None).unwrap().state,
            NodeState::Pending
        );
        // Once the lease expired, the other execution takes over.
        h.clock
            .advance(EngineConfig::default().lease_ttl + Duration::from_secs(1));
        assert_eq!(
            h.runner.begin(&id, "exec-2", false).await.unwrap().status,
            "RUNNING"
        );
        let bad = StepRequest {
            step: Some("nope".into()),
            owner: "exec-2".into(),
            ..req
        };
        assert_eq!(
            h.runner.handle(&bad).await.unwrap_err().error_name(),
            asl::ERROR_INVALID
        );
    }

    /// The deployed machine ([`asl::combined`]) and [`StepRunners`]: onboard, then the
    /// lifecycle sagas, each started by the use cases (queue unused) and driven by the machine.
    struct AllKinds {
        world: Arc<FakeWorld>,
        pristine: fw::WorldSnapshot,
        store: Arc<MemoryStore>,
        clock: Arc<ManualClock>,
        runners: StepRunners,
        lifecycle: crate::lifecycle::service::Lifecycle,
        machine: Value,
    }

    impl AllKinds {
        fn new() -> Self {
            let h = Harness::new();
            let store_dyn: Arc<dyn SagaStore> = h.store.clone();
            let runners = StepRunners::new(
                h.ports.clone(),
                store_dyn.clone(),
                h.clock.clone(),
                &OnboardConfig::default(),
                EngineConfig::default(),
            );
            let lifecycle = crate::lifecycle::service::Lifecycle {
                store: store_dyn,
                clock: h.clock.clone(),
                queue: Arc::new(crate::service::NoQueue),
                idempotency: crate::idempotency::IdempotencyConfig::default(),
            };
            AllKinds {
                pristine: h.world.snapshot(),
                world: h.world.clone(),
                store: h.store.clone(),
                clock: h.clock.clone(),
                runners,
                lifecycle,
                machine: asl::combined("arn:step"),
            }
        }

        /// One execution of the combined machine; its final state, or `error <name>`.
        async fn execute(&self, exec: &str, id: &str, action: &str) -> String {
            let sim = Sim {
                runner: &self.runners,
                clock: &self.clock,
                exec: exec.to_string(),
            };
            let start = self.machine["StartAt"].as_str().unwrap();
            let input = json!({"sagaId": id, "action": action});
            match sim
                .run(self.machine["States"].as_object().unwrap(), start, input)
                .await
            {
                Ok((end, _)) => end,
                Err((error, _)) => format!("error {error}"),
            }
        }

        async fn status(&self, id: &str) -> SagaStatus {
            self.store.get(id).await.unwrap().unwrap().status
        }

        /// Onboards the harness's application (alpha and beta) through the machine.
        async fn onboarded(&self) -> String {
            let def = onboard::definition(&OnboardConfig::default());
            let id = submit_onboard(&def, &self.store, &self.clock).await;
            assert_eq!(
                self.execute("exec-onboard", &id, "run").await,
                "onboard: Succeeded"
            );
            id
        }

        /// Moves the application from {alpha, beta} to {beta, gamma} and renames it.
        async fn edit(&self, app: &str) -> String {
            let req = crate::lifecycle::service::parse_edit(
                json!({
                    "displayName": "Acme CRM Next",
                    "instances": [fw::INSTANCE_BETA, fw::INSTANCE_GAMMA],
                    "securityProfiles": [
                        {"instance": fw::INSTANCE_BETA, "profiles": [fw::PROFILE_BETA_1]},
                        {"instance": fw::INSTANCE_GAMMA, "profiles": [fw::PROFILE_GAMMA_1]}
                    ]
                })
                .to_string()
                .as_bytes(),
            )
            .unwrap();
            self.lifecycle
                .edit(app, &req, "bob", None, "sg-edit".into())
                .await
                .unwrap()
                .saga_id
        }
    }

    #[tokio::test]
    async fn the_combined_machine_runs_every_lifecycle_kind() {
        let k = AllKinds::new();
        let app = k.onboarded().await;

        let edit = k.edit(&app).await;
        assert_eq!(
            k.execute("exec-edit", &edit, "run").await,
            "change: Succeeded"
        );
        assert_eq!(k.status(&edit).await, SagaStatus::Succeeded);
        let (_, state) = k.lifecycle.application(&app).await.unwrap();
        assert_eq!(
            state.instances.iter().cloned().collect::<Vec<_>>(),
            vec![
                fw::INSTANCE_BETA.to_string(),
                fw::INSTANCE_GAMMA.to_string()
            ]
        );
        let before_pause = k.world.snapshot();

        let pause = k
            .lifecycle
            .pause(&app, fw::INSTANCE_GAMMA, "ops", None, "sg-pause".into())
            .await
            .unwrap()
            .saga_id;
        assert_eq!(
            k.execute("exec-pause", &pause, "run").await,
            "change: Succeeded"
        );
        assert_ne!(k.world.snapshot(), before_pause);
        let resume = k
            .lifecycle
            .resume(&app, fw::INSTANCE_GAMMA, "ops", None, "sg-resume".into())
            .await
            .unwrap()
            .saga_id;
        assert_eq!(
            k.execute("exec-resume", &resume, "run").await,
            "change: Succeeded"
        );
        assert_eq!(
            k.world.snapshot(),
            before_pause,
            "resume restores the paused set-up"
        );

        let off = k
            .lifecycle
            .offboard(&app, "ops", None, "sg-off".into())
            .await
            .unwrap()
            .saga_id;
        assert_eq!(
            k.execute("exec-off", &off, "run").await,
            "offboard: Succeeded"
        );
        assert_eq!(k.status(&off).await, SagaStatus::Succeeded);
        assert_eq!(k.world.snapshot(), k.pristine, "offboard leaves no trace");
        // A repeated delivery finds nothing to do.
        assert_eq!(
            k.execute("exec-off-2", &off, "run").await,
            "offboard: Nothing to do"
        );
    }

    #[tokio::test]
    async fn an_edit_failing_at_any_call_rolls_back_through_the_combined_machine() {
        for (op, n) in [
            ("get_application", 1),
            ("set_profile_applications", 1),
            ("delete_role_policy", 1),
            ("put_role_policy", 1),
            ("delete_association", 1),
            ("update_application", 1),
            ("create_association", 1),
            ("set_profile_applications", 2),
        ] {
            let k = AllKinds::new();
            let app = k.onboarded().await;
            let before = k.world.snapshot();
            let edit = k.edit(&app).await;
            k.world.fail_nth(op, n, fw::access_denied());
            // The first GetApplication is `check`'s, which changes nothing: a refusal.
            let (end, status) = if op == "get_application" {
                ("change: Refused", SagaStatus::Refused)
            } else {
                ("change: RolledBack", SagaStatus::RolledBack)
            };
            assert_eq!(k.execute("exec-edit", &edit, "run").await, end, "{op} #{n}");
            assert_eq!(k.status(&edit).await, status, "{op} #{n}");
            assert_eq!(
                k.world.snapshot(),
                before,
                "{op} #{n}: the world before the edit"
            );
        }
    }

    #[tokio::test]
    async fn an_offboard_fault_needs_attention_and_a_redrive_through_the_machine_finishes() {
        for ops in [
            &["set_profile_applications"][..],
            // The statement goes with a PutRolePolicy, or a DeleteRolePolicy when it was the
            // policy's last one.
            &["put_role_policy", "delete_role_policy"],
            &["delete_association"],
            &["delete_application"],
        ] {
            let op = ops.join("/");
            let k = AllKinds::new();
            let app = k.onboarded().await;
            let off = k
                .lifecycle
                .offboard(&app, "ops", None, "sg-off".into())
                .await
                .unwrap()
                .saga_id;
            for op in ops {
                k.world.fail_nth(op, 1, fw::access_denied());
            }
            assert_eq!(
                k.execute("exec-off", &off, "run").await,
                "error Saga.NeedsAttention",
                "{op}"
            );
            assert_eq!(k.status(&off).await, SagaStatus::NeedsAttention, "{op}");
            assert_eq!(
                k.execute("exec-off-2", &off, "redrive").await,
                "offboard: Succeeded",
                "{op}"
            );
            assert_eq!(k.world.snapshot(), k.pristine, "{op}");
        }
    }

    /// A failing `inventory` (it only reads) refuses the offboard: nothing was removed, the
    /// application stays managed, and a new offboard goes through.
    #[tokio::test]
    async fn an_offboard_whose_inventory_fails_is_refused_and_can_be_submitted_again() {
        let k = AllKinds::new();
        let app = k.onboarded().await;
        let before = k.world.snapshot();
        let off = k
            .lifecycle
            .offboard(&app, "ops", None, "sg-off".into())
            .await
            .unwrap()
            .saga_id;
        k.world.fail_nth("list_instances", 1, fw::access_denied());
        assert_eq!(
            k.execute("exec-off", &off, "run").await,
            "offboard: Refused"
        );
        assert_eq!(k.status(&off).await, SagaStatus::Refused);
        assert_eq!(k.world.snapshot(), before, "nothing was removed");
        let again = k
            .lifecycle
            .offboard(&app, "ops", None, "sg-off-2".into())
            .await
            .unwrap()
            .saga_id;
        assert_eq!(
            k.execute("exec-off-2", &again, "run").await,
            "offboard: Succeeded"
        );
        assert_eq!(k.world.snapshot(), k.pristine);
    }

    #[tokio::test]
    async fn the_router_rejects_an_unknown_saga_and_the_handler_an_unknown_kind() {
        let k = AllKinds::new();
        assert_eq!(
            k.execute("exec", "sg-nope", "run").await,
            "error Saga.Invalid"
        );
        let req = StepRequest {
            op: asl::op::BEGIN.into(),
            kind: Some("teleport".into()),
            saga_id: "sg-nope".into(),
            owner: "exec".into(),
            step: None,
            target: None,
            action: Some("run".into()),
            outcome: None,
        };
        let err = k.runners.handle(&req).await.unwrap_err();
        assert_eq!(err.error_name(), asl::ERROR_INVALID);
        assert!(err.to_string().contains("teleport"), "{err}");
        // A change saga's id sent to the onboard runner is refused, not run.
        let app = k.onboarded().await;
        let edit = k.edit(&app).await;
        let wrong = StepRequest {
            kind: Some(onboard::KIND.into()),
            saga_id: edit,
            ..req
        };
        assert_eq!(
            k.runners.handle(&wrong).await.unwrap_err().error_name(),
            asl::ERROR_INVALID
        );
    }
}
