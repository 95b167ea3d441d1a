//! The control API, the state dump, routing of unsigned requests, and unknown operations.

use crate::common::*;
use aws_sdk_connect::types::Application;
use onboard_sandbox::{
    SandboxConfig, DEMO_INSTANCE_EAST, DEMO_INSTANCE_SUPPORT, DEMO_PROFILE_EAST_AGENT,
};

#[tokio::test]
async fn the_state_dump_returns_to_pristine_after_every_change_is_undone() {
    let env = start().await;
    let pristine = env.sandbox.state().dump();
    assert_eq!(pristine, env.sandbox.state().dump());
    assert!(
        pristine["roles"][SUPPORT_SLR]["inline_policies"]["AmazonConnect-KinesisStreams"]
            .is_string()
    );

    // Onboard by hand: application, associations, grant, SLR policy.
    let (id, arn) = new_app(&env.ai, "pristine.example.com").await;
    env.ai
        .update_application()
        .arn(&id)
        .name("Tagged")
        .send()
        .await
        .unwrap();
    let a1 = associate(&env.connect, DEMO_INSTANCE_EAST, &arn).await;
    let a2 = associate(&env.connect, DEMO_INSTANCE_SUPPORT, &arn).await;
    env.connect
        .update_security_profile()
        .instance_id(DEMO_INSTANCE_EAST)
        .security_profile_id(DEMO_PROFILE_EAST_AGENT)
        .applications(
            Application::builder()
                .namespace("pristine.example.com")
                .application_permissions("ACCESS")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"app-integrations:*","Resource":"*"}]}"#;
    env.iam
        .put_role_policy()
        .role_name(EAST_SLR)
        .policy_name("app")
        .policy_document(doc)
        .send()
        .await
        .unwrap();

    let changed = env.sandbox.state().dump();
    assert_ne!(changed, pristine);
    assert_eq!(changed["applications"][&id]["name"], "Tagged");
    assert_eq!(
        changed["instances"][DEMO_INSTANCE_EAST]["security_profiles"][DEMO_PROFILE_EAST_AGENT]
            ["applications"][0]["Namespace"],
        "pristine.example.com"
    );
    assert_eq!(
        changed["integration_associations"]
            .as_object()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        changed["application_associations"]
            .as_object()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(changed["roles"][EAST_SLR]["inline_policies"]["app"], doc);
    assert!(changed["applications"][&id].get("created_ms").is_none());
    assert!(env.sandbox.state().dump_with_timestamps()["applications"][&id]["created_ms"].is_u64());

    // Undo in reverse order.
    env.iam
        .delete_role_policy()
        .role_name(EAST_SLR)
        .policy_name("app")
        .send()
        .await
        .unwrap();
    env.connect
        .update_security_profile()
        .instance_id(DEMO_INSTANCE_EAST)
        .security_profile_id(DEMO_PROFILE_EAST_AGENT)
        .set_applications(Some(vec![]))
        .send()
        .await
        .unwrap();
    for (instance, assoc) in [(DEMO_INSTANCE_EAST, a1), (DEMO_INSTANCE_SUPPORT, a2)] {
        env.connect
            .delete_integration_association()
            .instance_id(instance)
            .integration_association_id(assoc)
            .send()
            .await
            .unwrap();
    }
    env.ai.delete_application().arn(&arn).send().await.unwrap();
    assert_eq!(env.sandbox.state().dump(), pristine);

    // Over HTTP too.
    let (status, head, body) = raw(env.sandbox.addr(), "GET", "/_sandbox/state", &[], "").await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/json"));
    assert_eq!(json(&body), pristine);
}

