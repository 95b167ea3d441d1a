//! `SqsQueue` against moto server's SQS: the message body is the typed `RunSagaMessage`, FIFO
//! queues get the namespace as message group and `<saga id>:<action>` as deduplication id.
//!
//! Reaches SQS only through `MOTO_ENDPOINT` with fake credentials, never AWS; every test gets
//! its own queue.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failing test should fail loudly

use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;
use onboard_aws::sqs_queue::SqsQueue;
use onboard_core::error::ErrorKind;
use onboard_core::service::{RunAction, RunSagaMessage, SagaQueue};

fn moto_endpoint() -> String {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "MOTO_ENDPOINT is not set: these tests need moto server; run the suite via \
             scripts/test.sh, which starts moto and exports MOTO_ENDPOINT"
        ),
    }
}

fn client() -> Client {
    let conf = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .region(Region::new("us-east-1"))
        .endpoint_url(moto_endpoint())
        .build();
    Client::from_conf(conf)
}

fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

async fn queue(client: &Client, fifo: bool) -> String {
    let mut req = client.create_queue();
    if fifo {
        req = req
            .queue_name(format!("{}.fifo", unique("runs")))
            .attributes(QueueAttributeName::FifoQueue, "true");
    } else {
        req = req.queue_name(unique("runs"));
    }
    req.send().await.unwrap().queue_url().unwrap().to_string()
}

fn message(saga: &str, ns: &str, action: RunAction) -> RunSagaMessage {
    RunSagaMessage {
        saga_id: saga.into(),
        namespace: ns.into(),
        action,
    }
}

/// Every message currently visible, with (body, group id).
async fn drain(client: &Client, url: &str) -> Vec<(RunSagaMessage, Option<String>)> {
    let mut out = Vec::new();
    loop {
        let got = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        let msgs = got.messages();
        if msgs.is_empty() {
            return out;
        }
        for m in msgs {
            let body: RunSagaMessage = serde_json::from_str(m.body().unwrap()).unwrap();
            let group = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                .cloned();
            out.push((body, group));
            client
                .delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn fifo_messages_carry_the_namespace_as_group_and_deduplicate_per_saga_action() {
    let client = client();
    let url = queue(&client, true).await;
    let q = SqsQueue::new(client.clone(), url.clone());
    assert!(q.is_fifo());
    let a = message("sg-a", "crm.example.com", RunAction::Run);
    let b = message("sg-b", "kb.example.com", RunAction::Run);
    q.enqueue(&a).await.unwrap();
    q.enqueue(&a).await.unwrap(); // a retried submit: deduplicated
    q.enqueue(&b).await.unwrap();
    let redrive = message("sg-a", "crm.example.com", RunAction::Redrive);
    q.enqueue(&redrive).await.unwrap(); // another action: a new message

    let mut got = drain(&client, &url).await;
    got.sort_by(|x, y| {
        (&x.0.saga_id, x.0.action == RunAction::Redrive)
            .cmp(&(&y.0.saga_id, y.0.action == RunAction::Redrive))
    });
    assert_eq!(
        got,
        vec![
            (a, Some("crm.example.com".to_string())),
            (redrive, Some("crm.example.com".to_string())),
            (b, Some("kb.example.com".to_string())),
        ]
    );
}

#[tokio::test]
async fn standard_queues_get_plain_messages() {
    let client = client();
    let url = queue(&client, false).await;
    let q = SqsQueue::new(client.clone(), url.clone());
    assert!(!q.is_fifo());
    let m = message("sg-c", "crm.example.com", RunAction::Run);
    q.enqueue(&m).await.unwrap();
    let got = drain(&client, &url).await;
    assert_eq!(got, vec![(m, None)]);
}

#[tokio::test]
async fn a_missing_queue_is_a_classified_error() {
    let client = client();
    let url = format!("{}/123456789012/does-not-exist.fifo", moto_endpoint());
    let q = SqsQueue::new(client, url);
    let err = q
        .enqueue(&message("sg-d", "ns", RunAction::Run))
        .await
        .unwrap_err();
    assert_ne!(err.kind, ErrorKind::Throttled, "{err:?}");
    assert!(!err.code.is_empty(), "{err:?}");
}
