//! Shared harness for the cross-crate integration tests: the onboard saga on the real engine,
//! the real AWS SDK clients (`onboard_aws::onboard_ports`) talking HTTP to an in-process
//! sandbox (AppIntegrations, Connect, IAM), and the saga log in `DynamoSagaStore` on moto.
//!
//! Every harness gets its own sandbox (its own loopback port) and its own DynamoDB table, so
//! tests run in parallel without sharing anything but the moto process.
//!
//! Assertions are on the sandbox's state dump: [`strip_onboarding`] removes exactly what one
//! onboarding must have added (and fails when anything is missing or duplicated), so
//! "stripped == pristine" means "exactly those changes and nothing else".
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a broken fixture should fail loudly

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use onboard_aws::{ConnectRate, DynamoSagaStore};
use onboard_core::clock::{Clock, SystemClock, SystemRandom};
use onboard_core::engine::{Engine, EngineConfig, RunOutcome};
use onboard_core::locks::ResourceLocks;
use onboard_core::onboard::{self, OnboardConfig, OnboardPorts};
use onboard_core::record::{Millis, SagaRecord, SagaStatus};
use onboard_core::saga::{RetryPolicy, SagaDef, StepDef};
use onboard_core::spec::parse_spec;
use onboard_core::store::SagaStore;
pub use onboard_core::testkit::CrashingStore;
use onboard_sandbox::{
    ApplicationSeed, FaultError, FaultMode, FaultSpec, GrantSeed, InstanceSeed, RunningSandbox,
    Sandbox, SandboxConfig, SandboxHandle, SecurityProfileSeed, SeedConfig, Service,
    ThrottleConfig,
};
use serde_json::{json, Value};

pub use onboard_core::policy::POLICY_NAME;

pub mod chaos;
pub mod lambda_runtime;

/// The account of the test seed.
pub const ACCOUNT: &str = "111122223333";
/// How many SLR instances the seed has.
pub const SLR_INSTANCES: usize = 5;
/// An instance created before October 2018: no service-linked role.
pub const LEGACY_INSTANCE: &str = "10000000-0000-4000-8000-000000000099";
/// The namespace of an application that exists before every test (owned by another team).
pub const FOREIGN_NAMESPACE: &str = "legacy-crm.example.com";
/// The inline policy every SLR already carries, which onboarding must never touch.
pub const EXISTING_POLICY: &str = "AmazonConnect-KinesisStreams";
/// The namespace [`spec`] derives from its access URL.
pub const NAMESPACE: &str = "crm.example.com/agent";

/// SLR instance `n` (1-based).
pub fn instance(n: usize) -> String {
    format!("10000000-0000-4000-8000-{n:012}")
}

/// The first `n` SLR instances.
pub fn instances(n: usize) -> Vec<String> {
    (1..=n).map(instance).collect()
}

/// Security profile `p` (1 = Agent, 2 = Supervisor) of SLR instance `n`.
pub fn profile(n: usize, p: usize) -> String {
    format!("20000000-0000-4000-8000-{n:06}{p:06}")
}

/// The SLR role name of instance `n`.
pub fn slr_role(n: usize) -> String {
    format!("AWSServiceRoleForAmazonConnect_{}", slr_suffix(n))
}

fn slr_suffix(n: usize) -> String {
    format!("TestSlrSuffix{n:07}")
}

