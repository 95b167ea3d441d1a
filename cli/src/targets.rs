//! Wiring the two targets: real AWS (default credential chain and Region, saga log in DynamoDB)
//! or `--sandbox` (the in-process emulator, saga log in a redb file under `--state-dir`).
//!
//! The sandbox lives inside this process; its world (applications, associations, policies,
//! grants) persists across commands next to the saga log, as a sandbox snapshot in
//! `--state-dir`/`sandbox-world.json`: loaded when a command starts the sandbox, saved after
//! every recorded transition of a saga the command runs (the record is written after each side
//! effect, so the saved world is never older than the log) and when it ends. A snapshot restores
//! the world exactly, association ids included, so `apply` then `offboard` (or a `retry` after a
//! crash) find what the earlier command made. `--reset-sandbox` starts the world over from the
//! seed (the saga log is kept; delete the state directory to forget both).

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use onboard_aws::{ConnectRate, DynamoSagaStore, SdkTimeouts};
use onboard_core::clock::SystemClock;
use onboard_core::engine::EngineConfig;
use onboard_core::locks::{ResourceLocks, LOCK_TTL};
use onboard_core::onboard::{self, OnboardConfig, OnboardPorts};
use onboard_core::saga::{RetryPolicy, SagaDef};
use onboard_core::store::SagaStore;
use onboard_embedded::RedbSagaStore;
use onboard_sandbox::{
    RunningSandbox, Sandbox, SandboxConfig, SandboxHandle, SeedConfig, ThrottleConfig,
};
use tokio::sync::OnceCell;

use crate::args::GlobalArgs;
use crate::error::CliError;

/// The saga database's file name inside `--state-dir`.
pub const STATE_FILE: &str = "sagas.redb";
/// The sandbox world between commands (a `SandboxHandle::snapshot`; readable JSON whose
/// top-level keys are the world's: `applications`, `integration_associations`, `roles`, …).
pub const WORLD_FILE: &str = "sandbox-world.json";

/// The parsed global options plus the AWS configuration, loaded at most once.
pub struct Context {
    pub global: GlobalArgs,
    sdk: OnceCell<SdkConfig>,
    /// Every SDK call's timeouts (`SDK_*_TIMEOUT_MS`), checked against the resource lock's lease.
    timeouts: SdkTimeouts,
}

impl Context {
    /// Checks option combinations that clap cannot express.
    pub fn new(global: GlobalArgs) -> Result<Self, CliError> {
        if !global.sandbox && (global.seed.is_some() || !global.inject_fault.is_empty()) {
            return Err(CliError::Config {
                message: "--seed and --inject-fault only apply to the sandbox".into(),
                fix: "Add --sandbox, or drop those options to run against AWS.".into(),
            });
        }
        let timeouts = SdkTimeouts::from_lookup(|name| std::env::var(name).ok())
            .and_then(|t| t.validate(LOCK_TTL).map(|()| t))
            .map_err(|e| CliError::Config {
                message: format!("the AWS SDK timeouts are invalid: {e}"),
                fix: "Fix or unset SDK_CONNECT_TIMEOUT_MS, SDK_READ_TIMEOUT_MS, \
                      SDK_ATTEMPT_TIMEOUT_MS and SDK_OPERATION_TIMEOUT_MS (milliseconds; \
                      defaults 3000, 10000, 10000, 25000)."
                    .into(),
            })?;
        Ok(Context {
            global,
            sdk: OnceCell::new(),
            timeouts,
        })
    }

    pub fn sandbox(&self) -> bool {
        self.global.sandbox
    }

    /// The shared AWS configuration (AWS mode): the standard credential and Region chain.
    async fn aws(&self) -> &SdkConfig {
        self.sdk
            .get_or_init(|| {
                onboard_aws::sdk_config(self.global.endpoint_url.as_deref(), &self.timeouts)
            })
            .await
    }

    /// The target options to repeat in a suggested follow-up command.
    pub fn target_flags(&self) -> String {
        let g = &self.global;
        let mut flags = String::new();
        if g.sandbox {
            flags.push_str(" --sandbox");
            if g.state_dir != std::path::Path::new(".onboard") {
                flags.push_str(&format!(" --state-dir {}", g.state_dir.display()));
            }
        } else {
            if let Some(t) = &g.table {
                flags.push_str(&format!(" --table {t}"));
            }
            if let Some(e) = &g.endpoint_url {
                flags.push_str(&format!(" --endpoint-url {e}"));
            }
        }
        flags
    }

    fn state_path(&self) -> PathBuf {
        self.global.state_dir.join(STATE_FILE)
    }

