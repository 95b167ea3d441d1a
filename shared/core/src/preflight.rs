//! Preflight: the checks the console's documentation asks people to make by hand, made before
//! any side effect. Each problem is a [`Finding`] with a severity (an error stops the saga, a
//! warning is recorded), the evidence, and the fix.
//!
//! * [`evaluate_framing`]: the pure Content-Security-Policy `frame-ancestors` /
//!   `X-Frame-Options` evaluator (CSP3 source matching, HTML's X-Frame-Options algorithm).
//! * [`check_embedding`], [`check_instance`], [`check_namespace`], [`check_policy_budget`] and
//!   [`check_permissions`]: checks over the ports, each built on a pure function of what the
//!   ports returned ([`instance_findings`], [`namespace_findings`], [`predict_budget`],
//!   [`permission_findings`]).
//! * [`inspect`]: the one gathering routine the saga's `validate` step, `POST /preflight` and
//!   `onboard plan` share, so each check is defined once.
//!
//! The HTTP fetch ([`PageFetcher`]) and the IAM simulation ([`PermissionSimulator`]) are ports
//! here so the core stays free of HTTP clients and SDKs; adapters live in `onboard-aws`.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{ErrorInfo, ErrorKind};
use crate::onboard::SAGA_TAG;
use crate::policy::{self, INLINE_POLICY_BUDGET};
use crate::ports::{AppIntegrationsPort, ApplicationInfo, ConnectPort, IamPort, InstanceInfo};

mod inspect;
pub use inspect::{
    inspect, DomainVerdict, Inspection, InstanceReport, NamespaceOwner, PreflightPorts,
    ProfileReport,
};

// ---------------------------------------------------------------------------------------------
// Findings
// ---------------------------------------------------------------------------------------------

/// How bad a finding is: an error stops the saga, a warning is only recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Error,
    Warning,
}

/// One thing preflight found: what, the evidence, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub severity: Severity,
    /// Which check, e.g. `instance`, `namespace`, `embedding`, `permissions`, `policy-budget`.
    pub check: String,
    pub evidence: String,
    pub fix: String,
}

impl Finding {
    pub fn error(check: &str, evidence: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            check: check.to_owned(),
            evidence: evidence.into(),
            fix: fix.into(),
        }
    }

    pub fn warning(check: &str, evidence: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            check: check.to_owned(),
            evidence: evidence.into(),
            fix: fix.into(),
        }
    }
}

/// Whether any finding stops the saga.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

// ---------------------------------------------------------------------------------------------
// Framing: CSP frame-ancestors and X-Frame-Options
// ---------------------------------------------------------------------------------------------

/// Whether a page can be iframed by a given ancestor origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FrameDecision {
    Allowed,
    Blocked,
    Unknown,
}

/// The decision, the header text it rests on, and (unless allowed) what to ask of the app's
/// developer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrameVerdict {
    pub decision: FrameDecision,
    pub evidence: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// A parsed origin (`scheme://host[:port]`), lower-cased, with the port made explicit.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "https" | "wss" => Some(443),
        "http" | "ws" => Some(80),
        _ => None,
    }
}

impl Origin {
    fn parse(text: &str) -> Option<Self> {
        let url = url::Url::parse(text.trim()).ok()?;
        let scheme = url.scheme().to_ascii_lowercase();
        let host = url.host_str()?.to_ascii_lowercase();
        let port = url.port().or_else(|| default_port(&scheme))?;
        Some(Self { scheme, host, port })
    }

    fn serialize(&self) -> String {
        if default_port(&self.scheme) == Some(self.port) {
            format!("{}://{}", self.scheme, self.host)
        } else {
            format!("{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// One policy's directives (first occurrence of a name wins, as CSP says).
fn parse_policy(policy: &str) -> BTreeMap<String, String> {
    let mut directives = BTreeMap::new();
    for directive in policy.split(';') {
        let directive = directive.trim_matches(is_csp_ws);
        if directive.is_empty() {
            continue;
        }
        let (name, value) = match directive.find(is_csp_ws) {
            Some(i) => (&directive[..i], directive[i..].trim_matches(is_csp_ws)),
            None => (directive, ""),
        };
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            continue;
        }
        directives
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| value.to_owned());
    }
    directives
}

fn is_csp_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')
}

fn scheme_part_matches(pattern: &str, scheme: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    pattern == scheme
        || (pattern == "http" && scheme == "https")
        || (pattern == "ws" && matches!(scheme, "wss" | "http" | "https"))
        || (pattern == "wss" && scheme == "https")
}

fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn host_part_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    if pattern == "*" {
        return true;
    }
    if let Some(rest) = pattern.strip_prefix("*.") {
        return host.len() > rest.len() + 1
            && host.ends_with(rest)
            && host[..host.len() - rest.len()].ends_with('.');
    }
    // IP addresses only match exactly too; nothing more to do for frame-ancestors.
    pattern == host
}

