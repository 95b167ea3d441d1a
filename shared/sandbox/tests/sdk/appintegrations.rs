//! AppIntegrations operations through `aws-sdk-appintegrations`.

use crate::common::*;
use aws_sdk_appintegrations::error::ProvideErrorMetadata;
use aws_sdk_appintegrations::operation::create_application::CreateApplicationError;
use aws_sdk_appintegrations::operation::delete_application::DeleteApplicationError;
use aws_sdk_appintegrations::operation::get_application::GetApplicationError;
use aws_sdk_appintegrations::operation::list_applications::ListApplicationsError;
use aws_sdk_appintegrations::types::{
    ApplicationConfig, ApplicationSourceConfig, ApplicationType, ContactHandling,
    ContactHandlingScope, ExternalUrlConfig, IframeConfig,
};
use onboard_sandbox::{SandboxConfig, DEMO_INSTANCE_EAST, DEMO_INSTANCE_SUPPORT};

#[tokio::test]
async fn create_get_update_list_delete_round_trip() {
    let env = start().await;
    let out = env
        .ai
        .create_application()
        .name("Acme CRM")
        .namespace("crm.acme.example")
        .description("Customer panel")
        .application_source_config(
            ApplicationSourceConfig::builder()
                .external_url_config(
                    ExternalUrlConfig::builder()
                        .access_url("https://crm.acme.example/agent")
                        .approved_origins("https://login.acme.example")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .permissions("User.Details.View")
        .permissions("Contact.Details.View")
        .tags("onboard:saga", "s-1")
        .initialization_timeout(5000)
        .application_type(ApplicationType::Standard)
        .application_config(
            ApplicationConfig::builder()
                .contact_handling(
                    ContactHandling::builder()
                        .scope(ContactHandlingScope::PerContact)
                        .build(),
                )
                .build(),
        )
        .iframe_config(
            IframeConfig::builder()
                .allow("clipboard-write")
                .sandbox("allow-scripts")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let id = out.id().unwrap().to_owned();
    let arn = out.arn().unwrap().to_owned();
    assert_eq!(
        arn,
        format!("arn:aws:app-integrations:us-east-1:111122223333:application/{id}")
    );

    // By id and by ARN (which the SDK percent-encodes into the path).
    for identifier in [&id, &arn] {
        let got = env
            .ai
            .get_application()
            .arn(identifier)
            .send()
            .await
            .unwrap();
        assert_eq!(got.namespace(), Some("crm.acme.example"));
        assert_eq!(got.name(), Some("Acme CRM"));
        assert_eq!(
            got.permissions(),
            ["User.Details.View", "Contact.Details.View"]
        );
        assert_eq!(
            got.tags()
                .and_then(|t| t.get("onboard:saga"))
                .map(String::as_str),
            Some("s-1")
        );
        assert_eq!(got.initialization_timeout(), Some(5000));
        assert_eq!(got.application_type(), Some(&ApplicationType::Standard));
        assert!(got.created_time().is_some() && got.last_modified_time().is_some());
        let ext = got
            .application_source_config()
            .unwrap()
            .external_url_config()
            .unwrap();
        assert_eq!(ext.approved_origins(), ["https://login.acme.example"]);
        assert_eq!(
            got.application_config()
                .unwrap()
                .contact_handling()
                .unwrap()
                .scope(),
            Some(&ContactHandlingScope::PerContact)
        );
        assert_eq!(got.iframe_config().unwrap().allow(), ["clipboard-write"]);
    }

    // A partial update: only the members sent change.
    env.ai
        .update_application()
        .arn(&arn)
        .name("Acme CRM v2")
        .permissions("User.Details.View")
        .send()
        .await
        .unwrap();
    let got = env.ai.get_application().arn(&id).send().await.unwrap();
    assert_eq!(got.name(), Some("Acme CRM v2"));
    assert_eq!(got.permissions(), ["User.Details.View"]);
    assert_eq!(got.description(), Some("Customer panel"));
    assert_eq!(got.namespace(), Some("crm.acme.example"));

    let listed = env.ai.list_applications().send().await.unwrap();
    assert_eq!(listed.applications().len(), 1);
    assert_eq!(
        listed.applications()[0].namespace(),
        Some("crm.acme.example")
    );
    assert_eq!(listed.applications()[0].name(), Some("Acme CRM v2"));
    let filtered = env
        .ai
        .list_applications()
        .application_type(ApplicationType::Service)
        .send()
        .await
        .unwrap();
    assert!(filtered.applications().is_empty());

    env.ai.delete_application().arn(&arn).send().await.unwrap();
    let err = env
        .ai
        .get_application()
        .arn(&id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, GetApplicationError::ResourceNotFoundException(_)),
        "{err:?}"
    );
    let err = env
        .ai
        .delete_application()
        .arn(&id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, DeleteApplicationError::ResourceNotFoundException(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn duplicate_namespace_is_a_typed_duplicate_resource_error() {
    let env = start().await;
    new_app(&env.ai, "crm.example.com").await;
    let err = create_app(&env.ai, "crm.example.com")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, CreateApplicationError::DuplicateResourceException(_)),
        "{err:?}"
    );
    assert!(err.message().unwrap().contains("crm.example.com"));
}

#[tokio::test]
async fn same_client_token_returns_the_first_result() {
    let env = start().await;
    let first = create_app(&env.ai, "idem.example.com")
        .client_token("saga-1")
        .send()
        .await
        .unwrap();
    let again = create_app(&env.ai, "idem.example.com")
        .client_token("saga-1")
        .send()
        .await
        .unwrap();
    assert_eq!(first.arn(), again.arn());
    assert_eq!(
        env.ai
            .list_applications()
            .send()
            .await
            .unwrap()
            .applications()
            .len(),
        1
    );

    // The same token with a different request is refused.
    let err = create_app(&env.ai, "other.example.com")
        .client_token("saga-1")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, CreateApplicationError::InvalidRequestException(_)),
        "{err:?}"
    );

    // Once the application is deleted the token no longer pins it.
    env.ai
        .delete_application()
        .arn(first.arn().unwrap())
        .send()
        .await
        .unwrap();
    let fresh = create_app(&env.ai, "idem.example.com")
        .client_token("saga-1")
        .send()
        .await
        .unwrap();
    assert_ne!(fresh.arn(), first.arn());
}

#[tokio::test]
async fn model_constraints_are_invalid_request_errors() {
    let env = start().await;
    // `:` is not allowed in a namespace: a URL origin must be turned into a host-like name.
    let err = create_app(&env.ai, "https://crm.example.com")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, CreateApplicationError::InvalidRequestException(_)),
        "{err:?}"
    );
    assert!(
        err.message().unwrap().contains("'namespace'"),
        "{:?}",
        err.message()
    );

    let cases = [
        create_app(&env.ai, "a.example.com").name("bad:name"),
        create_app(&env.ai, "b.example.com").initialization_timeout(0),
        create_app(&env.ai, "c.example.com").application_type(ApplicationType::from("BOGUS")),
        create_app(&env.ai, "d.example.com").permissions("has space"),
        create_app(&env.ai, "e.example.com")
            .iframe_config(IframeConfig::builder().allow("Camera").build()),
        create_app(&env.ai, "f.example.com").application_source_config(
            ApplicationSourceConfig::builder()
                .external_url_config(
                    ExternalUrlConfig::builder()
                        .access_url("crm.example.com")
                        .build()
                        .unwrap(),
                )
                .build(),
        ),
        create_app(&env.ai, "g.example.com").application_source_config(
            ApplicationSourceConfig::builder()
                .external_url_config(
                    ExternalUrlConfig::builder()
                        .access_url("https://g.example.com")
                        .set_approved_origins(Some(
                            (0..51)
                                .map(|i| format!("https://o{i}.example.com"))
                                .collect(),
                        ))
                        .build()
                        .unwrap(),
                )
                .build(),
        ),
        env.ai
            .create_application()
            .namespace("h.example.com")
            .name("No source"),
    ];
    for case in cases {
        let err = case.send().await.unwrap_err().into_service_error();
        assert!(
            matches!(err, CreateApplicationError::InvalidRequestException(_)),
            "{err:?}"
        );
        assert!(
            err.message().unwrap().contains("validation error"),
            "{:?}",
            err.message()
        );
    }
    // A malformed identifier.
    let err = env
        .ai
        .get_application()
        .arn("not an id")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, GetApplicationError::InvalidRequestException(_)),
        "{err:?}"
    );
    assert!(env
        .ai
        .list_applications()
        .send()
        .await
        .unwrap()
        .applications()
        .is_empty());
}

