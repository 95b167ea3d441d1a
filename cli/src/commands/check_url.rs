//! `onboard check-url URL --instance ALIAS_OR_ID...`: can each instance's agent workspace
//! iframe the page? Fetches the URL once (no credentials) and evaluates its framing headers
//! for `https://ALIAS.my.connect.aws` and `https://ALIAS.awsapps.com`.

use std::fmt::Write as _;
use std::sync::Arc;

use onboard_aws::page_fetcher::{FetchLimits, ReqwestPageFetcher};
use onboard_core::error::ErrorKind;
use onboard_core::preflight::{
    evaluate_framing, instance_domains, FetchedHeaders, FrameDecision, PageFetcher,
};
use onboard_core::spec::instance_id;
use onboard_embedded::RedbSagaStore;
use serde::Serialize;

use crate::args::{CheckUrlArgs, OutputFormat};
use crate::error::{exit, CliError};
use crate::render;
use crate::targets::{Context, World};

/// The whole answer, as `--output json` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckUrlReport {
    pub url: String,
    /// True when every domain allows framing.
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub redirects: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch_error: Option<String>,
    pub domains: Vec<DomainResult>,
}

/// One agent-workspace domain's verdict.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainResult {
    /// As given on the command line.
    pub instance: String,
    pub alias: String,
    pub domain: String,
    pub decision: FrameDecision,
    pub evidence: String,
    /// The frame-ancestors source the page has to allow (absent when allowed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

pub async fn run(ctx: &Context, args: &CheckUrlArgs) -> Result<u8, CliError> {
    let instances = resolve(ctx, &args.instances).await?;
    let limits = FetchLimits {
        // The operator's own tool: staging apps on a private network are fair game.
        allow_private_networks: true,
        ..FetchLimits::default()
    };
    let fetcher = ReqwestPageFetcher::new(limits).map_err(|e| CliError::Config {
        message: e.reason,
        fix: "Check the system's TLS configuration and retry.".into(),
    })?;
    let fetched = fetcher.fetch_headers(&args.url).await;
    let report = evaluate(&args.url, &instances, fetched);
    match ctx.global.output {
        OutputFormat::Json => render::print_json(&report)?,
        OutputFormat::Text => render::print_text(&text(&report))?,
    }
    Ok(if report.ok {
        exit::OK
    } else {
        exit::NOT_FRAMEABLE
    })
}

