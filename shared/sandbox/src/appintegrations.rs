//! Amazon AppIntegrations (rest-json): CreateApplication, GetApplication, UpdateApplication,
//! DeleteApplication, ListApplications, ListApplicationAssociations — paths, shapes, rules and
//! error codes from the `appintegrations/2020-07-29` service model.

use crate::clock::epoch_seconds;
use crate::paging::page;
use crate::restjson::{compact, parse_body, query, query_bool, query_int, shape};
use crate::state::{Application, TokenRecord, World};
use crate::validate::{self as v, Violations};
use crate::wire::{ApiError, Outcome, Reply};
use axum::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// `ApplicationSourceConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ApplicationSourceConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_url_config: Option<ExternalUrlConfig>,
}

/// `ExternalUrlConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ExternalUrlConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_origins: Option<Vec<String>>,
}

/// `Subscription` (deprecated in favour of `Permissions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Subscription {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `Publication` (deprecated in favour of `Permissions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Publication {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `ApplicationConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ApplicationConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_handling: Option<ContactHandling>,
}

/// `ContactHandling`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ContactHandling {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// `IframeConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct IframeConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<Vec<String>>,
}

/// `AuthConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AuthConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_provider_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience_override: Option<String>,
}

/// The members of `CreateApplicationRequest`; `UpdateApplicationRequest` is the same minus
/// `Namespace`, `ClientToken` and `Tags`, which an update ignores.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApplicationFields {
    name: Option<String>,
    namespace: Option<String>,
    description: Option<String>,
    application_source_config: Option<ApplicationSourceConfig>,
    subscriptions: Option<Vec<Subscription>>,
    publications: Option<Vec<Publication>>,
    client_token: Option<String>,
    tags: Option<BTreeMap<String, String>>,
    permissions: Option<Vec<String>>,
    is_service: Option<bool>,
    initialization_timeout: Option<i64>,
    application_config: Option<ApplicationConfig>,
    iframe_config: Option<IframeConfig>,
    application_type: Option<String>,
    auth_config: Option<AuthConfig>,
}

const APPLICATION_TYPES: &[&str] = &["STANDARD", "SERVICE", "MCP_SERVER", "A2A_SERVER"];

/// Limits that are account quotas rather than model constraints.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_applications: usize,
}

/// Maps a method and decoded path segments to an operation and its path labels.
pub(crate) fn route(method: &Method, segs: &[String]) -> Option<(&'static str, Vec<String>)> {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let op = match (method.as_str(), s.as_slice()) {
        ("POST", ["applications"]) => "CreateApplication",
        ("GET", ["applications"]) => "ListApplications",
        ("GET", ["applications", _]) => "GetApplication",
        ("PATCH", ["applications", _]) => "UpdateApplication",
        ("DELETE", ["applications", _]) => "DeleteApplication",
        ("GET", ["applications", _, "associations"]) => "ListApplicationAssociations",
        ("POST", ["tags", _]) => "TagResource",
        ("DELETE", ["tags", _]) => "UntagResource",
        _ => return None,
    };
    Some((op, segs.iter().skip(1).take(1).cloned().collect()))
}

/// Runs one operation against the world.
pub(crate) fn execute(
    world: &mut World,
    op: &str,
    labels: &[String],
    params: &[(String, String)],
    body: &[u8],
    now_ms: u64,
    limits: Limits,
) -> Outcome {
    let label = labels.first().map(String::as_str).unwrap_or_default();
    match op {
        "CreateApplication" => create(world, body, now_ms, limits),
        "GetApplication" => get(world, label),
        "UpdateApplication" => update(world, label, body, now_ms),
        "DeleteApplication" => delete(world, label, params),
        "ListApplications" => list(world, params),
        "ListApplicationAssociations" => list_associations(world, label, params),
        "TagResource" => tag(world, label, body, now_ms),
        "UntagResource" => untag(world, label, params, now_ms),
        other => Err(crate::wire::Service::AppIntegrations.unknown_operation(other)),
    }
}

fn invalid(message: &str) -> ApiError {
    ApiError::new("InvalidRequestException", 400, message)
}

fn not_found(identifier: &str) -> ApiError {
    ApiError::new(
        "ResourceNotFoundException",
        404,
        &format!("Application {identifier} was not found"),
    )
}

fn check(violations: Violations) -> Result<(), ApiError> {
    violations.finish().map_or(Ok(()), |m| Err(invalid(&m)))
}

