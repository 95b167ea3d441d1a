//! The reconciler: a scheduled sweep (EventBridge, e.g. every 5 minutes) that keeps every saga
//! moving when a worker could not:
//!
//! * a RUNNING or ROLLING_BACK saga whose lease expired (its worker timed out or crashed), and
//! * a PENDING saga that was recorded but never queued (`SubmitFailure::NotQueued`) or whose
//!   message was lost to the DLQ,
//!
//! are **re-enqueued** as a `run` message. The reconciler does not run sagas itself: the worker
//! is the one place sagas run, so per-namespace FIFO order, the worker's concurrency and Connect
//! rate limit, and the DLQ all still apply, and the reconciler stays a short, cheap Lambda that
//! never races a worker (a duplicate message is a no-op: the worker's engine takes the lease
//! with a conditional write, and a saga leased by someone else or already finished is skipped).
//! A PENDING saga younger than the grace period is left alone: its first message is most likely
//! in flight. On a FIFO queue a re-send within five minutes of the previous send of the same
//! saga is dropped by SQS deduplication; a later sweep sends it again.
//!
//! It also counts ROLLBACK_FAILED sagas (`SagasInRollbackFailed`, the operator's alarm metric)
//! and logs their ids. Safe to run concurrently with workers and with itself.

use std::sync::Arc;
use std::time::Duration;

use onboard_core::clock::Clock;
use onboard_core::record::SagaStatus;
use onboard_core::service::{RunAction, RunSagaMessage, SagaQueue};
use onboard_core::store::{SagaStore, StoreError};
use onboard_lambda_common::{Emf, Metric};
use serde::Serialize;

/// Settings of one sweep.
#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// At most this many stalled sagas are re-queued per sweep (the rest wait for the next).
    pub limit: usize,
    /// A PENDING saga younger than this is not re-queued.
    pub pending_grace: Duration,
    /// At most this many ROLLBACK_FAILED sagas are counted (pages of 100).
    pub rollback_failed_scan: usize,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        ReconcilerConfig {
            limit: 100,
            pending_grace: Duration::from_secs(120),
            rollback_failed_scan: 1000,
        }
    }
}

/// What a sweep did (also the Lambda's response).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Runnable sagas without a live lease.
    pub stalled: usize,
    /// Of those, re-queued.
    pub requeued: usize,
    /// Of those, PENDING and younger than the grace period.
    pub too_recent: usize,
    /// Of those, the queue refused (retried on the next sweep).
    pub requeue_failed: usize,
    /// ROLLBACK_FAILED sagas found (capped by `rollback_failed_scan`).
    pub rollback_failed: usize,
}

/// One sweep's dependencies.
pub struct Reconciler {
    pub store: Arc<dyn SagaStore>,
    pub queue: Arc<dyn SagaQueue>,
    pub clock: Arc<dyn Clock>,
    pub emf: Emf,
    pub config: ReconcilerConfig,
}

impl Reconciler {
    /// Re-queue stalled sagas and count ROLLBACK_FAILED ones. Fails only when the store does.
    pub async fn sweep(&self) -> Result<Report, StoreError> {
        let now = self.clock.now();
        let grace = self.config.pending_grace.as_millis() as u64;
        let stalled = self.store.list_stalled(now, self.config.limit).await?;
        let mut report = Report {
            stalled: stalled.len(),
            ..Report::default()
        };
        for record in stalled {
            let span = tracing::info_span!(
                "saga",
                saga_id = %record.id,
                namespace = %record.namespace,
                status = %record.status,
            );
            let _enter = span.enter();
            if record.status == SagaStatus::Pending && now.saturating_sub(record.updated_at) < grace
            {
                report.too_recent += 1;
                continue;
            }
            let message = RunSagaMessage {
                saga_id: record.id.clone(),
                namespace: record.namespace.clone(),
                action: RunAction::Run,
            };
            match self.queue.enqueue(&message).await {
                Ok(()) => {
                    report.requeued += 1;
                    tracing::info!(
                        lease_expired_at = record.lease_expires_at(),
                        "re-queued a stalled saga"
                    );
                }
                Err(e) => {
                    report.requeue_failed += 1;
                    tracing::error!(error = %e, "could not re-queue a stalled saga; next sweep retries");
                }
            }
        }
        report.rollback_failed = self.count_rollback_failed().await?;
        self.emf.emit(
            &[],
            &[
                Metric::count("StalledSagas", report.stalled as f64),
                Metric::count("SagasRequeued", report.requeued as f64),
                Metric::count("RequeueFailures", report.requeue_failed as f64),
                Metric::count("SagasInRollbackFailed", report.rollback_failed as f64),
            ],
            &[],
        );
        tracing::info!(
            stalled = report.stalled,
            requeued = report.requeued,
            too_recent = report.too_recent,
            requeue_failed = report.requeue_failed,
            rollback_failed = report.rollback_failed,
            "reconciler sweep done"
        );
        Ok(report)
    }

    async fn count_rollback_failed(&self) -> Result<usize, StoreError> {
        let mut count = 0;
        let mut cursor = None;
        while count < self.config.rollback_failed_scan {
            let page = self
                .store
                .list_by_status(SagaStatus::RollbackFailed, 100, cursor)
                .await?;
            for r in &page.items {
                tracing::warn!(
                    saga_id = %r.id,
                    namespace = %r.namespace,
                    error = r.undo_error.as_ref().map(|e| e.to_string()).unwrap_or_default(),
                    "saga is ROLLBACK_FAILED: fix the cause and re-drive it"
                );
            }
            count += page.items.len();
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        Ok(count)
    }
}
