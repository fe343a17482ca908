//! `kubectl mpo renew`

use super::{Ctx, Outcome};
use crate::cli::RenewArgs;
use crate::error::{Error, Result};

pub async fn run(_ctx: &Ctx, _args: RenewArgs) -> Result<Outcome> {
    Err(Error::runtime("renew is not implemented yet"))
}
