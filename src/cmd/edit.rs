//! `kubectl mpo edit`

use super::{Ctx, Outcome};
use crate::cli::EditArgs;
use crate::error::{Error, Result};

pub async fn run(_ctx: &Ctx, _args: EditArgs) -> Result<Outcome> {
    Err(Error::runtime("edit is not implemented yet"))
}
