//! `kubectl mpo diff`

use super::{Ctx, Outcome};
use crate::cli::DiffArgs;
use crate::error::{Error, Result};

pub async fn run(_ctx: &Ctx, _args: DiffArgs) -> Result<Outcome> {
    Err(Error::runtime("diff is not implemented yet"))
}
