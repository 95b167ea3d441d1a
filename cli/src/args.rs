//! The command line: global target/output options and one subcommand per use case.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::faults::FaultArg;

/// Onboard third-party web apps into the Amazon Connect agent workspace: create the
/// AppIntegrations application, associate it with instances, grant the service-linked-role
/// policy and security profiles — with automatic rollback when a step fails.
#[derive(Debug, Parser)]
#[command(name = "onboard", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where to run and how to print; accepted before or after the subcommand.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Run against the in-process sandbox (AppIntegrations, Connect and IAM emulated locally,
    /// demo instances) with the saga log in a local file instead of AWS.
    #[arg(long, global = true)]
    pub sandbox: bool,

    /// Seed the sandbox from this JSON file instead of the built-in demo world.
    #[arg(long, global = true, value_name = "FILE")]
    pub seed: Option<PathBuf>,

    /// Where sandbox mode keeps its saga log.
    #[arg(long, global = true, value_name = "DIR", default_value = ".onboard")]
    pub state_dir: PathBuf,

    /// DynamoDB table holding the saga log (AWS mode).
    #[arg(long, global = true, env = "ONBOARD_TABLE", value_name = "NAME")]
    pub table: Option<String>,

    /// Send every AWS call to this endpoint (your own emulators) instead of AWS.
    #[arg(long, global = true, value_name = "URL", conflicts_with = "sandbox")]
    pub endpoint_url: Option<String>,

    /// Sandbox only: fail the Nth call of an operation, e.g. `CreateIntegrationAssociation:2`
    /// (optionally `OP:N:ErrorCode`). Repeatable.
    #[arg(long = "inject-fault", global = true, value_name = "OP:N")]
    pub inject_fault: Vec<FaultArg>,

    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// For people: aligned text, live progress.
    Text,
    /// For scripts: one JSON document on stdout.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a spec and show what `apply` would change; changes nothing.
    Plan(PlanArgs),
    /// Onboard the application a spec describes, rolling back on failure.
    Apply(ApplyArgs),
    /// Show one saga (the most recent when ID is omitted).
    Status(StatusArgs),
    /// List recorded sagas, newest first.
    List(ListArgs),
    /// Re-drive a ROLLBACK_FAILED saga after fixing its cause (or resume a stalled one).
    Retry(RetryArgs),
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The application spec (JSON); `-` reads standard input.
    pub spec: PathBuf,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The application spec (JSON); `-` reads standard input.
    pub spec: PathBuf,
    /// Idempotency key: applying the same spec again with the same key returns the first saga
    /// instead of starting another.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Saga id; the most recently created saga when omitted.
    pub id: Option<String>,
    /// Also print the saga's event log.
    #[arg(long)]
    pub log: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only sagas in this status (e.g. ROLLED_BACK, rollback_failed).
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// At most this many sagas.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The saga to re-drive.
    pub id: String,
}
