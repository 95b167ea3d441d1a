//! Live progress of a running saga. The engine writes every transition to the store before and
//! after each side effect, so a store wrapper that forwards each accepted write is an exact,
//! poll-free feed of the saga's progress, rollback included.
//!
//! On a terminal: one spinner line per step and instance (indicatif). Otherwise: one plain line
//! per log event, so CI logs and pipes read well.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use async_trait::async_trait;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use onboard_core::record::{LogEntry, Millis, NodeState, SagaRecord, SagaStatus};
use onboard_core::store::{IdempotencyClaim, Page, SagaStore, StoreError};
use std::sync::Arc;
use tokio::sync::mpsc;

use crate::args::OutputFormat;
use crate::render;

/// A [`SagaStore`] that forwards every successful update (a new record version) to a channel.
pub struct ObservedStore {
    inner: Arc<dyn SagaStore>,
    tx: mpsc::UnboundedSender<SagaRecord>,
}

impl ObservedStore {
    pub fn new(inner: Arc<dyn SagaStore>) -> (Self, mpsc::UnboundedReceiver<SagaRecord>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (ObservedStore { inner, tx }, rx)
    }

    fn notify(&self, record: &SagaRecord) {
        // No receiver means nobody is watching; the write itself succeeded.
        let _ = self.tx.send(record.clone());
    }
}

#[async_trait]
impl SagaStore for ObservedStore {
    async fn create(&self, record: &SagaRecord) -> Result<(), StoreError> {
        self.inner.create(record).await?;
        self.notify(record);
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<SagaRecord>, StoreError> {
        self.inner.get(id).await
    }

    async fn update(&self, record: &SagaRecord, expected_version: u64) -> Result<(), StoreError> {
        self.inner.update(record, expected_version).await?;
        self.notify(record);
        Ok(())
    }

    async fn list_by_status(
        &self,
        status: SagaStatus,
        limit: usize,
        cursor: Option<String>,
    ) -> Result<Page, StoreError> {
        self.inner.list_by_status(status, limit, cursor).await
    }

    async fn list_stalled(&self, now: Millis, limit: usize) -> Result<Vec<SagaRecord>, StoreError> {
        self.inner.list_stalled(now, limit).await
    }

    async fn namespace_holder(&self, namespace: &str) -> Result<Option<String>, StoreError> {
        self.inner.namespace_holder(namespace).await
    }

    async fn claim_idempotency(
        &self,
        key: &str,
        payload_hash: &str,
        now: Millis,
        in_progress_until: Millis,
        expires_at: Millis,
    ) -> Result<IdempotencyClaim, StoreError> {
        self.inner
            .claim_idempotency(key, payload_hash, now, in_progress_until, expires_at)
            .await
    }

    async fn complete_idempotency(
        &self,
        key: &str,
        payload_hash: &str,
        saga_id: &str,
    ) -> Result<(), StoreError> {
        self.inner
            .complete_idempotency(key, payload_hash, saga_id)
            .await
    }

    async fn release_idempotency(&self, key: &str, payload_hash: &str) -> Result<(), StoreError> {
        self.inner.release_idempotency(key, payload_hash).await
    }
}

/// Where progress goes.
pub enum Progress {
    /// Spinners on stderr (a terminal).
    Bars(Box<Bars>),
    /// One line per event (stdout for text output).
    Lines(Lines),
    /// Nothing (JSON output into a pipe).
    Quiet,
}

impl Progress {
    /// Spinners on a terminal, plain lines otherwise; quiet for JSON into a pipe.
    /// `known`: instance aliases the saga did not record itself (a day-two saga's).
    pub fn for_output(
        output: OutputFormat,
        saga_id: &str,
        known: BTreeMap<String, String>,
    ) -> Self {
        let tty =
            std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb");
        match (tty, output) {
            (true, _) => Progress::Bars(Box::new(Bars::new(saga_id, known))),
            (false, OutputFormat::Text) => Progress::Lines(Lines::new(saga_id, known)),
            (false, OutputFormat::Json) => Progress::Quiet,
        }
    }

    /// Show what changed in a new version of the saga.
    pub fn update(&mut self, record: &SagaRecord) {
        match self {
            Progress::Bars(b) => b.update(record),
            Progress::Lines(l) => l.update(record),
            Progress::Quiet => {}
        }
    }

    /// Start from `record` as it is now: earlier events were shown by the run that made them.
    pub fn start_from(&mut self, record: &SagaRecord) {
        match self {
            Progress::Bars(b) => b.update(record),
            Progress::Lines(l) => {
                l.last = record.log.last().cloned();
                l.update(record);
            }
            Progress::Quiet => {}
        }
    }

    /// Leave the final state on screen.
    pub fn finish(&mut self) {
        if let Progress::Bars(b) = self {
            b.finish();
        }
    }
}

/// The log entries of `record` not shown yet, found after the last one shown (the engine may
/// trim the oldest entries, so positions alone are not enough).
pub fn new_entries<'a>(record: &'a SagaRecord, last: &Option<LogEntry>) -> &'a [LogEntry] {
    let Some(last) = last else { return &record.log };
    match record.log.iter().rposition(|e| e == last) {
        Some(i) => record.log.get(i + 1..).unwrap_or_default(),
        None => &record.log,
    }
}

fn aliases(record: &SagaRecord, known: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut all = known.clone();
    all.extend(onboard_core::onboard::instance_aliases(record));
    all
}

