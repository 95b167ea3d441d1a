//! Submitting a saga exactly once per idempotency key (Powertools-style).
//!
//! A key is claimed IN_PROGRESS with an expiry, the saga is created, then the key is completed
//! with the saga id. The saga id is derived from the key, so even a crash between creating the
//! saga and completing the key cannot produce a second saga: the retry finds the first one.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::record::SagaRecord;
use crate::store::{IdempotencyClaim, SagaStore, StoreError};

/// How long claims and keys live.
#[derive(Debug, Clone)]
pub struct IdempotencyConfig {
    /// A claim older than this is considered crashed and may be taken over.
    pub in_progress_ttl: Duration,
    /// How long a completed key is remembered.
    pub retention: Duration,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        IdempotencyConfig {
            in_progress_ttl: Duration::from_secs(60),
            retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// The outcome of a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub saga_id: String,
    /// False when an earlier submission with the same key already created the saga.
    pub created: bool,
}

/// Why a submission was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("idempotency key {key:?} was already used with a different request{}; use a new key for a new request", saga_id.as_ref().map(|s| format!(" (saga {s})")).unwrap_or_default())]
    PayloadMismatch {
        key: String,
        saga_id: Option<String>,
    },
    #[error("a request with idempotency key {key:?} is still being recorded; retry after {retry_after_ms} ms")]
    InProgress { key: String, retry_after_ms: u64 },
    #[error("namespace {namespace} is held by saga {saga_id}; wait for it to finish, or re-drive it if it is ROLLBACK_FAILED")]
    NamespaceBusy { namespace: String, saga_id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The namespace of [`ticket_key`] for a spec that names its own ticket
/// (`requester.source = TICKET`, e.g. `onboard apply`), whose ticketing system is not known.
pub const SPEC_TICKETS: &str = "spec";

/// The idempotency key of a change ticket: `ticket:{system}:{ticket id}`. Namespaced by the
/// ticketing system (`servicenow`, `jira`, `generic`, or [`SPEC_TICKETS`]), so the same
/// ticket id from two systems is two requests. `system` never contains `:`, so keys of
/// different systems cannot collide whatever the ticket id. Callers keep this prefix for
/// tickets: the API refuses an `Idempotency-Key` header starting with `ticket:`.
pub fn ticket_key(system: &str, ticket_id: &str) -> String {
    format!("ticket:{system}:{ticket_id}")
}

/// The saga id for an idempotency key: stable, so retries converge on one saga.
pub fn saga_id_for_key(key: &str) -> String {
    let digest = Sha256::digest(format!("idempotency:{key}").as_bytes());
    format!("sg-{}", &hex::encode(digest)[..32])
}

/// Store `record` as a new saga unless `key` was already used. With a key, the record's id
/// is replaced by [`saga_id_for_key`] and `payload_hash` decides whether a repeat is the same
/// request.
pub async fn submit(
    store: &dyn SagaStore,
    clock: &dyn Clock,
    config: &IdempotencyConfig,
    mut record: SagaRecord,
    key: Option<&str>,
    payload_hash: &str,
) -> Result<Submission, SubmitError> {
    record.payload_hash = Some(payload_hash.to_string());
    let Some(key) = key else {
        return create(store, &record).await.map(|()| Submission {
            saga_id: record.id.clone(),
            created: true,
        });
    };
    record.id = saga_id_for_key(key);
    record.idempotency_key = Some(key.to_string());
    let now = clock.now();
    let in_progress_until = now.saturating_add(config.in_progress_ttl.as_millis() as u64);
    let expires_at = now.saturating_add(config.retention.as_millis() as u64);
    match store
        .claim_idempotency(key, payload_hash, now, in_progress_until, expires_at)
        .await?
    {
        IdempotencyClaim::Claimed => {}
        IdempotencyClaim::Existing { saga_id } => {
            return Ok(Submission {
                saga_id,
                created: false,
            })
        }
        IdempotencyClaim::PayloadMismatch { saga_id } => {
            return Err(SubmitError::PayloadMismatch {
                key: key.to_string(),
                saga_id,
            })
        }
        IdempotencyClaim::InProgress { expires_at } => {
            return Err(SubmitError::InProgress {
                key: key.to_string(),
                retry_after_ms: expires_at.saturating_sub(now),
            })
        }
    }
    let created = match create(store, &record).await {
        Ok(()) => true,
        Err(SubmitError::Store(StoreError::AlreadyExists { .. })) => {
            // A previous claim crashed after creating the saga: adopt it if it is the same request.
            let existing = store.get(&record.id).await?;
            let same = existing
                .as_ref()
                .is_some_and(|r| r.payload_hash.as_deref() == Some(payload_hash));
            if !same {
                release(store, key, payload_hash).await;
                return Err(SubmitError::PayloadMismatch {
                    key: key.to_string(),
                    saga_id: Some(record.id),
                });
            }
            false
        }
        Err(err) => {
            release(store, key, payload_hash).await;
            return Err(err);
        }
    };
    store
        .complete_idempotency(key, payload_hash, &record.id)
        .await?;
    Ok(Submission {
        saga_id: record.id,
        created,
    })
}

async fn create(store: &dyn SagaStore, record: &SagaRecord) -> Result<(), SubmitError> {
    match store.create(record).await {
        Ok(()) => Ok(()),
        Err(StoreError::NamespaceBusy { namespace, saga_id }) => {
            Err(SubmitError::NamespaceBusy { namespace, saga_id })
        }
        Err(e) => Err(SubmitError::Store(e)),
    }
}

/// Best effort: a claim that cannot be released expires on its own.
async fn release(store: &dyn SagaStore, key: &str, payload_hash: &str) {
    if let Err(err) = store.release_idempotency(key, payload_hash).await {
        tracing::warn!(key, error = %err, "could not release idempotency claim; it expires on its own");
    }
}
