//! The lifecycle use cases every entry point shares: edit, pause, resume, offboard, adopt,
//! drift (check, record, fix), and [`Sagas`], which runs a queued saga of any kind.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::adopt::{self, AdoptInput};
use super::change::{self, ChangeInput, ChangeOp};
use super::drift::{self, DriftCheckFailure, DriftReport};
use super::offboard::{self, OffboardInput};
use super::state::{current_state, ManagedApp, StateError};
use super::LifecyclePorts;
use crate::access::{Action, Actor, Denied, Grant};
use crate::clock::{Clock, Random};
use crate::engine::{Engine, EngineConfig, EngineError, RunOutcome};
use crate::error::ErrorInfo;
use crate::idempotency::{self, IdempotencyConfig, SubmitError};
use crate::onboard::{self, OnboardConfig, OnboardPorts};
use crate::ports::ApplicationFields;
use crate::record::SagaRecord;
use crate::saga::{NewSaga, SagaDef};
use crate::service::{RunAction, RunSagaMessage, SagaQueue};
use crate::spec::{
    instance_id, ApplicationSpec, IframeSpec, ProfileGrant, Publication, RequestSource, Requester,
    Subscription,
};
use crate::store::{SagaStore, StoreError};
use crate::validation::{Problem, ValidationErrors};

/// An edit: every field is optional; the ones given replace the current value. `instances` and
/// `securityProfiles` are the complete new lists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EditRequest {
    /// Only accepted when equal to the current namespace: namespaces are immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `""` removes the description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_origins: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriptions: Option<Vec<Subscription>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publications: Option<Vec<Publication>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iframe: Option<IframeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization_timeout_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_profiles: Option<Vec<ProfileGrant>>,
}

/// Parse an edit body; problems carry the JSON path.
pub fn parse_edit(bytes: &[u8]) -> Result<EditRequest, ValidationErrors> {
    crate::spec::parse_object(
        bytes,
        "Send the changed fields as one JSON object, e.g. {\"displayName\": \"New name\"}.",
    )
}

/// Why a lifecycle request was refused.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("application {0} does not exist")]
    NotFound(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("the request is invalid:\n{0}")]
    Invalid(ValidationErrors),
    #[error(transparent)]
    Refused(SubmitError),
    #[error("saga {saga_id} was recorded but not queued: {error}")]
    NotQueued { saga_id: String, error: ErrorInfo },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The caller may not do this to the application (see [`crate::access`]).
    #[error(transparent)]
    Forbidden(#[from] Denied),
}

/// A saga input as JSON; failing means a defect (the types are plain data).
fn encode_input<T: Serialize>(input: &T) -> Result<Value, LifecycleError> {
    serde_json::to_value(input).map_err(|e| {
        invalid(
            "$",
            format!("cannot encode the request: {e}"),
            "Report this defect.",
        )
    })
}

fn invalid(field: &str, problem: impl Into<String>, fix: impl Into<String>) -> LifecycleError {
    LifecycleError::Invalid(ValidationErrors::new(vec![Problem::new(
        field, problem, fix,
    )]))
}

/// A lifecycle saga that was accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Started {
    pub saga_id: String,
    /// The application's root saga (for adopt: the new saga itself).
    pub application_id: String,
    pub namespace: String,
    /// `edit`, `pause`, `resume`, `fix`, `offboard` or `adopt`.
    pub operation: String,
    /// False when an earlier request with the same idempotency key created it.
    pub created: bool,
}

/// The lifecycle use cases over one store and queue.
pub struct Lifecycle {
    pub store: Arc<dyn SagaStore>,
    pub clock: Arc<dyn Clock>,
    pub queue: Arc<dyn SagaQueue>,
    pub idempotency: IdempotencyConfig,
}

