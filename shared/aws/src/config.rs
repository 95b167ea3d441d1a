//! Loading the shared AWS SDK configuration once per process.

use aws_config::{BehaviorVersion, SdkConfig};

/// The SDK configuration from the default chain (environment, profile, web identity, container
/// and instance metadata). `endpoint_url` points every client at a local emulator (moto, the
/// sandbox) instead of AWS; production passes `None`.
pub async fn sdk_config(endpoint_url: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}
