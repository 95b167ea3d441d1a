//! Ticket payloads → an application spec. Three shapes are understood (examples in the crate's
//! README):
//!
//! * **ServiceNow** (`/webhooks/servicenow`): a change request as a business rule's outbound
//!   REST message sends it: `number` is the ticket id, `approval` must be `approved`, the approver
//!   is `approved_by` only (never `sys_updated_by`/`requested_by`); the spec is in the field
//!   `u_onboarding_spec` (configurable), as an object or a JSON string. Reference fields may be
//!   plain strings or `{"value": …, "display_value": …}`.
//! * **Jira** (`/webhooks/jira`): a Jira Cloud/Server `jira:issue_*` webhook: `issue.key` is
//!   the ticket id; approved when `issue.fields.status.name` is one of the approved statuses
//!   (default `Approved`, case-insensitive) — and, when the event carries a `changelog`, only if
//!   it moves the status *into* an approved one, so later edits of an approved issue are not new
//!   approvals. The approver is the event's `user` (`emailAddress`, else `accountId`, else
//!   `displayName`); the spec is in `issue.fields.onboardingSpec` (configurable: a custom field
//!   id such as `customfield_10123`), as an object or a JSON string.
//! * **generic** (`/webhooks/generic`): `{"ticketId", "status": "approved", "approvedBy",
//!   "spec"}`.
//!
//! Anything not approved is ignored with the reason; an approved ticket without a usable spec is
//! a validation problem whose field paths point into the webhook body.

use serde_json::Value;

use onboard_core::validation::Problem;

/// A ticketing system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    ServiceNow,
    Jira,
    Generic,
}

impl Source {
    pub fn parse(s: &str) -> Option<Source> {
        match s.to_ascii_lowercase().as_str() {
            "servicenow" => Some(Source::ServiceNow),
            "jira" => Some(Source::Jira),
            "generic" => Some(Source::Generic),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Source::ServiceNow => "servicenow",
            Source::Jira => "jira",
            Source::Generic => "generic",
        }
    }
}

/// Where each system keeps the spec and what counts as approved.
#[derive(Debug, Clone)]
pub struct MappingConfig {
    pub servicenow_spec_field: String,
    pub jira_spec_field: String,
    /// Jira status names that mean approved (compared case-insensitively).
    pub jira_approved_statuses: Vec<String>,
}

impl Default for MappingConfig {
    fn default() -> Self {
        MappingConfig {
            servicenow_spec_field: "u_onboarding_spec".into(),
            jira_spec_field: "onboardingSpec".into(),
            jira_approved_statuses: vec!["Approved".into()],
        }
    }
}

/// An approved ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Approved {
    pub ticket_id: String,
    /// `<source>:<approver>`.
    pub principal: String,
    /// The JSON path of the spec in the webhook body (for error messages).
    pub spec_path: String,
    /// The spec as found (object); its `requester` is replaced by the ticket's.
    pub spec: Value,
}

/// What to do with a webhook.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Approved(Approved),
    Ignored {
        ticket_id: Option<String>,
        reason: String,
    },
}

/// A string, or the `value` (else `display_value`) of a ServiceNow reference object.
fn text(v: Option<&Value>) -> Option<String> {
    let v = v?;
    let s = match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o
            .get("value")
            .or_else(|| o.get("display_value"))
            .and_then(Value::as_str)
            .map(str::to_string),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }?;
    let s = s.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn missing(path: &str, what: &str, fix: &str) -> Vec<Problem> {
    vec![Problem::new(path, format!("is missing: {what}"), fix)]
}

/// The spec object at `path`: an object, or a string holding one.
fn spec_at(v: Option<&Value>, path: &str) -> Result<Value, Vec<Problem>> {
    match v {
        Some(obj @ Value::Object(_)) => Ok(obj.clone()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(obj @ Value::Object(_)) => Ok(obj),
            Ok(_) => Err(vec![Problem::new(
                path,
                "is a string but not a JSON object",
                "Put the application spec (a JSON object) in this field.",
            )]),
            Err(e) => Err(vec![Problem::new(
                path,
                format!("is a string but not valid JSON: {e}"),
                "Put the application spec as a JSON object (or its JSON text) in this field.",
            )]),
        },
        Some(_) => Err(vec![Problem::new(
            path,
            "is not an object",
            "Put the application spec (a JSON object) in this field.",
        )]),
        None => Err(missing(
            path,
            "the approved ticket carries no application spec",
            "Fill in the onboarding spec field of the ticket (displayName, accessUrl, \
             instances, ...), then approve it again or re-send the webhook.",
        )),
    }
}

