//! Saga definitions: an ordered list of steps, each an action beside its undo.
//!
//! A definition is data as well as code: its steps, fan-out and retry policies can be listed
//! (e.g. to export Amazon States Language) while the actions stay ordinary async Rust.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::StepError;
use crate::record::{node_key, Millis, NodeRecord, NodeState, SagaRecord, SagaStatus};

/// What an action or undo sees of its saga.
#[derive(Debug, Clone)]
pub struct NodeCtx {
    pub saga_id: String,
    pub namespace: String,
    /// The saga's input as submitted (e.g. the application spec).
    pub input: Arc<Value>,
    /// The fan-out target (an instance id) for a per-target step.
    pub target: Option<String>,
    /// Outputs of the nodes that had succeeded when this node started, by node key.
    pub outputs: Arc<BTreeMap<String, Value>>,
    /// 1 for the first attempt of this node, counted across resumes.
    pub attempt: u32,
    /// The worker (engine owner) running the node: part of the resource-lock owner, so a
    /// stale worker and the one that took its saga over never share a lock.
    pub worker: String,
}

impl NodeCtx {
    /// The output of a step that runs once.
    pub fn output_of(&self, step: &str) -> Option<&Value> {
        self.outputs.get(step)
    }

    /// The output of one target of a fan-out step.
    pub fn output_of_target(&self, step: &str, target: &str) -> Option<&Value> {
        self.outputs.get(&node_key(step, Some(target)))
    }
}

/// One step: the forward action and the compensation that undoes it.
///
/// Both must be idempotent: they can run twice, after a crash or a dropped response. `undo`
/// also runs for a node whose action failed or whose outcome is unknown (`output` is then
/// `None`), so it must find what the action may have created by a deterministic identity and
/// treat "not found" as done.
#[async_trait]
pub trait StepAction<C: ?Sized + Send + Sync>: Send + Sync {
    async fn run(&self, ctx: &C, node: &NodeCtx) -> Result<Value, StepError>;
    async fn undo(&self, ctx: &C, node: &NodeCtx, output: Option<&Value>) -> Result<(), StepError>;
}

/// How many nodes a step has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanOut {
    /// One node.
    Once,
    /// One node per saga target, at most `concurrency` running at a time.
    PerTarget { concurrency: usize },
}