    /// The saga log. `None` when `create` is false and sandbox mode has no database yet
    /// (reading commands never create state).
    pub async fn store(&self, create: bool) -> Result<Option<Stores>, CliError> {
        if self.sandbox() {
            let path = self.state_path();
            if !create && !path.exists() {
                return Ok(None);
            }
            std::fs::create_dir_all(&self.global.state_dir).map_err(|e| CliError::Config {
                message: format!(
                    "cannot create the state directory {}: {e}",
                    self.global.state_dir.display()
                ),
                fix: "Choose a writable directory with --state-dir.".into(),
            })?;
            let store = RedbSagaStore::open(&path)?;
            let store = Arc::new(store);
            return Ok(Some(Stores {
                store: store.clone(),
                locks: store,
                location: path.display().to_string(),
            }));
        }
        let Some(table) = self.global.table.clone() else {
            return Err(CliError::Config {
                message: "no DynamoDB table is configured for the saga log".into(),
                fix: "Pass --table NAME or set ONBOARD_TABLE (the table the SAM stack created), \
                      or add --sandbox to run locally."
                    .into(),
            });
        };
        let client = aws_sdk_dynamodb::Client::new(self.aws().await);
        let store = Arc::new(DynamoSagaStore::new(client, table.clone()));
        Ok(Some(Stores {
            store: store.clone(),
            locks: store,
            location: format!("DynamoDB table {table}"),
        }))
    }

    /// The AWS services the saga changes: the sandbox (started here, with faults armed) or AWS.
    pub async fn world(&self, locks: Arc<dyn ResourceLocks>) -> Result<World, CliError> {
        if !self.sandbox() {
            return Ok(World {
                ports: Arc::new(onboard_aws::onboard_ports(
                    self.aws().await,
                    ConnectRate::default(),
                    locks,
                    Arc::new(SystemClock),
                )),
                sandbox: None,
                tuning: Tuning::aws(),
                sdk: self.aws().await.clone(),
            });
        }
        let seed = match &self.global.seed {
            Some(path) => SeedConfig::from_file(path)?,
            None => SeedConfig::demo(),
        };
        let running = Sandbox::start(SandboxConfig {
            seed: seed.clone(),
            // The demo should be snappy; the client-side limiter still paces Connect calls.
            throttle: ThrottleConfig::unlimited(),
            // A fresh id stream per run, so ids never repeat across invocations in one log.
            rng_seed: fastrand::u64(..),
            ..SandboxConfig::default()
        })
        .await?;
        self.restore_world(&running, &seed)?;
        // Every write the sandbox acknowledges is in the world file first: a command killed
        // right after a call must not leave its saga log ahead of the emulated AWS (issue 22.2).
        let state_dir = self.global.state_dir.clone();
        running.state().persist_with(Arc::new(move |snapshot| {
            write_snapshot_file(snapshot, &state_dir)
        }));
        for fault in &self.global.inject_fault {
            running.state().add_fault(fault.spec());
        }
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(running.endpoint())
            .region(Region::new(seed.region.clone()))
            .credentials_provider(Credentials::new(
                "sandbox", "sandbox", None, None, "sandbox",
            ))
            // The saga's own retries (visible in the log) do the work, as in the tests.
            .retry_config(RetryConfig::disabled())
            .timeout_config(self.timeouts.timeout_config())
            .load()
            .await;
        let rate = ConnectRate {
            per_second: NonZeroU32::new(50).unwrap_or(NonZeroU32::MIN),
            burst: NonZeroU32::new(50).unwrap_or(NonZeroU32::MIN),
        };
        Ok(World {
            ports: Arc::new(onboard_aws::onboard_ports(
                &sdk,
                rate,
                locks,
                Arc::new(SystemClock),
            )),
            sandbox: Some(SandboxWorld {
                running,
                seed,
                save_warned: Default::default(),
            }),
            tuning: Tuning::sandbox(),
            sdk,
        })
    }
}

impl Context {
    fn world_path(&self) -> PathBuf {
        self.global.state_dir.join(WORLD_FILE)
    }

    /// Carry on from the world the previous command saved, unless `--reset-sandbox` asks to
    /// start over (the saved file is removed so later commands start over too). A saved world
    /// of another seed than an explicit `--seed` is refused rather than mixed.
    fn restore_world(&self, running: &RunningSandbox, seed: &SeedConfig) -> Result<(), CliError> {
        let path = self.world_path();
        let start_over = |why: String| CliError::Config {
            message: format!(
                "cannot continue from the saved sandbox world {}: {why}",
                path.display()
            ),
            fix: "Add --reset-sandbox to start the sandbox world over from the seed (the saga \
                  log is kept; its records then refer to resources the new world lacks)."
                .into(),
        };
        if self.global.reset_sandbox {
            return match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(start_over(format!("it cannot be removed: {e}"))),
            };
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(start_over(e.to_string())),
        };
        let saved: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| start_over(e.to_string()))?;
        if self.global.seed.is_some()
            && serde_json::to_value(seed).ok().as_ref() != saved.get("seed")
        {
            return Err(start_over(
                "it was seeded differently from --seed".to_string(),
            ));
        }
        running
            .state()
            .restore(&saved)
            .map_err(|e| start_over(e.to_string()))
    }
}

