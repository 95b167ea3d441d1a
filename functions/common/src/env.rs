//! Configuration from environment variables.
//!
//! Every function reads its settings once at init; a missing or malformed variable stops the
//! init with an error that names the variable and says what it is for, so the Lambda console
//! shows the fix instead of a panic backtrace.

use std::collections::BTreeMap;
use std::str::FromStr;

/// A configuration problem found at init.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("missing required environment variable {name}: {what}")]
    Missing { name: String, what: String },
    #[error("environment variable {name}={value:?} is invalid: {why}")]
    Invalid {
        name: String,
        value: String,
        why: String,
    },
}

/// Where settings come from: the process environment, or a fixed map in tests.
#[derive(Debug, Clone, Default)]
pub struct Env {
    fixed: Option<BTreeMap<String, String>>,
}

impl Env {
    /// The process environment.
    pub fn process() -> Self {
        Env { fixed: None }
    }

    /// A fixed set of variables (tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Env {
            fixed: Some(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        }
    }

    /// The variable's value; empty counts as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        let v = match &self.fixed {
            Some(map) => map.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        v.filter(|v| !v.trim().is_empty())
    }

    /// A required variable; `what` says what it is for (shown when it is missing).
    pub fn required(&self, name: &str, what: &str) -> Result<String, ConfigError> {
        self.get(name).ok_or_else(|| ConfigError::Missing {
            name: name.to_string(),
            what: what.to_string(),
        })
    }

    /// An optional variable parsed as `T`, or `default` when unset.
    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e: T::Err| ConfigError::Invalid {
                    name: name.to_string(),
                    value: raw.clone(),
                    why: e.to_string(),
                }),
        }
    }

    /// An optional boolean (`true`/`false`/`1`/`0`/`yes`/`no`), or `default` when unset.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(ConfigError::Invalid {
                    name: name.to_string(),
                    value: raw,
                    why: "expected true or false".to_string(),
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn missing_and_malformed_variables_are_named() {
        let env = Env::from_pairs([("LIMIT", "ten"), ("EMPTY", " ")]);
        let err = env.required("TABLE_NAME", "the saga table").unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing required environment variable TABLE_NAME: the saga table"
        );
        assert!(env.required("EMPTY", "x").is_err());
        let err = env.parse_or::<u32>("LIMIT", 5).unwrap_err();
        assert!(err.to_string().contains("LIMIT=\"ten\""), "{err}");
        assert_eq!(env.parse_or::<u32>("UNSET", 5), Ok(5));
        assert_eq!(env.flag("UNSET", true), Ok(true));
        assert!(env.flag("LIMIT", true).is_err());
    }
}
