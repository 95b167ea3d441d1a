//! `onboard plan SPEC`: validate a spec and show, without changing anything, the steps the
//! saga will run per instance, the statement each service-linked-role policy gains (as a diff)
//! and the security-profile grants.
//!
//! Against AWS the plan is computed offline (no credentials needed) unless `--live` is given.
//! With `--sandbox` (always) or `--live` it runs the same preflight as the saga's `validate`
//! step ([`onboard_core::preflight::inspect`], read-only calls): instances, SLR policies and
//! the policy budget, the namespace, the profiles — plus the caller's permissions
//! (`SimulatePrincipalPolicy`) and whether the agent workspace may iframe the access URL. Every
//! finding is printed with its severity, evidence and fix; any error finding exits 2.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use onboard_aws::page_fetcher::{FetchLimits, ReqwestPageFetcher};
use onboard_aws::permission_simulator::SdkPermissionSimulator;
use onboard_core::plan::{self, Facts, Plan};
use onboard_core::policy::INLINE_POLICY_BUDGET;
use onboard_core::preflight::{self, Finding, Inspection, PreflightPorts, Severity};
use onboard_core::spec::ApplicationSpec;
use onboard_core::validation::Validated;
use onboard_embedded::RedbSagaStore;

use crate::args::{OutputFormat, PlanArgs};
use crate::commands::load_spec;
use crate::error::{exit, CliError};
use crate::render;
use crate::targets::{Context, World};

pub async fn run(ctx: &Context, args: &PlanArgs) -> Result<u8, CliError> {
    let (spec, validated) = load_spec(&args.spec)?;
    let facts = if ctx.sandbox() || args.live {
        Some(check(ctx, args, &spec, &validated).await?)
    } else {
        None
    };
    let plan = plan::build(&spec, &validated, facts.as_ref())?;
    match ctx.global.output {
        OutputFormat::Json => render::print_json(&plan)?,
        OutputFormat::Text => render::print_text(&text(&plan))?,
    }
    Ok(if plan.valid { exit::OK } else { exit::INVALID })
}

/// Preflight against the target: the saga's own checks plus permissions and embedding.
async fn check(
    ctx: &Context,
    args: &PlanArgs,
    spec: &ApplicationSpec,
    v: &Validated,
) -> Result<Facts, CliError> {
    // Plan must not write anything: its lock table lives in memory only.
    let locks = Arc::new(RedbSagaStore::in_memory()?);
    let mut world = ctx.world(locks).await?;
    let result = inspect(&world, args, spec, v).await;
    let profile_names = world
        .sandbox
        .as_ref()
        .map(|sb| sb.profile_names())
        .unwrap_or_default();
    if let Some(sb) = world.sandbox.take() {
        sb.shutdown().await;
    }
    Ok(Facts {
        target: if ctx.sandbox() { "sandbox" } else { "aws" }.into(),
        inspection: result?,
        profile_names,
    })
}

/// Preflight's ports on a target: its services (read-only use), the permission simulator and a
/// page fetcher. Shared with `onboard serve`, whose `POST /preflight` runs the same checks.
/// `allow_private`: fetch access URLs on private networks too (the operator's own `plan`; for
/// `serve`, only with `--allow-private-fetch`, since any caller chooses the URL there).
pub fn preflight_ports(world: &World, allow_private: bool) -> Result<PreflightPorts, CliError> {
    let limits = FetchLimits {
        allow_private_networks: allow_private,
        ..FetchLimits::default()
    };
    let fetcher = ReqwestPageFetcher::new(limits).map_err(|e| CliError::Config {
        message: e.reason,
        fix: "Check the system's TLS configuration and retry.".into(),
    })?;
    Ok(PreflightPorts {
        apps: world.ports.apps.clone(),
        connect: world.ports.connect.clone(),
        iam: world.ports.iam.clone(),
        fetcher: Some(Arc::new(fetcher)),
        simulator: Some(Arc::new(SdkPermissionSimulator::from_config(&world.sdk))),
    })
}

