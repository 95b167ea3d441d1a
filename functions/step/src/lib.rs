//! `onboard-step`: the task handler of the Step Functions state machine exported from the saga
//! definitions (`infra/statemachine/sagas.asl.json`, `onboard_core::asl`). Each invocation
//! names a saga kind and runs exactly one node, or begins / finishes a saga, or tells the
//! router a saga's kind, through [`onboard_core::engine_step::StepRunners`],
//! and fails with the ASL error name the state machine's Retry and Catch expect
//! (`Saga.Retryable`, `Saga.Terminal`, `Saga.LeaseLost`, `Saga.Invalid`).

use lambda_runtime::Diagnostic;
use onboard_core::asl;
use onboard_core::engine_step::{RunsSteps, StepRequest};
use serde_json::Value;

/// Handle one Task payload: the node's output (or `begin`'s answer), or a named error.
pub async fn handle<R>(runner: &R, payload: Value) -> Result<Value, Diagnostic>
where
    R: RunsSteps + ?Sized,
{
    let req: StepRequest = serde_json::from_value(payload).map_err(|e| Diagnostic {
        error_type: asl::ERROR_INVALID.to_string(),
        error_message: format!("not a step request: {e}"),
    })?;
    let span = tracing::info_span!(
        "step",
        saga_id = %req.saga_id,
        kind = req.kind.as_deref().unwrap_or(""),
        op = %req.op,
        step = req.step.as_deref().unwrap_or(""),
        target = req.target.as_deref().unwrap_or(""),
    );
    let _entered = span.enter();
    match runner.handle(&req).await {
        Ok(v) => Ok(v),
        Err(failure) => {
            tracing::warn!(error = %failure, error_type = failure.error_name(), "step failed");
            Err(Diagnostic {
                error_type: failure.error_name().to_string(),
                error_message: failure.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::Arc;

    use onboard_core::engine::EngineConfig;
    use onboard_core::engine_step::StepRunners;
    use onboard_core::onboard::{OnboardConfig, OnboardPorts};
    use onboard_core::testkit::{FakeWorld, ManualClock, MemoryLocks, MemoryStore};
    use serde_json::json;

    use super::*;

    fn runner() -> StepRunners {
        let world = Arc::new(FakeWorld::standard());
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let ports = Arc::new(OnboardPorts {
            apps: world.clone(),
            connect: world.clone(),
            iam: world,
            locks: Arc::new(MemoryLocks::new()),
            clock: clock.clone(),
        });
        StepRunners::new(
            ports,
            Arc::new(MemoryStore::new()),
            clock,
            &OnboardConfig::default(),
            EngineConfig::default(),
        )
    }

    #[tokio::test]
    async fn errors_carry_the_names_the_state_machine_catches() {
        let r = runner();
        let bad = handle(&r, json!({"nope": 1})).await.unwrap_err();
        assert_eq!(bad.error_type, asl::ERROR_INVALID);
        let unknown = handle(
            &r,
            json!({"op": "begin", "sagaId": "sg-missing", "owner": "exec", "action": "run"}),
        )
        .await
        .unwrap_err();
        assert_eq!(unknown.error_type, asl::ERROR_INVALID);
        assert!(unknown.error_message.contains("sg-missing"));
        let kind = handle(
            &r,
            json!({"op": "kind", "sagaId": "sg-missing", "owner": "exec"}),
        )
        .await
        .unwrap_err();
        assert_eq!(kind.error_type, asl::ERROR_INVALID);
        let teleport = handle(
            &r,
            json!({"op": "begin", "kind": "teleport", "sagaId": "sg-1", "owner": "exec", "action": "run"}),
        )
        .await
        .unwrap_err();
        assert_eq!(teleport.error_type, asl::ERROR_INVALID);
        assert!(teleport.error_message.contains("teleport"));
    }
}
