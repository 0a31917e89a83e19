//! moby's `container.HostConfig`: what a container gets from the host it runs on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lenient::{is_none_or_empty, is_none_or_empty_map, null_default, str_slice};
use super::mount::Mount;
use super::resources::Resources;

/// Docker's default `/dev/shm` size, shown by inspect when none was asked for.
pub const DEFAULT_SHM_SIZE: i64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    pub binds: Option<Vec<String>>,
    #[serde(rename = "ContainerIDFile", deserialize_with = "null_default")]
    pub container_id_file: String,
    #[serde(deserialize_with = "null_default")]
    pub log_config: LogConfig,
    #[serde(deserialize_with = "null_default")]
    pub network_mode: String,
    #[serde(deserialize_with = "null_default")]
    pub port_bindings: BTreeMap<String, Option<Vec<PortBinding>>>,
    #[serde(deserialize_with = "null_default")]
    pub restart_policy: RestartPolicy,
    #[serde(deserialize_with = "null_default")]
    pub auto_remove: bool,
    #[serde(deserialize_with = "null_default")]
    pub volume_driver: String,
    pub volumes_from: Option<Vec<String>>,
    #[serde(deserialize_with = "null_default")]
    pub console_size: [u64; 2],
    #[serde(skip_serializing_if = "is_none_or_empty_map")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(deserialize_with = "str_slice")]
    pub cap_add: Option<Vec<String>>,
    #[serde(deserialize_with = "str_slice")]
    pub cap_drop: Option<Vec<String>>,
    #[serde(deserialize_with = "null_default")]
    pub cgroupns_mode: String,
    pub dns: Option<Vec<String>>,
    pub dns_options: Option<Vec<String>>,
    pub dns_search: Option<Vec<String>>,
    pub extra_hosts: Option<Vec<String>>,
    pub group_add: Option<Vec<String>>,
    #[serde(deserialize_with = "null_default")]
    pub ipc_mode: String,
    #[serde(deserialize_with = "null_default")]
    pub cgroup: String,
    pub links: Option<Vec<String>>,
    #[serde(deserialize_with = "null_default")]
    pub oom_score_adj: i64,
    #[serde(deserialize_with = "null_default")]
    pub pid_mode: String,
    #[serde(deserialize_with = "null_default")]
    pub privileged: bool,
    #[serde(deserialize_with = "null_default")]
    pub publish_all_ports: bool,
    #[serde(deserialize_with = "null_default")]
    pub readonly_rootfs: bool,
    pub security_opt: Option<Vec<String>>,
    #[serde(skip_serializing_if = "is_none_or_empty_map")]
    pub storage_opt: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "is_none_or_empty_map")]
    pub tmpfs: Option<BTreeMap<String, String>>,
    #[serde(rename = "UTSMode", deserialize_with = "null_default")]
    pub uts_mode: String,
    #[serde(deserialize_with = "null_default")]
    pub userns_mode: String,
    #[serde(deserialize_with = "null_default")]
    pub shm_size: i64,
    #[serde(skip_serializing_if = "is_none_or_empty_map")]
    pub sysctls: Option<BTreeMap<String, String>>,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub runtime: String,
    #[serde(deserialize_with = "null_default")]
    pub isolation: String,
    #[serde(flatten)]
    pub resources: Resources,
    #[serde(skip_serializing_if = "is_none_or_empty")]
    pub mounts: Option<Vec<Mount>>,
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    #[serde(deserialize_with = "null_default")]
    pub r#type: String,
    pub config: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    #[serde(deserialize_with = "null_default")]
    pub maximum_retry_count: i64,
}

impl RestartPolicy {
    /// moby's `IsNone`: `no` or unset.
    pub fn is_none(&self) -> bool {
        matches!(self.name.as_str(), "" | "no")
    }
}

/// One host side of a published port (`-p 127.0.0.1:8080:80`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PortBinding {
    #[serde(rename = "HostIp", deserialize_with = "null_default")]
    pub host_ip: String,
    #[serde(rename = "HostPort", deserialize_with = "null_default")]
    pub host_port: String,
}

