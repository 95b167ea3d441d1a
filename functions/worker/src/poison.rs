//! The poison-message path: a message that cannot succeed must not hold its namespace's FIFO
//! group for the queue's visibility timeout × maximum receive count (2.5 h with the template's
//! defaults) before the redrive policy takes it.
//!
//! * A message that can never succeed (no body, not a saga message, a saga that does not exist
//!   or of a kind no engine runs) is parked on the dead-letter queue at once, with the reason.
//! * A message that failed for a reason that may pass (the store unavailable) comes back after
//!   a short, growing delay (ChangeMessageVisibility) instead of the 30-minute visibility
//!   timeout; on its `max_receives`-th failed delivery it is parked too. Its saga stays
//!   runnable in the store, so the reconciler re-sends it once it is stalled.
//!
//! A parked message carries `ParkedReason` and `ParkedFromMessageId` attributes; the DLQ
//! alarm fires on it, and the metric `MessagesParked` counts it.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::MessageAttributeValue;
use aws_sdk_sqs::Client;

/// Where a message the worker gives up on goes, and how a failed one is paced.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    /// Put `body` on the dead-letter queue with `reason`; `group` is the FIFO group (the
    /// namespace, or `unreadable`) and `message_id` the original message's id.
    async fn park(
        &self,
        message_id: &str,
        group: &str,
        body: &str,
        reason: &str,
    ) -> Result<(), String>;
    /// Make a failed message visible again after `delay` instead of the queue's visibility
    /// timeout.
    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), String>;
}

/// When to park and how long to wait between deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoisonPolicy {
    /// A message failing for the `max_receives`-th time is parked.
    pub max_receives: u32,
    /// The wait after the first failed delivery; doubled after each.
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for PoisonPolicy {
    /// Three deliveries, 30 s then 60 s apart: a namespace is unblocked within about two
    /// minutes of a message that keeps failing.
    fn default() -> Self {
        PoisonPolicy {
            max_receives: 3,
            first_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(300),
        }
    }
}

impl PoisonPolicy {
    /// The wait before delivery number `receive_count + 1`.
    pub fn delay(&self, receive_count: u32) -> Duration {
        let doublings = receive_count.saturating_sub(1).min(16);
        self.first_delay
            .saturating_mul(1 << doublings)
            .min(self.max_delay)
    }
}

/// [`DeadLetters`] on SQS: the run queue (for the visibility change) and its dead-letter queue.
pub struct SqsDeadLetters {
    pub client: Client,
    pub queue_url: String,
    pub dead_letter_url: String,
}

/// A string attribute, cut to 1,024 characters (a reason can quote a long store error).
fn attribute(value: &str) -> Result<MessageAttributeValue, String> {
    let mut v: String = value.chars().take(1024).collect();
    if v.is_empty() {
        v.push('-');
    }
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .map_err(|e| format!("a message attribute could not be built: {e}"))
}

#[async_trait]
impl DeadLetters for SqsDeadLetters {
    async fn park(
        &self,
        message_id: &str,
        group: &str,
        body: &str,
        reason: &str,
    ) -> Result<(), String> {
        let body = if body.is_empty() { "(no body)" } else { body };
        self.client
            .send_message()
            .queue_url(&self.dead_letter_url)
            .message_body(body)
            .message_group_id(onboard_aws::sqs_queue::sqs_id(group))
            // The original message id: a repeated park of one message is deduplicated.
            .message_deduplication_id(onboard_aws::sqs_queue::sqs_id(message_id))
            .message_attributes("ParkedReason", attribute(reason)?)
            .message_attributes("ParkedFromMessageId", attribute(message_id)?)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("SendMessage to the dead-letter queue failed: {e}"))
    }

    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), String> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(i32::try_from(delay.as_secs()).unwrap_or(i32::MAX))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("ChangeMessageVisibility failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stop_at_the_cap() {
        let p = PoisonPolicy::default();
        assert_eq!(p.delay(1), Duration::from_secs(30));
        assert_eq!(p.delay(2), Duration::from_secs(60));
        assert_eq!(p.delay(3), Duration::from_secs(120));
        assert_eq!(p.delay(10), Duration::from_secs(300));
        assert_eq!(p.delay(0), Duration::from_secs(30));
    }
}
