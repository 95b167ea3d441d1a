//! [`SagaStore`] on a redb database.
//!
//! Tables:
//! * `sagas`: saga id → JSON of the [`SagaRecord`].
//! * `namespaces`: namespace → id of the saga holding it (the one-active-saga-per-namespace
//!   guard).
//! * `idempotency`: key → JSON of an [`IdemRecord`].
//! * `by_status`: `"<STATUS>#<updated_at, zero padded>#<id>"` → `()`, an index kept in the same
//!   transaction as `sagas` so listings come back oldest update first without a full scan.
//!
//! Each write method is one redb write transaction: it commits only when every check passed, so
//! a failed call writes nothing. redb calls block, so they run on tokio's blocking pool.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use onboard_core::locks::ResourceLocks;
use onboard_core::record::{Millis, SagaRecord, SagaStatus};
use onboard_core::store::{IdempotencyClaim, Page, SagaStore, StoreError};
use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

const SAGAS: TableDefinition<&str, &[u8]> = TableDefinition::new("sagas");
const NAMESPACES: TableDefinition<&str, &str> = TableDefinition::new("namespaces");
const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");
const BY_STATUS: TableDefinition<&str, ()> = TableDefinition::new("by_status");
/// Resource locks: resource → (owner, expires_at millis).
const LOCKS: TableDefinition<&str, (&str, u64)> = TableDefinition::new("locks");

/// Separates the parts of a `by_status` key; `INDEX_END` is the next byte, so
/// `"<STATUS>#".."<STATUS>$"` covers exactly one status.
const INDEX_SEP: char = '#';
const INDEX_END: char = '$';

/// A saga store in one local redb file (or in memory, for tests).
///
/// Cloning shares the same database.
#[derive(Clone)]
pub struct RedbSagaStore {
    db: Arc<Database>,
}

impl std::fmt::Debug for RedbSagaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbSagaStore").finish_non_exhaustive()
    }
}

impl RedbSagaStore {
    /// Open the database at `path`, creating the file and its tables when missing.
    ///
    /// Fails when another process (or another store in this process) has the file open: redb
    /// locks it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(|e| {
            StoreError::Backend(format!("opening saga database {}: {e}", path.display()))
        })?;
        Self::init(db)
    }

    /// A store that lives only in memory: for tests and throwaway sandbox runs.
    pub fn in_memory() -> Result<Self, StoreError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(backend("creating in-memory saga database"))?;
        Self::init(db)
    }

    /// Create the tables up front so read transactions never meet a missing table.
    fn init(db: Database) -> Result<Self, StoreError> {
        write_txn(&db, "creating tables", |txn| {
            txn.open_table(SAGAS)
                .map_err(backend("creating table sagas"))?;
            txn.open_table(NAMESPACES)
                .map_err(backend("creating table namespaces"))?;
            txn.open_table(IDEMPOTENCY)
                .map_err(backend("creating table idempotency"))?;
            txn.open_table(BY_STATUS)
                .map_err(backend("creating table by_status"))?;
            txn.open_table(LOCKS)
                .map_err(backend("creating table locks"))?;
            Ok(())
        })?;
        Ok(RedbSagaStore { db: Arc::new(db) })
    }

    /// Run blocking redb work off the async runtime's worker threads.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::Backend(format!("saga database task failed: {e}")))?
    }
}

/// Map a redb error to `Backend`, saying what we were doing.
fn backend<E: std::fmt::Display>(context: &'static str) -> impl Fn(E) -> StoreError {
    move |e| StoreError::Backend(format!("{context}: {e}"))
}

/// Run `f` in one write transaction: commit if it returns `Ok`, abort (write nothing) if not.
fn write_txn<T>(
    db: &Database,
    what: &'static str,
    f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let txn = db.begin_write().map_err(backend(what))?;
    match f(&txn) {
        Ok(value) => {
            txn.commit().map_err(backend(what))?;
            Ok(value)
        }
        Err(err) => {
            // The caller's error matters more than a failed abort, which redb also does on drop.
            let _ = txn.abort();
            Err(err)
        }
    }
}

fn read_txn(db: &Database, what: &'static str) -> Result<ReadTransaction, StoreError> {
    db.begin_read().map_err(backend(what))
}

