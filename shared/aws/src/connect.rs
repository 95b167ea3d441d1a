//! [`ConnectPort`] on `aws-sdk-connect`, behind a client-side rate limiter.
//!
//! Connect's quota is per account and Region and shared by every caller (about 2 requests/s,
//! burst 5, for the operations used here), so every call waits for a token first: bulk
//! onboarding then runs at the quota instead of tripping it and burning retries.

use std::num::NonZeroU32;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_connect::types::{Application, IntegrationType};
use aws_sdk_connect::Client;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use onboard_core::error::{ErrorInfo, ErrorKind};
use onboard_core::ports::{AssociationRef, ConnectPort, InstanceInfo, ProfileApplication};

use crate::sdk_errors::classify;

/// Connect instances, associations and security profiles through the SDK client.
#[derive(Clone)]
pub struct SdkConnect {
    client: Client,
    limiter: Arc<DefaultDirectRateLimiter>,
}

/// Requests per second and burst for the client-side limiter.
#[derive(Debug, Clone, Copy)]
pub struct ConnectRate {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl Default for ConnectRate {
    /// Connect's documented default quota: 2 requests/s with a burst of 5.
    fn default() -> Self {
        ConnectRate {
            per_second: NonZeroU32::MIN.saturating_add(1),
            burst: NonZeroU32::MIN.saturating_add(4),
        }
    }
}

impl SdkConnect {
    pub fn new(client: Client, rate: ConnectRate) -> Self {
        let quota = Quota::per_second(rate.per_second).allow_burst(rate.burst);
        SdkConnect {
            client,
            limiter: Arc::new(RateLimiter::direct(quota)),
        }
    }

    async fn permit(&self) {
        self.limiter.until_ready().await;
    }
}

fn incomplete(what: &str) -> ErrorInfo {
    ErrorInfo::new(
        ErrorKind::ServerError,
        "IncompleteResponse",
        format!("Connect answered without {what}"),
    )
}

#[async_trait]
impl ConnectPort for SdkConnect {
    async fn describe_instance(&self, instance_id: &str) -> Result<InstanceInfo, ErrorInfo> {
        self.permit().await;
        let out = self
            .client
            .describe_instance()
            .instance_id(instance_id)
            .send()
            .await
            .map_err(|e| classify("connect:DescribeInstance", e))?;
        let instance = out.instance().ok_or_else(|| incomplete("an Instance"))?;
        Ok(InstanceInfo {
            id: instance.id().unwrap_or(instance_id).to_string(),
            arn: instance.arn().unwrap_or_default().to_string(),
            alias: instance.instance_alias().map(str::to_string),
            status: instance
                .instance_status()
                .map_or("UNKNOWN", |s| s.as_str())
                .to_string(),
            service_role: instance.service_role().map(str::to_string),
        })
    }

