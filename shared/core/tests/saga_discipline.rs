//! Saga discipline: the onboard saga on the engine against an in-memory fake of
//! AppIntegrations, Connect and IAM. Every action and undo runs twice; a failure at every
//! step leaves the world pristine; a refusal by `validate` ends REFUSED with nothing undone;
//! a crash after every log write converges; racing engines advance a saga exactly once; a
//! failing undo ends ROLLBACK_FAILED and can be re-driven.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use onboard_core::engine::{Engine, EngineError, RunOutcome};
use onboard_core::error::{ErrorInfo, ErrorKind, StepError};
use onboard_core::idempotency::{self, IdempotencyConfig, SubmitError};
use onboard_core::onboard::{self, OnboardConfig, OnboardPorts};
use onboard_core::record::{Millis, NodeState, SagaRecord, SagaStatus};
use onboard_core::saga::{NodeCtx, SagaDef, StepAction, StepDef};
use onboard_core::spec::{parse_spec, ApplicationSpec};
use onboard_core::store::SagaStore;
use onboard_core::testkit::fake_world::{self as fw, FakeWorld};
use onboard_core::testkit::{CrashingStore, FixedRandom, ManualClock, MemoryLocks, MemoryStore};
use serde_json::{json, Value};

const STEPS: [&str; 6] = [
    "validate",
    "create_application",
    "associate",
    "grant_slr_policy",
    "grant_security_profiles",
    "activate",
];

fn spec_json() -> Value {
    json!({
        "displayName": "Acme CRM",
        "accessUrl": "https://crm.example.com/agent",
        "approvedOrigins": ["https://login.example.com"],
        "permissions": ["User.Details.View", "Contact.Details.View"],
        "instances": [fw::INSTANCE_ALPHA, fw::INSTANCE_BETA],
        "securityProfiles": [
            {"instance": fw::INSTANCE_ALPHA, "profiles": [fw::PROFILE_ALPHA_1]},
            {"instance": fw::INSTANCE_BETA, "profiles": [fw::PROFILE_BETA_1, fw::PROFILE_BETA_2]}
        ],
        "requester": {"source": "PORTAL", "principal": "alice@example.com"}
    })
}

fn spec() -> ApplicationSpec {
    parse_spec(spec_json().to_string().as_bytes()).unwrap()
}

/// A world, a store, a clock and the onboard definition (possibly with wrapped steps).
struct Harness {
    world: Arc<FakeWorld>,
    store: Arc<dyn SagaStore>,
    clock: Arc<ManualClock>,
    ports: Arc<OnboardPorts>,
    def: Arc<SagaDef<OnboardPorts>>,
}

impl Harness {
    fn new() -> Self {
        Self::with(Arc::new(MemoryStore::new()), |d| d)
    }

    fn with(
        store: Arc<dyn SagaStore>,
        wrap: impl FnOnce(SagaDef<OnboardPorts>) -> SagaDef<OnboardPorts>,
    ) -> Self {
        let world = Arc::new(FakeWorld::standard());
        let clock = Arc::new(ManualClock::default());
        let ports = Arc::new(OnboardPorts {
            apps: world.clone(),
            connect: world.clone(),
            iam: world.clone(),
            locks: Arc::new(MemoryLocks::new()),
            clock: clock.clone(),
        });
        Harness {
            world,
            store,
            clock,
            ports,
            def: Arc::new(wrap(onboard::definition(&OnboardConfig::default()))),
        }
    }

    fn engine(&self, owner: &str) -> Engine<OnboardPorts> {
        Engine::new(
            self.def.clone(),
            self.ports.clone(),
            self.store.clone(),
            self.clock.clone(),
            Arc::new(FixedRandom(0.5)),
            owner,
        )
    }

    async fn submit(&self, spec: &ApplicationSpec) -> String {
        let validated = spec.validate().unwrap();
        let new = onboard::new_saga(format!("saga-{}", validated.namespace), &validated).unwrap();
        let record = self.def.new_record(new, self.clock_now());
        let id = record.id.clone();
        self.store.create(&record).await.unwrap();
        id
    }

    fn clock_now(&self) -> Millis {
        onboard_core::clock::Clock::now(self.clock.as_ref())
    }

    async fn record(&self, id: &str) -> SagaRecord {
        self.store.get(id).await.unwrap().unwrap()
    }
}

/// The world after a clean onboarding of `spec()`.
async fn onboarded_world() -> fw::WorldSnapshot {
    let h = Harness::new();
    let id = h.submit(&spec()).await;
    assert_eq!(
        h.engine("w1").run(&id).await.unwrap(),
        RunOutcome::Finished(SagaStatus::Succeeded)
    );
    h.world.snapshot()
}

fn terminal(code: &str) -> ErrorInfo {
    ErrorInfo::new(ErrorKind::Denied, code, "injected terminal failure")
}

