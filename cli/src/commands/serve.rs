//! `onboard serve`: the HTTP API and a worker in one process.
//!
//! The API is the Lambda's own axum router (`onboard_api::router`), served here by axum on a TCP
//! listener instead of `lambda_http`. Accepted submissions go to an in-process queue (a tokio
//! channel behind [`SagaQueue`]); one worker task takes them in order and runs each through the
//! Lambda worker's per-message handling ([`Worker::handle_message`]) on the engine of the saga's
//! kind (onboard, and the lifecycle routes' change, offboard and adopt sagas), configured
//! exactly as `apply` configures it (sandbox or AWS, same tuning, same saga definitions). On the
//! sandbox the world is saved in the state directory after every recorded transition, like the
//! other commands do.
//!
//! Lifecycle: bind → queue every unfinished saga the log holds (a killed `serve` resumes) →
//! print the URL and a `ready` line → serve until Ctrl-C or SIGTERM → stop accepting, let the
//! running saga reach its next recorded write, exit 0. The record is the truth: whatever was
//! not finished is resumed by the next start. A second Ctrl-C exits at once.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use onboard_api::{Api, PrincipalConfig, WebhookConfig};
use onboard_core::access::AccessPolicy;
use onboard_core::clock::{Clock, SystemClock};
use onboard_core::error::ErrorInfo;
use onboard_core::idempotency::IdempotencyConfig;
use onboard_core::record::{LogEntry, Millis, SagaRecord, SagaStatus};
use onboard_core::service::{queue_error, Onboarding, RunAction, RunSagaMessage, SagaQueue};
use onboard_core::store::SagaStore;
use onboard_lambda_common::Emf;
use onboard_sandbox::SandboxHandle;
use onboard_worker::{Disposition, Worker};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::args::{OutputFormat, ServeArgs};
use crate::commands::drive;
use crate::commands::serve_guard::{self, Guard};
use crate::error::{exit, CliError};
use crate::progress::{new_entries, ObservedStore};
use crate::render;
use crate::targets::{save_world_file, Context};

/// How long in-flight HTTP requests get to finish after the stop signal.
const HTTP_DRAIN: Duration = Duration::from_secs(10);

/// The in-process queue: accepted submissions and re-drives, in order.
struct ChannelQueue(mpsc::UnboundedSender<RunSagaMessage>);

#[async_trait]
impl SagaQueue for ChannelQueue {
    async fn enqueue(&self, message: &RunSagaMessage) -> Result<(), ErrorInfo> {
        self.0.send(message.clone()).map_err(|_| {
            queue_error(
                "WorkerStopped",
                "the local worker has stopped (the server is shutting down); the saga stays \
                 PENDING and the next `onboard serve` runs it",
            )
        })
    }
}

/// Where the server's messages go: plain lines, or one JSON object per line (`--output json`).
#[derive(Clone, Copy)]
struct Out {
    json: bool,
}

impl Out {
    /// One message; a closed stdout never stops the server.
    fn say(&self, text: &str, event: Value) {
        let mut out = std::io::stdout().lock();
        let _ = if self.json {
            writeln!(out, "{event}")
        } else {
            writeln!(out, "{text}")
        };
        let _ = out.flush();
    }
}

