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
//! in flight. On a FIFO queue every re-send carries a deduplication id of its own (the first
//! send's plus the minute, `onboard_aws::sqs_queue::resend_deduplication_id`): SQS drops a
//! message whose id it saw in the last five minutes, so a re-send under the first send's id
//! would be lost whenever a saga stalls soon after it was queued (a short lease, a message the
//! worker parked as poison).
//!
//! Stalled sagas of every kind (onboard, change, offboard, adopt) are re-queued the same way:
//! the message names only the saga, and the worker picks the engine from the record's kind.
//!
//! It also counts ROLLBACK_FAILED and NEEDS_ATTENTION sagas (`SagasInRollbackFailed`,
//! `SagasInNeedsAttention`, the operator's alarm metrics) and logs their ids.
//!
//! **Drift** (when configured, `DRIFT_CHECK=true`): it compares managed applications (the
//! SUCCEEDED onboard and adopt sagas whose application was not offboarded) with AWS, records each
//! report in the application's root record (`GET /applications/{id}/drift`), logs every drifted
//! application with its differences and emits `ApplicationsDrifted`. The checks are read-only,
//! bounded per sweep (`drift_check_limit` applications, the least recently checked first, and
//! no new check after `drift_budget`) so the Lambda stays within its timeout, and skipped for an
//! application a lifecycle saga is changing (its state is in flux). Fixing is an operator's
//! decision (`POST /applications/{id}/drift/fix`, `onboard drift ID --fix`).
//!
//! Safe to run concurrently with workers and with itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use onboard_core::clock::Clock;
use onboard_core::idempotency::IdempotencyConfig;
use onboard_core::lifecycle::service::Lifecycle;
use onboard_core::lifecycle::{adopt, current_state, LifecyclePorts};
use onboard_core::onboard;
use onboard_core::record::{Millis, SagaStatus};
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
    /// At most this many ROLLBACK_FAILED (and NEEDS_ATTENTION) sagas are counted (pages of 100).
    pub rollback_failed_scan: usize,
    /// At most this many applications are checked for drift per sweep.
    pub drift_check_limit: usize,
    /// No new drift check starts once the sweep has run this long.
    pub drift_budget: Duration,
    /// At most this many SUCCEEDED records are read to pick the applications to check.
    pub drift_scan: usize,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        ReconcilerConfig {
            limit: 100,
            pending_grace: Duration::from_secs(120),
            rollback_failed_scan: 1000,
            drift_check_limit: 10,
            drift_budget: Duration::from_secs(120),
            drift_scan: 5000,
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
    /// NEEDS_ATTENTION sagas found (capped by `rollback_failed_scan`).
    pub needs_attention: usize,
    /// Applications compared with AWS in this sweep.
    pub drift_checked: usize,
    /// Of those, with at least one difference.
    pub drifted: usize,
    /// Drift checks that failed (an AWS or store error); tried again on a later sweep.
    pub drift_check_failed: usize,
    /// Applications not checked because a lifecycle saga is changing them.
    pub drift_skipped_busy: usize,
}

/// One sweep's dependencies.
pub struct Reconciler {
    pub store: Arc<dyn SagaStore>,
    pub queue: Arc<dyn SagaQueue>,
    pub clock: Arc<dyn Clock>,
    pub emf: Emf,
    pub config: ReconcilerConfig,
    /// The AWS ports drift checks read through; `None` turns drift checking off.
    pub drift: Option<Arc<LifecyclePorts>>,
}

