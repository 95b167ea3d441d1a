//! `onboard-step`: Step Functions → Lambda. Builds the clients and the step runners (one per
//! saga kind) once per execution environment; every invocation runs one saga node
//! ([`onboard_step::handle`]).
//!
//! Environment: `TABLE_NAME` (required); optional `INSTANCE_CONCURRENCY` (default 4; must match
//! the exported state machine's MaxConcurrency), `CONNECT_RATE_PER_SECOND` / `CONNECT_BURST`
//! (default 2 / 5), `LEASE_TTL_SECONDS` (default 300), `AWS_LAMBDA_LOG_LEVEL` / `RUST_LOG`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use onboard_aws::ConnectRate;
use onboard_core::clock::{Clock, SystemClock};
use onboard_core::engine::EngineConfig;
use onboard_core::engine_step::StepRunners;
use onboard_core::onboard::OnboardConfig;
use onboard_lambda_common::{clients, logging, ConfigError, Env};
use serde_json::Value;

async fn init(env: &Env) -> Result<StepRunners, ConfigError> {
    let table = env.required(
        "TABLE_NAME",
        "the DynamoDB table of saga records (the SagaTable output of the stack)",
    )?;
    let instance_concurrency = env.parse_or("INSTANCE_CONCURRENCY", 4usize)?;
    let rate = ConnectRate {
        per_second: env.parse_or("CONNECT_RATE_PER_SECOND", NonZeroU32::MIN.saturating_add(1))?,
        burst: env.parse_or("CONNECT_BURST", NonZeroU32::MIN.saturating_add(4))?,
    };
    let lease = Duration::from_secs(env.parse_or("LEASE_TTL_SECONDS", 300u64)?);
    let sdk = clients::sdk_config().await;
    let store = clients::saga_store(&sdk, &table);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ports = onboard_aws::onboard_ports(&sdk, rate, store.clone(), clock.clone());
    Ok(StepRunners::new(
        Arc::new(ports),
        store,
        clock,
        &OnboardConfig {
            instance_concurrency,
        },
        EngineConfig {
            lease_ttl: lease,
            ..EngineConfig::default()
        },
    ))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let env = Env::process();
    logging::init(&env)?;
    let runner = match init(&env).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "step handler configuration is incomplete");
            return Err(e.into());
        }
    };
    let runner = &runner;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        onboard_step::handle(runner, event.payload).await
    }))
    .await
}