fn encode_saga(record: &SagaRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record)
        .map_err(|e| StoreError::Backend(format!("encoding saga {}: {e}", record.id)))
}

fn decode_saga(id: &str, bytes: &[u8]) -> Result<SagaRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("saga {id}: {e}")))
}

/// Load one saga through any readable `sagas` table (read or write transaction).
fn load_saga(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<Option<SagaRecord>, StoreError> {
    match table.get(id).map_err(backend("reading saga"))? {
        Some(guard) => decode_saga(id, guard.value()).map(Some),
        None => Ok(None),
    }
}

/// The `by_status` key of a record. `updated_at` is padded to the width of `u64::MAX` so the
/// string order is the numeric order for every value; the id breaks ties.
fn index_key(status: SagaStatus, updated_at: Millis, id: &str) -> String {
    format!("{status}{INDEX_SEP}{updated_at:020}{INDEX_SEP}{id}")
}

/// Whether `cursor` is a `by_status` key of `status` (what `list_by_status` hands out as
/// `next`): `<STATUS>#<20 digits>#<id>`.
fn is_cursor_of(status: SagaStatus, cursor: &str) -> bool {
    cursor
        .strip_prefix(status.as_str())
        .and_then(|rest| rest.strip_prefix(INDEX_SEP))
        .and_then(|rest| rest.split_once(INDEX_SEP))
        .is_some_and(|(at, id)| {
            at.len() == 20 && at.bytes().all(|b| b.is_ascii_digit()) && !id.is_empty()
        })
}

/// The id at the end of a `by_status` key.
fn id_from_index_key(key: &str) -> Result<&str, StoreError> {
    key.splitn(3, INDEX_SEP)
        .nth(2)
        .ok_or_else(|| StoreError::Corrupt(format!("malformed status index key {key:?}")))
}

/// Up to `limit` records with `status` that pass `keep`, in index order, starting after
/// `after` (an index key). Also returns whether more index entries follow the last one taken.
fn scan_status(
    txn: &ReadTransaction,
    status: SagaStatus,
    after: Option<&str>,
    limit: usize,
    keep: impl Fn(&SagaRecord) -> bool,
) -> Result<(Vec<SagaRecord>, Option<String>), StoreError> {
    let index = txn
        .open_table(BY_STATUS)
        .map_err(backend("opening table by_status"))?;
    let sagas = txn
        .open_table(SAGAS)
        .map_err(backend("opening table sagas"))?;
    let start = format!("{status}{INDEX_SEP}");
    let end = format!("{status}{INDEX_END}");
    let lower = match after {
        Some(key) => Bound::Excluded(key),
        None => Bound::Included(start.as_str()),
    };
    let range = index
        .range::<&str>((lower, Bound::Excluded(end.as_str())))
        .map_err(backend("scanning status index"))?;

    let mut items = Vec::new();
    let mut last_key = None;
    for entry in range {
        let (key, _) = entry.map_err(backend("scanning status index"))?;
        let key = key.value();
        if items.len() == limit {
            // Something follows the page: hand back where it ended.
            return Ok((items, last_key));
        }
        let id = id_from_index_key(key)?;
        let record = load_saga(&sagas, id)?.ok_or_else(|| {
            StoreError::Corrupt(format!(
                "status index entry {key:?} points at a missing saga"
            ))
        })?;
        if keep(&record) {
            items.push(record);
            last_key = Some(key.to_string());
        }
    }
    Ok((items, None))
}

/// What the `idempotency` table keeps per key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdemRecord {
    payload_hash: String,
    status: IdemStatus,
    /// Until then an `IN_PROGRESS` claim blocks others; after it, the claim may be taken over.
    in_progress_until: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    saga_id: Option<String>,
    /// After this the record counts as absent (a lazy TTL: nothing sweeps it).
    expires_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum IdemStatus {
    InProgress,
    Completed,
}

fn load_idem(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<IdemRecord>, StoreError> {
    match table.get(key).map_err(backend("reading idempotency key"))? {
        Some(guard) => serde_json::from_slice(guard.value())
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("idempotency key {key}: {e}"))),
        None => Ok(None),
    }
}

fn encode_idem(key: &str, record: &IdemRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record)
        .map_err(|e| StoreError::Backend(format!("encoding idempotency key {key}: {e}")))
}