fn valid_host_pattern(pattern: &str) -> bool {
    let body = if pattern == "*" {
        return true;
    } else {
        pattern.strip_prefix("*.").unwrap_or(pattern)
    };
    !body.is_empty()
        && body.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Whether one source expression of a `frame-ancestors` list matches `ancestor`, for a page
/// whose own origin is `page` (used by `'self'` and by scheme-less host sources).
fn source_matches(expr: &str, ancestor: &Origin, page: Option<&Origin>) -> bool {
    let lower = expr.to_ascii_lowercase();
    if lower == "*" {
        return matches!(ancestor.scheme.as_str(), "http" | "https")
            || page.is_some_and(|p| p.scheme == ancestor.scheme);
    }
    if lower == "'self'" {
        return page.is_some_and(|p| {
            p == ancestor
                || (p.scheme == "http"
                    && ancestor.scheme == "https"
                    && p.host == ancestor.host
                    && (p.port == 80 || p.port == ancestor.port))
        });
    }
    if lower.starts_with('\'') {
        // 'none', 'unsafe-inline', nonces, hashes...: never match an ancestor.
        return false;
    }
    // scheme-source: `https:`
    if let Some(scheme) = lower.strip_suffix(':') {
        return is_scheme(scheme) && scheme_part_matches(scheme, &ancestor.scheme);
    }
    // host-source: [scheme "://"] host [":" port] [path]
    let (scheme, rest) = match lower.find("://") {
        Some(i) => (Some(&lower[..i]), &lower[i + 3..]),
        None => (None, lower.as_str()),
    };
    if let Some(s) = scheme {
        if !is_scheme(s) || !scheme_part_matches(s, &ancestor.scheme) {
            return false;
        }
    } else {
        let self_scheme = page.map_or("https", |p| p.scheme.as_str());
        let ok =
            self_scheme == ancestor.scheme || (self_scheme == "http" && ancestor.scheme == "https");
        if !ok {
            return false;
        }
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (host, port) = match authority.rfind(':') {
        Some(i) => (&authority[..i], Some(&authority[i + 1..])),
        None => (authority, None),
    };
    if !valid_host_pattern(host) || !host_part_matches(host, &ancestor.host) {
        return false;
    }
    let port_ok = match port {
        None => default_port(&ancestor.scheme) == Some(ancestor.port),
        Some("*") => true,
        Some(p) => match p.parse::<u16>() {
            Ok(n) => {
                n == ancestor.port
                    || (n == 80 && ancestor.scheme == "https" && ancestor.port == 443)
            }
            Err(_) => false,
        },
    };
    if !port_ok {
        return false;
    }
    // The ancestor is compared as its origin, whose path is "/": a source path other than "/"
    // (or a prefix ending in "/") can never match.
    path.is_empty() || path == "/"
}

/// Whether a `frame-ancestors` source list allows `ancestor`.
fn source_list_allows(list: &str, ancestor: &Origin, page: Option<&Origin>) -> bool {
    let tokens: Vec<&str> = list.split(is_csp_ws).filter(|t| !t.is_empty()).collect();
    if tokens.len() == 1 && tokens[0].eq_ignore_ascii_case("'none'") {
        return false;
    }
    tokens.iter().any(|t| source_matches(t, ancestor, page))
}

fn header_values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

fn frame_ancestors_fix(ancestor: &str, blocking: &[String]) -> String {
    let mut fix = format!(
        "Ask the app's developer to allow the agent workspace as a frame ancestor: send the HTTP \
         response header `Content-Security-Policy: frame-ancestors {ancestor}` (or AWS's \
         recommendation `frame-ancestors https://*.my.connect.aws https://*.awsapps.com`)"
    );
    if !blocking.is_empty() {
        fix.push_str(&format!(
            ", i.e. add the source `{ancestor}` to the frame-ancestors of every policy that \
             blocks it ({})",
            blocking.join(" | ")
        ));
    }
    fix.push_str(
        ". An app may deliberately allow only Connect; if it already works in the agent \
         workspace, ignore this warning.",
    );
    fix
}

/// Decide whether the page whose final response carried `headers` (name, value pairs, any
/// case, repeated names kept) can be iframed by `ancestor_origin`, e.g.
/// `https://alias.my.connect.aws`. `page_url` is the page's final URL (for `'self'`,
/// `SAMEORIGIN` and scheme-less sources).
///
/// Every enforced `Content-Security-Policy` (each header, and each comma-separated policy in
/// a header) with a `frame-ancestors` directive must allow the ancestor; such a directive makes
/// `X-Frame-Options` irrelevant. Report-only policies are ignored. Otherwise `X-Frame-Options`
/// is applied as HTML specifies (`DENY` and `SAMEORIGIN` block, conflicting values block,
/// unknown values are ignored); the obsolete `ALLOW-FROM` gives [`FrameDecision::Unknown`].
/// Never panics, whatever the input.
pub fn evaluate_framing(
    headers: &[(String, String)],
    page_url: &str,
    ancestor_origin: &str,
) -> FrameVerdict {
    let Some(ancestor) = Origin::parse(ancestor_origin) else {
        return FrameVerdict {
            decision: FrameDecision::Unknown,
            evidence: format!("the ancestor origin {ancestor_origin:?} is not a URL origin"),
            fix: None,
        };
    };
    let ancestor_text = ancestor.serialize();
    let page = Origin::parse(page_url);

    let mut with_fa = 0usize;
    let mut blocking = Vec::new();
    let mut allowing = Vec::new();
    for header in header_values(headers, "content-security-policy") {
        for policy in header.split(',') {
            let directives = parse_policy(policy);
            let Some(list) = directives.get("frame-ancestors") else {
                continue;
            };
            with_fa += 1;
            let shown = format!("frame-ancestors {list}").trim().to_owned();
            if source_list_allows(list, &ancestor, page.as_ref()) {
                allowing.push(shown);
            } else {
                blocking.push(shown);
            }
        }
    }
    if with_fa > 0 {
        return if blocking.is_empty() {
            FrameVerdict {
                decision: FrameDecision::Allowed,
                evidence: format!(
                    "Content-Security-Policy {} allows {ancestor_text}",
                    allowing.join(" and ")
                ),
                fix: None,
            }
        } else {
            FrameVerdict {
                decision: FrameDecision::Blocked,
                evidence: format!(
                    "Content-Security-Policy {} does not allow {ancestor_text}",
                    blocking.join(" and ")
                ),
                fix: Some(frame_ancestors_fix(&ancestor_text, &blocking)),
            }
        };
    }

    let raw_xfo = header_values(headers, "x-frame-options");
    let values: BTreeSet<String> = raw_xfo
        .iter()
        .flat_map(|v| v.split(','))
        .map(|v| v.trim_matches(is_csp_ws).to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect();
    let shown = format!("X-Frame-Options: {}", raw_xfo.join(", "));
    let xfo_fix = || {
        Some(format!(
            "Ask the app's developer to drop `X-Frame-Options` (or keep it for other sites) and \
             send `Content-Security-Policy: frame-ancestors {ancestor_text}`, which browsers \
             apply instead of X-Frame-Options."
        ))
    };
    let blocked = |why: &str| FrameVerdict {
        decision: FrameDecision::Blocked,
        evidence: format!("{shown} {why} (no CSP frame-ancestors)"),
        fix: xfo_fix(),
    };
    if values.len() > 1 {
        if values
            .iter()
            .any(|v| matches!(v.as_str(), "deny" | "sameorigin" | "allowall"))
        {
            return blocked("has conflicting values, which browsers treat as DENY");
        }
        return FrameVerdict {
            decision: FrameDecision::Allowed,
            evidence: format!("{shown} has only unrecognised values, which browsers ignore"),
            fix: None,
        };
    }
    match values.iter().next().map(String::as_str) {
        None => FrameVerdict {
            decision: FrameDecision::Allowed,
            evidence: "no Content-Security-Policy frame-ancestors and no X-Frame-Options".into(),
            fix: None,
        },
        Some("deny") => blocked("blocks every frame"),
        Some("sameorigin") => {
            if page.as_ref() == Some(&ancestor) {
                FrameVerdict {
                    decision: FrameDecision::Allowed,
                    evidence: format!("{shown} and the page is on {ancestor_text} itself"),
                    fix: None,
                }
            } else {
                blocked(&format!("blocks {ancestor_text}, another origin"))
            }
        }
        Some(v) if v.starts_with("allow-from") => FrameVerdict {
            decision: FrameDecision::Unknown,
            evidence: format!(
                "{shown}: ALLOW-FROM is obsolete; modern browsers ignore it, older ones honour it"
            ),
            fix: xfo_fix(),
        },
        Some(_) => FrameVerdict {
            decision: FrameDecision::Allowed,
            evidence: format!("{shown} is not a recognised value; browsers ignore it"),
            fix: None,
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------------

/// The final response of fetching a page (after redirects).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchedHeaders {
    /// The URL of the final response.
    pub final_url: String,
    pub status: u16,
    /// Every header of the final response, repeated names kept, in order.
    pub headers: Vec<(String, String)>,
    /// The URLs redirected through, in order (not counting the first).
    pub redirects: Vec<String>,
}

/// Why a page could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct FetchError {
    pub reason: String,
}

/// Fetches a page's response headers: bounded redirects, a timeout, a size limit, and no
/// credentials sent.
#[async_trait]
pub trait PageFetcher: Send + Sync {
    async fn fetch_headers(&self, url: &str) -> Result<FetchedHeaders, FetchError>;
}

/// IAM's decision for one action on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Decision {
    Allowed,
    ExplicitDeny,
    ImplicitDeny,
}

/// Actions to simulate on a set of resources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionRequest {
    pub actions: Vec<String>,
    pub resources: Vec<String>,
}

/// One simulated decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimulatedDecision {
    pub action: String,
    pub resource: String,
    pub decision: Decision,
}

/// Simulates a principal's identity policies (IAM `SimulatePrincipalPolicy`). Never performs
/// the actions.
#[async_trait]
pub trait PermissionSimulator: Send + Sync {
    async fn simulate(
        &self,
        principal_arn: &str,
        requests: &[ActionRequest],
    ) -> Result<Vec<SimulatedDecision>, ErrorInfo>;
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

/// Marks a Connect service-linked role in `DescribeInstance.ServiceRole`.
pub const SLR_MARKER: &str =
    ":role/aws-service-role/connect.amazonaws.com/AWSServiceRoleForAmazonConnect_";

/// The agent-workspace origins of an instance: `https://ALIAS.my.connect.aws` and the older
/// `https://ALIAS.awsapps.com`.
pub fn instance_domains(alias: &str) -> Vec<String> {
    vec![
        format!("https://{alias}.my.connect.aws"),
        format!("https://{alias}.awsapps.com"),
    ]
}

/// The role name of an IAM role ARN (the part after the last `/`).
pub fn role_name(role_arn: &str) -> &str {
    role_arn.rsplit('/').next().unwrap_or(role_arn)
}

/// Instance exists, is ACTIVE, uses a service-linked role, and its domains are known. Returns
/// the instance when it could be described. Any failure to describe it is a finding here;
/// [`inspect`] instead returns retryable failures as errors so a saga can retry them.
pub async fn check_instance(
    connect: &dyn ConnectPort,
    instance_id: &str,
) -> (Vec<Finding>, Option<InstanceInfo>) {
    match connect.describe_instance(instance_id).await {
        Ok(info) => (instance_findings(instance_id, &info), Some(info)),
        Err(e) => (vec![describe_failure(instance_id, &e)], None),
    }
}

/// The finding for an instance that could not be described (not found, denied, ...).
pub fn describe_failure(instance_id: &str, e: &ErrorInfo) -> Finding {
    if e.kind == ErrorKind::NotFound {
        return Finding::error(
            "instance",
            format!(
                "Connect instance {instance_id} was not found: {}",
                e.message
            ),
            "Check the instance id and the Region/account you are onboarding into.",
        );
    }
    Finding::error(
        "instance",
        format!("DescribeInstance {instance_id} failed: {e}"),
        e.fix.clone().unwrap_or_else(|| {
            "Make sure the caller may call connect:DescribeInstance and retry.".into()
        }),
    )
}

/// What is wrong with a described instance: not ACTIVE, no service-linked role, no alias.
pub fn instance_findings(instance_id: &str, info: &InstanceInfo) -> Vec<Finding> {
    let mut findings = Vec::new();
    if info.status != "ACTIVE" {
        findings.push(Finding::error(
            "instance",
            format!(
                "instance {instance_id} has status {}, not ACTIVE",
                info.status
            ),
            "Wait until the instance is ACTIVE (or pick an active instance) and retry.",
        ));
    }
    if slr_of(info).is_none() {
        findings.push(Finding::error(
            "instance",
            format!(
                "instance {instance_id} does not use a service-linked role (ServiceRole: {}); \
                 third-party applications can only be added to instances with one, so it must \
                 be migrated first",
                info.service_role.as_deref().unwrap_or("none")
            ),
            "Migrate the instance to the Amazon Connect service-linked role: in the Amazon \
             Connect console open the instance's account overview and choose \"Create \
             service-linked role\", then retry (or remove the instance from the spec).",
        ));
    }
    if info.alias.as_deref().is_none_or(str::is_empty) {
        findings.push(Finding::warning(
            "instance",
            format!("instance {instance_id} has no alias, so its agent-workspace domain is unknown"),
            "Embedding cannot be checked for this instance; open the app in its agent workspace to check it.",
        ));
    }
    findings
}

/// The instance's service-linked-role ARN, when `ServiceRole` is the Connect SLR.
pub fn slr_of(info: &InstanceInfo) -> Option<&str> {
    info.service_role
        .as_deref()
        .filter(|r| r.contains(SLR_MARKER))
}

/// The namespace is free, or owned by the application this same saga created.
pub async fn check_namespace(
    apps: &dyn AppIntegrationsPort,
    namespace: &str,
    saga_id: Option<&str>,
) -> Vec<Finding> {
    match apps.find_application(namespace).await {
        Ok(owner) => namespace_findings(namespace, owner.as_ref(), saga_id),
        Err(e) => vec![namespace_failure(namespace, &e)],
    }
}

/// Whether `app` was created by saga `saga_id` (our tag on it).
pub fn owned_by(app: &ApplicationInfo, saga_id: Option<&str>) -> bool {
    saga_id.is_some() && app.tags.get(SAGA_TAG).map(String::as_str) == saga_id
}

/// The finding for a namespace owned by another application (none when free or ours).
pub fn namespace_findings(
    namespace: &str,
    owner: Option<&ApplicationInfo>,
    saga_id: Option<&str>,
) -> Vec<Finding> {
    match owner {
        Some(app) if !owned_by(app, saga_id) => vec![Finding::error(
            "namespace",
            format!(
                "namespace {namespace} is already used by application {} ({})",
                app.id, app.arn
            ),
            "Namespaces are unique and cannot be changed: choose another namespace, or update \
             or delete the existing application.",
        )],
        _ => Vec::new(),
    }
}

/// The finding for a namespace that could not be looked up.
pub fn namespace_failure(namespace: &str, e: &ErrorInfo) -> Finding {
    Finding::error(
        "namespace",
        format!("could not check namespace {namespace}: {e}"),
        e.fix.clone().unwrap_or_else(|| {
            "Make sure the caller may list AppIntegrations applications and retry.".into()
        }),
    )
}

/// Decide, per agent-workspace domain, whether the app at `access_url` can be iframed.
/// Blocked and unknown are warnings (an app may allow only Connect); allowed gives nothing.
pub async fn check_embedding(
    fetcher: &dyn PageFetcher,
    access_url: &str,
    domains: &[String],
) -> (Vec<Finding>, Vec<(String, FrameVerdict)>) {
    let fetched = match fetcher.fetch_headers(access_url).await {
        Ok(f) => f,
        Err(e) => {
            let verdicts: Vec<_> = domains
                .iter()
                .map(|d| {
                    (
                        d.clone(),
                        FrameVerdict {
                            decision: FrameDecision::Unknown,
                            evidence: format!("fetching {access_url} failed: {e}"),
                            fix: None,
                        },
                    )
                })
                .collect();
            return (
                vec![Finding::warning(
                    "embedding",
                    format!("could not fetch {access_url} to check its framing headers: {e}"),
                    "Make sure the access URL is reachable, or check by opening the app in the agent workspace.",
                )],
                verdicts,
            );
        }
    };
    let mut findings = Vec::new();
    if !(200..300).contains(&fetched.status) {
        findings.push(Finding::warning(
            "embedding",
            format!(
                "{access_url} answered HTTP {} (final URL {}); the framing headers of an error \
                 page may differ from the app's",
                fetched.status, fetched.final_url
            ),
            "Check that the access URL is the page agents should see, and that it answers \
             without a login cookie (the check sends no credentials).",
        ));
    }
    let mut verdicts = Vec::new();
    for domain in domains {
        let verdict = evaluate_framing(&fetched.headers, &fetched.final_url, domain);
        if verdict.decision != FrameDecision::Allowed {
            let word = if verdict.decision == FrameDecision::Blocked {
                "cannot"
            } else {
                "may not be able to"
            };
            findings.push(Finding::warning(
                "embedding",
                format!(
                    "the agent workspace at {domain} {word} iframe {} (HTTP {}): {}",
                    fetched.final_url, fetched.status, verdict.evidence
                ),
                verdict.fix.clone().unwrap_or_default(),
            ));
        }
        verdicts.push((domain.clone(), verdict));
    }
    (findings, verdicts)
}

/// A placeholder AppIntegrations application id, the length of a real one (a UUID), so the
/// predicted statement has exactly the size of the one the saga will write.
pub const PLACEHOLDER_APP_ID: &str = "00000000-0000-0000-0000-000000000000";

/// Predict whether adding this application's statement to the role's inline policy
/// [`policy::POLICY_NAME`] keeps the role's inline policies within IAM's 10,240-character budget.
pub async fn check_policy_budget(
    iam: &dyn IamPort,
    role: &str,
    region: &str,
    account: &str,
) -> Vec<Finding> {
    match policy::inline_usage(iam, role).await {
        Ok(usage) => predict_budget(role, &usage, region, account).findings,
        Err(e) => vec![budget_failure(role, &e)],
    }
}

/// The finding for a role whose inline policies could not be read.
pub fn budget_failure(role: &str, e: &ErrorInfo) -> Finding {
    Finding::error(
        "policy-budget",
        format!("could not read the inline policies of role {role}: {e}"),
        e.fix.clone().unwrap_or_else(|| {
            "Make sure the caller may call iam:ListRolePolicies and iam:GetRolePolicy on the role and retry.".into()
        }),
    )
}

/// The budget before and after adding this application's statement to one role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetPrediction {
    /// Characters the role's inline policies use now (whitespace excluded).
    pub current: usize,
    /// ... and once the statement is added; `None` when our policy cannot be edited.
    pub after: Option<usize>,
    /// An error when `after` exceeds [`INLINE_POLICY_BUDGET`] or the policy is malformed.
    pub findings: Vec<Finding>,
}

/// Predict the budget from the role's inline policies as [`policy::inline_usage`] read them,
/// with a statement of exactly the size the saga will write (a UUID-long placeholder id).
pub fn predict_budget(
    role: &str,
    usage: &policy::InlineUsage,
    region: &str,
    account: &str,
) -> BudgetPrediction {
    let arn =
        format!("arn:aws:app-integrations:{region}:{account}:application/{PLACEHOLDER_APP_ID}");
    let statement = policy::app_statement(PLACEHOLDER_APP_ID, &arn);
    let current = usage.others + usage.ours.as_deref().map_or(0, policy::policy_chars);
    let after = match policy::with_statement(usage.ours.as_deref(), &statement) {
        Ok(doc) => usage.total_with(&doc),
        Err(e) => {
            return BudgetPrediction {
                current,
                after: None,
                findings: vec![Finding::error(
                    "policy-budget",
                    format!("role {role}: {}", e.message),
                    e.fix.unwrap_or_default(),
                )],
            }
        }
    };
    let findings = if after > INLINE_POLICY_BUDGET {
        vec![Finding::error(
            "policy-budget",
            format!(
                "role {role}'s inline policies use {current} of {INLINE_POLICY_BUDGET} characters; \
                 adding this application's statement would make {after}"
            ),
            format!(
                "Free at least {} characters: remove inline policies or statements the role no \
                 longer needs (e.g. applications that were offboarded), then retry.",
                after - INLINE_POLICY_BUDGET
            ),
        )]
    } else {
        Vec::new()
    };
    BudgetPrediction {
        current,
        after: Some(after),
        findings,
    }
}

/// What the onboarding plan will do, as far as the caller's permissions go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PermissionPlan {
    pub account: String,
    pub region: String,
    /// ARNs of the instances the app is associated with.
    pub instance_arns: Vec<String>,
    /// ARNs of those instances' service-linked roles.
    pub slr_arns: Vec<String>,
    /// Whether security-profile grants are requested.
    pub security_profiles: bool,
}

