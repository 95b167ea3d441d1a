//! `onboard plan SPEC`: validate a spec and show, without changing anything, the steps the
//! saga will run per instance, the statement each service-linked-role policy gains (as a diff)
//! and the security-profile grants.
//!
//! Against AWS the plan is computed offline (no credentials needed). With `--sandbox` it also
//! reads the instances, their SLR policies and profiles — read-only calls — so it can show the
//! real role names and policy diff, and report what the saga's `validate` step would refuse.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use onboard_core::error::ErrorKind;
use onboard_core::onboard::{self, OnboardConfig, PROFILE_APPLICATION_LIMIT};
use onboard_core::policy::{self, INLINE_POLICY_BUDGET, POLICY_NAME};
use onboard_core::saga::FanOut;
use onboard_core::spec::{instance_id, profile_id, ApplicationSpec};
use onboard_core::validation::{Problem, Validated, ValidationErrors};
use onboard_embedded::RedbSagaStore;
use serde::Serialize;
use serde_json::{json, Value};

use crate::args::{OutputFormat, PlanArgs};
use crate::commands::load_spec;
use crate::diff;
use crate::error::CliError;
use crate::render;
use crate::targets::Context;

/// Stands for the application id, which exists only once the saga created the application.
const APP_ID: &str = "<application-id>";
/// A UUID-long stand-in, so the policy-size estimate matches the real statement's length.
const APP_ID_SIZED: &str = "00000000-0000-0000-0000-000000000000";
/// Marks a service-linked role in `DescribeInstance.ServiceRole` (as the saga checks it).
const SLR_MARKER: &str =
    ":role/aws-service-role/connect.amazonaws.com/AWSServiceRoleForAmazonConnect_";

/// What `plan` prints (`--output json` serializes it as is).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Plan {
    valid: bool,
    /// `aws` (computed offline) or `sandbox` (checked against the sandbox's instances).
    target: &'static str,
    display_name: String,
    namespace: String,
    instances: Vec<PlanInstance>,
    steps: Vec<PlanStep>,
    slr_policies: Vec<PolicyChange>,
    security_profiles: Vec<ProfileChange>,
    warnings: Vec<Problem>,
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
    /// The SLR's name; unknown until `validate` reads the instance when planning against AWS.
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    policy_name: &'static str,
    statement: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    before: Option<Value>,
    after: Value,
    /// `before` → `after`, pretty-printed, lines prefixed `  `, `+ ` or `- `.
    diff: Vec<String>,
    /// Characters all inline policies of the role will use (sandbox only).
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

/// What the sandbox told us about the instances and profiles.
#[derive(Default)]
struct Facts {
    region: String,
    account: String,
    instances: BTreeMap<String, InstanceFacts>,
    profiles: BTreeMap<(String, String), ProfileFacts>,
    problems: Vec<Problem>,
}

struct InstanceFacts {
    alias: Option<String>,
    role: Option<String>,
    policy: Option<String>,
    other_policy_chars: usize,
}

struct ProfileFacts {
    name: Option<String>,
    applications: usize,
}

pub async fn run(ctx: &Context, args: &PlanArgs) -> Result<u8, CliError> {
    let (spec, validated) = load_spec(&args.spec)?;
    let facts = if ctx.sandbox() {
        let facts = inspect(ctx, &spec, &validated).await?;
        if !facts.problems.is_empty() {
            return Err(CliError::InvalidSpec {
                source_name: format!("{} (checked against the sandbox)", args.spec.display()),
                errors: ValidationErrors {
                    problems: facts.problems,
                    warnings: validated.warnings,
                },
            });
        }
        Some(facts)
    } else {
        None
    };
    let plan = build(&spec, &validated, facts.as_ref())?;
    match ctx.global.output {
        OutputFormat::Json => render::print_json(&plan)?,
        OutputFormat::Text => render::print_text(&text(&plan))?,
    }
    Ok(0)
}

