//! `onboard serve --sandbox` end to end: the built binary on a free port with its own temporary
//! `--state-dir`, driven over HTTP (a minimal hyper client). Every server is killed when its
//! test ends, panics included.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a broken fixture should fail loudly

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tempfile::TempDir;

const PRINCIPAL: &str = "you@example.com";

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// `onboard` with no AWS or webhook configuration from the environment.
fn onboard(state: &TempDir) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_onboard"));
    for var in [
        "ONBOARD_TABLE",
        "ONBOARD_WEBHOOK_SECRET",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
    ] {
        cmd.env_remove(var);
    }
    cmd.arg("--state-dir").arg(state.path());
    cmd
}

/// A running `onboard serve --sandbox`; killed on drop.
struct Server {
    child: Child,
    url: String,
    /// The per-run token it printed.
    token: String,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    /// Start it on a free port and wait for the ready line.
    fn start(state: &TempDir) -> Server {
        Self::start_with(state, &[])
    }

    /// [`Server::start`] with more `serve` arguments.
    fn start_with(state: &TempDir, extra: &[&str]) -> Server {
        let mut child = onboard(state)
            .args(["serve", "--sandbox", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn onboard serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Owned before any wait, so a failed start still kills the child.
        let mut server = Server {
            child,
            url: String::new(),
            token: String::new(),
            lines,
            seen: Vec::new(),
        };
        server.wait_for_line(|l| l.starts_with("ready"));
        server.url = server
            .seen
            .iter()
            .find_map(|l| l.strip_prefix("listening on "))
            .expect("a `listening on URL` line before `ready`")
            .to_string();
        server.token = server
            .seen
            .iter()
            .find(|l| l.starts_with("token "))
            .and_then(|l| l.rsplit(": ").next())
            .expect("a `token (...): TOKEN` line before `ready`")
            .to_string();
        server
    }

    /// Read stdout until a line matches; the matching line.
    fn wait_for_line(&mut self, want: impl Fn(&str) -> bool) -> String {
        if let Some(l) = self.seen.iter().find(|l| want(l)) {
            return l.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no expected line from onboard serve ({e}); output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn authority(&self) -> &str {
        self.url.trim_start_matches("http://")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Response {
    status: u16,
    headers: hyper::HeaderMap,
    body: Vec<u8>,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// One HTTP/1.1 request on a fresh connection, as [`PRINCIPAL`] with the server's token and
/// Host unless `headers` name another `x-onboard-principal`, `authorization` or `host` (an
/// empty value sends none).
async fn call(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Response {
    let stream = tokio::net::TcpStream::connect(server.authority())
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let host = headers
        .iter()
        .find(|(k, _)| *k == "host")
        .map_or(server.authority(), |(_, v)| *v);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    if !headers.iter().any(|(k, _)| *k == "x-onboard-principal") {
        req = req.header("x-onboard-principal", PRINCIPAL);
    }
    if !headers.iter().any(|(k, _)| *k == "authorization") {
        req = req.header("authorization", format!("Bearer {}", server.token));
    }
    for (k, v) in headers
        .iter()
        .filter(|(k, v)| !v.is_empty() && *k != "host")
    {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Response {
        status,
        headers,
        body,
    }
}

async fn submit(server: &Server, spec: &str) -> Response {
    call(
        server,
        "POST",
        "/applications",
        &[
            ("content-type", "application/json"),
            ("x-onboard-principal", PRINCIPAL),
        ],
        std::fs::read(example(spec)).unwrap(),
    )
    .await
}

/// Poll a status URL until the saga ends; its final view.
async fn poll_until_done(server: &Server, location: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let resp = call(server, "GET", location, &[], Vec::new()).await;
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
        let view = resp.json();
        match view["status"].as_str().unwrap() {
            "PENDING" | "RUNNING" | "ROLLING_BACK" => {}
            _ => return view,
        }
        assert!(Instant::now() < deadline, "saga still running: {view:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_onboarded(view: &Value) {
    assert_eq!(view["status"], "SUCCEEDED", "{view:#}");
    let app = view["resources"]["applicationArn"].as_str().unwrap();
    assert!(app.starts_with("arn:aws:app-integrations:"), "{app}");
    let assoc = view["resources"]["associations"].as_object().unwrap();
    assert_eq!(assoc.len(), 2, "{view:#}");
    assert!(
        assoc
            .values()
            .all(|a| a.as_str().unwrap().starts_with("arn:aws:connect:")),
        "{view:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_runs_a_submitted_saga_and_answers_with_problems() {
    let state = TempDir::new().unwrap();
    let mut server = Server::start(&state);
    assert!(
        server
            .seen
            .iter()
            .any(|l| l.starts_with("webhook secret (generated")),
        "{:?}",
        server.seen
    );

    let health = call(&server, "GET", "/health", &[], Vec::new()).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");

    let accepted = submit(&server, "crm-panel.json").await;
    assert_eq!(
        accepted.status,
        202,
        "{}",
        String::from_utf8_lossy(&accepted.body)
    );
    let location = accepted.header("location").to_string();
    let body = accepted.json();
    let id = body["sagaId"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/applications/{id}"));
    assert_eq!(body["queued"], true);
    let view = poll_until_done(&server, &location).await;
    assert_onboarded(&view);
    server.wait_for_line(|l| l == format!("saga {id}: SUCCEEDED — the application is onboarded"));

    let invalid = submit(&server, "invalid.json").await;
    assert_eq!(invalid.status, 400);
    assert_eq!(invalid.header("content-type"), "application/problem+json");
    let problem = invalid.json();
    assert_eq!(problem["status"], 400);
    let problems = problem["problems"].as_array().unwrap();
    assert!(problems.len() > 1, "{problem:#}");
    assert!(problems.iter().all(|p| p["fix"].is_string()), "{problem:#}");

    // Without the local principal header nothing is recorded.
    let anonymous = call(
        &server,
        "POST",
        "/applications",
        &[
            ("content-type", "application/json"),
            ("x-onboard-principal", ""),
        ],
        std::fs::read(example("knowledge-tool.json")).unwrap(),
    )
    .await;
    assert_eq!(anonymous.status, 401);
    let list = call(&server, "GET", "/applications", &[], Vec::new()).await;
    assert_eq!(list.json()["items"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_resumes_a_pending_saga_left_in_the_store() {
    use onboard_core::clock::SystemClock;
    use onboard_core::idempotency::IdempotencyConfig;
    use onboard_core::onboard::{self, OnboardConfig};
    use onboard_core::service::{NoQueue, Onboarding};
    use onboard_core::spec::parse_spec;

    let state = TempDir::new().unwrap();
    // What a killed `serve` leaves behind: a recorded saga that never ran.
    {
        let store = onboard_embedded::RedbSagaStore::open(&state.path().join("sagas.redb"))
            .expect("open the saga log");
        let onboarding = Onboarding {
            store: Arc::new(store),
            clock: Arc::new(SystemClock),
            queue: Arc::new(NoQueue),
            definition: Arc::new(onboard::definition(&OnboardConfig::default())),
            idempotency: IdempotencyConfig::default(),
        };
        let spec = parse_spec(&std::fs::read(example("crm-panel.json")).unwrap()).unwrap();
        onboarding
            .submit(&spec, None, || "sg-left-over".into())
            .await
            .unwrap();
    }
    // The saga was recorded by another principal (the spec's requester): the local operator
    // reads it as an administrator.
    let mut server = Server::start_with(&state, &["--admin", PRINCIPAL]);
    assert!(
        server
            .seen
            .iter()
            .any(|l| l.contains("resuming 1 unfinished saga(s)") && l.contains("sg-left-over")),
        "{:?}",
        server.seen
    );
    let view = poll_until_done(&server, "/applications/sg-left-over").await;
    assert_onboarded(&view);
    server.wait_for_line(|l| l.starts_with("saga sg-left-over: SUCCEEDED"));
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_serve_cleanly_with_exit_0() {
    let state = TempDir::new().unwrap();
    let mut server = Server::start(&state);
    let pid = server.child.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(sent.success());
    server.wait_for_line(|l| l == "stopped");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not exit after Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{:?}", server.seen);
}

#[test]
fn serve_refuses_an_address_in_use_and_explains_the_principal_header() {
    let state = TempDir::new().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = onboard(&state)
        .args(["serve", "--sandbox", "--listen"])
        .arg(taken.local_addr().unwrap().to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");

    let help = onboard(&state).args(["serve", "--help"]).output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("X-Onboard-Principal"), "{help}");
    assert!(help.contains("TRUSTED AS SENT"), "{help}");
    assert!(help.contains("ONBOARD_WEBHOOK_SECRET"), "{help}");
}

/// `POST /preflight` on `serve` runs the saga's preflight on the sandbox: a legacy caller is told
/// the two association actions it lacks, and an instance without an SLR is an error finding.
#[tokio::test(flavor = "multi_thread")]
async fn serve_preflight_reads_the_sandbox_and_simulates_the_caller() {
    let state = TempDir::new().unwrap();
    let server = Server::start(&state);
    let mut spec: Value =
        serde_json::from_slice(&std::fs::read(example("crm-panel.json")).unwrap()).unwrap();
    spec["instances"] = serde_json::json!([
        "11111111-1111-4111-8111-111111111111",
        "33333333-3333-4333-8333-333333333333"
    ]);
    spec["securityProfiles"] = serde_json::json!([]);
    let r = call(
        &server,
        "POST",
        "/preflight",
        &[
            ("content-type", "application/json"),
            (
                "x-onboard-principal",
                "arn:aws:iam::111122223333:user/legacy-operator",
            ),
        ],
        spec.to_string().into_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["ok"], false, "{body:#}");
    let errors: Vec<(&str, &str)> = body["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "ERROR")
        .map(|f| {
            (
                f["check"].as_str().unwrap(),
                f["evidence"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(errors.len(), 2, "{body:#}");
    assert_eq!(errors[0].0, "instance");
    assert!(errors[0].1.contains("33333333-3333-4333-8333-333333333333"));
    assert_eq!(errors[1].0, "permissions");
    assert!(errors[1]
        .1
        .contains("CreateApplicationAssociation, app-integrations:DeleteApplicationAssociation"));
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_runs_lifecycle_sagas_and_keeps_the_sandbox_world_saved() {
    let state = TempDir::new().unwrap();
    let mut server = Server::start(&state);
    let accepted = submit(&server, "crm-panel.json").await;
    let app = accepted.json()["sagaId"].as_str().unwrap().to_string();
    assert_onboarded(&poll_until_done(&server, accepted.header("location")).await);
    let auth = [("x-onboard-principal", PRINCIPAL)];

    let pause = call(
        &server,
        "POST",
        &format!("/applications/{app}/instances/22222222-2222-4222-8222-222222222222/pause"),
        &auth,
        Vec::new(),
    )
    .await;
    assert_eq!(
        pause.status,
        202,
        "{}",
        String::from_utf8_lossy(&pause.body)
    );
    let view = poll_until_done(&server, pause.header("location")).await;
    assert_eq!(
        (view["kind"].as_str(), view["status"].as_str()),
        (Some("change"), Some("SUCCEEDED")),
        "{view:#}"
    );

    let off = call(
        &server,
        "DELETE",
        &format!("/applications/{app}"),
        &auth,
        Vec::new(),
    )
    .await;
    assert_eq!(off.status, 202, "{}", String::from_utf8_lossy(&off.body));
    let view = poll_until_done(&server, off.header("location")).await;
    assert_eq!(
        (view["kind"].as_str(), view["status"].as_str()),
        (Some("offboard"), Some("SUCCEEDED")),
        "{view:#}"
    );
    let off_id = view["id"].as_str().unwrap().to_string();
    server.wait_for_line(|l| l.starts_with(&format!("saga {off_id}: SUCCEEDED")));
    let root = call(
        &server,
        "GET",
        &format!("/applications/{app}"),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(root.json()["application"]["offboarded"], true);

    // Saved after every recorded transition (and before the saga's end is announced): the world
    // on disk has no application any more, while the server still runs.
    let world: Value = serde_json::from_str(
        &std::fs::read_to_string(state.path().join("sandbox-world.json")).unwrap(),
    )
    .unwrap();
    assert!(
        world["applications"].as_object().unwrap().is_empty(),
        "{}",
        world["applications"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_lets_only_the_owner_and_an_admin_read_or_change_an_application() {
    const ADMIN: &str = "admin@example.com";
    let state = TempDir::new().unwrap();
    let server = Server::start_with(&state, &["--admin", ADMIN]);
    let accepted = submit(&server, "crm-panel.json").await;
    let app = accepted.json()["sagaId"].as_str().unwrap().to_string();
    assert_onboarded(&poll_until_done(&server, accepted.header("location")).await);
    let world_file = state.path().join("sandbox-world.json");
    let world_before = std::fs::read_to_string(&world_file).unwrap();

    let mallory = [
        ("x-onboard-principal", "mallory@example.com"),
        ("content-type", "application/json"),
    ];
    let pause = format!("/applications/{app}/instances/22222222-2222-4222-8222-222222222222/pause");
    for (method, path, body) in [
        ("GET", format!("/applications/{app}"), ""),
        ("GET", "/applications".to_string(), ""),
        ("POST", pause.clone(), ""),
        (
            "PATCH",
            format!("/applications/{app}"),
            r#"{"displayName": "Hijacked"}"#,
        ),
        ("DELETE", format!("/applications/{app}"), ""),
    ] {
        let r = call(&server, method, &path, &mallory, body.as_bytes().to_vec()).await;
        if path == "/applications" {
            assert_eq!(r.status, 200);
            assert_eq!(
                r.json()["items"],
                serde_json::json!([]),
                "a stranger lists nothing"
            );
            continue;
        }
        assert_eq!(
            r.status,
            403,
            "{method} {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["type"], "urn:connect-onboarding:problem:forbidden");
    }
    assert_eq!(
        std::fs::read_to_string(&world_file).unwrap(),
        world_before,
        "the sandbox world is unchanged"
    );

    let r = call(
        &server,
        "POST",
        &pause,
        &[("x-onboard-principal", ADMIN)],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let view = poll_until_done(&server, r.header("location")).await;
    assert_eq!(view["status"], "SUCCEEDED", "{view:#}");
    assert_eq!(
        view["log"][0]["detail"],
        "admin@example.com may change: rule admin"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_refuses_other_hosts_foreign_origins_and_requests_without_its_token() {
    let state = TempDir::new().unwrap();
    let server = Server::start(&state);
    let port = server.authority().rsplit(':').next().unwrap().to_string();
    let spec = || std::fs::read(example("crm-panel.json")).unwrap();
    let json = ("content-type", "application/json");

    // DNS rebinding: the attacker's name resolves to 127.0.0.1, the Host header stays theirs.
    let rebound = format!("attacker.example:{port}");
    let r = call(
        &server,
        "POST",
        "/applications",
        &[json, ("host", &rebound)],
        spec(),
    )
    .await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("attacker.example"));

    // A page of another site posting to localhost: the browser names its origin.
    let r = call(
        &server,
        "POST",
        "/applications",
        &[json, ("origin", "https://attacker.example")],
        spec(),
    )
    .await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));

    // No token (or a wrong one): 401, for reads too.
    for auth in ["", "Bearer not-the-token"] {
        let r = call(
            &server,
            "POST",
            "/applications",
            &[json, ("authorization", auth)],
            spec(),
        )
        .await;
        assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
        let r = call(
            &server,
            "GET",
            "/applications",
            &[("authorization", auth)],
            Vec::new(),
        )
        .await;
        assert_eq!(r.status, 401);
    }
    let list = call(&server, "GET", "/applications", &[], Vec::new()).await;
    assert_eq!(
        list.json()["items"],
        serde_json::json!([]),
        "nothing was recorded"
    );

    // Liveness and the API description stay open; the same origin and localhost are fine.
    let health = call(
        &server,
        "GET",
        "/health",
        &[("authorization", "")],
        Vec::new(),
    )
    .await;
    assert_eq!(health.status, 200);
    let same_origin = format!("http://localhost:{port}");
    let localhost = format!("localhost:{port}");
    let r = call(
        &server,
        "POST",
        "/applications",
        &[json, ("origin", &same_origin), ("host", &localhost)],
        spec(),
    )
    .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
}

/// The preflight's framing check fetches the access URL from the operator's machine: without
/// `--allow-private-fetch` a URL on a private network (here loopback) is never contacted, and
/// the finding says why; with it, the fetch is made.
#[tokio::test(flavor = "multi_thread")]
async fn serve_preflight_fetches_a_private_access_url_only_with_the_flag() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let accepted = |l: &std::net::TcpListener| {
        let mut n = 0;
        while let Ok((mut s, _)) = l.accept() {
            use std::io::Write;
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            n += 1;
        }
        n
    };
    let mut spec: Value =
        serde_json::from_slice(&std::fs::read(example("crm-panel.json")).unwrap()).unwrap();
    spec["accessUrl"] = Value::String(format!("https://127.0.0.1:{port}/agent-panel"));
    spec["namespace"] = Value::String("private.example.com".into());
    spec["approvedOrigins"] = serde_json::json!([]);
    let framing = |body: &Value| -> String { body["findings"].to_string() };
    let body = spec.to_string().into_bytes();
    async fn preflight(server: &Server, body: Vec<u8>) -> Response {
        call(
            server,
            "POST",
            "/preflight",
            &[("content-type", "application/json")],
            body,
        )
        .await
    }

    let state = TempDir::new().unwrap();
    let server = Server::start(&state);
    let r = preflight(&server, body.clone()).await;
    assert_eq!(r.status, 200);
    let finding = framing(&r.json());
    assert!(finding.contains("is not a public address"), "{finding}");
    assert_eq!(accepted(&listener), 0, "the private address was contacted");
    drop(server);

    let state = TempDir::new().unwrap();
    let server = Server::start_with(&state, &["--allow-private-fetch"]);
    let r = preflight(&server, body.clone()).await;
    assert_eq!(r.status, 200);
    assert!(accepted(&listener) >= 1, "{}", framing(&r.json()));
}
