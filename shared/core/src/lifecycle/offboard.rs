//! The offboard saga: `inventory` → `revoke_profiles` → `remove_statements` →
//! `delete_associations` → `delete_application` → `commit`.
//!
//! The console refuses to delete an associated application; offboard removes what hangs off it
//! first, in the reverse of the onboarding order, including associations made outside this
//! product (found by asking every instance of the account and Region). It recovers *forward*:
//! retryable errors are retried, anything else stops in NEEDS_ATTENTION with the exact
//! remaining resources, and a re-drive carries on. Every step is idempotent and treats "not
//! found" as done, so a crash or a re-drive repeats nothing harmful.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::change::write_state;
use super::state::ManagedApp;
use super::LifecyclePorts;
use crate::error::{ErrorInfo, ErrorKind, StepError};
use crate::onboard::{
    decode, encode, internal, profile_lock, remove_statement, revoke_profile, role_lock,
    PolicyGrant,
};
use crate::policy::{self, POLICY_NAME};
use crate::ports::AssociationRef;
use crate::preflight;
use crate::saga::{NodeCtx, Recovery, SagaDef, StepAction, StepDef};

/// The saga kind stored in records.
pub const KIND: &str = "offboard";

/// An offboard saga's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OffboardInput {
    /// The application's root saga.
    pub parent: String,
    pub before: ManagedApp,
    pub requester: String,
    /// How the request arrived (channel, change ticket), for the audit trail.
    #[serde(flatten)]
    pub origin: crate::access::Origin,
}

/// What hangs off the application in one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceInventory {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub association: Option<AssociationRef>,
    /// Security profiles that grant the namespace.
    #[serde(default)]
    pub profiles: Vec<String>,
}

/// `inventory`'s output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    /// False when the application was already gone.
    pub application_exists: bool,
    pub instances: BTreeMap<String, InstanceInventory>,
}

/// The offboard saga definition.
pub fn definition() -> SagaDef<LifecyclePorts> {
    SagaDef {
        kind: KIND,
        steps: vec![
            StepDef::once("inventory", Arc::new(InventoryStep)).without_side_effects(),
            StepDef::once("revoke_profiles", Arc::new(RevokeProfiles)),
            StepDef::once("remove_statements", Arc::new(RemoveStatements)),
            StepDef::once("delete_associations", Arc::new(DeleteAssociations)),
            StepDef::once("delete_application", Arc::new(DeleteApplication)),
            StepDef::once("commit", Arc::new(Commit)),
        ],
        recovery: Recovery::Forward,
    }
}

fn input(node: &NodeCtx) -> Result<OffboardInput, ErrorInfo> {
    decode(&node.input, "offboard input")
}

fn inventory(node: &NodeCtx) -> Result<Inventory, ErrorInfo> {
    decode(
        node.output_of("inventory")
            .ok_or_else(|| internal("inventory has no recorded output"))?,
        "inventory",
    )
}

/// Which security profiles [`scan`] reads (each is one `ListSecurityProfileApplications` call,
/// at Connect's 2 calls/s the bulk of a scan's time).
#[derive(Debug, Clone, Copy)]
pub(crate) enum ProfileScan<'a> {
    /// Every profile of the known and the associated instances (adopt: discover the grants).
    Wanted,
    /// Every profile of every instance (offboard: no grant may stay, wherever it is).
    Everywhere,
    /// Only these profiles, per instance (drift: it checks the recorded grants, and a grant
    /// nobody recorded is not drift).
    Only(&'a BTreeMap<String, BTreeSet<String>>),
}

