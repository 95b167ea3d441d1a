//! Narrow ports for the AWS services the sagas change. Adapters implement them with the
//! aws-sdk crates (or the sandbox / in-memory fakes) and map every service error to an
//! [`ErrorInfo`] whose kind drives retry or rollback. "Not found" is reported as an error of
//! kind [`ErrorKind::NotFound`](crate::error::ErrorKind::NotFound) by deletes and as `None` by
//! finders.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::ErrorInfo;
use crate::spec::{ApplicationSpec, IframeSpec, Publication, Subscription};

/// An AppIntegrations application's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRef {
    pub id: String,
    pub arn: String,
}

/// An existing application, as far as ownership checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationInfo {
    pub id: String,
    pub arn: String,
    pub namespace: String,
    pub tags: BTreeMap<String, String>,
}

/// What CreateApplication needs besides the spec.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateApplication {
    pub spec: ApplicationSpec,
    pub namespace: String,
    /// Derived from the saga id so a replayed call returns the first result.
    pub client_token: String,
    /// The spec's tags plus ours (the saga id), by which a replay recognises its own app.
    pub tags: BTreeMap<String, String>,
}

/// The fields of an application that `UpdateApplication` can change (the namespace cannot).
///
/// Lists are sent whole, so an empty list clears them; `ApprovedOrigins` is cleared by sending
/// the access-URL configuration without it. `description: None` is sent as `""`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationFields {
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub access_url: String,
    #[serde(default)]
    pub approved_origins: Vec<String>,
    #[serde(default)]
    pub permissions: Vec<String>,
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
    #[serde(default)]
    pub publications: Vec<Publication>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iframe: Option<IframeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization_timeout_ms: Option<u32>,
}

impl ApplicationFields {
    /// The editable fields of a spec.
    pub fn of(spec: &ApplicationSpec) -> Self {
        ApplicationFields {
            display_name: spec.display_name.clone(),
            description: spec.description.clone().filter(|d| !d.is_empty()),
            access_url: spec.access_url.clone(),
            approved_origins: spec.approved_origins.clone(),
            permissions: spec.permissions.clone(),
            subscriptions: spec.subscriptions.clone(),
            publications: spec.publications.clone(),
            iframe: spec.iframe.clone(),
            initialization_timeout_ms: spec.initialization_timeout_ms,
        }
    }

    /// Write these fields into `spec`, leaving everything else as it is.
    pub fn apply_to(&self, spec: &mut ApplicationSpec) {
        spec.display_name = self.display_name.clone();
        spec.description = self.description.clone();
        spec.access_url = self.access_url.clone();
        spec.approved_origins = self.approved_origins.clone();
        spec.permissions = self.permissions.clone();
        spec.subscriptions = self.subscriptions.clone();
        spec.publications = self.publications.clone();
        spec.iframe = self.iframe.clone();
        spec.initialization_timeout_ms = self.initialization_timeout_ms;
    }

    /// Names of the fields that differ, in spec (camelCase) spelling, for drift reports.
    pub fn differences(&self, other: &ApplicationFields) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut cmp = |name, same: bool| {
            if !same {
                out.push(name);
            }
        };
        cmp("displayName", self.display_name == other.display_name);
        cmp("description", self.description == other.description);
        cmp("accessUrl", self.access_url == other.access_url);
        cmp(
            "approvedOrigins",
            self.approved_origins == other.approved_origins,
        );
        cmp("permissions", self.permissions == other.permissions);
        cmp("subscriptions", self.subscriptions == other.subscriptions);
        cmp("publications", self.publications == other.publications);
        cmp("iframe", self.iframe == other.iframe);
        cmp(
            "initializationTimeoutMs",
            self.initialization_timeout_ms == other.initialization_timeout_ms,
        );
        out
    }
}

/// An application as `GetApplication` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationDetails {
    pub id: String,
    pub arn: String,
    pub namespace: String,
    pub fields: ApplicationFields,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Amazon AppIntegrations applications.
