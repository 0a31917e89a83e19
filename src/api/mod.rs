//! HTTP only: version prefixes, routing, Docker's headers and error shapes. The work itself is in
//! `engine`; handlers decode the request, call the engine off the async thread and encode.

pub(crate) mod attach;
pub(crate) mod build;
pub(crate) mod container_fs;
pub(crate) mod container_ops;
pub(crate) mod containers;
pub(crate) mod events;
pub(crate) mod exec;
pub(crate) mod images;
pub(crate) mod json_body;
pub(crate) mod libpod;
pub(crate) mod login;
pub(crate) mod networks;
pub(crate) mod pull;
pub(crate) mod push;
pub(crate) mod response;
pub mod routes;

/// Query-string and filter conventions live outside the API layer: the engine reads filters too.
pub(crate) use crate::params;
pub(crate) mod system;
pub(crate) mod volumes;

use hyper::{Request, StatusCode, body::Incoming, header::HeaderValue};

use crate::engine::Engine;
use crate::engine::system::{API_VERSION, MIN_API_VERSION};
use crate::serve::activity::Activity;

use params::Query;
use response::{ApiError, ApiResult, Resp};
use routes::H;

/// What every handler gets.
#[derive(Clone)]
pub struct Ctx {
    pub engine: Engine,
    pub activity: Activity,
}

/// An API version as `major.minor`, compared numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u32, pub u32);

impl ApiVersion {
    pub fn parse(s: &str) -> Option<ApiVersion> {
        let (a, b) = s.split_once('.')?;
        Some(ApiVersion(a.parse().ok()?, b.parse().ok()?))
    }
}

/// Split `/v1.45/containers/json` into the version and the path.
fn split_version(path: &str) -> (Option<&str>, &str) {
    if let Some(rest) = path.strip_prefix("/v") {
        let end = rest.find('/').unwrap_or(rest.len());
        let v = &rest[..end];
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            let p = &rest[end..];
            return (Some(v), if p.is_empty() { "/" } else { p });
        }
    }
    (None, path)
}