/// Everything the application has in the instances of the account and Region: association, the
/// instance's SLR, and the profiles granting the namespace — for the `known` instances and
/// every instance with an association, and with [`ProfileScan::Everywhere`] also every instance
/// where a profile still grants the namespace. Shared with adopt and drift.
pub(crate) async fn scan(
    ports: &LifecyclePorts,
    app_arn: &str,
    namespace: &str,
    known: &BTreeSet<String>,
    profile_scan: ProfileScan<'_>,
) -> Result<BTreeMap<String, InstanceInventory>, ErrorInfo> {
    let profiles_everywhere = matches!(profile_scan, ProfileScan::Everywhere);
    let connect = &ports.aws.connect;
    let mut all: BTreeSet<String> = connect.list_instances().await?.into_iter().collect();
    all.extend(known.iter().cloned());
    let mut out = BTreeMap::new();
    for id in all {
        let association = match connect.find_association(&id, app_arn).await {
            Ok(a) => a,
            // A known instance that was deleted has nothing left to clean.
            Err(e) if e.kind == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let wanted = association.is_some() || known.contains(&id);
        if !wanted && !profiles_everywhere {
            continue;
        }
        let info = match connect.describe_instance(&id).await {
            Ok(info) => info,
            Err(e) if e.kind == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let role = preflight::slr_of(&info).map(|r| preflight::role_name(r).to_string());
        let to_read: Vec<String> = match profile_scan {
            ProfileScan::Only(recorded) => recorded
                .get(&id)
                .map(|p| p.iter().cloned().collect())
                .unwrap_or_default(),
            ProfileScan::Wanted | ProfileScan::Everywhere => {
                connect.list_security_profiles(&id).await?
            }
        };
        let mut profiles = Vec::new();
        for profile in to_read {
            let apps = match connect.profile_applications(&id, &profile).await {
                Ok(apps) => apps,
                Err(e) if e.kind == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if apps.iter().any(|a| a.namespace == namespace) {
                profiles.push(profile);
            }
        }
        if !wanted && profiles.is_empty() {
            continue;
        }
        out.insert(
            id,
            InstanceInventory {
                role,
                association,
                profiles,
            },
        );
    }
    Ok(out)
}

/// What an offboard of the application in state `before` would remove now, read exactly as
/// the saga's `inventory` step reads it (`onboard offboard --dry-run`); changes nothing.
pub async fn preview(ports: &LifecyclePorts, before: &ManagedApp) -> Result<Inventory, ErrorInfo> {
    let exists = ports
        .aws
        .apps
        .get_application(&before.app.id)
        .await?
        .is_some();
    let instances = scan(
        ports,
        &before.app.arn,
        &before.namespace,
        &before.instances,
        ProfileScan::Everywhere,
    )
    .await?;
    Ok(Inventory {
        application_exists: exists,
        instances,
    })
}

/// No side effect: find everything to remove.
struct InventoryStep;

#[async_trait]
impl StepAction<LifecyclePorts> for InventoryStep {
    async fn run(&self, ports: &LifecyclePorts, node: &NodeCtx) -> Result<Value, StepError> {
        let inp = input(node)?;
        encode(&preview(ports, &inp.before).await?)
    }

    async fn undo(
        &self,
        _: &LifecyclePorts,
        _: &NodeCtx,
        _: Option<&Value>,
    ) -> Result<(), StepError> {
        Ok(())
    }
}

/// Remove the namespace's entry from every profile that grants it.
struct RevokeProfiles;

#[async_trait]
impl StepAction<LifecyclePorts> for RevokeProfiles {
    async fn run(&self, ports: &LifecyclePorts, node: &NodeCtx) -> Result<Value, StepError> {
        let inv = inventory(node)?;
        let mut done = Vec::new();
        for (instance, found) in &inv.instances {
            for profile in &found.profiles {
                ports
                    .aws
                    .locked(node, &profile_lock(instance, profile), |guard| {
                        revoke_profile(&ports.aws, instance, profile, &node.namespace, guard)
                    })
                    .await
                    .map_err(|e| remaining(e, &inv, "security-profile entries"))?;
                done.push(format!("{instance}/{profile}"));
            }
        }
        Ok(json!({ "revoked": done }))
    }

    async fn undo(
        &self,
        _: &LifecyclePorts,
        _: &NodeCtx,
        _: Option<&Value>,
    ) -> Result<(), StepError> {
        Ok(())
    }
}

/// Remove the application's statement from each instance's SLR policy.
struct RemoveStatements;

#[async_trait]
impl StepAction<LifecyclePorts> for RemoveStatements {
    async fn run(&self, ports: &LifecyclePorts, node: &NodeCtx) -> Result<Value, StepError> {
        let inp = input(node)?;
        let inv = inventory(node)?;
        let mut roles: BTreeSet<String> = BTreeSet::new();
        for found in inv.instances.values() {
            if let Some(role) = &found.role {
                roles.insert(role.clone());
            }
        }
        for role in &roles {
            let grant = PolicyGrant {
                role_name: role.clone(),
                policy_name: POLICY_NAME.to_string(),
                sid: policy::statement_sid(&inp.before.app.id),
                previous_document: None,
            };
            ports
                .aws
                .locked(node, &role_lock(role), |guard| {
                    remove_statement(&ports.aws, &grant, guard)
                })
                .await
                .map_err(|e| remaining(e, &inv, "SLR policy statements"))?;
        }
        Ok(json!({ "roles": roles }))
    }

    async fn undo(
        &self,
        _: &LifecyclePorts,
        _: &NodeCtx,
        _: Option<&Value>,
    ) -> Result<(), StepError> {
        Ok(())
    }
}

/// Delete every association, then make sure AppIntegrations lists none.
struct DeleteAssociations;

#[async_trait]
impl StepAction<LifecyclePorts> for DeleteAssociations {
    async fn run(&self, ports: &LifecyclePorts, node: &NodeCtx) -> Result<Value, StepError> {
        let inp = input(node)?;
        let inv = inventory(node)?;
        for (instance, found) in &inv.instances {
            let Some(assoc) = &found.association else {
                continue;
            };
            match ports
                .aws
                .connect
                .delete_association(instance, &assoc.id)
                .await
            {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(remaining(e, &inv, "associations")),
            }
        }
        if !inv.application_exists {
            return Ok(json!({ "remaining": [] }));
        }
        let left = match ports
            .aws
            .apps
            .list_application_associations(&inp.before.app.id)
            .await
        {
            Ok(left) => left,
            Err(e) if e.kind == ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        if !left.is_empty() {
            return Err(ErrorInfo::new(
                ErrorKind::Conflict,
                "AssociationsRemain",
                format!(
                    "application {} still has {} association(s) no instance of this account \
                     and Region reported: {}",
                    inp.before.app.arn,
                    left.len(),
                    left.join(", ")
                ),
            )
            .with_fix(
                "Find the instance each association belongs to (another Region or account, or \
                 an instance this caller cannot list), remove the integration association there, \
                 then re-drive this offboarding.",
            ));
        }
        Ok(json!({ "remaining": [] }))
    }

    async fn undo(
        &self,
        _: &LifecyclePorts,
        _: &NodeCtx,
        _: Option<&Value>,
    ) -> Result<(), StepError> {
        Ok(())
    }
}

/// DeleteApplication (not `force`: associations were removed above, and a refusal here means
/// one appeared meanwhile, which an operator should see).
struct DeleteApplication;

#[async_trait]
impl StepAction<LifecyclePorts> for DeleteApplication {
    async fn run(&self, ports: &LifecyclePorts, node: &NodeCtx) -> Result<Value, StepError> {
        let inp = input(node)?;
        match ports.aws.apps.delete_application(&inp.before.app.id).await {
            // Gone either way: the same output whether this call or an earlier one deleted it.
            Ok(()) => Ok(json!({ "deleted": inp.before.app.arn })),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(json!({ "deleted": inp.before.app.arn })),
            Err(e) => Err(e),
        }
    }

    async fn undo(
        &self,
        _: &LifecyclePorts,
        _: &NodeCtx,
        _: Option<&Value>,
    ) -> Result<(), StepError> {
        Ok(())
    }
}

/// Mark the application offboarded in its root record.
struct Commit;

#[async_trait]
impl StepAction<LifecyclePorts> for Commit {
    async fn run(&self, ports: &LifecyclePorts, node: &NodeCtx) -> Result<Value, StepError> {
        let inp = input(node)?;
        let mut after = inp.before.clone();
        after.offboarded = true;
        after.paused.clear();
        after.profiles.clear();
        after.last_change = Some(node.saga_id.clone());
        write_state(
            ports,
            &inp.parent,
            &node.saga_id,
            inp.before.last_change.as_deref(),
            &after,
        )
        .await?;
        Ok(json!({ "application": inp.parent }))
    }

    async fn undo(
        &self,
        _: &LifecyclePorts,
        _: &NodeCtx,
        _: Option<&Value>,
    ) -> Result<(), StepError> {
        Ok(())
    }
}

/// A terminal error, with what the inventory says is still there appended for the operator.
fn remaining(e: ErrorInfo, inv: &Inventory, what: &str) -> ErrorInfo {
    if e.is_retryable() {
        return e;
    }
    let mut left = Vec::new();
    for (instance, found) in &inv.instances {
        for p in &found.profiles {
            left.push(format!("profile {p} in instance {instance}"));
        }
        if let Some(a) = &found.association {
            left.push(format!("association {} ({instance})", a.arn));
        }
        if let Some(r) = &found.role {
            left.push(format!("statement in {r}/{POLICY_NAME}"));
        }
    }
    let message = format!(
        "{} — while removing {what}; resources that may remain: {}",
        e.message,
        left.join("; ")
    );
    ErrorInfo { message, ..e }
}
