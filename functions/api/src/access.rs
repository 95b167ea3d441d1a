//! Authorization at the API: the core's owner/admin rules ([`onboard_core::access`]) applied to
//! reads and re-drives here (lifecycle requests are checked inside the core's use cases, which
//! also record the decision), and a refusal as a 403 problem that says which rule refused and
//! who may do it instead.

use std::collections::HashMap;

use axum::http::HeaderMap;
use onboard_core::access::{Action, Actor, Caller, Denied, Grant, Origin, Owners};
use onboard_core::record::SagaRecord;
use onboard_core::spec::RequestSource;
use onboard_lambda_common::Metric;

use crate::problem::{ApiProblem, Kind};
use crate::Api;

/// The header a lifecycle request names its change ticket in; recorded on the saga for the
/// audit trail (it authorizes nothing).
pub const TICKET_HEADER: &str = "x-onboard-ticket";

/// The actor a lifecycle use case checks: this caller under the API's policy, coming through
/// the API with the ticket the request names (400 when the header is not a ticket id).
pub(crate) fn actor(
    api: &Api,
    caller: Caller,
    headers: &HeaderMap,
) -> Result<Actor, Box<ApiProblem>> {
    let ticket = match headers.get(TICKET_HEADER) {
        None => None,
        Some(v) => {
            let t = v.to_str().unwrap_or("").trim();
            let valid = !t.is_empty() && t.len() <= 128 && t.bytes().all(|b| b.is_ascii_graphic());
            if !valid {
                return Err(ApiProblem::new(
                    Kind::BadRequest,
                    "the X-Onboard-Ticket header is not 1–128 visible ASCII characters",
                )
                .fix("Send the change ticket's id, e.g. CHG0031337, or leave the header out.")
                .into());
            }
            Some(t.to_string())
        }
    };
    Ok(Actor::Checked {
        caller,
        policy: api.access.clone(),
        origin: Origin::new(RequestSource::Portal, ticket),
    })
}

/// A refusal as 403 problem+json; also logged and counted.
pub(crate) fn forbidden(api: &Api, denied: Denied) -> ApiProblem {
    tracing::warn!(
        principal = %denied.principal,
        action = denied.action,
        application = %denied.application,
        "request refused by the access policy"
    );
    api.emf
        .emit(&[], &[Metric::count("AccessDenied", 1.0)], &[]);
    let adopt = denied.action == Action::Adopt.as_str();
    let fix = if adopt {
        format!("Ask {} to adopt it.", denied.who_may)
    } else {
        format!(
            "Ask {} to do it, or to name a group you are in as the application's owner group.",
            denied.who_may
        )
    };
    let problem = ApiProblem::new(Kind::Forbidden, denied.to_string()).fix(fix);
    if adopt {
        // `application` is the namespace asked for, not a saga.
        problem
    } else {
        problem.saga(denied.application)
    }
}

/// The root saga of `record`'s application (itself for an onboard or adopt saga).
async fn root_of(api: &Api, record: &SagaRecord) -> Result<Option<SagaRecord>, ApiProblem> {
    match &record.parent {
        None => Ok(Some(record.clone())),
        Some(parent) => api
            .onboarding
            .store
            .get(parent)
            .await
            .map_err(ApiProblem::store),
    }
}

/// May `caller` do `action` to the saga `record` (judged by its application's owners)?
pub(crate) async fn authorize(
    api: &Api,
    caller: &Caller,
    record: &SagaRecord,
    action: Action,
) -> Result<Grant, Box<ApiProblem>> {
    let owners = match root_of(api, record).await? {
        Some(root) => Owners::of(&root),
        // A lifecycle saga whose application record is gone: only administrators.
        None => Owners {
            principal: None,
            group: None,
        },
    };
    api.access
        .decide(caller, &record.id, &owners, action)
        .map_err(|d| Box::new(forbidden(api, d)))
}

/// Saga `id` and the grant for `action` on it: 404 when there is no such saga, 403 when the
/// caller may not.
pub(crate) async fn saga_for(
    api: &Api,
    caller: &Caller,
    id: &str,
    action: Action,
) -> Result<(SagaRecord, Grant), Box<ApiProblem>> {
    let record = api
        .onboarding
        .store
        .get(id)
        .await
        .map_err(ApiProblem::store)?
        .ok_or_else(|| {
            ApiProblem::new(Kind::NotFound, format!("saga {id} does not exist"))
                .fix("Use the sagaId returned by POST /applications.")
        })?;
    let grant = authorize(api, caller, &record, action).await?;
    Ok((record, grant))
}

/// Keeps the sagas of a listing the caller may read; remembers each application's owners so a
/// page of one application's sagas reads its root once.
pub(crate) struct ReadFilter<'a> {
    api: &'a Api,
    caller: &'a Caller,
    admin: bool,
    owners: HashMap<String, Owners>,
}

impl<'a> ReadFilter<'a> {
    pub(crate) fn new(api: &'a Api, caller: &'a Caller) -> Self {
        ReadFilter {
            api,
            caller,
            admin: api.access.admin_rule(caller).is_some(),
            owners: HashMap::new(),
        }
    }

    /// Administrators see everything; everyone else what they own.
    pub(crate) fn sees_everything(&self) -> bool {
        self.admin
    }

    pub(crate) async fn may_read(&mut self, record: &SagaRecord) -> Result<bool, ApiProblem> {
        if self.admin {
            return Ok(true);
        }
        let root_id = record.parent.clone().unwrap_or_else(|| record.id.clone());
        if !self.owners.contains_key(&root_id) {
            let owners = match root_of(self.api, record).await? {
                Some(root) => Owners::of(&root),
                None => Owners {
                    principal: None,
                    group: None,
                },
            };
            self.owners.insert(root_id.clone(), owners);
        }
        let Some(owners) = self.owners.get(&root_id) else {
            return Ok(false);
        };
        Ok(self
            .api
            .access
            .decide(self.caller, &record.id, owners, Action::Read)
            .is_ok())
    }
}
