//! Prints the IAM actions each Lambda binary's code can call, with the call sites — what
//! `infra/template.yaml` must grant. `cargo run -p onboard-infra --example code_actions [CRATE_DIR…]`
//! (default: every crate under `functions/` that has a `src/main.rs`).

use std::path::PathBuf;
use std::process::ExitCode;

use onboard_infra::code_actions::Analysis;
use onboard_infra::workspace_root;

fn main() -> ExitCode {
    let root = workspace_root();
    let analysis = match Analysis::load(&root) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut dirs: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    if dirs.is_empty() {
        let mut found: Vec<PathBuf> = std::fs::read_dir(root.join("functions"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        found.retain(|d| d.join("src/main.rs").exists());
        found.sort();
        dirs = found;
    }
    for dir in dirs {
        let dir = if dir.is_absolute() {
            dir
        } else {
            root.join(dir)
        };
        let Some(krate) = analysis.crate_at(&dir) else {
            eprintln!("error: {} is not a workspace crate", dir.display());
            return ExitCode::FAILURE;
        };
        let result = analysis
            .reachable_calls(&krate, &dir.join("src/main.rs"))
            .and_then(|calls| analysis.actions(&calls));
        match result {
            Ok(actions) => {
                println!("{krate}:");
                for (action, sites) in actions {
                    let sites: Vec<String> = sites.into_iter().collect();
                    println!("  {action:<50} {}", sites.join(", "));
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
