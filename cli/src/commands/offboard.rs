//! `onboard offboard ID`: remove the application and everything hanging off it — profile
//! entries, SLR policy statements, every association (also ones made in the console), then the
//! application. It asks for the namespace first (`--yes` skips that; `--dry-run` only shows
//! what would go). Recovers forward: what cannot be removed ends NEEDS_ATTENTION (exit 4) with
//! the exact remaining resources, and `onboard retry` carries on after the cause is fixed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write as _};

use onboard_core::lifecycle::offboard::{self, Inventory};
use onboard_core::lifecycle::ManagedApp;
use serde::Serialize;

use crate::args::{OffboardArgs, OutputFormat};
use crate::commands::lifecycle::{self, new_saga_id, refused, requester, Session};
use crate::commands::{drive, recorded_aliases};
use crate::error::CliError;
use crate::render;
use crate::targets::Context;

/// `--dry-run --output json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DryRun<'a> {
    dry_run: bool,
    application_id: &'a str,
    namespace: &'a str,
    application_arn: &'a str,
    would_remove: &'a Inventory,
}

pub async fn run(ctx: &Context, args: &OffboardArgs) -> Result<u8, CliError> {
    let session = lifecycle::open(ctx, false, &args.id).await?;
    let (root, state) = match session.lifecycle.application(&args.id).await {
        Ok(found) => found,
        Err(e) => {
            lifecycle::close(session, ctx).await;
            return Err(refused(e, "the request"));
        }
    };
    if args.dry_run {
        let aliases = recorded_aliases(session.store.as_ref(), &root).await;
        return dry_run(ctx, session, &args.id, &state, &aliases).await;
    }
    if !args.yes {
        if let Err(e) = confirm(&state) {
            lifecycle::close(session, ctx).await;
            return Err(e);
        }
    }
    let result = session
        .lifecycle
        .offboard(&args.id, requester(&args.request), None, new_saga_id())
        .await;
    let what = format!("Offboarding application {}", args.id);
    lifecycle::finish(ctx, session, result, &what, "the request").await
}

/// Read the namespace from standard input (prompting on a terminal); anything else refuses.
fn confirm(state: &ManagedApp) -> Result<(), CliError> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "This removes application \"{}\" (namespace {}) from {} instance(s), with its \
             profile grants and policy statements. Type the namespace to confirm: ",
            state.fields.display_name,
            state.namespace,
            state.instances.len()
        );
        let _ = err.flush();
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let typed = line.trim();
    if typed == state.namespace {
        return Ok(());
    }
    Err(CliError::NotConfirmed {
        namespace: state.namespace.clone(),
        typed: (!typed.is_empty()).then(|| typed.to_string()),
    })
}

async fn dry_run(
    ctx: &Context,
    session: Session,
    id: &str,
    state: &ManagedApp,
    aliases: &BTreeMap<String, String>,
) -> Result<u8, CliError> {
    let ports = drive::lifecycle_ports(&session.world, session.store.clone());
    let found = offboard::preview(&ports, state).await;
    lifecycle::close(session, ctx).await;
    let inventory = found.map_err(CliError::Service)?;
    match ctx.global.output {
        OutputFormat::Json => render::print_json(&DryRun {
            dry_run: true,
            application_id: id,
            namespace: &state.namespace,
            application_arn: &state.app.arn,
            would_remove: &inventory,
        })?,
        OutputFormat::Text => render::print_text(&dry_run_text(state, &inventory, aliases))?,
    }
    Ok(0)
}

fn dry_run_text(state: &ManagedApp, inv: &Inventory, aliases: &BTreeMap<String, String>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Dry run: `onboard offboard` would remove, as AWS stands now (nothing was changed):"
    );
    for (id, found) in &inv.instances {
        let name = aliases.get(id).map_or(id.as_str(), String::as_str);
        let _ = writeln!(s, "  instance {name}:");
        if !found.profiles.is_empty() {
            let _ = writeln!(
                s,
                "    the grant in {} security profile(s): {}",
                found.profiles.len(),
                found.profiles.join(", ")
            );
        }
        if let Some(role) = &found.role {
            let _ = writeln!(
                s,
                "    its statement (if present) in the SLR policy of {role}"
            );
        }
        match &found.association {
            Some(a) => {
                let _ = writeln!(s, "    the association {}", a.id);
            }
            None => {
                let _ = writeln!(s, "    no association (already gone)");
            }
        }
    }
    if inv.application_exists {
        let _ = writeln!(
            s,
            "  then the application {} ({})",
            state.namespace, state.app.arn
        );
    } else {
        let _ = writeln!(s, "  the application {} is already gone", state.app.arn);
    }
    let _ = writeln!(
        s,
        "Run without --dry-run to offboard (you will be asked to type {}).",
        state.namespace
    );
    s
}