/// One submission: what the saga is and how a repeat is recognised.
struct Submission<'a> {
    def: &'a SagaDef<LifecyclePorts>,
    id: String,
    namespace: String,
    input: Value,
    targets: Vec<String>,
    parent: Option<String>,
    key: Option<&'a str>,
    /// The request as the caller made it (not the derived input, which depends on the state
    /// at the time): a retried request hashes the same.
    request: Value,
    operation: &'static str,
    /// The decision that allowed it, written as the saga's first log line.
    grant: Grant,
}

// Here, not beside `Onboarding`, so the onboarding use cases need not know the lifecycle ones.
impl crate::service::Onboarding {
    /// The day-two use cases (edit, pause, resume, offboard, adopt, drift) over the same
    /// store, clock, queue and idempotency settings.
    pub fn lifecycle(&self) -> Lifecycle {
        Lifecycle {
            store: self.store.clone(),
            clock: self.clock.clone(),
            queue: self.queue.clone(),
            idempotency: self.idempotency.clone(),
        }
    }
}

impl Lifecycle {
    /// The root record and current state of application `id`.
    pub async fn application(&self, id: &str) -> Result<(SagaRecord, ManagedApp), LifecycleError> {
        let root = self
            .store
            .get(id)
            .await?
            .ok_or_else(|| LifecycleError::NotFound(id.to_string()))?;
        let state = current_state(&root)?;
        Ok((root, state))
    }

    async fn submit(&self, s: Submission<'_>) -> Result<Started, LifecycleError> {
        let record = s.def.new_record(
            NewSaga {
                id: s.id,
                namespace: s.namespace.clone(),
                input: s.input,
                targets: s.targets,
                idempotency_key: None,
                payload_hash: None,
                parent: s.parent.clone(),
            },
            self.clock.now(),
        );
        let mut record = record;
        record
            .log
            .push(s.grant.log_entry(record.created_at, "lifecycle"));
        let hash = hex::encode(Sha256::digest(s.request.to_string().as_bytes()));
        let submitted = idempotency::submit(
            self.store.as_ref(),
            self.clock.as_ref(),
            &self.idempotency,
            record,
            s.key,
            &hash,
        )
        .await
        .map_err(LifecycleError::Refused)?;
        let message = RunSagaMessage {
            saga_id: submitted.saga_id.clone(),
            namespace: s.namespace.clone(),
            action: RunAction::Run,
        };
        if let Err(error) = self.queue.enqueue(&message).await {
            return Err(LifecycleError::NotQueued {
                saga_id: submitted.saga_id,
                error,
            });
        }
        Ok(Started {
            application_id: s.parent.unwrap_or_else(|| submitted.saga_id.clone()),
            saga_id: submitted.saga_id,
            namespace: s.namespace,
            operation: s.operation.to_string(),
            created: submitted.created,
        })
    }

    async fn submit_change(
        &self,
        app_id: &str,
        input: ChangeInput,
        request: Value,
        key: Option<&str>,
        new_id: String,
        grant: Grant,
    ) -> Result<Started, LifecycleError> {
        let def = change::definition_for(input.operation, 1);
        let encoded = encode_input(&input)?;
        self.submit(Submission {
            def: &def,
            id: new_id,
            namespace: input.before.namespace.clone(),
            targets: input.targets(),
            input: encoded,
            parent: Some(app_id.to_string()),
            key,
            request,
            operation: input.operation.as_str(),
            grant,
        })
        .await
    }

    /// Edit fields, the instance set or the profile grants.
    pub async fn edit(
        &self,
        app_id: &str,
        req: &EditRequest,
        requester: impl Into<Actor>,
        key: Option<&str>,
        new_id: String,
    ) -> Result<Started, LifecycleError> {
        let actor = requester.into();
        let (root, before) = self.application(app_id).await?;
        let grant = actor.authorize(&root, Action::Change)?;
        let requester = actor.principal();
        let after = apply_edit(&root, &before, req, requester).map_err(LifecycleError::Invalid)?;
        let input = ChangeInput {
            parent: app_id.to_string(),
            operation: ChangeOp::Edit,
            instance: None,
            before,
            after,
            requester: requester.to_string(),
            origin: actor.origin().clone(),
            extra_instances: BTreeSet::new(),
        };
        let request = json!({"op": "edit", "app": app_id, "request": req});
        self.submit_change(app_id, input, request, key, new_id, grant)
            .await
    }

