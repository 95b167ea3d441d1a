//! `onboard-reconciler`: EventBridge schedule → Lambda. Builds the clients once per execution
//! environment, then runs one [`onboard_reconciler::Reconciler::sweep`] per event.
//!
//! Environment: `TABLE_NAME` and `QUEUE_URL` (required); optional `RECONCILE_LIMIT` (stalled
//! sagas re-queued per sweep, default 100), `PENDING_GRACE_SECONDS` (default 120),
//! `METRICS_NAMESPACE`, `AWS_LAMBDA_LOG_LEVEL` / `RUST_LOG`.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use onboard_core::clock::SystemClock;
use onboard_lambda_common::{clients, emf, logging, ConfigError, Emf, Env};
use onboard_reconciler::{Reconciler, ReconcilerConfig};

async fn init(env: &Env) -> Result<Reconciler, ConfigError> {
    let table = env.required(
        "TABLE_NAME",
        "the DynamoDB table of saga records (the SagaTable output of the stack)",
    )?;
    let queue_url = env.required(
        "QUEUE_URL",
        "the URL of the worker's FIFO queue (the RunQueue output of the stack)",
    )?;
    let defaults = ReconcilerConfig::default();
    let config = ReconcilerConfig {
        limit: env.parse_or("RECONCILE_LIMIT", defaults.limit)?,
        pending_grace: Duration::from_secs(
            env.parse_or("PENDING_GRACE_SECONDS", defaults.pending_grace.as_secs())?,
        ),
        ..defaults
    };
    let namespace = env
        .get("METRICS_NAMESPACE")
        .unwrap_or_else(|| emf::DEFAULT_NAMESPACE.to_string());
    let sdk = clients::sdk_config().await;
    Ok(Reconciler {
        store: clients::saga_store(&sdk, &table),
        queue: clients::saga_queue(&sdk, &queue_url),
        clock: Arc::new(SystemClock),
        emf: Emf::stdout(&namespace, "reconciler"),
        config,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let env = Env::process();
    logging::init(&env)?;
    let reconciler = match init(&env).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "reconciler configuration is incomplete");
            return Err(e.into());
        }
    };
    let reconciler = &reconciler;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent>| async move {
            tracing::info!(
                event_id = event.payload.id.as_deref().unwrap_or(""),
                detail_type = %event.payload.detail_type,
                "reconciler sweep started"
            );
            // A named error type for the Runtime API instead of the boxed trait object's name.
            reconciler
                .sweep()
                .await
                .map_err(|e| lambda_runtime::Diagnostic {
                    error_type: "SagaStoreError".to_string(),
                    error_message: e.to_string(),
                })
        },
    ))
    .await
}
