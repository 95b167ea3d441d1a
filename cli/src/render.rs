//! Rendering for people (aligned text) and scripts (`--output json`). Commands build values;
//! this module decides how they look, so text and JSON always say the same thing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;

use onboard_core::error::ErrorInfo;
use onboard_core::record::{node_key, LogEntry, Millis, NodeState, SagaStatus};
use onboard_core::service::SagaView;
use onboard_core::validation::Problem;
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::CliError;

/// Print one JSON document on stdout.
pub fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Output(std::io::Error::other(e)))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// Print text on stdout as is.
pub fn print_text(text: &str) -> Result<(), CliError> {
    print_bytes(text.as_bytes())
}

/// Print bytes on stdout as they are.
pub fn print_bytes(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

/// An error as the JSON document scripts get on stdout.
pub fn error_json(err: &CliError) -> Value {
    match err {
        CliError::InvalidSpec { errors, .. } => json!({
            "valid": false,
            "problems": errors.problems,
            "warnings": errors.warnings,
        }),
        CliError::InvalidRequest { errors, .. } => json!({
            "valid": false,
            "problems": errors.problems,
            "warnings": errors.warnings,
            "error": { "code": err.code(), "message": err.to_string(), "fix": err.fix() },
        }),
        other => json!({
            "error": { "code": other.code(), "message": other.to_string(), "fix": other.fix() }
        }),
    }
}

/// An error for people, on stderr: what failed and what to do; every problem of an invalid spec.
pub fn error_text(err: &CliError) -> String {
    let mut s = String::new();
    match err {
        CliError::InvalidSpec { errors, .. } | CliError::InvalidRequest { errors, .. } => {
            let _ = writeln!(s, "error: {err}:");
            s.push_str(&problems(&errors.problems));
            if !errors.warnings.is_empty() {
                let _ = writeln!(s, "warnings:");
                s.push_str(&problems(&errors.warnings));
            }
            let _ = writeln!(s, "Nothing was changed.");
        }
        other => {
            let _ = writeln!(s, "error: {other}");
            if let Some(fix) = other.fix() {
                let _ = writeln!(s, "  fix: {fix}");
            }
        }
    }
    s
}

/// Numbered `field: problem` lines, each with its fix.
pub fn problems(list: &[Problem]) -> String {
    let mut s = String::new();
    for (i, p) in list.iter().enumerate() {
        let _ = writeln!(s, "  {:>2}. {}: {}", i + 1, p.field, p.problem);
        let _ = writeln!(s, "      fix: {}", p.fix);
    }
    s
}

/// `step[alias]` (or `step[instance-id]` before the alias is known).
pub fn node_label(step: &str, target: Option<&str>, aliases: &BTreeMap<String, String>) -> String {
    let shown = target.map(|t| aliases.get(t).map_or(t, String::as_str));
    node_key(step, shown)
}

/// Replace instance ids inside a log node key (`step[id]`) by aliases.
pub fn key_label(key: &str, aliases: &BTreeMap<String, String>) -> String {
    match key.split_once('[') {
        Some((step, rest)) => node_label(step, Some(rest.trim_end_matches(']')), aliases),
        None => key.to_string(),
    }
}

/// Seconds with millisecond precision, e.g. `1.204s`.
pub fn secs(ms: u64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

/// A human phrase for a log event.
pub fn event_text(event: &str) -> &str {
    match event {
        "lease_taken" => "running",
        "started" => "started",
        "succeeded" => "done",
        "failed" => "FAILED",
        "undo_started" => "undoing",
        "undone" => "undone",
        "undo_failed" => "UNDO FAILED",
        "undo_blocked" => "left in place (blocked)",
        "rollback_started" => "ROLLING BACK",
        "rolled_back" => "rolled back: every change was undone",
        "refused" => "REFUSED: nothing was changed",
        "rollback_failed" => "ROLLBACK FAILED",
        "redriven" => "re-driving the rollback",
        other => other,
    }
}

/// One live progress line.
pub fn log_line(entry: &LogEntry, t0: Millis, aliases: &BTreeMap<String, String>) -> String {
    let at = secs(entry.at.saturating_sub(t0));
    let node = key_label(&entry.node, aliases);
    let marker = match entry.event.as_str() {
        "failed" | "undo_failed" | "rollback_failed" | "refused" => "✘",
        "rollback_started" | "undo_started" | "undone" | "rolled_back" | "redriven" => "↺",
        "succeeded" => "✔",
        _ => "·",
    };
    let mut line = format!("{at:>9} {marker} {node:<40} {}", event_text(&entry.event));
    if let Some(detail) = &entry.detail {
        if entry.event != "lease_taken" || detail.contains("took over") {
            let _ = write!(line, " — {detail}");
        }
    }
    line
}

/// `YYYY-MM-DD HH:MM:SSZ` from epoch milliseconds (UTC): the core's RFC 3339 without the
/// `T` and the milliseconds, easier to read in a table.
pub fn utc(ms: Millis) -> String {
    let t = onboard_core::clock::rfc3339(ms);
    format!(
        "{} {}Z",
        t.get(..10).unwrap_or(&t),
        t.get(11..19).unwrap_or_default()
    )
}

/// What a final status means, in one line.
pub fn status_meaning(status: SagaStatus) -> &'static str {
    match status {
        SagaStatus::Pending => "recorded, not started yet",
        SagaStatus::Running => "running",
        SagaStatus::RollingBack => "rolling back",
        SagaStatus::Succeeded => "the application is onboarded",
        SagaStatus::RolledBack => "it failed and every change was undone",
        SagaStatus::Refused => "refused before any change: nothing was done",
        SagaStatus::RollbackFailed => {
            "it failed and the rollback failed too: some resources remain"
        }
        SagaStatus::NeedsAttention => {
            "it stopped part-way and needs an operator: some resources remain"
        }
    }
}

/// What a saga's status means for its kind (a finished offboard is not "onboarded").
fn meaning(view: &SagaView) -> &'static str {
    let offboarded = view.application.as_ref().is_some_and(|a| a.offboarded);
    match (view.kind.as_str(), view.status) {
        ("change", SagaStatus::Succeeded) => "the change is applied",
        ("fix", SagaStatus::Succeeded) => "the drift is repaired",
        ("fix", SagaStatus::NeedsAttention) => {
            "the fix stopped part-way: the repairs done are kept; re-drive it to finish"
        }
        ("offboard", SagaStatus::Succeeded) => "the application is offboarded",
        ("adopt", SagaStatus::Succeeded) if offboarded => "adopted, since offboarded",
        ("adopt", SagaStatus::Succeeded) => "the application is under management",
        ("onboard", SagaStatus::Succeeded) if offboarded => "onboarded, since offboarded",
        (_, status) => status_meaning(status),
    }
}

