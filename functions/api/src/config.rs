//! Building [`Api`] from environment variables (the Lambda's configuration).
//!
//! | variable | required | meaning |
//! |---|---|---|
//! | `TABLE_NAME` | yes (main) | DynamoDB table of saga records |
//! | `QUEUE_URL` | yes (main) | the worker's FIFO queue |
//! | `WEBHOOK_SECRET` | yes | HMAC secret shared with the ticketing systems (at least 32 bytes) |
//! | `WEBHOOK_SECRET_PREVIOUS` | no | the previous secret, still accepted while senders rotate |
//! | `WEBHOOK_SIGNATURE_HEADER` / `WEBHOOK_TIMESTAMP_HEADER` | no | header names (default `X-Onboard-Signature` / `X-Onboard-Timestamp`) |
//! | `WEBHOOK_TOLERANCE_SECONDS` | no | replay window (default 300) |
//! | `SERVICENOW_SPEC_FIELD` / `JIRA_SPEC_FIELD` | no | where the spec sits in a ticket (default `u_onboarding_spec` / `onboardingSpec`) |
//! | `JIRA_APPROVED_STATUSES` | no | comma-separated status names that mean approved (default `Approved`) |
//! | `BODY_LIMIT_BYTES` | no | largest request body (default 262144) |
//! | `TRUST_PRINCIPAL_HEADER` | no | `true` to accept `X-Onboard-Principal` when the request has no API Gateway identity (local use only; default `false`) |
//! | `ADMIN_PRINCIPALS` | no | comma-separated principals (as recorded: IAM ARN, JWT claim) that may read and change every application and adopt; everyone else only what they own |
//! | `ADMIN_GROUPS` | no | comma-separated groups (JWT `cognito:groups`/`groups` claim, authorizer `groups` field) whose members are administrators |
//! | `METRICS_NAMESPACE` | no | CloudWatch namespace of the EMF metrics |
//! | `PREFLIGHT_FETCH` | no | `true` to fetch the spec's access URL in `POST /preflight` and warn when the agent workspace cannot iframe it (default `false`); public addresses only, every redirect hop checked |
//! | `PREFLIGHT_AWS` | no | `true` to run the saga's preflight in `POST /preflight` against AWS with the function's role (read-only: DescribeInstance, ListApplications, ListRolePolicies/GetRolePolicy, ListSecurityProfileApplications, and SimulatePrincipalPolicy for the caller) and return `findings` (default `false`) |
//!
//! The webhook secret is a plain (KMS-encrypted at rest) environment variable for now; reading
//! it from Secrets Manager or SSM at init is a drop-in change here.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderName;
use onboard_aws::page_fetcher::{FetchLimits, ReqwestPageFetcher};
use onboard_core::access::AccessPolicy;
use onboard_core::clock::Clock;
use onboard_core::idempotency::IdempotencyConfig;
use onboard_core::onboard::{self, OnboardConfig};
use onboard_core::preflight::PageFetcher;
use onboard_core::service::{Onboarding, SagaQueue};
use onboard_core::store::SagaStore;
use onboard_lambda_common::{emf, ConfigError, Emf, Env};

use crate::principal::{PrincipalConfig, DEFAULT_PRINCIPAL_HEADER};
use crate::webhooks::signature::MIN_SECRET_BYTES;
use crate::webhooks::{MappingConfig, SignatureConfig, Source, WebhookConfig};
use crate::{random_saga_id, Api, DEFAULT_BODY_LIMIT};

fn header(env: &Env, name: &str, default: &'static str) -> Result<HeaderName, ConfigError> {
    match env.get(name) {
        None => Ok(HeaderName::from_static(default)),
        Some(raw) => HeaderName::try_from(raw.trim().to_ascii_lowercase()).map_err(|e| {
            ConfigError::Invalid {
                name: name.to_string(),
                value: raw,
                why: e.to_string(),
            }
        }),
    }
}

/// A webhook secret shorter than [`MIN_SECRET_BYTES`] is refused at init: a short shared
/// secret can be guessed offline from one signed request.
fn check_secret_length(name: &str, secret: &str) -> Result<(), ConfigError> {
    if secret.len() >= MIN_SECRET_BYTES {
        return Ok(());
    }
    Err(ConfigError::Invalid {
        name: name.to_string(),
        value: format!("({} bytes, redacted)", secret.len()),
        why: format!(
            "a webhook secret needs at least {MIN_SECRET_BYTES} bytes; generate one with \
             `openssl rand -hex 32` and give the same value to the ticketing systems"
        ),
    })
}

/// The variable holding `source`'s own webhook secret, e.g. `WEBHOOK_SECRET_JIRA`.
pub fn source_secret_var(source: Source) -> String {
    format!("WEBHOOK_SECRET_{}", source.as_str().to_ascii_uppercase())
}