/// Each `--instance` with its alias: aliases as given, ids and ARNs through DescribeInstance.
async fn resolve(ctx: &Context, inputs: &[String]) -> Result<Vec<(String, String)>, CliError> {
    let mut world: Option<World> = None;
    let mut out = Vec::new();
    let mut result = Ok(());
    for input in inputs {
        let alias = match instance_id(input) {
            Some(id) => {
                if world.is_none() {
                    // Reading only: the lock table lives in memory.
                    let locks = Arc::new(RedbSagaStore::in_memory()?);
                    world = Some(ctx.world(locks).await?);
                }
                let Some(w) = &world else { continue };
                match describe_alias(w, &id).await {
                    Ok(alias) => alias,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            None => {
                let alias = input.trim().to_ascii_lowercase();
                if !valid_alias(&alias) {
                    result = Err(CliError::Config {
                        message: format!(
                            "--instance {input:?} is neither an instance id/ARN nor an alias"
                        ),
                        fix: "Pass the instance alias (the ALIAS of https://ALIAS.my.connect.aws) \
                              or the instance id."
                            .into(),
                    });
                    break;
                }
                alias
            }
        };
        out.push((input.clone(), alias));
    }
    if let Some(sb) = world.and_then(|w| w.sandbox) {
        sb.shutdown().await;
    }
    result.map(|()| out)
}

async fn describe_alias(world: &World, id: &str) -> Result<String, CliError> {
    let info = match world.ports.connect.describe_instance(id).await {
        Ok(info) => info,
        Err(e) if e.kind == ErrorKind::NotFound => {
            return Err(CliError::Config {
                message: format!("instance {id} does not exist in this account and Region"),
                fix: "Use the id of an existing instance, or pass its alias instead.".into(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    info.alias
        .filter(|a| !a.is_empty())
        .ok_or_else(|| CliError::Config {
            message: format!(
                "instance {id} has no alias, so its agent-workspace domain is unknown"
            ),
            fix: "Pass the alias of the instance's access URL with --instance instead.".into(),
        })
}

/// A DNS label: 1 to 63 letters, digits and hyphens, not starting or ending with a hyphen.
fn valid_alias(alias: &str) -> bool {
    (1..=63).contains(&alias.len())
        && alias
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !alias.starts_with('-')
        && !alias.ends_with('-')
}

fn evaluate(
    url: &str,
    instances: &[(String, String)],
    fetched: Result<FetchedHeaders, onboard_core::preflight::FetchError>,
) -> CheckUrlReport {
    let mut report = CheckUrlReport {
        url: url.to_owned(),
        ok: false,
        final_url: None,
        status: None,
        redirects: Vec::new(),
        fetch_error: None,
        domains: Vec::new(),
    };
    let fetched = match fetched {
        Ok(f) => Some(f),
        Err(e) => {
            report.fetch_error = Some(e.reason);
            None
        }
    };
    for (instance, alias) in instances {
        for domain in instance_domains(alias) {
            let (decision, evidence, fix) = match &fetched {
                Some(f) => {
                    let v = evaluate_framing(&f.headers, &f.final_url, &domain);
                    (v.decision, v.evidence, v.fix)
                }
                None => (
                    FrameDecision::Unknown,
                    format!(
                        "fetching {url} failed: {}",
                        report.fetch_error.as_deref().unwrap_or("")
                    ),
                    Some(
                        "Make sure the URL is reachable from here without a login, or check by \
                         opening the app in the agent workspace."
                            .to_owned(),
                    ),
                ),
            };
            let allowed = decision == FrameDecision::Allowed;
            report.domains.push(DomainResult {
                instance: instance.clone(),
                alias: alias.clone(),
                source: (!allowed).then(|| domain.clone()),
                domain,
                decision,
                evidence,
                fix: if allowed { None } else { fix },
            });
        }
    }
    if let Some(f) = fetched {
        report.final_url = Some(f.final_url);
        report.status = Some(f.status);
        report.redirects = f.redirects;
    }
    report.ok = report
        .domains
        .iter()
        .all(|d| d.decision == FrameDecision::Allowed);
    report
}

fn decision_word(d: FrameDecision) -> &'static str {
    match d {
        FrameDecision::Allowed => "allowed",
        FrameDecision::Blocked => "blocked",
        FrameDecision::Unknown => "unknown",
    }
}

fn text(r: &CheckUrlReport) -> String {
    let mut s = String::new();
    match (&r.fetch_error, r.status, &r.final_url) {
        (Some(e), _, _) => {
            let _ = writeln!(s, "GET {}: {e}", r.url);
        }
        (None, Some(status), Some(final_url)) => {
            let _ = write!(s, "GET {} -> HTTP {status}", r.url);
            if final_url != &r.url {
                let _ = write!(s, " (final URL {final_url})");
            }
            let _ = writeln!(s);
            if !(200..300).contains(&status) {
                let _ = writeln!(
                    s,
                    "warning: HTTP {status}: an error page's framing headers may differ from the app's"
                );
            }
        }
        _ => {}
    }
    let width = r.domains.iter().map(|d| d.domain.len()).max().unwrap_or(0);
    for d in &r.domains {
        let _ = writeln!(
            s,
            "  {:<width$}  {:<7}  {}",
            d.domain,
            decision_word(d.decision),
            d.evidence
        );
        if let Some(source) = &d.source {
            let _ = writeln!(s, "      frame-ancestors source needed: {source}");
        }
        if let Some(fix) = &d.fix {
            let _ = writeln!(s, "      fix: {fix}");
        }
    }
    let bad = r
        .domains
        .iter()
        .filter(|d| d.decision != FrameDecision::Allowed)
        .count();
    if bad == 0 {
        let _ = writeln!(s, "Every agent-workspace domain may iframe {}.", r.url);
    } else {
        let _ = writeln!(
            s,
            "{bad} of {} agent-workspace domain(s) blocked or unknown (exit 5).",
            r.domains.len()
        );
    }
    s
}
