//! The `onboard` binary end to end: plan, apply, status, list and retry on the in-process
//! sandbox, checking output and exit codes. Every test has its own temporary `--state-dir`, so
//! tests run in parallel and leave nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a broken fixture should fail loudly

use std::path::PathBuf;

use assert_cmd::cargo::cargo_bin_cmd;
use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::{json, Value};
use tempfile::TempDir;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// `onboard` with no AWS configuration from the environment and its own state directory.
fn onboard(state: &TempDir) -> Command {
    let mut cmd = cargo_bin_cmd!("onboard");
    for var in [
        "ONBOARD_TABLE",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
    ] {
        cmd.env_remove(var);
    }
    cmd.arg("--state-dir").arg(state.path());
    cmd
}

fn stdout_json(out: &[u8]) -> Value {
    serde_json::from_slice(out).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}",
            String::from_utf8_lossy(out)
        )
    })
}

fn status_json(state: &TempDir, id: Option<&str>) -> Value {
    let mut cmd = onboard(state);
    cmd.args(["--sandbox", "--output", "json", "status"]);
    if let Some(id) = id {
        cmd.arg(id);
    }
    let out = cmd.assert().success().get_output().stdout.clone();
    stdout_json(&out)
}

/// The crm-panel example with `instances` (and its profile grants) replaced.
fn spec_file(state: &TempDir, instances: &[&str]) -> PathBuf {
    let mut spec: Value =
        serde_json::from_str(&std::fs::read_to_string(example("crm-panel.json")).unwrap()).unwrap();
    spec["instances"] = json!(instances);
    spec["securityProfiles"] = json!([]);
    let path = state.path().join("spec.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    path
}

#[test]
fn plan_offline_lists_steps_policy_diff_and_profiles_and_writes_nothing() {
    let state = TempDir::new().unwrap();
    onboard(&state)
        .arg("plan")
        .arg(example("crm-panel.json"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("create_application"))
        .stdout(predicate::str::contains(
            "associate[11111111-1111-4111-8111-111111111111]",
        ))
        .stdout(predicate::str::contains(
            "grant_slr_policy[22222222-2222-4222-8222-222222222222]",
        ))
        .stdout(predicate::str::contains(
            "inline policy ConnectThirdPartyAppOnboarding (new)",
        ))
        .stdout(predicate::str::contains(
            "+       \"Action\": [\n    +         \"app-integrations:GetApplication\"",
        ))
        .stdout(predicate::str::contains("Security profile changes"))
        .stdout(predicate::str::contains("Nothing was changed"));
    assert!(
        std::fs::read_dir(state.path()).unwrap().next().is_none(),
        "plan must not write state"
    );
}

#[test]
fn plan_on_the_sandbox_reads_roles_and_profiles_without_side_effects() {
    let state = TempDir::new().unwrap();
    let out = onboard(&state)
        .args(["--sandbox", "--output", "json", "plan"])
        .arg(example("crm-panel.json"))
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let plan = stdout_json(&out);
    assert_eq!(plan["target"], "sandbox");
    assert_eq!(plan["instances"][0]["alias"], "demo-east");
    assert_eq!(
        plan["slrPolicies"][0]["role"],
        "AWSServiceRoleForAmazonConnect_XYUbWO6kTpYfc9uUNk5i"
    );
    let diff: Vec<&str> = plan["slrPolicies"][0]["diff"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(diff.iter().all(|l| l.starts_with("+ ")), "{diff:?}");
    assert!(diff
        .iter()
        .any(|l| l.contains("app-integrations:GetApplication")));
    assert_eq!(plan["securityProfiles"][0]["name"], "Agent");
    assert_eq!(plan["securityProfiles"][0]["applicationsBefore"], 0);
    assert_eq!(plan["steps"].as_array().unwrap().len(), 9);
    assert!(!state.path().join("sagas.redb").exists());
}

#[test]
fn plan_of_an_invalid_spec_lists_every_problem_and_exits_2() {
    let state = TempDir::new().unwrap();
    let expected = [
        "displayName",
        "accessUrl",
        "namespace",
        "approvedOrigins[0]",
        "initializationTimeoutMs",
        "tags[\"aws:owner\"]",
        "instances[0]",
        "securityProfiles[0].instance",
        "securityProfiles[0].profiles[0]",
        "requester.ticketId",
    ];
    let assert = onboard(&state)
        .arg("plan")
        .arg(example("invalid.json"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is invalid (10 problem(s))"))
        .stderr(predicate::str::contains("fix: Use https://"))
        .stderr(predicate::str::contains(
            "closest known name is User.Details.View",
        ));
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    for field in expected {
        assert!(
            stderr.contains(&format!(". {field}: ")),
            "{field} missing:\n{stderr}"
        );
    }

    let out = onboard(&state)
        .args(["--output", "json", "plan"])
        .arg(example("invalid.json"))
        .assert()
        .code(2)
        .get_output()
        .stdout
        .clone();
    let body = stdout_json(&out);
    assert_eq!(body["valid"], false);
    let fields: Vec<&str> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert!(!p["fix"].as_str().unwrap().is_empty());
            p["field"].as_str().unwrap()
        })
        .collect();
    assert_eq!(fields, expected);
}

#[test]
fn plan_on_the_sandbox_refuses_an_instance_without_a_service_linked_role() {
    let state = TempDir::new().unwrap();
    let spec = spec_file(&state, &["33333333-3333-4333-8333-333333333333"]);
    onboard(&state)
        .args(["--sandbox", "plan"])
        .arg(spec)
        .assert()
        .code(2)
        .stdout(predicate::str::contains(
            "ERROR [instance] instance 33333333-3333-4333-8333-333333333333 does not use a \
             service-linked role",
        ))
        .stdout(predicate::str::contains("Create service-linked role"))
        .stdout(predicate::str::contains("would refuse this spec"));
}

#[test]
fn apply_on_the_sandbox_succeeds_and_shows_the_timeline_and_arns() {
    let state = TempDir::new().unwrap();
    onboard(&state)
        .args(["--sandbox", "apply"])
        .arg(example("crm-panel.json"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("✔ associate[demo-east]"))
        .stdout(predicate::str::contains("SUCCEEDED — the application is onboarded"))
        .stdout(predicate::str::contains("Timeline"))
        .stdout(predicate::str::contains(
            "arn:aws:app-integrations:us-east-1:111122223333:application/",
        ))
        .stdout(predicate::str::contains(
            "arn:aws:connect:us-east-1:111122223333:instance/22222222-2222-4222-8222-222222222222/integration-association/",
        ))
        .stdout(predicate::str::contains("statement App"));

    let view = status_json(&state, None);
    assert_eq!(view["status"], "SUCCEEDED");
    assert!(view["resources"]["applicationArn"]
        .as_str()
        .unwrap()
        .contains(":application/"));
    assert_eq!(
        view["resources"]["associations"].as_object().unwrap().len(),
        2
    );

    let world: Value = serde_json::from_str(
        &std::fs::read_to_string(state.path().join("sandbox-world.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(world["applications"].as_object().unwrap().len(), 1);
    let policies =
        &world["roles"]["AWSServiceRoleForAmazonConnect_XYUbWO6kTpYfc9uUNk5i"]["inline_policies"];
    assert!(
        policies.get("ConnectThirdPartyAppOnboarding").is_some(),
        "{policies}"
    );
}

#[test]
fn apply_with_an_injected_fault_rolls_back_and_status_says_so() {
    let state = TempDir::new().unwrap();
    let assert = onboard(&state)
        .args([
            "--sandbox",
            "--inject-fault",
            "CreateIntegrationAssociation:2",
            "apply",
        ])
        .arg(example("crm-panel.json"))
        .assert()
        .code(3)
        .stdout(predicate::str::contains("FAILED — AccessDeniedException"))
        .stdout(predicate::str::contains("ROLLING BACK"))
        .stdout(predicate::str::contains("↺ create_application"))
        .stdout(predicate::str::contains(
            "rolled back: every change was undone",
        ))
        .stdout(predicate::str::contains(
            "ROLLED_BACK — it failed and every change was undone",
        ))
        .stdout(predicate::str::contains("Cause in associate["))
        .stdout(predicate::str::contains("Fix: "))
        .stdout(predicate::str::contains(
            "Created, then removed by the rollback",
        ));
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    // Progress is live: the failure is shown before the rollback, the rollback before the end.
    let failed = stdout.find("FAILED —").unwrap();
    let rolling = stdout.find("ROLLING BACK").unwrap();
    let done = stdout.find("rolled back: every change").unwrap();
    assert!(failed < rolling && rolling < done);

    let view = status_json(&state, None);
    assert_eq!(view["status"], "ROLLED_BACK");
    assert_eq!(view["lastError"]["code"], "AccessDeniedException");

    let world: Value = serde_json::from_str(
        &std::fs::read_to_string(state.path().join("sandbox-world.json")).unwrap(),
    )
    .unwrap();
    assert!(world["applications"].as_object().unwrap().is_empty());
    assert!(world["integration_associations"]
        .as_object()
        .unwrap()
        .is_empty());
}

#[test]
fn a_failed_rollback_exits_4_blocks_the_namespace_and_retry_finishes_it() {
    let state = TempDir::new().unwrap();
    onboard(&state)
        .args([
            "--sandbox",
            "--inject-fault",
            "CreateIntegrationAssociation:1",
            "--inject-fault",
            "DeleteApplication:1",
            "apply",
        ])
        .arg(example("crm-panel.json"))
        .assert()
        .code(4)
        .stdout(predicate::str::contains("UNDO FAILED"))
        .stdout(predicate::str::contains("ROLLBACK_FAILED"))
        .stdout(predicate::str::contains("Still in place (not undone)"))
        .stdout(predicate::str::contains("onboard retry sg-"));
    let view = status_json(&state, None);
    assert_eq!(view["status"], "ROLLBACK_FAILED");
    let id = view["id"].as_str().unwrap().to_string();

    onboard(&state)
        .args(["--sandbox", "apply"])
        .arg(example("crm-panel.json"))
        .assert()
        .code(7)
        .stderr(predicate::str::contains(format!("is held by saga {id}")))
        .stderr(predicate::str::contains(format!("onboard retry {id}")));

    onboard(&state)
        .args(["--sandbox", "retry", &id])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("re-driving the rollback"))
        .stdout(predicate::str::contains("ROLLED_BACK"));
    assert_eq!(status_json(&state, Some(&id))["status"], "ROLLED_BACK");

    onboard(&state)
        .args(["--sandbox", "retry", &id])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("nothing to retry"));
}

#[test]
fn apply_of_an_invalid_spec_exits_2_and_records_nothing() {
    let state = TempDir::new().unwrap();
    onboard(&state)
        .args(["--sandbox", "apply"])
        .arg(example("invalid.json"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("requester.ticketId"))
        .stderr(predicate::str::contains("Nothing was changed"));
    assert!(!state.path().join("sagas.redb").exists());
}

#[test]
fn apply_json_output_is_one_document_and_reads_stdin() {
    let state = TempDir::new().unwrap();
    let out = onboard(&state)
        .args(["--sandbox", "--output", "json", "apply", "-"])
        .write_stdin(std::fs::read(example("knowledge-tool.json")).unwrap())
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let view = stdout_json(&out);
    assert_eq!(view["status"], "SUCCEEDED");
    assert_eq!(view["namespace"], "kb.acme.example");
    assert!(view["warnings"].is_array());
    assert!(view["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["state"] == "SUCCEEDED"));
}

#[test]
fn a_ticket_submitted_twice_returns_the_first_saga() {
    let state = TempDir::new().unwrap();
    let first = onboard(&state)
        .args(["--sandbox", "--output", "json", "apply"])
        .arg(example("knowledge-tool.json"))
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let id = stdout_json(&first)["id"].as_str().unwrap().to_string();
    onboard(&state)
        .args(["--sandbox", "apply"])
        .arg(example("knowledge-tool.json"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains(format!(
            "already submitted as saga {id}"
        )));
}

#[test]
fn list_and_status_read_the_persisted_log() {
    let state = TempDir::new().unwrap();
    onboard(&state)
        .args(["--sandbox", "list"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("No sagas recorded."));
    onboard(&state)
        .args(["--sandbox", "status"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no saga has been recorded yet"));

    onboard(&state)
        .args(["--sandbox", "apply"])
        .arg(example("knowledge-tool.json"))
        .assert()
        .code(0);
    onboard(&state)
        .args([
            "--sandbox",
            "--inject-fault",
            "CreateApplication:1",
            "apply",
        ])
        .arg(example("crm-panel.json"))
        .assert()
        .code(3);

    let out = onboard(&state)
        .args(["--sandbox", "--output", "json", "list"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let sagas = stdout_json(&out)["sagas"].as_array().unwrap().clone();
    assert_eq!(sagas.len(), 2);
    assert_eq!(
        sagas[0]["status"], "SUCCEEDED",
        "oldest first, as the API lists"
    );
    assert_eq!(sagas[1]["status"], "ROLLED_BACK");

    onboard(&state)
        .args(["--sandbox", "list", "--status", "succeeded"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("kb.acme.example"))
        .stdout(predicate::str::contains("crm.acme.example").not());
    onboard(&state)
        .args(["--sandbox", "list", "--status", "finished"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("ROLLBACK_FAILED"));

    let id = sagas[0]["id"].as_str().unwrap();
    onboard(&state)
        .args(["--sandbox", "status", id, "--log"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("SUCCEEDED"))
        .stdout(predicate::str::contains("Log"))
        .stdout(predicate::str::contains("activate"));
    onboard(&state)
        .args(["--sandbox", "--output", "json", "status", "sg-nope"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("\"SagaNotFound\""));
}

#[test]
fn target_options_are_checked() {
    let state = TempDir::new().unwrap();
    onboard(&state)
        .args(["--inject-fault", "CreateApplication:1", "list"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("only apply to the sandbox"));
    onboard(&state)
        .args(["--sandbox", "--inject-fault", "MakeCoffee:1", "list"])
        .assert()
        .code(64)
        .stderr(predicate::str::contains(
            "not an operation the sandbox emulates",
        ));
    onboard(&state)
        .arg("apply")
        .arg(example("crm-panel.json"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("ONBOARD_TABLE"));
}
