//! A seeded chaos campaign (issue 15): real sagas of every kind, through the same use cases
//! and engines the worker runs (`Sagas::run`), with the real SDK clients against an in-process
//! sandbox and the real saga stores (redb, and DynamoDB on moto when `MOTO_ENDPOINT` is set),
//! under randomly scheduled faults:
//!
//! * sandbox faults on every emulated operation: throttling, 5xx, access denied, a request
//!   applied whose response is lost, and *contradicting answers* (NotFound from a delete or a
//!   read whose resource exists, Duplicate from a create that did not happen, IAM's
//!   NoSuchEntity for a policy that is there) — the answers eventual consistency and retried
//!   calls give for real;
//! * a worker dying before or right after a saga-log write, and a worker that stalls right after
//!   a write, is taken over once its lease expired, then wakes and tries to go on;
//! * two deliveries of one saga at once, and two sagas at once on shared instances and SLRs;
//! * faults during compensation and during re-drive (the schedule does not care which phase
//!   the Nth call falls in).
//!
//! After every trial (faults cleared, stuck sagas re-driven) the world must be exactly what the
//! records say: every application, association, SLR statement and profile grant belongs to a
//! live application's recorded state or was there before (and is untouched); a live
//! application shows no drift; a saga that ended ROLLED_BACK or REFUSED left the world as it
//! found it; no saga is left unfinished.
//!
//! Time is a [`SkippingClock`]: backoff, lock waits and lease expiry cost no wall time, so a
//! campaign of ten thousand faults takes minutes. Each episode (a fresh sandbox and store, a
//! dozen trials) is seeded from the campaign seed and its number, so one episode can be
//! replayed alone (`--episode`); tokio's scheduling of concurrent branches is not seeded, so a
//! replay follows the same schedule but not always the same interleaving.

mod store;
mod world;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use onboard_core::engine::{EngineConfig, RunOutcome};
use onboard_core::idempotency::IdempotencyConfig;
use onboard_core::lifecycle::service::{EditRequest, Lifecycle, SagaSettings, Sagas};
use onboard_core::lifecycle::{current_state, drift, LifecyclePorts, ManagedApp};
use onboard_core::locks::{ResourceLocks, LOCK_TTL};
use onboard_core::onboard::{self, OnboardConfig, OnboardPorts};
use onboard_core::policy;
use onboard_core::record::{SagaRecord, SagaStatus};
use onboard_core::service::{NoQueue, Onboarding, RunAction, RunSagaMessage};
use onboard_core::spec::{parse_spec, ProfileGrant};
use onboard_core::store::SagaStore;
use onboard_core::testkit::FixedRandom;
use onboard_sandbox::{
    FaultMode, FaultSpec, RunningSandbox, Sandbox, SandboxConfig, Service, ThrottleConfig,
};
use serde_json::Value;

pub use store::{ChaosStore, WriteFault};
pub use world::Projection;

use crate::{
    fault_error, instance, profile, rate, sdk_config, seed, spec_for, SkippingClock,
    FOREIGN_NAMESPACE, SLR_INSTANCES,
};

/// Which saga store the episodes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreChoice {
    Redb,
    Dynamo,
    /// Alternate per episode.
    Both,
}

/// A campaign.
#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    /// Stop once this many faults fired.
    pub faults: u64,
    /// Or once this many sagas ran.
    pub sagas: Option<u64>,
    pub store: StoreChoice,
    pub trials_per_episode: u32,
    /// Run only this episode (a replay).
    pub episode: Option<u64>,
    /// Print one line per trial.
    pub verbose: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 1,
            faults: 300,
            sagas: None,
            store: StoreChoice::Both,
            trials_per_episode: 12,
            episode: None,
            verbose: false,
        }
    }
}

/// One broken promise.
#[derive(Debug, Clone)]
pub struct Violation {
    pub episode: u64,
    pub trial: u32,
    pub what: String,
    /// The trials of the episode up to this one: operation and faults.
    pub schedule: Vec<String>,
    pub replay: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "violation in episode {} trial {}: {}",
            self.episode, self.trial, self.what
        )?;
        writeln!(f, "  schedule:")?;
        for line in &self.schedule {
            writeln!(f, "    {line}")?;
        }
        write!(f, "  replay: {}", self.replay)
    }
}

/// What a campaign did and found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub episodes: u64,
    pub trials: u64,
    pub sagas: u64,
    pub faults: u64,
    pub violations: Vec<Violation>,
}

impl Report {
    /// The campaign's last line.
    pub fn summary(&self, seed: u64) -> String {
        format!(
            "chaos: {} sagas, {} faults, {} violations (seed {seed})",
            self.sagas,
            self.faults,
            self.violations.len()
        )
    }
}

