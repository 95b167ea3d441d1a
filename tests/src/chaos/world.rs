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

    /// The world the records demand (`held_before`: every grant an earlier state held, see
    /// [`held_grants`]): `pristine` without anything of an application the
    /// product ever managed, plus each live application's managed state.
    pub fn expected(
        pristine: &Projection,
        managed_ever: &[ManagedApp],
        live: &[ManagedApp],
        roles: &BTreeMap<String, String>,
        held_before: &BTreeSet<String>,
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
        // Pristine grants of a managed namespace: offboarding sweeps every profile, so none
        // stays once no application of the namespace is live; while one is, a grant its state
        // never held (a stale console grant on an instance without an association) is left
        // alone.
        let live_namespaces: BTreeSet<&str> = live.iter().map(|m| m.namespace.as_str()).collect();
        let mut held = held_grants(managed_ever);
        held.extend(held_before.iter().cloned());
        p.grants.retain(|k| {
            let ns = k.splitn(3, '|').nth(2).unwrap_or("");
            !namespaces.contains(ns) || (live_namespaces.contains(ns) && !held.contains(k))
        });
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

    /// What `self` has that `later` lacks (a tampering's removals), as a projection.
    pub fn removed_in(&self, later: &Projection) -> Projection {
        let minus = |a: &BTreeSet<String>, b: &BTreeSet<String>| a.difference(b).cloned().collect();
        Projection {
            apps: minus(&self.apps, &later.apps),
            associations: minus(&self.associations, &later.associations),
            app_associations: self
                .app_associations
                .iter()
                .filter_map(|(arn, n)| {
                    let left = later.app_associations.get(arn).copied().unwrap_or(0);
                    (*n > left).then(|| (arn.clone(), n - left))
                })
                .collect(),
            statements: minus(&self.statements, &later.statements),
            other_policies: BTreeMap::new(),
            grants: minus(&self.grants, &later.grants),
        }
    }

    /// `self` without `removed` (see [`Projection::removed_in`]).
    pub fn without(mut self, removed: &Projection) -> Projection {
        self.apps.retain(|k| !removed.apps.contains(k));
        self.associations
            .retain(|k| !removed.associations.contains(k));
        self.statements.retain(|k| !removed.statements.contains(k));
        self.grants.retain(|k| !removed.grants.contains(k));
        for (arn, n) in &removed.app_associations {
            if let Some(have) = self.app_associations.get_mut(arn) {
                *have = have.saturating_sub(*n);
                if *have == 0 {
                    self.app_associations.remove(arn);
                }
            }
        }
        self
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

/// `instance|profile|namespace` of every grant the states hold (active or paused): a pristine
/// grant any state of its application ever held is the product's to remove.
pub fn held_grants(states: &[ManagedApp]) -> BTreeSet<String> {
    states
        .iter()
        .flat_map(|m| {
            m.profiles
                .iter()
                .flat_map(move |(i, ps)| ps.iter().map(move |p| format!("{i}|{p}|{}", m.namespace)))
        })
        .collect()
}