async fn inspect(
    world: &World,
    args: &PlanArgs,
    spec: &ApplicationSpec,
    v: &Validated,
) -> Result<Inspection, CliError> {
    let ports = preflight_ports(world, true)?;
    let (principal, note) = principal(world, args, spec).await;
    let mut inspection = preflight::inspect(&ports, v, None, principal.as_deref()).await?;
    inspection.findings.extend(note);
    Ok(inspection)
}

/// Whose permissions to simulate: `--principal`; else on the sandbox (which has no STS) the
/// spec's requester when it is an ARN, or the seed's first caller; else the identity of the
/// credentials in use. When it cannot be told, a warning says why the check was skipped.
async fn principal(
    world: &World,
    args: &PlanArgs,
    spec: &ApplicationSpec,
) -> (Option<String>, Option<Finding>) {
    if let Some(p) = &args.principal {
        return (Some(p.clone()), None);
    }
    if let Some(sb) = &world.sandbox {
        let requester = &spec.requester.principal;
        if requester.starts_with("arn:") {
            return (Some(requester.clone()), None);
        }
        return (sb.seed.callers.first().map(|c| c.arn.clone()), None);
    }
    match onboard_aws::preflight::caller_arn(&world.sdk).await {
        Ok(arn) if !arn.is_empty() => (Some(arn), None),
        Ok(_) => (None, None),
        Err(e) => (
            None,
            Some(Finding::warning(
                "permissions",
                format!("could not tell who the credentials belong to: {e}"),
                "Pass --principal ARN (the role or user that will run `onboard apply`) to \
                 simulate its permissions.",
            )),
        ),
    }
}

