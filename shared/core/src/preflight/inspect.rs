//! The one gathering routine behind the saga's `validate` step, `POST /preflight` and
//! `onboard plan`: read the instances, their service-linked roles' inline policies, the
//! namespace's owner and the requested security profiles (and, when given the ports, the
//! caller's permissions and the access URL's framing headers), and turn what was read into
//! [`Finding`]s. Every check is defined once, in `preflight.rs`; this only gathers.
//!
//! Read-only: nothing here changes anything. A *retryable* failure (throttling, 5xx, timeout —
//! [`ErrorInfo::is_retryable`]) is returned as `Err`, so the saga's engine backs off and runs
//! `validate` again instead of refusing the spec; every other failure is a finding with its
//! evidence and fix, next to the problems found (not found, not ACTIVE, no SLR, namespace
//! taken, profile full, budget exceeded).

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{
    budget_failure, check_embedding, describe_failure, instance_domains, instance_findings,
    namespace_failure, namespace_findings, owned_by, permission_findings, predict_budget,
    required_actions, role_name, simulation_failure, simulation_principal, slr_of, Finding,
    FrameVerdict, PageFetcher, PermissionPlan, PermissionSimulator, Severity,
};
use crate::error::{ErrorInfo, ErrorKind};
use crate::onboard::PROFILE_APPLICATION_LIMIT;
use crate::policy;
use crate::ports::{AppIntegrationsPort, ConnectPort, IamPort, InstanceInfo};
use crate::validation::Validated;

/// What preflight reads through. `fetcher` and `simulator` are optional: the saga runs without
/// them (framing is a warning and the worker's own role does the work), the API and the CLI
/// add them when configured.
#[derive(Clone)]
pub struct PreflightPorts {
    pub apps: Arc<dyn AppIntegrationsPort>,
    pub connect: Arc<dyn ConnectPort>,
    pub iam: Arc<dyn IamPort>,
    /// Fetches the access URL for the embedding check; `None` skips it.
    pub fetcher: Option<Arc<dyn PageFetcher>>,
    /// Simulates the caller's permissions; `None` (or no principal) skips it.
    pub simulator: Option<Arc<dyn PermissionSimulator>>,
}

impl PreflightPorts {
    /// The three services, without the embedding and permission checks.
    pub fn new(
        apps: Arc<dyn AppIntegrationsPort>,
        connect: Arc<dyn ConnectPort>,
        iam: Arc<dyn IamPort>,
    ) -> Self {
        Self {
            apps,
            connect,
            iam,
            fetcher: None,
            simulator: None,
        }
    }
}

/// What was read about one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceReport {
    pub id: String,
    /// `None` when the instance could not be described.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<InstanceInfo>,
    /// The service-linked role's ARN and name, when the instance uses one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
    /// The text of the product's inline policy on the role, when it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Characters the role's inline policies use now, and once the application's statement is
    /// added (IAM's budget is 10,240); `None` when they could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_chars: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_chars_after: Option<usize>,
}

impl InstanceReport {
    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            info: None,
            role_arn: None,
            role_name: None,
            policy: None,
            policy_chars: None,
            policy_chars_after: None,
        }
    }

    pub fn alias(&self) -> Option<&str> {
        self.info
            .as_ref()
            .and_then(|i| i.alias.as_deref())
            .filter(|a| !a.is_empty())
    }

    /// Whether adding the statement would take the role past IAM's budget.
    pub fn over_budget(&self) -> bool {
        self.policy_chars_after
            .is_some_and(|n| n > policy::INLINE_POLICY_BUDGET)
    }
}

/// The application that already owns the namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceOwner {
    pub id: String,
    pub arn: String,
    /// Created by this same saga (a replay): not a conflict.
    pub ours: bool,
}

/// What was read about one requested security profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileReport {
    pub instance: String,
    pub profile: String,
    /// Applications the profile grants now; `None` when it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applications: Option<usize>,
    /// The profile already grants this namespace (left by an earlier application): a rollback
    /// must leave that entry alone.
    pub granted: bool,
}

/// The framing decision for one agent-workspace domain of one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainVerdict {
    pub instance: String,
    pub domain: String,
    #[serde(flatten)]
    pub verdict: FrameVerdict,
}

/// Everything preflight read, and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    pub namespace: String,
    /// The Region and account of the instances (from their ARNs), when any was described.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// One per instance of the spec, in its order.
    pub instances: Vec<InstanceReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_owner: Option<NamespaceOwner>,
    pub profiles: Vec<ProfileReport>,
    /// The IAM principal whose permissions were simulated, when the simulation ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated_principal: Option<String>,
    /// Per instance domain, when the access URL was fetched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embedding: Vec<DomainVerdict>,
    /// Errors (which stop the saga) and warnings, in check order.
    pub findings: Vec<Finding>,
    /// The terminal errors of the calls preflight could not make (denied, invalid, ...), each
    /// also reported as an error finding; kept so a refusal can carry the service's own code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub call_errors: Vec<ErrorInfo>,
}

