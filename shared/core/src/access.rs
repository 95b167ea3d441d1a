//! Who may do what to an application: its owners (the principal who onboarded or adopted it,
//! and the owner group its spec names) and the configured administrators. Every entry point that
//! acts for someone else (the API) asks [`AccessPolicy::decide`] before it reads or changes an
//! application; the decision that allowed a saga is written into the saga's log, so the record
//! says who asked and which rule let them. The CLI acts with the operator's own AWS credentials
//! (which could make the same calls directly), so it is not checked and records the rule
//! `operator`.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::record::{LogEntry, Millis, SagaRecord};
use crate::spec::RequestSource;

/// The authenticated caller: a principal and the groups its identity provider puts it in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    pub principal: String,
    pub groups: BTreeSet<String>,
}

impl Caller {
    pub fn new(principal: impl Into<String>) -> Self {
        Caller {
            principal: principal.into(),
            groups: BTreeSet::new(),
        }
    }

    pub fn with_groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.groups.extend(groups.into_iter().map(Into::into));
        self
    }
}

/// What the caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See an application, its sagas, its drift report.
    Read,
    /// Edit, pause, resume, fix drift.
    Change,
    Offboard,
    /// Re-drive a saga after its cause was fixed.
    Retry,
    /// Bring a console-made application under management: only administrators, since the
    /// adopter becomes its owner and could then delete it.
    Adopt,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Change => "change",
            Action::Offboard => "offboard",
            Action::Retry => "retry",
            Action::Adopt => "adopt",
        }
    }
}

/// The rule that allowed a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// The principal that onboarded (or adopted) the application.
    Owner,
    /// A member of the application's owner group.
    OwnerGroup,
    /// A principal listed as administrator.
    Admin,
    /// A member of an administrator group.
    AdminGroup,
    /// The local operator (CLI), acting with their own AWS credentials.
    Operator,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Owner => "owner",
            Rule::OwnerGroup => "owner-group",
            Rule::Admin => "admin",
            Rule::AdminGroup => "admin-group",
            Rule::Operator => "operator",
        }
    }
}

/// An allowed request: who, and by which rule (and group, for the group rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub principal: String,
    pub action: Action,
    pub rule: Rule,
    pub group: Option<String>,
}

impl Grant {
    /// The local operator's grant (no check: see the module comment).
    pub fn operator(principal: impl Into<String>, action: Action) -> Self {
        Grant {
            principal: principal.into(),
            action,
            rule: Rule::Operator,
            group: None,
        }
    }

    /// The line that records this decision in a saga's log.
    pub fn log_entry(&self, at: Millis, writer: &str) -> LogEntry {
        LogEntry {
            at,
            node: "saga".into(),
            event: "authorized".into(),
            detail: Some(self.to_string()),
            owner: writer.into(),
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} may {}: rule {}",
            self.principal,
            self.action.as_str(),
            self.rule.as_str()
        )?;
        if let Some(g) = &self.group {
            write!(f, " (group {g})")?;
        }
        Ok(())
    }
}

/// Who owns an application, read from its root saga.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owners {
    pub principal: Option<String>,
    pub group: Option<String>,
}

impl Owners {
    /// The owners recorded in an application's root saga (onboard: the spec's requester and
    /// `ownerGroup`; adopt: its requester).
    pub fn of(root: &SagaRecord) -> Self {
        let requester = root.input.get("requester");
        let principal = requester
            .and_then(|r| r.get("principal").or(Some(r)))
            .and_then(Value::as_str)
            .map(str::to_string)
            .filter(|p| !p.is_empty());
        let group = root
            .input
            .get("ownerGroup")
            .and_then(Value::as_str)
            .map(str::to_string)
            .filter(|g| !g.is_empty());
        Owners { principal, group }
    }
}

/// A refused request: who asked, for what, and who may do it instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{principal} may not {action} application {application}: {reason}")]
pub struct Denied {
    pub principal: String,
    pub action: &'static str,
    pub application: String,
    pub reason: String,
    /// Who may: the owner, the owner group, the administrators.
    pub who_may: String,
}

/// The administrators: principals and groups that may act on every application.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    pub admin_principals: BTreeSet<String>,
    pub admin_groups: BTreeSet<String>,
}

