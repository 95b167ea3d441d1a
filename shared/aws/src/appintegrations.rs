//! [`AppIntegrationsPort`] on `aws-sdk-appintegrations`.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_appintegrations::types::{
    ApplicationConfig, ApplicationSourceConfig, ApplicationType, ContactHandling,
    ContactHandlingScope, ExternalUrlConfig, IframeConfig, Publication, Subscription,
};
use aws_sdk_appintegrations::Client;
use onboard_core::error::{ErrorInfo, ErrorKind};
use onboard_core::ports::{
    AppIntegrationsPort, AppRef, ApplicationDetails, ApplicationFields, ApplicationInfo,
    CreateApplication,
};
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

/// The `ApplicationSourceConfig` for an access URL and its approved origins (omitted when
/// empty: the model requires 1..50 when present, and omitting them clears them on update).
fn source_config(
    access_url: &str,
    approved_origins: &[String],
) -> Result<ApplicationSourceConfig, ErrorInfo> {
    let url = ExternalUrlConfig::builder()
        .access_url(access_url)
        .set_approved_origins((!approved_origins.is_empty()).then(|| approved_origins.to_vec()))
        .build()
        .map_err(|e| invalid(format!("access URL: {e}")))?;
    Ok(ApplicationSourceConfig::builder()
        .external_url_config(url)
        .build())
}

fn sdk_subscriptions(subs: &[spec::Subscription]) -> Result<Vec<Subscription>, ErrorInfo> {
    subs.iter()
        .map(|sub| {
            Subscription::builder()
                .event(&sub.event)
                .set_description(sub.description.clone())
                .build()
                .map_err(|e| invalid(format!("subscription {}: {e}", sub.event)))
        })
        .collect()
}

fn sdk_publications(pubs: &[spec::Publication]) -> Result<Vec<Publication>, ErrorInfo> {
    pubs.iter()
        .map(|p| {
            Publication::builder()
                .event(&p.event)
                .schema(&p.schema)
                .set_description(p.description.clone())
                .build()
                .map_err(|e| invalid(format!("publication {}: {e}", p.event)))
        })
        .collect()
}

fn sdk_iframe(iframe: &spec::IframeSpec) -> IframeConfig {
    IframeConfig::builder()
        .set_allow(Some(iframe.allow.clone()))
        .set_sandbox(Some(iframe.sandbox.clone()))
        .build()
}

fn timeout_ms(ms: Option<u32>) -> Option<i32> {
    ms.map(|ms| i32::try_from(ms).unwrap_or(i32::MAX))
}

