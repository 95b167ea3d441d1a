//! The application lifecycle routes: edit, pause / resume on one instance, offboard, the drift
//! report and its fix, adopt. Each accepted request records a saga (a `change`, `offboard` or
//! `adopt` saga; the first two carry the application's id as `parent`), queues it like a
//! submission and answers 202 with where to follow it. The rules live in the core's
//! `Lifecycle` use cases; this file maps HTTP onto them and their errors onto problem types.
//!
//! An application's id is its root saga's id: the `sagaId` of its `POST /applications` (or of
//! its adoption).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use onboard_core::lifecycle::service::{parse_edit, LifecycleError, Started};
use onboard_core::lifecycle::{adopt, current_state, StateError};
use onboard_core::onboard;
use onboard_core::validation::{Problem, ValidationErrors};
use onboard_lambda_common::Metric;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::access;
use crate::problem::{ApiProblem, Kind};
use crate::routes::{body, caller, idempotency_key, refused};
use crate::Api;
use onboard_core::access::Action;

const TICKET_DOC: &str = "The change ticket the request carries out, recorded on its saga (GET /applications/{id}/history)";

/// 202 answer to a lifecycle request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleAccepted {
    /// The new saga (`change`, `offboard` or `adopt`).
    pub saga_id: String,
    /// The application it changes (for adopt: the new saga itself, the application's id from
    /// then on).
    pub application_id: String,
    pub namespace: String,
    /// `edit`, `pause`, `resume`, `fix`, `offboard` or `adopt`.
    pub operation: String,
    /// False when an earlier request with the same Idempotency-Key created this saga.
    pub created: bool,
    /// False when the saga was recorded but the queue refused it; the reconciler queues it
    /// within minutes.
    pub queued: bool,
    /// Where to follow the saga (also the `Location` header).
    pub status_url: String,
    /// The application's own status page (its current managed state).
    pub application_url: String,
}

/// `POST /applications/adopt` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdoptRequest {
    /// The namespace of the application to bring under management, as shown in the
    /// AppIntegrations console.
    pub namespace: String,
}

/// One difference between the recorded state and AWS.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = DriftItem)]
struct DriftItemDoc {
    /// APPLICATION_MISSING, FIELDS_CHANGED, ASSOCIATION_MISSING, ASSOCIATION_EXTRA,
    /// STATEMENT_MISSING or PROFILE_ENTRY_MISSING.
    kind: String,
    /// The instance it concerns, when one.
    instance: Option<String>,
    detail: String,
}

/// The last drift check of an application.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = DriftReport)]
struct DriftReportDoc {
    #[schema(rename = "applicationId")]
    application_id: String,
    /// Epoch milliseconds.
    #[schema(rename = "checkedAt")]
    checked_at: u64,
    /// True when `items` is not empty.
    drifted: bool,
    /// False when the application was deleted outside this product (offboard it instead).
    fixable: bool,
    items: Vec<DriftItemDoc>,
    /// A later check that could not finish (AWS failed a read); the report is from before it.
    #[schema(rename = "lastFailure")]
    last_failure: Option<DriftFailureDoc>,
}

/// A drift check that could not finish.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = DriftCheckFailure)]
struct DriftFailureDoc {
    /// Epoch milliseconds.
    at: u64,
    error: serde_json::Value,
}