/// Runs a campaign to its fault budget (or one episode).
pub async fn run(config: &Config) -> Report {
    let mut report = Report::default();
    let mut episode = config.episode.unwrap_or(0);
    loop {
        let kind = match config.store {
            StoreChoice::Both if episode % 2 == 1 && moto_available() => StoreChoice::Dynamo,
            StoreChoice::Both => StoreChoice::Redb,
            other => other,
        };
        let mut ep = Episode::start(config, episode, kind).await;
        ep.run(&mut report).await;
        ep.sandbox.shutdown().await;
        report.episodes += 1;
        episode += 1;
        if config.episode.is_some()
            || report.faults >= config.faults
            || config.sagas.is_some_and(|n| report.sagas >= n)
        {
            break;
        }
    }
    report
}

fn moto_available() -> bool {
    std::env::var("MOTO_ENDPOINT").is_ok_and(|v| !v.is_empty())
}

/// splitmix64: an episode's seed from the campaign's.
fn mix(seed: u64, episode: u64) -> u64 {
    let mut z = seed
        .wrapping_add(episode.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The applications the campaign onboards (namespace from the access URL).
const POOL: [(&str, &str); 3] = [
    ("Alpha CRM", "https://alpha.example.com/agent"),
    ("Beta Desk", "https://beta.example.com/panel"),
    ("Gamma Notes", "https://gamma.example.com/app"),
];

/// Operations each kind of saga calls, with the service each belongs to.
const OPS: [(&str, Service); 17] = [
    ("CreateApplication", Service::AppIntegrations),
    ("GetApplication", Service::AppIntegrations),
    ("ListApplications", Service::AppIntegrations),
    ("UpdateApplication", Service::AppIntegrations),
    ("DeleteApplication", Service::AppIntegrations),
    ("ListApplicationAssociations", Service::AppIntegrations),
    ("DescribeInstance", Service::Connect),
    ("CreateIntegrationAssociation", Service::Connect),
    ("ListIntegrationAssociations", Service::Connect),
    ("DeleteIntegrationAssociation", Service::Connect),
    ("ListSecurityProfiles", Service::Connect),
    ("ListSecurityProfileApplications", Service::Connect),
    ("UpdateSecurityProfile", Service::Connect),
    ("GetRolePolicy", Service::Iam),
    ("ListRolePolicies", Service::Iam),
    ("PutRolePolicy", Service::Iam),
    ("DeleteRolePolicy", Service::Iam),
];

fn mutating(op: &str) -> bool {
    ["Create", "Update", "Delete", "Put"]
        .iter()
        .any(|p| op.starts_with(p))
}

/// Reads that feed a read-modify-write of a shared document (an SLR policy, a profile's grant
/// list): answered from before the last write, they would make a saga put back an old
/// document over another saga's change.
fn lagging_read(op: &str) -> bool {
    matches!(
        op,
        "GetRolePolicy" | "ListRolePolicies" | "ListSecurityProfileApplications"
    )
}

/// The answer a service gives when it (wrongly, or not yet) believes `op`'s resource is
/// absent or already there.
fn contradiction(op: &str, service: Service) -> Option<(&'static str, u16)> {
    match service {
        Service::Iam if op == "GetRolePolicy" || op == "DeleteRolePolicy" => {
            Some(("NoSuchEntity", 404))
        }
        Service::Iam => None,
        _ if op.starts_with("Create") => Some(("DuplicateResourceException", 409)),
        _ => Some(("ResourceNotFoundException", 404)),
    }
}

/// One sandbox fault of a schedule.
fn sandbox_fault(rng: &mut fastrand::Rng) -> (String, FaultSpec) {
    let (op, service) = OPS[rng.usize(..OPS.len())];
    let nth = rng.u64(1..=4);
    let (label, code, mode) = loop {
        match rng.u8(0..6) {
            0 => {
                let e = match service {
                    Service::Iam => ("Throttling", 400),
                    _ => ("ThrottlingException", 429),
                };
                break ("throttle", Some(e), FaultMode::Fail);
            }
            1 => {
                let e = match service {
                    Service::Iam => ("ServiceFailure", 500),
                    Service::AppIntegrations => ("InternalServiceError", 500),
                    Service::Connect => ("InternalServiceException", 500),
                };
                break ("5xx", Some(e), FaultMode::Fail);
            }
            2 => {
                let e = match service {
                    Service::Iam => ("AccessDenied", 403),
                    _ => ("AccessDeniedException", 403),
                };
                break ("denied", Some(e), FaultMode::Fail);
            }
            3 if mutating(op) => break ("applied-response-lost", None, FaultMode::ApplyThenDrop),
            4 => {
                if let Some(e) = contradiction(op, service) {
                    break ("contradicting", Some(e), FaultMode::Fail);
                }
            }
            5 if lagging_read(op) => break ("stale", None, FaultMode::Stale),
            _ => {}
        }
    };
    let spec = FaultSpec {
        service: Some(service),
        operation: Some(op.to_string()),
        nth: Some(nth),
        probability: None,
        seed: None,
        latency_ms: None,
        error: code.map(|(c, s)| fault_error(c, s)),
        mode: Some(mode),
        times: Some(1),
    };
    let code = code.map_or(String::new(), |(c, _)| format!(" {c}"));
    (format!("{op}:{nth} {label}{code}"), spec)
}

/// What a trial asks of the product.
#[derive(Debug, Clone)]
enum Op {
    Onboard(usize, Vec<String>),
    Edit(String, Box<EditRequest>),
    Pause(String, String),
    Resume(String, String),
    Offboard(String),
    Adopt,
    Fix(String, Tamper),
}

/// A change made behind the product's back, for a drift fix to repair.
#[derive(Debug, Clone)]
enum Tamper {
    Association(String),
    Statement(String),
    Grant(String, String),
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Onboard(n, i) => write!(f, "onboard {} on {}", POOL[*n].0, short(i)),
            Op::Edit(app, req) => write!(
                f,
                "edit {app} {}",
                serde_json::to_string(req).unwrap_or_default()
            ),
            Op::Pause(app, i) => write!(f, "pause {app} on {}", short(std::slice::from_ref(i))),
            Op::Resume(app, i) => write!(f, "resume {app} on {}", short(std::slice::from_ref(i))),
            Op::Offboard(app) => write!(f, "offboard {app}"),
            Op::Adopt => write!(f, "adopt {FOREIGN_NAMESPACE}"),
            Op::Fix(app, t) => write!(f, "drift fix {app} after removing {t:?}"),
        }
    }
}

