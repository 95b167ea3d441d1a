//! The command line: global target/output options and one subcommand per use case.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::faults::FaultArg;

/// Onboard third-party web apps into the Amazon Connect agent workspace: create the
/// AppIntegrations application, associate it with instances, grant the service-linked-role
/// policy and security profiles — with automatic rollback when a step fails.
#[derive(Debug, Parser)]
#[command(
    name = "onboard",
    version,
    propagate_version = true,
    after_help = crate::error::exit::TABLE
)]
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

    /// Sandbox only: start the sandbox world over from the seed instead of continuing from the
    /// world earlier commands left in --state-dir (the saga log is kept).
    #[arg(long, global = true)]
    pub reset_sandbox: bool,

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
    /// List recorded sagas, oldest first like the API (the most recent --limit of them).
    List(ListArgs),
    /// Re-drive a ROLLBACK_FAILED or NEEDS_ATTENTION saga after fixing its cause (or resume a
    /// stalled one).
    Retry(RetryArgs),
    /// Edit an onboarded application (fields, instances, profiles) from a JSON patch.
    Edit(EditArgs),
    /// Stop an application on one instance without losing its set-up.
    Pause(InstanceArgs),
    /// Undo a pause: the application is used on the instance again.
    Resume(InstanceArgs),
    /// Remove an application and everything hanging off it (grants, policy statements,
    /// associations, also ones made outside this tool), after you type its namespace.
    Offboard(OffboardArgs),
    /// Compare an application with AWS now; `--fix` re-applies its recorded state.
    Drift(DriftArgs),
    /// Bring an application created elsewhere (the console) under management.
    Adopt(AdoptArgs),
    /// Every saga on an application, oldest first: who asked, ticket, when, outcome and what
    /// changed (before → after).
    History(HistoryArgs),
    /// Serve the HTTP API and run the submitted sagas in this process (local use).
    #[command(long_about = SERVE_ABOUT)]
    Serve(ServeArgs),
    /// Check that the agent workspace of each instance may iframe a URL (CSP frame-ancestors /
    /// X-Frame-Options); exit 5 when any domain is blocked or unknown.
    #[command(long_about = CHECK_URL_ABOUT)]
    CheckUrl(CheckUrlArgs),
    /// Write each saga definition as Amazon States Language for Step Functions
    /// (`<kind>.asl.json`, task handler `onboard-step`); nothing else is touched.
    ExportAsl(ExportAslArgs),
    /// Print a shell completion script, e.g. `onboard completions bash > ~/.local/share/bash-completion/completions/onboard`.
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: clap_complete::Shell,
}

const CHECK_URL_ABOUT: &str = "\
Fetch URL (following at most 5 redirects, sending no credentials) and decide, from the final \
response's Content-Security-Policy frame-ancestors and X-Frame-Options headers, whether each \
instance's agent workspace (https://ALIAS.my.connect.aws and https://ALIAS.awsapps.com) may \
iframe it. Each domain is reported as allowed, blocked or unknown, with the header evidence and \
the frame-ancestors source the app's developer has to add.

--instance takes an instance alias, or an instance id/ARN whose alias is read with \
DescribeInstance (on the in-process sandbox with --sandbox, otherwise on AWS).

Exit codes: 0 every domain allows framing; 5 any domain is blocked or unknown (including a \
failed fetch); 1 other errors (an invalid alias, an unknown instance, AWS errors).";

const SERVE_ABOUT: &str = "\
Serve the HTTP API (POST /applications, GET /applications/{id}, GET /applications, \
POST /preflight, POST /webhooks/{source}, GET /openapi.json, GET /health) and run the submitted \
sagas in this process, one at a time, with the same engine settings as `apply`: \
with --sandbox on the in-process sandbox and the saga log under --state-dir, otherwise on AWS \
with the DynamoDB table from --table / ONBOARD_TABLE.

The caller's identity is read from the X-Onboard-Principal header and TRUSTED AS SENT: anyone \
who can reach the address can submit as anyone. This is for local use; keep the loopback \
address, or put an authenticating proxy in front.

