//! In-memory [`ResourceLocks`] for engine tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::locks::ResourceLocks;
use crate::record::Millis;
use crate::store::StoreError;

/// Locks in a map behind one mutex; same semantics as the stores' locks.
#[derive(Debug, Default)]
pub struct MemoryLocks {
    held: Mutex<BTreeMap<String, (String, Millis)>>,
}

impl MemoryLocks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Who holds `resource` (ignoring expiry), for assertions.
    pub fn holder(&self, resource: &str) -> Option<String> {
        self.held
            .lock()
            .ok()
            .and_then(|m| m.get(resource).map(|(o, _)| o.clone()))
    }
}

#[async_trait]
impl ResourceLocks for MemoryLocks {
    async fn try_lock(
        &self,
        resource: &str,
        owner: &str,
        now: Millis,
        expires_at: Millis,
    ) -> Result<bool, StoreError> {
        let mut held = self
            .held
            .lock()
            .map_err(|_| StoreError::Backend("memory locks mutex poisoned".into()))?;
        match held.get(resource) {
            Some((holder, until)) if holder != owner && *until >= now => Ok(false),
            _ => {
                held.insert(resource.to_string(), (owner.to_string(), expires_at));
                Ok(true)
            }
        }
    }

    async fn unlock(&self, resource: &str, owner: &str) -> Result<(), StoreError> {
        let mut held = self
            .held
            .lock()
            .map_err(|_| StoreError::Backend("memory locks mutex poisoned".into()))?;
        if held
            .get(resource)
            .is_some_and(|(holder, _)| holder == owner)
        {
            held.remove(resource);
        }
        Ok(())
    }
}
