//! moby's `container.Config`: what a container runs, portable between hosts. The same shape is
//! the `config` of an image config (read through [`Config::from_image`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lenient::{
    Empty, is_none_or_empty, is_none_or_empty_map, is_zero, null_default, str_slice,
};

pub use crate::monitor::HealthConfig;

/// `Config` of `POST /containers/create` and of `docker inspect`, with moby's JSON names,
/// order and `omitempty` marks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Config {
    #[serde(deserialize_with = "null_default")]
    pub hostname: String,
    #[serde(deserialize_with = "null_default")]
    pub domainname: String,
    #[serde(deserialize_with = "null_default")]
    pub user: String,
    #[serde(deserialize_with = "null_default")]
    pub attach_stdin: bool,
    #[serde(deserialize_with = "null_default")]
    pub attach_stdout: bool,
    #[serde(deserialize_with = "null_default")]
    pub attach_stderr: bool,
    #[serde(skip_serializing_if = "is_none_or_empty_map")]
    pub exposed_ports: Option<BTreeMap<String, Empty>>,
    #[serde(deserialize_with = "null_default")]
    pub tty: bool,
    #[serde(deserialize_with = "null_default")]
    pub open_stdin: bool,
    #[serde(deserialize_with = "null_default")]
    pub stdin_once: bool,
    pub env: Option<Vec<String>>,
    #[serde(deserialize_with = "str_slice")]
    pub cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_zero")]
    pub args_escaped: bool,
    #[serde(deserialize_with = "null_default")]
    pub image: String,
    pub volumes: Option<BTreeMap<String, Empty>>,
    #[serde(deserialize_with = "null_default")]
    pub working_dir: String,
    #[serde(deserialize_with = "str_slice")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_zero")]
    pub network_disabled: bool,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub mac_address: String,
    pub on_build: Option<Vec<String>>,
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub stop_signal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(
        deserialize_with = "str_slice",
        skip_serializing_if = "is_none_or_empty"
    )]
    pub shell: Option<Vec<String>>,
}

impl Config {
    /// The `config` object of an image config; anything unreadable there counts as unset, as
    /// moby reads an image it did not build.
    pub fn from_image(image_config: &serde_json::Value) -> Config {
        image_config
            .get("config")
            .filter(|c| c.is_object())
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default()
    }

    /// Entrypoint then Cmd: the container's command line.
    pub fn command_line(&self) -> Vec<String> {
        let mut all = self.entrypoint.clone().unwrap_or_default();
        all.extend(self.cmd.iter().flatten().cloned());
        all
    }

    pub fn env(&self) -> &[String] {
        self.env.as_deref().unwrap_or_default()
    }

    /// The `ExposedPorts` keys (`80/tcp`), sorted.
    pub fn exposed_port_keys(&self) -> Vec<String> {
        self.exposed_ports
            .iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Labels, empty when unset.
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.labels.clone().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_what_clients_send() {
        let c: Config = serde_json::from_value(json!({
            "Image": "busybox", "Cmd": "echo hi", "Entrypoint": null, "Env": ["A=1"],
            "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/v": {}}, "Tty": null,
            "StopTimeout": 3, "Unknown": {"x": 1}, "Healthcheck": {"Test": ["CMD", "true"], "Interval": null}
        }))
        .unwrap();
        assert_eq!(c.cmd, Some(vec!["echo hi".to_string()]));
        assert_eq!(c.entrypoint, None);
        assert!(!c.tty);
        assert_eq!(c.stop_timeout, Some(3));
        assert_eq!(
            c.healthcheck.as_ref().unwrap().test.as_deref().unwrap(),
            ["CMD", "true"]
        );
        assert_eq!(c.command_line().len(), 1);
    }

    #[test]
    fn writes_mobys_shape() {
        let v = serde_json::to_value(Config::default()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "Hostname",
                "Domainname",
                "User",
                "AttachStdin",
                "AttachStdout",
                "AttachStderr",
                "Tty",
                "OpenStdin",
                "StdinOnce",
                "Env",
                "Cmd",
                "Image",
                "Volumes",
                "WorkingDir",
                "Entrypoint",
                "OnBuild",
                "Labels"
            ]
        );
        assert_eq!(v["Cmd"], serde_json::Value::Null);
    }

    #[test]
    fn image_config_is_read_leniently() {
        let img = json!({"config": {"Cmd": ["sh"], "Env": "not a list"}});
        assert_eq!(Config::from_image(&img), Config::default());
        let img = json!({"config": {"Cmd": ["sh"], "WorkingDir": "/w"}});
        assert_eq!(Config::from_image(&img).working_dir, "/w");
    }
}