fn short(instances: &[String]) -> String {
    instances
        .iter()
        .map(|i| format!("i{}", crate::instance_number(i).unwrap_or(0)))
        .collect::<Vec<_>>()
        .join(",")
}

/// How the trial's saga is delivered to workers.
#[derive(Debug, Clone, Copy)]
enum Delivery {
    Once,
    /// Two workers get the same message at once.
    Twice,
    Write(u64, WriteFault),
}

struct Episode {
    number: u64,
    campaign_seed: u64,
    verbose: bool,
    trials: u32,
    sandbox: RunningSandbox,
    store: Arc<dyn SagaStore>,
    aws: Arc<OnboardPorts>,
    clock: Arc<SkippingClock>,
    onboarding: Onboarding,
    lifecycle: Lifecycle,
    rng: fastrand::Rng,
    pristine: Projection,
    /// Root saga ids of every application a trial created (onboard or adopt).
    roots: Vec<String>,
    schedule: Vec<String>,
    ids: u64,
    store_kind: StoreChoice,
    /// This trial's tamperings: the fix saga that should repair it (none when the product
    /// refused to start one), the application, and what the tampering removed.
    tampers: Vec<(Option<String>, String, Projection)>,
    /// Every grant any application's state held at the end of an earlier trial.
    held: BTreeSet<String>,
}

impl Episode {
    async fn start(config: &Config, number: u64, kind: StoreChoice) -> Self {
        let sandbox = Sandbox::start(SandboxConfig {
            seed: seed(),
            throttle: ThrottleConfig::unlimited(),
            rng_seed: mix(config.seed, number),
            ..SandboxConfig::default()
        })
        .await
        .expect("the sandbox starts");
        let sdk = sdk_config(&sandbox.endpoint(), RetryConfig::disabled()).await;
        let clock = Arc::new(SkippingClock::default());
        let (store, locks): (Arc<dyn SagaStore>, Arc<dyn ResourceLocks>) = match kind {
            StoreChoice::Dynamo => {
                let s = crate::new_store().await;
                (s.clone(), s)
            }
            _ => {
                let s = Arc::new(
                    onboard_embedded::RedbSagaStore::in_memory().expect("an in-memory redb"),
                );
                (s.clone(), s)
            }
        };
        let aws = Arc::new(onboard_aws::onboard_ports(
            &sdk,
            rate(10_000, 10_000),
            locks,
            clock.clone(),
        ));
        let onboarding = Onboarding {
            store: store.clone(),
            clock: clock.clone(),
            queue: Arc::new(NoQueue),
            definition: Arc::new(onboard::definition(&OnboardConfig::default())),
            idempotency: IdempotencyConfig::default(),
        };
        let lifecycle = onboarding.lifecycle();
        let pristine = Projection::of(&sandbox.state().dump());
        Episode {
            number,
            campaign_seed: config.seed,
            verbose: config.verbose,
            trials: config.trials_per_episode,
            sandbox,
            store,
            aws,
            clock,
            onboarding,
            lifecycle,
            rng: fastrand::Rng::with_seed(mix(config.seed, number)),
            pristine,
            roots: Vec::new(),
            schedule: Vec::new(),
            ids: 0,
            store_kind: kind,
            tampers: Vec::new(),
            held: BTreeSet::new(),
        }
    }

    fn new_id(&mut self, prefix: &str) -> String {
        self.ids += 1;
        format!("{prefix}-e{}-{}", self.number, self.ids)
    }

    fn ports(&self) -> LifecyclePorts {
        LifecyclePorts {
            aws: self.aws.clone(),
            store: self.store.clone(),
        }
    }

    async fn record(&self, id: &str) -> Option<SagaRecord> {
        self.store.get(id).await.ok().flatten()
    }

