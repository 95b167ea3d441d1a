//! The webhook HMAC secret from Secrets Manager or SSM Parameter Store, read once at init.
//!
//! | variable | meaning |
//! |---|---|
//! | `WEBHOOK_SECRET` | the secret itself (local runs, tests); wins over the two below |
//! | `WEBHOOK_SECRET_ARN` | a Secrets Manager secret (ARN or name) |
//! | `WEBHOOK_SECRET_SSM_PARAMETER` | an SSM `SecureString` parameter name (read with decryption) |
//!
//! A Secrets Manager value is either the secret as plain text, or JSON
//! `{"current": "…", "previous": "…"}` so a rotation can keep the old secret valid while the
//! ticketing systems switch (`previous` becomes `WEBHOOK_SECRET_PREVIOUS`). The JSON may also
//! give a source its own secret, `"jira": {"current": "…", "previous": "…"}` (likewise
//! `servicenow`, `generic`), which becomes `WEBHOOK_SECRET_JIRA` (`…_PREVIOUS`). The secret never
//! sits in the function's configuration, and the role reads exactly this one secret.

use async_trait::async_trait;
use aws_config::SdkConfig;
use onboard_lambda_common::{ConfigError, Env};

use crate::config::source_secret_var;
use crate::webhooks::Source;

/// Where the configuration says the secret is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `WEBHOOK_SECRET` is set: nothing to fetch.
    Inline,
    SecretsManager(String),
    Ssm(String),
}

/// Why a configured secret could not be read (the message names the variable and the cause).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SecretError(pub String);

/// Reads a secret value; the AWS implementation is [`AwsSecretReader`].
#[async_trait]
pub trait SecretReader: Send + Sync {
    async fn secrets_manager(&self, id: &str) -> Result<String, SecretError>;
    async fn ssm_parameter(&self, name: &str) -> Result<String, SecretError>;
}

/// The configured source; `WEBHOOK_SECRET` is required when neither remote source is set.
pub fn source(env: &Env) -> Result<SecretSource, ConfigError> {
    if env.get("WEBHOOK_SECRET").is_some() {
        return Ok(SecretSource::Inline);
    }
    if let Some(arn) = env.get("WEBHOOK_SECRET_ARN") {
        return Ok(SecretSource::SecretsManager(arn.trim().to_string()));
    }
    if let Some(name) = env.get("WEBHOOK_SECRET_SSM_PARAMETER") {
        return Ok(SecretSource::Ssm(name.trim().to_string()));
    }
    Err(ConfigError::Missing {
        name: "WEBHOOK_SECRET".into(),
        what: "the HMAC-SHA256 secret shared with the ticketing systems; set it, or \
               WEBHOOK_SECRET_ARN (Secrets Manager) or WEBHOOK_SECRET_SSM_PARAMETER (SSM \
               SecureString) to read it at init"
            .into(),
    })
}

/// The variables a Secrets Manager value sets: plain text is `WEBHOOK_SECRET`; JSON has
/// `current` (and optionally `previous`), and optionally an object per source.
fn split_value(raw: &str) -> Result<Vec<(String, String)>, String> {
    let trimmed = raw.trim();
    if trimmed.starts_with('{') {
        let v: serde_json::Value =
            serde_json::from_str(trimmed).map_err(|e| format!("not valid JSON: {e}"))?;
        let text = |v: &serde_json::Value, k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let current = text(&v, "current")
            .ok_or_else(|| "a JSON secret needs a non-empty string \"current\"".to_string())?;
        let mut out = vec![("WEBHOOK_SECRET".to_string(), current)];
        if let Some(p) = text(&v, "previous") {
            out.push(("WEBHOOK_SECRET_PREVIOUS".into(), p));
        }
        for source in [Source::ServiceNow, Source::Jira, Source::Generic] {
            let Some(own) = v.get(source.as_str()) else {
                continue;
            };
            let name = source_secret_var(source);
            let current = text(own, "current").ok_or_else(|| {
                format!(
                    "\"{}\" needs a non-empty string \"current\"",
                    source.as_str()
                )
            })?;
            out.push((name.clone(), current));
            if let Some(p) = text(own, "previous") {
                out.push((format!("{name}_PREVIOUS"), p));
            }
        }
        return Ok(out);
    }
    if trimmed.is_empty() {
        return Err("the secret is empty".into());
    }
    Ok(vec![("WEBHOOK_SECRET".to_string(), trimmed.to_string())])
}

