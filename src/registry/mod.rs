//! Registry access: one [`SourceRegistry`] client per [`RegistryTarget`] (a ModuleSource,
//! or `--registry-repo` with docker's config.json). By concern:
//! - `client`: the operations (digest rule, tags, image pulls), each bounded in time;
//! - `reference`: image references and the OCI repository grammar;
//! - `error`: what went wrong, classified for the diagnosis;
//! - `auth` and `tokens`: the registry's challenge and batched Bearer tokens;
//! - `credentials`: where credentials come from;
//! - `image`: layers applied into a file tree.

mod auth;
mod client;
mod credentials;
mod error;
mod image;
mod reference;
mod tokens;

pub use client::{
    ANNOTATION_CREATED, DigestMatch, ImageInfo, Notice, RegistryOptions, ResolvedDigest,
    SourceRegistry,
};
pub use credentials::{FALLBACK_NAME, RegistryTarget};
pub use error::{RegistryError, RegistryErrorKind};
pub use image::{ImageLimits, ImageTree, ReadPlan, human_bytes};
