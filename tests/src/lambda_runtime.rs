//! Running the **compiled** Lambda function binaries locally: a small Lambda Runtime API server
//! (one per function process) and the process that polls it.
//!
//! The server implements what the `lambda_runtime` crate calls:
//!
//! | route | what |
//! |---|---|
//! | `GET /2018-06-01/runtime/invocation/next` | long-poll: the next event, with `Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms`, `-Invoked-Function-Arn`, `-Trace-Id` |
//! | `POST /2018-06-01/runtime/invocation/{id}/response` | the function's answer |
//! | `POST /2018-06-01/runtime/invocation/{id}/error` | the function's error (`Lambda-Runtime-Function-Error-Type`) |
//! | `POST /2018-06-01/runtime/init/error` | init failed |
//!
//! [`LambdaProcess`] starts a binary with a clean environment (only what the caller passes plus
//! the Lambda variables the runtime needs), collects its stdout/stderr lines, and kills it when
//! dropped — also when a test panics. [`function_binaries`] finds the workspace's function
//! binaries next to the running test executable and rebuilds them with cargo when they are
//! missing or older than their sources.
#![warn(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// The account in the invoked function ARNs.
pub const FUNCTION_ACCOUNT: &str = "111122223333";
/// How many output lines of a process are kept (the oldest are dropped).
const LOG_LINES_KEPT: usize = 5_000;
/// How many of the last output lines an error message quotes.
const LOG_TAIL: usize = 40;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Why an invocation produced no response.
#[derive(Debug)]
pub enum InvokeError {
    /// The function answered through `/invocation/{id}/error`.
    Function {
        error_type: Option<String>,
        body: String,
    },
    /// The process exited (init failure, crash, kill) before it answered.
    Exited {
        function: String,
        status: String,
        init_error: Option<String>,
        logs: String,
    },
    /// No answer within the timeout.
    Timeout {
        function: String,
        after: Duration,
        logs: String,
    },
    /// The answer is not JSON, or the harness itself failed.
    Harness(String),
}

impl fmt::Display for InvokeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvokeError::Function { error_type, body } => write!(
                f,
                "the function reported an error ({}): {body}",
                error_type.as_deref().unwrap_or("no error type")
            ),
            InvokeError::Exited {
                function,
                status,
                init_error,
                logs,
            } => {
                write!(f, "{function} exited ({status}) before answering")?;
                if let Some(e) = init_error {
                    write!(f, "; init error: {e}")?;
                }
                write!(f, "\n--- last output of {function} ---\n{logs}")
            }
            InvokeError::Timeout {
                function,
                after,
                logs,
            } => write!(
                f,
                "{function} did not answer within {after:?}\n--- last output of {function} ---\n{logs}"
            ),
            InvokeError::Harness(m) => write!(f, "lambda harness: {m}"),
        }
    }
}

impl std::error::Error for InvokeError {}

/// One queued event.
struct Invocation {
    request_id: String,
    body: Bytes,
    deadline_ms: u64,
}

/// What the function answered.
enum Outcome {
    Response(Bytes),
    Error {
        error_type: Option<String>,
        body: Bytes,
    },
}

struct Shared {
    function_arn: String,
    queue: mpsc::UnboundedSender<Invocation>,
    next: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Answered>>>,
    /// When each event in flight was handed out by `/next` (for [`LambdaProcess::invoke_timed`]).
    handed_out: Mutex<HashMap<String, Instant>>,
    init_error: Mutex<Option<String>>,
    polls: AtomicU64,
    /// The first `GET /next`: the end of the function's init.
    first_poll: OnceLock<Instant>,
}

/// An outcome and how long the function held the event (`/next` → `/response` or `/error`).
struct Answered {
    outcome: Outcome,
    handled_in: Option<Duration>,
}

/// A local Lambda Runtime API for one function process.
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

/// An event handed to the function, not yet answered.
pub struct PendingInvocation {
    request_id: String,
    answer: oneshot::Receiver<Answered>,
    timeout: Duration,
}

