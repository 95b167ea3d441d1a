//! The world the sandbox starts from: account, Region, Connect instances (with or without a
//! service-linked role), their security profiles, IAM roles with inline policies, caller
//! identities with identity policies, and optionally applications that already exist.
//! Read from a JSON file (`--seed`), posted to `/_sandbox/seed`, or built in code.

use crate::error::SandboxError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Everything the sandbox is seeded with. Field names are snake_case in JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedConfig {
    /// The one account the sandbox emulates (12 digits).
    pub account_id: String,
    /// The Region of the AppIntegrations and Connect resources.
    pub region: String,
    /// Connect instances.
    #[serde(default)]
    pub instances: Vec<InstanceSeed>,
    /// IAM roles besides the instances' service-linked roles (which are created automatically).
    #[serde(default)]
    pub roles: Vec<RoleSeed>,
    /// Principals whose identity policies `SimulatePrincipalPolicy` evaluates.
    #[serde(default)]
    pub callers: Vec<CallerSeed>,
    /// AppIntegrations applications that exist before the test starts.
    #[serde(default)]
    pub applications: Vec<ApplicationSeed>,
}

/// A Connect instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSeed {
    /// Instance id (a UUID in real accounts).
    pub id: String,
    /// Instance alias; also the default access-URL host.
    pub alias: String,
    /// `InstanceAccessUrl`; defaults to `https://<alias>.my.connect.aws`.
    #[serde(default)]
    pub access_url: Option<String>,
    /// Whether the instance uses a service-linked role (instances created before October 2018
    /// may not).
    #[serde(default = "yes")]
    pub slr: bool,
    /// Suffix of `AWSServiceRoleForAmazonConnect_<suffix>`; derived from the id when absent.
    #[serde(default)]
    pub slr_suffix: Option<String>,
    /// `ServiceRole` to report for an instance without an SLR (absent when `None`: what a
    /// pre-2018 instance reports is not documented).
    #[serde(default)]
    pub service_role: Option<String>,
    /// Inline policies already on the instance's SLR (name → policy JSON).
    #[serde(default)]
    pub slr_inline_policies: BTreeMap<String, Value>,
    /// `InstanceStatus`; `ACTIVE` by default.
    #[serde(default)]
    pub status: Option<String>,
    /// Security profiles of the instance.
    #[serde(default)]
    pub security_profiles: Vec<SecurityProfileSeed>,
}

/// A security profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityProfileSeed {
    /// Profile id.
    pub id: String,
    /// `SecurityProfileName`.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Security-profile permissions such as `BasicAgentAccess`.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Application grants already present.
    #[serde(default)]
    pub applications: Vec<GrantSeed>,
}

/// One application grant in a security profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSeed {
    /// The application namespace.
    pub namespace: String,
    /// Usually `["ACCESS"]`.
    #[serde(default = "access")]
    pub permissions: Vec<String>,
}

/// An IAM role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSeed {
    /// Role name.
    pub name: String,
    /// Role path; `/` by default.
    #[serde(default)]
    pub path: Option<String>,
    /// Trust policy; a generic Lambda trust policy by default.
    #[serde(default)]
    pub assume_role_policy: Option<Value>,
    /// Inline policies (name → policy JSON, or a JSON string holding the exact text).
    #[serde(default)]
    pub inline_policies: BTreeMap<String, Value>,
    /// When true, Put/DeleteRolePolicy answer `UnmodifiableEntity` (like most service-linked
    /// roles; the Connect SLR is writable for the 3P-app flow).
    #[serde(default)]
    pub protected: bool,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
}

/// A principal that `SimulatePrincipalPolicy` can be asked about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerSeed {
    /// Principal ARN (user or role).
    pub arn: String,
    /// Identity policies (name → policy JSON).
    #[serde(default)]
    pub policies: BTreeMap<String, Value>,
}

/// An application that exists before the run (for example one owned by another team).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationSeed {
    /// Application id (a lower-case UUID); generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Display name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Access URL.
    pub access_url: String,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Permissions such as `User.Details.View`.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Instance ids the application is already associated with.
    #[serde(default)]
    pub associated_instances: Vec<String>,
}