/// Decide what a webhook body means.
pub fn decide(source: Source, body: &Value, cfg: &MappingConfig) -> Result<Decision, Vec<Problem>> {
    if !body.is_object() {
        return Err(vec![Problem::new(
            "$",
            "the webhook body is not a JSON object",
            "Send the ticket as one JSON object.",
        )]);
    }
    match source {
        Source::ServiceNow => servicenow(body, cfg),
        Source::Jira => jira(body, cfg),
        Source::Generic => generic(body),
    }
}

fn servicenow(body: &Value, cfg: &MappingConfig) -> Result<Decision, Vec<Problem>> {
    let ticket_id = text(body.get("number")).ok_or_else(|| {
        missing(
            "number",
            "the change request number",
            "Include `number` (e.g. CHG0012345) in the outbound REST message.",
        )
    })?;
    let approval = text(body.get("approval")).unwrap_or_default();
    if !approval.eq_ignore_ascii_case("approved") {
        return Ok(Decision::Ignored {
            ticket_id: Some(ticket_id),
            reason: format!(
                "approval is {:?}; only approved change requests are onboarded",
                if approval.is_empty() {
                    "absent"
                } else {
                    &approval
                }
            ),
        });
    }
    // Only the explicit approver: `sys_updated_by` and `requested_by` may be the requester
    // themselves, who must never be recorded as the approval.
    let approver = text(body.get("approved_by")).ok_or_else(|| {
        missing(
            "approved_by",
            "who approved the change",
            "Include `approved_by` (the approving user) in the outbound REST message; \
             `sys_updated_by` and `requested_by` are not taken as the approver.",
        )
    })?;
    let path = cfg.servicenow_spec_field.clone();
    let spec = spec_at(body.get(&path), &path)?;
    Ok(Decision::Approved(Approved {
        ticket_id,
        principal: format!("servicenow:{approver}"),
        spec_path: path,
        spec,
    }))
}

fn jira(body: &Value, cfg: &MappingConfig) -> Result<Decision, Vec<Problem>> {
    let issue = body.get("issue");
    let ticket_id = text(issue.and_then(|i| i.get("key"))).ok_or_else(|| {
        missing(
            "issue.key",
            "the issue key",
            "Send Jira's issue webhook body, which includes issue.key (e.g. OPS-1234).",
        )
    })?;
    let fields = issue.and_then(|i| i.get("fields"));
    let status = text(
        fields
            .and_then(|f| f.get("status"))
            .and_then(|s| s.get("name")),
    )
    .unwrap_or_default();
    let approved = |s: &str| {
        cfg.jira_approved_statuses
            .iter()
            .any(|a| a.eq_ignore_ascii_case(s))
    };
    if !approved(&status) {
        return Ok(Decision::Ignored {
            ticket_id: Some(ticket_id),
            reason: format!(
                "status is {:?}; only issues in {:?} are onboarded",
                if status.is_empty() { "absent" } else { &status },
                cfg.jira_approved_statuses
            ),
        });
    }
    if let Some(items) = body
        .get("changelog")
        .and_then(|c| c.get("items"))
        .and_then(Value::as_array)
    {
        let became_approved = items.iter().any(|item| {
            item.get("field").and_then(Value::as_str) == Some("status")
                && item
                    .get("toString")
                    .and_then(Value::as_str)
                    .is_some_and(approved)
        });
        if !became_approved {
            return Ok(Decision::Ignored {
                ticket_id: Some(ticket_id),
                reason: "the issue is approved but this event is not its approval (the \
                         changelog has no status change to an approved status)"
                    .into(),
            });
        }
    }
    let user = body.get("user");
    let approver = ["emailAddress", "accountId", "displayName", "name"]
        .iter()
        .find_map(|k| text(user.and_then(|u| u.get(*k))))
        .ok_or_else(|| {
            missing(
                "user",
                "who made the change",
                "Send Jira's webhook body, which names the acting user.",
            )
        })?;
    let path = format!("issue.fields.{}", cfg.jira_spec_field);
    let spec = spec_at(fields.and_then(|f| f.get(&cfg.jira_spec_field)), &path)?;
    Ok(Decision::Approved(Approved {
        ticket_id,
        principal: format!("jira:{approver}"),
        spec_path: path,
        spec,
    }))
}