pub async fn run(ctx: &Context, args: &ServeArgs) -> Result<u8, CliError> {
    let out = Out {
        json: ctx.global.output == OutputFormat::Json,
    };
    let (secret, generated) = webhook_secret(args)?;
    let stores = ctx
        .store(true)
        .await?
        .ok_or_else(|| CliError::NoSagas(String::new()))?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| listen_error(&args.listen.to_string(), &e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| listen_error(&args.listen.to_string(), &e))?;
    let url = format!("http://{addr}");
    let mut signals = StopSignals::install().map_err(|e| CliError::Config {
        message: format!("cannot watch for Ctrl-C: {e}"),
        fix: "Run `onboard serve` from a regular shell.".into(),
    })?;

    let mut world = ctx.world(stores.locks.clone()).await?;
    let definition = Arc::new(world.tuning.definition());
    let persist = world.sandbox.as_ref().map(|s| Persist {
        sandbox: s.running.state().clone(),
        dir: ctx.global.state_dir.clone(),
        warned: false,
    });
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (queue_tx, queue_rx) = mpsc::unbounded_channel();

    let mut api = Api::new(
        Onboarding {
            store: stores.store.clone(),
            clock: clock.clone(),
            queue: Arc::new(ChannelQueue(queue_tx.clone())),
            definition: definition.clone(),
            idempotency: IdempotencyConfig::default(),
        },
        PrincipalConfig::local(),
        WebhookConfig::new(secret.as_bytes()),
    );
    api.emf = Emf::discard("api");
    api.access = Arc::new(AccessPolicy {
        admin_principals: args.admins.iter().cloned().collect(),
        admin_groups: args.admin_groups.iter().cloned().collect(),
    });
    // POST /preflight runs the saga's checks read-only on the same target, plus permissions
    // and framing.
    api.preflight_aws = Some(crate::commands::plan::preflight_ports(
        &world,
        args.allow_private_fetch,
    )?);
    let (token, token_generated) = match args.token.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => (t.to_string(), false),
        None => (random_hex("a server token")?, true),
    };
    let guard = Arc::new(Guard::new(addr.port(), &args.allow_hosts, token));
    let router = onboard_api::router(Arc::new(api)).layer(axum::middleware::from_fn_with_state(
        guard.clone(),
        serve_guard::check,
    ));

    // The engine writes through an observed store: every accepted write is a progress line, and
    // the point where a stopping server may let go of the saga.
    let (observed, feed) = ObservedStore::new(stores.store.clone());
    let worker = Worker {
        sagas: drive::sagas(&world, Arc::new(observed), drive::owner()),
        store: stores.store.clone(),
        clock,
        emf: Emf::discard("worker"),
        concurrency: 1,
        // The in-process queue has no dead-letter queue: failures are reported and retried.
        dead_letters: None,
        poison: onboard_worker::poison::PoisonPolicy::default(),
    };

    let target = if ctx.sandbox() {
        "the in-process sandbox"
    } else {
        "AWS"
    };
    out.say(
        &format!(
            "onboard serve: sagas run on {target}, saga log in {}",
            stores.location
        ),
        json!({"event": "started", "target": if ctx.sandbox() { "sandbox" } else { "aws" },
               "sagaLog": stores.location}),
    );
    if generated {
        out.say(
            &format!(
                "webhook secret (generated for this run; pass --webhook-secret or set \
                 ONBOARD_WEBHOOK_SECRET to choose one): {secret}"
            ),
            json!({"event": "webhookSecret", "secret": secret, "generated": true}),
        );
    }
    if token_generated {
        out.say(
            &format!(
                "token (send `Authorization: Bearer <token>`; --token or ONBOARD_SERVE_TOKEN \
                 chooses one): {}",
                guard.token()
            ),
            json!({"event": "token", "token": guard.token(), "generated": true}),
        );
    }
    resume_unfinished(stores.store.as_ref(), &queue_tx, out).await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut server = tokio::spawn(serve_http(listener, router, stop_rx.clone()));
    let worker_task = tokio::spawn(work(
        worker, queue_tx, queue_rx, feed, stop_rx, out, persist,
    ));
    out.say(
        &format!("listening on {url}"),
        json!({"event": "listening", "url": url}),
    );
    // The token and a local identity ride in the fragment, which the browser keeps to itself.
    let portal = format!(
        "{url}/#token={}&as={}",
        guard.token(),
        url::form_urlencoded::byte_serialize(local_principal().as_bytes()).collect::<String>()
    );
    out.say(
        &format!("portal: open {portal} in a browser to onboard and follow apps"),
        json!({"event": "portal", "url": portal}),
    );
    out.say(
        &format!(
            "ready: POST {url}/applications with the token and an X-Onboard-Principal header \
             (trusted as sent: local use only), then GET {url}/applications/{{id}}; Ctrl-C stops"
        ),
        json!({"event": "ready", "url": url}),
    );

    let early = tokio::select! {
        () = signals.next() => None,
        finished = &mut server => Some(finished),
    };
    let _ = stop_tx.send(true);
    out.say(
        "stopping: no new requests; the running saga stops at its next recorded write \
         (Ctrl-C again to exit at once)",
        json!({"event": "stopping"}),
    );
    tokio::spawn(async move {
        signals.next().await;
        eprintln!("exiting now; the next `onboard serve` resumes unfinished sagas");
        std::process::exit(130);
    });
    let served = match early {
        Some(finished) => finished,
        None => match tokio::time::timeout(HTTP_DRAIN, &mut server).await {
            Ok(finished) => finished,
            Err(_) => {
                server.abort();
                Ok(Ok(()))
            }
        },
    };
    let _ = worker_task.await;
    if let Some(sandbox) = world.sandbox.take() {
        sandbox.save_or_warn(&ctx.global.state_dir);
        sandbox.shutdown().await;
    }
    match served {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Err(CliError::Config {
                message: format!("the HTTP server failed: {e}"),
                fix: "Start `onboard serve` again; unfinished sagas resume.".into(),
            })
        }
        Err(e) => {
            return Err(CliError::Config {
                message: format!("the HTTP server stopped unexpectedly: {e}"),
                fix: "Start `onboard serve` again; unfinished sagas resume.".into(),
            })
        }
    }
    out.say("stopped", json!({"event": "stopped"}));
    Ok(exit::OK)
}

