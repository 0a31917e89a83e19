//! Engine errors carry the kind of failure (Docker's errdefs classes) and Docker's exact text.

use crate::store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidParameter,
    NotFound,
    Conflict,
    NotModified,
    Unauthorized,
    Forbidden,
    Unavailable,
    NotImplemented,
    Internal,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct EngineError {
    pub kind: ErrorKind,
    pub message: String,
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> EngineError {
        EngineError {
            kind,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> EngineError {
        Self::new(ErrorKind::InvalidParameter, message)
    }
    pub fn not_found(message: impl Into<String>) -> EngineError {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn conflict(message: impl Into<String>) -> EngineError {
        Self::new(ErrorKind::Conflict, message)
    }
    pub fn internal(message: impl Into<String>) -> EngineError {
        Self::new(ErrorKind::Internal, message)
    }
    pub fn no_such_image(name: &str) -> EngineError {
        Self::not_found(format!("No such image: {name}"))
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        EngineError::internal(e.to_string())
    }
}

impl From<std::io::Error> for EngineError {
    fn from(e: std::io::Error) -> Self {
        EngineError::internal(e.to_string())
    }
}

impl From<crate::image::reference::ReferenceError> for EngineError {
    fn from(e: crate::image::reference::ReferenceError) -> Self {
        EngineError::invalid(e.to_string())
    }
}

impl From<crate::image::layer::LayerError> for EngineError {
    fn from(e: crate::image::layer::LayerError) -> Self {
        use crate::image::layer::LayerError;
        match e {
            LayerError::Io(_) | LayerError::Corrupt(_) => EngineError::internal(e.to_string()),
            _ => EngineError::invalid(e.to_string()),
        }
    }
}

/// The runtime's validation classes as Docker answers them: a client mistake is a 400, a
/// feature berth lacks a 501, the rest ours (500).
impl From<crate::runtime::SpecError> for EngineError {
    fn from(e: crate::runtime::SpecError) -> EngineError {
        let kind = if e.is_user_error() {
            ErrorKind::InvalidParameter
        } else if e.is_not_supported() {
            ErrorKind::NotImplemented
        } else {
            ErrorKind::Internal
        };
        EngineError::new(kind, e.to_string())
    }
}
