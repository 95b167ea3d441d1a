//! Request validation from the service models: lengths, patterns, enums, list sizes and
//! required members. Messages follow the wording AWS services use ("1 validation error
//! detected: Value '...' at 'name' failed to satisfy constraint: ...") so callers see familiar
//! text; which error *code* carries them is chosen per service by the caller.

use regex::Regex;
use std::sync::LazyLock;

/// Compiles one of the literal patterns below (all exercised by the unit tests).
#[allow(clippy::expect_used)] // literals, not input: a bad one is a bug caught by the tests
fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("literal pattern compiles")
}

// Java's `\w` (the models' dialect) is ASCII-only, so it is spelt out as [A-Za-z0-9_] here.
pub(crate) static APP_NAME: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-zA-Z0-9/._ \-]+$"));
pub(crate) static NAMESPACE: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-zA-Z0-9/._\-]+$"));
pub(crate) static URL: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9_]+://.*$"));
pub(crate) static EVENT_NAME: LazyLock<Regex> =
    LazyLock::new(|| re(r"^[a-zA-Z0-9/._\-]+::[a-zA-Z0-9/._\-]+(?:\*)?$"));
pub(crate) static PERMISSION: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-zA-Z0-9/._\-*]+$"));
pub(crate) static IFRAME_PERMISSION: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-z-]+$"));
const ARN_BODY: &str = r"arn:aws:[A-Za-z0-9][A-Za-z0-9_/.-]{0,62}:[A-Za-z0-9_/.-]{0,63}:[A-Za-z0-9_/.-]{0,63}:[A-Za-z0-9][A-Za-z0-9:_/+=,@.-]{0,1023}";
pub(crate) static ARN: LazyLock<Regex> = LazyLock::new(|| re(&format!("^{ARN_BODY}$")));
pub(crate) static ARN_OR_UUID: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"^({ARN_BODY}|[a-f0-9]{{8}}-[a-f0-9]{{4}}-[a-f0-9]{{4}}-[a-f0-9]{{4}}-[a-f0-9]{{12}})(:[A-Za-z0-9_$]+)?$"
    ))
});
pub(crate) static NON_BLANK: LazyLock<Regex> = LazyLock::new(|| re(r"^.*\S.*$"));
pub(crate) static SOURCE_APP_NAME: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-zA-Z0-9_ -]+$"));
pub(crate) static IAM_NAME: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9_+=,.@-]+$"));
pub(crate) static IAM_POLICY_CHARS: LazyLock<Regex> =
    LazyLock::new(|| re(r"^[\x{09}\x{0A}\x{0D}\x{20}-\x{FF}]+$"));
pub(crate) static IAM_MARKER: LazyLock<Regex> = LazyLock::new(|| re(r"^[\x{20}-\x{FF}]+$"));

/// Collects constraint violations for one request.
#[derive(Debug, Default)]
pub(crate) struct Violations {
    messages: Vec<String>,
}

fn shown(value: &str) -> String {
    // AWS echoes the value; long ones are cut so messages stay readable.
    if value.chars().count() > 100 {
        let cut: String = value.chars().take(100).collect();
        format!("{cut}...")
    } else {
        value.to_owned()
    }
}

