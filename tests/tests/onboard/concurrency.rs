//! Concurrent sagas: different applications on the same instances lose no statement and no
//! profile entry; two sagas for one namespace end with one winner and a loser that touched
//! nothing of the winner's.

use std::sync::Arc;

use onboard_core::clock::SystemClock;
use onboard_core::error::ErrorKind;
use onboard_core::idempotency::{self, IdempotencyConfig, SubmitError};
use onboard_core::record::SagaStatus;
use onboard_core::store::SagaStore;
use onboard_integration_tests::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_applications_on_the_same_instances_at_once_lose_nothing() {
    let h = Harness::start().await;
    let pristine = h.dump();
    let all = instances(SLR_INSTANCES);
    let specs = [
        spec(&all),
        spec_for("Knowledge Base", "https://kb.example.com/", &all),
        spec_for("Agent Tools", "https://tools.example.com/desk", &all),
    ];
    for round in 0..3 {
        h.sandbox().reset().unwrap();
        let mut ids = Vec::new();
        for s in &specs {
            ids.push(h.submit(s).await);
        }
        let (e1, e2, e3) = (h.engine("w1"), h.engine("w2"), h.engine("w3"));
        let (r1, r2, r3) = tokio::join!(
            run_to_end(&e1, &ids[0]),
            run_to_end(&e2, &ids[1]),
            run_to_end(&e3, &ids[2])
        );
        assert_eq!([r1, r2, r3], [SagaStatus::Succeeded; 3], "round {round}");
        let mut dump = h.dump();
        for s in &specs {
            strip_onboarding(
                &mut dump,
                &spec_namespace(s),
                &spec_instances(s),
                &spec_grants(s),
            );
        }
        assert_same(&pristine, &dump, "every statement and entry of all three");
    }
}

fn same_namespace_other_app(instances: &[String]) -> Value {
    let mut other = spec(instances);
    other["displayName"] = json!("Acme CRM duplicate request");
    other["description"] = json!("submitted by someone else");
    other
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_submission_for_a_busy_namespace_is_refused() {
    let h = Harness::start().await;
    let pristine = h.dump();
    let a = spec(&instances(2));
    let b = same_namespace_other_app(&instances(2));
    let (ra, rb) = (h.record_for(&a), h.record_for(&b));
    let (ha, hb) = (
        ra.payload_hash.clone().unwrap(),
        rb.payload_hash.clone().unwrap(),
    );
    let cfg = IdempotencyConfig::default();
    let store: Arc<dyn SagaStore> = h.store.clone();
    let (sa, sb) = tokio::join!(
        idempotency::submit(
            store.as_ref(),
            &SystemClock,
            &cfg,
            ra,
            Some("TICKET-A"),
            &ha
        ),
        idempotency::submit(
            store.as_ref(),
            &SystemClock,
            &cfg,
            rb,
            Some("TICKET-B"),
            &hb
        ),
    );
    let (winner, winner_spec, loser) = match (sa, sb) {
        (Ok(w), Err(l)) => (w, &a, l),
        (Err(l), Ok(w)) => (w, &b, l),
        other => panic!("exactly one submission wins: {other:?}"),
    };
    assert!(winner.created);
    assert!(
        matches!(loser, SubmitError::NamespaceBusy { ref saga_id, .. } if *saga_id == winner.saga_id),
        "{loser:?}"
    );
    assert_eq!(
        run_to_end(&h.engine("w1"), &winner.saga_id).await,
        SagaStatus::Succeeded
    );
    assert_onboarded(&pristine, &h.dump(), winner_spec);
}

/// Two records for one namespace exist at once (two deployments with separate tables, or a
/// guard bypassed): both run, exactly one wins, the loser is refused or rolls back as a
/// conflict and leaves the winner's application alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sagas_racing_for_one_namespace_end_with_one_winner() {
    let h = Harness::start().await;
    let other_store = new_store().await;
    let pristine = h.dump();
    let a = spec(&instances(3));
    let b = same_namespace_other_app(&instances(3));
    for round in 0..4 {
        h.sandbox().reset().unwrap();
        let ida = h.submit(&a).await;
        let idb = h.submit_to(other_store.as_ref(), &b).await;
        let (ea, eb) = (h.engine("wa"), h.engine_on(other_store.clone(), "wb"));
        let (sa, sb) = tokio::join!(run_to_end(&ea, &ida), run_to_end(&eb, &idb));
        // The loser is refused by its preflight when the winner's application already exists
        // by then, or rolls back when it gets as far as CreateApplication: both leave nothing.
        let lost = |s: SagaStatus| matches!(s, SagaStatus::RolledBack | SagaStatus::Refused);
        let (winner_id, winner_spec, loser) = match (sa, sb) {
            (SagaStatus::Succeeded, l) if lost(l) => (
                ida.clone(),
                &a,
                other_store.get(&idb).await.unwrap().unwrap(),
            ),
            (l, SagaStatus::Succeeded) if lost(l) => (idb.clone(), &b, h.record(&ida).await),
            other => panic!("round {round}: one winner, one loser: {other:?}"),
        };
        let cause = loser.cause.clone().unwrap();
        assert_eq!(cause.kind, ErrorKind::Conflict, "round {round}: {cause:?}");
        assert!(
            ["NamespaceTaken", "DuplicateResourceException"].contains(&cause.code.as_str()),
            "round {round}: {cause:?}"
        );
        let dump = h.dump();
        let app = assert_onboarded(&pristine, &dump, winner_spec);
        let tags = &dump["applications"][app.app_id.as_str()]["tags"];
        assert_eq!(
            tags[onboard_core::onboard::SAGA_TAG],
            winner_id.as_str(),
            "round {round}: the winner's application survives"
        );
        assert_eq!(
            h.calls_named("DeleteApplication"),
            0,
            "round {round}: the loser deleted nothing"
        );
    }
}

/// After a saga onboarded a namespace, a new saga for it is a conflict that changes nothing.
#[tokio::test]
async fn a_later_saga_for_an_onboarded_namespace_is_a_conflict() {
    let h = Harness::start().await;
    let spec_a = spec(&instances(2));
    assert_eq!(h.onboard(&spec_a).await.status, SagaStatus::Succeeded);
    let onboarded = h.dump();
    let rec = h.onboard(&same_namespace_other_app(&instances(2))).await;
    assert_eq!(rec.status, SagaStatus::Refused);
    let cause = rec.cause.unwrap();
    assert_eq!(
        (cause.kind, cause.code.as_str()),
        (ErrorKind::Conflict, "NamespaceTaken")
    );
    assert_same(&onboarded, &h.dump(), "the first onboarding is intact");
}