/// Decode `%xx` in a path (Go's mux matches on the decoded path).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            let hexval = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            out.push(hexval(b[i + 1]) * 16 + hexval(b[i + 2]));
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Answer one request.
pub async fn handle(ctx: Ctx, mut req: Request<Incoming>) -> Resp {
    let raw_path = req.uri().path().to_string();
    let (version, path) = split_version(&raw_path);
    let path = percent_decode(path);
    let is_libpod = path.starts_with("/libpod/");
    // libpod reads JSON bodies whatever their Content-Type, and podman sends none.
    if is_libpod {
        req.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let checked = if is_libpod {
        if libpod::version_ok(version) {
            Ok(())
        } else {
            Err(ApiError::not_found("page not found"))
        }
    } else {
        check_version(version)
    };
    let into_response = if is_libpod {
        libpod::error_response
    } else {
        ApiError::into_response
    };
    let mut resp = match checked {
        Err(e) => {
            drain(req).await;
            into_response(e)
        }
        Ok(()) => route(ctx, req, &path).await.unwrap_or_else(into_response),
    };
    let h = resp.headers_mut();
    h.insert(
        "Libpod-Api-Version",
        HeaderValue::from_static(libpod::LIBPOD_API_VERSION),
    );
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        "Server",
        HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    resp
}

/// moby's version middleware: too new or too old is a 400 with its text.
fn check_version(v: Option<&str>) -> Result<(), ApiError> {
    let Some(v) = v else { return Ok(()) };
    let max = ApiVersion::parse(API_VERSION).unwrap_or(ApiVersion(1, 50));
    let min = ApiVersion::parse(MIN_API_VERSION).unwrap_or(ApiVersion(1, 24));
    let Some(given) = ApiVersion::parse(v) else {
        return Err(ApiError::not_found("page not found"));
    };
    if given < min {
        return Err(ApiError::bad_request(format!(
            "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    if given > max {
        return Err(ApiError::bad_request(format!(
            "client version {v} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    Ok(())
}

async fn route(ctx: Ctx, req: Request<Incoming>, path: &str) -> ApiResult {
    let method = req.method().as_str().to_string();
    if method == "OPTIONS" {
        return Ok(response::empty(StatusCode::OK));
    }
    let Some((h, param)) = routes::find(&method, path) else {
        drain(req).await;
        return Err(ApiError::not_found("page not found"));
    };
    // moby's handlers start with `httputils.ParseForm`: a bad escape or a `;` is a 400 (the
    // ping handler reads no form).
    let q = if h == H::Ping || h == H::LpPing {
        Query::parse(req.uri().query())
    } else {
        match Query::parse_strict(req.uri().query()) {
            Ok(q) => q,
            Err(e) => {
                drain(req).await;
                return Err(e.into());
            }
        }
    };
    match h {
        H::Ping => Ok(system::ping(method == "HEAD")),
        H::Version => system::version(&ctx).await,
        H::Info => system::info(&ctx).await,
        H::SystemDf => system::df(&ctx).await,
        H::Auth => login::auth(&ctx, req).await,
        H::Events => events::stream(&ctx, &q).await,
        H::ContainerCreate => containers::create(&ctx, &q, req).await,
        H::ContainerList => containers::list(&ctx, &q).await,
        H::ContainerInspect => containers::inspect(&ctx, param).await,
        H::ContainerDelete => containers::delete(&ctx, param, &q).await,
        H::ContainerRename => containers::rename(&ctx, param, &q).await,
        H::ContainerPrune => containers::prune(&ctx, &q).await,
        H::ContainerKill => containers::kill(&ctx, param, &q).await,
        H::ContainerStop => containers::stop(&ctx, param, &q).await,
        H::ContainerWait => containers::wait(&ctx, param, &q).await,
        H::ContainerLogs => containers::logs(&ctx, param, &q).await,
        H::ContainerStart => containers::start(&ctx, param).await,
        H::ContainerRestart => containers::restart(&ctx, param, &q).await,
        H::ContainerTop => container_ops::top(&ctx, param, &q).await,
        H::ContainerStats => container_ops::stats(&ctx, param, &q).await,
        H::ContainerPause => container_ops::pause(&ctx, param).await,
        H::ContainerUnpause => container_ops::unpause(&ctx, param).await,
        H::ContainerUpdate => container_ops::update(&ctx, param, req).await,
        H::ExecCreate => exec::create(&ctx, param, req).await,
        H::ExecStart => exec::start(&ctx, param, req).await,
        H::ExecResize => exec::resize(&ctx, param, &q).await,
        H::ExecInspect => exec::inspect(&ctx, param).await,
        H::ContainerAttach => attach::attach(&ctx, param, &q, req).await,
        H::ContainerResize => attach::resize(&ctx, param, &q).await,
        H::ArchiveHead => container_fs::archive_head(&ctx, param, &q).await,
        H::ArchiveGet => container_fs::archive_get(&ctx, param, &q).await,
        H::ArchivePut => container_fs::archive_put(&ctx, param, &q, req).await,
        H::ContainerExport => container_fs::export(&ctx, param).await,
        H::ContainerChanges => container_fs::changes(&ctx, param).await,
        H::Commit => container_fs::commit(&ctx, &q, req).await,
        H::ImageList => images::list(&ctx, &q).await,
        H::ImageCreate => images::create(&ctx, &q, req).await,
        H::ImageLoad => images::load(&ctx, &q, req).await,
        H::ImagesSave => {
            images::save(&ctx, q.all("names").iter().map(|s| s.to_string()).collect()).await
        }
        H::ImageSave => images::save(&ctx, vec![param]).await,
        H::ImageInspect => images::inspect(&ctx, param).await,
        H::ImageHistory => images::history(&ctx, param).await,
        H::ImageTag => images::tag(&ctx, param, &q).await,
        H::ImageDelete => images::delete(&ctx, param, &q).await,
        H::ImagePrune => images::prune(&ctx, &q).await,
        H::ImagePush => push::push(&ctx, &param, &q, req).await,
        H::ImageSearch => push::search(&ctx, &q, req).await,
        H::Distribution => login::distribution(&ctx, &param, req).await,
        H::Build => build::build(&ctx, &q, req).await,
        H::BuildPrune => {
            response::ok_json(&serde_json::json!({"CachesDeleted": [], "SpaceReclaimed": 0}))
        }
        H::PluginList => response::ok_json(&serde_json::json!([])),
        H::PluginInspect => Err(ApiError::not_found(format!("plugin \"{param}\" not found"))),
        H::NetworkList => networks::list(&ctx, &q).await,
        H::NetworkCreate => networks::create(&ctx, req).await,
        H::NetworkPrune => networks::prune(&ctx, &q).await,
        H::NetworkInspect => networks::inspect(&ctx, param, &q).await,
        H::NetworkDelete => networks::delete(&ctx, param).await,
        H::NetworkConnect => networks::connect(&ctx, param, req).await,
        H::NetworkDisconnect => networks::disconnect(&ctx, param, req).await,
        H::VolumeCreate => volumes::create(&ctx, req).await,
        H::VolumeList => volumes::list(&ctx, &q).await,
        H::VolumeInspect => volumes::inspect(&ctx, param).await,
        H::VolumeDelete => volumes::delete(&ctx, param, &q).await,
        H::VolumePrune => {
            let version = split_version(req.uri().path()).0.and_then(ApiVersion::parse);
            let anonymous_only = version.is_none_or(|v| v >= ApiVersion(1, 42));
            volumes::prune(&ctx, &q, anonymous_only).await
        }
        // Only swarm cluster volumes can be updated (moby answers this without a swarm).
        H::VolumeUpdate => Err(drain_then(
            req,
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.",
            ),
        )
        .await),
        H::PluginOther => Err(drain_then(req, ApiError::not_found("berth does not support plugins")).await),
        H::SwarmLeave => Err(drain_then(req, ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "This node is not part of a swarm",
        )).await),
        H::LpPing => Ok(system::ping(method == "HEAD")),
        H::LpPodCreate => libpod::pods::create(&ctx, req).await,
        H::LpPodList => libpod::pods::list(&ctx, &q).await,
        H::LpPodPrune => libpod::pods::prune(&ctx).await,
        H::LpPodStats => libpod::pods::stats(&ctx, &q).await,
        H::LpPodInspect => libpod::pods::inspect(&ctx, param).await,
        H::LpPodExists => libpod::pods::exists(&ctx, param).await,
        H::LpPodStart => libpod::pods::start(&ctx, param).await,
        H::LpPodStop => libpod::pods::stop(&ctx, param, &q).await,
        H::LpPodRestart => libpod::pods::restart(&ctx, param).await,
        H::LpPodKill => libpod::pods::kill(&ctx, param, &q).await,
        H::LpPodPause => libpod::pods::pause(&ctx, param, true).await,
        H::LpPodUnpause => libpod::pods::pause(&ctx, param, false).await,
        H::LpPodTop => libpod::pods::top(&ctx, param, &q).await,
        H::LpPodDelete => libpod::pods::delete(&ctx, param, &q).await,
        H::LpContainerCreate => libpod::containers::create(&ctx, req).await,
        H::LpContainerList => libpod::containers::list(&ctx, &q).await,
        H::LpContainerInspect => libpod::containers::inspect(&ctx, param).await,
        H::LpContainerExists => libpod::containers::exists(&ctx, param).await,
        H::LpContainerStart => containers::start(&ctx, param).await,
        H::LpContainerStop => libpod::containers::stop(&ctx, param, &q).await,
        H::LpContainerKill => containers::kill(&ctx, param, &q).await,
        H::LpContainerRestart => {
            containers::restart(&ctx, param, &libpod::containers::renamed(&q, "timeout", "t"))
                .await
        }
        H::LpContainerPause => container_ops::pause(&ctx, param).await,
        H::LpContainerUnpause => container_ops::unpause(&ctx, param).await,
        H::LpContainerWait => libpod::containers::wait(&ctx, param, &q).await,
        H::LpContainerAttach => attach::attach(&ctx, param, &q, req).await,
        H::LpContainerResize => attach::resize(&ctx, param, &q).await,
        H::LpContainerLogs => {
            containers::logs(&ctx, param, &libpod::containers::docker_log_query(&q)).await
        }
        H::LpContainerTop => container_ops::top(&ctx, param, &q).await,
        H::LpContainerDelete => libpod::containers::delete(&ctx, param, &q).await,
        H::LpExecCreate => libpod::containers::exec_create(&ctx, param, req).await,
        H::LpExecStart => {
            // podman reads an exec's output from the raw connection even without an upgrade:
            // a close-delimited body (HTTP/1.0 framing) is that stream, unchunked.
            let mut r = exec::start(&ctx, param, req).await?;
            if r.status() == StatusCode::OK {
                *r.version_mut() = hyper::Version::HTTP_10;
            }
            Ok(r)
        }
        H::LpExecResize => exec::resize(&ctx, param, &q).await,
        H::LpExecInspect => exec::inspect(&ctx, param).await,
        H::LpImagePull => libpod::pull(&ctx, &q, req).await,
        H::LpImageExists => libpod::image_exists(&ctx, param).await,
        H::LpGenerateKube => libpod::kube::generate(&ctx, &q).await,
        H::LpPlayKube => libpod::kube::play(&ctx, &q, req).await,
        H::LpPlayKubeDown => libpod::kube::down(&ctx, req).await,
        H::Swarm => Err(drain_then(req, ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.",
        )).await),
    }
}

/// Read and discard a request body that will not be used, so that the error answer reaches a
/// client still sending it (closing on unread data resets the connection: the client sees
/// `write: broken pipe` instead of the message). Bounded in size and time.
async fn drain(req: Request<Incoming>) {
    use http_body_util::BodyExt;
    const LIMIT: usize = 256 << 20;
    let mut body = req.into_body();
    let mut seen = 0usize;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > LIMIT {
                break;
            }
        }
    })
    .await;
}

async fn drain_then(req: Request<Incoming>, e: ApiError) -> ApiError {
    drain(req).await;
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes() {
        assert_eq!(split_version("/v1.50/_ping"), (Some("1.50"), "/_ping"));
        assert_eq!(split_version("/_ping"), (None, "/_ping"));
        assert_eq!(split_version("/version"), (None, "/version"));
        assert_eq!(
            split_version("/v1.24/images/a/b/json"),
            (Some("1.24"), "/images/a/b/json")
        );
    }

    #[test]
    fn version_bounds() {
        assert!(check_version(Some("1.50")).is_ok());
        assert!(check_version(Some("1.24")).is_ok());
        let e = check_version(Some("1.51")).unwrap_err();
        assert_eq!(
            e.message,
            "client version 1.51 is too new. Maximum supported API version is 1.50"
        );
        let e = check_version(Some("1.23")).unwrap_err();
        assert!(e.message.starts_with("client version 1.23 is too old."));
    }

    #[test]
    fn decodes_paths() {
        assert_eq!(
            percent_decode("/images/a%40sha256%3Aab/json"),
            "/images/a@sha256:ab/json"
        );
        assert_eq!(percent_decode("/x%"), "/x%");
        assert_eq!(percent_decode("/x%zz"), "/x%zz");
    }
}
