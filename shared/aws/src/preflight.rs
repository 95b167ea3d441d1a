//! Preflight on real AWS clients: the read-only ports [`onboard_core::preflight::inspect`]
//! gathers through (AppIntegrations, Connect, IAM, `SimulatePrincipalPolicy`), built from one
//! shared [`SdkConfig`], and the caller's own identity for `onboard plan --live`.
//!
//! The principal needs, besides what `validate` reads (`connect:DescribeInstance`,
//! `connect:ListSecurityProfileApplications`, `app-integrations:ListApplications`,
//! `iam:ListRolePolicies`, `iam:GetRolePolicy`), `iam:SimulatePrincipalPolicy` on the
//! principals it checks.

use std::sync::Arc;

use aws_config::SdkConfig;
use onboard_core::error::ErrorInfo;
use onboard_core::preflight::PreflightPorts;

use crate::permission_simulator::SdkPermissionSimulator;
use crate::sdk_errors::classify;
use crate::{ConnectRate, SdkAppIntegrations, SdkConnect, SdkIam};

/// The preflight ports with the permission simulator (no page fetcher: add one to check
/// embedding).
pub fn preflight_ports(sdk: &SdkConfig, connect_rate: ConnectRate) -> PreflightPorts {
    let iam = aws_sdk_iam::Client::new(sdk);
    PreflightPorts {
        apps: Arc::new(SdkAppIntegrations::new(
            aws_sdk_appintegrations::Client::new(sdk),
        )),
        connect: Arc::new(SdkConnect::new(
            aws_sdk_connect::Client::new(sdk),
            connect_rate,
        )),
        iam: Arc::new(SdkIam::new(iam.clone())),
        fetcher: None,
        simulator: Some(Arc::new(SdkPermissionSimulator::new(iam))),
    }
}

/// The ARN of the identity the SDK configuration's credentials belong to
/// (`sts:GetCallerIdentity`, which needs no permission).
pub async fn caller_arn(sdk: &SdkConfig) -> Result<String, ErrorInfo> {
    let out = aws_sdk_sts::Client::new(sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| classify("sts:GetCallerIdentity", e))?;
    Ok(out.arn().unwrap_or_default().to_owned())
}
