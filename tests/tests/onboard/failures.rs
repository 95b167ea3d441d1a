//! A terminal failure at each step, for each instance in turn, leaves the sandbox exactly as it
//! was (SLR policies and profiles included) and the saga ROLLED_BACK with the service's code.

use onboard_core::error::ErrorKind;
use onboard_core::record::{NodeState, SagaStatus};
use onboard_core::store::SagaStore;
use onboard_integration_tests::*;

struct Case {
    /// The step whose call fails.
    step: &'static str,
    op: &'static str,
    nth: u64,
    code: &'static str,
    status: u16,
    kind: ErrorKind,
}

const N: usize = SLR_INSTANCES;

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let n = N as u64;
    for k in 1..=n {
        cases.push(Case {
            step: "validate",
            op: "DescribeInstance",
            nth: k,
            code: "AccessDeniedException",
            status: 403,
            kind: ErrorKind::Denied,
        });
    }
    cases.push(Case {
        step: "validate",
        op: "ListApplications",
        nth: 1,
        code: "AccessDeniedException",
        status: 403,
        kind: ErrorKind::Denied,
    });
    cases.push(Case {
        step: "validate",
        op: "ListSecurityProfileApplications",
        nth: 3,
        code: "InvalidParameterException",
        status: 400,
        kind: ErrorKind::Invalid,
    });
    for (code, status, kind) in [
        ("AccessDeniedException", 403, ErrorKind::Denied),
        ("InvalidRequestException", 400, ErrorKind::Invalid),
        (
            "ResourceQuotaExceededException",
            429,
            ErrorKind::QuotaExceeded,
        ),
    ] {
        cases.push(Case {
            step: "create_application",
            op: "CreateApplication",
            nth: 1,
            code,
            status,
            kind,
        });
    }
    for k in 1..=n {
        // Even instances: denied (the pre-2023-12-15 case); odd: invalid request.
        let (code, status, kind) = if k % 2 == 0 {
            ("AccessDeniedException", 403, ErrorKind::Denied)
        } else {
            ("InvalidRequestException", 400, ErrorKind::Invalid)
        };
        cases.push(Case {
            step: "associate",
            op: "CreateIntegrationAssociation",
            nth: k,
            code,
            status,
            kind,
        });
        // Not AccessDenied: an IAM write refused so is retried while IAM propagates (see
        // retries::an_iam_write_denied_while_propagating_is_retried_not_rolled_back).
        let (code, status, kind) = ("MalformedPolicyDocument", 400, ErrorKind::Invalid);
        cases.push(Case {
            step: "grant_slr_policy",
            op: "PutRolePolicy",
            nth: k,
            code,
            status,
            kind,
        });
        let (code, status, kind) = if k % 2 == 0 {
            ("AccessDeniedException", 403, ErrorKind::Denied)
        } else {
            ("InvalidParameterException", 400, ErrorKind::Invalid)
        };
        cases.push(Case {
            step: "grant_security_profiles",
            op: "UpdateSecurityProfile",
            nth: k,
            code,
            status,
            kind,
        });
        // associate looks each association up once first; activate looks them up again.
        cases.push(Case {
            step: "activate",
            op: "ListIntegrationAssociations",
            nth: n + k,
            code: "AccessDeniedException",
            status: 403,
            kind: ErrorKind::Denied,
        });
    }
    cases
}

#[tokio::test]
async fn a_terminal_failure_at_each_step_and_instance_rolls_back_to_pristine() {
    let h = Harness::start().await;
    let pristine = h.dump();
    let spec = spec(&instances(N));
    for case in cases() {
        h.sandbox().reset().unwrap();
        assert_same(&pristine, &h.dump(), "reset");
        h.fault(fail_nth(case.op, case.nth, case.code, case.status));
        let rec = h.onboard(&spec).await;
        let what = format!(
            "{} #{} of {} failing with {}",
            case.op, case.nth, case.step, case.code
        );
        // validate changes nothing: its refusal ends REFUSED, with nothing to roll back.
        let expected = if case.step == "validate" {
            SagaStatus::Refused
        } else {
            SagaStatus::RolledBack
        };
        assert_eq!(rec.status, expected, "{what}: {:?}", node_states(&rec));
        assert_eq!(h.fired(), [(case.op.to_string(), 1)], "{what}");
        let cause = rec.cause.clone().unwrap();
        assert_eq!(
            (cause.kind, cause.code.as_str()),
            (case.kind, case.code),
            "{what}: the service's code is kept: {cause:?}"
        );
        let failed: Vec<&str> = rec
            .log
            .iter()
            .filter(|l| l.event == "failed")
            .map(|l| l.node.as_str())
            .collect();
        assert_eq!(failed.len(), 1, "{what}: {failed:?}");
        assert!(
            failed[0].starts_with(case.step),
            "{what}: the failure hit {}",
            failed[0]
        );
        if expected == SagaStatus::Refused {
            // Nothing started but the refusing preflight: nothing to undo.
            assert!(
                rec.nodes
                    .iter()
                    .all(|n| n.step == "validate" || n.state == NodeState::Pending),
                "{what}: nothing but validate ran: {:?}",
                node_states(&rec)
            );
        } else {
            assert!(
                rec.nodes
                    .iter()
                    .all(|n| matches!(n.state, NodeState::Undone | NodeState::Pending)),
                "{what}: every touched node undone: {:?}",
                node_states(&rec)
            );
        }
        assert!(rec.undo_error.is_none(), "{what}");
        assert_same(&pristine, &h.dump(), &what);
        assert_eq!(
            h.store.namespace_holder(NAMESPACE).await.unwrap(),
            None,
            "{what}"
        );
    }
}
