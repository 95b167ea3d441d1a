//! The audit trail of one application: every saga recorded on it — its onboard or adopt saga
//! and each change, fix and offboard saga whose `parent` it is — oldest first, each with who
//! asked, from where, when, how it ended and what it set out to change.
//!
//! [`history`] is pure over records already read, so the API, the CLI and the tests build the
//! same entries; [`load`] reads them from a store. The changes of an entry are what the saga was
//! asked to do (its input's `before` → `after`); its `outcome` says whether that stuck.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Map, Value};

pub use crate::clock::rfc3339;
use crate::lifecycle::change::ChangeInput;
use crate::lifecycle::offboard::OffboardInput;
use crate::lifecycle::service::LifecycleError;
use crate::lifecycle::{adopt, state::profiles_of, ManagedApp, StateError};
use crate::onboard;
use crate::ports::ApplicationFields;
use crate::record::{Millis, SagaRecord, SagaStatus};
use crate::spec::{instance_id, ApplicationSpec, RequestSource};
use crate::store::SagaStore;

/// The editable fields in spec (camelCase) spelling, in the order a person reads a spec.
const FIELDS: [&str; 9] = [
    "displayName",
    "description",
    "accessUrl",
    "approvedOrigins",
    "permissions",
    "subscriptions",
    "publications",
    "iframe",
    "initializationTimeoutMs",
];

/// Log events that end a saga (for good, or until a re-drive).
const END_EVENTS: [&str; 5] = [
    "succeeded",
    "rolled_back",
    "refused",
    "rollback_failed",
    "needs_attention",
];

/// An application's audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    pub application_id: String,
    pub namespace: String,
    /// Oldest first; the first is the application's root saga.
    pub entries: Vec<HistoryEntry>,
}

/// One saga on the application.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub saga_id: String,
    /// The record's kind: `onboard`, `adopt`, `change`, `fix` or `offboard`.
    pub kind: String,
    /// What was asked: `onboard`, `adopt`, `edit`, `pause`, `resume`, `fix` or `offboard`.
    pub operation: String,
    /// The requesting principal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    /// The channel it came through (`CLI`, `PORTAL`, `TICKET`), when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<RequestSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// When it reached its current end state (RFC 3339); absent while it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The saga's status: SUCCEEDED, ROLLED_BACK, REFUSED, NEEDS_ATTENTION, …
    pub outcome: String,
    /// True for the saga that brought the application under management: `fields` are then
    /// its initial values.
    pub created: bool,
    pub fields: Vec<FieldChange>,
    pub instances: Vec<InstanceChange>,
    pub profiles: Vec<ProfileChange>,
}

/// One field's value before and after (absent = not set).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldChange {
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// What happened to the application on one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceEvent {
    Added,
    Removed,
    Paused,
    Resumed,
}

impl InstanceEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceEvent::Added => "added",
            InstanceEvent::Removed => "removed",
            InstanceEvent::Paused => "paused",
            InstanceEvent::Resumed => "resumed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceChange {
    pub instance: String,
    /// The alias the onboarding recorded for it, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    pub change: InstanceEvent,
}

/// Security profiles that start or stop granting the application on one instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileChange {
    pub instance: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// The audit trail of the application whose root saga is `root`, from `sagas` (any records;
/// those whose `parent` is not the root are ignored, so a namespace reused by a later
/// application does not leak into this one's history).
pub fn history(root: &SagaRecord, sagas: &[SagaRecord]) -> Result<History, StateError> {
    ensure_root(root)?;
    let aliases = onboard::instance_aliases(root);
    let mut mine: Vec<&SagaRecord> = sagas
        .iter()
        .filter(|s| s.id != root.id && s.parent.as_deref() == Some(root.id.as_str()))
        .collect();
    // Created in the same millisecond: the one that finished first went first.
    mine.sort_by(|a, b| {
        (a.created_at, a.updated_at, &a.id).cmp(&(b.created_at, b.updated_at, &b.id))
    });
    let entries = std::iter::once(root)
        .chain(mine)
        .map(|r| entry(r, &aliases))
        .collect();
    Ok(History {
        application_id: root.id.clone(),
        namespace: root.namespace.clone(),
        entries,
    })
}

