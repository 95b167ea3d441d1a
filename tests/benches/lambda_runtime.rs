//! Lambda cold start and per-event overhead of the **release** function binaries (DESIGN §8):
//! init (process start → ready for the first event), per-event overhead, peak memory and
//! binary size, measured against a local Lambda Runtime API. Prints figures; asserts no timing.
//!
//! Each function binary (`onboard-api`, `onboard-worker`, `onboard-reconciler`, `onboard-step`,
//! built with `cargo build --release`) is started as Lambda would start it: a clean environment
//! with the Lambda variables, `AWS_LAMBDA_RUNTIME_API` pointing at a Runtime API served here
//! (the documented 2018-06-01 interface), fake credentials, and **every** AWS endpoint — the
//! catch-all `AWS_ENDPOINT_URL` and each service's own variable — pointing at moto, so no
//! request can reach AWS. The saga table, the FIFO queue and the webhook secret (Secrets
//! Manager, read by the api at init as deployed) are created on moto first.
//!
//! Per function: `LAMBDA_BENCH_COLD_STARTS` (default 10) cold starts, each timed from just
//! before the process is spawned to the first `GET /invocation/next` (init), then one event
//! (first event); the last process then takes `LAMBDA_BENCH_EVENTS` (default 200) warm events
//! of each kind, each timed from the moment `/next` hands it out to its `/response` (or
//! `/error`): the runtime client, the handler, JSON in and out, logging to a pipe — and the
//! handler's moto round-trips, where it calls AWS. Peak memory is that process's `VmHWM`
//! just before it is stopped.
//!
//! `scripts/bench-lambda.sh` builds the binaries, starts moto and runs this; by hand:
//! `MOTO_ENDPOINT=http://127.0.0.1:PORT cargo bench -p onboard-integration-tests --bench lambda_runtime`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a broken fixture should fail loudly

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::retry::RetryConfig;
use aws_sdk_sqs::types::QueueAttributeName;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use onboard_integration_tests::sdk_config;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, Notify};

const FUNCTIONS: [&str; 4] = [
    "onboard-api",
    "onboard-worker",
    "onboard-reconciler",
    "onboard-step",
];
const BUILD_COMMAND: &str = "cargo build --release --locked -p onboard-api -p onboard-worker \
                             -p onboard-reconciler -p onboard-step";
const ACCOUNT: &str = "111122223333";
const REGION: &str = "us-east-1";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const EVENT_TIMEOUT: Duration = Duration::from_secs(60);
const LOG_LINES_KEPT: usize = 200;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), now_ms())
}

fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("{name}={v:?} is not a positive number")),
        Err(_) => default,
    }
}

// ---------------------------------------------------------------------------------------------
// The local Lambda Runtime API, with timestamps.

/// What the function answered, and when.
struct Answer {
    /// `None`: `/response`; `Some(type)`: `/error` with `Lambda-Runtime-Function-Error-Type`.
    error_type: Option<String>,
    body: Bytes,
    handed_out: Instant,
    answered: Instant,
}

struct Queued {
    request_id: String,
    body: Bytes,
    answer: oneshot::Sender<Answer>,
}

struct InFlight {
    handed_out: Instant,
    answer: oneshot::Sender<Answer>,
}

struct Shared {
    function_arn: String,
    first_poll: OnceLock<Instant>,
    polled: Notify,
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
    in_flight: Mutex<HashMap<String, InFlight>>,
    init_error: Mutex<Option<String>>,
}