/// The actions the plan needs on the exact resources (the admin guide's policy for third-party applications).
pub fn required_actions(plan: &PermissionPlan) -> Vec<ActionRequest> {
    let (r, a) = (&plan.region, &plan.account);
    let strs = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let mut out = vec![
        ActionRequest {
            actions: strs(&[
                "app-integrations:CreateApplication",
                "app-integrations:GetApplication",
            ]),
            resources: vec![format!("arn:aws:app-integrations:{r}:{a}:application/*")],
        },
        ActionRequest {
            actions: strs(&[
                "app-integrations:CreateApplicationAssociation",
                "app-integrations:DeleteApplicationAssociation",
            ]),
            resources: vec![format!(
                "arn:aws:app-integrations:{r}:{a}:application-association/*"
            )],
        },
    ];
    if !plan.instance_arns.is_empty() {
        let mut actions = strs(&[
            "connect:DescribeInstance",
            "connect:CreateIntegrationAssociation",
            "connect:DeleteIntegrationAssociation",
            "connect:ListIntegrationAssociations",
        ]);
        if plan.security_profiles {
            actions.extend(strs(&[
                "connect:UpdateSecurityProfile",
                "connect:ListSecurityProfileApplications",
            ]));
        }
        out.push(ActionRequest {
            actions,
            resources: plan.instance_arns.clone(),
        });
    }
    if !plan.slr_arns.is_empty() {
        out.push(ActionRequest {
            actions: strs(&[
                "iam:GetRolePolicy",
                "iam:PutRolePolicy",
                "iam:DeleteRolePolicy",
            ]),
            resources: plan.slr_arns.clone(),
        });
    }
    out
}

