//! Least privilege: every action a function's code can call is granted to that function's role,
//! every granted action is called by its code (or needed by a platform feature the template
//! turns on), and resources are as narrow as the service allows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use onboard_infra::code_actions::{Action, Analysis};
use onboard_infra::template::{platform_actions, Template};
use onboard_infra::workspace_root;

/// Actions AWS authorizes only on `*` (no resource-level permissions), so a `*` resource is as
/// narrow as it gets for them.
const STAR_ONLY: &[&str] = &[
    "app-integrations:ListApplications",
    "connect:ListInstances",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
];

fn load() -> (Analysis, Template) {
    let root = workspace_root();
    let analysis = Analysis::load(&root).expect("workspace sources parse");
    let template = Template::load(&root.join("infra/template.yaml")).expect("template parses");
    (analysis, template)
}

/// Function logical id → the actions its code can call, with the call sites.
fn code_actions(
    analysis: &Analysis,
    template: &Template,
) -> BTreeMap<String, BTreeMap<Action, BTreeSet<String>>> {
    let mut out = BTreeMap::new();
    for f in template.functions().expect("functions") {
        let krate = analysis.crate_at(&f.code_dir).unwrap_or_else(|| {
            panic!(
                "{}: CodeUri {:?} is no workspace crate",
                f.logical_id, f.code_dir
            )
        });
        let main = f.code_dir.join("src/main.rs");
        let calls = analysis.reachable_calls(&krate, &main).expect("analysis");
        out.insert(
            f.logical_id.clone(),
            analysis.actions(&calls).expect("actions"),
        );
    }
    out
}

