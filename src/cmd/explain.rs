//! `kubectl mpo explain`

use super::{Ctx, Outcome};
use crate::cli::ExplainArgs;
use crate::error::{Error, Result};

pub async fn run(_ctx: &Ctx, _args: ExplainArgs) -> Result<Outcome> {
    Err(Error::runtime("explain is not implemented yet"))
}
