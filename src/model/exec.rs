//! moby's `container.ExecOptions` (`POST /containers/{id}/exec`) and `ExecStartOptions`
//! (`POST /exec/{id}/start`).

use serde::{Deserialize, Serialize};

use super::lenient::null_default;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecOptions {
    #[serde(deserialize_with = "null_default")]
    pub user: String,
    #[serde(deserialize_with = "null_default")]
    pub privileged: bool,
    #[serde(deserialize_with = "null_default")]
    pub tty: bool,
    pub console_size: Option<[u32; 2]>,
    #[serde(deserialize_with = "null_default")]
    pub attach_stdin: bool,
    #[serde(deserialize_with = "null_default")]
    pub attach_stderr: bool,
    #[serde(deserialize_with = "null_default")]
    pub attach_stdout: bool,
    #[serde(deserialize_with = "null_default")]
    pub detach: bool,
    #[serde(deserialize_with = "null_default")]
    pub detach_keys: String,
    pub env: Option<Vec<String>>,
    #[serde(deserialize_with = "null_default")]
    pub working_dir: String,
    pub cmd: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecStartOptions {
    #[serde(deserialize_with = "null_default")]
    pub detach: bool,
    #[serde(deserialize_with = "null_default")]
    pub tty: bool,
    pub console_size: Option<[u32; 2]>,
}

/// A console size worth applying: both sides given.
pub fn console_size(size: Option<[u32; 2]>) -> Option<[u32; 2]> {
    size.filter(|[h, w]| *h > 0 && *w > 0)
}
