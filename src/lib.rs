//! kubectl-mpo as a library: the binary (`src/main.rs`) parses the command line and maps
//! the result to an exit code; everything else lives here, so that tests can drive the
//! layers below the commands directly.
//!
//! Layers, each depending only on those after it: `cli` and `cmd` (the command line and
//! the commands), `app` (use cases shared by commands), `deckhouse` (the domain: what
//! the controller does, pure), `cluster`, `auth` and `registry` (adapters), and `output`,
//! `error`, `names`, `validate`, `chunks`.

/// The version Cargo.toml names (build.rs passes it on, for a release build to check).
pub const VERSION: &str = env!("MPO_VERSION");

pub mod app;
pub mod auth;
pub mod chunks;
pub mod cli;
pub mod cluster;
pub mod cmd;
pub mod deckhouse;
pub mod error;
pub mod names;
pub mod output;
pub mod registry;
pub mod validate;
