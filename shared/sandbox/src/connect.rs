//! Amazon Connect (rest-json): DescribeInstance, ListInstances, CreateIntegrationAssociation,
//! DeleteIntegrationAssociation, ListIntegrationAssociations, ListSecurityProfiles,
//! DescribeSecurityProfile, ListSecurityProfileApplications and UpdateSecurityProfile — paths,
//! shapes and error codes from the `connect/2017-08-08` service model.

use crate::clock::epoch_seconds;
use crate::paging::page;
use crate::restjson::{compact, parse_body, query, query_int, shape};
use crate::state::{Instance, World};
use crate::validate::{self as v, Violations};
use crate::wire::{ApiError, Outcome, Reply, Service};
use axum::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// A security-profile application grant (the model's `Application` shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Grant {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_permissions: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateIntegrationAssociationRequest {
    integration_type: Option<String>,
    integration_arn: Option<String>,
    source_application_url: Option<String>,
    source_application_name: Option<String>,
    source_type: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

/// The members of `UpdateSecurityProfileRequest` the sandbox stores; the others are accepted
/// and ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateSecurityProfileRequest {
    description: Option<String>,
    permissions: Option<Vec<String>>,
    applications: Option<Vec<Grant>>,
}

const INTEGRATION_TYPES: &[&str] = &[
    "EVENT",
    "VOICE_ID",
    "PINPOINT_APP",
    "WISDOM_ASSISTANT",
    "WISDOM_KNOWLEDGE_BASE",
    "WISDOM_QUICK_RESPONSES",
    "Q_MESSAGE_TEMPLATES",
    "CASES_DOMAIN",
    "APPLICATION",
    "FILE_SCANNER",
    "SES_IDENTITY",
    "ANALYTICS_CONNECTOR",
    "CALL_TRANSFER_CONNECTOR",
    "COGNITO_USER_POOL",
    "MESSAGE_PROCESSOR",
];

/// The path an instance's role has when it is the Connect service-linked role.
pub(crate) const SLR_MARKER: &str =
    ":role/aws-service-role/connect.amazonaws.com/AWSServiceRoleForAmazonConnect_";

/// Maps a method and decoded path segments to an operation and its path labels.
pub(crate) fn route(method: &Method, segs: &[String]) -> Option<(&'static str, Vec<String>)> {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let (op, labels) = match (method.as_str(), s.as_slice()) {
        ("GET", ["instance"]) => ("ListInstances", vec![]),
        ("GET", ["instance", id]) => ("DescribeInstance", vec![*id]),
        ("PUT", ["instance", id, "integration-associations"]) => {
            ("CreateIntegrationAssociation", vec![*id])
        }
        ("GET", ["instance", id, "integration-associations"]) => {
            ("ListIntegrationAssociations", vec![*id])
        }
        ("DELETE", ["instance", id, "integration-associations", assoc]) => {
            ("DeleteIntegrationAssociation", vec![*id, *assoc])
        }
        ("GET", ["security-profiles-summary", id]) => ("ListSecurityProfiles", vec![*id]),
        ("GET", ["security-profiles", id, sp]) => ("DescribeSecurityProfile", vec![*id, *sp]),
        ("POST", ["security-profiles", id, sp]) => ("UpdateSecurityProfile", vec![*id, *sp]),
        ("GET", ["security-profiles-applications", id, sp]) => {
            ("ListSecurityProfileApplications", vec![*id, *sp])
        }
        _ => return None,
    };
    Some((op, labels.into_iter().map(str::to_owned).collect()))
}

