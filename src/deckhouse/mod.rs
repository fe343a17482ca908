//! The Deckhouse side: typed resources and the pure logic that reasons about them.

pub mod diagnosis;
pub mod resources;
