//! Bulk onboarding at Connect's quota: the limit is the API quota, so the worker
//! should run at it without tripping it, and the total time should approach
//! (Connect calls − burst) ÷ rate.
//!
//! Runs the real onboard saga with the real SDK clients (standard retries) against the sandbox
//! enforcing Connect's default quota (2 requests/s, burst 5 per operation), with the product's
//! client-side limiter at its default (2/s, burst 5 across all Connect calls), and prints
//! figures. `cargo bench -p onboard-integration-tests --bench bulk`. Needs no moto: the saga log
//! lives in the in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a broken fixture should fail loudly

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use onboard_aws::ConnectRate;
use onboard_core::clock::{Clock, SystemClock, SystemRandom};
use onboard_core::engine::{Engine, RunOutcome};
use onboard_core::onboard::{self, OnboardConfig, OnboardPorts};
use onboard_core::record::SagaStatus;
use onboard_core::saga::SagaDef;
use onboard_core::spec::parse_spec;
use onboard_core::store::SagaStore;
use onboard_core::testkit::{MemoryLocks, MemoryStore};
use onboard_integration_tests::{instances, sdk_config, seed, spec, spec_for};
use onboard_sandbox::{Sandbox, SandboxConfig, ThrottleConfig};
use serde_json::Value;

struct Figures {
    name: String,
    sagas: usize,
    elapsed: Duration,
    connect_calls: usize,
    connect_throttled: usize,
    other_calls: usize,
}

impl Figures {
    fn print(&self, rate: f64, burst: f64) {
        // Lower bound under the client-side limiter: the burst is free, the rest at `rate`.
        // SDK retries of throttled calls do not pass the limiter, so they are not counted.
        let gated = self.connect_calls.saturating_sub(self.connect_throttled) as f64;
        let ideal = ((gated - burst).max(0.0)) / rate;
        let secs = self.elapsed.as_secs_f64();
        println!(
            "{:<38} sagas {:>2}  connect calls {:>3}  throttled {:>2}  other calls {:>3}  \
             elapsed {:>6.2} s  ideal {:>6.2} s  at-quota efficiency {:>5.1} %  achieved {:>4.2} connect calls/s",
            self.name,
            self.sagas,
            self.connect_calls,
            self.connect_throttled,
            self.other_calls,
            secs,
            ideal,
            if secs > 0.0 { 100.0 * ideal / secs } else { 0.0 },
            self.connect_calls as f64 / secs.max(f64::EPSILON),
        );
    }
}

async fn scenario(name: &str, specs: Vec<Value>) -> Figures {
    let sandbox = Sandbox::start(SandboxConfig {
        seed: seed(),
        throttle: ThrottleConfig::default(),
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts");
    let sdk = sdk_config(&sandbox.endpoint(), RetryConfig::standard()).await;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store: Arc<dyn SagaStore> = Arc::new(MemoryStore::new());
    let ports = Arc::new(onboard_aws::onboard_ports(
        &sdk,
        ConnectRate::default(),
        Arc::new(MemoryLocks::new()),
        clock.clone(),
    ));
    let def: Arc<SagaDef<OnboardPorts>> = Arc::new(onboard::definition(&OnboardConfig::default()));
    let mut ids = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let validated = parse_spec(s.to_string().as_bytes())
            .expect("parses")
            .validate()
            .expect("valid");
        let new = onboard::new_saga(format!("bench-{i}"), &validated).expect("a saga");
        store
            .create(&def.new_record(new, clock.now()))
            .await
            .expect("stored");
        ids.push(format!("bench-{i}"));
    }
    sandbox.state().clear_calls();
    let started = Instant::now();
    let runs = ids.iter().map(|id| {
        let engine = Engine::new(
            def.clone(),
            ports.clone(),
            store.clone(),
            clock.clone(),
            Arc::new(SystemRandom),
            format!("worker-{id}"),
        );
        let id = id.clone();
        async move { engine.run(&id).await }
    });
    let outcomes = futures_join_all(runs).await;
    let elapsed = started.elapsed();
    for o in outcomes {
        match o {
            Ok(RunOutcome::Finished(SagaStatus::Succeeded)) => {}
            other => panic!("{name}: a saga did not succeed: {other:?}"),
        }
    }
    let calls = sandbox.state().calls();
    let connect: Vec<_> = calls.iter().filter(|c| c.service == "connect").collect();
    Figures {
        name: name.to_string(),
        sagas: ids.len(),
        elapsed,
        connect_calls: connect.len(),
        connect_throttled: connect
            .iter()
            .filter(|c| {
                c.error
                    .as_deref()
                    .is_some_and(|e| e.contains("Throttl") || e.contains("TooManyRequests"))
            })
            .count(),
        other_calls: calls.len() - connect.len(),
    }
}

/// Runs the futures concurrently on the current runtime.
async fn futures_join_all<F, T>(futs: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("the task ran"));
    }
    out
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let rate = ConnectRate::default();
        let (r, b) = (
            f64::from(rate.per_second.get()),
            f64::from(rate.burst.get()),
        );
        println!(
            "bulk onboarding against the sandbox at Connect's default quota; client limit {r}/s burst {b}"
        );
        scenario("1 app onto 1 instance", vec![spec(&instances(1))])
            .await
            .print(r, b);
        scenario("1 app onto 5 instances", vec![spec(&instances(5))])
            .await
            .print(r, b);
        let many: Vec<Value> = (1..=4)
            .map(|i| {
                spec_for(
                    &format!("App {i}"),
                    &format!("https://app{i}.example.com"),
                    &instances(3),
                )
            })
            .collect();
        scenario("4 apps onto 3 instances each, at once", many)
            .await
            .print(r, b);
    });
}
