//! `onboard apply` of a spec whose namespace this product already manages: the same
//! configuration is not a new run ("already onboarded, nothing changed", plus a drift check
//! against AWS now), and a different one points to `onboard edit` instead of a refusal.

use onboard_core::lifecycle::current_state;
use onboard_core::lifecycle::service::DriftError;
use onboard_core::lifecycle::{DriftReport, ManagedApp};
use onboard_core::record::SagaStatus;
use onboard_core::store::SagaStore;
use onboard_core::validation::Validated;
use serde::Serialize;

use crate::args::OutputFormat;
use crate::commands::drive;
use crate::commands::lifecycle;
use crate::commands::list;
use crate::error::{exit, CliError};
use crate::render;
use crate::targets::Context;

/// The application (root saga id and state) that manages `namespace`, if one does.
pub async fn managing(
    store: &dyn SagaStore,
    namespace: &str,
) -> Result<Option<(String, ManagedApp)>, CliError> {
    let roots = list::sagas(store, &[SagaStatus::Succeeded]).await?;
    Ok(roots
        .iter()
        .filter(|r| r.namespace == namespace && r.parent.is_none())
        .filter_map(|r| current_state(r).ok().map(|s| (r.id.clone(), s)))
        .find(|(_, s)| !s.offboarded))
}

/// `--output json` of a repeated apply.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Unchanged<'a> {
    already_onboarded: bool,
    application_id: &'a str,
    namespace: &'a str,
    changed: bool,
    drift: &'a DriftReport,
}

/// A spec for the namespace of application `app`, which this product manages. Checks drift
/// first: when the application itself is gone from AWS (deleted outside this product, or a
/// reset sandbox) the record is stale and `None` lets the onboarding go ahead. Otherwise a
/// different configuration is refused with the way to change it, and the same one changes
/// nothing and says so: exit 0, or 6 when AWS has drifted from the recorded state.
pub async fn already_managed(
    ctx: &Context,
    app: &str,
    state: &ManagedApp,
    v: &Validated,
) -> Result<Option<u8>, CliError> {
    let session = lifecycle::open(ctx, false, app).await?;
    let ports = drive::lifecycle_ports(&session.world, session.store.clone());
    let checked = session.lifecycle.check_drift(&ports, app).await;
    lifecycle::close(session, ctx).await;
    let report = checked.map_err(|e| match e {
        DriftError::Lifecycle(e) => lifecycle::refused(e, "the request"),
        DriftError::Aws(info) => CliError::Service(info),
    })?;
    if !report.fixable() {
        if ctx.global.output == OutputFormat::Text {
            render::print_text(&format!(
                "Application {app} was onboarded with this namespace but no longer exists in \
                 AWS: onboarding it anew (`onboard offboard {app}` clears the stale record's \
                 leftovers).\n"
            ))?;
        }
        return Ok(None);
    }
    let differs = state.differences(v);
    if !differs.is_empty() {
        return Err(CliError::AlreadyOnboarded {
            app: app.to_string(),
            namespace: v.namespace.clone(),
            differs: differs.join(", "),
        });
    }
    match ctx.global.output {
        OutputFormat::Json => render::print_json(&Unchanged {
            already_onboarded: true,
            application_id: app,
            namespace: &v.namespace,
            changed: false,
            drift: &report,
        })?,
        OutputFormat::Text => {
            let mut s = format!(
                "\"{}\" (namespace {}) is already onboarded as application {app} with this \
                 configuration: nothing was changed.\n",
                state.fields.display_name, v.namespace
            );
            if !state.paused.is_empty() {
                s.push_str(&format!(
                    "  paused on {} instance(s); `onboard resume {app} INSTANCE` uses it there again\n",
                    state.paused.len()
                ));
            }
            if report.drifted() {
                s.push_str(&format!(
                    "  but AWS has drifted from it ({} difference(s)): `onboard drift {app}` lists them, \
                     `onboard drift {app} --fix` re-applies the recorded state\n",
                    report.items.len()
                ));
            } else {
                s.push_str("  drift check just now: AWS matches the recorded state\n");
            }
            render::print_text(&s)?;
        }
    }
    Ok(Some(if report.drifted() {
        exit::DRIFTED
    } else {
        exit::OK
    }))
}
