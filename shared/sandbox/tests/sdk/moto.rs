//! The same IAM calls against the sandbox and against moto's IAM give the same results.
//! `MOTO_ENDPOINT` is set by scripts/test.sh, which starts moto_server.

use crate::common::*;
use aws_sdk_iam::error::ProvideErrorMetadata;
use onboard_sandbox::{RoleSeed, SandboxConfig, SeedConfig};

/// What one backend answered, in comparable form.
#[derive(Debug, PartialEq)]
struct Observed {
    put: Result<(), String>,
    get: Result<(String, String, String), String>,
    listed: Result<Vec<String>, String>,
    replaced: Result<String, String>,
    missing_policy: Result<(), String>,
    missing_role: Result<(), String>,
    delete: Result<(), String>,
    listed_after: Result<Vec<String>, String>,
    delete_again: Result<(), String>,
}

fn code<E: ProvideErrorMetadata>(e: aws_sdk_iam::error::SdkError<E>) -> String {
    e.code().unwrap_or("<none>").to_owned()
}

async fn exercise(iam: &aws_sdk_iam::Client, role: &str) -> Observed {
    let doc = "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [{\"Sid\": \"AppA+1\", \"Effect\": \"Allow\", \"Action\": [\"app-integrations:GetApplication\"], \"Resource\": \"*\"}]\n}";
    let doc2 = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"s3:*","Resource":"*"}]}"#;
    let put = iam
        .put_role_policy()
        .role_name(role)
        .policy_name("onboard-a")
        .policy_document(doc)
        .send()
        .await
        .map(|_| ())
        .map_err(code);
    let get = iam
        .get_role_policy()
        .role_name(role)
        .policy_name("onboard-a")
        .send()
        .await
        .map(|o| {
            (
                o.role_name().to_owned(),
                o.policy_name().to_owned(),
                decode(o.policy_document()),
            )
        })
        .map_err(code);
    iam.put_role_policy()
        .role_name(role)
        .policy_name("onboard-b")
        .policy_document(doc)
        .send()
        .await
        .unwrap();
    let mut listed = iam
        .list_role_policies()
        .role_name(role)
        .send()
        .await
        .map(|o| o.policy_names().to_vec())
        .map_err(code);
    if let Ok(names) = &mut listed {
        names.sort();
    }
    iam.put_role_policy()
        .role_name(role)
        .policy_name("onboard-b")
        .policy_document(doc2)
        .send()
        .await
        .unwrap();
    let replaced = iam
        .get_role_policy()
        .role_name(role)
        .policy_name("onboard-b")
        .send()
        .await
        .map(|o| decode(o.policy_document()))
        .map_err(code);
    let missing_policy = iam
        .get_role_policy()
        .role_name(role)
        .policy_name("absent")
        .send()
        .await
        .map(|_| ())
        .map_err(code);
    let missing_role = iam
        .get_role_policy()
        .role_name("NoSuchRoleAnywhere")
        .policy_name("onboard-a")
        .send()
        .await
        .map(|_| ())
        .map_err(code);
    let delete = iam
        .delete_role_policy()
        .role_name(role)
        .policy_name("onboard-a")
        .send()
        .await
        .map(|_| ())
        .map_err(code);
    iam.delete_role_policy()
        .role_name(role)
        .policy_name("onboard-b")
        .send()
        .await
        .unwrap();
    let listed_after = iam
        .list_role_policies()
        .role_name(role)
        .send()
        .await
        .map(|o| o.policy_names().to_vec())
        .map_err(code);
    let delete_again = iam
        .delete_role_policy()
        .role_name(role)
        .policy_name("onboard-a")
        .send()
        .await
        .map(|_| ())
        .map_err(code);
    Observed {
        put,
        get,
        listed,
        replaced,
        missing_policy,
        missing_role,
        delete,
        listed_after,
        delete_again,
    }
}

#[tokio::test]
async fn iam_role_policy_calls_match_moto() {
    let moto = std::env::var("MOTO_ENDPOINT").expect(
        "MOTO_ENDPOINT is not set: run the suite with scripts/test.sh (it starts moto_server), \
         or start `.venv/bin/moto_server -H 127.0.0.1 -p PORT` and export MOTO_ENDPOINT=http://127.0.0.1:PORT",
    );
    // A fresh role name per run: moto is shared by the whole suite.
    let role = format!("AWSServiceRoleForAmazonConnect_Cmp{}", std::process::id());
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"connect.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

    let moto_iam = iam_client(&moto, RetryConfig::disabled());
    moto_iam
        .create_role()
        .role_name(&role)
        .path("/aws-service-role/connect.amazonaws.com/")
        .assume_role_policy_document(trust)
        .send()
        .await
        .expect("moto accepts CreateRole");

    let mut seed = SeedConfig::demo();
    seed.roles.push(RoleSeed {
        name: role.clone(),
        path: Some("/aws-service-role/connect.amazonaws.com/".to_owned()),
        assume_role_policy: Some(serde_json::Value::String(trust.to_owned())),
        inline_policies: Default::default(),
        protected: false,
        description: None,
    });
    let env = start_with(SandboxConfig { seed, ..config() }, RetryConfig::disabled()).await;

    let from_moto = exercise(&moto_iam, &role).await;
    let from_sandbox = exercise(&env.iam, &role).await;
    assert_eq!(from_sandbox, from_moto);
    // And the comparison is about something: the expected outcomes.
    assert_eq!(from_sandbox.missing_policy, Err("NoSuchEntity".to_owned()));
    assert_eq!(from_sandbox.missing_role, Err("NoSuchEntity".to_owned()));
    assert_eq!(
        from_sandbox.listed,
        Ok(vec!["onboard-a".to_owned(), "onboard-b".to_owned()])
    );
    assert_eq!(from_sandbox.listed_after, Ok(vec![]));

    // GetRole agrees on the identifying fields.
    let m = moto_iam.get_role().role_name(&role).send().await.unwrap();
    let s = env.iam.get_role().role_name(&role).send().await.unwrap();
    let (m, s) = (m.role().unwrap(), s.role().unwrap());
    assert_eq!((m.role_name(), m.path()), (s.role_name(), s.path()));
    assert_eq!(
        m.arn().rsplit_once('/').map(|x| x.1),
        s.arn().rsplit_once('/').map(|x| x.1)
    );
    let _ = moto_iam.delete_role().role_name(&role).send().await;
}