    /// Every application's root record and state, and which are live.
    async fn applications(&self) -> Vec<(String, SagaRecord, Option<ManagedApp>)> {
        let mut out = Vec::new();
        for id in &self.roots {
            if let Some(root) = self.record(id).await {
                let state = if root.status == SagaStatus::Succeeded {
                    // An offboarded application's state is kept (flagged) on its root.
                    current_state(&root).ok().or_else(|| root.managed.clone())
                } else {
                    None
                };
                out.push((id.clone(), root, state));
            }
        }
        out
    }

    async fn live(&self) -> Vec<(String, ManagedApp)> {
        self.applications()
            .await
            .into_iter()
            .filter_map(|(id, _, s)| s.filter(|s| !s.offboarded).map(|s| (id, s)))
            .collect()
    }

    fn dump(&self) -> Value {
        self.sandbox.state().dump()
    }

    async fn run(&mut self, report: &mut Report) {
        for trial in 1..=self.trials {
            let found = self.trial(trial, report).await;
            report.trials += 1;
            // Later trials would only repeat a broken world: one episode, one finding.
            let stop = !found.is_empty();
            for what in found {
                report.violations.push(Violation {
                    episode: self.number,
                    trial,
                    what,
                    schedule: self.schedule.clone(),
                    replay: format!(
                        "scripts/chaos.sh --seed {} --episode {} --store {}",
                        self.campaign_seed,
                        self.number,
                        match self.store_kind {
                            StoreChoice::Dynamo => "dynamodb",
                            _ => "redb",
                        }
                    ),
                });
            }
            if stop {
                return;
            }
        }
    }

    async fn pick(&mut self) -> Option<Op> {
        let live = self.live().await;
        let live_ns: BTreeSet<String> = live.iter().map(|(_, s)| s.namespace.clone()).collect();
        let mut choices: Vec<Op> = Vec::new();
        for (n, (name, url)) in POOL.iter().enumerate() {
            let ns = namespace_of(name, url);
            if !live_ns.contains(&ns) {
                let k = self.rng.usize(1..=3);
                let mut all: Vec<usize> = (1..=SLR_INSTANCES).collect();
                self.rng.shuffle(&mut all);
                let mut chosen: Vec<usize> = all.into_iter().take(k).collect();
                chosen.sort_unstable();
                let instances: Vec<String> = chosen.into_iter().map(instance).collect();
                choices.push(Op::Onboard(n, instances.clone()));
                choices.push(Op::Onboard(n, instances));
            }
        }
        let foreign_exists = self.dump()["applications"]
            .as_object()
            .is_some_and(|m| m.values().any(|a| a["namespace"] == FOREIGN_NAMESPACE));
        if foreign_exists && !live_ns.contains(FOREIGN_NAMESPACE) {
            choices.push(Op::Adopt);
        }
        for (id, state) in &live {
            choices.push(Op::Edit(id.clone(), Box::new(self.edit_for(state))));
            let active: Vec<String> = state
                .instances
                .iter()
                .filter(|i| state.is_active(i))
                .cloned()
                .collect();
            if let Some(i) = pick_one(&mut self.rng, &active) {
                choices.push(Op::Pause(id.clone(), i.clone()));
                let tamper = match self.rng.u8(0..3) {
                    0 => Tamper::Association(i.clone()),
                    1 if state.slr_statements => Tamper::Statement(i.clone()),
                    _ => match pick_one(
                        &mut self.rng,
                        &state.profiles_on(&i).into_iter().collect::<Vec<_>>(),
                    ) {
                        Some(p) => Tamper::Grant(i.clone(), p),
                        None => Tamper::Association(i.clone()),
                    },
                };
                choices.push(Op::Fix(id.clone(), tamper.clone()));
                choices.push(Op::Fix(id.clone(), tamper));
            }
            let paused: Vec<String> = state.paused.iter().cloned().collect();
            if let Some(i) = pick_one(&mut self.rng, &paused) {
                choices.push(Op::Resume(id.clone(), i.clone()));
                choices.push(Op::Resume(id.clone(), i));
            }
            choices.push(Op::Offboard(id.clone()));
        }
        pick_one(&mut self.rng, &choices)
    }

    fn edit_for(&mut self, state: &ManagedApp) -> EditRequest {
        let mut req = EditRequest::default();
        match self.rng.u8(0..3) {
            0 => req.display_name = Some(format!("Renamed {}", self.rng.u16(..))),
            1 => {
                let mut set: BTreeSet<String> = state.instances.clone();
                let i = instance(self.rng.usize(1..=SLR_INSTANCES));
                if set.contains(&i) && set.len() > 1 {
                    set.remove(&i);
                } else {
                    set.insert(i);
                }
                req.instances = Some(set.into_iter().collect());
            }
            _ => {
                // Grant the Supervisor profile too (or take it away) on one instance.
                let grants: Vec<ProfileGrant> = state
                    .instances
                    .iter()
                    .map(|i| {
                        let n = crate::instance_number(i).unwrap_or(1);
                        let mut profiles: Vec<String> = state
                            .profiles
                            .get(i)
                            .cloned()
                            .unwrap_or_default()
                            .into_iter()
                            .collect();
                        let sup = profile(n, 2);
                        if self.rng.bool() {
                            if let Some(pos) = profiles.iter().position(|p| *p == sup) {
                                profiles.remove(pos);
                            } else {
                                profiles.push(sup);
                            }
                        }
                        ProfileGrant {
                            instance: i.clone(),
                            profiles,
                        }
                    })
                    .filter(|g| !g.profiles.is_empty())
                    .collect();
                req.security_profiles = Some(grants);
            }
        }
        req
    }

