//! The short chaos campaign CI runs (a fixed seed, a few hundred faults, both stores); the long
//! one is `scripts/chaos.sh --seed S --faults 10000` (README: Chaos campaign).

use onboard_integration_tests::chaos::{self, Config, StoreChoice};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_seeded_campaign_finds_no_violation() {
    let config = Config {
        seed: 20261204,
        faults: 300,
        store: StoreChoice::Both,
        ..Config::default()
    };
    let report = chaos::run(&config).await;
    println!("{}", report.summary(config.seed));
    assert!(report.faults >= 300, "{report:?}");
    assert!(
        report.violations.is_empty(),
        "{}\n{}",
        report
            .violations
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        report.summary(config.seed)
    );
}
