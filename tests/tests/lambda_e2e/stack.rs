//! One isolated "deployment" per test: a sandbox (its own port), a saga table and FIFO queues on
//! moto (unique names), and the function processes configured for them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use onboard_aws::DynamoSagaStore;
use onboard_core::record::SagaRecord;
use onboard_core::store::SagaStore;
use onboard_integration_tests::lambda_runtime::{
    function_binaries, FunctionBinaries, LambdaProcess,
};
use onboard_integration_tests::{sdk_config, seed};
use onboard_sandbox::{RunningSandbox, Sandbox, SandboxConfig, SandboxHandle, ThrottleConfig};
use serde_json::Value;

use crate::events::{http_request, sqs_event, HttpResponse};

/// How long one function invocation may take.
pub const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a process may take to start polling for events.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for a message on a queue.
pub const RECEIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// The webhook secret the api function is configured with.
pub const WEBHOOK_SECRET: &str = "e2e-webhook-secret-0123456789abcdef";
/// Where `AWS_ENDPOINT_URL` points: a closed local port, so a service without its own endpoint
/// variable fails at once instead of reaching AWS.
const NOWHERE: &str = "http://127.0.0.1:9";

pub fn moto_endpoint() -> String {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "MOTO_ENDPOINT is not set: the Lambda end-to-end tests keep the saga table and the \
             queue on moto; run them via scripts/test.sh (which starts moto and exports \
             MOTO_ENDPOINT), or start `.venv/bin/moto_server -H 127.0.0.1 -p PORT` and export \
             MOTO_ENDPOINT=http://127.0.0.1:PORT"
        ),
    }
}

pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A FIFO queue on moto.
#[derive(Debug, Clone)]
pub struct Queue {
    pub url: String,
    pub arn: String,
}

pub struct Stack {
    pub binaries: &'static FunctionBinaries,
    pub sandbox: RunningSandbox,
    pub moto: String,
    pub store: Arc<DynamoSagaStore>,
    pub sqs: aws_sdk_sqs::Client,
    /// The worker's queue: the api sends to it.
    pub queue: Queue,
}

impl Stack {
    /// A sandbox with the harness seed (five SLR instances), a table and a queue on moto.
    pub async fn start() -> Self {
        let binaries = tokio::task::spawn_blocking(function_binaries)
            .await
            .expect("the binary lookup ran")
            .unwrap_or_else(|e| panic!("the function binaries are not available: {e}"));
        let moto = moto_endpoint();
        let sandbox = Sandbox::start(SandboxConfig {
            seed: seed(),
            throttle: ThrottleConfig::unlimited(),
            ..SandboxConfig::default()
        })
        .await
        .expect("the sandbox starts");
        let sdk = sdk_config(&moto, RetryConfig::standard()).await;
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        let table = unique("onboard-e2e");
        if let Err(e) = onboard_aws::create_table(&ddb, &table).await {
            panic!("creating table {table} on moto failed: {e}");
        }
        let store = Arc::new(DynamoSagaStore::new(ddb, table));
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let queue = create_fifo_queue(&sqs, "runs").await;
        Stack {
            binaries,
            sandbox,
            moto,
            store,
            sqs,
            queue,
        }
    }

    pub fn sandbox(&self) -> &SandboxHandle {
        self.sandbox.state()
    }

    pub fn dump(&self) -> Value {
        self.sandbox().dump()
    }

    /// Another FIFO queue on moto.
    pub async fn new_queue(&self, role: &str) -> Queue {
        create_fifo_queue(&self.sqs, role).await
    }