/// One Runtime API per function process, on a free loopback port; stopped on drop.
struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    submit: mpsc::UnboundedSender<Queued>,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    async fn start(function: &str) -> Self {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("a free loopback port for the Runtime API");
        let addr = listener.local_addr().expect("the listener's address");
        let (submit, queue) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_arn: format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}"),
            first_poll: OnceLock::new(),
            polled: Notify::new(),
            queue: tokio::sync::Mutex::new(queue),
            in_flight: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        RuntimeApi {
            addr,
            shared,
            submit,
            server,
        }
    }

    fn queue(&self, event: &Value) -> oneshot::Receiver<Answer> {
        static N: AtomicU64 = AtomicU64::new(0);
        let (tx, rx) = oneshot::channel();
        let request_id = format!(
            "00000000-0000-4000-8000-{:012x}",
            N.fetch_add(1, Ordering::Relaxed)
        );
        let body = Bytes::from(serde_json::to_vec(event).expect("the event encodes"));
        self.submit
            .send(Queued {
                request_id,
                body,
                answer: tx,
            })
            .expect("the Runtime API is running");
        rx
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    let _ = shared.first_poll.set(Instant::now());
    shared.polled.notify_waiters();
    let Some(event) = shared.queue.lock().await.recv().await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "the benchmark stopped").into_response();
    };
    let deadline = now_ms() + EVENT_TIMEOUT.as_millis() as u64;
    let headers = [
        ("lambda-runtime-aws-request-id", event.request_id.clone()),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            shared.function_arn.clone(),
        ),
        (
            "lambda-runtime-trace-id",
            format!(
                "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0",
                deadline / 1000,
                deadline,
                deadline
            ),
        ),
        ("content-type", "application/json".to_string()),
    ];
    shared.in_flight.lock().expect("in-flight map").insert(
        event.request_id,
        InFlight {
            handed_out: Instant::now(),
            answer: event.answer,
        },
    );
    (StatusCode::OK, headers, event.body).into_response()
}

fn answered(shared: &Shared, id: &str, error_type: Option<String>, body: Bytes) -> Response {
    let answered = Instant::now();
    let Some(flight) = shared.in_flight.lock().expect("in-flight map").remove(id) else {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                r#"{{"errorMessage":"unknown request id {id}","errorType":"InvalidRequestID"}}"#
            ),
        )
            .into_response();
    };
    let _ = flight.answer.send(Answer {
        error_type,
        body,
        handed_out: flight.handed_out,
        answered,
    });
    (StatusCode::ACCEPTED, r#"{"status":"OK"}"#).into_response()
}

async fn response(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    answered(&shared, &id, None, body)
}

async fn error(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The runtime client sends `unhandled` in the header and the diagnostic's type in the body.
    let error_type = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("errorType")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .or_else(|| {
            headers
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "(no error type)".to_string());
    answered(&shared, &id, Some(error_type), body)
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    *shared.init_error.lock().expect("init error") =
        Some(String::from_utf8_lossy(&body).into_owned());
    (StatusCode::ACCEPTED, r#"{"status":"OK"}"#).into_response()
}

// ---------------------------------------------------------------------------------------------
// A function process.

struct Process {
    name: String,
    child: Child,
    runtime: RuntimeApi,
    spawned: Instant,
    logs: Arc<Mutex<VecDeque<String>>>,
}

fn drain<R: Read + Send + 'static>(reader: R, logs: Arc<Mutex<VecDeque<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            let mut logs = logs.lock().expect("log buffer");
            if logs.len() >= LOG_LINES_KEPT {
                logs.pop_front();
            }
            logs.push_back(line);
        }
    });
}

