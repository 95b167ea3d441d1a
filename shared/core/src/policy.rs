//! The one statement this product adds to an instance's service-linked-role (SLR) inline policy,
//! and the commutative edits that add or remove it.
//!
//! We never write a snapshot of a whole policy back over others' changes: adding replaces or
//! appends exactly our statement (found by its Sid), removing drops exactly that statement, and
//! every other statement (other applications', Connect's own) is carried through untouched.
//! AWS does not document what Connect itself writes to the SLR for an application, so our
//! statement lives in an inline policy this product owns, named [`POLICY_NAME`].

use serde_json::{json, Map, Value};

use crate::error::{ErrorInfo, ErrorKind};
use crate::ports::IamPort;

/// The inline policy on each SLR that holds this product's statements.
pub const POLICY_NAME: &str = "ConnectThirdPartyAppOnboarding";

/// IAM's limit on the total size of one role's inline policies (whitespace not counted).
pub const INLINE_POLICY_BUDGET: usize = 10_240;

/// The Sid identifying one application's statement: `App` + the application id's
/// alphanumerics (Sids must be alphanumeric).
pub fn statement_sid(app_id: &str) -> String {
    let alnum: String = app_id.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("App{alnum}")
}

/// The statement granted for one application: the SLR may read that application.
pub fn app_statement(app_id: &str, app_arn: &str) -> Value {
    json!({
        "Sid": statement_sid(app_id),
        "Effect": "Allow",
        "Action": ["app-integrations:GetApplication"],
        "Resource": app_arn,
    })
}

/// Characters IAM counts against the budget (whitespace excluded).
pub fn policy_chars(document: &str) -> usize {
    document.chars().filter(|c| !c.is_whitespace()).count()
}

fn malformed(detail: String) -> ErrorInfo {
    ErrorInfo::new(
        ErrorKind::Invalid,
        "MalformedPolicyDocument",
        format!("the existing inline policy {POLICY_NAME} is not a policy document we can edit: {detail}"),
    )
    .with_fix(format!(
        "Inspect the inline policy {POLICY_NAME} on the role; fix or delete it."
    ))
}

fn parse(document: &str) -> Result<(Map<String, Value>, Vec<Value>), ErrorInfo> {
    let value: Value =
        serde_json::from_str(document).map_err(|e| malformed(format!("invalid JSON: {e}")))?;
    let Value::Object(mut obj) = value else {
        return Err(malformed("not a JSON object".into()));
    };
    let statements = match obj.remove("Statement") {
        None => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(single @ Value::Object(_)) => vec![single],
        Some(_) => {
            return Err(malformed(
                "Statement is neither an object nor a list".into(),
            ))
        }
    };
    Ok((obj, statements))
}

fn render(mut obj: Map<String, Value>, statements: Vec<Value>) -> String {
    obj.insert("Statement".into(), Value::Array(statements));
    Value::Object(obj).to_string()
}

fn sid_of(statement: &Value) -> Option<&str> {
    statement.get("Sid").and_then(Value::as_str)
}

/// `document` (or a new policy when `None`) with `statement` in it, replacing any statement
/// with the same Sid. Idempotent.
pub fn with_statement(document: Option<&str>, statement: &Value) -> Result<String, ErrorInfo> {
    let (obj, mut statements) = match document {
        Some(doc) => parse(doc)?,
        None => {
            let mut obj = Map::new();
            obj.insert("Version".into(), Value::from("2012-10-17"));
            (obj, Vec::new())
        }
    };
    let sid = sid_of(statement);
    match statements
        .iter_mut()
        .find(|s| sid.is_some() && sid_of(s) == sid)
    {
        Some(existing) => *existing = statement.clone(),
        None => statements.push(statement.clone()),
    }
    Ok(render(obj, statements))
}

/// `document` without the statement `sid`; `None` when no statement is left (the policy
/// should then be deleted). Idempotent.
pub fn without_statement(document: &str, sid: &str) -> Result<Option<String>, ErrorInfo> {
    let (obj, mut statements) = parse(document)?;
    statements.retain(|s| sid_of(s) != Some(sid));
    if statements.is_empty() {
        return Ok(None);
    }
    Ok(Some(render(obj, statements)))
}

/// Whether `document` already holds exactly `statement` (same Sid, same content), so adding it
/// would change nothing but formatting.
pub fn contains_statement(document: &str, statement: &Value) -> bool {
    parse(document).is_ok_and(|(_, statements)| statements.iter().any(|s| s == statement))
}

/// Whether two documents are the same policy (same JSON, whatever the formatting).
pub fn same_document(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Whether `document` contains a statement with `sid`.
pub fn has_statement(document: &str, sid: &str) -> bool {
    parse(document).is_ok_and(|(_, statements)| statements.iter().any(|s| sid_of(s) == Some(sid)))
}

/// A role's inline policies as IAM's size budget sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineUsage {
    /// Characters (whitespace excluded) of every inline policy but [`POLICY_NAME`].
    pub others: usize,
    /// The text of our policy, when the role has it.
    pub ours: Option<String>,
}

impl InlineUsage {
    /// The budget's total once our policy is `ours`.
    pub fn total_with(&self, ours: &str) -> usize {
        self.others + policy_chars(ours)
    }
}

/// Read every inline policy of `role` once: the one place the saga and preflight measure the
/// 10,240-character budget.
pub async fn inline_usage(iam: &dyn IamPort, role: &str) -> Result<InlineUsage, ErrorInfo> {
    let mut usage = InlineUsage {
        others: 0,
        ours: None,
    };
    for name in iam.list_role_policies(role).await? {
        match iam.get_role_policy(role, &name).await? {
            Some(doc) if name == POLICY_NAME => usage.ours = Some(doc),
            Some(doc) => usage.others += policy_chars(&doc),
            None => {}
        }
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn add_is_idempotent_and_remove_keeps_others() {
        let other =
            json!({"Sid": "Other", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"});
        let doc = with_statement(None, &other).unwrap();
        let ours = app_statement(
            "1234-ab",
            "arn:aws:app-integrations:us-east-1:1:application/1234-ab",
        );
        let once = with_statement(Some(&doc), &ours).unwrap();
        let twice = with_statement(Some(&once), &ours).unwrap();
        assert_eq!(once, twice);
        assert!(has_statement(&once, "App1234ab"));
        let removed = without_statement(&once, "App1234ab").unwrap().unwrap();
        assert_eq!(removed, doc);
        assert_eq!(
            without_statement(&removed, "App1234ab").unwrap().unwrap(),
            doc
        );
        assert_eq!(
            without_statement(&with_statement(None, &ours).unwrap(), "App1234ab").unwrap(),
            None
        );
    }

    #[test]
    fn single_statement_object_is_accepted_and_garbage_is_refused() {
        let doc = r#"{"Version":"2012-10-17","Statement":{"Sid":"X","Effect":"Allow","Action":"a:b","Resource":"*"}}"#;
        let out = with_statement(Some(doc), &app_statement("9", "arn")).unwrap();
        assert!(has_statement(&out, "X") && has_statement(&out, "App9"));
        let err = with_statement(Some("not json"), &app_statement("9", "arn")).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert!(err.fix.is_some());
        assert_eq!(policy_chars("{ \"a\" :\n 1 }"), 7);
    }
}