    /// Stop the application on one instance without losing its set-up (the source page's
    /// advice): remove the association, statement and profile entries there only.
    pub async fn pause(
        &self,
        app_id: &str,
        instance: &str,
        requester: impl Into<Actor>,
        key: Option<&str>,
        new_id: String,
    ) -> Result<Started, LifecycleError> {
        self.toggle(app_id, instance, true, requester.into(), key, new_id)
            .await
    }

    /// Undo a pause: re-add the association, statement and profile entries on one instance.
    pub async fn resume(
        &self,
        app_id: &str,
        instance: &str,
        requester: impl Into<Actor>,
        key: Option<&str>,
        new_id: String,
    ) -> Result<Started, LifecycleError> {
        self.toggle(app_id, instance, false, requester.into(), key, new_id)
            .await
    }

    async fn toggle(
        &self,
        app_id: &str,
        raw_instance: &str,
        pause: bool,
        actor: Actor,
        key: Option<&str>,
        new_id: String,
    ) -> Result<Started, LifecycleError> {
        let (root, before) = self.application(app_id).await?;
        let grant = actor.authorize(&root, Action::Change)?;
        let requester = actor.principal();
        // An id or ARN, or the alias the status shows (`demo-east`, any case).
        let aliases = onboard::instance_aliases(&root);
        let by_alias = aliases
            .iter()
            .find(|(_, alias)| alias.eq_ignore_ascii_case(raw_instance.trim()))
            .map(|(id, _)| id.clone());
        let Some(instance) = instance_id(raw_instance).or(by_alias) else {
            let known = if aliases.is_empty() {
                String::new()
            } else {
                format!(
                    " nor an alias of its instances ({})",
                    aliases.values().cloned().collect::<Vec<_>>().join(", ")
                )
            };
            return Err(invalid(
                "instance",
                format!("{raw_instance:?} is not a Connect instance id or ARN{known}"),
                "Give the instance id (a UUID), its ARN or its alias.",
            ));
        };
        if !before.instances.contains(&instance) {
            return Err(invalid(
                "instance",
                format!("application {app_id} is not set up on instance {instance}"),
                "Add the instance with an edit (instances) instead.",
            ));
        }
        let paused = before.paused.contains(&instance);
        if pause && paused {
            return Err(invalid(
                "instance",
                format!("application {app_id} is already paused on instance {instance}"),
                "Resume it to use it again.",
            ));
        }
        if !pause && !paused {
            return Err(invalid(
                "instance",
                format!("application {app_id} is not paused on instance {instance}"),
                "Nothing to resume.",
            ));
        }
        let mut after = before.clone();
        if pause {
            after.paused.insert(instance.clone());
        } else {
            after.paused.remove(&instance);
        }
        let op = if pause {
            ChangeOp::Pause
        } else {
            ChangeOp::Resume
        };
        let input = ChangeInput {
            parent: app_id.to_string(),
            operation: op,
            instance: Some(instance.clone()),
            before,
            after,
            requester: requester.to_string(),
            origin: actor.origin().clone(),
            extra_instances: BTreeSet::new(),
        };
        let request = json!({"op": op.as_str(), "app": app_id, "instance": instance});
        self.submit_change(app_id, input, request, key, new_id, grant)
            .await
    }