#[async_trait]
impl SagaStore for RedbSagaStore {
    async fn create(&self, record: &SagaRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.blocking(move |db| {
            let bytes = encode_saga(&record)?;
            write_txn(db, "creating saga", |txn| {
                let mut sagas = txn
                    .open_table(SAGAS)
                    .map_err(backend("opening table sagas"))?;
                if sagas
                    .get(record.id.as_str())
                    .map_err(backend("reading saga"))?
                    .is_some()
                {
                    return Err(StoreError::AlreadyExists {
                        id: record.id.clone(),
                    });
                }
                if record.status.holds_namespace() {
                    let mut namespaces = txn
                        .open_table(NAMESPACES)
                        .map_err(backend("opening table namespaces"))?;
                    claim_namespace(&mut namespaces, &record.namespace, &record.id)?;
                }
                sagas
                    .insert(record.id.as_str(), bytes.as_slice())
                    .map_err(backend("writing saga"))?;
                let mut index = txn
                    .open_table(BY_STATUS)
                    .map_err(backend("opening table by_status"))?;
                index
                    .insert(
                        index_key(record.status, record.updated_at, &record.id).as_str(),
                        (),
                    )
                    .map_err(backend("writing status index"))?;
                Ok(())
            })
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<SagaRecord>, StoreError> {
        let id = id.to_string();
        self.blocking(move |db| {
            let txn = read_txn(db, "reading saga")?;
            let sagas = txn
                .open_table(SAGAS)
                .map_err(backend("opening table sagas"))?;
            load_saga(&sagas, &id)
        })
        .await
    }

    async fn update(&self, record: &SagaRecord, expected_version: u64) -> Result<(), StoreError> {
        if record.version <= expected_version {
            return Err(StoreError::Invalid(format!(
                "refusing to update saga {}: new version {} must be greater than expected version \
                 {expected_version}",
                record.id, record.version
            )));
        }
        let record = record.clone();
        self.blocking(move |db| {
            let bytes = encode_saga(&record)?;
            write_txn(db, "updating saga", |txn| {
                let mut sagas = txn
                    .open_table(SAGAS)
                    .map_err(backend("opening table sagas"))?;
                let stored =
                    load_saga(&sagas, &record.id)?.ok_or_else(|| StoreError::NotFound {
                        id: record.id.clone(),
                    })?;
                if stored.version != expected_version {
                    return Err(StoreError::VersionConflict {
                        id: record.id.clone(),
                        expected: expected_version,
                    });
                }

                let mut namespaces = txn
                    .open_table(NAMESPACES)
                    .map_err(backend("opening table namespaces"))?;
                let keeps_old_namespace =
                    record.status.holds_namespace() && record.namespace == stored.namespace;
                if stored.status.holds_namespace() && !keeps_old_namespace {
                    release_namespace(&mut namespaces, &stored.namespace, &record.id)?;
                }
                if record.status.holds_namespace() {
                    // Usually already ours; taken anew if the saga changed namespace or went
                    // from finished back to a holding status.
                    claim_namespace(&mut namespaces, &record.namespace, &record.id)?;
                }

                sagas
                    .insert(record.id.as_str(), bytes.as_slice())
                    .map_err(backend("writing saga"))?;
                let mut index = txn
                    .open_table(BY_STATUS)
                    .map_err(backend("opening table by_status"))?;
                index
                    .remove(index_key(stored.status, stored.updated_at, &stored.id).as_str())
                    .map_err(backend("updating status index"))?;
                index
                    .insert(
                        index_key(record.status, record.updated_at, &record.id).as_str(),
                        (),
                    )
                    .map_err(backend("updating status index"))?;
                Ok(())
            })
        })
        .await
    }

    async fn list_by_status(
        &self,
        status: SagaStatus,
        limit: usize,
        cursor: Option<String>,
    ) -> Result<Page, StoreError> {
        if let Some(c) = &cursor {
            if !is_cursor_of(status, c) {
                return Err(StoreError::Invalid(format!(
                    "cursor {c:?} does not come from a listing of {status} sagas"
                )));
            }
        }
        if limit == 0 {
            // A page of nothing could never make progress.
            return Err(StoreError::Invalid(format!(
                "listing {status} sagas needs a page size of at least 1"
            )));
        }
        self.blocking(move |db| {
            let txn = read_txn(db, "listing sagas")?;
            let (items, next) = scan_status(&txn, status, cursor.as_deref(), limit, |_| true)?;
            Ok(Page { items, next })
        })
        .await
    }

    async fn list_stalled(&self, now: Millis, limit: usize) -> Result<Vec<SagaRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.blocking(move |db| {
            // One snapshot for all statuses, so a saga moving between them is seen once.
            let txn = read_txn(db, "listing stalled sagas")?;
            let mut stalled = Vec::new();
            for status in SagaStatus::ALL.into_iter().filter(|s| s.is_runnable()) {
                // Each status comes back oldest first, so its first `limit` matches are all
                // that can make the merged first `limit`.
                let (items, _) =
                    scan_status(&txn, status, None, limit, |r| r.lease_expires_at() <= now)?;
                stalled.extend(items);
            }
            stalled.sort_by(|a, b| (a.updated_at, &a.id).cmp(&(b.updated_at, &b.id)));
            stalled.truncate(limit);
            Ok(stalled)
        })
        .await
    }

    async fn namespace_holder(&self, namespace: &str) -> Result<Option<String>, StoreError> {
        let namespace = namespace.to_string();
        self.blocking(move |db| {
            let txn = read_txn(db, "reading namespace guard")?;
            let namespaces = txn
                .open_table(NAMESPACES)
                .map_err(backend("opening table namespaces"))?;
            let holder = namespaces
                .get(namespace.as_str())
                .map_err(backend("reading namespace guard"))?
                .map(|g| g.value().to_string());
            Ok(holder)
        })
        .await
    }

    async fn claim_idempotency(
        &self,
        key: &str,
        payload_hash: &str,
        now: Millis,
        in_progress_until: Millis,
        expires_at: Millis,
    ) -> Result<IdempotencyClaim, StoreError> {
        let key = key.to_string();
        let payload_hash = payload_hash.to_string();
        self.blocking(move |db| {
            write_txn(db, "claiming idempotency key", |txn| {
                let mut table = txn
                    .open_table(IDEMPOTENCY)
                    .map_err(backend("opening table idempotency"))?;
                // A record past its TTL counts as absent.
                let existing = load_idem(&table, &key)?.filter(|r| r.expires_at >= now);
                if let Some(existing) = existing {
                    let same = existing.payload_hash == payload_hash;
                    match existing.status {
                        IdemStatus::Completed if same => {
                            let saga_id = existing.saga_id.ok_or_else(|| {
                                StoreError::Corrupt(format!(
                                    "idempotency key {key} is completed without a saga id"
                                ))
                            })?;
                            return Ok(IdempotencyClaim::Existing { saga_id });
                        }
                        IdemStatus::Completed => {
                            return Ok(IdempotencyClaim::PayloadMismatch {
                                saga_id: existing.saga_id,
                            });
                        }
                        // An expired in-progress claim (a crashed request) is ours to take.
                        IdemStatus::InProgress if existing.in_progress_until < now => {}
                        IdemStatus::InProgress if same => {
                            return Ok(IdempotencyClaim::InProgress {
                                expires_at: existing.in_progress_until,
                            });
                        }
                        IdemStatus::InProgress => {
                            return Ok(IdempotencyClaim::PayloadMismatch { saga_id: None });
                        }
                    }
                }
                let claim = IdemRecord {
                    payload_hash: payload_hash.clone(),
                    status: IdemStatus::InProgress,
                    in_progress_until,
                    saga_id: None,
                    expires_at,
                };
                table
                    .insert(key.as_str(), encode_idem(&key, &claim)?.as_slice())
                    .map_err(backend("writing idempotency key"))?;
                Ok(IdempotencyClaim::Claimed)
            })
        })
        .await
    }

    async fn complete_idempotency(
        &self,
        key: &str,
        payload_hash: &str,
        saga_id: &str,
    ) -> Result<(), StoreError> {
        let key = key.to_string();
        let payload_hash = payload_hash.to_string();
        let saga_id = saga_id.to_string();
        self.blocking(move |db| {
            write_txn(db, "completing idempotency key", |txn| {
                let mut table = txn
                    .open_table(IDEMPOTENCY)
                    .map_err(backend("opening table idempotency"))?;
                // A missing key or another payload's claim means the caller lost its claim (it
                // expired and was taken over): say so rather than complete someone else's key.
                let record = load_idem(&table, &key)?.filter(|r| r.payload_hash == payload_hash);
                let Some(mut record) = record else {
                    return Err(StoreError::Invalid(format!(
                        "idempotency key {key:?} is not claimed with this payload"
                    )));
                };
                record.status = IdemStatus::Completed;
                record.saga_id = Some(saga_id);
                table
                    .insert(key.as_str(), encode_idem(&key, &record)?.as_slice())
                    .map_err(backend("writing idempotency key"))?;
                Ok(())
            })
        })
        .await
    }

    async fn release_idempotency(&self, key: &str, payload_hash: &str) -> Result<(), StoreError> {
        let key = key.to_string();
        let payload_hash = payload_hash.to_string();
        self.blocking(move |db| {
            write_txn(db, "releasing idempotency key", |txn| {
                let mut table = txn
                    .open_table(IDEMPOTENCY)
                    .map_err(backend("opening table idempotency"))?;
                let ours = load_idem(&table, &key)?.is_some_and(|r| {
                    r.status == IdemStatus::InProgress && r.payload_hash == payload_hash
                });
                if ours {
                    table
                        .remove(key.as_str())
                        .map_err(backend("deleting idempotency key"))?;
                }
                Ok(())
            })
        })
        .await
    }
}

#[async_trait]
impl ResourceLocks for RedbSagaStore {
    async fn try_lock(
        &self,
        resource: &str,
        owner: &str,
        now: Millis,
        expires_at: Millis,
    ) -> Result<bool, StoreError> {
        let (resource, owner) = (resource.to_string(), owner.to_string());
        self.blocking(move |db| {
            write_txn(db, "taking resource lock", |txn| {
                let mut table = txn
                    .open_table(LOCKS)
                    .map_err(backend("opening table locks"))?;
                let free = match table
                    .get(resource.as_str())
                    .map_err(backend("reading resource lock"))?
                {
                    Some(held) => {
                        let (holder, until) = held.value();
                        holder == owner || until < now
                    }
                    None => true,
                };
                if free {
                    table
                        .insert(resource.as_str(), (owner.as_str(), expires_at))
                        .map_err(backend("writing resource lock"))?;
                }
                Ok(free)
            })
        })
        .await
    }

    async fn unlock(&self, resource: &str, owner: &str) -> Result<(), StoreError> {
        let (resource, owner) = (resource.to_string(), owner.to_string());
        self.blocking(move |db| {
            write_txn(db, "releasing resource lock", |txn| {
                let mut table = txn
                    .open_table(LOCKS)
                    .map_err(backend("opening table locks"))?;
                let ours = table
                    .get(resource.as_str())
                    .map_err(backend("reading resource lock"))?
                    .is_some_and(|held| held.value().0 == owner);
                if ours {
                    table
                        .remove(resource.as_str())
                        .map_err(backend("deleting resource lock"))?;
                }
                Ok(())
            })
        })
        .await
    }
}

/// Point `namespace` at `id`, unless another saga holds it.
fn claim_namespace(
    namespaces: &mut redb::Table<&str, &str>,
    namespace: &str,
    id: &str,
) -> Result<(), StoreError> {
    let holder = namespaces
        .get(namespace)
        .map_err(backend("reading namespace guard"))?
        .map(|g| g.value().to_string());
    match holder {
        Some(holder) if holder != id => Err(StoreError::NamespaceBusy {
            namespace: namespace.to_string(),
            saga_id: holder,
        }),
        Some(_) => Ok(()),
        None => {
            namespaces
                .insert(namespace, id)
                .map_err(backend("writing namespace guard"))?;
            Ok(())
        }
    }
}

/// Free `namespace` if `id` holds it; a guard that points at another saga is not ours to drop.
fn release_namespace(
    namespaces: &mut redb::Table<&str, &str>,
    namespace: &str,
    id: &str,
) -> Result<(), StoreError> {
    let held_by_us = namespaces
        .get(namespace)
        .map_err(backend("reading namespace guard"))?
        .is_some_and(|g| g.value() == id);
    if held_by_us {
        namespaces
            .remove(namespace)
            .map_err(backend("releasing namespace guard"))?;
    }
    Ok(())
}