    /// Change the world behind the product's back (no faults are active).
    async fn tamper(&self, app: &ManagedApp, t: &Tamper) -> Result<(), String> {
        let aws = &self.aws;
        match t {
            Tamper::Association(i) => {
                if let Some(a) = aws
                    .connect
                    .find_association(i, &app.app.arn)
                    .await
                    .map_err(|e| e.message)?
                {
                    aws.connect
                        .delete_association(i, &a.id)
                        .await
                        .map_err(|e| e.message)?;
                }
            }
            Tamper::Statement(i) => {
                let roles = world::roles(&self.dump());
                let role = roles.get(i).ok_or("no role")?;
                if let Some(doc) = aws
                    .iam
                    .get_role_policy(role, policy::POLICY_NAME)
                    .await
                    .map_err(|e| e.message)?
                {
                    match policy::without_statement(&doc, &policy::statement_sid(&app.app.id))
                        .map_err(|e| e.message)?
                    {
                        Some(next) => aws
                            .iam
                            .put_role_policy(role, policy::POLICY_NAME, &next)
                            .await
                            .map_err(|e| e.message)?,
                        None => aws
                            .iam
                            .delete_role_policy(role, policy::POLICY_NAME)
                            .await
                            .map_err(|e| e.message)?,
                    }
                }
            }
            Tamper::Grant(i, p) => {
                let apps = aws
                    .connect
                    .profile_applications(i, p)
                    .await
                    .map_err(|e| e.message)?;
                let rest: Vec<_> = apps
                    .into_iter()
                    .filter(|a| a.namespace != app.namespace)
                    .collect();
                aws.connect
                    .set_profile_applications(i, p, &rest)
                    .await
                    .map_err(|e| e.message)?;
            }
        }
        Ok(())
    }

    /// Start the saga for `op`; `None` when the product (rightly) refused the request.
    async fn start_op(&mut self, op: &Op) -> Result<Option<(String, Option<String>)>, String> {
        let who = "chaos@example.com";
        match op {
            Op::Onboard(n, instances) => {
                let (name, url) = POOL[*n];
                let body = spec_for(name, url, instances).to_string();
                let spec = parse_spec(body.as_bytes()).map_err(|e| e.to_string())?;
                let id = self.new_id("sg");
                match self.onboarding.submit(&spec, None, || id).await {
                    Ok(a) => Ok(Some((a.saga_id.clone(), Some(a.saga_id)))),
                    Err(_) => Ok(None),
                }
            }
            Op::Adopt => {
                let id = self.new_id("ad");
                match self.lifecycle.adopt(FOREIGN_NAMESPACE, who, None, id).await {
                    Ok(s) => Ok(Some((s.saga_id.clone(), Some(s.saga_id)))),
                    Err(_) => Ok(None),
                }
            }
            Op::Edit(app, req) => {
                let id = self.new_id("ed");
                Ok(self
                    .lifecycle
                    .edit(app, req, who, None, id)
                    .await
                    .ok()
                    .map(|s| (s.saga_id, None)))
            }
            Op::Pause(app, i) => {
                let id = self.new_id("pa");
                Ok(self
                    .lifecycle
                    .pause(app, i, who, None, id)
                    .await
                    .ok()
                    .map(|s| (s.saga_id, None)))
            }
            Op::Resume(app, i) => {
                let id = self.new_id("re");
                Ok(self
                    .lifecycle
                    .resume(app, i, who, None, id)
                    .await
                    .ok()
                    .map(|s| (s.saga_id, None)))
            }
            Op::Offboard(app) => {
                let id = self.new_id("of");
                Ok(self
                    .lifecycle
                    .offboard(app, who, None, id)
                    .await
                    .ok()
                    .map(|s| (s.saga_id, None)))
            }
            Op::Fix(app, tamper) => {
                let (_, state) = self
                    .lifecycle
                    .application(app)
                    .await
                    .map_err(|e| e.to_string())?;
                let pre = Projection::of(&self.dump());
                self.tamper(&state, tamper).await?;
                let removed = pre.removed_in(&Projection::of(&self.dump()));
                let report = self
                    .lifecycle
                    .check_drift(&self.ports(), app)
                    .await
                    .map_err(|e| format!("drift check failed without faults: {e}"))?;
                if !report.drifted() {
                    return Err(format!("drift check did not see the tampering {tamper:?}"));
                }
                let id = self.new_id("fx");
                let started = self
                    .lifecycle
                    .fix(app, &report, who, None, id)
                    .await
                    .ok()
                    .map(|s| s.saga_id);
                self.tampers.push((started.clone(), app.clone(), removed));
                Ok(started.map(|id| (id, None)))
            }
        }
    }

