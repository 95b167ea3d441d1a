//! An in-memory fake of the three AWS ports ([`AppIntegrationsPort`], [`ConnectPort`],
//! [`IamPort`]) that enforces the real service rules the sagas depend on, with fault injection,
//! so saga tests can assert that a rollback leaves the world exactly as it was:
//!
//! ```
//! use onboard_core::testkit::fake_world::{throttled, FakeWorld};
//! let world = FakeWorld::standard();
//! let before = world.snapshot();
//! world.fail_nth("create_association", 2, throttled());
//! // ... run a saga that fails and rolls back ...
//! assert_eq!(world.snapshot(), before);
//! ```
//!
//! Rules modelled (from the AWS API references of AppIntegrations, Connect and IAM):
//! - AppIntegrations: a namespace belongs to one application; a create replayed with the same
//!   client token returns the first application, any other create on a taken namespace is a
//!   `DuplicateResourceException`; deleting an application that still has associations is refused
//!   (`InvalidRequestException`); at most 50 applications.
//! - Connect: applications can only be associated with instances that use the service-linked
//!   role; the application must exist; one association per (instance, application); a security
//!   profile's application list is replaced as a whole and holds at most 10 entries.
//! - IAM: inline policy documents must be JSON objects; the total of a role's inline policies
//!   (whitespace not counted) may not exceed 10,240 characters (`LimitExceeded`); a missing role
//!   or a deleted-but-missing policy is `NoSuchEntity`; getting a missing policy is `None`.
//!
//! Every port call is counted and logged, then checked against the injected faults, then applied.
//! The state sits behind one mutex that is never held across an await, so each call is atomic.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::error::{ErrorInfo, ErrorKind};
use crate::ports::{
    AppIntegrationsPort, AppRef, ApplicationDetails, ApplicationFields, ApplicationInfo,
    AssociationRef, ConnectPort, CreateApplication, IamPort, InstanceInfo, ProfileApplication,
};

/// The fake account.
pub const ACCOUNT_ID: &str = "111122223333";
/// The fake Region.
pub const REGION: &str = "us-east-1";

/// [`FakeWorld::standard`]'s SLR instance `alpha`.
pub const INSTANCE_ALPHA: &str = "11111111-1111-4111-8111-111111111111";
/// [`FakeWorld::standard`]'s SLR instance `beta`.
pub const INSTANCE_BETA: &str = "22222222-2222-4222-8222-222222222222";
/// [`FakeWorld::standard`]'s SLR instance `gamma`.
pub const INSTANCE_GAMMA: &str = "33333333-3333-4333-8333-333333333333";
/// [`FakeWorld::standard`]'s pre-2018 instance `legacy`, which has no service-linked role.
pub const INSTANCE_LEGACY: &str = "44444444-4444-4444-8444-444444444444";
/// The SLR instances of [`FakeWorld::standard`].
pub const SLR_INSTANCES: [&str; 3] = [INSTANCE_ALPHA, INSTANCE_BETA, INSTANCE_GAMMA];

/// Security profiles of [`FakeWorld::standard`]: two per SLR instance.
pub const PROFILE_ALPHA_1: &str = "aaaaaaaa-0000-4000-8000-000000000001";
pub const PROFILE_ALPHA_2: &str = "aaaaaaaa-0000-4000-8000-000000000002";
pub const PROFILE_BETA_1: &str = "aaaaaaaa-0000-4000-8000-000000000003";
pub const PROFILE_BETA_2: &str = "aaaaaaaa-0000-4000-8000-000000000004";
pub const PROFILE_GAMMA_1: &str = "aaaaaaaa-0000-4000-8000-000000000005";
pub const PROFILE_GAMMA_2: &str = "aaaaaaaa-0000-4000-8000-000000000006";
/// `(instance, profile)` pairs of [`FakeWorld::standard`].
pub const STANDARD_PROFILES: [(&str, &str); 6] = [
    (INSTANCE_ALPHA, PROFILE_ALPHA_1),
    (INSTANCE_ALPHA, PROFILE_ALPHA_2),
    (INSTANCE_BETA, PROFILE_BETA_1),
    (INSTANCE_BETA, PROFILE_BETA_2),
    (INSTANCE_GAMMA, PROFILE_GAMMA_1),
    (INSTANCE_GAMMA, PROFILE_GAMMA_2),
];

/// The unrelated inline policy every seeded instance role already has (Connect's own).
pub const EXISTING_POLICY_NAME: &str = "ConnectKinesisPolicy";
/// Its document.
pub const EXISTING_POLICY_DOCUMENT: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["kinesis:PutRecord", "kinesis:PutRecords", "kinesis:DescribeStream"],
      "Resource": "arn:aws:kinesis:us-east-1:111122223333:stream/connect-ctr"
    }
  ]
}"#;

/// IAM's limit on the total of one role's inline policies, whitespace not counted.
pub const INLINE_POLICY_BUDGET: usize = 10_240;
/// Connect's limit on `UpdateSecurityProfile.Applications`.
pub const MAX_PROFILE_APPLICATIONS: usize = 10;
/// AppIntegrations' default "applications per Region" quota.
pub const MAX_APPLICATIONS: usize = 50;

/// The port operations that can be counted and faulted, by method name.
pub const OPS: [&str; 20] = [
    "create_application",
    "find_application",
    "delete_application",
    "get_application",
    "update_application",
    "list_application_associations",
    "tag_application",
    "untag_application",
    "list_instances",
    "list_security_profiles",
    "describe_instance",
    "find_association",
    "create_association",
    "delete_association",
    "profile_applications",
    "set_profile_applications",
    "get_role_policy",
    "put_role_policy",
    "delete_role_policy",
    "list_role_policies",
];

/// A retryable `ThrottlingException`, handy for fault injection.
pub fn throttled() -> ErrorInfo {
    ErrorInfo::new(ErrorKind::Throttled, "ThrottlingException", "Rate exceeded")
}

/// A retryable 500, handy for fault injection.
pub fn server_error() -> ErrorInfo {
    ErrorInfo::new(
        ErrorKind::ServerError,
        "InternalServiceError",
        "injected internal service error",
    )
}

/// A retryable timeout (e.g. a dropped response with [`FakeWorld::apply_then_fail`]).
pub fn timed_out() -> ErrorInfo {
    ErrorInfo::new(
        ErrorKind::Timeout,
        "RequestTimeout",
        "injected timeout: response lost",
    )
}

/// A terminal `AccessDeniedException`, handy for fault injection.
pub fn access_denied() -> ErrorInfo {
    ErrorInfo::new(
        ErrorKind::Denied,
        "AccessDeniedException",
        "injected access denied",
    )
}

/// The role name of an SLR instance's service-linked role, as [`FakeWorld::add_instance`]
/// creates it: `AWSServiceRoleForAmazonConnect_` + 20 alphanumerics derived from the id.
pub fn slr_role_name(instance_id: &str) -> String {
    format!("AWSServiceRoleForAmazonConnect_{}", slr_suffix(instance_id))
}