/// The variables Lambda sets for a `provided.al2023` function (besides the function's own).
fn lambda_env(name: &str, runtime: &RuntimeApi) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime.addr.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            format!("2026/01/01/[$LATEST]{:016x}", now_ms()),
        ),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_string()),
        (
            "AWS_EXECUTION_ENV",
            "AWS_Lambda_provided.al2023".to_string(),
        ),
        ("LAMBDA_TASK_ROOT", "/var/task".to_string()),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime".to_string()),
        ("_HANDLER", "bootstrap".to_string()),
        ("TZ", ":UTC".to_string()),
        ("LANG", "en_US.UTF-8".to_string()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Fake credentials and every endpoint on moto: the catch-all and each service the functions
/// build a client for, so nothing can reach AWS. An empty `HOME` (no `~/.aws` profile files,
/// as on Lambda), no instance metadata.
fn aws_env(moto: &str, home: &Path) -> Vec<(String, String)> {
    let home = home.to_string_lossy().into_owned();
    let mut env: Vec<(String, String)> = [
        ("HOME", home.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_SESSION_TOKEN", "testing"),
        ("AWS_REGION", REGION),
        ("AWS_DEFAULT_REGION", REGION),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_ENDPOINT_URL", moto),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for service in [
        "DYNAMODB",
        "SQS",
        "SECRETSMANAGER",
        "SSM",
        "APPINTEGRATIONS",
        "CONNECT",
        "IAM",
        "STS",
    ] {
        env.push((format!("AWS_ENDPOINT_URL_{service}"), moto.to_string()));
    }
    env
}

impl Process {
    async fn spawn(name: &str, binary: &Path, env: &[(String, String)]) -> Self {
        let runtime = RuntimeApi::start(name).await;
        let lambda = lambda_env(name, &runtime);
        let mut command = Command::new(binary);
        command
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(lambda.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawned = Instant::now();
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let logs = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(out) = child.stdout.take() {
            drain(out, logs.clone());
        }
        if let Some(err) = child.stderr.take() {
            drain(err, logs.clone());
        }
        Process {
            name: name.to_string(),
            child,
            runtime,
            spawned,
            logs,
        }
    }

    fn failure(&mut self, what: &str) -> String {
        // Give the output readers a moment to collect the last lines.
        std::thread::sleep(Duration::from_millis(200));
        let status = self
            .child
            .try_wait()
            .ok()
            .flatten()
            .map_or("still running".to_string(), |s| s.to_string());
        let init_error = self
            .runtime
            .shared
            .init_error
            .lock()
            .expect("init error")
            .clone()
            .unwrap_or_else(|| "none".into());
        let logs: Vec<String> = self
            .logs
            .lock()
            .expect("log buffer")
            .iter()
            .cloned()
            .collect();
        format!(
            "{}: {what} (process: {status}; init error posted: {init_error})\n--- last output ---\n{}",
            self.name,
            logs.join("\n")
        )
    }

    /// Init: from just before the spawn to the first `GET /invocation/next`.
    async fn init(&mut self) -> Duration {
        let deadline = Instant::now() + READY_TIMEOUT;
        let shared = self.runtime.shared.clone();
        loop {
            let polled = shared.polled.notified();
            if let Some(at) = shared.first_poll.get() {
                return at.duration_since(self.spawned);
            }
            if self.child.try_wait().ok().flatten().is_some() {
                panic!("{}", self.failure("exited during init"));
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}",
                    self.failure(&format!("not ready within {READY_TIMEOUT:?}"))
                );
            }
            let _ = tokio::time::timeout(Duration::from_millis(20), polled).await;
        }
    }

    /// Hand `event` out and wait for the answer.
    async fn invoke(&mut self, event: &Value) -> Answer {
        let mut rx = self.runtime.queue(event);
        let deadline = Instant::now() + EVENT_TIMEOUT;
        loop {
            match tokio::time::timeout(Duration::from_millis(50), &mut rx).await {
                Ok(Ok(answer)) => return answer,
                Ok(Err(_)) => panic!("{}", self.failure("the invocation was dropped")),
                Err(_) => {}
            }
            if self.child.try_wait().ok().flatten().is_some() {
                panic!("{}", self.failure("exited before answering"));
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}",
                    self.failure(&format!("no answer within {EVENT_TIMEOUT:?}"))
                );
            }
        }
    }

    /// `VmHWM` (peak resident set) in KiB, where `/proc` has it.
    fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The events.

/// An API Gateway HTTP API (payload 2.0) request, IAM-authorized.
fn http_event(method: &str, path: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "host": "benchapi.execute-api.us-east-1.amazonaws.com",
            "user-agent": "onboard-bench"
        },
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "benchapi",
            "domainName": "benchapi.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "benchapi",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": "onboard-bench"
            },
            "requestId": "bench-request",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Mar/2026:06:00:00 +0000",
            "timeEpoch": now_ms(),
            "authorizer": {
                "iam": {
                    "accessKey": "ASIAEXAMPLE",
                    "accountId": ACCOUNT,
                    "callerId": "AROAEXAMPLE:alice",
                    "userArn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/PortalUsers/alice"),
                    "userId": "AROAEXAMPLE:alice"
                }
            }
        },
        "isBase64Encoded": false
    })
}

