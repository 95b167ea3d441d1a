//! `onboard-reconciler`: EventBridge schedule → Lambda. Builds the clients once per execution
//! environment, then runs one [`onboard_reconciler::Reconciler::sweep`] per event.
//!
//! Environment: `TABLE_NAME` and `QUEUE_URL` (required); optional `RECONCILE_LIMIT` (stalled
//! sagas re-queued per sweep, default 100), `PENDING_GRACE_SECONDS` (default 120),
//! `DRIFT_CHECK` (`true`/`false`, default true), `DRIFT_CHECK_LIMIT` (applications checked per
//! sweep, default 10), `DRIFT_CHECK_BUDGET_SECONDS` (no new check after this, default 120; keep
//! it well under the function's timeout), `CONNECT_RATE_PER_SECOND` / `CONNECT_BURST` (the
//! drift checks' client-side Connect limit, default 1 / 2: the account's Connect quota is shared
//! with the worker), `SDK_CONNECT_TIMEOUT_MS` / `SDK_READ_TIMEOUT_MS` / `SDK_ATTEMPT_TIMEOUT_MS` /
//! `SDK_OPERATION_TIMEOUT_MS` (every AWS call's timeouts, default 3000 / 10000 / 10000 / 25000;
//! the operation timeout must stay below the 30 s resource lock), `METRICS_NAMESPACE`,
//! `AWS_LAMBDA_LOG_LEVEL` / `RUST_LOG`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use onboard_aws::ConnectRate;
use onboard_core::clock::{Clock, SystemClock};
use onboard_core::lifecycle::LifecyclePorts;
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
        drift_check_limit: env.parse_or("DRIFT_CHECK_LIMIT", defaults.drift_check_limit)?,
        drift_budget: Duration::from_secs(env.parse_or(
            "DRIFT_CHECK_BUDGET_SECONDS",
            defaults.drift_budget.as_secs(),
        )?),
        ..defaults
    };
    let drift_check = env.flag("DRIFT_CHECK", true)?;
    let rate = ConnectRate {
        per_second: env.parse_or("CONNECT_RATE_PER_SECOND", NonZeroU32::MIN)?,
        burst: env.parse_or("CONNECT_BURST", NonZeroU32::MIN.saturating_add(1))?,
    };
    let namespace = env
        .get("METRICS_NAMESPACE")
        .unwrap_or_else(|| emf::DEFAULT_NAMESPACE.to_string());
    // The reconciler holds no saga lease; its calls are bounded by the resource lock's.
    let sdk = clients::sdk_config_from_env(env, Duration::MAX).await?;
    let store = clients::saga_store(&sdk, &table);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // Built like the worker's, so drift is read exactly as the sagas see AWS.
    let drift = drift_check.then(|| {
        Arc::new(LifecyclePorts {
            aws: Arc::new(onboard_aws::onboard_ports(
                &sdk,
                rate,
                store.clone(),
                clock.clone(),
            )),
            store: store.clone(),
        })
    });
    Ok(Reconciler {
        store,
        // Re-sends get deduplication ids of their own, or SQS would drop a re-send within five
        // minutes of the saga's first send.
        queue: clients::resend_queue(&sdk, &queue_url),
        clock,
        emf: Emf::stdout(&namespace, "reconciler"),
        config,
        drift,
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
