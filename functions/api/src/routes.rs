//! Portal routes: submit, status, list, preflight; plus health, the OpenAPI document and the
//! problem+json 404 for unknown routes.

use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use onboard_core::access::Caller;
use onboard_core::history::RequestedBy;
use onboard_core::idempotency::SubmitError;
use onboard_core::plan;
use onboard_core::preflight::Finding;
use onboard_core::record::{SagaRecord, SagaStatus};
use onboard_core::service::{RedriveFailure, SubmitFailure};
use onboard_core::spec::{parse_spec, ApplicationSpec, RequestSource};
use onboard_core::store::StoreError;
use onboard_core::validation::{Problem, ValidationErrors};
use onboard_lambda_common::Metric;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::access::{self, ReadFilter};
use crate::problem::{ApiProblem, FieldProblem, Kind};
use crate::{principal, Api};
use onboard_core::access::Action;
use onboard_core::service::SagaView;

/// The idempotency header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// 202 answer to a submission.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Submitted {
    pub saga_id: String,
    pub namespace: String,
    /// False when an earlier submission with the same key (or ticket) created this saga.
    pub created: bool,
    /// False when the saga was recorded but the queue refused it; the reconciler queues it
    /// within minutes.
    pub queued: bool,
    /// Where to follow it (also the `Location` header).
    pub status_url: String,
    /// The change ticket, for webhook submissions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<String>,
    /// Non-blocking findings (unknown permission names and the like).
    pub warnings: Vec<FieldProblem>,
}

/// One saga in a listing.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SagaSummary {
    pub id: String,
    pub kind: String,
    pub namespace: String,
    /// PENDING, RUNNING, ROLLING_BACK, SUCCEEDED, ROLLED_BACK, ROLLBACK_FAILED or
    /// NEEDS_ATTENTION.
    pub status: String,
    /// Epoch milliseconds.
    pub created_at: u64,
    pub updated_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<String>,
}

impl From<&SagaRecord> for SagaSummary {
    fn from(r: &SagaRecord) -> Self {
        let by = RequestedBy::of(r);
        SagaSummary {
            id: r.id.clone(),
            kind: r.kind.clone(),
            namespace: r.namespace.clone(),
            status: r.status.as_str().to_string(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            requested_by: by.principal,
            ticket_id: by.ticket_id,
        }
    }
}

/// A page of sagas.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SagaList {
    pub items: Vec<SagaSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Listing parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only sagas in this status (e.g. `ROLLBACK_FAILED`); all statuses when absent.
    pub status: Option<String>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–100 (default 20).
    pub limit: Option<usize>,
    /// Only sagas of this kind: `onboard`, `change`, `offboard` or `adopt`.
    pub kind: Option<String>,
    /// Only sagas on this namespace (exact): an application's whole history.
    pub namespace: Option<String>,
    /// Only sagas this principal asked for (exact).
    pub requester: Option<String>,
}

/// The status page of one saga (`SagaView` of the core).
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = SagaView)]
struct SagaViewDoc {
    id: String,
    kind: String,
    namespace: String,
    /// PENDING, RUNNING, ROLLING_BACK, SUCCEEDED, ROLLED_BACK, ROLLBACK_FAILED or
    /// NEEDS_ATTENTION.
    status: String,
    #[schema(rename = "createdAt")]
    created_at: u64,
    #[schema(rename = "updatedAt")]
    updated_at: u64,
    /// One entry per step and instance: state, attempts, times, output (ARNs), error.
    steps: Vec<Value>,
    /// `applicationArn` and `associations` (instance id → association ARN).
    resources: Value,
    /// The error behind a rollback, with its `fix`.
    #[schema(rename = "lastError")]
    last_error: Option<Value>,
    /// What the operator should do next, when anything.
    #[schema(rename = "nextAction")]
    next_action: Option<String>,
    /// For an application (its onboard or adopt saga): the application as managed now
    /// (fields, instances, paused instances, profiles, `offboarded`).
    application: Option<Value>,
    /// For an application: the last drift check (`checkedAt`, `items`).
    drift: Option<Value>,
    /// For a lifecycle saga (change, offboard): the application it changes.
    parent: Option<String>,
    /// Every transition, oldest first.
    log: Vec<Value>,
}