/// Five SLR instances (each SLR with an unrelated inline policy, each Agent profile with an
/// existing grant of a foreign application), one instance without an SLR, and one foreign
/// application associated with instances 1 and 2.
pub fn seed() -> SeedConfig {
    let kinesis = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["kinesis:PutRecord", "kinesis:PutRecords"],
        "Resource": format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/ctr-stream")}]});
    let profiles = |n: usize| {
        vec![
            SecurityProfileSeed {
                id: profile(n, 1),
                name: "Agent".to_owned(),
                description: Some("Agents taking contacts".to_owned()),
                permissions: vec!["BasicAgentAccess".to_owned()],
                applications: vec![GrantSeed {
                    namespace: FOREIGN_NAMESPACE.to_owned(),
                    permissions: vec!["ACCESS".to_owned()],
                }],
            },
            SecurityProfileSeed {
                id: profile(n, 2),
                name: "CallCenterManager".to_owned(),
                description: None,
                permissions: vec!["BasicAgentAccess".to_owned()],
                applications: Vec::new(),
            },
        ]
    };
    let mut instances: Vec<InstanceSeed> = (1..=SLR_INSTANCES)
        .map(|n| InstanceSeed {
            id: instance(n),
            alias: format!("test-{n}"),
            access_url: None,
            slr: true,
            slr_suffix: Some(slr_suffix(n)),
            service_role: None,
            slr_inline_policies: BTreeMap::from([(EXISTING_POLICY.to_owned(), kinesis.clone())]),
            status: None,
            security_profiles: profiles(n),
        })
        .collect();
    instances.push(InstanceSeed {
        id: LEGACY_INSTANCE.to_owned(),
        alias: "legacy-2017".to_owned(),
        access_url: Some("https://legacy-2017.awsapps.com/connect/".to_owned()),
        slr: false,
        slr_suffix: None,
        service_role: None,
        slr_inline_policies: BTreeMap::new(),
        status: None,
        security_profiles: Vec::new(),
    });
    SeedConfig {
        instances,
        applications: vec![ApplicationSeed {
            id: None,
            name: "Legacy CRM".to_owned(),
            namespace: FOREIGN_NAMESPACE.to_owned(),
            access_url: "https://legacy-crm.example.com".to_owned(),
            tags: BTreeMap::from([("owner".to_owned(), "console".to_owned())]),
            permissions: vec!["User.Details.View".to_owned()],
            associated_instances: vec![instance(1), instance(2)],
        }],
        ..SeedConfig::empty(ACCOUNT, "us-east-1")
    }
}

/// An onboarding spec for "Acme CRM" (namespace [`NAMESPACE`]) on `instances`, granting the
/// Agent profile of each.
pub fn spec(instances: &[String]) -> Value {
    spec_for("Acme CRM", "https://crm.example.com/agent", instances)
}

/// A spec for another application; the namespace is derived from `access_url`.
pub fn spec_for(name: &str, access_url: &str, instances: &[String]) -> Value {
    let grants: Vec<Value> = instances
        .iter()
        .map(|i| {
            let n = instance_number(i).expect("an SLR instance of the seed");
            json!({"instance": i, "profiles": [profile(n, 1)]})
        })
        .collect();
    json!({
        "displayName": name,
        "accessUrl": access_url,
        "approvedOrigins": ["https://login.example.com"],
        "permissions": ["User.Details.View", "Contact.Details.View"],
        "tags": {"team": "contact-center"},
        "instances": instances,
        "securityProfiles": grants,
        "requester": {"source": "PORTAL", "principal": "alice@example.com"}
    })
}

/// `n` for [`instance`]`(n)`.
pub fn instance_number(id: &str) -> Option<usize> {
    (1..=SLR_INSTANCES).find(|n| instance(*n) == id)
}

/// The (instance, profile) pairs a spec grants.
pub fn spec_grants(spec: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for g in spec["securityProfiles"].as_array().into_iter().flatten() {
        let inst = g["instance"].as_str().unwrap_or_default().to_string();
        for p in g["profiles"].as_array().into_iter().flatten() {
            out.push((inst.clone(), p.as_str().unwrap_or_default().to_string()));
        }
    }
    out
}

/// The instances a spec names.
pub fn spec_instances(spec: &Value) -> Vec<String> {
    spec["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Short backoff for tests: the same shape as production's, in milliseconds.
pub fn test_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        budget: Duration::from_secs(60),
    }
}

