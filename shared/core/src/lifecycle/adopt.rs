//! The adopt saga: bring an application created elsewhere (e.g. in the console) under
//! management. One step, `discover`, records its fields, associations, SLR statements and
//! profile entries, and tags the application with the adopt saga's id (the tag onboarding
//! sets), so a second adopt sees it is managed. The finished record is the application's root
//! from then on, so edit, pause, drift and offboard work on it like on an onboarded one. The
//! undo removes the tag again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::offboard::{scan, ProfileScan};
use super::state::{current_state, ManagedApp};
use super::{store_error, LifecyclePorts};
use crate::error::{ErrorInfo, ErrorKind, StepError};
use crate::onboard::{decode, encode, SAGA_TAG};
use crate::policy::{self, POLICY_NAME};
use crate::ports::AppRef;
use crate::saga::{NodeCtx, Recovery, SagaDef, StepAction, StepDef};

/// The saga kind stored in records.
pub const KIND: &str = "adopt";

/// An adopt saga's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdoptInput {
    pub namespace: String,
    pub requester: String,
    /// How the request arrived (channel, change ticket), for the audit trail.
    #[serde(flatten)]
    pub origin: crate::access::Origin,
}

/// The adopt saga definition.
pub fn definition() -> SagaDef<LifecyclePorts> {
    SagaDef {
        kind: KIND,
        steps: vec![StepDef::once("discover", Arc::new(Discover))],
        recovery: Recovery::Backward,
    }
}

struct Discover;

#[async_trait]
impl StepAction<LifecyclePorts> for Discover {
    async fn run(&self, ports: &LifecyclePorts, node: &NodeCtx) -> Result<Value, StepError> {
        let inp: AdoptInput = decode(&node.input, "adopt input")?;
        let Some(found) = ports.aws.apps.find_application(&inp.namespace).await? else {
            return Err(ErrorInfo::new(
                ErrorKind::NotFound,
                "ApplicationNotFound",
                format!(
                    "no AppIntegrations application has namespace {}",
                    inp.namespace
                ),
            )
            .with_fix(
                "Check the namespace (AppIntegrations console → Applications) and the Region.",
            ));
        };
        if let Some(owner) = found.tags.get(SAGA_TAG).filter(|o| **o != node.saga_id) {
            let managed = match ports.store.get(owner).await.map_err(store_error)? {
                Some(root) => current_state(&root).is_ok(),
                None => false,
            };
            if managed {
                return Err(ErrorInfo::new(
                    ErrorKind::Conflict,
                    "AlreadyManaged",
                    format!("application {} is already managed as {owner}", found.arn),
                )
                .with_fix(format!(
                    "Use application {owner} (GET /applications/{owner})."
                )));
            }
        }
        let Some(details) = ports.aws.apps.get_application(&found.id).await? else {
            return Err(ErrorInfo::new(
                ErrorKind::NotFound,
                "ApplicationNotFound",
                format!("application {} disappeared while being adopted", found.arn),
            ));
        };
        let inventory = scan(
            ports,
            &details.arn,
            &details.namespace,
            &BTreeSet::new(),
            ProfileScan::Wanted,
        )
        .await?;
        let mut instances = BTreeSet::new();
        let mut profiles: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut statements = 0usize;
        for (id, found) in &inventory {
            if found.association.is_none() {
                continue;
            }
            instances.insert(id.clone());
            if !found.profiles.is_empty() {
                profiles.insert(id.clone(), found.profiles.iter().cloned().collect());
            }
            if let Some(role) = &found.role {
                let doc = ports.aws.iam.get_role_policy(role, POLICY_NAME).await?;
                if doc
                    .is_some_and(|d| policy::has_statement(&d, &policy::statement_sid(&details.id)))
                {
                    statements += 1;
                }
            }
        }
        // The tag marks it as ours from now on (and lets a replay recognise its own adoption).
        let tag = BTreeMap::from([(SAGA_TAG.to_string(), node.saga_id.clone())]);
        ports.aws.apps.tag_application(&details.arn, &tag).await?;
        let state = ManagedApp {
            app: AppRef {
                id: details.id.clone(),
                arn: details.arn.clone(),
            },
            namespace: details.namespace.clone(),
            fields: details.fields.clone(),
            // Every associated instance has the statement: keep managing it; otherwise the
            // app was set up without one and the product leaves the policies alone.
            slr_statements: !instances.is_empty() && statements == instances.len(),
            instances,
            paused: BTreeSet::new(),
            profiles,
            offboarded: false,
            last_change: None,
        };
        encode(&state)
    }

    async fn undo(
        &self,
        ports: &LifecyclePorts,
        node: &NodeCtx,
        _: Option<&Value>,
    ) -> Result<(), StepError> {
        let inp: AdoptInput = decode(&node.input, "adopt input")?;
        let Some(found) = ports.aws.apps.find_application(&inp.namespace).await? else {
            return Ok(());
        };
        if found.tags.get(SAGA_TAG) != Some(&node.saga_id) {
            return Ok(());
        }
        match ports
            .aws
            .apps
            .untag_application(&found.arn, &[SAGA_TAG.to_string()])
            .await
        {
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}