/// Read-only look at the sandbox: instances, SLR policies, namespace, profiles.
async fn inspect(ctx: &Context, spec: &ApplicationSpec, v: &Validated) -> Result<Facts, CliError> {
    // Plan must not write anything: its lock table lives in memory only.
    let locks = Arc::new(RedbSagaStore::in_memory()?);
    let mut world = ctx.world(locks).await?;
    let ports = world.ports.clone();
    let mut facts = Facts::default();
    let mut profile_names = BTreeMap::new();
    if let Some(sb) = &world.sandbox {
        facts.region = sb.seed.region.clone();
        facts.account = sb.seed.account_id.clone();
        profile_names = sb.profile_names();
    }
    let field_of = |id: &str| {
        spec.instances
            .iter()
            .position(|raw| instance_id(raw).as_deref() == Some(id))
            .map_or_else(|| "instances".to_string(), |i| format!("instances[{i}]"))
    };
    for id in &v.instance_ids {
        let info = match ports.connect.describe_instance(id).await {
            Ok(info) => info,
            Err(e) if e.kind == ErrorKind::NotFound => {
                facts.problems.push(Problem::new(
                    field_of(id),
                    format!("instance {id} does not exist in this account and Region"),
                    "Use the id of an existing instance (see the Connect console or `aws connect list-instances`).",
                ));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if info.status != "ACTIVE" {
            facts.problems.push(Problem::new(
                field_of(id),
                format!("instance {id} is {}, not ACTIVE", info.status),
                "Wait until the instance is ACTIVE, or remove it from the spec.",
            ));
        }
        let role = info
            .service_role
            .as_deref()
            .filter(|r| r.contains(SLR_MARKER))
            .map(|arn| arn.rsplit('/').next().unwrap_or(arn).to_string());
        let Some(role) = role else {
            facts.problems.push(Problem::new(
                field_of(id),
                format!(
                    "instance {id} ({}) does not use a service-linked role, so third-party \
                     applications cannot be added to it",
                    info.alias.as_deref().unwrap_or("no alias")
                ),
                "Migrate the instance first (Connect console → account overview → \"Create \
                 service-linked role\"), or remove it from the spec.",
            ));
            facts.instances.insert(
                id.clone(),
                InstanceFacts {
                    alias: info.alias,
                    role: None,
                    policy: None,
                    other_policy_chars: 0,
                },
            );
            continue;
        };
        let policy = ports.iam.get_role_policy(&role, POLICY_NAME).await?;
        let mut other = 0;
        for name in ports.iam.list_role_policies(&role).await? {
            if name != POLICY_NAME {
                if let Some(doc) = ports.iam.get_role_policy(&role, &name).await? {
                    other += policy::policy_chars(&doc);
                }
            }
        }
        facts.instances.insert(
            id.clone(),
            InstanceFacts {
                alias: info.alias,
                role: Some(role),
                policy,
                other_policy_chars: other,
            },
        );
    }
    if let Some(app) = ports.apps.find_application(&v.namespace).await? {
        facts.problems.push(Problem::new(
            if spec.namespace.is_some() {
                "namespace"
            } else {
                "accessUrl"
            },
            format!(
                "namespace {} already belongs to application {}",
                v.namespace, app.arn
            ),
            "Choose another namespace (set `namespace`), or offboard the existing application.",
        ));
    }
    for (gi, grant) in v.profile_grants.iter().enumerate() {
        for (pi, profile) in grant.profile_ids.iter().enumerate() {
            let field = spec
                .security_profiles
                .iter()
                .enumerate()
                .find(|(_, g)| instance_id(&g.instance).as_deref() == Some(&grant.instance_id))
                .and_then(|(i, g)| {
                    g.profiles
                        .iter()
                        .position(|p| profile_id(p).as_deref() == Some(profile))
                        .map(|k| format!("securityProfiles[{i}].profiles[{k}]"))
                })
                .unwrap_or_else(|| format!("securityProfiles[{gi}].profiles[{pi}]"));
            let apps = match ports
                .connect
                .profile_applications(&grant.instance_id, profile)
                .await
            {
                Ok(apps) => apps,
                Err(e) if e.kind == ErrorKind::NotFound => {
                    facts.problems.push(Problem::new(
                        field,
                        format!(
                            "security profile {profile} does not exist in instance {}",
                            grant.instance_id
                        ),
                        "Use a profile id of that instance (Connect console → Users → Security profiles).",
                    ));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if apps.len() >= PROFILE_APPLICATION_LIMIT
                && !apps.iter().any(|a| a.namespace == v.namespace)
            {
                facts.problems.push(Problem::new(
                    field,
                    format!(
                        "security profile {profile} already grants {} applications; Connect allows {PROFILE_APPLICATION_LIMIT}",
                        apps.len()
                    ),
                    "Remove an application from the profile or pick another profile.",
                ));
            }
            facts.profiles.insert(
                (grant.instance_id.clone(), profile.clone()),
                ProfileFacts {
                    name: profile_names
                        .get(&(grant.instance_id.clone(), profile.clone()))
                        .cloned(),
                    applications: apps.len(),
                },
            );
        }
    }
    if let Some(sb) = world.sandbox.take() {
        sb.shutdown().await;
    }
    Ok(facts)
}

/// The Region and account of the first instance given as an ARN (AWS mode has nothing else
/// to go on offline).
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
    let (partition, region, account) = match facts {
        Some(f) => ("aws".to_string(), f.region.clone(), f.account.clone()),
        None => scope_from_arns(spec),
    };
    let arn_of =
        |id: &str| format!("arn:{partition}:app-integrations:{region}:{account}:application/{id}");
    let mut statement = policy::app_statement(APP_ID, &arn_of(APP_ID));
    statement["Sid"] = json!("App<application-id-alphanumerics>");
    let sized = policy::app_statement(APP_ID_SIZED, &arn_of(APP_ID_SIZED));
    let alias = |id: &str| {
        facts
            .and_then(|f| f.instances.get(id))
            .and_then(|i| i.alias.clone())
    };
    let who = |id: &str| alias(id).unwrap_or_else(|| id.to_string());

    let instances = v
        .instance_ids
        .iter()
        .map(|id| PlanInstance {
            id: id.clone(),
            alias: alias(id),
            service_linked_role: facts
                .and_then(|f| f.instances.get(id))
                .and_then(|i| i.role.clone()),
        })
        .collect();

    let mut slr_policies = Vec::new();
    for id in &v.instance_ids {
        let known = facts.and_then(|f| f.instances.get(id));
        let before = known.and_then(|i| i.policy.clone());
        let after = policy::with_statement(before.as_deref(), &statement)?;
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
        let chars_after = match known {
            Some(i) => {
                let sized_doc = policy::with_statement(i.policy.as_deref(), &sized)?;
                Some(i.other_policy_chars + policy::policy_chars(&sized_doc))
            }
            None => None,
        };
        slr_policies.push(PolicyChange {
            instance: id.clone(),
            role: known.and_then(|i| i.role.clone()),
            policy_name: POLICY_NAME,
            statement: statement.clone(),
            before: before_pretty.map(|(val, _)| val),
            after: after_pretty.map_or(Value::Null, |(val, _)| val),
            diff,
            inline_policy_chars_after: chars_after,
        });
    }

    let mut security_profiles = Vec::new();
    for grant in &v.profile_grants {
        for profile in &grant.profile_ids {
            let known = facts.and_then(|f| {
                f.profiles
                    .get(&(grant.instance_id.clone(), profile.clone()))
            });
            security_profiles.push(ProfileChange {
                instance: grant.instance_id.clone(),
                profile: profile.clone(),
                name: known.and_then(|p| p.name.clone()),
                add: json!({"Namespace": v.namespace, "ApplicationPermissions": ["ACCESS"]}),
                applications_before: known.map(|p| p.applications),
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

    Ok(Plan {
        valid: true,
        target: if facts.is_some() { "sandbox" } else { "aws" },
        display_name: spec.display_name.clone(),
        namespace: v.namespace.clone(),
        instances,
        steps,
        slr_policies,
        security_profiles,
        warnings: v.warnings.clone(),
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
                            uses a service-linked role, that the namespace is free and each profile has room"
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
    let offline = if plan.target == "aws" {
        " (computed offline; instances are read when the saga runs)"
    } else {
        " (checked against the sandbox)"
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
    let _ = writeln!(
        s,
        "\nNothing was changed. `onboard apply` with the same spec carries this out."
    );
    s
}
