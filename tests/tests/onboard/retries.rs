//! Retryable failures (throttling, 5xx, a response lost after the change was applied) at each
//! step: the saga succeeds without rollback and without duplicates.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use onboard_core::record::{NodeState, SagaStatus};
use onboard_integration_tests::*;
use onboard_sandbox::{Rate, ServiceRates, ThrottleConfig};

const N: usize = SLR_INSTANCES;

/// The calls each step makes, with the ordinal (counted from the saga's start) of one that
/// falls inside that step when the saga runs on `N` instances with one profile each.
fn calls_by_step() -> Vec<(&'static str, Vec<(&'static str, u64)>)> {
    let n = N as u64;
    vec![
        (
            "validate",
            vec![
                ("DescribeInstance", 2),
                ("ListRolePolicies", 2),
                ("GetRolePolicy", 2),
                ("ListApplications", 1),
                ("ListSecurityProfileApplications", 2),
            ],
        ),
        (
            "create_application",
            vec![("ListApplications", 2), ("CreateApplication", 1)],
        ),
        (
            "associate",
            vec![
                ("ListIntegrationAssociations", 2),
                ("CreateIntegrationAssociation", 2),
            ],
        ),
        (
            // validate reads each role's inline policies once (one existing policy each).
            "grant_slr_policy",
            vec![
                ("GetRolePolicy", n + 2),
                ("ListRolePolicies", n + 2),
                ("PutRolePolicy", 2),
            ],
        ),
        (
            "grant_security_profiles",
            vec![
                ("ListSecurityProfileApplications", n + 2),
                ("UpdateSecurityProfile", 2),
            ],
        ),
        ("activate", vec![("ListIntegrationAssociations", n + 2)]),
    ]
}

fn assert_clean_success(rec: &onboard_core::record::SagaRecord, what: &str) {
    assert_eq!(
        rec.status,
        SagaStatus::Succeeded,
        "{what}: {:?} {:?}",
        rec.cause,
        node_states(rec)
    );
    assert!(rec.cause.is_none(), "{what}");
    assert!(
        rec.nodes.iter().all(|n| n.state == NodeState::Succeeded),
        "{what}"
    );
    assert!(
        !rec.log.iter().any(|l| l.event.starts_with("undo")),
        "{what}: no undo ran"
    );
}

#[tokio::test]
async fn throttling_and_server_errors_at_each_step_are_retried_without_rollback() {
    let h = Harness::start().await;
    let pristine = h.dump();
    let spec = spec(&instances(N));
    for (step, calls) in calls_by_step() {
        for (label, error_for) in [
            (
                "throttling",
                throttling_for as fn(&str) -> (&'static str, u16),
            ),
            ("5xx", server_error_for),
        ] {
            h.sandbox().reset().unwrap();
            let mut codes = Vec::new();
            for (op, nth) in &calls {
                let (code, status) = error_for(op);
                codes.push(code);
                h.fault(fail_nth(op, *nth, code, status));
            }
            let rec = h.onboard(&spec).await;
            let what = format!("{label} in {step}");
            assert_clean_success(&rec, &what);
            for (op, fired) in h.fired() {
                assert_eq!(fired, 1, "{what}: the fault on {op} fired");
            }
            let retried = retries(&rec);
            assert_eq!(retried.len(), calls.len(), "{what}: {retried:?}");
            for code in codes {
                assert!(
                    retried.iter().any(|r| r.contains(code)),
                    "{what}: a retry after {code}: {retried:?}"
                );
            }
            let step_of_retry: Vec<&str> = rec
                .log
                .iter()
                .filter(|l| l.detail.as_deref().is_some_and(|d| d.starts_with("retry")))
                .map(|l| l.node.as_str())
                .collect();
            assert!(
                step_of_retry.iter().all(|n| n.starts_with(step)),
                "{what}: the retries were in {step}: {step_of_retry:?}"
            );
            assert_onboarded(&pristine, &h.dump(), &spec);
        }
    }
}

/// The sandbox's token buckets throttle for real (Connect's 2/s, burst 5 per API) and the
/// client-side limit is off: the SDK's own retries (honouring `x-amz-retry-after`) and the
/// engine's backoff absorb it.
#[tokio::test]
async fn connect_throttling_is_absorbed_by_retries() {
    let h = Harness::with(Options {
        throttle: ThrottleConfig {
            connect: ServiceRates {
                default: Some(Rate::new(2.0, 5)),
                ..ServiceRates::default()
            },
            ..ThrottleConfig::unlimited()
        },
        connect_rate: rate(1000, 1000),
        // Production's SDK retry mode (standard, 3 attempts); `x-amz-retry-after` is only
        // honoured up to max_backoff, so that keeps its default.
        sdk_retry: RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(10)),
        step_retry: test_retry(50),
        ..Options::default()
    })
    .await;
    let pristine = h.dump();
    let spec = spec(&instances(N));
    let rec = h.onboard(&spec).await;
    assert_clean_success(&rec, "throttled run");
    let throttled = h
        .sandbox()
        .calls()
        .iter()
        .filter(|c| c.note.as_deref() == Some("throttled"))
        .count();
    assert!(throttled > 0, "the sandbox really throttled");
    assert!(retries(&rec)
        .iter()
        .all(|r| r.contains("ThrottlingException")));
    assert_onboarded(&pristine, &h.dump(), &spec);
}

