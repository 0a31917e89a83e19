//! The OCI distribution protocol: talking to registries (auth, manifests, blobs).
//!
//! - `config`: insecure registries, mirrors and the certs.d directory from berth.toml
//! - `certs`: per-registry CA roots and client certificates (Docker's certs.d layout)
//! - `auth`: `X-Registry-Auth` credentials and `WWW-Authenticate` challenges
//! - `client`: one repository on one registry (ping, tokens, manifests, blobs, tags, login)
//! - `manifest`, `platform`: the documents and picking a platform from an index

pub(crate) mod auth;
pub(crate) mod certs;
pub(crate) mod client;
pub mod config;
pub(crate) mod error;
pub(crate) mod manifest;
pub(crate) mod platform;
pub(crate) mod upload;

pub use auth::AuthConfig;
pub use client::{Access, RegistryClient, login, repository_scope};
pub use config::RegistryConfig;
pub use error::RegistryError;
pub use manifest::{Descriptor, FetchedManifest, ImageIndex, ImageManifest, Manifest};
pub use platform::Platform;