/// Runs one operation against the world.
pub(crate) fn execute(
    world: &mut World,
    op: &str,
    labels: &[String],
    params: &[(String, String)],
    body: &[u8],
    now_ms: u64,
) -> Outcome {
    let first = labels.first().map(String::as_str).unwrap_or_default();
    let second = labels.get(1).map(String::as_str).unwrap_or_default();
    let ctx = Op { name: op };
    match op {
        "DescribeInstance" => describe_instance(world, ctx, first),
        "ListInstances" => list_instances(world, ctx, params),
        "CreateIntegrationAssociation" => create_association(world, ctx, first, body, now_ms),
        "DeleteIntegrationAssociation" => delete_association(world, ctx, first, second),
        "ListIntegrationAssociations" => list_associations(world, ctx, first, params),
        "ListSecurityProfiles" => list_profiles(world, ctx, first, params),
        "DescribeSecurityProfile" => describe_profile(world, ctx, first, second),
        "ListSecurityProfileApplications" => {
            list_profile_applications(world, ctx, first, second, params)
        }
        "UpdateSecurityProfile" => update_profile(world, ctx, first, second, body, now_ms),
        other => Err(Service::Connect.unknown_operation(other)),
    }
}

/// The operation being served: decides which validation code applies.
#[derive(Clone, Copy)]
struct Op<'a> {
    name: &'a str,
}

impl Op<'_> {
    /// Constraint violations are `InvalidParameterException` where the operation models it
    /// (the security-profile APIs) and `InvalidRequestException` elsewhere.
    fn invalid(self, message: &str) -> ApiError {
        let code = if self.name.contains("SecurityProfile") {
            "InvalidParameterException"
        } else {
            "InvalidRequestException"
        };
        ApiError::new(code, 400, message)
    }

    fn check(self, violations: Violations) -> Result<(), ApiError> {
        violations
            .finish()
            .map_or(Ok(()), |m| Err(self.invalid(&m)))
    }

    fn max_results(
        self,
        params: &[(String, String)],
        max: i64,
        default: i64,
    ) -> Result<usize, ApiError> {
        let value = query_int(params, "maxResults").map_err(|m| self.invalid(&m))?;
        let mut v = Violations::new();
        v.range("maxResults", value, 1, max);
        self.check(v)?;
        Ok(usize::try_from(value.unwrap_or(default)).unwrap_or(1))
    }
}

fn not_found(what: &str) -> ApiError {
    ApiError::new("ResourceNotFoundException", 404, what)
}

/// Validates an instance id or ARN and finds the instance.
fn instance<'w>(world: &'w World, op: Op<'_>, identifier: &str) -> Result<&'w Instance, ApiError> {
    let mut v = Violations::new();
    v.string("InstanceId", Some(identifier), 1, 100, None);
    op.check(v)?;
    world
        .resolve_instance(identifier)
        .and_then(|id| world.instances.get(&id))
        .ok_or_else(|| not_found(&format!("Instance {identifier} was not found")))
}

fn profile_id(instance: &Instance, identifier: &str) -> String {
    let prefix = format!("{}/security-profile/", instance.arn);
    identifier
        .strip_prefix(&prefix)
        .unwrap_or(identifier)
        .to_owned()
}

fn instance_summary(i: &Instance) -> serde_json::Value {
    compact(json!({
        "Id": i.id,
        "Arn": i.arn,
        "IdentityManagementType": i.identity_management_type,
        "InstanceAlias": i.alias,
        "CreatedTime": epoch_seconds(i.created_ms),
        "ServiceRole": i.service_role,
        "InstanceStatus": i.status,
        "InboundCallsEnabled": true,
        "OutboundCallsEnabled": true,
        "InstanceAccessUrl": i.access_url,
    }))
}

fn describe_instance(world: &mut World, op: Op<'_>, id: &str) -> Outcome {
    let inst = instance(world, op, id)?;
    Ok(Reply::Json(json!({"Instance": instance_summary(inst)})))
}

fn list_instances(world: &mut World, op: Op<'_>, params: &[(String, String)]) -> Outcome {
    let max = op.max_results(params, 10, 10)?;
    let items = world
        .instances
        .values()
        .map(|i| (i.id.clone(), instance_summary(i)))
        .collect();
    let (page, next) = page(items, query(params, "nextToken"), max)
        .map_err(|_| op.invalid("Invalid NextToken"))?;
    Ok(Reply::Json(compact(
        json!({"InstanceSummaryList": page, "NextToken": next}),
    )))
}