/// One planned step.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlannedStep {
    pub step: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// What a submission would do.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Preflight {
    /// True when a submission would be accepted now.
    pub ok: bool,
    /// The namespace the application gets (given, or derived from the access URL); also
    /// answered for an invalid spec when it can be told, so a form can suggest it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub problems: Vec<FieldProblem>,
    pub warnings: Vec<FieldProblem>,
    /// The saga's steps in order, one per instance for fan-out steps.
    pub plan: Vec<PlannedStep>,
    /// The saga's preflight against AWS (when the API has AWS ports, `PREFLIGHT_AWS=true`):
    /// `{severity: ERROR|WARNING, check, evidence, fix}` per finding; an error makes `ok` false.
    #[schema(value_type = Vec<Object>)]
    pub findings: Vec<Finding>,
    /// The plan in words, as `onboard plan --output json` prints it: the steps per instance,
    /// the statement each service-linked-role policy gains (before, after and a line diff;
    /// the current policy only when the API read AWS) and the security-profile grants. Absent
    /// when the spec is invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub preview: Option<plan::Plan>,
}

/// Liveness.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// The authenticated caller (principal and groups), or a 401.
pub(crate) fn caller(
    api: &Api,
    ext: &Extensions,
    headers: &HeaderMap,
) -> Result<Caller, Box<ApiProblem>> {
    let groups = principal::groups(ext, headers, &api.principal);
    principal::principal(ext, headers, &api.principal)
        .map(|p| Caller::new(p).with_groups(groups))
        .ok_or_else(|| {
            let how = match &api.principal.trusted_header {
                Some(h) => {
                    format!("call through API Gateway with an authorizer, or send the {h} header")
                }
                None => "call through API Gateway with IAM or JWT authorization".to_string(),
            };
            ApiProblem::new(
                Kind::Unauthenticated,
                "the request carries no authenticated identity",
            )
            .fix(format!("Authenticate: {how}."))
            .into()
        })
}

