//! The day-two commands end to end on the in-process sandbox, whose world persists across
//! commands in the state directory: apply → pause → resume → drift → offboard → status; drift
//! made by hand in the saved world found and fixed; an offboard that stops NEEDS_ATTENTION and
//! its re-drive; refused requests that record nothing; `--reset-sandbox`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a broken fixture should fail loudly

mod support;

use predicates::prelude::*;
use serde_json::{json, Value};
use tempfile::TempDir;

use support::*;

const EAST: &str = "11111111-1111-4111-8111-111111111111";
const SUPPORT: &str = "22222222-2222-4222-8222-222222222222";

/// The CRM's associations in the saved world, by instance.
fn associations(world: &Value) -> Vec<String> {
    let mut out: Vec<String> = world["integration_associations"]
        .as_object()
        .unwrap()
        .values()
        .filter(|a| {
            a["integration_arn"]
                .as_str()
                .is_some_and(|arn| arn.contains(":application/"))
        })
        .map(|a| a["instance_id"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

#[test]
fn apply_pause_resume_drift_offboard_then_status_shows_the_offboarded_application() {
    let state = TempDir::new().unwrap();
    let id = onboarded(&state);
    assert_eq!(associations(&world(&state)), vec![EAST, SUPPORT]);

    // The world persisted: the pause finds the application apply made.
    let pause = run_json(&state, &["pause", &id, SUPPORT], 0);
    assert_eq!(pause["kind"], "change");
    assert_eq!(pause["parent"], id.as_str());
    assert_eq!(pause["status"], "SUCCEEDED");
    assert_eq!(associations(&world(&state)), vec![EAST]);
    let app = &run_json(&state, &["status", &id], 0)["application"];
    assert_eq!(app["paused"], json!([SUPPORT]));

    // Pausing twice is refused up front (exit 2) and records nothing.
    let sagas_before = run_json(&state, &["list"], 0)["sagas"]
        .as_array()
        .unwrap()
        .len();
    onboard(&state)
        .args(["pause", &id, SUPPORT])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("already paused"));
    assert_eq!(
        run_json(&state, &["list"], 0)["sagas"]
            .as_array()
            .unwrap()
            .len(),
        sagas_before
    );

    // An alias not among the application's instances is refused with the ones that are.
    onboard(&state)
        .args(["resume", &id, "demo-nowhere"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("(demo-east, demo-support)"));
    // The alias `status` shows works as well as the id, in any case.
    onboard(&state)
        .args(["resume", &id, "Demo-Support"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "SUCCEEDED — the change is applied",
        ));
    assert_eq!(associations(&world(&state)), vec![EAST, SUPPORT]);

    onboard(&state)
        .args(["drift", &id])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("no drift"));

    let off = run_json(&state, &["offboard", "--yes", &id], 0);
    assert_eq!(
        (off["kind"].as_str(), off["status"].as_str()),
        (Some("offboard"), Some("SUCCEEDED"))
    );
    let w = world(&state);
    assert!(
        w["applications"].as_object().unwrap().is_empty(),
        "{}",
        w["applications"]
    );
    assert!(associations(&w).is_empty());

    let status = run_json(&state, &["status", &id], 0);
    assert_eq!(status["application"]["offboarded"], true);
    assert_eq!(status["application"]["lastChange"], off["id"]);
    onboard(&state)
        .args(["status", &id])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("onboarded, since offboarded"))
        .stdout(predicate::str::contains("OFFBOARDED by saga"));
    // An offboarded application cannot be changed any more.
    onboard(&state)
        .args(["--output", "json", "offboard", "--yes", &id])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("\"ApplicationOffboarded\""));
}