/// How a harness is built.
#[derive(Clone)]
pub struct Options {
    pub seed: SeedConfig,
    pub throttle: ThrottleConfig,
    pub connect_rate: ConnectRate,
    /// The SDK's own retries; disabled by default so injected faults reach the product code.
    pub sdk_retry: RetryConfig,
    pub step_retry: RetryPolicy,
    pub instance_concurrency: usize,
    pub lease_ttl: Duration,
    /// The engine's and the locks' clock; [`SkippingClock`] makes backoff cost no wall time.
    pub clock: Arc<dyn Clock>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: seed(),
            throttle: ThrottleConfig::unlimited(),
            connect_rate: rate(1000, 1000),
            sdk_retry: RetryConfig::disabled(),
            step_retry: test_retry(10),
            instance_concurrency: OnboardConfig::default().instance_concurrency,
            lease_ttl: EngineConfig::default().lease_ttl,
            clock: Arc::new(SystemClock),
        }
    }
}

/// A client-side Connect rate.
pub fn rate(per_second: u32, burst: u32) -> ConnectRate {
    ConnectRate {
        per_second: NonZeroU32::new(per_second).expect("non-zero rate"),
        burst: NonZeroU32::new(burst).expect("non-zero burst"),
    }
}

fn moto_endpoint() -> String {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "MOTO_ENDPOINT is not set: these tests keep the saga log in DynamoDB on moto; run \
             them via scripts/test.sh (which starts moto and exports MOTO_ENDPOINT), or start \
             `.venv/bin/moto_server -H 127.0.0.1 -p PORT` and export MOTO_ENDPOINT=http://127.0.0.1:PORT"
        ),
    }
}

/// One shared SDK configuration pointed at `endpoint` with fake credentials: nothing from the
/// environment's AWS configuration can send a request to AWS.
pub async fn sdk_config(endpoint: &str, retry: RetryConfig) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .retry_config(retry)
        .load()
        .await
}

fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh DynamoDB table on moto and a store on it.
pub async fn new_store() -> Arc<DynamoSagaStore> {
    let moto = sdk_config(&moto_endpoint(), RetryConfig::standard()).await;
    let client = aws_sdk_dynamodb::Client::new(&moto);
    let table = unique("onboard-it");
    if let Err(e) = onboard_aws::create_table(&client, &table).await {
        panic!("creating table {table} on moto failed: {e}");
    }
    Arc::new(DynamoSagaStore::new(client, table))
}

/// The resource locks the onboard ports use: the saga store's lock items, as in production.
pub fn locks_of(store: &Arc<DynamoSagaStore>) -> Arc<dyn ResourceLocks> {
    store.clone()
}

/// A sandbox, the SDK clients on it, a saga store on moto and the onboard definition.
pub struct Harness {
    pub sandbox: RunningSandbox,
    pub sdk: SdkConfig,
    pub store: Arc<DynamoSagaStore>,
    pub ports: Arc<OnboardPorts>,
    pub def: Arc<SagaDef<OnboardPorts>>,
    pub engine_config: EngineConfig,
    pub clock: Arc<dyn Clock>,
}

impl Harness {
    pub async fn start() -> Self {
        Self::with(Options::default()).await
    }

    pub async fn with(o: Options) -> Self {
        let sandbox = Sandbox::start(SandboxConfig {
            seed: o.seed,
            throttle: o.throttle,
            ..SandboxConfig::default()
        })
        .await
        .expect("the sandbox starts");
        let sdk = sdk_config(&sandbox.endpoint(), o.sdk_retry).await;
        let store = new_store().await;
        let ports = Arc::new(onboard_aws::onboard_ports(
            &sdk,
            o.connect_rate,
            locks_of(&store),
            o.clock.clone(),
        ));
        let def = onboard::definition(&OnboardConfig {
            instance_concurrency: o.instance_concurrency,
        });
        Harness {
            sandbox,
            sdk,
            store,
            ports,
            def: Arc::new(with_retry(def, o.step_retry)),
            engine_config: EngineConfig {
                lease_ttl: o.lease_ttl,
                ..EngineConfig::default()
            },
            clock: o.clock,
        }
    }

    pub fn sandbox(&self) -> &SandboxHandle {
        self.sandbox.state()
    }

    pub fn dump(&self) -> Value {
        self.sandbox().dump()
    }

    /// An engine on the harness's store.
    pub fn engine(&self, owner: &str) -> Engine<OnboardPorts> {
        self.engine_on(self.store.clone(), owner)
    }

