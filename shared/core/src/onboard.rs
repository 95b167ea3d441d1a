//! The onboard saga: validate → create_application → associate[instance] →
//! grant_slr_policy[instance] → grant_security_profiles[instance] → activate.
//!
//! Every action and undo is idempotent and finds what it may have created by a deterministic
//! identity (our tag on the application, the application ARN on an association, a Sid in the
//! SLR policy, the namespace in a security profile), so replays adopt instead of duplicating and
//! undos of actions whose outcome is unknown still clean up.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::clock::Clock;
use crate::error::{ErrorInfo, ErrorKind, StepError};
use crate::locks::{with_lock, LockGuard, ResourceLocks};
use crate::policy::{self, INLINE_POLICY_BUDGET, POLICY_NAME};
use crate::ports::{
    AppIntegrationsPort, AppRef, AssociationRef, ConnectPort, CreateApplication, IamPort,
    ProfileApplication,
};
use crate::preflight;
use crate::saga::{NewSaga, NodeCtx, Recovery, SagaDef, StepAction, StepDef};
use crate::spec::ApplicationSpec;
use crate::validation::{Validated, RESERVED_TAG_PREFIX};

/// The saga kind stored in records.
pub const KIND: &str = "onboard";
/// The tag by which an application is recognised as created by a given saga.
pub const SAGA_TAG: &str = "connect-onboarding:saga-id";
/// Connect's per-profile limit on application grants.
pub const PROFILE_APPLICATION_LIMIT: usize = 10;
/// The ports the onboard saga's steps call.
pub struct OnboardPorts {
    pub apps: Arc<dyn AppIntegrationsPort>,
    pub connect: Arc<dyn ConnectPort>,
    pub iam: Arc<dyn IamPort>,
    /// Serializes read-modify-write edits of one SLR policy or one security profile.
    pub locks: Arc<dyn ResourceLocks>,
    pub clock: Arc<dyn Clock>,
}

impl OnboardPorts {
    /// Run `edit` holding the lock on `resource` for this node; `edit` renews it right before
    /// its write ([`LockGuard::renew`]).
    pub(crate) async fn locked<'a, T, F, Fut>(
        &'a self,
        node: &NodeCtx,
        resource: &str,
        edit: F,
    ) -> Result<T, ErrorInfo>
    where
        F: FnOnce(LockGuard<'a>) -> Fut + Send,
        Fut: std::future::Future<Output = Result<T, ErrorInfo>> + Send,
        T: Send,
    {
        // The worker too: a worker taken over after a stall must not share its successor's
        // lock (nor renew it as if it were its own).
        let owner = format!(
            "{}/{}/{}",
            node.saga_id,
            node.target.as_deref().unwrap_or("-"),
            node.worker
        );
        with_lock(
            self.locks.as_ref(),
            self.clock.as_ref(),
            resource,
            &owner,
            edit,
        )
        .await
    }
}

pub(crate) fn role_lock(role: &str) -> String {
    format!("iam-role/{role}/{POLICY_NAME}")
}

pub(crate) fn profile_lock(instance: &str, profile: &str) -> String {
    format!("connect-security-profile/{instance}/{profile}")
}

/// Tuning for the onboard saga.
#[derive(Debug, Clone)]
pub struct OnboardConfig {
    /// Instances worked on at once in a fan-out step.
    pub instance_concurrency: usize,
}

impl Default for OnboardConfig {
    fn default() -> Self {
        OnboardConfig {
            instance_concurrency: 4,
        }
    }
}

/// The onboard saga definition.
pub fn definition(config: &OnboardConfig) -> SagaDef<OnboardPorts> {
    let c = config.instance_concurrency;
    SagaDef {
        kind: KIND,
        steps: vec![
            StepDef::once("validate", Arc::new(ValidateStep)).without_side_effects(),
            StepDef::once("create_application", Arc::new(CreateApplicationStep)),
            StepDef::per_target("associate", c, Arc::new(AssociateStep)),
            StepDef::per_target("grant_slr_policy", c, Arc::new(SlrPolicyStep)),
            StepDef::per_target("grant_security_profiles", c, Arc::new(ProfilesStep)),
            StepDef::once("activate", Arc::new(ActivateStep)),
        ],
        recovery: Recovery::Backward,
    }
}