/// Constraints shared by create and update.
fn validate_common(v: &mut Violations, f: &ApplicationFields) {
    v.string("Name", f.name.as_deref(), 1, 255, Some(&v::APP_NAME));
    v.string("Description", f.description.as_deref(), 0, 1000, None);
    if let Some(source) = &f.application_source_config {
        if let Some(ext) = &source.external_url_config {
            let path = "ApplicationSourceConfig.ExternalUrlConfig";
            v.required(&format!("{path}.AccessUrl"), ext.access_url.as_ref());
            v.string(
                &format!("{path}.AccessUrl"),
                ext.access_url.as_deref(),
                1,
                1000,
                Some(&v::URL),
            );
            v.count(
                &format!("{path}.ApprovedOrigins"),
                ext.approved_origins.as_ref().map(Vec::len),
                1,
                50,
            );
            v.strings(
                &format!("{path}.ApprovedOrigins"),
                ext.approved_origins.as_deref(),
                1,
                128,
                Some(&v::URL),
            );
        }
    }
    v.count(
        "Subscriptions",
        f.subscriptions.as_ref().map(Vec::len),
        0,
        50,
    );
    for s in f.subscriptions.iter().flatten() {
        v.required("Subscriptions.Event", s.event.as_ref());
        v.string(
            "Subscriptions.Event",
            s.event.as_deref(),
            1,
            255,
            Some(&v::EVENT_NAME),
        );
        v.string(
            "Subscriptions.Description",
            s.description.as_deref(),
            0,
            1000,
            None,
        );
    }
    v.count("Publications", f.publications.as_ref().map(Vec::len), 0, 50);
    for p in f.publications.iter().flatten() {
        v.required("Publications.Event", p.event.as_ref());
        v.required("Publications.Schema", p.schema.as_ref());
        v.string(
            "Publications.Event",
            p.event.as_deref(),
            1,
            255,
            Some(&v::EVENT_NAME),
        );
        v.string("Publications.Schema", p.schema.as_deref(), 1, 10240, None);
        v.string(
            "Publications.Description",
            p.description.as_deref(),
            0,
            1000,
            None,
        );
    }
    v.count("Permissions", f.permissions.as_ref().map(Vec::len), 0, 150);
    v.strings(
        "Permissions",
        f.permissions.as_deref(),
        1,
        255,
        Some(&v::PERMISSION),
    );
    v.range(
        "InitializationTimeout",
        f.initialization_timeout,
        1,
        600_000,
    );
    if let Some(scope) = f
        .application_config
        .as_ref()
        .and_then(|c| c.contact_handling.as_ref())
        .and_then(|c| c.scope.as_deref())
    {
        v.one_of(
            "ApplicationConfig.ContactHandling.Scope",
            Some(scope),
            &["CROSS_CONTACTS", "PER_CONTACT"],
        );
    }
    if let Some(iframe) = &f.iframe_config {
        v.count(
            "IframeConfig.Allow",
            iframe.allow.as_ref().map(Vec::len),
            0,
            25,
        );
        v.strings(
            "IframeConfig.Allow",
            iframe.allow.as_deref(),
            1,
            100,
            Some(&v::IFRAME_PERMISSION),
        );
        v.count(
            "IframeConfig.Sandbox",
            iframe.sandbox.as_ref().map(Vec::len),
            0,
            25,
        );
        v.strings(
            "IframeConfig.Sandbox",
            iframe.sandbox.as_deref(),
            1,
            100,
            Some(&v::IFRAME_PERMISSION),
        );
    }
    v.one_of(
        "ApplicationType",
        f.application_type.as_deref(),
        APPLICATION_TYPES,
    );
    if let Some(auth) = &f.auth_config {
        v.one_of(
            "AuthConfig.AuthType",
            auth.auth_type.as_deref(),
            &["API_KEY", "CONNECT_JWT"],
        );
        v.string(
            "AuthConfig.CredentialProviderIdentifier",
            auth.credential_provider_identifier.as_deref(),
            1,
            2048,
            Some(&v::ARN),
        );
        v.string(
            "AuthConfig.AudienceOverride",
            auth.audience_override.as_deref(),
            1,
            255,
            Some(&v::NON_BLANK),
        );
    }
}

