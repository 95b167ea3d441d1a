//! The managed state of an application: what the product keeps in AWS for it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::onboard;
use crate::ports::{AppRef, ApplicationFields};
use crate::record::{SagaRecord, SagaStatus};
use crate::spec::ApplicationSpec;
use crate::validation::Validated;

/// An application as the product manages it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedApp {
    pub app: AppRef,
    pub namespace: String,
    pub fields: ApplicationFields,
    /// Instances the application is set up on, active or paused (ids).
    pub instances: BTreeSet<String>,
    /// Instances where it is paused: no association, statement or profile entries.
    #[serde(default)]
    pub paused: BTreeSet<String>,
    /// Security profiles that grant it `ACCESS`, per instance (active instances only).
    #[serde(default)]
    pub profiles: BTreeMap<String, BTreeSet<String>>,
    /// Whether the product keeps this application's statement in each active instance's SLR
    /// policy (always for onboarded apps; for adopted ones only when it found them).
    pub slr_statements: bool,
    #[serde(default)]
    pub offboarded: bool,
    /// The lifecycle saga that last changed this state; a change built on an older state is
    /// refused, so two edits can never silently overwrite each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change: Option<String>,
}

impl ManagedApp {
    /// Associated, with its statement and profile entries.
    pub fn is_active(&self, instance: &str) -> bool {
        self.instances.contains(instance) && !self.paused.contains(instance)
    }

    /// The profiles that grant the app on `instance` in this state (none when not active).
    pub fn profiles_on(&self, instance: &str) -> BTreeSet<String> {
        if self.is_active(instance) {
            self.profiles.get(instance).cloned().unwrap_or_default()
        } else {
            BTreeSet::new()
        }
    }

    /// The state as a spec (for validating an edit with the onboarding rules).
    pub fn to_spec(&self, base: &ApplicationSpec) -> ApplicationSpec {
        let mut spec = base.clone();
        self.fields.apply_to(&mut spec);
        spec.namespace = Some(self.namespace.clone());
        spec.instances = self.instances.iter().cloned().collect();
        spec.security_profiles = self
            .profiles
            .iter()
            .filter(|(_, p)| !p.is_empty())
            .map(|(i, p)| crate::spec::ProfileGrant {
                instance: i.clone(),
                profiles: p.iter().cloned().collect(),
            })
            .collect();
        spec
    }
}

impl ManagedApp {
    /// How a validated spec for this application differs from its managed state: the spec
    /// field names that differ (`displayName`, `instances`, ...), empty when applying the spec
    /// would change nothing. A paused instance counts as set up (resume it to use it again).
    pub fn differences(&self, v: &Validated) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.namespace != v.namespace {
            out.push("namespace");
        }
        out.extend(self.fields.differences(&ApplicationFields::of(&v.spec)));
        let mut cmp = |name: &'static str, same: bool| {
            if !same {
                out.push(name);
            }
        };
        let instances: BTreeSet<String> = v.instance_ids.iter().cloned().collect();
        cmp("instances", self.instances == instances);
        // Only the active instances' grants are recorded; a paused one keeps none.
        let mut profiles = profiles_of(v);
        profiles.retain(|i, p| self.is_active(i) && !p.is_empty());
        let mut recorded = self.profiles.clone();
        recorded.retain(|_, p| !p.is_empty());
        cmp("securityProfiles", recorded == profiles);
        out
    }
}

/// A validated spec's security-profile grants as a map instance → profiles.
pub(crate) fn profiles_of(v: &Validated) -> BTreeMap<String, BTreeSet<String>> {
    let mut profiles: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for grant in &v.profile_grants {
        profiles
            .entry(grant.instance_id.clone())
            .or_default()
            .extend(grant.profile_ids.iter().cloned());
    }
    profiles
}

/// Why an application's state cannot be read from a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("saga {id} is a {kind} saga, not an application (use the id of its onboard or adopt saga: {parent})")]
    NotAnApplication {
        id: String,
        kind: String,
        parent: String,
    },
    #[error(
        "application {id} is {status}: only a SUCCEEDED onboarding has an application to change"
    )]
    NotOnboarded { id: String, status: SagaStatus },
    #[error("application {id} was offboarded")]
    Offboarded { id: String },
    #[error("application {id}'s record is unreadable: {message}")]
    Corrupt { id: String, message: String },
}

/// The current managed state of the application whose root saga is `root`.
pub fn current_state(root: &SagaRecord) -> Result<ManagedApp, StateError> {
    if root.kind != onboard::KIND && root.kind != super::adopt::KIND {
        return Err(StateError::NotAnApplication {
            id: root.id.clone(),
            kind: root.kind.clone(),
            parent: root.parent.clone().unwrap_or_else(|| "unknown".into()),
        });
    }
    if root.status != SagaStatus::Succeeded {
        return Err(StateError::NotOnboarded {
            id: root.id.clone(),
            status: root.status,
        });
    }
    let state = match &root.managed {
        Some(state) => state.clone(),
        None if root.kind == super::adopt::KIND => root
            .output_of("discover")
            .ok_or_else(|| corrupt(root, "the adopt saga has no discovery output"))
            .and_then(|out| {
                serde_json::from_value(out.clone()).map_err(|e| corrupt(root, &e.to_string()))
            })?,
        None => from_onboarding(root)?,
    };
    if state.offboarded {
        return Err(StateError::Offboarded {
            id: root.id.clone(),
        });
    }
    Ok(state)
}

fn corrupt(root: &SagaRecord, message: &str) -> StateError {
    StateError::Corrupt {
        id: root.id.clone(),
        message: message.to_string(),
    }
}

/// The state a finished onboard saga left: its spec and the application it created.
fn from_onboarding(root: &SagaRecord) -> Result<ManagedApp, StateError> {
    let spec: ApplicationSpec =
        serde_json::from_value(root.input.clone()).map_err(|e| corrupt(root, &e.to_string()))?;
    let v = spec.validate().map_err(|e| corrupt(root, &e.to_string()))?;
    let app: AppRef = root
        .output_of("create_application")
        .ok_or_else(|| corrupt(root, "no create_application output"))
        .and_then(|o| {
            serde_json::from_value(o.clone()).map_err(|e| corrupt(root, &e.to_string()))
        })?;
    Ok(ManagedApp {
        app,
        namespace: v.namespace.clone(),
        fields: ApplicationFields::of(&v.spec),
        instances: v.instance_ids.iter().cloned().collect(),
        paused: BTreeSet::new(),
        profiles: profiles_of(&v),
        slr_statements: true,
        offboarded: false,
        last_change: None,
    })
}
