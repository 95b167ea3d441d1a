//! What the CLI's sandbox tests share: the binary with no AWS configuration from the
//! environment and its own state directory, JSON output, the saved world, an onboarded example.
#![allow(dead_code)] // each test binary uses some of these
#![allow(clippy::unwrap_used, clippy::expect_used)] // a broken fixture should fail loudly

use std::path::PathBuf;

use assert_cmd::cargo::cargo_bin_cmd;
use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

pub fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// `onboard` with no AWS configuration from the environment, a fixed local user and `state` as
/// its state directory.
pub fn bare(state: &TempDir) -> Command {
    let mut cmd = cargo_bin_cmd!("onboard");
    for var in [
        "ONBOARD_TABLE",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("USER", "oncall");
    cmd.arg("--state-dir").arg(state.path());
    cmd
}

/// [`bare`] on the in-process sandbox.
pub fn onboard(state: &TempDir) -> Command {
    let mut cmd = bare(state);
    cmd.arg("--sandbox");
    cmd
}

pub fn json_of(out: &[u8]) -> Value {
    serde_json::from_slice(out).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}",
            String::from_utf8_lossy(out)
        )
    })
}

/// Run `args` with `--output json`, expect `code`, return stdout's document.
pub fn run_json(state: &TempDir, args: &[&str], code: i32) -> Value {
    let out = onboard(state)
        .args(["--output", "json"])
        .args(args)
        .assert()
        .code(code)
        .get_output()
        .stdout
        .clone();
    json_of(&out)
}

/// The sandbox world the last command saved.
pub fn world(state: &TempDir) -> Value {
    serde_json::from_str(&std::fs::read_to_string(state.path().join("sandbox-world.json")).unwrap())
        .unwrap()
}

/// Onboard the CRM panel example; returns its application id.
pub fn onboarded(state: &TempDir) -> String {
    let apply = run_json(
        state,
        &["apply", example("crm-panel.json").to_str().unwrap()],
        0,
    );
    apply["id"].as_str().unwrap().to_string()
}