/// One SQS record naming a saga that does not exist.
fn sqs_event(queue_arn: &str) -> Value {
    let body = json!({"sagaId": "sg-bench-absent", "namespace": "bench.example.com/absent", "action": "run"});
    json!({"Records": [{
        "messageId": "11111111-aaaa-4aaa-8aaa-000000000001",
        "receiptHandle": "AQEB-bench",
        "body": body.to_string(),
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": now_ms().to_string(),
            "SenderId": "AROAEXAMPLE:onboard-api",
            "ApproximateFirstReceiveTimestamp": now_ms().to_string(),
            "SequenceNumber": "18849496460467696128",
            "MessageGroupId": "bench.example.com/absent",
            "MessageDeduplicationId": "sg-bench-absent:run"
        },
        "messageAttributes": {},
        "md5OfBody": "00000000000000000000000000000000",
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION
    }]})
}

fn schedule_event() -> Value {
    json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": "2026-03-01T06:00:00Z",
        "region": REGION,
        "resources": [format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/onboard-reconciler-schedule")],
        "detail": {}
    })
}

fn step_event() -> Value {
    json!({
        "op": "kind",
        "sagaId": "sg-bench-absent",
        "owner": format!("arn:aws:states:{REGION}:{ACCOUNT}:execution:onboard-sagas:bench")
    })
}

/// What a correct answer looks like, so a misconfigured run cannot print plausible figures.
type Check = fn(&Answer) -> Result<(), String>;

fn json_of(a: &Answer) -> Result<Value, String> {
    serde_json::from_slice(&a.body).map_err(|e| {
        format!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&a.body)
                .chars()
                .take(300)
                .collect::<String>()
        )
    })
}

fn http_status(a: &Answer, want: u64) -> Result<(), String> {
    if let Some(t) = &a.error_type {
        return Err(format!("function error {t}"));
    }
    let v = json_of(a)?;
    match v.get("statusCode").and_then(Value::as_u64) {
        Some(s) if s == want => Ok(()),
        _ => Err(format!("expected HTTP {want}: {v}")),
    }
}

fn check_health(a: &Answer) -> Result<(), String> {
    http_status(a, 200)
}

fn check_absent_status(a: &Answer) -> Result<(), String> {
    http_status(a, 404)
}

fn check_one_failure(a: &Answer) -> Result<(), String> {
    if let Some(t) = &a.error_type {
        return Err(format!("function error {t}"));
    }
    let v = json_of(a)?;
    match v.get("batchItemFailures").and_then(Value::as_array) {
        Some(f) if f.len() == 1 => Ok(()),
        _ => Err(format!("expected one batch item failure: {v}")),
    }
}

fn check_sweep(a: &Answer) -> Result<(), String> {
    if let Some(t) = &a.error_type {
        return Err(format!(
            "function error {t}: {}",
            String::from_utf8_lossy(&a.body)
        ));
    }
    json_of(a).map(|_| ())
}

fn check_step_invalid(a: &Answer) -> Result<(), String> {
    match a.error_type.as_deref() {
        Some(t) if t == onboard_core::asl::ERROR_INVALID => Ok(()),
        other => Err(format!(
            "expected error {}, got {other:?}: {}",
            onboard_core::asl::ERROR_INVALID,
            String::from_utf8_lossy(&a.body)
        )),
    }
}

struct EventCase {
    label: &'static str,
    /// What the handler does with it, for the table.
    calls: &'static str,
    event: Value,
    check: Check,
}

/// One function configuration to measure.
struct Subject {
    label: &'static str,
    binary: &'static str,
    env: Vec<(String, String)>,
    /// The first one is also each cold start's first event.
    events: Vec<EventCase>,
}

// ---------------------------------------------------------------------------------------------
// Figures.

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

struct ColdFigures {
    label: &'static str,
    size: u64,
    stripped: Option<u64>,
    init: Vec<Duration>,
    first_event: Vec<Duration>,
    peak_kib: Option<u64>,
}

struct WarmFigures {
    function: &'static str,
    event: &'static str,
    calls: &'static str,
    answered_via: &'static str,
    latencies: Vec<Duration>,
}

