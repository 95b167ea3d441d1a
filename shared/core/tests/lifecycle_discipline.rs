//! Saga discipline for the lifecycle sagas on the in-memory fake world: every action and undo
//! runs twice with the same result, and a failure at every step (before or after its effect)
//! rolls a change back to the world it started from (a failure of `check`, which changes
//! nothing, refuses it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use onboard_core::engine::{Engine, RunOutcome};
use onboard_core::error::{ErrorInfo, ErrorKind, StepError};
use onboard_core::idempotency::IdempotencyConfig;
use onboard_core::lifecycle::service::{parse_edit, Lifecycle};
use onboard_core::lifecycle::{change, offboard, LifecyclePorts};
use onboard_core::onboard::{self, OnboardConfig, OnboardPorts};
use onboard_core::record::SagaStatus;
use onboard_core::saga::{NodeCtx, SagaDef, StepAction, StepDef};
use onboard_core::service::NoQueue;
use onboard_core::spec::parse_spec;
use onboard_core::store::SagaStore;
use onboard_core::testkit::fake_world::{self as fw, FakeWorld};
use onboard_core::testkit::{FixedRandom, ManualClock, MemoryLocks, MemoryStore};
use serde_json::{json, Value};

struct World {
    world: Arc<FakeWorld>,
    store: Arc<dyn SagaStore>,
    clock: Arc<ManualClock>,
    ports: Arc<OnboardPorts>,
    lifecycle: Lifecycle,
    pristine: fw::WorldSnapshot,
}

impl World {
    async fn onboarded() -> (World, String) {
        let world = Arc::new(FakeWorld::standard());
        let pristine = world.snapshot();
        let clock = Arc::new(ManualClock::default());
        let store: Arc<dyn SagaStore> = Arc::new(MemoryStore::new());
        let ports = Arc::new(OnboardPorts {
            apps: world.clone(),
            connect: world.clone(),
            iam: world.clone(),
            locks: Arc::new(MemoryLocks::new()),
            clock: clock.clone(),
        });
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
        let def = Arc::new(onboard::definition(&OnboardConfig::default()));
        let new = onboard::new_saga("root", &spec.validate().unwrap()).unwrap();
        store.create(&def.new_record(new, 0)).await.unwrap();
        let engine = Engine::new(
            def,
            ports.clone(),
            store.clone(),
            clock.clone(),
            Arc::new(FixedRandom(0.5)),
            "w",
        );
        assert_eq!(
            engine.run("root").await.unwrap(),
            RunOutcome::Finished(SagaStatus::Succeeded)
        );
        let lifecycle = Lifecycle {
            store: store.clone(),
            clock: clock.clone(),
            queue: Arc::new(NoQueue),
            idempotency: IdempotencyConfig::default(),
        };
        (
            World {
                world,
                store,
                clock,
                ports,
                lifecycle,
                pristine,
            },
            "root".to_string(),
        )
    }

    fn engine(&self, def: SagaDef<LifecyclePorts>) -> Engine<LifecyclePorts> {
        Engine::new(
            Arc::new(def),
            Arc::new(LifecyclePorts {
                aws: self.ports.clone(),
                store: self.store.clone(),
            }),
            self.store.clone(),
            self.clock.clone(),
            Arc::new(FixedRandom(0.5)),
            "lw",
        )
    }

