//! The CLI's one error type and its exit codes. Every variant says what failed and, through
//! [`CliError::fix`], what to do about it — the same contract as the saga's own errors.

use std::path::PathBuf;

use onboard_core::engine::EngineError;
use onboard_core::error::ErrorInfo;
use onboard_core::idempotency::SubmitError;
use onboard_core::lifecycle::StateError;
use onboard_core::store::StoreError;
use onboard_core::validation::ValidationErrors;
use onboard_sandbox::SandboxError;

/// Exit codes scripts can rely on; `onboard --help` and the README print the same table
/// ([`exit::TABLE`]). A command that runs a saga exits with the code of the saga's final state.
pub mod exit {
    /// The saga succeeded (or the command did what it was asked).
    pub const OK: u8 = 0;
    /// Anything else went wrong (I/O, AWS configuration, store, a busy saga).
    pub const OTHER: u8 = 1;
    /// The spec (or a lifecycle request) is invalid, or its saga was REFUSED by preflight
    /// before any change; every problem (finding) was listed with its fix.
    pub const INVALID: u8 = 2;
    /// The saga failed and every change was rolled back.
    pub const ROLLED_BACK: u8 = 3;
    /// The saga failed and the rollback did too, or an offboard stopped part-way
    /// (NEEDS_ATTENTION): resources may remain; re-drive it.
    pub const ROLLBACK_FAILED: u8 = 4;
    /// `check-url`: the agent workspace of some instance cannot (or may not) iframe the URL.
    pub const NOT_FRAMEABLE: u8 = 5;
    /// `drift` (without `--fix`): the application differs from its recorded state.
    pub const DRIFTED: u8 = 6;
    /// Another saga holds the namespace or the saga (its lease): nothing was started; wait
    /// for it and run the command again.
    pub const BUSY: u8 = 7;
    /// The command line itself is wrong (an unknown option, a missing argument); sysexits'
    /// EX_USAGE, so it never reads as "invalid spec" (2).
    pub const USAGE: u8 = 64;

    /// The exit codes as `onboard --help` prints them.
    pub const TABLE: &str = "\
Exit codes (a command that runs a saga exits with its final state; so `retry` that completes
a rollback exits 3: the rollback is done and nothing is left):
  0  success: the saga SUCCEEDED, or the command did what it was asked
  1  another error: I/O, AWS configuration or credentials, the saga store
  2  the spec or request is invalid, or preflight REFUSED it: nothing was changed
  3  the saga failed and was ROLLED_BACK: every change was undone
  4  ROLLBACK_FAILED or NEEDS_ATTENTION: resources remain; fix the cause, `onboard retry ID`
  5  check-url: some agent workspace cannot (or may not) iframe the URL
  6  drift: the application differs from its recorded state
  7  busy: another saga holds the namespace or this saga; nothing was started
 64  usage: the command line is wrong (see `onboard COMMAND --help`)";
}

/// Why a command could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot read spec {path}: {source}")]
    ReadSpec {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Rendered in full (every problem) by the caller, not through `Display`.
    #[error("the spec {source_name} is invalid ({} problem(s))", .errors.problems.len())]
    InvalidSpec {
        source_name: String,
        errors: ValidationErrors,
    },
    /// A lifecycle request (edit patch, instance, namespace) breaks a rule; rendered in full.
    #[error("{what} is invalid ({} problem(s))", .errors.problems.len())]
    InvalidRequest {
        what: String,
        errors: ValidationErrors,
    },
    /// The application is not in a state the lifecycle command applies to.
    #[error(transparent)]
    Application(#[from] StateError),
    #[error("application {id} cannot be fixed in place: {reason}")]
    NotFixable { id: String, reason: String },
    #[error("{message}")]
    Config { message: String, fix: String },
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the sandbox could not start: {0}")]
    Sandbox(#[from] SandboxError),
    #[error("saga {0} not found")]
    NotFound(String),
    #[error("no saga has been recorded yet{0}")]
    NoSagas(String),
    #[error("saga {id} is being run by {owner} until {until}")]
    Busy {
        id: String,
        owner: String,
        until: String,
    },
    #[error("saga {id} is {status}: there is nothing to retry")]
    NothingToRetry { id: String, status: String },
    /// An AWS (or sandbox) call made while planning failed.
    #[error("{}: {}", .0.code, .0.message)]
    Service(#[from] ErrorInfo),
    #[error("namespace {namespace} is already onboarded as application {app}, and the spec differs in: {differs}")]
    AlreadyOnboarded {
        app: String,
        namespace: String,
        differs: String,
    },
    #[error("offboard not confirmed: {}", match .typed {
        Some(t) => format!("{t:?} is not the namespace {namespace}"),
        None => format!("the namespace {namespace} was not typed"),
    })]
    NotConfirmed {
        namespace: String,
        typed: Option<String>,
    },
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// The set-up fix for a store error `DynamoDB <Op> failed: <Code>: ...`, when the code says the
/// caller's credentials, Region or endpoint are the problem.
fn store_code_fix(message: &str) -> Option<&'static str> {
    let rest = message.split_once(" failed: ")?.1;
    let code = rest.split_once(':')?.0.trim();
    onboard_aws::sdk_errors::setup_fix(code)
}

