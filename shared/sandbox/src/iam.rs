//! IAM (awsQuery): GetRole, GetRolePolicy, PutRolePolicy, DeleteRolePolicy, ListRolePolicies
//! and SimulatePrincipalPolicy. Form-encoded requests, XML responses, short error codes
//! (`NoSuchEntity`, `LimitExceeded`, ...) as in the `iam/2010-05-08` model; policy documents
//! are returned percent-encoded like the real service.

use crate::clock::iso8601;
use crate::paging::page;
use crate::policy::{self, counted_size, evaluate};
use crate::state::{Role, World};
use crate::validate::{self as v, Violations};
use crate::wire::{url_encode, xml_el, ApiError, Outcome, Reply, Service};

/// The operations this sandbox serves.
pub(crate) const OPERATIONS: &[&str] = &[
    "GetRole",
    "GetRolePolicy",
    "PutRolePolicy",
    "DeleteRolePolicy",
    "ListRolePolicies",
    "SimulatePrincipalPolicy",
];

/// IAM's per-role budget for inline policies, whitespace not counted.
pub(crate) const ROLE_POLICY_BUDGET: usize = 10_240;

/// Form parameters of one request (query string and body merged, body last).
pub(crate) type Params = Vec<(String, String)>;

/// Decodes `application/x-www-form-urlencoded` parameters.
pub(crate) fn parse_params(query: &[(String, String)], body: &[u8]) -> Params {
    let mut params: Params = query.to_vec();
    params.extend(form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())));
    params
}

fn get<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `Name.member.1`, `Name.member.2`, ... in index order.
fn list(params: &Params, name: &str) -> Option<Vec<String>> {
    let prefix = format!("{name}.member.");
    let mut items: Vec<(u64, String)> = params
        .iter()
        .filter_map(|(k, v)| {
            let index = k.strip_prefix(&prefix)?.parse::<u64>().ok()?;
            Some((index, v.clone()))
        })
        .collect();
    if items.is_empty() {
        // An empty list is sent as a bare `Name=`.
        return get(params, name).map(|_| Vec::new());
    }
    items.sort_by_key(|(i, _)| *i);
    Some(items.into_iter().map(|(_, v)| v).collect())
}

/// The operation a request names, if the sandbox serves it.
pub(crate) fn route(params: &Params) -> Result<&'static str, String> {
    let action = get(params, "Action").unwrap_or_default();
    OPERATIONS
        .iter()
        .find(|op| **op == action)
        .copied()
        .ok_or_else(|| action.to_owned())
}

fn validation(message: &str) -> ApiError {
    ApiError::new("ValidationError", 400, message)
}

fn check(violations: Violations) -> Result<(), ApiError> {
    violations.finish().map_or(Ok(()), |m| Err(validation(&m)))
}

fn no_such_role(name: &str) -> ApiError {
    ApiError::new(
        "NoSuchEntity",
        404,
        &format!("The role with name {name} cannot be found."),
    )
}

fn no_such_policy(name: &str) -> ApiError {
    ApiError::new(
        "NoSuchEntity",
        404,
        &format!("The role policy with name {name} cannot be found."),
    )
}

/// Runs one operation against the world.
pub(crate) fn execute(world: &mut World, op: &str, params: &Params) -> Outcome {
    match op {
        "GetRole" => get_role(world, params),
        "GetRolePolicy" => get_role_policy(world, params),
        "PutRolePolicy" => put_role_policy(world, params),
        "DeleteRolePolicy" => delete_role_policy(world, params),
        "ListRolePolicies" => list_role_policies(world, params),
        "SimulatePrincipalPolicy" => simulate(world, params),
        other => Err(Service::Iam.unknown_operation(other)),
    }
}

fn role_name(params: &Params, v: &mut Violations) -> String {
    let name = get(params, "RoleName");
    v.required("RoleName", name.as_ref());
    v.string("RoleName", name, 1, 64, Some(&v::IAM_NAME));
    name.unwrap_or_default().to_owned()
}

fn policy_name(params: &Params, v: &mut Violations) -> String {
    let name = get(params, "PolicyName");
    v.required("PolicyName", name.as_ref());
    v.string("PolicyName", name, 1, 128, Some(&v::IAM_NAME));
    name.unwrap_or_default().to_owned()
}

fn role<'w>(world: &'w World, name: &str) -> Result<&'w Role, ApiError> {
    world.roles.get(name).ok_or_else(|| no_such_role(name))
}