impl AccessPolicy {
    /// A policy from comma-separated lists (`ADMIN_PRINCIPALS`, `ADMIN_GROUPS`).
    pub fn from_lists(principals: &str, groups: &str) -> Self {
        let split = |s: &str| -> BTreeSet<String> {
            s.split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .collect()
        };
        AccessPolicy {
            admin_principals: split(principals),
            admin_groups: split(groups),
        }
    }

    /// Whether `caller` is an administrator, and by which rule.
    pub fn admin_rule(&self, caller: &Caller) -> Option<(Rule, Option<String>)> {
        if self.admin_principals.contains(&caller.principal) {
            return Some((Rule::Admin, None));
        }
        caller
            .groups
            .iter()
            .find(|g| self.admin_groups.contains(*g))
            .map(|g| (Rule::AdminGroup, Some(g.clone())))
    }

    /// May `caller` do `action` on the application `application` owned by `owners`?
    pub fn decide(
        &self,
        caller: &Caller,
        application: &str,
        owners: &Owners,
        action: Action,
    ) -> Result<Grant, Denied> {
        let grant = |rule, group| Grant {
            principal: caller.principal.clone(),
            action,
            rule,
            group,
        };
        if let Some((rule, group)) = self.admin_rule(caller) {
            return Ok(grant(rule, group));
        }
        let admins = self.describe_admins();
        let denied = |reason: String, who_may: String| Denied {
            principal: caller.principal.clone(),
            action: action.as_str(),
            application: application.to_string(),
            reason,
            who_may,
        };
        if action == Action::Adopt {
            return Err(denied(
                "adopting an application makes the adopter its owner, so only administrators may"
                    .into(),
                admins,
            ));
        }
        if owners.principal.as_deref() == Some(caller.principal.as_str()) {
            return Ok(grant(Rule::Owner, None));
        }
        if let Some(g) = owners.group.as_ref().filter(|g| caller.groups.contains(*g)) {
            return Ok(grant(Rule::OwnerGroup, Some(g.clone())));
        }
        let mut who = Vec::new();
        if let Some(p) = &owners.principal {
            who.push(format!("its owner {p}"));
        }
        if let Some(g) = &owners.group {
            who.push(format!("members of its owner group {g}"));
        }
        who.push(admins);
        Err(denied(
            "the caller is neither its owner, in its owner group, nor an administrator".into(),
            who.join(", "),
        ))
    }