/// Who the portal acts as by default: the operating-system user on this machine.
fn local_principal() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "local".into());
    format!("{user}@localhost")
}

fn listen_error(addr: &str, e: &std::io::Error) -> CliError {
    CliError::Config {
        message: format!("cannot listen on {addr}: {e}"),
        fix: "Choose another address with --listen (port 0 picks a free port), or stop the \
              process that uses this one."
            .into(),
    }
}

/// The given secret, or a random one (32 bytes from the OS, hex). `true` when generated.
fn webhook_secret(args: &ServeArgs) -> Result<(String, bool), CliError> {
    if let Some(secret) = args.webhook_secret.as_deref().filter(|s| !s.is_empty()) {
        let min = onboard_api::webhooks::signature::MIN_SECRET_BYTES;
        if secret.len() < min {
            return Err(CliError::Config {
                message: format!(
                    "the webhook secret is {} bytes; at least {min} are needed",
                    secret.len()
                ),
                fix: "Generate one with `openssl rand -hex 32`, or leave --webhook-secret out to \
                      have one generated for this run."
                    .into(),
            });
        }
        return Ok((secret.to_string(), false));
    }
    Ok((random_hex("a webhook secret")?, true))
}

/// 32 random bytes from the OS, as hex.
fn random_hex(what: &str) -> Result<String, CliError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| CliError::Config {
        message: format!("cannot generate {what}: {e}"),
        fix: "Pass --webhook-secret SECRET and --token TOKEN (or set ONBOARD_WEBHOOK_SECRET and \
              ONBOARD_SERVE_TOKEN)."
            .into(),
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Serve the router until the stop signal, then finish the requests in flight.
async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
}

/// Queue every saga the log holds unfinished (PENDING, RUNNING, ROLLING_BACK), oldest first: a
/// saga accepted or interrupted by an earlier `serve` that was killed.
async fn resume_unfinished(
    store: &dyn SagaStore,
    queue: &mpsc::UnboundedSender<RunSagaMessage>,
    out: Out,
) -> Result<(), CliError> {
    let mut found: Vec<SagaRecord> = Vec::new();
    for status in [
        SagaStatus::Pending,
        SagaStatus::Running,
        SagaStatus::RollingBack,
    ] {
        let mut cursor = None;
        loop {
            let page = store.list_by_status(status, 100, cursor.take()).await?;
            found.extend(page.items);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    found.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let list: Vec<String> = found
        .iter()
        .map(|r| format!("{} ({})", r.id, r.status))
        .collect();
    out.say(
        &format!(
            "resuming {} unfinished saga(s) from the saga log: {}",
            found.len(),
            list.join(", ")
        ),
        json!({"event": "resuming", "sagas": found.iter()
            .map(|r| json!({"sagaId": r.id, "status": r.status})).collect::<Vec<_>>()}),
    );
    for r in found {
        let _ = queue.send(RunSagaMessage {
            saga_id: r.id,
            namespace: r.namespace,
            action: RunAction::Run,
        });
    }
    Ok(())
}

/// Queue `message` again once the lease another worker holds on its saga has expired.
fn requeue_after(
    queue: &mpsc::UnboundedSender<RunSagaMessage>,
    message: RunSagaMessage,
    until: Millis,
    now: Millis,
) {
    let queue = queue.clone();
    let delay = Duration::from_millis(until.saturating_sub(now).saturating_add(100));
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let _ = queue.send(message);
    });
}

/// Where the sandbox world is saved while sagas run.
struct Persist {
    sandbox: SandboxHandle,
    dir: std::path::PathBuf,
    warned: bool,
}

impl Persist {
    /// Save the world; a failure is reported once and does not stop the server.
    fn save(&mut self, out: Out) {
        if let Err(e) = save_world_file(&self.sandbox, &self.dir) {
            if !self.warned {
                self.warned = true;
                out.say(
                    &format!("warning: cannot save the sandbox world in {}: {e}", self.dir.display()),
                    json!({"event": "warning", "message": format!("cannot save the sandbox world: {e}")}),
                );
            }
        }
    }
}