/// The `n`-th (1 or 2) security profile of a [`FakeWorld::standard`] SLR instance, e.g.
/// `profile_id(INSTANCE_BETA, 1) == PROFILE_BETA_1`; an id that exists nowhere for other input.
pub fn profile_id(instance_id: &str, n: usize) -> String {
    match SLR_INSTANCES.iter().position(|i| *i == instance_id) {
        Some(i) if (1..=2).contains(&n) => format!("aaaaaaaa-0000-4000-8000-{:012}", i * 2 + n),
        _ => "aaaaaaaa-0000-4000-8000-999999999999".to_string(),
    }
}

/// What the world looks like, without generated ids, so that two worlds that went through
/// different histories compare equal when they hold the same things.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorldSnapshot {
    /// Application namespace → its tags.
    pub applications: BTreeMap<String, BTreeMap<String, String>>,
    /// `(instance id, application namespace)`; the application ARN when no application has it.
    pub associations: BTreeSet<(String, String)>,
    /// `(instance id, profile id)` → its application grants, in order.
    pub profiles: BTreeMap<(String, String), Vec<ProfileApplication>>,
    /// Role name → inline policy name → document (parsed and re-serialized with sorted keys).
    pub roles: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Clone)]
struct App {
    id: String,
    arn: String,
    namespace: String,
    fields: ApplicationFields,
    tags: BTreeMap<String, String>,
    client_token: String,
}

impl App {
    fn app_ref(&self) -> AppRef {
        AppRef {
            id: self.id.clone(),
            arn: self.arn.clone(),
        }
    }
}

#[derive(Debug, Default)]
struct World {
    next_id: u64,
    /// id → application.
    applications: BTreeMap<String, App>,
    /// id → instance.
    instances: BTreeMap<String, InstanceInfo>,
    /// (instance id, association id) → application ARN.
    associations: BTreeMap<(String, String), String>,
    /// (instance id, profile id) → grants.
    profiles: BTreeMap<(String, String), Vec<ProfileApplication>>,
    /// role name → policy name → document.
    roles: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    FailBefore,
    ApplyThenFail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// The call with this (absolute) count.
    At(u64),
    Always,
}

#[derive(Debug, Clone)]
struct Fault {
    op: String,
    trigger: Trigger,
    mode: Mode,
    error: ErrorInfo,
}

#[derive(Debug, Default)]
struct Faults {
    counts: BTreeMap<String, u64>,
    log: Vec<String>,
    faults: Vec<Fault>,
}

impl Faults {
    /// Counts and logs a call of `op`; returns the fault it triggers, if any.
    fn on_call(&mut self, op: &str) -> Option<(Mode, ErrorInfo)> {
        let count = self.counts.entry(op.to_string()).or_insert(0);
        *count += 1;
        let count = *count;
        self.log.push(op.to_string());
        let hit = self
            .faults
            .iter()
            .find(|f| {
                f.op == op
                    && match f.trigger {
                        Trigger::At(n) => n == count,
                        Trigger::Always => true,
                    }
            })
            .map(|f| (f.mode, f.error.clone()));
        self.faults
            .retain(|f| !(f.op == op && matches!(f.trigger, Trigger::At(n) if n <= count)));
        hit
    }

    fn add(&mut self, op: &str, trigger: Trigger, mode: Mode, error: ErrorInfo) {
        assert!(
            OPS.contains(&op),
            "FakeWorld: unknown operation {op:?}; expected one of {OPS:?}"
        );
        let trigger = match trigger {
            Trigger::At(n) => Trigger::At(self.counts.get(op).copied().unwrap_or(0) + n.max(1)),
            Trigger::Always => Trigger::Always,
        };
        self.faults.push(Fault {
            op: op.to_string(),
            trigger,
            mode,
            error,
        });
    }
}

#[derive(Debug, Default)]
struct Inner {
    world: World,
    faults: Faults,
}

/// The in-memory AWS world. Cheap to build; share it with `Arc` between the saga's ports and
/// the test's assertions.
#[derive(Debug, Default)]
pub struct FakeWorld {
    inner: Mutex<Inner>,
}

fn not_found(code: &str, message: impl Into<String>) -> ErrorInfo {
    ErrorInfo::new(ErrorKind::NotFound, code, message)
}

fn invalid(code: &str, message: impl Into<String>) -> ErrorInfo {
    ErrorInfo::new(ErrorKind::Invalid, code, message)
}

fn instance_arn(id: &str) -> String {
    format!("arn:aws:connect:{REGION}:{ACCOUNT_ID}:instance/{id}")
}

/// A bare instance id from an id or an instance ARN (Connect accepts both).
fn normalize_instance(id_or_arn: &str) -> String {
    crate::spec::instance_id(id_or_arn).unwrap_or_else(|| id_or_arn.to_string())
}

/// `[\w+=,.@-]+`, the IAM name pattern shared by role and policy names.
fn is_iam_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.chars().count() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}

/// Characters IAM counts against the inline policy budget.
fn policy_size(document: &str) -> usize {
    document.chars().filter(|c| !c.is_whitespace()).count()
}