/// `Namespace` → `namespace`, `ApplicationSourceConfig.ExternalUrlConfig.AccessUrl` →
/// `applicationSourceConfig.externalUrlConfig.accessUrl`, as AWS messages spell member paths.
fn member_path(path: &str) -> String {
    path.split('.')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

impl Violations {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn push(&mut self, message: String) {
        self.messages.push(message);
    }

    /// A required member that is absent.
    pub(crate) fn required<T>(&mut self, path: &str, value: Option<&T>) {
        if value.is_none() {
            self.messages.push(format!(
                "Value null at '{}' failed to satisfy constraint: Member must not be null",
                member_path(path)
            ));
        }
    }

    /// Length (in characters) and optional pattern of a string member.
    pub(crate) fn string(
        &mut self,
        path: &str,
        value: Option<&str>,
        min: usize,
        max: usize,
        pattern: Option<&Regex>,
    ) {
        let Some(value) = value else { return };
        let len = value.chars().count();
        if len < min || len > max {
            let constraint = if len < min {
                format!("Member must have length greater than or equal to {min}")
            } else {
                format!("Member must have length less than or equal to {max}")
            };
            self.messages.push(format!(
                "Value '{}' at '{}' failed to satisfy constraint: {constraint}",
                shown(value),
                member_path(path)
            ));
            return;
        }
        if let Some(pattern) = pattern {
            if !pattern.is_match(value) {
                self.messages.push(format!(
                    "Value '{}' at '{}' failed to satisfy constraint: Member must satisfy regular expression pattern: {}",
                    shown(value),
                    member_path(path),
                    pattern.as_str()
                ));
            }
        }
    }

    /// Each string of a list member.
    pub(crate) fn strings(
        &mut self,
        path: &str,
        values: Option<&[String]>,
        min: usize,
        max: usize,
        pattern: Option<&Regex>,
    ) {
        for value in values.unwrap_or_default() {
            self.string(path, Some(value), min, max, pattern);
        }
    }

    /// Number of items in a list or map member.
    pub(crate) fn count(&mut self, path: &str, len: Option<usize>, min: usize, max: usize) {
        let Some(len) = len else { return };
        if len < min {
            self.messages.push(format!(
                "Value at '{}' failed to satisfy constraint: Member must have length greater than or equal to {min}",
                member_path(path)
            ));
        } else if len > max {
            self.messages.push(format!(
                "Value at '{}' failed to satisfy constraint: Member must have length less than or equal to {max}",
                member_path(path)
            ));
        }
    }

    /// Integer range.
    pub(crate) fn range(&mut self, path: &str, value: Option<i64>, min: i64, max: i64) {
        let Some(value) = value else { return };
        if value < min {
            self.messages.push(format!(
                "Value '{value}' at '{}' failed to satisfy constraint: Member must have value greater than or equal to {min}",
                member_path(path)
            ));
        } else if value > max {
            self.messages.push(format!(
                "Value '{value}' at '{}' failed to satisfy constraint: Member must have value less than or equal to {max}",
                member_path(path)
            ));
        }
    }

    /// Enum membership.
    pub(crate) fn one_of(&mut self, path: &str, value: Option<&str>, allowed: &[&str]) {
        let Some(value) = value else { return };
        if !allowed.contains(&value) {
            self.messages.push(format!(
                "Value '{}' at '{}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                shown(value),
                member_path(path),
                allowed.join(", ")
            ));
        }
    }

    /// The combined message, or `None` when the request is valid.
    pub(crate) fn finish(self) -> Option<String> {
        match self.messages.len() {
            0 => None,
            1 => Some(format!(
                "1 validation error detected: {}",
                self.messages.join("; ")
            )),
            n => Some(format!(
                "{n} validation errors detected: {}",
                self.messages.join("; ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_follow_the_models() {
        assert!(NAMESPACE.is_match("crm.example.com/agent-app_1"));
        assert!(!NAMESPACE.is_match("https://crm.example.com"));
        assert!(APP_NAME.is_match("My CRM 2"));
        assert!(URL.is_match("https://crm.example.com/x"));
        assert!(!URL.is_match("crm.example.com"));
        assert!(ARN_OR_UUID.is_match("0a1b2c3d-0000-4000-8000-00000000000f"));
        assert!(ARN_OR_UUID.is_match(
            "arn:aws:app-integrations:us-east-1:111122223333:application/0a1b2c3d-0000-4000-8000-00000000000f"
        ));
        assert!(!ARN_OR_UUID.is_match("not an id"));
        assert!(IAM_NAME.is_match("AWSServiceRoleForAmazonConnect_ABC"));
        assert!(!IAM_NAME.is_match("a/b"));
        assert!(IAM_POLICY_CHARS.is_match("{\n\t\"Version\": \"2012-10-17\"}"));
        assert!(!IAM_POLICY_CHARS.is_match("{\"Sid\": \"\u{4e00}\"}"));
    }

    #[test]
    fn messages_count_violations() {
        let mut v = Violations::new();
        v.string("Namespace", Some("a:b"), 1, 211, Some(&NAMESPACE));
        v.required::<String>("Name", None);
        let msg = v.finish().unwrap_or_default();
        assert!(msg.starts_with("2 validation errors detected"), "{msg}");
        assert!(msg.contains("at 'namespace'"), "{msg}");
    }
}
