//! Drift: what AWS holds for an application compared with its managed state. Read-only; the fix
//! is a change saga that re-applies the recorded state (see [`super::service`]).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::offboard::{scan, ProfileScan};
use super::state::ManagedApp;
use super::LifecyclePorts;
use crate::error::ErrorInfo;
use crate::policy::{self, POLICY_NAME};
use crate::record::Millis;

/// One kind of difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DriftKind {
    /// The application was deleted outside the product.
    ApplicationMissing,
    /// Fields were edited outside the product (e.g. in the console).
    FieldsChanged,
    /// An active instance has no association.
    AssociationMissing,
    /// An instance that should not have one (paused, removed, never added) has an association.
    AssociationExtra,
    /// An active instance's SLR policy lacks the application's statement.
    StatementMissing,
    /// A recorded security-profile grant is gone.
    ProfileEntryMissing,
}

/// One difference, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftItem {
    pub kind: DriftKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub detail: String,
}

/// What a drift check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftReport {
    pub checked_at: Millis,
    pub items: Vec<DriftItem>,
}

/// A drift check that could not finish (AWS refused or failed a read). Recorded so the next
/// sweep moves on to other applications instead of retrying this one first forever, and so
/// operators see why an application's report is old.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftCheckFailure {
    pub at: Millis,
    pub error: ErrorInfo,
}

impl DriftReport {
    pub fn drifted(&self) -> bool {
        !self.items.is_empty()
    }

    /// Instances with an association the state does not have (a fix removes them).
    pub fn extra_instances(&self) -> BTreeSet<String> {
        self.items
            .iter()
            .filter(|i| i.kind == DriftKind::AssociationExtra)
            .filter_map(|i| i.instance.clone())
            .collect()
    }

    /// Whether a fix can repair it (a deleted application cannot be re-created in place: its
    /// id and ARN would change).
    pub fn fixable(&self) -> bool {
        !self
            .items
            .iter()
            .any(|i| i.kind == DriftKind::ApplicationMissing)
    }
}

/// Compare `state` with AWS.
pub async fn detect(
    ports: &LifecyclePorts,
    state: &ManagedApp,
    now: Millis,
) -> Result<DriftReport, ErrorInfo> {
    let mut items = Vec::new();
    let Some(app) = ports.aws.apps.get_application(&state.app.id).await? else {
        items.push(DriftItem {
            kind: DriftKind::ApplicationMissing,
            instance: None,
            detail: format!(
                "application {} ({}) no longer exists",
                state.app.arn, state.namespace
            ),
        });
        return Ok(DriftReport {
            checked_at: now,
            items,
        });
    };
    let changed = state.fields.differences(&app.fields);
    if !changed.is_empty() {
        items.push(DriftItem {
            kind: DriftKind::FieldsChanged,
            instance: None,
            detail: format!("edited outside this product: {}", changed.join(", ")),
        });
    }
    let found = scan(
        ports,
        &state.app.arn,
        &state.namespace,
        &state.instances,
        ProfileScan::Only(&state.profiles),
    )
    .await?;
    let sid = policy::statement_sid(&state.app.id);
    for instance in &state.instances {
        if !state.is_active(instance) {
            continue;
        }
        let Some(here) = found.get(instance) else {
            items.push(DriftItem {
                kind: DriftKind::AssociationMissing,
                instance: Some(instance.clone()),
                detail: format!("instance {instance} no longer exists or cannot be read"),
            });
            continue;
        };
        if here.association.is_none() {
            items.push(DriftItem {
                kind: DriftKind::AssociationMissing,
                instance: Some(instance.clone()),
                detail: format!("instance {instance} has no association with the application"),
            });
        }
        if state.slr_statements {
            if let Some(role) = &here.role {
                let doc = ports.aws.iam.get_role_policy(role, POLICY_NAME).await?;
                if !doc.is_some_and(|d| policy::has_statement(&d, &sid)) {
                    items.push(DriftItem {
                        kind: DriftKind::StatementMissing,
                        instance: Some(instance.clone()),
                        detail: format!("{role}/{POLICY_NAME} lacks statement {sid}"),
                    });
                }
            }
        }
        for profile in state.profiles_on(instance) {
            if !here.profiles.contains(&profile) {
                items.push(DriftItem {
                    kind: DriftKind::ProfileEntryMissing,
                    instance: Some(instance.clone()),
                    detail: format!(
                        "security profile {profile} no longer grants {}",
                        state.namespace
                    ),
                });
            }
        }
    }
    for (instance, here) in &found {
        if here.association.is_some() && !state.is_active(instance) {
            let why = if state.paused.contains(instance) {
                "paused there"
            } else {
                "not set up there"
            };
            items.push(DriftItem {
                kind: DriftKind::AssociationExtra,
                instance: Some(instance.clone()),
                detail: format!(
                    "instance {instance} has an association although the application is {why}"
                ),
            });
        }
    }
    items.sort_by(|a, b| (a.kind, &a.instance).cmp(&(b.kind, &b.instance)));
    Ok(DriftReport {
        checked_at: now,
        items,
    })
}
