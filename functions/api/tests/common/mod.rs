//! Shared test harness: the router over the in-memory store, a recording queue and a manual
//! clock, driven with `tower::ServiceExt::oneshot`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, Response};
use axum::Router;
use http_body_util::BodyExt;
use onboard_api::config::api_from_env;
use onboard_api::webhooks::signature;
use onboard_api::Api;
use onboard_core::error::{ErrorInfo, ErrorKind};
use onboard_core::service::{RunSagaMessage, SagaQueue};
use onboard_core::store::SagaStore;
use onboard_core::testkit::{ManualClock, MemoryStore};
use onboard_lambda_common::{Emf, Env};
use serde_json::Value;
use tower::ServiceExt;

pub mod world;

pub const SECRET: &str = "test-webhook-secret-0123456789abcdef";
pub const ALPHA: &str = "11111111-1111-4111-8111-111111111111";
pub const BETA: &str = "22222222-2222-4222-8222-222222222222";

#[derive(Default)]
pub struct Queue {
    pub sent: Mutex<Vec<RunSagaMessage>>,
    pub down: AtomicBool,
}

#[async_trait]
impl SagaQueue for Queue {
    async fn enqueue(&self, m: &RunSagaMessage) -> Result<(), ErrorInfo> {
        if self.down.load(Ordering::SeqCst) {
            return Err(ErrorInfo::new(
                ErrorKind::ServerError,
                "ServiceUnavailable",
                "injected",
            ));
        }
        self.sent.lock().unwrap().push(m.clone());
        Ok(())
    }
}

pub struct Harness {
    pub store: Arc<MemoryStore>,
    pub queue: Arc<Queue>,
    pub clock: Arc<ManualClock>,
    pub router: Router,
    pub emf: Emf,
}

pub fn harness() -> Harness {
    harness_with(&[])
}

pub fn harness_with(extra: &[(&str, &str)]) -> Harness {
    harness_custom(extra, |_| {})
}

/// A harness whose [`Api`] is adjusted by `tweak` before the router is built.
pub fn harness_custom(extra: &[(&str, &str)], tweak: impl FnOnce(&mut Api)) -> Harness {
    let store = Arc::new(MemoryStore::new());
    let queue = Arc::new(Queue::default());
    let clock = Arc::new(ManualClock::default());
    let mut pairs = vec![
        ("WEBHOOK_SECRET", SECRET),
        ("TRUST_PRINCIPAL_HEADER", "true"),
        ("BODY_LIMIT_BYTES", "16384"),
    ];
    pairs.extend_from_slice(extra);
    let mut api: Api = api_from_env(
        &Env::from_pairs(pairs),
        store.clone(),
        queue.clone(),
        clock.clone(),
    )
    .unwrap();
    let emf = Emf::capture("api");
    api.emf = emf.clone();
    let counter = Arc::new(AtomicU64::new(0));
    api.new_id = Box::new(move || format!("sg-test-{}", counter.fetch_add(1, Ordering::SeqCst)));
    tweak(&mut api);
    Harness {
        store,
        queue,
        clock,
        router: onboard_api::router(Arc::new(api)),
        emf,
    }
}

pub fn spec(url: &str) -> Value {
    serde_json::json!({
        "displayName": "Acme CRM",
        "accessUrl": url,
        "permissions": ["User.Details.View", "Contact.Details.View"],
        "instances": [ALPHA, BETA]
    })
}

pub struct Reply {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Reply {
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn reply(resp: Response<Body>) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        json,
        text,
    }
}

impl Harness {
    pub async fn send(&self, req: Request<Body>) -> Reply {
        reply(self.router.clone().oneshot(req).await.unwrap()).await
    }

    /// An API Gateway v2 event fixture, converted the way `lambda_http` converts it.
    pub async fn send_event(&self, event_json: &str) -> Reply {
        let req = lambda_http::request::from_str(event_json).unwrap();
        let (parts, body) = req.into_parts();
        let req = Request::from_parts(parts, Body::from(body.to_vec()));
        self.send(req).await
    }

    pub async fn post(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
        self.post_raw(path, body.to_string().into_bytes(), headers)
            .await
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Reply {
        let mut b = Request::post(path).header("content-type", "application/json");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Body::from(body)).unwrap()).await
    }

    /// POST as the portal user `alice@example.com`.
    pub async fn submit(&self, body: &Value, key: Option<&str>) -> Reply {
        let mut h = vec![("x-onboard-principal", "alice@example.com")];
        if let Some(k) = key {
            h.push(("idempotency-key", k));
        }
        self.post("/applications", body, &h).await
    }

    /// GET as the portal user `alice@example.com` (who submits in these tests).
    pub async fn get(&self, path: &str) -> Reply {
        self.get_as(path, "alice@example.com").await
    }

    /// GET as `principal` (no identity at all when empty).
    pub async fn get_as(&self, path: &str, principal: &str) -> Reply {
        let mut b = Request::get(path);
        if !principal.is_empty() {
            b = b.header("x-onboard-principal", principal);
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    pub fn now_secs(&self) -> u64 {
        onboard_core::clock::Clock::now(self.clock.as_ref()) / 1000
    }

    /// POST a webhook body signed now with the test secret.
    pub async fn webhook(&self, source: &str, body: &[u8]) -> Reply {
        let ts = self.now_secs().to_string();
        let sig = signature::sign(SECRET.as_bytes(), &ts, body);
        self.post_raw(
            &format!("/webhooks/{source}"),
            body.to_vec(),
            &[("x-onboard-timestamp", &ts), ("x-onboard-signature", &sig)],
        )
        .await
    }

    pub fn sent(&self) -> Vec<RunSagaMessage> {
        self.queue.sent.lock().unwrap().clone()
    }

    pub async fn saga_count(&self) -> usize {
        let mut n = 0;
        for s in onboard_core::record::SagaStatus::ALL {
            n += self
                .store
                .list_by_status(s, 1000, None)
                .await
                .unwrap()
                .items
                .len();
        }
        n
    }
}

/// The problem+json checks every error response must pass.
pub fn assert_problem(r: &Reply, status: u16, type_suffix: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.content_type(), "application/problem+json", "{}", r.text);
    let t = r.json["type"].as_str().unwrap_or("");
    assert!(
        t.starts_with("urn:connect-onboarding:problem:") && t.ends_with(type_suffix),
        "type {t} for {}",
        r.text
    );
    assert!(r.json["title"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(r.json["detail"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(r.json["status"], status);
}