/// Rules the model states in documentation rather than constraints.
fn auth_rules(f: &ApplicationFields) -> Result<(), ApiError> {
    let auth = f.auth_config.as_ref();
    let auth_type = auth.and_then(|a| a.auth_type.as_deref());
    if f.application_type.as_deref() == Some("A2A_SERVER") && auth_type.is_none() {
        return Err(invalid(
            "AuthConfig.AuthType is required for A2A_SERVER applications",
        ));
    }
    if let Some(auth) = auth {
        let has_secret = auth.credential_provider_identifier.is_some();
        match auth_type {
            Some("API_KEY") if !has_secret => {
                return Err(invalid(
                    "CredentialProviderIdentifier is required when AuthType is API_KEY",
                ))
            }
            Some("CONNECT_JWT") if has_secret => {
                return Err(invalid(
                    "CredentialProviderIdentifier must not be set when AuthType is CONNECT_JWT",
                ))
            }
            _ => {}
        }
        if let Some(aud) = &auth.audience_override {
            if auth_type != Some("CONNECT_JWT") {
                return Err(invalid(
                    "AudienceOverride can be set only when AuthType is CONNECT_JWT",
                ));
            }
            if aud.contains("connect.amazonaws.com") {
                return Err(invalid(
                    "AudienceOverride can't contain connect.amazonaws.com",
                ));
            }
        }
    }
    Ok(())
}

fn create(world: &mut World, body: &[u8], now_ms: u64, limits: Limits) -> Outcome {
    let raw = parse_body(body)?;
    let f: ApplicationFields = shape(&raw)?;
    let mut v = Violations::new();
    v.required("Name", f.name.as_ref());
    v.required("Namespace", f.namespace.as_ref());
    v.required(
        "ApplicationSourceConfig",
        f.application_source_config.as_ref(),
    );
    v.string(
        "Namespace",
        f.namespace.as_deref(),
        1,
        211,
        Some(&v::NAMESPACE),
    );
    v.string("ClientToken", f.client_token.as_deref(), 1, 2048, None);
    if let Some(tags) = &f.tags {
        v.count("Tags", Some(tags.len()), 1, 200);
        for (key, value) in tags {
            v.string("Tags.key", Some(key), 1, 128, None);
            v.string("Tags.value", Some(value), 0, 256, None);
        }
    }
    validate_common(&mut v, &f);
    check(v)?;
    auth_rules(&f)?;
    let (Some(name), Some(namespace), Some(source)) =
        (f.name, f.namespace, f.application_source_config)
    else {
        return Err(invalid(
            "Name, Namespace and ApplicationSourceConfig are required",
        ));
    };

    // Idempotency: the same token and the same request return the first result.
    let mut fingerprint = raw;
    if let Value::Object(map) = &mut fingerprint {
        map.remove("ClientToken");
    }
    if let Some(token) = &f.client_token {
        if let Some(record) = world.client_tokens.get(token) {
            if record.request != fingerprint {
                return Err(invalid(&format!(
                    "ClientToken {token} was already used with a different CreateApplication request"
                )));
            }
            if let Some(app) = world.applications.get(&record.application_id) {
                return Ok(Reply::Json(json!({"Arn": app.arn, "Id": app.id})));
            }
        }
    }
    if world
        .applications
        .values()
        .any(|a| a.namespace == namespace)
    {
        return Err(ApiError::new(
            "DuplicateResourceException",
            409,
            &format!("An application with namespace {namespace} already exists"),
        ));
    }
    if world.applications.len() >= limits.max_applications {
        return Err(ApiError::new(
            "ResourceQuotaExceededException",
            429,
            &format!(
                "The quota of {} applications per Region has been reached",
                limits.max_applications
            ),
        ));
    }
    let id = world.new_id();
    let arn = world.application_arn(&id);
    world.applications.insert(
        id.clone(),
        Application {
            id: id.clone(),
            arn: arn.clone(),
            name,
            namespace,
            description: f.description,
            source,
            subscriptions: f.subscriptions,
            publications: f.publications,
            tags: f.tags.unwrap_or_default(),
            permissions: f.permissions,
            is_service: f.is_service,
            initialization_timeout: f.initialization_timeout,
            application_config: f.application_config,
            iframe_config: f.iframe_config,
            application_type: f.application_type,
            auth_config: f.auth_config,
            created_ms: now_ms,
            modified_ms: now_ms,
        },
    );
    if let Some(token) = f.client_token {
        world.client_tokens.insert(
            token,
            TokenRecord {
                request: fingerprint,
                application_id: id.clone(),
            },
        );
    }
    Ok(Reply::Json(json!({"Arn": arn, "Id": id})))
}