/// A refused lifecycle request as problem+json.
pub(crate) fn lifecycle_problem(api: &Api, e: LifecycleError) -> ApiProblem {
    let detail = e.to_string();
    match e {
        LifecycleError::NotFound(id) => ApiProblem::new(Kind::NotFound, detail)
            .fix("Use the application's id: the sagaId its POST /applications (or adopt) returned.")
            .saga(id),
        LifecycleError::State(StateError::Offboarded { id }) => {
            ApiProblem::new(Kind::ApplicationOffboarded, detail)
                .fix("Onboard it again with POST /applications; it gets a new id.")
                .saga(id)
        }
        LifecycleError::State(StateError::NotOnboarded { id, .. }) => {
            ApiProblem::new(Kind::NotOnboarded, detail)
                .fix(format!(
                    "Wait until its onboarding succeeds (GET /applications/{id}); a rolled-back \
                     onboarding has no application to change."
                ))
                .saga(id)
        }
        LifecycleError::State(StateError::NotAnApplication { id, parent, .. }) => {
            ApiProblem::new(Kind::NotAnApplication, detail)
                .fix(format!(
                    "Use the application's id: {parent} (GET /applications/{parent})."
                ))
                .saga(id)
        }
        LifecycleError::State(StateError::Corrupt { id, .. }) => {
            tracing::error!(error = %detail, "an application record is unreadable");
            ApiProblem::new(Kind::RecordCorrupt, detail)
                .fix("Report this defect with the saga id; nothing was changed.")
                .saga(id)
        }
        LifecycleError::Invalid(errors) => invalid(errors),
        LifecycleError::Refused(e) => refused(e),
        LifecycleError::Store(e) => ApiProblem::store(e),
        LifecycleError::Forbidden(d) => access::forbidden(api, d),
        // Answered as an accepted request by `accepted`; kept total.
        LifecycleError::NotQueued { saga_id, .. } => {
            ApiProblem::new(Kind::Unavailable, detail).saga(saga_id)
        }
    }
}

/// A 400 listing every problem of a lifecycle request.
fn invalid(errors: ValidationErrors) -> ApiProblem {
    let n = errors.problems.len();
    let mut p = ApiProblem::validation(errors);
    p.detail = format!(
        "{n} problem{} must be fixed before the request can be carried out; nothing was recorded",
        if n == 1 { "" } else { "s" }
    );
    p
}

/// 202 for an accepted (or already accepted) request, else its problem.
async fn accepted(api: &Api, result: Result<Started, LifecycleError>) -> Response {
    let (started, queued) = match result {
        Ok(s) => (s, true),
        Err(LifecycleError::NotQueued { saga_id, error }) => {
            tracing::error!(saga_id = %saga_id, error = %error, "saga recorded but not queued; the reconciler will queue it");
            api.emf
                .emit(&[], &[Metric::count("EnqueueFailures", 1.0)], &[]);
            match recorded(api, &saga_id).await {
                Ok(s) => (s, false),
                Err(p) => return p.into_response(),
            }
        }
        Err(e) => return lifecycle_problem(api, e).into_response(),
    };
    let span = tracing::Span::current();
    span.record("saga_id", started.saga_id.as_str());
    span.record("namespace", started.namespace.as_str());
    if started.created {
        api.emf.emit(
            &[],
            &[Metric::count("SagasSubmitted", 1.0)],
            &[
                ("sagaId", Value::from(started.saga_id.as_str())),
                ("operation", Value::from(started.operation.as_str())),
            ],
        );
    }
    tracing::info!(
        operation = %started.operation,
        application_id = %started.application_id,
        created = started.created,
        queued,
        "lifecycle request accepted"
    );
    let status_url = format!("/applications/{}", started.saga_id);
    let body = LifecycleAccepted {
        application_url: format!("/applications/{}", started.application_id),
        saga_id: started.saga_id,
        application_id: started.application_id,
        namespace: started.namespace,
        operation: started.operation,
        created: started.created,
        queued,
        status_url: status_url.clone(),
    };
    let mut resp = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&status_url) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// What a recorded-but-not-queued saga is, read back from its record.
async fn recorded(api: &Api, saga_id: &str) -> Result<Started, ApiProblem> {
    let record = api
        .onboarding
        .store
        .get(saga_id)
        .await
        .map_err(ApiProblem::store)?
        .ok_or_else(|| {
            ApiProblem::store(format!("saga {saga_id} vanished after it was recorded"))
        })?;
    let operation = record
        .input
        .get("operation")
        .and_then(Value::as_str)
        .unwrap_or(record.kind.as_str())
        .to_string();
    Ok(Started {
        application_id: record.parent.clone().unwrap_or_else(|| record.id.clone()),
        saga_id: record.id,
        namespace: record.namespace,
        operation,
        created: true,
    })
}