#[tokio::test]
async fn happy_path_onboards_everything_and_records_outputs() {
    let h = Harness::new();
    let before = h.world.snapshot();
    let id = h.submit(&spec()).await;
    let outcome = h.engine("w1").run(&id).await.unwrap();
    assert_eq!(outcome, RunOutcome::Finished(SagaStatus::Succeeded));

    let rec = h.record(&id).await;
    assert_eq!(rec.status, SagaStatus::Succeeded);
    assert!(rec.lease.is_none(), "a finished saga holds no lease");
    assert!(rec.nodes.iter().all(|n| n.state == NodeState::Succeeded));
    let app_arn = rec.output_of("create_application").unwrap()["arn"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(app_arn.starts_with("arn:aws:app-integrations:"));
    let assoc = rec.node("associate", Some(fw::INSTANCE_BETA)).unwrap();
    assert!(assoc.output.as_ref().unwrap()["arn"]
        .as_str()
        .unwrap()
        .contains("integration-association"));
    // Before and after every side effect: a started and a succeeded line per node.
    for n in &rec.nodes {
        let key = n.key();
        let events: Vec<&str> = rec
            .log
            .iter()
            .filter(|l| l.node == key)
            .map(|l| l.event.as_str())
            .collect();
        assert_eq!(events, ["started", "succeeded"], "log of {key}");
    }

    let after = h.world.snapshot();
    assert_ne!(after, before);
    assert_eq!(after.applications.len(), 1);
    assert_eq!(after.associations.len(), 2);
    let alpha_role = FakeWorld::slr_role_name(fw::INSTANCE_ALPHA);
    let policies = &after.roles[&alpha_role];
    assert!(policies.contains_key(onboard_core::policy::POLICY_NAME));
    assert_eq!(
        policies.get(fw::EXISTING_POLICY_NAME),
        before.roles[&alpha_role].get(fw::EXISTING_POLICY_NAME),
        "other inline policies are untouched"
    );
    assert_eq!(
        h.store
            .namespace_holder("crm.example.com/agent")
            .await
            .unwrap(),
        None
    );
}

/// Runs the inner action (or undo) twice, returning the second result: idempotence.
struct Twice(Arc<dyn StepAction<OnboardPorts>>);

#[async_trait]
impl StepAction<OnboardPorts> for Twice {
    async fn run(&self, c: &OnboardPorts, n: &NodeCtx) -> Result<Value, StepError> {
        let first = self.0.run(c, n).await?;
        let second = self.0.run(c, n).await?;
        assert_eq!(first, second, "a replayed action returns the same output");
        Ok(second)
    }
    async fn undo(
        &self,
        c: &OnboardPorts,
        n: &NodeCtx,
        o: Option<&Value>,
    ) -> Result<(), StepError> {
        self.0.undo(c, n, o).await?;
        self.0.undo(c, n, o).await
    }
}

/// Fails step `step` (for `target`, if given) terminally, before or after its real action.
struct FailAt {
    inner: Arc<dyn StepAction<OnboardPorts>>,
    target: Option<String>,
    after_effect: bool,
}

#[async_trait]
impl StepAction<OnboardPorts> for FailAt {
    async fn run(&self, c: &OnboardPorts, n: &NodeCtx) -> Result<Value, StepError> {
        if self.target.is_some() && n.target != self.target {
            return self.inner.run(c, n).await;
        }
        if self.after_effect {
            self.inner.run(c, n).await?;
        }
        Err(terminal("InjectedFailure"))
    }
    async fn undo(
        &self,
        c: &OnboardPorts,
        n: &NodeCtx,
        o: Option<&Value>,
    ) -> Result<(), StepError> {
        self.inner.undo(c, n, o).await
    }
}

fn map_steps(
    def: SagaDef<OnboardPorts>,
    mut f: impl FnMut(
        &'static str,
        Arc<dyn StepAction<OnboardPorts>>,
    ) -> Arc<dyn StepAction<OnboardPorts>>,
) -> SagaDef<OnboardPorts> {
    SagaDef {
        kind: def.kind,
        steps: def
            .steps
            .into_iter()
            .map(|s| StepDef {
                action: f(s.name, s.action.clone()),
                ..s
            })
            .collect(),
        recovery: def.recovery,
    }
}

#[tokio::test]
async fn every_action_twice_gives_the_same_world() {
    let expected = onboarded_world().await;
    let h = Harness::with(Arc::new(MemoryStore::new()), |d| {
        map_steps(d, |_, a| Arc::new(Twice(a)))
    });
    let id = h.submit(&spec()).await;
    assert_eq!(
        h.engine("w1").run(&id).await.unwrap(),
        RunOutcome::Finished(SagaStatus::Succeeded)
    );
    assert_eq!(h.world.snapshot(), expected);
}

#[tokio::test]
async fn every_undo_twice_gives_the_pristine_world() {
    let h = Harness::with(Arc::new(MemoryStore::new()), |d| {
        map_steps(d, |name, a| {
            let twice: Arc<dyn StepAction<OnboardPorts>> = Arc::new(Twice(a));
            if name == "activate" {
                Arc::new(FailAt {
                    inner: twice,
                    target: None,
                    after_effect: true,
                })
            } else {
                twice
            }
        })
    });
    let pristine = h.world.snapshot();
    let id = h.submit(&spec()).await;
    assert_eq!(
        h.engine("w1").run(&id).await.unwrap(),
        RunOutcome::Finished(SagaStatus::RolledBack)
    );
    assert_eq!(h.world.snapshot(), pristine);
}

#[tokio::test]
async fn a_failure_at_each_step_leaves_the_world_pristine() {
    for step in STEPS {
        for after_effect in [false, true] {
            // Fan-out steps fail on the second instance, so the first one's branch succeeded.
            let target = (!matches!(step, "validate" | "create_application" | "activate"))
                .then(|| fw::INSTANCE_BETA.to_string());
            let h = Harness::with(Arc::new(MemoryStore::new()), |d| {
                map_steps(d, |name, a| {
                    if name == step {
                        Arc::new(FailAt {
                            inner: a,
                            target: target.clone(),
                            after_effect,
                        })
                    } else {
                        a
                    }
                })
            });
            let pristine = h.world.snapshot();
            let id = h.submit(&spec()).await;
            let outcome = h.engine("w1").run(&id).await.unwrap();
            let case = format!("failure at {step} (after effect: {after_effect})");
            // `validate` changes nothing: its failure refuses the saga, nothing to undo.
            let refused = step == "validate";
            let expected = if refused {
                SagaStatus::Refused
            } else {
                SagaStatus::RolledBack
            };
            assert_eq!(outcome, RunOutcome::Finished(expected), "{case}");
            assert_eq!(h.world.snapshot(), pristine, "{case}");
            let rec = h.record(&id).await;
            assert_eq!(
                rec.cause.as_ref().unwrap().code,
                "InjectedFailure",
                "{case}"
            );
            assert!(
                rec.nodes.iter().any(|n| n.step == step
                    && n.error
                        .as_ref()
                        .is_some_and(|e| e.code == "InjectedFailure")),
                "{case}: the failed node keeps its error after its undo"
            );
            assert!(
                rec.nodes.iter().all(|n| match n.state {
                    NodeState::Failed => refused && n.step == "validate",
                    s => matches!(s, NodeState::Undone | NodeState::Pending),
                }),
                "{case}: every touched node undone (a refusal undoes nothing): {:?}",
                rec.nodes
                    .iter()
                    .map(|n| (n.key(), n.state))
                    .collect::<Vec<_>>()
            );
            assert_eq!(
                h.store.namespace_holder(&rec.namespace).await.unwrap(),
                None,
                "{case}"
            );
        }
    }
}

#[tokio::test]
async fn a_lost_response_at_each_mutating_call_rolls_back_to_pristine() {
    for op in [
        "create_application",
        "create_association",
        "put_role_policy",
        "set_profile_applications",
    ] {
        for nth in [1, 2] {
            let h = Harness::new();
            let pristine = h.world.snapshot();
            h.world.apply_then_fail(op, nth, terminal("ResponseLost"));
            let id = h.submit(&spec()).await;
            let outcome = h.engine("w1").run(&id).await.unwrap();
            let case = format!("{op} #{nth} applied, response lost");
            if op == "create_application" && nth == 2 {
                assert_eq!(
                    outcome,
                    RunOutcome::Finished(SagaStatus::Succeeded),
                    "{case}: only one create happens"
                );
                continue;
            }
            assert_eq!(
                outcome,
                RunOutcome::Finished(SagaStatus::RolledBack),
                "{case}"
            );
            assert_eq!(h.world.snapshot(), pristine, "{case}");
        }
    }
}

#[tokio::test]
async fn retryable_errors_back_off_and_succeed() {
    let h = Harness::new();
    let throttled = ErrorInfo::new(ErrorKind::Throttled, "ThrottlingException", "Rate exceeded");
    h.world.fail_nth("create_association", 1, throttled.clone());
    h.world.fail_nth(
        "put_role_policy",
        1,
        ErrorInfo::new(ErrorKind::ServerError, "ServiceFailure", "500"),
    );
    let id = h.submit(&spec()).await;
    assert_eq!(
        h.engine("w1").run(&id).await.unwrap(),
        RunOutcome::Finished(SagaStatus::Succeeded)
    );
    let rec = h.record(&id).await;
    let retried: Vec<_> = rec
        .log
        .iter()
        .filter(|l| l.detail.as_deref().is_some_and(|d| d.starts_with("retry")))
        .collect();
    assert_eq!(retried.len(), 2, "one retry each: {retried:?}");
    assert!(
        h.clock.slept() > Duration::ZERO,
        "retries wait (with jitter)"
    );
}

#[tokio::test]
async fn retries_stop_at_the_budget_and_roll_back() {
    let h = Harness::new();
    let pristine = h.world.snapshot();
    h.world.fail_always(
        "set_profile_applications",
        ErrorInfo::new(
            ErrorKind::Throttled,
            "TooManyRequestsException",
            "slow down",
        ),
    );
    let id = h.submit(&spec()).await;
    assert_eq!(
        h.engine("w1").run(&id).await.unwrap(),
        RunOutcome::Finished(SagaStatus::RolledBack)
    );
    let rec = h.record(&id).await;
    assert_eq!(rec.cause.as_ref().unwrap().kind, ErrorKind::BudgetExhausted);
    assert_eq!(
        rec.cause.as_ref().unwrap().code,
        "TooManyRequestsException",
        "the service's code is kept"
    );
    // The profile undo finds no entry of ours (no write ever landed) so it needs no write.
    assert_eq!(h.world.snapshot(), pristine);
}

#[tokio::test]
async fn validation_failures_touch_nothing() {
    // An instance without a service-linked role.
    let h = Harness::new();
    let pristine = h.world.snapshot();
    let mut s = spec_json();
    s["instances"] = json!([fw::INSTANCE_ALPHA, fw::INSTANCE_LEGACY]);
    s["securityProfiles"] = json!([]);
    let id = h
        .submit(&parse_spec(s.to_string().as_bytes()).unwrap())
        .await;
    assert_eq!(
        h.engine("w1").run(&id).await.unwrap(),
        RunOutcome::Finished(SagaStatus::Refused)
    );
    let cause = h.record(&id).await.cause.unwrap();
    assert_eq!(cause.kind, ErrorKind::Invalid);
    assert!(
        cause.message.contains(fw::INSTANCE_LEGACY)
            && cause.message.contains("service-linked role"),
        "{cause:?}"
    );
    assert_eq!(h.world.snapshot(), pristine);
    assert_eq!(h.world.calls("create_application"), 0);
}

#[tokio::test]
async fn a_namespace_owned_by_someone_else_is_a_conflict_and_is_left_alone() {
    let h = Harness::new();
    // Someone created the namespace in the console.
    let tags = [("owner".to_string(), "console".to_string())]
        .into_iter()
        .collect();
    h.world
        .seed_application("crm.example.com/agent", "Console CRM", tags);
    let before = h.world.snapshot();
    let id = h.submit(&spec()).await;
    assert_eq!(
        h.engine("w1").run(&id).await.unwrap(),
        RunOutcome::Finished(SagaStatus::Refused)
    );
    assert_eq!(h.record(&id).await.cause.unwrap().code, "NamespaceTaken");
    assert_eq!(
        h.world.snapshot(),
        before,
        "the foreign application is untouched"
    );
}

#[tokio::test]
async fn policy_budget_overflow_is_terminal_with_a_fix() {
    let h = Harness::new();
    let big = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Big", "Effect": "Allow", "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{}", "x".repeat(10_000))}]});
    h.world.seed_role_policy(
        &FakeWorld::slr_role_name(fw::INSTANCE_BETA),
        "Huge",
        &big.to_string(),
    );
    let pristine = h.world.snapshot();
    let id = h.submit(&spec()).await;
    assert_eq!(
        h.engine("w1").run(&id).await.unwrap(),
        RunOutcome::Finished(SagaStatus::Refused)
    );
    let cause = h.record(&id).await.cause.unwrap();
    assert_eq!(
        (cause.kind, cause.code.as_str()),
        (ErrorKind::QuotaExceeded, "PolicyBudgetExceeded")
    );
    assert!(cause.fix.is_some());
    assert_eq!(h.world.snapshot(), pristine);
    // Predicted by validate, before any side effect.
    for op in [
        "create_application",
        "create_association",
        "put_role_policy",
    ] {
        assert_eq!(h.world.calls(op), 0, "{op} was never called");
    }
}

/// A refusal by `validate` (the spec names an instance without an SLR, and a foreign
/// namespace): REFUSED with the cause, a `refused` log line, no undo started, the failed node
/// left FAILED, and the namespace released for the corrected request.
#[tokio::test]
async fn a_refusal_ends_refused_with_no_undo_and_frees_the_namespace() {
    let h = Harness::new();
    let pristine = h.world.snapshot();
    let mut s = spec_json();
    s["instances"] = json!([fw::INSTANCE_ALPHA, fw::INSTANCE_LEGACY]);
    s["securityProfiles"] = json!([]);
    let id = h
        .submit(&parse_spec(s.to_string().as_bytes()).unwrap())
        .await;
    assert_eq!(
        h.engine("w1").run(&id).await.unwrap(),
        RunOutcome::Finished(SagaStatus::Refused)
    );
    let rec = h.record(&id).await;
    assert!(rec.lease.is_none());
    let cause = rec.cause.clone().unwrap();
    assert!(cause.message.contains(fw::INSTANCE_LEGACY), "{cause:?}");
    assert!(cause.fix.is_some(), "every finding comes with its fix");
    assert_eq!(rec.node("validate", None).unwrap().state, NodeState::Failed);
    assert!(rec
        .nodes
        .iter()
        .filter(|n| n.step != "validate")
        .all(|n| n.state == NodeState::Pending && n.attempts == 0 && n.undo_attempts == 0));
    let saga_events: Vec<&str> = rec
        .log
        .iter()
        .filter(|l| l.node == "saga")
        .map(|l| l.event.as_str())
        .collect();
    assert_eq!(saga_events, ["lease_taken", "refused"], "{:?}", rec.log);
    assert!(
        rec.log
            .iter()
            .all(|l| !l.event.starts_with("undo") && !l.event.starts_with("rollback")),
        "no rollback phase: {:?}",
        rec.log
    );
    let refused = rec.log.iter().find(|l| l.event == "refused").unwrap();
    assert_eq!(
        refused.detail.as_deref(),
        Some(format!("{}: {}", cause.code, cause.message).as_str())
    );
    assert_eq!(h.world.snapshot(), pristine);
    assert_eq!(
        h.store.namespace_holder(&rec.namespace).await.unwrap(),
        None
    );
    // Finished for good: a run does nothing, a re-drive is refused.
    assert_eq!(
        h.engine("w2").run(&id).await.unwrap(),
        RunOutcome::AlreadyFinished(SagaStatus::Refused)
    );
    assert!(matches!(
        h.engine("w2").redrive(&id).await,
        Err(EngineError::NotRedrivable {
            status: SagaStatus::Refused,
            ..
        })
    ));
}

/// A step without side effects that fails after a step with side effects started still
/// rolls back: the engine looks at what ran, not only at the failed step.
#[tokio::test]
async fn a_failure_of_a_pure_step_after_a_side_effect_rolls_back() {
    let h = Harness::with(Arc::new(MemoryStore::new()), |d| {
        let mut d = map_steps(d, |name, a| {
            if name == "activate" {
                Arc::new(FailAt {
                    inner: a,
                    target: None,
                    after_effect: false,
                })
            } else {
                a
            }
        });
        // Pretend activate only reads: it still follows create_application and the grants.
        for step in &mut d.steps {
            if step.name == "activate" {
                step.side_effects = false;
            }
        }
        d
    });
    let pristine = h.world.snapshot();
    let id = h.submit(&spec()).await;
    assert_eq!(
        h.engine("w1").run(&id).await.unwrap(),
        RunOutcome::Finished(SagaStatus::RolledBack)
    );
    let rec = h.record(&id).await;
    assert!(rec.log.iter().any(|l| l.event == "rollback_started"));
    assert!(!rec.log.iter().any(|l| l.event == "refused"));
    assert_eq!(
        rec.node("create_application", None).unwrap().state,
        NodeState::Undone
    );
    assert_eq!(h.world.snapshot(), pristine);
}

/// A worker that crashed after recording validate FAILED (before the saga's end) leaves a
/// RUNNING saga; the next run refuses it, and undoes nothing.
#[tokio::test]
async fn a_crash_after_a_refusing_failure_converges_on_refused() {
    let mut s = spec_json();
    s["instances"] = json!([fw::INSTANCE_LEGACY]);
    s["securityProfiles"] = json!([]);
    let spec = parse_spec(s.to_string().as_bytes()).unwrap();
    let total = {
        let crashing = Arc::new(CrashingStore::new(Arc::new(MemoryStore::new()), u64::MAX));
        let h = Harness::with(crashing.clone(), |d| d);
        let id = h.submit(&spec).await;
        h.engine("w1").run(&id).await.unwrap();
        crashing.updates()
    };
    assert_eq!(total, 4, "lease, started, failed, refused");
    for crash_at in 1..total {
        let inner = Arc::new(MemoryStore::new());
        let crashing = Arc::new(CrashingStore::new(inner.clone(), crash_at));
        let h = Harness::with(crashing, |d| d);
        let pristine = h.world.snapshot();
        let id = h.submit(&spec).await;
        assert!(
            h.engine("w1").run(&id).await.is_err(),
            "crash at {crash_at}"
        );
        h.clock.advance(Duration::from_secs(301));
        let fresh = Engine::new(
            h.def.clone(),
            h.ports.clone(),
            inner.clone() as Arc<dyn SagaStore>,
            h.clock.clone(),
            Arc::new(FixedRandom(0.5)),
            "w2",
        );
        assert_eq!(
            fresh.run(&id).await.unwrap(),
            RunOutcome::Finished(SagaStatus::Refused),
            "crash at {crash_at}"
        );
        let rec = inner.get(&id).await.unwrap().unwrap();
        assert!(rec.log.iter().all(|l| !l.event.starts_with("undo")));
        assert_eq!(h.world.snapshot(), pristine);
    }
}

#[tokio::test]
async fn a_permanently_failing_undo_ends_rollback_failed_then_redrives() {
    let h = Harness::with(Arc::new(MemoryStore::new()), |d| {
        map_steps(d, |name, a| {
            if name == "activate" {
                Arc::new(FailAt {
                    inner: a,
                    target: None,
                    after_effect: false,
                })
            } else {
                a
            }
        })
    });
    let pristine = h.world.snapshot();
    h.world
        .fail_always("delete_association", terminal("AccessDeniedException"));
    let id = h.submit(&spec()).await;
    assert_eq!(
        h.engine("w1").run(&id).await.unwrap(),
        RunOutcome::Finished(SagaStatus::RollbackFailed)
    );
    let rec = h.record(&id).await;
    assert_eq!(
        rec.undo_error.as_ref().unwrap().code,
        "AccessDeniedException"
    );
    let state = |step: &str, t: Option<&str>| rec.node(step, t).unwrap().state;
    assert_eq!(
        state("grant_security_profiles", Some(fw::INSTANCE_ALPHA)),
        NodeState::Undone
    );
    assert_eq!(
        state("grant_slr_policy", Some(fw::INSTANCE_BETA)),
        NodeState::Undone
    );
    assert_eq!(
        state("associate", Some(fw::INSTANCE_ALPHA)),
        NodeState::UndoFailed
    );
    assert_eq!(
        state("associate", Some(fw::INSTANCE_BETA)),
        NodeState::UndoFailed,
        "siblings are still tried"
    );
    assert_eq!(
        state("create_application", None),
        NodeState::UndoBlocked,
        "not skipped silently"
    );
    assert!(rec
        .log
        .iter()
        .any(|l| l.node == "create_application" && l.event == "undo_blocked"));
    assert_eq!(
        h.store
            .namespace_holder(&rec.namespace)
            .await
            .unwrap()
            .as_deref(),
        Some(id.as_str()),
        "a ROLLBACK_FAILED saga keeps its namespace"
    );
    assert_eq!(
        h.engine("w2").run(&id).await.unwrap(),
        RunOutcome::AlreadyFinished(SagaStatus::RollbackFailed)
    );

    // The operator fixes the permission; a re-drive finishes the rollback.
    h.world.clear_faults();
    assert_eq!(
        h.engine("w2").redrive(&id).await.unwrap(),
        RunOutcome::Finished(SagaStatus::RolledBack)
    );
    assert_eq!(h.world.snapshot(), pristine);
    let rec = h.record(&id).await;
    assert!(rec.log.iter().any(|l| l.event == "redriven"));
    assert!(matches!(
        h.engine("w3").redrive(&id).await,
        Err(EngineError::NotRedrivable {
            status: SagaStatus::RolledBack,
            ..
        })
    ));
}

/// How many record writes a full run makes (with `fail_activate`, a run that rolls back).
async fn writes_of_a_run(fail_activate: bool) -> u64 {
    let crashing = Arc::new(CrashingStore::new(Arc::new(MemoryStore::new()), u64::MAX));
    let h = Harness::with(crashing.clone(), |d| maybe_fail_activate(d, fail_activate));
    let id = h.submit(&spec()).await;
    h.engine("w1").run(&id).await.unwrap();
    crashing.updates()
}

fn maybe_fail_activate(def: SagaDef<OnboardPorts>, fail: bool) -> SagaDef<OnboardPorts> {
    map_steps(def, |name, a| {
        if fail && name == "activate" {
            Arc::new(FailAt {
                inner: a,
                target: None,
                after_effect: false,
            })
        } else {
            a
        }
    })
}

async fn crash_after_every_write_converges(fail_activate: bool) {
    let (expected_status, expected_world) = if fail_activate {
        (SagaStatus::RolledBack, Harness::new().world.snapshot())
    } else {
        (SagaStatus::Succeeded, onboarded_world().await)
    };
    let total = writes_of_a_run(fail_activate).await;
    assert!(total >= 20, "before and after every node: {total} writes");
    for crash_at in 1..=total {
        let inner = Arc::new(MemoryStore::new());
        let crashing = Arc::new(CrashingStore::new(inner.clone(), crash_at));
        let h = Harness::with(crashing.clone(), |d| maybe_fail_activate(d, fail_activate));
        let id = h.submit(&spec()).await;
        let first = h.engine("w1").run(&id).await;
        let case = format!("crash after write {crash_at}/{total} (rollback run: {fail_activate})");
        let outcome = match first {
            Err(EngineError::Store(_)) => {
                // A fresh worker must wait for the dead one's lease, then converges.
                let fresh = Engine::new(
                    h.def.clone(),
                    h.ports.clone(),
                    inner.clone() as Arc<dyn SagaStore>,
                    h.clock.clone(),
                    Arc::new(FixedRandom(0.5)),
                    "w2",
                );
                let busy = fresh.run(&id).await.unwrap();
                let status = inner.get(&id).await.unwrap().unwrap().status;
                if status.is_runnable() {
                    assert!(
                        matches!(busy, RunOutcome::Busy { ref owner, .. } if owner == "w1"),
                        "{case}: {busy:?}"
                    );
                    h.clock.advance(Duration::from_secs(301));
                    fresh.run(&id).await.unwrap()
                } else {
                    busy
                }
            }
            Ok(o) => o,
            Err(e) => panic!("{case}: unexpected {e}"),
        };
        assert!(
            matches!(outcome, RunOutcome::Finished(s) | RunOutcome::AlreadyFinished(s) if s == expected_status),
            "{case}: {outcome:?}"
        );
        assert_eq!(h.world.snapshot(), expected_world, "{case}");
        assert_eq!(
            inner.get(&id).await.unwrap().unwrap().status,
            expected_status,
            "{case}"
        );
    }
}

#[tokio::test]
async fn a_crash_after_each_log_write_converges_forward() {
    crash_after_every_write_converges(false).await;
}

#[tokio::test]
async fn a_crash_after_each_log_write_converges_in_rollback() {
    crash_after_every_write_converges(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_engines_advance_a_saga_exactly_once() {
    for round in 0..20 {
        let h = Harness::new();
        let id = h.submit(&spec()).await;
        let (a, b) = (h.engine("wa"), h.engine("wb"));
        let (ra, rb) = tokio::join!(a.run(&id), b.run(&id));
        let outcomes = [ra.unwrap(), rb.unwrap()];
        let finished = outcomes
            .iter()
            .filter(|o| matches!(o, RunOutcome::Finished(_)))
            .count();
        assert_eq!(
            finished, 1,
            "round {round}: exactly one engine ran it: {outcomes:?}"
        );
        assert!(
            outcomes.iter().any(|o| matches!(
                o,
                RunOutcome::Busy { .. } | RunOutcome::AlreadyFinished(SagaStatus::Succeeded)
            )),
            "round {round}: {outcomes:?}"
        );
        assert_eq!(h.world.calls("create_application"), 1, "round {round}");
        assert_eq!(h.world.snapshot().applications.len(), 1);
    }
}

#[tokio::test]
async fn a_worker_that_lost_its_lease_stops_at_its_next_write() {
    // w1 runs with a step that stalls until w2 took the saga over after the lease expired.
    struct Stall {
        inner: Arc<dyn StepAction<OnboardPorts>>,
        clock: Arc<ManualClock>,
        store: Arc<MemoryStore>,
        stolen: AtomicBool,
    }
    #[async_trait]
    impl StepAction<OnboardPorts> for Stall {
        async fn run(&self, c: &OnboardPorts, n: &NodeCtx) -> Result<Value, StepError> {
            if !self.stolen.swap(true, Ordering::SeqCst) {
                // Another worker takes the saga over while this one is inside the action.
                self.clock.advance(Duration::from_secs(600));
                let mut rec = self.store.get(&n.saga_id).await.unwrap().unwrap();
                let v = rec.version;
                rec.version += 1;
                rec.lease.as_mut().unwrap().owner = "w2".into();
                self.store.update(&rec, v).await.unwrap();
            }
            self.inner.run(c, n).await
        }
        async fn undo(
            &self,
            c: &OnboardPorts,
            n: &NodeCtx,
            o: Option<&Value>,
        ) -> Result<(), StepError> {
            self.inner.undo(c, n, o).await
        }
    }
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::default());
    let (s2, c2) = (store.clone(), clock.clone());
    let mut h = Harness::with(store.clone(), move |d| {
        map_steps(d, |name, a| {
            if name == "create_application" {
                Arc::new(Stall {
                    inner: a,
                    clock: c2.clone(),
                    store: s2.clone(),
                    stolen: AtomicBool::new(false),
                })
            } else {
                a
            }
        })
    });
    h.clock = clock;
    let id = h.submit(&spec()).await;
    let err = h.engine("w1").run(&id).await.unwrap_err();
    assert!(matches!(err, EngineError::LeaseLost(_)), "{err:?}");
    let rec = store.get(&id).await.unwrap().unwrap();
    assert_eq!(
        rec.lease.as_ref().unwrap().owner,
        "w2",
        "w1 wrote nothing after losing the lease"
    );
    assert_eq!(
        rec.node("create_application", None).unwrap().state,
        NodeState::Started
    );
}

#[tokio::test]
async fn submissions_are_idempotent_per_key() {
    let h = Harness::new();
    let cfg = IdempotencyConfig::default();
    let s = spec();
    let validated = s.validate().unwrap();
    let record = |id: &str| {
        h.def
            .new_record(onboard::new_saga(id, &validated).unwrap(), 1)
    };
    let hash = s.payload_hash();
    let first = idempotency::submit(
        h.store.as_ref(),
        h.clock.as_ref(),
        &cfg,
        record("a"),
        Some("TICKET-1"),
        &hash,
    )
    .await
    .unwrap();
    assert!(first.created);
    let again = idempotency::submit(
        h.store.as_ref(),
        h.clock.as_ref(),
        &cfg,
        record("b"),
        Some("TICKET-1"),
        &hash,
    )
    .await
    .unwrap();
    assert_eq!(
        (again.saga_id.as_str(), again.created),
        (first.saga_id.as_str(), false)
    );

    let mut other = spec_json();
    other["displayName"] = json!("Acme CRM v2");
    let other_hash = parse_spec(other.to_string().as_bytes())
        .unwrap()
        .payload_hash();
    let err = idempotency::submit(
        h.store.as_ref(),
        h.clock.as_ref(),
        &cfg,
        record("c"),
        Some("TICKET-1"),
        &other_hash,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, SubmitError::PayloadMismatch { saga_id: Some(ref s), .. } if *s == first.saga_id),
        "{err:?}"
    );

    // A different key for the same namespace while the first saga is active: refused, and the
    // key is released so a later retry can succeed.
    let err = idempotency::submit(
        h.store.as_ref(),
        h.clock.as_ref(),
        &cfg,
        record("d"),
        Some("TICKET-2"),
        &hash,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, SubmitError::NamespaceBusy { ref saga_id, .. } if *saga_id == first.saga_id),
        "{err:?}"
    );
    assert_eq!(
        h.engine("w1").run(&first.saga_id).await.unwrap(),
        RunOutcome::Finished(SagaStatus::Succeeded)
    );
    let retry = idempotency::submit(
        h.store.as_ref(),
        h.clock.as_ref(),
        &cfg,
        record("e"),
        Some("TICKET-2"),
        &hash,
    )
    .await
    .unwrap();
    assert!(retry.created);
}

