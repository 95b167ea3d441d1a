//! The onboarding service's HTTP API: one axum [`Router`] that Lambda serves through
//! `lambda_http` (see `main.rs`) and `onboard serve` hosts locally.
//!
//! | route | what |
//! |---|---|
//! | `POST /applications` | validate a spec; 400 problem+json listing every problem, else record + enqueue → 202, `Location` |
//! | `GET /applications/{id}` | the saga's status page (steps per instance, ARNs, last error, next action) |
//! | `GET /applications/{id}/history` | the application's audit trail: every saga on it, oldest first, with requester, source, ticket, times, outcome and before → after |
//! | `GET /applications` | list; `?status=`, `?limit=` (1–100, default 20), `?cursor=` |
//! | `POST /applications/{id}/retry` | re-drive a ROLLBACK_FAILED or NEEDS_ATTENTION saga → 202 |
//! | `PATCH /applications/{id}` | edit an application (changed fields only) → 202 + a `change` saga |
//! | `DELETE /applications/{id}` | offboard an application → 202 + an `offboard` saga |
//! | `POST /applications/{id}/instances/{instance}/pause`, `…/resume` | stop / restart it on one instance → 202 + a `change` saga |
//! | `GET /applications/{id}/drift` | the last drift check's report; 404 before the first |
//! | `POST /applications/{id}/drift/fix` | re-apply the recorded state after drift → 202 + a `change` saga; 409 without drift |
//! | `POST /applications/adopt` | `{"namespace"}`: bring a console-made application under management → 202 + an `adopt` saga |
//! | `POST /preflight` | dry run: validation, namespace availability, the planned steps; with AWS ports the saga's preflight (instances, SLR, budget, namespace, profiles, caller permissions, framing) as `findings`; no side effect |
//! | `POST /webhooks/{source}` | signed ticket webhooks (`servicenow`, `jira`, `generic`) |
//! | `GET /openapi.json` | the OpenAPI 3.1 document, generated from these handlers |
//! | `GET /health` | liveness |
//! | `GET /`, `GET /portal/…` | the self-service portal page and its assets (not in the OpenAPI document) |
//!
//! Handlers hold their dependencies as ports ([`Api`]: the core's `Onboarding` over
//! `Arc<dyn SagaStore>` and `Arc<dyn SagaQueue>`), so tests run the router with the in-memory
//! store and queue.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use onboard_core::access::AccessPolicy;
use onboard_core::preflight::{PageFetcher, PreflightPorts};
use onboard_core::service::Onboarding;
use onboard_lambda_common::Emf;
use tracing::Instrument;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod access;
pub mod config;
pub mod csrf;
pub mod history_route;
pub mod lifecycle_routes;
pub mod portal;
pub mod preflight_route;
pub mod principal;
pub mod problem;
pub mod routes;
pub mod secret;
pub mod webhooks;

pub use principal::PrincipalConfig;
pub use problem::{ApiProblem, Kind};
pub use webhooks::WebhookConfig;

/// Default request body limit: a spec is a few kilobytes; ticket payloads are larger.
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

/// Everything the handlers need.
pub struct Api {
    /// Submit and status use cases over the saga store and queue.
    pub onboarding: Onboarding,
    pub principal: PrincipalConfig,
    pub webhooks: WebhookConfig,
    /// Largest accepted request body, in bytes (413 above).
    pub body_limit: usize,
    pub emf: Emf,
    /// New saga ids for submissions without an idempotency key or ticket.
    pub new_id: Box<dyn Fn() -> String + Send + Sync>,
    /// Fetches the access URL so `POST /preflight` can warn when the agent workspace cannot
    /// iframe it; `None` (the default) skips that check.
    pub fetcher: Option<Arc<dyn PageFetcher>>,
    /// Read-only AWS ports (and the permission simulator) so `POST /preflight` runs the saga's
    /// own preflight against the real instances; `None` (the default) keeps it offline.
    pub preflight_aws: Option<PreflightPorts>,
    /// Who may act on every application besides its owners (default: nobody).
    pub access: Arc<AccessPolicy>,
}

impl Api {
    /// An API with explicit settings instead of environment variables (`onboard serve`, tests):
    /// the default body limit, random saga ids, EMF metrics on stdout (replace `emf` to send
    /// them elsewhere) and no page fetcher (set `fetcher` to check embedding in preflight).
    pub fn new(
        onboarding: Onboarding,
        principal: PrincipalConfig,
        webhooks: WebhookConfig,
    ) -> Self {
        Api {
            onboarding,
            principal,
            webhooks,
            body_limit: DEFAULT_BODY_LIMIT,
            emf: Emf::stdout(onboard_lambda_common::emf::DEFAULT_NAMESPACE, "api"),
            new_id: Box::new(random_saga_id),
            fetcher: None,
            preflight_aws: None,
            access: Arc::new(AccessPolicy::default()),
        }
    }
}

/// A random saga id (`sg-` and 32 hex digits).
pub fn random_saga_id() -> String {
    format!("sg-{:032x}", fastrand::u128(..))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Amazon Connect third-party app onboarding",
        description = "Submit, track and preflight the onboarding of third-party web apps into the \
                       Amazon Connect agent workspace, and receive approved change tickets. Errors \
                       are application/problem+json with a stable `type` URI."
    ),
    tags(
        (name = "applications", description = "Portal submissions and saga status"),
        (name = "lifecycle", description = "Day-two operations on an onboarded application: edit, pause/resume, offboard, drift, adopt"),
        (name = "webhooks", description = "Signed ticketing-system webhooks"),
        (name = "meta", description = "Health and the API description")
    )
)]
struct ApiDoc;

/// Every route, registered once: the router and the OpenAPI document both come from here.
fn api_routes() -> OpenApiRouter<Arc<Api>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::submit, routes::list))
        .routes(routes!(routes::get_application))
        .routes(routes!(history_route::get_history))
        .routes(routes!(routes::retry))
        .routes(routes!(lifecycle_routes::edit))
        .routes(routes!(lifecycle_routes::offboard))
        .routes(routes!(lifecycle_routes::pause))
        .routes(routes!(lifecycle_routes::resume))
        .routes(routes!(lifecycle_routes::get_drift))
        .routes(routes!(lifecycle_routes::fix_drift))
        .routes(routes!(lifecycle_routes::adopt))
        .routes(routes!(preflight_route::preflight))
        .routes(routes!(webhooks::receive))
        .routes(routes!(routes::health))
        .routes(routes!(routes::openapi_json))
}

/// The API's router.
pub fn router(api: Arc<Api>) -> Router {
    let limit = api.body_limit;
    let (router, _) = api_routes().split_for_parts();
    router
        .merge(portal::routes())
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(middleware::from_fn(csrf::guard))
        .layer(middleware::map_response(portal::security_headers))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(request_span))
        .with_state(api)
}

/// The OpenAPI document of every route, generated from the handlers' annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = api_routes().split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// One span per request with the ids every log line should carry; handlers fill in the saga
/// fields once they know them.
async fn request_span(req: Request, next: Next) -> Response {
    let request_id = principal::gateway_request_id(req.extensions())
        .or_else(|| {
            req.headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.uri().path(),
        saga_id = tracing::field::Empty,
        namespace = tracing::field::Empty,
        ticket_id = tracing::field::Empty,
    );
    let resp = next.run(req).instrument(span.clone()).await;
    span.in_scope(|| tracing::info!(status = resp.status().as_u16(), "request done"));
    resp.into_response()
}