/// For an application's root saga: the application as managed now and the last drift check.
fn application(s: &mut String, view: &SagaView, aliases: &BTreeMap<String, String>) {
    let Some(app) = &view.application else { return };
    let name = |i: &str| aliases.get(i).map_or(i, String::as_str).to_string();
    if app.offboarded {
        let by = app
            .last_change
            .as_deref()
            .map(|c| format!(" by saga {c}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "\nApplication {} OFFBOARDED{by}: it and everything hanging off it were removed",
            app.app.arn
        );
        return;
    }
    let _ = writeln!(s, "\nApplication (as managed now)");
    let _ = writeln!(s, "  {:<10} {}", "name", app.fields.display_name);
    let _ = writeln!(s, "  {:<10} {}", "arn", app.app.arn);
    let instances: Vec<String> = app
        .instances
        .iter()
        .map(|i| {
            let state = if app.paused.contains(i) {
                "paused"
            } else {
                "active"
            };
            format!("{} ({state})", name(i))
        })
        .collect();
    let _ = writeln!(s, "  {:<10} {}", "instances", instances.join(", "));
    for (i, profiles) in app.profiles.iter().filter(|(_, p)| !p.is_empty()) {
        let list: Vec<&str> = profiles.iter().map(String::as_str).collect();
        let _ = writeln!(s, "  {:<10} {}: {}", "profiles", name(i), list.join(", "));
    }
    if let Some(last) = &app.last_change {
        let _ = writeln!(s, "  {:<10} saga {last}", "changed by");
    }
    if let Some(drift) = &view.drift {
        let n = drift.items.len();
        let what = if n == 0 {
            "no drift".to_string()
        } else {
            format!("{n} difference(s) — `onboard drift {}` shows them", view.id)
        };
        let _ = writeln!(s, "  {:<10} {} at {}", "drift", what, utc(drift.checked_at));
    }
}

fn state_name(state: NodeState) -> &'static str {
    match state {
        NodeState::Pending => "PENDING",
        NodeState::Started => "STARTED",
        NodeState::Succeeded => "SUCCEEDED",
        NodeState::Failed => "FAILED",
        NodeState::UndoStarted => "UNDO_STARTED",
        NodeState::Undone => "UNDONE",
        NodeState::UndoFailed => "UNDO_FAILED",
        NodeState::UndoBlocked => "UNDO_BLOCKED",
    }
}

