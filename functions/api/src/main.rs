//! `onboard-api`: API Gateway (HTTP API) → Lambda. Builds the clients once per execution
//! environment and serves [`onboard_api::router`] with `lambda_http`.
//!
//! Environment: see [`onboard_api::config`] — `TABLE_NAME`, `QUEUE_URL` and `WEBHOOK_SECRET` are
//! required; a missing one stops the init with a message naming it.

use std::sync::Arc;

use lambda_http::Error;
use onboard_api::config::api_from_env;
use onboard_core::clock::SystemClock;
use onboard_lambda_common::{clients, logging, ConfigError, Env};

async fn init(env: &Env) -> Result<axum::Router, ConfigError> {
    let table = env.required(
        "TABLE_NAME",
        "the DynamoDB table of saga records (the SagaTable output of the stack)",
    )?;
    let queue_url = env.required(
        "QUEUE_URL",
        "the URL of the worker's FIFO queue (the RunQueue output of the stack)",
    )?;
    // Check the rest of the configuration before touching AWS.
    onboard_api::config::webhooks_from_env(env)?;
    let sdk = clients::sdk_config().await;
    let mut api = api_from_env(
        env,
        clients::saga_store(&sdk, &table),
        clients::saga_queue(&sdk, &queue_url),
        Arc::new(SystemClock),
    )?;
    if onboard_api::config::preflight_aws_enabled(env)? {
        api.preflight_aws = Some(onboard_aws::preflight::preflight_ports(
            &sdk,
            onboard_aws::ConnectRate::default(),
        ));
    }
    Ok(onboard_api::router(Arc::new(api)))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let env = Env::process();
    logging::init(&env)?;
    // WEBHOOK_SECRET_ARN / WEBHOOK_SECRET_SSM_PARAMETER: read the webhook secret once, here.
    let env = match onboard_api::secret::process_env_with_secret().await {
        Ok(env) => env,
        Err(e) => {
            tracing::error!(error = %e, "api configuration is incomplete");
            return Err(e.into());
        }
    };
    let router = match init(&env).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "api configuration is incomplete");
            return Err(e.into());
        }
    };
    lambda_http::run(router).await
}
