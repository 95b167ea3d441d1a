//! Wiring the two targets: real AWS (default credential chain and Region, saga log in DynamoDB)
//! or `--sandbox` (the in-process emulator, saga log in a redb file under `--state-dir`).
//!
//! The sandbox lives inside this process, so its world (applications, associations, policies)
//! starts from the seed on every invocation; only the saga log persists. The sandbox cannot
//! restore a dumped world exactly (its seed format has no integration-association ids), and a
//! world rebuilt with new association ids would make later re-drives undo the wrong thing, so
//! each command gets a fresh world and `status`/`list` read the persisted saga records.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use onboard_aws::{ConnectRate, DynamoSagaStore};
use onboard_core::clock::SystemClock;
use onboard_core::engine::EngineConfig;
use onboard_core::locks::ResourceLocks;
use onboard_core::onboard::{self, OnboardConfig, OnboardPorts};
use onboard_core::saga::{RetryPolicy, SagaDef};
use onboard_core::store::SagaStore;
use onboard_embedded::RedbSagaStore;
use onboard_sandbox::{RunningSandbox, Sandbox, SandboxConfig, SeedConfig, ThrottleConfig};
use tokio::sync::OnceCell;

use crate::args::GlobalArgs;
use crate::error::CliError;

/// The saga database's file name inside `--state-dir`.
pub const STATE_FILE: &str = "sagas.redb";
/// Where sandbox runs leave the world they ended with, for inspection (never read back).
pub const WORLD_FILE: &str = "sandbox-world.json";

/// The parsed global options plus the AWS configuration, loaded at most once.
pub struct Context {
    pub global: GlobalArgs,
    sdk: OnceCell<SdkConfig>,
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
        Ok(Context {
            global,
            sdk: OnceCell::new(),
        })
    }

    pub fn sandbox(&self) -> bool {
        self.global.sandbox
    }

    /// The shared AWS configuration (AWS mode): the standard credential and Region chain.
    async fn aws(&self) -> &SdkConfig {
        self.sdk
            .get_or_init(|| onboard_aws::sdk_config(self.global.endpoint_url.as_deref()))
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
            sandbox: Some(SandboxWorld { running, seed }),
            tuning: Tuning::sandbox(),
            sdk,
        })
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
}

impl SandboxWorld {
    /// Leave the final world in the state directory so people can see what a run did (the
    /// SLR policies, grants and associations). Best effort: failing to write it is not a
    /// failed onboarding.
    pub fn save_dump(&self, state_dir: &std::path::Path) {
        let dump = self.running.state().dump();
        if let Ok(text) = serde_json::to_string_pretty(&dump) {
            let _ = std::fs::write(state_dir.join(WORLD_FILE), text);
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