fn create_association(
    world: &mut World,
    op: Op<'_>,
    id: &str,
    body: &[u8],
    now_ms: u64,
) -> Outcome {
    let raw = parse_body(body)?;
    let req: CreateIntegrationAssociationRequest = shape(&raw)?;
    let mut v = Violations::new();
    v.required("IntegrationType", req.integration_type.as_ref());
    v.required("IntegrationArn", req.integration_arn.as_ref());
    v.one_of(
        "IntegrationType",
        req.integration_type.as_deref(),
        INTEGRATION_TYPES,
    );
    v.string(
        "SourceApplicationUrl",
        req.source_application_url.as_deref(),
        1,
        2000,
        None,
    );
    v.string(
        "SourceApplicationName",
        req.source_application_name.as_deref(),
        1,
        100,
        Some(&v::SOURCE_APP_NAME),
    );
    v.one_of(
        "SourceType",
        req.source_type.as_deref(),
        &["SALESFORCE", "ZENDESK", "CASES"],
    );
    if let Some(tags) = &req.tags {
        v.count("Tags", Some(tags.len()), 1, 50);
        for (key, value) in tags {
            v.string("Tags.key", Some(key), 1, 128, None);
            if key.starts_with("aws:") {
                v.push(format!("Value '{key}' at 'tags.key' failed to satisfy constraint: Member must not start with aws:"));
            }
            v.string("Tags.value", Some(value), 0, 256, None);
        }
    }
    op.check(v)?;
    let (Some(kind), Some(arn)) = (req.integration_type, req.integration_arn) else {
        return Err(op.invalid("IntegrationType and IntegrationArn are required"));
    };
    let inst = instance(world, op, id)?;
    let instance_id = inst.id.clone();
    if inst.status != "ACTIVE" {
        return Err(op.invalid(&format!(
            "Instance {instance_id} is not ACTIVE (status {})",
            inst.status
        )));
    }
    let (integration_arn, application_id) = if kind == "APPLICATION" {
        let uses_slr = inst
            .service_role
            .as_deref()
            .is_some_and(|r| r.contains(SLR_MARKER));
        if !uses_slr {
            return Err(op.invalid(&format!(
                "Instance {instance_id} does not use a service-linked role. Third-party applications can be \
                 integrated only with instances that use the AWSServiceRoleForAmazonConnect service-linked role; \
                 create it first (Amazon Connect console, instance overview, Create service-linked role)"
            )));
        }
        let app_id = if arn.starts_with("arn:") {
            world.resolve_application(&arn)
        } else {
            None
        };
        let Some(app_id) = app_id else {
            return Err(not_found(&format!("Application {arn} was not found")));
        };
        (world.application_arn(&app_id), Some(app_id))
    } else {
        (arn, None)
    };
    let duplicate = world.integration_associations.values().any(|a| {
        a.instance_id == instance_id
            && a.integration_type == kind
            && a.integration_arn == integration_arn
    });
    if duplicate {
        return Err(ApiError::new(
            "DuplicateResourceException",
            409,
            &format!("{integration_arn} is already associated with instance {instance_id}"),
        ));
    }
    let assoc_id = world.associate(
        &instance_id,
        &kind,
        &integration_arn,
        application_id.as_deref(),
        now_ms,
    );
    let assoc_arn = world
        .integration_associations
        .get(&assoc_id)
        .map(|a| a.arn.clone())
        .unwrap_or_default();
    Ok(Reply::Json(json!({
        "IntegrationAssociationId": assoc_id,
        "IntegrationAssociationArn": assoc_arn,
    })))
}

fn delete_association(world: &mut World, op: Op<'_>, id: &str, assoc_id: &str) -> Outcome {
    let instance_id = instance(world, op, id)?.id.clone();
    let mut v = Violations::new();
    v.string("IntegrationAssociationId", Some(assoc_id), 1, 200, None);
    op.check(v)?;
    let exists = world
        .integration_associations
        .get(assoc_id)
        .is_some_and(|a| a.instance_id == instance_id);
    if !exists {
        return Err(not_found(&format!(
            "Integration association {assoc_id} was not found in instance {instance_id}"
        )));
    }
    world.disassociate(assoc_id);
    Ok(Reply::Json(json!({})))
}