impl Reconciler {
    /// Re-queue stalled sagas, count ROLLBACK_FAILED and NEEDS_ATTENTION ones, check drift.
    /// Fails only when the store does while re-queueing or counting (a failed drift check is
    /// counted and retried on a later sweep).
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
        report.rollback_failed = self.count_stopped(SagaStatus::RollbackFailed).await?;
        report.needs_attention = self.count_stopped(SagaStatus::NeedsAttention).await?;
        let mut metrics = vec![
            Metric::count("StalledSagas", report.stalled as f64),
            Metric::count("SagasRequeued", report.requeued as f64),
            Metric::count("RequeueFailures", report.requeue_failed as f64),
            Metric::count("SagasInRollbackFailed", report.rollback_failed as f64),
            Metric::count("SagasInNeedsAttention", report.needs_attention as f64),
        ];
        if let Some(ports) = &self.drift {
            self.check_drift(ports, now, &mut report).await;
            metrics.extend([
                Metric::count("DriftChecks", report.drift_checked as f64),
                Metric::count("ApplicationsDrifted", report.drifted as f64),
                Metric::count("DriftCheckFailures", report.drift_check_failed as f64),
            ]);
        }
        self.emf.emit(&[], &metrics, &[]);
        tracing::info!(
            stalled = report.stalled,
            requeued = report.requeued,
            too_recent = report.too_recent,
            requeue_failed = report.requeue_failed,
            rollback_failed = report.rollback_failed,
            needs_attention = report.needs_attention,
            drift_checked = report.drift_checked,
            drifted = report.drifted,
            drift_check_failed = report.drift_check_failed,
            drift_skipped_busy = report.drift_skipped_busy,
            "reconciler sweep done"
        );
        Ok(report)
    }

    /// Count (and log) the sagas stopped in `status` until an operator re-drives them.
    async fn count_stopped(&self, status: SagaStatus) -> Result<usize, StoreError> {
        let mut count = 0;
        let mut cursor = None;
        while count < self.config.rollback_failed_scan {
            let page = self.store.list_by_status(status, 100, cursor).await?;
            for r in &page.items {
                let error = r.undo_error.as_ref().or(r.cause.as_ref());
                tracing::warn!(
                    saga_id = %r.id,
                    kind = %r.kind,
                    namespace = %r.namespace,
                    error = error.map(|e| e.to_string()).unwrap_or_default(),
                    "saga is {status}: fix the cause and re-drive it"
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

    /// The managed applications to check now: root records with a current state, the least
    /// recently attempted first (never checked = oldest; a failed check counts as an attempt,
    /// so one failing application cannot take the first slot of every sweep), at most
    /// `drift_check_limit`.
    async fn drift_candidates(&self) -> Result<Vec<(Millis, String, String)>, StoreError> {
        let mut found = Vec::new();
        let mut read = 0;
        let mut cursor = None;
        while read < self.config.drift_scan {
            let page = self
                .store
                .list_by_status(SagaStatus::Succeeded, 100, cursor)
                .await?;
            read += page.items.len();
            for r in page.items {
                let root = r.kind == onboard::KIND || r.kind == adopt::KIND;
                if root && current_state(&r).is_ok() {
                    found.push((r.drift_attempted_at(), r.id, r.namespace));
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        found.sort();
        found.truncate(self.config.drift_check_limit);
        Ok(found)
    }

    /// Compare the least recently checked applications with AWS and record what differs.
    async fn check_drift(&self, ports: &LifecyclePorts, started: Millis, report: &mut Report) {
        let candidates = match self.drift_candidates().await {
            Ok(c) => c,
            Err(e) => {
                report.drift_check_failed += 1;
                tracing::error!(error = %e, "could not list applications for drift checks; next sweep retries");
                return;
            }
        };
        let lifecycle = Lifecycle {
            store: self.store.clone(),
            clock: self.clock.clone(),
            queue: self.queue.clone(),
            idempotency: IdempotencyConfig::default(),
        };
        let budget = self.config.drift_budget.as_millis() as u64;
        // One namespace lookup per namespace, in case several roots share one.
        let mut holders: HashMap<String, Option<String>> = HashMap::new();
        for (_, id, namespace) in candidates {
            if self.clock.now().saturating_sub(started) >= budget {
                tracing::info!(
                    "drift budget used up; the remaining applications wait for the next sweep"
                );
                break;
            }
            let span = tracing::info_span!("application", saga_id = %id, namespace = %namespace);
            let _enter = span.enter();
            let holder = match holders.get(&namespace) {
                Some(h) => h.clone(),
                None => match self.store.namespace_holder(&namespace).await {
                    Ok(h) => {
                        holders.insert(namespace.clone(), h.clone());
                        h
                    }
                    Err(e) => {
                        report.drift_check_failed += 1;
                        tracing::error!(error = %e, "could not check whether the application is being changed");
                        continue;
                    }
                },
            };
            if let Some(holder) = holder {
                report.drift_skipped_busy += 1;
                tracing::info!(holder = %holder, "not checked for drift: saga {holder} is changing it");
                continue;
            }
            match lifecycle.check_drift(ports, &id).await {
                Ok(found) => {
                    report.drift_checked += 1;
                    if found.drifted() {
                        report.drifted += 1;
                        let items: Vec<String> = found
                            .items
                            .iter()
                            .map(|i| match &i.instance {
                                Some(inst) => format!("{:?} on {inst}: {}", i.kind, i.detail),
                                None => format!("{:?}: {}", i.kind, i.detail),
                            })
                            .collect();
                        tracing::warn!(
                            items = ?items,
                            fixable = found.fixable(),
                            "application drifted from its managed state: review it and fix it \
                             (POST /applications/{id}/drift/fix or `onboard drift {id} --fix`)"
                        );
                    }
                }
                Err(e) => {
                    report.drift_check_failed += 1;
                    tracing::error!(error = %e, "drift check failed; a later sweep retries");
                }
            }
        }
    }
}
