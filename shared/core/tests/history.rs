//! The audit trail over hand-built records: an onboard, an edit, a pause and an offboard,
//! oldest first, with who asked, the ticket, before → after of a changed field and an added
//! instance; sagas of another application on the same namespace stay out.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a broken fixture should fail loudly

use onboard_core::history::{history, rfc3339, InstanceEvent};
use onboard_core::lifecycle::StateError;
use onboard_core::record::SagaRecord;
use serde_json::{json, Value};

const EAST: &str = "11111111-1111-4111-8111-111111111111";
const SUPPORT: &str = "22222222-2222-4222-8222-222222222222";
const WEST: &str = "33333333-3333-4333-8333-333333333333";

fn record(v: Value) -> SagaRecord {
    serde_json::from_value(v).unwrap()
}

fn spec() -> Value {
    json!({
        "displayName": "Acme CRM",
        "accessUrl": "https://crm.acme.example/panel",
        "namespace": "crm",
        "permissions": ["User.Details.View"],
        "instances": [EAST, SUPPORT],
        "requester": {"source": "TICKET", "principal": "alice@example.com", "ticketId": "CHG-1"}
    })
}

fn root() -> SagaRecord {
    record(json!({
        "id": "sg-app", "kind": "onboard", "namespace": "crm", "status": "SUCCEEDED",
        "version": 9, "input": spec(),
        "nodes": [{"step": "validate", "state": "SUCCEEDED",
                   "output": {"instances": {EAST: {"alias": "demo-east"},
                                            SUPPORT: {"alias": "demo-support"}}}}],
        "log": [{"at": 1_000, "node": "saga", "event": "started", "owner": "w"},
                {"at": 2_500, "node": "saga", "event": "succeeded", "owner": "w"}],
        // Later drift checks bump the root's updated_at; the finish time comes from the log.
        "createdAt": 1_000, "updatedAt": 99_000
    }))
}

fn managed(name: &str, instances: &[&str], paused: &[&str]) -> Value {
    json!({
        "app": {"id": "a-1", "arn": "arn:aws:app-integrations:us-east-1:1:application/a-1"},
        "namespace": "crm",
        "fields": {"displayName": name, "accessUrl": "https://crm.acme.example/panel",
                   "permissions": ["User.Details.View"]},
        "instances": instances, "paused": paused, "slrStatements": true
    })
}

fn child(id: &str, kind: &str, at: u64, status: &str, input: Value) -> SagaRecord {
    record(json!({
        "id": id, "kind": kind, "namespace": "crm", "status": status, "version": 5,
        "input": input, "nodes": [], "parent": "sg-app",
        "log": [{"at": at + 400, "node": "saga", "event": status.to_ascii_lowercase(), "owner": "w"}],
        "createdAt": at, "updatedAt": at + 400
    }))
}

/// The sagas of the application, deliberately out of order, plus another application's.
fn sagas() -> Vec<SagaRecord> {
    let edit = child(
        "sg-edit",
        "change",
        10_000,
        "SUCCEEDED",
        json!({
            "parent": "sg-app", "operation": "edit",
            "before": managed("Acme CRM", &[EAST, SUPPORT], &[]),
            "after": managed("Acme CRM v2", &[EAST, SUPPORT, WEST], &[]),
            "requester": "bob@example.com", "source": "PORTAL", "ticketId": "CHG-2"
        }),
    );
    let pause = child(
        "sg-pause",
        "change",
        20_000,
        "SUCCEEDED",
        json!({
            "parent": "sg-app", "operation": "pause", "instance": SUPPORT,
            "before": managed("Acme CRM v2", &[EAST, SUPPORT, WEST], &[]),
            "after": managed("Acme CRM v2", &[EAST, SUPPORT, WEST], &[SUPPORT]),
            "requester": "cli:carol", "source": "CLI"
        }),
    );
    let offboard = child(
        "sg-off",
        "offboard",
        30_000,
        "SUCCEEDED",
        json!({
            "parent": "sg-app",
            "before": managed("Acme CRM v2", &[EAST, SUPPORT, WEST], &[SUPPORT]),
            "requester": "alice@example.com", "source": "PORTAL", "ticketId": "CHG-3"
        }),
    );
    let mut other = child("sg-other", "change", 15_000, "ROLLED_BACK", json!({}));
    other.parent = Some("sg-another-app".into());
    vec![offboard, other, pause, edit, root()]
}

#[test]
fn history_lists_onboard_edit_pause_offboard_oldest_first() {
    let h = history(&root(), &sagas()).unwrap();
    assert_eq!(
        (h.application_id.as_str(), h.namespace.as_str()),
        ("sg-app", "crm")
    );
    let order: Vec<(&str, &str)> = h
        .entries
        .iter()
        .map(|e| (e.saga_id.as_str(), e.operation.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("sg-app", "onboard"),
            ("sg-edit", "edit"),
            ("sg-pause", "pause"),
            ("sg-off", "offboard")
        ]
    );
    assert!(h.entries.iter().all(|e| e.outcome == "SUCCEEDED"));
}