    async fn find_association(
        &self,
        instance_id: &str,
        app_arn: &str,
    ) -> Result<Option<AssociationRef>, ErrorInfo> {
        let mut next: Option<String> = None;
        loop {
            self.permit().await;
            let page = self
                .client
                .list_integration_associations()
                .instance_id(instance_id)
                .integration_type(IntegrationType::Application)
                .integration_arn(app_arn)
                .max_results(100)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| classify("connect:ListIntegrationAssociations", e))?;
            let found = page
                .integration_association_summary_list()
                .iter()
                .find(|a| a.integration_arn() == Some(app_arn));
            if let Some(a) = found {
                return Ok(Some(AssociationRef {
                    id: a
                        .integration_association_id()
                        .ok_or_else(|| incomplete("an IntegrationAssociationId"))?
                        .to_string(),
                    arn: a
                        .integration_association_arn()
                        .unwrap_or_default()
                        .to_string(),
                }));
            }
            match page.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_string()),
                _ => return Ok(None),
            }
        }
    }

    async fn create_association(
        &self,
        instance_id: &str,
        app_arn: &str,
    ) -> Result<AssociationRef, ErrorInfo> {
        self.permit().await;
        let out = self
            .client
            .create_integration_association()
            .instance_id(instance_id)
            .integration_type(IntegrationType::Application)
            .integration_arn(app_arn)
            .send()
            .await
            .map_err(|e| {
                let err = classify("connect:CreateIntegrationAssociation", e);
                if err.kind == ErrorKind::Denied {
                    // The source page's fix for applications created before 2023-12-15.
                    err.with_fix(
                        "Allow app-integrations:CreateApplicationAssociation and \
                         app-integrations:DeleteApplicationAssociation on \
                         arn:aws:app-integrations:*:*:application-association/*, and \
                         iam:GetRolePolicy/PutRolePolicy/DeleteRolePolicy on \
                         role/aws-service-role/connect.amazonaws.com/AWSServiceRoleForAmazonConnect_*.",
                    )
                } else {
                    err
                }
            })?;
        Ok(AssociationRef {
            id: out
                .integration_association_id()
                .ok_or_else(|| incomplete("an IntegrationAssociationId"))?
                .to_string(),
            arn: out
                .integration_association_arn()
                .unwrap_or_default()
                .to_string(),
        })
    }

    async fn delete_association(
        &self,
        instance_id: &str,
        association_id: &str,
    ) -> Result<(), ErrorInfo> {
        self.permit().await;
        self.client
            .delete_integration_association()
            .instance_id(instance_id)
            .integration_association_id(association_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("connect:DeleteIntegrationAssociation", e))
    }

    async fn profile_applications(
        &self,
        instance_id: &str,
        profile_id: &str,
    ) -> Result<Vec<ProfileApplication>, ErrorInfo> {
        let mut apps = Vec::new();
        let mut next: Option<String> = None;
        loop {
            self.permit().await;
            let page = self
                .client
                .list_security_profile_applications()
                .instance_id(instance_id)
                .security_profile_id(profile_id)
                .max_results(100)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| classify("connect:ListSecurityProfileApplications", e))?;
            apps.extend(page.applications().iter().map(|a| ProfileApplication {
                namespace: a.namespace().unwrap_or_default().to_string(),
                permissions: a.application_permissions().to_vec(),
                kind: a.r#type().map(|t| t.as_str().to_string()),
            }));
            match page.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_string()),
                _ => return Ok(apps),
            }
        }
    }

    async fn set_profile_applications(
        &self,
        instance_id: &str,
        profile_id: &str,
        apps: &[ProfileApplication],
    ) -> Result<(), ErrorInfo> {
        let apps: Vec<Application> = apps
            .iter()
            .map(|a| {
                Application::builder()
                    .namespace(&a.namespace)
                    .set_application_permissions(Some(a.permissions.clone()))
                    .set_type(a.kind.as_deref().map(Into::into))
                    .build()
            })
            .collect();
        self.permit().await;
        self.client
            .update_security_profile()
            .instance_id(instance_id)
            .security_profile_id(profile_id)
            .set_applications(Some(apps))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("connect:UpdateSecurityProfile", e))
    }

    async fn list_instances(&self) -> Result<Vec<String>, ErrorInfo> {
        let mut ids = Vec::new();
        let mut next: Option<String> = None;
        loop {
            self.permit().await;
            let page = self
                .client
                .list_instances()
                .max_results(10)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| classify("connect:ListInstances", e))?;
            ids.extend(
                page.instance_summary_list()
                    .iter()
                    .filter_map(|i| i.id().map(str::to_string)),
            );
            match page.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_string()),
                _ => return Ok(ids),
            }
        }
    }

    async fn list_security_profiles(&self, instance_id: &str) -> Result<Vec<String>, ErrorInfo> {
        let mut ids = Vec::new();
        let mut next: Option<String> = None;
        loop {
            self.permit().await;
            let page = self
                .client
                .list_security_profiles()
                .instance_id(instance_id)
                .max_results(1000)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| classify("connect:ListSecurityProfiles", e))?;
            ids.extend(
                page.security_profile_summary_list()
                    .iter()
                    .filter_map(|p| p.id().map(str::to_string)),
            );
            match page.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_string()),
                _ => return Ok(ids),
            }
        }
    }
}