#[tokio::test]
async fn seed_reset_and_call_log_through_the_control_api() {
    let env = start().await;
    let addr = env.sandbox.addr();
    let seed = r#"{
        "account_id": "444455556666",
        "region": "eu-west-2",
        "instances": [{"id": "i-1", "alias": "tiny", "security_profiles": [{"id": "sp-1", "name": "Agent"}]}],
        "roles": [{"name": "Worker", "inline_policies": {"p": {"Version": "2012-10-17", "Statement": []}}}],
        "applications": [{"name": "Existing", "namespace": "taken.example.com", "access_url": "https://taken.example.com", "associated_instances": ["i-1"]}]
    }"#;
    let (status, _, body) = raw(
        addr,
        "POST",
        "/_sandbox/seed",
        &[("content-type", "application/json")],
        seed,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let state = json(&raw(addr, "GET", "/_sandbox/state", &[], "").await.2);
    assert_eq!(state["account_id"], "444455556666");
    let slr = state["instances"]["i-1"]["service_role"].as_str().unwrap();
    assert!(slr.starts_with("arn:aws:iam::444455556666:role/aws-service-role/connect.amazonaws.com/AWSServiceRoleForAmazonConnect_"));
    assert_eq!(
        state["integration_associations"].as_object().unwrap().len(),
        1
    );

    // The seeded namespace is taken.
    let err = create_app(&env.ai, "taken.example.com")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_duplicate_resource_exception(), "{err:?}");
    new_app(&env.ai, "mine.example.com").await;

    let (_, _, calls) = raw(addr, "GET", "/_sandbox/calls", &[], "").await;
    let calls = json(&calls);
    assert_eq!(calls[0]["service"], "appintegrations");
    assert_eq!(calls[0]["operation"], "CreateApplication");
    assert_eq!(calls[0]["status"], 409);
    assert_eq!(calls[0]["error"], "DuplicateResourceException");
    assert_eq!(calls[1]["status"], 200);

    let (status, _, _) = raw(addr, "POST", "/_sandbox/reset", &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(env.sandbox.state().dump(), state);
    assert!(env.sandbox.state().calls().is_empty());

    let (status, _, body) = raw(
        addr,
        "POST",
        "/_sandbox/seed",
        &[],
        r#"{"account_id":"12","region":"x"}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = raw(addr, "GET", "/_sandbox/nope", &[], "").await;
    assert_eq!(status, 404);
    let (status, _, body) = raw(
        addr,
        "PUT",
        "/_sandbox/throttle",
        &[],
        r#"{"connect":{"default":{"per_second":1,"burst":1}}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, _, body) = raw(addr, "GET", "/_sandbox/throttle", &[], "").await;
    assert_eq!(json(&body)["connect"]["default"]["burst"], 1);
}

#[tokio::test]
async fn unsigned_requests_are_routed_by_path_and_unknown_operations_get_the_service_error() {
    let env = start().await;
    let addr = env.sandbox.addr();

    let (status, head, body) = raw(addr, "GET", "/instance", &[], "").await;
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("x-amzn-requestid:"));
    assert_eq!(
        json(&body)["InstanceSummaryList"].as_array().unwrap().len(),
        3
    );
    let (status, _, body) = raw(
        addr,
        "POST",
        "/",
        &[("content-type", "application/x-www-form-urlencoded")],
        &format!("Action=ListRolePolicies&Version=2010-05-08&RoleName={SUPPORT_SLR}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("<ListRolePoliciesResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><ListRolePoliciesResult>"), "{body}");

    // rest-json: 404 UnknownOperationException with the error-type header.
    let signed = "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/connect/aws4_request, SignedHeaders=host, Signature=0";
    let (status, head, body) = raw(
        addr,
        "GET",
        "/instance/x/bogus",
        &[("authorization", signed)],
        "",
    )
    .await;
    assert_eq!(status, 404);
    assert!(
        head.contains("x-amzn-errortype: unknownoperationexception"),
        "{head}"
    );
    assert_eq!(json(&body)["__type"], "UnknownOperationException");
    let (status, _, _) = raw(addr, "PATCH", "/applications", &[], "").await;
    assert_eq!(status, 404);
    let (status, _, _) = raw(addr, "GET", "/no/such/service", &[], "").await;
    assert_eq!(status, 404);

    // IAM: 400 InvalidAction in the query error shape.
    let (status, _, body) = raw(
        addr,
        "POST",
        "/",
        &[],
        "Action=CreateUser&Version=2010-05-08&UserName=x",
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Sender</Type><Code>InvalidAction</Code>"), "{body}");

    // Garbage never crashes the server.
    let (status, _, body) = raw(
        addr,
        "POST",
        "/applications",
        &[("content-type", "application/json")],
        "{not json",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(json(&body)["__type"], "SerializationException");
    let (status, _, _) = raw(addr, "POST", "/applications", &[], r#"{"Name": 5}"#).await;
    assert_eq!(status, 400);
    let (status, _, _) = raw(
        addr,
        "PUT",
        "/instance/%FF%FE/integration-associations",
        &[],
        "[]",
    )
    .await;
    assert_eq!(status, 400);
    let (status, _, _) = raw(addr, "GET", "/applications?maxResults=abc", &[], "").await;
    assert_eq!(status, 400);
    let (status, _, _) = raw(
        addr,
        "POST",
        "/",
        &[],
        "Action=SimulatePrincipalPolicy&ActionNames.member.x=1&MaxItems=-1",
    )
    .await;
    assert_eq!(status, 400);

    // And it still serves real clients afterwards.
    assert_eq!(
        env.connect
            .list_instances()
            .send()
            .await
            .unwrap()
            .instance_summary_list()
            .len(),
        3
    );
    let calls = env.sandbox.state().calls();
    assert!(calls
        .iter()
        .any(|c| c.operation == "Unknown" && c.service == "connect" && c.status == 404));
    assert!(calls.iter().any(|c| c.operation == "Unknown"
        && c.service == "iam"
        && c.error.as_deref() == Some("InvalidAction")));
}

#[tokio::test]
async fn the_standalone_binary_serves_a_seed_file() {
    use std::io::{BufRead, BufReader};
    let seed = onboard_sandbox::SeedConfig::empty("777788889999", "us-west-2");
    let path =
        std::env::temp_dir().join(format!("onboard-sandbox-seed-{}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_string(&seed).unwrap()).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_onboard-sandbox"))
        .args(["--port", "0", "--seed"])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut line).unwrap();
    let endpoint = line.trim().rsplit(' ').next().unwrap().to_owned();
    let addr: std::net::SocketAddr = endpoint.trim_start_matches("http://").parse().unwrap();
    let (status, _, body) = raw(addr, "GET", "/_sandbox/state", &[], "").await;
    child.kill().unwrap();
    let _ = child.wait();
    drop(stdout);
    let _ = std::fs::remove_file(&path);
    assert_eq!(status, 200);
    assert_eq!(json(&body)["account_id"], "777788889999");
}

#[tokio::test]
async fn a_snapshot_restored_in_another_sandbox_carries_on_exactly() {
    let a = start().await;
    let (id, arn) = new_app(&a.ai, "saved.example.com").await;
    let replayed = create_app(&a.ai, "tokened.example.com")
        .client_token("saga-7")
        .send()
        .await
        .unwrap();
    let assoc = associate(&a.connect, DEMO_INSTANCE_EAST, &arn).await;
    let saved = a.sandbox.state().snapshot();
    assert_eq!(saved["applications"][&id]["namespace"], "saved.example.com");

    // Another process: another id stream, same seed; restore, then compare everything.
    let b = start_with(
        SandboxConfig {
            rng_seed: 4242,
            ..config()
        },
        RetryConfig::disabled(),
    )
    .await;
    b.sandbox.state().restore(&saved).unwrap();

    assert_eq!(
        b.sandbox.state().dump_with_timestamps(),
        a.sandbox.state().dump_with_timestamps()
    );
    assert_eq!(
        b.sandbox.state().snapshot(),
        saved,
        "dump → load → identical dump"
    );
    // The association id is the one recorded, so an undo finds it.
    b.connect
        .delete_integration_association()
        .instance_id(DEMO_INSTANCE_EAST)
        .integration_association_id(&assoc)
        .send()
        .await
        .unwrap();
    // A ClientToken replay returns the first result, and new ids carry on the same stream.
    let again = create_app(&b.ai, "tokened.example.com")
        .client_token("saga-7")
        .send()
        .await
        .unwrap();
    assert_eq!(again.id(), replayed.id());
    let (next_a, _) = new_app(&a.ai, "next.example.com").await;
    let (next_b, _) = new_app(&b.ai, "next.example.com").await;
    assert_eq!(next_a, next_b);
    assert_ne!(next_b, id);

    // Reset goes back to the snapshot's seed; a broken snapshot is refused and changes nothing.
    let before = b.sandbox.state().dump();
    let mut broken = saved.clone();
    broken["snapshot_format"] = serde_json::json!(2);
    assert!(b.sandbox.state().restore(&broken).is_err());
    assert_eq!(b.sandbox.state().dump(), before);
    b.sandbox.state().reset().unwrap();
    assert!(b.sandbox.state().dump()["applications"]
        .as_object()
        .unwrap()
        .is_empty());
}
