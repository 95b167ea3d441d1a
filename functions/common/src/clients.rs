//! AWS clients, built once per execution environment at init from one shared SDK
//! configuration (credentials, Region, retry settings, timeouts).
//!
//! Endpoints follow the SDK's standard settings: `AWS_ENDPOINT_URL` for every service or
//! `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL_APPINTEGRATIONS`,
//! `AWS_ENDPOINT_URL_CONNECT`, `AWS_ENDPOINT_URL_IAM` per service — which is how the end-to-end
//! tests point the compiled functions at moto and the sandbox. Production sets none of them.
//!
//! Every call has a connect, read, attempt and operation timeout (`SDK_CONNECT_TIMEOUT_MS`,
//! `SDK_READ_TIMEOUT_MS`, `SDK_ATTEMPT_TIMEOUT_MS`, `SDK_OPERATION_TIMEOUT_MS`; defaults 3 s,
//! 10 s, 10 s, 25 s), so a hung call fails with a retryable timeout before the lease or lock it
//! runs under expires; [`sdk_config_from_env`] refuses settings that would not.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use onboard_aws::config::{TimeoutError, OPERATION_TIMEOUT_VAR};
use onboard_aws::{DynamoSagaStore, SdkTimeouts, SqsQueue};
use onboard_core::locks::LOCK_TTL;

use crate::env::{ConfigError, Env};

/// The shared SDK configuration from the default provider chain, with the default timeouts.
/// Entry points that read settings use [`sdk_config_from_env`] instead.
pub async fn sdk_config() -> SdkConfig {
    onboard_aws::sdk_config(None, &SdkTimeouts::default()).await
}

/// The SDK timeouts from `env`, checked against the shortest lease a call may run under: the
/// resource lock ([`LOCK_TTL`]) or `saga_lease` when that is shorter.
pub fn sdk_timeouts(env: &Env, saga_lease: Duration) -> Result<SdkTimeouts, ConfigError> {
    let timeouts = SdkTimeouts::from_lookup(|name| env.get(name)).map_err(|e| invalid(env, e))?;
    timeouts
        .validate(LOCK_TTL.min(saga_lease))
        .map_err(|e| invalid(env, e))?;
    Ok(timeouts)
}

/// The shared SDK configuration with the timeouts of `env` (see [`sdk_timeouts`]).
pub async fn sdk_config_from_env(
    env: &Env,
    saga_lease: Duration,
) -> Result<SdkConfig, ConfigError> {
    let timeouts = sdk_timeouts(env, saga_lease)?;
    Ok(onboard_aws::sdk_config(None, &timeouts).await)
}

/// A timeout problem as the configuration error naming its variable.
fn invalid(env: &Env, err: TimeoutError) -> ConfigError {
    let name = match &err {
        TimeoutError::Malformed { name, .. }
        | TimeoutError::Zero { name }
        | TimeoutError::Inconsistent { name, .. } => *name,
        TimeoutError::NotBelowLease { .. } => OPERATION_TIMEOUT_VAR,
    };
    ConfigError::Invalid {
        name: name.to_string(),
        value: env.get(name).unwrap_or_default(),
        why: err.to_string(),
    }
}

/// The saga store (and resource locks) on DynamoDB table `table`.
pub fn saga_store(sdk: &SdkConfig, table: &str) -> Arc<DynamoSagaStore> {
    Arc::new(DynamoSagaStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        table,
    ))
}

/// The worker queue at `queue_url`, for first sends (the API's submissions).
pub fn saga_queue(sdk: &SdkConfig, queue_url: &str) -> Arc<SqsQueue> {
    Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(sdk), queue_url))
}

/// The worker queue at `queue_url` for the reconciler's re-sends of stalled sagas: each re-send
/// gets a deduplication id of its own ([`SqsQueue::for_resends`]), so SQS never drops it as a
/// duplicate of the first send.
pub fn resend_queue(sdk: &SdkConfig, queue_url: &str) -> Arc<SqsQueue> {
    Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(sdk), queue_url).for_resends())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const LEASE: Duration = Duration::from_secs(300);

    #[test]
    fn unset_timeouts_are_the_defaults() {
        assert_eq!(
            sdk_timeouts(&Env::from_pairs([]), LEASE).unwrap(),
            SdkTimeouts::default()
        );
    }

    #[test]
    fn an_operation_timeout_at_or_above_the_lock_lease_stops_the_init_naming_the_variable() {
        let env = Env::from_pairs([("SDK_OPERATION_TIMEOUT_MS", "30000")]);
        let err = sdk_timeouts(&env, LEASE).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("environment variable SDK_OPERATION_TIMEOUT_MS=\"30000\" is invalid"),
            "{text}"
        );
        assert!(text.contains("below 30000 ms"), "{text}");
        // A saga lease shorter than the lock is the bound then.
        let env = Env::from_pairs([("SDK_OPERATION_TIMEOUT_MS", "20000")]);
        assert!(sdk_timeouts(&env, Duration::from_secs(20)).is_err());
        assert!(sdk_timeouts(&env, LEASE).is_ok());
    }

    #[test]
    fn malformed_timeouts_name_their_variable() {
        let env = Env::from_pairs([("SDK_ATTEMPT_TIMEOUT_MS", "ten")]);
        assert!(matches!(
            sdk_timeouts(&env, LEASE),
            Err(ConfigError::Invalid { name, .. }) if name == "SDK_ATTEMPT_TIMEOUT_MS"
        ));
    }
}