    fn plan(&mut self) -> (Vec<(String, FaultSpec)>, Delivery) {
        let faults = (0..self.rng.usize(1..=3))
            .map(|_| sandbox_fault(&mut self.rng))
            .collect();
        let delivery = match self.rng.u8(0..10) {
            0..=2 => {
                let fault = match self.rng.u8(0..3) {
                    0 => WriteFault::CrashBefore,
                    1 => WriteFault::CrashAfter,
                    _ => WriteFault::StallAfter,
                };
                Delivery::Write(self.rng.u64(1..=14), fault)
            }
            3 => Delivery::Twice,
            _ => Delivery::Once,
        };
        (faults, delivery)
    }

    /// One trial; returns what it found wrong.
    async fn trial(&mut self, trial: u32, report: &mut Report) -> Vec<String> {
        let Some(op) = self.pick().await else {
            return Vec::new();
        };
        // A second saga at the same time, on another application (shared instances and SLRs).
        let second = if self.rng.u8(0..5) == 0 {
            self.pick().await.filter(|o| !same_target(o, &op))
        } else {
            None
        };
        let mut found = Vec::new();
        let mut started = Vec::new();
        for o in std::iter::once(&op).chain(second.iter()) {
            match self.start_op(o).await {
                Ok(Some((id, root))) => {
                    if let Some(root) = root {
                        self.roots.push(root);
                    }
                    started.push((o.clone(), id));
                }
                Ok(None) => {}
                Err(e) => found.push(format!("{o}: {e}")),
            }
        }
        if started.is_empty() {
            return found;
        }
        let before = Projection::of(&self.dump());
        let (faults, delivery) = self.plan();
        let labels: Vec<String> = faults.iter().map(|(l, _)| l.clone()).collect();
        self.schedule.push(format!(
            "trial {trial}: {} | faults: [{}] | delivery: {delivery:?}",
            started
                .iter()
                .map(|(o, id)| format!("{o} ({id})"))
                .collect::<Vec<_>>()
                .join(" + "),
            labels.join(", ")
        ));
        for (_, spec) in faults {
            self.sandbox.state().add_fault(spec);
        }
        let mut fired = 0;
        let first = started[0].1.clone();
        let rest: Vec<String> = started.iter().skip(1).map(|(_, id)| id.clone()).collect();
        let (a, extra) = tokio::join!(self.deliver(&first, delivery), async {
            let mut n = 0;
            for id in &rest {
                n += u64::from(self.deliver_plain(id).await);
            }
            n
        });
        fired += a + extra;
        fired += self
            .sandbox
            .state()
            .faults()
            .iter()
            .map(|r| r.fired)
            .sum::<u64>();
        self.sandbox.state().clear_faults();
        report.faults += fired;
        report.sagas += started.len() as u64;
        found.extend(self.recover().await);
        let after = Projection::of(&self.dump());
        let mut ends = Vec::new();
        for (o, id) in &started {
            let status = self.record(id).await.map(|r| r.status);
            ends.push(format!("{id}={status:?}"));
            if started.len() == 1
                && matches!(status, Some(SagaStatus::RolledBack))
                && before != after
            {
                found.push(format!(
                    "{o} ended {status:?} but the world changed: {}",
                    Projection::differences(&before, &after).join("; ")
                ));
            }
        }
        // A fix that did not succeed must have left the tampering exactly as it was (and
        // nothing else); an operator then runs the fix again, which must repair it.
        let mut outstanding = Vec::new();
        for (fix, app, removed) in std::mem::take(&mut self.tampers) {
            let fixed = match &fix {
                Some(id) => self.record(id).await.map(|r| r.status) == Some(SagaStatus::Succeeded),
                None => false,
            };
            if !fixed {
                outstanding.push((app, removed));
            }
        }
        found.extend(self.check(&outstanding).await);
        if found.is_empty() {
            for (i, (app, _)) in outstanding.iter().enumerate() {
                // Tampering of the applications not repaired yet may still show.
                let done = &outstanding[..=i];
                let not_yet: Vec<_> = outstanding[i + 1..]
                    .iter()
                    .filter(|(a, _)| done.iter().all(|(d, _)| d != a))
                    .cloned()
                    .collect();
                if let Err(e) = self.repair(app, &not_yet).await {
                    found.push(format!("the operator's fault-free drift fix of {app}: {e}"));
                }
            }
        }
        if self.verbose {
            eprintln!(
                "episode {} {} -> {}{}",
                self.number,
                self.schedule.last().map(String::as_str).unwrap_or(""),
                ends.join(" "),
                if found.is_empty() { "" } else { "  VIOLATION" }
            );
        }
        if let Some(last) = self.schedule.last_mut() {
            last.push_str(&format!(" -> {}", ends.join(" ")));
        }
        let states: Vec<ManagedApp> = self
            .applications()
            .await
            .into_iter()
            .filter_map(|(_, _, s)| s)
            .collect();
        self.held.extend(world::held_grants(&states));
        found
    }