#[test]
fn drift_made_outside_is_found_exit_6_and_fix_repairs_it() {
    let state = TempDir::new().unwrap();
    let id = onboarded(&state);
    // "Someone" deletes the association with demo-support in the console: edit the saved world.
    let mut w = world(&state);
    let assocs = w["integration_associations"].as_object_mut().unwrap();
    let key = assocs
        .iter()
        .find(|(_, a)| a["instance_id"] == SUPPORT)
        .map(|(k, _)| k.clone())
        .unwrap();
    let app_assoc = assocs[&key]["app_association_id"]
        .as_str()
        .unwrap()
        .to_string();
    assocs.remove(&key);
    w["application_associations"]
        .as_object_mut()
        .unwrap()
        .remove(&app_assoc);
    std::fs::write(state.path().join("sandbox-world.json"), w.to_string()).unwrap();

    let report = run_json(&state, &["drift", &id], 6);
    assert_eq!(report["drifted"], true);
    assert_eq!(report["report"]["items"][0]["kind"], "ASSOCIATION_MISSING");
    assert_eq!(report["report"]["items"][0]["instance"], SUPPORT);
    onboard(&state)
        .args(["drift", &id])
        .assert()
        .code(6)
        .stdout(predicate::str::contains("ASSOCIATION_MISSING [22222222"))
        .stdout(predicate::str::contains(format!(
            "onboard drift {id} --fix"
        )));

    let fixed = run_json(&state, &["drift", &id, "--fix"], 0);
    assert_eq!(fixed["fix"]["status"], "SUCCEEDED");
    assert_eq!(fixed["fix"]["kind"], "fix");
    assert_eq!(associations(&world(&state)), vec![EAST, SUPPORT]);
    assert_eq!(run_json(&state, &["drift", &id], 0)["drifted"], false);
}

#[test]
fn an_offboard_that_cannot_finish_exits_4_and_retry_carries_it_on() {
    let state = TempDir::new().unwrap();
    let id = onboarded(&state);
    let off = run_json(
        &state,
        &[
            "--inject-fault",
            "DeleteApplication:1",
            "offboard",
            "--yes",
            &id,
        ],
        4,
    );
    assert_eq!(off["status"], "NEEDS_ATTENTION");
    let saga = off["id"].as_str().unwrap().to_string();
    assert!(off["nextAction"]
        .as_str()
        .unwrap()
        .contains("onboard retry"));
    assert_eq!(world(&state)["applications"].as_object().unwrap().len(), 1);

    let retried = run_json(&state, &["retry", &saga], 0);
    assert_eq!(retried["status"], "SUCCEEDED");
    assert!(world(&state)["applications"]
        .as_object()
        .unwrap()
        .is_empty());
}

