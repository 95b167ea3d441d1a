//! `onboard plan` runs the saga's preflight: on the in-process sandbox, and against "AWS" with
//! `--live` (here the standalone sandbox behind `--endpoint-url`, with test credentials: no
//! test reaches AWS). Every finding is printed with its severity, evidence and fix, in text and
//! JSON; an error finding exits 2. The access URL is served by a local page server.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a broken fixture should fail loudly

use std::path::PathBuf;

use assert_cmd::cargo::cargo_bin_cmd;
use assert_cmd::Command;
use axum::http::header::{CONTENT_SECURITY_POLICY, X_FRAME_OPTIONS};
use axum::routing::get;
use axum::Router;
use onboard_sandbox::{Sandbox, SandboxConfig, SeedConfig, ThrottleConfig};
use predicates::prelude::*;
use serde_json::{json, Value};
use tempfile::TempDir;

const EAST: &str = "11111111-1111-4111-8111-111111111111";
const LEGACY: &str = "33333333-3333-4333-8333-333333333333";
const OPERATOR: &str = "arn:aws:iam::111122223333:role/OnboardingOperator";
const LEGACY_OPERATOR: &str = "arn:aws:iam::111122223333:user/legacy-operator";

/// Runs `serve` on its own runtime for the life of the test process; returns its result.
fn background<T: Send + 'static>(
    serve: impl FnOnce(
            std::sync::mpsc::Sender<T>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>
        + Send
        + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(serve(tx));
    });
    rx.recv().unwrap()
}

/// `/csp` allows AWS's recommended frame ancestors, `/deny` sends `X-Frame-Options: DENY`.
fn page_server() -> String {
    background(|tx| {
        Box::pin(async move {
            let app = Router::new()
                .route(
                    "/csp",
                    get(|| async {
                        (
                            [(
                                CONTENT_SECURITY_POLICY,
                                "frame-ancestors https://*.my.connect.aws https://*.awsapps.com",
                            )],
                            "<html>ok</html>",
                        )
                    }),
                )
                .route(
                    "/deny",
                    get(|| async { ([(X_FRAME_OPTIONS, "DENY")], "<html>no</html>") }),
                );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("http://{}", listener.local_addr().unwrap()))
                .unwrap();
            axum::serve(listener, app).await.unwrap();
        })
    })
}

/// The demo world as a standalone sandbox endpoint (what `--endpoint-url` points at).
fn sandbox_endpoint() -> String {
    background(|tx| {
        Box::pin(async move {
            let sandbox = Sandbox::start(SandboxConfig {
                seed: SeedConfig::demo(),
                throttle: ThrottleConfig::unlimited(),
                ..SandboxConfig::default()
            })
            .await
            .unwrap();
            tx.send(sandbox.endpoint()).unwrap();
            std::future::pending::<()>().await;
        })
    })
}

fn onboard(state: &TempDir) -> Command {
    let mut cmd = cargo_bin_cmd!("onboard");
    for var in [
        "ONBOARD_TABLE",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "HTTP_PROXY",
        "HTTPS_PROXY",
    ] {
        cmd.env_remove(var);
    }
    cmd.arg("--state-dir").arg(state.path());
    cmd
}

