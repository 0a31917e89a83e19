//! Registry failures as each Docker route answers them, in one place: moby translates them
//! per route (`translatePullError`, the push and login paths, the distribution route), reading
//! the registry's error code and the auth outcome that `RegistryError` classifies. The
//! registry error stays as the source.

use crate::image::reference::Reference;
use crate::registry::RegistryError;

use super::{EngineError, ErrorKind};

/// `docker pull` (moby's `translatePullError`): denied, unknown manifest and unknown repository
/// are 404s with moby's texts; no matching platform 404, a bad platform or media type 400; the
/// rest 500.
pub fn pull(e: RegistryError, r: &Reference) -> EngineError {
    let message = match &e {
        RegistryError::Api { entry, .. } => match entry.code.as_str() {
            "DENIED" => Some(format!(
                "pull access denied for {}, repository does not exist or may require 'docker login': {entry}",
                r.familiar_name()
            )),
            "MANIFEST_UNKNOWN" => Some(format!("manifest for {} not found: {entry}", r.familiar())),
            "NAME_UNKNOWN" => Some(format!(
                "repository {} not found: {entry}",
                r.familiar_name()
            )),
            _ => None,
        },
        _ => None,
    };
    if let Some(m) = message {
        return EngineError::new(ErrorKind::NotFound, m).with_source(e);
    }
    let kind = match e {
        RegistryError::NoMatchingPlatform(_) => ErrorKind::NotFound,
        RegistryError::InvalidPlatform(_) | RegistryError::UnsupportedMediaType(_) => {
            ErrorKind::InvalidParameter
        }
        _ => ErrorKind::Internal,
    };
    EngineError::caused_by(kind, e)
}

/// `docker push`: refused credentials are a 401, anything else from the registry a 503.
pub fn push(e: RegistryError) -> EngineError {
    let kind = if e.is_unauthorized() {
        ErrorKind::Unauthorized
    } else {
        ErrorKind::Unavailable
    };
    EngineError::caused_by(kind, e)
}

/// `docker login` (moby's `Service.Auth`): an unauthorized answer from the token server is a
/// 401; other failures (a 401 from `/v2/` with Basic auth, an unreachable registry) are 500s.
pub fn login(e: RegistryError) -> EngineError {
    let kind = if e.is_unauthorized() && !matches!(e, RegistryError::LoginFailed { .. }) {
        ErrorKind::Unauthorized
    } else {
        ErrorKind::Internal
    };
    EngineError::caused_by(kind, e)
}

/// `/distribution/{name}/json`: the registry's error code decides (unknown → 404,
/// unauthorized → 401, denied → 403).
pub fn distribution(e: RegistryError) -> EngineError {
    let kind = match e.code() {
        Some("MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "BLOB_UNKNOWN") => ErrorKind::NotFound,
        Some("UNAUTHORIZED") => ErrorKind::Unauthorized,
        Some("DENIED") => ErrorKind::Forbidden,
        _ => ErrorKind::Internal,
    };
    EngineError::caused_by(kind, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_registry_errors_like_moby() {
        let r = crate::engine::images::pull::parse_request("127.0.0.1:5000/nope", "latest", "")
            .unwrap()
            .reference;
        let api = |code: &str, message: &str| RegistryError::Api {
            status: 404,
            entry: crate::registry::error::ApiErrorEntry {
                code: code.into(),
                message: message.into(),
            },
        };
        let e = pull(
            api("DENIED", "requested access to the resource is denied"),
            &r,
        );
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert_eq!(
            e.message,
            "pull access denied for 127.0.0.1:5000/nope, repository does not exist or may require 'docker login': denied: requested access to the resource is denied"
        );
        let e = pull(api("MANIFEST_UNKNOWN", "manifest unknown"), &r);
        assert_eq!(
            e.message,
            "manifest for 127.0.0.1:5000/nope:latest not found: manifest unknown: manifest unknown"
        );
        let e = pull(
            api("NAME_UNKNOWN", "repository name not known to registry"),
            &r,
        );
        assert_eq!(
            e.message,
            "repository 127.0.0.1:5000/nope not found: name unknown: repository name not known to registry"
        );
        let e = pull(api("UNAUTHORIZED", "authentication required"), &r);
        assert_eq!(e.kind, ErrorKind::Internal);
        assert_eq!(e.message, "unauthorized: authentication required");
    }

    #[test]
    fn other_routes_keep_the_registry_error_as_source() {
        let e = RegistryError::Api {
            status: 404,
            entry: crate::registry::error::ApiErrorEntry {
                code: "MANIFEST_UNKNOWN".into(),
                message: "manifest unknown".into(),
            },
        };
        let d = distribution(e);
        assert_eq!(d.kind, ErrorKind::NotFound);
        let src = std::error::Error::source(&d).unwrap();
        assert!(src.downcast_ref::<RegistryError>().is_some());
    }
}