impl HostConfig {
    /// The network mode with Docker's meaning of an empty one.
    pub fn network_mode(&self) -> &str {
        match self.network_mode.as_str() {
            "" | "default" => "bridge",
            m => m,
        }
    }

    pub fn security_opt(&self) -> &[String] {
        self.security_opt.as_deref().unwrap_or_default()
    }

    /// The log driver, `json-file` when none was named.
    pub fn log_driver(&self) -> &str {
        match self.log_config.r#type.as_str() {
            "" => "json-file",
            t => t,
        }
    }

    /// A log driver option, `None` when not set.
    pub fn log_opt(&self, key: &str) -> Option<&str> {
        self.log_config
            .config
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }

    /// What `docker inspect` shows: the host config with the values dockerd fills in for
    /// fields a client left empty.
    pub fn for_inspect(&self) -> HostConfig {
        let mut hc = self.clone();
        let fill = |v: &mut String, d: &str| {
            if v.is_empty() {
                *v = d.to_string();
            }
        };
        fill(&mut hc.network_mode, "bridge");
        fill(&mut hc.log_config.r#type, "json-file");
        hc.log_config.config.get_or_insert_default();
        fill(&mut hc.restart_policy.name, "no");
        fill(&mut hc.runtime, "runc");
        fill(&mut hc.ipc_mode, "private");
        fill(&mut hc.cgroupns_mode, "host");
        if hc.shm_size == 0 {
            hc.shm_size = DEFAULT_SHM_SIZE;
        }
        hc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_docker_cli_and_docker_py() {
        // The CLI sends every field; docker-py sends few, with nulls.
        let hc: HostConfig = serde_json::from_value(json!({
            "Binds": ["/a:/b"], "Memory": 1048576, "MemorySwappiness": null, "PidsLimit": 5,
            "CapAdd": "NET_ADMIN", "RestartPolicy": {"Name": "always"}, "ConsoleSize": [24, 80],
            "LogConfig": {"Type": "", "Config": {}}, "NetworkMode": "default", "PortBindings": null,
            "Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 2}], "Init": null
        }))
        .unwrap();
        assert_eq!(hc.resources.memory, 1 << 20);
        assert_eq!(hc.resources.pids_limit, Some(5));
        assert_eq!(hc.resources.memory_swappiness, None);
        assert_eq!(hc.cap_add.as_deref(), Some(&["NET_ADMIN".to_string()][..]));
        assert_eq!(hc.console_size, [24, 80]);
        assert_eq!(hc.network_mode(), "bridge");
        assert_eq!(hc.log_driver(), "json-file");
        assert_eq!(hc.resources.ulimits.unwrap()[0].hard, 2);
        assert!(serde_json::from_value::<HostConfig>(json!({"BlkioWeight": 70000})).is_err());
    }

    #[test]
    fn inspect_fills_dockerds_defaults() {
        let v = serde_json::to_value(HostConfig::default().for_inspect()).unwrap();
        assert_eq!(v["NetworkMode"], "bridge");
        assert_eq!(v["LogConfig"], json!({"Type": "json-file", "Config": {}}));
        assert_eq!(
            v["RestartPolicy"],
            json!({"Name": "no", "MaximumRetryCount": 0})
        );
        assert_eq!(v["ShmSize"], DEFAULT_SHM_SIZE);
        assert_eq!(v["PortBindings"], json!({}));
        // Fields without omitempty appear with Go's zero values; the others do not.
        assert_eq!(v["CapAdd"], serde_json::Value::Null);
        assert_eq!(v["Memory"], 0);
        assert_eq!(v["ConsoleSize"], json!([0, 0]));
        for absent in [
            "Mounts",
            "Init",
            "Tmpfs",
            "Sysctls",
            "KernelMemory",
            "Annotations",
        ] {
            assert!(v.get(absent).is_none(), "{absent}");
        }
    }
}
