//! Instance, namespace, policy-budget and caller-permission checks against the sandbox, through
//! the real SDK clients (never AWS).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use onboard_aws::permission_simulator::SdkPermissionSimulator;
use onboard_aws::{ConnectRate, SdkAppIntegrations, SdkConnect, SdkIam};
use onboard_core::onboard::SAGA_TAG;
use onboard_core::policy::{self, INLINE_POLICY_BUDGET, POLICY_NAME};
use onboard_core::ports::IamPort;
use onboard_core::preflight::{
    check_instance, check_namespace, check_permissions, check_policy_budget, role_name,
    ActionRequest, Decision, PermissionPlan, PermissionSimulator, Severity, PLACEHOLDER_APP_ID,
};
use onboard_sandbox::{
    ApplicationSeed, RunningSandbox, Sandbox, SandboxConfig, SeedConfig, ThrottleConfig,
    DEMO_ACCOUNT, DEMO_INSTANCE_EAST, DEMO_INSTANCE_LEGACY,
};

const OPERATOR: &str = "arn:aws:iam::111122223333:role/OnboardingOperator";
const LEGACY: &str = "arn:aws:iam::111122223333:user/legacy-operator";
const EAST_SLR: &str = "AWSServiceRoleForAmazonConnect_XYUbWO6kTpYfc9uUNk5i";
const SUPPORT_SLR: &str = "AWSServiceRoleForAmazonConnect_HBDQRkK8TkflREzD1NkM";

struct Env {
    _sandbox: RunningSandbox,
    connect: SdkConnect,
    apps: SdkAppIntegrations,
    iam: SdkIam,
    sim: SdkPermissionSimulator,
}

fn app(namespace: &str, tags: &[(&str, &str)]) -> ApplicationSeed {
    ApplicationSeed {
        id: None,
        name: format!("App {namespace}"),
        namespace: namespace.to_owned(),
        access_url: format!("https://{namespace}"),
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        permissions: Vec::new(),
        associated_instances: Vec::new(),
    }
}

async fn start() -> Env {
    let mut seed = SeedConfig::demo();
    seed.applications = vec![
        app("taken.example.com", &[]),
        app("mine.example.com", &[(SAGA_TAG, "saga-1")]),
    ];
    let sandbox = Sandbox::start(SandboxConfig {
        seed,
        throttle: ThrottleConfig::unlimited(),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let endpoint = sandbox.endpoint();
    let creds = aws_sdk_iam::config::Credentials::new("testing", "testing", None, None, "test");
    let iam = aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::Config::builder()
            .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
            .endpoint_url(&endpoint)
            .region(aws_sdk_iam::config::Region::new("us-east-1"))
            .credentials_provider(creds.clone())
            .build(),
    );
    let connect = aws_sdk_connect::Client::from_conf(
        aws_sdk_connect::Config::builder()
            .behavior_version(aws_sdk_connect::config::BehaviorVersion::latest())
            .endpoint_url(&endpoint)
            .region(aws_sdk_connect::config::Region::new("us-east-1"))
            .credentials_provider(creds.clone())
            .build(),
    );
    let ai = aws_sdk_appintegrations::Client::from_conf(
        aws_sdk_appintegrations::Config::builder()
            .behavior_version(aws_sdk_appintegrations::config::BehaviorVersion::latest())
            .endpoint_url(&endpoint)
            .region(aws_sdk_appintegrations::config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .build(),
    );
    Env {
        _sandbox: sandbox,
        connect: SdkConnect::new(connect, ConnectRate::default()),
        apps: SdkAppIntegrations::new(ai),
        iam: SdkIam::new(iam.clone()),
        sim: SdkPermissionSimulator::new(iam),
    }
}

#[tokio::test]
async fn instance_checks() {
    let env = start().await;
    let (findings, info) = check_instance(&env.connect, DEMO_INSTANCE_EAST).await;
    assert!(findings.is_empty(), "{findings:?}");
    let info = info.unwrap();
    assert_eq!(info.alias.as_deref(), Some("demo-east"));
    assert_eq!(role_name(info.service_role.as_deref().unwrap()), EAST_SLR);

    let (findings, _) = check_instance(&env.connect, DEMO_INSTANCE_LEGACY).await;
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].severity, Severity::Error);
    assert!(findings[0].evidence.contains("service-linked role"));
    assert!(findings[0].fix.contains("Create service-linked role"));

    let missing = "99999999-9999-4999-8999-999999999999";
    let (findings, info) = check_instance(&env.connect, missing).await;
    assert!(info.is_none());
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].severity, Severity::Error);
    assert!(findings[0].evidence.contains("not found"), "{findings:?}");
}