impl Inspection {
    pub fn has_errors(&self) -> bool {
        super::has_errors(&self.findings)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
    }

    pub fn instance(&self, id: &str) -> Option<&InstanceReport> {
        self.instances.iter().find(|i| i.id == id)
    }

    /// The namespace belongs to an application another saga (or a person) created.
    pub fn namespace_taken(&self) -> bool {
        self.namespace_owner.as_ref().is_some_and(|o| !o.ours)
    }

    /// Requested (instance, profile) pairs that granted the namespace before this run.
    pub fn preexisting_grants(&self) -> Vec<(String, String)> {
        self.profiles
            .iter()
            .filter(|p| p.granted)
            .map(|p| (p.instance.clone(), p.profile.clone()))
            .collect()
    }

    /// What the caller needs permission for: the application, the associations, and the
    /// described instances and their service-linked roles. Region and account come from the
    /// instances' ARNs, else from `principal_arn`'s account (with any Region).
    pub fn permission_plan(&self, v: &Validated, principal_arn: &str) -> PermissionPlan {
        let described = || self.instances.iter().filter_map(|i| i.info.as_ref());
        let account = self
            .account
            .clone()
            .or_else(|| arn_field(principal_arn, 4).filter(|a| !a.is_empty()))
            .unwrap_or_else(|| "*".to_owned());
        PermissionPlan {
            account,
            region: self.region.clone().unwrap_or_else(|| "*".to_owned()),
            instance_arns: described().map(|i| i.arn.clone()).collect(),
            slr_arns: dedup(self.instances.iter().filter_map(|i| i.role_arn.clone())),
            security_profiles: !v.profile_grants.is_empty(),
        }
    }
}

fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    items.filter(|i| seen.insert(i.clone())).collect()
}

/// Field `n` (0-based) of a colon-separated ARN.
fn arn_field(arn: &str, n: usize) -> Option<String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    (parts.len() == 6 && parts[0] == "arn").then(|| parts[n].to_owned())
}

/// A retryable failure stops the inspection (the caller retries); anything else is handed back
/// to become a finding.
fn retry_or<T>(r: Result<T, ErrorInfo>) -> Result<Result<T, ErrorInfo>, ErrorInfo> {
    match r {
        Err(e) if e.is_retryable() => Err(e),
        other => Ok(other),
    }
}

