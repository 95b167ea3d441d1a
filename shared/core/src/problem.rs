//! What is wrong with a request, as every layer reports it: a [`Problem`] names the field,
//! what is wrong and how to fix it; [`ValidationErrors`] holds all of them at once. Below the
//! spec and its validation, which both produce them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One thing wrong with a spec: where, what, and how to fix it. Serialized camelCase for
/// problem+json responses and ticket comments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// JSON path of the offending input, e.g. `approvedOrigins[2]`,
    /// `securityProfiles[0].profiles[1]`, `tags["aws:x"]`; `$` for the whole document.
    pub field: String,
    /// What is wrong, citing the rule (e.g. "is 300 characters; the limit is 255").
    pub problem: String,
    /// The specific action that fixes it.
    pub fix: String,
}

impl Problem {
    /// Builds a problem; a shorthand used by every rule.
    pub fn new(
        field: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Problem {
            field: field.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} — {}", self.field, self.problem, self.fix)
    }
}

/// Every blocking problem of a spec (never just the first). Display prints one line per
/// problem as `field: problem — fix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{}", render_lines(.problems))]
pub struct ValidationErrors {
    pub problems: Vec<Problem>,
    /// Non-blocking findings found in the same pass, so the submitter sees them together with
    /// the errors. Not part of `Display`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Problem>,
}

impl ValidationErrors {
    /// Errors without warnings.
    pub fn new(problems: Vec<Problem>) -> Self {
        ValidationErrors {
            problems,
            warnings: Vec::new(),
        }
    }

    /// The field paths of the problems, in order (handy for tests and UI highlighting).
    pub fn fields(&self) -> Vec<&str> {
        self.problems.iter().map(|p| p.field.as_str()).collect()
    }
}

impl From<Problem> for ValidationErrors {
    fn from(p: Problem) -> Self {
        ValidationErrors::new(vec![p])
    }
}

fn render_lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
