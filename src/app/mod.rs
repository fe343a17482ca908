//! The use cases commands share, none of them a command: reading and writing
//! overrides (`overrides`), waiting on the controller (`wait`), gathering what a
//! diagnosis needs and running the checks (`diagnose`), and choosing a registry and
//! asking it (`sources`). Commands in `cmd/` depend on these and never on each other.

pub mod diagnose;
pub mod generation;
pub mod health;
pub mod history;
pub mod image_preflight;
pub mod images;
pub mod logs;
pub mod overrides;
pub mod report;
pub mod sources;
pub mod tags;
pub mod wait;

use crate::cluster::{Cluster, ConnectOptions};
use crate::error::Result;
use crate::output::Printer;

/// How a command that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Success, healthy, in sync (exit 0).
    Success,
    /// The checked condition does not hold; already reported (exit 1).
    ConditionFailed,
    /// The user ended a command that runs until stopped (`status --watch`) with
    /// Ctrl-C: nothing to report (exit 130, as the shell reports SIGINT).
    Interrupted,
}

/// What every command gets: how to connect and the printer.
pub struct Ctx {
    pub connect: ConnectOptions,
    pub printer: Printer,
}

impl Ctx {
    pub async fn cluster(&self) -> Result<Cluster> {
        Cluster::connect(&self.connect).await
    }
}
