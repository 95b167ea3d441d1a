//! Loading the shared AWS SDK configuration once per process, with timeouts on every call.
//!
//! Without timeouts a call that hangs (a TCP black hole, a stalled TLS handshake, a response
//! that never comes) holds the function until its own timeout, long after the saga's lease or
//! the 30 s resource lock it runs under has expired and another worker may have taken over.
//! [`SdkTimeouts`] bounds every attempt and every operation (attempts plus the SDK's retries)
//! well below the shortest lease, so a hung call becomes a retryable `Timeout` error the engine
//! handles like any other.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};

/// Environment variables (and the CLI's settings) for the timeouts, in milliseconds.
pub const CONNECT_TIMEOUT_VAR: &str = "SDK_CONNECT_TIMEOUT_MS";
pub const READ_TIMEOUT_VAR: &str = "SDK_READ_TIMEOUT_MS";
pub const ATTEMPT_TIMEOUT_VAR: &str = "SDK_ATTEMPT_TIMEOUT_MS";
pub const OPERATION_TIMEOUT_VAR: &str = "SDK_OPERATION_TIMEOUT_MS";

/// Timeouts of every SDK call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdkTimeouts {
    /// Establishing the TCP (and TLS) connection.
    pub connect: Duration,
    /// Waiting for the next bytes of a response.
    pub read: Duration,
    /// One HTTP attempt, from sending the request to reading the whole response.
    pub attempt: Duration,
    /// The whole operation: every attempt and the backoff between them.
    pub operation: Duration,
}

impl Default for SdkTimeouts {
    /// Far below the shortest lease (the 30 s resource lock), yet above what AWS's control-plane
    /// calls take even when slow (well under a second; IAM writes a few seconds).
    fn default() -> Self {
        SdkTimeouts {
            connect: Duration::from_secs(3),
            read: Duration::from_secs(10),
            attempt: Duration::from_secs(10),
            operation: Duration::from_secs(25),
        }
    }
}

/// A timeout setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeoutError {
    #[error("{name}={value:?} is not a whole number of milliseconds")]
    Malformed { name: &'static str, value: String },
    #[error("{name} is 0 ms: every call would time out at once")]
    Zero { name: &'static str },
    #[error(
        "{name} ({value_ms} ms) exceeds {limit_name} ({limit_ms} ms), so it would never apply"
    )]
    Inconsistent {
        name: &'static str,
        value_ms: u128,
        limit_name: &'static str,
        limit_ms: u128,
    },
    #[error(
        "{OPERATION_TIMEOUT_VAR} ({operation_ms} ms) is not below the shortest lease a call runs \
         under ({lease_ms} ms): a hung call would outlive the lease and another worker could take \
         over while it still runs; set it below {lease_ms} ms"
    )]
    NotBelowLease { operation_ms: u128, lease_ms: u128 },
}

impl SdkTimeouts {
    /// The defaults, overridden by whichever of the four variables `lookup` returns (unset or
    /// blank = default). Not validated: see [`SdkTimeouts::validate`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, TimeoutError> {
        let d = SdkTimeouts::default();
        let read = |name: &'static str, default: Duration| -> Result<Duration, TimeoutError> {
            match lookup(name).filter(|v| !v.trim().is_empty()) {
                None => Ok(default),
                Some(raw) => raw
                    .trim()
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| TimeoutError::Malformed {
                        name,
                        value: raw.clone(),
                    }),
            }
        };
        Ok(SdkTimeouts {
            connect: read(CONNECT_TIMEOUT_VAR, d.connect)?,
            read: read(READ_TIMEOUT_VAR, d.read)?,
            attempt: read(ATTEMPT_TIMEOUT_VAR, d.attempt)?,
            operation: read(OPERATION_TIMEOUT_VAR, d.operation)?,
        })
    }

    /// Refuse settings that cannot bound a call inside `shortest_lease` (the shortest lease or
    /// lock any call of the process runs under): each one nonzero, connect and read within an
    /// attempt, an attempt within the operation, and the operation strictly below the lease.
    pub fn validate(&self, shortest_lease: Duration) -> Result<(), TimeoutError> {
        let all = [
            (CONNECT_TIMEOUT_VAR, self.connect),
            (READ_TIMEOUT_VAR, self.read),
            (ATTEMPT_TIMEOUT_VAR, self.attempt),
            (OPERATION_TIMEOUT_VAR, self.operation),
        ];
        if let Some((name, _)) = all.iter().find(|(_, d)| d.is_zero()) {
            return Err(TimeoutError::Zero { name });
        }
        let within = [
            (
                CONNECT_TIMEOUT_VAR,
                self.connect,
                ATTEMPT_TIMEOUT_VAR,
                self.attempt,
            ),
            (
                READ_TIMEOUT_VAR,
                self.read,
                ATTEMPT_TIMEOUT_VAR,
                self.attempt,
            ),
            (
                ATTEMPT_TIMEOUT_VAR,
                self.attempt,
                OPERATION_TIMEOUT_VAR,
                self.operation,
            ),
        ];
        for (name, value, limit_name, limit) in within {
            if value > limit {
                return Err(TimeoutError::Inconsistent {
                    name,
                    value_ms: value.as_millis(),
                    limit_name,
                    limit_ms: limit.as_millis(),
                });
            }
        }
        if self.operation >= shortest_lease {
            return Err(TimeoutError::NotBelowLease {
                operation_ms: self.operation.as_millis(),
                lease_ms: shortest_lease.as_millis(),
            });
        }
        Ok(())
    }

    /// The SDK's form of these timeouts.
    pub fn timeout_config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .read_timeout(self.read)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }
}