/// The worker: one saga at a time, in queue order, until the stop signal.
async fn work(
    worker: Worker,
    queue_tx: mpsc::UnboundedSender<RunSagaMessage>,
    mut queue: mpsc::UnboundedReceiver<RunSagaMessage>,
    mut feed: mpsc::UnboundedReceiver<SagaRecord>,
    mut stop: watch::Receiver<bool>,
    out: Out,
    mut persist: Option<Persist>,
) {
    loop {
        let message = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            next = queue.recv() => match next {
                Some(m) => m,
                None => return,
            },
        };
        while feed.try_recv().is_ok() {}
        let id = message.saga_id.clone();
        let last_shown = match worker.store.get(&id).await {
            Ok(Some(r)) => r.log.last().cloned(),
            _ => None,
        };
        let mut progress = SagaLines::new(&id, last_shown, out);
        let mut stopping = false;
        let disposition = {
            let run = worker.handle_message(&message);
            tokio::pin!(run);
            loop {
                tokio::select! {
                    biased;
                    d = &mut run => break Some(d),
                    Some(record) = feed.recv() => {
                        progress.update(&record);
                        if let Some(p) = persist.as_mut() {
                            p.save(out);
                        }
                        if stopping && record.id == id {
                            break None;
                        }
                    }
                    _ = stop.wait_for(|s| *s), if !stopping => stopping = true,
                }
            }
        };
        while let Ok(record) = feed.try_recv() {
            progress.update(&record);
        }
        if let Some(p) = persist.as_mut() {
            p.save(out);
        }
        let Some(disposition) = disposition else {
            out.say(
                &format!(
                    "saga {id}: stopped after its last recorded write; the next `onboard serve` \
                     resumes it"
                ),
                json!({"event": "interrupted", "sagaId": id}),
            );
            return;
        };
        if let Disposition::Failed(reason) = disposition {
            out.say(
                &format!(
                    "saga {id}: not run: {reason} (the next `onboard serve`, or `onboard retry \
                     {id}`, tries again)"
                ),
                json!({"event": "notRun", "sagaId": id, "reason": reason}),
            );
            continue;
        }
        let record = match worker.store.get(&id).await {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                out.say(
                    &format!("saga {id}: cannot read its final state: {e}"),
                    json!({"event": "storeError", "sagaId": id, "error": e.to_string()}),
                );
                continue;
            }
        };
        if progress.shown {
            out.say(
                &format!(
                    "saga {id}: {} — {}",
                    record.status,
                    render::status_meaning(record.status)
                ),
                json!({"event": "finished", "sagaId": id, "status": record.status}),
            );
        }
        // Held by another worker (an earlier `serve` or a Lambda): try again when its lease
        // expires, as SQS would redeliver.
        if let Some(lease) = record
            .lease
            .as_ref()
            .filter(|l| record.status.is_runnable() && l.owner != worker.sagas.onboard.owner())
        {
            out.say(
                &format!(
                    "saga {id}: held by {} until {}; it runs then",
                    lease.owner,
                    render::utc(lease.expires_at)
                ),
                json!({"event": "busy", "sagaId": id, "owner": lease.owner,
                       "until": lease.expires_at}),
            );
            requeue_after(&queue_tx, message, lease.expires_at, worker.clock.now());
        }
    }
}

/// Progress lines of the saga being run: a header, then one line per new log entry.
struct SagaLines {
    id: String,
    last: Option<LogEntry>,
    shown: bool,
    out: Out,
}

impl SagaLines {
    fn new(id: &str, last: Option<LogEntry>, out: Out) -> Self {
        SagaLines {
            id: id.to_string(),
            last,
            shown: false,
            out,
        }
    }

    fn update(&mut self, record: &SagaRecord) {
        if record.id != self.id {
            return;
        }
        if !self.shown {
            self.shown = true;
            self.out.say(
                &format!(
                    "saga {} ({} of namespace {}): {} step runs",
                    record.id,
                    record.kind,
                    record.namespace,
                    record.nodes.len()
                ),
                json!({"event": "running", "sagaId": record.id, "namespace": record.namespace}),
            );
        }
        let aliases = onboard_core::onboard::instance_aliases(record);
        for entry in new_entries(record, &self.last) {
            self.out.say(
                &render::log_line(entry, record.created_at, &aliases),
                json!({"event": "transition", "sagaId": record.id, "status": record.status,
                       "entry": entry}),
            );
        }
        self.last = record.log.last().cloned();
    }
}

/// Ctrl-C (and SIGTERM on Unix), watched from before the `ready` line so that an early signal
/// still stops the server cleanly.
struct StopSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(StopSignals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(StopSignals {})
        }
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => {}
                _ = self.terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
