//! `GET /applications/{id}/history`: the application's audit trail (the core's
//! [`onboard_core::history`]), readable by whoever may read the application itself.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{Extensions, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use onboard_core::access::Action;
use onboard_core::history;
use serde_json::Value;
use utoipa::ToSchema;

use crate::access;
use crate::lifecycle_routes::lifecycle_problem;
use crate::problem::ApiProblem;
use crate::routes::caller;
use crate::Api;

/// An application's audit trail.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = History)]
struct HistoryDoc {
    #[schema(rename = "applicationId")]
    application_id: String,
    namespace: String,
    /// Every saga on the application, oldest first; the first is its onboard or adopt saga.
    entries: Vec<HistoryEntryDoc>,
}

/// One saga on the application: who asked, from where, when, how it ended, what it changed.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = HistoryEntry)]
struct HistoryEntryDoc {
    #[schema(rename = "sagaId")]
    saga_id: String,
    /// `onboard`, `adopt`, `change`, `fix` or `offboard`.
    kind: String,
    /// `onboard`, `adopt`, `edit`, `pause`, `resume`, `fix` or `offboard`.
    operation: String,
    /// The requesting principal.
    requester: Option<String>,
    /// `PORTAL` (this API), `TICKET` (a webhook) or `CLI`, when recorded.
    source: Option<String>,
    #[schema(rename = "ticketId")]
    ticket_id: Option<String>,
    /// RFC 3339, UTC.
    #[schema(rename = "createdAt")]
    created_at: String,
    /// When it reached its current end state (RFC 3339); absent while it runs.
    #[schema(rename = "finishedAt")]
    finished_at: Option<String>,
    /// The saga's status: SUCCEEDED, ROLLED_BACK, REFUSED, ROLLBACK_FAILED, NEEDS_ATTENTION, …
    outcome: String,
    /// True for the saga that created the application: `fields` are its initial values.
    created: bool,
    /// `{field, before, after}` per changed field (displayName, description, accessUrl,
    /// approvedOrigins, permissions, subscriptions, publications, iframe,
    /// initializationTimeoutMs); an absent side means not set.
    fields: Vec<Value>,
    /// `{instance, alias, change}` with `change` one of added, removed, paused, resumed.
    instances: Vec<Value>,
    /// `{instance, alias, added, removed}`: security profiles granting it on an instance.
    profiles: Vec<Value>,
}

/// The application's audit trail: its onboard (or adopt) saga and every edit, pause, resume,
/// drift fix and offboard saga on it, oldest first, each with requester, source, ticket, times,
/// outcome and the changes it set out to make (what stuck is what the outcome says).
#[utoipa::path(
    get,
    path = "/applications/{id}/history",
    tag = "applications",
    params(("id" = String, Path, description = "The application's id (its onboard or adopt saga)")),
    responses(
        (status = 200, description = "The audit trail", body = HistoryDoc),
        (status = 401, description = "No authenticated principal", body = ApiProblem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is neither an owner of the application nor an administrator", body = ApiProblem, content_type = "application/problem+json"),
        (status = 404, description = "No such application", body = ApiProblem, content_type = "application/problem+json"),
        (status = 409, description = "The id names a lifecycle saga, not an application", body = ApiProblem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = ApiProblem, content_type = "application/problem+json"),
    )
)]
pub async fn get_history(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    ext: Extensions,
    headers: HeaderMap,
) -> Response {
    tracing::Span::current().record("saga_id", id.as_str());
    let run = async {
        let caller = caller(&api, &ext, &headers)?;
        // Exactly what GET /applications/{id} checks: 404 unknown, 403 not an owner or admin.
        let (root, _) = access::saga_for(&api, &caller, &id, Action::Read).await?;
        tracing::Span::current().record("namespace", root.namespace.as_str());
        let trail = history::load(api.onboarding.store.as_ref(), &root)
            .await
            .map_err(|e| Box::new(lifecycle_problem(&api, e)))?;
        Ok::<_, Box<ApiProblem>>(Json(trail).into_response())
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}
