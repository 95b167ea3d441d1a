//! The API over the fake AWS world: the harness plus the per-kind engines that run what the API
//! queued, so lifecycle and authorization tests act on a really onboarded application.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use onboard_core::engine::EngineConfig;
use onboard_core::idempotency::IdempotencyConfig;
use onboard_core::lifecycle::service::{Lifecycle, SagaSettings, Sagas};
use onboard_core::onboard::{OnboardConfig, OnboardPorts};
use onboard_core::record::{SagaRecord, SagaStatus};
use onboard_core::service::{NoQueue, RunSagaMessage};
use onboard_core::store::SagaStore;
use onboard_core::testkit::fake_world::FakeWorld;
use onboard_core::testkit::{FixedRandom, MemoryLocks};
use serde_json::Value;

use super::*;

pub const ALICE: &str = "alice@example.com";

/// The API harness plus a fake AWS world and the engines that run what the API queued.
pub struct World {
    pub h: Harness,
    pub aws: Arc<FakeWorld>,
    pub sagas: Sagas,
}

pub fn world() -> World {
    world_with(&[])
}

/// A world whose API is configured with these extra environment variables (e.g.
/// `ADMIN_PRINCIPALS`).
pub fn world_with(env: &[(&str, &str)]) -> World {
    let h = harness_with(env);
    let aws = Arc::new(FakeWorld::standard());
    let ports = Arc::new(OnboardPorts {
        apps: aws.clone(),
        connect: aws.clone(),
        iam: aws.clone(),
        locks: Arc::new(MemoryLocks::new()),
        clock: h.clock.clone(),
    });
    let sagas = Sagas::new(
        ports,
        h.store.clone(),
        h.clock.clone(),
        Arc::new(FixedRandom(0.5)),
        SagaSettings {
            onboard: OnboardConfig::default(),
            engine: EngineConfig::default(),
            owner: "api-test-worker".into(),
        },
    );
    World { h, aws, sagas }
}

impl World {
    /// Run every queued message (as the worker would) and forget them.
    pub async fn drain(&self) {
        let messages: Vec<RunSagaMessage> = std::mem::take(&mut *self.h.queue.sent.lock().unwrap());
        for m in messages {
            let record = self.record(&m.saga_id).await;
            self.sagas.run(&record.kind, &m).await.unwrap();
        }
    }

    pub async fn record(&self, id: &str) -> SagaRecord {
        self.h.store.get(id).await.unwrap().unwrap()
    }

    /// Submit the standard spec and run its onboarding; returns the application id.
    pub async fn onboarded(&self) -> String {
        let r = self
            .h
            .submit(&spec("https://crm.example.com/agent"), Some("k-onboard"))
            .await;
        assert_eq!(r.status, 202, "{}", r.text);
        self.drain().await;
        let id = r.json["sagaId"].as_str().unwrap().to_string();
        assert_eq!(self.record(&id).await.status, SagaStatus::Succeeded);
        id
    }

    /// A request as [`ALICE`], the owner of [`World::onboarded`]'s application.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Reply {
        self.request_as(ALICE, method, path, body, key).await
    }

    /// A body-less request as `principal`, a member of `groups` (comma-separated).
    pub async fn request_as_in(
        &self,
        principal: &str,
        groups: &str,
        method: &str,
        path: &str,
    ) -> Reply {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("x-onboard-principal", principal)
            .header("x-onboard-groups", groups)
            .body(Body::empty())
            .unwrap();
        self.h.send(req).await
    }

    /// A request as `principal`.
    pub async fn request_as(
        &self,
        principal: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Reply {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .header("x-onboard-principal", principal);
        if let Some(k) = key {
            b = b.header("idempotency-key", k);
        }
        let body = body.map_or_else(Body::empty, |v| Body::from(v.to_string()));
        self.h.send(b.body(body).unwrap()).await
    }

    pub fn lifecycle(&self) -> Lifecycle {
        Lifecycle {
            store: self.h.store.clone(),
            clock: self.h.clock.clone(),
            queue: Arc::new(NoQueue),
            idempotency: IdempotencyConfig::default(),
        }
    }
}
