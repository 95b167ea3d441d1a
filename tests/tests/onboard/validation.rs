//! Validation failures: nothing is created, the record says what to fix.

use onboard_core::error::ErrorKind;
use onboard_core::record::{NodeState, SagaStatus};
use onboard_integration_tests::*;
use serde_json::json;

const MUTATING: [&str; 7] = [
    "CreateApplication",
    "CreateIntegrationAssociation",
    "PutRolePolicy",
    "UpdateSecurityProfile",
    "DeleteApplication",
    "DeleteIntegrationAssociation",
    "DeleteRolePolicy",
];

fn assert_nothing_changed(h: &Harness) {
    for op in MUTATING {
        assert_eq!(h.calls_named(op), 0, "{op} was never called");
    }
}

#[tokio::test]
async fn an_instance_without_a_service_linked_role_is_refused_with_the_fix() {
    let h = Harness::start().await;
    let pristine = h.dump();
    let mut s = spec(&instances(2));
    s["instances"] = json!([instance(1), LEGACY_INSTANCE, instance(2)]);
    let rec = h.onboard(&s).await;
    assert_eq!(rec.status, SagaStatus::Refused);
    let cause = rec.cause.unwrap();
    assert_eq!(cause.kind, ErrorKind::Invalid, "{cause:?}");
    assert!(
        cause.message.contains(LEGACY_INSTANCE)
            && cause.message.contains("service-linked role")
            && cause.message.contains("migrate"),
        "{cause:?}"
    );
    assert!(
        !cause.message.contains(&instance(1)),
        "only the offending instance is named: {cause:?}"
    );
    assert_same(&pristine, &h.dump(), "nothing created");
    assert_nothing_changed(&h);
}

#[tokio::test]
async fn an_unknown_instance_and_a_taken_namespace_are_refused() {
    let h = Harness::start().await;
    let pristine = h.dump();

    let mut s = spec(&instances(1));
    let ghost = "10000000-0000-4000-8000-0000000000aa";
    s["instances"] = json!([instance(1), ghost]);
    let rec = h.onboard(&s).await;
    assert_eq!(rec.status, SagaStatus::Refused);
    let cause = rec.cause.unwrap();
    assert!(
        cause.kind == ErrorKind::Invalid && cause.message.contains(ghost),
        "{cause:?}"
    );

    let mut s = spec(&instances(1));
    s["namespace"] = json!(FOREIGN_NAMESPACE);
    let rec = h.onboard(&s).await;
    assert_eq!(rec.status, SagaStatus::Refused);
    let cause = rec.cause.unwrap();
    assert_eq!(
        (cause.kind, cause.code.as_str()),
        (ErrorKind::Conflict, "NamespaceTaken"),
        "{cause:?}"
    );
    assert_same(&pristine, &h.dump(), "the foreign application is untouched");
    assert_nothing_changed(&h);
}

/// The SLR's inline policies would exceed IAM's 10,240 characters: `validate` predicts it and
/// refuses the spec before any side effect (no application, association or policy write), with
/// the role, the numbers and the fix.
#[tokio::test]
async fn an_slr_policy_budget_overflow_is_refused_before_any_side_effect() {
    let mut o = Options::default();
    let big = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Big", "Effect": "Allow",
        "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{}", "x".repeat(9_900))}]});
    o.seed.instances[1]
        .slr_inline_policies
        .insert("Huge".to_string(), big);
    let h = Harness::with(o).await;
    let pristine = h.dump();
    let rec = h.onboard(&spec(&instances(3))).await;
    assert_eq!(rec.status, SagaStatus::Refused);
    let cause = rec.cause.clone().unwrap();
    assert_eq!(
        (cause.kind, cause.code.as_str()),
        (ErrorKind::QuotaExceeded, "PolicyBudgetExceeded"),
        "{cause:?}"
    );
    assert!(cause.message.contains(&slr_role(2)), "{cause:?}");
    assert!(
        cause.message.contains("would make"),
        "the predicted size: {cause:?}"
    );
    assert!(
        cause
            .fix
            .as_deref()
            .is_some_and(|f| f.contains("Free at least")),
        "{cause:?}"
    );
    assert!(
        matches!(
            rec.node("validate", None).map(|n| n.state),
            Some(NodeState::Failed | NodeState::Undone)
        ),
        "refused by validate: {:?}",
        node_states(&rec)
    );
    assert!(
        rec.nodes
            .iter()
            .filter(|n| n.step != "validate")
            .all(|n| n.state == NodeState::Pending),
        "no other step ran: {:?}",
        node_states(&rec)
    );
    assert_same(&pristine, &h.dump(), "nothing created");
    assert_nothing_changed(&h);
    // It read the roles' inline policies to predict it.
    assert!(h.calls_named("ListRolePolicies") >= 3);
}

