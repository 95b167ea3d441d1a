//! `onboard export-asl [--out DIR] [--check]`: write each saga definition as Amazon States
//! Language (`<kind>.asl.json`, [`onboard_core::asl`]) for a Step Functions state machine that
//! drives the `onboard-step` Lambda. The step handler's ARN is left as the `${StepHandlerArn}`
//! placeholder, which SAM's `DefinitionSubstitutions` fills (`infra/template.yaml`).

use std::path::Path;

use onboard_core::asl::{self, AslDocument};

use crate::args::{ExportAslArgs, OutputFormat};
use crate::error::{exit, CliError};
use crate::render;
use crate::targets::Context;

/// Whether `path` already holds exactly `doc` (compared as JSON, so formatting is free).
fn up_to_date(path: &Path, doc: &AslDocument) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|v| v == doc.definition)
}

pub fn run(ctx: &Context, args: &ExportAslArgs) -> Result<u8, CliError> {
    let docs = asl::exported();
    let mut stale = Vec::new();
    let mut written = Vec::new();
    if !args.check {
        std::fs::create_dir_all(&args.out)?;
    }
    for doc in &docs {
        let path = args.out.join(&doc.file_name);
        if args.check {
            if !up_to_date(&path, doc) {
                stale.push(path.display().to_string());
            }
        } else {
            std::fs::write(&path, asl::to_file_text(doc))?;
            written.push(path.display().to_string());
        }
    }
    match ctx.global.output {
        OutputFormat::Json => {
            let report = serde_json::json!({
                "written": written,
                "stale": stale,
                "kinds": docs.iter().map(|d| d.kind.clone()).collect::<Vec<_>>(),
            });
            render::print_text(&format!("{report}\n"))?;
        }
        OutputFormat::Text => {
            for path in &written {
                render::print_text(&format!("wrote {path}\n"))?;
            }
            for path in &stale {
                eprintln!("{path} differs from the saga definition; run `onboard export-asl`");
            }
            if args.check && stale.is_empty() {
                render::print_text(&format!(
                    "{} state machine(s) up to date in {}\n",
                    docs.len(),
                    args.out.display()
                ))?;
            }
        }
    }
    Ok(if stale.is_empty() {
        exit::OK
    } else {
        exit::OTHER
    })
}