/// Only an onboard or adopt saga is an application; a lifecycle saga's id is refused with its
/// application's.
pub fn ensure_root(root: &SagaRecord) -> Result<(), StateError> {
    if root.kind == onboard::KIND || root.kind == adopt::KIND {
        return Ok(());
    }
    Err(StateError::NotAnApplication {
        id: root.id.clone(),
        kind: root.kind.clone(),
        parent: root.parent.clone().unwrap_or_else(|| "unknown".into()),
    })
}

/// The history of the application whose root saga is `root` (already read, and authorized by
/// the caller), with every saga on it read from `store`. The store has no index by parent, so
/// this walks every status's listing, as the portal's per-namespace listing does.
pub async fn load(store: &dyn SagaStore, root: &SagaRecord) -> Result<History, LifecycleError> {
    // Before the walk: a lifecycle saga's id is refused without reading everything.
    ensure_root(root)?;
    let sagas = crate::store::every_saga(store, &SagaStatus::ALL, |r| {
        r.parent.as_deref() == Some(root.id.as_str())
    })
    .await?;
    Ok(history(root, &sagas)?)
}

fn entry(r: &SagaRecord, aliases: &BTreeMap<String, String>) -> HistoryEntry {
    let RequestedBy {
        principal: requester,
        source,
        ticket_id,
    } = RequestedBy::of(r);
    let operation = r
        .input
        .get("operation")
        .and_then(Value::as_str)
        .unwrap_or(r.kind.as_str())
        .to_string();
    let mut e = HistoryEntry {
        saga_id: r.id.clone(),
        kind: r.kind.clone(),
        operation,
        requester,
        source,
        ticket_id,
        created_at: rfc3339(r.created_at),
        finished_at: finished_at(r).map(rfc3339),
        outcome: r.status.as_str().to_string(),
        created: false,
        fields: Vec::new(),
        instances: Vec::new(),
        profiles: Vec::new(),
    };
    let (before, after) = match r.kind.as_str() {
        onboard::KIND => (None, onboarded(&r.input)),
        adopt::KIND => (
            None,
            r.output_of("discover")
                .and_then(|o| serde_json::from_value::<ManagedApp>(o.clone()).ok()),
        ),
        crate::lifecycle::offboard::KIND => {
            match serde_json::from_value::<OffboardInput>(r.input.clone()) {
                Ok(inp) => {
                    let mut gone = inp.before.clone();
                    gone.instances.clear();
                    gone.paused.clear();
                    gone.profiles.clear();
                    (Some(inp.before), Some(gone))
                }
                Err(_) => (None, None),
            }
        }
        _ => match serde_json::from_value::<ChangeInput>(r.input.clone()) {
            Ok(inp) => (Some(inp.before), Some(inp.after)),
            Err(_) => (None, None),
        },
    };
    let Some(after) = after else { return e };
    e.created = before.is_none();
    let empty = ManagedApp {
        instances: BTreeSet::new(),
        paused: BTreeSet::new(),
        profiles: BTreeMap::new(),
        ..after.clone()
    };
    let before = before.unwrap_or(empty);
    if r.kind != crate::lifecycle::offboard::KIND {
        let from = (!e.created).then_some(&before.fields);
        e.fields = field_changes(from, &after.fields);
    }
    let alias = |i: &str| aliases.get(i).cloned();
    for i in before.instances.union(&after.instances) {
        let change = match (before.instances.contains(i), after.instances.contains(i)) {
            (false, true) if after.paused.contains(i) => Some(InstanceEvent::Paused),
            (false, true) => Some(InstanceEvent::Added),
            (true, false) => Some(InstanceEvent::Removed),
            _ => match (before.paused.contains(i), after.paused.contains(i)) {
                (false, true) => Some(InstanceEvent::Paused),
                (true, false) => Some(InstanceEvent::Resumed),
                _ => None,
            },
        };
        if let Some(change) = change {
            e.instances.push(InstanceChange {
                instance: i.clone(),
                alias: alias(i),
                change,
            });
        }
        if !after.instances.contains(i) {
            continue;
        }
        let was = before.profiles.get(i).cloned().unwrap_or_default();
        let now = after.profiles.get(i).cloned().unwrap_or_default();
        if was != now {
            e.profiles.push(ProfileChange {
                instance: i.clone(),
                alias: alias(i),
                added: now.difference(&was).cloned().collect(),
                removed: was.difference(&now).cloned().collect(),
            });
        }
    }
    e
}

