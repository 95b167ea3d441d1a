//! `onboard retry ID`: re-drive a ROLLBACK_FAILED saga (its rollback) or a NEEDS_ATTENTION one
//! (an offboard carries on forward) after its cause was fixed, or resume a saga of any kind a
//! crashed run left RUNNING/ROLLING_BACK (once its lease expired).

use std::sync::Arc;

use onboard_core::store::SagaStore;

use crate::args::RetryArgs;
use crate::commands::drive::{self, Action, Drive};
use crate::error::CliError;
use crate::progress::ObservedStore;
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
        s if s.is_redrivable() => Action::Redrive,
        s if s.is_runnable() => Action::Run,
        s => {
            return Err(CliError::NothingToRetry {
                id: args.id.clone(),
                status: s.to_string(),
            })
        }
    };
    let world = ctx.world(stores.locks.clone()).await?;
    let (observed, feed) = ObservedStore::new(stores.store.clone());
    let store: Arc<dyn SagaStore> = Arc::new(observed);
    let run = Drive { store, feed, world };
    drive::drive(ctx, run, &args.id, action, &[]).await
}
