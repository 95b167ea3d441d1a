//! `onboard`: the operator's and CI's entry point to Amazon Connect third-party app onboarding.
//! Parses the command line, runs one command on a tokio runtime, and turns the result into an
//! exit code (see [`error::exit`]).

mod args;
mod changes;
mod commands;
mod error;
mod faults;
mod progress;
mod render;
mod targets;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command, OutputFormat};
use crate::error::{exit, CliError};
use crate::targets::Context;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Exit 2 means "invalid spec" here; a bad command line has its own code.
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let output = cli.global.output;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::OTHER);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        // What was asked is done; the reader just stopped reading. Exit like `yes | head`
        // does in a shell without SIGPIPE's noise.
        Err(err) if err.is_closed_pipe() => ExitCode::from(exit::OK),
        Err(err) => {
            report(&err, output);
            ExitCode::from(err.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<u8, CliError> {
    let ctx = Context::new(cli.global)?;
    match &cli.command {
        Command::Plan(a) => commands::plan::run(&ctx, a).await,
        Command::Apply(a) => commands::apply::run(&ctx, a).await,
        Command::Status(a) => commands::status::run(&ctx, a).await,
        Command::List(a) => commands::list::run(&ctx, a).await,
        Command::Retry(a) => commands::retry::run(&ctx, a).await,
        Command::Edit(a) => commands::edit::run(&ctx, a).await,
        Command::Pause(a) => commands::pause::run(&ctx, a, true).await,
        Command::Resume(a) => commands::pause::run(&ctx, a, false).await,
        Command::Offboard(a) => commands::offboard::run(&ctx, a).await,
        Command::Drift(a) => commands::drift::run(&ctx, a).await,
        Command::Adopt(a) => commands::adopt::run(&ctx, a).await,
        Command::History(a) => commands::history::run(&ctx, a).await,
        Command::Serve(a) => commands::serve::run(&ctx, a).await,
        Command::CheckUrl(a) => commands::check_url::run(&ctx, a).await,
        Command::ExportAsl(a) => commands::export_asl::run(&ctx, a),
        Command::Completions(a) => commands::completions::run(a),
    }
}

/// JSON errors go to stdout (scripts read one document there); text errors to stderr.
fn report(err: &CliError, output: OutputFormat) {
    match output {
        OutputFormat::Json => {
            if render::print_json(&render::error_json(err)).is_err() {
                eprintln!("{}", render::error_text(err));
            }
        }
        OutputFormat::Text => {
            let _ = std::io::stderr().write_all(render::error_text(err).as_bytes());
        }
    }
}