#[async_trait]
impl AppIntegrationsPort for SdkAppIntegrations {
    // Subscriptions/Publications are deprecated in favour of Permissions but still accepted for
    // apps that use them; validation warns the requester.
    #[allow(deprecated)]
    async fn create_application(&self, req: &CreateApplication) -> Result<AppRef, ErrorInfo> {
        let s = &req.spec;
        let subscriptions = sdk_subscriptions(&s.subscriptions)?;
        let publications = sdk_publications(&s.publications)?;
        let tags: HashMap<String, String> = req.tags.clone().into_iter().collect();
        let mut call = self
            .client
            .create_application()
            .name(&s.display_name)
            .namespace(&req.namespace)
            .set_description(s.description.clone())
            .application_source_config(source_config(&s.access_url, &s.approved_origins)?)
            .set_subscriptions((!subscriptions.is_empty()).then_some(subscriptions))
            .set_publications((!publications.is_empty()).then_some(publications))
            .set_permissions((!s.permissions.is_empty()).then(|| s.permissions.clone()))
            .client_token(&req.client_token)
            .set_tags((!tags.is_empty()).then_some(tags))
            .set_initialization_timeout(timeout_ms(s.initialization_timeout_ms));
        if let Some(iframe) = &s.iframe {
            call = call.iframe_config(sdk_iframe(iframe));
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

    // Subscriptions/Publications are deprecated but still part of an application's state.
    #[allow(deprecated)]
    async fn get_application(
        &self,
        id_or_arn: &str,
    ) -> Result<Option<ApplicationDetails>, ErrorInfo> {
        let out = match self.client.get_application().arn(id_or_arn).send().await {
            Ok(out) => out,
            Err(e) => {
                let err = classify("app-integrations:GetApplication", e);
                return if err.kind == ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(err)
                };
            }
        };
        let (Some(id), Some(arn), Some(namespace)) = (out.id(), out.arn(), out.namespace()) else {
            return Err(ErrorInfo::new(
                ErrorKind::ServerError,
                "IncompleteResponse",
                "GetApplication answered without an Id, Arn or Namespace",
            ));
        };
        let url = out
            .application_source_config()
            .and_then(|c| c.external_url_config());
        let fields = ApplicationFields {
            display_name: out.name().unwrap_or_default().to_string(),
            description: out
                .description()
                .filter(|d| !d.is_empty())
                .map(str::to_string),
            access_url: url.map(|u| u.access_url().to_string()).unwrap_or_default(),
            approved_origins: url
                .map(|u| u.approved_origins().to_vec())
                .unwrap_or_default(),
            permissions: out.permissions().to_vec(),
            subscriptions: out
                .subscriptions()
                .iter()
                .map(|s| spec::Subscription {
                    event: s.event().to_string(),
                    description: s.description().map(str::to_string),
                })
                .collect(),
            publications: out
                .publications()
                .iter()
                .map(|p| spec::Publication {
                    event: p.event().to_string(),
                    schema: p.schema().to_string(),
                    description: p.description().map(str::to_string),
                })
                .collect(),
            iframe: out.iframe_config().map(|i| spec::IframeSpec {
                allow: i.allow().to_vec(),
                sandbox: i.sandbox().to_vec(),
            }),
            initialization_timeout_ms: out
                .initialization_timeout()
                .and_then(|ms| u32::try_from(ms).ok()),
        };
        let tags = out
            .tags()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Ok(Some(ApplicationDetails {
            id: id.to_string(),
            arn: arn.to_string(),
            namespace: namespace.to_string(),
            fields,
            tags,
        }))
    }

    #[allow(deprecated)]
    async fn update_application(
        &self,
        id_or_arn: &str,
        fields: &ApplicationFields,
        previous: Option<&ApplicationFields>,
    ) -> Result<(), ErrorInfo> {
        // Send a member when there is no previous value to compare with, or when it changed.
        let send = |same: fn(&ApplicationFields, &ApplicationFields) -> bool| {
            previous.is_none_or(|p| !same(p, fields))
        };
        let mut call = self.client.update_application().arn(id_or_arn);
        if send(|a, b| a.display_name == b.display_name) {
            call = call.name(&fields.display_name);
        }
        if send(|a, b| a.description == b.description) {
            // AppIntegrations cannot remove a description; an empty one is the closest.
            call = call.description(fields.description.clone().unwrap_or_default());
        }
        if send(|a, b| a.access_url == b.access_url && a.approved_origins == b.approved_origins) {
            call = call.application_source_config(source_config(
                &fields.access_url,
                &fields.approved_origins,
            )?);
        }
        if send(|a, b| a.subscriptions == b.subscriptions) {
            call = call.set_subscriptions(Some(sdk_subscriptions(&fields.subscriptions)?));
        }
        if send(|a, b| a.publications == b.publications) {
            call = call.set_publications(Some(sdk_publications(&fields.publications)?));
        }
        if send(|a, b| a.permissions == b.permissions) {
            call = call.set_permissions(Some(fields.permissions.clone()));
        }
        if send(|a, b| a.initialization_timeout_ms == b.initialization_timeout_ms) {
            call = call.set_initialization_timeout(timeout_ms(fields.initialization_timeout_ms));
        }
        if let Some(iframe) = fields
            .iframe
            .as_ref()
            .filter(|_| send(|a, b| a.iframe == b.iframe))
        {
            call = call.iframe_config(sdk_iframe(iframe));
        }
        call.send()
            .await
            .map(|_| ())
            .map_err(|e| classify("app-integrations:UpdateApplication", e))
    }

    async fn tag_application(
        &self,
        arn: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), ErrorInfo> {
        self.client
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(tags.clone().into_iter().collect()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("app-integrations:TagResource", e))
    }

    async fn untag_application(&self, arn: &str, keys: &[String]) -> Result<(), ErrorInfo> {
        self.client
            .untag_resource()
            .resource_arn(arn)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("app-integrations:UntagResource", e))
    }

    async fn list_application_associations(
        &self,
        id_or_arn: &str,
    ) -> Result<Vec<String>, ErrorInfo> {
        let mut arns = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .client
                .list_application_associations()
                .application_id(id_or_arn)
                .max_results(50)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| classify("app-integrations:ListApplicationAssociations", e))?;
            arns.extend(
                page.application_associations()
                    .iter()
                    .filter_map(|a| a.application_association_arn().map(str::to_string)),
            );
            match page.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_string()),
                _ => return Ok(arns),
            }
        }
    }
}
