//! `onboard apply SPEC`: record the saga, run it here with live progress, report the end state.

use std::sync::Arc;

use onboard_core::clock::SystemClock;
use onboard_core::idempotency::IdempotencyConfig;
use onboard_core::service::{NoQueue, Onboarding, SubmitFailure};
use onboard_core::store::SagaStore;

use crate::args::{ApplyArgs, OutputFormat};
use crate::commands::drive::{self, Action, Drive};
use crate::commands::{load_spec, reapply};
use crate::error::CliError;
use crate::progress::ObservedStore;
use crate::render;
use crate::targets::Context;

/// A new saga id, in the same shape as ids derived from idempotency keys.
fn new_saga_id() -> String {
    format!("sg-{:032x}", fastrand::u128(..))
}

pub async fn run(ctx: &Context, args: &ApplyArgs) -> Result<u8, CliError> {
    // Validate before touching any store or service: an invalid spec changes nothing.
    let (spec, validated) = load_spec(&args.spec)?;
    let open = || async {
        ctx.store(true)
            .await?
            .ok_or_else(|| CliError::NoSagas(String::new()))
    };
    let mut stores = open().await?;
    // Applying the spec of an application this product already manages starts nothing. A
    // keyed request (--idempotency-key, or the spec's ticket) replays its first saga instead.
    let keyed = args.idempotency_key.is_some() || spec.requester.ticket_id.is_some();
    let managed = if keyed {
        None
    } else {
        reapply::managing(stores.store.as_ref(), &validated.namespace).await?
    };
    if let Some((app, state)) = managed {
        drop(stores);
        if let Some(code) = reapply::already_managed(ctx, &app, &state, &validated).await? {
            return Ok(code);
        }
        stores = open().await?;
    }
    let world = ctx.world(stores.locks.clone()).await?;
    let (observed, feed) = ObservedStore::new(stores.store.clone());
    let store: Arc<dyn SagaStore> = Arc::new(observed);
    let definition = Arc::new(world.tuning.definition());
    let onboarding = Onboarding {
        store: store.clone(),
        clock: Arc::new(SystemClock),
        queue: Arc::new(NoQueue),
        definition: definition.clone(),
        idempotency: IdempotencyConfig::default(),
    };
    let accepted = onboarding
        .submit(&spec, args.idempotency_key.as_deref(), new_saga_id)
        .await
        .map_err(|failure| match failure {
            SubmitFailure::Invalid(errors) => CliError::InvalidSpec {
                source_name: args.spec.display().to_string(),
                errors,
            },
            SubmitFailure::Refused(e) => CliError::Submit(e),
            SubmitFailure::NotQueued { saga_id, error } => CliError::Config {
                message: format!("saga {saga_id} was recorded but not queued: {error}"),
                fix: format!("Run `onboard retry {saga_id}`."),
            },
        })?;
    if ctx.global.output == OutputFormat::Text {
        let mut head = String::new();
        if !accepted.created {
            head.push_str(&format!(
                "This request was already submitted as saga {}; showing that saga.\n",
                accepted.saga_id
            ));
        }
        if !validated.warnings.is_empty() {
            head.push_str("warnings (onboarding goes ahead):\n");
            head.push_str(&render::problems(&validated.warnings));
        }
        head.push_str(&format!(
            "Onboarding \"{}\" (namespace {}) on {} instance(s), saga log in {}\n",
            spec.display_name,
            accepted.namespace,
            validated.instance_ids.len(),
            stores.location
        ));
        render::print_text(&head)?;
    }
    let run = Drive { store, feed, world };
    drive::drive(ctx, run, &accepted.saga_id, Action::Run, &accepted.warnings).await
}
