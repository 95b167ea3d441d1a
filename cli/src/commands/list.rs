//! `onboard list [--status S]`: recorded sagas, newest first.

use onboard_core::record::{Millis, SagaRecord, SagaStatus};
use onboard_core::store::SagaStore;
use serde::Serialize;
use std::fmt::Write as _;

use crate::args::{ListArgs, OutputFormat};
use crate::error::CliError;
use crate::render;
use crate::targets::Context;

/// Page size when walking the store's per-status listings.
const PAGE: usize = 100;

/// Every saga in `statuses`, newest created first. The store lists per status, oldest update
/// first, so "newest" needs the whole listing; fine for an operator's terminal.
pub async fn sagas(
    store: &dyn SagaStore,
    statuses: &[SagaStatus],
) -> Result<Vec<SagaRecord>, CliError> {
    let mut all = Vec::new();
    for status in statuses {
        let mut cursor = None;
        loop {
            let page = store.list_by_status(*status, PAGE, cursor).await?;
            all.extend(page.items);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
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
    namespace: &'a str,
    status: SagaStatus,
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

pub async fn run(ctx: &Context, args: &ListArgs) -> Result<u8, CliError> {
    let statuses = match &args.status {
        Some(s) => vec![parse_status(s)?],
        None => SagaStatus::ALL.to_vec(),
    };
    let records = match ctx.store(false).await? {
        Some(stores) => sagas(stores.store.as_ref(), &statuses).await?,
        None => Vec::new(),
    };
    let rows: Vec<Row<'_>> = records
        .iter()
        .take(args.limit)
        .map(|r| Row {
            id: &r.id,
            kind: &r.kind,
            namespace: &r.namespace,
            status: r.status,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
        .collect();
    match ctx.global.output {
        OutputFormat::Json => render::print_json(&Listing { sagas: rows })?,
        OutputFormat::Text if rows.is_empty() => render::print_text("No sagas recorded.\n")?,
        OutputFormat::Text => {
            let mut s = String::new();
            let _ = writeln!(
                s,
                "{:<35}  {:<15}  {:<20}  {:<30}",
                "ID", "STATUS", "CREATED (UTC)", "NAMESPACE"
            );
            for r in &rows {
                let _ = writeln!(
                    s,
                    "{:<35}  {:<15}  {:<20}  {}",
                    r.id,
                    r.status.as_str(),
                    render::utc(r.created_at),
                    r.namespace
                );
            }
            if records.len() > rows.len() {
                let _ = writeln!(s, "({} more; raise --limit)", records.len() - rows.len());
            }
            render::print_text(&s)?;
        }
    }
    Ok(0)
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
}
