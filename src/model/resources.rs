//! moby's `container.Resources` (embedded in `HostConfig`, and the body of `docker update`)
//! with the device and limit types it holds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lenient::{is_zero, null_default};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Resources {
    #[serde(deserialize_with = "null_default")]
    pub cpu_shares: i64,
    #[serde(deserialize_with = "null_default")]
    pub memory: i64,
    #[serde(deserialize_with = "null_default")]
    pub nano_cpus: i64,
    #[serde(deserialize_with = "null_default")]
    pub cgroup_parent: String,
    #[serde(deserialize_with = "null_default")]
    pub blkio_weight: u16,
    pub blkio_weight_device: Option<Vec<WeightDevice>>,
    pub blkio_device_read_bps: Option<Vec<ThrottleDevice>>,
    pub blkio_device_write_bps: Option<Vec<ThrottleDevice>>,
    #[serde(rename = "BlkioDeviceReadIOps")]
    pub blkio_device_read_iops: Option<Vec<ThrottleDevice>>,
    #[serde(rename = "BlkioDeviceWriteIOps")]
    pub blkio_device_write_iops: Option<Vec<ThrottleDevice>>,
    #[serde(deserialize_with = "null_default")]
    pub cpu_period: i64,
    #[serde(deserialize_with = "null_default")]
    pub cpu_quota: i64,
    #[serde(deserialize_with = "null_default")]
    pub cpu_realtime_period: i64,
    #[serde(deserialize_with = "null_default")]
    pub cpu_realtime_runtime: i64,
    #[serde(deserialize_with = "null_default")]
    pub cpuset_cpus: String,
    #[serde(deserialize_with = "null_default")]
    pub cpuset_mems: String,
    pub devices: Option<Vec<DeviceMapping>>,
    pub device_cgroup_rules: Option<Vec<String>>,
    pub device_requests: Option<Vec<DeviceRequest>>,
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_zero")]
    pub kernel_memory: i64,
    #[serde(
        rename = "KernelMemoryTCP",
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub kernel_memory_tcp: i64,
    #[serde(deserialize_with = "null_default")]
    pub memory_reservation: i64,
    #[serde(deserialize_with = "null_default")]
    pub memory_swap: i64,
    pub memory_swappiness: Option<i64>,
    pub oom_kill_disable: Option<bool>,
    pub pids_limit: Option<i64>,
    pub ulimits: Option<Vec<Ulimit>>,
    #[serde(deserialize_with = "null_default")]
    pub cpu_count: i64,
    #[serde(deserialize_with = "null_default")]
    pub cpu_percent: i64,
    #[serde(rename = "IOMaximumIOps", deserialize_with = "null_default")]
    pub io_maximum_iops: u64,
    #[serde(rename = "IOMaximumBandwidth", deserialize_with = "null_default")]
    pub io_maximum_bandwidth: u64,
}

/// `blkiodev.WeightDevice`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WeightDevice {
    #[serde(deserialize_with = "null_default")]
    pub path: String,
    #[serde(deserialize_with = "null_default")]
    pub weight: u16,
}

/// `blkiodev.ThrottleDevice`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ThrottleDevice {
    #[serde(deserialize_with = "null_default")]
    pub path: String,
    #[serde(deserialize_with = "null_default")]
    pub rate: u64,
}

/// A host device made available in the container (`--device`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceMapping {
    #[serde(deserialize_with = "null_default")]
    pub path_on_host: String,
    #[serde(deserialize_with = "null_default")]
    pub path_in_container: String,
    #[serde(deserialize_with = "null_default")]
    pub cgroup_permissions: String,
}

/// A request for devices from a device driver (`--gpus`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceRequest {
    #[serde(deserialize_with = "null_default")]
    pub driver: String,
    #[serde(deserialize_with = "null_default")]
    pub count: i64,
    #[serde(rename = "DeviceIDs")]
    pub device_ids: Option<Vec<String>>,
    pub capabilities: Option<Vec<Vec<String>>>,
    pub options: Option<BTreeMap<String, String>>,
}

/// go-units `Ulimit` (`--ulimit nofile=1024:2048`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ulimit {
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    #[serde(deserialize_with = "null_default")]
    pub hard: i64,
    #[serde(deserialize_with = "null_default")]
    pub soft: i64,
}

/// The body of `POST /containers/{id}/update`: resources, and a restart policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateConfig {
    #[serde(flatten)]
    pub resources: Resources,
    #[serde(rename = "RestartPolicy", deserialize_with = "null_default")]
    pub restart_policy: super::RestartPolicy,
}
