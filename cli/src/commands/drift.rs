//! `onboard drift ID [--fix]`: compare the application with AWS now (read-only), record the
//! report in its record and print each difference. Exit 0 when nothing drifted, 6 when something
//! did. With `--fix`, a drifted application is repaired by the fix saga — the recorded state is
//! re-applied (missing associations, statements and profile entries added, extra associations
//! removed, fields edited in the console set back) — with the exit codes of `apply`.

use onboard_core::lifecycle::service::DriftError;
use onboard_core::lifecycle::{DriftItem, DriftReport};
use onboard_core::service::SagaView;
use serde::Serialize;

use crate::args::{DriftArgs, OutputFormat};
use crate::commands::drive::{self, Action, Drive};
use crate::commands::lifecycle::{self, new_saga_id, requester};
use crate::error::{exit, CliError};
use crate::render;
use crate::targets::Context;

/// `--output json`: the report, and the fix saga when one ran.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DriftOutput<'a> {
    application_id: &'a str,
    drifted: bool,
    fixable: bool,
    report: &'a DriftReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<&'a SagaView>,
}

pub async fn run(ctx: &Context, args: &DriftArgs) -> Result<u8, CliError> {
    let session = lifecycle::open(ctx, false, &args.id).await?;
    let ports = drive::lifecycle_ports(&session.world, session.store.clone());
    let checked = session.lifecycle.check_drift(&ports, &args.id).await;
    let report = match checked {
        Ok(r) => r,
        Err(e) => {
            lifecycle::close(session, ctx).await;
            return Err(match e {
                DriftError::Lifecycle(e) => lifecycle::refused(e, "the request"),
                DriftError::Aws(info) => CliError::Service(info),
            });
        }
    };
    let text = ctx.global.output == OutputFormat::Text;
    if text {
        render::print_text(&report_text(&args.id, &report, args.fix))?;
    }
    if !args.fix || !report.drifted() {
        lifecycle::close(session, ctx).await;
        if !text {
            render::print_json(&output(&args.id, &report, None))?;
        }
        if args.fix && text {
            render::print_text("Nothing to fix.\n")?;
        }
        return Ok(if report.drifted() {
            exit::DRIFTED
        } else {
            exit::OK
        });
    }
    if !report.fixable() {
        lifecycle::close(session, ctx).await;
        return Err(CliError::NotFixable {
            id: args.id.clone(),
            reason: "the application was deleted outside this product; a fix cannot re-create \
                     it with the same id"
                .into(),
        });
    }
    let started = match session
        .lifecycle
        .fix(
            &args.id,
            &report,
            requester(&args.request),
            None,
            new_saga_id(),
        )
        .await
    {
        Ok(s) => s,
        Err(e) => {
            lifecycle::close(session, ctx).await;
            return Err(lifecycle::refused(e, "the request"));
        }
    };
    if text {
        render::print_text(&format!(
            "Fixing application {} (namespace {}): fix saga {}\n",
            args.id, started.namespace, started.saga_id
        ))?;
    }
    let run = Drive {
        store: session.store,
        feed: session.feed,
        world: session.world,
    };
    let done = drive::run_saga(ctx, run, &started.saga_id, Action::Run).await?;
    if text {
        drive::print_view(ctx, &done, &[])
    } else {
        render::print_json(&output(&args.id, &report, Some(&done.view)))?;
        Ok(drive::exit_for(done.view.status))
    }
}

fn output<'a>(id: &'a str, report: &'a DriftReport, fix: Option<&'a SagaView>) -> DriftOutput<'a> {
    DriftOutput {
        application_id: id,
        drifted: report.drifted(),
        fixable: report.fixable(),
        report,
        fix,
    }
}

/// The report for people: one line per difference.
fn report_text(id: &str, report: &DriftReport, fixing: bool) -> String {
    let mut s = format!(
        "Drift of application {id}, checked {}:\n",
        render::utc(report.checked_at)
    );
    if report.items.is_empty() {
        s.push_str("  no drift: AWS matches the recorded state\n");
        return s;
    }
    for DriftItem {
        kind,
        instance,
        detail,
    } in &report.items
    {
        let kind = serde_json::to_value(kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let at = instance
            .as_deref()
            .map(|i| format!(" [{i}]"))
            .unwrap_or_default();
        s.push_str(&format!("  {kind}{at}: {detail}\n"));
    }
    if fixing && report.fixable() {
        return s;
    }
    if report.fixable() {
        s.push_str(&format!(
            "Fix: re-apply the recorded state with `onboard drift {id} --fix`.\n"
        ));
    } else {
        s.push_str(&format!(
            "Not fixable in place: offboard it (`onboard offboard {id}`) and onboard it again.\n"
        ));
    }
    s
}
