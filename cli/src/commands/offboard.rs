//! `onboard offboard ID`: remove the application and everything hanging off it — profile
//! entries, SLR policy statements, every association (also ones made in the console), then the
//! application. Recovers forward: what cannot be removed ends NEEDS_ATTENTION (exit 4) with the
//! exact remaining resources, and `onboard retry` carries on after the cause is fixed.

use crate::args::AppArgs;
use crate::commands::lifecycle::{self, new_saga_id, requester};
use crate::error::CliError;
use crate::targets::Context;

pub async fn run(ctx: &Context, args: &AppArgs) -> Result<u8, CliError> {
    let session = lifecycle::open(ctx, false, &args.id).await?;
    let result = session
        .lifecycle
        .offboard(&args.id, requester(&args.request), None, new_saga_id())
        .await;
    let what = format!("Offboarding application {}", args.id);
    lifecycle::finish(ctx, session, result, &what, "the request").await
}
