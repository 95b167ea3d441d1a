//! The campaign's view of the emulated world: a projection of the sandbox dump onto what the
//! product may touch, and the projection the saga records say the world must have.

use std::collections::{BTreeMap, BTreeSet};

use onboard_core::lifecycle::ManagedApp;
use onboard_core::policy::{self, POLICY_NAME};
use serde_json::Value;

/// Everything onboarding can add or remove, as sets of stable keys (association ids and
/// timestamps are left out, so a deleted and re-created association compares equal).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    /// `namespace|arn` of every application.
    pub apps: BTreeSet<String>,
    /// `instance|application arn` of every APPLICATION integration association.
    pub associations: BTreeSet<String>,
    /// AppIntegrations-side associations per application ARN.
    pub app_associations: BTreeMap<String, usize>,
    /// `role|sid` of every statement in the product's inline policy.
    pub statements: BTreeSet<String>,
    /// `role|policy` → text of every other inline policy (must never change).
    pub other_policies: BTreeMap<String, String>,
    /// `instance|profile|namespace` of every security-profile application grant.
    pub grants: BTreeSet<String>,
}

/// The SLR role name of each instance that has one.
pub fn roles(dump: &Value) -> BTreeMap<String, String> {
    dump["instances"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(id, i)| {
                    let arn = i["service_role"].as_str()?;
                    Some((id.clone(), arn.rsplit('/').next()?.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn sids(document: &str) -> Vec<String> {
    let parsed: Value = serde_json::from_str(document).unwrap_or(Value::Null);
    let statements = match &parsed["Statement"] {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        one => vec![one.clone()],
    };
    statements
        .iter()
        .map(|s| s["Sid"].as_str().unwrap_or("<no sid>").to_string())
        .collect()
}

impl Projection {
    pub fn of(dump: &Value) -> Self {
        let mut p = Projection::default();
        for app in dump["applications"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            p.apps.insert(format!(
                "{}|{}",
                app["namespace"].as_str().unwrap_or_default(),
                app["arn"].as_str().unwrap_or_default()
            ));
        }
        for a in dump["integration_associations"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            if a["integration_type"].as_str() == Some("APPLICATION") {
                p.associations.insert(format!(
                    "{}|{}",
                    a["instance_id"].as_str().unwrap_or_default(),
                    a["integration_arn"].as_str().unwrap_or_default()
                ));
            }
        }
        for a in dump["application_associations"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            *p.app_associations
                .entry(
                    a["application_arn"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
                .or_default() += 1;
        }
        for (name, role) in dump["roles"].as_object().into_iter().flat_map(|m| m.iter()) {
            for (policy_name, text) in role["inline_policies"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.iter())
            {
                let text = text.as_str().unwrap_or_default();
                if policy_name == POLICY_NAME {
                    for sid in sids(text) {
                        p.statements.insert(format!("{name}|{sid}"));
                    }
                } else {
                    p.other_policies
                        .insert(format!("{name}|{policy_name}"), text.to_string());
                }
            }
        }
        for (iid, instance) in dump["instances"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.iter())
        {
            for (pid, profile) in instance["security_profiles"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.iter())
            {
                for g in profile["applications"].as_array().into_iter().flatten() {
                    p.grants.insert(format!(
                        "{iid}|{pid}|{}",
                        g["Namespace"].as_str().unwrap_or_default()
                    ));
                }
            }
        }
        p
    }

    /// The world the records demand: `pristine` without anything of an application the
    /// product ever managed, plus each live application's managed state.
    pub fn expected(
        pristine: &Projection,
        managed_ever: &[ManagedApp],
        live: &[ManagedApp],
        roles: &BTreeMap<String, String>,
    ) -> Projection {
        let arns: BTreeSet<&str> = managed_ever.iter().map(|m| m.app.arn.as_str()).collect();
        let namespaces: BTreeSet<&str> =
            managed_ever.iter().map(|m| m.namespace.as_str()).collect();
        let sids: BTreeSet<String> = managed_ever
            .iter()
            .map(|m| policy::statement_sid(&m.app.id))
            .collect();
        let mut p = pristine.clone();
        p.apps.retain(|k| {
            let (ns, arn) = k.split_once('|').unwrap_or((k, ""));
            !arns.contains(arn) && !namespaces.contains(ns)
        });
        p.associations
            .retain(|k| !arns.contains(k.split_once('|').map_or("", |(_, a)| a)));
        p.app_associations
            .retain(|arn, _| !arns.contains(arn.as_str()));
        p.statements
            .retain(|k| !sids.contains(k.split_once('|').map_or("", |(_, s)| s)));
        p.grants
            .retain(|k| !namespaces.contains(k.splitn(3, '|').nth(2).unwrap_or("")));
        for m in live {
            p.apps.insert(format!("{}|{}", m.namespace, m.app.arn));
            for i in m.instances.iter().filter(|i| m.is_active(i)) {
                p.associations.insert(format!("{i}|{}", m.app.arn));
                *p.app_associations.entry(m.app.arn.clone()).or_default() += 1;
                if m.slr_statements {
                    if let Some(role) = roles.get(i) {
                        p.statements
                            .insert(format!("{role}|{}", policy::statement_sid(&m.app.id)));
                    }
                }
                for profile in m.profiles_on(i) {
                    p.grants.insert(format!("{i}|{profile}|{}", m.namespace));
                }
            }
        }
        p
    }

    /// What differs, one line per difference (`+` only in `actual`, `-` missing from it).
    pub fn differences(expected: &Projection, actual: &Projection) -> Vec<String> {
        fn sets(what: &str, e: &BTreeSet<String>, a: &BTreeSet<String>, out: &mut Vec<String>) {
            for k in a.difference(e) {
                out.push(format!("+{what} {k}"));
            }
            for k in e.difference(a) {
                out.push(format!("-{what} {k}"));
            }
        }
        let mut out = Vec::new();
        sets("application", &expected.apps, &actual.apps, &mut out);
        sets(
            "association",
            &expected.associations,
            &actual.associations,
            &mut out,
        );
        sets(
            "statement",
            &expected.statements,
            &actual.statements,
            &mut out,
        );
        sets("grant", &expected.grants, &actual.grants, &mut out);
        if expected.app_associations != actual.app_associations {
            out.push(format!(
                "application associations: expected {:?}, found {:?}",
                expected.app_associations, actual.app_associations
            ));
        }
        if expected.other_policies != actual.other_policies {
            out.push("an inline policy the product does not own changed".to_string());
        }
        out
    }
}