#[tokio::test]
async fn delete_is_refused_while_associated_and_force_removes_associations() {
    let env = start().await;
    let (id, arn) = new_app(&env.ai, "assoc.example.com").await;
    associate(&env.connect, DEMO_INSTANCE_EAST, &arn).await;
    associate(&env.connect, DEMO_INSTANCE_SUPPORT, &arn).await;

    let assocs = env
        .ai
        .list_application_associations()
        .application_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(assocs.application_associations().len(), 2);
    for a in assocs.application_associations() {
        assert_eq!(a.client_id(), Some("connect.amazonaws.com"));
        assert_eq!(a.application_arn(), Some(arn.as_str()));
        assert!(a
            .application_association_arn()
            .unwrap()
            .contains(&format!(":application-association/{id}/")));
    }

    let err = env
        .ai
        .delete_application()
        .arn(&arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, DeleteApplicationError::InvalidRequestException(_)),
        "{err:?}"
    );
    let message = err.message().unwrap();
    assert!(
        message.contains("Remove the associations first"),
        "{message}"
    );
    assert!(message.contains(DEMO_INSTANCE_EAST), "{message}");

    env.ai
        .delete_application()
        .arn(&arn)
        .force(true)
        .send()
        .await
        .unwrap();
    let left = env
        .connect
        .list_integration_associations()
        .instance_id(DEMO_INSTANCE_EAST)
        .send()
        .await
        .unwrap();
    assert!(left.integration_association_summary_list().is_empty());
    let state = env.sandbox.state().dump();
    assert_eq!(state["application_associations"], serde_json::json!({}));
}

