//! libpod-compatible endpoints (`/libpod/…`, with or without a `/v4.x.x` or `/v5.x.x`
//! prefix), so that `podman --remote` drives pods, their containers and Kubernetes YAML on
//! berth's socket. Errors are libpod's `{"cause","message","response"}`.

pub(crate) mod containers;
pub(crate) mod kube;
pub(crate) mod pods;
pub(crate) mod specgen;

use hyper::{Request, StatusCode, body::Incoming};
use serde_json::json;

use super::Ctx;
use super::params::Query;
use super::response::{ApiError, ApiResult, Resp, blocking, empty, json, streaming};
use crate::engine::progress::ProgressSender;
use crate::registry::AuthConfig;

/// The libpod API version berth answers as (`Libpod-API-Version`): podman 4 and 5 clients
/// accept a server at least as new as their minimum (4.0.0).
pub const LIBPOD_API_VERSION: &str = "5.0.0";

/// Is a `/v…` prefix one of libpod's (4.x.x or 5.x.x)?
pub fn version_ok(v: Option<&str>) -> bool {
    v.is_none_or(|v| {
        let major = v.split('.').next().unwrap_or("");
        matches!(major, "4" | "5")
    })
}

/// An error in libpod's shape, with podman's texts for what is missing.
pub fn error_response(e: ApiError) -> Resp {
    if e.status == StatusCode::NOT_MODIFIED {
        return empty(StatusCode::NOT_MODIFIED);
    }
    let mut message = e.message;
    let cause = if let Some(name) = message.strip_prefix("No such container: ") {
        message = format!("no container with name or ID \"{name}\" found: no such container");
        "no such container".to_string()
    } else if let Some(name) = message.strip_prefix("No such image: ") {
        message = format!("{name}: image not known");
        "image not known".to_string()
    } else {
        match message.rsplit_once(": ") {
            Some((_, tail)) if e.status == StatusCode::NOT_FOUND => tail.to_string(),
            _ => e
                .status
                .canonical_reason()
                .unwrap_or("error")
                .to_lowercase(),
        }
    };
    if e.status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::warn!(message = %message, "libpod request failed");
    }
    json(
        e.status,
        &json!({"cause": cause, "message": message, "response": e.status.as_u16()}),
    )
}

/// `POST /libpod/images/pull?reference=&policy=`: libpod's stream (`{"stream"}` lines, then
/// `{"images":[id],"id":id}`, or `{"error"}`).
pub async fn pull(ctx: &Ctx, q: &Query, req: Request<Incoming>) -> ApiResult {
    let reference = q.get("reference").unwrap_or("").to_string();
    if reference.is_empty() {
        return Err(ApiError::bad_request("reference parameter cannot be empty"));
    }
    let policy = q.get("policy").unwrap_or("always").to_string();
    if !matches!(policy.as_str(), "always" | "missing" | "never" | "newer") {
        return Err(ApiError::bad_request(format!(
            "unsupported pull policy {policy:?}"
        )));
    }
    if q.bool("alltags", false) {
        return Err(ApiError::bad_request(
            "berth does not pull all tags through the libpod API yet",
        ));
    }
    for k in ["arch", "os", "variant"] {
        if q.get(k).is_some_and(|v| !v.is_empty()) {
            return Err(ApiError::bad_request(format!(
                "berth pulls the host's platform only ({k}={})",
                q.get(k).unwrap_or("")
            )));
        }
    }
    let quiet = q.bool("quiet", false);
    let local = {
        let engine = ctx.engine.clone();
        let r = reference.clone();
        blocking(move || {
            engine
                .store()?
                .read(|tx| crate::engine::images::resolve(tx, &r).map(|i| i.id))
        })
        .await
    };
    let done = |id: &str| {
        let id = id.trim_start_matches("sha256:");
        json!({"images": [id], "id": id})
    };
    match (&local, policy.as_str()) {
        (Ok(id), "missing" | "never") => {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let _ = tx.try_send(crate::engine::progress::encode(&done(id)));
            return Ok(streaming("application/json", rx));
        }
        (Err(e), "never") => return Err(ApiError::not_found(e.message.clone())),
        _ => {}
    }
    let creds = AuthConfig::from_header(
        req.headers()
            .get("X-Registry-Auth")
            .and_then(|v| v.to_str().ok()),
    );
    let request = crate::engine::images::pull::parse_request(&reference, "", "")?;
    let prepared = crate::engine::images::pull::prepare(&ctx.engine, request, creds).await?;
    let (out, rx) = ProgressSender::channel();
    let (inner, mut progress) = ProgressSender::channel();
    let engine = ctx.engine.clone();
    let guard = ctx.activity.guard();
    tokio::spawn(async move {
        let forward = {
            let out = out.clone();
            async move {
                while let Some(line) = progress.recv().await {
                    let v: serde_json::Value = serde_json::from_slice(&line).unwrap_or_default();
                    if !quiet && let Some(s) = v["status"].as_str() {
                        let id = v["id"]
                            .as_str()
                            .map(|i| format!("{i}: "))
                            .unwrap_or_default();
                        out.send(&json!({"stream": format!("{id}{s}\n")})).await;
                    }
                }
            }
        };
        let run = crate::engine::images::pull::run(engine.clone(), prepared, inner);
        let (result, ()) = tokio::join!(run, forward);
        let message = match result {
            Ok(()) => {
                let r = reference.clone();
                let id = tokio::task::spawn_blocking(move || {
                    engine
                        .store()
                        .and_then(|mut s| s.read(|tx| crate::engine::images::resolve(tx, &r)))
                        .map(|i| i.id)
                })
                .await;
                match id {
                    Ok(Ok(id)) => done(&id),
                    Ok(Err(e)) => json!({"error": e.message}),
                    Err(e) => json!({"error": e.to_string()}),
                }
            }
            Err(e) => json!({"error": e.message}),
        };
        out.send(&message).await;
        drop(guard);
    });
    Ok(streaming("application/json", rx))
}

pub async fn image_exists(ctx: &Ctx, name: String) -> ApiResult {
    let engine = ctx.engine.clone();
    blocking(move || {
        engine
            .store()?
            .read(|tx| crate::engine::images::resolve(tx, &name).map(|_| ()))
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpod_versions() {
        assert!(version_ok(Some("4.3.1")));
        assert!(version_ok(Some("5.2.0")));
        assert!(version_ok(None));
        assert!(!version_ok(Some("1.41")));
    }

    #[test]
    fn errors_in_libpod_shape() {
        let r = error_response(ApiError::not_found("No such container: web"));
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}