/// Validates a path identifier (ARN or UUID) and finds the application.
fn find(world: &World, identifier: &str, member: &str) -> Result<String, ApiError> {
    let mut v = Violations::new();
    v.string(member, Some(identifier), 1, 2048, Some(&v::ARN_OR_UUID));
    check(v)?;
    world
        .resolve_application(identifier)
        .ok_or_else(|| not_found(identifier))
}

/// TagResource on an application (the only taggable resource the sandbox models).
fn tag(world: &mut World, arn: &str, body: &[u8], now_ms: u64) -> Outcome {
    #[derive(serde::Deserialize)]
    struct TagBody {
        tags: Option<BTreeMap<String, String>>,
    }
    let id = find(world, arn, "resourceArn")?;
    let raw = parse_body(body)?;
    let b: TagBody = shape(&raw)?;
    let tags = b
        .tags
        .ok_or_else(|| invalid("1 validation error detected: tags is required"))?;
    if tags.is_empty() || tags.len() > 200 {
        return Err(invalid("tags must have 1 to 200 entries"));
    }
    if tags
        .keys()
        .any(|k| k.is_empty() || k.len() > 128 || k.starts_with("aws:"))
        || tags.values().any(|v| v.len() > 256)
    {
        return Err(invalid(
            "tag keys are 1..128 characters and may not start with aws:; values 0..256",
        ));
    }
    let app = world
        .applications
        .get_mut(&id)
        .ok_or_else(|| not_found(arn))?;
    let merged = app
        .tags
        .keys()
        .chain(tags.keys())
        .collect::<std::collections::BTreeSet<_>>();
    if merged.len() > 200 {
        return Err(invalid("a resource can have at most 200 tags"));
    }
    app.tags.extend(tags);
    app.modified_ms = now_ms;
    Ok(Reply::Json(json!({})))
}

/// UntagResource: removes the `tagKeys` given in the query string.
fn untag(world: &mut World, arn: &str, params: &[(String, String)], now_ms: u64) -> Outcome {
    let id = find(world, arn, "resourceArn")?;
    let keys: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "tagKeys")
        .map(|(_, v)| v.as_str())
        .collect();
    if keys.is_empty() || keys.len() > 200 {
        return Err(invalid("tagKeys must have 1 to 200 entries"));
    }
    let app = world
        .applications
        .get_mut(&id)
        .ok_or_else(|| not_found(arn))?;
    for k in keys {
        app.tags.remove(k);
    }
    app.modified_ms = now_ms;
    Ok(Reply::Json(json!({})))
}

fn get(world: &mut World, identifier: &str) -> Outcome {
    let id = find(world, identifier, "Arn")?;
    let app = world
        .applications
        .get(&id)
        .ok_or_else(|| not_found(identifier))?;
    let body = json!({
        "Arn": app.arn,
        "Id": app.id,
        "Name": app.name,
        "Namespace": app.namespace,
        "Description": app.description,
        "ApplicationSourceConfig": app.source,
        "Subscriptions": app.subscriptions,
        "Publications": app.publications,
        "CreatedTime": epoch_seconds(app.created_ms),
        "LastModifiedTime": epoch_seconds(app.modified_ms),
        "LastModifiedRegion": world.region,
        "Tags": if app.tags.is_empty() { None } else { Some(&app.tags) },
        "Permissions": app.permissions,
        "IsService": app.is_service,
        "InitializationTimeout": app.initialization_timeout,
        "ApplicationConfig": app.application_config,
        "IframeConfig": app.iframe_config,
        "ApplicationType": app.application_type,
        "AuthConfig": app.auth_config,
    });
    Ok(Reply::Json(compact(body)))
}

fn update(world: &mut World, identifier: &str, body: &[u8], now_ms: u64) -> Outcome {
    let id = find(world, identifier, "Arn")?;
    let raw = parse_body(body)?;
    let f: ApplicationFields = shape(&raw)?;
    let mut v = Violations::new();
    validate_common(&mut v, &f);
    check(v)?;
    auth_rules(&f)?;
    let app = world
        .applications
        .get_mut(&id)
        .ok_or_else(|| not_found(identifier))?;
    // A partial update: members that are present replace the stored value; absent ones stay.
    if let Some(name) = f.name {
        app.name = name;
    }
    if f.description.is_some() {
        app.description = f.description;
    }
    if let Some(source) = f.application_source_config {
        app.source = source;
    }
    if f.subscriptions.is_some() {
        app.subscriptions = f.subscriptions;
    }
    if f.publications.is_some() {
        app.publications = f.publications;
    }
    if f.permissions.is_some() {
        app.permissions = f.permissions;
    }
    if f.is_service.is_some() {
        app.is_service = f.is_service;
    }
    if f.initialization_timeout.is_some() {
        app.initialization_timeout = f.initialization_timeout;
    }
    if f.application_config.is_some() {
        app.application_config = f.application_config;
    }
    if f.iframe_config.is_some() {
        app.iframe_config = f.iframe_config;
    }
    if f.application_type.is_some() {
        app.application_type = f.application_type;
    }
    if f.auth_config.is_some() {
        app.auth_config = f.auth_config;
    }
    app.modified_ms = now_ms;
    Ok(Reply::Json(json!({})))
}