/// Every error finding of `validate` is in the cause, each with its fix; warnings (an instance
/// without an alias here would be one) do not stop it.
#[tokio::test]
async fn every_preflight_error_is_reported_at_once_with_its_fix() {
    let mut o = Options::default();
    o.seed.instances[0].security_profiles[0].applications = (0..10)
        .map(|i| onboard_sandbox::GrantSeed {
            namespace: format!("app{i}.example.com"),
            permissions: vec!["ACCESS".to_string()],
        })
        .collect();
    let h = Harness::with(o).await;
    let mut s = spec(&instances(2));
    let ghost = "10000000-0000-4000-8000-0000000000aa";
    s["instances"] = json!([instance(1), instance(2), LEGACY_INSTANCE, ghost]);
    let rec = h.onboard(&s).await;
    let cause = rec.cause.unwrap();
    assert_eq!(
        (cause.kind, cause.code.as_str()),
        (ErrorKind::Invalid, "PreflightFailed"),
        "{cause:?}"
    );
    for (n, needle) in [
        (1, LEGACY_INSTANCE),
        (2, ghost),
        (3, profile(1, 1).as_str()),
    ] {
        assert!(cause.message.contains(&format!("({n})")), "{cause:?}");
        assert!(cause.message.contains(needle), "{needle}: {cause:?}");
    }
    let fix = cause.fix.unwrap();
    assert!(fix.contains("(1) Migrate the instance"), "{fix}");
    assert!(
        fix.contains("(3) Remove an application from the profile"),
        "{fix}"
    );
    assert_nothing_changed(&h);
}

/// A throttled DescribeInstance (and a 5xx ListRolePolicies) in `validate` is retried by the
/// engine, not turned into a refusal: the saga succeeds.
#[tokio::test]
async fn a_throttled_describe_instance_in_validate_is_retried_not_terminal() {
    let h = Harness::start().await;
    let pristine = h.dump();
    let s = spec(&instances(2));
    h.fault(fail_nth("DescribeInstance", 2, "ThrottlingException", 429));
    h.fault(fail_nth("ListRolePolicies", 1, "ServiceFailure", 500));
    let rec = h.onboard(&s).await;
    assert_eq!(rec.status, SagaStatus::Succeeded, "{:?}", rec.cause);
    for (op, fired) in h.fired() {
        assert_eq!(fired, 1, "the fault on {op} fired");
    }
    let retried: Vec<(&str, &str)> = rec
        .log
        .iter()
        .filter_map(|l| {
            l.detail
                .as_deref()
                .filter(|d| d.starts_with("retry"))
                .map(|d| (l.node.as_str(), d))
        })
        .collect();
    assert_eq!(retried.len(), 2, "{retried:?}");
    assert!(
        retried.iter().all(|(node, _)| *node == "validate"),
        "{retried:?}"
    );
    assert!(retried
        .iter()
        .any(|(_, d)| d.contains("ThrottlingException")));
    assert_onboarded(&pristine, &h.dump(), &s);
}

/// A security profile that already grants 10 applications: refused in validate.
#[tokio::test]
async fn a_full_security_profile_is_refused_before_anything_is_created() {
    let mut o = Options::default();
    o.seed.instances[0].security_profiles[0].applications = (0..10)
        .map(|i| onboard_sandbox::GrantSeed {
            namespace: format!("app{i}.example.com"),
            permissions: vec!["ACCESS".to_string()],
        })
        .collect();
    let h = Harness::with(o).await;
    let pristine = h.dump();
    let rec = h.onboard(&spec(&instances(2))).await;
    assert_eq!(rec.status, SagaStatus::Refused);
    let cause = rec.cause.unwrap();
    assert_eq!(cause.kind, ErrorKind::Invalid, "{cause:?}");
    assert!(cause.message.contains(&profile(1, 1)), "{cause:?}");
    assert_same(&pristine, &h.dump(), "nothing created");
    assert_nothing_changed(&h);
}