/// Who asked for a saga, through which channel and under which ticket, as its input records
/// them: an onboard spec's `requester` object, or a lifecycle input's `requester` principal
/// with its `source` and `ticketId` beside it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestedBy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<RequestSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<String>,
}

impl RequestedBy {
    pub fn of(r: &SagaRecord) -> Self {
        let input = &r.input;
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        let source = |v: Option<&Value>| v.and_then(|s| serde_json::from_value(s.clone()).ok());
        match input.get("requester") {
            Some(q @ Value::Object(_)) => RequestedBy {
                principal: text(q.get("principal")),
                source: source(q.get("source")),
                ticket_id: text(q.get("ticketId")),
            },
            q => RequestedBy {
                principal: text(q),
                source: source(input.get("source")),
                ticket_id: text(input.get("ticketId")),
            },
        }
    }
}

/// The state an onboard saga set out to create, from its spec (normalised by validation when
/// the spec still validates; as written otherwise).
fn onboarded(input: &Value) -> Option<ManagedApp> {
    let spec: ApplicationSpec = serde_json::from_value(input.clone()).ok()?;
    let (instances, profiles) = match spec.validate() {
        Ok(v) => (v.instance_ids.iter().cloned().collect(), profiles_of(&v)),
        Err(_) => (
            spec.instances
                .iter()
                .map(|i| instance_id(i).unwrap_or_else(|| i.clone()))
                .collect(),
            BTreeMap::new(),
        ),
    };
    Some(ManagedApp {
        app: crate::ports::AppRef {
            id: String::new(),
            arn: String::new(),
        },
        namespace: spec.namespace.clone().unwrap_or_default(),
        fields: ApplicationFields::of(&spec),
        instances,
        paused: BTreeSet::new(),
        profiles,
        slr_statements: true,
        offboarded: false,
        last_change: None,
    })
}

/// Each field whose value differs; `before: None` lists every field `after` sets.
fn field_changes(
    before: Option<&ApplicationFields>,
    after: &ApplicationFields,
) -> Vec<FieldChange> {
    let as_map = |f: Option<&ApplicationFields>| match f.map(serde_json::to_value) {
        Some(Ok(Value::Object(m))) => m,
        _ => Map::new(),
    };
    let (was, now) = (as_map(before), as_map(Some(after)));
    // Unset, null, "" and [] all mean "no value".
    let set = |m: &Map<String, Value>, k: &str| {
        m.get(k)
            .filter(|v| match v {
                Value::Null => false,
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                _ => true,
            })
            .cloned()
    };
    FIELDS
        .iter()
        .filter_map(|k| {
            let (b, a) = (set(&was, k), set(&now, k));
            (b != a).then(|| FieldChange {
                field: (*k).to_string(),
                before: b,
                after: a,
            })
        })
        .collect()
}

/// When the saga reached its current end state: its last ending log line (a re-drive may end
/// it twice), or `updated_at` for a record without one. A root's `updated_at` also moves with
/// later changes and drift checks, hence the log first.
fn finished_at(r: &SagaRecord) -> Option<Millis> {
    if !(r.status.is_finished() || r.status.is_redrivable()) {
        return None;
    }
    r.log
        .iter()
        .rev()
        .find(|l| l.node == "saga" && END_EVENTS.contains(&l.event.as_str()))
        .map(|l| l.at)
        .or(Some(r.updated_at))
}
