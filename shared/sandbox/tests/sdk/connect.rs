//! Connect operations through `aws-sdk-connect`.

use crate::common::*;
use aws_sdk_connect::error::ProvideErrorMetadata;
use aws_sdk_connect::operation::create_integration_association::CreateIntegrationAssociationError;
use aws_sdk_connect::operation::delete_integration_association::DeleteIntegrationAssociationError;
use aws_sdk_connect::operation::describe_instance::DescribeInstanceError;
use aws_sdk_connect::operation::update_security_profile::UpdateSecurityProfileError;
use aws_sdk_connect::types::{Application, IntegrationType};
use onboard_sandbox::{DEMO_INSTANCE_EAST, DEMO_INSTANCE_LEGACY, DEMO_INSTANCE_SUPPORT};

#[tokio::test]
async fn describe_and_list_instances() {
    let env = start().await;
    let east = env
        .connect
        .describe_instance()
        .instance_id(DEMO_INSTANCE_EAST)
        .send()
        .await
        .unwrap();
    let inst = east.instance().unwrap();
    assert_eq!(inst.id(), Some(DEMO_INSTANCE_EAST));
    assert_eq!(inst.instance_alias(), Some("demo-east"));
    assert_eq!(inst.service_role(), Some(slr_arn(EAST_SLR).as_str()));
    assert_eq!(
        inst.instance_access_url(),
        Some("https://demo-east.my.connect.aws")
    );
    assert_eq!(inst.instance_status().map(|s| s.as_str()), Some("ACTIVE"));
    assert!(inst.created_time().is_some());

    // By ARN too.
    let by_arn = env
        .connect
        .describe_instance()
        .instance_id(inst.arn().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(by_arn.instance().unwrap().id(), Some(DEMO_INSTANCE_EAST));

    let legacy = env
        .connect
        .describe_instance()
        .instance_id(DEMO_INSTANCE_LEGACY)
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.instance().unwrap().service_role(), None);

    let err = env
        .connect
        .describe_instance()
        .instance_id("44444444-4444-4444-8444-444444444444")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, DescribeInstanceError::ResourceNotFoundException(_)),
        "{err:?}"
    );

    let first = env
        .connect
        .list_instances()
        .max_results(2)
        .send()
        .await
        .unwrap();
    assert_eq!(first.instance_summary_list().len(), 2);
    assert!(first.next_token().is_some());
    let all: Vec<_> = env
        .connect
        .list_instances()
        .max_results(2)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let ids: Vec<_> = all.iter().map(|i| i.id().unwrap()).collect();
    assert_eq!(
        ids,
        [
            DEMO_INSTANCE_EAST,
            DEMO_INSTANCE_SUPPORT,
            DEMO_INSTANCE_LEGACY
        ]
    );
    assert!(all[0].service_role().is_some() && all[2].service_role().is_none());
}