fn list_associations(
    world: &mut World,
    op: Op<'_>,
    id: &str,
    params: &[(String, String)],
) -> Outcome {
    let instance_id = instance(world, op, id)?.id.clone();
    let max = op.max_results(params, 100, 100)?;
    let kind = query(params, "integrationType");
    let arn = query(params, "integrationArn");
    let mut v = Violations::new();
    v.one_of("integrationType", kind, INTEGRATION_TYPES);
    op.check(v)?;
    let items = world
        .integration_associations
        .values()
        .filter(|a| a.instance_id == instance_id)
        .filter(|a| kind.is_none_or(|k| a.integration_type == k))
        .filter(|a| arn.is_none_or(|x| a.integration_arn == x))
        .map(|a| {
            (
                a.id.clone(),
                json!({
                    "IntegrationAssociationId": a.id,
                    "IntegrationAssociationArn": a.arn,
                    "InstanceId": a.instance_id,
                    "IntegrationType": a.integration_type,
                    "IntegrationArn": a.integration_arn,
                    "LastModifiedTime": epoch_seconds(a.modified_ms),
                    "LastModifiedRegion": world.region,
                }),
            )
        })
        .collect();
    let (page, next) = page(items, query(params, "nextToken"), max)
        .map_err(|_| op.invalid("Invalid NextToken"))?;
    Ok(Reply::Json(compact(
        json!({"IntegrationAssociationSummaryList": page, "NextToken": next}),
    )))
}

fn list_profiles(world: &mut World, op: Op<'_>, id: &str, params: &[(String, String)]) -> Outcome {
    let inst = instance(world, op, id)?;
    let max = op.max_results(params, 1000, 100)?;
    let items = inst
        .security_profiles
        .values()
        .map(|p| {
            (
                p.id.clone(),
                json!({
                    "Id": p.id,
                    "Arn": p.arn,
                    "Name": p.name,
                    "LastModifiedTime": epoch_seconds(p.modified_ms),
                    "LastModifiedRegion": world.region,
                }),
            )
        })
        .collect();
    let (page, next) = page(items, query(params, "nextToken"), max)
        .map_err(|_| op.invalid("Invalid NextToken"))?;
    Ok(Reply::Json(compact(
        json!({"SecurityProfileSummaryList": page, "NextToken": next}),
    )))
}

fn describe_profile(world: &mut World, op: Op<'_>, id: &str, profile: &str) -> Outcome {
    let inst = instance(world, op, id)?;
    let p = inst
        .security_profiles
        .get(&profile_id(inst, profile))
        .ok_or_else(|| not_found(&format!("Security profile {profile} was not found")))?;
    Ok(Reply::Json(json!({"SecurityProfile": compact(json!({
        "Id": p.id,
        "OrganizationResourceId": inst.id,
        "Arn": p.arn,
        "SecurityProfileName": p.name,
        "Description": p.description,
        "LastModifiedTime": epoch_seconds(p.modified_ms),
        "LastModifiedRegion": world.region,
        "Type": "CUSTOMER_MANAGED",
    }))})))
}

fn list_profile_applications(
    world: &mut World,
    op: Op<'_>,
    id: &str,
    profile: &str,
    params: &[(String, String)],
) -> Outcome {
    let inst = instance(world, op, id)?;
    let p = inst
        .security_profiles
        .get(&profile_id(inst, profile))
        .ok_or_else(|| not_found(&format!("Security profile {profile} was not found")))?;
    // The response carries at most 10 applications per page, whatever maxResults says.
    let max = op.max_results(params, 1000, 10)?.min(10);
    let items = p
        .applications
        .iter()
        .enumerate()
        .map(|(i, g)| (format!("{i:06}"), g.clone()))
        .collect();
    let (page, next) = page(items, query(params, "nextToken"), max)
        .map_err(|_| op.invalid("Invalid NextToken"))?;
    Ok(Reply::Json(compact(json!({
        "Applications": page,
        "NextToken": next,
        "LastModifiedTime": epoch_seconds(p.modified_ms),
        "LastModifiedRegion": world.region,
    }))))
}