    /// An engine on another store (e.g. a crashing wrapper).
    pub fn engine_on(&self, store: Arc<dyn SagaStore>, owner: &str) -> Engine<OnboardPorts> {
        Engine::new(
            self.def.clone(),
            self.ports.clone(),
            store,
            self.clock.clone(),
            Arc::new(SystemRandom),
            owner,
        )
        .with_config(self.engine_config.clone())
    }

    /// A new saga record for `spec` (not yet stored).
    pub fn record_for(&self, spec: &Value) -> SagaRecord {
        let parsed = parse_spec(spec.to_string().as_bytes()).expect("the spec parses");
        let validated = parsed.validate().expect("the spec is valid");
        let new = onboard::new_saga(unique("sg"), &validated).expect("a new saga");
        self.def.new_record(new, self.clock.now())
    }

    /// Stores a new saga for `spec` in the harness's store; returns its id.
    pub async fn submit(&self, spec: &Value) -> String {
        self.submit_to(self.store.as_ref(), spec).await
    }

    pub async fn submit_to(&self, store: &dyn SagaStore, spec: &Value) -> String {
        let record = self.record_for(spec);
        let id = record.id.clone();
        store.create(&record).await.expect("the saga is stored");
        id
    }

    pub async fn record(&self, id: &str) -> SagaRecord {
        self.store
            .get(id)
            .await
            .expect("the store answers")
            .expect("the saga exists")
    }

    /// Submit `spec` and run it to its end with one engine; returns the final record.
    pub async fn onboard(&self, spec: &Value) -> SagaRecord {
        let id = self.submit(spec).await;
        let outcome = self.engine("w1").run(&id).await.expect("the engine runs");
        let rec = self.record(&id).await;
        assert!(
            matches!(outcome, RunOutcome::Finished(s) if s == rec.status),
            "{outcome:?} vs {}",
            rec.status
        );
        rec
    }

    /// Adds a fault rule on the sandbox.
    pub fn fault(&self, spec: FaultSpec) -> u64 {
        self.sandbox().add_fault(spec)
    }

    /// How often each fault rule fired.
    pub fn fired(&self) -> Vec<(String, u64)> {
        self.sandbox()
            .faults()
            .into_iter()
            .map(|r| (r.spec.operation.clone().unwrap_or_default(), r.fired))
            .collect()
    }

    /// How many calls of operation `op` the sandbox received (any outcome).
    pub fn calls_named(&self, op: &str) -> usize {
        self.sandbox()
            .calls()
            .iter()
            .filter(|c| c.operation == op)
            .count()
    }
}

/// `def` with `retry` as every step's action and undo policy.
pub fn with_retry<C: ?Sized + Send + Sync>(def: SagaDef<C>, retry: RetryPolicy) -> SagaDef<C> {
    SagaDef {
        kind: def.kind,
        steps: def
            .steps
            .into_iter()
            .map(|s| StepDef {
                retry,
                undo_retry: retry,
                ..s
            })
            .collect(),
        recovery: def.recovery,
    }
}

/// The service each operation belongs to.
pub fn service_of(op: &str) -> Service {
    match op {
        "CreateApplication"
        | "GetApplication"
        | "ListApplications"
        | "DeleteApplication"
        | "UpdateApplication"
        | "ListApplicationAssociations"
        | "TagResource"
        | "UntagResource" => Service::AppIntegrations,
        "GetRolePolicy" | "PutRolePolicy" | "DeleteRolePolicy" | "ListRolePolicies" => Service::Iam,
        _ => Service::Connect,
    }
}

/// A rule failing the `nth` call of `op` (counted from now) with `code`/`status`.
pub fn fail_nth(op: &str, nth: u64, code: &str, status: u16) -> FaultSpec {
    FaultSpec::fail_nth(service_of(op), op, nth, fault_error(code, status))
}

/// A rule failing every call of `op` with `code`/`status`.
pub fn fail_always(op: &str, code: &str, status: u16) -> FaultSpec {
    FaultSpec {
        nth: None,
        ..fail_nth(op, 0, code, status)
    }
}