    async fn kind_of(&self, id: &str) -> Option<(String, String)> {
        self.record(id).await.map(|r| (r.kind, r.namespace))
    }

    /// Runs saga `id` on one worker until it ends; returns whether a write fault fired.
    async fn deliver_plain(&self, id: &str) -> bool {
        let mut me = Worker::new(self);
        me.run_to_end(id, RunAction::Run).await;
        false
    }

    /// Delivers saga `id` the way `delivery` says; returns the faults that fired beyond the
    /// sandbox's.
    async fn deliver(&self, id: &str, delivery: Delivery) -> u64 {
        let Some((kind, namespace)) = self.kind_of(id).await else {
            return 0;
        };
        let message = RunSagaMessage {
            saga_id: id.to_string(),
            namespace,
            action: RunAction::Run,
        };
        match delivery {
            Delivery::Once => {
                Worker::new(self).run_to_end(id, RunAction::Run).await;
                0
            }
            Delivery::Twice => {
                let (one, two) = (Worker::new(self), Worker::new(self));
                let _ = tokio::join!(
                    one.sagas.run(&kind, &message),
                    two.sagas.run(&kind, &message)
                );
                Worker::new(self).run_to_end(id, RunAction::Run).await;
                1
            }
            Delivery::Write(at, fault) => {
                let chaos = Arc::new(ChaosStore::new(self.store.clone(), at, fault));
                let stale = Arc::new(Worker::on(self, chaos.clone()));
                match fault {
                    WriteFault::CrashBefore | WriteFault::CrashAfter => {
                        let _ = stale.sagas.run(&kind, &message).await;
                    }
                    WriteFault::StallAfter => {
                        let s = stale.clone();
                        let (k, m) = (kind.clone(), message.clone());
                        let handle = tokio::spawn(async move { s.sagas.run(&k, &m).await });
                        tokio::select! {
                            _ = chaos.stalled.notified() => {
                                // The stale worker is frozen; a new one takes over after the
                                // lease expired and finishes the saga; then the stale one wakes.
                                self.expire_leases();
                                Worker::new(self).run_to_end(id, RunAction::Run).await;
                                chaos.release.notify_one();
                                let _ = handle.await;
                            }
                            _ = wait_finished(&handle) => {}
                        }
                    }
                }
                if !chaos.fired() {
                    return 0;
                }
                self.expire_leases();
                Worker::new(self).run_to_end(id, RunAction::Run).await;
                1
            }
        }
    }

    /// Lets every lease and lock lapse (the skipping clock jumps past them).
    fn expire_leases(&self) {
        let lease = EngineConfig::default().lease_ttl.max(LOCK_TTL);
        self.clock.skip(lease + Duration::from_secs(1));
    }

    /// With faults cleared: finish what is unfinished, re-drive what stopped for an operator.
    async fn recover(&self) -> Vec<String> {
        let mut found = Vec::new();
        let unfinished = [
            SagaStatus::Pending,
            SagaStatus::Running,
            SagaStatus::RollingBack,
        ];
        let stopped = [SagaStatus::RollbackFailed, SagaStatus::NeedsAttention];
        for round in 0..4 {
            let mut todo = Vec::new();
            for s in unfinished.iter().chain(stopped.iter()) {
                if let Ok(page) = self.store.list_by_status(*s, 100, None).await {
                    todo.extend(page.items.into_iter().map(|r| (r.id, r.status)));
                }
            }
            if todo.is_empty() {
                return found;
            }
            if round == 3 {
                for (id, status) in todo {
                    let cause = self
                        .record(&id)
                        .await
                        .and_then(|r| r.undo_error.or(r.cause))
                        .map(|c| format!("{}: {}", c.code, c.message))
                        .unwrap_or_default();
                    found.push(format!(
                        "saga {id} is still {status} after 3 fault-free re-drives: {cause}"
                    ));
                }
                return found;
            }
            self.expire_leases();
            for (id, status) in todo {
                let action = if stopped.contains(&status) {
                    RunAction::Redrive
                } else {
                    RunAction::Run
                };
                Worker::new(self).run_to_end(&id, action).await;
            }
        }
        found
    }

    /// A fault-free drift check and fix of `app`, run to its end, as an operator would.
    async fn repair(&mut self, app: &str, not_yet: &[(String, Projection)]) -> Result<(), String> {
        let report = self
            .lifecycle
            .check_drift(&self.ports(), app)
            .await
            .map_err(|e| format!("drift check failed: {e}"))?;
        if !report.drifted() {
            return Ok(());
        }
        let id = self.new_id("fx");
        let started = self
            .lifecycle
            .fix(app, &report, "operator@example.com", None, id)
            .await
            .map_err(|e| format!("refused to start: {e}"))?;
        Worker::new(self)
            .run_to_end(&started.saga_id, RunAction::Run)
            .await;
        match self.record(&started.saga_id).await.map(|r| r.status) {
            Some(SagaStatus::Succeeded) => {}
            other => return Err(format!("ended {other:?}")),
        }
        let found = self.check(not_yet).await;
        if found.is_empty() {
            Ok(())
        } else {
            Err(found.join("; "))
        }
    }