fn short_sdk_retry() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(5))
        .with_max_backoff(Duration::from_millis(20))
}

/// With the client-side limiter below Connect's quota, a bulk run is never throttled.
#[tokio::test]
async fn the_client_side_rate_limit_keeps_a_bulk_run_under_the_quota() {
    let quota = ThrottleConfig {
        connect: ServiceRates {
            default: Some(Rate::new(20.0, 5)),
            ..ServiceRates::default()
        },
        ..ThrottleConfig::unlimited()
    };
    let h = Harness::with(Options {
        throttle: quota,
        // Well under the quota so loopback jitter can never bunch calls into a throttle.
        connect_rate: rate(10, 2),
        ..Options::default()
    })
    .await;
    let pristine = h.dump();
    let spec = spec(&instances(N));
    let rec = h.onboard(&spec).await;
    assert_clean_success(&rec, "rate-limited run");
    let calls = h.sandbox().calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.note.as_deref() == Some("throttled"))
            .count(),
        0,
        "{calls:?}"
    );
    assert!(retries(&rec).is_empty());
    assert_onboarded(&pristine, &h.dump(), &spec);
}

const MUTATING: [(&str, u64); 4] = [
    ("CreateApplication", 1),
    ("CreateIntegrationAssociation", 2),
    ("PutRolePolicy", 2),
    ("UpdateSecurityProfile", 2),
];

async fn apply_then_drop_succeeds(sdk_retry: RetryConfig, label: &str) {
    let h = Harness::with(Options {
        sdk_retry,
        ..Options::default()
    })
    .await;
    let pristine = h.dump();
    let spec = spec(&instances(N));
    for (op, nth) in MUTATING {
        h.sandbox().reset().unwrap();
        h.fault(apply_then_drop(op, nth, None));
        let rec = h.onboard(&spec).await;
        let what = format!("{label}: {op} #{nth} applied, response lost");
        assert_clean_success(&rec, &what);
        assert_eq!(h.fired(), [(op.to_string(), 1)], "{what}");
        // strip_onboarding fails on a duplicate application, association, statement or entry.
        assert_onboarded(&pristine, &h.dump(), &spec);
        // The engine adopts instead of creating again; the SDK replays with the same ClientToken.
        let replayed = op == "CreateApplication" && label == "sdk retries";
        let creates = if replayed { 2 } else { 1 };
        assert_eq!(h.calls_named("CreateApplication"), creates, "{what}");
    }
}

