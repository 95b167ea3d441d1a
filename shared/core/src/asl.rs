//! Amazon States Language export of a saga definition, so Step Functions can drive the same
//! steps the engine runs (`onboard export-asl`, `infra/statemachine/`).
//!
//! Every Task invokes one step handler (the `onboard-step` Lambda, [`crate::engine_step`]) that
//! runs exactly one node — the action or the undo of one step, for one target — and records it
//! in the saga store like the engine does. The state machine mirrors the engine:
//!
//! * `Begin` takes the saga's lease (or re-drives it) and routes: RUNNING → the first step,
//!   ROLLING_BACK → the undo of the last step (a resumed rollback), anything else → done.
//! * A step that runs once is a Task; a per-target step is a Map over the saga's targets with
//!   the step's concurrency as `MaxConcurrency`. A failed branch does not abort the Map (that
//!   would leave siblings' side effects in flight): it yields `false`, and a Choice after the
//!   Map starts the rollback once every branch has finished — as the engine waits for its
//!   in-flight branches.
//! * Retry mirrors the engine's classification: the handler fails with [`ERROR_RETRYABLE`] for
//!   throttling, 5xx, timeouts, not-yet-consistent and lock contention, retried with the step's
//!   [`RetryPolicy`] (exponential backoff, full jitter, capped delay); the handler itself turns
//!   the last attempt, or one past the step's time budget, into a terminal `BudgetExhausted`
//!   like the engine. Anything else is [`ERROR_TERMINAL`]: the node is recorded FAILED and the
//!   saga ROLLING_BACK.
//! * A failure of a step without side effects ([`StepDef::side_effects`]) that only such steps
//!   precede (preflight: onboard's `validate`, change's `check`, offboard's `inventory`) ends in
//!   `Record refused`: REFUSED with the cause, no compensation, as the engine does.
//! * Compensation runs in reverse order from the failed step (whose node may have had an
//!   effect) down to the first; an undo that fails ends in `Rollback failed`, which records
//!   ROLLBACK_FAILED and marks earlier nodes UNDO_BLOCKED, as the engine does.
//! * A saga that recovers forward ([`Recovery::Forward`], e.g. offboard) has no compensation:
//!   a terminal failure ends in `Record needs attention` (NEEDS_ATTENTION with the cause), and a
//!   re-drive runs the failed nodes again and carries on.
//! * [`ERROR_LEASE_LOST`] (another worker or execution advanced the saga) stops the execution
//!   without touching anything.
//!
//! The deployed machine ([`combined`]) holds every kind's states behind a router: its first
//! Task asks which kind the input's saga is, and every Task names its kind so one step handler
//! ([`crate::engine_step::StepRunners`]) runs them all.

use serde_json::{json, Map, Value};

use crate::saga::{FanOut, Recovery, RetryPolicy, SagaDef, StepDef};

/// A node failed with a retryable error and has attempts and budget left.
pub const ERROR_RETRYABLE: &str = "Saga.Retryable";
/// A node failed terminally (recorded FAILED / UNDO_FAILED).
pub const ERROR_TERMINAL: &str = "Saga.Terminal";
/// The saga is leased by another worker or execution, or advanced under us.
pub const ERROR_LEASE_LOST: &str = "Saga.LeaseLost";
/// The request names no saga of this kind, or an unknown step.
pub const ERROR_INVALID: &str = "Saga.Invalid";

/// The Lambda service's transient errors, retried for every Task (AWS's recommended list, plus
/// a timed-out invocation: every node is idempotent, so running it again is safe).
pub const LAMBDA_TRANSIENT_ERRORS: [&str; 5] = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Sandbox.Timedout",
];

/// The placeholder for the step handler's ARN (a SAM `DefinitionSubstitutions` key).
pub const STEP_HANDLER_PLACEHOLDER: &str = "${StepHandlerArn}";

/// What the step handler is asked to do (the Task payload's `op`).
pub mod op {
    /// The combined machine's first Task: which kind of saga the input names.
    pub const KIND: &str = "kind";
    pub const BEGIN: &str = "begin";
    pub const ACTION: &str = "action";
    pub const UNDO: &str = "undo";
    pub const FINISH: &str = "finish";
}