/// The body, or 413/400.
pub(crate) fn body(
    api: &Api,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, Box<ApiProblem>> {
    body.map_err(|r| ApiProblem::body_rejection(r.status(), r.body_text(), api.body_limit).into())
}

/// Parse a spec from a JSON object after setting its `requester` (the authenticated caller
/// wins over whatever the body says).
pub(crate) fn spec_with_requester(
    raw: &[u8],
    source: RequestSource,
    principal: &str,
    ticket_id: Option<&str>,
) -> Result<ApplicationSpec, ValidationErrors> {
    let mut value: Value = match serde_json::from_slice(raw) {
        Ok(v @ Value::Object(_)) => v,
        // Not an object: the spec parser explains exactly what is wrong.
        _ => {
            return parse_spec(raw).and_then(|_| {
                Err(ValidationErrors::from(Problem::new(
                    "$",
                    "the body is not a JSON object",
                    "Send the spec as one JSON object.",
                )))
            })
        }
    };
    let body_ticket = value
        .get("requester")
        .and_then(|r| r.get("ticketId"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let ticket = ticket_id.map(str::to_string).or(body_ticket);
    let mut requester = serde_json::json!({ "source": source, "principal": principal });
    if let Some(t) = ticket {
        requester["ticketId"] = Value::from(t);
    }
    if let Some(obj) = value.as_object_mut() {
        obj.insert("requester".into(), requester);
    }
    let bytes = serde_json::to_vec(&value).unwrap_or_default();
    parse_spec(&bytes)
}

pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Box<ApiProblem>> {
    let Some(v) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = v.to_str().unwrap_or("").trim();
    let valid = !key.is_empty()
        && key.len() <= 255
        && key.bytes().all(|b| b.is_ascii_graphic())
        && !key.starts_with("ticket:");
    if !valid {
        return Err(ApiProblem::new(
            Kind::BadRequest,
            "the Idempotency-Key header is not 1–255 visible ASCII characters, or starts with the \
             reserved prefix `ticket:`",
        )
        .fix("Send a UUID (or another unique token) as Idempotency-Key.")
        .into());
    }
    Ok(Some(key.to_string()))
}

/// Record and enqueue a parsed spec; shared by the portal route and the webhooks.
pub(crate) async fn accept(api: &Api, spec: &ApplicationSpec, key: Option<&str>) -> Response {
    let span = tracing::Span::current();
    if let Some(t) = &spec.requester.ticket_id {
        span.record("ticket_id", t.as_str());
    }
    let result = api.onboarding.submit(spec, key, || (api.new_id)()).await;
    let (saga_id, namespace, created, queued, warnings) = match result {
        Ok(a) => (a.saga_id, a.namespace, a.created, true, a.warnings),
        Err(SubmitFailure::NotQueued { saga_id, error }) => {
            tracing::error!(saga_id = %saga_id, error = %error, "saga recorded but not queued; the reconciler will queue it");
            api.emf
                .emit(&[], &[Metric::count("EnqueueFailures", 1.0)], &[]);
            let namespace = spec.effective_namespace().unwrap_or_default();
            (saga_id, namespace, true, false, Vec::new())
        }
        Err(SubmitFailure::Invalid(errors)) => {
            return ApiProblem::validation(errors).into_response()
        }
        Err(SubmitFailure::Refused(err)) => return refused(err).into_response(),
    };
    span.record("saga_id", saga_id.as_str());
    span.record("namespace", namespace.as_str());
    if created {
        api.emf.emit(
            &[],
            &[Metric::count("SagasSubmitted", 1.0)],
            &[("sagaId", Value::from(saga_id.as_str()))],
        );
    }
    tracing::info!(created, queued, "submission accepted");
    let status_url = format!("/applications/{saga_id}");
    let body = Submitted {
        saga_id,
        namespace,
        created,
        queued,
        status_url: status_url.clone(),
        ticket_id: spec.requester.ticket_id.clone(),
        warnings: warnings.into_iter().map(FieldProblem::from).collect(),
    };
    let mut resp = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&status_url) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

pub(crate) fn refused(err: SubmitError) -> ApiProblem {
    let detail = err.to_string();
    match err {
        SubmitError::PayloadMismatch { saga_id, .. } => {
            let p = ApiProblem::new(Kind::IdempotencyConflict, detail).fix(
                "Repeat the original request unchanged to get its saga, or use a new \
                 Idempotency-Key (or ticket) for a different request.",
            );
            match saga_id {
                Some(id) => p.saga(id),
                None => p,
            }
        }
        SubmitError::InProgress { retry_after_ms, .. } => {
            let mut p = ApiProblem::new(Kind::InProgress, detail)
                .fix("Retry the same request after the Retry-After delay.");
            p.retry_after_seconds = Some(retry_after_ms.div_ceil(1000).max(1));
            p
        }
        SubmitError::NamespaceBusy { saga_id, .. } => ApiProblem::new(Kind::NamespaceBusy, detail)
            .fix(format!(
                "Wait until saga {saga_id} finishes (GET /applications/{saga_id}); if it is \
                 ROLLBACK_FAILED, fix its cause and re-drive it."
            ))
            .saga(saga_id),
        SubmitError::Store(e) => ApiProblem::store(e),
    }
}

/// Submit an application for onboarding.
#[utoipa::path(
    post,
    path = "/applications",
    tag = "applications",
    request_body(content = Object, content_type = "application/json",
        description = "The application spec (displayName, accessUrl, instances, …). `requester` \
                       is set from the authenticated caller."),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Repeat-safe key: the same key and body return the same saga; the same key \
                       with another body is 409. Defaults to the spec's requester.ticketId.")),
    responses(
        (status = 202, description = "Recorded and queued", body = Submitted,
            headers(("Location" = String, description = "The saga's status URL"))),
        (status = 400, description = "Invalid spec: every problem with its fix", body = ApiProblem, content_type = "application/problem+json"),
        (status = 401, description = "No authenticated principal", body = ApiProblem, content_type = "application/problem+json"),
        (status = 409, description = "Key reused with another body, request in progress, or namespace busy", body = ApiProblem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ApiProblem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = ApiProblem, content_type = "application/problem+json"),
    )
)]
pub async fn submit(
    State(api): State<Arc<Api>>,
    ext: Extensions,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    let run = async {
        let raw = body(&api, raw)?;
        let principal = caller(&api, &ext, &headers)?;
        let key = idempotency_key(&headers)?;
        let spec = spec_with_requester(&raw, RequestSource::Portal, &principal.principal, None)
            .map_err(ApiProblem::validation)?;
        Ok::<_, Box<ApiProblem>>(accept(&api, &spec, key.as_deref()).await)
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// A saga's status: steps per instance, resource ARNs, last error and the next action.
#[utoipa::path(
    get,
    path = "/applications/{id}",
    tag = "applications",
    params(("id" = String, Path, description = "The saga id from the submission")),
    responses(
        (status = 200, description = "The status page", body = SagaViewDoc),
        (status = 401, description = "No authenticated principal", body = ApiProblem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is neither an owner of the application nor an administrator; nothing was changed", body = ApiProblem, content_type = "application/problem+json"),
        (status = 404, description = "No such saga", body = ApiProblem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = ApiProblem, content_type = "application/problem+json"),
    )
)]
pub async fn get_application(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    ext: Extensions,
    headers: HeaderMap,
) -> Response {
    tracing::Span::current().record("saga_id", id.as_str());
    let run = async {
        let caller = caller(&api, &ext, &headers)?;
        let (record, _) = access::saga_for(&api, &caller, &id, Action::Read).await?;
        tracing::Span::current().record("namespace", record.namespace.as_str());
        Ok::<_, Box<ApiProblem>>(Json(SagaView::from_record(&record)).into_response())
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// Re-drive a ROLLBACK_FAILED saga (its rollback resumes from the undo that failed) or a
/// NEEDS_ATTENTION offboard (it carries on forward) after the cause was fixed.
#[utoipa::path(
    post,
    path = "/applications/{id}/retry",
    tag = "applications",
    params(("id" = String, Path, description = "The saga id")),
    responses(
        (status = 202, description = "The re-drive is queued; poll the Location"),
        (status = 401, description = "No authenticated principal", body = ApiProblem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is neither an owner of the application nor an administrator; nothing was changed", body = ApiProblem, content_type = "application/problem+json"),
        (status = 404, description = "No such saga", body = ApiProblem, content_type = "application/problem+json"),
        (status = 409, description = "The saga is not ROLLBACK_FAILED or NEEDS_ATTENTION", body = ApiProblem, content_type = "application/problem+json"),
        (status = 503, description = "Store or queue unavailable", body = ApiProblem, content_type = "application/problem+json"),
    )
)]
pub async fn retry(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    ext: Extensions,
    headers: HeaderMap,
) -> Response {
    tracing::Span::current().record("saga_id", id.as_str());
    let checked = async {
        let caller = caller(&api, &ext, &headers)?;
        access::saga_for(&api, &caller, &id, Action::Retry).await
    };
    let grant = match checked.await {
        Ok((_, g)) => g,
        Err(p) => return p.into_response(),
    };
    match api.onboarding.redrive_by(&id, &grant.to_string()).await {
        Ok(message) => {
            tracing::Span::current().record("namespace", message.namespace.as_str());
            tracing::info!("re-drive queued");
            let status_url = format!("/applications/{id}");
            let mut resp = (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({"sagaId": id, "statusUrl": status_url})),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&status_url) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            resp
        }
        Err(RedriveFailure::NotFound(_)) => {
            ApiProblem::new(Kind::NotFound, format!("saga {id} does not exist"))
                .fix("Use the sagaId returned by POST /applications.")
                .into_response()
        }
        Err(e @ RedriveFailure::NotRedrivable { .. }) => {
            ApiProblem::new(Kind::WrongState, e.to_string())
                .fix(NOT_REDRIVABLE_FIX)
                .saga(id)
                .into_response()
        }
        Err(RedriveFailure::NotQueued(e)) => ApiProblem::store(e).into_response(),
        Err(RedriveFailure::Store(e)) => ApiProblem::store(e).into_response(),
    }
}

const NOT_REDRIVABLE_FIX: &str =
    "Only a ROLLBACK_FAILED or NEEDS_ATTENTION saga needs a re-drive; GET the saga to see its status.";

/// The statuses a listing walks, and where in them a cursor points.
fn decode_cursor(cursor: &str) -> Option<(SagaStatus, Option<String>)> {
    let raw = String::from_utf8(hex::decode(cursor).ok()?).ok()?;
    let (status, inner) = raw.split_once('~')?;
    Some((
        SagaStatus::parse(status)?,
        (!inner.is_empty()).then(|| inner.to_string()),
    ))
}

fn encode_cursor(status: SagaStatus, inner: Option<&str>) -> String {
    hex::encode(format!("{}~{}", status.as_str(), inner.unwrap_or("")))
}

/// List sagas, oldest update first within each status, optionally only one kind, namespace or
/// requester. An administrator sees every saga; anyone else only the sagas of applications they
/// own (or whose owner group they are in). Filtered listings read a bounded number of store
/// pages per request, so a page may hold fewer than `limit` items before the last: follow
/// `nextCursor` until it is absent.
#[utoipa::path(
    get,
    path = "/applications",
    tag = "applications",
    params(ListParams),
    responses(
        (status = 200, description = "One page", body = SagaList),
        (status = 401, description = "No authenticated principal", body = ApiProblem, content_type = "application/problem+json"),
        (status = 400, description = "Bad status, cursor or limit", body = ApiProblem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = ApiProblem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(api): State<Arc<Api>>,
    ext: Extensions,
    headers: HeaderMap,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Response {
    let run = async {
        let caller = caller(&api, &ext, &headers).map_err(|p| *p)?;
        let mut filter = ReadFilter::new(&api, &caller);
        let Query(params) = params.map_err(|e| {
            ApiProblem::new(
                Kind::BadRequest,
                format!("the query string is invalid: {}", e.body_text()),
            )
            .fix("Use ?status=STATUS&limit=N&cursor=NEXT_CURSOR.")
        })?;
        let limit = params.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(ApiProblem::new(
                Kind::BadRequest,
                format!("limit {limit} is out of range"),
            )
            .fix("Use a limit from 1 to 100."));
        }
        let statuses: Vec<SagaStatus> = match params.status.as_deref() {
            None | Some("") => SagaStatus::ALL.to_vec(),
            Some(s) => vec![SagaStatus::parse(&s.to_ascii_uppercase()).ok_or_else(|| {
                ApiProblem::new(Kind::BadRequest, format!("status {s:?} is not a saga status")).fix(
                    "Use PENDING, RUNNING, ROLLING_BACK, SUCCEEDED, ROLLED_BACK, ROLLBACK_FAILED or \
                     NEEDS_ATTENTION.",
                )
            })?],
        };
        let bad_cursor = || {
            ApiProblem::new(
                Kind::BadRequest,
                "the cursor is not one this listing returned",
            )
            .fix("Pass back nextCursor unchanged, with the same status filter.")
        };
        let (mut idx, mut inner) = match params.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => (0, None),
            Some(c) => {
                let (status, inner) = decode_cursor(c).ok_or_else(bad_cursor)?;
                let idx = statuses
                    .iter()
                    .position(|s| *s == status)
                    .ok_or_else(bad_cursor)?;
                (idx, inner)
            }
        };
        let mut items = Vec::new();
        // A non-administrator's listing skips what they may not read; it reads at most this
        // many store pages per request and hands back a cursor for the rest.
        let wanted =
            |v: &Option<String>| v.as_deref().filter(|v| !v.is_empty()).map(str::to_string);
        let (kind, namespace, requester) = (
            wanted(&params.kind),
            wanted(&params.namespace),
            wanted(&params.requester),
        );
        let narrowed = kind.is_some() || namespace.is_some() || requester.is_some();
        let matches = |s: &SagaSummary| {
            kind.as_ref().is_none_or(|k| s.kind.eq_ignore_ascii_case(k))
                && namespace.as_ref().is_none_or(|n| &s.namespace == n)
                && requester
                    .as_ref()
                    .is_none_or(|r| s.requested_by.as_ref() == Some(r))
        };
        let mut pages_left = if filter.sees_everything() && !narrowed {
            usize::MAX
        } else {
            10
        };
        while idx < statuses.len() && items.len() < limit && pages_left > 0 {
            pages_left -= 1;
            let page = match api
                .onboarding
                .store
                .list_by_status(statuses[idx], limit - items.len(), inner.take())
                .await
            {
                Ok(p) => p,
                Err(StoreError::Invalid(_)) => return Err(bad_cursor()),
                Err(e) => return Err(ApiProblem::store(e)),
            };
            for record in &page.items {
                let summary = SagaSummary::from(record);
                if matches(&summary) && filter.may_read(record).await? {
                    items.push(summary);
                }
            }
            match page.next {
                Some(next) => inner = Some(next),
                None => idx += 1,
            }
        }
        let next_cursor =
            (idx < statuses.len()).then(|| encode_cursor(statuses[idx], inner.as_deref()));
        Ok(Json(SagaList { items, next_cursor }).into_response())
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// Liveness: the function is up (no dependency is called).
#[utoipa::path(get, path = "/health", tag = "meta",
    responses((status = 200, description = "Up", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub async fn openapi_json() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let doc = DOC.get_or_init(|| crate::openapi().to_json().unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], doc.clone()).into_response()
}

/// 405 for a known route asked with another method, as problem+json (axum's own answer has no
/// body, which a client cannot act on).
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    ApiProblem::new(
        Kind::MethodNotAllowed,
        format!("{} does not take {method}", uri.path()),
    )
    .fix("See GET /openapi.json for the methods of each route.")
    .into_response()
}

/// 404 for anything else, as problem+json.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    ApiProblem::new(Kind::NotFound, format!("no route for {}", uri.path()))
        .fix("See GET /openapi.json for the routes.")
        .into_response()
}