#[test]
fn history_entries_say_who_asked_from_where_and_when() {
    let h = history(&root(), &sagas()).unwrap();
    let who: Vec<(Option<&str>, Option<Value>, Option<&str>)> = h
        .entries
        .iter()
        .map(|e| {
            (
                e.requester.as_deref(),
                e.source.map(|s| serde_json::to_value(s).unwrap()),
                e.ticket_id.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        who,
        [
            (
                Some("alice@example.com"),
                Some(json!("TICKET")),
                Some("CHG-1")
            ),
            (
                Some("bob@example.com"),
                Some(json!("PORTAL")),
                Some("CHG-2")
            ),
            (Some("cli:carol"), Some(json!("CLI")), None),
            (
                Some("alice@example.com"),
                Some(json!("PORTAL")),
                Some("CHG-3")
            ),
        ]
    );
    let onboard = &h.entries[0];
    assert_eq!(onboard.created_at, "1970-01-01T00:00:01.000Z");
    assert_eq!(
        onboard.finished_at.as_deref(),
        Some("1970-01-01T00:00:02.500Z")
    );
}

#[test]
fn history_onboard_entry_is_created_with_its_fields_and_instances() {
    let h = history(&root(), &sagas()).unwrap();
    let onboard = &h.entries[0];
    assert!(onboard.created);
    let fields: Vec<&str> = onboard.fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["displayName", "accessUrl", "permissions"]);
    assert!(onboard.fields.iter().all(|f| f.before.is_none()));
    assert_eq!(onboard.fields[0].after, Some(json!("Acme CRM")));
    let added: Vec<(Option<&str>, InstanceEvent)> = onboard
        .instances
        .iter()
        .map(|i| (i.alias.as_deref(), i.change))
        .collect();
    assert_eq!(
        added,
        [
            (Some("demo-east"), InstanceEvent::Added),
            (Some("demo-support"), InstanceEvent::Added)
        ]
    );
}

#[test]
fn history_edit_shows_before_after_and_the_added_instance_pause_and_offboard_their_instances() {
    let h = history(&root(), &sagas()).unwrap();
    let edit = &h.entries[1];
    assert!(!edit.created);
    assert_eq!(edit.fields.len(), 1, "{:?}", edit.fields);
    let f = &edit.fields[0];
    assert_eq!(
        (f.field.as_str(), f.before.clone(), f.after.clone()),
        (
            "displayName",
            Some(json!("Acme CRM")),
            Some(json!("Acme CRM v2"))
        )
    );
    assert_eq!(edit.instances.len(), 1);
    assert_eq!(
        (
            edit.instances[0].instance.as_str(),
            edit.instances[0].alias.as_deref(),
            edit.instances[0].change
        ),
        (WEST, None, InstanceEvent::Added)
    );

    let pause = &h.entries[2];
    assert!(pause.fields.is_empty());
    assert_eq!(pause.instances.len(), 1);
    assert_eq!(
        (
            pause.instances[0].alias.as_deref(),
            pause.instances[0].change
        ),
        (Some("demo-support"), InstanceEvent::Paused)
    );

    let off = &h.entries[3];
    assert!(off.fields.is_empty());
    let removed: Vec<&str> = off.instances.iter().map(|i| i.instance.as_str()).collect();
    assert_eq!(removed, [EAST, SUPPORT, WEST]);
    assert!(off
        .instances
        .iter()
        .all(|i| i.change == InstanceEvent::Removed));

    let wire = serde_json::to_value(edit).unwrap();
    assert_eq!(wire["sagaId"], "sg-edit");
    assert_eq!(wire["ticketId"], "CHG-2");
    assert_eq!(wire["instances"][0]["change"], "added");
}

#[test]
fn history_of_a_lifecycle_saga_is_refused_with_the_application_id() {
    let edit = sagas().into_iter().find(|s| s.id == "sg-edit").unwrap();
    let err = history(&edit, &[]).unwrap_err();
    assert!(
        matches!(&err, StateError::NotAnApplication { parent, .. } if parent == "sg-app"),
        "{err}"
    );
}

#[test]
fn history_a_running_saga_has_no_finish_time_and_times_are_rfc3339() {
    let mut running = root();
    running.status = onboard_core::record::SagaStatus::Running;
    let h = history(&running, &[]).unwrap();
    assert_eq!(h.entries[0].finished_at, None);
    assert_eq!(rfc3339(1_796_601_600_123), "2026-12-07T00:00:00.123Z");
}
