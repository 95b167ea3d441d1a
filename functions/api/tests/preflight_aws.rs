//! `POST /preflight` with AWS ports: the core's preflight through the real SDK clients against
//! the in-process sandbox (demo world; test credentials and an explicit endpoint, so nothing
//! reaches AWS). Instance, namespace, budget and permission findings; the caller's
//! assumed-role session mapped to its role; framing against the instances' real domains; a
//! throttled read is a 503 to retry, not a finding.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use common::*;
use onboard_aws::ConnectRate;
use onboard_core::preflight::{FetchError, FetchedHeaders, PageFetcher};
use onboard_sandbox::{
    ApplicationSeed, FaultError, FaultSpec, RunningSandbox, Sandbox, SandboxConfig, SeedConfig,
    Service, ThrottleConfig, DEMO_INSTANCE_EAST, DEMO_INSTANCE_LEGACY, DEMO_INSTANCE_SUPPORT,
};
use serde_json::{json, Value};

const OPERATOR_SESSION: &str = "arn:aws:sts::111122223333:assumed-role/OnboardingOperator/alice";
const LEGACY_OPERATOR: &str = "arn:aws:iam::111122223333:user/legacy-operator";
/// The demo seed's `/service/OnboardingWorker` role, seen through a session ARN (no path).
const PATHED_SESSION: &str = "arn:aws:sts::111122223333:assumed-role/OnboardingWorker/run-1";
const TAKEN: &str = "taken.example.com";

/// The demo world plus an application owning [`TAKEN`] and an inline policy that leaves
/// demo-support's SLR no room for another statement.
async fn sandbox() -> RunningSandbox {
    let mut seed = SeedConfig::demo();
    seed.applications.push(ApplicationSeed {
        id: None,
        name: "Console app".into(),
        namespace: TAKEN.into(),
        access_url: format!("https://{TAKEN}"),
        tags: BTreeMap::new(),
        permissions: Vec::new(),
        associated_instances: Vec::new(),
    });
    let support = seed
        .instances
        .iter_mut()
        .find(|i| i.id == DEMO_INSTANCE_SUPPORT)
        .unwrap();
    support.slr_inline_policies.insert(
        "Huge".into(),
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{}", "x".repeat(9_900))}]}),
    );
    Sandbox::start(SandboxConfig {
        seed,
        throttle: ThrottleConfig::unlimited(),
        ..SandboxConfig::default()
    })
    .await
    .unwrap()
}

/// An API whose preflight reads the sandbox (SDK retries off, so injected faults reach it).
async fn harness_on(sandbox: &RunningSandbox, fetcher: Option<Arc<dyn PageFetcher>>) -> Harness {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(sandbox.endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    let rate = ConnectRate {
        per_second: NonZeroU32::new(1000).unwrap(),
        burst: NonZeroU32::new(1000).unwrap(),
    };
    let ports = onboard_aws::preflight::preflight_ports(&sdk, rate);
    harness_custom(&[], move |api| {
        api.preflight_aws = Some(ports);
        api.fetcher = fetcher;
    })
}

fn spec_on(namespace: &str, instances: &[&str]) -> Value {
    json!({
        "displayName": "Acme CRM",
        "accessUrl": "https://crm.example.com/agent",
        "namespace": namespace,
        "permissions": ["User.Details.View"],
        "instances": instances,
        "securityProfiles": [{"instance": DEMO_INSTANCE_EAST,
                              "profiles": ["11111111-1111-4111-8111-000000000001"]}],
    })
}

async fn preflight(h: &Harness, spec: &Value, principal: &str) -> Value {
    let r = h
        .post("/preflight", spec, &[("x-onboard-principal", principal)])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

fn findings(body: &Value) -> Vec<(String, String, String, String)> {
    body["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap().to_owned();
            (s("severity"), s("check"), s("evidence"), s("fix"))
        })
        .collect()
}

#[tokio::test]
async fn instance_namespace_budget_and_permission_findings_each_with_a_fix() {
    let sb = sandbox().await;
    let h = harness_on(&sb, None).await;
    let body = preflight(
        &h,
        &spec_on(
            TAKEN,
            &[
                DEMO_INSTANCE_EAST,
                DEMO_INSTANCE_SUPPORT,
                DEMO_INSTANCE_LEGACY,
            ],
        ),
        LEGACY_OPERATOR,
    )
    .await;
    assert_eq!(body["ok"], false);
    // The existing fields stay: the spec itself is valid, the plan is there.
    assert_eq!(body["problems"], json!([]));
    assert_eq!(body["plan"][0]["step"], "validate");
    let got = findings(&body);
    let checks: Vec<(&str, &str)> = got
        .iter()
        .map(|(s, c, _, _)| (s.as_str(), c.as_str()))
        .collect();
    assert_eq!(
        checks,
        [
            ("ERROR", "policy-budget"),
            ("ERROR", "instance"),
            ("ERROR", "namespace"),
            ("ERROR", "permissions"),
        ],
        "{got:#?}"
    );
    assert!(got
        .iter()
        .all(|(_, _, e, f)| !e.is_empty() && !f.is_empty()));
    let (_, _, budget, budget_fix) = &got[0];
    assert!(
        budget.contains("AWSServiceRoleForAmazonConnect_HBDQRkK8TkflREzD1NkM")
            && budget.contains("would make"),
        "{budget}"
    );
    assert!(budget_fix.contains("Free at least"), "{budget_fix}");
    assert!(got[1].2.contains(DEMO_INSTANCE_LEGACY) && got[1].2.contains("service-linked role"));
    assert!(got[2].2.contains(TAKEN));

    // The legacy caller lacks exactly the two association actions: named, with a policy
    // granting just those.
    let (_, _, missing, fix) = &got[3];
    assert!(
        missing.starts_with(&format!(
            "{LEGACY_OPERATOR} is missing app-integrations:CreateApplicationAssociation, \
             app-integrations:DeleteApplicationAssociation:"
        )),
        "{missing}"
    );
    for allowed in [
        "app-integrations:CreateApplication ",
        "iam:GetRolePolicy",
        "iam:PutRolePolicy",
        "connect:",
    ] {
        assert!(!missing.contains(allowed), "{allowed} reported: {missing}");
    }
    let snippet: Value = serde_json::from_str(&fix[fix.find('{').unwrap()..]).unwrap();
    assert_eq!(
        snippet,
        json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Action": ["app-integrations:CreateApplicationAssociation",
                       "app-integrations:DeleteApplicationAssociation"],
            "Resource": "arn:aws:app-integrations:us-east-1:111122223333:application-association/*",
        }]})
    );
    assert!(fix.contains("2023-12-15"));
    assert_eq!(h.saga_count().await, 0, "preflight records nothing");
}

