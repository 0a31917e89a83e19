//! Docker's container model as typed structs, mirroring moby's `api/types/container`,
//! `mount` and `network`: decoded once from a request with Go's lenient rules, stored as they
//! serialise, and passed to the engine and the runtime. Serialising gives the JSON dockerd
//! shows (names, order, `omitempty`, zero values).

pub mod config;
pub mod create;
pub mod exec;
pub mod host_config;
pub mod lenient;
pub mod mount;
pub mod network;
pub mod resources;

pub use config::{Config, HealthConfig};
pub use create::{CreateRequest, DecodeError};
pub use exec::{ExecOptions, ExecStartOptions};
pub use host_config::{HostConfig, LogConfig, PortBinding, RestartPolicy};
pub use mount::Mount;
pub use network::{EndpointSettings, NetworkingConfig};
pub use resources::{DeviceMapping, Resources, ThrottleDevice, Ulimit, UpdateConfig, WeightDevice};