/// Whether the effect of a node may still be in place.
fn live(state: NodeState) -> bool {
    matches!(
        state,
        NodeState::Succeeded | NodeState::UndoFailed | NodeState::UndoBlocked
    )
}

/// The node key the error came from. A node's `error` is cleared once its undo succeeds, so
/// the log (`failed` / `undo_failed` with `code: message`) is the reliable source.
fn error_node(view: &SagaView, err: &ErrorInfo) -> Option<String> {
    let event = if view.status == SagaStatus::RollbackFailed {
        "undo_failed"
    } else {
        "failed"
    };
    let detail = format!("{}: {}", err.code, err.message);
    view.log
        .iter()
        .find(|e| e.event == event && e.detail.as_deref() == Some(detail.as_str()))
        .map(|e| e.node.clone())
        .or_else(|| {
            view.steps
                .iter()
                .find(|s| s.error.as_ref() == Some(err))
                .map(|s| node_key(&s.step, s.instance.as_deref()))
        })
}

/// A saga for people: status, step timeline, cause and fix, resources, next action.
/// `retry_flags` are the target options to repeat in the suggested `onboard retry` command.
/// `known` adds instance aliases the saga did not record itself (day-two sagas).
pub fn saga(
    view: &SagaView,
    with_log: bool,
    retry_flags: &str,
    known: &BTreeMap<String, String>,
) -> String {
    let mut s = String::new();
    let mut aliases = known.clone();
    aliases.extend(onboard_core::onboard::aliases_in(
        view.steps
            .iter()
            .find(|st| st.step == "validate")
            .and_then(|st| st.output.as_ref()),
    ));
    // A finished change shows what it changed; the no-op nodes stay in `--log`.
    let concise = crate::changes::concise(&view.kind) && !with_log;
    let shown: Vec<_> = view
        .steps
        .iter()
        .filter(|st| {
            !(concise
                && st.state == NodeState::Succeeded
                && crate::changes::no_op(st.output.as_ref()))
        })
        .collect();
    let t0 = view.created_at;
    let _ = writeln!(
        s,
        "\nSaga {} {} — {}\n  {} saga of namespace {}, {} from start to last change",
        view.id,
        view.status,
        meaning(view),
        view.kind,
        view.namespace,
        secs(view.updated_at.saturating_sub(t0)),
    );
    if let Some(parent) = &view.parent {
        let _ = writeln!(s, "  changes application {parent}");
    }
    // A change that succeeded is told by its "Changes" section below.
    if !(concise && view.status == SagaStatus::Succeeded) {
        timeline(&mut s, view, &shown, &aliases);
    }
    if let (SagaStatus::Refused, Some(err)) = (view.status, &view.last_error) {
        refusal(&mut s, view, err, &aliases);
    } else if let Some(err) = &view.last_error {
        let heading = if view.status == SagaStatus::RollbackFailed {
            "Rollback failed"
        } else {
            "Cause"
        };
        let at = error_node(view, err)
            .map(|key| format!(" in {}", key_label(&key, &aliases)))
            .unwrap_or_default();
        let _ = writeln!(s, "\n{heading}{at}: {} {}", err.code, err.message);
        if let Some(fix) = &err.fix {
            let _ = writeln!(s, "Fix: {fix}");
        }
    }
    if concise && view.status == SagaStatus::Succeeded {
        s.push_str(&crate::changes::section(view, &aliases));
    }
    resources(&mut s, view, &aliases);
    application(&mut s, view, &aliases);
    match view.status {
        SagaStatus::RollbackFailed => {
            let _ = writeln!(
                s,
                "\nNext: fix the cause above, then re-drive the rollback: onboard retry {}{retry_flags}",
                view.id
            );
        }
        // The cause's fix is the next action; it is printed above already.
        SagaStatus::RolledBack => {}
        SagaStatus::Refused => {
            let _ = writeln!(
                s,
                "\nNext: fix each finding above, then submit the request again (the namespace is free)."
            );
        }
        _ => {
            if let Some(next) = &view.next_action {
                let _ = writeln!(s, "\nNext: {next}");
            }
        }
    }
    if with_log {
        let _ = writeln!(s, "\nLog");
        for entry in &view.log {
            let _ = writeln!(s, "{}", log_line(entry, t0, &aliases));
        }
    }
    s
}