/// The handler's answer, or its problem.
async fn respond(
    run: impl std::future::Future<Output = Result<Response, Box<ApiProblem>>>,
) -> Response {
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// Edit an application: display name, description, access URL, approved origins, permissions,
/// events, iframe settings, initialization timeout, the instance set, the profile grants.
#[utoipa::path(
    patch,
    path = "/applications/{id}",
    tag = "lifecycle",
    params(
        ("id" = String, Path, description = "The application's id (its onboard or adopt saga)"),
        ("Idempotency-Key" = Option<String>, Header,
            description = "Repeat-safe key: the same key and body return the same saga; the same \
                           key with another body is 409."),
        ("X-Onboard-Ticket" = Option<String>, Header, description = TICKET_DOC),
    ),
    request_body(content = Object, content_type = "application/json",
        description = "The changed fields only (camelCase as in the spec), e.g. \
                       `{\"displayName\": \"New name\"}`; `instances` and `securityProfiles` are \
                       the complete new lists. `namespace` is immutable: it may only repeat the \
                       current value."),
    responses(
        (status = 202, description = "A change saga is recorded and queued", body = LifecycleAccepted,
            headers(("Location" = String, description = "The change saga's status URL"))),
        (status = 400, description = "Invalid change: every problem with its fix; nothing recorded", body = ApiProblem, content_type = "application/problem+json"),
        (status = 401, description = "No authenticated principal", body = ApiProblem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is neither an owner of the application nor an administrator; nothing was changed", body = ApiProblem, content_type = "application/problem+json"),
        (status = 404, description = "No such application", body = ApiProblem, content_type = "application/problem+json"),
        (status = 409, description = "Offboarded, not onboarded, not an application, namespace busy, or the key was reused", body = ApiProblem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = ApiProblem, content_type = "application/problem+json"),
    )
)]
pub async fn edit(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    ext: Extensions,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    respond(async {
        let raw = body(&api, raw)?;
        let actor = access::actor(&api, caller(&api, &ext, &headers)?, &headers)?;
        let key = idempotency_key(&headers)?;
        let req = parse_edit(&raw).map_err(|e| Box::new(invalid(e)))?;
        let result = api
            .onboarding
            .lifecycle()
            .edit(&id, &req, actor, key.as_deref(), (api.new_id)())
            .await;
        Ok(accepted(&api, result).await)
    })
    .await
}

/// Offboard an application: remove its profile entries and SLR policy statements, delete every
/// association (also ones made outside this product), then the application. Recovers forward:
/// what cannot be removed ends NEEDS_ATTENTION with the remaining resources; re-drive it with
/// `POST /applications/{sagaId}/retry` after fixing the cause.
#[utoipa::path(
    delete,
    path = "/applications/{id}",
    tag = "lifecycle",
    params(
        ("id" = String, Path, description = "The application's id (its onboard or adopt saga)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe key"),
        ("X-Onboard-Ticket" = Option<String>, Header, description = TICKET_DOC),
    ),
    responses(
        (status = 202, description = "An offboard saga is recorded and queued", body = LifecycleAccepted,
            headers(("Location" = String, description = "The offboard saga's status URL"))),
        (status = 401, description = "No authenticated principal", body = ApiProblem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is neither an owner of the application nor an administrator; nothing was changed", body = ApiProblem, content_type = "application/problem+json"),
        (status = 404, description = "No such application", body = ApiProblem, content_type = "application/problem+json"),
        (status = 409, description = "Already offboarded, not onboarded, not an application, or namespace busy", body = ApiProblem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = ApiProblem, content_type = "application/problem+json"),
    )
)]
pub async fn offboard(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    ext: Extensions,
    headers: HeaderMap,
) -> Response {
    respond(async {
        let actor = access::actor(&api, caller(&api, &ext, &headers)?, &headers)?;
        let key = idempotency_key(&headers)?;
        let result = api
            .onboarding
            .lifecycle()
            .offboard(&id, actor, key.as_deref(), (api.new_id)())
            .await;
        Ok(accepted(&api, result).await)
    })
    .await
}

