//! Happy paths: the dump shows exactly the onboarding's changes and nothing else.

use onboard_core::record::{NodeState, SagaStatus};
use onboard_core::store::SagaStore;
use onboard_integration_tests::*;

async fn onboard_n(n: usize) {
    let h = Harness::start().await;
    let pristine = h.dump();
    let spec = spec(&instances(n));
    let rec = h.onboard(&spec).await;
    assert_eq!(rec.status, SagaStatus::Succeeded, "{:?}", rec.cause);
    assert!(rec.lease.is_none(), "a finished saga holds no lease");
    assert!(
        rec.nodes.iter().all(|n| n.state == NodeState::Succeeded),
        "{:?}",
        node_states(&rec)
    );
    assert_eq!(rec.nodes.len(), 3 + 3 * n);
    // The log is written before and after every side effect.
    for node in &rec.nodes {
        let key = node.key();
        let events: Vec<&str> = rec
            .log
            .iter()
            .filter(|l| l.node == key)
            .map(|l| l.event.as_str())
            .collect();
        assert_eq!(events, ["started", "succeeded"], "log of {key}");
    }

    let app = assert_onboarded(&pristine, &h.dump(), &spec);
    assert_eq!(
        rec.output_of("create_application").unwrap()["arn"],
        app.app_arn.as_str()
    );
    let activated = rec.output_of("activate").unwrap();
    assert_eq!(activated["applicationArn"], app.app_arn.as_str());
    assert_eq!(
        activated["associations"].as_object().unwrap().len(),
        n,
        "{activated}"
    );
    for i in instances(n) {
        let grant = rec
            .node("grant_slr_policy", Some(&i))
            .unwrap()
            .output
            .clone()
            .unwrap();
        let role = slr_role(instance_number(&i).unwrap());
        assert_eq!(grant["roleName"], role.as_str(), "{grant}");
        assert_eq!(grant["policyName"], POLICY_NAME);
    }
    assert_eq!(
        h.store.namespace_holder(NAMESPACE).await.unwrap(),
        None,
        "a succeeded saga releases its namespace"
    );
    // Exactly one of each mutating call: no retries, no duplicates.
    assert_eq!(h.calls_named("CreateApplication"), 1);
    assert_eq!(h.calls_named("CreateIntegrationAssociation"), n);
    assert_eq!(h.calls_named("PutRolePolicy"), n);
    assert_eq!(h.calls_named("UpdateSecurityProfile"), n);
    for op in [
        "DeleteApplication",
        "DeleteIntegrationAssociation",
        "DeleteRolePolicy",
    ] {
        assert_eq!(h.calls_named(op), 0, "{op}");
    }
}

#[tokio::test]
async fn onboards_one_instance_and_changes_nothing_else() {
    onboard_n(1).await;
}

#[tokio::test]
async fn onboards_five_instances_and_changes_nothing_else() {
    onboard_n(5).await;
}

/// Statements of another application already in our inline policy are kept, and a rollback
/// gives back the policy exactly as it was.
#[tokio::test]
async fn other_statements_in_our_policy_are_kept() {
    let mut o = Options::default();
    let existing = r#"{"Statement":[{"Action":["app-integrations:GetApplication"],"Effect":"Allow","Resource":"arn:aws:app-integrations:us-east-1:111122223333:application/0f0f0f0f-0000-4000-8000-000000000000","Sid":"App0f0f0f0f0000400080000000000000000"}],"Version":"2012-10-17"}"#;
    o.seed.instances[0]
        .slr_inline_policies
        .insert(POLICY_NAME.to_string(), existing.into());
    let h = Harness::with(o).await;
    let pristine = h.dump();
    let spec = spec(&instances(2));
    assert_eq!(h.onboard(&spec).await.status, SagaStatus::Succeeded);
    assert_onboarded(&pristine, &h.dump(), &spec);

    // The same onboarding rolled back by a failure at the last step.
    h.sandbox().reset().unwrap();
    h.fault(fail_nth(
        "ListIntegrationAssociations",
        3,
        "AccessDeniedException",
        403,
    ));
    let rec = h.onboard(&spec).await;
    assert_eq!(
        rec.status,
        SagaStatus::RolledBack,
        "{:?}",
        node_states(&rec)
    );
    assert_same(&pristine, &h.dump(), "rolled back");
}
