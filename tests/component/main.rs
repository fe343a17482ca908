//! Component tests: the plugin's library against a fake API server (kube's `Client` over
//! a scripted service) or an in-process registry. No sandbox, no cluster: they run in
//! `make test`'s first phase, in milliseconds each.

mod fake_api;
mod waits;
