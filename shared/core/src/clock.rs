//! Time and randomness ports, so the engine's backoff, leases and jitter are deterministic in
//! tests and real in production.

use std::time::Duration;

use async_trait::async_trait;

/// Milliseconds since the Unix epoch (defined here, with time, so the clock needs nothing from
/// the record; `record::Millis` is the same type).
pub type Millis = u64;

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

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` from epoch milliseconds (civil-from-days; no time crate).
pub fn rfc3339(ms: Millis) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}