fn text(plan: &Plan) -> String {
    let mut s = String::new();
    let offline = match (plan.checked, plan.target.as_str()) {
        (false, _) => {
            " (computed offline; instances are read when the saga runs — add --live to check now)"
        }
        (true, "sandbox") => " (checked against the sandbox)",
        (true, _) => " (checked against AWS, read-only)",
    };
    let _ = writeln!(
        s,
        "Plan: onboard \"{}\" as namespace {}{offline}",
        plan.display_name, plan.namespace
    );
    let names = |id: &str| {
        plan.instances
            .iter()
            .find(|i| i.id == id)
            .and_then(|i| i.alias.clone())
            .unwrap_or_else(|| id.to_string())
    };
    let aliases: BTreeMap<String, String> = plan
        .instances
        .iter()
        .filter_map(|i| i.alias.clone().map(|a| (i.id.clone(), a)))
        .collect();
    for i in &plan.instances {
        let _ = writeln!(
            s,
            "  instance {}{}{}",
            i.id,
            i.alias
                .as_deref()
                .map(|a| format!(" ({a})"))
                .unwrap_or_default(),
            i.service_linked_role
                .as_deref()
                .map(|r| format!(", service-linked role {r}"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(
        s,
        "\nSteps (in order; if one fails, every completed step is undone in reverse order)"
    );
    let w = plan
        .steps
        .iter()
        .map(|st| {
            render::node_label(&st.step, st.instance.as_deref(), &aliases)
                .chars()
                .count()
        })
        .max()
        .unwrap_or(0);
    let mut last = 0;
    for st in &plan.steps {
        let num = if st.order != last {
            format!("{:>2}.", st.order)
        } else {
            "   ".into()
        };
        last = st.order;
        let label = render::node_label(&st.step, st.instance.as_deref(), &aliases);
        if w > 44 {
            // Instance ids without aliases: keep lines readable on an 80-column terminal.
            let _ = writeln!(s, "  {num} {label}\n        {}", st.action);
        } else {
            let _ = writeln!(s, "  {num} {label:<w$}  {}", st.action);
        }
    }
    let _ = writeln!(s, "\nService-linked-role policy changes");
    for p in &plan.slr_policies {
        let role = p
            .role
            .clone()
            .unwrap_or_else(|| "AWSServiceRoleForAmazonConnect_<suffix> (read at run time)".into());
        let state = if p.before.is_some() {
            "existing"
        } else {
            "new"
        };
        let _ = writeln!(
            s,
            "  {}: role {role}, inline policy {} ({state})",
            names(&p.instance),
            p.policy_name
        );
        for line in &p.diff {
            let _ = writeln!(s, "    {line}");
        }
        if let Some(chars) = p.inline_policy_chars_after {
            let _ = writeln!(
                s,
                "    the role's inline policies will use about {chars} of {INLINE_POLICY_BUDGET} characters"
            );
        }
    }
    if !plan.security_profiles.is_empty() {
        let _ = writeln!(s, "\nSecurity profile changes");
        for p in &plan.security_profiles {
            let name = p
                .name
                .as_deref()
                .map(|n| format!("{n} "))
                .unwrap_or_default();
            let count = p
                .applications_before
                .map(|n| format!("  ({n} → {} application(s))", n + 1))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  {}: {name}({})\n    + {}{count}",
                names(&p.instance),
                p.profile,
                p.add
            );
        }
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(s, "\nWarnings (they do not block onboarding)");
        s.push_str(&render::problems(&plan.warnings));
    }
    if plan.checked {
        s.push_str(&findings_text(plan));
    }
    if plan.valid {
        let _ = writeln!(
            s,
            "\nNothing was changed. `onboard apply` with the same spec carries this out."
        );
    } else {
        let errors = plan
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count();
        let _ = writeln!(
            s,
            "\nNothing was changed. `onboard apply` would refuse this spec: fix the {errors} \
             error(s) above first (exit 2)."
        );
    }
    s
}

/// Every preflight finding, numbered, with severity, evidence and fix; then the framing
/// verdict per domain and whose permissions were simulated.
fn findings_text(plan: &Plan) -> String {
    let mut s = String::new();
    if plan.findings.is_empty() {
        let _ = writeln!(s, "\nPreflight: no findings");
    } else {
        let errors = plan
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count();
        let _ = writeln!(
            s,
            "\nPreflight findings ({errors} error(s), {} warning(s); errors stop the saga)",
            plan.findings.len() - errors
        );
        for (i, f) in plan.findings.iter().enumerate() {
            let severity = match f.severity {
                Severity::Error => "ERROR",
                Severity::Warning => "WARNING",
            };
            let _ = writeln!(s, "  {:>2}. {severity} [{}] {}", i + 1, f.check, f.evidence);
            let mut lines = f.fix.lines();
            if let Some(first) = lines.next() {
                let _ = writeln!(s, "      fix: {first}");
            }
            for line in lines {
                let _ = writeln!(s, "           {line}");
            }
        }
    }
    match &plan.permissions_of {
        Some(p) => {
            let _ = writeln!(s, "  permissions simulated for {p}");
        }
        None => {
            let _ = writeln!(s, "  permissions not simulated");
        }
    }
    // One line per verdict; domains that could not be checked for the same reason (a failed
    // fetch fails for all of them) share one line.
    let mut unknown: Vec<(&str, Vec<&str>)> = Vec::new();
    for d in &plan.embedding {
        let _ = match d.verdict.decision {
            preflight::FrameDecision::Allowed => {
                writeln!(s, "  embedding: {} may iframe the access URL", d.domain)
            }
            preflight::FrameDecision::Blocked => writeln!(
                s,
                "  embedding: {} cannot iframe the access URL ({})",
                d.domain, d.verdict.evidence
            ),
            preflight::FrameDecision::Unknown => {
                match unknown
                    .iter_mut()
                    .find(|(why, _)| *why == d.verdict.evidence)
                {
                    Some((_, domains)) => domains.push(&d.domain),
                    None => unknown.push((&d.verdict.evidence, vec![&d.domain])),
                }
                Ok(())
            }
        };
    }
    for (why, domains) in unknown {
        let _ = writeln!(
            s,
            "  embedding: could not check whether {} may iframe the access URL: {why}",
            domains.join(", ")
        );
    }
    s
}
