//! IAM operations through `aws-sdk-iam`.

use crate::common::*;
use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_sdk_iam::operation::delete_role_policy::DeleteRolePolicyError;
use aws_sdk_iam::operation::get_role::GetRoleError;
use aws_sdk_iam::operation::get_role_policy::GetRolePolicyError;
use aws_sdk_iam::operation::put_role_policy::PutRolePolicyError;
use aws_sdk_iam::operation::simulate_principal_policy::SimulatePrincipalPolicyError;
use onboard_sandbox::{RoleSeed, SandboxConfig, SeedConfig, DEMO_ACCOUNT};

const DOC: &str = "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [{\"Sid\": \"App+1\", \"Effect\": \"Allow\", \"Action\": \"app-integrations:*\", \"Resource\": \"*\"}]\n}";

fn doc_of_size(sid: &str, target: usize) -> String {
    let base = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"{sid}","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::"#
    );
    let tail = r#""}]}"#;
    let pad = target - base.len() - tail.len();
    format!("{base}{}{tail}", "b".repeat(pad))
}

#[tokio::test]
async fn role_policy_round_trip() {
    let env = start().await;
    let role = env.iam.get_role().role_name(EAST_SLR).send().await.unwrap();
    let role = role.role().unwrap();
    assert_eq!(role.role_name(), EAST_SLR);
    assert_eq!(role.path(), "/aws-service-role/connect.amazonaws.com/");
    assert_eq!(role.arn(), slr_arn(EAST_SLR));
    assert!(role.role_id().starts_with("AROA"));
    let trust = decode(role.assume_role_policy_document().unwrap());
    assert!(trust.contains("connect.amazonaws.com"), "{trust}");

    env.iam
        .put_role_policy()
        .role_name(EAST_SLR)
        .policy_name("onboard-app")
        .policy_document(DOC)
        .send()
        .await
        .unwrap();
    let got = env
        .iam
        .get_role_policy()
        .role_name(EAST_SLR)
        .policy_name("onboard-app")
        .send()
        .await
        .unwrap();
    assert_eq!(got.role_name(), EAST_SLR);
    assert_eq!(got.policy_name(), "onboard-app");
    // Percent-encoded on the wire like real IAM; the Rust SDK hands it over undecoded.
    assert!(
        got.policy_document()
            .starts_with("%7B%0A%20%20%22Version%22"),
        "{}",
        got.policy_document()
    );
    assert!(got.policy_document().contains("App%2B1"));
    assert_eq!(decode(got.policy_document()), DOC);

    let listed = env
        .iam
        .list_role_policies()
        .role_name(SUPPORT_SLR)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.policy_names(), ["AmazonConnect-KinesisStreams"]);
    assert!(!listed.is_truncated());

    env.iam
        .delete_role_policy()
        .role_name(EAST_SLR)
        .policy_name("onboard-app")
        .send()
        .await
        .unwrap();
    let err = env
        .iam
        .get_role_policy()
        .role_name(EAST_SLR)
        .policy_name("onboard-app")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, GetRolePolicyError::NoSuchEntityException(_)),
        "{err:?}"
    );
    assert!(env
        .iam
        .list_role_policies()
        .role_name(EAST_SLR)
        .send()
        .await
        .unwrap()
        .policy_names()
        .is_empty());
}

