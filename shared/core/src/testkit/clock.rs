//! A clock that only moves when told (or when the engine sleeps), and fixed randomness.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::{Clock, Random};
use crate::record::Millis;

/// Manual time: `sleep` advances it instantly, so backoff costs no wall time in tests.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicU64,
    slept: AtomicU64,
}

impl ManualClock {
    pub fn new(start: Millis) -> Self {
        ManualClock {
            now: AtomicU64::new(start),
            slept: AtomicU64::new(0),
        }
    }

    pub fn advance(&self, d: Duration) {
        self.now.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// Total time the engine asked to sleep.
    pub fn slept(&self) -> Duration {
        Duration::from_millis(self.slept.load(Ordering::SeqCst))
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new(1_700_000_000_000)
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.now.load(Ordering::SeqCst)
    }

    async fn sleep(&self, d: Duration) {
        let ms = d.as_millis() as u64;
        self.slept.fetch_add(ms, Ordering::SeqCst);
        self.now.fetch_add(ms, Ordering::SeqCst);
        tokio::task::yield_now().await;
    }
}

/// Always the same value in `[0, 1)`.
#[derive(Debug, Clone, Copy)]
pub struct FixedRandom(pub f64);

impl Random for FixedRandom {
    fn unit(&self) -> f64 {
        self.0
    }
}
