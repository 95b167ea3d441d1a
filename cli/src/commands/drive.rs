//! Running a saga of any kind (onboard, change, offboard, adopt) in this process with live
//! progress, then reporting its end state: shared by `apply`, `retry`, `edit`, `pause`,
//! `resume`, `offboard`, `drift --fix` and `adopt`.

use std::collections::BTreeMap;
use std::sync::Arc;

use onboard_core::clock::{Clock, Random, SystemClock, SystemRandom};
use onboard_core::engine::{Engine, RunOutcome};
use onboard_core::lifecycle::service::Sagas;
use onboard_core::lifecycle::{adopt, change, offboard, LifecyclePorts};
use onboard_core::onboard::OnboardConfig;
use onboard_core::record::{SagaRecord, SagaStatus};
use onboard_core::saga::SagaDef;
use onboard_core::service::{RunAction, RunSagaMessage, SagaView};
use onboard_core::store::SagaStore;
use onboard_core::validation::Problem;
use serde::Serialize;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::args::OutputFormat;
use crate::commands::recorded_aliases;
use crate::error::{exit, CliError};
use crate::progress::Progress;
use crate::render;
use crate::targets::{Context, Tuning, World};

/// Run the saga forward (or resume it) or re-drive it (a ROLLBACK_FAILED rollback, a
/// NEEDS_ATTENTION offboard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Run,
    Redrive,
}

/// `--output json` of the commands that run a saga: the status view plus the spec's warnings.
#[derive(Serialize)]
struct RunReport<'a> {
    #[serde(flatten)]
    view: &'a SagaView,
    warnings: &'a [Problem],
}

/// A worker name unique to this process, recorded in the saga log.
pub fn owner() -> String {
    format!(
        "onboard-cli-{}-{:04x}",
        std::process::id(),
        fastrand::u16(..)
    )
}

/// The exit code a saga's status maps to.
pub fn exit_for(status: SagaStatus) -> u8 {
    match status {
        SagaStatus::Succeeded => exit::OK,
        SagaStatus::RolledBack => exit::ROLLED_BACK,
        SagaStatus::Refused => exit::INVALID,
        SagaStatus::RollbackFailed | SagaStatus::NeedsAttention => exit::ROLLBACK_FAILED,
        SagaStatus::Pending | SagaStatus::Running | SagaStatus::RollingBack => exit::OTHER,
    }
}

/// `def` with the target's step retry policy (millisecond backoff on the sandbox).
fn tuned<C: Send + Sync>(tuning: &Tuning, mut def: SagaDef<C>) -> SagaDef<C> {
    if let Some(retry) = tuning.step_retry {
        for step in &mut def.steps {
            step.retry = retry;
            step.undo_retry = retry;
        }
    }
    def
}

/// One engine per saga kind on `world`'s ports and `store`, with the target's tuning, so any
/// recorded saga can be run here exactly as the Lambda worker would.
pub fn sagas(world: &World, store: Arc<dyn SagaStore>, owner: String) -> Sagas {
    let tuning = &world.tuning;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let random: Arc<dyn Random> = Arc::new(SystemRandom);
    let ports = Arc::new(lifecycle_ports(world, store.clone()));
    let engine = |def: SagaDef<LifecyclePorts>| {
        Engine::new(
            Arc::new(def),
            ports.clone(),
            store.clone(),
            clock.clone(),
            random.clone(),
            owner.clone(),
        )
        .with_config(tuning.engine.clone())
    };
    let instances = OnboardConfig::default().instance_concurrency;
    Sagas {
        change: engine(tuned(tuning, change::definition(instances))),
        fix: engine(tuned(tuning, change::fix_definition(instances))),
        offboard: engine(tuned(tuning, offboard::definition())),
        adopt: engine(tuned(tuning, adopt::definition())),
        onboard: Engine::new(
            Arc::new(tuning.definition()),
            world.ports.clone(),
            store.clone(),
            clock.clone(),
            random.clone(),
            owner.clone(),
        )
        .with_config(tuning.engine.clone()),
    }
}

