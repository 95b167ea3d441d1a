//! What an engineer on call sees (issue 17): one exit-code table kept to, completions, a closed
//! pipe, offboard's confirmation and dry run, a repeated apply, the listing's columns and
//! filters, concise day-two output with aliases, plan's "could not check", SDK errors in one
//! line with a fix, and malformed seed fields named by path. All on the in-process sandbox
//! except the SDK errors, which point the real clients at a closed loopback port.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a broken fixture should fail loudly

use std::io::Read;
use std::process::Stdio;

mod support;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;
use tempfile::TempDir;

use support::*;

const EAST: &str = "11111111-1111-4111-8111-111111111111";
const NAMESPACE: &str = "crm.acme.example/agent-panel";

fn saga_count(state: &TempDir) -> usize {
    run_json(state, &["list"], 0)["sagas"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn help_lists_every_exit_code_and_a_usage_error_exits_64() {
    let state = TempDir::new().unwrap();
    let help = bare(&state).arg("--help").assert().code(0);
    let text = String::from_utf8(help.get_output().stdout.clone()).unwrap();
    for line in [
        "Exit codes",
        "  0  success",
        "  1  another error",
        "  2  the spec or request is invalid, or preflight REFUSED it",
        "  3  the saga failed and was ROLLED_BACK",
        "  4  ROLLBACK_FAILED or NEEDS_ATTENTION",
        "  5  check-url",
        "  6  drift",
        "  7  busy",
        " 64  usage",
    ] {
        assert!(text.contains(line), "--help lacks {line:?}:\n{text}");
    }
    bare(&state)
        .arg("--no-such-option")
        .assert()
        .code(64)
        .stderr(predicate::str::contains("unexpected argument"));
    bare(&state).arg("apply").assert().code(64);
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    let state = TempDir::new().unwrap();
    bare(&state)
        .args(["completions", "bash"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("_onboard()"))
        .stdout(predicate::str::contains("complete -F _onboard"))
        .stdout(predicate::str::contains("offboard"));
    bare(&state)
        .args(["completions", "zsh"])
        .assert()
        .code(0)
        .stdout(predicate::str::starts_with("#compdef onboard"));
    bare(&state)
        .args(["completions", "fish"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("complete -c onboard"));
    bare(&state).args(["completions", "tcsh"]).assert().code(64);
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let state = TempDir::new().unwrap();
    onboarded(&state);
    let bin = assert_cmd::cargo::cargo_bin!("onboard");
    let mut child = std::process::Command::new(bin)
        .env_remove("ONBOARD_TABLE")
        .arg("--state-dir")
        .arg(state.path())
        .args(["--sandbox", "list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the command writes anything (`onboard list | head -0`).
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(stderr, "", "nothing is printed about the closed pipe");
}

#[test]
fn offboard_asks_for_the_namespace_and_dry_run_changes_nothing() {
    let state = TempDir::new().unwrap();
    let id = onboarded(&state);
    let before = world(&state);

    // Dry run: what would go, read from the sandbox now; nothing changes.
    onboard(&state)
        .args(["offboard", "--dry-run", &id])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("Dry run"))
        .stdout(predicate::str::contains("instance demo-east:"))
        .stdout(predicate::str::contains("instance demo-support:"))
        .stdout(predicate::str::contains("the association "))
        .stdout(predicate::str::contains(format!(
            "then the application {NAMESPACE}"
        )))
        .stdout(predicate::str::contains(EAST).not());
    let dry = run_json(&state, &["offboard", "--dry-run", &id], 0);
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["namespace"], NAMESPACE);
    assert_eq!(dry["wouldRemove"]["applicationExists"], true);
    assert!(dry["wouldRemove"]["instances"][EAST]["association"]["id"].is_string());

    // No confirmation (stdin closed) and a wrong one: refused, exit 2, nothing changed.
    onboard(&state)
        .args(["offboard", &id])
        .write_stdin("")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("offboard not confirmed"))
        .stderr(predicate::str::contains("fix: Nothing was changed"))
        .stderr(predicate::str::contains("--yes"));
    onboard(&state)
        .args(["offboard", &id])
        .write_stdin("crm.acme.example/other\n")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not the namespace"));
    assert_eq!(world(&state), before, "a refused offboard changes nothing");
    assert_eq!(saga_count(&state), 1, "and records no saga");

    // The typed namespace confirms.
    onboard(&state)
        .args(["offboard", &id])
        .write_stdin(format!("{NAMESPACE}\n"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("the application is offboarded"));
    assert!(world(&state)["applications"]
        .as_object()
        .unwrap()
        .is_empty());
}

#[test]
fn a_repeated_apply_of_a_managed_spec_changes_nothing_and_reports_drift() {
    let state = TempDir::new().unwrap();
    let id = onboarded(&state);
    let spec = example("crm-panel.json");

    onboard(&state)
        .arg("apply")
        .arg(&spec)
        .assert()
        .code(0)
        .stdout(predicate::str::contains(format!(
            "is already onboarded as application {id} with this configuration: nothing was changed"
        )))
        .stdout(predicate::str::contains("AWS matches the recorded state"));
    let again = run_json(&state, &["apply", spec.to_str().unwrap()], 0);
    assert_eq!(again["alreadyOnboarded"], true);
    assert_eq!(again["applicationId"], id.as_str());
    assert_eq!(again["changed"], false);
    assert_eq!(saga_count(&state), 1, "no new saga is recorded");

    // A different configuration for the same namespace points to `edit`.
    let mut changed: Value =
        serde_json::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
    changed["displayName"] = "Acme CRM Panel v2".into();
    let path = state.path().join("changed.json");
    std::fs::write(&path, changed.to_string()).unwrap();
    onboard(&state)
        .arg("apply")
        .arg(&path)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("the spec differs in: displayName"))
        .stderr(predicate::str::contains(format!(
            "fix: Nothing was changed. Change the application with `onboard edit {id}"
        )));

    // Drift made by hand (an association deleted in the saved world) is reported: exit 6.
    let mut w = world(&state);
    let assoc = w["integration_associations"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, a)| {
            a["instance_id"] == EAST
                && a["integration_arn"]
                    .as_str()
                    .is_some_and(|arn| arn.contains(":application/"))
        })
        .map(|(k, _)| k.clone())
        .unwrap();
    w["integration_associations"]
        .as_object_mut()
        .unwrap()
        .remove(&assoc);
    std::fs::write(
        state.path().join("sandbox-world.json"),
        serde_json::to_string_pretty(&w).unwrap(),
    )
    .unwrap();
    onboard(&state)
        .arg("apply")
        .arg(&spec)
        .assert()
        .code(6)
        .stdout(predicate::str::contains("nothing was changed"))
        .stdout(predicate::str::contains(format!(
            "onboard drift {id} --fix"
        )));
}

#[test]
fn list_shows_kind_and_requester_and_filters_oldest_first() {
    let state = TempDir::new().unwrap();
    let app = onboarded(&state);
    onboard(&state)
        .args(["--output", "json", "pause", &app, "demo-east"])
        .assert()
        .code(0);
    onboard(&state)
        .arg("apply")
        .arg(example("knowledge-tool.json"))
        .assert()
        .code(0);

    let all = run_json(&state, &["list"], 0)["sagas"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(all.len(), 3);
    let created: Vec<u64> = all
        .iter()
        .map(|s| s["createdAt"].as_u64().unwrap())
        .collect();
    assert!(
        created.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {created:?}"
    );
    assert_eq!(all[0]["id"], app.as_str());
    assert_eq!(all[1]["kind"], "change");
    assert_eq!(all[1]["operation"], "pause");
    assert_eq!(all[1]["application"], app.as_str());
    assert_eq!(
        all[1]["requestedBy"], "cli:oncall",
        "a change saga says who asked"
    );
    assert!(all[0]["requestedBy"].is_string());

    let text = onboard(&state).arg("list").assert().code(0);
    let text = String::from_utf8(text.get_output().stdout.clone()).unwrap();
    assert!(text.starts_with("ID "), "{text}");
    assert!(
        text.contains("KIND") && text.contains("REQUESTER"),
        "{text}"
    );
    assert!(
        text.contains("change/pause") && text.contains("cli:oncall"),
        "{text}"
    );

    let ids = |args: &[&str]| -> Vec<String> {
        let mut full = vec!["list"];
        full.extend_from_slice(args);
        run_json(&state, &full, 0)["sagas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&["--kind", "change"]),
        vec![all[1]["id"].as_str().unwrap()]
    );
    assert_eq!(
        ids(&["--application", &app]),
        vec![app.clone(), all[1]["id"].as_str().unwrap().to_string()]
    );
    assert_eq!(ids(&["--namespace", "kb.acme.example"]).len(), 1);
    assert_eq!(ids(&["--requester", "cli:oncall"]).len(), 1);
    assert_eq!(ids(&["--requester", "cli:nobody"]).len(), 0);
    assert_eq!(
        ids(&["--limit", "1"]),
        vec![all[2]["id"].as_str().unwrap()],
        "the most recent"
    );
    onboard(&state)
        .args(["list", "--requester", "cli:nobody"])
        .assert()
        .code(0)
        .stdout("No saga matches these filters.\n");
    onboard(&state)
        .args(["list", "--kind", "edit"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("fix: Use one of: onboard, change"));
}

#[test]
fn a_pause_shows_what_changed_with_aliases() {
    let state = TempDir::new().unwrap();
    let app = onboarded(&state);
    let out = onboard(&state)
        .args(["pause", &app, "demo-east"])
        .assert()
        .code(0);
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    for line in [
        "demo-east: revoked its ACCESS grant in the security profiles",
        "demo-east: removed its statement from the service-linked role's policy",
        "demo-east: removed the association with the instance",
        "other step(s) found nothing to do",
    ] {
        assert!(text.contains(line), "missing {line:?}:\n{text}");
    }
    assert!(
        !text.contains(EAST),
        "instance ids are shown by alias:\n{text}"
    );
    assert!(
        !text.contains("demo-support"),
        "the untouched instance is not shown:\n{text}"
    );
    assert!(
        text.lines().count() < 20,
        "a pause is told in a few lines, not every node:\n{text}"
    );
    // `status --log` still has every node.
    let change = run_json(&state, &["list", "--kind", "change"], 0)["sagas"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    onboard(&state)
        .args(["status", &change, "--log"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("attach_profiles[demo-support]"));
}

#[test]
fn plan_says_when_the_iframe_check_could_not_run() {
    let state = TempDir::new().unwrap();
    // The example's host does not resolve here: the fetch fails, which is not a verdict.
    let out = onboard(&state)
        .arg("plan")
        .arg(example("crm-panel.json"))
        .assert();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        text.contains("embedding: could not check whether https://demo-east.my.connect.aws"),
        "{text}"
    );
    assert!(text.contains("failed"), "{text}");
    assert!(!text.contains("may not iframe"), "{text}");
    assert_eq!(
        text.matches("embedding: could not check").count(),
        1,
        "one failed fetch is one line:\n{text}"
    );
}

#[test]
fn sdk_errors_are_one_line_with_the_service_operation_code_and_fix() {
    let state = TempDir::new().unwrap();
    let run = |cmd: &mut Command| {
        let out = cmd
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_MAX_ATTEMPTS", "1")
            .args([
                "--table",
                "sagas",
                "--endpoint-url",
                "http://127.0.0.1:1",
                "list",
            ])
            .assert()
            .code(1);
        String::from_utf8(out.get_output().stderr.clone()).unwrap()
    };
    let refused = run(bare(&state)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing"));
    assert_eq!(
        refused.lines().count(),
        2,
        "an error line and a fix line:\n{refused}"
    );
    assert!(
        refused.contains("DynamoDB Query failed: ConnectionRefused"),
        "{refused}"
    );
    assert!(refused.contains("fix: Check --endpoint-url"), "{refused}");
    assert!(
        !refused.contains("DispatchFailure {"),
        "no debug dump:\n{refused}"
    );

    let unsigned = run(&mut bare(&state));
    assert!(
        unsigned.contains("DynamoDB Query failed: NoCredentials"),
        "{unsigned}"
    );
    assert!(
        unsigned.contains("fix: Give the command AWS credentials"),
        "{unsigned}"
    );
    assert_eq!(unsigned.lines().count(), 2, "{unsigned}");
}

#[test]
fn a_malformed_seed_field_is_named_by_its_path() {
    let state = TempDir::new().unwrap();
    let seed = state.path().join("seed.json");
    std::fs::write(&seed, r#"{"instances": [{"id": 5}]}"#).unwrap();
    onboard(&state)
        .arg("--seed")
        .arg(&seed)
        .arg("plan")
        .arg(example("crm-panel.json"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("seed field instances[0].id"))
        .stderr(predicate::str::contains("expected a string"))
        .stderr(predicate::str::contains("fix: "));
}

#[test]
fn edit_can_add_an_iframe_configuration_and_an_initialization_timeout() {
    let state = TempDir::new().unwrap();
    // The knowledge tool is onboarded without either.
    let app = run_json(
        &state,
        &["apply", example("knowledge-tool.json").to_str().unwrap()],
        0,
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let patch = state.path().join("frame.json");
    std::fs::write(
        &patch,
        r#"{"iframe": {"allow": ["clipboard-write"], "sandbox": ["allow-scripts", "allow-same-origin"]}, "initializationTimeoutMs": 5000}"#,
    )
    .unwrap();
    onboard(&state)
        .arg("edit")
        .arg(&app)
        .arg(&patch)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("the change is applied"))
        .stdout(predicate::str::contains("set the iframe configuration"));
    let fields = &run_json(&state, &["status", &app], 0)["application"]["fields"];
    assert_eq!(fields["initializationTimeoutMs"], 5000);
    assert_eq!(fields["iframe"]["allow"][0], "clipboard-write");
    let app_in_world = world(&state)["applications"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    assert!(
        app_in_world.to_string().contains("clipboard-write"),
        "set in the sandbox's AppIntegrations: {app_in_world}"
    );
}
