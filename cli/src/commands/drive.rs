//! Running a saga in this process with live progress, then reporting its end state: shared by
//! `apply` (a new saga) and `retry` (a re-drive or a resume).

use std::sync::Arc;

use onboard_core::clock::{SystemClock, SystemRandom};
use onboard_core::engine::{Engine, RunOutcome};
use onboard_core::onboard::OnboardPorts;
use onboard_core::record::{SagaRecord, SagaStatus};
use onboard_core::saga::SagaDef;
use onboard_core::service::SagaView;
use onboard_core::store::SagaStore;
use onboard_core::validation::Problem;
use serde::Serialize;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::args::OutputFormat;
use crate::error::{exit, CliError};
use crate::progress::Progress;
use crate::render;
use crate::targets::{Context, World};

/// Run the saga forward (or resume it) or re-drive its rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Run,
    Redrive,
}

/// `--output json` of `apply` and `retry`: the status view plus the spec's warnings.
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
        SagaStatus::RollbackFailed | SagaStatus::NeedsAttention => exit::ROLLBACK_FAILED,
        SagaStatus::Pending | SagaStatus::Running | SagaStatus::RollingBack => exit::OTHER,
    }
}

/// Everything a run needs: the observed store and its feed, the definition and the world.
pub struct Drive {
    pub store: Arc<dyn SagaStore>,
    pub feed: UnboundedReceiver<SagaRecord>,
    pub definition: Arc<SagaDef<OnboardPorts>>,
    pub world: World,
}

/// Run saga `id`, showing progress, then print its final view and return the exit code.
pub async fn drive(
    ctx: &Context,
    mut run: Drive,
    id: &str,
    action: Action,
    warnings: &[Problem],
) -> Result<u8, CliError> {
    let engine = Engine::new(
        run.definition.clone(),
        run.world.ports.clone(),
        run.store.clone(),
        Arc::new(SystemClock),
        Arc::new(SystemRandom),
        owner(),
    )
    .with_config(run.world.tuning.engine.clone());
    let mut progress = Progress::for_output(ctx.global.output, id);
    if let Some(record) = run.store.get(id).await? {
        progress.start_from(&record);
    }
    let outcome = {
        let engine_run = async {
            match action {
                Action::Run => engine.run(id).await,
                Action::Redrive => engine.redrive(id).await,
            }
        };
        tokio::pin!(engine_run);
        loop {
            tokio::select! {
                biased;
                Some(record) = run.feed.recv() => progress.update(&record),
                outcome = &mut engine_run => break outcome,
            }
        }
    };
    while let Ok(record) = run.feed.try_recv() {
        progress.update(&record);
    }
    progress.finish();
    if let Some(sandbox) = run.world.sandbox.take() {
        sandbox.save_dump(&ctx.global.state_dir);
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
    let view = SagaView::from_record(&record);
    match ctx.global.output {
        OutputFormat::Json => render::print_json(&RunReport {
            view: &view,
            warnings,
        })?,
        OutputFormat::Text => render::print_text(&render::saga(&view, false, &ctx.target_flags()))?,
    }
    Ok(exit_for(view.status))
}