    /// The world against the records; `tampered` lists applications whose tampering no fix
    /// repaired (yet), with what it removed: the world may lack exactly that.
    async fn check(&self, tampered: &[(String, Projection)]) -> Vec<String> {
        let mut found = Vec::new();
        let dump = self.dump();
        let apps = self.applications().await;
        let managed_ever: Vec<ManagedApp> = apps.iter().filter_map(|(_, _, s)| s.clone()).collect();
        let live: Vec<ManagedApp> = managed_ever
            .iter()
            .filter(|s| !s.offboarded)
            .cloned()
            .collect();
        let expected = tampered.iter().fold(
            Projection::expected(
                &self.pristine,
                &managed_ever,
                &live,
                &world::roles(&dump),
                &self.held,
            ),
            |e, (_, removed)| e.without(removed),
        );
        let actual = Projection::of(&dump);
        let diff = Projection::differences(&expected, &actual);
        if !diff.is_empty() {
            found.push(format!(
                "the world is not what the records say: {}",
                diff.join("; ")
            ));
        }
        let ports = self.ports();
        let roots: BTreeSet<String> = apps
            .iter()
            .filter(|(id, _, _)| tampered.iter().any(|(app, _)| app == id))
            .filter_map(|(_, _, s)| s.as_ref().map(|s| s.namespace.clone()))
            .collect();
        for state in live.iter().filter(|s| !roots.contains(&s.namespace)) {
            match drift::detect(&ports, state, 0).await {
                Ok(r) if r.drifted() => found.push(format!(
                    "application {} drifted from its SUCCEEDED state: {:?}",
                    state.namespace, r.items
                )),
                Ok(_) => {}
                Err(e) => found.push(format!(
                    "drift check of {} failed without faults: {}",
                    state.namespace, e.message
                )),
            }
        }
        found
    }
}

async fn wait_finished<T>(handle: &tokio::task::JoinHandle<T>) {
    while !handle.is_finished() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn pick_one<T: Clone>(rng: &mut fastrand::Rng, items: &[T]) -> Option<T> {
    if items.is_empty() {
        None
    } else {
        Some(items[rng.usize(..items.len())].clone())
    }
}

fn same_target(a: &Op, b: &Op) -> bool {
    fn target(o: &Op) -> String {
        match o {
            Op::Onboard(n, _) => format!("pool{n}"),
            Op::Adopt => "adopt".into(),
            Op::Edit(a, _)
            | Op::Pause(a, _)
            | Op::Resume(a, _)
            | Op::Offboard(a)
            | Op::Fix(a, _) => a.clone(),
        }
    }
    target(a) == target(b)
}

fn namespace_of(name: &str, url: &str) -> String {
    let spec = spec_for(name, url, &[instance(1)]).to_string();
    parse_spec(spec.as_bytes())
        .ok()
        .and_then(|s| s.validate().ok())
        .map(|v| v.namespace)
        .unwrap_or_default()
}

/// One worker process: engines over a store under its own owner name.
struct Worker {
    sagas: Sagas,
    store: Arc<dyn SagaStore>,
    clock: Arc<SkippingClock>,
}

impl Worker {
    fn new(ep: &Episode) -> Self {
        Self::on(ep, ep.store.clone())
    }

    fn on(ep: &Episode, store: Arc<dyn SagaStore>) -> Self {
        static WORKERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WORKERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sagas = Sagas::new(
            ep.aws.clone(),
            store.clone(),
            ep.clock.clone(),
            Arc::new(FixedRandom(0.5)),
            SagaSettings {
                onboard: OnboardConfig::default(),
                engine: EngineConfig::default(),
                owner: format!("w{n}-e{}", ep.number),
            },
        );
        Worker {
            sagas,
            store,
            clock: ep.clock.clone(),
        }
    }

    /// Run (or re-drive) until the saga ends, waiting out other workers' leases.
    async fn run_to_end(&mut self, id: &str, action: RunAction) {
        let mut action = action;
        for _ in 0..20 {
            let Ok(Some(rec)) = self.store.get(id).await else {
                return;
            };
            let message = RunSagaMessage {
                saga_id: id.to_string(),
                namespace: rec.namespace.clone(),
                action,
            };
            match self.sagas.run(&rec.kind, &message).await {
                Ok(RunOutcome::Finished(_)) | Ok(RunOutcome::AlreadyFinished(_)) => return,
                Ok(RunOutcome::Busy { .. }) | Err(_) => {
                    let lease = EngineConfig::default().lease_ttl.max(LOCK_TTL);
                    self.clock.skip(lease + Duration::from_secs(1));
                    action = RunAction::Run;
                }
            }
        }
    }
}