#[tokio::test]
async fn integration_association_lifecycle() {
    let env = start().await;
    let (_, arn) = new_app(&env.ai, "life.example.com").await;
    let created = env
        .connect
        .create_integration_association()
        .instance_id(DEMO_INSTANCE_EAST)
        .integration_type(IntegrationType::Application)
        .integration_arn(&arn)
        .send()
        .await
        .unwrap();
    let id = created.integration_association_id().unwrap().to_owned();
    assert_eq!(
        created.integration_association_arn(),
        Some(format!("arn:aws:connect:us-east-1:111122223333:instance/{DEMO_INSTANCE_EAST}/integration-association/{id}").as_str())
    );

    // Filters by type and by ARN.
    let listed = env
        .connect
        .list_integration_associations()
        .instance_id(DEMO_INSTANCE_EAST)
        .integration_type(IntegrationType::Application)
        .integration_arn(&arn)
        .send()
        .await
        .unwrap();
    let summaries = listed.integration_association_summary_list();
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].integration_association_id(), Some(id.as_str()));
    assert_eq!(summaries[0].integration_arn(), Some(arn.as_str()));
    assert_eq!(summaries[0].instance_id(), Some(DEMO_INSTANCE_EAST));
    let none = env
        .connect
        .list_integration_associations()
        .instance_id(DEMO_INSTANCE_EAST)
        .integration_type(IntegrationType::Event)
        .send()
        .await
        .unwrap();
    assert!(none.integration_association_summary_list().is_empty());

    // The same pair twice is a typed duplicate.
    let err = env
        .connect
        .create_integration_association()
        .instance_id(DEMO_INSTANCE_EAST)
        .integration_type(IntegrationType::Application)
        .integration_arn(&arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            err,
            CreateIntegrationAssociationError::DuplicateResourceException(_)
        ),
        "{err:?}"
    );

    env.connect
        .delete_integration_association()
        .instance_id(DEMO_INSTANCE_EAST)
        .integration_association_id(&id)
        .send()
        .await
        .unwrap();
    let err = env
        .connect
        .delete_integration_association()
        .instance_id(DEMO_INSTANCE_EAST)
        .integration_association_id(&id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            err,
            DeleteIntegrationAssociationError::ResourceNotFoundException(_)
        ),
        "{err:?}"
    );
    let after = env
        .connect
        .list_integration_associations()
        .instance_id(DEMO_INSTANCE_EAST)
        .send()
        .await
        .unwrap();
    assert!(after.integration_association_summary_list().is_empty());
}

#[tokio::test]
async fn association_is_refused_for_an_instance_without_slr_and_for_a_missing_app() {
    let env = start().await;
    let (id, arn) = new_app(&env.ai, "noslr.example.com").await;
    let err = env
        .connect
        .create_integration_association()
        .instance_id(DEMO_INSTANCE_LEGACY)
        .integration_type(IntegrationType::Application)
        .integration_arn(&arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            err,
            CreateIntegrationAssociationError::InvalidRequestException(_)
        ),
        "{err:?}"
    );
    assert!(
        err.message().unwrap().contains("service-linked role"),
        "{:?}",
        err.message()
    );

    let missing = arn.replace(&id, "00000000-0000-4000-8000-000000000000");
    let err = env
        .connect
        .create_integration_association()
        .instance_id(DEMO_INSTANCE_EAST)
        .integration_type(IntegrationType::Application)
        .integration_arn(&missing)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            err,
            CreateIntegrationAssociationError::ResourceNotFoundException(_)
        ),
        "{err:?}"
    );

    let err = env
        .connect
        .create_integration_association()
        .instance_id(DEMO_INSTANCE_EAST)
        .integration_type(IntegrationType::from("NOT_A_TYPE"))
        .integration_arn(&arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            err,
            CreateIntegrationAssociationError::InvalidRequestException(_)
        ),
        "{err:?}"
    );
    let state = env.sandbox.state().dump();
    assert_eq!(state["integration_associations"], serde_json::json!({}));
}

#[tokio::test]
async fn list_integration_associations_paginates() {
    let env = start().await;
    for i in 0..3 {
        let (_, arn) = new_app(&env.ai, &format!("many{i}.example.com")).await;
        associate(&env.connect, DEMO_INSTANCE_SUPPORT, &arn).await;
    }
    let first = env
        .connect
        .list_integration_associations()
        .instance_id(DEMO_INSTANCE_SUPPORT)
        .max_results(2)
        .send()
        .await
        .unwrap();
    assert_eq!(first.integration_association_summary_list().len(), 2);
    assert!(first.next_token().is_some());
    let all: Vec<_> = env
        .connect
        .list_integration_associations()
        .instance_id(DEMO_INSTANCE_SUPPORT)
        .max_results(2)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
}

fn grant(namespace: &str) -> Application {
    Application::builder()
        .namespace(namespace)
        .application_permissions("ACCESS")
        .build()
}

