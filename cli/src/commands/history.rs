//! `onboard history ID`: the application's audit trail from the saga log — its onboard (or
//! adopt) saga and every edit, pause, resume, drift fix and offboard on it, oldest first: when,
//! what, how it ended, who asked under which ticket, and what changed (before → after).

use std::fmt::Write as _;

use onboard_core::history::{self, FieldChange, History, HistoryEntry};
use serde_json::Value;

use crate::args::{HistoryArgs, OutputFormat};
use crate::commands::lifecycle;
use crate::error::CliError;
use crate::render;
use crate::targets::Context;

/// Longest value shown in full; a long description would bury the rest of the entry.
const MAX_VALUE: usize = 100;

pub async fn run(ctx: &Context, args: &HistoryArgs) -> Result<u8, CliError> {
    let Some(stores) = ctx.store(false).await? else {
        return Err(CliError::NotFound(args.id.clone()));
    };
    let root = stores
        .store
        .get(&args.id)
        .await?
        .ok_or_else(|| CliError::NotFound(args.id.clone()))?;
    let trail = history::load(stores.store.as_ref(), &root)
        .await
        .map_err(|e| lifecycle::refused(e, "the application id"))?;
    match ctx.global.output {
        OutputFormat::Json => render::print_json(&trail)?,
        OutputFormat::Text => render::print_text(&text(&trail))?,
    }
    Ok(0)
}

/// One block per saga, oldest first.
pub fn text(trail: &History) -> String {
    let mut s = format!(
        "History of application {} (namespace {}): {} saga(s), oldest first\n",
        trail.application_id,
        trail.namespace,
        trail.entries.len()
    );
    for e in &trail.entries {
        s.push('\n');
        entry(&mut s, e);
    }
    s
}

fn entry(s: &mut String, e: &HistoryEntry) {
    let _ = writeln!(
        s,
        "{}  {}  {}  saga {}",
        e.created_at, e.operation, e.outcome, e.saga_id
    );
    let mut who = e.requester.clone().unwrap_or_else(|| "unknown".into());
    if let Some(source) = e.source.and_then(|v| serde_json::to_value(v).ok()) {
        if let Some(source) = source.as_str() {
            let _ = write!(who, " via {source}");
        }
    }
    let _ = writeln!(
        s,
        "  by {who}, ticket {}",
        e.ticket_id.as_deref().unwrap_or("none")
    );
    if let Some(done) = &e.finished_at {
        let _ = writeln!(s, "  finished {done}");
    }
    if e.created {
        let _ = writeln!(s, "  created with");
    }
    for f in &e.fields {
        let _ = writeln!(s, "  {}", field(f, e.created));
    }
    for i in &e.instances {
        let name = i.alias.as_deref().unwrap_or(&i.instance);
        let _ = writeln!(s, "  instance {name}: {}", i.change.as_str());
    }
    for p in &e.profiles {
        let name = p.alias.as_deref().unwrap_or(&p.instance);
        let mut parts: Vec<String> = p.added.iter().map(|x| format!("+{x}")).collect();
        parts.extend(p.removed.iter().map(|x| format!("-{x}")));
        let _ = writeln!(s, "  profiles on {name}: {}", parts.join(" "));
    }
    let changed = !(e.fields.is_empty() && e.instances.is_empty() && e.profiles.is_empty());
    if !changed && e.operation == "fix" {
        let _ = writeln!(s, "  re-applied the recorded state");
    }
}

/// `field: before → after`, or `field: value` for a created application.
fn field(f: &FieldChange, created: bool) -> String {
    let after = value(f.after.as_ref());
    if created {
        format!("{}: {after}", f.field)
    } else {
        format!("{}: {} → {after}", f.field, value(f.before.as_ref()))
    }
}

fn value(v: Option<&Value>) -> String {
    let full = match v {
        None | Some(Value::Null) => "(none)".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    };
    if full.chars().count() > MAX_VALUE {
        let cut: String = full.chars().take(MAX_VALUE - 1).collect();
        format!("{cut}…")
    } else {
        full
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_read_as_text_and_long_ones_are_cut() {
        assert_eq!(value(None), "(none)");
        assert_eq!(value(Some(&json!(["a", "b"]))), "a, b");
        assert_eq!(value(Some(&json!(30000))), "30000");
        let long = value(Some(&json!("x".repeat(300))));
        assert_eq!(long.chars().count(), MAX_VALUE);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn a_changed_field_reads_before_then_after() {
        let f = FieldChange {
            field: "displayName".into(),
            before: Some(json!("Old")),
            after: Some(json!("New")),
        };
        assert_eq!(field(&f, false), "displayName: Old → New");
        assert_eq!(field(&f, true), "displayName: New");
    }
}