/// A new onboard saga for a validated spec.
pub fn new_saga(id: impl Into<String>, validated: &Validated) -> Result<NewSaga, ErrorInfo> {
    let input = serde_json::to_value(&validated.spec).map_err(|e| {
        ErrorInfo::new(
            ErrorKind::Invalid,
            "InvalidSpec",
            format!("spec cannot be encoded: {e}"),
        )
    })?;
    Ok(NewSaga {
        id: id.into(),
        namespace: validated.namespace.clone(),
        input,
        targets: validated.instance_ids.clone(),
        idempotency_key: None,
        payload_hash: Some(validated.spec.payload_hash()),
        parent: None,
    })
}

pub(crate) fn internal(message: impl Into<String>) -> ErrorInfo {
    ErrorInfo::new(ErrorKind::Other, "InternalInconsistency", message)
        .with_fix("This is a defect in the onboarding service; report it with the saga id.")
}

/// The validated spec carried by a saga.
fn validated(node: &NodeCtx) -> Result<Validated, ErrorInfo> {
    let spec: ApplicationSpec = serde_json::from_value((*node.input).clone()).map_err(|e| {
        ErrorInfo::new(
            ErrorKind::Invalid,
            "InvalidSpec",
            format!("the saga input is not a spec: {e}"),
        )
        .with_fix("Submit the application spec again.")
    })?;
    spec.validate().map_err(|errs| {
        ErrorInfo::new(ErrorKind::Invalid, "InvalidSpec", errs.to_string())
            .with_fix("Correct every listed field.")
    })
}

