//! Table-driven tests of spec parsing and validation: each bad row mutates one good spec and
//! asserts the exact set of field paths reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use onboard_core::spec::{
    instance_id, parse_spec, profile_arn_instance, profile_id, ApplicationSpec,
};
use onboard_core::validation::{Problem, ValidationErrors};
use serde_json::{json, Value};

const I1: &str = "11111111-2222-3333-4444-555555555555";
const I2_ARN: &str =
    "arn:aws:connect:us-east-1:123456789012:instance/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const I2: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const P1: &str = "99999999-8888-7777-6666-555555555555";
const P2: &str = "12345678-90ab-cdef-1234-567890abcdef";

fn good() -> Value {
    json!({
        "displayName": "Customer CRM",
        "description": "CRM side panel for agents",
        "accessUrl": "https://crm.example.com/agent/",
        "approvedOrigins": ["https://login.example.com"],
        "permissions": ["User.Details.View", "Contact.Details.View"],
        "subscriptions": [],
        "publications": [],
        "iframe": {
            "allow": ["clipboard-write"],
            "sandbox": ["allow-scripts", "allow-same-origin", "allow-forms", "allow-popups"]
        },
        "initializationTimeoutMs": 30000,
        "contactScope": "PER_CONTACT",
        "applicationType": "STANDARD",
        "tags": {"team": "contact-center"},
        "instances": [I1, I2_ARN],
        "securityProfiles": [{"instance": I1, "profiles": [P1]}],
        "requester": {"source": "TICKET", "principal": "jdoe", "ticketId": "CHG0012345"}
    })
}

fn spec_of(v: &Value) -> ApplicationSpec {
    parse_spec(&serde_json::to_vec(v).unwrap()).unwrap_or_else(|e| panic!("parse failed: {e}"))
}

/// Sets the value at a JSON pointer; a missing top-level key is inserted.
fn set(v: &mut Value, pointer: &str, new: Value) {
    if let Some(slot) = v.pointer_mut(pointer) {
        *slot = new;
    } else {
        let key = pointer.strip_prefix('/').filter(|k| !k.contains('/'));
        let key = key.unwrap_or_else(|| panic!("no {pointer}"));
        v.as_object_mut().unwrap().insert(key.to_string(), new);
    }
}

fn errors_of(v: &Value) -> ValidationErrors {
    match spec_of(v).validate() {
        Ok(ok) => panic!("expected errors, got Ok with warnings {:?}", ok.warnings),
        Err(e) => e,
    }
}

fn assert_well_formed(p: &Problem) {
    assert!(!p.field.is_empty(), "empty field in {p:?}");
    assert!(!p.problem.trim().is_empty(), "empty problem in {p:?}");
    assert!(!p.fix.trim().is_empty(), "empty fix in {p:?}");
}

type Mutation = fn(&mut Value);

