//! `kubectl mpo registry`

use super::{Ctx, Outcome};
use crate::cli::RegistryCommand;
use crate::error::{Error, Result};

pub async fn run(_ctx: &Ctx, _args: RegistryCommand) -> Result<Outcome> {
    Err(Error::runtime("registry is not implemented yet"))
}
