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
use onboard_core::onboard::{self, OnboardConfig};
use onboard_core::policy::{self, INLINE_POLICY_BUDGET, POLICY_NAME};
use onboard_core::preflight::{self, DomainVerdict, Finding, Inspection, PreflightPorts, Severity};
use onboard_core::saga::FanOut;
use onboard_core::spec::ApplicationSpec;
use onboard_core::validation::{Problem, Validated};
use onboard_embedded::RedbSagaStore;
use serde::Serialize;
use serde_json::{json, Value};

use crate::args::{OutputFormat, PlanArgs};
use crate::commands::load_spec;
use crate::diff;
use crate::error::{exit, CliError};
use crate::render;
use crate::targets::{Context, World};

/// Stands for the application id, which exists only once the saga created the application.
const APP_ID: &str = "<application-id>";

/// What `plan` prints (`--output json` serializes it as is).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Plan {
    /// False when preflight found an error: `apply` would be refused (exit 2).
    valid: bool,
    /// `aws` or `sandbox`.
    target: &'static str,
    /// Whether preflight read the target (`--sandbox`, `--live`) or the plan is offline.
    checked: bool,
    display_name: String,
    namespace: String,
    instances: Vec<PlanInstance>,
    steps: Vec<PlanStep>,
    slr_policies: Vec<PolicyChange>,
    security_profiles: Vec<ProfileChange>,
    /// The spec's own warnings (unknown permission names, ...).
    warnings: Vec<Problem>,
    /// Preflight's findings, errors first, each with severity, evidence and fix.
    findings: Vec<Finding>,
    /// The IAM principal whose permissions were simulated.
    #[serde(skip_serializing_if = "Option::is_none")]
    permissions_of: Option<String>,
    /// Per instance domain: can the agent workspace iframe the access URL?
    #[serde(skip_serializing_if = "Vec::is_empty")]
    embedding: Vec<DomainVerdict>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanInstance {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    alias: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_linked_role: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanStep {
    /// 1-based position of the step in the saga.
    order: usize,
    step: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<String>,
    action: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PolicyChange {
    instance: String,
    /// The SLR's name; unknown until `validate` reads the instance when planning offline.
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    policy_name: &'static str,
    statement: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    before: Option<Value>,
    after: Value,
    /// `before` → `after`, pretty-printed, lines prefixed `  `, `+ ` or `- `.
    diff: Vec<String>,
    /// Characters all inline policies of the role will use (when checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    inline_policy_chars_after: Option<usize>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ProfileChange {
    instance: String,
    profile: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    add: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    applications_before: Option<usize>,
}

/// What preflight read from the target, and the names only the sandbox's seed knows.
struct Facts {
    target: &'static str,
    inspection: Inspection,
    /// Security profile (instance, id) → name (sandbox only).
    profile_names: BTreeMap<(String, String), String>,
}

pub async fn run(ctx: &Context, args: &PlanArgs) -> Result<u8, CliError> {
    let (spec, validated) = load_spec(&args.spec)?;
    let facts = if ctx.sandbox() || args.live {
        Some(check(ctx, args, &spec, &validated).await?)
    } else {
        None
    };
    let plan = build(&spec, &validated, facts.as_ref())?;
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
        target: if ctx.sandbox() { "sandbox" } else { "aws" },
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

/// The Region and account of the first instance given as an ARN (offline there is nothing
/// else to go on).
fn scope_from_arns(spec: &ApplicationSpec) -> (String, String, String) {
    for raw in &spec.instances {
        let parts: Vec<&str> = raw.splitn(6, ':').collect();
        if let ["arn", partition, "connect", region, account, _] = parts.as_slice() {
            return (
                partition.to_string(),
                region.to_string(),
                account.to_string(),
            );
        }
    }
    ("aws".into(), "<region>".into(), "<account>".into())
}

fn build(spec: &ApplicationSpec, v: &Validated, facts: Option<&Facts>) -> Result<Plan, CliError> {
    let inspection = facts.map(|f| &f.inspection);
    let (partition, offline_region, offline_account) = scope_from_arns(spec);
    let region = inspection
        .and_then(|i| i.region.clone())
        .unwrap_or(offline_region);
    let account = inspection
        .and_then(|i| i.account.clone())
        .unwrap_or(offline_account);
    let arn_of =
        |id: &str| format!("arn:{partition}:app-integrations:{region}:{account}:application/{id}");
    let mut statement = policy::app_statement(APP_ID, &arn_of(APP_ID));
    statement["Sid"] = json!("App<application-id-alphanumerics>");
    let report = |id: &str| inspection.and_then(|i| i.instance(id));
    let alias = |id: &str| report(id).and_then(|r| r.alias().map(str::to_owned));
    let who = |id: &str| alias(id).unwrap_or_else(|| id.to_string());

    let instances = v
        .instance_ids
        .iter()
        .map(|id| PlanInstance {
            id: id.clone(),
            alias: alias(id),
            service_linked_role: report(id).and_then(|r| r.role_name.clone()),
        })
        .collect();

    let mut slr_policies = Vec::new();
    for id in &v.instance_ids {
        let known = report(id);
        let before = known.and_then(|i| i.policy.clone());
        let after = match policy::with_statement(before.as_deref(), &statement) {
            Ok(after) => after,
            // Preflight reported the malformed policy as a finding; show no diff for it.
            Err(_) if known.is_some() => String::new(),
            Err(e) => return Err(e.into()),
        };
        let pretty = |doc: &str| {
            serde_json::from_str::<Value>(doc)
                .ok()
                .and_then(|val| serde_json::to_string_pretty(&val).ok().map(|p| (val, p)))
        };
        let before_pretty = before.as_deref().and_then(pretty);
        let after_pretty = pretty(&after);
        let diff = diff::lines(
            before_pretty.as_ref().map_or("", |(_, p)| p.as_str()),
            after_pretty.as_ref().map_or("", |(_, p)| p.as_str()),
        );
        slr_policies.push(PolicyChange {
            instance: id.clone(),
            role: known.and_then(|i| i.role_name.clone()),
            policy_name: POLICY_NAME,
            statement: statement.clone(),
            before: before_pretty.map(|(val, _)| val),
            after: after_pretty.map_or(Value::Null, |(val, _)| val),
            diff,
            inline_policy_chars_after: known.and_then(|i| i.policy_chars_after),
        });
    }

    let mut security_profiles = Vec::new();
    for grant in &v.profile_grants {
        for profile in &grant.profile_ids {
            let key = (grant.instance_id.clone(), profile.clone());
            let known = inspection.and_then(|i| {
                i.profiles
                    .iter()
                    .find(|p| p.instance == key.0 && p.profile == key.1)
            });
            security_profiles.push(ProfileChange {
                instance: grant.instance_id.clone(),
                profile: profile.clone(),
                name: facts.and_then(|f| f.profile_names.get(&key).cloned()),
                add: json!({"Namespace": v.namespace, "ApplicationPermissions": ["ACCESS"]}),
                applications_before: known.and_then(|p| p.applications),
            });
        }
    }

    let def = onboard::definition(&OnboardConfig::default());
    let mut steps = Vec::new();
    for (i, step) in def.steps.iter().enumerate() {
        let targets: Vec<Option<&String>> = match step.fan_out {
            FanOut::Once => vec![None],
            FanOut::PerTarget { .. } => v.instance_ids.iter().map(Some).collect(),
        };
        for target in targets {
            let action = describe_step(
                step.name,
                target.map(String::as_str),
                spec,
                v,
                &slr_policies,
                &security_profiles,
                &who,
            );
            steps.push(PlanStep {
                order: i + 1,
                step: step.name.to_string(),
                instance: target.cloned(),
                action,
            });
        }
    }

    // Errors first, then warnings, each group in check order.
    let mut findings: Vec<Finding> = inspection.map(|i| i.findings.clone()).unwrap_or_default();
    findings.sort_by_key(|f| f.severity != Severity::Error);
    Ok(Plan {
        valid: !preflight::has_errors(&findings),
        target: facts.map_or("aws", |f| f.target),
        checked: facts.is_some(),
        display_name: spec.display_name.clone(),
        namespace: v.namespace.clone(),
        instances,
        steps,
        slr_policies,
        security_profiles,
        warnings: v.warnings.clone(),
        findings,
        permissions_of: inspection.and_then(|i| i.simulated_principal.clone()),
        embedding: inspection.map(|i| i.embedding.clone()).unwrap_or_default(),
    })
}

/// What one node will do, in words. Unknown step names (a newer saga) still get a line.
fn describe_step(
    step: &str,
    instance: Option<&str>,
    spec: &ApplicationSpec,
    v: &Validated,
    policies: &[PolicyChange],
    profiles: &[ProfileChange],
    who: &dyn Fn(&str) -> String,
) -> String {
    match (step, instance) {
        ("validate", _) => "no changes: re-checks the spec, that every instance exists, is ACTIVE and \
                            uses a service-linked role, that each role's inline policies stay within \
                            IAM's budget, that the namespace is free and each profile has room"
            .into(),
        ("create_application", _) => format!(
            "CreateApplication \"{}\" namespace {} ({} permission(s), {} approved origin(s)), tagged with the saga id",
            spec.display_name,
            v.namespace,
            spec.permissions.len(),
            spec.approved_origins.len()
        ),
        ("associate", Some(id)) => format!(
            "CreateIntegrationAssociation (APPLICATION) of the application with instance {id}"
        ),
        ("grant_slr_policy", Some(id)) => {
            let role = policies
                .iter()
                .find(|p| p.instance == id)
                .and_then(|p| p.role.clone())
                .unwrap_or_else(|| format!("the service-linked role of {}", who(id)));
            format!("PutRolePolicy {POLICY_NAME} on {role}: add the application's statement")
        }
        ("grant_security_profiles", Some(id)) => {
            let names: Vec<String> = profiles
                .iter()
                .filter(|p| p.instance == id)
                .map(|p| match &p.name {
                    Some(n) => format!("{n} ({})", p.profile),
                    None => p.profile.clone(),
                })
                .collect();
            if names.is_empty() {
                "no profiles requested for this instance: no change".into()
            } else {
                format!("UpdateSecurityProfile: grant ACCESS in {}", names.join(", "))
            }
        }
        ("activate", _) => "no changes: confirms the application and every association exist".into(),
        (other, _) => format!("runs {other}"),
    }
}

fn text(plan: &Plan) -> String {
    let mut s = String::new();
    let offline = match (plan.checked, plan.target) {
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
    for d in &plan.embedding {
        let word = match d.verdict.decision {
            preflight::FrameDecision::Allowed => "may iframe",
            preflight::FrameDecision::Blocked => "cannot iframe",
            preflight::FrameDecision::Unknown => "may not iframe",
        };
        let _ = writeln!(s, "  embedding: {} {word} the access URL", d.domain);
    }
    s
}
