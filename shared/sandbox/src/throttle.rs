//! Per-account token buckets, per service, like the published API quotas: Connect allows about
//! 2 requests/s with a burst of 5 per API per account (ListIntegrationAssociations 25/50);
//! AppIntegrations and IAM publish no rates, so they are unlimited unless configured.

use crate::wire::Service;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// A sustained rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket capacity.
    pub burst: u32,
}

impl Rate {
    /// A rate of `per_second` with a burst of `burst`.
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self { per_second, burst }
    }
}

/// Limits of one service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceRates {
    /// The rate of every operation without an override; `None` means unlimited.
    #[serde(default)]
    pub default: Option<Rate>,
    /// Per-operation rates (by operation name).
    #[serde(default)]
    pub operations: BTreeMap<String, Rate>,
    /// When true, operations without an override share one bucket; otherwise each operation
    /// has its own bucket, as Connect's per-API quotas do.
    #[serde(default)]
    pub shared: bool,
}

/// Throttling for all services.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThrottleConfig {
    /// AppIntegrations limits.
    #[serde(default)]
    pub appintegrations: ServiceRates,
    /// Connect limits.
    #[serde(default)]
    pub connect: ServiceRates,
    /// IAM limits.
    #[serde(default)]
    pub iam: ServiceRates,
    /// Send `x-amz-retry-after` (ms until a token is available) with throttling errors, which
    /// the SDKs honour, so retries land when the bucket has refilled.
    #[serde(default = "yes")]
    pub retry_after_header: bool,
}

fn yes() -> bool {
    true
}

impl Default for ThrottleConfig {
    /// Connect's published defaults; the other services unlimited.
    fn default() -> Self {
        Self {
            appintegrations: ServiceRates::default(),
            connect: ServiceRates {
                default: Some(Rate::new(2.0, 5)),
                operations: BTreeMap::from([(
                    "ListIntegrationAssociations".to_owned(),
                    Rate::new(25.0, 50),
                )]),
                shared: false,
            },
            iam: ServiceRates::default(),
            retry_after_header: true,
        }
    }
}

impl ThrottleConfig {
    /// No throttling anywhere.
    pub fn unlimited() -> Self {
        Self {
            appintegrations: ServiceRates::default(),
            connect: ServiceRates::default(),
            iam: ServiceRates::default(),
            retry_after_header: true,
        }
    }

    fn rates(&self, service: Service) -> &ServiceRates {
        match service {
            Service::AppIntegrations => &self.appintegrations,
            Service::Connect => &self.connect,
            Service::Iam => &self.iam,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last_ms: u64,
}

/// The buckets and their configuration.
#[derive(Debug)]
pub(crate) struct Throttle {
    config: ThrottleConfig,
    buckets: HashMap<(String, Service, String), Bucket>,
}

impl Throttle {
    pub(crate) fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            buckets: HashMap::new(),
        }
    }

    pub(crate) fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// Replaces the configuration and refills every bucket.
    pub(crate) fn reconfigure(&mut self, config: ThrottleConfig) {
        self.config = config;
        self.buckets.clear();
    }

    /// Takes a token for one call. `Err` carries the milliseconds until a token is available
    /// (`None` when the header is switched off).
    pub(crate) fn take(
        &mut self,
        account: &str,
        service: Service,
        operation: &str,
        now_ms: u64,
    ) -> Result<(), Option<u64>> {
        let rates = self.config.rates(service);
        let (rate, key) = match rates.operations.get(operation) {
            Some(rate) => (*rate, operation.to_owned()),
            None => match rates.default {
                None => return Ok(()),
                Some(rate) if rates.shared => (rate, "*".to_owned()),
                Some(rate) => (rate, operation.to_owned()),
            },
        };
        let burst = f64::from(rate.burst.max(1));
        let bucket = self
            .buckets
            .entry((account.to_owned(), service, key))
            .or_insert(Bucket {
                tokens: burst,
                last_ms: now_ms,
            });
        #[allow(clippy::cast_precision_loss)] // elapsed milliseconds fit an f64 exactly
        let elapsed = now_ms.saturating_sub(bucket.last_ms) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed * rate.per_second.max(0.0)).min(burst);
        bucket.last_ms = now_ms;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        if !self.config.retry_after_header || rate.per_second <= 0.0 {
            return Err(None);
        }
        let wait_ms = ((1.0 - bucket.tokens) / rate.per_second * 1000.0).ceil();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // positive, small
        let wait_ms = wait_ms as u64;
        Err(Some(wait_ms.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_allows_a_burst_of_five_then_two_per_second() {
        let mut t = Throttle::new(ThrottleConfig::default());
        for _ in 0..5 {
            assert!(t.take("1", Service::Connect, "DescribeInstance", 0).is_ok());
        }
        assert_eq!(
            t.take("1", Service::Connect, "DescribeInstance", 0),
            Err(Some(500))
        );
        // Per-API buckets: another operation still has its burst.
        assert!(t.take("1", Service::Connect, "ListInstances", 0).is_ok());
        assert!(t
            .take("1", Service::Connect, "DescribeInstance", 500)
            .is_ok());
        assert!(t
            .take("1", Service::Connect, "DescribeInstance", 500)
            .is_err());
        assert!(t.take("1", Service::Iam, "GetRole", 0).is_ok());
    }
}
