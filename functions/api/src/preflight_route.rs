//! `POST /preflight`: a dry run of a submission — validation, namespace availability, the
//! plan in words and, with AWS ports, the saga's own read-only preflight. Records nothing.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{Extensions, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use onboard_core::error::ErrorInfo;
use onboard_core::onboard;
use onboard_core::plan;
use onboard_core::preflight::{self, PageFetcher, PreflightPorts};
use onboard_core::spec::RequestSource;
use onboard_core::validation::Validated;

use crate::problem::{ApiProblem, FieldProblem, Kind};
use crate::routes::{body, caller, spec_with_requester, PlannedStep, Preflight};
use crate::Api;

/// Dry run: validation, namespace availability and the planned steps. Records nothing. When the
/// API has AWS ports (`PREFLIGHT_AWS=true`) it runs the saga's own preflight read-only — every
/// instance exists, is ACTIVE and uses a service-linked role, the SLR policy budget, the
/// namespace, the requested profiles, the caller's permissions (simulated) and, with a page
/// fetcher, framing per instance domain — and returns each finding in `findings`. Without them
/// it calls no AWS API, and a page fetcher (`PREFLIGHT_FETCH=true`) checks framing against a
/// placeholder alias, as `warnings`.
#[utoipa::path(
    post,
    path = "/preflight",
    tag = "applications",
    request_body(content = Object, content_type = "application/json", description = "The application spec, as for POST /applications"),
    responses(
        (status = 200, description = "The findings and the plan (`ok` says whether a submission would be accepted)", body = Preflight),
        (status = 401, description = "No authenticated principal", body = ApiProblem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ApiProblem, content_type = "application/problem+json"),
        (status = 503, description = "AWS throttled or failed a preflight read; retry", body = ApiProblem, content_type = "application/problem+json"),
    )
)]
pub async fn preflight(
    State(api): State<Arc<Api>>,
    ext: Extensions,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    let run = async {
        let raw = body(&api, raw)?;
        let principal = caller(&api, &ext, &headers)?;
        let spec = spec_with_requester(&raw, RequestSource::Portal, &principal.principal, None);
        let validated = spec
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|s| s.validate());
        let mut out = Preflight {
            ok: false,
            namespace: None,
            problems: Vec::new(),
            warnings: Vec::new(),
            plan: Vec::new(),
            findings: Vec::new(),
            preview: None,
        };
        let validated = match validated {
            Ok(v) => v,
            Err(errs) => {
                // The namespace a valid spec would get, so a form can suggest it early.
                out.namespace = spec.ok().and_then(|s| s.effective_namespace().ok());
                out.problems = errs.problems.into_iter().map(FieldProblem::from).collect();
                out.warnings = errs.warnings.into_iter().map(FieldProblem::from).collect();
                return Ok(Json(out).into_response());
            }
        };
        out.namespace = Some(validated.namespace.clone());
        out.warnings = validated
            .warnings
            .iter()
            .cloned()
            .map(FieldProblem::from)
            .collect();
        match api
            .onboarding
            .store
            .namespace_holder(&validated.namespace)
            .await
        {
            Ok(Some(holder)) => out.problems.push(FieldProblem {
                field: "namespace".into(),
                problem: format!("is held by saga {holder}, which has not finished"),
                fix: format!(
                    "Wait until saga {holder} finishes (GET /applications/{holder}); if it is \
                     ROLLBACK_FAILED, fix its cause and re-drive it."
                ),
            }),
            Ok(None) => {}
            Err(e) => return Err(ApiProblem::store(e).into()),
        }
        let mut facts = None;
        if let Some(aws) = &api.preflight_aws {
            let inspection =
                aws_inspection(aws, api.fetcher.as_ref(), &validated, &principal.principal)
                    .await
                    .map_err(|e| Box::new(aws_unavailable(&e)))?;
            out.findings = inspection.findings.clone();
            facts = Some(plan::Facts {
                target: "aws".into(),
                inspection,
                profile_names: Default::default(),
            });
        } else if let Some(fetcher) = &api.fetcher {
            out.warnings
                .extend(embedding_warnings(fetcher.as_ref(), &validated.spec.access_url).await);
        }
        if let Ok(new) = onboard::new_saga("preflight", &validated) {
            let record = api.onboarding.definition.new_record(new, 0);
            out.plan = record
                .nodes
                .iter()
                .map(|n| PlannedStep {
                    step: n.step.clone(),
                    instance: n.target.clone(),
                })
                .collect();
        }
        // A policy that cannot be parsed is already a finding; the preview is then left out.
        out.preview = plan::build(&validated.spec, &validated, facts.as_ref()).ok();
        out.ok = out.problems.is_empty() && !preflight::has_errors(&out.findings);
        Ok::<_, Box<ApiProblem>>(Json(out).into_response())
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// The core's preflight over the API's AWS ports, framing checked against the instances' real
/// domains when a page fetcher is configured; permissions are simulated for the caller's
/// principal (an assumed-role session is mapped to its role). Findings errors first.
async fn aws_inspection(
    aws: &PreflightPorts,
    fetcher: Option<&Arc<dyn PageFetcher>>,
    validated: &Validated,
    principal: &str,
) -> Result<preflight::Inspection, ErrorInfo> {
    let mut ports = aws.clone();
    if ports.fetcher.is_none() {
        ports.fetcher = fetcher.cloned();
    }
    let mut inspection = preflight::inspect(&ports, validated, None, Some(principal)).await?;
    inspection
        .findings
        .sort_by_key(|f| f.severity != preflight::Severity::Error);
    Ok(inspection)
}

/// 503 for a retryable AWS failure during preflight: nothing was decided, ask to retry.
fn aws_unavailable(e: &ErrorInfo) -> ApiProblem {
    tracing::warn!(error = %e, "preflight read failed transiently");
    let mut p = ApiProblem::new(
        Kind::AwsUnavailable,
        format!("preflight could not finish reading AWS: {e}"),
    )
    .fix("Retry the request in a few seconds.");
    p.retry_after_seconds = Some(5);
    p
}

/// The instance alias preflight checks framing against: the API does not call Connect, so it
/// does not know the instances' aliases.
pub const PLACEHOLDER_ALIAS: &str = "instance-alias";

/// Framing warnings for `access_url`, checked against the agent-workspace origins of the
/// placeholder alias; the fix names AWS's wildcard sources, which cover every instance.
async fn embedding_warnings(fetcher: &dyn PageFetcher, access_url: &str) -> Vec<FieldProblem> {
    let domains = preflight::instance_domains(PLACEHOLDER_ALIAS);
    let (findings, _) = preflight::check_embedding(fetcher, access_url, &domains).await;
    let generic = |text: &str| {
        domains.iter().fold(text.to_owned(), |acc, domain| {
            acc.replace(domain.as_str(), &domain.replacen(PLACEHOLDER_ALIAS, "*", 1))
        })
    };
    findings
        .into_iter()
        .map(|f| FieldProblem {
            field: "accessUrl".into(),
            problem: format!(
                "{} (checked with the placeholder alias `{PLACEHOLDER_ALIAS}`, i.e. against AWS's \
                 generic recommendation `frame-ancestors https://*.my.connect.aws \
                 https://*.awsapps.com`: this API does not look up instance aliases)",
                f.evidence
            ),
            fix: generic(&f.fix),
        })
        .collect()
}
