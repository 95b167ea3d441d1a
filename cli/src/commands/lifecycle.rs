//! What the day-two commands (`edit`, `pause`, `resume`, `offboard`, `drift --fix`, `adopt`)
//! share: open the saga log and the world, submit the request through the core's lifecycle use
//! cases, then run the saga it recorded here, with the same live progress and exit codes as
//! `apply`.

use std::sync::Arc;

use onboard_core::access::{Actor, Origin};
use onboard_core::clock::SystemClock;
use onboard_core::idempotency::IdempotencyConfig;
use onboard_core::lifecycle::service::{Lifecycle, LifecycleError, Started};
use onboard_core::record::SagaRecord;
use onboard_core::service::NoQueue;
use onboard_core::spec::RequestSource;
use onboard_core::store::SagaStore;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::args::{OutputFormat, RequestArgs};
use crate::commands::drive::{self, Action, Drive};
use crate::error::CliError;
use crate::progress::ObservedStore;
use crate::render;
use crate::targets::{Context, World};

/// The saga log (observed, for progress), the world and the use cases over them.
pub struct Session {
    pub store: Arc<dyn SagaStore>,
    pub feed: UnboundedReceiver<SagaRecord>,
    pub world: World,
    pub lifecycle: Lifecycle,
    /// The saga log's file or table, for messages.
    pub location: String,
}

/// Open the saga log and start the world. `create` is false for commands on an existing
/// application: without a saga log there is nothing to change (`missing` names it).
pub async fn open(ctx: &Context, create: bool, missing: &str) -> Result<Session, CliError> {
    let stores = ctx
        .store(create)
        .await?
        .ok_or_else(|| CliError::NotFound(missing.to_string()))?;
    let world = ctx.world(stores.locks.clone()).await?;
    let (observed, feed) = ObservedStore::new(stores.store.clone());
    let store: Arc<dyn SagaStore> = Arc::new(observed);
    let lifecycle = Lifecycle {
        store: store.clone(),
        clock: Arc::new(SystemClock),
        // The saga runs right here, as `apply` runs its own.
        queue: Arc::new(NoQueue),
        idempotency: IdempotencyConfig::default(),
    };
    Ok(Session {
        store,
        feed,
        world,
        lifecycle,
        location: stores.location,
    })
}

/// A new saga id, in the same shape as ids derived from idempotency keys.
pub fn new_saga_id() -> String {
    format!("sg-{:032x}", fastrand::u128(..))
}

/// Who is asking, for the saga's audit trail: `--requester`, else the local user; through the
/// CLI, under `--ticket` when given.
pub fn requester(request: &RequestArgs) -> Actor {
    let principal = request.requester.clone().unwrap_or_else(|| {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .unwrap_or_else(|_| "unknown".into());
        format!("cli:{user}")
    });
    Actor::from(principal).with_origin(Origin::new(RequestSource::Cli, request.ticket.clone()))
}

/// A refused lifecycle request as the CLI's error; `what` names the request for an invalid one.
pub fn refused(e: LifecycleError, what: &str) -> CliError {
    match e {
        LifecycleError::NotFound(id) => CliError::NotFound(id),
        LifecycleError::State(s) => CliError::Application(s),
        LifecycleError::Invalid(errors) => CliError::InvalidRequest {
            what: what.to_string(),
            errors,
        },
        LifecycleError::Refused(e) => CliError::Submit(e),
        LifecycleError::Store(e) => CliError::Store(e),
        // The CLI acts as the local operator and is never checked; kept total.
        LifecycleError::Forbidden(d) => CliError::Config {
            message: d.to_string(),
            fix: format!("Ask {}.", d.who_may),
        },
        // The in-process queue never refuses; kept total for other queues.
        LifecycleError::NotQueued { saga_id, error } => CliError::Config {
            message: format!("saga {saga_id} was recorded but not queued: {error}"),
            fix: format!("Run `onboard retry {saga_id}`."),
        },
    }
}

/// Stop the sandbox (saving its world) when a request was refused before any saga ran.
pub async fn close(session: Session, ctx: &Context) {
    let mut world = session.world;
    if let Some(sandbox) = world.sandbox.take() {
        sandbox.save_or_warn(&ctx.global.state_dir);
        sandbox.shutdown().await;
    }
}

/// Announce the accepted request (text output), then run its saga and report the end state.
pub async fn run_started(
    ctx: &Context,
    session: Session,
    started: &Started,
    what: &str,
) -> Result<u8, CliError> {
    if ctx.global.output == OutputFormat::Text {
        let mut head = String::new();
        if !started.created {
            head.push_str(&format!(
                "This request was already submitted as saga {}; showing that saga.\n",
                started.saga_id
            ));
        }
        head.push_str(&format!(
            "{what} (namespace {}): {} saga {} of application {}, saga log in {}\n",
            started.namespace,
            started.operation,
            started.saga_id,
            started.application_id,
            session.location
        ));
        render::print_text(&head)?;
    }
    let run = Drive {
        store: session.store,
        feed: session.feed,
        world: session.world,
    };
    drive::drive(ctx, run, &started.saga_id, Action::Run, &[]).await
}

/// Run the saga of an accepted request, or stop the world and report a refused one.
pub async fn finish(
    ctx: &Context,
    session: Session,
    result: Result<Started, LifecycleError>,
    what: &str,
    request: &str,
) -> Result<u8, CliError> {
    match result {
        Ok(started) => run_started(ctx, session, &started, what).await,
        Err(e) => {
            close(session, ctx).await;
            Err(refused(e, request))
        }
    }
}
