//! Time and randomness ports, so the engine's backoff, leases and jitter are deterministic in
//! tests and real in production.

use std::time::Duration;

use async_trait::async_trait;

use crate::record::Millis;

/// Wall-clock time and sleeping.
#[async_trait]
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now(&self) -> Millis;
    /// Wait for `d` (backoff between retries).
    async fn sleep(&self, d: Duration);
}

/// A source of uniform random numbers for jitter.
pub trait Random: Send + Sync {
    /// A uniform value in `[0, 1)`.
    fn unit(&self) -> f64;
}

/// The system clock with tokio's timer.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Millis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as Millis)
    }

    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

/// Thread-local fast PRNG; jitter needs spread, not secrecy.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRandom;

impl Random for SystemRandom {
    fn unit(&self) -> f64 {
        fastrand::f64()
    }
}
