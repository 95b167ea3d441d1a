//! The change saga: edit, pause, resume and drift fix (a kind of its own, recovering
//! forward: see [`fix_definition`]).
//!
//! `check` → `detach_profiles[i]` → `detach_policy[i]` → `detach_association[i]` →
//! `update_application` → `attach_association[i]` → `attach_policy[i]` → `attach_profiles[i]` →
//! `set_frame_settings` → `commit`.
//!
//! Each node converges one aspect of one instance from the input's `before` state to its
//! `after` state, and its undo converges it back, so a rollback restores `before` exactly and
//! both directions are idempotent. Removals come first (grants, then the statement, then the
//! association), then the application's fields, then additions in the onboarding order. A
//! drift fix has `before == after` and re-applies every aspect of the recorded state; its undo
//! never removes anything the recorded state has.
//!
//! One change has no undo: AppIntegrations cannot remove an iframe configuration or an
//! initialization timeout once set. An edit that adds one sets it in `set_frame_settings`, the
//! last step with an effect, after every step that could fail and need a rollback.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::state::{current_state, ManagedApp};
use super::{store_error, LifecyclePorts};
use crate::access::Origin;
use crate::error::{ErrorInfo, ErrorKind, StepError};
use crate::onboard::{
    add_statement, decode, encode, grant_profile, internal, profile_lock, remove_statement,
    revoke_profile, role_lock, target, PolicyGrant,
};
use crate::policy::{self, POLICY_NAME};
use crate::preflight;
use crate::saga::{NodeCtx, Recovery, SagaDef, StepAction, StepDef};

/// The saga kind stored in records.
pub const KIND: &str = "change";

/// Which day-two operation a change saga carries out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    Edit,
    Pause,
    Resume,
    /// Re-apply the recorded state after drift.
    Fix,
}

impl ChangeOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Edit => "edit",
            ChangeOp::Pause => "pause",
            ChangeOp::Resume => "resume",
            ChangeOp::Fix => "fix",
        }
    }
}

/// A change saga's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeInput {
    /// The application's root saga.
    pub parent: String,
    pub operation: ChangeOp,
    /// The instance a pause or resume is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub before: ManagedApp,
    pub after: ManagedApp,
    /// Who asked (principal), for the audit trail.
    pub requester: String,
    /// How the request arrived (channel, change ticket), for the audit trail.
    #[serde(flatten)]
    pub origin: Origin,
    /// For a fix: instances with an association the state does not have (to remove it).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub extra_instances: BTreeSet<String>,
}

impl ChangeInput {
    fn fix(&self) -> bool {
        self.operation == ChangeOp::Fix
    }

    /// The instance stops being active (or, for a fix, must not be active).
    fn leaves(&self, i: &str) -> bool {
        !self.after.is_active(i) && (self.before.is_active(i) || self.fix())
    }

    /// The instance becomes active (or, for a fix, must be active).
    fn joins(&self, i: &str) -> bool {
        self.after.is_active(i) && (!self.before.is_active(i) || self.fix())
    }
}

impl ChangeInput {
    /// The fan-out targets: every instance either state mentions, plus the extra ones.
    pub fn targets(&self) -> Vec<String> {
        let mut all: BTreeSet<String> = self.before.instances.clone();
        all.extend(self.after.instances.iter().cloned());
        all.extend(self.extra_instances.iter().cloned());
        all.into_iter().collect()
    }
}

/// The change saga definition (edit, pause, resume): a failure rolls every change back.
pub fn definition(instance_concurrency: usize) -> SagaDef<LifecyclePorts> {
    SagaDef {
        kind: KIND,
        steps: steps(instance_concurrency),
        recovery: Recovery::Backward,
    }
}

/// The saga kind of a drift fix.
pub const FIX_KIND: &str = "fix";

/// The drift fix definition: the same steps, but recovering forward. A repair's undo cannot
/// give back the drifted world (it must never remove what the recorded state has), so a
/// rollback would record ROLLED_BACK — "exactly as it was" — over a world whose repairs were
/// kept. Instead a terminal failure stops the fix NEEDS_ATTENTION with each repair recorded
/// as done or not, and a re-drive carries on. A refusal by `check` still ends REFUSED.
pub fn fix_definition(instance_concurrency: usize) -> SagaDef<LifecyclePorts> {
    SagaDef {
        kind: FIX_KIND,
        steps: steps(instance_concurrency),
        recovery: Recovery::Forward,
    }
}

