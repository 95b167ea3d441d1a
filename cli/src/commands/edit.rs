//! `onboard edit ID PATCH.json`: change an onboarded application's fields, instances or
//! profile grants. The patch is validated with the onboarding rules against the current state
//! before anything is recorded (exit 2 lists every problem); the change saga rolls back to the
//! exact previous values when a step fails (exit 3).

use std::io::Read;
use std::path::Path;

use onboard_core::lifecycle::service::parse_edit;

use crate::args::EditArgs;
use crate::commands::lifecycle::{self, new_saga_id, requester};
use crate::error::CliError;
use crate::targets::Context;

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    let err = |source| CliError::ReadSpec {
        path: path.to_path_buf(),
        source,
    };
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map_err(err)?;
        Ok(buf)
    } else {
        std::fs::read(path).map_err(err)
    }
}

pub async fn run(ctx: &Context, args: &EditArgs) -> Result<u8, CliError> {
    let name = format!("the patch {}", args.patch.display());
    // Parse before touching any store or service: a malformed patch changes nothing.
    let patch = parse_edit(&read(&args.patch)?).map_err(|errors| CliError::InvalidRequest {
        what: name.clone(),
        errors,
    })?;
    let session = lifecycle::open(ctx, false, &args.id).await?;
    let result = session
        .lifecycle
        .edit(
            &args.id,
            &patch,
            requester(&args.request),
            args.idempotency_key.as_deref(),
            new_saga_id(),
        )
        .await;
    let what = format!("Editing application {}", args.id);
    lifecycle::finish(ctx, session, result, &what, &name).await
}
