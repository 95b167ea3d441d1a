//! A harness for the lifecycle sagas: the onboard harness (sandbox + real SDK clients + moto
//! DynamoDB) plus one engine per saga kind and the lifecycle use cases.

use std::collections::BTreeSet;
use std::sync::Arc;

use onboard_core::clock::SystemRandom;
use onboard_core::engine::{Engine, RunOutcome};
use onboard_core::idempotency::IdempotencyConfig;
use onboard_core::lifecycle::service::{Lifecycle, Sagas, Started};
use onboard_core::lifecycle::{adopt, change, offboard, LifecyclePorts, ManagedApp};
use onboard_core::record::{SagaRecord, SagaStatus};
use onboard_core::saga::SagaDef;
use onboard_core::service::{NoQueue, RunAction, RunSagaMessage};
use onboard_integration_tests::*;
use onboard_sandbox::FaultSpec;
use serde_json::{json, Value};

pub struct Lc {
    pub h: Harness,
    pub sagas: Sagas,
    pub lifecycle: Lifecycle,
}

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A fresh saga id.
pub fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

impl Lc {
    pub async fn start() -> Self {
        Self::from(Harness::start().await)
    }

    pub fn from(h: Harness) -> Self {
        let retry = test_retry(10);
        let ctx = Arc::new(LifecyclePorts {
            aws: h.ports.clone(),
            store: h.store.clone(),
        });
        let engine = |def: SagaDef<LifecyclePorts>| {
            Engine::new(
                Arc::new(with_retry(def, retry)),
                ctx.clone(),
                h.store.clone(),
                h.clock.clone(),
                Arc::new(SystemRandom),
                "lc-worker",
            )
            .with_config(h.engine_config.clone())
        };
        let sagas = Sagas {
            onboard: h.engine("lc-worker"),
            change: engine(change::definition(4)),
            fix: engine(change::fix_definition(4)),
            offboard: engine(offboard::definition()),
            adopt: engine(adopt::definition()),
        };
        let lifecycle = Lifecycle {
            store: h.store.clone(),
            clock: h.clock.clone(),
            queue: Arc::new(NoQueue),
            idempotency: IdempotencyConfig::default(),
        };
        Lc {
            h,
            sagas,
            lifecycle,
        }
    }

    pub fn ports(&self) -> Arc<LifecyclePorts> {
        self.sagas.change.context()
    }

    /// Onboard `spec`; returns the application (root saga) id.
    pub async fn onboard(&self, spec: &Value) -> String {
        let rec = self.h.onboard(spec).await;
        assert_eq!(rec.status, SagaStatus::Succeeded, "{:?}", rec.cause);
        rec.id
    }

    /// Run a started lifecycle saga to its end; returns its record.
    pub async fn run(&self, started: &Started) -> SagaRecord {
        self.drive(&started.saga_id, RunAction::Run).await
    }

    pub async fn drive(&self, id: &str, action: RunAction) -> SagaRecord {
        let rec = self.h.record(id).await;
        let message = RunSagaMessage {
            saga_id: id.to_string(),
            namespace: rec.namespace.clone(),
            action,
        };
        let outcome = self
            .sagas
            .run(&rec.kind, &message)
            .await
            .expect("the engine runs");
        assert!(
            matches!(outcome, RunOutcome::Finished(_)),
            "{outcome:?} for {id}"
        );
        self.h.record(id).await
    }

    pub async fn state(&self, app_id: &str) -> ManagedApp {
        self.lifecycle
            .application(app_id)
            .await
            .expect("a managed application")
            .1
    }

    /// The dump in a form that does not depend on generated association ids, so "the same
    /// world" compares equal after an association was deleted and created again. An empty
    /// description counts as none: AppIntegrations cannot remove a description, only empty it.
    pub fn world(&self) -> Value {
        canonical(self.h.dump())
    }

    pub fn fault(&self, spec: FaultSpec) {
        self.h.fault(spec);
    }

    /// (operation, calls) of the sandbox's call log since the last clear, in first-call order.
    pub fn call_counts(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = Vec::new();
        for c in self.h.sandbox().calls() {
            match out.iter_mut().find(|(op, _)| *op == c.operation) {
                Some((_, n)) => *n += 1,
                None => out.push((c.operation.clone(), 1)),
            }
        }
        out
    }
}

pub fn canonical(mut dump: Value) -> Value {
    let assocs: BTreeSet<String> = dump["integration_associations"]
        .as_object()
        .map(|m| {
            m.values()
                .map(|a| {
                    format!(
                        "{}|{}|{}",
                        a["instance_id"].as_str().unwrap_or_default(),
                        a["integration_type"].as_str().unwrap_or_default(),
                        a["integration_arn"].as_str().unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let app_assocs: Vec<String> = {
        let mut v: Vec<String> = dump["application_associations"]
            .as_object()
            .map(|m| {
                m.values()
                    .map(|a| {
                        format!(
                            "{}|{}",
                            a["application_arn"].as_str().unwrap_or_default(),
                            a["client_id"].as_str().unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    dump["integration_associations"] = json!(assocs);
    dump["application_associations"] = json!(app_assocs);
    if let Some(apps) = dump["applications"].as_object_mut() {
        for app in apps.values_mut() {
            if app["description"] == json!("") {
                app["description"] = Value::Null;
            }
        }
    }
    dump
}

/// The operations that changed something, for "fault at every mutating call" loops.
pub const MUTATING: [&str; 7] = [
    "UpdateApplication",
    "DeleteApplication",
    "CreateIntegrationAssociation",
    "DeleteIntegrationAssociation",
    "UpdateSecurityProfile",
    "PutRolePolicy",
    "DeleteRolePolicy",
];

/// A terminal error for `op` (the caller lacks permission).
pub fn denied(op: &str, nth: u64) -> FaultSpec {
    let (code, status) = denied_for(op);
    fail_nth(op, nth, code, status)
}

/// A retryable error for `op`.
pub fn throttled(op: &str, nth: u64) -> FaultSpec {
    let (code, status) = throttling_for(op);
    fail_nth(op, nth, code, status)
}
