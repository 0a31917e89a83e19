//! The OCI distribution protocol: talking to registries (auth, manifests, blobs).
//!
//! - `config`: insecure registries, mirrors and the certs.d directory from berth.toml
//! - `certs`: per-registry CA roots and client certificates (Docker's certs.d layout)
//! - `auth`: `X-Registry-Auth` credentials and `WWW-Authenticate` challenges
//! - `client`: one repository on one registry (ping, tokens, manifests, blobs, tags, login)
//! - `manifest`, `platform`: the documents and picking a platform from an index

pub mod auth;
pub mod certs;
pub mod client;
pub mod config;
pub mod error;
pub mod manifest;
pub mod platform;
pub mod upload;

pub use auth::AuthConfig;
pub use client::{Access, RegistryClient, login, repository_scope};
pub use config::RegistryConfig;
pub use error::RegistryError;
pub use manifest::{Descriptor, FetchedManifest, ImageIndex, ImageManifest, Manifest};
pub use platform::Platform;