    fn describe_admins(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if !self.admin_principals.is_empty() {
            parts.push(
                self.admin_principals
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        if !self.admin_groups.is_empty() {
            parts.push(format!(
                "members of {}",
                self.admin_groups
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if parts.is_empty() {
            "administrators (none are configured)".into()
        } else {
            format!("the administrators ({})", parts.join("; "))
        }
    }
}

/// How a request reached the product: its channel and change ticket. Recorded on the saga it
/// starts, so the audit trail says where a change came from, not only who asked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Origin {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<RequestSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<String>,
}

impl Origin {
    pub fn new(source: RequestSource, ticket_id: Option<String>) -> Self {
        Origin {
            source: Some(source),
            ticket_id: ticket_id.filter(|t| !t.is_empty()),
        }
    }
}

/// Who a lifecycle request acts for: a checked caller (the API) or the local operator (CLI,
/// reconciler), whose principal is recorded with the rule `operator`; and how it arrived.
#[derive(Debug, Clone)]
pub enum Actor {
    Checked {
        caller: Caller,
        policy: std::sync::Arc<AccessPolicy>,
        origin: Origin,
    },
    Operator {
        principal: String,
        origin: Origin,
    },
}

impl Actor {
    pub fn principal(&self) -> &str {
        match self {
            Actor::Checked { caller, .. } => &caller.principal,
            Actor::Operator { principal, .. } => principal,
        }
    }

    /// Where the request came from (empty when the entry point did not say).
    pub fn origin(&self) -> &Origin {
        match self {
            Actor::Checked { origin, .. } | Actor::Operator { origin, .. } => origin,
        }
    }

    /// The same actor, recorded as coming through `origin`.
    pub fn with_origin(mut self, new: Origin) -> Self {
        match &mut self {
            Actor::Checked { origin, .. } | Actor::Operator { origin, .. } => *origin = new,
        }
        self
    }

    /// The grant for `action` on `root` (the application's root saga), or why not.
    pub fn authorize(&self, root: &SagaRecord, action: Action) -> Result<Grant, Denied> {
        match self {
            Actor::Checked { caller, policy, .. } => {
                policy.decide(caller, &root.id, &Owners::of(root), action)
            }
            Actor::Operator { principal, .. } => Ok(Grant::operator(principal.clone(), action)),
        }
    }

    /// The grant for an action that concerns no existing application (adopt).
    pub fn authorize_new(&self, namespace: &str, action: Action) -> Result<Grant, Denied> {
        match self {
            Actor::Checked { caller, policy, .. } => policy.decide(
                caller,
                namespace,
                &Owners {
                    principal: None,
                    group: None,
                },
                action,
            ),
            Actor::Operator { principal, .. } => Ok(Grant::operator(principal.clone(), action)),
        }
    }
}

impl From<&str> for Actor {
    fn from(p: &str) -> Self {
        Actor::from(p.to_string())
    }
}

impl From<&String> for Actor {
    fn from(p: &String) -> Self {
        Actor::from(p.clone())
    }
}

impl From<String> for Actor {
    fn from(principal: String) -> Self {
        Actor::Operator {
            principal,
            origin: Origin::default(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn owners(p: &str, g: Option<&str>) -> Owners {
        Owners {
            principal: Some(p.into()),
            group: g.map(str::to_string),
        }
    }

    #[test]
    fn owners_admins_and_groups_are_allowed_by_their_rule() {
        let policy = AccessPolicy::from_lists("root-admin, ", "platform");
        let app = owners("alice", Some("crm-team"));
        let rule = |c: Caller, a| policy.decide(&c, "sg-1", &app, a).map(|g| g.rule);
        assert_eq!(
            rule(Caller::new("alice"), Action::Offboard),
            Ok(Rule::Owner)
        );
        assert_eq!(
            rule(Caller::new("bob").with_groups(["crm-team"]), Action::Change),
            Ok(Rule::OwnerGroup)
        );
        assert_eq!(
            rule(Caller::new("root-admin"), Action::Adopt),
            Ok(Rule::Admin)
        );
        assert_eq!(
            rule(Caller::new("carol").with_groups(["platform"]), Action::Read),
            Ok(Rule::AdminGroup)
        );
    }

    #[test]
    fn a_stranger_is_refused_with_who_may_instead() {
        let policy = AccessPolicy::from_lists("root-admin", "");
        let denied = policy
            .decide(
                &Caller::new("mallory").with_groups(["other"]),
                "sg-1",
                &owners("alice", Some("crm-team")),
                Action::Offboard,
            )
            .unwrap_err();
        assert_eq!(denied.action, "offboard");
        assert!(denied.who_may.contains("alice"), "{}", denied.who_may);
        assert!(denied.who_may.contains("crm-team"), "{}", denied.who_may);
        assert!(denied.who_may.contains("root-admin"), "{}", denied.who_may);
    }

    #[test]
    fn only_administrators_adopt_even_the_recorded_owner_does_not() {
        let policy = AccessPolicy::default();
        let denied = policy
            .decide(
                &Caller::new("alice"),
                "crm",
                &owners("alice", None),
                Action::Adopt,
            )
            .unwrap_err();
        assert!(denied.who_may.contains("none are configured"), "{denied}");
    }

    #[test]
    fn owners_are_read_from_onboard_and_adopt_records() {
        let mut rec: SagaRecord = serde_json::from_value(serde_json::json!({
            "id": "sg-1", "kind": "onboard", "namespace": "crm", "status": "SUCCEEDED",
            "version": 1, "input": {"requester": {"source": "PORTAL", "principal": "alice"},
                                    "ownerGroup": "crm-team"},
            "nodes": [], "createdAt": 0, "updatedAt": 0
        }))
        .unwrap();
        assert_eq!(Owners::of(&rec), owners("alice", Some("crm-team")));
        rec.input = serde_json::json!({"namespace": "crm", "requester": "bob"});
        assert_eq!(Owners::of(&rec), owners("bob", None));
    }
}