/// The outcomes `finish` records.
pub mod outcome {
    pub const SUCCEEDED: &str = "succeeded";
    pub const ROLLED_BACK: &str = "rolled_back";
    /// A step without side effects refused the saga before anything was changed.
    pub const REFUSED: &str = "refused";
    pub const ROLLBACK_FAILED: &str = "rollback_failed";
    /// Forward recovery (offboard): a terminal failure stops the saga for an operator.
    pub const NEEDS_ATTENTION: &str = "needs_attention";
}

/// One exported state machine: its file name and definition.
#[derive(Debug, Clone, PartialEq)]
pub struct AslDocument {
    pub kind: String,
    pub file_name: String,
    pub definition: Value,
}

/// What `infra/statemachine/` holds: the one machine for every saga kind ([`combined`]); the
/// kinds are onboard and [`crate::lifecycle::definitions`].
pub fn exported() -> Vec<AslDocument> {
    vec![AslDocument {
        kind: "all".into(),
        file_name: COMBINED_FILE.into(),
        definition: combined(STEP_HANDLER_PLACEHOLDER),
    }]
}

/// The file of the one deployed state machine: every saga kind behind a router.
pub const COMBINED_FILE: &str = "sagas.asl.json";

/// The longest state name Step Functions accepts.
pub const MAX_STATE_NAME: usize = 80;

const KIND_TASK: &str = "Which saga";
const BY_KIND: &str = "By kind";

/// Every saga kind's state machine, in the order the router lists them.
fn kind_machines(function_arn: &str) -> Vec<(&'static str, Value)> {
    use crate::onboard::{self, OnboardConfig};
    let onboard_config = OnboardConfig::default();
    let onboard = onboard::definition(&onboard_config);
    let mut machines = vec![(onboard.kind, export(&onboard, function_arn))];
    for def in crate::lifecycle::definitions(onboard_config.instance_concurrency) {
        machines.push((def.kind, export(&def, function_arn)));
    }
    machines
}

/// One state machine for every saga kind: a first Task asks the step handler which kind the
/// input's saga is, a Choice enters that kind's states (each kind's [`export`], its state
/// names prefixed `<kind>: `). One machine, because the queue feeds one EventBridge Pipe and a
/// pipe has one target: several filtered pipes on one queue would delete each other's
/// messages.
pub fn combined(function_arn: &str) -> Value {
    let mut states = Map::new();
    let mut kind_task = task(
        json!({ "op": op::KIND, "sagaId.$": "$.sagaId", "owner.$": "$$.Execution.Id" }),
        retry(&RetryPolicy::default()),
    );
    kind_task.insert(
        "ResultSelector".into(),
        json!({ "kind.$": "$.Payload.kind" }),
    );
    kind_task.insert("ResultPath".into(), json!("$.route"));
    kind_task.insert(
        "Catch".into(),
        json!([
            { "ErrorEquals": [ERROR_INVALID], "ResultPath": "$.error", "Next": REJECTED },
            { "ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": INTERRUPTED }
        ]),
    );
    kind_task.insert("Next".into(), json!(BY_KIND));
    states.insert(KIND_TASK.into(), Value::Object(kind_task));
    let mut choices = Vec::new();
    for (kind, mut machine) in kind_machines("__FUNCTION__") {
        let prefix = format!("{kind}: ");
        prefix_names(&mut machine, &prefix);
        choices.push(json!({
            "Variable": "$.route.kind",
            "StringEquals": kind,
            "Next": machine["StartAt"].clone()
        }));
        if let Value::Object(kind_states) = machine["States"].take() {
            states.extend(kind_states);
        }
    }
    states.insert(
        BY_KIND.into(),
        json!({ "Type": "Choice", "Choices": choices, "Default": REJECTED }),
    );
    states.insert(INTERRUPTED.into(), interrupted());
    states.insert(
        REJECTED.into(),
        json!({
            "Type": "Fail",
            "Error": ERROR_INVALID,
            "Cause": "The input names no saga, or a saga of a kind this state machine does not run."
        }),
    );
    let mut machine = json!({
        "Comment": "Every saga kind of the onboarding service (exported from onboard_core::asl; \
                    regenerate with `onboard export-asl`, do not edit). Input: {\"sagaId\": \
                    \"sg-…\", \"action\": \"run\" | \"redrive\"}.",
        "StartAt": KIND_TASK,
        "States": Value::Object(states)
    });
    set_function(&mut machine, function_arn);
    machine
}

