//! The saga engine: runs a saga's steps forward, rolls completed steps back in reverse order on a
//! terminal failure (or ends REFUSED when a step without side effects failed before anything
//! was changed), and writes every transition through the [`SagaStore`] before and after each
//! side effect.
//!
//! Crash safety comes from three rules: a node is marked `STARTED` (or `UNDO_STARTED`) before its
//! side effect, so a resumed engine runs it again (actions and undos are idempotent); every
//! write is conditional on the record's version, so a worker that lost its lease stops at its
//! next write; and a lease (owner, expiry) renewed by every write lets another worker take over
//! only after the holder went quiet.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::clock::{Clock, Random};
use crate::error::{ErrorInfo, ErrorKind};
use crate::record::{Lease, LogEntry, NodeState, SagaRecord, SagaStatus};
use crate::saga::{NodeCtx, Recovery, RetryPolicy, SagaDef, StepDef};
use crate::store::{SagaStore, StoreError};

/// Engine errors: the run stopped without reaching an end state. Another run (or the
/// reconciler) picks the saga up again; nothing is lost because the record is the truth.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("saga {0} not found")]
    NotFound(String),
    #[error("saga {id} is a {found} saga but this engine runs {expected} sagas")]
    KindMismatch {
        id: String,
        found: String,
        expected: String,
    },
    #[error("saga {id} names step {step}, which the {kind} definition does not have")]
    UnknownStep {
        id: String,
        step: String,
        kind: String,
    },
    /// Another worker advanced the saga: this one stops without touching anything else.
    #[error("lost the lease on saga {0}: another worker advanced it")]
    LeaseLost(String),
    #[error(
        "saga {id} is {status}; only a ROLLBACK_FAILED or NEEDS_ATTENTION saga can be re-driven"
    )]
    NotRedrivable { id: String, status: SagaStatus },
    #[error(transparent)]
    Store(StoreError),
}

/// How a call to [`Engine::run`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// The saga reached this status (SUCCEEDED, ROLLED_BACK, REFUSED, ROLLBACK_FAILED or
    /// NEEDS_ATTENTION).
    Finished(SagaStatus),
    /// Another worker holds an unexpired lease; try again after `until`.
    Busy { owner: String, until: u64 },
    /// Nothing to do: the saga was already in this end status.
    AlreadyFinished(SagaStatus),
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How long a lease lasts without a write. Must exceed the longest single call plus the
    /// longest backoff delay; every log write renews it.
    pub lease_ttl: Duration,
    /// Keep at most this many log lines per saga (oldest dropped first) so a long-running
    /// retry storm cannot outgrow the store's item size.
    pub max_log_entries: usize,
    /// A side effect starts only with at least this much lease left; otherwise the lease is
    /// renewed first (a conditional write), and a worker that lost it stops. Must exceed the
    /// longest action (its SDK calls within their operation timeouts, lock waits); capped at
    /// half of `lease_ttl`.
    pub fence_margin: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            lease_ttl: Duration::from_secs(300),
            max_log_entries: 500,
            fence_margin: Duration::from_secs(120),
        }
    }
}

/// Runs sagas of one definition over a context `C` (the ports the actions call).
pub struct Engine<C: ?Sized + Send + Sync> {
    def: Arc<SagaDef<C>>,
    ctx: Arc<C>,
    store: Arc<dyn SagaStore>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Random>,
    owner: String,
    config: EngineConfig,
}

/// Which direction a node runs in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Forward,
    Undo,
}