#[test]
fn every_function_is_granted_exactly_what_its_code_calls() {
    let (analysis, template) = load();
    let code = code_actions(&analysis, &template);
    let functions = template.functions().unwrap();
    assert!(functions.len() >= 3, "api, worker and reconciler at least");
    let mut problems = Vec::new();
    for f in &functions {
        assert!(
            f.managed_policies.is_empty(),
            "{}: managed policies grant actions no test reviews: {:?}",
            f.logical_id,
            f.managed_policies
        );
        let granted: BTreeSet<Action> = f
            .statements
            .iter()
            .flat_map(|s| s.actions.iter().cloned().map(Action))
            .collect();
        let needed_by_code = &code[&f.logical_id];
        let platform: BTreeSet<Action> = platform_actions(f).into_iter().map(Action).collect();
        for (action, sites) in needed_by_code {
            if !granted.contains(action) {
                problems.push(format!(
                    "{}: the code calls {action} ({}) but the role {} does not grant it",
                    f.logical_id,
                    sites.iter().cloned().collect::<Vec<_>>().join(", "),
                    f.role
                ));
            }
        }
        for action in &platform {
            if !granted.contains(action) {
                problems.push(format!("{}: the platform needs {action}", f.logical_id));
            }
        }
        for action in &granted {
            if action.0.contains('*') {
                problems.push(format!("{}: wildcard action {action}", f.logical_id));
            }
            if !needed_by_code.contains_key(action) && !platform.contains(action) {
                problems.push(format!(
                    "{}: {action} is granted but nothing in the code it runs calls it",
                    f.logical_id
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

const SLR_PATH: &str =
    "role/aws-service-role/connect.amazonaws.com/AWSServiceRoleForAmazonConnect_";

#[test]
fn the_configured_service_linked_roles_admit_only_connect_slrs() {
    let (_, template) = load();
    let param = &template.root["Parameters"]["ConnectServiceLinkedRoleArns"];
    let pattern = param["AllowedPattern"].as_str().expect("an AllowedPattern");
    let re = regex::Regex::new(pattern).expect("a valid pattern");
    let slr = "arn:aws:iam::123456789012:role/aws-service-role/connect.amazonaws.com/AWSServiceRoleForAmazonConnect_XYUbWO6kTpYfc9uUNk5i";
    assert!(re.is_match(slr));
    assert!(re.is_match(""), "empty: every SLR of the account");
    for other in [
        "arn:aws:iam::123456789012:role/Admin",
        "arn:aws:iam::123456789012:role/aws-service-role/connect.amazonaws.com/*",
        "arn:aws:iam::123456789012:role/aws-service-role/connect.amazonaws.com/AWSServiceRoleForAmazonConnect_*",
        "*",
    ] {
        assert!(!re.is_match(other), "{other} must be refused");
    }
    // Every function that touches SLR policies is narrowed when the roles are configured.
    for f in template.functions().unwrap() {
        for s in &f.statements {
            let on_slrs = s.resources.iter().any(|r| r.contains(SLR_PATH));
            if on_slrs {
                assert!(
                    s.resources
                        .iter()
                        .any(|r| r == "!Ref ConnectServiceLinkedRoleArns"),
                    "{}: {:?} has no narrow branch",
                    f.logical_id,
                    s.actions
                );
            }
        }
    }
}

#[test]
fn resources_are_as_narrow_as_each_service_allows() {
    let (_, template) = load();
    let mut problems = Vec::new();
    for f in template.functions().unwrap() {
        for s in &f.statements {
            let star = s.resources.iter().any(|r| r.trim() == "*");
            if star {
                for a in &s.actions {
                    if !STAR_ONLY.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                        problems.push(format!("{}: {a} on \"*\"", f.logical_id));
                    }
                }
            }
            for a in &s.actions {
                if STAR_ONLY.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                    continue;
                }
                let needs = |prefix: &str, fragment: &str| {
                    a.to_ascii_lowercase().starts_with(prefix)
                        && !s.resources.iter().all(|r| r.contains(fragment))
                };
                // Preflight simulates the caller, a role or user of the account, not an SLR.
                let simulates_callers = a.eq_ignore_ascii_case("iam:SimulatePrincipalPolicy")
                    && s.resources.iter().all(|r| {
                        r.contains(":iam::${AWS::AccountId}:role/")
                            || r.contains(":iam::${AWS::AccountId}:user/")
                    });
                // The narrow branch: the configured roles, whose pattern admits only SLRs.
                let slr = |r: &String| {
                    r.contains(SLR_PATH) || r.trim() == "!Ref ConnectServiceLinkedRoleArns"
                };
                if !simulates_callers
                    && a.to_ascii_lowercase().starts_with("iam:")
                    && !s.resources.iter().all(slr)
                {
                    problems.push(format!(
                        "{}: {a} beyond Connect's service-linked roles: {:?}",
                        f.logical_id, s.resources
                    ));
                }
                if a.to_ascii_lowercase().starts_with("app-integrations:")
                    && !star
                    && !s.resources.iter().all(|r| {
                        r.contains(":application/*") || r.contains(":application-association/*")
                    })
                {
                    problems.push(format!(
                        "{}: {a} beyond application/* and application-association/*: {:?}",
                        f.logical_id, s.resources
                    ));
                }
                // Built from the ConnectInstanceArns parameter: the instances and their
                // sub-resources only.
                if needs("connect:", "ConnectInstanceArns") {
                    problems.push(format!(
                        "{}: {a} beyond the allowed instances: {:?}",
                        f.logical_id, s.resources
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_analysis_sees_what_each_function_builds() {
    // Guards the derivation itself: if a refactor hid the adapters from the analysis, the
    // comparison above would pass on an empty set.
    let (analysis, template) = load();
    let code = code_actions(&analysis, &template);
    let has = |f: &str, a: &str| {
        code.get(f)
            .is_some_and(|m| m.contains_key(&Action(a.to_string())))
    };
    assert!(has(
        "WorkerFunction",
        "connect:CreateIntegrationAssociation"
    ));
    assert!(has("WorkerFunction", "iam:PutRolePolicy"));
    assert!(has("WorkerFunction", "dynamodb:PutItem"));
    assert!(has("ApiFunction", "sqs:SendMessage"));
    assert!(
        !has("ApiFunction", "iam:PutRolePolicy"),
        "the API never touches IAM"
    );
    assert!(
        !has("ReconcilerFunction", "dynamodb:CreateTable"),
        "create_table is test/CLI-only"
    );
    assert!(has("ReconcilerFunction", "dynamodb:Query"));
}
