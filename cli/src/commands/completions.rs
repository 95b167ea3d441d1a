//! `onboard completions SHELL`: a completion script generated from the same command definition
//! the parser uses, so it can never list an option that does not exist.

use clap::CommandFactory;

use crate::args::{Cli, CompletionsArgs};
use crate::error::CliError;

pub fn run(args: &CompletionsArgs) -> Result<u8, CliError> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "onboard", &mut out);
    crate::render::print_bytes(&out)?;
    Ok(0)
}