impl<C: ?Sized + Send + Sync + 'static> Engine<C> {
    pub fn new(
        def: Arc<SagaDef<C>>,
        ctx: Arc<C>,
        store: Arc<dyn SagaStore>,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Random>,
        owner: impl Into<String>,
    ) -> Self {
        Engine {
            def,
            ctx,
            store,
            clock,
            random,
            owner: owner.into(),
            config: EngineConfig::default(),
        }
    }

    pub fn with_config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The context (ports) the actions run with.
    pub fn context(&self) -> Arc<C> {
        self.ctx.clone()
    }

    pub fn definition(&self) -> &SagaDef<C> {
        &self.def
    }

    /// Run or resume saga `id` until it ends, another worker holds it, or the store fails.
    pub async fn run(&self, id: &str) -> Result<RunOutcome, EngineError> {
        let Some(run) = self.take_lease(id, false).await? else {
            return self.busy_or_finished(id).await;
        };
        run.drive().await
    }

    /// Re-drive a stopped saga after the operator fixed the cause: a ROLLBACK_FAILED saga
    /// undoes every node not yet undone, in reverse order; a NEEDS_ATTENTION saga (forward
    /// recovery) runs its failed node again and carries on forward.
    pub async fn redrive(&self, id: &str) -> Result<RunOutcome, EngineError> {
        let Some(run) = self.take_lease(id, true).await? else {
            return self.busy_or_finished(id).await;
        };
        run.drive().await
    }

    async fn load(&self, id: &str) -> Result<SagaRecord, EngineError> {
        let record = self
            .store
            .get(id)
            .await
            .map_err(EngineError::Store)?
            .ok_or_else(|| EngineError::NotFound(id.to_string()))?;
        if record.kind != self.def.kind {
            return Err(EngineError::KindMismatch {
                id: id.to_string(),
                found: record.kind,
                expected: self.def.kind.to_string(),
            });
        }
        if let Some(node) = record
            .nodes
            .iter()
            .find(|n| self.def.step(&n.step).is_none())
        {
            return Err(EngineError::UnknownStep {
                id: id.to_string(),
                step: node.step.clone(),
                kind: record.kind.clone(),
            });
        }
        Ok(record)
    }

    async fn busy_or_finished(&self, id: &str) -> Result<RunOutcome, EngineError> {
        let record = self.load(id).await?;
        match record.lease {
            Some(lease) if record.status.is_runnable() && lease.owner != self.owner => {
                Ok(RunOutcome::Busy {
                    owner: lease.owner,
                    until: lease.expires_at,
                })
            }
            _ => Ok(RunOutcome::AlreadyFinished(record.status)),
        }
    }

    /// Take the lease with a conditional write. `None` when the saga is not ours to run now.
    async fn take_lease(&self, id: &str, redrive: bool) -> Result<Option<Run<'_, C>>, EngineError> {
        let record = self.load(id).await?;
        let now = self.clock.now();
        if redrive && !record.status.is_redrivable() {
            return Err(EngineError::NotRedrivable {
                id: id.to_string(),
                status: record.status,
            });
        }
        if !redrive && !record.status.is_runnable() {
            return Ok(None);
        }
        let mut detail = None;
        if let Some(lease) = &record.lease {
            if lease.owner != self.owner && lease.expires_at > now {
                return Ok(None);
            }
            if lease.owner != self.owner {
                detail = Some(format!("took over from {} (lease expired)", lease.owner));
            }
        }
        let run = Run {
            engine: self,
            input: Arc::new(record.input.clone()),
            record: Mutex::new(record),
        };
        let taken = run
            .write(|r| {
                if redrive && r.status == SagaStatus::NeedsAttention {
                    r.status = SagaStatus::Running;
                    r.cause = None;
                    for n in r.nodes.iter_mut().filter(|n| n.state == NodeState::Failed) {
                        n.state = NodeState::Pending;
                    }
                    r.push_log(now, "saga", "redriven", None, &self.owner);
                } else if redrive {
                    r.status = SagaStatus::RollingBack;
                    r.undo_error = None;
                    r.push_log(now, "saga", "redriven", None, &self.owner);
                }
                if r.status == SagaStatus::Pending {
                    r.status = SagaStatus::Running;
                }
                r.push_log(now, "saga", "lease_taken", detail, &self.owner);
            })
            .await;
        match taken {
            Ok(()) => Ok(Some(run)),
            Err(EngineError::LeaseLost(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl SagaRecord {
    fn push_log(&mut self, at: u64, node: &str, event: &str, detail: Option<String>, owner: &str) {
        self.log.push(LogEntry {
            at,
            node: node.to_string(),
            event: event.to_string(),
            detail,
            owner: owner.to_string(),
        });
    }
}

/// One leased run of one saga: the engine plus the latest record it wrote.
struct Run<'e, C: ?Sized + Send + Sync> {
    engine: &'e Engine<C>,
    /// The saga's input, shared by every node instead of cloned per call.
    input: Arc<Value>,
    record: Mutex<SagaRecord>,
}

impl<C: ?Sized + Send + Sync + 'static> Run<'_, C> {
    /// Apply `change` to a copy of the record and write it conditionally on the current version,
    /// renewing the lease. The in-memory record only changes when the store accepted the write.
    async fn write(&self, change: impl FnOnce(&mut SagaRecord)) -> Result<(), EngineError> {
        let e = self.engine;
        let mut current = self.record.lock().await;
        let mut next = current.clone();
        change(&mut next);
        let added = next.log.len().saturating_sub(current.log.len());
        let now = e.clock.now();
        next.version = current.version + 1;
        next.updated_at = now;
        next.lease = if next.status.is_runnable() {
            Some(Lease {
                owner: e.owner.clone(),
                expires_at: now.saturating_add(e.config.lease_ttl.as_millis() as u64),
            })
        } else {
            None
        };
        let excess = next.log.len().saturating_sub(e.config.max_log_entries);
        if excess > 0 {
            next.log.drain(..excess);
        }
        match e.store.update(&next, current.version).await {
            Ok(()) => {
                for entry in next.log.iter().rev().take(added).rev() {
                    tracing::info!(
                        saga_id = %next.id,
                        namespace = %next.namespace,
                        node = %entry.node,
                        event = %entry.event,
                        detail = entry.detail.as_deref().unwrap_or(""),
                        status = %next.status,
                        version = next.version,
                        "saga transition"
                    );
                }
                *current = next;
                Ok(())
            }
            Err(StoreError::VersionConflict { id, .. }) | Err(StoreError::NotFound { id }) => {
                Err(EngineError::LeaseLost(id))
            }
            Err(err) => Err(EngineError::Store(err)),
        }
    }

    /// Right before a side effect: make sure this worker still holds the lease for longer than
    /// `fence_margin`, renewing it with a conditional write if not. A worker that stalled
    /// after its last write (a paused VM, a long GC, a hung call) and was taken over finds its
    /// write refused here and stops, instead of changing AWS behind the new owner's back.
    async fn fence(&self) -> Result<(), EngineError> {
        let e = self.engine;
        let expires_at = {
            let r = self.record.lock().await;
            r.lease.as_ref().map_or(0, |l| l.expires_at)
        };
        // Never more than half the lease, so the write just before a side effect always
        // leaves enough and the normal path costs no extra write.
        let margin = e
            .config
            .fence_margin
            .min(e.config.lease_ttl / 2)
            .as_millis() as u64;
        if e.clock.now().saturating_add(margin) < expires_at {
            return Ok(());
        }
        let (now, owner) = (e.clock.now(), e.owner.clone());
        self.write(|r| r.push_log(now, "saga", "lease_renewed", None, &owner))
            .await
    }

    async fn snapshot(&self) -> SagaRecord {
        self.record.lock().await.clone()
    }

    async fn drive(self) -> Result<RunOutcome, EngineError> {
        let record = self.snapshot().await;
        if record.status == SagaStatus::Running {
            self.forward().await?;
        }
        let status = self.snapshot().await.status;
        if status == SagaStatus::RollingBack {
            self.rollback().await?;
        }
        Ok(RunOutcome::Finished(self.snapshot().await.status))
    }

    /// Run every step in order; on the first terminal failure switch to ROLLING_BACK.
    async fn forward(&self) -> Result<(), EngineError> {
        let def = &self.engine.def;
        for step in &def.steps {
            // A FAILED node left by a crashed run means the decision to stop was made.
            if let Some(cause) = self.first_failure().await {
                return self.stop_forward(cause).await;
            }
            let todo = self
                .nodes_where(step.name, |s| s != NodeState::Succeeded)
                .await;
            let failed = std::sync::atomic::AtomicBool::new(false);
            let results: Vec<Result<bool, EngineError>> = stream::iter(todo)
                .map(|idx| {
                    let failed = &failed;
                    async move {
                        // Do not start more branches once one failed terminally.
                        if failed.load(std::sync::atomic::Ordering::SeqCst) {
                            return Ok(true);
                        }
                        let ok = self.run_node(idx, step, Phase::Forward).await?;
                        if !ok {
                            failed.store(true, std::sync::atomic::Ordering::SeqCst);
                        }
                        Ok(ok)
                    }
                })
                .buffer_unordered(step.concurrency())
                .collect()
                .await;
            for r in results {
                r?;
            }
            if let Some(cause) = self.first_failure().await {
                return self.stop_forward(cause).await;
            }
        }
        let now = self.engine.clock.now();
        let owner = self.engine.owner.clone();
        self.write(|r| {
            r.status = SagaStatus::Succeeded;
            r.push_log(now, "saga", "succeeded", None, &owner);
        })
        .await
    }

    async fn first_failure(&self) -> Option<ErrorInfo> {
        let r = self.record.lock().await;
        r.nodes
            .iter()
            .find(|n| n.state == NodeState::Failed)
            .map(|n| {
                n.error.clone().unwrap_or_else(|| {
                    ErrorInfo::new(ErrorKind::Other, "Unknown", format!("{} failed", n.key()))
                })
            })
    }

    /// After a terminal failure: refuse the saga when nothing was done (a step without side
    /// effects failed before any step with side effects started), otherwise roll back, or
    /// (forward recovery) wait for an operator.
    async fn stop_forward(&self, cause: ErrorInfo) -> Result<(), EngineError> {
        let refused = self.engine.def.refuses(&*self.record.lock().await);
        if refused {
            return self.refuse(cause).await;
        }
        match self.engine.def.recovery {
            Recovery::Backward => self.begin_rollback(cause).await,
            Recovery::Forward => {
                let now = self.engine.clock.now();
                let owner = self.engine.owner.clone();
                let detail = format!("{}: {}", cause.code, cause.message);
                self.write(|r| {
                    r.status = SagaStatus::NeedsAttention;
                    r.cause = Some(cause);
                    r.push_log(now, "saga", "needs_attention", Some(detail), &owner);
                })
                .await
            }
        }
    }

    /// End the saga REFUSED with `cause` (every finding and its fix): nothing to undo, so no
    /// rollback phase, and the namespace is released.
    async fn refuse(&self, cause: ErrorInfo) -> Result<(), EngineError> {
        let now = self.engine.clock.now();
        let owner = self.engine.owner.clone();
        let detail = format!("{}: {}", cause.code, cause.message);
        self.write(|r| {
            r.status = SagaStatus::Refused;
            r.cause = Some(cause);
            r.push_log(now, "saga", "refused", Some(detail), &owner);
        })
        .await
    }

    async fn begin_rollback(&self, cause: ErrorInfo) -> Result<(), EngineError> {
        let now = self.engine.clock.now();
        let owner = self.engine.owner.clone();
        let detail = format!("{}: {}", cause.code, cause.message);
        self.write(|r| {
            r.status = SagaStatus::RollingBack;
            r.cause = Some(cause);
            r.push_log(now, "saga", "rollback_started", Some(detail), &owner);
        })
        .await
    }

    /// Undo, step by step in reverse order, every node whose action may have had an effect.
    /// When an undo fails, earlier steps are not undone (they may be what the failed one
    /// depends on, e.g. the application under an association): they are marked UNDO_BLOCKED so
    /// the record says exactly what remains, and a re-drive resumes from there.
    async fn rollback(&self) -> Result<(), EngineError> {
        let def = &self.engine.def;
        let mut undo_error: Option<ErrorInfo> = None;
        for step in def.steps.iter().rev() {
            let todo = self.nodes_where(step.name, NodeState::needs_undo).await;
            if let Some(blocker) = &undo_error {
                let now = self.engine.clock.now();
                let owner = self.engine.owner.clone();
                let detail = format!(
                    "not undone because an undo failed first: {}",
                    blocker.message
                );
                if !todo.is_empty() {
                    self.write(|r| {
                        for &idx in &todo {
                            if let Some(n) = r.nodes.get_mut(idx) {
                                n.state = NodeState::UndoBlocked;
                                let key = n.key();
                                r.push_log(now, &key, "undo_blocked", Some(detail.clone()), &owner);
                            }
                        }
                    })
                    .await?;
                }
                continue;
            }
            let results: Vec<Result<bool, EngineError>> = stream::iter(todo)
                .map(|idx| self.run_node(idx, step, Phase::Undo))
                .buffer_unordered(step.concurrency())
                .collect()
                .await;
            for r in results {
                r?;
            }
            let r = self.record.lock().await;
            undo_error = r
                .nodes
                .iter()
                .find(|n| n.step == step.name && n.state == NodeState::UndoFailed)
                .and_then(|n| n.undo_error.clone());
        }
        let now = self.engine.clock.now();
        let owner = self.engine.owner.clone();
        match undo_error {
            None => {
                self.write(|r| {
                    r.status = SagaStatus::RolledBack;
                    r.push_log(now, "saga", "rolled_back", None, &owner);
                })
                .await
            }
            Some(err) => {
                let detail = format!("{}: {}", err.code, err.message);
                self.write(|r| {
                    r.status = SagaStatus::RollbackFailed;
                    r.undo_error = Some(err);
                    r.push_log(now, "saga", "rollback_failed", Some(detail), &owner);
                })
                .await
            }
        }
    }

    async fn nodes_where(&self, step: &str, pred: impl Fn(NodeState) -> bool) -> Vec<usize> {
        let r = self.record.lock().await;
        r.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.step == step && pred(n.state))
            .map(|(i, _)| i)
            .collect()
    }

    /// Run one node's action (or undo) with retries. Returns whether it ended well; a `false`
    /// is recorded in the node (FAILED / UNDO_FAILED) before returning.
    async fn run_node(
        &self,
        idx: usize,
        step: &StepDef<C>,
        phase: Phase,
    ) -> Result<bool, EngineError> {
        let e = self.engine;
        let (policy, started, ok_state, bad_state, ev_start, ev_ok, ev_bad): (
            &RetryPolicy,
            NodeState,
            NodeState,
            NodeState,
            &str,
            &str,
            &str,
        ) = match phase {
            Phase::Forward => (
                &step.retry,
                NodeState::Started,
                NodeState::Succeeded,
                NodeState::Failed,
                "started",
                "succeeded",
                "failed",
            ),
            Phase::Undo => (
                &step.undo_retry,
                NodeState::UndoStarted,
                NodeState::Undone,
                NodeState::UndoFailed,
                "undo_started",
                "undone",
                "undo_failed",
            ),
        };
        let first_at = e.clock.now();
        let mut attempt_in_run: u32 = 0;
        let mut retry_note: Option<String> = None;
        loop {
            attempt_in_run += 1;
            let now = e.clock.now();
            let owner = e.owner.clone();
            let note = retry_note.take();
            // Before the side effect: mark the node started so a crash re-runs it.
            self.write(|r| {
                if let Some(n) = r.nodes.get_mut(idx) {
                    n.state = started;
                    match phase {
                        Phase::Forward => {
                            n.attempts += 1;
                            n.started_at.get_or_insert(now);
                        }
                        Phase::Undo => n.undo_attempts += 1,
                    }
                    let key = n.key();
                    r.push_log(now, &key, ev_start, note, &owner);
                }
            })
            .await?;
            self.fence().await?;
            let (node_ctx, output) = self.node_ctx(idx).await;
            let result = match phase {
                Phase::Forward => step.action.run(&e.ctx, &node_ctx).await,
                Phase::Undo => step
                    .action
                    .undo(&e.ctx, &node_ctx, output.as_ref())
                    .await
                    .map(|()| Value::Null),
            };
            let now = e.clock.now();
            match result {
                Ok(value) => {
                    self.write(|r| {
                        if let Some(n) = r.nodes.get_mut(idx) {
                            n.state = ok_state;
                            match phase {
                                Phase::Forward => n.error = None,
                                Phase::Undo => n.undo_error = None,
                            }
                            n.finished_at = Some(now);
                            if phase == Phase::Forward {
                                n.output = Some(value);
                            }
                            let key = n.key();
                            r.push_log(now, &key, ev_ok, None, &owner);
                        }
                    })
                    .await?;
                    return Ok(true);
                }
                Err(err) => {
                    let elapsed = Duration::from_millis(now.saturating_sub(first_at));
                    let delay = policy.delay(attempt_in_run, e.random.unit());
                    let may_retry = err.is_retryable()
                        && attempt_in_run < policy.max_attempts
                        && elapsed + delay < policy.budget;
                    if may_retry {
                        // The next STARTED write records the retry and renews the lease.
                        retry_note = Some(format!(
                            "retry {} after {}: {} (waited {} ms)",
                            attempt_in_run,
                            err.code,
                            err.message,
                            delay.as_millis()
                        ));
                        e.clock.sleep(delay).await;
                        continue;
                    }
                    let final_err = if err.is_retryable() {
                        ErrorInfo {
                            kind: ErrorKind::BudgetExhausted,
                            message: format!(
                                "gave up after {attempt_in_run} attempts in {} ms: {}",
                                elapsed.as_millis(),
                                err.message
                            ),
                            ..err
                        }
                    } else {
                        err
                    };
                    let detail = format!("{}: {}", final_err.code, final_err.message);
                    self.write(|r| {
                        if let Some(n) = r.nodes.get_mut(idx) {
                            n.state = bad_state;
                            match phase {
                                Phase::Forward => n.error = Some(final_err),
                                Phase::Undo => n.undo_error = Some(final_err),
                            }
                            n.finished_at = Some(now);
                            let key = n.key();
                            r.push_log(now, &key, ev_bad, Some(detail), &owner);
                        }
                    })
                    .await?;
                    return Ok(false);
                }
            }
        }
    }

    /// The context for node `idx` and its recorded output (for the undo).
    async fn node_ctx(&self, idx: usize) -> (NodeCtx, Option<Value>) {
        let r = self.record.lock().await;
        let outputs: BTreeMap<String, Value> = r
            .nodes
            .iter()
            .filter_map(|n| n.output.clone().map(|o| (n.key(), o)))
            .collect();
        let node = r.nodes.get(idx);
        let ctx = NodeCtx {
            saga_id: r.id.clone(),
            namespace: r.namespace.clone(),
            input: self.input.clone(),
            target: node.and_then(|n| n.target.clone()),
            outputs: Arc::new(outputs),
            attempt: node.map_or(1, |n| n.attempts),
            worker: self.engine.owner.clone(),
        };
        (ctx, node.and_then(|n| n.output.clone()))
    }
}