/// A rule that performs the `nth` call of `op`, then answers with `error` (the service's 500
/// when `None`).
pub fn apply_then_drop(op: &str, nth: u64, error: Option<(&str, u16)>) -> FaultSpec {
    FaultSpec {
        error: error.map(|(c, s)| fault_error(c, s)),
        mode: Some(FaultMode::ApplyThenDrop),
        ..fail_nth(op, nth, "unused", 500)
    }
}

pub fn fault_error(code: &str, status: u16) -> FaultError {
    FaultError {
        code: code.to_string(),
        status,
        message: Some(format!("injected {code}")),
    }
}

/// The service's throttling answer for `op` (IAM uses 400 `Throttling`).
pub fn throttling_for(op: &str) -> (&'static str, u16) {
    match service_of(op) {
        Service::Iam => ("Throttling", 400),
        _ => ("ThrottlingException", 429),
    }
}

/// The service's 5xx answer for `op`.
pub fn server_error_for(op: &str) -> (&'static str, u16) {
    match service_of(op) {
        Service::Iam => ("ServiceFailure", 500),
        Service::AppIntegrations => ("InternalServiceError", 500),
        Service::Connect => ("InternalServiceException", 500),
    }
}

/// The service's access-denied answer for `op`.
pub fn denied_for(op: &str) -> (&'static str, u16) {
    match service_of(op) {
        Service::Iam => ("AccessDenied", 403),
        _ => ("AccessDeniedException", 403),
    }
}

/// What [`strip_onboarding`] found of one onboarded application.
#[derive(Debug, Clone)]
pub struct Onboarded {
    pub app_id: String,
    pub app_arn: String,
}

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut serde_json::Map<String, Value> {
    v.get_mut(key)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("the dump has no object {key}"))
}

/// Removes from `dump` exactly what onboarding `namespace` onto `instances` with `grants` must
/// have added — the application, one integration association (and its AppIntegrations
/// application association) per instance, one statement per SLR in [`POLICY_NAME`] (the policy
/// itself once empty), one `{namespace, [ACCESS]}` entry per granted profile — panicking when
/// any of it is missing or duplicated.
pub fn strip_onboarding(
    dump: &mut Value,
    namespace: &str,
    instances: &[String],
    grants: &[(String, String)],
) -> Onboarded {
    strip_parts(dump, namespace, instances, instances, grants)
}

