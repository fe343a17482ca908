//! `kubectl mpo completion`

use super::{Ctx, Outcome};
use crate::cli::CompletionArgs;
use crate::error::{Error, Result};

pub async fn run(_ctx: &Ctx, _args: CompletionArgs) -> Result<Outcome> {
    Err(Error::runtime("completion is not implemented yet"))
}
