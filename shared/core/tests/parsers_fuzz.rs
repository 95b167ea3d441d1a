//! Property tests of every core parser that takes outside input (issue 15, fuzzing): spec and
//! edit bodies, queue messages and stored saga records. Whatever the bytes, a parser returns a
//! value or a clear error — never a panic — and every refusal names the field and its fix.
//!
//! Inputs are arbitrary bytes, arbitrary JSON, and (the interesting part) a valid document with
//! one member replaced, removed or added, so the search reaches validation and not only the
//! JSON syntax check.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use onboard_core::lifecycle::service::parse_edit;
use onboard_core::record::SagaRecord;
use onboard_core::service::RunSagaMessage;
use onboard_core::spec::parse_spec;
use onboard_core::validation::ValidationErrors;
use proptest::prelude::*;
use serde_json::{json, Value};

const SPEC: &str = include_str!("../../../examples/crm-panel.json");

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        Just(json!("https://crm.example.com/agent")),
        Just(json!("10000000-0000-4000-8000-000000000001")),
        Just(json!("x".repeat(300))),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `base` with one top-level member replaced by `value`, removed (`value` null), or an unknown
/// member added.
fn mutated(base: &Value, key_index: usize, value: Value, add_unknown: bool) -> Value {
    let mut doc = base.clone();
    if let Some(obj) = doc.as_object_mut() {
        if add_unknown {
            obj.insert("unexpectedMember".into(), value);
        } else {
            let keys: Vec<String> = obj.keys().cloned().collect();
            let key = &keys[key_index % keys.len()];
            if value.is_null() {
                obj.remove(key);
            } else {
                obj.insert(key.clone(), value);
            }
        }
    }
    doc
}

fn assert_clear(errors: &ValidationErrors) {
    assert!(!errors.problems.is_empty(), "a refusal lists its problems");
    for p in &errors.problems {
        assert!(!p.field.is_empty(), "{p:?}");
        assert!(!p.problem.trim().is_empty(), "{p:?}");
        assert!(
            !p.fix.trim().is_empty(),
            "every problem says how to fix it: {p:?}"
        );
    }
}

fn spec_round(bytes: &[u8]) {
    match parse_spec(bytes) {
        Ok(spec) => {
            if let Err(errors) = spec.validate() {
                assert_clear(&errors);
            }
        }
        Err(errors) => assert_clear(&errors),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn spec_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        spec_round(&bytes);
    }

    #[test]
    fn spec_json_never_panics(value in any_json()) {
        spec_round(value.to_string().as_bytes());
    }

    #[test]
    fn a_spec_with_one_member_changed_is_accepted_or_refused_clearly(
        key in 0usize..32,
        value in any_json(),
        add in any::<bool>(),
    ) {
        let base: Value = serde_json::from_str(SPEC).expect("the example parses");
        spec_round(mutated(&base, key, value, add).to_string().as_bytes());
    }

    #[test]
    fn edit_bodies_never_panic(value in any_json(), bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        for body in [value.to_string().into_bytes(), bytes] {
            if let Err(errors) = parse_edit(&body) {
                assert_clear(&errors);
            }
        }
    }

    #[test]
    fn queue_messages_never_panic(value in any_json(), bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        let _ = serde_json::from_str::<RunSagaMessage>(&value.to_string());
        let _ = serde_json::from_slice::<RunSagaMessage>(&bytes);
        let message = json!({"sagaId": value.clone(), "namespace": "n", "action": "run"});
        let _ = serde_json::from_value::<RunSagaMessage>(message);
    }

    #[test]
    fn stored_records_never_panic(key in 0usize..32, value in any_json(), add in any::<bool>()) {
        let record = onboard_core::testkit::store_contract::sample_record("sg-fuzz", "ns.example.com");
        let base = serde_json::to_value(&record).expect("a record serializes");
        let doc = mutated(&base, key, value, add);
        if let Ok(parsed) = serde_json::from_value::<SagaRecord>(doc) {
            // What the views and the lifecycle read from a record must not panic either.
            let _ = onboard_core::service::SagaView::from_record(&parsed);
            let _ = onboard_core::lifecycle::current_state(&parsed);
        }
    }
}

#[test]
fn the_unmutated_example_is_valid() {
    let spec = parse_spec(SPEC.as_bytes()).expect("the example parses");
    spec.validate().expect("the example is valid");
}