/// Like [`strip_onboarding`] for a partly onboarded application: associations with
/// `assoc_instances`, statements on the SLRs of `slr_instances`, entries in `grants`.
pub fn strip_parts(
    dump: &mut Value,
    namespace: &str,
    assoc_instances: &[String],
    slr_instances: &[String],
    grants: &[(String, String)],
) -> Onboarded {
    let apps = obj_mut(dump, "applications");
    let ours: Vec<String> = apps
        .iter()
        .filter(|(_, a)| a["namespace"] == namespace)
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(
        ours.len(),
        1,
        "exactly one application {namespace}: {ours:?}"
    );
    let app = apps.remove(&ours[0]).expect("present");
    let app_id = app["id"].as_str().expect("an id").to_string();
    let app_arn = app["arn"].as_str().expect("an arn").to_string();
    assert!(
        app["tags"]
            .get(onboard::SAGA_TAG)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty()),
        "the application carries the saga tag: {app}"
    );

    let assocs = obj_mut(dump, "integration_associations");
    let ours: Vec<(String, String)> = assocs
        .iter()
        .filter(|(_, a)| a["integration_arn"] == app_arn.as_str())
        .map(|(k, a)| {
            (
                k.clone(),
                a["instance_id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut got: Vec<String> = ours.iter().map(|(_, i)| i.clone()).collect();
    got.sort();
    let mut want = assoc_instances.to_vec();
    want.sort();
    assert_eq!(got, want, "one association per instance for {namespace}");
    for (k, _) in &ours {
        assocs.remove(k);
    }
    let app_assocs = obj_mut(dump, "application_associations");
    let ours: Vec<String> = app_assocs
        .iter()
        .filter(|(_, a)| a["application_arn"] == app_arn.as_str())
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(
        ours.len(),
        assoc_instances.len(),
        "one application association per instance"
    );
    for k in &ours {
        app_assocs.remove(k);
    }

    let sid = onboard_core::policy::statement_sid(&app_id);
    for inst in slr_instances {
        let role_arn = dump["instances"][inst.as_str()]["service_role"]
            .as_str()
            .unwrap_or_else(|| panic!("instance {inst} has a service role"))
            .to_string();
        let role = role_arn.rsplit('/').next().unwrap_or_default().to_string();
        let policies = obj_mut(
            dump.get_mut("roles")
                .and_then(|r| r.get_mut(role.as_str()))
                .unwrap_or_else(|| panic!("role {role} in the dump")),
            "inline_policies",
        );
        let text = policies
            .get(POLICY_NAME)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{role} has the inline policy {POLICY_NAME}"))
            .to_string();
        let mut doc: Value = serde_json::from_str(&text).expect("a JSON policy");
        let statements = doc["Statement"].as_array_mut().expect("a statement list");
        let before = statements.len();
        statements.retain(|s| s["Sid"] != sid.as_str());
        assert_eq!(
            before - statements.len(),
            1,
            "exactly one statement {sid} on {role}: {text}"
        );
        if statements.is_empty() {
            policies.remove(POLICY_NAME);
        } else {
            policies.insert(POLICY_NAME.to_string(), Value::String(doc.to_string()));
        }
    }

    for (inst, prof) in grants {
        let list = dump["instances"][inst.as_str()]["security_profiles"][prof.as_str()]
            .get_mut("applications")
            .and_then(Value::as_array_mut)
            .unwrap_or_else(|| panic!("profile {prof} of {inst} in the dump"));
        let before = list.len();
        let entry = list
            .iter()
            .find(|g| g["Namespace"] == namespace)
            .cloned()
            .unwrap_or_else(|| panic!("{namespace} granted in {prof}"));
        assert_eq!(
            entry["ApplicationPermissions"],
            json!(["ACCESS"]),
            "{entry}"
        );
        list.retain(|g| g["Namespace"] != namespace);
        assert_eq!(before - list.len(), 1, "exactly one entry in {prof}");
    }
    Onboarded { app_id, app_arn }
}

/// Asserts `after` is `pristine` plus exactly one onboarding of `spec`.
pub fn assert_onboarded(pristine: &Value, after: &Value, spec: &Value) -> Onboarded {
    let ns = spec_namespace(spec);
    let mut stripped = after.clone();
    let app = strip_onboarding(
        &mut stripped,
        &ns,
        &spec_instances(spec),
        &spec_grants(spec),
    );
    assert_same(pristine, &stripped, "nothing but the onboarding changed");
    app
}

/// The namespace a spec will create.
pub fn spec_namespace(spec: &Value) -> String {
    parse_spec(spec.to_string().as_bytes())
        .expect("the spec parses")
        .effective_namespace()
        .expect("a namespace")
}

/// `assert_eq!` on two dumps, printing the paths of the values that differ.
pub fn assert_same(expected: &Value, actual: &Value, what: &str) {
    if expected == actual {
        return;
    }
    let mut diffs = Vec::new();
    diff("$", expected, actual, &mut diffs);
    panic!("{what}: the sandbox state differs\n{}", diffs.join("\n"));
}

fn diff(path: &str, e: &Value, a: &Value, out: &mut Vec<String>) {
    match (e, a) {
        (Value::Object(em), Value::Object(am)) => {
            let keys: std::collections::BTreeSet<&String> = em.keys().chain(am.keys()).collect();
            for k in keys {
                let null = Value::Null;
                let (ev, av) = (em.get(k).unwrap_or(&null), am.get(k).unwrap_or(&null));
                if ev != av {
                    diff(&format!("{path}.{k}"), ev, av, out);
                }
            }
        }
        (Value::Array(ev), Value::Array(av)) if ev.len() == av.len() => {
            for (i, (x, y)) in ev.iter().zip(av).enumerate() {
                if x != y {
                    diff(&format!("{path}[{i}]"), x, y, out);
                }
            }
        }
        _ => out.push(format!("  {path}:\n    expected {e}\n    actual   {a}")),
    }
}

/// Wall-clock time plus whatever the engine "slept": backoff advances it a hundred times faster
/// than it waits, so a test can run production's retry schedule (seconds to minutes) in
/// little wall time.
///
/// A sleep still waits a hundredth of itself (at most 20 ms): the clock is shared, and if a
/// saga polling for a lock could advance it for free, it would pass `LOCK_TTL` (30 s) in
/// microseconds and take the lock from a live holder between the holder's read and write,
/// a stall no real holder has (the chaos campaign found lost SLR statements and profile grants
/// this way, only when the machine was loaded).
#[derive(Debug, Default)]
pub struct SkippingClock {
    skipped: AtomicU64,
}

/// How much faster than real time a [`SkippingClock`] sleep passes.
const SKIP_RATIO: u32 = 100;
const MAX_REAL_SLEEP: Duration = Duration::from_millis(20);

#[async_trait]
impl Clock for SkippingClock {
    fn now(&self) -> Millis {
        SystemClock.now() + self.skipped.load(Ordering::SeqCst)
    }

    async fn sleep(&self, d: Duration) {
        let real = (d / SKIP_RATIO).min(MAX_REAL_SLEEP);
        tokio::time::sleep(real).await;
        self.skipped
            .fetch_add((d - real).as_millis() as u64, Ordering::SeqCst);
    }
}

impl SkippingClock {
    /// Jump ahead by `d` (e.g. past a lease) without waiting.
    pub fn skip(&self, d: Duration) {
        self.skipped
            .fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }
}

/// Runs `engine` on `id` until it finishes, waiting out another worker's lease.
pub async fn run_to_end(engine: &Engine<OnboardPorts>, id: &str) -> SagaStatus {
    for _ in 0..200 {
        match engine.run(id).await.expect("the engine runs") {
            RunOutcome::Finished(s) | RunOutcome::AlreadyFinished(s) => return s,
            RunOutcome::Busy { until, .. } => {
                let wait = until.saturating_sub(SystemClock.now()) + 10;
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
        }
    }
    panic!("saga {id} never finished");
}

/// The log lines of a saga that record a retry (`retry N after CODE: ...`).
pub fn retries(rec: &SagaRecord) -> Vec<String> {
    rec.log
        .iter()
        .filter_map(|l| l.detail.clone())
        .filter(|d| d.starts_with("retry"))
        .collect()
}

/// A compact view of the nodes' states, for assertion messages.
pub fn node_states(rec: &SagaRecord) -> Vec<String> {
    rec.nodes
        .iter()
        .map(|n| format!("{}={:?}", n.key(), n.state))
        .collect()
}

/// How a saga must end when one call of `op` was refused once (AccessDenied): an IAM write is
/// retried while IAM propagates ([`onboard_core::confirm`]), so the saga goes on and ends
/// SUCCEEDED; a refusal in the read-only first step (`read_only`) before any other node
/// started ends REFUSED, nothing having been done; any other ends `otherwise` (ROLLED_BACK,
/// or NEEDS_ATTENTION for a saga that recovers forward).
pub fn end_after_one_denial(
    rec: &SagaRecord,
    op: &str,
    read_only: &str,
    otherwise: SagaStatus,
) -> SagaStatus {
    use onboard_core::record::NodeState;
    if matches!(op, "PutRolePolicy" | "DeleteRolePolicy") {
        return SagaStatus::Succeeded;
    }
    let refused_by_read_only = rec
        .nodes
        .iter()
        .any(|n| n.step == read_only && n.state == NodeState::Failed);
    let others_started = rec
        .nodes
        .iter()
        .any(|n| n.step != read_only && (n.state != NodeState::Pending || n.started_at.is_some()));
    if refused_by_read_only && !others_started {
        SagaStatus::Refused
    } else {
        otherwise
    }
}
