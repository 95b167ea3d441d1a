//! `--inject-fault OP:N[:CODE]`: fail the Nth call of one sandbox operation so a rollback can be
//! watched. The default error is the service's access-denied error: terminal (no retry), so the
//! saga rolls back at once, and it is what a real missing permission looks like.

use std::str::FromStr;

use onboard_sandbox::{FaultError, FaultSpec, Service};

/// The operations the sandbox emulates, by service (names as in the AWS API reference).
const OPERATIONS: &[(Service, &[&str])] = &[
    (
        Service::AppIntegrations,
        &[
            "CreateApplication",
            "GetApplication",
            "UpdateApplication",
            "DeleteApplication",
            "ListApplications",
            "ListApplicationAssociations",
        ],
    ),
    (
        Service::Connect,
        &[
            "DescribeInstance",
            "ListInstances",
            "CreateIntegrationAssociation",
            "DeleteIntegrationAssociation",
            "ListIntegrationAssociations",
            "ListSecurityProfiles",
            "DescribeSecurityProfile",
            "ListSecurityProfileApplications",
            "UpdateSecurityProfile",
        ],
    ),
    (
        Service::Iam,
        &[
            "GetRole",
            "GetRolePolicy",
            "PutRolePolicy",
            "DeleteRolePolicy",
            "ListRolePolicies",
            "SimulatePrincipalPolicy",
        ],
    ),
];

/// One parsed `--inject-fault` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultArg {
    pub service: Service,
    pub operation: String,
    pub nth: u64,
    pub code: String,
    pub status: u16,
}

impl FromStr for FaultArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split(':');
        let op = parts.next().unwrap_or_default().trim();
        let nth = parts.next().map(str::trim);
        let code = parts.next().map(str::trim).filter(|c| !c.is_empty());
        if parts.next().is_some() {
            return Err(format!(
                "{s:?} has too many parts; use OP:N or OP:N:ErrorCode"
            ));
        }
        let service = OPERATIONS
            .iter()
            .find(|(_, ops)| ops.contains(&op))
            .map(|(svc, _)| *svc)
            .ok_or_else(|| {
                let known: Vec<&str> = OPERATIONS
                    .iter()
                    .flat_map(|(_, ops)| *ops)
                    .copied()
                    .collect();
                format!(
                    "{op:?} is not an operation the sandbox emulates; use one of: {}",
                    known.join(", ")
                )
            })?;
        let nth: u64 = nth
            .ok_or_else(|| format!("{s:?} has no call number; use OP:N, e.g. {op}:1"))?
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("{s:?}: N must be a whole number from 1 (the Nth call)"))?;
        let code = code.map_or_else(|| denied_code(service).to_string(), str::to_string);
        let status = status_for(&code);
        Ok(FaultArg {
            service,
            operation: op.to_string(),
            nth,
            code,
            status,
        })
    }
}

impl FaultArg {
    /// The sandbox rule for this argument.
    pub fn spec(&self) -> FaultSpec {
        FaultSpec::fail_nth(
            self.service,
            &self.operation,
            self.nth,
            FaultError {
                code: self.code.clone(),
                status: self.status,
                message: Some(format!(
                    "injected by --inject-fault {}:{} (call {} of {} failed on purpose)",
                    self.operation, self.nth, self.nth, self.operation
                )),
            },
        )
    }
}

/// The access-denied code each protocol uses (IAM's query protocol has its short codes).
fn denied_code(service: Service) -> &'static str {
    match service {
        Service::Iam => "AccessDenied",
        Service::AppIntegrations | Service::Connect => "AccessDeniedException",
    }
}

/// A plausible HTTP status for an error code, so SDKs classify the injected error as they
/// would the real one.
fn status_for(code: &str) -> u16 {
    let has = |needle: &str| code.contains(needle);
    if has("AccessDenied") || has("Unauthorized") {
        403
    } else if has("Throttl") || has("TooManyRequests") || has("QuotaExceeded") {
        429
    } else if has("Internal") || has("ServiceFailure") || has("Unavailable") {
        500
    } else if has("NotFound") || has("NoSuchEntity") {
        404
    } else if has("Duplicate") || has("Conflict") || has("LimitExceeded") {
        409
    } else {
        400
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_op_n_and_an_optional_code() {
        let f: Result<FaultArg, _> = "CreateIntegrationAssociation:2".parse();
        assert_eq!(
            f,
            Ok(FaultArg {
                service: Service::Connect,
                operation: "CreateIntegrationAssociation".into(),
                nth: 2,
                code: "AccessDeniedException".into(),
                status: 403,
            })
        );
        let iam: Result<FaultArg, _> = "PutRolePolicy:1:ServiceFailure".parse();
        assert_eq!(iam.map(|f| (f.service, f.status)), Ok((Service::Iam, 500)));
    }

    #[test]
    fn refuses_unknown_operations_and_bad_counts() {
        for bad in [
            "Nope:1",
            "CreateApplication",
            "CreateApplication:0",
            "CreateApplication:x",
            "A:1:B:C",
        ] {
            assert!(bad.parse::<FaultArg>().is_err(), "{bad}");
        }
    }
}