#[tokio::test]
async fn security_profiles_list_describe_and_grant() {
    let env = start().await;
    let profiles: Vec<_> = env
        .connect
        .list_security_profiles()
        .instance_id(DEMO_INSTANCE_EAST)
        .max_results(2)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let mut names: Vec<_> = profiles.iter().map(|p| p.name().unwrap()).collect();
    names.sort();
    assert_eq!(
        names,
        ["Admin", "Agent", "CallCenterManager"],
        "every page, each once"
    );
    let agent = profiles
        .iter()
        .find(|p| p.name() == Some("Agent"))
        .unwrap()
        .id()
        .unwrap()
        .to_owned();

    let described = env
        .connect
        .describe_security_profile()
        .instance_id(DEMO_INSTANCE_EAST)
        .security_profile_id(&agent)
        .send()
        .await
        .unwrap();
    let sp = described.security_profile().unwrap();
    assert_eq!(sp.security_profile_name(), Some("Agent"));
    assert_eq!(sp.organization_resource_id(), Some(DEMO_INSTANCE_EAST));

    let (_, a) = new_app(&env.ai, "grant-a.example.com").await;
    let (_, b) = new_app(&env.ai, "grant-b.example.com").await;
    associate(&env.connect, DEMO_INSTANCE_EAST, &a).await;
    associate(&env.connect, DEMO_INSTANCE_EAST, &b).await;

    let update = || {
        env.connect
            .update_security_profile()
            .instance_id(DEMO_INSTANCE_EAST)
            .security_profile_id(&agent)
    };
    update()
        .applications(grant("grant-a.example.com"))
        .applications(grant("grant-b.example.com"))
        .send()
        .await
        .unwrap();
    let list = || {
        env.connect
            .list_security_profile_applications()
            .instance_id(DEMO_INSTANCE_EAST)
            .security_profile_id(&agent)
    };
    let granted = list().send().await.unwrap();
    let namespaces: Vec<_> = granted
        .applications()
        .iter()
        .map(|g| g.namespace().unwrap())
        .collect();
    assert_eq!(namespaces, ["grant-a.example.com", "grant-b.example.com"]);
    assert_eq!(
        granted.applications()[0].application_permissions(),
        ["ACCESS"]
    );
    let paged: Vec<_> = list()
        .max_results(1)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(paged.len(), 2);

    // The list replaces the previous one (read-modify-write is the caller's job).
    update()
        .applications(grant("grant-b.example.com"))
        .send()
        .await
        .unwrap();
    let granted = list().send().await.unwrap();
    assert_eq!(granted.applications().len(), 1);
    assert_eq!(
        granted.applications()[0].namespace(),
        Some("grant-b.example.com")
    );

    // More than 10, an unassociated namespace, and a permission other than ACCESS are refused.
    let eleven = (0..11).map(|i| grant(&format!("n{i}"))).collect::<Vec<_>>();
    let bad = [
        update().set_applications(Some(eleven)),
        update().applications(grant("not-associated.example.com")),
        update().applications(
            Application::builder()
                .namespace("grant-a.example.com")
                .application_permissions("READ")
                .build(),
        ),
        update().applications(grant(&"x".repeat(129))),
    ];
    for call in bad {
        let err = call.send().await.unwrap_err().into_service_error();
        assert!(
            matches!(
                err,
                UpdateSecurityProfileError::InvalidParameterException(_)
            ),
            "{err:?}"
        );
    }
    assert_eq!(list().send().await.unwrap().applications().len(), 1);

    // Clearing.
    update()
        .set_applications(Some(vec![]))
        .send()
        .await
        .unwrap();
    assert!(list().send().await.unwrap().applications().is_empty());

    let err = env
        .connect
        .describe_security_profile()
        .instance_id(DEMO_INSTANCE_EAST)
        .security_profile_id("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.into_service_error().code(),
        Some("ResourceNotFoundException")
    );
}