    /// Moves from {alpha, beta} to {beta, gamma}, renames, and grants beta's second profile.
    async fn start_edit(&self, app: &str) -> String {
        let req = parse_edit(
            json!({
                "displayName": "Acme CRM Next",
                "instances": [fw::INSTANCE_BETA, fw::INSTANCE_GAMMA],
                "securityProfiles": [
                    {"instance": fw::INSTANCE_BETA, "profiles": [fw::PROFILE_BETA_1, fw::PROFILE_BETA_2]},
                    {"instance": fw::INSTANCE_GAMMA, "profiles": [fw::PROFILE_GAMMA_1]}
                ]
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        self.lifecycle
            .edit(app, &req, "bob", None, "edit-1".into())
            .await
            .unwrap()
            .saga_id
    }
}

fn terminal() -> ErrorInfo {
    ErrorInfo::new(
        ErrorKind::Denied,
        "InjectedFailure",
        "injected terminal failure",
    )
}

struct Twice(Arc<dyn StepAction<LifecyclePorts>>);

#[async_trait]
impl StepAction<LifecyclePorts> for Twice {
    async fn run(&self, c: &LifecyclePorts, n: &NodeCtx) -> Result<Value, StepError> {
        let first = self.0.run(c, n).await?;
        let second = self.0.run(c, n).await?;
        assert_eq!(first, second, "a replayed action records the same output");
        Ok(second)
    }
    async fn undo(
        &self,
        c: &LifecyclePorts,
        n: &NodeCtx,
        o: Option<&Value>,
    ) -> Result<(), StepError> {
        self.0.undo(c, n, o).await?;
        self.0.undo(c, n, o).await
    }
}

/// Fails every node of one step terminally, before or after its real effect.
struct FailAt {
    inner: Arc<dyn StepAction<LifecyclePorts>>,
    after_effect: bool,
}

#[async_trait]
impl StepAction<LifecyclePorts> for FailAt {
    async fn run(&self, c: &LifecyclePorts, n: &NodeCtx) -> Result<Value, StepError> {
        if self.after_effect {
            self.inner.run(c, n).await?;
        }
        Err(terminal())
    }
    async fn undo(
        &self,
        c: &LifecyclePorts,
        n: &NodeCtx,
        o: Option<&Value>,
    ) -> Result<(), StepError> {
        self.inner.undo(c, n, o).await
    }
}

fn map_steps(
    def: SagaDef<LifecyclePorts>,
    mut f: impl FnMut(
        &'static str,
        Arc<dyn StepAction<LifecyclePorts>>,
    ) -> Arc<dyn StepAction<LifecyclePorts>>,
) -> SagaDef<LifecyclePorts> {
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
async fn every_change_action_and_undo_can_run_twice() {
    // Reference: the edit without replays.
    let (plain, app) = World::onboarded().await;
    let id = plain.start_edit(&app).await;
    assert_eq!(
        plain.engine(change::definition(2)).run(&id).await.unwrap(),
        RunOutcome::Finished(SagaStatus::Succeeded)
    );
    let expected = plain.world.snapshot();

    let (w, app) = World::onboarded().await;
    let id = w.start_edit(&app).await;
    let def = map_steps(change::definition(2), |_, a| Arc::new(Twice(a)));
    assert_eq!(
        w.engine(def).run(&id).await.unwrap(),
        RunOutcome::Finished(SagaStatus::Succeeded)
    );
    assert_eq!(w.world.snapshot(), expected);

    // Undo twice: fail the last step after everything else ran, every undo running twice.
    let (w, app) = World::onboarded().await;
    let before = w.world.snapshot();
    let id = w.start_edit(&app).await;
    let def = map_steps(change::definition(2), |name, a| {
        let twice: Arc<dyn StepAction<LifecyclePorts>> = Arc::new(Twice(a));
        if name == "commit" {
            Arc::new(FailAt {
                inner: twice,
                after_effect: false,
            })
        } else {
            twice
        }
    });
    assert_eq!(
        w.engine(def).run(&id).await.unwrap(),
        RunOutcome::Finished(SagaStatus::RolledBack)
    );
    assert_eq!(w.world.snapshot(), before);
}

#[tokio::test]
async fn a_failure_at_every_step_rolls_the_change_back_to_where_it_started() {
    let steps: Vec<&'static str> = change::definition(1).steps.iter().map(|s| s.name).collect();
    for step in steps {
        for after_effect in [false, true] {
            let (w, app) = World::onboarded().await;
            let before = w.world.snapshot();
            let id = w.start_edit(&app).await;
            let def = map_steps(change::definition(2), |name, a| {
                if name == step {
                    Arc::new(FailAt {
                        inner: a,
                        after_effect,
                    })
                } else {
                    a
                }
            });
            let outcome = w.engine(def).run(&id).await.unwrap();
            // `check` changes nothing: its failure refuses the change (nothing to undo).
            let expected = if step == "check" {
                SagaStatus::Refused
            } else {
                SagaStatus::RolledBack
            };
            assert_eq!(
                outcome,
                RunOutcome::Finished(expected),
                "{step} (after effect: {after_effect})"
            );
            assert_eq!(
                w.world.snapshot(),
                before,
                "{step} (after effect: {after_effect})"
            );
            let state = w.lifecycle.application(&app).await.unwrap().1;
            assert_eq!(state.fields.display_name, "Acme CRM", "{step}");
            assert_eq!(
                state.instances,
                BTreeSet::from([
                    fw::INSTANCE_ALPHA.to_string(),
                    fw::INSTANCE_BETA.to_string()
                ])
            );
        }
    }
}

#[tokio::test]
async fn every_offboard_action_can_run_twice_and_leaves_the_pristine_world() {
    let (w, app) = World::onboarded().await;
    let id = w
        .lifecycle
        .offboard(&app, "ops", None, "off-1".into())
        .await
        .unwrap()
        .saga_id;
    let def = map_steps(offboard::definition(), |_, a| Arc::new(Twice(a)));
    assert_eq!(
        w.engine(def).run(&id).await.unwrap(),
        RunOutcome::Finished(SagaStatus::Succeeded)
    );
    assert_eq!(w.world.snapshot(), w.pristine);
}

#[tokio::test]
async fn an_offboard_failing_at_any_step_waits_for_a_redrive_and_then_finishes() {
    let steps: Vec<&'static str> = offboard::definition()
        .steps
        .iter()
        .map(|s| s.name)
        .collect();
    for step in steps {
        for after_effect in [false, true] {
            let (w, app) = World::onboarded().await;
            let onboarded = w.world.snapshot();
            let id = w
                .lifecycle
                .offboard(&app, "ops", None, "off-1".into())
                .await
                .unwrap()
                .saga_id;
            let failing = map_steps(offboard::definition(), |name, a| {
                if name == step {
                    Arc::new(FailAt {
                        inner: a,
                        after_effect,
                    })
                } else {
                    a
                }
            });
            // `inventory` only reads: its failure refuses the offboard, nothing was removed,
            // and a new offboard is what carries on.
            let expected = if step == "inventory" {
                SagaStatus::Refused
            } else {
                SagaStatus::NeedsAttention
            };
            assert_eq!(
                w.engine(failing).run(&id).await.unwrap(),
                RunOutcome::Finished(expected),
                "{step} (after effect: {after_effect})"
            );
            let rec = w.store.get(&id).await.unwrap().unwrap();
            assert_eq!(rec.cause.as_ref().unwrap().code, "InjectedFailure");
            // No rollback happened: nothing was undone.
            assert!(
                rec.log.iter().all(|l| !l.event.starts_with("undo")),
                "{step}"
            );
            let id = if expected == SagaStatus::Refused {
                assert_eq!(w.world.snapshot(), onboarded, "{step}: nothing was removed");
                w.lifecycle
                    .offboard(&app, "ops", None, "off-2".into())
                    .await
                    .unwrap()
                    .saga_id
            } else {
                id
            };
            let outcome = if expected == SagaStatus::Refused {
                w.engine(offboard::definition()).run(&id).await.unwrap()
            } else {
                w.engine(offboard::definition()).redrive(&id).await.unwrap()
            };
            assert_eq!(
                outcome,
                RunOutcome::Finished(SagaStatus::Succeeded),
                "{step}"
            );
            assert_eq!(
                w.world.snapshot(),
                w.pristine,
                "{step} (after effect: {after_effect})"
            );
        }
    }
}
