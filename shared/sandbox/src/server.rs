//! The HTTP server: routes each request to a service (by the SigV4 credential scope, or by the
//! path when unsigned), applies throttling and faults, runs the operation on the shared world
//! and renders the answer in the service's protocol.
//!
//! Signatures are **not** verified and unsigned requests are accepted: the sandbox is a local
//! test double, and checking signatures would only add ways for a correct client to fail.

use crate::appintegrations::{self, Limits};
use crate::clock::{Clock, SystemClock};
use crate::connect;
use crate::control;
use crate::error::SandboxError;
use crate::faults::{FaultRule, FaultSpec, Faults};
use crate::iam;
use crate::seed::SeedConfig;
use crate::shared_state::{CallRecord, Inner, Persist, PersistHook, Shared};
use crate::state::{uuid, World};
use crate::throttle::{Throttle, ThrottleConfig};
use crate::wire::{self, render, render_error, ApiError, Service};
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::Router;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Largest request body accepted (IAM policy documents are at most 131,072 characters,
/// which percent-encoding can triple).
const MAX_BODY: usize = 2 * 1024 * 1024;

/// How to start a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The world to start from (and to return to on reset).
    pub seed: SeedConfig,
    /// Token-bucket limits.
    pub throttle: ThrottleConfig,
    /// Time source for timestamps and buckets.
    pub clock: Arc<dyn Clock>,
    /// Seed of the id generator, so runs produce the same ids.
    pub rng_seed: u64,
    /// Address to listen on.
    pub host: IpAddr,
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// AppIntegrations "applications per Region" quota.
    pub max_applications: usize,
}

impl Default for SandboxConfig {
    /// The demo seed, Connect's default throttling, the system clock, 127.0.0.1 on a free port.
    fn default() -> Self {
        Self {
            seed: SeedConfig::demo(),
            throttle: ThrottleConfig::default(),
            clock: Arc::new(SystemClock),
            rng_seed: 0x5eed,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            max_applications: 50,
        }
    }
}

/// A handle on a running sandbox's state, for tests and the CLI.
#[derive(Debug, Clone)]
pub struct SandboxHandle {
    shared: Arc<Shared>,
}

impl SandboxHandle {
    /// The full state as JSON, without timestamps (so worlds compare by content).
    pub fn dump(&self) -> serde_json::Value {
        self.shared.lock().world.dump(false)
    }

    /// The full state as JSON, with `created_ms`/`modified_ms` timestamps.
    pub fn dump_with_timestamps(&self) -> serde_json::Value {
        self.shared.lock().world.dump(true)
    }

    /// Everything a later process needs to carry on from this state: the world with
    /// timestamps (top-level keys as in [`SandboxHandle::dump`]), the seed it started from, the
    /// ClientToken records and the id generator's position. Faults, calls and throttling are not
    /// part of it. Restore it with [`SandboxHandle::restore`].
    pub fn snapshot(&self) -> serde_json::Value {
        let inner = self.shared.lock();
        inner.world.snapshot(&inner.seed)
    }

    /// Persist the world before acknowledging any write: after every call that changed it (also
    /// one whose response a fault then drops), `persist` gets the new snapshot, under the state
    /// lock so snapshots are saved in order, before the response is sent. Real AWS never
    /// forgets a write it acknowledged; with this the emulator does not either when its
    /// process is killed right after answering.
    pub fn persist_with(&self, persist: Persist) {
        self.shared.lock().persist = Some(PersistHook(persist));
    }

    /// Replace the world (and the seed `reset` returns to) with a [`SandboxHandle::snapshot`];
    /// faults, calls and throttling stay as they are.
    pub fn restore(&self, snapshot: &serde_json::Value) -> Result<(), SandboxError> {
        let (world, seed) = World::from_snapshot(snapshot)?;
        let mut inner = self.shared.lock();
        inner.world = world;
        inner.lagging = None;
        inner.seed = seed;
        Ok(())
    }

    /// Back to the seed; faults, calls and bucket levels are cleared.
    pub fn reset(&self) -> Result<(), SandboxError> {
        self.shared.reset()
    }

    /// Replaces the seed and resets to it.
    pub fn seed(&self, seed: SeedConfig) -> Result<(), SandboxError> {
        self.shared.reseed(seed)
    }

    /// Adds a fault rule; returns its id.
    pub fn add_fault(&self, spec: FaultSpec) -> u64 {
        self.shared.lock().faults.add(spec)
    }

    /// The fault rules with their counters.
    pub fn faults(&self) -> Vec<FaultRule> {
        self.shared.lock().faults.rules().to_vec()
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// The calls received so far.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.shared.lock().calls.clone()
    }

    /// Forgets the calls received so far.
    pub fn clear_calls(&self) {
        self.shared.lock().calls.clear();
    }

    /// Replaces the throttling limits (buckets start full).
    pub fn set_throttle(&self, config: ThrottleConfig) {
        self.shared.lock().throttle.reconfigure(config);
    }
}