pub(crate) fn target(node: &NodeCtx) -> Result<&str, ErrorInfo> {
    node.target
        .as_deref()
        .ok_or_else(|| internal("a per-instance step ran without an instance"))
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(
    value: &Value,
    what: &str,
) -> Result<T, ErrorInfo> {
    serde_json::from_value(value.clone())
        .map_err(|e| internal(format!("recorded {what} is unreadable: {e}")))
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Value, ErrorInfo> {
    serde_json::to_value(value).map_err(|e| internal(format!("cannot record output: {e}")))
}

/// What `validate` found about one instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceFacts {
    pub arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// The service-linked role's name (not its ARN: IAM calls take the name).
    pub role_name: String,
}

/// Instance id → alias, as an onboard saga's `validate` recorded them (empty before it ran,
/// and for other kinds).
pub fn instance_aliases(record: &crate::record::SagaRecord) -> BTreeMap<String, String> {
    aliases_in(record.output_of("validate"))
}

/// Instance id → alias, from a recorded `validate` output.
pub fn aliases_in(validate_output: Option<&Value>) -> BTreeMap<String, String> {
    validate_output
        .and_then(|o| o.get("instances"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(id, facts)| {
                    facts
                        .get("alias")
                        .and_then(Value::as_str)
                        .map(|a| (id.clone(), a.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `validate`'s output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidateOutput {
    pub instances: BTreeMap<String, InstanceFacts>,
    /// Requested profiles that already granted the namespace before this saga (a grant left
    /// behind by an earlier application): rollback must leave those entries alone.
    #[serde(default)]
    pub preexisting_grants: Vec<(String, String)>,
    /// Preflight's warnings (they do not stop the saga), recorded for the status page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<preflight::Finding>,
}

fn instance_facts(node: &NodeCtx, instance: &str) -> Result<InstanceFacts, ErrorInfo> {
    let out = node
        .output_of("validate")
        .ok_or_else(|| internal("validate has no recorded output"))?;
    let out: ValidateOutput = decode(out, "validate output")?;
    out.instances.get(instance).cloned().ok_or_else(|| {
        internal(format!(
            "validate recorded nothing about instance {instance}"
        ))
    })
}

/// The application this saga created, from the record or (when its outcome is unknown) from
/// AppIntegrations by namespace and our tag.
async fn our_application(
    ports: &OnboardPorts,
    node: &NodeCtx,
) -> Result<Option<AppRef>, ErrorInfo> {
    if let Some(out) = node.output_of("create_application") {
        return decode(out, "application").map(Some);
    }
    let found = ports.apps.find_application(&node.namespace).await?;
    Ok(found
        .filter(|app| app.tags.get(SAGA_TAG) == Some(&node.saga_id))
        .map(|app| AppRef {
            id: app.id,
            arn: app.arn,
        }))
}

/// No side effects: the spec's rules and every preflight check over the ports
/// ([`preflight::inspect`]): every instance exists, is ACTIVE and uses an SLR, adding the
/// statement keeps each SLR within IAM's inline-policy budget, the namespace is free (or ours),
/// and each requested security profile exists and has room. Any error finding refuses the spec
/// with every finding's evidence and fix; warnings are recorded in the output; a retryable
/// failure to read is returned as is, so the engine retries the step.
struct ValidateStep;

#[async_trait]
impl StepAction<OnboardPorts> for ValidateStep {
    async fn run(&self, ports: &OnboardPorts, node: &NodeCtx) -> Result<Value, StepError> {
        let v = validated(node)?;
        let preflight_ports = preflight::PreflightPorts::new(
            ports.apps.clone(),
            ports.connect.clone(),
            ports.iam.clone(),
        );
        let inspection =
            preflight::inspect(&preflight_ports, &v, Some(&node.saga_id), None).await?;
        if inspection.has_errors() {
            return Err(refusal(&inspection));
        }
        let instances = inspection
            .instances
            .iter()
            .filter_map(|i| {
                let info = i.info.as_ref()?;
                Some((
                    i.id.clone(),
                    InstanceFacts {
                        arn: info.arn.clone(),
                        alias: info.alias.clone(),
                        role_name: i.role_name.clone()?,
                    },
                ))
            })
            .collect();
        encode(&ValidateOutput {
            instances,
            preexisting_grants: inspection.preexisting_grants(),
            warnings: inspection.warnings().cloned().collect(),
        })
    }

    async fn undo(
        &self,
        _: &OnboardPorts,
        _: &NodeCtx,
        _: Option<&Value>,
    ) -> Result<(), StepError> {
        Ok(())
    }
}

/// The terminal error for a spec preflight refuses, carrying every error finding's evidence
/// (the message) and fix. A taken namespace keeps its own code (`Conflict`/`NamespaceTaken`); a
/// refusal made only of calls that failed (denied, invalid) keeps the service's kind and code;
/// one made only of budget overflows is `QuotaExceeded`/`PolicyBudgetExceeded`; anything else
/// is `Invalid`/`PreflightFailed`.
fn refusal(inspection: &preflight::Inspection) -> ErrorInfo {
    let errors: Vec<&preflight::Finding> = inspection.errors().collect();
    let (kind, code) = if inspection.namespace_taken() {
        (ErrorKind::Conflict, "NamespaceTaken")
    } else if let Some(call) = inspection
        .call_errors
        .first()
        .filter(|_| inspection.call_errors.len() == errors.len())
    {
        (call.kind, call.code.as_str())
    } else if errors.iter().all(|f| f.check == "policy-budget")
        && inspection.instances.iter().any(|i| i.over_budget())
    {
        (ErrorKind::QuotaExceeded, "PolicyBudgetExceeded")
    } else {
        (ErrorKind::Invalid, "PreflightFailed")
    };
    let numbered = |text: Vec<&str>| -> String {
        if text.len() == 1 {
            return text[0].to_owned();
        }
        text.iter()
            .enumerate()
            .map(|(i, t)| format!("({}) {t}", i + 1))
            .collect::<Vec<_>>()
            .join("; ")
    };
    ErrorInfo::new(
        kind,
        code,
        numbered(errors.iter().map(|f| f.evidence.as_str()).collect()),
    )
    .with_fix(numbered(errors.iter().map(|f| f.fix.as_str()).collect()))
}

/// CreateApplication with a ClientToken derived from the saga id and our tag; adopts the
/// application this saga already created.
struct CreateApplicationStep;

#[async_trait]
impl StepAction<OnboardPorts> for CreateApplicationStep {
    async fn run(&self, ports: &OnboardPorts, node: &NodeCtx) -> Result<Value, StepError> {
        if let Some(app) = our_application(ports, node).await? {
            return encode(&app);
        }
        let v = validated(node)?;
        let mut tags: BTreeMap<String, String> = v
            .spec
            .tags
            .iter()
            .filter(|(k, _)| !k.starts_with(RESERVED_TAG_PREFIX))
            .map(|(k, val)| (k.clone(), val.clone()))
            .collect();
        tags.insert(SAGA_TAG.to_string(), node.saga_id.clone());
        let req = CreateApplication {
            spec: v.spec,
            namespace: node.namespace.clone(),
            client_token: node.saga_id.clone(),
            tags,
        };
        match ports.apps.create_application(&req).await {
            Ok(app) => encode(&app),
            Err(e) if e.kind == ErrorKind::Conflict => match our_application(ports, node).await? {
                Some(app) => encode(&app),
                None => Err(e.with_fix(
                    "Another application took this namespace; choose another namespace or offboard it.",
                )),
            },
            Err(e) => Err(e),
        }
    }

    async fn undo(
        &self,
        ports: &OnboardPorts,
        node: &NodeCtx,
        output: Option<&Value>,
    ) -> Result<(), StepError> {
        let app = match output {
            Some(out) => Some(decode::<AppRef>(out, "application")?),
            None => our_application(ports, node).await?,
        };
        let Some(app) = app else { return Ok(()) };
        match ports.apps.delete_application(&app.id).await {
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

/// CreateIntegrationAssociation (type APPLICATION) with one instance; adopts an existing one.
struct AssociateStep;

#[async_trait]
impl StepAction<OnboardPorts> for AssociateStep {
    async fn run(&self, ports: &OnboardPorts, node: &NodeCtx) -> Result<Value, StepError> {
        let instance = target(node)?;
        let app = our_application(ports, node)
            .await?
            .ok_or_else(|| internal("associate ran before the application was recorded"))?;
        if let Some(existing) = ports.connect.find_association(instance, &app.arn).await? {
            return encode(&existing);
        }
        match ports.connect.create_association(instance, &app.arn).await {
            Ok(assoc) => encode(&assoc),
            Err(e) if e.kind == ErrorKind::Conflict => {
                match ports.connect.find_association(instance, &app.arn).await? {
                    Some(assoc) => encode(&assoc),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn undo(
        &self,
        ports: &OnboardPorts,
        node: &NodeCtx,
        output: Option<&Value>,
    ) -> Result<(), StepError> {
        let instance = target(node)?;
        let assoc = match output {
            Some(out) => Some(decode::<AssociationRef>(out, "association")?),
            None => match our_application(ports, node).await? {
                Some(app) => ports.connect.find_association(instance, &app.arn).await?,
                None => None,
            },
        };
        let Some(assoc) = assoc else { return Ok(()) };
        match ports.connect.delete_association(instance, &assoc.id).await {
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

/// `grant_slr_policy`'s output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyGrant {
    pub role_name: String,
    pub policy_name: String,
    pub sid: String,
    /// The policy's text before our statement was added, so a rollback that leaves the same
    /// statements gives back the exact text (not a re-serialized equivalent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_document: Option<String>,
}

/// Adds this application's statement to the instance SLR's inline policy (commutative edit).
struct SlrPolicyStep;

#[async_trait]
impl StepAction<OnboardPorts> for SlrPolicyStep {
    async fn run(&self, ports: &OnboardPorts, node: &NodeCtx) -> Result<Value, StepError> {
        let instance = target(node)?;
        let facts = instance_facts(node, instance)?;
        let app = our_application(ports, node)
            .await?
            .ok_or_else(|| internal("grant_slr_policy ran before the application was recorded"))?;
        let role = &facts.role_name;
        let statement = policy::app_statement(&app.id, &app.arn);
        let previous_document = ports
            .locked(node, &role_lock(role), |guard| {
                add_statement(ports, instance, role, &statement, guard)
            })
            .await?;
        encode(&PolicyGrant {
            role_name: role.clone(),
            policy_name: POLICY_NAME.to_string(),
            sid: policy::statement_sid(&app.id),
            previous_document,
        })
    }

    async fn undo(
        &self,
        ports: &OnboardPorts,
        node: &NodeCtx,
        output: Option<&Value>,
    ) -> Result<(), StepError> {
        let instance = target(node)?;
        let grant = match output {
            Some(out) => decode::<PolicyGrant>(out, "policy grant")?,
            None => {
                let Some(app) = our_application(ports, node).await? else {
                    return Ok(());
                };
                let Ok(facts) = instance_facts(node, instance) else {
                    return Ok(());
                };
                PolicyGrant {
                    role_name: facts.role_name,
                    policy_name: POLICY_NAME.to_string(),
                    sid: policy::statement_sid(&app.id),
                    previous_document: None,
                }
            }
        };
        ports
            .locked(node, &role_lock(&grant.role_name), |guard| {
                remove_statement(ports, &grant, guard)
            })
            .await
    }
}

/// Read-modify-write adding `statement` to our inline policy on `role`, refusing to exceed
/// IAM's inline-policy budget. Returns the document's text before the change, if it existed.
pub(crate) async fn add_statement(
    ports: &OnboardPorts,
    instance: &str,
    role: &str,
    statement: &Value,
    guard: LockGuard<'_>,
) -> Result<Option<String>, ErrorInfo> {
    let usage = policy::inline_usage(ports.iam.as_ref(), role).await?;
    let current = usage.ours.clone();
    if current
        .as_deref()
        .is_some_and(|doc| policy::contains_statement(doc, statement))
    {
        // Already there (a replay): nothing to do; the earlier run's output is lost, so the
        // exact previous text is unknown.
        return Ok(None);
    }
    let next = policy::with_statement(current.as_deref(), statement)?;
    let total = usage.total_with(&next);
    if total > INLINE_POLICY_BUDGET {
        return Err(ErrorInfo::new(
            ErrorKind::QuotaExceeded,
            "PolicyBudgetExceeded",
            format!(
                "adding this application's statement would make role {role}'s inline \
                 policies {total} characters; IAM allows {INLINE_POLICY_BUDGET}"
            ),
        )
        .with_fix(format!(
            "Offboard unused applications from instance {instance} or remove unused inline \
             policies from {role}."
        )));
    }
    guard.renew().await?;
    ports.iam.put_role_policy(role, POLICY_NAME, &next).await?;
    Ok(current)
}

/// Read-modify-write removing exactly our statement (and the policy when it becomes empty).
pub(crate) async fn remove_statement(
    ports: &OnboardPorts,
    grant: &PolicyGrant,
    guard: LockGuard<'_>,
) -> Result<(), ErrorInfo> {
    let role = &grant.role_name;
    let Some(current) = ports.iam.get_role_policy(role, &grant.policy_name).await? else {
        return Ok(());
    };
    if !policy::has_statement(&current, &grant.sid) {
        // Nothing of ours: leave the document byte for byte as it is.
        return Ok(());
    }
    let next = policy::without_statement(&current, &grant.sid)?;
    guard.renew().await?;
    match next {
        Some(next) => {
            // Same statements as before the saga: give back the exact previous text.
            let next = match &grant.previous_document {
                Some(prev) if policy::same_document(prev, &next) => prev.clone(),
                _ => next,
            };
            ports
                .iam
                .put_role_policy(role, &grant.policy_name, &next)
                .await
        }
        None => match ports.iam.delete_role_policy(role, &grant.policy_name).await {
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            other => other,
        },
    }
}

/// Adds `{namespace, ["ACCESS"]}` to each requested security profile of one instance.
struct ProfilesStep;

fn requested_profiles(node: &NodeCtx, instance: &str) -> Result<Vec<String>, ErrorInfo> {
    let v = validated(node)?;
    Ok(v.profile_grants
        .into_iter()
        .filter(|g| g.instance_id == instance)
        .flat_map(|g| g.profile_ids)
        .collect())
}

/// Read-modify-write adding our entry to one profile, within Connect's 10-application limit.
pub(crate) async fn grant_profile(
    ports: &OnboardPorts,
    instance: &str,
    profile: &str,
    namespace: &str,
    guard: LockGuard<'_>,
) -> Result<(), ErrorInfo> {
    let mut apps = ports
        .connect
        .profile_applications(instance, profile)
        .await?;
    if apps.iter().any(|a| a.namespace == namespace) {
        return Ok(());
    }
    if apps.len() >= PROFILE_APPLICATION_LIMIT {
        return Err(ErrorInfo::new(
            ErrorKind::QuotaExceeded,
            "SecurityProfileFull",
            format!(
                "security profile {profile} in instance {instance} already grants \
                 {PROFILE_APPLICATION_LIMIT} applications"
            ),
        )
        .with_fix("Remove an application from the profile or choose another profile."));
    }
    apps.push(ProfileApplication {
        namespace: namespace.to_string(),
        permissions: vec!["ACCESS".into()],
        kind: None,
    });
    guard.renew().await?;
    ports
        .connect
        .set_profile_applications(instance, profile, &apps)
        .await
}

/// Read-modify-write removing only our entry from one profile.
pub(crate) async fn revoke_profile(
    ports: &OnboardPorts,
    instance: &str,
    profile: &str,
    namespace: &str,
    guard: LockGuard<'_>,
) -> Result<(), ErrorInfo> {
    let apps = match ports.connect.profile_applications(instance, profile).await {
        Ok(apps) => apps,
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !apps.iter().any(|a| a.namespace == namespace) {
        return Ok(());
    }
    let rest: Vec<ProfileApplication> = apps
        .into_iter()
        .filter(|a| a.namespace != namespace)
        .collect();
    guard.renew().await?;
    ports
        .connect
        .set_profile_applications(instance, profile, &rest)
        .await
}

#[async_trait]
impl StepAction<OnboardPorts> for ProfilesStep {
    async fn run(&self, ports: &OnboardPorts, node: &NodeCtx) -> Result<Value, StepError> {
        let instance = target(node)?;
        let profiles = requested_profiles(node, instance)?;
        for profile in &profiles {
            ports
                .locked(node, &profile_lock(instance, profile), |guard| {
                    grant_profile(ports, instance, profile, &node.namespace, guard)
                })
                .await?;
        }
        Ok(json!({ "profiles": profiles }))
    }

    async fn undo(
        &self,
        ports: &OnboardPorts,
        node: &NodeCtx,
        _: Option<&Value>,
    ) -> Result<(), StepError> {
        let instance = target(node)?;
        let preexisting = match node.output_of("validate") {
            Some(out) => decode::<ValidateOutput>(out, "validate output")?.preexisting_grants,
            None => Vec::new(),
        };
        for profile in requested_profiles(node, instance)? {
            if preexisting
                .iter()
                .any(|(i, p)| i == instance && *p == profile)
            {
                continue;
            }
            ports
                .locked(node, &profile_lock(instance, &profile), |guard| {
                    revoke_profile(ports, instance, &profile, &node.namespace, guard)
                })
                .await?;
        }
        Ok(())
    }
}

/// Confirms the end state (the application and every association exist) and records the
/// summary the status page shows.
struct ActivateStep;

#[async_trait]
impl StepAction<OnboardPorts> for ActivateStep {
    async fn run(&self, ports: &OnboardPorts, node: &NodeCtx) -> Result<Value, StepError> {
        let app = our_application(ports, node)
            .await?
            .ok_or_else(|| internal("activate ran before the application was recorded"))?;
        let v = validated(node)?;
        let mut associations = BTreeMap::new();
        for instance in &v.instance_ids {
            let assoc = ports.connect.find_association(instance, &app.arn).await?.ok_or_else(|| {
                ErrorInfo::new(
                    ErrorKind::Conflict,
                    "AssociationMissing",
                    format!("the association with instance {instance} disappeared during onboarding"),
                )
                .with_fix("Someone removed it while onboarding ran; find out who (CloudTrail).")
            })?;
            associations.insert(instance.clone(), assoc.arn);
        }
        Ok(json!({ "applicationArn": app.arn, "associations": associations }))
    }

    async fn undo(
        &self,
        _: &OnboardPorts,
        _: &NodeCtx,
        _: Option<&Value>,
    ) -> Result<(), StepError> {
        Ok(())
    }
}
