//! The Deckhouse side: typed resources and the pure logic that reasons about them.

pub mod resources;
pub mod diagnosis;