#[tokio::test]
async fn namespace_checks() {
    let env = start().await;
    assert!(check_namespace(&env.apps, "free.example.com", None)
        .await
        .is_empty());
    let taken = check_namespace(&env.apps, "taken.example.com", Some("saga-1")).await;
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].severity, Severity::Error);
    assert!(taken[0].evidence.contains("taken.example.com"));
    // Owned by this same saga (a replay): fine. Another saga's: taken.
    assert!(
        check_namespace(&env.apps, "mine.example.com", Some("saga-1"))
            .await
            .is_empty()
    );
    assert_eq!(
        check_namespace(&env.apps, "mine.example.com", Some("saga-2"))
            .await
            .len(),
        1
    );
}

/// An inline policy of exactly `chars` non-whitespace characters.
fn filler(chars: usize) -> String {
    let make = |n: usize| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::{}"}}]}}"#,
            "b".repeat(n)
        )
    };
    let base = policy::policy_chars(&make(0));
    make(chars - base)
}

#[tokio::test]
async fn policy_budget_prediction_matches_iam() {
    let env = start().await;
    let arn = format!(
        "arn:aws:app-integrations:us-east-1:{DEMO_ACCOUNT}:application/{PLACEHOLDER_APP_ID}"
    );
    let ours = policy::policy_chars(
        &policy::with_statement(None, &policy::app_statement(PLACEHOLDER_APP_ID, &arn)).unwrap(),
    );
    // demo-east has no inline policies: plenty of room.
    assert!(
        check_policy_budget(&env.iam, EAST_SLR, "us-east-1", DEMO_ACCOUNT)
            .await
            .is_empty()
    );

    // demo-support already has a Kinesis policy; fill the rest up to exactly the budget.
    let existing = env.iam.list_role_policies(SUPPORT_SLR).await.unwrap();
    let mut used = 0;
    for name in &existing {
        used += policy::policy_chars(
            &env.iam
                .get_role_policy(SUPPORT_SLR, name)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let room = INLINE_POLICY_BUDGET - used - ours;
    env.iam
        .put_role_policy(SUPPORT_SLR, "Filler", &filler(room))
        .await
        .unwrap();
    assert!(
        check_policy_budget(&env.iam, SUPPORT_SLR, "us-east-1", DEMO_ACCOUNT)
            .await
            .is_empty(),
        "exactly at the budget fits"
    );
    // ...and IAM (the sandbox) agrees: the real statement fits.
    let real_id = "4f1c2a9e-8b7d-4e6f-9a0b-1c2d3e4f5a6b";
    let real_arn =
        format!("arn:aws:app-integrations:us-east-1:{DEMO_ACCOUNT}:application/{real_id}");
    let doc = policy::with_statement(None, &policy::app_statement(real_id, &real_arn)).unwrap();
    env.iam
        .put_role_policy(SUPPORT_SLR, POLICY_NAME, &doc)
        .await
        .unwrap();
    env.iam
        .delete_role_policy(SUPPORT_SLR, POLICY_NAME)
        .await
        .unwrap();

    // One character more and the prediction says no, with the numbers and the fix...
    env.iam
        .put_role_policy(SUPPORT_SLR, "Filler", &filler(room + 1))
        .await
        .unwrap();
    let findings = check_policy_budget(&env.iam, SUPPORT_SLR, "us-east-1", DEMO_ACCOUNT).await;
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].severity, Severity::Error);
    assert!(findings[0]
        .evidence
        .contains(&format!("would make {}", INLINE_POLICY_BUDGET + 1)));
    assert!(findings[0].fix.contains("Free at least 1 characters"));
    // ...as IAM does.
    let err = env
        .iam
        .put_role_policy(SUPPORT_SLR, POLICY_NAME, &doc)
        .await
        .unwrap_err();
    assert_eq!(err.code, "LimitExceeded", "{err:?}");
}