/// The loader behind [`sdk_config`]: the default chain (environment, profile, web identity,
/// container and instance metadata) with `timeouts` on every call. `endpoint_url` points every
/// client at a local emulator (moto, the sandbox) instead of AWS; production passes `None`.
pub fn loader(endpoint_url: Option<&str>, timeouts: &SdkTimeouts) -> ConfigLoader {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts.timeout_config());
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader
}

/// The SDK configuration every client of the process is built from (see [`loader`]).
pub async fn sdk_config(endpoint_url: Option<&str>, timeouts: &SdkTimeouts) -> SdkConfig {
    loader(endpoint_url, timeouts).load().await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::collections::BTreeMap;

    const LOCK: Duration = Duration::from_secs(30);

    fn from(pairs: &[(&str, &str)]) -> Result<SdkTimeouts, TimeoutError> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SdkTimeouts::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn the_defaults_are_valid_and_well_below_the_lock_lease() {
        let d = from(&[]).unwrap();
        assert_eq!(d, SdkTimeouts::default());
        d.validate(LOCK).unwrap();
        let tc = d.timeout_config();
        assert_eq!(tc.operation_timeout(), Some(Duration::from_secs(25)));
        assert_eq!(
            tc.operation_attempt_timeout(),
            Some(Duration::from_secs(10))
        );
        assert_eq!(tc.connect_timeout(), Some(Duration::from_secs(3)));
        assert_eq!(tc.read_timeout(), Some(Duration::from_secs(10)));
    }

    #[test]
    fn settings_override_the_defaults_in_milliseconds() {
        let t = from(&[
            (ATTEMPT_TIMEOUT_VAR, "300"),
            (OPERATION_TIMEOUT_VAR, " 800 "),
            (CONNECT_TIMEOUT_VAR, "100"),
            (READ_TIMEOUT_VAR, "200"),
        ])
        .unwrap();
        assert_eq!(
            t,
            SdkTimeouts {
                connect: Duration::from_millis(100),
                read: Duration::from_millis(200),
                attempt: Duration::from_millis(300),
                operation: Duration::from_millis(800),
            }
        );
        t.validate(LOCK).unwrap();
        assert!(matches!(
            from(&[(ATTEMPT_TIMEOUT_VAR, "10s")]),
            Err(TimeoutError::Malformed {
                name: ATTEMPT_TIMEOUT_VAR,
                ..
            })
        ));
    }

    #[test]
    fn an_operation_timeout_at_or_above_the_lease_is_refused_with_the_fix() {
        let at = from(&[(OPERATION_TIMEOUT_VAR, "30000")]).unwrap();
        let err = at.validate(LOCK).unwrap_err();
        assert_eq!(
            err,
            TimeoutError::NotBelowLease {
                operation_ms: 30_000,
                lease_ms: 30_000
            }
        );
        assert!(err.to_string().contains("set it below 30000 ms"), "{err}");
        let above = from(&[(OPERATION_TIMEOUT_VAR, "60000")]).unwrap();
        assert!(above.validate(LOCK).is_err());
        from(&[(OPERATION_TIMEOUT_VAR, "29999")])
            .unwrap()
            .validate(LOCK)
            .unwrap();
    }

    #[test]
    fn zero_and_inconsistent_timeouts_are_refused() {
        assert_eq!(
            from(&[(CONNECT_TIMEOUT_VAR, "0")]).unwrap().validate(LOCK),
            Err(TimeoutError::Zero {
                name: CONNECT_TIMEOUT_VAR
            })
        );
        let err = from(&[(ATTEMPT_TIMEOUT_VAR, "26000")])
            .unwrap()
            .validate(LOCK)
            .unwrap_err();
        assert!(
            matches!(
                err,
                TimeoutError::Inconsistent {
                    name: ATTEMPT_TIMEOUT_VAR,
                    limit_name: OPERATION_TIMEOUT_VAR,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(from(&[(CONNECT_TIMEOUT_VAR, "11000")])
            .unwrap()
            .validate(LOCK)
            .is_err());
    }

    #[tokio::test]
    async fn the_loaded_configuration_carries_the_timeouts() {
        let t = SdkTimeouts {
            attempt: Duration::from_millis(1234),
            ..SdkTimeouts::default()
        };
        let sdk = loader(Some("http://127.0.0.1:9"), &t)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "k", "s", None, None, "test",
            ))
            .load()
            .await;
        let tc = sdk.timeout_config().expect("a timeout configuration");
        assert_eq!(
            tc.operation_attempt_timeout(),
            Some(Duration::from_millis(1234))
        );
        assert_eq!(tc.operation_timeout(), Some(Duration::from_secs(25)));
    }
}
