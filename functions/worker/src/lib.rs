//! The SQS worker: each message names a saga to run (or re-drive); the worker runs it on the
//! engine for the saga's kind (onboard, change, offboard, adopt — [`Sagas`], built once at init)
//! and answers with a partial batch response, so one bad message never fails its neighbours.
//!
//! Per message:
//!
//! | situation | reported | why |
//! |---|---|---|
//! | body is not a `RunSagaMessage` | parked on the DLQ at once with the reason ([`poison`]) | retrying will not help; the namespace must not wait |
//! | saga unknown, or of a kind no engine runs | parked on the DLQ at once with the reason | as above |
//! | saga finished, or leased by another worker | success (no-op) | redelivery must not fail the batch |
//! | lease lost mid-run, re-drive of a saga no longer ROLLBACK_FAILED / NEEDS_ATTENTION | success (no-op) | another worker owns it / nothing to re-drive |
//! | store failed | failed, back after 30 s, 60 s, …; parked on its third failed delivery | SQS redelivers; the engine resumes from the record; the reconciler re-sends a parked saga once it is stalled |
//! | an earlier message of the same namespace failed in this batch | failed, not attempted | keeps FIFO order within the namespace |
//!
//! Messages of different namespaces in one batch run concurrently (at most `concurrency`
//! namespaces at a time); messages of one namespace run in order. Without a dead-letter port
//! (`dead_letters: None`) nothing is parked or paced: the queue's redrive policy alone decides.

pub mod poison;

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use futures::stream::{self, StreamExt};
use onboard_core::clock::Clock;
use onboard_core::engine::{EngineError, RunOutcome};
use onboard_core::lifecycle::service::Sagas;
use onboard_core::service::RunSagaMessage;
use onboard_core::store::SagaStore;
use onboard_lambda_common::saga_metrics::{report_run, ticket_id};
use onboard_lambda_common::{Emf, Metric};
use tracing::Instrument;

use crate::poison::{DeadLetters, PoisonPolicy};

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done (or nothing to do): delete the message.
    Done,
    /// Failed: leave it on the queue for a retry and, after the redrive policy's maximum
    /// receive count, the DLQ.
    Failed(String),
    /// Can never succeed (the saga does not exist, or no engine runs its kind): park it.
    Hopeless(String),
}

/// The worker: one engine per saga kind over the saga store, plus what it needs for logs and
/// metrics.
pub struct Worker {
    pub sagas: Sagas,
    pub store: Arc<dyn SagaStore>,
    pub clock: Arc<dyn Clock>,
    pub emf: Emf,
    /// Namespaces run at once within one batch.
    pub concurrency: usize,
    /// Where hopeless and repeatedly failing messages are parked ([`poison`]).
    pub dead_letters: Option<Arc<dyn DeadLetters>>,
    pub poison: PoisonPolicy,
}

/// One parsed message of the batch.
struct Item {
    message_id: String,
    message: RunSagaMessage,
    receipt_handle: Option<String>,
    /// `ApproximateReceiveCount`: 1 on the first delivery.
    receive_count: u32,
    body: String,
}

/// What became of one namespace's messages.
#[derive(Default)]
struct GroupResult {
    failed: Vec<String>,
    parked: usize,
}