fn delete(world: &mut World, identifier: &str, params: &[(String, String)]) -> Outcome {
    let id = find(world, identifier, "Arn")?;
    let force = query_bool(params, "force").map_err(|m| invalid(&m))?;
    let associations: Vec<(String, Option<String>)> = world
        .application_associations
        .values()
        .filter(|a| a.application_id == id)
        .map(|a| (a.id.clone(), a.integration_association_id.clone()))
        .collect();
    if !associations.is_empty() && !force {
        let instances: Vec<String> = associations
            .iter()
            .filter_map(|(_, ia)| {
                ia.as_ref()
                    .and_then(|ia| world.integration_associations.get(ia))
            })
            .map(|ia| ia.instance_id.clone())
            .collect();
        return Err(invalid(&format!(
            "Application {id} still has {} association(s) (Connect instances: {}). Remove the associations \
             first (Amazon Connect DeleteIntegrationAssociation), or delete with force=true to remove them too",
            associations.len(),
            instances.join(", ")
        )));
    }
    for (app_assoc, integration) in associations {
        match integration {
            Some(integration) => world.disassociate(&integration),
            None => {
                world.application_associations.remove(&app_assoc);
            }
        }
    }
    world.applications.remove(&id);
    world
        .client_tokens
        .retain(|_, record| record.application_id != id);
    Ok(Reply::Json(json!({})))
}

fn max_results(params: &[(String, String)], max: i64) -> Result<usize, ApiError> {
    let value = query_int(params, "maxResults").map_err(|m| invalid(&m))?;
    let mut v = Violations::new();
    v.range("maxResults", value, 1, max);
    check(v)?;
    Ok(usize::try_from(value.unwrap_or(max)).unwrap_or(1))
}

fn next_token(params: &[(String, String)]) -> Result<Option<&str>, ApiError> {
    let token = query(params, "nextToken");
    let mut v = Violations::new();
    v.string("nextToken", token, 1, 1000, None);
    check(v)?;
    Ok(token)
}

fn list(world: &mut World, params: &[(String, String)]) -> Outcome {
    let max = max_results(params, 50)?;
    let token = next_token(params)?;
    let app_type = query(params, "applicationType");
    let mut v = Violations::new();
    v.one_of("applicationType", app_type, APPLICATION_TYPES);
    check(v)?;
    let items = world
        .applications
        .values()
        .filter(|a| app_type.is_none() || a.application_type.as_deref() == app_type)
        .map(|a| {
            let summary = compact(json!({
                "Arn": a.arn,
                "Id": a.id,
                "Name": a.name,
                "Namespace": a.namespace,
                "CreatedTime": epoch_seconds(a.created_ms),
                "LastModifiedTime": epoch_seconds(a.modified_ms),
                "LastModifiedRegion": world.region,
                "IsService": a.is_service,
                "ApplicationType": a.application_type,
            }));
            (a.id.clone(), summary)
        })
        .collect();
    let (page, next) = page(items, token, max).map_err(|_| invalid("Invalid NextToken"))?;
    Ok(Reply::Json(compact(
        json!({"Applications": page, "NextToken": next}),
    )))
}

fn list_associations(world: &mut World, identifier: &str, params: &[(String, String)]) -> Outcome {
    let id = find(world, identifier, "ApplicationId")?;
    let max = max_results(params, 50)?;
    let token = next_token(params)?;
    let items = world
        .application_associations
        .values()
        .filter(|a| a.application_id == id)
        .map(|a| {
            (
                a.id.clone(),
                json!({
                    "ApplicationAssociationArn": a.arn,
                    "ApplicationArn": a.application_arn,
                    "ClientId": a.client_id,
                }),
            )
        })
        .collect();
    let (page, next) = page(items, token, max).map_err(|_| invalid("Invalid NextToken"))?;
    Ok(Reply::Json(compact(
        json!({"ApplicationAssociations": page, "NextToken": next}),
    )))
}