impl CliError {
    /// The reader went away (`onboard list | head -1`): not an error worth a message.
    pub fn is_closed_pipe(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::InvalidSpec { .. }
            | CliError::InvalidRequest { .. }
            | CliError::NotConfirmed { .. }
            | CliError::AlreadyOnboarded { .. } => exit::INVALID,
            CliError::Submit(SubmitError::PayloadMismatch { .. }) => exit::INVALID,
            CliError::Submit(
                SubmitError::NamespaceBusy { .. } | SubmitError::InProgress { .. },
            )
            | CliError::Busy { .. } => exit::BUSY,
            _ => exit::OTHER,
        }
    }

    /// A stable, machine-readable name for `--output json`.
    pub fn code(&self) -> &'static str {
        match self {
            CliError::ReadSpec { .. } => "SpecUnreadable",
            CliError::InvalidSpec { .. } => "InvalidSpec",
            CliError::InvalidRequest { .. } => "InvalidRequest",
            CliError::Application(StateError::NotAnApplication { .. }) => "NotAnApplication",
            CliError::Application(StateError::NotOnboarded { .. }) => "ApplicationNotOnboarded",
            CliError::Application(StateError::Offboarded { .. }) => "ApplicationOffboarded",
            CliError::Application(StateError::Corrupt { .. }) => "RecordCorrupt",
            CliError::NotFixable { .. } => "DriftNotFixable",
            CliError::Config { .. } => "Configuration",
            CliError::Submit(SubmitError::NamespaceBusy { .. }) => "NamespaceBusy",
            CliError::Submit(SubmitError::PayloadMismatch { .. }) => "IdempotencyKeyReused",
            CliError::Submit(_) => "SubmitFailed",
            CliError::Store(_) => "StoreFailed",
            CliError::Engine(_) => "EngineFailed",
            CliError::Sandbox(_) => "SandboxFailed",
            CliError::NotFound(_) => "SagaNotFound",
            CliError::NoSagas(_) => "NoSagas",
            CliError::Busy { .. } => "SagaBusy",
            CliError::NothingToRetry { .. } => "NothingToRetry",
            CliError::Service(_) => "ServiceError",
            CliError::NotConfirmed { .. } => "NotConfirmed",
            CliError::AlreadyOnboarded { .. } => "AlreadyOnboarded",
            CliError::Output(_) => "OutputFailed",
        }
    }

    /// What the operator should do next.
    pub fn fix(&self) -> Option<String> {
        Some(match self {
            CliError::ReadSpec { .. } => "Check the path (use `-` to read the spec from standard input).".into(),
            CliError::InvalidSpec { .. } | CliError::InvalidRequest { .. } => {
                "Correct every listed field, then run the command again.".into()
            }
            CliError::Application(StateError::NotAnApplication { parent, .. }) => format!(
                "Run the command with {parent}, the application's id."
            ),
            CliError::Application(StateError::NotOnboarded { id, .. }) => format!(
                "Only a SUCCEEDED onboarding has an application; see `onboard status {id}`."
            ),
            CliError::Application(StateError::Offboarded { .. }) => {
                "Onboard it again with `onboard apply SPEC` (a new application id).".into()
            }
            CliError::Application(StateError::Corrupt { .. }) => {
                "Inspect the record with `onboard status ID --output json`; report the defect."
                    .into()
            }
            CliError::NotFixable { id, .. } => format!(
                "Offboard it (`onboard offboard {id}` cleans up what is left) and onboard it again."
            ),
            CliError::Config { fix, .. } => fix.clone(),
            CliError::Submit(SubmitError::NamespaceBusy { saga_id, .. }) => format!(
                "Wait for saga {saga_id} to finish (`onboard status {saga_id}`); if it is \
                 ROLLBACK_FAILED, fix its cause and run `onboard retry {saga_id}`."
            ),
            CliError::Submit(SubmitError::PayloadMismatch { .. }) => {
                "Use a new --idempotency-key for a changed spec.".into()
            }
            CliError::Submit(SubmitError::InProgress { .. }) => {
                "Another submission with this key is being recorded; run the command again shortly.".into()
            }
            CliError::Store(StoreError::Backend(message)) if store_code_fix(message).is_some() => {
                return store_code_fix(message).map(str::to_string)
            }
            CliError::Store(StoreError::Backend(_)) => {
                "Check that the saga store is reachable (sandbox: no other `onboard` process uses \
                 the same --state-dir; AWS: the table exists and your credentials can use it)."
                    .into()
            }
            CliError::Submit(_) | CliError::Store(_) | CliError::Engine(_) => {
                "Run the command again; the saga record is the source of truth, so nothing is lost.".into()
            }
            CliError::Sandbox(_) => "Check the --seed file (see `onboard-sandbox --print-demo-seed`).".into(),
            CliError::NotFound(_) => "List the known sagas with `onboard list`.".into(),
            CliError::NoSagas(_) => "Start one with `onboard apply SPEC`.".into(),
            CliError::Busy { id, .. } => format!(
                "Another process is running it; wait for its lease to expire, then `onboard retry {id}`."
            ),
            CliError::NothingToRetry { id, status } if status == "REFUSED" => format!(
                "It was refused before any change: fix each finding `onboard status {id}` lists, then submit the request again."
            ),
            CliError::NothingToRetry { id, .. } => format!("See `onboard status {id}`."),
            CliError::Service(info) => return info.fix.clone(),
            CliError::AlreadyOnboarded { app, .. } => format!(
                "Nothing was changed. Change the application with `onboard edit {app} PATCH.json` \
                 (a JSON object of the differing fields), or offboard it first \
                 (`onboard offboard {app}`) to onboard it anew."
            ),
            CliError::NotConfirmed { namespace, .. } => format!(
                "Nothing was changed. Type {namespace} when asked (or pipe it: `echo {namespace} | \
                 onboard offboard ID`), pass --yes in scripts, or see what would go with --dry-run."
            ),
            CliError::Output(_) => return None,
        })
    }
}
