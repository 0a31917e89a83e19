//! Kubernetes YAML: `generate kube` writes pods as a cluster would run them, `play kube` makes
//! pods, volumes and containers from Pod, Deployment, PersistentVolumeClaim, ConfigMap and
//! Secret documents, and `down` removes what a file made.

pub(crate) mod generate;
pub(crate) mod play;
pub(crate) mod quantity;

use crate::engine::{EngineError, ErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The YAML asks for something berth cannot do (a field, a kind, a probe type).
    #[error("{0}")]
    Unsupported(String),
    /// The YAML is wrong: not YAML, a missing field, a bad quantity, a missing ConfigMap.
    #[error("{0}")]
    Invalid(String),
}

impl From<KubeError> for EngineError {
    fn from(e: KubeError) -> EngineError {
        EngineError::caused_by(ErrorKind::InvalidParameter, e)
    }
}
