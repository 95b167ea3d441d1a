//! Validation failures: nothing is created, the record says what to fix.

use onboard_core::error::ErrorKind;
use onboard_core::record::SagaStatus;
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
    assert_eq!(rec.status, SagaStatus::RolledBack);
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
    assert_eq!(rec.status, SagaStatus::RolledBack);
    let cause = rec.cause.unwrap();
    assert!(
        cause.kind == ErrorKind::Invalid && cause.message.contains(ghost),
        "{cause:?}"
    );

    let mut s = spec(&instances(1));
    s["namespace"] = json!(FOREIGN_NAMESPACE);
    let rec = h.onboard(&s).await;
    assert_eq!(rec.status, SagaStatus::RolledBack);
    let cause = rec.cause.unwrap();
    assert_eq!(
        (cause.kind, cause.code.as_str()),
        (ErrorKind::Conflict, "NamespaceTaken"),
        "{cause:?}"
    );
    assert_same(&pristine, &h.dump(), "the foreign application is untouched");
    assert_nothing_changed(&h);
}

/// The SLR's inline policies would exceed IAM's 10,240 characters: refused before the write,
/// with a fix, and rolled back.
#[tokio::test]
async fn an_slr_policy_budget_overflow_is_refused_cleanly() {
    let mut o = Options::default();
    let big = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Big", "Effect": "Allow",
        "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{}", "x".repeat(9_900))}]});
    o.seed.instances[1]
        .slr_inline_policies
        .insert("Huge".to_string(), big);
    let h = Harness::with(o).await;
    let pristine = h.dump();
    let rec = h.onboard(&spec(&instances(3))).await;
    assert_eq!(rec.status, SagaStatus::RolledBack);
    let cause = rec.cause.unwrap();
    assert_eq!(
        (cause.kind, cause.code.as_str()),
        (ErrorKind::QuotaExceeded, "PolicyBudgetExceeded"),
        "{cause:?}"
    );
    assert!(cause.message.contains(&slr_role(2)), "{cause:?}");
    assert!(cause.fix.is_some());
    assert_same(&pristine, &h.dump(), "rolled back");
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
    assert_eq!(rec.status, SagaStatus::RolledBack);
    let cause = rec.cause.unwrap();
    assert_eq!(cause.kind, ErrorKind::Invalid, "{cause:?}");
    assert!(cause.message.contains(&profile(1, 1)), "{cause:?}");
    assert_same(&pristine, &h.dump(), "nothing created");
    assert_nothing_changed(&h);
}