#[tokio::test]
async fn a_crashed_submission_converges_on_one_saga() {
    // The claim was made and the saga created, then the process died before completing the key.
    let h = Harness::new();
    let cfg = IdempotencyConfig::default();
    let s = spec();
    let validated = s.validate().unwrap();
    let hash = s.payload_hash();
    let now = h.clock_now();
    h.store
        .claim_idempotency("K", &hash, now, now + 60_000, now + 86_400_000)
        .await
        .unwrap();
    let mut rec = h
        .def
        .new_record(onboard::new_saga("x", &validated).unwrap(), now);
    rec.id = idempotency::saga_id_for_key("K");
    rec.payload_hash = Some(hash.clone());
    h.store.create(&rec).await.unwrap();

    let err = idempotency::submit(
        h.store.as_ref(),
        h.clock.as_ref(),
        &cfg,
        rec.clone(),
        Some("K"),
        &hash,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, SubmitError::InProgress { .. }),
        "a live claim asks the caller to retry: {err:?}"
    );
    h.clock.advance(Duration::from_secs(61));
    let sub = idempotency::submit(
        h.store.as_ref(),
        h.clock.as_ref(),
        &cfg,
        rec.clone(),
        Some("K"),
        &hash,
    )
    .await
    .unwrap();
    assert_eq!(
        (sub.saga_id, sub.created),
        (rec.id.clone(), false),
        "the retry adopts the saga, never a second one"
    );
}