    /// Re-apply the recorded state after `report` found drift.
    pub async fn fix(
        &self,
        app_id: &str,
        report: &DriftReport,
        requester: impl Into<Actor>,
        key: Option<&str>,
        new_id: String,
    ) -> Result<Started, LifecycleError> {
        let actor = requester.into();
        let (root, state) = self.application(app_id).await?;
        let grant = actor.authorize(&root, Action::Change)?;
        let requester = actor.principal();
        if !report.fixable() {
            return Err(invalid(
                "$",
                format!("application {app_id} was deleted outside this product; a fix cannot re-create it with the same id"),
                "Offboard it (which cleans up what is left) and onboard it again.",
            ));
        }
        let input = ChangeInput {
            parent: app_id.to_string(),
            operation: ChangeOp::Fix,
            instance: None,
            before: state.clone(),
            after: state,
            requester: requester.to_string(),
            origin: actor.origin().clone(),
            extra_instances: report.extra_instances(),
        };
        let request = json!({"op": "fix", "app": app_id, "checkedAt": report.checked_at});
        self.submit_change(app_id, input, request, key, new_id, grant)
            .await
    }

    /// Remove the application and everything hanging off it.
    pub async fn offboard(
        &self,
        app_id: &str,
        requester: impl Into<Actor>,
        key: Option<&str>,
        new_id: String,
    ) -> Result<Started, LifecycleError> {
        let actor = requester.into();
        let (root, before) = self.application(app_id).await?;
        let grant = actor.authorize(&root, Action::Offboard)?;
        let requester = actor.principal();
        let input = OffboardInput {
            parent: app_id.to_string(),
            before,
            requester: requester.to_string(),
            origin: actor.origin().clone(),
        };
        let def = offboard::definition();
        let namespace = input.before.namespace.clone();
        let encoded = encode_input(&input)?;
        self.submit(Submission {
            def: &def,
            id: new_id,
            namespace,
            input: encoded,
            targets: Vec::new(),
            parent: Some(app_id.to_string()),
            key,
            request: json!({"op": "offboard", "app": app_id}),
            operation: "offboard",
            grant,
        })
        .await
    }

    /// Bring the application that owns `namespace` under management.
    pub async fn adopt(
        &self,
        namespace: &str,
        requester: impl Into<Actor>,
        key: Option<&str>,
        new_id: String,
    ) -> Result<Started, LifecycleError> {
        let actor = requester.into();
        if namespace.is_empty() || namespace.len() > crate::spec::NAMESPACE_MAX {
            return Err(invalid(
                "namespace",
                format!(
                    "{namespace:?} is not a namespace (1..{} characters)",
                    crate::spec::NAMESPACE_MAX
                ),
                "Give the application's namespace as shown in the AppIntegrations console.",
            ));
        }
        let grant = actor.authorize_new(namespace, Action::Adopt)?;
        let requester = actor.principal();
        let def = adopt::definition();
        let input = AdoptInput {
            namespace: namespace.to_string(),
            requester: requester.to_string(),
            origin: actor.origin().clone(),
        };
        let encoded = encode_input(&input)?;
        self.submit(Submission {
            def: &def,
            id: new_id,
            namespace: namespace.to_string(),
            input: encoded,
            targets: Vec::new(),
            parent: None,
            key,
            request: json!({"op": "adopt", "namespace": namespace}),
            operation: "adopt",
            grant,
        })
        .await
    }

    /// Compare application `app_id` with AWS and record the report in its root record. A check
    /// that AWS fails is recorded too (`driftFailure`), keeping the last complete report.
    pub async fn check_drift(
        &self,
        ports: &LifecyclePorts,
        app_id: &str,
    ) -> Result<DriftReport, DriftError> {
        let (_, state) = self.application(app_id).await?;
        match drift::detect(ports, &state, self.clock.now()).await {
            Ok(report) => {
                self.record_drift(app_id, &report).await?;
                Ok(report)
            }
            Err(error) => {
                let failure = DriftCheckFailure {
                    at: self.clock.now(),
                    error: error.clone(),
                };
                self.update_root(app_id, |r| r.drift_failure = Some(failure.clone()))
                    .await?;
                Err(DriftError::Aws(error))
            }
        }
    }

    /// Store a drift report in the root record, clearing an earlier failed check.
    pub async fn record_drift(
        &self,
        app_id: &str,
        report: &DriftReport,
    ) -> Result<(), LifecycleError> {
        self.update_root(app_id, |r| {
            r.drift = Some(report.clone());
            r.drift_failure = None;
        })
        .await
    }

