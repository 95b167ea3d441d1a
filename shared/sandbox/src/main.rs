//! `onboard-sandbox`: runs the emulator standalone until Ctrl-C.

use clap::Parser;
use onboard_sandbox::{Sandbox, SandboxConfig, SeedConfig};
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Local, stateful emulator of the AppIntegrations, Connect and IAM operations used for
/// onboarding third-party apps into Amazon Connect.
#[derive(Debug, Parser)]
#[command(name = "onboard-sandbox", version)]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 4599)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Seed file (JSON); the built-in demo world when absent.
    #[arg(long)]
    seed: Option<PathBuf>,
    /// Turn off Connect's default throttling (2 requests/s, burst 5 per API).
    #[arg(long)]
    no_throttle: bool,
    /// Print the built-in demo seed as JSON (a template for --seed) and exit.
    #[arg(long)]
    print_demo_seed: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.print_demo_seed {
        return match serde_json::to_string_pretty(&SeedConfig::demo()) {
            Ok(json) => {
                let _ = writeln!(std::io::stdout(), "{json}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("onboard-sandbox: {error}");
                ExitCode::from(1)
            }
        };
    }
    let seed = match &args.seed {
        Some(path) => match SeedConfig::from_file(path) {
            Ok(seed) => seed,
            Err(error) => {
                eprintln!("onboard-sandbox: {error}");
                return ExitCode::from(2);
            }
        },
        None => SeedConfig::demo(),
    };
    let mut config = SandboxConfig {
        seed,
        host: args.host,
        port: args.port,
        ..SandboxConfig::default()
    };
    if args.no_throttle {
        config.throttle = onboard_sandbox::ThrottleConfig::unlimited();
    }
    let sandbox = match Sandbox::start(config).await {
        Ok(sandbox) => sandbox,
        Err(error) => {
            eprintln!("onboard-sandbox: {error}");
            return ExitCode::from(1);
        }
    };
    // Written without println! so a closed stdout (a parent that read the first line and
    // went away) cannot take the server down.
    let mut out = std::io::stdout();
    let _ = writeln!(out, "onboard-sandbox listening on {}", sandbox.endpoint());
    let _ = writeln!(out, "control API: {}/_sandbox/state", sandbox.endpoint());
    let _ = out.flush();
    if let Err(error) = tokio::signal::ctrl_c().await {
        eprintln!("onboard-sandbox: cannot wait for Ctrl-C: {error}");
    }
    sandbox.shutdown().await;
    ExitCode::SUCCESS
}
