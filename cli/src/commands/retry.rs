//! `onboard retry ID`: re-drive a ROLLBACK_FAILED saga after its cause was fixed, or resume a
//! saga a crashed run left RUNNING/ROLLING_BACK (once its lease expired).

use std::sync::Arc;

use onboard_core::record::SagaStatus;
use onboard_core::store::SagaStore;

use crate::args::{OutputFormat, RetryArgs};
use crate::commands::drive::{self, Action, Drive};
use crate::error::CliError;
use crate::progress::ObservedStore;
use crate::render;
use crate::targets::Context;

pub async fn run(ctx: &Context, args: &RetryArgs) -> Result<u8, CliError> {
    let stores = ctx
        .store(false)
        .await?
        .ok_or_else(|| CliError::NotFound(args.id.clone()))?;
    let record = stores
        .store
        .get(&args.id)
        .await?
        .ok_or_else(|| CliError::NotFound(args.id.clone()))?;
    let action = match record.status {
        SagaStatus::RollbackFailed => Action::Redrive,
        s if s.is_runnable() => Action::Run,
        s => {
            return Err(CliError::NothingToRetry {
                id: args.id.clone(),
                status: s.to_string(),
            })
        }
    };
    if ctx.sandbox() && ctx.global.output == OutputFormat::Text {
        render::print_text(
            "note: the sandbox world is fresh in every run (only the saga log persists), so \
             undos of resources made by an earlier run find nothing to remove.\n",
        )?;
    }
    let world = ctx.world(stores.locks.clone()).await?;
    let (observed, feed) = ObservedStore::new(stores.store.clone());
    let store: Arc<dyn SagaStore> = Arc::new(observed);
    let definition = Arc::new(world.tuning.definition());
    let run = Drive {
        store,
        feed,
        definition,
        world,
    };
    drive::drive(ctx, run, &args.id, action, &[]).await
}
