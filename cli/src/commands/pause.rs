//! `onboard pause ID INSTANCE` / `onboard resume ID INSTANCE`: stop using an application on one
//! instance without losing its set-up (association, SLR statement and profile entries are
//! removed there only), and bring it back.

use crate::args::InstanceArgs;
use crate::commands::lifecycle::{self, new_saga_id, requester};
use crate::error::CliError;
use crate::targets::Context;

pub async fn run(ctx: &Context, args: &InstanceArgs, pause: bool) -> Result<u8, CliError> {
    let session = lifecycle::open(ctx, false, &args.id).await?;
    let uc = &session.lifecycle;
    let who = requester(&args.request);
    let result = if pause {
        uc.pause(&args.id, &args.instance, who, None, new_saga_id())
            .await
    } else {
        uc.resume(&args.id, &args.instance, who, None, new_saga_id())
            .await
    };
    let verb = if pause { "Pausing" } else { "Resuming" };
    let what = format!(
        "{verb} application {} on instance {}",
        args.id, args.instance
    );
    lifecycle::finish(ctx, session, result, &what, "the request").await
}