/// The size after `strip -s` (symbols dropped, as a deployment may do), where `strip` exists.
fn stripped_size(binary: &Path) -> Option<u64> {
    let out = std::env::temp_dir().join(unique("onboard-bench-stripped"));
    let ok = Command::new("strip")
        .arg("-s")
        .arg("-o")
        .arg(&out)
        .arg(binary)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let size = if ok {
        std::fs::metadata(&out).ok().map(|m| m.len())
    } else {
        None
    };
    let _ = std::fs::remove_file(&out);
    size
}

async fn measure(
    subject: &Subject,
    binary: &Path,
    cold_starts: usize,
    warm_events: usize,
) -> (ColdFigures, Vec<WarmFigures>) {
    let size = std::fs::metadata(binary).map_or(0, |m| m.len());
    let mut cold = ColdFigures {
        label: subject.label,
        size,
        stripped: stripped_size(binary),
        init: Vec::new(),
        first_event: Vec::new(),
        peak_kib: None,
    };
    let mut warm = Vec::new();
    for run in 0..cold_starts {
        let mut process = Process::spawn(subject.binary, binary, &subject.env).await;
        cold.init.push(process.init().await);
        let first = &subject.events[0];
        let answer = process.invoke(&first.event).await;
        if let Err(e) = (first.check)(&answer) {
            panic!(
                "{}",
                process.failure(&format!("unexpected answer to {}: {e}", first.label))
            );
        }
        cold.first_event
            .push(answer.answered.duration_since(answer.handed_out));
        if run + 1 < cold_starts {
            continue;
        }
        // The last environment stays warm.
        for case in &subject.events {
            let mut latencies = Vec::with_capacity(warm_events);
            let mut via = "/response";
            for _ in 0..warm_events {
                let answer = process.invoke(&case.event).await;
                if let Err(e) = (case.check)(&answer) {
                    panic!(
                        "{}",
                        process.failure(&format!("unexpected answer to {}: {e}", case.label))
                    );
                }
                if answer.error_type.is_some() {
                    via = "/error";
                }
                latencies.push(answer.answered.duration_since(answer.handed_out));
            }
            latencies.sort();
            warm.push(WarmFigures {
                function: subject.label,
                event: case.label,
                calls: case.calls,
                answered_via: via,
                latencies,
            });
        }
        cold.peak_kib = process.peak_rss_kib();
    }
    cold.init.sort();
    cold.first_event.sort();
    (cold, warm)
}

// ---------------------------------------------------------------------------------------------
// Setup.

fn moto_endpoint() -> String {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "MOTO_ENDPOINT is not set: the functions keep their table, queue and webhook secret \
             on moto. Run scripts/bench-lambda.sh (builds the release binaries, starts moto, runs \
             this bench), or start `.venv/bin/moto_server -H 127.0.0.1 -p PORT` and run \
             MOTO_ENDPOINT=http://127.0.0.1:PORT cargo bench -p onboard-integration-tests --bench lambda_runtime"
        ),
    }
}

/// `<target>/release`: the directory holding this bench executable's `deps` directory.
fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench executable's path");
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("{} is not in a cargo target directory", exe.display()))
}

fn binaries() -> HashMap<&'static str, PathBuf> {
    let dir = release_dir();
    let found: HashMap<&'static str, PathBuf> = FUNCTIONS
        .iter()
        .map(|n| (*n, dir.join(format!("{n}{}", std::env::consts::EXE_SUFFIX))))
        .collect();
    let missing: Vec<String> = FUNCTIONS
        .iter()
        .filter(|n| !found[*n].is_file())
        .map(|n| found[n].display().to_string())
        .collect();
    if !missing.is_empty() {
        panic!(
            "release function binaries missing: {}.\nBuild them first, with the same \
             CARGO_TARGET_DIR as this bench:\n    {BUILD_COMMAND}\nor run scripts/bench-lambda.sh, \
             which builds them, starts moto and runs this bench.",
            missing.join(", ")
        );
    }
    found
}