/// A policy that grants just the denied actions, one statement per resource set.
pub fn policy_snippet(denied: &[SimulatedDecision]) -> String {
    let mut by_resource: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for d in denied {
        by_resource
            .entry(d.resource.clone())
            .or_default()
            .insert(d.action.clone());
    }
    // Group resources that need the same actions into one statement.
    let mut by_actions: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    for (resource, actions) in by_resource {
        by_actions
            .entry(actions.into_iter().collect())
            .or_default()
            .push(resource);
    }
    let statements: Vec<Value> = by_actions
        .into_iter()
        .map(|(actions, resources)| {
            json!({
                "Effect": "Allow",
                "Action": actions,
                "Resource": if resources.len() == 1 { Value::from(resources[0].clone()) } else { Value::from(resources) },
            })
        })
        .collect();
    serde_json::to_string_pretty(&json!({"Version": "2012-10-17", "Statement": statements}))
        .unwrap_or_default()
}

/// Simulate the plan's actions for `principal_arn`; one error finding naming every missing
/// action, with a policy snippet granting just those.
pub async fn check_permissions(
    simulator: &dyn PermissionSimulator,
    principal_arn: &str,
    plan: &PermissionPlan,
) -> Vec<Finding> {
    let requests = required_actions(plan);
    permission_findings(
        principal_arn,
        simulator.simulate(principal_arn, &requests).await,
    )
}

