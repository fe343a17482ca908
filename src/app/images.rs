//! What commands read from module images beyond their files: the application images
//! a module image lists in `images_digests.json` (docs/deckhouse-facts.md §1).

use crate::error::{Error, Result};
use crate::registry::ImageTree;

pub use crate::deckhouse::layout::APP_IMAGES;

/// `images_digests.json` as name → digest pairs (none when the image has no such file).
pub fn app_images(tree: &ImageTree) -> Result<Vec<(String, String)>> {
    let Some(file) = tree.files.get(APP_IMAGES) else {
        return Ok(Vec::new());
    };
    let raw = file.content.as_deref().ok_or_else(|| {
        Error::runtime(format!(
            "{APP_IMAGES} is {} bytes, over the limit for one file",
            file.size
        ))
        .with_hint("if the file is genuine, raise the cap with --max-file-size")
    })?;
    crate::deckhouse::layout::app_images(raw).map_err(Error::runtime)
}
