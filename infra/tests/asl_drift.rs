//! `infra/statemachine/` holds exactly what `onboard_core::asl` exports from the saga
//! definitions: a changed step, fan-out, retry policy or a new saga kind fails here until
//! `cargo run -p onboard-cli -- export-asl` is run and the files are committed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use onboard_core::asl;
use onboard_infra::workspace_root;

#[test]
fn checked_in_state_machines_match_the_saga_definitions() {
    let dir = workspace_root().join("infra/statemachine");
    let docs = asl::exported();
    assert!(!docs.is_empty());
    let mut problems = Vec::new();
    for doc in &docs {
        let path = dir.join(&doc.file_name);
        match std::fs::read_to_string(&path) {
            Err(e) => problems.push(format!("{}: {e}", path.display())),
            Ok(text) => {
                let on_disk: serde_json::Value = serde_json::from_str(&text).unwrap();
                if on_disk != doc.definition {
                    problems.push(format!(
                        "{} differs from the {} saga",
                        path.display(),
                        doc.kind
                    ));
                }
            }
        }
    }
    // No stale file of a saga kind that no longer exists.
    let expected: BTreeSet<String> = docs.iter().map(|d| d.file_name.clone()).collect();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.ends_with(".asl.json") && !expected.contains(&name) {
            problems.push(format!("{name} is exported by no saga definition"));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\nrun `cargo run -p onboard-cli -- export-asl` and commit infra/statemachine/",
        problems.join("\n")
    );
}

#[test]
fn the_template_deploys_every_exported_state_machine() {
    let template = std::fs::read_to_string(workspace_root().join("infra/template.yaml")).unwrap();
    for doc in asl::exported() {
        assert!(
            template.contains(&format!("DefinitionUri: statemachine/{}", doc.file_name)),
            "infra/template.yaml has no state machine for {}",
            doc.file_name
        );
        assert!(doc
            .definition
            .to_string()
            .contains(asl::STEP_HANDLER_PLACEHOLDER));
    }
    assert!(template.contains("StepHandlerArn: !GetAtt StepHandlerFunction.Arn"));
}
