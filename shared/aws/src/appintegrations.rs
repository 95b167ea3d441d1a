//! [`AppIntegrationsPort`] on `aws-sdk-appintegrations`.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_appintegrations::types::{
    ApplicationConfig, ApplicationSourceConfig, ApplicationType, ContactHandling,
    ContactHandlingScope, ExternalUrlConfig, IframeConfig, Publication, Subscription,
};
use aws_sdk_appintegrations::Client;
use onboard_core::error::{ErrorInfo, ErrorKind};
use onboard_core::ports::{AppIntegrationsPort, AppRef, ApplicationInfo, CreateApplication};
use onboard_core::spec;

use crate::sdk_errors::classify;

/// AppIntegrations applications through the SDK client built once at init.
#[derive(Debug, Clone)]
pub struct SdkAppIntegrations {
    client: Client,
}

impl SdkAppIntegrations {
    pub fn new(client: Client) -> Self {
        SdkAppIntegrations { client }
    }
}

fn invalid(message: String) -> ErrorInfo {
    ErrorInfo::new(ErrorKind::Invalid, "InvalidSpec", message)
        .with_fix("Correct the application spec and submit it again.")
}

/// The CreateApplication request for a spec: every field the spec carries, our tags and the
/// ClientToken.
fn source_config(spec: &spec::ApplicationSpec) -> Result<ApplicationSourceConfig, ErrorInfo> {
    let url = ExternalUrlConfig::builder()
        .access_url(&spec.access_url)
        .set_approved_origins(
            (!spec.approved_origins.is_empty()).then(|| spec.approved_origins.clone()),
        )
        .build()
        .map_err(|e| invalid(format!("access URL: {e}")))?;
    Ok(ApplicationSourceConfig::builder()
        .external_url_config(url)
        .build())
}

#[async_trait]
impl AppIntegrationsPort for SdkAppIntegrations {
    // Subscriptions/Publications are deprecated in favour of Permissions but still accepted for
    // apps that use them; validation warns the requester.
    #[allow(deprecated)]
    async fn create_application(&self, req: &CreateApplication) -> Result<AppRef, ErrorInfo> {
        let s = &req.spec;
        let subscriptions = s
            .subscriptions
            .iter()
            .map(|sub| {
                Subscription::builder()
                    .event(&sub.event)
                    .set_description(sub.description.clone())
                    .build()
                    .map_err(|e| invalid(format!("subscription {}: {e}", sub.event)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let publications = s
            .publications
            .iter()
            .map(|p| {
                Publication::builder()
                    .event(&p.event)
                    .schema(&p.schema)
                    .set_description(p.description.clone())
                    .build()
                    .map_err(|e| invalid(format!("publication {}: {e}", p.event)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tags: HashMap<String, String> = req.tags.clone().into_iter().collect();
        let mut call = self
            .client
            .create_application()
            .name(&s.display_name)
            .namespace(&req.namespace)
            .set_description(s.description.clone())
            .application_source_config(source_config(s)?)
            .set_subscriptions((!subscriptions.is_empty()).then_some(subscriptions))
            .set_publications((!publications.is_empty()).then_some(publications))
            .set_permissions((!s.permissions.is_empty()).then(|| s.permissions.clone()))
            .client_token(&req.client_token)
            .set_tags((!tags.is_empty()).then_some(tags))
            .set_initialization_timeout(
                s.initialization_timeout_ms
                    .map(|ms| i32::try_from(ms).unwrap_or(i32::MAX)),
            );
        if let Some(iframe) = &s.iframe {
            call = call.iframe_config(
                IframeConfig::builder()
                    .set_allow(Some(iframe.allow.clone()))
                    .set_sandbox(Some(iframe.sandbox.clone()))
                    .build(),
            );
        }
        if let Some(scope) = s.contact_scope {
            let scope = match scope {
                spec::ContactScope::PerContact => ContactHandlingScope::PerContact,
                spec::ContactScope::CrossContacts => ContactHandlingScope::CrossContacts,
            };
            call = call.application_config(
                ApplicationConfig::builder()
                    .contact_handling(ContactHandling::builder().scope(scope).build())
                    .build(),
            );
        }
        if let Some(kind) = s.application_type {
            call = call.application_type(match kind {
                spec::ApplicationType::Standard => ApplicationType::Standard,
                spec::ApplicationType::Service => ApplicationType::Service,
            });
        }
        let out = call
            .send()
            .await
            .map_err(|e| classify("app-integrations:CreateApplication", e))?;
        match (out.id(), out.arn()) {
            (Some(id), Some(arn)) => Ok(AppRef {
                id: id.to_string(),
                arn: arn.to_string(),
            }),
            _ => Err(ErrorInfo::new(
                ErrorKind::ServerError,
                "IncompleteResponse",
                "CreateApplication answered without an Id or Arn",
            )),
        }
    }

    async fn find_application(
        &self,
        namespace: &str,
    ) -> Result<Option<ApplicationInfo>, ErrorInfo> {
        let mut next: Option<String> = None;
        loop {
            let page = self
                .client
                .list_applications()
                .max_results(50)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| classify("app-integrations:ListApplications", e))?;
            if let Some(summary) = page
                .applications()
                .iter()
                .find(|a| a.namespace() == Some(namespace))
            {
                let Some(arn) = summary.arn() else { break };
                let app = self
                    .client
                    .get_application()
                    .arn(arn)
                    .send()
                    .await
                    .map_err(|e| classify("app-integrations:GetApplication", e))?;
                let tags: BTreeMap<String, String> = app
                    .tags()
                    .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                return Ok(Some(ApplicationInfo {
                    id: app.id().or(summary.id()).unwrap_or_default().to_string(),
                    arn: arn.to_string(),
                    namespace: namespace.to_string(),
                    tags,
                }));
            }
            match page.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_string()),
                _ => break,
            }
        }
        Ok(None)
    }

    async fn delete_application(&self, id_or_arn: &str) -> Result<(), ErrorInfo> {
        self.client
            .delete_application()
            .arn(id_or_arn)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                let err = classify("app-integrations:DeleteApplication", e);
                if err.kind == ErrorKind::Invalid && err.message.to_lowercase().contains("associat")
                {
                    err.with_fix(
                        "The application is still associated with an instance: remove every \
                         association first (offboard does this), then delete it.",
                    )
                } else {
                    err
                }
            })
    }
}
