//! The crate's one error type: failures of the sandbox itself (binding, seeding), as opposed to
//! the AWS-shaped errors it returns to callers on the wire (see `wire::ApiError`).

use std::path::PathBuf;

/// Why the sandbox could not start, seed or serve.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The listener could not be bound (port taken, bad host).
    #[error("could not bind the sandbox listener on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// The seed file could not be read.
    #[error("could not read seed file {path}: {source}")]
    ReadSeed {
        /// The file asked for.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// The seed is not valid JSON or does not have the seed shape.
    #[error("seed field {path}: {source}")]
    SeedJson {
        /// Where in the seed, e.g. `instances[0].id` (`.` for the whole document).
        path: String,
        /// What serde expected there.
        source: serde_json::Error,
    },
    /// The seed parsed but breaks a rule (duplicate ids, bad account id, ...).
    #[error("invalid seed: {0}")]
    InvalidSeed(String),
    /// A saved world (see `SandboxHandle::snapshot`) could not be restored.
    #[error("invalid sandbox snapshot: {0}")]
    Snapshot(String),
    /// The server stopped with an I/O error.
    #[error("sandbox server failed: {0}")]
    Serve(std::io::Error),
}