#[test]
fn bad_specs_report_exact_field_sets() {
    let rows: Vec<(&str, Mutation, &[&str])> = vec![
        (
            "name too long",
            |v| set(v, "/displayName", json!("a".repeat(300))),
            &["displayName"],
        ),
        (
            "name bad chars",
            |v| set(v, "/displayName", json!("CRM & Co!")),
            &["displayName"],
        ),
        (
            "name empty",
            |v| set(v, "/displayName", json!("")),
            &["displayName"],
        ),
        (
            "namespace with colon",
            |v| set(v, "/namespace", json!("https://crm.example.com")),
            &["namespace"],
        ),
        (
            "namespace 212 chars",
            |v| set(v, "/namespace", json!("n".repeat(212))),
            &["namespace"],
        ),
        (
            "namespace >128 with profiles",
            |v| set(v, "/namespace", json!("n".repeat(150))),
            &["namespace"],
        ),
        (
            "derived namespace >128 with profiles",
            |v| {
                set(
                    v,
                    "/accessUrl",
                    json!(format!("https://crm.example.com/{}", "p".repeat(150))),
                )
            },
            &["namespace"],
        ),
        (
            "description 1001",
            |v| set(v, "/description", json!("d".repeat(1001))),
            &["description"],
        ),
        (
            "accessUrl plain http",
            |v| set(v, "/accessUrl", json!("http://crm.example.com")),
            &["accessUrl"],
        ),
        (
            "accessUrl no scheme",
            |v| set(v, "/accessUrl", json!("crm.example.com/agent")),
            &["accessUrl"],
        ),
        (
            "accessUrl credentials",
            |v| set(v, "/accessUrl", json!("https://bob:pw@crm.example.com")),
            &["accessUrl"],
        ),
        (
            "accessUrl ftp",
            |v| set(v, "/accessUrl", json!("ftp://crm.example.com")),
            &["accessUrl"],
        ),
        (
            "accessUrl newline",
            |v| set(v, "/accessUrl", json!("https://crm.example.com\n")),
            &["accessUrl"],
        ),
        (
            "origin http",
            |v| {
                set(
                    v,
                    "/approvedOrigins",
                    json!(["https://login.example.com", "http://idp.example.com"]),
                )
            },
            &["approvedOrigins[1]"],
        ),
        (
            "origin duplicate after normalizing",
            |v| {
                set(
                    v,
                    "/approvedOrigins",
                    json!(["https://login.example.com", "https://LOGIN.example.com/x"]),
                )
            },
            &["approvedOrigins[1]"],
        ),
        (
            "51 origins",
            |v| {
                let o: Vec<String> = (0..51)
                    .map(|i| format!("https://o{i}.example.com"))
                    .collect();
                set(v, "/approvedOrigins", json!(o));
            },
            &["approvedOrigins"],
        ),
        (
            "origin over 128 chars",
            |v| {
                set(
                    v,
                    "/approvedOrigins/0",
                    json!(format!("https://{}.example.com", "a".repeat(120))),
                )
            },
            &["approvedOrigins[0]"],
        ),
        (
            "permission duplicate",
            |v| {
                set(
                    v,
                    "/permissions",
                    json!([
                        "User.Details.View",
                        "Contact.Details.View",
                        "User.Details.View"
                    ]),
                )
            },
            &["permissions[2]"],
        ),
        (
            "permission bad char",
            |v| set(v, "/permissions/1", json!("Contact Details")),
            &["permissions[1]"],
        ),
        (
            "151 permissions",
            |v| {
                let p: Vec<String> = (0..151).map(|i| format!("Custom.P{i}")).collect();
                set(v, "/permissions", json!(p));
            },
            &["permissions"],
        ),
        (
            "subscription event without ::",
            |v| set(v, "/subscriptions", json!([{"event": "contactSelected"}])),
            &["subscriptions[0].event"],
        ),
        (
            "publication empty schema and duplicate event",
            |v| {
                set(
                    v,
                    "/publications",
                    json!([
                        {"event": "crm::saved", "schema": ""},
                        {"event": "crm::saved", "schema": "{}", "description": "x".repeat(1001)}
                    ]),
                )
            },
            &[
                "publications[0].schema",
                "publications[1].event",
                "publications[1].description",
            ],
        ),
        (
            "iframe bad token and duplicate",
            |v| {
                set(v, "/iframe/sandbox/0", json!("Allow-Scripts"));
                set(v, "/iframe/allow", json!(["camera", "camera"]));
            },
            &["iframe.sandbox[0]", "iframe.allow[1]"],
        ),
        (
            "26 iframe allow entries",
            |v| {
                let a: Vec<String> = (1..=26).map(|i| "x".repeat(i)).collect();
                set(v, "/iframe/allow", json!(a));
            },
            &["iframe.allow"],
        ),
        (
            "timeout 0",
            |v| set(v, "/initializationTimeoutMs", json!(0)),
            &["initializationTimeoutMs"],
        ),
        (
            "timeout 600001",
            |v| set(v, "/initializationTimeoutMs", json!(600_001)),
            &["initializationTimeoutMs"],
        ),
        (
            "reserved and malformed tags",
            |v| {
                set(
                    v,
                    "/tags",
                    json!({
                        "aws:createdBy": "x",
                        "connect-onboarding:saga-id": "y",
                        "cost center": "z",
                        "owner": "v".repeat(257)
                    }),
                )
            },
            &[
                r#"tags["aws:createdBy"]"#,
                r#"tags["connect-onboarding:saga-id"]"#,
                r#"tags["cost center"]"#,
                r#"tags["owner"]"#,
            ],
        ),
        (
            "201 tags",
            |v| {
                let t: serde_json::Map<String, Value> =
                    (0..201).map(|i| (format!("k{i}"), json!("v"))).collect();
                set(v, "/tags", Value::Object(t));
            },
            &["tags"],
        ),
        (
            "no instances",
            |v| {
                set(v, "/instances", json!([]));
                set(v, "/securityProfiles", json!([]));
            },
            &["instances"],
        ),
        (
            "malformed instance",
            |v| set(v, "/instances", json!([I1, I2_ARN, "my-instance"])),
            &["instances[2]"],
        ),
        (
            "duplicate instance id vs ARN",
            |v| set(v, "/instances", json!([I1, I2_ARN, I2.to_uppercase()])),
            &["instances[2]"],
        ),
        (
            "instance in another Region",
            |v| {
                let other = format!("arn:aws:connect:eu-west-2:123456789012:instance/{I1}")
                    .replace("1111", "bbbb");
                set(v, "/instances", json!([I1, I2_ARN, other]));
            },
            &["instances[2]"],
        ),
        (
            "101 instances",
            |v| {
                let ids: Vec<String> = (0..101)
                    .map(|i| format!("{i:08x}-0000-0000-0000-000000000000"))
                    .collect();
                set(v, "/instances", json!(ids));
                set(v, "/securityProfiles", json!([]));
            },
            &["instances"],
        ),
        (
            "profile instance not associated",
            |v| {
                set(
                    v,
                    "/securityProfiles/0/instance",
                    json!("cccccccc-bbbb-cccc-dddd-eeeeeeeeeeee"),
                )
            },
            &["securityProfiles[0].instance"],
        ),
        (
            "malformed profile",
            |v| set(v, "/securityProfiles/0/profiles", json!([P1, "Agent"])),
            &["securityProfiles[0].profiles[1]"],
        ),
        (
            "profile ARN of another instance",
            |v| {
                let arn = format!(
                    "arn:aws:connect:us-east-1:123456789012:instance/{I2}/security-profile/{P2}"
                );
                set(v, "/securityProfiles/0/profiles", json!([P1, arn]));
            },
            &["securityProfiles[0].profiles[1]"],
        ),
        (
            "duplicate profile",
            |v| {
                set(
                    v,
                    "/securityProfiles/0/profiles",
                    json!([P1, P1.to_uppercase()]),
                )
            },
            &["securityProfiles[0].profiles[1]"],
        ),
        (
            "same instance twice",
            |v| {
                set(
                    v,
                    "/securityProfiles",
                    json!([{"instance": I1, "profiles": [P1]}, {"instance": I1, "profiles": [P2]}]),
                )
            },
            &["securityProfiles[1].instance"],
        ),
        (
            "empty profile list",
            |v| set(v, "/securityProfiles/0/profiles", json!([])),
            &["securityProfiles[0].profiles"],
        ),
        (
            "ticket without ticketId",
            |v| {
                set(
                    v,
                    "/requester",
                    json!({"source": "TICKET", "principal": "jdoe"}),
                )
            },
            &["requester.ticketId"],
        ),
        (
            "blank principal",
            |v| set(v, "/requester/principal", json!("   ")),
            &["requester.principal"],
        ),
        (
            "ticketId bad chars",
            |v| set(v, "/requester/ticketId", json!("CHG 12#3")),
            &["requester.ticketId"],
        ),
    ];
    assert!(rows.len() >= 30);
    for (name, mutate, expected) in rows {
        let mut v = good();
        mutate(&mut v);
        let err = errors_of(&v);
        let got: BTreeSet<&str> = err.problems.iter().map(|p| p.field.as_str()).collect();
        let want: BTreeSet<&str> = expected.iter().copied().collect();
        assert_eq!(got, want, "row {name:?}: {err}");
        err.problems.iter().for_each(assert_well_formed);
        err.warnings.iter().for_each(assert_well_formed);
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let v = json!({
        "displayName": "Bad: name",
        "namespace": "has spaces",
        "accessUrl": "http://crm.example.com",
        "approvedOrigins": ["ftp://files.example.com", "https://a.example.com", "https://A.example.com"],
        "permissions": ["User.Details.View", ""],
        "subscriptions": [{"event": "nocolons"}],
        "iframe": {"allow": ["Camera"], "sandbox": ["allow-scripts"]},
        "initializationTimeoutMs": 900000,
        "tags": {"aws:x": "1"},
        "instances": ["nope", I1, I1],
        "securityProfiles": [{"instance": I2, "profiles": ["bad"]}],
        "requester": {"source": "TICKET", "principal": ""}
    });
    let err = errors_of(&v);
    let got: BTreeSet<&str> = err.problems.iter().map(|p| p.field.as_str()).collect();
    let want: BTreeSet<&str> = [
        "displayName",
        "namespace",
        "accessUrl",
        "approvedOrigins[0]",
        "approvedOrigins[2]",
        "permissions[1]",
        "subscriptions[0].event",
        "iframe.allow[0]",
        "initializationTimeoutMs",
        r#"tags["aws:x"]"#,
        "instances[0]",
        "instances[2]",
        "securityProfiles[0].instance",
        "securityProfiles[0].profiles[0]",
        "requester.principal",
        "requester.ticketId",
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want, "{err}");
    err.problems.iter().for_each(assert_well_formed);
    // Display: one line per problem, "field: problem — fix".
    let text = err.to_string();
    assert_eq!(text.lines().count(), err.problems.len());
    assert!(text.lines().all(|l| l.contains(": ") && l.contains(" — ")));
    // Warnings found in the same pass travel with the errors (subscriptions are deprecated).
    assert!(err.warnings.iter().any(|w| w.field == "subscriptions"));
}

#[test]
fn messages_cite_limits_and_fixes_are_specific() {
    let mut v = good();
    set(&mut v, "/displayName", json!("a".repeat(300)));
    set(&mut v, "/accessUrl", json!("http://crm.example.com"));
    let err = errors_of(&v);
    let name = err
        .problems
        .iter()
        .find(|p| p.field == "displayName")
        .unwrap();
    assert!(
        name.problem.contains("is 300 characters; the limit is 255"),
        "{name}"
    );
    let url = err
        .problems
        .iter()
        .find(|p| p.field == "accessUrl")
        .unwrap();
    assert_eq!(
        url.fix,
        "Use https://, or http://localhost for local testing."
    );

    let mut v = good();
    set(&mut v, "/displayName", json!("CRM: Pro!"));
    let err = errors_of(&v);
    assert!(
        err.problems[0].problem.contains("':', '!'"),
        "{}",
        err.problems[0]
    );

    let mut v = good();
    set(&mut v, "/namespace", json!("https://crm.example.com"));
    let err = errors_of(&v);
    assert!(
        err.problems[0].fix.contains("crm.example.com"),
        "{}",
        err.problems[0]
    );
}

#[test]
fn good_specs_validate_clean() {
    let ok = spec_of(&good()).validate().unwrap();
    assert_eq!(ok.namespace, "crm.example.com/agent");
    assert_eq!(ok.instance_ids, vec![I1.to_string(), I2.to_string()]);
    assert_eq!(ok.profile_grants.len(), 1);
    assert_eq!(ok.profile_grants[0].instance_id, I1);
    assert_eq!(ok.profile_grants[0].profile_ids, vec![P1.to_string()]);
    assert!(ok.warnings.is_empty(), "{:?}", ok.warnings);

    // Local testing over http is allowed for every loopback spelling.
    for url in [
        "http://localhost:3000",
        "http://app.localhost/x",
        "http://127.0.0.1:8080",
        "http://[::1]:5173/",
    ] {
        let mut v = good();
        set(&mut v, "/accessUrl", json!(url));
        set(
            &mut v,
            "/approvedOrigins",
            json!(["http://localhost:4000", "https://login.example.com"]),
        );
        let ok = spec_of(&v)
            .validate()
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(ok.warnings.is_empty(), "{url}: {:?}", ok.warnings);
    }

    // Minimal spec: only required fields; namespace derived; no profiles, so no 128 limit.
    let minimal = json!({
        "displayName": "Knowledge base",
        "accessUrl": format!("https://kb.example.com/{}", "k".repeat(150)),
        "instances": [I2_ARN],
        "requester": {"source": "PORTAL", "principal": "alice@example.com"}
    });
    let ok = spec_of(&minimal).validate().unwrap();
    assert!(ok.namespace.starts_with("kb.example.com/kkk") && ok.namespace.len() == 165);
    assert_eq!(ok.instance_ids, vec![I2.to_string()]);
    assert!(ok.warnings.is_empty(), "{:?}", ok.warnings);

    // Profile given as an ARN of the right instance, instance referenced by ARN.
    let mut v = good();
    let arn = format!("arn:aws:connect:us-east-1:123456789012:instance/{I2}/security-profile/{P2}");
    set(
        &mut v,
        "/securityProfiles",
        json!([{"instance": I2_ARN, "profiles": [arn]}]),
    );
    let ok = spec_of(&v).validate().unwrap();
    assert_eq!(ok.profile_grants[0].instance_id, I2);
    assert_eq!(ok.profile_grants[0].profile_ids, vec![P2.to_string()]);
}

#[test]
fn warnings_do_not_block() {
    let mut v = good();
    set(
        &mut v,
        "/permissions",
        json!([
            "User.Detials.View",
            "contact.details.view",
            "Contact.Transcript.View"
        ]),
    );
    set(
        &mut v,
        "/approvedOrigins",
        json!(["https://crm.example.com"]),
    );
    set(
        &mut v,
        "/iframe",
        json!({"allow": ["geolocation"], "sandbox": []}),
    );
    let ok = spec_of(&v).validate().unwrap();
    let w = |field: &str| {
        ok.warnings
            .iter()
            .find(|p| p.field == field)
            .unwrap_or_else(|| panic!("no warning for {field}: {:?}", ok.warnings))
    };
    assert!(w("permissions[0]")
        .problem
        .contains("closest known name is User.Details.View"));
    assert!(w("permissions[1]").problem.contains("Contact.Details.View"));
    assert!(w("approvedOrigins[0]")
        .problem
        .contains("access URL's own origin"));
    assert!(w("iframe.allow[0]").fix.contains("clipboard-read"));
    assert!(w("iframe.sandbox").problem.contains("allow-scripts"));
    ok.warnings.iter().for_each(assert_well_formed);

    let mut v = good();
    set(&mut v, "/permissions", json!(["*"]));
    let ok = spec_of(&v).validate().unwrap();
    assert_eq!(ok.warnings.len(), 1);
    assert_eq!(ok.warnings[0].field, "permissions[0]");
}

#[test]
fn parse_errors_carry_exact_paths() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            {
                let mut v = good();
                v["approvedOrigin"] = json!([]);
                v
            },
            "approvedOrigin",
            "approvedOrigins",
        ),
        (
            {
                let mut v = good();
                v["securityProfiles"][0]["profile"] = json!([]);
                v
            },
            "securityProfiles[0].profile",
            "profiles",
        ),
        (
            {
                let mut v = good();
                v["securityProfiles"][0]["profiles"] = json!("abc");
                v
            },
            "securityProfiles[0].profiles",
            "expected a sequence",
        ),
        (
            {
                let mut v = good();
                v.as_object_mut().unwrap().remove("requester");
                v
            },
            "requester",
            "missing",
        ),
        (
            {
                let mut v = good();
                v["requester"].as_object_mut().unwrap().remove("principal");
                v
            },
            "requester.principal",
            "missing",
        ),
        (
            {
                let mut v = good();
                v["applicationType"] = json!("MCP_SERVER");
                v
            },
            "applicationType",
            "STANDARD",
        ),
        (
            {
                let mut v = good();
                v["initializationTimeoutMs"] = json!(-5);
                v
            },
            "initializationTimeoutMs",
            "u32",
        ),
        (
            {
                let mut v = good();
                v["iframe"]["sandbox"][1] = json!(7);
                v
            },
            "iframe.sandbox[1]",
            "string",
        ),
    ];
    for (v, field, needle) in cases {
        let err = parse_spec(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        let p = &err.problems[0];
        assert_eq!(p.field, field, "{p}");
        assert!(p.problem.contains(needle), "{p} should mention {needle}");
        assert_well_formed(p);
    }

    let unknown = {
        let mut v = good();
        v["approvedOrigin"] = json!([]);
        parse_spec(&serde_json::to_vec(&v).unwrap()).unwrap_err()
    };
    assert!(unknown.problems[0]
        .fix
        .contains("Remove `approvedOrigin` or fix its spelling"));
    let mcp = {
        let mut v = good();
        v["applicationType"] = json!("MCP_SERVER");
        parse_spec(&serde_json::to_vec(&v).unwrap()).unwrap_err()
    };
    assert!(mcp.problems[0].fix.contains("only STANDARD and SERVICE"));

    // Syntax errors point at where parsing stopped; non-objects and duplicates are named.
    let mut trailing = serde_json::to_vec(&good()).unwrap();
    trailing.extend_from_slice(b" {}");
    for (body, field, needle) in [
        (&b"{\"displayName\": "[..], "displayName", "not valid JSON"),
        (&b"{\"displayName\" \"x\"}"[..], "$", "not valid JSON"),
        (&b"not json"[..], "$", "not a JSON object"),
        (&b"[]"[..], "$", "not a JSON object"),
        (
            &b"{\"displayName\":\"a\",\"displayName\":\"b\"}"[..],
            "displayName",
            "more than once",
        ),
        (&trailing[..], "$", "after the JSON object"),
    ] {
        let err = parse_spec(body).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].field, field, "{err}");
        assert!(err.problems[0].problem.contains(needle), "{err}");
        assert_well_formed(&err.problems[0]);
    }
}

