//! The Deckhouse side, pure: typed resources (`resources`), the controller's checks
//! (`checks`), and the registry layout Deckhouse uses (`layout`).

pub mod checks;
pub mod health;
pub mod image_checks;
pub mod layout;
pub mod resources;
