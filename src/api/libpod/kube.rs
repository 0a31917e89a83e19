//! `GET /libpod/generate/kube`, `POST|DELETE /libpod/play/kube` (and `/libpod/kube/play`).

use hyper::{Request, StatusCode, body::Incoming};

use crate::api::Ctx;
use crate::api::params::Query;
use crate::api::response::{ApiError, ApiResult, blocking, ok_json, read_body};
use crate::engine::kube::{generate, play};
use crate::engine::progress::ProgressSender;
use crate::registry::AuthConfig;

pub async fn generate(ctx: &Ctx, q: &Query) -> ApiResult {
    let names: Vec<String> = q.all("names").iter().map(|s| s.to_string()).collect();
    let service = q.bool("service", false);
    let kind = match q.get("type").unwrap_or("pod") {
        "" | "pod" => generate::Kind::Pod,
        "deployment" => generate::Kind::Deployment {
            replicas: q.int::<i32>("replicas")?.unwrap_or(1).max(1),
        },
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid generate type {other:?}: berth writes pod or deployment"
            )));
        }
    };
    if q.get("podmanOnly").is_some_and(crate::params::bool_value) {
        return Err(ApiError::bad_request(
            "berth writes only what Kubernetes understands (podmanOnly is not supported)",
        ));
    }
    let engine = ctx.engine.clone();
    let yaml = blocking(move || generate::generate(&engine, &names, kind, service)).await?;
    Ok(hyper::Response::builder()
        .status(StatusCode::OK)
        .header(hyper::header::CONTENT_TYPE, "application/yaml")
        .body(axum::body::Body::from(yaml))
        .unwrap_or_default())
}

/// Query parameters podman sends that berth handles or that are empty/default.
fn check_play_query(q: &Query) -> Result<(), ApiError> {
    for (k, v) in q.pairs() {
        let fine = match k.as_str() {
            "quiet" | "tlsVerify" => true,
            "nohosts" | "replace" | "serviceContainer" | "wait" | "force" => {
                !crate::params::bool_value(v)
            }
            "start" => crate::params::bool_value(v),
            _ => v.is_empty(),
        };
        if !fine {
            return Err(ApiError::bad_request(format!(
                "berth does not support the play kube option {k}={v} yet"
            )));
        }
    }
    Ok(())
}

async fn pull_missing(
    ctx: &Ctx,
    images: Vec<(String, bool)>,
    creds: AuthConfig,
) -> Result<(), ApiError> {
    for (image, always) in images {
        let present = {
            let engine = ctx.engine.clone();
            let i = image.clone();
            blocking(move || {
                engine
                    .store()?
                    .read(|tx| crate::engine::images::resolve(tx, &i).map(|_| ()))
            })
            .await
            .is_ok()
        };
        if present && !always {
            continue;
        }
        let request = crate::engine::images::pull::parse_request(&image, "", "")?;
        let prepared =
            crate::engine::images::pull::prepare(&ctx.engine, request, creds.clone()).await?;
        let (out, mut rx) = ProgressSender::channel();
        let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let r = crate::engine::images::pull::run(ctx.engine.clone(), prepared, out).await;
        let _ = drain.await;
        r?;
    }
    Ok(())
}

pub async fn play(ctx: &Ctx, q: &Query, req: Request<Incoming>) -> ApiResult {
    check_play_query(q)?;
    let creds = AuthConfig::from_header(
        req.headers()
            .get("X-Registry-Auth")
            .and_then(|v| v.to_str().ok()),
    );
    let body = read_body(req.into_body(), 8 << 20).await?;
    let yaml = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("the YAML is not UTF-8"))?;
    let plan =
        blocking(move || play::plan(&yaml).map_err(crate::engine::EngineError::from)).await?;
    pull_missing(ctx, plan.images(), creds).await?;
    let warnings = plan.warnings.clone();
    let engine = ctx.engine.clone();
    let applied = blocking(move || play::apply(&engine, plan)).await?;
    ok_json(&play::report(&applied, &warnings))
}

pub async fn down(ctx: &Ctx, req: Request<Incoming>) -> ApiResult {
    let body = read_body(req.into_body(), 8 << 20).await?;
    let yaml = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("the YAML is not UTF-8"))?;
    let engine = ctx.engine.clone();
    ok_json(&blocking(move || play::down(&engine, &yaml)).await?)
}