fn sorted(value: Value) -> Value {
    match value {
        Value::Object(obj) => {
            let entries: BTreeMap<String, Value> =
                obj.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(entries.into_iter().collect::<Map<String, Value>>())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// A policy document with insignificant whitespace and key order removed.
fn normalize_document(document: &str) -> String {
    match serde_json::from_str::<Value>(document) {
        Ok(value) => sorted(value).to_string(),
        Err(_) => document.to_string(),
    }
}

/// 20 mixed-case alphanumerics derived from `seed` (like real SLR suffixes).
fn slr_suffix(seed: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (0..20)
        .map(|_| {
            // xorshift64*
            h ^= h >> 12;
            h ^= h << 25;
            h ^= h >> 27;
            let r = h.wrapping_mul(0x2545_f491_4f6c_dd1d);
            let idx = usize::try_from(r >> 58).unwrap_or(0) % ALPHABET.len();
            char::from(ALPHABET[idx])
        })
        .collect()
}

impl World {
    fn next_id(&mut self) -> String {
        self.next_id += 1;
        format!("00000000-0000-4000-8000-{:012}", self.next_id)
    }

    fn app_by_namespace(&self, namespace: &str) -> Option<&App> {
        self.applications
            .values()
            .find(|a| a.namespace == namespace)
    }

    fn app_by_id_or_arn(&self, id_or_arn: &str) -> Option<&App> {
        self.applications
            .values()
            .find(|a| a.id == id_or_arn || a.arn == id_or_arn)
    }

    fn instance(&self, id_or_arn: &str) -> Result<&InstanceInfo, ErrorInfo> {
        let id = normalize_instance(id_or_arn);
        self.instances.get(&id).ok_or_else(|| {
            not_found(
                "ResourceNotFoundException",
                format!("Instance {id_or_arn} not found"),
            )
        })
    }

    fn role(&self, role: &str) -> Result<&BTreeMap<String, String>, ErrorInfo> {
        check_role_name(role)?;
        self.roles.get(role).ok_or_else(|| no_such_role(role))
    }

    fn insert_app(
        &mut self,
        namespace: &str,
        fields: ApplicationFields,
        tags: BTreeMap<String, String>,
        client_token: &str,
    ) -> AppRef {
        let id = self.next_id();
        let app = App {
            arn: format!("arn:aws:app-integrations:{REGION}:{ACCOUNT_ID}:application/{id}"),
            id: id.clone(),
            namespace: namespace.to_string(),
            fields,
            tags,
            client_token: client_token.to_string(),
        };
        let app_ref = app.app_ref();
        self.applications.insert(id, app);
        app_ref
    }

    fn insert_association(&mut self, instance_id: &str, app_arn: &str) -> AssociationRef {
        let id = self.next_id();
        self.associations
            .insert((instance_id.to_string(), id.clone()), app_arn.to_string());
        association_ref(instance_id, &id)
    }

    // ---- AppIntegrations ----

    fn create_application(&mut self, req: &CreateApplication) -> Result<AppRef, ErrorInfo> {
        let ns = &req.namespace;
        if ns.is_empty()
            || ns.chars().count() > 211
            || !ns.chars().all(crate::spec::is_namespace_char)
        {
            return Err(invalid(
                "InvalidRequestException",
                format!("Namespace {ns:?} must be 1..211 characters matching ^[a-zA-Z0-9/._-]+$"),
            ));
        }
        if let Some(existing) = self.app_by_namespace(ns) {
            if existing.client_token == req.client_token {
                return Ok(existing.app_ref());
            }
            return Err(ErrorInfo::new(
                ErrorKind::Conflict,
                "DuplicateResourceException",
                format!("An application with namespace {ns} already exists"),
            ));
        }
        if self.applications.len() >= MAX_APPLICATIONS {
            return Err(ErrorInfo::new(
                ErrorKind::QuotaExceeded,
                "ResourceQuotaExceededException",
                format!("Quota of {MAX_APPLICATIONS} applications per Region reached"),
            ));
        }
        Ok(self.insert_app(
            ns,
            ApplicationFields::of(&req.spec),
            req.tags.clone(),
            &req.client_token,
        ))
    }

    fn find_application(&self, namespace: &str) -> Option<ApplicationInfo> {
        self.app_by_namespace(namespace).map(|a| ApplicationInfo {
            id: a.id.clone(),
            arn: a.arn.clone(),
            namespace: a.namespace.clone(),
            tags: a.tags.clone(),
        })
    }

    fn delete_application(&mut self, id_or_arn: &str) -> Result<(), ErrorInfo> {
        let app = self.app_by_id_or_arn(id_or_arn).cloned().ok_or_else(|| {
            not_found(
                "ResourceNotFoundException",
                format!("Application {id_or_arn} not found"),
            )
        })?;
        let in_use = self
            .associations
            .values()
            .filter(|arn| **arn == app.arn)
            .count();
        if in_use > 0 {
            return Err(invalid(
                "InvalidRequestException",
                format!(
                    "Application {} cannot be deleted: {in_use} associations exist; \
                     delete the associations first",
                    app.id
                ),
            ));
        }
        self.applications.remove(&app.id);
        Ok(())
    }

    // ---- Connect ----

    fn find_association(
        &self,
        instance: &str,
        app_arn: &str,
    ) -> Result<Option<AssociationRef>, ErrorInfo> {
        let instance_id = self.instance(instance)?.id.clone();
        Ok(self
            .associations
            .iter()
            .find(|((i, _), arn)| *i == instance_id && *arn == app_arn)
            .map(|((i, id), _)| association_ref(i, id)))
    }

    fn create_association(
        &mut self,
        instance: &str,
        app_arn: &str,
    ) -> Result<AssociationRef, ErrorInfo> {
        let info = self.instance(instance)?.clone();
        if !info.service_role.as_deref().is_some_and(is_slr_arn) {
            return Err(invalid(
                "InvalidRequestException",
                format!(
                    "Instance {} must use a service-linked role \
                     (AWSServiceRoleForAmazonConnect_*) to add third-party applications",
                    info.id
                ),
            )
            .with_fix(
                "Choose \"Create service-linked role\" on the instance's account overview page",
            ));
        }
        if self.app_by_id_or_arn(app_arn).map(|a| a.arn.as_str()) != Some(app_arn) {
            return Err(not_found(
                "ResourceNotFoundException",
                format!("Application {app_arn} not found"),
            ));
        }
        if self.find_association(&info.id, app_arn)?.is_some() {
            return Err(ErrorInfo::new(
                ErrorKind::Conflict,
                "DuplicateResourceException",
                format!(
                    "An integration association for {app_arn} already exists on instance {}",
                    info.id
                ),
            ));
        }
        Ok(self.insert_association(&info.id, app_arn))
    }

    fn delete_association(
        &mut self,
        instance: &str,
        association_id: &str,
    ) -> Result<(), ErrorInfo> {
        let instance_id = self.instance(instance)?.id.clone();
        self.associations
            .remove(&(instance_id.clone(), association_id.to_string()))
            .map(|_| ())
            .ok_or_else(|| {
                not_found(
                    "ResourceNotFoundException",
                    format!(
                        "Integration association {association_id} not found on instance {instance_id}"
                    ),
                )
            })
    }

    fn profile_key(&self, instance: &str, profile: &str) -> Result<(String, String), ErrorInfo> {
        let instance_id = self.instance(instance)?.id.clone();
        let key = (instance_id, profile.to_string());
        if self.profiles.contains_key(&key) {
            Ok(key)
        } else {
            Err(not_found(
                "ResourceNotFoundException",
                format!("Security profile {profile} not found on instance {}", key.0),
            ))
        }
    }

    fn set_profile_applications(
        &mut self,
        instance: &str,
        profile: &str,
        apps: &[ProfileApplication],
    ) -> Result<(), ErrorInfo> {
        let key = self.profile_key(instance, profile)?;
        if apps.len() > MAX_PROFILE_APPLICATIONS {
            return Err(invalid(
                "InvalidParameterException",
                format!(
                    "Applications: at most {MAX_PROFILE_APPLICATIONS} applications per security \
                     profile update, got {}",
                    apps.len()
                ),
            ));
        }
        let mut seen = BTreeSet::new();
        for app in apps {
            let ns_len = app.namespace.chars().count();
            if !(1..=128).contains(&ns_len) {
                return Err(invalid(
                    "InvalidParameterException",
                    format!(
                        "Application namespace {:?} must be 1..128 characters",
                        app.namespace
                    ),
                ));
            }
            if !(1..=50).contains(&app.permissions.len())
                || app
                    .permissions
                    .iter()
                    .any(|p| !(1..=128).contains(&p.chars().count()))
            {
                return Err(invalid(
                    "InvalidParameterException",
                    format!(
                        "Application {}: ApplicationPermissions must hold 1..50 entries of \
                         1..128 characters",
                        app.namespace
                    ),
                ));
            }
            if !seen.insert(app.namespace.as_str()) {
                return Err(invalid(
                    "InvalidParameterException",
                    format!("Application {} is listed twice", app.namespace),
                ));
            }
        }
        self.profiles.insert(key, apps.to_vec());
        Ok(())
    }

    // ---- IAM ----

    fn put_role_policy(
        &mut self,
        role: &str,
        policy: &str,
        document: &str,
    ) -> Result<(), ErrorInfo> {
        let policies = self.role(role)?;
        if !is_iam_name(policy, 128) {
            return Err(invalid(
                "ValidationError",
                format!("Policy name {policy:?} must be 1..128 characters matching [\\w+=,.@-]+"),
            ));
        }
        let allowed = |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{ff}');
        let parsed = serde_json::from_str::<Value>(document);
        if !document.chars().all(allowed) || !matches!(parsed, Ok(Value::Object(_))) {
            return Err(invalid(
                "MalformedPolicyDocument",
                "Syntax errors in policy.",
            ));
        }
        let others: usize = policies
            .iter()
            .filter(|(name, _)| name.as_str() != policy)
            .map(|(_, doc)| policy_size(doc))
            .sum();
        if others + policy_size(document) > INLINE_POLICY_BUDGET {
            return Err(ErrorInfo::new(
                ErrorKind::QuotaExceeded,
                "LimitExceeded",
                format!(
                    "Maximum policy size of {INLINE_POLICY_BUDGET} bytes exceeded for role {role}"
                ),
            ));
        }
        self.roles
            .entry(role.to_string())
            .or_default()
            .insert(policy.to_string(), document.to_string());
        Ok(())
    }

    fn delete_role_policy(&mut self, role: &str, policy: &str) -> Result<(), ErrorInfo> {
        self.role(role)?;
        self.roles
            .get_mut(role)
            .and_then(|policies| policies.remove(policy))
            .map(|_| ())
            .ok_or_else(|| {
                not_found(
                    "NoSuchEntity",
                    format!("The role policy with name {policy} cannot be found."),
                )
            })
    }

    fn snapshot(&self) -> WorldSnapshot {
        let applications = self
            .applications
            .values()
            .map(|a| (a.namespace.clone(), a.tags.clone()))
            .collect();
        let associations = self
            .associations
            .iter()
            .map(|((instance, _), arn)| {
                let ns = self
                    .app_by_id_or_arn(arn)
                    .map_or_else(|| arn.clone(), |a| a.namespace.clone());
                (instance.clone(), ns)
            })
            .collect();
        let roles = self
            .roles
            .iter()
            .map(|(role, policies)| {
                let policies = policies
                    .iter()
                    .map(|(name, doc)| (name.clone(), normalize_document(doc)))
                    .collect();
                (role.clone(), policies)
            })
            .collect();
        WorldSnapshot {
            applications,
            associations,
            profiles: self.profiles.clone(),
            roles,
        }
    }
}

fn association_ref(instance_id: &str, id: &str) -> AssociationRef {
    AssociationRef {
        id: id.to_string(),
        arn: format!("{}/integration-association/{id}", instance_arn(instance_id)),
    }
}

fn is_slr_arn(arn: &str) -> bool {
    arn.contains(":role/aws-service-role/connect.amazonaws.com/AWSServiceRoleForAmazonConnect_")
}

fn check_role_name(role: &str) -> Result<(), ErrorInfo> {
    if is_iam_name(role, 64) {
        Ok(())
    } else {
        Err(invalid(
            "ValidationError",
            format!("Role name {role:?} must be 1..64 characters matching [\\w+=,.@-]+ (a name, not a path or ARN)"),
        ))
    }
}

fn no_such_role(role: &str) -> ErrorInfo {
    not_found(
        "NoSuchEntity",
        format!("The role with name {role} cannot be found."),
    )
}

impl FakeWorld {
    /// An empty world: no instances, roles or applications.
    pub fn new() -> Self {
        Self::default()
    }

    /// Three SLR instances (`alpha`, `beta`, `gamma`) with two empty security profiles each,
    /// and one instance without an SLR (`legacy`). Every instance role already carries
    /// [`EXISTING_POLICY_NAME`].
    pub fn standard() -> Self {
        let world = Self::new();
        for (id, alias) in [
            (INSTANCE_ALPHA, "alpha"),
            (INSTANCE_BETA, "beta"),
            (INSTANCE_GAMMA, "gamma"),
        ] {
            world.add_instance(id, alias, true);
        }
        world.add_instance(INSTANCE_LEGACY, "legacy", false);
        for (instance, profile) in STANDARD_PROFILES {
            world.add_profile(instance, profile);
        }
        world
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts the call, applies any injected fault, else runs `f` on the world.
    fn call<T>(
        &self,
        op: &str,
        f: impl FnOnce(&mut World) -> Result<T, ErrorInfo>,
    ) -> Result<T, ErrorInfo> {
        let mut g = self.lock();
        match g.faults.on_call(op) {
            Some((Mode::FailBefore, error)) => Err(error),
            Some((Mode::ApplyThenFail, error)) => {
                f(&mut g.world)?;
                Err(error)
            }
            None => f(&mut g.world),
        }
    }

    // ---- seeding (not counted, never faulted) ----

    /// The role name of an SLR instance's service-linked role (same as [`slr_role_name`]).
    pub fn slr_role_name(instance_id: &str) -> String {
        slr_role_name(instance_id)
    }

    /// Adds an ACTIVE instance and its role (with [`EXISTING_POLICY_NAME`]). With `slr` the
    /// role is the Connect service-linked role; without it, a pre-2018 style custom role.
    pub fn add_instance(&self, id: &str, alias: &str, slr: bool) -> InstanceInfo {
        let (role_name, role_arn) = if slr {
            let name = slr_role_name(id);
            let arn = format!(
                "arn:aws:iam::{ACCOUNT_ID}:role/aws-service-role/connect.amazonaws.com/{name}"
            );
            (name, arn)
        } else {
            let name = format!("connect-legacy-{alias}");
            let arn = format!("arn:aws:iam::{ACCOUNT_ID}:role/{name}");
            (name, arn)
        };
        let info = InstanceInfo {
            id: id.to_string(),
            arn: instance_arn(id),
            alias: Some(alias.to_string()),
            status: "ACTIVE".to_string(),
            service_role: Some(role_arn),
        };
        let mut g = self.lock();
        g.world.instances.insert(id.to_string(), info.clone());
        g.world.roles.entry(role_name).or_default().insert(
            EXISTING_POLICY_NAME.to_string(),
            EXISTING_POLICY_DOCUMENT.to_string(),
        );
        info
    }

    /// Adds an empty security profile to an instance.
    pub fn add_profile(&self, instance_id: &str, profile_id: &str) {
        self.seed_profile_applications(instance_id, profile_id, Vec::new());
    }

    /// Adds (or overwrites) a security profile with the given grants, without any checks.
    pub fn seed_profile_applications(
        &self,
        instance_id: &str,
        profile_id: &str,
        apps: Vec<ProfileApplication>,
    ) {
        self.lock()
            .world
            .profiles
            .insert((instance_id.to_string(), profile_id.to_string()), apps);
    }

    /// Adds a role with no inline policies (no-op if it exists).
    pub fn add_role(&self, role: &str) {
        self.lock().world.roles.entry(role.to_string()).or_default();
    }

    /// Adds or replaces an inline policy without any checks (creating the role if needed).
    pub fn seed_role_policy(&self, role: &str, policy: &str, document: &str) {
        self.lock()
            .world
            .roles
            .entry(role.to_string())
            .or_default()
            .insert(policy.to_string(), document.to_string());
    }

    /// Adds an application someone else created (e.g. to take a namespace).
    pub fn seed_application(
        &self,
        namespace: &str,
        name: &str,
        tags: BTreeMap<String, String>,
    ) -> AppRef {
        self.lock().world.insert_app(
            namespace,
            ApplicationFields {
                display_name: name.to_string(),
                description: None,
                access_url: format!("https://{namespace}"),
                approved_origins: Vec::new(),
                permissions: Vec::new(),
                subscriptions: Vec::new(),
                publications: Vec::new(),
                iframe: None,
                initialization_timeout_ms: None,
            },
            tags,
            "seeded-by-test",
        )
    }

    /// Adds an association without any checks.
    pub fn seed_association(&self, instance_id: &str, app_arn: &str) -> AssociationRef {
        self.lock().world.insert_association(instance_id, app_arn)
    }

    // ---- fault injection ----

    /// The `n`-th call of `op` from now (1-based; 0 counts as 1) fails with `error` without
    /// applying anything.
    pub fn fail_nth(&self, op: &str, n: u64, error: ErrorInfo) {
        self.lock()
            .faults
            .add(op, Trigger::At(n), Mode::FailBefore, error);
    }

    /// Every call of `op` fails with `error` without applying, until [`Self::clear_faults`].
    pub fn fail_always(&self, op: &str, error: ErrorInfo) {
        self.lock()
            .faults
            .add(op, Trigger::Always, Mode::FailBefore, error);
    }

    /// The `n`-th call of `op` from now applies its effect and then returns `error`, like a
    /// response lost on the way back. If the call itself fails, that error is returned instead.
    pub fn apply_then_fail(&self, op: &str, n: u64, error: ErrorInfo) {
        self.lock()
            .faults
            .add(op, Trigger::At(n), Mode::ApplyThenFail, error);
    }

    /// Removes every pending fault (call counts are kept).
    pub fn clear_faults(&self) {
        self.lock().faults.faults.clear();
    }

    // ---- observation ----

    /// How many times `op` was called since the world was built.
    pub fn calls(&self, op: &str) -> u64 {
        self.lock().faults.counts.get(op).copied().unwrap_or(0)
    }

    /// Every port call so far, in order, by operation name.
    pub fn call_log(&self) -> Vec<String> {
        self.lock().faults.log.clone()
    }

    /// The world's contents without generated ids; compare with `assert_eq!` for "pristine".
    pub fn snapshot(&self) -> WorldSnapshot {
        self.lock().world.snapshot()
    }

    /// A role's inline policies as stored (not normalized); `None` for an unknown role.
    pub fn role_policies(&self, role: &str) -> Option<BTreeMap<String, String>> {
        self.lock().world.roles.get(role).cloned()
    }

    /// The role name behind an instance's `ServiceRole` (last path segment of the ARN).
    pub fn instance_role_name(&self, instance_id: &str) -> Option<String> {
        let g = self.lock();
        let arn = g.world.instances.get(instance_id)?.service_role.clone()?;
        arn.rsplit('/').next().map(str::to_string)
    }

    /// A profile's current grants; `None` for an unknown profile.
    pub fn profile(&self, instance_id: &str, profile_id: &str) -> Option<Vec<ProfileApplication>> {
        self.lock()
            .world
            .profiles
            .get(&(instance_id.to_string(), profile_id.to_string()))
            .cloned()
    }
}

#[async_trait]
impl AppIntegrationsPort for FakeWorld {
    async fn create_application(&self, req: &CreateApplication) -> Result<AppRef, ErrorInfo> {
        self.call("create_application", |w| w.create_application(req))
    }

    async fn find_application(
        &self,
        namespace: &str,
    ) -> Result<Option<ApplicationInfo>, ErrorInfo> {
        self.call("find_application", |w| Ok(w.find_application(namespace)))
    }

    async fn delete_application(&self, id_or_arn: &str) -> Result<(), ErrorInfo> {
        self.call("delete_application", |w| w.delete_application(id_or_arn))
    }

    async fn get_application(
        &self,
        id_or_arn: &str,
    ) -> Result<Option<ApplicationDetails>, ErrorInfo> {
        self.call("get_application", |w| {
            Ok(w.app_by_id_or_arn(id_or_arn).map(|a| ApplicationDetails {
                id: a.id.clone(),
                arn: a.arn.clone(),
                namespace: a.namespace.clone(),
                fields: a.fields.clone(),
                tags: a.tags.clone(),
            }))
        })
    }

    async fn update_application(
        &self,
        id_or_arn: &str,
        fields: &ApplicationFields,
        _previous: Option<&ApplicationFields>,
    ) -> Result<(), ErrorInfo> {
        self.call("update_application", |w| {
            let id = w
                .app_by_id_or_arn(id_or_arn)
                .map(|a| a.id.clone())
                .ok_or_else(|| {
                    not_found(
                        "ResourceNotFoundException",
                        format!("Application {id_or_arn} not found"),
                    )
                })?;
            if let Some(app) = w.applications.get_mut(&id) {
                app.fields = fields.clone();
            }
            Ok(())
        })
    }

    async fn tag_application(
        &self,
        arn: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), ErrorInfo> {
        self.call("tag_application", |w| {
            let id = w
                .app_by_id_or_arn(arn)
                .map(|a| a.id.clone())
                .ok_or_else(|| {
                    not_found("ResourceNotFoundException", format!("{arn} not found"))
                })?;
            if let Some(app) = w.applications.get_mut(&id) {
                app.tags.extend(tags.clone());
            }
            Ok(())
        })
    }

    async fn untag_application(&self, arn: &str, keys: &[String]) -> Result<(), ErrorInfo> {
        self.call("untag_application", |w| {
            let id = w
                .app_by_id_or_arn(arn)
                .map(|a| a.id.clone())
                .ok_or_else(|| {
                    not_found("ResourceNotFoundException", format!("{arn} not found"))
                })?;
            if let Some(app) = w.applications.get_mut(&id) {
                for k in keys {
                    app.tags.remove(k);
                }
            }
            Ok(())
        })
    }

    async fn list_application_associations(
        &self,
        id_or_arn: &str,
    ) -> Result<Vec<String>, ErrorInfo> {
        self.call("list_application_associations", |w| {
            let app = w.app_by_id_or_arn(id_or_arn).ok_or_else(|| {
                not_found(
                    "ResourceNotFoundException",
                    format!("Application {id_or_arn} not found"),
                )
            })?;
            Ok(w.associations
                .iter()
                .filter(|(_, arn)| **arn == app.arn)
                .map(|((_, assoc), _)| format!("{}/application-association/{assoc}", app.arn))
                .collect())
        })
    }
}

#[async_trait]
impl ConnectPort for FakeWorld {
    async fn describe_instance(&self, instance_id: &str) -> Result<InstanceInfo, ErrorInfo> {
        self.call("describe_instance", |w| w.instance(instance_id).cloned())
    }

    async fn find_association(
        &self,
        instance_id: &str,
        app_arn: &str,
    ) -> Result<Option<AssociationRef>, ErrorInfo> {
        self.call("find_association", |w| {
            w.find_association(instance_id, app_arn)
        })
    }

    async fn create_association(
        &self,
        instance_id: &str,
        app_arn: &str,
    ) -> Result<AssociationRef, ErrorInfo> {
        self.call("create_association", |w| {
            w.create_association(instance_id, app_arn)
        })
    }

    async fn delete_association(
        &self,
        instance_id: &str,
        association_id: &str,
    ) -> Result<(), ErrorInfo> {
        self.call("delete_association", |w| {
            w.delete_association(instance_id, association_id)
        })
    }

    async fn profile_applications(
        &self,
        instance_id: &str,
        profile_id: &str,
    ) -> Result<Vec<ProfileApplication>, ErrorInfo> {
        self.call("profile_applications", |w| {
            let key = w.profile_key(instance_id, profile_id)?;
            Ok(w.profiles.get(&key).cloned().unwrap_or_default())
        })
    }

    async fn set_profile_applications(
        &self,
        instance_id: &str,
        profile_id: &str,
        apps: &[ProfileApplication],
    ) -> Result<(), ErrorInfo> {
        self.call("set_profile_applications", |w| {
            w.set_profile_applications(instance_id, profile_id, apps)
        })
    }

    async fn list_instances(&self) -> Result<Vec<String>, ErrorInfo> {
        self.call("list_instances", |w| {
            Ok(w.instances.keys().cloned().collect())
        })
    }

    async fn list_security_profiles(&self, instance_id: &str) -> Result<Vec<String>, ErrorInfo> {
        self.call("list_security_profiles", |w| {
            let id = w.instance(instance_id)?.id.clone();
            Ok(w.profiles
                .keys()
                .filter(|(i, _)| *i == id)
                .map(|(_, p)| p.clone())
                .collect())
        })
    }
}

#[async_trait]
impl IamPort for FakeWorld {
    async fn get_role_policy(&self, role: &str, policy: &str) -> Result<Option<String>, ErrorInfo> {
        self.call("get_role_policy", |w| {
            Ok(w.role(role)?.get(policy).cloned())
        })
    }

    async fn put_role_policy(
        &self,
        role: &str,
        policy: &str,
        document: &str,
    ) -> Result<(), ErrorInfo> {
        self.call("put_role_policy", |w| {
            w.put_role_policy(role, policy, document)
        })
    }

    async fn delete_role_policy(&self, role: &str, policy: &str) -> Result<(), ErrorInfo> {
        self.call("delete_role_policy", |w| w.delete_role_policy(role, policy))
    }

    async fn list_role_policies(&self, role: &str) -> Result<Vec<String>, ErrorInfo> {
        self.call("list_role_policies", |w| {
            Ok(w.role(role)?.keys().cloned().collect())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn create_req(namespace: &str, token: &str) -> CreateApplication {
        let spec = crate::spec::parse_spec(
            br#"{"displayName":"Acme CRM","accessUrl":"https://crm.example.com",
                 "requester":{"source":"CLI","principal":"tester"}}"#,
        )
        .unwrap();
        let mut tags = BTreeMap::new();
        tags.insert("onboard:saga".to_string(), token.to_string());
        CreateApplication {
            spec,
            namespace: namespace.to_string(),
            client_token: token.to_string(),
            tags,
        }
    }

    fn grant(namespace: &str) -> ProfileApplication {
        ProfileApplication {
            namespace: namespace.to_string(),
            permissions: vec!["ACCESS".to_string()],
            kind: None,
        }
    }

    fn slr(instance: &str) -> String {
        slr_role_name(instance)
    }

    #[test]
    fn profile_ids_match_the_consts() {
        let ids: Vec<_> = SLR_INSTANCES
            .iter()
            .flat_map(|i| [profile_id(i, 1), profile_id(i, 2)])
            .collect();
        let consts: Vec<_> = STANDARD_PROFILES
            .iter()
            .map(|(_, p)| p.to_string())
            .collect();
        assert_eq!(ids, consts);
        assert_eq!(
            profile_id(INSTANCE_LEGACY, 1),
            profile_id(INSTANCE_ALPHA, 3)
        );
    }

    #[tokio::test]
    async fn standard_world_instances_and_roles() {
        let w = FakeWorld::standard();
        let alpha = w.describe_instance(INSTANCE_ALPHA).await.unwrap();
        assert_eq!(alpha.alias.as_deref(), Some("alpha"));
        assert_eq!(alpha.status, "ACTIVE");
        let role = alpha.service_role.unwrap();
        assert!(is_slr_arn(&role), "{role}");
        let name = role.rsplit('/').next().unwrap();
        assert_eq!(name, slr(INSTANCE_ALPHA));
        let suffix = name.trim_start_matches("AWSServiceRoleForAmazonConnect_");
        assert_eq!(suffix.len(), 20);
        assert!(suffix.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(slr(INSTANCE_ALPHA), slr(INSTANCE_BETA));
        assert_eq!(w.instance_role_name(INSTANCE_ALPHA).as_deref(), Some(name));

        // An instance ARN works as well as the id.
        let by_arn = w
            .describe_instance(&instance_arn(INSTANCE_BETA))
            .await
            .unwrap();
        assert_eq!(by_arn.id, INSTANCE_BETA);

        let legacy = w.describe_instance(INSTANCE_LEGACY).await.unwrap();
        assert!(!is_slr_arn(legacy.service_role.as_deref().unwrap()));
        assert_eq!(
            w.list_role_policies("connect-legacy-legacy").await.unwrap(),
            vec![EXISTING_POLICY_NAME.to_string()]
        );

        let err = w
            .describe_instance("99999999-9999-4999-8999-999999999999")
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert_eq!(err.code, "ResourceNotFoundException");

        for (instance, profile) in STANDARD_PROFILES {
            assert!(w
                .profile_applications(instance, profile)
                .await
                .unwrap()
                .is_empty());
        }
    }

    #[tokio::test]
    async fn create_application_is_idempotent_per_client_token() {
        let w = FakeWorld::standard();
        let first = w
            .create_application(&create_req("crm.example.com", "t1"))
            .await
            .unwrap();
        assert_eq!(first.id, "00000000-0000-4000-8000-000000000001");
        assert_eq!(
            first.arn,
            "arn:aws:app-integrations:us-east-1:111122223333:application/00000000-0000-4000-8000-000000000001"
        );
        let replay = w
            .create_application(&create_req("crm.example.com", "t1"))
            .await
            .unwrap();
        assert_eq!(replay, first);

        let err = w
            .create_application(&create_req("crm.example.com", "t2"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        assert_eq!(err.code, "DuplicateResourceException");

        let info = w
            .find_application("crm.example.com")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(info.id, first.id);
        assert_eq!(
            info.tags.get("onboard:saga").map(String::as_str),
            Some("t1")
        );
        assert!(w.find_application("other").await.unwrap().is_none());

        let err = w
            .create_application(&create_req("has space", "t3"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
    }

    #[tokio::test]
    async fn application_quota() {
        let w = FakeWorld::new();
        for i in 0..MAX_APPLICATIONS {
            w.create_application(&create_req(&format!("ns{i}"), &format!("t{i}")))
                .await
                .unwrap();
        }
        let err = w
            .create_application(&create_req("one-more", "x"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::QuotaExceeded);
    }

    #[tokio::test]
    async fn association_rules() {
        let w = FakeWorld::standard();
        let app = w.create_application(&create_req("crm", "t")).await.unwrap();

        let err = w
            .create_association(INSTANCE_LEGACY, &app.arn)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert!(
            err.message.contains("service-linked role"),
            "{}",
            err.message
        );

        let missing = "arn:aws:app-integrations:us-east-1:111122223333:application/00000000-0000-4000-8000-000000000999";
        let err = w
            .create_association(INSTANCE_ALPHA, missing)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        // The bare id is not an application ARN.
        let err = w
            .create_association(INSTANCE_ALPHA, &app.id)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);

        assert!(w
            .find_association(INSTANCE_ALPHA, &app.arn)
            .await
            .unwrap()
            .is_none());
        let assoc = w
            .create_association(INSTANCE_ALPHA, &app.arn)
            .await
            .unwrap();
        assert_eq!(
            assoc.arn,
            format!(
                "arn:aws:connect:us-east-1:111122223333:instance/{INSTANCE_ALPHA}/integration-association/{}",
                assoc.id
            )
        );
        assert_eq!(
            w.find_association(INSTANCE_ALPHA, &app.arn).await.unwrap(),
            Some(assoc.clone())
        );
        assert!(w
            .find_association(INSTANCE_BETA, &app.arn)
            .await
            .unwrap()
            .is_none());

        let err = w
            .create_association(INSTANCE_ALPHA, &app.arn)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        assert_eq!(err.code, "DuplicateResourceException");

        let err = w.create_association(INSTANCE_BETA, &app.arn).await;
        assert!(err.is_ok());

        w.delete_association(INSTANCE_ALPHA, &assoc.id)
            .await
            .unwrap();
        let err = w
            .delete_association(INSTANCE_ALPHA, &assoc.id)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn delete_application_refused_while_associated() {
        let w = FakeWorld::standard();
        let app = w.create_application(&create_req("crm", "t")).await.unwrap();
        let assoc = w
            .create_association(INSTANCE_GAMMA, &app.arn)
            .await
            .unwrap();

        let err = w.delete_application(&app.arn).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert_eq!(err.code, "InvalidRequestException");
        assert!(
            err.message.contains("associations exist"),
            "{}",
            err.message
        );
        assert!(w.find_application("crm").await.unwrap().is_some());

        w.delete_association(INSTANCE_GAMMA, &assoc.id)
            .await
            .unwrap();
        w.delete_application(&app.id).await.unwrap();
        assert!(w.find_application("crm").await.unwrap().is_none());

        let err = w.delete_application(&app.arn).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn security_profile_rules() {
        let w = FakeWorld::standard();
        let apps = vec![grant("a"), grant("b")];
        w.set_profile_applications(INSTANCE_ALPHA, PROFILE_ALPHA_1, &apps)
            .await
            .unwrap();
        assert_eq!(
            w.profile_applications(INSTANCE_ALPHA, PROFILE_ALPHA_1)
                .await
                .unwrap(),
            apps
        );
        // Replacement, not merge.
        w.set_profile_applications(INSTANCE_ALPHA, PROFILE_ALPHA_1, &[grant("c")])
            .await
            .unwrap();
        assert_eq!(
            w.profile(INSTANCE_ALPHA, PROFILE_ALPHA_1),
            Some(vec![grant("c")])
        );

        let eleven: Vec<_> = (0..11).map(|i| grant(&format!("ns{i}"))).collect();
        let err = w
            .set_profile_applications(INSTANCE_ALPHA, PROFILE_ALPHA_1, &eleven)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert_eq!(err.code, "InvalidParameterException");
        assert!(err.message.contains("10"), "{}", err.message);
        assert_eq!(
            w.profile(INSTANCE_ALPHA, PROFILE_ALPHA_1),
            Some(vec![grant("c")])
        );
        w.set_profile_applications(INSTANCE_ALPHA, PROFILE_ALPHA_1, &eleven[..10])
            .await
            .unwrap();

        // A profile of another instance is not found here.
        let err = w
            .profile_applications(INSTANCE_ALPHA, PROFILE_BETA_1)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        let err = w
            .set_profile_applications(INSTANCE_BETA, "nope", &[])
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn iam_rules() {
        let w = FakeWorld::standard();
        let role = slr(INSTANCE_ALPHA);

        assert_eq!(w.get_role_policy(&role, "Ours").await.unwrap(), None);
        assert_eq!(
            w.get_role_policy(&role, EXISTING_POLICY_NAME)
                .await
                .unwrap()
                .as_deref(),
            Some(EXISTING_POLICY_DOCUMENT)
        );

        let err = w
            .put_role_policy(&role, "Ours", "{not json")
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind, err.code.as_str()),
            (ErrorKind::Invalid, "MalformedPolicyDocument")
        );

        let doc = r#"{"Version":"2012-10-17","Statement":[]}"#;
        w.put_role_policy(&role, "Ours", doc).await.unwrap();
        assert_eq!(
            w.get_role_policy(&role, "Ours").await.unwrap().as_deref(),
            Some(doc)
        );
        assert_eq!(
            w.list_role_policies(&role).await.unwrap(),
            vec![EXISTING_POLICY_NAME.to_string(), "Ours".to_string()]
        );

        w.delete_role_policy(&role, "Ours").await.unwrap();
        let err = w.delete_role_policy(&role, "Ours").await.unwrap_err();
        assert_eq!(
            (err.kind, err.code.as_str()),
            (ErrorKind::NotFound, "NoSuchEntity")
        );

        for err in [
            w.get_role_policy("NoSuchRole", "x").await.unwrap_err(),
            w.put_role_policy("NoSuchRole", "x", doc).await.unwrap_err(),
            w.delete_role_policy("NoSuchRole", "x").await.unwrap_err(),
            w.list_role_policies("NoSuchRole").await.unwrap_err(),
        ] {
            assert_eq!(
                (err.kind, err.code.as_str()),
                (ErrorKind::NotFound, "NoSuchEntity")
            );
        }
        // A role ARN is not a role name.
        let err = w
            .list_role_policies(&format!("arn:aws:iam::{ACCOUNT_ID}:role/{role}"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
    }

    /// A document of exactly `size` non-whitespace characters, padded with whitespace.
    fn doc_of_size(size: usize) -> String {
        let base = r#"{"Version":"2012-10-17","Statement":[],"Pad":""}"#;
        let pad = "x".repeat(size - base.len());
        let doc =
            format!("{{ \"Version\": \"2012-10-17\",\n  \"Statement\": [], \"Pad\": \"{pad}\" }}");
        assert_eq!(policy_size(&doc), size);
        doc
    }

    #[tokio::test]
    async fn inline_policy_budget_counts_all_policies_without_whitespace() {
        let w = FakeWorld::standard();
        let role = slr(INSTANCE_BETA);
        let existing = policy_size(EXISTING_POLICY_DOCUMENT);
        let room = INLINE_POLICY_BUDGET - existing;

        // Exactly at the budget is fine (whitespace is free).
        w.put_role_policy(&role, "Ours", &doc_of_size(room))
            .await
            .unwrap();
        // Replacing our own policy does not double count it.
        w.put_role_policy(&role, "Ours", &doc_of_size(room))
            .await
            .unwrap();

        let before = w.snapshot();
        let err = w
            .put_role_policy(&role, "Ours", &doc_of_size(room + 1))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::QuotaExceeded);
        assert_eq!(err.code, "LimitExceeded");
        assert_eq!(
            err.message,
            format!("Maximum policy size of 10240 bytes exceeded for role {role}")
        );
        let err = w
            .put_role_policy(&role, "Another", &doc_of_size(60))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::QuotaExceeded);
        assert_eq!(w.snapshot(), before);
        // Others' policy untouched.
        assert_eq!(
            w.role_policies(&role)
                .unwrap()
                .get(EXISTING_POLICY_NAME)
                .map(String::as_str),
            Some(EXISTING_POLICY_DOCUMENT)
        );
    }

    #[tokio::test]
    async fn fail_nth_fails_without_applying_and_counts() {
        let w = FakeWorld::standard();
        let app = w.create_application(&create_req("crm", "t")).await.unwrap();
        let before = w.snapshot();

        w.fail_nth("create_association", 2, throttled());
        w.create_association(INSTANCE_ALPHA, &app.arn)
            .await
            .unwrap();
        let err = w
            .create_association(INSTANCE_BETA, &app.arn)
            .await
            .unwrap_err();
        assert_eq!(err, throttled());
        assert!(w
            .find_association(INSTANCE_BETA, &app.arn)
            .await
            .unwrap()
            .is_none());
        // One-shot: the retry goes through.
        w.create_association(INSTANCE_BETA, &app.arn).await.unwrap();
        assert_eq!(w.calls("create_association"), 3);
        assert_eq!(w.calls("delete_association"), 0);

        // "From now": counts before the injection do not matter.
        w.fail_nth("create_application", 1, server_error());
        let err = w
            .create_application(&create_req("crm2", "u"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::ServerError);
        assert!(w.find_application("crm2").await.unwrap().is_none());

        assert_eq!(
            w.call_log(),
            vec![
                "create_application",
                "create_association",
                "create_association",
                "find_association",
                "create_association",
                "create_application",
                "find_application",
            ]
        );
        assert_ne!(w.snapshot(), before);
    }

    #[tokio::test]
    async fn apply_then_fail_applies_the_effect() {
        let w = FakeWorld::standard();
        let role = slr(INSTANCE_GAMMA);
        let doc = r#"{"Version":"2012-10-17","Statement":[]}"#;
        w.apply_then_fail("put_role_policy", 1, timed_out());
        let err = w.put_role_policy(&role, "Ours", doc).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Timeout);
        assert_eq!(
            w.get_role_policy(&role, "Ours").await.unwrap().as_deref(),
            Some(doc)
        );

        // A call that fails on its own returns its own error (nothing applied).
        w.apply_then_fail("delete_application", 1, timed_out());
        let err = w.delete_application("missing").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);

        // A dropped create_application response: the replay with the same token recovers it.
        w.apply_then_fail("create_application", 1, timed_out());
        let req = create_req("crm", "t");
        assert!(w.create_application(&req).await.is_err());
        let replay = w.create_application(&req).await.unwrap();
        assert_eq!(
            w.find_application("crm").await.unwrap().map(|a| a.id),
            Some(replay.id)
        );
    }

    #[tokio::test]
    async fn fail_always_until_cleared() {
        let w = FakeWorld::standard();
        w.fail_always("list_role_policies", access_denied());
        let role = slr(INSTANCE_ALPHA);
        for _ in 0..3 {
            let err = w.list_role_policies(&role).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::Denied);
        }
        w.fail_nth("describe_instance", 5, throttled());
        w.clear_faults();
        assert!(w.list_role_policies(&role).await.is_ok());
        for _ in 0..6 {
            w.describe_instance(INSTANCE_ALPHA).await.unwrap();
        }
        assert_eq!(w.calls("list_role_policies"), 4);
        assert_eq!(w.calls("describe_instance"), 6);
    }

    #[test]
    #[should_panic(expected = "unknown operation")]
    fn unknown_op_is_rejected() {
        FakeWorld::new().fail_nth("create_assocation", 1, throttled());
    }

    #[tokio::test]
    async fn snapshot_equality_after_undo() {
        let w = FakeWorld::standard();
        let before = w.snapshot();
        assert_eq!(before.roles.len(), 4);
        assert!(before.applications.is_empty());

        let app = w.create_application(&create_req("crm", "t")).await.unwrap();
        let assoc = w
            .create_association(INSTANCE_ALPHA, &app.arn)
            .await
            .unwrap();
        let role = slr(INSTANCE_ALPHA);
        w.put_role_policy(&role, "Ours", r#"{"Version":"2012-10-17","Statement":[]}"#)
            .await
            .unwrap();
        w.set_profile_applications(INSTANCE_ALPHA, PROFILE_ALPHA_2, &[grant("crm")])
            .await
            .unwrap();

        let during = w.snapshot();
        assert_ne!(during, before);
        assert!(during
            .associations
            .contains(&(INSTANCE_ALPHA.to_string(), "crm".to_string())));
        assert_eq!(
            during
                .applications
                .get("crm")
                .and_then(|t| t.get("onboard:saga"))
                .map(String::as_str),
            Some("t")
        );

        w.set_profile_applications(INSTANCE_ALPHA, PROFILE_ALPHA_2, &[])
            .await
            .unwrap();
        w.delete_role_policy(&role, "Ours").await.unwrap();
        w.delete_association(INSTANCE_ALPHA, &assoc.id)
            .await
            .unwrap();
        w.delete_application(&app.arn).await.unwrap();
        assert_eq!(w.snapshot(), before);

        // Rewriting a policy with different whitespace / key order is the same world.
        w.put_role_policy(
            &role,
            EXISTING_POLICY_NAME,
            &serde_json::from_str::<Value>(EXISTING_POLICY_DOCUMENT)
                .unwrap()
                .to_string(),
        )
        .await
        .unwrap();
        assert_eq!(w.snapshot(), before);

        // A re-created app gets a fresh id but the snapshot does not see ids.
        let again = w.create_application(&create_req("crm", "t")).await.unwrap();
        assert_ne!(again.id, app.id);
        w.delete_application(&again.id).await.unwrap();
        assert_eq!(w.snapshot(), before);

        // Seeded state shows up too.
        w.seed_application("theirs", "Theirs", BTreeMap::new());
        assert_ne!(w.snapshot(), before);
    }
}