/// A page that sends `X-Frame-Options: SAMEORIGIN`.
struct SameOrigin;

#[async_trait::async_trait]
impl PageFetcher for SameOrigin {
    async fn fetch_headers(&self, url: &str) -> Result<FetchedHeaders, FetchError> {
        Ok(FetchedHeaders {
            final_url: url.to_owned(),
            status: 200,
            headers: vec![("x-frame-options".into(), "SAMEORIGIN".into())],
            redirects: Vec::new(),
        })
    }
}

#[tokio::test]
async fn an_assumed_role_session_is_simulated_as_its_role_and_framing_uses_real_domains() {
    let sb = sandbox().await;
    let h = harness_on(&sb, Some(Arc::new(SameOrigin))).await;
    let body = preflight(
        &h,
        &spec_on("crm.example.com", &[DEMO_INSTANCE_EAST]),
        OPERATOR_SESSION,
    )
    .await;
    // Only framing warnings: the operator role has every permission.
    assert_eq!(body["ok"], true, "{body:#}");
    let got = findings(&body);
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(got
        .iter()
        .all(|(s, c, _, _)| s == "WARNING" && c == "embedding"));
    assert!(
        got[0].2.contains("https://demo-east.my.connect.aws"),
        "{got:?}"
    );
    assert!(
        got[1].2.contains("https://demo-east.awsapps.com"),
        "{got:?}"
    );
    assert!(got[0]
        .3
        .contains("frame-ancestors https://demo-east.my.connect.aws"));
    // The placeholder-alias warnings are not added when the real domains are known.
    assert!(!body.to_string().contains("instance-alias"));
}

#[tokio::test]
async fn a_role_with_a_path_behind_a_session_is_a_warning_that_explains_why() {
    let sb = sandbox().await;
    let h = harness_on(&sb, None).await;
    let body = preflight(
        &h,
        &spec_on("crm.example.com", &[DEMO_INSTANCE_EAST]),
        PATHED_SESSION,
    )
    .await;
    assert_eq!(body["ok"], true, "a warning does not block: {body:#}");
    let got = findings(&body);
    assert_eq!(got.len(), 1, "{got:#?}");
    let (severity, check, evidence, fix) = &got[0];
    assert_eq!(
        (severity.as_str(), check.as_str()),
        ("WARNING", "permissions")
    );
    assert!(
        evidence.contains("arn:aws:iam::111122223333:role/OnboardingWorker"),
        "{evidence}"
    );
    assert!(fix.contains("path"), "{fix}");

    // A principal that is not an IAM ARN (a portal user) is not simulated, and says so.
    let body = preflight(
        &h,
        &spec_on("crm.example.com", &[DEMO_INSTANCE_EAST]),
        "alice@example.com",
    )
    .await;
    let got = findings(&body);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(got[0].2.contains("not an IAM user or role ARN"));
}

#[tokio::test]
async fn a_throttled_read_is_a_503_to_retry_not_a_finding() {
    let sb = sandbox().await;
    let h = harness_on(&sb, None).await;
    sb.state().add_fault(FaultSpec::fail_nth(
        Service::Connect,
        "DescribeInstance",
        1,
        FaultError {
            code: "ThrottlingException".into(),
            status: 429,
            message: None,
        },
    ));
    let r = h
        .post(
            "/preflight",
            &spec_on("crm.example.com", &[DEMO_INSTANCE_EAST]),
            &[("x-onboard-principal", OPERATOR_SESSION)],
        )
        .await;
    assert_problem(&r, 503, ":aws-unavailable");
    assert!(r.json["detail"]
        .as_str()
        .unwrap()
        .contains("ThrottlingException"));
    assert!(r.json["fix"].as_str().unwrap().contains("Retry"));
    // The next call goes through.
    let body = preflight(
        &h,
        &spec_on("crm.example.com", &[DEMO_INSTANCE_EAST]),
        OPERATOR_SESSION,
    )
    .await;
    assert_eq!(body["ok"], true, "{body:#}");
}