/// The definition a change of `operation` runs under.
pub fn definition_for(operation: ChangeOp, instance_concurrency: usize) -> SagaDef<LifecyclePorts> {
    match operation {
        ChangeOp::Fix => fix_definition(instance_concurrency),
        _ => definition(instance_concurrency),
    }
}

fn steps(c: usize) -> Vec<StepDef<LifecyclePorts>> {
    vec![
        StepDef::once("check", Arc::new(CheckStep)).without_side_effects(),
        StepDef::per_target("detach_profiles", c, Arc::new(DetachProfiles)),
        StepDef::per_target("detach_policy", c, Arc::new(DetachPolicy)),
        StepDef::per_target("detach_association", c, Arc::new(DetachAssociation)),
        StepDef::once("update_application", Arc::new(UpdateApplication)),
        StepDef::per_target("attach_association", c, Arc::new(AttachAssociation)),
        StepDef::per_target("attach_policy", c, Arc::new(AttachPolicy)),
        StepDef::per_target("attach_profiles", c, Arc::new(AttachProfiles)),
        StepDef::once("set_frame_settings", Arc::new(SetFrameSettings)),
        StepDef::once("commit", Arc::new(Commit)),
    ]
}

fn input(node: &NodeCtx) -> Result<ChangeInput, ErrorInfo> {
    decode(&node.input, "change input")
}

/// `check`'s output: the SLR role name of each target instance that still exists.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckOutput {
    pub roles: std::collections::BTreeMap<String, String>,
}

fn role_of(node: &NodeCtx, instance: &str) -> Result<Option<String>, ErrorInfo> {
    let out: CheckOutput = decode(
        node.output_of("check")
            .ok_or_else(|| internal("check has no recorded output"))?,
        "check output",
    )?;
    Ok(out.roles.get(instance).cloned())
}

/// No side effect: the application still exists, the state this change was built on is still
/// current, and every instance that becomes active exists, is ACTIVE and uses an SLR.
struct CheckStep;

