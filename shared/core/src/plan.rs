//! The plan of an onboarding, shown before anything changes (`onboard plan`, the API's
//! `POST /preflight`, the portal's preview): the saga's steps per instance in words, the
//! statement each service-linked-role policy gains as a diff, and the security-profile grants,
//! with preflight's findings when it read the target.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use similar::{ChangeTag, TextDiff};

use crate::error::ErrorInfo;
use crate::onboard::{self, OnboardConfig};
use crate::policy::{self, POLICY_NAME};
use crate::preflight::{self, DomainVerdict, Finding, Inspection, Severity};
use crate::saga::FanOut;
use crate::spec::ApplicationSpec;
use crate::validation::{Problem, Validated};

/// Stands for the application id, which exists only once the saga created the application.
pub const APP_ID: &str = "<application-id>";

/// What `plan` prints (`--output json` serializes it as is).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// False when preflight found an error: `apply` would be refused (exit 2).
    pub valid: bool,
    /// `aws` or `sandbox`.
    pub target: String,
    /// Whether preflight read the target (`--sandbox`, `--live`) or the plan is offline.
    pub checked: bool,
    pub display_name: String,
    pub namespace: String,
    pub instances: Vec<PlanInstance>,
    pub steps: Vec<PlanStep>,
    pub slr_policies: Vec<PolicyChange>,
    pub security_profiles: Vec<ProfileChange>,
    /// The spec's own warnings (unknown permission names, ...).
    pub warnings: Vec<Problem>,
    /// Preflight's findings, errors first, each with severity, evidence and fix.
    pub findings: Vec<Finding>,
    /// The IAM principal whose permissions were simulated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions_of: Option<String>,
    /// Per instance domain: can the agent workspace iframe the access URL?
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub embedding: Vec<DomainVerdict>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanInstance {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_linked_role: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanStep {
    /// 1-based position of the step in the saga.
    pub order: usize,
    pub step: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub action: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyChange {
    pub instance: String,
    /// The SLR's name; unknown until `validate` reads the instance when planning offline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub policy_name: String,
    pub statement: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    pub after: Value,
    /// `before` → `after`, pretty-printed, lines prefixed `  `, `+ ` or `- `.
    pub diff: Vec<String>,
    /// Characters all inline policies of the role will use (when checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inline_policy_chars_after: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileChange {
    pub instance: String,
    pub profile: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub add: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applications_before: Option<usize>,
}

/// What preflight read from the target, and the names only the sandbox's seed knows.
pub struct Facts {
    /// `aws` or `sandbox`.
    pub target: String,
    pub inspection: Inspection,
    /// Security profile (instance, id) → name (sandbox only).
    pub profile_names: BTreeMap<(String, String), String>,
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

/// The plan of onboarding `spec`: offline when `facts` is `None` (ids and ARNs stand in for
/// what only the target knows), else with what preflight read.
pub fn build(
    spec: &ApplicationSpec,
    v: &Validated,
    facts: Option<&Facts>,
) -> Result<Plan, ErrorInfo> {
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
            Err(e) => return Err(e),
        };
        let pretty = |doc: &str| {
            serde_json::from_str::<Value>(doc)
                .ok()
                .and_then(|val| serde_json::to_string_pretty(&val).ok().map(|p| (val, p)))
        };
        let before_pretty = before.as_deref().and_then(pretty);
        let after_pretty = pretty(&after);
        let diff = lines(
            before_pretty.as_ref().map_or("", |(_, p)| p.as_str()),
            after_pretty.as_ref().map_or("", |(_, p)| p.as_str()),
        );
        slr_policies.push(PolicyChange {
            instance: id.clone(),
            role: known.and_then(|i| i.role_name.clone()),
            policy_name: POLICY_NAME.to_string(),
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
        target: facts.map_or("aws", |f| f.target.as_str()).to_string(),
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

/// The diff of `before` → `after`, one line per input line: unchanged lines prefixed with two
/// spaces, added `+ `, removed `- `.
pub fn lines(before: &str, after: &str) -> Vec<String> {
    TextDiff::from_lines(before, after)
        .iter_all_changes()
        .map(|c| {
            let sign = match c.tag() {
                ChangeTag::Equal => "  ",
                ChangeTag::Insert => "+ ",
                ChangeTag::Delete => "- ",
            };
            format!("{sign}{}", c.value().trim_end_matches(['\n', '\r']))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_common_lines_and_marks_additions() {
        assert_eq!(
            lines("a\nb\nc", "a\nb\nx\nc"),
            vec!["  a", "  b", "+ x", "  c"]
        );
        assert_eq!(lines("", "a\nb"), vec!["+ a", "+ b"]);
        assert_eq!(lines("a\nb", "b"), vec!["- a", "  b"]);
    }
}