/// Prefix every state name of `machine` (and every transition to one), nested Map scopes
/// included, so several kinds' states can share one `States` object.
fn prefix_names(v: &mut Value, prefix: &str) {
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                match (k.as_str(), x) {
                    ("Next" | "Default" | "StartAt", Value::String(name)) => {
                        *name = format!("{prefix}{name}");
                    }
                    ("States", Value::Object(states)) => {
                        *states = std::mem::take(states)
                            .into_iter()
                            .map(|(name, mut state)| {
                                prefix_names(&mut state, prefix);
                                (format!("{prefix}{name}"), state)
                            })
                            .collect();
                    }
                    (_, x) => prefix_names(x, prefix),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| prefix_names(x, prefix)),
        _ => {}
    }
}

fn interrupted() -> Value {
    json!({
        "Type": "Fail",
        "Error": "Saga.Interrupted",
        "Cause": "The step handler could not record progress; the record is intact and the reconciler resumes the saga once its lease expires."
    })
}

/// The file text of a document: pretty JSON with a final newline.
pub fn to_file_text(doc: &AslDocument) -> String {
    let mut text = serde_json::to_string_pretty(&doc.definition).unwrap_or_default();
    text.push('\n');
    text
}

fn run_state(step: &str) -> String {
    format!("Run {step}")
}
fn undo_state(step: &str) -> String {
    format!("Undo {step}")
}

const BEGIN: &str = "Begin";
const ROUTE: &str = "Route";
const FINISH_SUCCEEDED: &str = "Record succeeded";
const FINISH_ROLLED_BACK: &str = "Record rolled back";
const FINISH_REFUSED: &str = "Record refused";
const FINISH_ROLLBACK_FAILED: &str = "Record rollback failed";
const FINISH_NEEDS_ATTENTION: &str = "Record needs attention";
const NEEDS_ATTENTION: &str = "NeedsAttention";
const SUCCEEDED: &str = "Succeeded";
const ROLLED_BACK: &str = "RolledBack";
const REFUSED: &str = "Refused";
const ROLLBACK_FAILED: &str = "RollbackFailed";
const NOTHING_TO_DO: &str = "Nothing to do";
const SUPERSEDED: &str = "Superseded";
const INTERRUPTED: &str = "Interrupted";
const REJECTED: &str = "Rejected";