impl Worker {
    /// Handle one SQS batch and say which messages failed.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut failed: Vec<String> = Vec::new();
        // Namespace groups in first-seen order, each in delivery order.
        let mut groups: Vec<(String, Vec<Item>)> = Vec::new();
        let mut rejected = 0.0;
        let mut parked = 0usize;
        for record in event.records {
            // Lambda treats an empty identifier as "the whole batch failed": the safe answer
            // for a message we cannot name (SQS always sends an id).
            let message_id = record.message_id.unwrap_or_default();
            let receive_count = record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1);
            let parsed = record
                .body
                .as_deref()
                .ok_or_else(|| "the message has no body".to_string())
                .and_then(|b| {
                    serde_json::from_str::<RunSagaMessage>(b)
                        .map_err(|e| format!("the body is not a saga message: {e}"))
                });
            match parsed {
                Ok(message) => {
                    let item = Item {
                        message_id,
                        message,
                        receipt_handle: record.receipt_handle.clone(),
                        receive_count,
                        body: record.body.clone().unwrap_or_default(),
                    };
                    match groups
                        .iter_mut()
                        .find(|(ns, _)| *ns == item.message.namespace)
                    {
                        Some((_, items)) => items.push(item),
                        None => groups.push((item.message.namespace.clone(), vec![item])),
                    }
                }
                Err(reason) => {
                    rejected += 1.0;
                    let body = record.body.as_deref().unwrap_or("");
                    tracing::error!(
                        message_id = %message_id,
                        reason = %reason,
                        body = truncate(body, 512),
                        "rejected an unreadable message"
                    );
                    if self.park(&message_id, "unreadable", body, &reason).await {
                        parked += 1;
                    } else {
                        failed.push(message_id);
                    }
                }
            }
        }
        let results: Vec<GroupResult> = stream::iter(groups)
            .map(|(_, items)| self.run_group(items))
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let retried: usize = results.iter().map(|r| r.failed.len()).sum();
        for r in results {
            parked += r.parked;
            failed.extend(r.failed);
        }
        let mut metrics = Vec::new();
        if parked > 0 {
            metrics.push(Metric::count("MessagesParked", parked as f64));
        }
        if rejected > 0.0 {
            metrics.push(Metric::count("MessagesRejected", rejected));
        }
        if retried > 0 {
            metrics.push(Metric::count("MessagesFailed", retried as f64));
        }
        self.emf.emit(&[], &metrics, &[]);
        let mut response = SqsBatchResponse::default();
        response.set_failures(failed);
        response
    }

    /// Run one namespace's messages in order; after a failure the rest are not attempted. A
    /// hopeless message, or one failing for the `max_receives`-th time, is parked and the rest
    /// go on; any other failure comes back after the policy's delay.
    async fn run_group(&self, items: Vec<Item>) -> GroupResult {
        let mut out = GroupResult::default();
        let mut blocked_by: Option<String> = None;
        for item in items {
            if let Some(first) = &blocked_by {
                tracing::warn!(
                    message_id = %item.message_id,
                    saga_id = %item.message.saga_id,
                    namespace = %item.message.namespace,
                    "not attempted: message {first} of the same namespace failed earlier in this \
                     batch (FIFO order); it will be redelivered"
                );
                self.pace(&item).await;
                out.failed.push(item.message_id);
                continue;
            }
            let span = tracing::info_span!(
                "saga",
                message_id = %item.message_id,
                saga_id = %item.message.saga_id,
                namespace = %item.message.namespace,
                action = ?item.message.action,
                kind = tracing::field::Empty,
                ticket_id = tracing::field::Empty,
            );
            let outcome = self
                .handle_message(&item.message)
                .instrument(span.clone())
                .await;
            let (reason, hopeless) = match outcome {
                Disposition::Done => continue,
                Disposition::Failed(reason) => (reason, false),
                Disposition::Hopeless(reason) => (reason, true),
            };
            span.in_scope(|| tracing::error!(reason = %reason, hopeless, "message failed"));
            let give_up = hopeless || item.receive_count >= self.poison.max_receives;
            if give_up {
                let why = if hopeless {
                    reason
                } else {
                    format!(
                        "failed {} deliveries, the last with: {reason}",
                        item.receive_count
                    )
                };
                let parked = self
                    .park(&item.message_id, &item.message.namespace, &item.body, &why)
                    .instrument(span)
                    .await;
                if parked {
                    out.parked += 1;
                    continue;
                }
            } else {
                self.pace(&item).await;
            }
            blocked_by = Some(item.message_id.clone());
            out.failed.push(item.message_id);
        }
        out
    }

    /// Park a message on the dead-letter queue; whether it was (without a port, never).
    async fn park(&self, message_id: &str, group: &str, body: &str, reason: &str) -> bool {
        let Some(dl) = &self.dead_letters else {
            return false;
        };
        match dl.park(message_id, group, body, reason).await {
            Ok(()) => {
                tracing::error!(
                    message_id,
                    reason,
                    "parked the message on the dead-letter queue (alarmed); its namespace goes on"
                );
                true
            }
            Err(e) => {
                tracing::error!(message_id, error = %e, "could not park the message; the queue's redrive policy will");
                false
            }
        }
    }

    /// Bring a failed message back after the policy's delay rather than the queue's 30-minute
    /// visibility timeout.
    async fn pace(&self, item: &Item) {
        let (Some(dl), Some(receipt)) = (&self.dead_letters, &item.receipt_handle) else {
            return;
        };
        let delay = self.poison.delay(item.receive_count);
        if let Err(e) = dl.retry_after(receipt, delay).await {
            tracing::warn!(message_id = %item.message_id, error = %e, "could not shorten the retry delay; the queue's visibility timeout applies");
        }
    }

    /// Run (or re-drive) the saga one message names.
    pub async fn handle_message(&self, message: &RunSagaMessage) -> Disposition {
        let before = match self.store.get(&message.saga_id).await {
            Ok(Some(record)) => record,
            Ok(None) => {
                return Disposition::Hopeless(format!(
                    "saga {} does not exist (the message outlived its saga, or names another \
                     deployment's saga)",
                    message.saga_id
                ))
            }
            Err(e) => return Disposition::Failed(format!("store failed: {e}")),
        };
        let span = tracing::Span::current();
        span.record("kind", before.kind.as_str());
        if let Some(t) = ticket_id(&before) {
            span.record("ticket_id", t);
        }
        let since = self.clock.now();
        match self.sagas.run(&before.kind, message).await {
            Ok(outcome) => {
                match &outcome {
                    RunOutcome::Finished(status) => {
                        tracing::info!(status = %status, "saga run finished")
                    }
                    RunOutcome::AlreadyFinished(status) => {
                        tracing::info!(status = %status, "saga already finished; nothing to do")
                    }
                    RunOutcome::Busy { owner, until } => tracing::info!(
                        owner = %owner,
                        lease_until = until,
                        "saga is held by another worker; nothing to do (the reconciler resumes \
                         it if that worker dies)"
                    ),
                }
                if matches!(outcome, RunOutcome::Finished(_)) {
                    match self.store.get(&message.saga_id).await {
                        Ok(Some(after)) => {
                            report_run(&self.emf, before.status, &after, since, &outcome)
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "could not re-read the saga for metrics")
                        }
                    }
                }
                Disposition::Done
            }
            Err(EngineError::LeaseLost(_)) => {
                tracing::warn!("lost the lease mid-run: another worker advanced the saga");
                Disposition::Done
            }
            Err(e @ EngineError::NotRedrivable { .. }) => {
                tracing::warn!(error = %e, "re-drive not needed");
                Disposition::Done
            }
            Err(e @ EngineError::Store(_)) => Disposition::Failed(e.to_string()),
            Err(
                e @ (EngineError::NotFound(_)
                | EngineError::KindMismatch { .. }
                | EngineError::UnknownStep { .. }),
            ) => Disposition::Hopeless(format!("{e}; retrying will not help")),
        }
    }
}

/// At most `max` bytes of `s`, cut on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