/// Starts sandboxes.
#[derive(Debug)]
pub struct Sandbox;

impl Sandbox {
    /// Binds the listener and serves in the background until the returned value is dropped or
    /// shut down.
    pub async fn start(config: SandboxConfig) -> Result<RunningSandbox, SandboxError> {
        let now = config.clock.now_millis();
        let world = World::from_seed(&config.seed, now, config.rng_seed)?;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                world,
                seed: config.seed,
                rng_seed: config.rng_seed,
                throttle: Throttle::new(config.throttle),
                faults: Faults::default(),
                calls: Vec::new(),
                request_rng: fastrand::Rng::with_seed(config.rng_seed ^ 0xa5a5),
                limits: Limits {
                    max_applications: config.max_applications,
                },
                persist: None,
                lagging: None,
            }),
            clock: config.clock,
        });
        let addr = SocketAddr::new(config.host, config.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| SandboxError::Bind {
                addr: addr.to_string(),
                source,
            })?;
        let local = listener.local_addr().map_err(|source| SandboxError::Bind {
            addr: addr.to_string(),
            source,
        })?;
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(error) = serve.await {
                tracing::error!(%error, "sandbox server stopped");
            }
        });
        tracing::info!(endpoint = %format!("http://{local}"), "sandbox listening");
        Ok(RunningSandbox {
            addr: local,
            handle: SandboxHandle { shared },
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

/// A sandbox serving on a loopback port; stops when dropped.
#[derive(Debug)]
pub struct RunningSandbox {
    addr: SocketAddr,
    handle: SandboxHandle,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningSandbox {
    /// `http://127.0.0.1:PORT`, for `endpoint_url` / `--endpoint-url`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The state handle.
    pub fn state(&self) -> &SandboxHandle {
        &self.handle
    }

    /// Stops accepting connections and waits (up to 5 s) for in-flight requests.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }

    /// Serves until the server stops (for the standalone binary).
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningSandbox {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Splits the raw path on `/` and then percent-decodes each segment, so an ARN label
/// (`arn%3Aaws%3A...%2F<uuid>`) stays one segment.
fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

/// Which service an unsigned request is for, from its shape.
fn service_from_shape(
    method: &Method,
    segs: &[String],
    params: &[(String, String)],
) -> Option<Service> {
    match segs.first().map(String::as_str) {
        Some("applications") => Some(Service::AppIntegrations),
        Some(
            "instance"
            | "security-profiles"
            | "security-profiles-summary"
            | "security-profiles-applications",
        ) => Some(Service::Connect),
        None if *method == Method::POST || params.iter().any(|(k, _)| k == "Action") => {
            Some(Service::Iam)
        }
        _ => None,
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return control::json_response(
            413,
            &serde_json::json!({"message": "request body too large"}),
        );
    };
    if path == "/_sandbox" || path.starts_with("/_sandbox/") {
        return control::handle(&shared, &parts.method, &path, &query, &body).await;
    }
    serve_aws(&shared, &parts.method, &path, &parts.headers, &query, body).await
}

/// A call resolved to its service and operation.
struct Call {
    service: Service,
    operation: &'static str,
    labels: Vec<String>,
    iam_params: iam::Params,
}

fn resolve(
    method: &Method,
    segs: &[String],
    headers: &HeaderMap,
    query: &[(String, String)],
    body: &[u8],
) -> Result<Call, (Option<Service>, ApiError)> {
    let signed = wire::signing_service(headers, query).and_then(|s| Service::from_signing_name(&s));
    let iam_params = iam::parse_params(query, body);
    let service = signed.or_else(|| service_from_shape(method, segs, &iam_params));
    let describe = || format!("{method} /{}", segs.join("/"));
    let Some(service) = service else {
        return Err((
            None,
            ApiError::new(
                "UnknownOperationException",
                404,
                &format!("No operation matches {}", describe()),
            ),
        ));
    };
    let routed = match service {
        Service::AppIntegrations => appintegrations::route(method, segs).ok_or_else(describe),
        Service::Connect => connect::route(method, segs).ok_or_else(describe),
        Service::Iam => iam::route(&iam_params).map(|op| (op, Vec::new())),
    };
    match routed {
        Ok((operation, labels)) => Ok(Call {
            service,
            operation,
            labels,
            iam_params,
        }),
        Err(what) => Err((Some(service), service.unknown_operation(&what))),
    }
}

fn record(
    inner: &mut Inner,
    service: &str,
    operation: &str,
    status: u16,
    error: Option<&ApiError>,
    note: Option<&str>,
) {
    let seq = inner.calls.len() as u64 + 1;
    inner.calls.push(CallRecord {
        seq,
        service: service.to_owned(),
        operation: operation.to_owned(),
        status,
        error: error.map(|e| e.code.clone()),
        note: note.map(str::to_owned),
    });
}

async fn serve_aws(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    query: &[(String, String)],
    body: Bytes,
) -> Response {
    let segs = segments(path);
    let request_id = uuid(&mut shared.lock().request_rng);
    let call = match resolve(method, &segs, headers, query, &body) {
        Ok(call) => call,
        Err((service, error)) => {
            let name = service.map_or("unknown", Service::name);
            record(
                &mut shared.lock(),
                name,
                "Unknown",
                error.status,
                Some(&error),
                None,
            );
            return render_error(
                service.unwrap_or(Service::AppIntegrations),
                &request_id,
                &error,
            );
        }
    };
    let (service, op) = (call.service, call.operation);

    // Throttling first (as a front door would), then faults.
    let decision = {
        let now = shared.now();
        let mut inner = shared.lock();
        let account = inner.world.account_id.clone();
        if let Err(retry_after) = inner.throttle.take(&account, service, op, now) {
            let error = service.throttling(retry_after);
            record(
                &mut inner,
                service.name(),
                op,
                error.status,
                Some(&error),
                Some("throttled"),
            );
            return render_error(service, &request_id, &error);
        }
        inner.faults.decide(service, op)
    };
    if decision.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(decision.latency_ms)).await;
    }
    if let Some(error) = decision.fail {
        record(
            &mut shared.lock(),
            service.name(),
            op,
            error.status,
            Some(&error),
            Some("fault"),
        );
        return render_error(service, &request_id, &error);
    }

    let now = shared.now();
    let mut inner = shared.lock();
    let limits = inner.limits;
    let writes = changes_world(op);
    let before = writes.then(|| inner.world.clone());
    let lag = match &inner.lagging {
        Some((s, w)) if !writes && *s == service => Some(w.clone()),
        _ => None,
    };
    let execute = |world: &mut World| match service {
        Service::AppIntegrations => {
            appintegrations::execute(world, op, &call.labels, query, &body, now, limits)
        }
        Service::Connect => connect::execute(world, op, &call.labels, query, &body, now),
        Service::Iam => iam::execute(world, op, &call.iam_params),
    };
    // A read while the service lags is answered from a copy of the old world when a `stale`
    // fault fired; otherwise fresh, and once a fresh answer differs from the old one the
    // caller has seen the change, so the lag is over.
    let (outcome, stale) = match lag {
        Some(mut old) if decision.stale => (execute(&mut old), true),
        Some(mut old) => {
            let fresh = execute(&mut inner.world);
            if fresh != execute(&mut old) {
                inner.lagging = None;
            }
            (fresh, false)
        }
        None => (execute(&mut inner.world), false),
    };
    // Lagging since the first change nobody has seen: a stale read shows none of them.
    let behind = inner.lagging.as_ref().is_some_and(|(s, _)| *s == service);
    if let Some(before) = before.filter(|_| outcome.is_ok() && !behind) {
        inner.lagging = Some((service, before));
    }
    if outcome.is_ok() && changes_world(op) {
        if let Some(persist) = inner.persist.clone() {
            let snapshot = inner.world.snapshot(&inner.seed);
            if let Err(e) = (persist.0)(&snapshot) {
                let error = ApiError::new(
                    "InternalServerError",
                    500,
                    &format!("the sandbox could not persist its world: {e}"),
                );
                record(
                    &mut inner,
                    service.name(),
                    op,
                    error.status,
                    Some(&error),
                    Some("persist_failed"),
                );
                return render_error(service, &request_id, &error);
            }
        }
    }
    if let Some(error) = decision.drop_after {
        let applied = if outcome.is_ok() {
            "apply_then_drop"
        } else {
            "fault"
        };
        record(
            &mut inner,
            service.name(),
            op,
            error.status,
            Some(&error),
            Some(applied),
        );
        return render_error(service, &request_id, &error);
    }
    match &outcome {
        Ok(_) if stale => record(&mut inner, service.name(), op, 200, None, Some("stale")),
        Ok(_) => record(&mut inner, service.name(), op, 200, None, None),
        Err(error) => record(
            &mut inner,
            service.name(),
            op,
            error.status,
            Some(error),
            None,
        ),
    }
    drop(inner);
    render(service, op, &request_id, outcome)
}

/// Whether `op` may change the world (so its success must be persisted before the answer).
fn changes_world(op: &str) -> bool {
    !["Get", "List", "Describe", "Search", "Simulate"]
        .iter()
        .any(|read| op.starts_with(read))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_do_not_count_as_changes() {
        for read in [
            "GetApplication",
            "ListApplications",
            "DescribeInstance",
            "GetRolePolicy",
        ] {
            assert!(!changes_world(read), "{read}");
        }
        for write in [
            "CreateApplication",
            "PutRolePolicy",
            "UpdateSecurityProfile",
            "TagResource",
        ] {
            assert!(changes_world(write), "{write}");
        }
    }

    #[test]
    fn segments_decode_after_splitting() {
        assert_eq!(
            segments("/applications/arn%3Aaws%3Aapp-integrations%3Aus-east-1%3A1%3Aapplication%2Fabc/associations"),
            vec!["applications", "arn:aws:app-integrations:us-east-1:1:application/abc", "associations"]
        );
    }
}
