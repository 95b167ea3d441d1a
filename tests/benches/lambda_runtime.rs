//! Lambda cold start and per-event overhead of the **release** function binaries:
//! init (process start → ready for the first event), per-event overhead, peak memory and
//! binary size, measured against a local Lambda Runtime API. Prints figures; asserts no timing.
//!
//! Each function binary (`onboard-api`, `onboard-worker`, `onboard-reconciler`, `onboard-step`,
//! built with `cargo build --release`) is started as Lambda would start it: a clean environment
//! with the Lambda variables, `AWS_LAMBDA_RUNTIME_API` pointing at a Runtime API served here
//! (the documented 2018-06-01 interface; the e2e tests' harness,
//! `onboard_integration_tests::lambda_runtime`), fake credentials, and **every** AWS endpoint — the
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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::retry::RetryConfig;
use aws_sdk_sqs::types::QueueAttributeName;
use onboard_integration_tests::lambda_runtime::{InvokeError, LambdaProcess};
use onboard_integration_tests::sdk_config;
use serde_json::{json, Value};

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
// A function process: the e2e tests' Runtime API and process harness
// (`onboard_integration_tests::lambda_runtime`), which times init and each event.

/// What the function answered.
struct Answer {
    /// `None`: `/response`; `Some(type)`: `/error`. The runtime client sends `unhandled` in
    /// the header and the real type in the body's `errorType`, so the body wins.
    error_type: Option<String>,
    body: Vec<u8>,
}

/// The variables Lambda sets for a `provided.al2023` function besides the runtime ones the
/// harness sets (`AWS_LAMBDA_RUNTIME_API`, function name, memory, version, log group/stream).
fn lambda_extra_env() -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023"),
        ("LAMBDA_TASK_ROOT", "/var/task"),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime"),
        ("_HANDLER", "bootstrap"),
        ("TZ", ":UTC"),
        ("LANG", "en_US.UTF-8"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
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

/// `message` with the process's last output, for a panic that says what went wrong.
fn failure(process: &LambdaProcess, message: &str) -> String {
    format!(
        "{}: {message}\n--- last output ---\n{}",
        process.name(),
        process.logs().join("\n")
    )
}

/// Start `binary` and wait for its first `GET /next`; the process and its init time.
async fn cold_start(
    name: &str,
    binary: &Path,
    env: &[(String, String)],
) -> (LambdaProcess, Duration) {
    let process = LambdaProcess::spawn(name, binary, env)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    if let Err(e) = process.wait_ready(READY_TIMEOUT).await {
        panic!("{name}: {e}");
    }
    let init = process
        .init_duration()
        .unwrap_or_else(|| panic!("{}", failure(&process, "ready without a poll")));
    (process, init)
}

/// Hand `event` out; the answer and how long the function held it.
async fn invoke(process: &LambdaProcess, event: &Value) -> (Answer, Duration) {
    let (result, held) = process.invoke_timed(event, EVENT_TIMEOUT).await;
    let answer = match result {
        Ok(v) => Answer {
            error_type: None,
            body: serde_json::to_vec(&v).unwrap_or_default(),
        },
        Err(InvokeError::Function { error_type, body }) => Answer {
            error_type: serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| {
                    v.get("errorType")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .or(error_type),
            body: body.into_bytes(),
        },
        Err(e) => panic!("{e}"),
    };
    let held = held.unwrap_or_else(|| panic!("{}", failure(process, "answered without timing")));
    (answer, held)
}

/// `VmHWM` (peak resident set) in KiB, where `/proc` has it.
fn peak_rss_kib(process: &LambdaProcess) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", process.pid())).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
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
        let (process, init) = cold_start(subject.binary, binary, &subject.env).await;
        cold.init.push(init);
        let first = &subject.events[0];
        let (answer, held) = invoke(&process, &first.event).await;
        if let Err(e) = (first.check)(&answer) {
            panic!(
                "{}",
                failure(
                    &process,
                    &format!("unexpected answer to {}: {e}", first.label)
                )
            );
        }
        cold.first_event.push(held);
        if run + 1 < cold_starts {
            continue;
        }
        // The last environment stays warm.
        for case in &subject.events {
            let mut latencies = Vec::with_capacity(warm_events);
            let mut via = "/response";
            for _ in 0..warm_events {
                let (answer, held) = invoke(&process, &case.event).await;
                if let Err(e) = (case.check)(&answer) {
                    panic!(
                        "{}",
                        failure(
                            &process,
                            &format!("unexpected answer to {}: {e}", case.label)
                        )
                    );
                }
                if answer.error_type.is_some() {
                    via = "/error";
                }
                latencies.push(held);
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
        cold.peak_kib = peak_rss_kib(&process);
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
        .secret_string(r#"{"current":"bench-webhook-secret-0123456789abcdef"}"#)
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
        let mut function_env = aws_env(&moto, &home);
        function_env.extend(lambda_extra_env());
        let base = with(
            &function_env,
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
                        ("WEBHOOK_SECRET", "bench-webhook-secret-0123456789abcdef"),
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
