//! Failures outside the saga: a function missing required configuration stops at init, before
//! polling for events, with a message naming the variable; a handler error reaches the runtime
//! API's error endpoint and the execution environment lives on.

use std::time::{Duration, Instant};

use onboard_integration_tests::lambda_runtime::{InvokeError, LambdaProcess};
use serde_json::Value;

use crate::events::scheduled_event;
use crate::stack::{unique, Stack, INVOKE_TIMEOUT, READY_TIMEOUT};

async fn init_failure(
    stack: &Stack,
    name: &str,
    binary: &std::path::Path,
    set: &[(&str, &str)],
    unset: &str,
) -> String {
    let mut env = stack.base_env();
    env.retain(|(k, _)| k != unset);
    env.extend(set.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let process = LambdaProcess::spawn(name, binary, &env)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    match process.wait_ready(READY_TIMEOUT).await {
        Err(e @ InvokeError::Exited { .. }) => {
            assert_eq!(process.runtime().polls(), 0, "it never asked for an event");
            e.to_string()
        }
        other => panic!("{name} without {unset} should stop at init: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_configuration_stops_the_init_and_names_the_variable() {
    let stack = Stack::start().await;
    let b = stack.binaries;
    let queue = stack.queue.url.as_str();

    let worker = init_failure(&stack, "onboard-worker", &b.worker, &[], "TABLE_NAME").await;
    assert!(
        worker.contains("missing required environment variable TABLE_NAME"),
        "{worker}"
    );
    let api = init_failure(
        &stack,
        "onboard-api",
        &b.api,
        &[("QUEUE_URL", queue)],
        "WEBHOOK_SECRET",
    )
    .await;
    assert!(
        api.contains("missing required environment variable WEBHOOK_SECRET"),
        "{api}"
    );
    let reconciler = init_failure(
        &stack,
        "onboard-reconciler",
        &b.reconciler,
        &[],
        "QUEUE_URL",
    )
    .await;
    assert!(
        reconciler.contains("missing required environment variable QUEUE_URL"),
        "{reconciler}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sweep_is_reported_as_a_function_error_and_the_process_lives_on() {
    let stack = Stack::start().await;
    let missing_table = unique("no-such-table");
    let mut env = stack.base_env();
    env.retain(|(k, _)| k != "TABLE_NAME");
    env.push(("TABLE_NAME".into(), missing_table));
    env.push(("QUEUE_URL".into(), stack.queue.url.clone()));
    let reconciler = LambdaProcess::spawn("onboard-reconciler", &stack.binaries.reconciler, &env)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for attempt in 1..=2 {
        match reconciler.invoke(&scheduled_event(), INVOKE_TIMEOUT).await {
            Err(InvokeError::Function { error_type, body }) => {
                let body: Value = serde_json::from_str(&body).expect("a JSON error document");
                assert_eq!(
                    body["errorType"], "SagaStoreError",
                    "a named error type: {body}"
                );
                assert!(
                    body["errorMessage"]
                        .as_str()
                        .is_some_and(|m| m.contains("ResourceNotFoundException")),
                    "the message says what failed: {body}"
                );
                assert!(error_type.is_some(), "the error type header is set");
            }
            other => panic!("sweep {attempt} on a missing table should fail: {other:?}"),
        }
    }
    // It asks for the next event after each error (three polls for two events) and lives on.
    let deadline = Instant::now() + READY_TIMEOUT;
    while reconciler.runtime().polls() < 3 {
        assert!(Instant::now() < deadline, "no poll after the second error");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        reconciler.exit_status().is_none(),
        "a handler error does not end the process: {:?}",
        reconciler.logs()
    );
}
