//! [`PermissionSimulator`] on `aws-sdk-iam`'s `SimulatePrincipalPolicy` (all pages). It only
//! evaluates policies; nothing is performed.

use async_trait::async_trait;
use aws_sdk_iam::types::PolicyEvaluationDecisionType;
use aws_sdk_iam::Client;
use onboard_core::error::ErrorInfo;
use onboard_core::preflight::{ActionRequest, Decision, PermissionSimulator, SimulatedDecision};

use crate::sdk_errors::classify;

/// IAM policy simulation through the SDK client.
#[derive(Debug, Clone)]
pub struct SdkPermissionSimulator {
    client: Client,
}

impl SdkPermissionSimulator {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// A simulator on a new IAM client from the shared SDK configuration.
    pub fn from_config(sdk: &aws_config::SdkConfig) -> Self {
        Self::new(Client::new(sdk))
    }
}

fn decision(d: &PolicyEvaluationDecisionType) -> Decision {
    match d {
        PolicyEvaluationDecisionType::Allowed => Decision::Allowed,
        PolicyEvaluationDecisionType::ExplicitDeny => Decision::ExplicitDeny,
        _ => Decision::ImplicitDeny,
    }
}

#[async_trait]
impl PermissionSimulator for SdkPermissionSimulator {
    async fn simulate(
        &self,
        principal_arn: &str,
        requests: &[ActionRequest],
    ) -> Result<Vec<SimulatedDecision>, ErrorInfo> {
        let mut out = Vec::new();
        for request in requests {
            if request.actions.is_empty() {
                continue;
            }
            let mut marker: Option<String> = None;
            loop {
                let page = self
                    .client
                    .simulate_principal_policy()
                    .policy_source_arn(principal_arn)
                    .set_action_names(Some(request.actions.clone()))
                    .set_resource_arns(if request.resources.is_empty() {
                        None
                    } else {
                        Some(request.resources.clone())
                    })
                    .set_marker(marker.take())
                    .send()
                    .await
                    .map_err(|e| classify("iam:SimulatePrincipalPolicy", e))?;
                for result in page.evaluation_results() {
                    let action = result.eval_action_name().to_owned();
                    let specific = result.resource_specific_results();
                    if specific.is_empty() {
                        out.push(SimulatedDecision {
                            action,
                            resource: result.eval_resource_name().unwrap_or("*").to_owned(),
                            decision: decision(result.eval_decision()),
                        });
                    } else {
                        for r in specific {
                            out.push(SimulatedDecision {
                                action: action.clone(),
                                resource: r.eval_resource_name().to_owned(),
                                decision: decision(r.eval_resource_decision()),
                            });
                        }
                    }
                }
                match page.marker() {
                    Some(m) if page.is_truncated() => marker = Some(m.to_owned()),
                    _ => break,
                }
            }
        }
        Ok(out)
    }
}