Sagas left PENDING (or interrupted) in the saga log are resumed at start. Ctrl-C stops \
accepting requests, lets the running saga reach its next recorded write and exits 0; the next \
start resumes it.";

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The application spec (JSON); `-` reads standard input.
    pub spec: PathBuf,
    /// Against AWS: also run preflight now (read-only calls: DescribeInstance, ListApplications,
    /// ListRolePolicies/GetRolePolicy, ListSecurityProfileApplications, SimulatePrincipalPolicy,
    /// and a GET of the access URL). `--sandbox` always does.
    #[arg(long)]
    pub live: bool,
    /// The IAM user or role ARN whose permissions preflight simulates (an assumed-role session
    /// ARN is mapped to its role). Default: the identity of the credentials in use; on the
    /// sandbox the spec's requester ARN, else the seed's first caller.
    #[arg(long, value_name = "ARN")]
    pub principal: Option<String>,
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
    /// Only sagas of this kind: onboard, change, fix, offboard or adopt.
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
    /// Only the sagas of one application: its id (the onboard or adopt saga) and every
    /// change, fix and offboard on it.
    #[arg(long, value_name = "APP")]
    pub application: Option<String>,
    /// Only sagas on this namespace (exact).
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Only sagas this principal asked for (exact, e.g. `cli:alice` or an IAM ARN).
    #[arg(long, value_name = "PRINCIPAL")]
    pub requester: Option<String>,
    /// The most recent this many sagas (still printed oldest first).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the URL is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// HMAC secret the ticketing systems sign /webhooks/{source} calls with; a random one is
    /// generated and printed when absent.
    #[arg(
        long,
        env = "ONBOARD_WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub webhook_secret: Option<String>,
    /// A principal (the X-Onboard-Principal value) that may read and change every application
    /// and adopt; everyone else only what they own. Repeatable.
    #[arg(long = "admin", value_name = "PRINCIPAL")]
    pub admins: Vec<String>,
    /// A group (X-Onboard-Groups) whose members are administrators. Repeatable.
    #[arg(long = "admin-group", value_name = "GROUP")]
    pub admin_groups: Vec<String>,
    /// Another Host the server answers to besides 127.0.0.1, localhost and [::1] on its port
    /// (e.g. a name in /etc/hosts); any other Host is refused, which stops DNS rebinding.
    /// Repeatable.
    #[arg(long = "allow-host", value_name = "HOST[:PORT]")]
    pub allow_hosts: Vec<String>,
    /// The token every request but /health, /openapi.json and the signed webhooks must send
    /// (`Authorization: Bearer TOKEN`); a random one is generated and printed when absent.
    #[arg(
        long,
        env = "ONBOARD_SERVE_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Let POST /preflight fetch access URLs on loopback and private networks (an intranet
    /// app); by default only public addresses are fetched, so a request cannot make the server
    /// probe the local network or the cloud metadata service.
    #[arg(long)]
    pub allow_private_fetch: bool,
}

#[derive(Debug, Args)]
pub struct CheckUrlArgs {
    /// The page to check, e.g. the application's access URL.
    pub url: String,
    /// An instance alias (`my-center`) or id/ARN. Repeatable.
    #[arg(long = "instance", value_name = "ALIAS_OR_ID", required = true)]
    pub instances: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The saga to re-drive.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    /// The application (the id of its onboard or adopt saga).
    pub id: String,
    /// The changed fields as one JSON object, e.g. {"displayName": "New name"}; `-` reads
    /// standard input. `instances` and `securityProfiles` are complete new lists.
    pub patch: PathBuf,
    /// Idempotency key: the same edit again with the same key returns the first saga.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    #[command(flatten)]
    pub request: RequestArgs,
}

/// Who asked for a day-two request and under which ticket, recorded on its saga for
/// `onboard history`.
#[derive(Debug, Clone, Default, Args)]
pub struct RequestArgs {
    /// The change ticket this request carries out (e.g. CHG0031337).
    #[arg(long, value_name = "ID")]
    pub ticket: Option<String>,
    /// Who asked for it, when not you (default: `cli:$USER`).
    #[arg(long, value_name = "PRINCIPAL")]
    pub requester: Option<String>,
}

#[derive(Debug, Args)]
pub struct InstanceArgs {
    /// The application (the id of its onboard or adopt saga).
    pub id: String,
    /// The Connect instance: id, ARN, or the alias `onboard status` shows for it (`demo-east`).
    pub instance: String,
    #[command(flatten)]
    pub request: RequestArgs,
}

#[derive(Debug, Args)]
pub struct AppArgs {
    /// The application (the id of its onboard or adopt saga).
    pub id: String,
    #[command(flatten)]
    pub request: RequestArgs,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The application (the id of its onboard or adopt saga).
    pub id: String,
}

#[derive(Debug, Args)]
pub struct OffboardArgs {
    /// The application (the id of its onboard or adopt saga).
    pub id: String,
    /// Do not ask for the namespace as confirmation (scripts). Without it the namespace is
    /// read from standard input, so `echo NAMESPACE | onboard offboard ID` also confirms.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Show what would be removed, read from AWS now exactly as the offboard would; change
    /// nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub request: RequestArgs,
}

#[derive(Debug, Args)]
pub struct DriftArgs {
    /// The application (the id of its onboard or adopt saga).
    pub id: String,
    /// When anything drifted, run the fix saga: re-apply the recorded state.
    #[arg(long)]
    pub fix: bool,
    #[command(flatten)]
    pub request: RequestArgs,
}

#[derive(Debug, Args)]
pub struct AdoptArgs {
    /// The application's namespace, as shown in the AppIntegrations console.
    pub namespace: String,
    #[command(flatten)]
    pub request: RequestArgs,
}

#[derive(Debug, Args)]
pub struct ExportAslArgs {
    /// Folder to write the `<kind>.asl.json` files to.
    #[arg(long, value_name = "DIR", default_value = "infra/statemachine")]
    pub out: PathBuf,
    /// Write nothing; exit 1 when a file in DIR differs from the saga definitions.
    #[arg(long)]
    pub check: bool,
}
