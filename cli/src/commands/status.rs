//! `onboard status [ID]`: one saga's status, timeline, resources and next action.

use onboard_core::record::SagaStatus;
use onboard_core::service::SagaView;

use crate::args::{OutputFormat, StatusArgs};
use crate::commands::{list, recorded_aliases};
use crate::error::CliError;
use crate::render;
use crate::targets::Context;

pub async fn run(ctx: &Context, args: &StatusArgs) -> Result<u8, CliError> {
    let where_ = if ctx.sandbox() {
        format!(" in {}", ctx.global.state_dir.display())
    } else {
        String::new()
    };
    let Some(stores) = ctx.store(false).await? else {
        return Err(match &args.id {
            Some(id) => CliError::NotFound(id.clone()),
            None => CliError::NoSagas(where_),
        });
    };
    let record = match &args.id {
        Some(id) => stores
            .store
            .get(id)
            .await?
            .ok_or_else(|| CliError::NotFound(id.clone()))?,
        None => list::sagas(stores.store.as_ref(), &SagaStatus::ALL)
            .await?
            .into_iter()
            .next()
            .ok_or(CliError::NoSagas(where_))?,
    };
    let view = SagaView::from_record(&record);
    match ctx.global.output {
        OutputFormat::Json => render::print_json(&view)?,
        OutputFormat::Text => {
            let aliases = recorded_aliases(stores.store.as_ref(), &record).await;
            render::print_text(&render::saga(
                &view,
                args.log,
                &ctx.target_flags(),
                &aliases,
            ))?
        }
    }
    Ok(0)
}
