//! Token-bucket throttling: SDK retries recover; with retries exhausted the typed
//! ThrottlingException (IAM: `Throttling`) surfaces.

use crate::common::*;
use aws_sdk_appintegrations::operation::get_application::GetApplicationError;
use aws_sdk_connect::error::ProvideErrorMetadata;
use aws_sdk_connect::operation::create_integration_association::CreateIntegrationAssociationError;
use aws_sdk_connect::types::IntegrationType;
use onboard_sandbox::{
    ManualClock, Rate, SandboxConfig, ServiceRates, ThrottleConfig, DEMO_INSTANCE_EAST,
};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn connect_throttling_is_recovered_by_sdk_retries() {
    // Connect's defaults (2/s, burst 5) on the real clock; the 429s carry x-amz-retry-after.
    let config = SandboxConfig {
        throttle: ThrottleConfig::default(),
        ..config()
    };
    let env = start_with(config, RetryConfig::standard().with_max_attempts(3)).await;
    for _ in 0..7 {
        env.connect
            .describe_instance()
            .instance_id(DEMO_INSTANCE_EAST)
            .send()
            .await
            .unwrap();
    }
    let calls = env.sandbox.state().calls();
    let throttled = calls
        .iter()
        .filter(|c| c.note.as_deref() == Some("throttled"))
        .count();
    let ok = calls.iter().filter(|c| c.status == 200).count();
    assert_eq!(ok, 7);
    assert!(throttled >= 1, "{calls:?}");
    assert!(calls
        .iter()
        .filter(|c| c.status == 429)
        .all(|c| c.error.as_deref() == Some("ThrottlingException")));
}

#[tokio::test]
async fn exhausted_retries_surface_the_typed_throttling_exception() {
    let clock = Arc::new(ManualClock::default());
    let config = SandboxConfig {
        throttle: ThrottleConfig::default(),
        clock: clock.clone(),
        ..config()
    };
    let env = start_with(config, RetryConfig::disabled()).await;
    let (_, arn) = new_app(&env.ai, "throttle.example.com").await;
    let associate = || {
        env.connect
            .create_integration_association()
            .instance_id(DEMO_INSTANCE_EAST)
            .integration_type(IntegrationType::Application)
            .integration_arn(&arn)
            .send()
    };
    // The burst of 5 (the first succeeds, the next four are duplicates but still spend tokens).
    associate().await.unwrap();
    for _ in 0..4 {
        let err = associate().await.unwrap_err().into_service_error();
        assert!(
            matches!(
                err,
                CreateIntegrationAssociationError::DuplicateResourceException(_)
            ),
            "{err:?}"
        );
    }
    let err = associate().await.unwrap_err().into_service_error();
    assert!(
        matches!(
            err,
            CreateIntegrationAssociationError::ThrottlingException(_)
        ),
        "{err:?}"
    );
    // DescribeInstance has its own bucket (Connect quotas are per API) ...
    for _ in 0..5 {
        env.connect
            .describe_instance()
            .instance_id(DEMO_INSTANCE_EAST)
            .send()
            .await
            .unwrap();
    }
    // ... and does not model ThrottlingException, so the code arrives through the metadata.
    let err = env
        .connect
        .describe_instance()
        .instance_id(DEMO_INSTANCE_EAST)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("ThrottlingException"));

    // With retries on but a frozen clock, every attempt is throttled.
    let retrying = connect_client(
        &env.sandbox.endpoint(),
        RetryConfig::standard().with_max_attempts(3),
    );
    env.sandbox.state().clear_calls();
    let err = retrying
        .describe_instance()
        .instance_id(DEMO_INSTANCE_EAST)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("ThrottlingException"));
    assert_eq!(env.sandbox.state().calls().len(), 3);

    // Half a second later one token is back.
    clock.advance(Duration::from_millis(500));
    env.connect
        .describe_instance()
        .instance_id(DEMO_INSTANCE_EAST)
        .send()
        .await
        .unwrap();
    assert!(env
        .connect
        .describe_instance()
        .instance_id(DEMO_INSTANCE_EAST)
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn appintegrations_and_iam_throttle_in_their_own_shapes() {
    let clock = Arc::new(ManualClock::default());
    let one = ServiceRates {
        default: Some(Rate::new(1.0, 1)),
        ..ServiceRates::default()
    };
    let config = SandboxConfig {
        throttle: ThrottleConfig {
            appintegrations: one.clone(),
            iam: one,
            ..ThrottleConfig::unlimited()
        },
        clock,
        ..config()
    };
    let env = start_with(config, RetryConfig::disabled()).await;
    env.ai
        .get_application()
        .arn("0a1b2c3d-0000-4000-8000-00000000000f")
        .send()
        .await
        .unwrap_err();
    let err = env
        .ai
        .get_application()
        .arn("0a1b2c3d-0000-4000-8000-00000000000f")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, GetApplicationError::ThrottlingException(_)),
        "{err:?}"
    );

    env.iam.get_role().role_name(EAST_SLR).send().await.unwrap();
    let err = env
        .iam
        .get_role()
        .role_name(EAST_SLR)
        .send()
        .await
        .unwrap_err();
    let raw_status = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(raw_status, Some(400));
    assert_eq!(
        aws_sdk_iam::error::ProvideErrorMetadata::code(&err.into_service_error()),
        Some("Throttling")
    );
}