    /// Apply `change` to the root record (a few tries against concurrent writers).
    async fn update_root(
        &self,
        app_id: &str,
        change: impl Fn(&mut SagaRecord),
    ) -> Result<(), LifecycleError> {
        for _ in 0..5 {
            let root = self
                .store
                .get(app_id)
                .await?
                .ok_or_else(|| LifecycleError::NotFound(app_id.to_string()))?;
            let mut next = root.clone();
            change(&mut next);
            next.version = root.version + 1;
            match self.store.update(&next, root.version).await {
                Ok(()) => return Ok(()),
                Err(StoreError::VersionConflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(LifecycleError::Store(StoreError::VersionConflict {
            id: app_id.to_string(),
            expected: 0,
        }))
    }
}

/// Why a drift check did not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("reading AWS failed: {0}")]
    Aws(ErrorInfo),
}

impl From<StateError> for DriftError {
    fn from(e: StateError) -> Self {
        DriftError::Lifecycle(e.into())
    }
}

impl From<StoreError> for DriftError {
    fn from(e: StoreError) -> Self {
        DriftError::Lifecycle(e.into())
    }
}

/// The state after applying `req` to `before`, checked with the onboarding rules.
fn apply_edit(
    root: &SagaRecord,
    before: &ManagedApp,
    req: &EditRequest,
    requester: &str,
) -> Result<ManagedApp, ValidationErrors> {
    let mut problems = Vec::new();
    if let Some(ns) = &req.namespace {
        if *ns != before.namespace {
            problems.push(Problem::new(
                "namespace",
                format!(
                    "cannot change from {} to {ns}: AppIntegrations namespaces are immutable",
                    before.namespace
                ),
                "Leave the namespace out. To use another namespace, onboard a new application \
                 with it, move agents over, then offboard this one.",
            ));
        }
    }
    let base: ApplicationSpec =
        serde_json::from_value(root.input.clone()).unwrap_or_else(|_| ApplicationSpec {
            display_name: before.fields.display_name.clone(),
            namespace: Some(before.namespace.clone()),
            description: None,
            access_url: before.fields.access_url.clone(),
            approved_origins: Vec::new(),
            permissions: Vec::new(),
            subscriptions: Vec::new(),
            publications: Vec::new(),
            iframe: None,
            initialization_timeout_ms: None,
            contact_scope: None,
            application_type: None,
            tags: BTreeMap::new(),
            instances: Vec::new(),
            security_profiles: Vec::new(),
            owner_group: None,
            requester: Requester {
                source: RequestSource::Portal,
                principal: requester.to_string(),
                ticket_id: None,
            },
        });
    let mut spec = before.to_spec(&base);
    let f = &mut spec;
    if let Some(v) = &req.display_name {
        f.display_name = v.clone();
    }
    if let Some(v) = &req.description {
        f.description = (!v.is_empty()).then(|| v.clone());
    }
    if let Some(v) = &req.access_url {
        f.access_url = v.clone();
    }
    if let Some(v) = &req.approved_origins {
        f.approved_origins = v.clone();
    }
    if let Some(v) = &req.permissions {
        f.permissions = v.clone();
    }
    if let Some(v) = &req.subscriptions {
        f.subscriptions = v.clone();
    }
    if let Some(v) = &req.publications {
        f.publications = v.clone();
    }
    if let Some(v) = &req.iframe {
        f.iframe = Some(v.clone());
    }
    if let Some(v) = req.initialization_timeout_ms {
        f.initialization_timeout_ms = Some(v);
    }
    if let Some(v) = &req.instances {
        f.instances = v.clone();
        if req.security_profiles.is_none() {
            // Keep the grants of instances that stay.
            let kept: BTreeSet<String> = v.iter().filter_map(|i| instance_id(i)).collect();
            f.security_profiles.retain(|g| kept.contains(&g.instance));
        }
    }
    if let Some(v) = &req.security_profiles {
        f.security_profiles = v.clone();
    }
    let validated = match spec.validate() {
        Ok(v) => v,
        Err(mut errs) => {
            errs.problems.splice(0..0, problems);
            return Err(errs);
        }
    };
    let instances: BTreeSet<String> = validated.instance_ids.iter().cloned().collect();
    let after = ManagedApp {
        app: before.app.clone(),
        namespace: before.namespace.clone(),
        fields: ApplicationFields::of(&validated.spec),
        paused: before.paused.intersection(&instances).cloned().collect(),
        instances,
        profiles: super::state::profiles_of(&validated),
        slr_statements: before.slr_statements,
        offboarded: false,
        last_change: before.last_change.clone(),
    };
    if after == *before {
        problems.push(Problem::new(
            "$",
            "changes nothing: every given value equals the current one",
            "Send only the fields you want to change, with their new values.",
        ));
    }
    if problems.is_empty() {
        Ok(after)
    } else {
        Err(ValidationErrors::new(problems))
    }
}

/// Engines for every saga kind, so one worker runs whatever a message names.
pub struct Sagas {
    pub onboard: Engine<OnboardPorts>,
    pub change: Engine<LifecyclePorts>,
    pub fix: Engine<LifecyclePorts>,
    pub offboard: Engine<LifecyclePorts>,
    pub adopt: Engine<LifecyclePorts>,
}

/// What [`Sagas::new`] needs besides the ports.
pub struct SagaSettings {
    pub onboard: OnboardConfig,
    pub engine: EngineConfig,
    /// Unique per process, so two workers never share a lease.
    pub owner: String,
}

impl Sagas {
    pub fn new(
        aws: Arc<OnboardPorts>,
        store: Arc<dyn SagaStore>,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Random>,
        settings: SagaSettings,
    ) -> Self {
        let ctx = Arc::new(LifecyclePorts {
            aws: aws.clone(),
            store: store.clone(),
        });
        let c = settings.onboard.instance_concurrency;
        let engine = |def| {
            Engine::new(
                Arc::new(def),
                ctx.clone(),
                store.clone(),
                clock.clone(),
                random.clone(),
                settings.owner.clone(),
            )
            .with_config(settings.engine.clone())
        };
        Sagas {
            change: engine(change::definition(c)),
            fix: engine(change::fix_definition(c)),
            offboard: engine(offboard::definition()),
            adopt: engine(adopt::definition()),
            onboard: Engine::new(
                Arc::new(onboard::definition(&settings.onboard)),
                aws,
                store.clone(),
                clock.clone(),
                random.clone(),
                settings.owner.clone(),
            )
            .with_config(settings.engine.clone()),
        }
    }

    /// The lifecycle ports the engines share (drift checks use them too).
    pub fn lifecycle_ports(&self) -> Arc<LifecyclePorts> {
        self.change.context()
    }

    /// Run (or re-drive) the saga a message names, on the engine for its `kind`. A saga that is
    /// finished or held by another worker is a successful no-op: redelivery must not fail.
    pub async fn run(
        &self,
        kind: &str,
        message: &RunSagaMessage,
    ) -> Result<RunOutcome, EngineError> {
        let id = message.saga_id.as_str();
        let redrive = message.action == RunAction::Redrive;
        macro_rules! go {
            ($engine:expr) => {
                if redrive {
                    $engine.redrive(id).await
                } else {
                    $engine.run(id).await
                }
            };
        }
        match kind {
            onboard::KIND => go!(self.onboard),
            change::KIND => go!(self.change),
            change::FIX_KIND => go!(self.fix),
            offboard::KIND => go!(self.offboard),
            adopt::KIND => go!(self.adopt),
            other => Err(EngineError::KindMismatch {
                id: id.to_string(),
                found: other.to_string(),
                expected: "onboard, change, fix, offboard or adopt".into(),
            }),
        }
    }
}