#[test]
fn namespace_derivation_table() {
    let rows = [
        ("https://crm.example.com/agent/", "crm.example.com/agent"),
        ("http://localhost:3000", "localhost-3000"),
        ("https://CRM.Example.com", "crm.example.com"),
        ("https://crm.example.com:443/x", "crm.example.com/x"),
        (
            "https://crm.example.com:8443/a/b//?q=1#frag",
            "crm.example.com-8443/a/b",
        ),
        (
            "https://crm.example.com/app%20one/",
            "crm.example.com/app-20one",
        ),
        ("https://crm.example.com/a:b~c", "crm.example.com/a-b-c"),
        ("http://[::1]:8080/", "---1--8080"),
        ("https://bücher.example/", "xn--bcher-kva.example"),
    ];
    for (url, want) in rows {
        let mut v = good();
        set(&mut v, "/accessUrl", json!(url));
        assert_eq!(spec_of(&v).effective_namespace().unwrap(), want, "{url}");
    }
    // Truncated to the AppIntegrations limit.
    let mut v = good();
    set(
        &mut v,
        "/accessUrl",
        json!(format!("https://crm.example.com/{}", "p".repeat(400))),
    );
    assert_eq!(spec_of(&v).effective_namespace().unwrap().len(), 211);
    // A given namespace wins, unchanged.
    let mut v = good();
    v["namespace"] = json!("my.crm");
    assert_eq!(spec_of(&v).effective_namespace().unwrap(), "my.crm");
    // Not derivable from a broken URL.
    let mut v = good();
    set(&mut v, "/accessUrl", json!("not a url"));
    let p = spec_of(&v).effective_namespace().unwrap_err();
    assert_eq!(p.field, "namespace");
}