#[tokio::test]
async fn missing_roles_and_policies_are_no_such_entity() {
    let env = start().await;
    let err = env
        .iam
        .get_role()
        .role_name("NoSuchRole")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, GetRoleError::NoSuchEntityException(_)),
        "{err:?}"
    );
    assert_eq!(
        err.message(),
        Some("The role with name NoSuchRole cannot be found.")
    );
    let err = env
        .iam
        .get_role_policy()
        .role_name(EAST_SLR)
        .policy_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, GetRolePolicyError::NoSuchEntityException(_)),
        "{err:?}"
    );
    assert_eq!(
        err.message(),
        Some("The role policy with name nope cannot be found.")
    );
    let err = env
        .iam
        .put_role_policy()
        .role_name("NoSuchRole")
        .policy_name("p")
        .policy_document(DOC)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, PutRolePolicyError::NoSuchEntityException(_)),
        "{err:?}"
    );
    let err = env
        .iam
        .delete_role_policy()
        .role_name(EAST_SLR)
        .policy_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, DeleteRolePolicyError::NoSuchEntityException(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn inline_policies_share_a_10240_character_budget() {
    let env = start().await;
    // The support SLR already holds a Kinesis policy; measure what is left.
    let put = |name: &'static str, doc: String| {
        env.iam
            .put_role_policy()
            .role_name(EAST_SLR)
            .policy_name(name)
            .policy_document(doc)
            .send()
    };
    put("first", doc_of_size("A", 6000)).await.unwrap();
    let err = put("second", doc_of_size("B", 4300))
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, PutRolePolicyError::LimitExceededException(_)),
        "{err:?}"
    );
    assert_eq!(
        err.message(),
        Some(format!("Maximum policy size of 10240 bytes exceeded for role {EAST_SLR}").as_str())
    );
    // Exactly at the budget is fine; whitespace is not counted.
    let fits = doc_of_size("B", 4240).replacen(',', ",\n      ", 3);
    put("second", fits).await.unwrap();
    // Replacing a policy counts only its new size.
    put("first", doc_of_size("A", 5900)).await.unwrap();
    put("first", doc_of_size("A", 6000)).await.unwrap();
    let err = put("first", doc_of_size("A", 6001))
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, PutRolePolicyError::LimitExceededException(_)),
        "{err:?}"
    );
    let state = env.sandbox.state().dump();
    let stored = state["roles"][EAST_SLR]["inline_policies"]["first"]
        .as_str()
        .unwrap();
    assert_eq!(stored.len(), 6000);
}

#[tokio::test]
async fn malformed_and_unmodifiable() {
    let mut seed = SeedConfig::demo();
    seed.roles.push(RoleSeed {
        name: "AWSServiceRoleForSupport".to_owned(),
        path: Some("/aws-service-role/support.amazonaws.com/".to_owned()),
        assume_role_policy: None,
        inline_policies: Default::default(),
        protected: true,
        description: None,
    });
    let env = start_with(SandboxConfig { seed, ..config() }, RetryConfig::disabled()).await;
    for bad in [
        "{not json",
        r#"{"Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:*"}]}"#,
    ] {
        let err = env
            .iam
            .put_role_policy()
            .role_name(EAST_SLR)
            .policy_name("p")
            .policy_document(bad)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(
            matches!(err, PutRolePolicyError::MalformedPolicyDocumentException(_)),
            "{err:?}"
        );
    }
    let err = env
        .iam
        .put_role_policy()
        .role_name("AWSServiceRoleForSupport")
        .policy_name("p")
        .policy_document(DOC)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, PutRolePolicyError::UnmodifiableEntityException(_)),
        "{err:?}"
    );
    // Unmodeled validation failures carry IAM's `ValidationError` code.
    let err = env
        .iam
        .get_role()
        .role_name("bad/name")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("ValidationError"));
    assert!(
        err.message().unwrap().contains("roleName"),
        "{:?}",
        err.message()
    );
}

