#![recursion_limit = "256"]
//! berth: a container engine that speaks the Docker Engine API with no resident daemon.
//!
//! `serve` answers HTTP on an activated socket; `api` turns requests into calls on `engine`,
//! which works on the `store` (SQLite + files) and the `image` layer store.

pub mod api;
pub mod cli;
pub mod config;
pub mod engine;
pub(crate) mod fstree;
pub(crate) mod image;
pub mod model;
/// The per-container monitor, its own crate (monitor/) so that nothing async links into it.
pub use berth_monitor as monitor;
pub(crate) mod network;
pub(crate) mod params;
pub mod registry;
pub mod runtime;
pub mod serve;
pub mod store;
pub(crate) mod util;