#[tokio::test]
async fn a_lost_response_at_each_mutating_call_is_adopted_by_the_engine_retry() {
    apply_then_drop_succeeds(RetryConfig::disabled(), "engine retries").await;
}

#[tokio::test]
async fn a_lost_response_at_each_mutating_call_is_adopted_after_sdk_retries() {
    apply_then_drop_succeeds(short_sdk_retry(), "sdk retries").await;
}

/// The change lands but the caller sees a terminal error: the undo finds it by its identity
/// and removes it.
#[tokio::test]
async fn a_terminal_error_after_an_applied_change_rolls_back_to_pristine() {
    let h = Harness::start().await;
    let pristine = h.dump();
    let spec = spec(&instances(N));
    for (op, nth) in MUTATING {
        h.sandbox().reset().unwrap();
        // IAM's AccessDenied on a write is retried while IAM propagates; a malformed policy
        // is terminal.
        let error = match op {
            "PutRolePolicy" => ("MalformedPolicyDocument", 400),
            _ => ("AccessDeniedException", 403),
        };
        h.fault(apply_then_drop(op, nth, Some(error)));
        let rec = h.onboard(&spec).await;
        let what = format!("{op} #{nth} applied, answered {}", error.0);
        assert_eq!(
            rec.status,
            SagaStatus::RolledBack,
            "{what}: {:?}",
            node_states(&rec)
        );
        assert_eq!(rec.cause.as_ref().unwrap().code, error.0, "{what}");
        assert_same(&pristine, &h.dump(), &what);
    }
}

/// Responses lost during the rollback's own deletes: the undos are idempotent.
#[tokio::test]
async fn lost_responses_during_rollback_still_end_pristine() {
    let h = Harness::start().await;
    let pristine = h.dump();
    let spec = spec(&instances(2));
    // activate's first lookup (after associate's two) fails: everything is rolled back.
    h.fault(fail_nth(
        "ListIntegrationAssociations",
        3,
        "AccessDeniedException",
        403,
    ));
    for op in [
        "UpdateSecurityProfile",
        "DeleteRolePolicy",
        "DeleteIntegrationAssociation",
        "DeleteApplication",
    ] {
        let nth = if op == "UpdateSecurityProfile" { 3 } else { 1 };
        h.fault(apply_then_drop(op, nth, None));
    }
    let rec = h.onboard(&spec).await;
    assert_eq!(
        rec.status,
        SagaStatus::RolledBack,
        "{:?} {:?}",
        rec.undo_error,
        node_states(&rec)
    );
    for (op, fired) in h.fired() {
        assert_eq!(fired, 1, "the fault on {op} fired");
    }
    assert!(!retries(&rec).is_empty());
    assert_same(&pristine, &h.dump(), "rolled back through lost responses");
}

/// Issue 15: right after a role or policy change IAM can answer AccessDenied or NoSuchEntity
/// for seconds. Such an answer to an SLR policy write used to be terminal and rolled back a
/// saga that would have succeeded; it is now retried with growing waits (bounded), so the
/// onboarding succeeds.
#[tokio::test]
async fn an_iam_write_denied_while_propagating_is_retried_not_rolled_back() {
    let h = Harness::start().await;
    let pristine = h.dump();
    let spec = spec(&instances(2));
    h.fault(fail_nth("PutRolePolicy", 1, "AccessDenied", 403));
    h.fault(fail_nth("PutRolePolicy", 2, "NoSuchEntity", 404));
    let rec = h.onboard(&spec).await;
    assert_clean_success(&rec, "IAM refusals while propagating");
    let fired: Vec<String> = h.fired().into_iter().map(|(op, _)| op).collect();
    assert_eq!(fired, ["PutRolePolicy", "PutRolePolicy"]);
    assert_onboarded(&pristine, &h.dump(), &spec);
}