/// Exponential backoff with full jitter inside a time budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in one run of the node, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// No retry starts once this much time has passed since the node's first attempt.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
            budget: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (1-based): uniform in `[0, min(cap, base·2^(retry-1))]`.
    pub fn delay(&self, retry: u32, unit_random: f64) -> Duration {
        let exp = self.base_delay.saturating_mul(
            1u32.checked_shl(retry.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let ceiling = exp.min(self.max_delay);
        ceiling.mul_f64(unit_random.clamp(0.0, 1.0))
    }
}

/// A step of a saga definition.
pub struct StepDef<C: ?Sized + Send + Sync> {
    pub name: &'static str,
    pub fan_out: FanOut,
    pub action: Arc<dyn StepAction<C>>,
    pub retry: RetryPolicy,
    pub undo_retry: RetryPolicy,
    /// False for a step that only reads (preflight): its terminal failure before any step
    /// with side effects started refuses the saga (REFUSED) instead of rolling it back.
    pub side_effects: bool,
}

impl<C: ?Sized + Send + Sync> StepDef<C> {
    /// A step that runs once with the default retry policies.
    pub fn once(name: &'static str, action: Arc<dyn StepAction<C>>) -> Self {
        StepDef {
            name,
            fan_out: FanOut::Once,
            action,
            retry: RetryPolicy::default(),
            undo_retry: RetryPolicy::default(),
            side_effects: true,
        }
    }

    /// A step with a node per target, `concurrency` at a time.
    pub fn per_target(
        name: &'static str,
        concurrency: usize,
        action: Arc<dyn StepAction<C>>,
    ) -> Self {
        StepDef {
            fan_out: FanOut::PerTarget {
                concurrency: concurrency.max(1),
            },
            ..StepDef::once(name, action)
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy, undo_retry: RetryPolicy) -> Self {
        self.retry = retry;
        self.undo_retry = undo_retry;
        self
    }

    /// Mark the step as changing nothing (it only reads), so a refusal by it ends the saga
    /// REFUSED rather than ROLLED_BACK. Its undo still exists (and must be a no-op) for a
    /// rollback that passes it.
    pub fn without_side_effects(mut self) -> Self {
        self.side_effects = false;
        self
    }

    pub fn concurrency(&self) -> usize {
        match self.fan_out {
            FanOut::Once => 1,
            FanOut::PerTarget { concurrency } => concurrency,
        }
    }
}

/// What a saga does after a terminal failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Undo every step that may have had an effect, in reverse order (onboard, edit).
    Backward,
    /// Stop in NEEDS_ATTENTION with the cause; a re-drive resumes forward. For sagas whose
    /// purpose is removal (offboard): undoing a half-done removal would recreate what the
    /// operator asked to remove.
    Forward,
}

/// An ordered list of steps under a name (`kind`).
pub struct SagaDef<C: ?Sized + Send + Sync> {
    pub kind: &'static str,
    pub steps: Vec<StepDef<C>>,
    pub recovery: Recovery,
}

/// What a new saga needs besides its definition.
#[derive(Debug, Clone)]
pub struct NewSaga {
    pub id: String,
    pub namespace: String,
    pub input: Value,
    pub targets: Vec<String>,
    pub idempotency_key: Option<String>,
    pub payload_hash: Option<String>,
    /// For a lifecycle saga: the application's root saga.
    pub parent: Option<String>,
}

impl<C: ?Sized + Send + Sync> SagaDef<C> {
    pub fn step(&self, name: &str) -> Option<&StepDef<C>> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// Whether a node of a step with side effects (or of a step this definition does not
    /// know) ever started in `record`: then a failure must be undone or recovered.
    pub fn side_effects_started(&self, record: &SagaRecord) -> bool {
        record.nodes.iter().any(|n| {
            let touches = self.step(&n.step).is_none_or(|s| s.side_effects);
            touches && (n.state != NodeState::Pending || n.started_at.is_some())
        })
    }

    /// Whether the terminal failure in `record` refuses the saga: its first FAILED node
    /// belongs to a step without side effects, and no step with side effects ever started,
    /// so nothing needs undoing.
    pub fn refuses(&self, record: &SagaRecord) -> bool {
        let pure_failure = record
            .nodes
            .iter()
            .find(|n| n.state == NodeState::Failed)
            .and_then(|n| self.step(&n.step))
            .is_some_and(|s| !s.side_effects);
        pure_failure && !self.side_effects_started(record)
    }

    /// Whether a failure of step `index` can only be a refusal: neither it nor any step
    /// before it has side effects (the exported state machine routes such failures to
    /// `Record refused`).
    pub fn refuses_at(&self, index: usize) -> bool {
        self.steps
            .get(..=index)
            .is_some_and(|before| before.iter().all(|s| !s.side_effects))
    }

    /// A PENDING record with one node per step (or per target of a fan-out step).
    pub fn new_record(&self, new: NewSaga, now: Millis) -> SagaRecord {
        let mut nodes = Vec::new();
        for step in &self.steps {
            let targets: Vec<Option<String>> = match step.fan_out {
                FanOut::Once => vec![None],
                FanOut::PerTarget { .. } => new.targets.iter().cloned().map(Some).collect(),
            };
            for target in targets {
                nodes.push(NodeRecord {
                    step: step.name.to_string(),
                    target,
                    state: NodeState::Pending,
                    attempts: 0,
                    undo_attempts: 0,
                    output: None,
                    error: None,
                    undo_error: None,
                    started_at: None,
                    finished_at: None,
                });
            }
        }
        SagaRecord {
            id: new.id,
            kind: self.kind.to_string(),
            namespace: new.namespace,
            status: SagaStatus::Pending,
            version: 1,
            lease: None,
            input: new.input,
            targets: new.targets,
            nodes,
            log: Vec::new(),
            cause: None,
            undo_error: None,
            idempotency_key: new.idempotency_key,
            payload_hash: new.payload_hash,
            managed: None,
            drift: None,
            drift_failure: None,
            parent: new.parent,
            created_at: now,
            updated_at: now,
        }
    }
}