fn yes() -> bool {
    true
}

fn access() -> Vec<String> {
    vec!["ACCESS".to_owned()]
}

/// A policy given in a seed as JSON, or as a string holding the exact text.
pub(crate) fn policy_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

impl SeedConfig {
    /// Reads a seed file.
    pub fn from_file(path: &Path) -> Result<Self, SandboxError> {
        let text = std::fs::read_to_string(path).map_err(|source| SandboxError::ReadSeed {
            path: path.to_path_buf(),
            source,
        })?;
        let de = &mut serde_json::Deserializer::from_str(&text);
        serde_path_to_error::deserialize(de).map_err(|e| SandboxError::SeedJson {
            path: e.path().to_string(),
            source: e.into_inner(),
        })
    }

    /// An empty account.
    pub fn empty(account_id: &str, region: &str) -> Self {
        Self {
            account_id: account_id.to_owned(),
            region: region.to_owned(),
            instances: Vec::new(),
            roles: Vec::new(),
            callers: Vec::new(),
            applications: Vec::new(),
        }
    }

    /// A small, realistic world: two SLR instances (one whose SLR already carries an inline
    /// policy), one pre-2018 instance without an SLR, security profiles, and two callers — one
    /// with every permission onboarding needs, one missing the association actions (as for
    /// applications created before 2023-12-15).
    pub fn demo() -> Self {
        let account = DEMO_ACCOUNT;
        let slr_scope = format!(
            "arn:aws:iam::{account}:role/aws-service-role/connect.amazonaws.com/AWSServiceRoleForAmazonConnect_*"
        );
        let full = json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "Apps", "Effect": "Allow",
                 "Action": ["app-integrations:CreateApplication", "app-integrations:GetApplication",
                            "app-integrations:UpdateApplication", "app-integrations:DeleteApplication",
                            "app-integrations:ListApplications", "app-integrations:ListApplicationAssociations"],
                 "Resource": format!("arn:aws:app-integrations:us-east-1:{account}:application/*")},
                {"Sid": "Associations", "Effect": "Allow",
                 "Action": ["app-integrations:CreateApplicationAssociation",
                            "app-integrations:DeleteApplicationAssociation"],
                 "Resource": format!("arn:aws:app-integrations:us-east-1:{account}:application-association/*")},
                {"Sid": "Connect", "Effect": "Allow", "Action": "connect:*", "Resource": "*"},
                {"Sid": "Slr", "Effect": "Allow",
                 "Action": ["iam:GetRolePolicy", "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:GetRole",
                            "iam:ListRolePolicies"],
                 "Resource": slr_scope}
            ]
        });
        let legacy = json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["app-integrations:*Application", "app-integrations:List*"],
                 "Resource": "*"},
                {"Effect": "Deny", "Action": "app-integrations:*ApplicationAssociation", "Resource": "*"},
                {"Effect": "Allow", "Action": "connect:*", "Resource": "*"},
                {"Effect": "Allow", "Action": "iam:*RolePolicy", "Resource": slr_scope}
            ]
        });
        // Profile ids are UUIDs like Connect's: the instance id's first four groups + `00..0N`.
        let profiles = |instance: &str| {
            let prefix = instance.get(..24).unwrap_or(instance);
            vec![
                SecurityProfileSeed {
                    id: format!("{prefix}000000000001"),
                    name: "Agent".to_owned(),
                    description: Some("Agents taking contacts".to_owned()),
                    permissions: vec!["BasicAgentAccess".to_owned()],
                    applications: Vec::new(),
                },
                SecurityProfileSeed {
                    id: format!("{prefix}000000000002"),
                    name: "CallCenterManager".to_owned(),
                    description: None,
                    permissions: vec!["BasicAgentAccess".to_owned()],
                    applications: Vec::new(),
                },
                SecurityProfileSeed {
                    id: format!("{prefix}000000000003"),
                    name: "Admin".to_owned(),
                    description: None,
                    permissions: Vec::new(),
                    applications: Vec::new(),
                },
            ]
        };
        let mut kinesis = BTreeMap::new();
        kinesis.insert(
            "AmazonConnect-KinesisStreams".to_owned(),
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Action": ["kinesis:PutRecord", "kinesis:PutRecords", "kinesis:DescribeStream"],
                "Resource": format!("arn:aws:kinesis:us-east-1:{account}:stream/ctr-stream")}]}),
        );
        Self {
            account_id: account.to_owned(),
            region: "us-east-1".to_owned(),
            instances: vec![
                InstanceSeed {
                    id: DEMO_INSTANCE_EAST.to_owned(),
                    alias: "demo-east".to_owned(),
                    access_url: None,
                    slr: true,
                    slr_suffix: Some("XYUbWO6kTpYfc9uUNk5i".to_owned()),
                    service_role: None,
                    slr_inline_policies: BTreeMap::new(),
                    status: None,
                    security_profiles: profiles(DEMO_INSTANCE_EAST),
                },
                InstanceSeed {
                    id: DEMO_INSTANCE_SUPPORT.to_owned(),
                    alias: "demo-support".to_owned(),
                    access_url: None,
                    slr: true,
                    slr_suffix: Some("HBDQRkK8TkflREzD1NkM".to_owned()),
                    service_role: None,
                    slr_inline_policies: kinesis,
                    status: None,
                    security_profiles: profiles(DEMO_INSTANCE_SUPPORT),
                },
                InstanceSeed {
                    id: DEMO_INSTANCE_LEGACY.to_owned(),
                    alias: "legacy-2017".to_owned(),
                    access_url: Some("https://legacy-2017.awsapps.com/connect/".to_owned()),
                    slr: false,
                    slr_suffix: None,
                    service_role: None,
                    slr_inline_policies: BTreeMap::new(),
                    status: None,
                    security_profiles: profiles(DEMO_INSTANCE_LEGACY),
                },
            ],
            roles: vec![RoleSeed {
                name: "OnboardingWorker".to_owned(),
                path: Some("/service/".to_owned()),
                assume_role_policy: None,
                inline_policies: BTreeMap::from([("onboarding".to_owned(), full.clone())]),
                protected: false,
                description: Some("Runs onboarding sagas".to_owned()),
            }],
            callers: vec![
                CallerSeed {
                    arn: format!("arn:aws:iam::{account}:role/OnboardingOperator"),
                    policies: BTreeMap::from([("onboarding".to_owned(), full)]),
                },
                CallerSeed {
                    arn: format!("arn:aws:iam::{account}:user/legacy-operator"),
                    policies: BTreeMap::from([("legacy-console".to_owned(), legacy)]),
                },
            ],
            applications: Vec::new(),
        }
    }
}

/// Account of [`SeedConfig::demo`].
pub const DEMO_ACCOUNT: &str = "111122223333";
/// Demo instance with an SLR and no inline policies on it.
pub const DEMO_INSTANCE_EAST: &str = "11111111-1111-4111-8111-111111111111";
/// The demo east instance's "Agent" security profile (each demo instance has `…000000000001`
/// Agent, `…000000000002` CallCenterManager and `…000000000003` Admin-like profiles).
pub const DEMO_PROFILE_EAST_AGENT: &str = "11111111-1111-4111-8111-000000000001";
/// Demo instance with an SLR that already has an inline policy.
pub const DEMO_INSTANCE_SUPPORT: &str = "22222222-2222-4222-8222-222222222222";
/// Demo instance without a service-linked role (created before October 2018).
pub const DEMO_INSTANCE_LEGACY: &str = "33333333-3333-4333-8333-333333333333";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_seed_round_trips_through_json() {
        let text = serde_json::to_string_pretty(&SeedConfig::demo()).unwrap_or_default();
        let back: Result<SeedConfig, _> = serde_json::from_str(&text);
        assert_eq!(back.ok(), Some(SeedConfig::demo()));
    }
}