fn plan() -> PermissionPlan {
    PermissionPlan {
        account: DEMO_ACCOUNT.to_owned(),
        region: "us-east-1".to_owned(),
        instance_arns: vec![format!(
            "arn:aws:connect:us-east-1:{DEMO_ACCOUNT}:instance/{DEMO_INSTANCE_EAST}"
        )],
        slr_arns: vec![format!(
            "arn:aws:iam::{DEMO_ACCOUNT}:role/aws-service-role/connect.amazonaws.com/{EAST_SLR}"
        )],
        security_profiles: true,
    }
}

#[tokio::test]
async fn full_operator_has_every_permission() {
    let env = start().await;
    let findings = check_permissions(&env.sim, OPERATOR, &plan()).await;
    assert!(findings.is_empty(), "{findings:?}");
}

#[tokio::test]
async fn legacy_operator_is_told_the_two_association_actions() {
    let env = start().await;
    let findings = check_permissions(&env.sim, LEGACY, &plan()).await;
    assert_eq!(findings.len(), 1, "{findings:?}");
    let f = &findings[0];
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.check, "permissions");
    assert!(f.evidence.contains(LEGACY));
    assert!(f
        .evidence
        .contains("app-integrations:CreateApplicationAssociation"));
    assert!(f
        .evidence
        .contains("app-integrations:DeleteApplicationAssociation"));
    // Nothing else is reported missing.
    for ok in [
        "app-integrations:CreateApplication ",
        "app-integrations:GetApplication",
        "iam:PutRolePolicy",
        "connect:",
    ] {
        assert!(!f.evidence.contains(ok), "{ok} reported: {}", f.evidence);
    }
    // The legacy policy denies them explicitly, so the fix says to remove the Deny, and gives
    // a policy granting just those two on the association resources.
    assert!(f.fix.contains("Remove the Deny"), "{}", f.fix);
    assert!(f.fix.contains("2023-12-15"));
    let snippet = &f.fix[f.fix.find('{').unwrap()..];
    let doc: serde_json::Value = serde_json::from_str(snippet).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Action": ["app-integrations:CreateApplicationAssociation",
                       "app-integrations:DeleteApplicationAssociation"],
            "Resource": format!("arn:aws:app-integrations:us-east-1:{DEMO_ACCOUNT}:application-association/*"),
        }]})
    );
}

#[tokio::test]
async fn simulator_reports_implicit_denies_and_unknown_principals() {
    let env = start().await;
    let got = env
        .sim
        .simulate(
            OPERATOR,
            &[ActionRequest {
                actions: vec!["s3:GetObject".into(), "connect:DescribeInstance".into()],
                resources: vec!["arn:aws:s3:::b/k".into()],
            }],
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].action, "s3:GetObject");
    assert_eq!(got[0].resource, "arn:aws:s3:::b/k");
    assert_eq!(got[0].decision, Decision::ImplicitDeny);
    assert_eq!(got[1].decision, Decision::Allowed);

    // An unknown principal cannot be simulated: a warning saying so, not a crash.
    let findings =
        check_permissions(&env.sim, "arn:aws:iam::111122223333:user/nobody", &plan()).await;
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].severity, Severity::Warning);
}