/// For a change saga, a node event not worth a line: every start (the end follows at once),
/// and the end of a node that found nothing to do.
fn quiet(record: &SagaRecord, entry: &LogEntry) -> bool {
    if !crate::changes::concise(&record.kind) || entry.node == "saga" {
        return false;
    }
    match entry.event.as_str() {
        "started" => true,
        "succeeded" => record
            .nodes
            .iter()
            .find(|n| onboard_core::record::node_key(&n.step, n.target.as_deref()) == entry.node)
            .is_some_and(|n| crate::changes::no_op(n.output.as_ref())),
        _ => false,
    }
}

/// Plain progress: one line per event.
pub struct Lines {
    saga_id: String,
    last: Option<LogEntry>,
    header: bool,
    known: BTreeMap<String, String>,
}

impl Lines {
    fn new(saga_id: &str, known: BTreeMap<String, String>) -> Self {
        Lines {
            saga_id: saga_id.to_string(),
            last: None,
            header: false,
            known,
        }
    }

    fn update(&mut self, record: &SagaRecord) {
        if record.id != self.saga_id {
            return;
        }
        let aliases = aliases(record, &self.known);
        let mut out = std::io::stdout().lock();
        if !self.header {
            self.header = true;
            let _ = if crate::changes::concise(&record.kind) {
                writeln!(
                    out,
                    "Saga {} ({} of namespace {}): the steps that change something",
                    record.id, record.kind, record.namespace
                )
            } else {
                writeln!(
                    out,
                    "Saga {} ({} of namespace {}): {} step runs",
                    record.id,
                    record.kind,
                    record.namespace,
                    record.nodes.len()
                )
            };
        }
        for entry in new_entries(record, &self.last) {
            if quiet(record, entry) {
                continue;
            }
            let _ = writeln!(
                out,
                "{}",
                render::log_line(entry, record.created_at, &aliases)
            );
        }
        let _ = out.flush();
        self.last = record.log.last().cloned();
    }
}

/// Spinner progress: a header line and one line per node.
pub struct Bars {
    saga_id: String,
    known: BTreeMap<String, String>,
    multi: MultiProgress,
    header: ProgressBar,
    nodes: Vec<ProgressBar>,
    active: ProgressStyle,
    idle: ProgressStyle,
}

const TICK: Duration = Duration::from_millis(100);

impl Bars {
    fn new(saga_id: &str, known: BTreeMap<String, String>) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let active = ProgressStyle::with_template("  {spinner:.cyan} {prefix:<40} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let idle = ProgressStyle::with_template("  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let header = multi.add(ProgressBar::new_spinner().with_style(active.clone()));
        header.set_prefix(format!("saga {saga_id}"));
        header.enable_steady_tick(TICK);
        Bars {
            saga_id: saga_id.to_string(),
            known,
            multi,
            header,
            nodes: Vec::new(),
            active,
            idle,
        }
    }

    fn update(&mut self, record: &SagaRecord) {
        if record.id != self.saga_id {
            return;
        }
        let aliases = aliases(record, &self.known);
        while self.nodes.len() < record.nodes.len() {
            self.nodes.push(self.multi.add(ProgressBar::new_spinner()));
        }
        self.header
            .set_message(match (&record.status, &record.cause) {
                (SagaStatus::RollingBack, Some(c)) => {
                    format!("ROLLING_BACK after {}: {}", c.code, c.message)
                }
                (status, _) => status.to_string(),
            });
        for (bar, node) in self.nodes.iter().zip(&record.nodes) {
            let label = render::node_label(&node.step, node.target.as_deref(), &aliases);
            let (symbol, text, running) = match node.state {
                NodeState::Pending => ("·", "pending".to_string(), false),
                NodeState::Started if node.attempts > 1 => {
                    ("", format!("running (attempt {})", node.attempts), true)
                }
                NodeState::Started => ("", "running".to_string(), true),
                NodeState::Succeeded => ("✔", "done".to_string(), false),
                NodeState::Failed => ("✘", failure("failed", node.error.as_ref()), false),
                NodeState::UndoStarted => ("", "undoing".to_string(), true),
                NodeState::Undone => ("↺", "undone".to_string(), false),
                NodeState::UndoFailed => ("✘", failure("undo failed", node.error.as_ref()), false),
                NodeState::UndoBlocked => {
                    ("⏸", "left in place (an undo failed first)".into(), false)
                }
            };
            if crate::changes::concise(&record.kind)
                && node.state == NodeState::Succeeded
                && crate::changes::no_op(node.output.as_ref())
            {
                // Nothing to do there: take the line off the screen.
                bar.finish_and_clear();
                continue;
            }
            if running {
                bar.set_style(self.active.clone());
                bar.set_prefix(label);
                bar.set_message(text);
                bar.enable_steady_tick(TICK);
            } else {
                bar.disable_steady_tick();
                bar.set_style(self.idle.clone());
                bar.set_message(format!("{symbol} {label:<40} {text}"));
            }
        }
    }

    fn finish(&mut self) {
        self.header.disable_steady_tick();
        self.header.set_style(self.idle.clone());
        let done = format!("saga {} {}", self.saga_id, self.header.message());
        self.header.finish_with_message(done);
        for bar in self.nodes.iter().filter(|b| !b.is_finished()) {
            bar.disable_steady_tick();
            let msg = bar.message();
            bar.set_style(self.idle.clone());
            bar.finish_with_message(msg);
        }
        // indicatif leaves the cursor on the last bar; the summary starts on a fresh line.
        eprintln!();
    }
}

fn failure(what: &str, err: Option<&onboard_core::error::ErrorInfo>) -> String {
    match err {
        Some(e) => format!("{what}: {} {}", e.code, e.message),
        None => what.to_string(),
    }
}
