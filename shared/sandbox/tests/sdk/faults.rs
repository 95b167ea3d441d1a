//! Every fault kind: nth call, probability from a seed, latency, apply-then-drop.

use crate::common::*;
use aws_sdk_appintegrations::operation::create_application::CreateApplicationError;
use aws_sdk_appintegrations::operation::get_application::GetApplicationError;
use aws_sdk_connect::error::ProvideErrorMetadata;
use aws_sdk_connect::operation::create_integration_association::CreateIntegrationAssociationError;
use aws_sdk_connect::types::IntegrationType;
use onboard_sandbox::{FaultError, FaultMode, FaultSpec, Service, DEMO_INSTANCE_EAST};
use std::time::{Duration, Instant};

fn throttling() -> FaultError {
    FaultError {
        code: "ThrottlingException".to_owned(),
        status: 429,
        message: Some("Rate exceeded".to_owned()),
    }
}

fn spec(service: Service, operation: &str) -> FaultSpec {
    FaultSpec {
        service: Some(service),
        operation: Some(operation.to_owned()),
        nth: None,
        probability: None,
        seed: None,
        latency_ms: None,
        error: None,
        mode: None,
        times: None,
    }
}

#[tokio::test]
async fn the_nth_call_fails_with_the_given_error() {
    let env = start().await;
    let (id, _) = new_app(&env.ai, "nth.example.com").await;
    env.sandbox.state().add_fault(FaultSpec::fail_nth(
        Service::AppIntegrations,
        "GetApplication",
        2,
        throttling(),
    ));
    env.ai.get_application().arn(&id).send().await.unwrap();
    let err = env
        .ai
        .get_application()
        .arn(&id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, GetApplicationError::ThrottlingException(_)),
        "{err:?}"
    );
    env.ai.get_application().arn(&id).send().await.unwrap();
    let rules = env.sandbox.state().faults();
    assert_eq!((rules[0].seen, rules[0].fired), (3, 1));
    let calls = env.sandbox.state().calls();
    let notes: Vec<_> = calls
        .iter()
        .filter(|c| c.operation == "GetApplication")
        .map(|c| (c.status, c.note.clone()))
        .collect();
    assert_eq!(
        notes,
        [(200, None), (429, Some("fault".to_owned())), (200, None)]
    );
}

#[tokio::test]
async fn probability_faults_are_reproducible_from_a_seed() {
    let env = start().await;
    let run = || async {
        env.sandbox.state().clear_faults();
        env.sandbox.state().add_fault(FaultSpec {
            probability: Some(0.5),
            seed: Some(42),
            error: Some(FaultError {
                code: "InternalServiceException".to_owned(),
                status: 500,
                message: None,
            }),
            ..spec(Service::Connect, "ListInstances")
        });
        let mut pattern = Vec::new();
        for _ in 0..24 {
            pattern.push(env.connect.list_instances().send().await.is_ok());
        }
        pattern
    };
    let first = run().await;
    let second = run().await;
    assert_eq!(first, second);
    assert!(
        first.iter().any(|ok| *ok) && first.iter().any(|ok| !*ok),
        "{first:?}"
    );
}

#[tokio::test]
async fn latency_is_added_before_the_call_is_served() {
    let env = start().await;
    env.sandbox.state().add_fault(FaultSpec {
        latency_ms: Some(300),
        times: Some(1),
        ..spec(Service::AppIntegrations, "ListApplications")
    });
    let started = Instant::now();
    env.ai.list_applications().send().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(env.sandbox.state().faults()[0].fired, 1);
}

#[tokio::test]
async fn apply_then_drop_changes_the_state_but_the_caller_sees_a_500() {
    let env = start().await;
    let pristine = env.sandbox.state().dump();
    env.sandbox.state().add_fault(FaultSpec {
        mode: Some(FaultMode::ApplyThenDrop),
        times: Some(1),
        ..spec(Service::AppIntegrations, "CreateApplication")
    });
    let err = create_app(&env.ai, "dropped.example.com")
        .client_token("t-1")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, CreateApplicationError::InternalServiceError(_)),
        "{err:?}"
    );
    let state = env.sandbox.state().dump();
    assert_ne!(state, pristine);
    let apps = state["applications"].as_object().unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(
        apps.values().next().unwrap()["namespace"],
        "dropped.example.com"
    );
    // The caller's retry with the same ClientToken adopts what was created.
    let again = create_app(&env.ai, "dropped.example.com")
        .client_token("t-1")
        .send()
        .await
        .unwrap();
    assert_eq!(apps.keys().next().map(String::as_str), again.id());
    assert_eq!(
        env.sandbox
            .state()
            .calls()
            .iter()
            .filter(|c| c.note.as_deref() == Some("apply_then_drop"))
            .count(),
        1
    );

    // Connect: the association exists although the caller saw a failure, so a naive retry
    // meets DuplicateResourceException — the trap the saga's adopt-on-replay rule handles.
    let (_, arn) = new_app(&env.ai, "dropped2.example.com").await;
    env.sandbox.state().add_fault(FaultSpec {
        mode: Some(FaultMode::ApplyThenDrop),
        times: Some(1),
        ..spec(Service::Connect, "CreateIntegrationAssociation")
    });
    let call = || {
        env.connect
            .create_integration_association()
            .instance_id(DEMO_INSTANCE_EAST)
            .integration_type(IntegrationType::Application)
            .integration_arn(&arn)
            .send()
    };
    let err = call().await.unwrap_err().into_service_error();
    assert_eq!(err.code(), Some("InternalServiceException"));
    let err = call().await.unwrap_err().into_service_error();
    assert!(
        matches!(
            err,
            CreateIntegrationAssociationError::DuplicateResourceException(_)
        ),
        "{err:?}"
    );

    // IAM: the policy is stored though PutRolePolicy answered ServiceFailure.
    env.sandbox.state().add_fault(FaultSpec {
        mode: Some(FaultMode::ApplyThenDrop),
        times: Some(1),
        ..spec(Service::Iam, "PutRolePolicy")
    });
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
    let err = env
        .iam
        .put_role_policy()
        .role_name(EAST_SLR)
        .policy_name("dropped")
        .policy_document(doc)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("ServiceFailure")
    );
    let got = env
        .iam
        .get_role_policy()
        .role_name(EAST_SLR)
        .policy_name("dropped")
        .send()
        .await
        .unwrap();
    assert_eq!(decode(got.policy_document()), doc);
}

