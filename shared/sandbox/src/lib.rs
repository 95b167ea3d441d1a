//! A stateful, wire-compatible emulator of the AppIntegrations, Connect and IAM operations the
//! onboarding product uses, for tests (in-process on a loopback port) and local runs (the
//! `onboard-sandbox` binary). Any AWS SDK or the AWS CLI can be pointed at it with an endpoint
//! URL; see the crate README for what it models and what it does not.
//!
//! ```no_run
//! # async fn demo() -> Result<(), onboard_sandbox::SandboxError> {
//! use onboard_sandbox::{Sandbox, SandboxConfig};
//! let sandbox = Sandbox::start(SandboxConfig::default()).await?;
//! println!("endpoint: {}", sandbox.endpoint());
//! let pristine = sandbox.state().dump();
//! # let _ = pristine; Ok(()) }
//! ```

mod appintegrations;
mod clock;
mod connect;
mod control;
mod error;
mod faults;
mod iam;
mod paging;
mod policy;
mod restjson;
mod seed;
mod server;
mod shared_state;
mod state;
mod throttle;
mod validate;
mod wire;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::SandboxError;
pub use faults::{FaultError, FaultMode, FaultRule, FaultSpec};
pub use seed::{
    ApplicationSeed, CallerSeed, GrantSeed, InstanceSeed, RoleSeed, SecurityProfileSeed,
    SeedConfig, DEMO_ACCOUNT, DEMO_INSTANCE_EAST, DEMO_INSTANCE_LEGACY, DEMO_INSTANCE_SUPPORT,
    DEMO_PROFILE_EAST_AGENT,
};
pub use server::{RunningSandbox, Sandbox, SandboxConfig, SandboxHandle};
pub use shared_state::{CallRecord, Persist};
pub use throttle::{Rate, ServiceRates, ThrottleConfig};
pub use wire::{ApiError, Service};