#[test]
fn invalid_edits_exit_2_and_a_valid_edit_changes_the_application() {
    let state = TempDir::new().unwrap();
    let id = onboarded(&state);
    let patch = state.path().join("patch.json");

    std::fs::write(&patch, r#"{"namespace": "other.example.com"}"#).unwrap();
    let refused = run_json(&state, &["edit", &id, patch.to_str().unwrap()], 2);
    assert_eq!(refused["problems"][0]["field"], "namespace");
    assert!(refused["problems"][0]["problem"]
        .as_str()
        .unwrap()
        .contains("immutable"));
    std::fs::write(&patch, r#"{"displayNam": "typo"}"#).unwrap();
    onboard(&state)
        .args(["edit", &id])
        .arg(&patch)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("Nothing was changed"));
    assert_eq!(
        run_json(&state, &["list"], 0)["sagas"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    std::fs::write(&patch, r#"{"displayName": "Acme CRM Panel v2"}"#).unwrap();
    let edit = run_json(&state, &["edit", &id, patch.to_str().unwrap()], 0);
    assert_eq!(edit["status"], "SUCCEEDED");
    let apps = world(&state)["applications"].clone();
    let app = apps.as_object().unwrap().values().next().unwrap().clone();
    assert_eq!(app["name"], "Acme CRM Panel v2");
    assert_eq!(
        run_json(&state, &["status", &id], 0)["application"]["fields"]["displayName"],
        "Acme CRM Panel v2"
    );
    // A change saga's id is not an application.
    onboard(&state)
        .args(["offboard", "--yes", edit["id"].as_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "is a change saga, not an application",
        ))
        .stderr(predicate::str::contains(format!(
            "fix: Run the command with {id}"
        )));
}

#[test]
fn adopt_takes_over_an_app_this_log_does_not_know_and_reset_starts_the_world_over() {
    let made_elsewhere = TempDir::new().unwrap();
    let first = onboarded(&made_elsewhere);
    let ns = run_json(&made_elsewhere, &["status", &first], 0)["namespace"]
        .as_str()
        .unwrap()
        .to_string();
    // Managed here already: adopting it is refused by the saga, which rolls back (exit 3).
    run_json(&made_elsewhere, &["adopt", &ns], 3);

    // Another saga log over the same world: the application is unknown to it, as if made in
    // the console.
    let state = TempDir::new().unwrap();
    std::fs::copy(
        made_elsewhere.path().join("sandbox-world.json"),
        state.path().join("sandbox-world.json"),
    )
    .unwrap();
    let adopted = run_json(&state, &["adopt", &ns], 0);
    assert_eq!(adopted["kind"], "adopt");
    assert_eq!(adopted["status"], "SUCCEEDED");
    let id = adopted["id"].as_str().unwrap().to_string();
    let app = &run_json(&state, &["status", &id], 0)["application"];
    assert_eq!(app["instances"], json!([EAST, SUPPORT]));
    assert_eq!(app["slrStatements"], true);

    run_json(&state, &["offboard", "--yes", &id], 0);
    let w = world(&state);
    assert!(w["applications"].as_object().unwrap().is_empty());
    assert!(associations(&w).is_empty());

    // Starting over: the world is back to the seed (the saga log is kept); `plan` only reads.
    onboard(&made_elsewhere)
        .args(["--reset-sandbox", "plan"])
        .arg(example("crm-panel.json"))
        .assert()
        .code(0);
    assert!(!made_elsewhere.path().join("sandbox-world.json").exists());
    let again = onboarded(&made_elsewhere);
    assert_ne!(again, first);
    assert_eq!(
        world(&made_elsewhere)["applications"]
            .as_object()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn history_shows_every_saga_with_its_requester_ticket_and_changes_oldest_first() {
    let state = TempDir::new().unwrap();
    // The example spec, under a change ticket.
    let mut spec: Value =
        serde_json::from_str(&std::fs::read_to_string(example("crm-panel.json")).unwrap()).unwrap();
    spec["requester"]["ticketId"] = json!("CHG-100");
    let spec_path = state.path().join("crm-panel.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let id = run_json(&state, &["apply", spec_path.to_str().unwrap()], 0)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let patch = state.path().join("patch.json");
    std::fs::write(&patch, r#"{"displayName": "Acme CRM Panel v2"}"#).unwrap();
    let edit = run_json(
        &state,
        &[
            "edit",
            &id,
            patch.to_str().unwrap(),
            "--ticket",
            "CHG-200",
            "--requester",
            "alice@example.com",
        ],
        0,
    );
    // The default requester is the local user.
    let pause = onboard(&state)
        .env("USER", "carol")
        .args([
            "--output",
            "json",
            "pause",
            &id,
            "demo-support",
            "--ticket",
            "CHG-300",
        ])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let pause = json_of(&pause);

    let trail = run_json(&state, &["history", &id], 0);
    assert_eq!(trail["applicationId"], id.as_str());
    let entries = trail["entries"].as_array().unwrap();
    let order: Vec<&str> = entries
        .iter()
        .map(|e| e["sagaId"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            id.as_str(),
            edit["id"].as_str().unwrap(),
            pause["id"].as_str().unwrap()
        ]
    );
    let who: Vec<(&str, &str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["operation"].as_str().unwrap(),
                e["requester"].as_str().unwrap(),
                e["ticketId"].as_str().unwrap(),
                e["source"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        who,
        [
            (
                "onboard",
                "arn:aws:iam::111122223333:role/OnboardingOperator",
                "CHG-100",
                "CLI"
            ),
            ("edit", "alice@example.com", "CHG-200", "CLI"),
            ("pause", "cli:carol", "CHG-300", "CLI"),
        ]
    );
    assert!(entries.iter().all(|e| e["outcome"] == "SUCCEEDED"));
    assert_eq!(
        entries[1]["fields"],
        json!([{"field": "displayName", "before": "Acme CRM Panel", "after": "Acme CRM Panel v2"}])
    );

    let text = onboard(&state).args(["history", &id]).assert().code(0);
    let out = String::from_utf8(text.get_output().stdout.clone()).unwrap();
    for line in [
        "by arn:aws:iam::111122223333:role/OnboardingOperator via CLI, ticket CHG-100",
        "instance demo-east: added",
        "by alice@example.com via CLI, ticket CHG-200",
        "displayName: Acme CRM Panel → Acme CRM Panel v2",
        "by cli:carol via CLI, ticket CHG-300",
        "instance demo-support: paused",
    ] {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }
    let at = |s: &str| out.find(s).unwrap();
    assert!(
        at("  onboard  SUCCEEDED") < at("  edit  SUCCEEDED"),
        "{out}"
    );
    assert!(at("  edit  SUCCEEDED") < at("  pause  SUCCEEDED"), "{out}");

    // A change saga's id is not an application.
    onboard(&state)
        .args(["history", edit["id"].as_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "is a change saga, not an application",
        ));
}
