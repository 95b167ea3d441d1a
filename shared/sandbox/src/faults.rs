//! Fault injection: fail the Nth call of an operation, fail with probability p from a seed,
//! add latency, serve a read from before the last write (eventual consistency), or apply a
//! change and then answer with an error so the caller believes it failed ("apply then
//! drop"). Rules are added through the control API or the Rust handle.

use crate::wire::{ApiError, Service};
use serde::{Deserialize, Serialize};

/// The error a fault answers with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultError {
    /// Wire code (`ThrottlingException`, `InternalServiceError`, IAM's `Throttling`, ...).
    pub code: String,
    /// HTTP status.
    pub status: u16,
    /// Message; a generic one when absent.
    #[serde(default)]
    pub message: Option<String>,
}

/// What a matching fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultMode {
    /// Answer with the error without touching the state.
    Fail,
    /// Perform the operation, then answer with the error (the service's 500 by default): the
    /// change happened but the caller sees a failure, like a response lost on the way back.
    ApplyThenDrop,
    /// Only add the latency.
    Delay,
    /// Serve a read from the world as it was before the service's last change, as an
    /// eventually consistent service does for a while after a write (IAM answers the old
    /// policy for seconds). The lag ends at the first fresh read whose answer shows the
    /// change, so a client that reads its write back until it shows sees nothing stale
    /// afterwards. Does nothing to a write, or to a read the change did not affect.
    Stale,
}

/// A fault rule. Without `nth` or `probability` it fires on every matching call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Only calls to this service (any service when absent).
    #[serde(default)]
    pub service: Option<Service>,
    /// Only this operation (any when absent or `*`).
    #[serde(default)]
    pub operation: Option<String>,
    /// Fire on the Nth matching call only (1-based, counted from when the rule was added).
    #[serde(default)]
    pub nth: Option<u64>,
    /// Fire on each matching call with this probability.
    #[serde(default)]
    pub probability: Option<f64>,
    /// Seed of the probability draw (0 when absent), for reproducible runs.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Added before the call is served (capped at 600,000 ms).
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// The error to answer with; the service's internal error when absent.
    #[serde(default)]
    pub error: Option<FaultError>,
    /// `fail` (default with an error), `apply_then_drop`, `delay` (default with only a
    /// latency), or `stale`.
    #[serde(default)]
    pub mode: Option<FaultMode>,
    /// Stop after firing this many times.
    #[serde(default)]
    pub times: Option<u64>,
}

impl FaultSpec {
    /// A rule that fails the `nth` call of `operation` with `error`.
    pub fn fail_nth(service: Service, operation: &str, nth: u64, error: FaultError) -> Self {
        Self {
            service: Some(service),
            operation: Some(operation.to_owned()),
            nth: Some(nth),
            probability: None,
            seed: None,
            latency_ms: None,
            error: Some(error),
            mode: Some(FaultMode::Fail),
            times: None,
        }
    }

    fn resolved_mode(&self) -> FaultMode {
        self.mode
            .unwrap_or(if self.error.is_none() && self.latency_ms.is_some() {
                FaultMode::Delay
            } else {
                FaultMode::Fail
            })
    }

    fn matches(&self, service: Service, operation: &str) -> bool {
        self.service.is_none_or(|s| s == service)
            && self
                .operation
                .as_deref()
                .is_none_or(|o| o == "*" || o == operation)
    }
}

/// A rule with its counters, as listed by `GET /_sandbox/faults`.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRule {
    /// Identifier returned when the rule was added.
    pub id: u64,
    /// The rule.
    pub spec: FaultSpec,
    /// Matching calls seen.
    pub seen: u64,
    /// Times fired.
    pub fired: u64,
    #[serde(skip)]
    rng: fastrand::Rng,
}

/// Injected latency is capped at ten minutes: longer only hangs a test run.
const MAX_LATENCY_MS: u64 = 600_000;

/// What the faults decided for one call.
#[derive(Debug, Default)]
pub(crate) struct Decision {
    pub latency_ms: u64,
    /// Answer with this instead of serving the call.
    pub fail: Option<ApiError>,
    /// Serve the call, then answer with this.
    pub drop_after: Option<ApiError>,
    /// Serve a read from the world before the service's last change.
    pub stale: bool,
    /// Ids of the rules that fired.
    pub fired: Vec<u64>,
}

/// All rules.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    rules: Vec<FaultRule>,
    next_id: u64,
}

impl Faults {
    pub(crate) fn add(&mut self, spec: FaultSpec) -> u64 {
        self.next_id += 1;
        let rng = fastrand::Rng::with_seed(spec.seed.unwrap_or(0));
        self.rules.push(FaultRule {
            id: self.next_id,
            spec,
            seen: 0,
            fired: 0,
            rng,
        });
        self.next_id
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    pub(crate) fn rules(&self) -> &[FaultRule] {
        &self.rules
    }

    /// Counts the call against every matching rule and combines those that fire.
    pub(crate) fn decide(&mut self, service: Service, operation: &str) -> Decision {
        let mut decision = Decision::default();
        for rule in &mut self.rules {
            if !rule.spec.matches(service, operation) {
                continue;
            }
            rule.seen += 1;
            if rule.spec.times.is_some_and(|t| rule.fired >= t) {
                continue;
            }
            let fires = match (rule.spec.nth, rule.spec.probability) {
                (Some(n), _) => rule.seen == n,
                (None, Some(p)) => rule.rng.f64() < p,
                (None, None) => true,
            };
            if !fires {
                continue;
            }
            rule.fired += 1;
            decision.fired.push(rule.id);
            decision.latency_ms = decision
                .latency_ms
                .saturating_add(rule.spec.latency_ms.unwrap_or(0))
                .min(MAX_LATENCY_MS);
            let error = rule.spec.error.as_ref().map_or_else(
                || service.internal_error("Injected fault"),
                |e| {
                    ApiError::new(
                        &e.code,
                        e.status,
                        e.message.as_deref().unwrap_or("Injected fault"),
                    )
                },
            );
            match rule.spec.resolved_mode() {
                FaultMode::Fail if decision.fail.is_none() => decision.fail = Some(error),
                FaultMode::ApplyThenDrop if decision.drop_after.is_none() => {
                    decision.drop_after = Some(error);
                }
                FaultMode::Stale => decision.stale = true,
                _ => {}
            }
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_fires_once_and_probability_is_reproducible() {
        let mut faults = Faults::default();
        let err = FaultError {
            code: "ThrottlingException".to_owned(),
            status: 429,
            message: None,
        };
        faults.add(FaultSpec::fail_nth(
            Service::Connect,
            "ListInstances",
            2,
            err,
        ));
        assert!(faults
            .decide(Service::Connect, "ListInstances")
            .fail
            .is_none());
        assert!(faults
            .decide(Service::Connect, "DescribeInstance")
            .fail
            .is_none());
        assert!(faults
            .decide(Service::Connect, "ListInstances")
            .fail
            .is_some());
        assert!(faults
            .decide(Service::Connect, "ListInstances")
            .fail
            .is_none());

        let draws = |seed| {
            let mut f = Faults::default();
            f.add(FaultSpec {
                nth: None,
                probability: Some(0.5),
                seed: Some(seed),
                ..FaultSpec::fail_nth(
                    Service::Iam,
                    "GetRole",
                    0,
                    FaultError {
                        code: "ServiceFailure".to_owned(),
                        status: 500,
                        message: None,
                    },
                )
            });
            (0..32)
                .map(|_| f.decide(Service::Iam, "GetRole").fail.is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
    }
}