impl PendingInvocation {
    pub fn request_id(&self) -> &str {
        &self.request_id
    }
}

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);

fn request_id() -> String {
    let n = REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = now_ms();
    // UUID-shaped, unique per test process: time, process id, counter.
    format!(
        "{:08x}-{:04x}-4{:03x}-8000-{:012x}",
        (t >> 16) as u32,
        (t & 0xffff) as u16,
        std::process::id() & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

impl RuntimeApi {
    /// Serve the Runtime API for `function_name` on a free loopback port (on the current tokio
    /// runtime; stopped on drop).
    pub async fn start(function_name: &str) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (queue, next) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_arn: format!(
                "arn:aws:lambda:us-east-1:{FUNCTION_ACCOUNT}:function:{function_name}"
            ),
            queue,
            next: tokio::sync::Mutex::new(next),
            pending: Mutex::new(HashMap::new()),
            handed_out: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
            polls: AtomicU64::new(0),
            first_poll: OnceLock::new(),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_event))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(invocation_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .fallback(unknown_route)
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("lambda runtime API on {addr} stopped: {e}");
            }
        });
        Ok(RuntimeApi {
            addr,
            shared,
            server,
        })
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API` (`host:port`, no scheme).
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The ARN the invocations carry.
    pub fn function_arn(&self) -> &str {
        &self.shared.function_arn
    }

    /// How many times the function asked for the next event (≥ 1 once its init is done).
    pub fn polls(&self) -> u64 {
        self.shared.polls.load(Ordering::SeqCst)
    }

    /// What the function posted to `/init/error`, if anything.
    pub fn init_error(&self) -> Option<String> {
        lock(&self.shared.init_error).clone()
    }

    /// Queue `event` for the function; its deadline is `timeout` from now.
    pub fn submit(
        &self,
        event: &Value,
        timeout: Duration,
    ) -> Result<PendingInvocation, InvokeError> {
        let body = serde_json::to_vec(event)
            .map_err(|e| InvokeError::Harness(format!("the event cannot be encoded: {e}")))?;
        let request_id = request_id();
        let (tx, answer) = oneshot::channel();
        lock(&self.shared.pending).insert(request_id.clone(), tx);
        let invocation = Invocation {
            request_id: request_id.clone(),
            body: Bytes::from(body),
            deadline_ms: now_ms().saturating_add(timeout.as_millis() as u64),
        };
        if self.shared.queue.send(invocation).is_err() {
            lock(&self.shared.pending).remove(&request_id);
            return Err(InvokeError::Harness("the runtime API has stopped".into()));
        }
        Ok(PendingInvocation {
            request_id,
            answer,
            timeout,
        })
    }

    fn forget(&self, request_id: &str) {
        lock(&self.shared.pending).remove(request_id);
        lock(&self.shared.handed_out).remove(request_id);
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn header(name: &'static str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    HeaderValue::from_str(value)
        .ok()
        .map(|v| (HeaderName::from_static(name), v))
}

async fn next_event(State(shared): State<Arc<Shared>>) -> Response {
    let _ = shared.first_poll.set(Instant::now());
    shared.polls.fetch_add(1, Ordering::SeqCst);
    let invocation = shared.next.lock().await.recv().await;
    let Some(inv) = invocation else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "the runtime API stopped").into_response();
    };
    lock(&shared.handed_out).insert(inv.request_id.clone(), Instant::now());
    let trace = format!(
        "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0",
        now_ms() / 1000,
        REQUEST_COUNTER.load(Ordering::Relaxed),
        inv.deadline_ms
    );
    let mut headers = HeaderMap::new();
    for (name, value) in [
        header("lambda-runtime-aws-request-id", &inv.request_id),
        header("lambda-runtime-deadline-ms", &inv.deadline_ms.to_string()),
        header("lambda-runtime-invoked-function-arn", &shared.function_arn),
        header("lambda-runtime-trace-id", &trace),
        header("content-type", "application/json"),
    ]
    .into_iter()
    .flatten()
    {
        headers.insert(name, value);
    }
    (StatusCode::OK, headers, inv.body).into_response()
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [("content-type", "application/json")],
        r#"{"status":"OK"}"#,
    )
        .into_response()
}

fn unknown_request(id: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "application/json")],
        format!(
            r#"{{"errorMessage":"unknown or already answered request id {id}","errorType":"InvalidRequestID"}}"#
        ),
    )
        .into_response()
}

async fn invocation_response(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    answer(&shared, &id, Outcome::Response(body))
}

/// Deliver `outcome` to whoever waits for request `id`, with the time the function held it.
fn answer(shared: &Shared, id: &str, outcome: Outcome) -> Response {
    let handed_out = lock(&shared.handed_out).remove(id);
    let Some(tx) = lock(&shared.pending).remove(id) else {
        return unknown_request(id);
    };
    let _ = tx.send(Answered {
        outcome,
        handled_in: handed_out.map(|at| at.elapsed()),
    });
    accepted()
}

async fn invocation_error(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let error_type = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    answer(&shared, &id, Outcome::Error { error_type, body })
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    *lock(&shared.init_error) = Some(String::from_utf8_lossy(&body).into_owned());
    accepted()
}

async fn unknown_route(uri: axum::http::Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("the local runtime API has no route {}", uri.path()),
    )
        .into_response()
}

/// The Lambda variables every function process gets (besides the caller's).
fn lambda_env(name: &str, runtime: &RuntimeApi) -> Vec<(String, String)> {
    static STREAM: AtomicU64 = AtomicU64::new(0);
    let stream = format!(
        "2026/01/01/[$LATEST]{:016x}{:08x}{:04x}",
        now_ms(),
        std::process::id(),
        STREAM.fetch_add(1, Ordering::Relaxed)
    );
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime.address()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", stream),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A function binary running under its own [`RuntimeApi`]. Killed on drop.
pub struct LambdaProcess {
    name: String,
    runtime: RuntimeApi,
    child: Mutex<Child>,
    exit: Mutex<Option<ExitStatus>>,
    logs: Arc<Mutex<VecDeque<String>>>,
    /// Output readers started, and how many of them reached the end of their pipe.
    readers: usize,
    readers_done: Arc<AtomicU64>,
    /// Just before the process was started (init is measured from here).
    spawned: Instant,
}

fn collect_lines<R: Read + Send + 'static>(
    reader: R,
    stream: &'static str,
    logs: Arc<Mutex<VecDeque<String>>>,
    done: Arc<AtomicU64>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            let mut logs = lock(&logs);
            if logs.len() >= LOG_LINES_KEPT {
                logs.pop_front();
            }
            logs.push_back(format!("[{stream}] {line}"));
        }
        done.fetch_add(1, Ordering::SeqCst);
    });
}

impl LambdaProcess {
    /// Start `binary` as function `name` with exactly `env` plus the Lambda runtime variables:
    /// the parent's environment is not inherited, so no AWS setting of the machine leaks in.
    pub async fn spawn(
        name: &str,
        binary: &Path,
        env: &[(String, String)],
    ) -> Result<Self, InvokeError> {
        let runtime = RuntimeApi::start(name)
            .await
            .map_err(|e| InvokeError::Harness(format!("cannot start the runtime API: {e}")))?;
        let spawned = Instant::now();
        let mut child = Command::new(binary)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(lambda_env(name, &runtime))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| InvokeError::Harness(format!("cannot start {}: {e}", binary.display())))?;
        let logs = Arc::new(Mutex::new(VecDeque::new()));
        let readers_done = Arc::new(AtomicU64::new(0));
        let mut readers = 0;
        if let Some(out) = child.stdout.take() {
            collect_lines(out, "stdout", logs.clone(), readers_done.clone());
            readers += 1;
        }
        if let Some(err) = child.stderr.take() {
            collect_lines(err, "stderr", logs.clone(), readers_done.clone());
            readers += 1;
        }
        Ok(LambdaProcess {
            name: name.to_string(),
            runtime,
            child: Mutex::new(child),
            exit: Mutex::new(None),
            logs,
            readers,
            readers_done,
            spawned,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn runtime(&self) -> &RuntimeApi {
        &self.runtime
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        lock(&self.child).id()
    }

    /// Every output line so far (stdout and stderr, each prefixed with its stream).
    pub fn logs(&self) -> Vec<String> {
        lock(&self.logs).iter().cloned().collect()
    }

    fn log_tail(&self) -> String {
        let logs = lock(&self.logs);
        let from = logs.len().saturating_sub(LOG_TAIL);
        logs.iter()
            .skip(from)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The exit status, once the process has exited.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        let mut exit = lock(&self.exit);
        if exit.is_none() {
            *exit = lock(&self.child).try_wait().ok().flatten();
        }
        *exit
    }

    /// From just before the process started to its first `GET /next` (its init), once it
    /// polled.
    pub fn init_duration(&self) -> Option<Duration> {
        self.runtime
            .shared
            .first_poll
            .get()
            .map(|at| at.saturating_duration_since(self.spawned))
    }

    /// Wait until the function finished its init and polls for events.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), InvokeError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.runtime.polls() > 0 {
                return Ok(());
            }
            if let Some(status) = self.exit_status() {
                return Err(self.exited(status).await);
            }
            if Instant::now() >= deadline {
                return Err(InvokeError::Timeout {
                    function: self.name.clone(),
                    after: timeout,
                    logs: self.log_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// After the process exited: wait (briefly) until its last output lines are collected.
    async fn drain_output(&self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.readers_done.load(Ordering::SeqCst) < self.readers as u64
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn exited(&self, status: ExitStatus) -> InvokeError {
        self.drain_output().await;
        InvokeError::Exited {
            function: self.name.clone(),
            status: status.to_string(),
            init_error: self.runtime.init_error(),
            logs: self.log_tail(),
        }
    }

    /// Invoke the function with `event` and wait for its answer.
    pub async fn invoke(&self, event: &Value, timeout: Duration) -> Result<Value, InvokeError> {
        let pending = self.submit(event, timeout)?;
        self.answer(pending).await
    }

    /// Hand `event` to the function without waiting; [`LambdaProcess::answer`] waits.
    pub fn submit(
        &self,
        event: &Value,
        timeout: Duration,
    ) -> Result<PendingInvocation, InvokeError> {
        self.runtime.submit(event, timeout)
    }

    /// Wait for the answer to `pending`, failing early when the process exits.
    pub async fn answer(&self, pending: PendingInvocation) -> Result<Value, InvokeError> {
        self.answer_timed(pending).await.0
    }

    /// Invoke the function with `event`; its answer, and how long the function held the event
    /// (from `/next` handing it out to its `/response` or `/error`; `None` when it never
    /// answered).
    pub async fn invoke_timed(
        &self,
        event: &Value,
        timeout: Duration,
    ) -> (Result<Value, InvokeError>, Option<Duration>) {
        match self.submit(event, timeout) {
            Ok(pending) => self.answer_timed(pending).await,
            Err(e) => (Err(e), None),
        }
    }

    async fn answer_timed(
        &self,
        mut pending: PendingInvocation,
    ) -> (Result<Value, InvokeError>, Option<Duration>) {
        let deadline = Instant::now() + pending.timeout;
        let answered = loop {
            match tokio::time::timeout(Duration::from_millis(50), &mut pending.answer).await {
                Ok(Ok(answered)) => break answered,
                Ok(Err(_)) => {
                    let e = InvokeError::Harness("the runtime API dropped the invocation".into());
                    return (Err(e), None);
                }
                Err(_) => {}
            }
            if let Some(status) = self.exit_status() {
                // An answer may have raced the exit.
                if let Ok(answered) = pending.answer.try_recv() {
                    break answered;
                }
                self.runtime.forget(&pending.request_id);
                return (Err(self.exited(status).await), None);
            }
            if Instant::now() >= deadline {
                self.runtime.forget(&pending.request_id);
                let e = InvokeError::Timeout {
                    function: self.name.clone(),
                    after: pending.timeout,
                    logs: self.log_tail(),
                };
                return (Err(e), None);
            }
        };
        let result = match answered.outcome {
            Outcome::Response(body) => serde_json::from_slice(&body).map_err(|e| {
                InvokeError::Harness(format!(
                    "{} answered with something that is not JSON ({e}): {}",
                    self.name,
                    String::from_utf8_lossy(&body)
                ))
            }),
            Outcome::Error { error_type, body } => Err(InvokeError::Function {
                error_type,
                body: String::from_utf8_lossy(&body).into_owned(),
            }),
        };
        (result, answered.handled_in)
    }

    /// SIGKILL the process (a crash or a Lambda timeout) and reap it.
    pub fn kill(&self) -> Option<ExitStatus> {
        let mut child = lock(&self.child);
        let _ = child.kill();
        let status = child.wait().ok();
        drop(child);
        if let Some(s) = status {
            *lock(&self.exit) = Some(s);
        }
        status
    }
}

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The compiled function binaries of the workspace.
#[derive(Debug, Clone)]
pub struct FunctionBinaries {
    pub api: PathBuf,
    pub worker: PathBuf,
    pub reconciler: PathBuf,
}

/// Package and binary name of each function, in [`FunctionBinaries`] order.
const FUNCTIONS: [&str; 3] = ["onboard-api", "onboard-worker", "onboard-reconciler"];

/// The function binaries, up to date with their sources.
///
/// `cargo test --workspace` builds every package's binaries (each function crate has
/// integration tests), so they sit next to this test's `deps` directory. A narrower run
/// (`cargo test -p onboard-integration-tests`) does not build binaries of other packages: when
/// one is missing, or older than a source file its dep-info lists (or the lock file; without
/// dep-info, which `cargo test` does not write for them, any source of `shared/` and
/// `functions/`), this runs
/// `cargo build --locked -p onboard-api -p onboard-worker -p onboard-reconciler` into the same
/// target directory once per test process.
pub fn function_binaries() -> Result<&'static FunctionBinaries, String> {
    static BINARIES: OnceLock<Result<FunctionBinaries, String>> = OnceLock::new();
    BINARIES
        .get_or_init(locate_or_build)
        .as_ref()
        .map_err(Clone::clone)
}

fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or(manifest.clone(), Path::to_path_buf)
}

/// `<target>/<profile>`: the directory holding this test executable's `deps` directory.
fn profile_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the running test executable: {e}"))?;
    let deps = exe
        .parent()
        .filter(|d| d.file_name().is_some_and(|n| n == "deps"))
        .ok_or_else(|| {
            format!(
                "the test executable {} is not in a cargo `deps` directory; run it with cargo test",
                exe.display()
            )
        })?;
    deps.parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("{} has no parent", deps.display()))
}

fn binary_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// Why `binary` must be rebuilt, if it must.
fn stale_reason(binary: &Path) -> Option<String> {
    let built = match std::fs::metadata(binary).and_then(|m| m.modified()) {
        Ok(t) => t,
        Err(_) => return Some(format!("{} is missing", binary.display())),
    };
    let dep_info = binary.with_extension("d");
    let root = workspace_root();
    let mut inputs = vec![root.join("Cargo.lock"), root.join("Cargo.toml")];
    match std::fs::read_to_string(&dep_info) {
        Ok(text) => inputs.extend(dep_info_inputs(&text)),
        // `cargo test` links the binary (a hard link of deps/NAME-HASH) without writing
        // NAME.d; rebuilding it then with `cargo build` would recompile the workspace crates
        // (without the testkit feature `cargo test --workspace` unifies in). Judge it by every
        // source of the crates functions are built from instead.
        Err(_) => {
            for dir in ["shared", "functions"] {
                workspace_sources(&root.join(dir), &mut inputs);
            }
        }
    }
    // Manifests of the workspace packages the binary is built from (features, dependencies).
    let manifests: Vec<PathBuf> = inputs
        .iter()
        .filter(|p| p.starts_with(&root))
        .filter_map(|p| {
            p.ancestors()
                .skip(1)
                .take_while(|a| a.starts_with(&root) && *a != root)
                .map(|a| a.join("Cargo.toml"))
                .find(|m| m.is_file())
        })
        .collect();
    inputs.extend(manifests);
    inputs.iter().find_map(
        |input| match std::fs::metadata(input).and_then(|m| m.modified()) {
            Ok(t) if t <= built => None,
            Ok(_) => Some(format!("{} changed after it was built", input.display())),
            Err(_) => Some(format!("its input {} is gone", input.display())),
        },
    )
}

/// Every `.rs` file and manifest under `dir` (no `target` or hidden folders).
fn workspace_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" && name != "node_modules" {
                workspace_sources(&path, out);
            }
        } else if name.ends_with(".rs") || name == "Cargo.toml" {
            out.push(path);
        }
    }
}

/// The inputs a Makefile-style dep-info file lists (`target: a.rs b\ c.rs ...`).
fn dep_info_inputs(text: &str) -> Vec<PathBuf> {
    let first = text.lines().next().unwrap_or_default();
    // The target itself ends at the first unescaped `: `.
    let Some(split) = first.find(": ") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = first[split + 2..].chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                current.push(' ');
                chars.next();
            }
            ' ' => {
                if !current.is_empty() {
                    out.push(PathBuf::from(std::mem::take(&mut current)));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(PathBuf::from(current));
    }
    out
}

fn locate_or_build() -> Result<FunctionBinaries, String> {
    let dir = profile_dir()?;
    let paths: Vec<PathBuf> = FUNCTIONS.iter().map(|n| binary_path(&dir, n)).collect();
    let stale: Vec<String> = paths.iter().filter_map(|p| stale_reason(p)).collect();
    if !stale.is_empty() {
        build(&dir, &stale)?;
        if let Some(reason) = paths.iter().find_map(|p| stale_reason(p)) {
            return Err(format!(
                "cargo built the function binaries, but {reason}; is CARGO_TARGET_DIR or \
                 --target in use? The binaries are expected in {}",
                dir.display()
            ));
        }
    }
    match paths.as_slice() {
        [api, worker, reconciler] => Ok(FunctionBinaries {
            api: api.clone(),
            worker: worker.clone(),
            reconciler: reconciler.clone(),
        }),
        _ => Err("internal: expected three function binaries".into()),
    }
}

fn build(profile_dir: &Path, why: &[String]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
    let root = workspace_root();
    let mut cmd = Command::new(&cargo);
    cmd.arg("build")
        .arg("--locked")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"));
    if let Some(target_dir) = profile_dir.parent() {
        cmd.arg("--target-dir").arg(target_dir);
    }
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.arg("--profile").arg(other);
        }
    }
    for name in FUNCTIONS {
        cmd.arg("-p").arg(name);
    }
    eprintln!(
        "lambda e2e: building the function binaries ({}): {cmd:?}",
        why.join("; ")
    );
    let started = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`cargo build` of the function binaries failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    eprintln!(
        "lambda e2e: function binaries built in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_info_lists_inputs_with_escaped_spaces() {
        let text = "/t/debug/onboard-api: /w/a.rs /w/my\\ dir/b.rs  /w/c.rs\n\n/w/a.rs:\n";
        assert_eq!(
            dep_info_inputs(text),
            vec![
                PathBuf::from("/w/a.rs"),
                PathBuf::from("/w/my dir/b.rs"),
                PathBuf::from("/w/c.rs")
            ]
        );
    }
}