/// The step table: each shown node's state, start and end (from the saga's start) and tries.
fn timeline(
    s: &mut String,
    view: &SagaView,
    shown: &[&onboard_core::service::StepView],
    aliases: &BTreeMap<String, String>,
) {
    let t0 = view.created_at;
    let labels: Vec<String> = shown
        .iter()
        .map(|st| node_label(&st.step, st.instance.as_deref(), aliases))
        .collect();
    let w = labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(s, "\nTimeline (from {})", utc(t0));
    let _ = writeln!(
        s,
        "  {:<w$} {:<13} {:>9} {:>9}  tries",
        "step", "state", "start", "end"
    );
    for (st, label) in shown.iter().zip(&labels) {
        let at = |t: Option<Millis>| t.map_or_else(|| "-".into(), |t| secs(t.saturating_sub(t0)));
        let tries = if st.undo_attempts > 0 {
            format!("{} (+{} undo)", st.attempts, st.undo_attempts)
        } else {
            st.attempts.to_string()
        };
        let _ = writeln!(
            s,
            "  {label:<w$} {:<13} {:>9} {:>9}  {tries}",
            state_name(st.state),
            at(st.started_at),
            at(st.finished_at),
        );
    }
}

/// The items of a numbered text (`(1) a; (2) b`, as a refusal joins its findings), or the
/// whole text as one item.
fn numbered_items(text: &str) -> Vec<&str> {
    let Some(mut rest) = text.strip_prefix("(1) ") else {
        return vec![text];
    };
    let mut items = Vec::new();
    for n in 2.. {
        match rest.find(&format!("; ({n}) ")) {
            Some(at) => {
                items.push(&rest[..at]);
                rest = &rest[at + format!("; ({n}) ").len()..];
            }
            None => break,
        }
    }
    items.push(rest);
    items
}

/// A refusal: every finding with its fix, and that nothing was changed.
fn refusal(s: &mut String, view: &SagaView, err: &ErrorInfo, aliases: &BTreeMap<String, String>) {
    let at = error_node(view, err)
        .map(|key| format!(" by {}", key_label(&key, aliases)))
        .unwrap_or_default();
    let findings = numbered_items(&err.message);
    let fixes = err.fix.as_deref().map(numbered_items).unwrap_or_default();
    let _ = writeln!(
        s,
        "\nRefused{at}: {} ({} finding(s)); nothing was changed",
        err.code,
        findings.len()
    );
    for (i, finding) in findings.iter().enumerate() {
        let _ = writeln!(s, "  {:>2}. {finding}", i + 1);
        if fixes.len() == findings.len() {
            let _ = writeln!(s, "      fix: {}", fixes[i]);
        }
    }
    if fixes.len() != findings.len() {
        if let Some(fix) = &err.fix {
            let _ = writeln!(s, "Fix: {fix}");
        }
    }
}