    /// What every function gets: fake credentials, the Region, per-service endpoints (moto for
    /// DynamoDB and SQS, the sandbox for AppIntegrations, Connect and IAM), no profile files,
    /// no instance metadata, and the saga table.
    pub fn base_env(&self) -> Vec<(String, String)> {
        let sandbox = self.sandbox.endpoint();
        let no_file = std::env::temp_dir().join("onboard-e2e-no-such-aws-file");
        let no_file = no_file.to_string_lossy().into_owned();
        [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", no_file.as_str()),
            ("AWS_SHARED_CREDENTIALS_FILE", no_file.as_str()),
            ("AWS_ENDPOINT_URL", NOWHERE),
            ("AWS_ENDPOINT_URL_DYNAMODB", self.moto.as_str()),
            ("AWS_ENDPOINT_URL_SQS", self.moto.as_str()),
            ("AWS_ENDPOINT_URL_APPINTEGRATIONS", sandbox.as_str()),
            ("AWS_ENDPOINT_URL_CONNECT", sandbox.as_str()),
            ("AWS_ENDPOINT_URL_IAM", sandbox.as_str()),
            ("AWS_LAMBDA_LOG_LEVEL", "info"),
            ("TABLE_NAME", self.store.table()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    async fn spawn(&self, name: &str, binary: &std::path::Path, extra: &[(&str, &str)]) -> Lambda {
        let mut env = self.base_env();
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v.to_string()));
        }
        let process = LambdaProcess::spawn(name, binary, &env)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        process
            .wait_ready(READY_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{name} did not start: {e}"));
        Lambda(process)
    }

    /// The api function, sending to the worker's queue.
    pub async fn api(&self) -> Lambda {
        self.spawn(
            "onboard-api",
            &self.binaries.api,
            &[
                ("QUEUE_URL", self.queue.url.as_str()),
                ("WEBHOOK_SECRET", WEBHOOK_SECRET),
            ],
        )
        .await
    }

    /// A worker function (a fresh execution environment) with `extra` settings.
    pub async fn worker(&self, extra: &[(&str, &str)]) -> Lambda {
        let mut env = vec![("CONNECT_RATE_PER_SECOND", "50"), ("CONNECT_BURST", "50")];
        env.extend_from_slice(extra);
        self.spawn("onboard-worker", &self.binaries.worker, &env)
            .await
    }

    /// The reconciler function, re-queueing to `queue`.
    pub async fn reconciler(&self, queue: &Queue) -> Lambda {
        self.spawn(
            "onboard-reconciler",
            &self.binaries.reconciler,
            &[("QUEUE_URL", queue.url.as_str())],
        )
        .await
    }

    /// Receive `n` messages from `queue` (each then invisible for five minutes, as while a
    /// worker holds it), with every system attribute.
    pub async fn receive(&self, queue: &Queue, n: usize) -> Vec<Message> {
        let deadline = Instant::now() + RECEIVE_TIMEOUT;
        let mut got: Vec<Message> = Vec::new();
        while got.len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} message(s) arrived on {} within {RECEIVE_TIMEOUT:?}",
                got.len(),
                queue.url
            );
            let out = self
                .sqs
                .receive_message()
                .queue_url(&queue.url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .visibility_timeout(300)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .expect("moto answers ReceiveMessage");
            got.extend(out.messages.unwrap_or_default());
        }
        assert_eq!(got.len(), n, "exactly {n} message(s) on {}", queue.url);
        got
    }

    /// What the event source mapping does with the messages of a batch the worker did not
    /// report failed.
    pub async fn delete(&self, queue: &Queue, messages: &[Message]) {
        for m in messages {
            self.sqs
                .delete_message()
                .queue_url(&queue.url)
                .receipt_handle(m.receipt_handle().expect("a receipt handle"))
                .send()
                .await
                .expect("moto answers DeleteMessage");
        }
    }

    pub async fn record(&self, saga_id: &str) -> SagaRecord {
        self.store
            .get(saga_id)
            .await
            .expect("moto answers")
            .unwrap_or_else(|| panic!("saga {saga_id} is in the table"))
    }
}

async fn create_fifo_queue(sqs: &aws_sdk_sqs::Client, role: &str) -> Queue {
    let name = format!("{}.fifo", unique(&format!("onboard-e2e-{role}")));
    let created = sqs
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::VisibilityTimeout, "300")
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating queue {name} on moto failed: {e:?}"));
    let url = created.queue_url().expect("a queue URL").to_string();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("moto answers GetQueueAttributes");
    let arn = attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .expect("the queue has an ARN")
        .clone();
    Queue { url, arn }
}

/// A running function process with helpers for the events it takes.
pub struct Lambda(pub LambdaProcess);

impl std::ops::Deref for Lambda {
    type Target = LambdaProcess;
    fn deref(&self) -> &LambdaProcess {
        &self.0
    }
}

impl Lambda {
    /// Invoke with `event`; panics with the process's output when there is no answer.
    pub async fn call(&self, event: &Value) -> Value {
        self.0
            .invoke(event, INVOKE_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("invoking {}: {e}", self.0.name()))
    }

    /// An HTTP request through "API Gateway" to the api function.
    pub async fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> HttpResponse {
        HttpResponse::parse(self.call(&http_request(method, path, headers, body)).await)
    }

    /// `GET /applications/{id}`, expecting 200.
    pub async fn status_page(&self, saga_id: &str) -> Value {
        let resp = self
            .http("GET", &format!("/applications/{saga_id}"), &[], None)
            .await;
        assert_eq!(resp.status, 200, "{:?}", resp.raw);
        resp.body
    }

    /// A worker run over `messages` of `queue`; returns the failed message ids.
    pub async fn run_batch(&self, queue: &Queue, messages: &[Message]) -> Vec<String> {
        let response = self.call(&sqs_event(&queue.arn, messages)).await;
        crate::events::batch_failures(&response)
    }

    /// Every stdout line that is a JSON object.
    pub fn json_lines(&self) -> Vec<Value> {
        self.0
            .logs()
            .iter()
            .filter_map(|l| l.strip_prefix("[stdout] "))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect()
    }
}