#[tokio::test]
async fn list_role_policies_paginates() {
    let env = start().await;
    for name in ["c", "a", "e", "b", "d"] {
        env.iam
            .put_role_policy()
            .role_name(EAST_SLR)
            .policy_name(name)
            .policy_document(DOC)
            .send()
            .await
            .unwrap();
    }
    let first = env
        .iam
        .list_role_policies()
        .role_name(EAST_SLR)
        .max_items(2)
        .send()
        .await
        .unwrap();
    assert_eq!(first.policy_names(), ["a", "b"]);
    assert!(first.is_truncated());
    let second = env
        .iam
        .list_role_policies()
        .role_name(EAST_SLR)
        .max_items(2)
        .marker(first.marker().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(second.policy_names(), ["c", "d"]);
    let all: Vec<String> = env
        .iam
        .list_role_policies()
        .role_name(EAST_SLR)
        .max_items(2)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(all, ["a", "b", "c", "d", "e"]);
}

#[tokio::test]
async fn simulate_principal_policy_over_seeded_callers() {
    let env = start().await;
    let operator = format!("arn:aws:iam::{DEMO_ACCOUNT}:role/OnboardingOperator");
    let legacy = format!("arn:aws:iam::{DEMO_ACCOUNT}:user/legacy-operator");
    let app = format!("arn:aws:app-integrations:us-east-1:{DEMO_ACCOUNT}:application/0a1b2c3d-0000-4000-8000-00000000000f");
    let assoc =
        format!("arn:aws:app-integrations:us-east-1:{DEMO_ACCOUNT}:application-association/x/y");
    let decide = |caller: String, action: &'static str, resource: String| {
        let iam = env.iam.clone();
        async move {
            let out = iam
                .simulate_principal_policy()
                .policy_source_arn(caller)
                .action_names(action)
                .resource_arns(resource)
                .send()
                .await
                .unwrap();
            let result = &out.evaluation_results()[0];
            assert_eq!(result.eval_action_name(), action);
            result.eval_decision().as_str().to_owned()
        }
    };
    assert_eq!(
        decide(
            operator.clone(),
            "app-integrations:CreateApplication",
            app.clone()
        )
        .await,
        "allowed"
    );
    assert_eq!(
        decide(
            operator.clone(),
            "app-integrations:CreateApplicationAssociation",
            assoc.clone()
        )
        .await,
        "allowed"
    );
    assert_eq!(
        decide(operator.clone(), "iam:PutRolePolicy", slr_arn(EAST_SLR)).await,
        "allowed"
    );
    assert_eq!(
        decide(
            operator.clone(),
            "iam:PutRolePolicy",
            format!("arn:aws:iam::{DEMO_ACCOUNT}:role/Admin")
        )
        .await,
        "implicitDeny"
    );
    assert_eq!(
        decide(
            legacy.clone(),
            "app-integrations:CreateApplication",
            app.clone()
        )
        .await,
        "allowed"
    );
    assert_eq!(
        decide(
            legacy.clone(),
            "app-integrations:CreateApplicationAssociation",
            assoc
        )
        .await,
        "explicitDeny"
    );

    // Several actions at once, matched statements, and extra input policies.
    let out = env
        .iam
        .simulate_principal_policy()
        .policy_source_arn(&legacy)
        .action_names("app-integrations:DeleteApplicationAssociation")
        .action_names("s3:GetObject")
        .policy_input_list(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:Get*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    let results = out.evaluation_results();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].eval_decision().as_str(), "explicitDeny");
    assert_eq!(
        results[0].matched_statements()[0].source_policy_id(),
        Some("legacy-console")
    );
    assert_eq!(results[1].eval_decision().as_str(), "allowed");
    assert_eq!(results[1].eval_resource_name(), Some("*"));

    // A role's own inline policies are evaluated too.
    let worker = format!("arn:aws:iam::{DEMO_ACCOUNT}:role/service/OnboardingWorker");
    assert_eq!(
        decide(worker, "connect:DescribeInstance", "*".to_owned()).await,
        "allowed"
    );

    let err = env
        .iam
        .simulate_principal_policy()
        .policy_source_arn(format!("arn:aws:iam::{DEMO_ACCOUNT}:role/Nobody"))
        .action_names("iam:GetRole")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, SimulatePrincipalPolicyError::NoSuchEntityException(_)),
        "{err:?}"
    );
}

/// Issue 22.2: the CLI saved the world file only after it heard of the saga's record write, so
/// a process killed between an acknowledged call and that save forgot the write. The sandbox
/// now hands every change to its persist hook before the response is sent; reads persist
/// nothing, and a change whose response a fault drops is persisted too (it happened).
#[tokio::test]
async fn every_acknowledged_write_is_persisted_before_the_answer() {
    use std::sync::{Arc, Mutex};
    let env = start().await;
    let saved: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let sink = saved.clone();
    env.sandbox.state().persist_with(Arc::new(move |snapshot| {
        sink.lock().unwrap().push(snapshot.clone());
        Ok(())
    }));
    env.iam.get_role().role_name(EAST_SLR).send().await.unwrap();
    assert!(saved.lock().unwrap().is_empty(), "a read persists nothing");
    env.iam
        .put_role_policy()
        .role_name(EAST_SLR)
        .policy_name("onboard-app")
        .policy_document(DOC)
        .send()
        .await
        .unwrap();
    let last = saved
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("the write was persisted");
    assert!(
        last.to_string().contains("onboard-app"),
        "the persisted world holds the acknowledged policy"
    );

    // A failing hook fails the call (as a service that could not commit would), so no write is
    // ever acknowledged unsaved.
    env.sandbox
        .state()
        .persist_with(Arc::new(|_| Err(std::io::Error::other("disk full"))));
    let err = env
        .iam
        .put_role_policy()
        .role_name(EAST_SLR)
        .policy_name("onboard-app-2")
        .policy_document(DOC)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("InternalServerError")
    );
}
