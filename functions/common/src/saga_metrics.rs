//! The saga metrics, derived from the saga record after a worker run (the record is the truth,
//! so the engine needs no metrics hook):
//!
//! | metric | unit | dimensions | when |
//! |---|---|---|---|
//! | `SagasStarted` | Count | Function | the run took a PENDING saga |
//! | `SagasSucceeded` / `SagasRolledBack` / `SagasRefused` / `SagasRollbackFailed` / `SagasNeedsAttention` | Count | Function | the run ended the saga in that status (`SagasRefused`: preflight refused it, nothing was changed — not a rollback) |
//! | `Retries` | Count | Function | retries (and undo retries) logged during the run |
//! | `StepLatency` | Milliseconds | Function, Step | per node finished during the run: first start → finish |
//! | `StepRetries` | Count | Function, Step | retries of that step during the run |
//!
//! Every document carries the saga's `sagaId`, `namespace`, `kind` (onboard, change, offboard,
//! adopt) and `ticketId` as properties. `SagasRollbackFailed` and `SagasNeedsAttention` (an
//! offboard that stopped part-way) are the alarm metrics: any value > 0 needs an operator.

use std::collections::BTreeMap;

use onboard_core::engine::RunOutcome;
use onboard_core::record::{Millis, NodeState, SagaRecord, SagaStatus};
use serde_json::Value;

use crate::emf::{Emf, Metric};

/// The ticket id a saga was submitted under, if any (for logs and metric properties).
pub fn ticket_id(record: &SagaRecord) -> Option<&str> {
    record
        .input
        .get("requester")
        .and_then(|r| r.get("ticketId"))
        .and_then(Value::as_str)
}

/// The metric name for a saga reaching `status`, if it is an end status. Exhaustive, so a
/// new status cannot silently go uncounted.
pub fn finished_metric(status: SagaStatus) -> Option<&'static str> {
    match status {
        SagaStatus::Succeeded => Some("SagasSucceeded"),
        SagaStatus::RolledBack => Some("SagasRolledBack"),
        SagaStatus::Refused => Some("SagasRefused"),
        SagaStatus::RollbackFailed => Some("SagasRollbackFailed"),
        SagaStatus::NeedsAttention => Some("SagasNeedsAttention"),
        SagaStatus::Pending | SagaStatus::Running | SagaStatus::RollingBack => None,
    }
}

