//! The SQS worker: each message names a saga to run (or re-drive); the worker runs it on the
//! engine for the saga's kind (onboard, change, offboard, adopt — [`Sagas`], built once at init)
//! and answers with a partial batch response, so one bad message never fails its neighbours.
//!
//! Per message:
//!
//! | situation | reported | why |
//! |---|---|---|
//! | body is not a `RunSagaMessage` | failed, reason logged | the redrive policy moves it to the DLQ, where it can be inspected |
//! | saga unknown, or of a kind no engine runs | failed, reason logged | retrying will not help; the DLQ keeps it |
//! | saga finished, or leased by another worker | success (no-op) | redelivery must not fail the batch |
//! | lease lost mid-run, re-drive of a saga no longer ROLLBACK_FAILED / NEEDS_ATTENTION | success (no-op) | another worker owns it / nothing to re-drive |
//! | store failed | failed | SQS redelivers; the engine resumes from the record |
//! | an earlier message of the same namespace failed in this batch | failed, not attempted | keeps FIFO order within the namespace |
//!
//! Messages of different namespaces in one batch run concurrently (at most `concurrency`
//! namespaces at a time); messages of one namespace run in order.

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

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done (or nothing to do): delete the message.
    Done,
    /// Failed: leave it on the queue for a retry and, after the redrive policy's maximum
    /// receive count, the DLQ.
    Failed(String),
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
}

/// One parsed message of the batch.
struct Item {
    message_id: String,
    message: RunSagaMessage,
}

impl Worker {
    /// Handle one SQS batch and say which messages failed.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut failed: Vec<String> = Vec::new();
        // Namespace groups in first-seen order, each in delivery order.
        let mut groups: Vec<(String, Vec<Item>)> = Vec::new();
        let mut rejected = 0.0;
        for record in event.records {
            // Lambda treats an empty identifier as "the whole batch failed": the safe answer
            // for a message we cannot name (SQS always sends an id).
            let message_id = record.message_id.unwrap_or_default();
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
                    tracing::error!(
                        message_id = %message_id,
                        reason = %reason,
                        body = record.body.as_deref().map(|b| truncate(b, 512)).unwrap_or(""),
                        "rejected an unreadable message; the queue's DLQ keeps it"
                    );
                    failed.push(message_id);
                }
            }
        }
        let results: Vec<Vec<String>> = stream::iter(groups)
            .map(|(_, items)| self.run_group(items))
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let retried: usize = results.iter().map(Vec::len).sum();
        failed.extend(results.into_iter().flatten());
        let mut metrics = Vec::new();
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

    /// Run one namespace's messages in order; after a failure the rest are not attempted.
    async fn run_group(&self, items: Vec<Item>) -> Vec<String> {
        let mut failed = Vec::new();
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
                failed.push(item.message_id);
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
            if let Disposition::Failed(reason) = outcome {
                span.in_scope(|| tracing::error!(reason = %reason, "message failed"));
                blocked_by = Some(item.message_id.clone());
                failed.push(item.message_id);
            }
        }
        failed
    }

    /// Run (or re-drive) the saga one message names.
    pub async fn handle_message(&self, message: &RunSagaMessage) -> Disposition {
        let before = match self.store.get(&message.saga_id).await {
            Ok(Some(record)) => record,
            Ok(None) => {
                return Disposition::Failed(format!(
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
            ) => Disposition::Failed(format!("{e}; retrying will not help")),
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