/// A spec for `instances` (granting demo-east's Agent profile) served at `access_url`.
fn spec_file(state: &TempDir, access_url: &str, instances: &[&str]) -> PathBuf {
    let spec = json!({
        "displayName": "Acme CRM",
        "accessUrl": access_url,
        "namespace": "crm.acme.example",
        "permissions": ["User.Details.View"],
        "instances": instances,
        "securityProfiles": [{"instance": EAST, "profiles": ["11111111-1111-4111-8111-000000000001"]}],
        "requester": {"source": "CLI", "principal": OPERATOR}
    });
    let path = state.path().join("spec.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    path
}

fn stdout_json(out: &[u8]) -> Value {
    serde_json::from_slice(out).unwrap_or_else(|e| {
        panic!("not JSON ({e}):\n{}", String::from_utf8_lossy(out));
    })
}

#[test]
fn plan_on_the_sandbox_prints_every_finding_with_severity_evidence_and_fix() {
    let base = page_server();
    let state = TempDir::new().unwrap();
    let spec = spec_file(&state, &format!("{base}/deny"), &[EAST, LEGACY]);
    onboard(&state)
        .args(["--sandbox", "plan", "--principal", LEGACY_OPERATOR])
        .arg(&spec)
        .assert()
        .code(2)
        .stdout(predicate::str::contains(
            "Preflight findings (2 error(s), 4 warning(s)",
        ))
        .stdout(predicate::str::contains(format!(
            "ERROR [instance] instance {LEGACY} does not use a service-linked role"
        )))
        .stdout(predicate::str::contains("fix: Migrate the instance"))
        .stdout(predicate::str::contains(format!(
            "ERROR [permissions] {LEGACY_OPERATOR} is missing \
             app-integrations:CreateApplicationAssociation, \
             app-integrations:DeleteApplicationAssociation:"
        )))
        .stdout(predicate::str::contains(
            "\"Resource\": \"arn:aws:app-integrations:us-east-1:111122223333:application-association/*\"",
        ))
        .stdout(predicate::str::contains("WARNING [embedding]"))
        .stdout(predicate::str::contains("X-Frame-Options: DENY"))
        .stdout(predicate::str::contains(
            "embedding: https://demo-east.my.connect.aws cannot iframe",
        ))
        .stdout(predicate::str::contains("would refuse this spec"));

    let out = onboard(&state)
        .args(["--sandbox", "--output", "json", "plan", "--principal"])
        .arg(LEGACY_OPERATOR)
        .arg(&spec)
        .assert()
        .code(2)
        .get_output()
        .stdout
        .clone();
    let plan = stdout_json(&out);
    assert_eq!(plan["valid"], false);
    assert_eq!(plan["checked"], true);
    assert_eq!(plan["permissionsOf"], LEGACY_OPERATOR);
    let findings = plan["findings"].as_array().unwrap();
    let summary: Vec<(&str, &str)> = findings
        .iter()
        .map(|f| {
            (
                f["severity"].as_str().unwrap(),
                f["check"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("ERROR", "instance"),
            ("ERROR", "permissions"),
            ("WARNING", "embedding"),
            ("WARNING", "embedding"),
            ("WARNING", "embedding"),
            ("WARNING", "embedding"),
        ],
        "{findings:#?}"
    );
    for f in findings {
        assert!(!f["evidence"].as_str().unwrap().is_empty());
        assert!(!f["fix"].as_str().unwrap().is_empty());
    }
    let permissions = &findings[1];
    let missing = permissions["evidence"].as_str().unwrap();
    assert!(!missing.contains("iam:PutRolePolicy") && !missing.contains("connect:"));
    // Both domains of each instance are blocked; the verdicts quote the header.
    let east: Vec<&Value> = plan["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["instance"] == EAST)
        .collect();
    assert_eq!(east.len(), 2);
    assert!(east
        .iter()
        .all(|d| d["decision"] == "BLOCKED" && d["evidence"].as_str().unwrap().contains("DENY")));
    assert!(
        !state.path().join("sagas.redb").exists(),
        "plan writes nothing"
    );
}

#[test]
fn plan_on_the_sandbox_of_a_clean_spec_has_no_errors_and_simulates_the_requester() {
    let base = page_server();
    let state = TempDir::new().unwrap();
    let spec = spec_file(&state, &format!("{base}/csp"), &[EAST]);
    let out = onboard(&state)
        .args(["--sandbox", "--output", "json", "plan"])
        .arg(&spec)
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let plan = stdout_json(&out);
    assert_eq!(plan["valid"], true);
    assert_eq!(plan["findings"], json!([]), "{plan:#}");
    assert_eq!(plan["permissionsOf"], OPERATOR, "the spec's requester");
    assert!(plan["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["decision"] == "ALLOWED"));
    onboard(&state)
        .args(["--sandbox", "plan"])
        .arg(&spec)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("Preflight: no findings"))
        .stdout(predicate::str::contains(format!(
            "permissions simulated for {OPERATOR}"
        )));
}

/// Against AWS, plan is offline unless `--live`; with it the same preflight runs through the
/// SDK (here pointed at the standalone sandbox).
#[test]
fn plan_live_runs_preflight_against_the_endpoint_and_offline_does_not() {
    let endpoint = sandbox_endpoint();
    let base = page_server();
    let state = TempDir::new().unwrap();
    let spec = spec_file(&state, &format!("{base}/csp"), &[EAST, LEGACY]);
    let aws = |cmd: &mut Command| {
        cmd.env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .args(["--endpoint-url", &endpoint, "--output", "json"]);
    };

    let mut offline = onboard(&state);
    aws(&mut offline);
    let out = offline
        .arg("plan")
        .arg(&spec)
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let plan = stdout_json(&out);
    assert_eq!(
        (plan["target"].as_str(), plan["checked"].as_bool()),
        (Some("aws"), Some(false))
    );
    assert_eq!(plan["findings"], json!([]));

    let mut live = onboard(&state);
    aws(&mut live);
    let out = live
        .args(["plan", "--live", "--principal", OPERATOR])
        .arg(&spec)
        .assert()
        .code(2)
        .get_output()
        .stdout
        .clone();
    let plan = stdout_json(&out);
    assert_eq!(
        (plan["target"].as_str(), plan["checked"].as_bool()),
        (Some("aws"), Some(true))
    );
    assert_eq!(plan["instances"][0]["alias"], "demo-east");
    assert_eq!(plan["permissionsOf"], OPERATOR);
    let errors: Vec<&Value> = plan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "ERROR")
        .collect();
    assert_eq!(errors.len(), 1, "{plan:#}");
    assert!(errors[0]["evidence"].as_str().unwrap().contains(LEGACY));
}