/// Emit the metrics of one run that started at `since` (engine clock), found the saga in
/// `before` and left it as `after`.
pub fn report_run(
    emf: &Emf,
    before: SagaStatus,
    after: &SagaRecord,
    since: Millis,
    outcome: &RunOutcome,
) {
    let props = [
        ("sagaId", Value::from(after.id.as_str())),
        ("namespace", Value::from(after.namespace.as_str())),
        ("kind", Value::from(after.kind.as_str())),
        (
            "ticketId",
            ticket_id(after).map_or(Value::Null, Value::from),
        ),
    ];
    let mut saga = Vec::new();
    if before == SagaStatus::Pending && after.status != SagaStatus::Pending {
        saga.push(Metric::count("SagasStarted", 1.0));
    }
    if let RunOutcome::Finished(status) = outcome {
        if let Some(name) = finished_metric(*status) {
            saga.push(Metric::count(name, 1.0));
        }
    }
    // Retries are logged as the next attempt's start with a `retry …` detail.
    let mut retries_per_step: BTreeMap<&str, f64> = BTreeMap::new();
    let mut retries = 0.0;
    for entry in after.log.iter().filter(|e| e.at >= since) {
        if entry
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("retry "))
        {
            retries += 1.0;
            let step = entry.node.split('[').next().unwrap_or(&entry.node);
            *retries_per_step.entry(step).or_default() += 1.0;
        }
    }
    if retries > 0.0 {
        saga.push(Metric::count("Retries", retries));
    }
    emf.emit(&[], &saga, &props);

    let mut latencies: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for n in &after.nodes {
        let forward_end = matches!(n.state, NodeState::Succeeded | NodeState::Failed);
        if let (true, Some(start), Some(end)) = (forward_end, n.started_at, n.finished_at) {
            if end >= since {
                latencies
                    .entry(n.step.as_str())
                    .or_default()
                    .push(end.saturating_sub(start) as f64);
            }
        }
    }
    let steps: std::collections::BTreeSet<&str> = latencies
        .keys()
        .chain(retries_per_step.keys())
        .copied()
        .collect();
    for step in steps {
        let mut metrics = Vec::new();
        if let Some(values) = latencies.remove(step) {
            metrics.push(Metric::millis("StepLatency", values));
        }
        if let Some(n) = retries_per_step.get(step) {
            metrics.push(Metric::count("StepRetries", *n));
        }
        emf.emit(&[("Step", step)], &metrics, &props);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use onboard_core::record::{LogEntry, NodeRecord};
    use serde_json::json;

    use super::*;

    fn node(
        step: &str,
        target: Option<&str>,
        state: NodeState,
        start: u64,
        end: u64,
    ) -> NodeRecord {
        NodeRecord {
            step: step.into(),
            target: target.map(str::to_string),
            state,
            attempts: 1,
            undo_attempts: 0,
            output: None,
            error: None,
            undo_error: None,
            started_at: Some(start),
            finished_at: Some(end),
        }
    }

    fn log(at: u64, node: &str, detail: Option<&str>) -> LogEntry {
        LogEntry {
            at,
            node: node.into(),
            event: "started".into(),
            detail: detail.map(str::to_string),
            owner: "w".into(),
        }
    }

    #[test]
    fn a_run_reports_start_end_latency_and_retries() {
        let record = SagaRecord {
            id: "sg-1".into(),
            kind: "onboard".into(),
            namespace: "crm.example.com".into(),
            status: SagaStatus::Succeeded,
            version: 9,
            lease: None,
            input: json!({"requester": {"ticketId": "CHG1"}}),
            targets: vec!["i-a".into(), "i-b".into()],
            nodes: vec![
                node("validate", None, NodeState::Succeeded, 50, 60),
                node("associate", Some("i-a"), NodeState::Succeeded, 100, 300),
                node("associate", Some("i-b"), NodeState::Succeeded, 100, 250),
            ],
            log: vec![
                log(40, "validate", Some("retry 1 after X: y")),
                log(
                    150,
                    "associate[i-a]",
                    Some("retry 1 after ThrottlingException: z"),
                ),
                log(160, "associate[i-a]", None),
            ],
            cause: None,
            undo_error: None,
            idempotency_key: None,
            payload_hash: None,
            managed: None,
            drift: None,
            drift_failure: None,
            parent: None,
            created_at: 1,
            updated_at: 300,
        };
        let emf = Emf::capture("worker");
        report_run(
            &emf,
            SagaStatus::Pending,
            &record,
            45,
            &RunOutcome::Finished(SagaStatus::Succeeded),
        );
        assert_eq!(emf.total("SagasStarted"), 1.0);
        assert_eq!(emf.total("SagasSucceeded"), 1.0);
        assert_eq!(emf.total("SagasRolledBack"), 0.0);
        assert_eq!(
            emf.total("Retries"),
            1.0,
            "the retry before the run is not counted"
        );
        assert_eq!(emf.total("StepRetries"), 1.0);
        assert_eq!(emf.total("StepLatency"), 10.0 + 200.0 + 150.0);
        let docs = emf.documents();
        assert!(docs
            .iter()
            .all(|d| d["ticketId"] == "CHG1" && d["sagaId"] == "sg-1" && d["kind"] == "onboard"));
        let assoc = docs.iter().find(|d| d["Step"] == "associate").unwrap();
        assert_eq!(assoc["StepLatency"], json!([200.0, 150.0]));
    }

    #[test]
    fn a_refusal_is_counted_as_refused_not_as_a_rollback() {
        assert_eq!(finished_metric(SagaStatus::Refused), Some("SagasRefused"));
        let emf = Emf::capture("worker");
        let record = SagaRecord {
            id: "sg-2".into(),
            kind: "onboard".into(),
            namespace: "crm.example.com".into(),
            status: SagaStatus::Refused,
            version: 4,
            lease: None,
            input: json!({}),
            targets: vec!["i-a".into()],
            nodes: vec![
                node("validate", None, NodeState::Failed, 10, 20),
                NodeRecord {
                    state: NodeState::Pending,
                    attempts: 0,
                    started_at: None,
                    finished_at: None,
                    ..node("create_application", None, NodeState::Pending, 0, 0)
                },
            ],
            log: Vec::new(),
            cause: None,
            undo_error: None,
            idempotency_key: None,
            payload_hash: None,
            managed: None,
            drift: None,
            drift_failure: None,
            parent: None,
            created_at: 1,
            updated_at: 20,
        };
        report_run(
            &emf,
            SagaStatus::Pending,
            &record,
            0,
            &RunOutcome::Finished(SagaStatus::Refused),
        );
        assert_eq!(emf.total("SagasRefused"), 1.0);
        assert_eq!(emf.total("SagasRolledBack"), 0.0);
        assert_eq!(emf.total("SagasStarted"), 1.0);
    }

    #[test]
    fn needs_attention_is_reported_like_rollback_failed() {
        assert_eq!(
            finished_metric(SagaStatus::NeedsAttention),
            Some("SagasNeedsAttention")
        );
        assert_eq!(
            finished_metric(SagaStatus::RollbackFailed),
            Some("SagasRollbackFailed")
        );
        for s in [
            SagaStatus::Pending,
            SagaStatus::Running,
            SagaStatus::RollingBack,
        ] {
            assert_eq!(finished_metric(s), None, "{s} is not an end status");
        }
    }
}