/// Ports that yield to the scheduler before every call, so concurrent sagas interleave their
/// read-modify-write edits as they would over the network.
struct Interleaving(Arc<FakeWorld>);

#[async_trait]
impl onboard_core::ports::IamPort for Interleaving {
    async fn get_role_policy(&self, r: &str, p: &str) -> Result<Option<String>, ErrorInfo> {
        tokio::task::yield_now().await;
        self.0.get_role_policy(r, p).await
    }
    async fn put_role_policy(&self, r: &str, p: &str, d: &str) -> Result<(), ErrorInfo> {
        tokio::task::yield_now().await;
        self.0.put_role_policy(r, p, d).await
    }
    async fn delete_role_policy(&self, r: &str, p: &str) -> Result<(), ErrorInfo> {
        tokio::task::yield_now().await;
        self.0.delete_role_policy(r, p).await
    }
    async fn list_role_policies(&self, r: &str) -> Result<Vec<String>, ErrorInfo> {
        tokio::task::yield_now().await;
        self.0.list_role_policies(r).await
    }
}

#[async_trait]
impl onboard_core::ports::ConnectPort for Interleaving {
    async fn describe_instance(
        &self,
        i: &str,
    ) -> Result<onboard_core::ports::InstanceInfo, ErrorInfo> {
        tokio::task::yield_now().await;
        self.0.describe_instance(i).await
    }
    async fn find_association(
        &self,
        i: &str,
        a: &str,
    ) -> Result<Option<onboard_core::ports::AssociationRef>, ErrorInfo> {
        tokio::task::yield_now().await;
        self.0.find_association(i, a).await
    }
    async fn create_association(
        &self,
        i: &str,
        a: &str,
    ) -> Result<onboard_core::ports::AssociationRef, ErrorInfo> {
        tokio::task::yield_now().await;
        self.0.create_association(i, a).await
    }
    async fn delete_association(&self, i: &str, a: &str) -> Result<(), ErrorInfo> {
        tokio::task::yield_now().await;
        self.0.delete_association(i, a).await
    }
    async fn profile_applications(
        &self,
        i: &str,
        p: &str,
    ) -> Result<Vec<onboard_core::ports::ProfileApplication>, ErrorInfo> {
        tokio::task::yield_now().await;
        self.0.profile_applications(i, p).await
    }
    async fn set_profile_applications(
        &self,
        i: &str,
        p: &str,
        a: &[onboard_core::ports::ProfileApplication],
    ) -> Result<(), ErrorInfo> {
        tokio::task::yield_now().await;
        self.0.set_profile_applications(i, p, a).await
    }
    async fn list_instances(&self) -> Result<Vec<String>, ErrorInfo> {
        tokio::task::yield_now().await;
        self.0.list_instances().await
    }
    async fn list_security_profiles(&self, i: &str) -> Result<Vec<String>, ErrorInfo> {
        tokio::task::yield_now().await;
        self.0.list_security_profiles(i).await
    }
}