fn get_role(world: &mut World, params: &Params) -> Outcome {
    let mut v = Violations::new();
    let name = role_name(params, &mut v);
    check(v)?;
    let r = role(world, &name)?;
    let mut xml = String::from("<Role>");
    xml.push_str(&xml_el("Path", &r.path));
    xml.push_str(&xml_el("RoleName", &r.name));
    xml.push_str(&xml_el("RoleId", &r.id));
    xml.push_str(&xml_el("Arn", &r.arn));
    xml.push_str(&xml_el("CreateDate", &iso8601(r.created_ms)));
    xml.push_str(&xml_el(
        "AssumeRolePolicyDocument",
        &url_encode(&r.assume_role_policy),
    ));
    if let Some(d) = &r.description {
        xml.push_str(&xml_el("Description", d));
    }
    xml.push_str("<MaxSessionDuration>3600</MaxSessionDuration><RoleLastUsed/></Role>");
    Ok(Reply::Query(Some(xml)))
}

fn get_role_policy(world: &mut World, params: &Params) -> Outcome {
    let mut v = Violations::new();
    let name = role_name(params, &mut v);
    let pname = policy_name(params, &mut v);
    check(v)?;
    let r = role(world, &name)?;
    let doc = r
        .inline_policies
        .get(&pname)
        .ok_or_else(|| no_such_policy(&pname))?;
    Ok(Reply::Query(Some(format!(
        "{}{}{}",
        xml_el("RoleName", &r.name),
        xml_el("PolicyName", &pname),
        xml_el("PolicyDocument", &url_encode(doc))
    ))))
}

fn protected(r: &Role) -> Result<(), ApiError> {
    if r.protected {
        return Err(ApiError::new(
            "UnmodifiableEntity",
            400,
            &format!(
                "Cannot perform the operation on the protected role '{}' - this role is only modifiable by AWS",
                r.name
            ),
        ));
    }
    Ok(())
}

fn put_role_policy(world: &mut World, params: &Params) -> Outcome {
    let mut v = Violations::new();
    let name = role_name(params, &mut v);
    let pname = policy_name(params, &mut v);
    let doc = get(params, "PolicyDocument");
    v.required("PolicyDocument", doc.as_ref());
    v.string(
        "PolicyDocument",
        doc,
        1,
        131_072,
        Some(&v::IAM_POLICY_CHARS),
    );
    check(v)?;
    let doc = doc.unwrap_or_default().to_owned();
    let r = role(world, &name)?;
    protected(r)?;
    policy::parse(&doc).map_err(|m| ApiError::new("MalformedPolicyDocument", 400, &m))?;
    let total: usize = r
        .inline_policies
        .iter()
        .filter(|(n, _)| **n != pname)
        .map(|(_, d)| counted_size(d))
        .sum::<usize>()
        + counted_size(&doc);
    if total > ROLE_POLICY_BUDGET {
        return Err(ApiError::new(
            "LimitExceeded",
            409,
            &format!("Maximum policy size of {ROLE_POLICY_BUDGET} bytes exceeded for role {name}"),
        ));
    }
    if let Some(r) = world.roles.get_mut(&name) {
        r.inline_policies.insert(pname, doc);
    }
    Ok(Reply::Query(None))
}

fn delete_role_policy(world: &mut World, params: &Params) -> Outcome {
    let mut v = Violations::new();
    let name = role_name(params, &mut v);
    let pname = policy_name(params, &mut v);
    check(v)?;
    let r = role(world, &name)?;
    protected(r)?;
    if !r.inline_policies.contains_key(&pname) {
        return Err(no_such_policy(&pname));
    }
    if let Some(r) = world.roles.get_mut(&name) {
        r.inline_policies.remove(&pname);
    }
    Ok(Reply::Query(None))
}

/// `MaxItems` (1..1000, default 100) and `Marker`.
fn paging(params: &Params, v: &mut Violations) -> (usize, Option<String>) {
    let max_raw = get(params, "MaxItems");
    let max = match max_raw.map(str::parse::<i64>) {
        None => 100,
        Some(Ok(n)) => {
            v.range("MaxItems", Some(n), 1, 1000);
            n
        }
        Some(Err(_)) => {
            v.push(format!(
                "Value '{}' at 'maxItems' failed to satisfy constraint: Member must be an integer",
                max_raw.unwrap_or_default()
            ));
            100
        }
    };
    let marker = get(params, "Marker");
    v.string("Marker", marker, 1, 320, Some(&v::IAM_MARKER));
    (
        usize::try_from(max).unwrap_or(100),
        marker.map(str::to_owned),
    )
}

fn truncation(next: Option<String>) -> String {
    match next {
        Some(marker) => format!(
            "<IsTruncated>true</IsTruncated>{}",
            xml_el("Marker", &marker)
        ),
        None => "<IsTruncated>false</IsTruncated>".to_owned(),
    }
}

