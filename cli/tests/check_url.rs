//! `onboard check-url` against a local page server (axum on 127.0.0.1:0, in this process):
//! the verdict per agent-workspace domain, the fix, and the exit code.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a broken fixture should fail loudly

use assert_cmd::cargo::cargo_bin_cmd;
use assert_cmd::Command;
use axum::http::header::{CONTENT_SECURITY_POLICY, X_FRAME_OPTIONS};
use axum::routing::get;
use axum::Router;
use predicates::prelude::*;
use serde_json::Value;
use tempfile::TempDir;

/// Serves `/csp` (frame-ancestors allowing AWS's recommendation) and `/deny`
/// (`X-Frame-Options: DENY`) on a free loopback port, for the life of the test process.
fn page_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
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
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    format!("http://{addr}")
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

#[test]
fn a_page_allowing_the_agent_workspace_exits_0() {
    let base = page_server();
    let state = TempDir::new().unwrap();
    onboard(&state)
        .args([
            "check-url",
            &format!("{base}/csp"),
            "--instance",
            "my-center",
        ])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("https://my-center.my.connect.aws"))
        .stdout(predicate::str::contains("https://my-center.awsapps.com"))
        .stdout(predicate::str::contains("allowed"))
        .stdout(predicate::str::contains("blocked").not());
}

#[test]
fn x_frame_options_deny_exits_5_with_the_fix() {
    let base = page_server();
    let state = TempDir::new().unwrap();
    onboard(&state)
        .args([
            "check-url",
            &format!("{base}/deny"),
            "--instance",
            "my-center",
        ])
        .assert()
        .code(5)
        .stdout(predicate::str::contains("blocked"))
        .stdout(predicate::str::contains("X-Frame-Options: DENY"))
        .stdout(predicate::str::contains(
            "Content-Security-Policy: frame-ancestors https://my-center.my.connect.aws",
        ))
        .stdout(predicate::str::contains(
            "frame-ancestors source needed: https://my-center.awsapps.com",
        ));

    // The same as one JSON document, with an instance id resolved on the sandbox.
    let out = onboard(&state)
        .args([
            "--sandbox",
            "--output",
            "json",
            "check-url",
            &format!("{base}/deny"),
            "--instance",
            "11111111-1111-4111-8111-111111111111",
        ])
        .assert()
        .code(5)
        .get_output()
        .stdout
        .clone();
    let report: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["status"], 200);
    let domains = report["domains"].as_array().unwrap();
    assert_eq!(domains.len(), 2);
    assert_eq!(domains[0]["alias"], "demo-east");
    assert_eq!(domains[0]["decision"], "BLOCKED");
    assert_eq!(domains[0]["source"], "https://demo-east.my.connect.aws");
    assert!(domains[0]["fix"]
        .as_str()
        .unwrap()
        .contains("frame-ancestors https://demo-east.my.connect.aws"));
}

#[test]
fn help_documents_exit_code_5() {
    let state = TempDir::new().unwrap();
    onboard(&state)
        .args(["check-url", "--help"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "5 any domain is blocked or unknown",
        ));
}
