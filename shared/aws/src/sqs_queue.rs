//! [`SagaQueue`] on `aws-sdk-sqs`: the portal API and the reconciler put
//! [`RunSagaMessage`]s on the worker's queue.
//!
//! On a FIFO queue (URL ending in `.fifo`) every message carries
//!
//! * `MessageGroupId` = the saga's namespace, so one namespace's sagas are delivered in order
//!   and never to two workers at once, while different namespaces run in parallel;
//! * `MessageDeduplicationId` = `<saga id>:<action>` (e.g. `sg-…:run`) for a first send, so a
//!   retried or duplicated submission within SQS's five-minute deduplication window does not
//!   deliver the same run twice;
//! * on the reconciler's re-sends of a stalled saga ([`SqsQueue::for_resends`]) the id also names
//!   the minute of the re-send (`sg-…:run:resend:<minutes since the epoch>`): SQS drops any
//!   message whose id it saw in the last five minutes — delivered, deleted or not — so a re-send
//!   under the first send's id would be silently lost whenever the saga stalled within five
//!   minutes of it (a short lease, a message parked by the worker). Retries of one re-send
//!   (the SDK's, or a duplicate sweep) within the minute still deduplicate; a duplicate that
//!   does get through is a no-op for the worker.
//!
//! Both ids are limited to 128 characters from a fixed set; a namespace may be 211 characters, so
//! longer values are shortened deterministically (a prefix plus a SHA-256 digest of the whole
//! value): the same namespace always maps to the same group. On a standard queue both are
//! omitted (SQS refuses a deduplication id there).

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use onboard_core::error::{ErrorInfo, ErrorKind};
use onboard_core::service::{RunAction, RunSagaMessage, SagaQueue};
use sha2::{Digest, Sha256};

use crate::sdk_errors::classify;

/// SQS's limit on `MessageGroupId` and `MessageDeduplicationId`.
pub const SQS_ID_MAX: usize = 128;

/// The worker's queue.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    fifo: bool,
    /// Re-sends of earlier messages: deduplication ids of their own ([`resend_deduplication_id`]).
    resend: bool,
}

impl SqsQueue {
    /// A queue adapter for `queue_url`; FIFO when the URL ends in `.fifo`.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        let queue_url = queue_url.into();
        let fifo = queue_url.ends_with(".fifo");
        SqsQueue {
            client,
            queue_url,
            fifo,
            resend: false,
        }
    }

    /// The same queue for re-sends of sagas that were queued before (the reconciler): every
    /// message gets [`resend_deduplication_id`] instead of the first send's id.
    pub fn for_resends(mut self) -> Self {
        self.resend = true;
        self
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    pub fn is_fifo(&self) -> bool {
        self.fifo
    }
}

/// The FIFO message group of a saga message: its namespace (shortened when too long).
pub fn message_group_id(message: &RunSagaMessage) -> String {
    sqs_id(&message.namespace)
}

/// The FIFO deduplication id of a saga message: saga id and action.
pub fn deduplication_id(message: &RunSagaMessage) -> String {
    let action = match message.action {
        RunAction::Run => "run",
        RunAction::Redrive => "redrive",
    };
    sqs_id(&format!("{}:{action}", message.saga_id))
}

/// How long re-sends of one message share a deduplication id: the reconciler's sweeps come at
/// most once a minute (EventBridge's shortest rate), so two sweeps' re-sends never share one.
pub const RESEND_BUCKET_MS: u64 = 60_000;

/// The FIFO deduplication id of a re-send at `now_ms` (epoch milliseconds): the first send's id
/// plus the minute, so it never collides with the first send or a re-send of another minute.
pub fn resend_deduplication_id(message: &RunSagaMessage, now_ms: u64) -> String {
    let action = match message.action {
        RunAction::Run => "run",
        RunAction::Redrive => "redrive",
    };
    sqs_id(&format!(
        "{}:{action}:resend:{}",
        message.saga_id,
        now_ms / RESEND_BUCKET_MS
    ))
}

/// `value` if it is a valid SQS id (1–128 characters, alphanumerics and ASCII punctuation);
/// otherwise a deterministic stand-in: its valid characters' first 63, `~`, and the SHA-256 hex
/// of the whole value.
pub fn sqs_id(value: &str) -> String {
    let valid = |c: char| c.is_ascii_alphanumeric() || c.is_ascii_punctuation();
    if !value.is_empty() && value.len() <= SQS_ID_MAX && value.chars().all(valid) {
        return value.to_string();
    }
    let prefix: String = value.chars().filter(|c| valid(*c)).take(63).collect();
    let digest = hex::encode(Sha256::digest(value.as_bytes()));
    format!("{prefix}~{digest}")
}

#[async_trait]
impl SagaQueue for SqsQueue {
    async fn enqueue(&self, message: &RunSagaMessage) -> Result<(), ErrorInfo> {
        let body = serde_json::to_string(message).map_err(|e| {
            ErrorInfo::new(
                ErrorKind::Invalid,
                "UnencodableMessage",
                format!("saga message cannot be encoded: {e}"),
            )
        })?;
        let mut req = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body);
        if self.fifo {
            let dedup = if self.resend {
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                resend_deduplication_id(message, now_ms)
            } else {
                deduplication_id(message)
            };
            req = req
                .message_group_id(message_group_id(message))
                .message_deduplication_id(dedup);
        }
        req.send()
            .await
            .map(|_| ())
            .map_err(|e| classify("sqs:SendMessage", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ns: &str) -> RunSagaMessage {
        RunSagaMessage {
            saga_id: "sg-0123".into(),
            namespace: ns.into(),
            action: RunAction::Run,
        }
    }

    #[test]
    fn short_namespaces_are_the_group_and_ids_name_the_action() {
        assert_eq!(message_group_id(&msg("crm.example.com")), "crm.example.com");
        assert_eq!(deduplication_id(&msg("x")), "sg-0123:run");
        let mut m = msg("x");
        m.action = RunAction::Redrive;
        assert_eq!(deduplication_id(&m), "sg-0123:redrive");
    }

    #[test]
    fn resends_get_an_id_per_minute_distinct_from_the_first_send() {
        let m = msg("x");
        let minute = 29_000_000 * RESEND_BUCKET_MS;
        let a = resend_deduplication_id(&m, minute + 1_000);
        assert_eq!(a, "sg-0123:run:resend:29000000");
        assert_ne!(a, deduplication_id(&m));
        assert_eq!(
            a,
            resend_deduplication_id(&m, minute + 59_999),
            "same minute"
        );
        assert_ne!(a, resend_deduplication_id(&m, minute + RESEND_BUCKET_MS));
        let long = RunSagaMessage {
            saga_id: format!("sg-{}", "x".repeat(130)),
            ..m
        };
        assert!(resend_deduplication_id(&long, minute).len() <= SQS_ID_MAX);
    }

    #[test]
    fn long_namespaces_shorten_deterministically_within_the_limit() {
        let long = format!("{}/a", "n".repeat(209));
        let other = format!("{}/b", "n".repeat(209));
        let g = message_group_id(&msg(&long));
        assert_eq!(g.len(), SQS_ID_MAX);
        assert_eq!(g, message_group_id(&msg(&long)));
        assert_ne!(g, message_group_id(&msg(&other)));
    }
}