/// The IAM principal to simulate for a caller's ARN. An STS assumed-role session
/// (`arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION`, what API Gateway's IAM authorizer
/// reports) cannot be simulated itself; its role (`arn:PARTITION:iam::ACCOUNT:role/ROLE`) can.
/// A role with a path (`role/team/ROLE`) cannot be recovered from the session ARN, which drops
/// the path: simulating then fails with NoSuchEntity ([`simulation_failure`] explains it).
/// `None` for anything that is not an IAM user or role ARN (a JWT subject, an email, a
/// federated user).
pub fn simulation_principal(caller: &str) -> Option<String> {
    let parts: Vec<&str> = caller.splitn(6, ':').collect();
    let ["arn", partition, service, "", account, resource] = parts.as_slice() else {
        return None;
    };
    if account.is_empty() {
        return None;
    }
    match *service {
        "sts" => {
            let rest = resource.strip_prefix("assumed-role/")?;
            let (role, session) = rest.split_once('/')?;
            (!role.is_empty() && !session.is_empty())
                .then(|| format!("arn:{partition}:iam::{account}:role/{role}"))
        }
        "iam" if resource.starts_with("role/") || resource.starts_with("user/") => {
            Some(caller.to_owned())
        }
        _ => None,
    }
}

/// The warning for a simulation that could not run; `from_session` when the principal was
/// derived from an assumed-role session ARN (see [`simulation_principal`]).
pub fn simulation_failure(principal_arn: &str, e: &ErrorInfo, from_session: bool) -> Finding {
    if from_session && e.kind == ErrorKind::NotFound {
        return Finding::warning(
            "permissions",
            format!(
                "could not simulate the permissions of {principal_arn} (derived from the \
                 caller's assumed-role session): {e}"
            ),
            "An assumed-role session ARN does not carry the role's path, so a role created \
             with a path (role/PATH/NAME) cannot be found from it. Check the role's policy by \
             hand against the actions in the admin guide's \"Required IAM permissions\", or \
             call preflight with a role without a path.",
        );
    }
    Finding::warning(
        "permissions",
        format!("could not simulate the permissions of {principal_arn}: {e}"),
        "Allow the caller iam:SimulatePrincipalPolicy on itself to get this check, or \
         compare its policy by hand with the actions in the admin guide's \"Required \
         IAM permissions\".",
    )
}

