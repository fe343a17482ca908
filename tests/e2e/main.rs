//! End-to-end tests: the real `kubectl-mpo` binary against the sandbox's real
//! kube-apiserver, registries and controller simulator (see sandbox/README.md).
//! They fail, never skip, when no sandbox is running.

mod support;

mod admission;
mod backpressure;
mod catalog;
mod cli;
mod completion;
mod conventions;
mod diagnose;
mod faults;
mod generations;
mod health;
mod hostile_images;
mod hostile_text;
mod image_workflow;
mod kubeconfig;
mod lifecycle;
mod login;
mod registry;
mod registry_deckhouse;
mod review_polish;
mod sandbox;
mod secrets;
mod temp_files;
mod validation;
