//! `kubectl mpo status`

use super::{Ctx, Outcome};
use crate::cli::StatusArgs;
use crate::error::{Error, Result};

pub async fn run(_ctx: &Ctx, _args: StatusArgs) -> Result<Outcome> {
    Err(Error::runtime("status is not implemented yet"))
}