/// The variables with `WEBHOOK_SECRET` (and `WEBHOOK_SECRET_PREVIOUS`) filled in from the
/// configured remote source; unchanged when the secret is inline.
pub async fn resolve(
    vars: Vec<(String, String)>,
    reader: &dyn SecretReader,
) -> Result<Vec<(String, String)>, ConfigError> {
    let env = Env::from_pairs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let (name, fetched) = match source(&env)? {
        SecretSource::Inline => return Ok(vars),
        SecretSource::SecretsManager(id) => (
            "WEBHOOK_SECRET_ARN",
            reader.secrets_manager(&id).await.map(|raw| (id, raw)),
        ),
        SecretSource::Ssm(param) => (
            "WEBHOOK_SECRET_SSM_PARAMETER",
            reader.ssm_parameter(&param).await.map(|raw| (param, raw)),
        ),
    };
    let invalid = |value: String, why: String| ConfigError::Invalid {
        name: name.to_string(),
        value,
        why,
    };
    let (id, raw) = fetched.map_err(|e| {
        invalid(
            env.get(name).unwrap_or_default(),
            format!("cannot read the webhook secret: {e}"),
        )
    })?;
    let fetched = split_value(&raw).map_err(|why| invalid(id, why))?;
    // What the secret sets replaces the same variables; a rotation's `previous` only when given.
    let mut out: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, _)| k != "WEBHOOK_SECRET" && !fetched.iter().any(|(f, _)| f == k))
        .collect();
    out.extend(fetched);
    Ok(out)
}

/// The process environment with the webhook secret resolved; the SDK clients are only built
/// when a remote source is configured.
pub async fn process_env_with_secret() -> Result<Env, ConfigError> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let env = Env::from_pairs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if source(&env)? == SecretSource::Inline {
        return Ok(Env::process());
    }
    let sdk = onboard_lambda_common::clients::sdk_config().await;
    let resolved = resolve(vars, &AwsSecretReader::new(&sdk)).await?;
    Ok(Env::from_pairs(
        resolved.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ))
}

/// Secrets Manager and SSM through the SDK clients.
#[derive(Debug, Clone)]
pub struct AwsSecretReader {
    secrets: aws_sdk_secretsmanager::Client,
    ssm: aws_sdk_ssm::Client,
}

impl AwsSecretReader {
    pub fn new(sdk: &SdkConfig) -> Self {
        AwsSecretReader {
            secrets: aws_sdk_secretsmanager::Client::new(sdk),
            ssm: aws_sdk_ssm::Client::new(sdk),
        }
    }
}

fn sdk_message<E>(e: aws_sdk_secretsmanager::error::SdkError<E>) -> SecretError
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let detail = match e.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("ServiceError"),
            service.message().unwrap_or("no message")
        ),
        None => aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
    };
    SecretError(detail)
}

#[async_trait]
impl SecretReader for AwsSecretReader {
    async fn secrets_manager(&self, id: &str) -> Result<String, SecretError> {
        let out = self
            .secrets
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(sdk_message)?;
        out.secret_string().map(str::to_string).ok_or_else(|| {
            SecretError("the secret has no SecretString (binary secrets are not supported)".into())
        })
    }