fn invalid_marker() -> ApiError {
    ApiError::new("ValidationError", 400, "Invalid Marker")
}

fn list_role_policies(world: &mut World, params: &Params) -> Outcome {
    let mut v = Violations::new();
    let name = role_name(params, &mut v);
    let (max, marker) = paging(params, &mut v);
    check(v)?;
    let r = role(world, &name)?;
    let items = r
        .inline_policies
        .keys()
        .map(|k| (k.clone(), k.clone()))
        .collect();
    let (names, next) = page(items, marker.as_deref(), max).map_err(|_| invalid_marker())?;
    let members: String = names.iter().map(|n| xml_el("member", n)).collect();
    Ok(Reply::Query(Some(format!(
        "<PolicyNames>{members}</PolicyNames>{}",
        truncation(next)
    ))))
}

fn simulate(world: &mut World, params: &Params) -> Outcome {
    let mut v = Violations::new();
    let source = get(params, "PolicySourceArn");
    v.required("PolicySourceArn", source.as_ref());
    v.string("PolicySourceArn", source, 20, 2048, None);
    let actions = list(params, "ActionNames");
    v.required("ActionNames", actions.as_ref());
    v.strings("ActionNames", actions.as_deref(), 3, 128, None);
    let resources = list(params, "ResourceArns");
    v.strings("ResourceArns", resources.as_deref(), 1, 2048, None);
    let inputs = list(params, "PolicyInputList").unwrap_or_default();
    v.strings(
        "PolicyInputList",
        Some(&inputs),
        1,
        131_072,
        Some(&v::IAM_POLICY_CHARS),
    );
    let (max, marker) = paging(params, &mut v);
    check(v)?;
    let source = source.unwrap_or_default();

    // The principal's identity policies: a seeded caller, or a role's inline policies.
    let (kind, named): (&str, Vec<(String, String)>) =
        if let Some(caller) = world.callers.get(source) {
            let kind = if source.contains(":user/") {
                "user"
            } else {
                "role"
            };
            (kind, caller.policies.clone().into_iter().collect())
        } else if let Some(r) = world.roles.values().find(|r| r.arn == source) {
            ("role", r.inline_policies.clone().into_iter().collect())
        } else {
            return Err(ApiError::new(
                "NoSuchEntity",
                404,
                &format!("The principal with ARN {source} cannot be found."),
            ));
        };
    let mut policies = Vec::new();
    let mut kinds = std::collections::BTreeMap::new();
    for (name, doc) in named {
        let statements = policy::parse(&doc).map_err(|m| {
            ApiError::new(
                "PolicyEvaluation",
                500,
                &format!("Policy {name} could not be evaluated: {m}"),
            )
        })?;
        kinds.insert(name.clone(), kind);
        policies.push((name, statements));
    }
    for (i, doc) in inputs.iter().enumerate() {
        let name = format!("PolicyInputList.{}", i + 1);
        let statements = policy::parse(doc).map_err(|m| {
            ApiError::new(
                "InvalidInput",
                400,
                &format!("{name} is not a valid policy: {m}"),
            )
        })?;
        kinds.insert(name.clone(), "none");
        policies.push((name, statements));
    }

    let resources = resources
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| vec!["*".to_owned()]);
    let mut results = Vec::new();
    for (ai, action) in actions.unwrap_or_default().iter().enumerate() {
        for (ri, resource) in resources.iter().enumerate() {
            let (decision, matched) = evaluate(&policies, action, resource);
            let statements: String = matched
                .iter()
                .map(|name| {
                    format!(
                        "<member>{}{}</member>",
                        xml_el("SourcePolicyId", name),
                        xml_el(
                            "SourcePolicyType",
                            kinds.get(name).copied().unwrap_or("none")
                        )
                    )
                })
                .collect();
            let decision = decision.as_str();
            let resource_result = format!(
                "<member>{}{}<MatchedStatements>{statements}</MatchedStatements><MissingContextValues/></member>",
                xml_el("EvalResourceName", resource),
                xml_el("EvalResourceDecision", decision)
            );
            let xml = format!(
                "<member>{}{}{}<MatchedStatements>{statements}</MatchedStatements><MissingContextValues/><ResourceSpecificResults>{resource_result}</ResourceSpecificResults></member>",
                xml_el("EvalActionName", action),
                xml_el("EvalResourceName", resource),
                xml_el("EvalDecision", decision)
            );
            results.push((format!("{ai:06}.{ri:06}"), xml));
        }
    }
    let (results, next) = page(results, marker.as_deref(), max).map_err(|_| invalid_marker())?;
    Ok(Reply::Query(Some(format!(
        "<EvaluationResults>{}</EvaluationResults>{}",
        results.concat(),
        truncation(next)
    ))))
}