fn generic(body: &Value) -> Result<Decision, Vec<Problem>> {
    let ticket_id = text(body.get("ticketId")).ok_or_else(|| {
        missing(
            "ticketId",
            "the ticket id",
            "Include `ticketId` (e.g. REQ-1234).",
        )
    })?;
    let status = text(body.get("status")).unwrap_or_default();
    if !status.eq_ignore_ascii_case("approved") {
        return Ok(Decision::Ignored {
            ticket_id: Some(ticket_id),
            reason: format!(
                "status is {:?}; only approved tickets are onboarded",
                if status.is_empty() { "absent" } else { &status }
            ),
        });
    }
    let approver = text(body.get("approvedBy")).ok_or_else(|| {
        missing(
            "approvedBy",
            "who approved the ticket",
            "Include `approvedBy` (the approver's login or email).",
        )
    })?;
    let spec = spec_at(body.get("spec"), "spec")?;
    Ok(Decision::Approved(Approved {
        ticket_id,
        principal: format!("ticket:{approver}"),
        spec_path: "spec".into(),
        spec,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use serde_json::json;

    use super::*;

    fn approved(d: Decision) -> Approved {
        match d {
            Decision::Approved(a) => a,
            other => panic!("expected approval, got {other:?}"),
        }
    }

    #[test]
    fn servicenow_reference_fields_and_string_specs() {
        let body = json!({
            "number": "CHG0012345",
            "approval": {"value": "approved", "display_value": "Approved"},
            "approved_by": {"value": "bob.approver", "display_value": "Bob Approver"},
            "u_onboarding_spec": "{\"displayName\":\"CRM\"}"
        });
        let a = approved(decide(Source::ServiceNow, &body, &MappingConfig::default()).unwrap());
        assert_eq!(a.ticket_id, "CHG0012345");
        assert_eq!(a.principal, "servicenow:bob.approver");
        assert_eq!(a.spec, json!({"displayName": "CRM"}));
    }

    #[test]
    fn servicenow_never_takes_the_requester_or_last_updater_as_the_approver() {
        let body = json!({
            "number": "CHG0012345",
            "approval": "approved",
            "requested_by": "alice.requester",
            "sys_updated_by": "alice.requester",
            "u_onboarding_spec": {"displayName": "CRM"}
        });
        let err = decide(Source::ServiceNow, &body, &MappingConfig::default()).unwrap_err();
        let text = format!("{err:?}");
        assert!(text.contains("approved_by"), "{text}");
    }

    #[test]
    fn jira_needs_the_approval_transition_when_a_changelog_is_present() {
        let mut body = json!({
            "webhookEvent": "jira:issue_updated",
            "user": {"accountId": "5b10", "emailAddress": "bob@example.com"},
            "issue": {"key": "OPS-7", "fields": {"status": {"name": "Approved"}, "onboardingSpec": {}}},
            "changelog": {"items": [{"field": "summary", "toString": "x"}]}
        });
        let cfg = MappingConfig::default();
        assert!(matches!(
            decide(Source::Jira, &body, &cfg).unwrap(),
            Decision::Ignored { .. }
        ));
        body["changelog"]["items"][0] =
            json!({"field": "status", "fromString": "In Review", "toString": "Approved"});
        let a = approved(decide(Source::Jira, &body, &cfg).unwrap());
        assert_eq!(a.principal, "jira:bob@example.com");
        assert_eq!(a.spec_path, "issue.fields.onboardingSpec");
    }

    #[test]
    fn generic_rejections_name_the_field() {
        let body = json!({"ticketId": "REQ-1", "status": "approved", "approvedBy": "bob"});
        let errs = decide(Source::Generic, &body, &MappingConfig::default()).unwrap_err();
        assert_eq!(errs[0].field, "spec");
        let body = json!({"ticketId": "REQ-1", "status": "rejected"});
        assert!(matches!(
            decide(Source::Generic, &body, &MappingConfig::default()).unwrap(),
            Decision::Ignored { ticket_id: Some(t), reason } if t == "REQ-1" && reason.contains("rejected")
        ));
        assert!(decide(Source::Generic, &json!([1]), &MappingConfig::default()).is_err());
    }
}
