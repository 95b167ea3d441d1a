//! An in-memory `SagaStore` with the same semantics as the real ones, for fast engine tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::record::{Millis, SagaRecord, SagaStatus};
use crate::store::{IdempotencyClaim, Page, SagaStore, StoreError};

#[derive(Debug, Clone)]
struct IdemItem {
    payload_hash: String,
    completed: bool,
    in_progress_until: Millis,
    saga_id: Option<String>,
    expires_at: Millis,
}

#[derive(Debug, Default)]
struct Inner {
    sagas: BTreeMap<String, SagaRecord>,
    namespaces: BTreeMap<String, String>,
    idem: BTreeMap<String, IdemItem>,
}

/// Everything in one mutex: each method is atomic like a database transaction.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Backend("memory store mutex poisoned".into()))
    }
}

#[async_trait]
impl SagaStore for MemoryStore {
    async fn create(&self, record: &SagaRecord) -> Result<(), StoreError> {
        let mut g = self.lock()?;
        if g.sagas.contains_key(&record.id) {
            return Err(StoreError::AlreadyExists {
                id: record.id.clone(),
            });
        }
        if record.status.holds_namespace() {
            if let Some(holder) = g.namespaces.get(&record.namespace) {
                return Err(StoreError::NamespaceBusy {
                    namespace: record.namespace.clone(),
                    saga_id: holder.clone(),
                });
            }
            g.namespaces
                .insert(record.namespace.clone(), record.id.clone());
        }
        g.sagas.insert(record.id.clone(), record.clone());
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<SagaRecord>, StoreError> {
        Ok(self.lock()?.sagas.get(id).cloned())
    }

    async fn update(&self, record: &SagaRecord, expected_version: u64) -> Result<(), StoreError> {
        if record.version <= expected_version {
            return Err(StoreError::Invalid(format!(
                "update of saga {} must raise its version above {expected_version} (got {})",
                record.id, record.version
            )));
        }
        let mut g = self.lock()?;
        let Some(current) = g.sagas.get(&record.id) else {
            return Err(StoreError::NotFound {
                id: record.id.clone(),
            });
        };
        if current.version != expected_version {
            return Err(StoreError::VersionConflict {
                id: record.id.clone(),
                expected: expected_version,
            });
        }
        if !record.status.holds_namespace()
            && g.namespaces.get(&record.namespace) == Some(&record.id)
        {
            g.namespaces.remove(&record.namespace);
        }
        g.sagas.insert(record.id.clone(), record.clone());
        Ok(())
    }

    async fn list_by_status(
        &self,
        status: SagaStatus,
        limit: usize,
        cursor: Option<String>,
    ) -> Result<Page, StoreError> {
        if limit == 0 {
            return Err(StoreError::Invalid(format!(
                "listing {status} sagas needs a page size of at least 1"
            )));
        }
        let after = cursor
            .as_deref()
            .map(|c| parse_cursor(status, c))
            .transpose()?;
        let g = self.lock()?;
        let mut all: Vec<&SagaRecord> = g
            .sagas
            .values()
            .filter(|r| r.status == status)
            .filter(|r| {
                after
                    .as_ref()
                    .is_none_or(|(at, id)| (r.updated_at, r.id.as_str()) > (*at, id.as_str()))
            })
            .collect();
        all.sort_by(|a, b| (a.updated_at, &a.id).cmp(&(b.updated_at, &b.id)));
        // One extra row tells whether another page exists, so the last page has no cursor.
        let more = all.len() > limit;
        all.truncate(limit);
        let next = more
            .then(|| all.last().map(|r| cursor_for(status, r)))
            .flatten();
        Ok(Page {
            items: all.into_iter().cloned().collect(),
            next,
        })
    }

    async fn list_stalled(&self, now: Millis, limit: usize) -> Result<Vec<SagaRecord>, StoreError> {
        let g = self.lock()?;
        let mut stalled: Vec<&SagaRecord> = g
            .sagas
            .values()
            .filter(|r| r.status.is_runnable() && r.lease_expires_at() <= now)
            .collect();
        stalled.sort_by(|a, b| (a.updated_at, &a.id).cmp(&(b.updated_at, &b.id)));
        Ok(stalled.into_iter().take(limit).cloned().collect())
    }

    async fn namespace_holder(&self, namespace: &str) -> Result<Option<String>, StoreError> {
        Ok(self.lock()?.namespaces.get(namespace).cloned())
    }

    async fn claim_idempotency(
        &self,
        key: &str,
        payload_hash: &str,
        now: Millis,
        in_progress_until: Millis,
        expires_at: Millis,
    ) -> Result<IdempotencyClaim, StoreError> {
        let mut g = self.lock()?;
        if let Some(item) = g.idem.get(key).filter(|i| i.expires_at >= now) {
            if item.completed {
                return Ok(if item.payload_hash == payload_hash {
                    IdempotencyClaim::Existing {
                        saga_id: item.saga_id.clone().unwrap_or_default(),
                    }
                } else {
                    IdempotencyClaim::PayloadMismatch {
                        saga_id: item.saga_id.clone(),
                    }
                });
            }
            if item.in_progress_until >= now {
                return Ok(if item.payload_hash == payload_hash {
                    IdempotencyClaim::InProgress {
                        expires_at: item.in_progress_until,
                    }
                } else {
                    IdempotencyClaim::PayloadMismatch { saga_id: None }
                });
            }
        }
        g.idem.insert(
            key.to_string(),
            IdemItem {
                payload_hash: payload_hash.to_string(),
                completed: false,
                in_progress_until,
                saga_id: None,
                expires_at,
            },
        );
        Ok(IdempotencyClaim::Claimed)
    }

    async fn complete_idempotency(
        &self,
        key: &str,
        payload_hash: &str,
        saga_id: &str,
    ) -> Result<(), StoreError> {
        let mut g = self.lock()?;
        match g.idem.get_mut(key) {
            Some(item) if item.payload_hash == payload_hash => {
                item.completed = true;
                item.saga_id = Some(saga_id.to_string());
                Ok(())
            }
            _ => Err(StoreError::Invalid(format!(
                "idempotency key {key:?} is not claimed with this payload"
            ))),
        }
    }

    async fn release_idempotency(&self, key: &str, payload_hash: &str) -> Result<(), StoreError> {
        let mut g = self.lock()?;
        if g.idem
            .get(key)
            .is_some_and(|i| !i.completed && i.payload_hash == payload_hash)
        {
            g.idem.remove(key);
        }
        Ok(())
    }
}

/// The cursor after `record` in the listing of `status`: `<STATUS>#<updated_at>#<id>`, the
/// same shape the other stores hand out.
fn cursor_for(status: SagaStatus, record: &SagaRecord) -> String {
    format!("{status}#{:015}#{}", record.updated_at, record.id)
}

/// The `(updated_at, id)` a cursor of the `status` listing points after.
fn parse_cursor(status: SagaStatus, cursor: &str) -> Result<(Millis, String), StoreError> {
    cursor
        .strip_prefix(status.as_str())
        .and_then(|rest| rest.strip_prefix('#'))
        .and_then(|rest| rest.split_once('#'))
        .filter(|(at, id)| {
            !at.is_empty() && at.bytes().all(|b| b.is_ascii_digit()) && !id.is_empty()
        })
        .and_then(|(at, id)| Some((at.parse().ok()?, id.to_string())))
        .ok_or_else(|| {
            StoreError::Invalid(format!(
                "cursor {cursor:?} does not come from a listing of {status} sagas"
            ))
        })
}