/// Pause an application on one instance without losing its set-up: its association, SLR
/// statement and profile entries are removed there only (the console's advice for stopping use).
#[utoipa::path(
    post,
    path = "/applications/{id}/instances/{instance}/pause",
    tag = "lifecycle",
    params(
        ("id" = String, Path, description = "The application's id"),
        ("instance" = String, Path, description = "The Connect instance: id, URL-encoded ARN, or its alias"),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe key"),
        ("X-Onboard-Ticket" = Option<String>, Header, description = TICKET_DOC),
    ),
    responses(
        (status = 202, description = "A change saga is recorded and queued", body = LifecycleAccepted,
            headers(("Location" = String, description = "The change saga's status URL"))),
        (status = 400, description = "Not an instance, not set up there, or already paused", body = ApiProblem, content_type = "application/problem+json"),
        (status = 401, description = "No authenticated principal", body = ApiProblem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is neither an owner of the application nor an administrator; nothing was changed", body = ApiProblem, content_type = "application/problem+json"),
        (status = 404, description = "No such application", body = ApiProblem, content_type = "application/problem+json"),
        (status = 409, description = "Offboarded, not onboarded, not an application, or namespace busy", body = ApiProblem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = ApiProblem, content_type = "application/problem+json"),
    )
)]
pub async fn pause(
    State(api): State<Arc<Api>>,
    Path((id, instance)): Path<(String, String)>,
    ext: Extensions,
    headers: HeaderMap,
) -> Response {
    toggle(&api, &id, &instance, &ext, &headers, true).await
}

/// Resume an application paused on one instance: re-add its association, SLR statement and
/// profile entries there.
#[utoipa::path(
    post,
    path = "/applications/{id}/instances/{instance}/resume",
    tag = "lifecycle",
    params(
        ("id" = String, Path, description = "The application's id"),
        ("instance" = String, Path, description = "The Connect instance: id, URL-encoded ARN, or its alias"),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe key"),
        ("X-Onboard-Ticket" = Option<String>, Header, description = TICKET_DOC),
    ),
    responses(
        (status = 202, description = "A change saga is recorded and queued", body = LifecycleAccepted,
            headers(("Location" = String, description = "The change saga's status URL"))),
        (status = 400, description = "Not an instance, not set up there, or not paused", body = ApiProblem, content_type = "application/problem+json"),
        (status = 401, description = "No authenticated principal", body = ApiProblem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is neither an owner of the application nor an administrator; nothing was changed", body = ApiProblem, content_type = "application/problem+json"),
        (status = 404, description = "No such application", body = ApiProblem, content_type = "application/problem+json"),
        (status = 409, description = "Offboarded, not onboarded, not an application, or namespace busy", body = ApiProblem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = ApiProblem, content_type = "application/problem+json"),
    )
)]
pub async fn resume(
    State(api): State<Arc<Api>>,
    Path((id, instance)): Path<(String, String)>,
    ext: Extensions,
    headers: HeaderMap,
) -> Response {
    toggle(&api, &id, &instance, &ext, &headers, false).await
}

async fn toggle(
    api: &Api,
    id: &str,
    instance: &str,
    ext: &Extensions,
    headers: &HeaderMap,
    pause: bool,
) -> Response {
    respond(async {
        let actor = access::actor(api, caller(api, ext, headers)?, headers)?;
        let key = idempotency_key(headers)?;
        let uc = api.onboarding.lifecycle();
        let new_id = (api.new_id)();
        let result = if pause {
            uc.pause(id, instance, actor, key.as_deref(), new_id).await
        } else {
            uc.resume(id, instance, actor, key.as_deref(), new_id).await
        };
        Ok(accepted(api, result).await)
    })
    .await
}