/// The ARNs and grants a saga created, split by whether they still exist.
fn resources(s: &mut String, view: &SagaView, aliases: &BTreeMap<String, String>) {
    let mut live_lines = Vec::new();
    let mut removed = Vec::new();
    for st in &view.steps {
        let Some(out) = &st.output else { continue };
        let who = st
            .instance
            .as_deref()
            .map(|t| aliases.get(t).map_or(t, String::as_str).to_string())
            .unwrap_or_default();
        let line = match st.step.as_str() {
            "create_application" => out
                .get("arn")
                .and_then(Value::as_str)
                .map(|arn| ("application".to_string(), arn.to_string())),
            "associate" => out
                .get("arn")
                .and_then(Value::as_str)
                .map(|arn| (format!("association {who}"), arn.to_string())),
            "grant_slr_policy" => {
                let role = out.get("roleName").and_then(Value::as_str).unwrap_or("?");
                let policy = out.get("policyName").and_then(Value::as_str).unwrap_or("?");
                let sid = out.get("sid").and_then(Value::as_str).unwrap_or("?");
                Some((
                    format!("SLR policy {who}"),
                    format!("role {role}, inline policy {policy}, statement {sid}"),
                ))
            }
            "grant_security_profiles" => {
                let profiles: Vec<&str> = out
                    .get("profiles")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                (!profiles.is_empty()).then(|| {
                    (
                        format!("profiles {who}"),
                        format!("ACCESS granted in {}", profiles.join(", ")),
                    )
                })
            }
            _ => None,
        };
        let Some((key, value)) = line else { continue };
        let line = (key, value);
        if live(st.state) {
            live_lines.push(line);
        } else if st.state == NodeState::Undone {
            removed.push(line);
        }
    }
    let w = live_lines
        .iter()
        .chain(&removed)
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let changed = view.application.as_ref().and_then(|a| {
        if a.offboarded {
            Some("Created by this saga, since removed by the offboarding")
        } else {
            a.last_change
                .as_ref()
                .map(|_| "Created by this saga (since changed: see Application)")
        }
    });
    let heading = match (view.status, changed) {
        (SagaStatus::Succeeded, Some(h)) => h,
        (SagaStatus::Succeeded, None) => "Resources",
        _ => "Still in place (not undone)",
    };
    for (title, lines) in [
        (heading, live_lines),
        ("Created, then removed by the rollback", removed),
    ] {
        if lines.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n{title}");
        for (k, v) in lines {
            let _ = writeln!(s, "  {k:<w$}  {v}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00Z");
        assert_eq!(utc(1_798_761_599_000), "2026-12-31 23:59:59Z");
    }

    #[test]
    fn numbered_findings_split_into_items() {
        assert_eq!(numbered_items("one finding"), vec!["one finding"]);
        assert_eq!(
            numbered_items("(1) a; b; (2) c (x); (3) d"),
            vec!["a; b", "c (x)", "d"]
        );
    }

    #[test]
    fn labels_use_aliases_when_known() {
        let aliases = BTreeMap::from([("i-1".to_string(), "east".to_string())]);
        assert_eq!(
            node_label("associate", Some("i-1"), &aliases),
            "associate[east]"
        );
        assert_eq!(
            node_label("associate", Some("i-2"), &aliases),
            "associate[i-2]"
        );
        assert_eq!(
            key_label("grant_slr_policy[i-1]", &aliases),
            "grant_slr_policy[east]"
        );
        assert_eq!(key_label("saga", &aliases), "saga");
    }
}
