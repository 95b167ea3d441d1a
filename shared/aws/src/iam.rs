//! [`IamPort`] on `aws-sdk-iam`.
//!
//! IAM returns inline policy documents URL-encoded and the Rust SDK does not decode them, so
//! `get_role_policy` percent-decodes (keeping `+`, which IAM does not use for spaces).

use async_trait::async_trait;
use aws_sdk_iam::Client;
use onboard_core::error::{ErrorInfo, ErrorKind};
use onboard_core::ports::IamPort;
use percent_encoding::percent_decode_str;

use crate::sdk_errors::classify;

/// IAM role inline policies through the SDK client.
#[derive(Debug, Clone)]
pub struct SdkIam {
    client: Client,
}

impl SdkIam {
    pub fn new(client: Client) -> Self {
        SdkIam { client }
    }
}

/// The JSON text of a policy document as IAM returns it.
pub fn decode_policy_document(raw: &str) -> Result<String, ErrorInfo> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|e| {
            ErrorInfo::new(
                ErrorKind::ServerError,
                "UndecodablePolicyDocument",
                format!("IAM returned a policy document that is not URL-encoded UTF-8: {e}"),
            )
        })
}

#[async_trait]
impl IamPort for SdkIam {
    async fn get_role_policy(&self, role: &str, policy: &str) -> Result<Option<String>, ErrorInfo> {
        match self
            .client
            .get_role_policy()
            .role_name(role)
            .policy_name(policy)
            .send()
            .await
        {
            Ok(out) => decode_policy_document(out.policy_document()).map(Some),
            Err(e) => {
                let err = classify("iam:GetRolePolicy", e);
                if err.kind == ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn put_role_policy(
        &self,
        role: &str,
        policy: &str,
        document: &str,
    ) -> Result<(), ErrorInfo> {
        self.client
            .put_role_policy()
            .role_name(role)
            .policy_name(policy)
            .policy_document(document)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("iam:PutRolePolicy", e))
    }

    async fn delete_role_policy(&self, role: &str, policy: &str) -> Result<(), ErrorInfo> {
        self.client
            .delete_role_policy()
            .role_name(role)
            .policy_name(policy)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("iam:DeleteRolePolicy", e))
    }

    async fn list_role_policies(&self, role: &str) -> Result<Vec<String>, ErrorInfo> {
        let mut names = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_role_policies()
                .role_name(role)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| classify("iam:ListRolePolicies", e))?;
            names.extend(page.policy_names().iter().cloned());
            match (page.is_truncated(), page.marker()) {
                (true, Some(m)) => marker = Some(m.to_string()),
                _ => return Ok(names),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn documents_are_percent_decoded_keeping_plus() {
        let raw = "%7B%22Version%22%3A%222012-10-17%22%2C%22Sid%22%3A%22a+b%22%7D";
        assert_eq!(
            decode_policy_document(raw).unwrap(),
            r#"{"Version":"2012-10-17","Sid":"a+b"}"#
        );
        assert!(decode_policy_document("%FF%FE").is_err());
    }
}
