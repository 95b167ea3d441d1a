//! `chaos`: the seeded fault campaign (see `onboard_integration_tests::chaos`). Run it through
//! `scripts/chaos.sh`, which builds it in release mode and starts moto for the DynamoDB store.

use clap::{Parser, ValueEnum};
use onboard_integration_tests::chaos::{self, Config, StoreChoice};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Store {
    Redb,
    Dynamodb,
    /// Alternate per episode (DynamoDB only when MOTO_ENDPOINT is set).
    Both,
}

/// A seeded, reproducible chaos campaign against the sandbox and the real saga stores.
#[derive(Debug, Parser)]
#[command(name = "chaos")]
struct Args {
    /// The campaign's seed: the same seed gives the same fault schedule.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop once this many faults were injected.
    #[arg(long, default_value_t = 1000)]
    faults: u64,
    /// Stop once this many sagas ran (whichever comes first).
    #[arg(long)]
    sagas: Option<u64>,
    #[arg(long, value_enum, default_value_t = Store::Both)]
    store: Store,
    /// Replay one episode of the campaign (as printed with a violation).
    #[arg(long)]
    episode: Option<u64>,
    /// Trials per episode (a fresh sandbox and store each).
    #[arg(long, default_value_t = 12)]
    trials: u32,
    /// One line per trial on stderr.
    #[arg(long, short)]
    verbose: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let config = Config {
        seed: args.seed,
        faults: args.faults,
        sagas: args.sagas,
        store: match args.store {
            Store::Redb => StoreChoice::Redb,
            Store::Dynamodb => StoreChoice::Dynamo,
            Store::Both => StoreChoice::Both,
        },
        trials_per_episode: args.trials,
        episode: args.episode,
        verbose: args.verbose,
    };
    if config.store == StoreChoice::Dynamo && std::env::var("MOTO_ENDPOINT").is_err() {
        eprintln!("chaos: --store dynamodb needs MOTO_ENDPOINT (scripts/chaos.sh starts moto)");
        return std::process::ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chaos: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let started = std::time::Instant::now();
    let report = runtime.block_on(chaos::run(&config));
    for v in &report.violations {
        eprintln!("{v}");
    }
    eprintln!(
        "chaos: {} episodes, {} trials in {:.1} s",
        report.episodes,
        report.trials,
        started.elapsed().as_secs_f64()
    );
    println!("{}", report.summary(config.seed));
    if report.violations.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