fn update_profile(
    world: &mut World,
    op: Op<'_>,
    id: &str,
    profile: &str,
    body: &[u8],
    now_ms: u64,
) -> Outcome {
    let raw = parse_body(body)?;
    let req: UpdateSecurityProfileRequest = shape(&raw)?;
    let mut v = Violations::new();
    v.string("Description", req.description.as_deref(), 0, 250, None);
    v.count(
        "Permissions",
        req.permissions.as_ref().map(Vec::len),
        0,
        500,
    );
    v.strings("Permissions", req.permissions.as_deref(), 1, 128, None);
    v.count(
        "Applications",
        req.applications.as_ref().map(Vec::len),
        0,
        10,
    );
    for grant in req.applications.iter().flatten() {
        v.required("Applications.Namespace", grant.namespace.as_ref());
        v.string(
            "Applications.Namespace",
            grant.namespace.as_deref(),
            1,
            128,
            None,
        );
        v.required(
            "Applications.ApplicationPermissions",
            grant.application_permissions.as_ref(),
        );
        v.count(
            "Applications.ApplicationPermissions",
            grant.application_permissions.as_ref().map(Vec::len),
            1,
            50,
        );
        v.strings(
            "Applications.ApplicationPermissions",
            grant.application_permissions.as_deref(),
            1,
            128,
            None,
        );
        v.one_of(
            "Applications.Type",
            grant.r#type.as_deref(),
            &["MCP", "THIRD_PARTY_APPLICATION"],
        );
    }
    op.check(v)?;
    let inst = instance(world, op, id)?;
    let instance_id = inst.id.clone();
    let pid = profile_id(inst, profile);
    let current = inst
        .security_profiles
        .get(&pid)
        .ok_or_else(|| not_found(&format!("Security profile {profile} was not found")))?;
    if let Some(grants) = &req.applications {
        let existing: BTreeSet<&str> = current
            .applications
            .iter()
            .filter_map(|g| g.namespace.as_deref())
            .collect();
        let mut seen = BTreeSet::new();
        for grant in grants {
            let ns = grant.namespace.as_deref().unwrap_or_default();
            if !seen.insert(ns) {
                return Err(op.invalid(&format!(
                    "Application namespace {ns} appears more than once"
                )));
            }
            let third_party = grant.r#type.as_deref() != Some("MCP");
            if !third_party {
                continue;
            }
            if grant
                .application_permissions
                .iter()
                .flatten()
                .any(|p| p != "ACCESS")
            {
                return Err(op.invalid(&format!(
                    "Only the ACCESS permission is supported for third-party application {ns}"
                )));
            }
            // Only a newly granted namespace must name an application associated with this
            // instance; grants already present are written back untouched (read-modify-write).
            if !existing.contains(ns) {
                let associated = world.applications.values().any(|app| {
                    app.namespace == ns
                        && world.integration_associations.values().any(|a| {
                            a.instance_id == instance_id
                                && a.integration_type == "APPLICATION"
                                && a.integration_arn == app.arn
                        })
                });
                if !associated {
                    return Err(op.invalid(&format!(
                        "No application with namespace {ns} is associated with instance {instance_id}; \
                         associate it (CreateIntegrationAssociation) before granting it"
                    )));
                }
            }
        }
    }
    let Some(p) = world
        .instances
        .get_mut(&instance_id)
        .and_then(|i| i.security_profiles.get_mut(&pid))
    else {
        return Err(not_found(&format!(
            "Security profile {profile} was not found"
        )));
    };
    if let Some(grants) = req.applications {
        // The list replaces the previous one.
        p.applications = grants;
    }
    if req.description.is_some() {
        p.description = req.description;
    }
    if let Some(perms) = req.permissions {
        p.permissions = perms;
    }
    p.modified_ms = now_ms;
    Ok(Reply::Json(json!({})))
}