/// Read everything preflight checks and return the facts with the findings. `saga_id` is the
/// saga running it (an application it created itself does not hold the namespace against it);
/// `principal` is the caller whose permissions are simulated when `ports.simulator` is set.
/// `Err` only for a retryable failure.
pub async fn inspect(
    ports: &PreflightPorts,
    v: &Validated,
    saga_id: Option<&str>,
    principal: Option<&str>,
) -> Result<Inspection, ErrorInfo> {
    let mut out = Inspection {
        namespace: v.namespace.clone(),
        region: None,
        account: None,
        instances: Vec::new(),
        namespace_owner: None,
        profiles: Vec::new(),
        simulated_principal: None,
        embedding: Vec::new(),
        findings: Vec::new(),
        call_errors: Vec::new(),
    };

    for id in &v.instance_ids {
        let report = inspect_instance(ports, id, &mut out).await?;
        if out.account.is_none() {
            if let Some(info) = &report.info {
                out.region = arn_field(&info.arn, 3);
                out.account = arn_field(&info.arn, 4);
            }
        }
        out.instances.push(report);
    }

    match retry_or(ports.apps.find_application(&v.namespace).await)? {
        Ok(owner) => {
            out.findings
                .extend(namespace_findings(&v.namespace, owner.as_ref(), saga_id));
            out.namespace_owner = owner.map(|app| NamespaceOwner {
                ours: owned_by(&app, saga_id),
                id: app.id,
                arn: app.arn,
            });
        }
        Err(e) => {
            out.findings.push(namespace_failure(&v.namespace, &e));
            out.call_errors.push(e);
        }
    }

    for grant in &v.profile_grants {
        // An instance that could not be described already has its finding.
        if out
            .instance(&grant.instance_id)
            .is_none_or(|i| i.info.is_none())
        {
            continue;
        }
        for profile in &grant.profile_ids {
            let report = inspect_profile(ports, &grant.instance_id, profile, v, &mut out).await?;
            out.profiles.push(report);
        }
    }

    if let (Some(simulator), Some(caller)) = (&ports.simulator, principal) {
        match simulation_principal(caller) {
            None => out.findings.push(Finding::warning(
                "permissions",
                format!(
                    "the caller {caller} is not an IAM user or role ARN, so its permissions \
                     were not simulated"
                ),
                "Call with IAM credentials (API Gateway IAM authorization) to get this check, \
                 or compare the onboarding role's policy by hand with the actions in the admin \
                 guide's \"Required IAM permissions\".",
            )),
            Some(arn) => {
                let plan = out.permission_plan(v, &arn);
                let from_session = arn != caller;
                let result = simulator.simulate(&arn, &required_actions(&plan)).await;
                match retry_or(result)? {
                    Err(e) => out
                        .findings
                        .push(simulation_failure(&arn, &e, from_session)),
                    ok => {
                        out.findings.extend(permission_findings(&arn, ok));
                        out.simulated_principal = Some(arn);
                    }
                }
            }
        }
    }

    if let Some(fetcher) = &ports.fetcher {
        let per_instance: Vec<(String, String)> = out
            .instances
            .iter()
            .filter_map(|i| i.alias().map(|a| (i.id.clone(), a.to_owned())))
            .flat_map(|(id, alias)| {
                instance_domains(&alias)
                    .into_iter()
                    .map(move |d| (id.clone(), d))
            })
            .collect();
        let domains = dedup(per_instance.iter().map(|(_, d)| d.clone()));
        if !domains.is_empty() {
            let (findings, verdicts) =
                check_embedding(fetcher.as_ref(), &v.spec.access_url, &domains).await;
            out.findings.extend(findings);
            for (instance, domain) in per_instance {
                if let Some((_, verdict)) = verdicts.iter().find(|(d, _)| *d == domain) {
                    out.embedding.push(DomainVerdict {
                        instance,
                        domain,
                        verdict: verdict.clone(),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// DescribeInstance, then the SLR's inline-policy budget.
async fn inspect_instance(
    ports: &PreflightPorts,
    id: &str,
    out: &mut Inspection,
) -> Result<InstanceReport, ErrorInfo> {
    let mut report = InstanceReport::new(id);
    let info = match retry_or(ports.connect.describe_instance(id).await)? {
        Ok(info) => info,
        Err(e) => {
            out.findings.push(describe_failure(id, &e));
            if e.kind != ErrorKind::NotFound {
                out.call_errors.push(e);
            }
            return Ok(report);
        }
    };
    out.findings.extend(instance_findings(id, &info));
    if let Some(role_arn) = slr_of(&info) {
        let role = role_name(role_arn).to_owned();
        match retry_or(policy::inline_usage(ports.iam.as_ref(), &role).await)? {
            Ok(usage) => {
                let region = arn_field(&info.arn, 3).unwrap_or_default();
                let account = arn_field(&info.arn, 4).unwrap_or_default();
                let prediction = predict_budget(&role, &usage, &region, &account);
                out.findings.extend(prediction.findings);
                report.policy_chars = Some(prediction.current);
                report.policy_chars_after = prediction.after;
                report.policy = usage.ours;
            }
            Err(e) => {
                out.findings.push(budget_failure(&role, &e));
                out.call_errors.push(e);
            }
        }
        report.role_arn = Some(role_arn.to_owned());
        report.role_name = Some(role);
    }
    report.info = Some(info);
    Ok(report)
}

/// The profile's current grants: it exists, and has room for one more (or already grants us).
async fn inspect_profile(
    ports: &PreflightPorts,
    instance: &str,
    profile: &str,
    v: &Validated,
    out: &mut Inspection,
) -> Result<ProfileReport, ErrorInfo> {
    let mut report = ProfileReport {
        instance: instance.to_owned(),
        profile: profile.to_owned(),
        applications: None,
        granted: false,
    };
    let apps = match retry_or(ports.connect.profile_applications(instance, profile).await)? {
        Ok(apps) => apps,
        Err(e) if e.kind == ErrorKind::NotFound => {
            out.findings.push(Finding::error(
                "security-profile",
                format!("security profile {profile} does not exist in instance {instance}"),
                "Use a security profile id of that instance (Connect console → Users → \
                 Security profiles), or remove it from the spec.",
            ));
            return Ok(report);
        }
        Err(e) => {
            out.findings.push(Finding::error(
                "security-profile",
                format!(
                    "could not read the application grants of security profile {profile} in \
                     instance {instance}: {e}"
                ),
                e.fix.clone().unwrap_or_else(|| {
                    "Make sure the caller may call connect:ListSecurityProfileApplications and \
                     retry."
                        .into()
                }),
            ));
            out.call_errors.push(e);
            return Ok(report);
        }
    };
    report.granted = apps.iter().any(|a| a.namespace == v.namespace);
    report.applications = Some(apps.len());
    if !report.granted && apps.len() >= PROFILE_APPLICATION_LIMIT {
        out.findings.push(Finding::error(
            "security-profile",
            format!(
                "security profile {profile} in instance {instance} already grants {} \
                 applications; Connect's limit is {PROFILE_APPLICATION_LIMIT}",
                apps.len()
            ),
            "Remove an application from the profile, or pick another profile.",
        ));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::spec::parse_spec;
    use crate::testkit::fake_world::{self as fw, FakeWorld};

    fn validated(instances: &[&str], profiles: &[(&str, &str)]) -> Validated {
        let grants: Vec<serde_json::Value> = profiles
            .iter()
            .map(|(i, p)| serde_json::json!({"instance": i, "profiles": [p]}))
            .collect();
        let spec = serde_json::json!({
            "displayName": "Acme CRM",
            "accessUrl": "https://crm.example.com/agent",
            "instances": instances,
            "securityProfiles": grants,
            "requester": {"source": "PORTAL", "principal": "alice@example.com"},
        });
        parse_spec(spec.to_string().as_bytes())
            .unwrap()
            .validate()
            .unwrap()
    }

    fn ports(world: &Arc<FakeWorld>) -> PreflightPorts {
        PreflightPorts::new(world.clone(), world.clone(), world.clone())
    }

    #[test]
    fn session_arns_map_to_their_role() {
        assert_eq!(
            simulation_principal("arn:aws:sts::111122223333:assumed-role/Ops/alice").as_deref(),
            Some("arn:aws:iam::111122223333:role/Ops")
        );
        assert_eq!(
            simulation_principal("arn:aws-cn:sts::111122223333:assumed-role/Ops/s").as_deref(),
            Some("arn:aws-cn:iam::111122223333:role/Ops")
        );
        for same in [
            "arn:aws:iam::111122223333:role/Ops",
            "arn:aws:iam::111122223333:role/team/Ops",
            "arn:aws:iam::111122223333:user/bob",
        ] {
            assert_eq!(simulation_principal(same).as_deref(), Some(same));
        }
        for none in [
            "alice@example.com",
            "arn:aws:sts::111122223333:federated-user/bob",
            "arn:aws:sts::111122223333:assumed-role/Ops",
            "arn:aws:iam::111122223333:group/admins",
            "arn:aws:iam:::role/x",
        ] {
            assert_eq!(simulation_principal(none), None, "{none}");
        }
    }

    #[tokio::test]
    async fn a_clean_spec_has_facts_and_no_findings() {
        let world = Arc::new(FakeWorld::standard());
        let profile = fw::profile_id(fw::INSTANCE_ALPHA, 1);
        let v = validated(
            &[fw::INSTANCE_ALPHA, fw::INSTANCE_BETA],
            &[(fw::INSTANCE_ALPHA, &profile)],
        );
        let got = inspect(&ports(&world), &v, Some("sg-1"), None)
            .await
            .unwrap();
        assert!(got.findings.is_empty(), "{:?}", got.findings);
        assert_eq!(got.instances.len(), 2);
        let alpha = got.instance(fw::INSTANCE_ALPHA).unwrap();
        assert_eq!(
            alpha.role_name.as_deref(),
            Some(fw::slr_role_name(fw::INSTANCE_ALPHA).as_str())
        );
        assert!(alpha.policy_chars_after > alpha.policy_chars);
        assert_eq!(got.profiles.len(), 1);
        assert_eq!(got.profiles[0].applications, Some(0));
        assert!(got.account.is_some() && got.region.is_some());
    }

    #[tokio::test]
    async fn problems_are_findings_and_retryable_failures_are_errors() {
        let world = Arc::new(FakeWorld::standard());
        let missing = "99999999-9999-4999-8999-999999999999";
        let v = validated(&[fw::INSTANCE_ALPHA, fw::INSTANCE_LEGACY, missing], &[]);
        world.seed_application("crm.example.com/agent", "Console CRM", Default::default());
        let got = inspect(&ports(&world), &v, Some("sg-1"), None)
            .await
            .unwrap();
        let errors: Vec<&str> = got.errors().map(|f| f.check.as_str()).collect();
        assert_eq!(errors, ["instance", "instance", "namespace"], "{got:?}");
        assert!(got.namespace_taken());

        world.fail_nth("describe_instance", 2, fw::throttled());
        let err = inspect(&ports(&world), &v, Some("sg-1"), None)
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err:?}");

        world.fail_nth("list_role_policies", 1, fw::server_error());
        assert!(inspect(&ports(&world), &v, None, None)
            .await
            .unwrap_err()
            .is_retryable());

        // A terminal failure to read is a finding naming the call, not an Err, and the call's
        // error is kept.
        world.fail_nth("describe_instance", 1, fw::access_denied());
        let got = inspect(&ports(&world), &v, None, None).await.unwrap();
        assert!(got.findings[0].evidence.contains("DescribeInstance"));
        assert_eq!(got.call_errors.len(), 1);
        assert_eq!(got.call_errors[0].code, "AccessDeniedException");
    }
}