#[tokio::test]
async fn concurrent_sagas_on_shared_roles_and_profiles_lose_nothing() {
    let h = Harness::new();
    let slow = Arc::new(Interleaving(h.world.clone()));
    let ports = Arc::new(OnboardPorts {
        apps: h.world.clone(),
        connect: slow.clone(),
        iam: slow,
        locks: Arc::new(MemoryLocks::new()),
        clock: h.clock.clone(),
    });
    let mut other = spec_json();
    other["displayName"] = json!("Knowledge Base");
    other["accessUrl"] = json!("https://kb.example.com/");
    let first = h.submit(&spec()).await;
    let second = h
        .submit(&parse_spec(other.to_string().as_bytes()).unwrap())
        .await;
    let engine = |owner: &str| {
        Engine::new(
            h.def.clone(),
            ports.clone(),
            h.store.clone(),
            h.clock.clone(),
            Arc::new(FixedRandom(0.5)),
            owner,
        )
    };
    let (e1, e2) = (engine("w1"), engine("w2"));
    let (r1, r2) = tokio::join!(e1.run(&first), e2.run(&second));
    assert_eq!(r1.unwrap(), RunOutcome::Finished(SagaStatus::Succeeded));
    assert_eq!(r2.unwrap(), RunOutcome::Finished(SagaStatus::Succeeded));
    let world = h.world.snapshot();
    for instance in [fw::INSTANCE_ALPHA, fw::INSTANCE_BETA] {
        let doc = &world.roles[&fw::slr_role_name(instance)][onboard_core::policy::POLICY_NAME];
        let statements = serde_json::from_str::<Value>(doc).unwrap()["Statement"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(
            statements, 2,
            "both applications' statements on {instance}'s SLR: {doc}"
        );
    }
    for profile in [fw::PROFILE_BETA_1, fw::PROFILE_BETA_2] {
        let grants = &world.profiles[&(fw::INSTANCE_BETA.to_string(), profile.to_string())];
        let namespaces: Vec<&str> = grants.iter().map(|g| g.namespace.as_str()).collect();
        assert_eq!(
            namespaces.len(),
            2,
            "both entries in {profile}: {namespaces:?}"
        );
    }
    // No fault was injected, so any waiting was one saga waiting for the other's lock.
    assert!(
        h.clock.slept() > Duration::ZERO,
        "the edits really overlapped and one saga waited for the other's lock"
    );
}

/// Issue 15 (fencing): a worker that stalls right after marking a node STARTED (a frozen VM,
/// a long pause) and is taken over once its lease expired used to wake and run the node's
/// side effect anyway — changing AWS behind the new owner's back — and only noticed at its
/// next write. It now checks its lease before every side effect and stops.
#[tokio::test]
async fn a_worker_taken_over_after_a_stall_makes_no_side_effect() {
    /// Takes the saga over (as `w2`, past the lease) right after the write that marks
    /// `create_application` STARTED lands.
    struct TakeoverAfterStart {
        inner: Arc<MemoryStore>,
        clock: Arc<ManualClock>,
        done: AtomicBool,
    }
    #[async_trait]
    impl SagaStore for TakeoverAfterStart {
        async fn create(&self, r: &SagaRecord) -> Result<(), onboard_core::store::StoreError> {
            self.inner.create(r).await
        }
        async fn get(
            &self,
            id: &str,
        ) -> Result<Option<SagaRecord>, onboard_core::store::StoreError> {
            self.inner.get(id).await
        }
        async fn update(
            &self,
            r: &SagaRecord,
            v: u64,
        ) -> Result<(), onboard_core::store::StoreError> {
            self.inner.update(r, v).await?;
            let started = r
                .node("create_application", None)
                .is_some_and(|n| n.state == NodeState::Started);
            if started && !self.done.swap(true, Ordering::SeqCst) {
                self.clock.advance(Duration::from_secs(600));
                let mut stolen = r.clone();
                stolen.version += 1;
                if let Some(l) = stolen.lease.as_mut() {
                    l.owner = "w2".into();
                    l.expires_at += 600_000 + 300_000;
                }
                self.inner.update(&stolen, r.version).await?;
            }
            Ok(())
        }
        async fn list_by_status(
            &self,
            s: SagaStatus,
            l: usize,
            c: Option<String>,
        ) -> Result<onboard_core::store::Page, onboard_core::store::StoreError> {
            self.inner.list_by_status(s, l, c).await
        }
        async fn list_stalled(
            &self,
            now: Millis,
            l: usize,
        ) -> Result<Vec<SagaRecord>, onboard_core::store::StoreError> {
            self.inner.list_stalled(now, l).await
        }
        async fn namespace_holder(
            &self,
            ns: &str,
        ) -> Result<Option<String>, onboard_core::store::StoreError> {
            self.inner.namespace_holder(ns).await
        }
        async fn claim_idempotency(
            &self,
            key: &str,
            hash: &str,
            now: Millis,
            until: Millis,
            expires: Millis,
        ) -> Result<onboard_core::store::IdempotencyClaim, onboard_core::store::StoreError>
        {
            self.inner
                .claim_idempotency(key, hash, now, until, expires)
                .await
        }
        async fn complete_idempotency(
            &self,
            key: &str,
            hash: &str,
            saga: &str,
        ) -> Result<(), onboard_core::store::StoreError> {
            self.inner.complete_idempotency(key, hash, saga).await
        }
        async fn release_idempotency(
            &self,
            key: &str,
            hash: &str,
        ) -> Result<(), onboard_core::store::StoreError> {
            self.inner.release_idempotency(key, hash).await
        }
    }
    let clock = Arc::new(ManualClock::default());
    let store = Arc::new(TakeoverAfterStart {
        inner: Arc::new(MemoryStore::new()),
        clock: clock.clone(),
        done: AtomicBool::new(false),
    });
    let mut h = Harness::with(store.clone(), |d| d);
    h.clock = clock;
    let id = h.submit(&spec()).await;
    let err = h.engine("w1").run(&id).await.unwrap_err();
    assert!(matches!(err, EngineError::LeaseLost(_)), "{err:?}");
    assert_eq!(
        h.world.calls("create_application"),
        0,
        "the stale worker created nothing after it was taken over"
    );
    let rec = h.record(&id).await;
    assert_eq!(rec.lease.as_ref().unwrap().owner, "w2");
}