#[test]
fn id_and_arn_helpers() {
    assert_eq!(instance_id(I1).as_deref(), Some(I1));
    assert_eq!(instance_id(&I1.to_uppercase()).as_deref(), Some(I1));
    assert_eq!(instance_id(I2_ARN).as_deref(), Some(I2));
    assert_eq!(
        instance_id(&format!(
            "arn:aws-us-gov:connect:us-gov-west-1:123456789012:instance/{I1}"
        ))
        .as_deref(),
        Some(I1)
    );
    for bad in [
        "",
        "my-instance",
        "11111111222233334444555555555555",
        &format!("arn:aws:iam:us-east-1:123456789012:instance/{I1}"),
        &format!("arn:aws:connect:us-east-1:12345:instance/{I1}"),
        &format!("arn:aws:connect:us-east-1:123456789012:instance/{I1}/extra"),
        &format!("arn:aws:connect:us-east-1:123456789012:instance/{I1}/security-profile/{P1}"),
    ] {
        assert_eq!(instance_id(bad), None, "{bad}");
    }
    let parn = format!(
        "arn:aws:connect:us-east-1:123456789012:instance/{I1}/security-profile/{}",
        P1.to_uppercase()
    );
    assert_eq!(profile_id(&parn).as_deref(), Some(P1));
    assert_eq!(profile_arn_instance(&parn).as_deref(), Some(I1));
    assert_eq!(profile_id(P2).as_deref(), Some(P2));
    assert_eq!(profile_arn_instance(P2), None);
    assert_eq!(profile_id("Agent"), None);
}

#[test]
fn payload_hash_is_canonical() {
    let a = spec_of(&good());
    // Same content, different key order and explicitly empty lists: same hash.
    let mut reordered: serde_json::Map<String, Value> = good()
        .as_object()
        .unwrap()
        .clone()
        .into_iter()
        .rev()
        .collect();
    reordered.insert("subscriptions".into(), json!([]));
    let b = spec_of(&Value::Object(reordered));
    assert_eq!(a.payload_hash(), b.payload_hash());
    assert_eq!(a.payload_hash().len(), 64);
    let mut v = good();
    set(&mut v, "/displayName", json!("Customer CRM 2"));
    assert_ne!(a.payload_hash(), spec_of(&v).payload_hash());
    // Round trip keeps the spec identical.
    let again: ApplicationSpec = serde_json::from_slice(&serde_json::to_vec(&a).unwrap()).unwrap();
    assert_eq!(a, again);
}
