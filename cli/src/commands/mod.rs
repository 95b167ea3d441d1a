//! One module per subcommand, plus what the saga-running commands share (`drive`, and
//! `lifecycle` for the day-two ones) and spec loading.

pub mod adopt;
pub mod apply;
pub mod check_url;
pub mod completions;
pub mod drift;
pub mod drive;
pub mod edit;
pub mod export_asl;
pub mod history;
pub mod lifecycle;
pub mod list;
pub mod offboard;
pub mod pause;
pub mod plan;
pub mod reapply;
pub mod retry;
pub mod serve;
pub mod serve_guard;
pub mod status;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use onboard_core::onboard::instance_aliases;
use onboard_core::record::SagaRecord;
use onboard_core::spec::{parse_spec, ApplicationSpec};
use onboard_core::store::SagaStore;
use onboard_core::validation::Validated;

use crate::error::CliError;

/// Read, parse and validate a spec; `-` reads standard input. Every problem comes back at once.
pub fn load_spec(path: &Path) -> Result<(ApplicationSpec, Validated), CliError> {
    let bytes = if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|source| CliError::ReadSpec {
                path: path.to_path_buf(),
                source,
            })?;
        buf
    } else {
        std::fs::read(path).map_err(|source| CliError::ReadSpec {
            path: path.to_path_buf(),
            source,
        })?
    };
    let source_name = if path == Path::new("-") {
        "on standard input".to_string()
    } else {
        path.display().to_string()
    };
    let spec = parse_spec(&bytes).map_err(|errors| CliError::InvalidSpec {
        source_name: source_name.clone(),
        errors,
    })?;
    let validated = spec.validate().map_err(|errors| CliError::InvalidSpec {
        source_name,
        errors,
    })?;
    Ok((spec, validated))
}

/// Instance id → alias for a saga: what its own `validate` recorded, else (a day-two saga) what
/// its application's onboarding recorded. Best effort: an unreadable parent gives ids.
pub async fn recorded_aliases(
    store: &dyn SagaStore,
    record: &SagaRecord,
) -> BTreeMap<String, String> {
    let mut aliases = instance_aliases(record);
    if let Some(parent) = &record.parent {
        if let Ok(Some(root)) = store.get(parent).await {
            for (id, alias) in instance_aliases(&root) {
                aliases.entry(id).or_insert(alias);
            }
        }
    }
    aliases
}
