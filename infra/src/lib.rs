//! Checks that keep `infra/` honest with the code (run by `cargo test -p onboard-infra`):
//!
//! * [`code_actions`]: the IAM actions each Lambda function's code can call, derived from the
//!   Rust source (SDK operation calls of the adapters its `main` builds);
//! * [`template`]: what `infra/template.yaml` grants each function's role.
//!
//! `tests/least_privilege.rs` compares the two (none missing, none unused, narrow resources);
//! `tests/asl_drift.rs` compares `infra/statemachine/` with `onboard_core::asl`.

pub mod code_actions;
pub mod template;

use std::path::PathBuf;

/// The workspace root (this crate lives in `infra/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".."))
}