/// Findings from a simulation's outcome: a warning when it could not run, one error naming
/// every denied action with a policy snippet granting just those, nothing when all is allowed.
pub fn permission_findings(
    principal_arn: &str,
    results: Result<Vec<SimulatedDecision>, ErrorInfo>,
) -> Vec<Finding> {
    let results = match results {
        Ok(r) => r,
        Err(e) => return vec![simulation_failure(principal_arn, &e, false)],
    };
    let denied: Vec<SimulatedDecision> = results
        .into_iter()
        .filter(|d| d.decision != Decision::Allowed)
        .collect();
    if denied.is_empty() {
        return Vec::new();
    }
    let missing: BTreeSet<&str> = denied.iter().map(|d| d.action.as_str()).collect();
    let explicit: BTreeSet<&str> = denied
        .iter()
        .filter(|d| d.decision == Decision::ExplicitDeny)
        .map(|d| d.action.as_str())
        .collect();
    let details: Vec<String> = denied
        .iter()
        .map(|d| {
            let why = match d.decision {
                Decision::ExplicitDeny => "explicitly denied",
                _ => "not allowed",
            };
            format!("{} on {} ({why})", d.action, d.resource)
        })
        .collect();
    let associations = missing
        .iter()
        .any(|a| a.ends_with("ApplicationAssociation"));
    let mut fix = String::new();
    if !explicit.is_empty() {
        fix.push_str(&format!(
            "Remove the Deny statements that match {} from the caller's policies (or its \
             permissions boundary / SCPs); an Allow cannot override them. ",
            explicit.iter().copied().collect::<Vec<_>>().join(", ")
        ));
    }
    if associations {
        fix.push_str(
            "The two association actions were added to the required policy for applications \
             created before 2023-12-15; policies written earlier lack them. ",
        );
    }
    fix.push_str("Attach a policy that grants the missing actions:\n");
    fix.push_str(&policy_snippet(&denied));
    vec![Finding::error(
        "permissions",
        format!(
            "{principal_arn} is missing {}: {}",
            missing.iter().copied().collect::<Vec<_>>().join(", "),
            details.join("; ")
        ),
        fix,
    )]
}