    async fn ssm_parameter(&self, name: &str) -> Result<String, SecretError> {
        let out = self
            .ssm
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(sdk_message)?;
        out.parameter()
            .and_then(|p| p.value())
            .map(str::to_string)
            .ok_or_else(|| SecretError("the parameter has no value".into()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// Answers from fixed maps and records what was asked.
    #[derive(Default)]
    struct Fixed {
        secrets: std::collections::BTreeMap<String, String>,
        params: std::collections::BTreeMap<String, String>,
        asked: std::sync::Mutex<Vec<String>>,
    }

    #[async_trait]
    impl SecretReader for Fixed {
        async fn secrets_manager(&self, id: &str) -> Result<String, SecretError> {
            self.asked.lock().unwrap().push(format!("sm:{id}"));
            self.secrets
                .get(id)
                .cloned()
                .ok_or_else(|| SecretError("ResourceNotFoundException: no such secret".into()))
        }
        async fn ssm_parameter(&self, name: &str) -> Result<String, SecretError> {
            self.asked.lock().unwrap().push(format!("ssm:{name}"));
            self.params
                .get(name)
                .cloned()
                .ok_or_else(|| SecretError("ParameterNotFound".into()))
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn get(vars: &[(String, String)], k: &str) -> Option<String> {
        vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[tokio::test]
    async fn an_inline_secret_is_used_without_asking_aws() {
        let reader = Fixed::default();
        let out = resolve(
            vars(&[
                ("WEBHOOK_SECRET", "s3cret"),
                ("WEBHOOK_SECRET_ARN", "arn:x"),
            ]),
            &reader,
        )
        .await
        .unwrap();
        assert_eq!(get(&out, "WEBHOOK_SECRET").as_deref(), Some("s3cret"));
        assert!(reader.asked.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn secrets_manager_values_may_carry_the_previous_secret() {
        let mut reader = Fixed::default();
        reader
            .secrets
            .insert("arn:plain".into(), "  abc123 \n".into());
        reader.secrets.insert(
            "arn:json".into(),
            r#"{"current":"new-secret-0123456789abcdef012345","previous":"old-secret-0123456789abcdef012345"}"#.into(),
        );
        let out = resolve(vars(&[("WEBHOOK_SECRET_ARN", "arn:plain")]), &reader)
            .await
            .unwrap();
        assert_eq!(get(&out, "WEBHOOK_SECRET").as_deref(), Some("abc123"));
        assert_eq!(get(&out, "WEBHOOK_SECRET_PREVIOUS"), None);
        let out = resolve(
            vars(&[
                ("WEBHOOK_SECRET_ARN", "arn:json"),
                ("WEBHOOK_SECRET_PREVIOUS", "stale"),
            ]),
            &reader,
        )
        .await
        .unwrap();
        assert_eq!(
            get(&out, "WEBHOOK_SECRET").as_deref(),
            Some("new-secret-0123456789abcdef012345")
        );
        assert_eq!(
            get(&out, "WEBHOOK_SECRET_PREVIOUS").as_deref(),
            Some("old-secret-0123456789abcdef012345")
        );
        // The resolved variables configure the webhooks.
        let env = Env::from_pairs(out.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let hooks = crate::config::webhooks_from_env(&env).unwrap();
        assert_eq!(
            hooks.signature.secrets,
            vec![
                b"new-secret-0123456789abcdef012345".to_vec(),
                b"old-secret-0123456789abcdef012345".to_vec()
            ]
        );
    }

    #[tokio::test]
    async fn a_json_secret_may_give_a_source_its_own_secret() {
        let mut reader = Fixed::default();
        let shared = "shared-0123456789abcdef0123456789ab";
        let jira = "jira-0123456789abcdef0123456789abcd";
        let jira_old = "jira-old-0123456789abcdef0123456789";
        reader.secrets.insert(
            "arn:json".into(),
            format!(
                r#"{{"current":"{shared}","jira":{{"current":"{jira}","previous":"{jira_old}"}}}}"#
            ),
        );
        reader.secrets.insert(
            "arn:bad".into(),
            format!(r#"{{"current":"{shared}","jira":{{}}}}"#),
        );
        let out = resolve(vars(&[("WEBHOOK_SECRET_ARN", "arn:json")]), &reader)
            .await
            .unwrap();
        assert_eq!(get(&out, "WEBHOOK_SECRET_JIRA").as_deref(), Some(jira));
        assert_eq!(
            get(&out, "WEBHOOK_SECRET_JIRA_PREVIOUS").as_deref(),
            Some(jira_old)
        );
        let env = Env::from_pairs(out.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let hooks = crate::config::webhooks_from_env(&env).unwrap();
        assert_eq!(
            hooks.signature.secrets_for("jira"),
            [jira.as_bytes().to_vec(), jira_old.as_bytes().to_vec()]
        );
        assert_eq!(
            hooks.signature.secrets_for("servicenow"),
            [shared.as_bytes().to_vec()]
        );

        let err = resolve(vars(&[("WEBHOOK_SECRET_ARN", "arn:bad")]), &reader)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("\"jira\" needs"), "{err}");
    }

    #[tokio::test]
    async fn ssm_parameters_are_read_and_failures_name_the_variable() {
        let mut reader = Fixed::default();
        reader
            .params
            .insert("/onboard/webhook".into(), "p4ram".into());
        let out = resolve(
            vars(&[("WEBHOOK_SECRET_SSM_PARAMETER", "/onboard/webhook")]),
            &reader,
        )
        .await
        .unwrap();
        assert_eq!(get(&out, "WEBHOOK_SECRET").as_deref(), Some("p4ram"));
        assert_eq!(*reader.asked.lock().unwrap(), vec!["ssm:/onboard/webhook"]);

        let err = resolve(vars(&[("WEBHOOK_SECRET_SSM_PARAMETER", "/nope")]), &reader)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("WEBHOOK_SECRET_SSM_PARAMETER"),
            "{err}"
        );
        assert!(err.to_string().contains("ParameterNotFound"), "{err}");

        reader
            .secrets
            .insert("arn:bad".into(), r#"{"previous":"x"}"#.into());
        let err = resolve(vars(&[("WEBHOOK_SECRET_ARN", "arn:bad")]), &reader)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("current"), "{err}");

        let err = resolve(vars(&[]), &reader).await.unwrap_err();
        assert!(err.to_string().contains("WEBHOOK_SECRET_ARN"), "{err}");
    }
}
