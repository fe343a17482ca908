//! `kubectl mpo delete`

use super::{Ctx, Outcome};
use crate::cli::DeleteArgs;
use crate::error::{Error, Result};

pub async fn run(_ctx: &Ctx, _args: DeleteArgs) -> Result<Outcome> {
    Err(Error::runtime("delete is not implemented yet"))
}