#[async_trait]
pub trait AppIntegrationsPort: Send + Sync {
    async fn create_application(&self, req: &CreateApplication) -> Result<AppRef, ErrorInfo>;
    /// The application that owns `namespace`, if any.
    async fn find_application(&self, namespace: &str)
        -> Result<Option<ApplicationInfo>, ErrorInfo>;
    /// Delete by id or ARN. Refused while associations exist.
    async fn delete_application(&self, id_or_arn: &str) -> Result<(), ErrorInfo>;
    /// The application by id or ARN; `None` when it does not exist.
    async fn get_application(
        &self,
        id_or_arn: &str,
    ) -> Result<Option<ApplicationDetails>, ErrorInfo>;
    /// Set the editable fields. UpdateApplication is a PATCH: with `previous` (what the
    /// application holds now) only the members that differ are sent, so members nobody changed
    /// keep their exact stored form; without it every member is sent (a drift fix).
    async fn update_application(
        &self,
        id_or_arn: &str,
        fields: &ApplicationFields,
        previous: Option<&ApplicationFields>,
    ) -> Result<(), ErrorInfo>;
    /// Add or replace tags on an application (TagResource).
    async fn tag_application(
        &self,
        arn: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), ErrorInfo>;
    /// Remove tags from an application (UntagResource).
    async fn untag_application(&self, arn: &str, keys: &[String]) -> Result<(), ErrorInfo>;
    /// ARNs of the application's associations (all pages), whoever made them.
    async fn list_application_associations(
        &self,
        id_or_arn: &str,
    ) -> Result<Vec<String>, ErrorInfo>;
}

/// A Connect instance as the saga needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceInfo {
    pub id: String,
    pub arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// e.g. `ACTIVE`.
    pub status: String,
    /// `DescribeInstance.ServiceRole`: the instance's IAM role ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_role: Option<String>,
}

/// An integration association of an application with an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationRef {
    pub id: String,
    pub arn: String,
}

/// One application grant in a security profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileApplication {
    pub namespace: String,
    pub permissions: Vec<String>,
    /// Connect's `Type` (`THIRD_PARTY_APPLICATION`, `MCP`), carried through unchanged so a
    /// read-modify-write never alters other entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// Amazon Connect instances, integration associations and security-profile grants.
#[async_trait]
pub trait ConnectPort: Send + Sync {
    async fn describe_instance(&self, instance_id: &str) -> Result<InstanceInfo, ErrorInfo>;
    /// The APPLICATION association of `app_arn` with the instance, if any.
    async fn find_association(
        &self,
        instance_id: &str,
        app_arn: &str,
    ) -> Result<Option<AssociationRef>, ErrorInfo>;
    async fn create_association(
        &self,
        instance_id: &str,
        app_arn: &str,
    ) -> Result<AssociationRef, ErrorInfo>;
    async fn delete_association(
        &self,
        instance_id: &str,
        association_id: &str,
    ) -> Result<(), ErrorInfo>;
    /// Every application grant of a security profile (all pages).
    async fn profile_applications(
        &self,
        instance_id: &str,
        profile_id: &str,
    ) -> Result<Vec<ProfileApplication>, ErrorInfo>;
    /// Replace the profile's application grants with `apps`.
    async fn set_profile_applications(
        &self,
        instance_id: &str,
        profile_id: &str,
        apps: &[ProfileApplication],
    ) -> Result<(), ErrorInfo>;
    /// Ids of every instance in the account and Region (all pages).
    async fn list_instances(&self) -> Result<Vec<String>, ErrorInfo>;
    /// Ids of every security profile of an instance (all pages).
    async fn list_security_profiles(&self, instance_id: &str) -> Result<Vec<String>, ErrorInfo>;
}

/// IAM inline policies of a role.
#[async_trait]
pub trait IamPort: Send + Sync {
    /// The decoded policy document, or `None` when the role has no such inline policy.
    async fn get_role_policy(&self, role: &str, policy: &str) -> Result<Option<String>, ErrorInfo>;
    async fn put_role_policy(
        &self,
        role: &str,
        policy: &str,
        document: &str,
    ) -> Result<(), ErrorInfo>;
    async fn delete_role_policy(&self, role: &str, policy: &str) -> Result<(), ErrorInfo>;
    /// Names of the role's inline policies (all pages).
    async fn list_role_policies(&self, role: &str) -> Result<Vec<String>, ErrorInfo>;
}
