//! `onboard-worker`: SQS → Lambda. Builds the clients and the saga engines (one per kind:
//! onboard, change, offboard, adopt) once per execution environment, then hands each batch to
//! [`onboard_worker::Worker`].
//!
//! Environment: `TABLE_NAME` (required); optional `WORKER_CONCURRENCY` (namespaces run at once
//! per batch, default 4), `INSTANCE_CONCURRENCY` (instances per fan-out step, default 4),
//! `CONNECT_RATE_PER_SECOND` / `CONNECT_BURST` (client-side Connect limit, default 2 / 5),
//! `LEASE_TTL_SECONDS` (default 300), `METRICS_NAMESPACE`, `AWS_LAMBDA_LOG_LEVEL` / `RUST_LOG`;
//! `QUEUE_URL` and `DEAD_LETTER_QUEUE_URL` for the poison-message path (both, or neither: then
//! only the queue's redrive policy moves failing messages, after hours).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use onboard_aws::ConnectRate;
use onboard_core::clock::{Clock, SystemClock, SystemRandom};
use onboard_core::engine::EngineConfig;
use onboard_core::lifecycle::service::{SagaSettings, Sagas};
use onboard_core::onboard::OnboardConfig;
use onboard_lambda_common::{clients, emf, logging, ConfigError, Emf, Env};
use onboard_worker::poison::{DeadLetters, PoisonPolicy, SqsDeadLetters};
use onboard_worker::Worker;

async fn init(env: &Env) -> Result<Worker, ConfigError> {
    let table = env.required(
        "TABLE_NAME",
        "the DynamoDB table of saga records (the SagaTable output of the stack)",
    )?;
    let concurrency = env.parse_or("WORKER_CONCURRENCY", 4usize)?;
    let instance_concurrency = env.parse_or("INSTANCE_CONCURRENCY", 4usize)?;
    let rate = ConnectRate {
        per_second: env.parse_or("CONNECT_RATE_PER_SECOND", NonZeroU32::MIN.saturating_add(1))?,
        burst: env.parse_or("CONNECT_BURST", NonZeroU32::MIN.saturating_add(4))?,
    };
    let lease = Duration::from_secs(env.parse_or("LEASE_TTL_SECONDS", 300u64)?);
    let namespace = env
        .get("METRICS_NAMESPACE")
        .unwrap_or_else(|| emf::DEFAULT_NAMESPACE.to_string());

    let sdk = clients::sdk_config().await;
    let store = clients::saga_store(&sdk, &table);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ports = onboard_aws::onboard_ports(&sdk, rate, store.clone(), clock.clone());
    // Unique per execution environment, so two environments never share a lease.
    let owner = format!(
        "worker:{}:{:x}",
        env.get("AWS_LAMBDA_LOG_STREAM_NAME")
            .unwrap_or_else(|| "local".into()),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() ^ std::process::id())
    );
    let sagas = Sagas::new(
        Arc::new(ports),
        store.clone(),
        clock.clone(),
        Arc::new(SystemRandom),
        SagaSettings {
            onboard: OnboardConfig {
                instance_concurrency,
            },
            engine: EngineConfig {
                lease_ttl: lease,
                ..EngineConfig::default()
            },
            owner,
        },
    );
    let dead_letters: Option<Arc<dyn DeadLetters>> =
        match (env.get("QUEUE_URL"), env.get("DEAD_LETTER_QUEUE_URL")) {
            (Some(queue_url), Some(dead_letter_url)) => Some(Arc::new(SqsDeadLetters {
                client: aws_sdk_sqs::Client::new(&sdk),
                queue_url,
                dead_letter_url,
            })),
            (None, None) => {
                tracing::warn!(
                    "QUEUE_URL and DEAD_LETTER_QUEUE_URL are not set: a failing message holds its \
                     namespace until the queue's redrive policy moves it"
                );
                None
            }
            (queue, dead) => {
                let (name, value) = match (queue, dead) {
                    (Some(q), None) => ("QUEUE_URL", q),
                    (_, d) => ("DEAD_LETTER_QUEUE_URL", d.unwrap_or_default()),
                };
                return Err(ConfigError::Invalid {
                    name: name.into(),
                    value,
                    why: "QUEUE_URL and DEAD_LETTER_QUEUE_URL go together (the run queue and its \
                          dead-letter queue): set both or neither"
                        .into(),
                });
            }
        };
    Ok(Worker {
        sagas,
        store,
        clock,
        emf: Emf::stdout(&namespace, "worker"),
        concurrency,
        dead_letters,
        poison: PoisonPolicy::default(),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let env = Env::process();
    logging::init(&env)?;
    let worker = match init(&env).await {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "worker configuration is incomplete");
            return Err(e.into());
        }
    };
    let worker = &worker;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(worker.handle(event.payload).await)
    }))
    .await
}