/// A table, a FIFO queue and the webhook secret on moto: what the functions' init and the
/// cheap events touch. Returns (table, queue URL, queue ARN, secret ARN).
async fn provision(moto: &str) -> (String, String, String, String) {
    let sdk = sdk_config(moto, RetryConfig::standard()).await;
    let table = unique("onboard-bench");
    onboard_aws::create_table(&aws_sdk_dynamodb::Client::new(&sdk), &table)
        .await
        .unwrap_or_else(|e| panic!("creating table {table} on moto ({moto}) failed: {e}"));
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_name = format!("{}.fifo", unique("onboard-bench-runs"));
    let queue_url = sqs
        .create_queue()
        .queue_name(&queue_name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::VisibilityTimeout, "300")
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating queue {queue_name} on moto failed: {e:?}"))
        .queue_url()
        .expect("a queue URL")
        .to_string();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("moto answers GetQueueAttributes")
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .expect("the queue has an ARN")
        .clone();
    let secret_arn = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(unique("onboard-bench-webhook"))
        .secret_string(r#"{"current":"bench-webhook-secret"}"#)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating the webhook secret on moto failed: {e:?}"))
        .arn()
        .expect("the secret has an ARN")
        .to_string();
    (table, queue_url, queue_arn, secret_arn)
}

fn with(base: &[(String, String)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = base.to_vec();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (e.g. `cargo test --all-targets`) only
    // builds it.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "lambda_runtime: a benchmark; run it with `cargo bench` (scripts/bench-lambda.sh)"
        );
        return;
    }
    let moto = moto_endpoint();
    let bins = binaries();
    let cold_starts = env_count("LAMBDA_BENCH_COLD_STARTS", 10);
    let warm_events = env_count("LAMBDA_BENCH_EVENTS", 200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let home = std::env::temp_dir().join(unique("onboard-bench-home"));
    std::fs::create_dir_all(&home).expect("an empty HOME for the functions");
    runtime.block_on(async {
        let (table, queue_url, queue_arn, secret_arn) = provision(&moto).await;
        // As the template configures the functions (LogLevel, MetricsNamespace defaults).
        let base = with(
            &aws_env(&moto, &home),
            &[
                ("TABLE_NAME", table.as_str()),
                ("RUST_LOG", "info"),
                ("METRICS_NAMESPACE", "ConnectOnboarding"),
            ],
        );
        let api_events = || {
            vec![
                EventCase {
                    label: "GET /health",
                    calls: "none",
                    event: http_event("GET", "/health"),
                    check: check_health,
                },
                EventCase {
                    label: "GET /applications/{absent} (404)",
                    calls: "DynamoDB GetItem x1",
                    event: http_event("GET", "/applications/sg-bench-absent"),
                    check: check_absent_status,
                },
            ]
        };
        let subjects = vec![
            Subject {
                label: "onboard-api",
                binary: "onboard-api",
                env: with(
                    &base,
                    &[
                        ("QUEUE_URL", queue_url.as_str()),
                        ("PREFLIGHT_AWS", "true"),
                        ("WEBHOOK_SECRET_ARN", secret_arn.as_str()),
                    ],
                ),
                events: api_events(),
            },
            Subject {
                label: "onboard-api (inline secret)",
                binary: "onboard-api",
                env: with(
                    &base,
                    &[
                        ("QUEUE_URL", queue_url.as_str()),
                        ("PREFLIGHT_AWS", "true"),
                        ("WEBHOOK_SECRET", "bench-webhook-secret"),
                    ],
                ),
                events: api_events().into_iter().take(1).collect(),
            },
            Subject {
                label: "onboard-worker",
                binary: "onboard-worker",
                env: with(
                    &base,
                    &[
                        ("WORKER_CONCURRENCY", "4"),
                        ("INSTANCE_CONCURRENCY", "4"),
                        ("CONNECT_RATE_PER_SECOND", "2"),
                        ("CONNECT_BURST", "5"),
                        ("LEASE_TTL_SECONDS", "300"),
                    ],
                ),
                events: vec![EventCase {
                    label: "SQS, 1 message, saga absent",
                    calls: "DynamoDB GetItem x1",
                    event: sqs_event(&queue_arn),
                    check: check_one_failure,
                }],
            },
            Subject {
                label: "onboard-reconciler",
                binary: "onboard-reconciler",
                env: with(
                    &base,
                    &[
                        ("QUEUE_URL", queue_url.as_str()),
                        ("RECONCILE_LIMIT", "100"),
                        ("PENDING_GRACE_SECONDS", "120"),
                        ("DRIFT_CHECK", "true"),
                        ("DRIFT_CHECK_LIMIT", "10"),
                        ("DRIFT_CHECK_BUDGET_SECONDS", "120"),
                    ],
                ),
                events: vec![EventCase {
                    label: "schedule, empty table",
                    calls: "DynamoDB Query x6 (gsi1)",
                    event: schedule_event(),
                    check: check_sweep,
                }],
            },
            Subject {
                label: "onboard-step",
                binary: "onboard-step",
                env: with(
                    &base,
                    &[
                        ("INSTANCE_CONCURRENCY", "4"),
                        ("CONNECT_RATE_PER_SECOND", "2"),
                        ("CONNECT_BURST", "5"),
                        ("LEASE_TTL_SECONDS", "300"),
                    ],
                ),
                events: vec![EventCase {
                    label: "op kind, saga absent (Saga.Invalid)",
                    calls: "DynamoDB GetItem x1",
                    event: step_event(),
                    check: check_step_invalid,
                }],
            },
        ];

        println!(
            "Lambda functions (release, host {}-{}) under a local Runtime API; AWS on moto at {moto}",
            std::env::consts::ARCH,
            std::env::consts::OS
        );
        println!(
            "{cold_starts} cold starts per function, {warm_events} warm events per event kind; \
             times in ms\n"
        );
        let mut colds = Vec::new();
        let mut warms = Vec::new();
        for subject in &subjects {
            let (cold, warm) =
                measure(subject, &bins[subject.binary], cold_starts, warm_events).await;
            colds.push(cold);
            warms.extend(warm);
        }

        println!(
            "{:<28} {:>9} {:>9} {:>8} {:>8} {:>8} {:>11} {:>9}",
            "function",
            "size MiB",
            "stripped",
            "init p50",
            "init p90",
            "init min",
            "1st evt p50",
            "peak MiB"
        );
        for c in &colds {
            println!(
                "{:<28} {:>9} {:>9} {:>8} {:>8} {:>8} {:>11} {:>9}",
                c.label,
                mib(c.size),
                c.stripped.map_or("n/a".into(), mib),
                ms(percentile(&c.init, 50.0)),
                ms(percentile(&c.init, 90.0)),
                ms(percentile(&c.init, 0.0)),
                ms(percentile(&c.first_event, 50.0)),
                c.peak_kib
                    .map_or("n/a".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
            );
        }
        println!();
        println!(
            "{:<28} {:<36} {:<25} {:<9} {:>7} {:>7} {:>7} {:>7}",
            "function", "warm event", "AWS calls (moto)", "answer", "p50", "p99", "min", "max"
        );
        for w in &warms {
            println!(
                "{:<28} {:<36} {:<25} {:<9} {:>7} {:>7} {:>7} {:>7}",
                w.function,
                w.event,
                w.calls,
                w.answered_via,
                ms(percentile(&w.latencies, 50.0)),
                ms(percentile(&w.latencies, 99.0)),
                ms(percentile(&w.latencies, 0.0)),
                ms(percentile(&w.latencies, 100.0)),
            );
        }
        println!(
            "\nsize: the release binary as cargo builds it (symbols kept, no debuginfo); stripped: \
             after `strip -s`.\ninit: spawn -> first GET /invocation/next (onboard-api reads the \
             webhook secret from Secrets Manager on moto during init; the inline-secret row does \
             not).\n1st evt: the first event of each cold start (connections to moto opened \
             lazily).\nevents: /next handing the event out -> its /response or /error arriving, \
             moto round-trips included where the handler calls AWS.\npeak: VmHWM of the warm \
             process after all its events, just before it is stopped."
        );
    });
    let _ = std::fs::remove_dir_all(&home);
}