#[async_trait]
impl StepAction<LifecyclePorts> for CheckStep {
    async fn run(&self, ports: &LifecyclePorts, node: &NodeCtx) -> Result<Value, StepError> {
        let inp = input(node)?;
        if ports
            .aws
            .apps
            .get_application(&inp.before.app.id)
            .await?
            .is_none()
        {
            return Err(ErrorInfo::new(
                ErrorKind::NotFound,
                "ApplicationMissing",
                format!(
                    "application {} ({}) no longer exists in AppIntegrations",
                    inp.before.app.arn, inp.before.namespace
                ),
            )
            .with_fix("It was deleted outside this product: onboard it again, or offboard it to clean up what is left."));
        }
        ensure_current(ports, node, &inp).await?;
        let mut out = CheckOutput::default();
        let mut problems = Vec::new();
        for i in &inp.targets() {
            let info = match ports.aws.connect.describe_instance(i).await {
                Ok(info) => info,
                Err(e) if e.kind == ErrorKind::NotFound => {
                    if inp.after.is_active(i) {
                        problems.push(format!("instance {i} does not exist"));
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let role = preflight::slr_of(&info).map(|r| preflight::role_name(r).to_string());
            if inp.joins(i) && !inp.before.is_active(i) {
                if info.status != "ACTIVE" {
                    problems.push(format!("instance {i} is {}, not ACTIVE", info.status));
                }
                if role.is_none() {
                    problems.push(format!(
                        "instance {i} does not use a service-linked role; migrate it first (Connect console → account overview → \"Create service-linked role\")"
                    ));
                }
            }
            if let Some(role) = role {
                out.roles.insert(i.clone(), role);
            }
        }
        if !problems.is_empty() {
            return Err(
                ErrorInfo::new(ErrorKind::Invalid, "PreflightFailed", problems.join("; "))
                    .with_fix(
                        "Fix each listed problem, or leave those instances out of the change.",
                    ),
            );
        }
        encode(&out)
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

/// The root record still holds the state this change was computed from.
async fn ensure_current(
    ports: &LifecyclePorts,
    node: &NodeCtx,
    inp: &ChangeInput,
) -> Result<(), ErrorInfo> {
    let parent = &inp.parent;
    let root = ports
        .store
        .get(parent)
        .await
        .map_err(store_error)?
        .ok_or_else(|| internal(format!("the application's root saga {parent} is gone")))?;
    let current = current_state(&root)
        .map_err(|e| ErrorInfo::new(ErrorKind::Conflict, "ApplicationChanged", e.to_string()))?;
    if current.last_change.as_deref() == Some(node.saga_id.as_str()) {
        return Ok(()); // this very change was already committed (a replay)
    }
    if current.last_change != inp.before.last_change {
        return Err(ErrorInfo::new(
            ErrorKind::Conflict,
            "ApplicationChanged",
            format!(
                "application {parent} was changed by saga {} after this request was made",
                current.last_change.as_deref().unwrap_or("?")
            ),
        )
        .with_fix("Read the application again and resubmit the change."));
    }
    Ok(())
}

async fn revoke_all(
    ports: &LifecyclePorts,
    node: &NodeCtx,
    instance: &str,
    profiles: &BTreeSet<String>,
) -> Result<(), ErrorInfo> {
    for profile in profiles {
        ports
            .aws
            .locked(node, &profile_lock(instance, profile), |guard| {
                revoke_profile(&ports.aws, instance, profile, &node.namespace, guard)
            })
            .await?;
    }
    Ok(())
}

async fn grant_all(
    ports: &LifecyclePorts,
    node: &NodeCtx,
    instance: &str,
    profiles: &BTreeSet<String>,
) -> Result<(), ErrorInfo> {
    for profile in profiles {
        ports
            .aws
            .locked(node, &profile_lock(instance, profile), |guard| {
                grant_profile(&ports.aws, instance, profile, &node.namespace, guard)
            })
            .await?;
    }
    Ok(())
}

async fn ensure_statement(
    ports: &LifecyclePorts,
    node: &NodeCtx,
    instance: &str,
    state: &ManagedApp,
) -> Result<(), ErrorInfo> {
    let Some(role) = role_of(node, instance)? else {
        return Err(internal(format!(
            "no service-linked role recorded for instance {instance}"
        )));
    };
    let statement = policy::app_statement(&state.app.id, &state.app.arn);
    ports
        .aws
        .locked(node, &role_lock(&role), |guard| {
            add_statement(&ports.aws, instance, &role, &statement, guard)
        })
        .await
        .map(|_| ())
}

async fn drop_statement(
    ports: &LifecyclePorts,
    node: &NodeCtx,
    instance: &str,
    state: &ManagedApp,
) -> Result<(), ErrorInfo> {
    // An instance that no longer exists has no role to clean.
    let Some(role) = role_of(node, instance)? else {
        return Ok(());
    };
    let grant = PolicyGrant {
        role_name: role.clone(),
        policy_name: POLICY_NAME.to_string(),
        sid: policy::statement_sid(&state.app.id),
        previous_document: None,
    };
    ports
        .aws
        .locked(node, &role_lock(&role), |guard| {
            remove_statement(&ports.aws, &grant, guard)
        })
        .await
}

async fn ensure_association(
    ports: &LifecyclePorts,
    instance: &str,
    app_arn: &str,
) -> Result<(), ErrorInfo> {
    if ports
        .aws
        .connect
        .find_association(instance, app_arn)
        .await?
        .is_some()
    {
        return Ok(());
    }
    match ports
        .aws
        .connect
        .create_association(instance, app_arn)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind == ErrorKind::Conflict => Ok(()),
        Err(e) => Err(e),
    }
}

async fn drop_association(
    ports: &LifecyclePorts,
    instance: &str,
    app_arn: &str,
) -> Result<(), ErrorInfo> {
    let found = match ports.aws.connect.find_association(instance, app_arn).await {
        Ok(found) => found,
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let Some(assoc) = found else { return Ok(()) };
    match ports
        .aws
        .connect
        .delete_association(instance, &assoc.id)
        .await
    {
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn noop() -> Result<Value, StepError> {
    Ok(json!({ "changed": false }))
}

fn changed() -> Result<Value, StepError> {
    Ok(json!({ "changed": true }))
}

/// Revoke the profile entries `before` has and `after` does not.
struct DetachProfiles;

#[async_trait]
impl StepAction<LifecyclePorts> for DetachProfiles {
    async fn run(&self, ports: &LifecyclePorts, node: &NodeCtx) -> Result<Value, StepError> {
        let (inp, i) = (input(node)?, target(node)?);
        let gone = removed_profiles(&inp, i);
        if gone.is_empty() {
            return noop();
        }
        revoke_all(ports, node, i, &gone).await?;
        changed()
    }

    async fn undo(
        &self,
        ports: &LifecyclePorts,
        node: &NodeCtx,
        _: Option<&Value>,
    ) -> Result<(), StepError> {
        let (inp, i) = (input(node)?, target(node)?);
        let gone = removed_profiles(&inp, i);
        grant_all(ports, node, i, &gone).await
    }
}

/// Remove the application's statement from the SLR policy of an instance it leaves.
struct DetachPolicy;

#[async_trait]
impl StepAction<LifecyclePorts> for DetachPolicy {
    async fn run(&self, ports: &LifecyclePorts, node: &NodeCtx) -> Result<Value, StepError> {
        let (inp, i) = (input(node)?, target(node)?);
        if !inp.leaves(i) {
            return noop();
        }
        drop_statement(ports, node, i, &inp.before).await?;
        changed()
    }

    async fn undo(
        &self,
        ports: &LifecyclePorts,
        node: &NodeCtx,
        _: Option<&Value>,
    ) -> Result<(), StepError> {
        let (inp, i) = (input(node)?, target(node)?);
        if inp.leaves(i) && inp.before.is_active(i) && inp.before.slr_statements {
            ensure_statement(ports, node, i, &inp.before).await?;
        }
        Ok(())
    }
}

/// Delete the association with an instance the application leaves.
struct DetachAssociation;

#[async_trait]
impl StepAction<LifecyclePorts> for DetachAssociation {
    async fn run(&self, ports: &LifecyclePorts, node: &NodeCtx) -> Result<Value, StepError> {
        let (inp, i) = (input(node)?, target(node)?);
        if !inp.leaves(i) {
            return noop();
        }
        drop_association(ports, i, &inp.before.app.arn).await?;
        changed()
    }

    async fn undo(
        &self,
        ports: &LifecyclePorts,
        node: &NodeCtx,
        _: Option<&Value>,
    ) -> Result<(), StepError> {
        let (inp, i) = (input(node)?, target(node)?);
        if inp.leaves(i) && inp.before.is_active(i) {
            ensure_association(ports, i, &inp.before.app.arn).await?;
        }
        Ok(())
    }
}

/// UpdateApplication to the new fields; the undo writes the previous ones back. Both read the
/// application first and send only the members that differ, so members nobody changed keep
/// their exact stored form and a replay sends nothing.
struct UpdateApplication;

async fn set_fields(
    ports: &LifecyclePorts,
    app: &crate::ports::AppRef,
    fields: &crate::ports::ApplicationFields,
) -> Result<bool, ErrorInfo> {
    let Some(current) = ports.aws.apps.get_application(&app.id).await? else {
        return Err(ErrorInfo::new(
            ErrorKind::NotFound,
            "ApplicationMissing",
            format!("application {} no longer exists", app.arn),
        )
        .with_fix("It was deleted outside this product: offboard it to clean up what is left."));
    };
    if current.fields == *fields {
        return Ok(false);
    }
    ports
        .aws
        .apps
        .update_application(&app.id, fields, Some(&current.fields))
        .await?;
    Ok(true)
}

/// `after` without the members that cannot be unset where `before` has none: those are set
/// by [`SetFrameSettings`] at the end, so every earlier step can still be rolled back.
fn reversible(
    before: &crate::ports::ApplicationFields,
    after: &crate::ports::ApplicationFields,
) -> crate::ports::ApplicationFields {
    let mut f = after.clone();
    if before.iframe.is_none() {
        f.iframe = None;
    }
    if before.initialization_timeout_ms.is_none() {
        f.initialization_timeout_ms = None;
    }
    f
}

#[async_trait]
impl StepAction<LifecyclePorts> for UpdateApplication {
    async fn run(&self, ports: &LifecyclePorts, node: &NodeCtx) -> Result<Value, StepError> {
        let inp = input(node)?;
        let target = reversible(&inp.before.fields, &inp.after.fields);
        // A fix compares with what AWS holds (the console may have changed any member).
        if inp.before.fields == target && !inp.fix() {
            return noop();
        }
        // The output says what was decided, not what AWS needed, so a replay records the same.
        set_fields(ports, &inp.after.app, &target).await?;
        changed()
    }

    async fn undo(
        &self,
        ports: &LifecyclePorts,
        node: &NodeCtx,
        _: Option<&Value>,
    ) -> Result<(), StepError> {
        let inp = input(node)?;
        if inp.before.fields == inp.after.fields {
            return Ok(());
        }
        set_fields(ports, &inp.before.app, &inp.before.fields)
            .await
            .map(|_| ())
    }
}

/// Set an iframe configuration or initialization timeout the application did not have. It
/// cannot be undone (AppIntegrations keeps them once set), so it runs last; its undo only
/// succeeds while AWS does not hold them, and otherwise stops the rollback with the reason.
struct SetFrameSettings;

/// Whether `now` has an iframe configuration or initialization timeout that `before` lacks:
/// members AppIntegrations cannot unset again.
fn gains_frame_settings(
    before: &crate::ports::ApplicationFields,
    now: &crate::ports::ApplicationFields,
) -> bool {
    (before.iframe.is_none() && now.iframe.is_some())
        || (before.initialization_timeout_ms.is_none() && now.initialization_timeout_ms.is_some())
}

#[async_trait]
impl StepAction<LifecyclePorts> for SetFrameSettings {
    async fn run(&self, ports: &LifecyclePorts, node: &NodeCtx) -> Result<Value, StepError> {
        let inp = input(node)?;
        if !gains_frame_settings(&inp.before.fields, &inp.after.fields) {
            return noop();
        }
        set_fields(ports, &inp.after.app, &inp.after.fields).await?;
        changed()
    }

    async fn undo(
        &self,
        ports: &LifecyclePorts,
        node: &NodeCtx,
        _: Option<&Value>,
    ) -> Result<(), StepError> {
        let inp = input(node)?;
        if !gains_frame_settings(&inp.before.fields, &inp.after.fields) {
            return Ok(());
        }
        // Undone only while AWS does not hold them (the run failed before setting them).
        match ports.aws.apps.get_application(&inp.after.app.id).await? {
            Some(now) if gains_frame_settings(&inp.before.fields, &now.fields) => {}
            _ => return Ok(()),
        }
        Err(ErrorInfo::new(
            ErrorKind::Invalid,
            "CannotUnsetFrameSettings",
            format!(
                "application {} keeps the iframe configuration or initialization timeout this \
                 edit set: AppIntegrations cannot remove them",
                inp.after.app.arn
            ),
        )
        .with_fix(
            "Leave them (they only take effect in the agent workspace), or offboard and onboard \
             the application again without them.",
        ))
    }
}

/// Associate an instance the application joins.
struct AttachAssociation;

#[async_trait]
impl StepAction<LifecyclePorts> for AttachAssociation {
    async fn run(&self, ports: &LifecyclePorts, node: &NodeCtx) -> Result<Value, StepError> {
        let (inp, i) = (input(node)?, target(node)?);
        if !inp.joins(i) {
            return noop();
        }
        ensure_association(ports, i, &inp.after.app.arn).await?;
        changed()
    }

    async fn undo(
        &self,
        ports: &LifecyclePorts,
        node: &NodeCtx,
        _: Option<&Value>,
    ) -> Result<(), StepError> {
        let (inp, i) = (input(node)?, target(node)?);
        if inp.joins(i) && !inp.before.is_active(i) {
            drop_association(ports, i, &inp.after.app.arn).await?;
        }
        Ok(())
    }
}

/// Add the application's statement to the SLR policy of an instance it joins.
struct AttachPolicy;

#[async_trait]
impl StepAction<LifecyclePorts> for AttachPolicy {
    async fn run(&self, ports: &LifecyclePorts, node: &NodeCtx) -> Result<Value, StepError> {
        let (inp, i) = (input(node)?, target(node)?);
        if !inp.joins(i) || !inp.after.slr_statements {
            return noop();
        }
        ensure_statement(ports, node, i, &inp.after).await?;
        changed()
    }

    async fn undo(
        &self,
        ports: &LifecyclePorts,
        node: &NodeCtx,
        _: Option<&Value>,
    ) -> Result<(), StepError> {
        let (inp, i) = (input(node)?, target(node)?);
        if inp.joins(i) && !inp.before.is_active(i) && inp.after.slr_statements {
            drop_statement(ports, node, i, &inp.after).await?;
        }
        Ok(())
    }
}

/// Grant the profile entries `after` has and `before` does not (a fix grants all of them).
struct AttachProfiles;

fn removed_profiles(inp: &ChangeInput, i: &str) -> BTreeSet<String> {
    inp.before
        .profiles_on(i)
        .difference(&inp.after.profiles_on(i))
        .cloned()
        .collect()
}

fn added_profiles(inp: &ChangeInput, i: &str) -> BTreeSet<String> {
    inp.after
        .profiles_on(i)
        .difference(&inp.before.profiles_on(i))
        .cloned()
        .collect()
}

#[async_trait]
impl StepAction<LifecyclePorts> for AttachProfiles {
    async fn run(&self, ports: &LifecyclePorts, node: &NodeCtx) -> Result<Value, StepError> {
        let (inp, i) = (input(node)?, target(node)?);
        let todo = if inp.fix() {
            inp.after.profiles_on(i)
        } else {
            added_profiles(&inp, i)
        };
        if todo.is_empty() {
            return noop();
        }
        grant_all(ports, node, i, &todo).await?;
        changed()
    }

    async fn undo(
        &self,
        ports: &LifecyclePorts,
        node: &NodeCtx,
        _: Option<&Value>,
    ) -> Result<(), StepError> {
        let (inp, i) = (input(node)?, target(node)?);
        revoke_all(ports, node, i, &added_profiles(&inp, i)).await
    }
}

/// Write `after` into the application's root record (idempotent: a replay finds it there).
struct Commit;

pub(crate) async fn write_state(
    ports: &LifecyclePorts,
    parent: &str,
    saga_id: &str,
    expect_last: Option<&str>,
    state: &ManagedApp,
) -> Result<(), ErrorInfo> {
    let root = ports
        .store
        .get(parent)
        .await
        .map_err(store_error)?
        .ok_or_else(|| internal(format!("the application's root saga {parent} is gone")))?;
    let current_last = root.managed.as_ref().and_then(|m| m.last_change.clone());
    if current_last.as_deref() == state.last_change.as_deref()
        && root.managed.as_ref() == Some(state)
    {
        return Ok(());
    }
    if current_last.as_deref() != expect_last && current_last.as_deref() != Some(saga_id) {
        return Err(ErrorInfo::new(
            ErrorKind::Conflict,
            "ApplicationChanged",
            format!(
                "application {parent} was changed by saga {} while saga {saga_id} ran",
                current_last.as_deref().unwrap_or("?")
            ),
        )
        .with_fix("Read the application again and resubmit the change."));
    }
    let mut next = root.clone();
    next.managed = Some(state.clone());
    next.version = root.version + 1;
    next.updated_at = root.updated_at.max(next.updated_at);
    ports
        .store
        .update(&next, root.version)
        .await
        .map_err(store_error)
}

#[async_trait]
impl StepAction<LifecyclePorts> for Commit {
    async fn run(&self, ports: &LifecyclePorts, node: &NodeCtx) -> Result<Value, StepError> {
        let inp = input(node)?;
        let parent = inp.parent.clone();
        let mut after = inp.after.clone();
        after.last_change = Some(node.saga_id.clone());
        write_state(
            ports,
            &parent,
            &node.saga_id,
            inp.before.last_change.as_deref(),
            &after,
        )
        .await?;
        Ok(json!({ "application": parent }))
    }

    async fn undo(
        &self,
        ports: &LifecyclePorts,
        node: &NodeCtx,
        _: Option<&Value>,
    ) -> Result<(), StepError> {
        let inp = input(node)?;
        let parent = inp.parent.clone();
        let root = ports
            .store
            .get(&parent)
            .await
            .map_err(store_error)?
            .ok_or_else(|| internal(format!("the application's root saga {parent} is gone")))?;
        let ours = root
            .managed
            .as_ref()
            .is_some_and(|m| m.last_change.as_deref() == Some(node.saga_id.as_str()));
        if !ours {
            return Ok(());
        }
        write_state(
            ports,
            &parent,
            &node.saga_id,
            Some(&node.saga_id),
            &inp.before,
        )
        .await
    }
}