/// The saga log and the lock table next to it.
pub struct Stores {
    pub store: Arc<dyn SagaStore>,
    pub locks: Arc<dyn ResourceLocks>,
    /// For messages: the file or table.
    pub location: String,
}

/// The services the saga talks to.
pub struct World {
    pub ports: Arc<OnboardPorts>,
    pub sandbox: Option<SandboxWorld>,
    pub tuning: Tuning,
    /// The SDK configuration the ports were built from (for clients beyond the saga's ports,
    /// e.g. the permission simulator of `plan`).
    pub sdk: SdkConfig,
}

/// The running in-process sandbox and the seed it started from.
pub struct SandboxWorld {
    pub running: RunningSandbox,
    pub seed: SeedConfig,
    /// Set once a failed save was reported.
    save_warned: std::sync::atomic::AtomicBool,
}

impl SandboxWorld {
    /// Save the world in the state directory for the next command (and for people to read:
    /// the SLR policies, grants and associations). Written to a temporary file and renamed, so
    /// a killed process never leaves half a world.
    pub fn save(&self, state_dir: &std::path::Path) -> std::io::Result<()> {
        save_world_file(self.running.state(), state_dir)
    }

    /// [`SandboxWorld::save`], warning once on stderr when it fails: the saga itself is not
    /// affected, but the next command would start from an older world.
    pub fn save_or_warn(&self, state_dir: &std::path::Path) {
        if let Err(e) = self.save(state_dir) {
            if !self
                .save_warned
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                eprintln!(
                    "warning: cannot save the sandbox world in {}: {e}; the next command may \
                     start from an older world",
                    state_dir.join(WORLD_FILE).display()
                );
            }
        }
    }

    /// Security profile id → name, per instance, from the seed.
    pub fn profile_names(&self) -> BTreeMap<(String, String), String> {
        self.seed
            .instances
            .iter()
            .flat_map(|i| {
                i.security_profiles
                    .iter()
                    .map(|p| ((i.id.clone(), p.id.clone()), p.name.clone()))
            })
            .collect()
    }

    /// Stop serving and wait for in-flight calls.
    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

/// Write `sandbox`'s snapshot to `state_dir`/[`WORLD_FILE`]: to a temporary file, then renamed,
/// so a killed process never leaves half a world.
pub fn save_world_file(
    sandbox: &SandboxHandle,
    state_dir: &std::path::Path,
) -> std::io::Result<()> {
    write_snapshot_file(&sandbox.snapshot(), state_dir)
}

/// Write a sandbox snapshot to `state_dir`/[`WORLD_FILE`], atomically (temporary file, then
/// rename).
pub fn write_snapshot_file(
    snapshot: &serde_json::Value,
    state_dir: &std::path::Path,
) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(snapshot).map_err(std::io::Error::other)?;
    std::fs::create_dir_all(state_dir)?;
    let tmp = state_dir.join(format!("{WORLD_FILE}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, state_dir.join(WORLD_FILE))
}

/// Engine and step settings per target.
#[derive(Debug, Clone)]
pub struct Tuning {
    pub engine: EngineConfig,
    /// Replaces every step's retry policy when set.
    pub step_retry: Option<RetryPolicy>,
}

impl Tuning {
    fn aws() -> Self {
        Tuning {
            engine: EngineConfig::default(),
            step_retry: None,
        }
    }

    /// Millisecond backoff and a short lease: nothing in the sandbox is slow, and a crashed
    /// CLI run can be resumed a few seconds later.
    fn sandbox() -> Self {
        Tuning {
            engine: EngineConfig {
                lease_ttl: Duration::from_secs(10),
                ..EngineConfig::default()
            },
            step_retry: Some(RetryPolicy {
                max_attempts: 5,
                base_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(200),
                budget: Duration::from_secs(5),
            }),
        }
    }

    /// The onboard saga definition with these settings.
    pub fn definition(&self) -> SagaDef<OnboardPorts> {
        let mut def = onboard::definition(&OnboardConfig::default());
        if let Some(retry) = self.step_retry {
            for step in &mut def.steps {
                step.retry = retry;
                step.undo_retry = retry;
            }
        }
        def
    }
}