/// What lifecycle steps and drift checks call: the world's AWS ports and the saga log.
pub fn lifecycle_ports(world: &World, store: Arc<dyn SagaStore>) -> LifecyclePorts {
    LifecyclePorts {
        aws: world.ports.clone(),
        store,
    }
}

/// Everything a run needs: the observed store and its feed, and the world.
pub struct Drive {
    pub store: Arc<dyn SagaStore>,
    pub feed: UnboundedReceiver<SagaRecord>,
    pub world: World,
}

/// A saga run to its end: its view, and the instance aliases to show it with.
pub struct Finished {
    pub view: SagaView,
    pub aliases: BTreeMap<String, String>,
}

/// Run saga `id`, showing progress, then print its final view and return the exit code.
pub async fn drive(
    ctx: &Context,
    run: Drive,
    id: &str,
    action: Action,
    warnings: &[Problem],
) -> Result<u8, CliError> {
    let finished = run_saga(ctx, run, id, action).await?;
    print_view(ctx, &finished, warnings)
}

/// Print a finished saga's view (`--output json`: one document) and return its exit code.
pub fn print_view(ctx: &Context, done: &Finished, warnings: &[Problem]) -> Result<u8, CliError> {
    let view = &done.view;
    match ctx.global.output {
        OutputFormat::Json => render::print_json(&RunReport { view, warnings })?,
        OutputFormat::Text => render::print_text(&render::saga(
            view,
            false,
            &ctx.target_flags(),
            &done.aliases,
        ))?,
    }
    Ok(exit_for(view.status))
}

/// Run saga `id` on the engine of its kind, showing progress (and keeping the sandbox world
/// saved after every recorded transition), and return its final view.
pub async fn run_saga(
    ctx: &Context,
    mut run: Drive,
    id: &str,
    action: Action,
) -> Result<Finished, CliError> {
    let sagas = sagas(&run.world, run.store.clone(), owner());
    let record = run
        .store
        .get(id)
        .await?
        .ok_or_else(|| CliError::NotFound(id.to_string()))?;
    let message = RunSagaMessage {
        saga_id: id.to_string(),
        namespace: record.namespace.clone(),
        action: match action {
            Action::Run => RunAction::Run,
            Action::Redrive => RunAction::Redrive,
        },
    };
    let aliases = recorded_aliases(run.store.as_ref(), &record).await;
    let mut progress = Progress::for_output(ctx.global.output, id, aliases.clone());
    progress.start_from(&record);
    let outcome = {
        let engine_run = sagas.run(&record.kind, &message);
        tokio::pin!(engine_run);
        loop {
            tokio::select! {
                biased;
                Some(record) = run.feed.recv() => {
                    progress.update(&record);
                    // The record is written after each side effect: a world saved now is at
                    // least as new as the record, so a killed run resumes consistently.
                    save_world(ctx, &run.world);
                }
                outcome = &mut engine_run => break outcome,
            }
        }
    };
    while let Ok(record) = run.feed.try_recv() {
        progress.update(&record);
    }
    progress.finish();
    if let Some(sandbox) = run.world.sandbox.take() {
        sandbox.save_or_warn(&ctx.global.state_dir);
        sandbox.shutdown().await;
    }
    match outcome? {
        RunOutcome::Busy { owner, until } => {
            return Err(CliError::Busy {
                id: id.to_string(),
                owner,
                until: render::utc(until),
            })
        }
        RunOutcome::Finished(_) | RunOutcome::AlreadyFinished(_) => {}
    }
    let record = run
        .store
        .get(id)
        .await?
        .ok_or_else(|| CliError::NotFound(id.to_string()))?;
    Ok(Finished {
        view: SagaView::from_record(&record),
        aliases,
    })
}

/// Save the sandbox world (if any) in the state directory.
pub fn save_world(ctx: &Context, world: &World) {
    if let Some(sandbox) = &world.sandbox {
        sandbox.save_or_warn(&ctx.global.state_dir);
    }
}
