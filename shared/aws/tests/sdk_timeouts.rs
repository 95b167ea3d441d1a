//! The SDK timeouts of `onboard_aws::config` against the sandbox with an injected latency: a call
//! slower than the configured attempt timeout ends with a retryable `Timeout` error after about
//! the operation timeout, not after the latency (a hung AWS call must not outlive the lease it
//! runs under). Timeouts of a few hundred milliseconds keep the test fast.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use aws_config::Region;
use onboard_aws::config::{loader, SdkTimeouts};
use onboard_aws::SdkAppIntegrations;
use onboard_core::error::ErrorKind;
use onboard_core::ports::AppIntegrationsPort;
use onboard_sandbox::{FaultMode, FaultSpec, Sandbox, SandboxConfig, Service, ThrottleConfig};

/// Far longer than the timeouts: without them the call would wait this long.
const LATENCY_MS: u64 = 5_000;

#[tokio::test]
async fn a_call_slower_than_the_attempt_timeout_fails_retryably_within_the_operation_timeout() {
    let sandbox = Sandbox::start(SandboxConfig {
        throttle: ThrottleConfig::unlimited(),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    sandbox.state().add_fault(FaultSpec {
        service: Some(Service::AppIntegrations),
        operation: Some("GetApplication".into()),
        nth: None,
        probability: None,
        seed: None,
        latency_ms: Some(LATENCY_MS),
        error: None,
        mode: Some(FaultMode::Delay),
        times: None,
    });
    let timeouts = SdkTimeouts {
        connect: Duration::from_millis(200),
        read: Duration::from_millis(300),
        attempt: Duration::from_millis(300),
        operation: Duration::from_millis(800),
    };
    // The production loader; only the credentials and the Region are fixed for the test.
    let sdk = loader(Some(&sandbox.endpoint()), &timeouts)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_appintegrations::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await;
    let apps = SdkAppIntegrations::new(aws_sdk_appintegrations::Client::new(&sdk));

    let started = Instant::now();
    let err = apps
        .get_application("11111111-2222-4333-8444-555555555555")
        .await
        .expect_err("the call must time out");
    let took = started.elapsed();

    assert_eq!(err.kind, ErrorKind::Timeout, "{err:?}");
    assert!(
        err.kind.is_retryable(),
        "a timeout is retried by the engine"
    );
    assert!(
        took >= Duration::from_millis(250),
        "ended before the attempt timeout: {took:?}"
    );
    assert!(
        took < Duration::from_millis(2_000),
        "the call waited for the latency ({LATENCY_MS} ms) instead of timing out: {took:?}"
    );
}
