//! The SQS side of the poison-message path, against moto's SQS (`MOTO_ENDPOINT`, started by
//! scripts/test.sh): a parked message lands on the dead-letter queue with its reason, and a
//! paced one becomes visible again after the delay asked for.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;
use onboard_worker::poison::{DeadLetters, SqsDeadLetters};

fn client() -> Client {
    let endpoint = std::env::var("MOTO_ENDPOINT")
        .expect("MOTO_ENDPOINT is not set: run the suite with scripts/test.sh (it starts moto)");
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .build();
    Client::from_conf(config)
}

async fn fifo(client: &Client, name: &str) -> String {
    let name = format!(
        "{name}-{}-{}.fifo",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

#[tokio::test]
async fn a_parked_message_carries_its_reason_and_a_paced_one_comes_back() {
    let client = client();
    let queue_url = fifo(&client, "runs").await;
    let dead_letter_url = fifo(&client, "runs-dlq").await;
    let dl = SqsDeadLetters {
        client: client.clone(),
        queue_url: queue_url.clone(),
        dead_letter_url: dead_letter_url.clone(),
    };

    client
        .send_message()
        .queue_url(&queue_url)
        .message_body(r#"{"sagaId":"sg-1","namespace":"ns","action":"run"}"#)
        .message_group_id("ns")
        .message_deduplication_id("sg-1:run")
        .send()
        .await
        .unwrap();
    let first = client
        .receive_message()
        .queue_url(&queue_url)
        .visibility_timeout(600)
        .send()
        .await
        .unwrap();
    let message = first.messages().first().expect("the message").clone();
    dl.retry_after(message.receipt_handle().unwrap(), Duration::ZERO)
        .await
        .unwrap();
    let again = client
        .receive_message()
        .queue_url(&queue_url)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .unwrap();
    let again = again.messages().first().expect("visible again at once");
    assert_eq!(
        again
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .map(String::as_str),
        Some("2")
    );

    dl.park(
        message.message_id().unwrap(),
        "ns",
        message.body().unwrap(),
        "failed 3 deliveries, the last with: store failed",
    )
    .await
    .unwrap();
    let parked = client
        .receive_message()
        .queue_url(&dead_letter_url)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap();
    let parked = parked.messages().first().expect("the parked message");
    assert_eq!(parked.body(), message.body());
    let attrs = parked.message_attributes().unwrap();
    assert_eq!(
        attrs["ParkedReason"].string_value(),
        Some("failed 3 deliveries, the last with: store failed")
    );
    assert_eq!(
        attrs["ParkedFromMessageId"].string_value(),
        message.message_id()
    );
}
