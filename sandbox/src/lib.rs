//! Sandbox library: the running sandbox's description and the fixtures end-to-end tests
//! use to prepare cluster objects and registry images. It never depends on the plugin.

pub mod state;

pub use state::State;
