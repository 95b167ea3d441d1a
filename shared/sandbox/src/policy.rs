//! IAM identity-policy handling: grammar checks for PutRolePolicy (MalformedPolicyDocument),
//! the whitespace-free size IAM counts against a role's 10,240-character budget, and the
//! evaluation `SimulatePrincipalPolicy` performs.
//!
//! Modelled: Allow/Deny, `Action`/`NotAction` and `Resource`/`NotResource` with `*` and `?`
//! wildcards (actions case-insensitive, resources case-sensitive), explicit deny wins, no
//! match is an implicit deny. Not modelled: `Condition` (a statement with a condition never
//! applies), permission boundaries, SCPs/RCPs, resource policies, session policies, policy
//! variables such as `${aws:username}`.

use serde_json::Value;
use std::collections::BTreeSet;

/// One parsed statement.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    deny: bool,
    actions: Matcher,
    resources: Matcher,
    conditional: bool,
}

/// `Action` (or `Resource`) versus `NotAction` (or `NotResource`).
#[derive(Debug, Clone)]
enum Matcher {
    Is(Vec<String>),
    Not(Vec<String>),
}

/// The outcome of evaluating one action on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Allowed,
    ExplicitDeny,
    ImplicitDeny,
}

impl Decision {
    /// The wire value of `EvalDecision`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::ExplicitDeny => "explicitDeny",
            Self::ImplicitDeny => "implicitDeny",
        }
    }
}

/// Characters IAM counts toward the size quotas: everything except whitespace.
pub(crate) fn counted_size(document: &str) -> usize {
    document.chars().filter(|c| !c.is_whitespace()).count()
}

fn strings(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

const SYNTAX: &str = "Syntax errors in policy.";

/// Parses and checks an identity policy; `Err` is the `MalformedPolicyDocument` message.
pub(crate) fn parse(document: &str) -> Result<Vec<Statement>, String> {
    let json: Value = serde_json::from_str(document).map_err(|_| SYNTAX.to_owned())?;
    let Value::Object(root) = &json else {
        return Err(SYNTAX.to_owned());
    };
    match root.get("Version") {
        None => {}
        Some(Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => {}
        Some(_) => return Err("Policy document must be version 2012-10-17 or greater.".to_owned()),
    }
    let raw: Vec<&Value> = match root.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(item @ Value::Object(_)) => vec![item],
        _ => return Err(SYNTAX.to_owned()),
    };
    let mut sids = BTreeSet::new();
    let mut out = Vec::new();
    for item in raw {
        let Value::Object(st) = item else {
            return Err(SYNTAX.to_owned());
        };
        if let Some(sid) = st.get("Sid") {
            let sid = sid.as_str().ok_or_else(|| SYNTAX.to_owned())?;
            if !sids.insert(sid.to_owned()) {
                return Err("Statement IDs (SID) in a single policy must be unique.".to_owned());
            }
        }
        let deny = match st.get("Effect").and_then(Value::as_str) {
            Some("Allow") => false,
            Some("Deny") => true,
            _ => return Err(SYNTAX.to_owned()),
        };
        if st.contains_key("Principal") || st.contains_key("NotPrincipal") {
            return Err("Policy document should not specify a principal.".to_owned());
        }
        let actions = match (st.get("Action"), st.get("NotAction")) {
            (Some(a), None) => Matcher::Is(strings(a).ok_or_else(|| SYNTAX.to_owned())?),
            (None, Some(a)) => Matcher::Not(strings(a).ok_or_else(|| SYNTAX.to_owned())?),
            (None, None) => return Err("Policy statement must contain actions.".to_owned()),
            (Some(_), Some(_)) => return Err(SYNTAX.to_owned()),
        };
        let list = match &actions {
            Matcher::Is(l) | Matcher::Not(l) => l,
        };
        for action in list {
            if action != "*" && !action.contains(':') {
                return Err(
                    "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
                        .to_owned(),
                );
            }
            if action.matches(':').count() > 1 {
                return Err("Actions/Condition can contain only one colon.".to_owned());
            }
        }
        let resources = match (st.get("Resource"), st.get("NotResource")) {
            (Some(r), None) => Matcher::Is(strings(r).ok_or_else(|| SYNTAX.to_owned())?),
            (None, Some(r)) => Matcher::Not(strings(r).ok_or_else(|| SYNTAX.to_owned())?),
            (None, None) => return Err("Policy statement must contain resources.".to_owned()),
            (Some(_), Some(_)) => return Err(SYNTAX.to_owned()),
        };
        out.push(Statement {
            deny,
            actions,
            resources,
            conditional: st.contains_key("Condition"),
        });
    }
    Ok(out)
}

/// `*` matches any run of characters, `?` exactly one.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn matches(matcher: &Matcher, value: &str, case_insensitive: bool) -> bool {
    let hit = |list: &[String]| {
        list.iter().any(|pattern| {
            if case_insensitive {
                glob(&pattern.to_ascii_lowercase(), &value.to_ascii_lowercase())
            } else {
                glob(pattern, value)
            }
        })
    };
    match matcher {
        Matcher::Is(list) => hit(list),
        Matcher::Not(list) => !hit(list),
    }
}