/// Whole seconds, at least 1 (ASL's smallest retry interval).
fn secs_ceil(d: std::time::Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

/// The Retry list of a node Task: the step's policy for retryable saga errors, and the Lambda
/// service's transient errors.
fn retry(policy: &RetryPolicy) -> Value {
    json!([
        {
            "ErrorEquals": [ERROR_RETRYABLE],
            "IntervalSeconds": secs_ceil(policy.base_delay),
            "MaxAttempts": policy.max_attempts.saturating_sub(1),
            "BackoffRate": 2.0,
            "MaxDelaySeconds": secs_ceil(policy.max_delay),
            "JitterStrategy": "FULL",
            "Comment": format!(
                "The engine's RetryPolicy: {} attempts, {} ms base, {} ms cap, full jitter; the \
                 handler ends retries after {} s (the step's budget) as the engine does.",
                policy.max_attempts,
                policy.base_delay.as_millis(),
                policy.max_delay.as_millis(),
                policy.budget.as_secs()
            )
        },
        {
            "ErrorEquals": LAMBDA_TRANSIENT_ERRORS,
            "IntervalSeconds": 1,
            "MaxAttempts": 6,
            "BackoffRate": 2.0,
            "JitterStrategy": "FULL"
        }
    ])
}

/// A Task invoking the step handler with `payload`.
fn task(payload: Value, retry: Value) -> Map<String, Value> {
    let mut t = Map::new();
    t.insert("Type".into(), json!("Task"));
    t.insert("Resource".into(), json!("arn:aws:states:::lambda:invoke"));
    t.insert(
        "Parameters".into(),
        json!({ "FunctionName": "__FUNCTION__", "Payload": payload }),
    );
    t.insert("Retry".into(), retry);
    t
}

fn node_payload(kind: &str, op: &str, step: &str, per_target: bool) -> Value {
    let mut p = json!({
        "kind": kind,
        "op": op,
        "step": step,
        "sagaId.$": "$.sagaId",
        "owner.$": if per_target { "$.owner" } else { "$$.Execution.Id" },
    });
    if per_target {
        p["target.$"] = json!("$.target");
    }
    p
}

/// The states of one node (a Task, or a Map of Tasks for a per-target step). `next` follows
/// success; `on_failure` follows a terminal failure of the node (or of any branch).
fn node_states<C: ?Sized + Send + Sync>(
    states: &mut Map<String, Value>,
    kind: &str,
    step: &StepDef<C>,
    undo: bool,
    next: &str,
    on_failure: &str,
) {
    let (op, name, policy) = if undo {
        (op::UNDO, undo_state(step.name), &step.undo_retry)
    } else {
        (op::ACTION, run_state(step.name), &step.retry)
    };
    let lease_lost = json!({ "ErrorEquals": [ERROR_LEASE_LOST], "Next": SUPERSEDED });
    match step.fan_out {
        FanOut::Once => {
            let mut t = task(node_payload(kind, op, step.name, false), retry(policy));
            t.insert("ResultPath".into(), Value::Null);
            t.insert(
                "Catch".into(),
                json!([
                    lease_lost,
                    { "ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": on_failure }
                ]),
            );
            t.insert("Next".into(), json!(next));
            states.insert(name, Value::Object(t));
        }
        FanOut::PerTarget { concurrency } => {
            let inner = format!("{name} node");
            let ok = format!("{name} node done");
            let failed = format!("{name} node failed");
            let lost = format!("{name} node superseded");
            let mut t = task(node_payload(kind, op, step.name, true), retry(policy));
            t.insert("ResultPath".into(), Value::Null);
            t.insert(
                "Catch".into(),
                json!([
                    { "ErrorEquals": [ERROR_LEASE_LOST], "Next": lost },
                    { "ErrorEquals": ["States.ALL"], "Next": failed }
                ]),
            );
            t.insert("Next".into(), json!(ok));
            let check = format!("{name} failed?");
            states.insert(
                name.clone(),
                json!({
                    "Type": "Map",
                    "Comment": format!(
                        "One branch per target, {concurrency} at a time; a failed branch yields \
                         false so its siblings finish before the rollback starts."
                    ),
                    "ItemsPath": "$.saga.targets",
                    "MaxConcurrency": concurrency,
                    "ItemSelector": {
                        "sagaId.$": "$.sagaId",
                        "owner.$": "$$.Execution.Id",
                        "target.$": "$$.Map.Item.Value"
                    },
                    "ItemProcessor": {
                        "ProcessorConfig": { "Mode": "INLINE" },
                        "StartAt": inner,
                        "States": {
                            inner.clone(): Value::Object(t),
                            ok: { "Type": "Pass", "Result": true, "End": true },
                            failed: { "Type": "Pass", "Result": false, "End": true },
                            lost: {
                                "Type": "Fail",
                                "Error": ERROR_LEASE_LOST,
                                "Cause": "Another worker or execution advanced this saga."
                            }
                        }
                    },
                    "ResultSelector": { "failed.$": "States.ArrayContains($, false)" },
                    "ResultPath": "$.check",
                    "Catch": [
                        lease_lost,
                        { "ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": on_failure }
                    ],
                    "Next": check
                }),
            );
            states.insert(
                check,
                json!({
                    "Type": "Choice",
                    "Choices": [
                        { "Variable": "$.check.failed", "BooleanEquals": true, "Next": on_failure }
                    ],
                    "Default": next
                }),
            );
        }
    }
}

/// A `finish` Task recording `outcome`, then `then`.
fn finish(kind: &str, outcome: &str, then: &str) -> Value {
    let mut t = task(
        json!({ "kind": kind, "op": op::FINISH, "outcome": outcome, "sagaId.$": "$.sagaId", "owner.$": "$$.Execution.Id" }),
        retry(&RetryPolicy::default()),
    );
    t.insert("ResultPath".into(), Value::Null);
    t.insert(
        "Catch".into(),
        json!([
            { "ErrorEquals": [ERROR_LEASE_LOST], "Next": SUPERSEDED },
            { "ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": INTERRUPTED }
        ]),
    );
    t.insert("Next".into(), json!(then));
    Value::Object(t)
}

/// The state machine for `def`, invoking the step handler `function_arn` (an ARN or a
/// `DefinitionSubstitutions` placeholder).
pub fn export<C: ?Sized + Send + Sync>(def: &SagaDef<C>, function_arn: &str) -> Value {
    let mut states = Map::new();
    let steps = &def.steps;
    let first_run = steps
        .first()
        .map_or(FINISH_SUCCEEDED.to_string(), |s| run_state(s.name));
    let last_undo = steps
        .last()
        .map_or(FINISH_ROLLED_BACK.to_string(), |s| undo_state(s.name));

    // Begin: take the lease (or re-drive) and learn the status and targets.
    let mut begin = task(
        json!({
            "kind": def.kind,
            "op": op::BEGIN,
            "sagaId.$": "$.sagaId",
            "action.$": "$.action",
            "owner.$": "$$.Execution.Id"
        }),
        retry(&RetryPolicy::default()),
    );
    begin.insert(
        "ResultSelector".into(),
        json!({ "status.$": "$.Payload.status", "targets.$": "$.Payload.targets" }),
    );
    begin.insert("ResultPath".into(), json!("$.saga"));
    begin.insert(
        "Catch".into(),
        json!([
            { "ErrorEquals": [ERROR_LEASE_LOST], "Next": SUPERSEDED },
            { "ErrorEquals": [ERROR_INVALID], "ResultPath": "$.error", "Next": REJECTED },
            { "ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": INTERRUPTED }
        ]),
    );
    begin.insert("Next".into(), json!(ROUTE));
    states.insert(BEGIN.into(), Value::Object(begin));
    let mut choices =
        vec![json!({ "Variable": "$.saga.status", "StringEquals": "RUNNING", "Next": first_run })];
    if def.recovery == Recovery::Backward {
        choices.push(
            json!({ "Variable": "$.saga.status", "StringEquals": "ROLLING_BACK", "Next": last_undo }),
        );
    }
    states.insert(
        ROUTE.into(),
        json!({ "Type": "Choice", "Choices": choices, "Default": NOTHING_TO_DO }),
    );

    let backward = def.recovery == Recovery::Backward;
    // Forward, in order; a failure of step i starts the compensation at step i (or, for a
    // saga that recovers forward, stops it for an operator), unless no step up to i has side
    // effects: then nothing was changed and the saga is refused.
    for (i, step) in steps.iter().enumerate() {
        let next = steps
            .get(i + 1)
            .map_or(FINISH_SUCCEEDED.to_string(), |s| run_state(s.name));
        let on_failure = if def.refuses_at(i) {
            FINISH_REFUSED.to_string()
        } else if backward {
            undo_state(step.name)
        } else {
            FINISH_NEEDS_ATTENTION.to_string()
        };
        node_states(&mut states, def.kind, step, false, &next, &on_failure);
    }
    states.insert(
        FINISH_SUCCEEDED.into(),
        finish(def.kind, outcome::SUCCEEDED, SUCCEEDED),
    );
    states.insert(SUCCEEDED.into(), json!({ "Type": "Succeed" }));
    if def.refuses_at(0) {
        states.insert(
            FINISH_REFUSED.into(),
            finish(def.kind, outcome::REFUSED, REFUSED),
        );
        states.insert(
            REFUSED.into(),
            json!({
                "Type": "Succeed",
                "Comment": "A step that changes nothing refused the request before anything was changed; the saga record is REFUSED with every finding and its fix, and there was nothing to roll back."
            }),
        );
    }
    if backward {
        // Compensation, in reverse order.
        for (i, step) in steps.iter().enumerate().rev() {
            let next = match i.checked_sub(1).and_then(|j| steps.get(j)) {
                Some(prev) => undo_state(prev.name),
                None => FINISH_ROLLED_BACK.to_string(),
            };
            node_states(
                &mut states,
                def.kind,
                step,
                true,
                &next,
                FINISH_ROLLBACK_FAILED,
            );
        }
        states.insert(
            FINISH_ROLLED_BACK.into(),
            finish(def.kind, outcome::ROLLED_BACK, ROLLED_BACK),
        );
        states.insert(
            FINISH_ROLLBACK_FAILED.into(),
            finish(def.kind, outcome::ROLLBACK_FAILED, ROLLBACK_FAILED),
        );
        states.insert(
            ROLLED_BACK.into(),
            json!({
                "Type": "Succeed",
                "Comment": "Every touched resource was undone; the saga record is ROLLED_BACK with the cause."
            }),
        );
        states.insert(
            ROLLBACK_FAILED.into(),
            json!({
                "Type": "Fail",
                "Error": "Saga.RollbackFailed",
                "Cause": "An undo failed; the saga record is ROLLBACK_FAILED with the error and its fix. Re-drive it once fixed."
            }),
        );
    } else {
        states.insert(
            FINISH_NEEDS_ATTENTION.into(),
            finish(def.kind, outcome::NEEDS_ATTENTION, NEEDS_ATTENTION),
        );
        states.insert(
            NEEDS_ATTENTION.into(),
            json!({
                "Type": "Fail",
                "Error": "Saga.NeedsAttention",
                "Cause": "A step failed terminally; the saga record is NEEDS_ATTENTION with the cause. Re-drive it once fixed: it carries on forward."
            }),
        );
    }
    states.insert(
        NOTHING_TO_DO.into(),
        json!({
            "Type": "Succeed",
            "Comment": "The saga had already finished, or another worker or execution holds its lease."
        }),
    );
    states.insert(
        SUPERSEDED.into(),
        json!({
            "Type": "Succeed",
            "Comment": "Another worker or execution advanced this saga; it carries on from the record."
        }),
    );
    states.insert(INTERRUPTED.into(), interrupted());
    states.insert(
        REJECTED.into(),
        json!({
            "Type": "Fail",
            "Error": ERROR_INVALID,
            "Cause": "The input names no saga of this kind."
        }),
    );

    let mut machine = json!({
        "Comment": format!(
            "The {} saga (exported from onboard_core::asl; regenerate with `onboard export-asl`, \
             do not edit). Input: {{\"sagaId\": \"sg-…\", \"action\": \"run\" | \"redrive\"}}.",
            def.kind
        ),
        "StartAt": BEGIN,
        "States": Value::Object(states)
    });
    set_function(&mut machine, function_arn);
    machine
}

/// Replace the function placeholder in every Task.
fn set_function(v: &mut Value, arn: &str) {
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                if k == "FunctionName" && val == "__FUNCTION__" {
                    *val = json!(arn);
                } else {
                    set_function(val, arn);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| set_function(x, arn)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::onboard::{self, OnboardConfig};

    fn machine() -> Value {
        export(&onboard::definition(&OnboardConfig::default()), "arn:fn")
    }

    fn state<'a>(m: &'a Value, name: &str) -> &'a Value {
        m["States"]
            .get(name)
            .unwrap_or_else(|| panic!("no state {name}"))
    }

    #[test]
    fn forward_steps_run_in_order_and_fan_out_as_maps() {
        let m = machine();
        assert_eq!(state(&m, "Route")["Choices"][0]["Next"], "Run validate");
        assert_eq!(state(&m, "Run validate")["Type"], "Task");
        assert_eq!(state(&m, "Run validate")["Next"], "Run create_application");
        assert_eq!(state(&m, "Run create_application")["Next"], "Run associate");
        let assoc = state(&m, "Run associate");
        assert_eq!(assoc["Type"], "Map");
        assert_eq!(assoc["MaxConcurrency"], 4);
        assert_eq!(
            state(&m, "Run associate failed?")["Default"],
            "Run grant_slr_policy"
        );
        assert_eq!(state(&m, "Run activate")["Next"], "Record succeeded");
    }

    #[test]
    fn a_failure_compensates_in_reverse_from_the_failed_step() {
        let m = machine();
        let catch = &state(&m, "Run create_application")["Catch"];
        assert_eq!(catch[0]["ErrorEquals"][0], ERROR_LEASE_LOST);
        assert_eq!(catch[1]["Next"], "Undo create_application");
        assert_eq!(
            state(&m, "Run associate failed?")["Choices"][0]["Next"],
            "Undo associate"
        );
        assert_eq!(
            state(&m, "Undo associate failed?")["Default"],
            "Undo create_application"
        );
        assert_eq!(
            state(&m, "Undo create_application")["Next"],
            "Undo validate"
        );
        assert_eq!(state(&m, "Undo validate")["Next"], "Record rolled back");
        assert_eq!(
            state(&m, "Undo create_application")["Catch"][1]["Next"],
            "Record rollback failed"
        );
        // A resumed rollback starts at the last step's undo.
        assert_eq!(state(&m, "Route")["Choices"][1]["Next"], "Undo activate");
    }

    #[test]
    fn a_failure_of_validate_is_a_refusal_with_no_compensation() {
        let m = machine();
        assert_eq!(
            state(&m, "Run validate")["Catch"][1]["Next"],
            "Record refused"
        );
        let finish = state(&m, "Record refused");
        assert_eq!(finish["Parameters"]["Payload"]["outcome"], outcome::REFUSED);
        assert_eq!(finish["Next"], "Refused");
        assert_eq!(state(&m, "Refused")["Type"], "Succeed");
        // A step with side effects after it still compensates.
        assert_eq!(
            state(&m, "Run create_application")["Catch"][1]["Next"],
            "Undo create_application"
        );
        // Without the mark, validate's failure would roll back.
        let mut def = onboard::definition(&OnboardConfig::default());
        def.steps[0].side_effects = true;
        let m = export(&def, "arn:fn");
        assert_eq!(
            state(&m, "Run validate")["Catch"][1]["Next"],
            "Undo validate"
        );
        assert!(m["States"].get("Record refused").is_none());
    }

    #[test]
    fn retries_mirror_the_retry_policy_and_classification() {
        let m = machine();
        let r = &state(&m, "Run validate")["Retry"][0];
        let p = RetryPolicy::default();
        assert_eq!(r["ErrorEquals"][0], ERROR_RETRYABLE);
        assert_eq!(r["MaxAttempts"], p.max_attempts - 1);
        assert_eq!(r["MaxDelaySeconds"], p.max_delay.as_secs());
        assert_eq!(
            r["IntervalSeconds"], 1,
            "200 ms rounds up to ASL's 1 s minimum"
        );
        assert_eq!(r["JitterStrategy"], "FULL");
        // Terminal errors are never retried.
        let retried: Vec<&Value> = state(&m, "Run validate")["Retry"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["ErrorEquals"].as_array().unwrap())
            .collect();
        assert!(!retried
            .iter()
            .any(|e| *e == ERROR_TERMINAL || *e == "States.ALL"));
    }

    #[test]
    fn a_saga_that_recovers_forward_has_no_compensation() {
        let mut def = onboard::definition(&OnboardConfig::default());
        def.recovery = Recovery::Forward;
        let m = export(&def, "arn:fn");
        assert_eq!(
            state(&m, "Run create_application")["Catch"][1]["Next"],
            "Record needs attention"
        );
        assert_eq!(
            state(&m, "Run associate failed?")["Choices"][0]["Next"],
            "Record needs attention"
        );
        assert!(m["States"].get("Undo create_application").is_none());
        assert_eq!(state(&m, "Route")["Choices"].as_array().unwrap().len(), 1);
        assert_eq!(state(&m, "NeedsAttention")["Type"], "Fail");
    }

    /// Every `Next`/`Default`/`StartAt` names a state of its own scope (a Map's
    /// `ItemProcessor` is a scope of its own), and every name fits Step Functions' limit.
    fn check_scope(scope: &Value) {
        fn walk(states: &Map<String, Value>, v: &Value) {
            match v {
                Value::Object(o) => {
                    for (k, x) in o {
                        if k == "Next" || k == "Default" || k == "StartAt" {
                            let target = x.as_str().unwrap();
                            assert!(states.contains_key(target), "{target} is no state");
                        }
                        if k == "ItemProcessor" {
                            check_scope(x);
                        } else if k != "States" {
                            walk(states, x);
                        }
                    }
                }
                Value::Array(a) => a.iter().for_each(|x| walk(states, x)),
                _ => {}
            }
        }
        let states = scope["States"].as_object().unwrap();
        for (name, state) in states {
            assert!(name.len() <= MAX_STATE_NAME, "{name} is too long");
            walk(states, state);
        }
        let start = scope["StartAt"].as_str().unwrap();
        assert!(states.contains_key(start), "StartAt {start} is no state");
    }

    #[test]
    fn every_transition_names_an_existing_state() {
        let m = machine();
        check_scope(&m);
        assert!(m.to_string().contains("\"arn:fn\""));
        assert!(!m.to_string().contains("__FUNCTION__"));
    }

    /// Every Task's payload, with the name of the state that sends it.
    fn tasks<'v>(scope: &'v Value, out: &mut Vec<(&'v str, &'v Value)>) {
        for (name, state) in scope["States"].as_object().unwrap() {
            match state["Type"].as_str() {
                Some("Task") => out.push((name, &state["Parameters"]["Payload"])),
                Some("Map") => tasks(&state["ItemProcessor"], out),
                _ => {}
            }
        }
    }

    #[test]
    fn the_combined_machine_routes_every_kind_to_its_own_states() {
        use crate::lifecycle::{adopt, change, offboard};
        let m = combined("arn:fn");
        check_scope(&m);
        assert_eq!(m["StartAt"], KIND_TASK);
        assert_eq!(
            state(&m, KIND_TASK)["Parameters"]["Payload"]["op"],
            op::KIND
        );
        let kinds = [
            onboard::KIND,
            change::KIND,
            change::FIX_KIND,
            offboard::KIND,
            adopt::KIND,
        ];
        let choices = state(&m, BY_KIND)["Choices"].as_array().unwrap();
        assert_eq!(choices.len(), kinds.len());
        for (choice, kind) in choices.iter().zip(kinds) {
            assert_eq!(choice["StringEquals"], kind);
            assert_eq!(choice["Next"], format!("{kind}: Begin"));
        }
        assert_eq!(state(&m, BY_KIND)["Default"], REJECTED);
        // Each kind's states are its own export, renamed; a backward saga compensates, a
        // forward one (offboard) does not.
        assert_eq!(
            state(&m, "change: Run check")["Catch"][1]["Next"],
            "change: Record refused",
            "check changes nothing: its failure is a refusal"
        );
        assert_eq!(
            state(&m, "change: Run detach_profiles failed?")["Choices"][0]["Next"],
            "change: Undo detach_profiles"
        );
        assert_eq!(
            state(&m, "offboard: Run inventory")["Catch"][1]["Next"],
            "offboard: Record refused"
        );
        assert!(
            m["States"].get("adopt: Record refused").is_none(),
            "adopt's only step has a side effect (the tag)"
        );
        assert!(m["States"].get("offboard: Undo inventory").is_none());
        assert_eq!(
            state(&m, "offboard: Record needs attention")["Next"],
            "offboard: NeedsAttention"
        );
        // Every Task but the router's names the kind whose states it belongs to.
        let mut all = Vec::new();
        tasks(&m, &mut all);
        assert!(all.len() > 40, "{} tasks", all.len());
        for (name, payload) in all {
            if name == KIND_TASK {
                continue;
            }
            let kind = payload["kind"].as_str().unwrap();
            assert!(
                name.starts_with(&format!("{kind}: ")),
                "{name} sends kind {kind}"
            );
        }
        assert!(!m.to_string().contains("__FUNCTION__"));
        let exported = exported();
        assert_eq!(exported.len(), 1);
        assert_eq!(exported[0].file_name, COMBINED_FILE);
    }
}