/// The application's last drift check (the reconciler's, or `onboard drift`'s): every
/// difference between its recorded state and AWS.
#[utoipa::path(
    get,
    path = "/applications/{id}/drift",
    tag = "lifecycle",
    params(("id" = String, Path, description = "The application's id")),
    responses(
        (status = 200, description = "The last report", body = DriftReportDoc),
        (status = 401, description = "No authenticated principal", body = ApiProblem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is neither an owner of the application nor an administrator; nothing was changed", body = ApiProblem, content_type = "application/problem+json"),
        (status = 404, description = "No such application, or no drift check has run yet", body = ApiProblem, content_type = "application/problem+json"),
        (status = 409, description = "The id names a lifecycle saga, not an application", body = ApiProblem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = ApiProblem, content_type = "application/problem+json"),
    )
)]
pub async fn get_drift(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    ext: Extensions,
    headers: HeaderMap,
) -> Response {
    tracing::Span::current().record("saga_id", id.as_str());
    let caller = match caller(&api, &ext, &headers) {
        Ok(c) => c,
        Err(p) => return p.into_response(),
    };
    let record = match api.onboarding.store.get(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return lifecycle_problem(&api, LifecycleError::NotFound(id)).into_response(),
        Err(e) => return ApiProblem::store(e).into_response(),
    };
    if let Err(p) = access::authorize(&api, &caller, &record, Action::Read).await {
        return p.into_response();
    }
    if record.kind != onboard::KIND && record.kind != adopt::KIND {
        // The core's own wording for "a saga, not an application".
        if let Err(e) = current_state(&record) {
            return lifecycle_problem(&api, e.into()).into_response();
        }
    }
    let Some(report) = record.drift else {
        let detail = match &record.drift_failure {
            Some(f) => format!(
                "no drift check has finished for application {id} yet; the last one (at {}) failed: {}",
                f.at, f.error
            ),
            None => format!("no drift check has run for application {id} yet"),
        };
        let fix = record
            .drift_failure
            .as_ref()
            .and_then(|f| f.error.fix.clone())
            .unwrap_or_else(|| {
                format!(
                    "The reconciler checks managed applications periodically; `onboard drift \
                     {id}` checks now."
                )
            });
        return ApiProblem::new(Kind::NotFound, detail)
            .fix(fix)
            .saga(id)
            .into_response();
    };
    let mut body = json!({
        "applicationId": id,
        "checkedAt": report.checked_at,
        "drifted": report.drifted(),
        "fixable": report.fixable(),
        "items": report.items,
    });
    if let Some(failure) = &record.drift_failure {
        // The report above is older than this failed check.
        body["lastFailure"] = json!(failure);
    }
    Json(body).into_response()
}