/// Evaluates `action` on `resource` over named policies; returns the decision and the names
/// of the policies whose statements decided it.
pub(crate) fn evaluate(
    policies: &[(String, Vec<Statement>)],
    action: &str,
    resource: &str,
) -> (Decision, Vec<String>) {
    let mut allows = Vec::new();
    let mut denies = Vec::new();
    for (name, statements) in policies {
        for st in statements {
            if st.conditional {
                continue;
            }
            if matches(&st.actions, action, true) && matches(&st.resources, resource, false) {
                let list = if st.deny { &mut denies } else { &mut allows };
                if !list.contains(name) {
                    list.push(name.clone());
                }
            }
        }
    }
    if !denies.is_empty() {
        (Decision::ExplicitDeny, denies)
    } else if !allows.is_empty() {
        (Decision::Allowed, allows)
    } else {
        (Decision::ImplicitDeny, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_handles_star_and_question_mark() {
        assert!(glob("arn:aws:iam::1:role/*", "arn:aws:iam::1:role/a/b"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*", ""));
        assert!(!glob(
            "app-integrations:Get*",
            "app-integrations:ListApplications"
        ));
    }

    #[test]
    fn explicit_deny_wins_and_not_action_inverts() {
        let allow = parse(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"app-integrations:*","Resource":"*"}]}"#,
        );
        let deny = parse(
            r#"{"Statement":{"Effect":"Deny","NotAction":"app-integrations:Get*","Resource":"*"}}"#,
        );
        let (Ok(allow), Ok(deny)) = (allow, deny) else {
            panic!("policies parse");
        };
        let policies = vec![("a".to_owned(), allow), ("d".to_owned(), deny)];
        assert_eq!(
            evaluate(&policies, "app-integrations:GetApplication", "x").0,
            Decision::Allowed
        );
        assert_eq!(
            evaluate(&policies, "APP-INTEGRATIONS:CreateApplication", "x").0,
            Decision::ExplicitDeny
        );
        assert_eq!(
            evaluate(&policies, "iam:GetRole", "x").0,
            Decision::ExplicitDeny
        );
        assert_eq!(
            evaluate(&policies[..1], "iam:GetRole", "x").0,
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn malformed_documents_are_refused_with_iam_messages() {
        assert_eq!(parse("{").err().as_deref(), Some(SYNTAX));
        assert_eq!(
            parse(r#"{"Statement":[{"Effect":"Allow","Resource":"*"}]}"#)
                .err()
                .as_deref(),
            Some("Policy statement must contain actions.")
        );
        assert!(
            parse(r#"{"Statement":[{"Effect":"Allow","Action":"s3","Resource":"*"}]}"#).is_err()
        );
        assert_eq!(counted_size("{ \"a\" :\n 1 }"), 7);
    }
}