#[tokio::test]
async fn sdk_retries_recover_from_an_injected_transient_fault() {
    let env = start_with(
        config(),
        RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(10)),
    )
    .await;
    env.sandbox.state().add_fault(FaultSpec::fail_nth(
        Service::Connect,
        "ListInstances",
        1,
        throttling(),
    ));
    let out = env.connect.list_instances().send().await.unwrap();
    assert_eq!(out.instance_summary_list().len(), 3);
    let statuses: Vec<_> = env
        .sandbox
        .state()
        .calls()
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, [429, 200]);
}

#[tokio::test]
async fn faults_through_the_control_api() {
    let env = start().await;
    let addr = env.sandbox.addr();
    let body = r#"{"service":"iam","operation":"GetRole","nth":1,"error":{"code":"ServiceFailure","status":500,"message":"boom"}}"#;
    let (status, _, answer) = raw(
        addr,
        "POST",
        "/_sandbox/faults",
        &[("content-type", "application/json")],
        body,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(json(&answer)["id"], 1);
    let err = env
        .iam
        .get_role()
        .role_name(EAST_SLR)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        aws_sdk_iam::error::ProvideErrorMetadata::message(&err),
        Some("boom")
    );
    let (_, _, listed) = raw(addr, "GET", "/_sandbox/faults", &[], "").await;
    assert_eq!(json(&listed)[0]["fired"], 1);
    let (status, _, _) = raw(addr, "DELETE", "/_sandbox/faults", &[], "").await;
    assert_eq!(status, 200);
    assert!(env.sandbox.state().faults().is_empty());
    let (status, _, answer) = raw(addr, "POST", "/_sandbox/faults", &[], r#"{"nth":"x"}"#).await;
    assert_eq!(status, 400, "{answer}");
}

#[tokio::test]
async fn a_stale_read_answers_the_policy_before_the_last_write_until_a_fresh_read() {
    let env = start().await;
    let v = |sid: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"{sid}","Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}]}}"#
        )
    };
    let put = |doc: String| {
        env.iam
            .put_role_policy()
            .role_name(EAST_SLR)
            .policy_name("lag")
            .policy_document(doc)
            .send()
    };
    let read = || async {
        let got = env
            .iam
            .get_role_policy()
            .role_name(EAST_SLR)
            .policy_name("lag")
            .send()
            .await
            .unwrap();
        decode(got.policy_document())
    };
    put(v("one")).await.unwrap();
    assert!(
        read().await.contains("\"one\""),
        "seen: the lag of the first write is over"
    );
    put(v("two")).await.unwrap();
    // A read the change did not affect (the same policy names) does not end the lag.
    env.iam
        .list_role_policies()
        .role_name(EAST_SLR)
        .send()
        .await
        .unwrap();
    env.sandbox.state().add_fault(FaultSpec {
        mode: Some(FaultMode::Stale),
        times: Some(2),
        ..spec(Service::Iam, "GetRolePolicy")
    });
    assert!(
        read().await.contains("\"one\""),
        "the world before the last write"
    );
    assert!(read().await.contains("\"one\""), "still lagging");
    assert!(
        read().await.contains("\"two\""),
        "the fault is spent: fresh"
    );

    // After a fresh read the lag is over: a stale fault changes nothing.
    env.sandbox.state().add_fault(FaultSpec {
        mode: Some(FaultMode::Stale),
        times: Some(1),
        ..spec(Service::Iam, "GetRolePolicy")
    });
    assert!(read().await.contains("\"two\""));
    let stale = env
        .sandbox
        .state()
        .calls()
        .iter()
        .filter(|c| c.note.as_deref() == Some("stale"))
        .count();
    assert_eq!(stale, 2);
    // A stale read never changes the world.
    assert!(env.sandbox.state().dump().to_string().contains("two"));
}