#[tokio::test]
async fn list_applications_paginates() {
    let env = start().await;
    let mut namespaces: Vec<String> = (0..7).map(|i| format!("p{i}.example.com")).collect();
    for ns in &namespaces {
        new_app(&env.ai, ns).await;
    }
    let first = env
        .ai
        .list_applications()
        .max_results(3)
        .send()
        .await
        .unwrap();
    assert_eq!(first.applications().len(), 3);
    assert!(first.next_token().is_some());
    let all: Vec<_> = env
        .ai
        .list_applications()
        .max_results(3)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let mut seen: Vec<String> = all
        .iter()
        .map(|a| a.namespace().unwrap().to_owned())
        .collect();
    seen.sort();
    namespaces.sort();
    assert_eq!(seen, namespaces);

    let err = env
        .ai
        .list_applications()
        .next_token("forged")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, ListApplicationsError::InvalidRequestException(_)),
        "{err:?}"
    );
    let err = env
        .ai
        .list_applications()
        .max_results(51)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, ListApplicationsError::InvalidRequestException(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn list_application_associations_paginates() {
    let env = start().await;
    let (id, arn) = new_app(&env.ai, "pages.example.com").await;
    associate(&env.connect, DEMO_INSTANCE_EAST, &arn).await;
    associate(&env.connect, DEMO_INSTANCE_SUPPORT, &arn).await;
    let first = env
        .ai
        .list_application_associations()
        .application_id(&arn)
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(first.application_associations().len(), 1);
    assert!(first.next_token().is_some());
    let all: Vec<_> = env
        .ai
        .list_application_associations()
        .application_id(&id)
        .max_results(1)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
}

#[tokio::test]
async fn the_applications_quota_is_enforced() {
    let config = SandboxConfig {
        max_applications: 2,
        ..config()
    };
    let env = start_with(config, RetryConfig::disabled()).await;
    new_app(&env.ai, "q1.example.com").await;
    new_app(&env.ai, "q2.example.com").await;
    let err = create_app(&env.ai, "q3.example.com")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            err,
            CreateApplicationError::ResourceQuotaExceededException(_)
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), Some("ResourceQuotaExceededException"));
}