/// Repair the drift the last check found: a `fix` change saga re-applies the recorded state
/// (missing associations, statements and profile entries added back, extra associations
/// removed, fields edited outside set back); a failure rolls it back to the drifted state.
#[utoipa::path(
    post,
    path = "/applications/{id}/drift/fix",
    tag = "lifecycle",
    params(
        ("id" = String, Path, description = "The application's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe key"),
        ("X-Onboard-Ticket" = Option<String>, Header, description = TICKET_DOC),
    ),
    responses(
        (status = 202, description = "A fix saga is recorded and queued", body = LifecycleAccepted,
            headers(("Location" = String, description = "The fix saga's status URL"))),
        (status = 401, description = "No authenticated principal", body = ApiProblem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is neither an owner of the application nor an administrator; nothing was changed", body = ApiProblem, content_type = "application/problem+json"),
        (status = 404, description = "No such application", body = ApiProblem, content_type = "application/problem+json"),
        (status = 409, description = "No drift check yet, nothing drifted, not fixable in place, offboarded, not an application, or namespace busy", body = ApiProblem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = ApiProblem, content_type = "application/problem+json"),
    )
)]
pub async fn fix_drift(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    ext: Extensions,
    headers: HeaderMap,
) -> Response {
    respond(async {
        let caller = caller(&api, &ext, &headers)?;
        let key = idempotency_key(&headers)?;
        let uc = api.onboarding.lifecycle();
        let (root, _) = uc
            .application(&id)
            .await
            .map_err(|e| Box::new(lifecycle_problem(&api, e)))?;
        // Before saying anything about its drift.
        access::authorize(&api, &caller, &root, Action::Change).await?;
        let conflict = |kind: Kind, detail: String, fix: String| {
            Box::new(ApiProblem::new(kind, detail).fix(fix).saga(id.clone()))
        };
        let Some(report) = root.drift else {
            return Err(conflict(
                Kind::DriftNotChecked,
                format!("no drift check has run for application {id} yet"),
                format!("Check it first (`onboard drift {id}`, or wait for the reconciler)."),
            ));
        };
        if !report.drifted() {
            return Err(conflict(
                Kind::NoDrift,
                format!("the last drift check of application {id} found no difference"),
                format!("Nothing to fix; GET /applications/{id}/drift shows when it was checked."),
            ));
        }
        if !report.fixable() {
            return Err(conflict(
                Kind::DriftNotFixable,
                format!(
                    "application {id} was deleted outside this product; a fix cannot re-create it \
                     with the same id"
                ),
                format!(
                    "Offboard it (DELETE /applications/{id} cleans up what is left), then onboard \
                     it again."
                ),
            ));
        }
        let actor = access::actor(&api, caller, &headers)?;
        let result = uc
            .fix(&id, &report, actor, key.as_deref(), (api.new_id)())
            .await;
        Ok(accepted(&api, result).await)
    })
    .await
}

/// Adopt an application created elsewhere (e.g. in the console): its fields, associations, SLR
/// statements and profile entries are read into a new record, whose id is the application's id
/// from then on.
#[utoipa::path(
    post,
    path = "/applications/adopt",
    tag = "lifecycle",
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe key"),
        ("X-Onboard-Ticket" = Option<String>, Header, description = TICKET_DOC),
    ),
    request_body(content = AdoptRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "An adopt saga is recorded and queued; its id is the application's id", body = LifecycleAccepted,
            headers(("Location" = String, description = "The adopt saga's status URL"))),
        (status = 400, description = "Not a namespace; nothing recorded", body = ApiProblem, content_type = "application/problem+json"),
        (status = 401, description = "No authenticated principal", body = ApiProblem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is neither an owner of the application nor an administrator; nothing was changed", body = ApiProblem, content_type = "application/problem+json"),
        (status = 409, description = "Namespace busy, or the key was reused", body = ApiProblem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = ApiProblem, content_type = "application/problem+json"),
    )
)]
pub async fn adopt(
    State(api): State<Arc<Api>>,
    ext: Extensions,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    respond(async {
        let raw = body(&api, raw)?;
        let actor = access::actor(&api, caller(&api, &ext, &headers)?, &headers)?;
        let key = idempotency_key(&headers)?;
        let req: AdoptRequest = serde_json::from_slice(&raw).map_err(|e| {
            Box::new(invalid(ValidationErrors::new(vec![Problem::new(
                "$",
                format!("is not an adopt request: {e}"),
                "Send {\"namespace\": \"<the application's namespace>\"}.",
            )])))
        })?;
        let result = api
            .onboarding
            .lifecycle()
            .adopt(&req.namespace, actor, key.as_deref(), (api.new_id)())
            .await;
        Ok(accepted(&api, result).await)
    })
    .await
}
