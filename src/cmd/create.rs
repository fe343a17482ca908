//! `kubectl mpo create`

use super::{Ctx, Outcome};
use crate::cli::CreateArgs;
use crate::error::{Error, Result};

pub async fn run(_ctx: &Ctx, _args: CreateArgs) -> Result<Outcome> {
    Err(Error::runtime("create is not implemented yet"))
}