/// The webhook settings from the environment.
pub fn webhooks_from_env(env: &Env) -> Result<WebhookConfig, ConfigError> {
    let secret = env.required(
        "WEBHOOK_SECRET",
        "the HMAC-SHA256 secret shared with the ticketing systems that call /webhooks/{source}",
    )?;
    check_secret_length("WEBHOOK_SECRET", &secret)?;
    let mut signature = SignatureConfig::new(secret.into_bytes());
    if let Some(previous) = env.get("WEBHOOK_SECRET_PREVIOUS") {
        check_secret_length("WEBHOOK_SECRET_PREVIOUS", &previous)?;
        signature.secrets.push(previous.into_bytes());
    }
    // A source's own secrets replace the shared ones for that source.
    for source in [Source::ServiceNow, Source::Jira, Source::Generic] {
        let name = source_secret_var(source);
        let Some(own) = env.get(&name) else { continue };
        check_secret_length(&name, &own)?;
        let mut secrets = vec![own.into_bytes()];
        let previous = format!("{name}_PREVIOUS");
        if let Some(p) = env.get(&previous) {
            check_secret_length(&previous, &p)?;
            secrets.push(p.into_bytes());
        }
        signature
            .by_source
            .insert(source.as_str().to_string(), secrets);
    }
    signature.signature_header = header(
        env,
        "WEBHOOK_SIGNATURE_HEADER",
        crate::webhooks::signature::DEFAULT_SIGNATURE_HEADER,
    )?;
    signature.timestamp_header = header(
        env,
        "WEBHOOK_TIMESTAMP_HEADER",
        crate::webhooks::signature::DEFAULT_TIMESTAMP_HEADER,
    )?;
    signature.tolerance_secs = env.parse_or("WEBHOOK_TOLERANCE_SECONDS", 300u64)?;
    let defaults = MappingConfig::default();
    let mapping = MappingConfig {
        servicenow_spec_field: env
            .get("SERVICENOW_SPEC_FIELD")
            .unwrap_or(defaults.servicenow_spec_field),
        jira_spec_field: env
            .get("JIRA_SPEC_FIELD")
            .unwrap_or(defaults.jira_spec_field),
        jira_approved_statuses: env
            .get("JIRA_APPROVED_STATUSES")
            .map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or(defaults.jira_approved_statuses),
    };
    Ok(WebhookConfig { signature, mapping })
}

/// Whether `POST /preflight` should read AWS (`PREFLIGHT_AWS`); `main` then builds the ports
/// from the SDK configuration.
pub fn preflight_aws_enabled(env: &Env) -> Result<bool, ConfigError> {
    env.flag("PREFLIGHT_AWS", false)
}

/// The API over the given store, queue and clock, configured from the environment.
pub fn api_from_env(
    env: &Env,
    store: Arc<dyn SagaStore>,
    queue: Arc<dyn SagaQueue>,
    clock: Arc<dyn Clock>,
) -> Result<Api, ConfigError> {
    let webhooks = webhooks_from_env(env)?;
    let principal = PrincipalConfig {
        trusted_header: env
            .flag("TRUST_PRINCIPAL_HEADER", false)?
            .then(|| HeaderName::from_static(DEFAULT_PRINCIPAL_HEADER)),
    };
    let namespace = env
        .get("METRICS_NAMESPACE")
        .unwrap_or_else(|| emf::DEFAULT_NAMESPACE.to_string());
    let fetcher: Option<Arc<dyn PageFetcher>> = if env.flag("PREFLIGHT_FETCH", false)? {
        // Public addresses only (the default); 5 s per request keeps a whole redirect chain
        // (bounded at twice that) well inside API Gateway's 30 s integration timeout.
        let limits = FetchLimits {
            timeout: Duration::from_secs(5),
            ..FetchLimits::default()
        };
        let fetcher = ReqwestPageFetcher::new(limits).map_err(|e| ConfigError::Invalid {
            name: "PREFLIGHT_FETCH".to_string(),
            value: "true".to_string(),
            why: e.reason,
        })?;
        Some(Arc::new(fetcher))
    } else {
        None
    };
    Ok(Api {
        onboarding: Onboarding {
            store,
            clock,
            queue,
            definition: Arc::new(onboard::definition(&OnboardConfig::default())),
            idempotency: IdempotencyConfig::default(),
        },
        principal,
        webhooks,
        body_limit: env.parse_or("BODY_LIMIT_BYTES", DEFAULT_BODY_LIMIT)?,
        emf: Emf::stdout(&namespace, "api"),
        new_id: Box::new(random_saga_id),
        fetcher,
        preflight_aws: None,
        access: Arc::new(AccessPolicy::from_lists(
            &env.get("ADMIN_PRINCIPALS").unwrap_or_default(),
            &env.get("ADMIN_GROUPS").unwrap_or_default(),
        )),
    })
}
