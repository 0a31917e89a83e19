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

/// `message` is what clients see (Docker's text); `source` keeps the error it came from, for
/// the log and for callers that need more than the text.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct EngineError {
    pub kind: ErrorKind,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> EngineError {
        EngineError {
            kind,
            message: message.into(),
            source: None,
        }
    }
    /// Of kind `kind`, with `source`'s text as the message.
    pub fn caused_by(
        kind: ErrorKind,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> EngineError {
        EngineError {
            kind,
            message: source.to_string(),
            source: Some(Box::new(source)),
        }
    }
    /// A client mistake (400) that keeps its cause.
    pub fn invalid_cause(source: impl std::error::Error + Send + Sync + 'static) -> EngineError {
        Self::caused_by(ErrorKind::InvalidParameter, source)
    }
    /// An internal failure (500) that keeps its cause.
    pub fn internal_cause(source: impl std::error::Error + Send + Sync + 'static) -> EngineError {
        Self::caused_by(ErrorKind::Internal, source)
    }
    /// Keep `source` under a message of our own.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
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
        EngineError::caused_by(ErrorKind::Internal, e)
    }
}

impl From<std::io::Error> for EngineError {
    fn from(e: std::io::Error) -> Self {
        EngineError::caused_by(ErrorKind::Internal, e)
    }
}

impl From<crate::image::reference::ReferenceError> for EngineError {
    fn from(e: crate::image::reference::ReferenceError) -> Self {
        EngineError::caused_by(ErrorKind::InvalidParameter, e)
    }
}

impl From<crate::image::layer::LayerError> for EngineError {
    fn from(e: crate::image::layer::LayerError) -> Self {
        use crate::image::layer::LayerError;
        let kind = match e {
            LayerError::Io(_) | LayerError::Corrupt(_) => ErrorKind::Internal,
            _ => ErrorKind::InvalidParameter,
        };
        EngineError::caused_by(kind, e)
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
        EngineError::caused_by(kind, e)
    }
}
