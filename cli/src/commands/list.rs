//! `onboard list [--status S] [--kind K] [--application APP] [--namespace NS] [--requester P]`:
//! recorded sagas, oldest first as the API lists them, the most recent `--limit` of them.

use onboard_core::history::RequestedBy;
use onboard_core::record::{Millis, SagaRecord, SagaStatus};
use onboard_core::store::SagaStore;
use serde::Serialize;
use std::fmt::Write as _;

use crate::args::{ListArgs, OutputFormat};
use crate::error::CliError;
use crate::render;
use crate::targets::Context;

/// The saga kinds a record can have, for `--kind`.
const KINDS: [&str; 5] = ["onboard", "change", "fix", "offboard", "adopt"];

/// Every saga in `statuses`, newest created first (the store lists per status, oldest update
/// first, so "newest" needs the whole listing).
pub async fn sagas(
    store: &dyn SagaStore,
    statuses: &[SagaStatus],
) -> Result<Vec<SagaRecord>, CliError> {
    let mut all = onboard_core::store::every_saga(store, statuses, |_| true).await?;
    all.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| b.updated_at.cmp(&a.updated_at))
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(all)
}

/// One row of the listing.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Row<'a> {
    id: &'a str,
    kind: &'a str,
    /// A change saga's operation: edit, pause, resume or fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    operation: Option<&'a str>,
    namespace: &'a str,
    status: SagaStatus,
    /// The application a lifecycle saga changes (absent on an onboard or adopt saga).
    #[serde(skip_serializing_if = "Option::is_none")]
    application: Option<&'a str>,
    /// Who asked (the API's listing calls it the same).
    #[serde(skip_serializing_if = "Option::is_none")]
    requested_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ticket_id: Option<String>,
    created_at: Millis,
    updated_at: Millis,
}

#[derive(Serialize)]
struct Listing<'a> {
    sagas: Vec<Row<'a>>,
}

fn parse_status(s: &str) -> Result<SagaStatus, CliError> {
    let wanted = s.trim().to_ascii_uppercase().replace('-', "_");
    SagaStatus::parse(&wanted).ok_or_else(|| CliError::Config {
        message: format!("{s:?} is not a saga status"),
        fix: format!(
            "Use one of: {}.",
            SagaStatus::ALL.map(SagaStatus::as_str).join(", ")
        ),
    })
}

fn parse_kind(k: &str) -> Result<String, CliError> {
    let wanted = k.trim().to_ascii_lowercase();
    if KINDS.contains(&wanted.as_str()) {
        Ok(wanted)
    } else {
        Err(CliError::Config {
            message: format!("{k:?} is not a saga kind"),
            fix: format!("Use one of: {}.", KINDS.join(", ")),
        })
    }
}

/// The command line's filters, checked before anything is read.
struct Filter {
    kind: Option<String>,
    application: Option<String>,
    namespace: Option<String>,
    requester: Option<String>,
}

impl Filter {
    fn keeps(&self, r: &SagaRecord, by: &RequestedBy) -> bool {
        self.kind.as_ref().is_none_or(|k| &r.kind == k)
            && self
                .application
                .as_ref()
                .is_none_or(|a| &r.id == a || r.parent.as_ref() == Some(a))
            && self.namespace.as_ref().is_none_or(|n| &r.namespace == n)
            && self
                .requester
                .as_ref()
                .is_none_or(|p| by.principal.as_ref() == Some(p))
    }
}

pub async fn run(ctx: &Context, args: &ListArgs) -> Result<u8, CliError> {
    let statuses = match &args.status {
        Some(s) => vec![parse_status(s)?],
        None => SagaStatus::ALL.to_vec(),
    };
    let filter = Filter {
        kind: args.kind.as_deref().map(parse_kind).transpose()?,
        application: args.application.clone(),
        namespace: args.namespace.clone(),
        requester: args.requester.clone(),
    };
    let records = match ctx.store(false).await? {
        Some(stores) => sagas(stores.store.as_ref(), &statuses).await?,
        None => Vec::new(),
    };
    let kept: Vec<(&SagaRecord, RequestedBy)> = records
        .iter()
        .map(|r| (r, RequestedBy::of(r)))
        .filter(|(r, by)| filter.keeps(r, by))
        .collect();
    let mut rows: Vec<Row<'_>> = kept
        .iter()
        .take(args.limit)
        .map(|(r, by)| Row {
            id: &r.id,
            kind: &r.kind,
            operation: r.input.get("operation").and_then(serde_json::Value::as_str),
            namespace: &r.namespace,
            status: r.status,
            application: r.parent.as_deref(),
            requested_by: by.principal.clone(),
            ticket_id: by.ticket_id.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
        .collect();
    rows.reverse();
    match ctx.global.output {
        OutputFormat::Json => render::print_json(&Listing { sagas: rows })?,
        OutputFormat::Text if rows.is_empty() && records.is_empty() => {
            render::print_text("No sagas recorded.\n")?
        }
        OutputFormat::Text if rows.is_empty() => {
            render::print_text("No saga matches these filters.\n")?
        }
        OutputFormat::Text => render::print_text(&table(&rows, kept.len()))?,
    }
    Ok(0)
}

fn table(rows: &[Row<'_>], matching: usize) -> String {
    let mut s = String::new();
    if matching > rows.len() {
        let _ = writeln!(s, "({} older; raise --limit)", matching - rows.len());
    }
    let who = |r: &Row<'_>| {
        let principal = r.requested_by.as_deref().unwrap_or("-");
        match &r.ticket_id {
            Some(t) => format!("{principal} ({t})"),
            None => principal.to_string(),
        }
    };
    let width = rows
        .iter()
        .map(|r| who(r).chars().count())
        .max()
        .unwrap_or(0)
        .max(9);
    let kind = |r: &Row<'_>| match r.operation {
        Some(op) if op != r.kind => format!("{}/{op}", r.kind),
        _ => r.kind.to_string(),
    };
    let _ = writeln!(
        s,
        "{:<35}  {:<13}  {:<15}  {:<20}  {:<width$}  NAMESPACE",
        "ID", "KIND", "STATUS", "CREATED (UTC)", "REQUESTER"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:<35}  {:<13}  {:<15}  {:<20}  {:<width$}  {}",
            r.id,
            kind(r),
            r.status.as_str(),
            render::utc(r.created_at),
            who(r),
            r.namespace
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_case_insensitively() {
        assert_eq!(
            parse_status("rolled_back").ok(),
            Some(SagaStatus::RolledBack)
        );
        assert_eq!(
            parse_status("Rollback-Failed").ok(),
            Some(SagaStatus::RollbackFailed)
        );
        assert_eq!(parse_status("refused").ok(), Some(SagaStatus::Refused));
        assert!(parse_status("done").is_err());
    }

    #[test]
    fn kinds_are_checked() {
        assert_eq!(parse_kind("Change").ok().as_deref(), Some("change"));
        assert!(parse_kind("edit").is_err());
    }
}
