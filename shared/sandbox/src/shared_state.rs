//! The state behind the sandbox's lock, shared by the AWS-facing server and the `/_sandbox`
//! control endpoints (its own module so neither has to import the other for it): the world,
//! the seed, throttling, faults, the call log and the persistence hook.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::appintegrations::Limits;
use crate::clock::Clock;
use crate::error::SandboxError;
use crate::faults::Faults;
use crate::seed::SeedConfig;
use crate::state::World;
use crate::throttle::Throttle;
use crate::wire::Service;

/// One call received, for `GET /_sandbox/calls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Order of arrival, from 1.
    pub seq: u64,
    /// `appintegrations`, `connect`, `iam`, or `unknown`.
    pub service: String,
    /// Operation name (`Unknown` when none matched).
    pub operation: String,
    /// HTTP status answered.
    pub status: u16,
    /// Error code answered, if any.
    #[serde(default)]
    pub error: Option<String>,
    /// `throttled`, `fault`, or `apply_then_drop` when the answer did not come from the
    /// operation itself.
    #[serde(default)]
    pub note: Option<String>,
}

/// Everything behind the lock.
#[derive(Debug)]
pub(crate) struct Inner {
    pub world: World,
    pub seed: SeedConfig,
    pub rng_seed: u64,
    pub throttle: Throttle,
    pub faults: Faults,
    pub calls: Vec<CallRecord>,
    pub request_rng: fastrand::Rng,
    pub limits: Limits,
    /// Called with the new [`SandboxHandle::snapshot`] after every call that changed the world,
    /// before its response is sent (see [`SandboxHandle::persist_with`]).
    pub persist: Option<PersistHook>,
    /// The world before the first change of a service that no read has shown yet, kept
    /// until a fresh read of that service shows a change, for `stale` faults.
    pub lagging: Option<(Service, World)>,
}

/// [`Persist`] behind a name `Debug` can print.
#[derive(Clone)]
pub(crate) struct PersistHook(pub(crate) Persist);

impl std::fmt::Debug for PersistHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PersistHook")
    }
}

/// Saves a snapshot durably; an error fails the call that made the change (500), as a
/// service that could not commit a write would.
pub type Persist = Arc<dyn Fn(&serde_json::Value) -> std::io::Result<()> + Send + Sync>;

/// State shared by the server and handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) inner: Mutex<Inner>,
    pub clock: Arc<dyn Clock>,
}

impl Shared {
    /// The lock; a poisoned lock is still usable because handlers never panic mid-update.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn now(&self) -> u64 {
        self.clock.now_millis()
    }

    /// Puts the world back to the seed and forgets faults, calls and bucket levels.
    pub(crate) fn reset(&self) -> Result<(), SandboxError> {
        let now = self.now();
        let mut inner = self.lock();
        inner.world = World::from_seed(&inner.seed, now, inner.rng_seed)?;
        inner.lagging = None;
        inner.faults.clear();
        inner.calls.clear();
        let config = inner.throttle.config().clone();
        inner.throttle.reconfigure(config);
        Ok(())
    }

    /// Replaces the seed and resets to it.
    pub(crate) fn reseed(&self, seed: SeedConfig) -> Result<(), SandboxError> {
        let now = self.now();
        let mut inner = self.lock();
        let world = World::from_seed(&seed, now, inner.rng_seed)?;
        inner.world = world;
        inner.lagging = None;
        inner.seed = seed;
        inner.faults.clear();
        inner.calls.clear();
        Ok(())
    }
}
