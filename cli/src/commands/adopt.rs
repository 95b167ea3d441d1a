//! `onboard adopt NAMESPACE`: bring an application created elsewhere (the console) under
//! management: its fields, associations, SLR statements and profile entries are read into a
//! record whose id is the application's id from then on (edit, pause, drift, offboard).

use crate::args::AdoptArgs;
use crate::commands::lifecycle::{self, new_saga_id, requester};
use crate::error::CliError;
use crate::targets::Context;

pub async fn run(ctx: &Context, args: &AdoptArgs) -> Result<u8, CliError> {
    let session = lifecycle::open(ctx, true, &args.namespace).await?;
    let result = session
        .lifecycle
        .adopt(
            &args.namespace,
            requester(&args.request),
            None,
            new_saga_id(),
        )
        .await;
    let what = format!("Adopting the application of namespace {}", args.namespace);
    lifecycle::finish(ctx, session, result, &what, "the namespace").await
}
