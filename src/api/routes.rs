//! The route table: every method and path berth serves. `openapi/berth.yaml` must list exactly
//! these (a test compares them). `{name}` takes the rest of the path up to a known suffix,
//! because image names hold `/` and `:`; `{id}` is one path segment.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H {
    Ping,
    Version,
    Info,
    SystemDf,
    Auth,
    Events,
    ContainerCreate,
    ContainerList,
    ContainerInspect,
    ContainerDelete,
    ContainerRename,
    ContainerPrune,
    ContainerKill,
    ContainerStop,
    ContainerWait,
    ContainerLogs,
    ContainerStart,
    ContainerRestart,
    ContainerTop,
    ContainerStats,
    ContainerPause,
    ContainerUnpause,
    ContainerUpdate,
    ExecCreate,
    ExecStart,
    ExecResize,
    ExecInspect,
    ContainerAttach,
    ContainerResize,
    ArchiveHead,
    ArchiveGet,
    ArchivePut,
    ContainerExport,
    ContainerChanges,
    Commit,
    ImageList,
    ImageCreate,
    ImageLoad,
    ImagesSave,
    ImageSave,
    ImageInspect,
    ImageHistory,
    ImageTag,
    ImageDelete,
    ImagePrune,
    ImagePush,
    ImageSearch,
    Distribution,
    Build,
    BuildPrune,
    PluginList,
    PluginInspect,
    NetworkList,
    NetworkCreate,
    NetworkPrune,
    NetworkInspect,
    NetworkDelete,
    NetworkConnect,
    NetworkDisconnect,
    VolumeCreate,
    VolumeList,
    VolumeInspect,
    VolumeDelete,
    VolumePrune,
    VolumeUpdate,
    PluginOther,
    SwarmLeave,
    Swarm,
    LpPing,
    LpPodCreate,
    LpPodList,
    LpPodPrune,
    LpPodStats,
    LpPodInspect,
    LpPodExists,
    LpPodStart,
    LpPodStop,
    LpPodRestart,
    LpPodKill,
    LpPodPause,
    LpPodUnpause,
    LpPodTop,
    LpPodDelete,
    LpContainerCreate,
    LpContainerList,
    LpContainerInspect,
    LpContainerExists,
    LpContainerStart,
    LpContainerStop,
    LpContainerKill,
    LpContainerRestart,
    LpContainerPause,
    LpContainerUnpause,
    LpContainerWait,
    LpContainerAttach,
    LpContainerResize,
    LpContainerLogs,
    LpContainerTop,
    LpContainerDelete,
    LpExecCreate,
    LpExecStart,
    LpExecResize,
    LpExecInspect,
    LpImagePull,
    LpImageExists,
    LpGenerateKube,
    LpPlayKube,
    LpPlayKubeDown,
}

pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub h: H,
}

const fn r(method: &'static str, path: &'static str, h: H) -> Route {
    Route { method, path, h }
}

pub static ROUTES: &[Route] = &[
    r("GET", "/_ping", H::Ping),
    r("HEAD", "/_ping", H::Ping),
    r("GET", "/version", H::Version),
    r("GET", "/info", H::Info),
    r("GET", "/system/df", H::SystemDf),
    r("POST", "/auth", H::Auth),
    r("GET", "/events", H::Events),
    r("POST", "/containers/create", H::ContainerCreate),
    r("GET", "/containers/json", H::ContainerList),
    r("POST", "/containers/prune", H::ContainerPrune),
    r("GET", "/containers/{id}/json", H::ContainerInspect),
    // {name}: a link name (`parent/alias`, with ?link=true) has a slash.
    r("DELETE", "/containers/{name}", H::ContainerDelete),
    r("POST", "/containers/{id}/rename", H::ContainerRename),
    r("POST", "/containers/{id}/start", H::ContainerStart),
    r("POST", "/containers/{id}/restart", H::ContainerRestart),
    r("POST", "/containers/{id}/kill", H::ContainerKill),
    r("POST", "/containers/{id}/stop", H::ContainerStop),
    r("POST", "/containers/{id}/wait", H::ContainerWait),
    r("GET", "/containers/{id}/logs", H::ContainerLogs),
    r("POST", "/containers/{id}/attach", H::ContainerAttach),
    r("GET", "/containers/{id}/top", H::ContainerTop),
    r("GET", "/containers/{id}/stats", H::ContainerStats),
    r("POST", "/containers/{id}/pause", H::ContainerPause),
    r("POST", "/containers/{id}/unpause", H::ContainerUnpause),
    r("POST", "/containers/{id}/update", H::ContainerUpdate),
    r("POST", "/containers/{id}/exec", H::ExecCreate),
    r("POST", "/exec/{id}/start", H::ExecStart),
    r("POST", "/exec/{id}/resize", H::ExecResize),
    r("GET", "/exec/{id}/json", H::ExecInspect),
    r("POST", "/containers/{id}/resize", H::ContainerResize),
    r("HEAD", "/containers/{id}/archive", H::ArchiveHead),
    r("GET", "/containers/{id}/archive", H::ArchiveGet),
    r("PUT", "/containers/{id}/archive", H::ArchivePut),
    r("GET", "/containers/{id}/export", H::ContainerExport),
    r("GET", "/containers/{id}/changes", H::ContainerChanges),
    r("POST", "/commit", H::Commit),
    r("GET", "/images/json", H::ImageList),
    r("POST", "/images/create", H::ImageCreate),
    r("POST", "/images/load", H::ImageLoad),
    r("GET", "/images/get", H::ImagesSave),
    r("GET", "/images/search", H::ImageSearch),
    r("POST", "/images/prune", H::ImagePrune),
    r("GET", "/images/{name}/get", H::ImageSave),
    r("GET", "/images/{name}/json", H::ImageInspect),
    r("GET", "/images/{name}/history", H::ImageHistory),
    r("POST", "/images/{name}/tag", H::ImageTag),
    r("POST", "/images/{name}/push", H::ImagePush),
    r("DELETE", "/images/{name}", H::ImageDelete),
    r("GET", "/distribution/{name}/json", H::Distribution),
    r("POST", "/build", H::Build),
    r("POST", "/build/prune", H::BuildPrune),
    r("GET", "/networks", H::NetworkList),
    r("POST", "/networks/create", H::NetworkCreate),
    r("POST", "/networks/prune", H::NetworkPrune),
    r("GET", "/networks/{id}", H::NetworkInspect),
    r("DELETE", "/networks/{id}", H::NetworkDelete),
    r("POST", "/networks/{id}/connect", H::NetworkConnect),
    r("POST", "/networks/{id}/disconnect", H::NetworkDisconnect),
    r("GET", "/volumes", H::VolumeList),
    r("POST", "/volumes/create", H::VolumeCreate),
    r("POST", "/volumes/prune", H::VolumePrune),
    r("GET", "/volumes/{id}", H::VolumeInspect),
    r("PUT", "/volumes/{id}", H::VolumeUpdate),
    r("DELETE", "/volumes/{id}", H::VolumeDelete),
    r("GET", "/plugins", H::PluginList),
    r("GET", "/plugins/privileges", H::PluginOther),
    r("POST", "/plugins/pull", H::PluginOther),
    r("POST", "/plugins/create", H::PluginOther),
    r("GET", "/plugins/{name}/json", H::PluginInspect),
    r("DELETE", "/plugins/{name}", H::PluginInspect),
    r("POST", "/plugins/{name}/enable", H::PluginInspect),
    r("POST", "/plugins/{name}/disable", H::PluginInspect),
    r("POST", "/plugins/{name}/upgrade", H::PluginInspect),
    r("POST", "/plugins/{name}/push", H::PluginInspect),
    r("POST", "/plugins/{name}/set", H::PluginInspect),
    r("GET", "/swarm", H::Swarm),
    r("POST", "/swarm/init", H::Swarm),
    r("POST", "/swarm/join", H::Swarm),
    r("POST", "/swarm/leave", H::SwarmLeave),
    r("POST", "/swarm/update", H::Swarm),
    r("GET", "/swarm/unlockkey", H::Swarm),
    r("POST", "/swarm/unlock", H::SwarmLeave),
    r("GET", "/nodes", H::Swarm),
    r("GET", "/nodes/{id}", H::Swarm),
    r("DELETE", "/nodes/{id}", H::Swarm),
    r("POST", "/nodes/{id}/update", H::Swarm),
    r("GET", "/services", H::Swarm),
    r("POST", "/services/create", H::Swarm),
    r("GET", "/services/{id}", H::Swarm),
    r("DELETE", "/services/{id}", H::Swarm),
    r("POST", "/services/{id}/update", H::Swarm),
    r("GET", "/services/{id}/logs", H::Swarm),
    r("GET", "/tasks", H::Swarm),
    r("GET", "/tasks/{id}", H::Swarm),
    r("GET", "/tasks/{id}/logs", H::Swarm),
    r("GET", "/secrets", H::Swarm),
    r("POST", "/secrets/create", H::Swarm),
    r("GET", "/secrets/{id}", H::Swarm),
    r("DELETE", "/secrets/{id}", H::Swarm),
    r("POST", "/secrets/{id}/update", H::Swarm),
    r("GET", "/configs", H::Swarm),
    r("POST", "/configs/create", H::Swarm),
    r("GET", "/configs/{id}", H::Swarm),
    r("DELETE", "/configs/{id}", H::Swarm),
    r("POST", "/configs/{id}/update", H::Swarm),
    // libpod (Podman's API), reached with or without a /v4.x.x or /v5.x.x prefix.
    r("GET", "/libpod/_ping", H::LpPing),
    r("HEAD", "/libpod/_ping", H::LpPing),
    r("POST", "/libpod/pods/create", H::LpPodCreate),
    r("GET", "/libpod/pods/json", H::LpPodList),
    r("POST", "/libpod/pods/prune", H::LpPodPrune),
    r("GET", "/libpod/pods/stats", H::LpPodStats),
    r("GET", "/libpod/pods/{id}/json", H::LpPodInspect),
    r("GET", "/libpod/pods/{id}/exists", H::LpPodExists),
    r("POST", "/libpod/pods/{id}/start", H::LpPodStart),
    r("POST", "/libpod/pods/{id}/stop", H::LpPodStop),
    r("POST", "/libpod/pods/{id}/restart", H::LpPodRestart),
    r("POST", "/libpod/pods/{id}/kill", H::LpPodKill),
    r("POST", "/libpod/pods/{id}/pause", H::LpPodPause),
    r("POST", "/libpod/pods/{id}/unpause", H::LpPodUnpause),
    r("GET", "/libpod/pods/{id}/top", H::LpPodTop),
    r("DELETE", "/libpod/pods/{id}", H::LpPodDelete),
    r("POST", "/libpod/containers/create", H::LpContainerCreate),
    r("GET", "/libpod/containers/json", H::LpContainerList),
    r("GET", "/libpod/containers/{id}/json", H::LpContainerInspect),
    r(
        "GET",
        "/libpod/containers/{id}/exists",
        H::LpContainerExists,
    ),
    r("POST", "/libpod/containers/{id}/start", H::LpContainerStart),
    r("POST", "/libpod/containers/{id}/stop", H::LpContainerStop),
    r("POST", "/libpod/containers/{id}/kill", H::LpContainerKill),
    r(
        "POST",
        "/libpod/containers/{id}/restart",
        H::LpContainerRestart,
    ),
    r("POST", "/libpod/containers/{id}/pause", H::LpContainerPause),
    r(
        "POST",
        "/libpod/containers/{id}/unpause",
        H::LpContainerUnpause,
    ),
    r("POST", "/libpod/containers/{id}/wait", H::LpContainerWait),
    r(
        "POST",
        "/libpod/containers/{id}/attach",
        H::LpContainerAttach,
    ),
    r(
        "POST",
        "/libpod/containers/{id}/resize",
        H::LpContainerResize,
    ),
    r("GET", "/libpod/containers/{id}/logs", H::LpContainerLogs),
    r("GET", "/libpod/containers/{id}/top", H::LpContainerTop),
    r("DELETE", "/libpod/containers/{id}", H::LpContainerDelete),
    r("POST", "/libpod/containers/{id}/exec", H::LpExecCreate),
    r("POST", "/libpod/exec/{id}/start", H::LpExecStart),
    r("POST", "/libpod/exec/{id}/resize", H::LpExecResize),
    r("GET", "/libpod/exec/{id}/json", H::LpExecInspect),
    r("POST", "/libpod/images/pull", H::LpImagePull),
    r("GET", "/libpod/images/{name}/exists", H::LpImageExists),
    r("GET", "/libpod/generate/kube", H::LpGenerateKube),
    r("POST", "/libpod/play/kube", H::LpPlayKube),
    r("DELETE", "/libpod/play/kube", H::LpPlayKubeDown),
    r("POST", "/libpod/kube/play", H::LpPlayKube),
    r("DELETE", "/libpod/kube/play", H::LpPlayKubeDown),
];

/// Match one pattern; returns the parameter (empty for literal routes).
fn matches(pattern: &str, path: &str) -> Option<String> {
    let Some(open) = pattern.find('{') else {
        return (pattern == path).then(String::new);
    };
    let close = pattern[open..].find('}')? + open;
    let (prefix, param, suffix) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    let middle = path.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if middle.is_empty() || (param != "name" && middle.contains('/')) {
        return None;
    }
    Some(middle.to_string())
}

/// Find the route for a request: literal paths first, then patterns with the longest suffix.
pub fn find(method: &str, path: &str) -> Option<(H, String)> {
    let literal = ROUTES
        .iter()
        .filter(|r| !r.path.contains('{'))
        .find(|r| r.method == method && r.path == path);
    if let Some(r) = literal {
        return Some((r.h, String::new()));
    }
    let mut patterned: Vec<&Route> = ROUTES
        .iter()
        .filter(|r| r.method == method && r.path.contains('{'))
        .collect();
    patterned.sort_by_key(|r| std::cmp::Reverse(r.path.len() - r.path.find('}').unwrap_or(0)));
    patterned
        .into_iter()
        .find_map(|r| matches(r.path, path).map(|p| (r.h, p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_with_slashes_and_ports() {
        assert_eq!(
            find("GET", "/images/localhost:5000/foo/bar:tag/json"),
            Some((H::ImageInspect, "localhost:5000/foo/bar:tag".into()))
        );
        assert_eq!(
            find("GET", "/images/json"),
            Some((H::ImageList, String::new()))
        );
        assert_eq!(
            find("DELETE", "/images/docker.io/library/busybox:latest"),
            Some((H::ImageDelete, "docker.io/library/busybox:latest".into()))
        );
        assert_eq!(
            find("GET", "/images/busybox/get"),
            Some((H::ImageSave, "busybox".into()))
        );
        assert_eq!(
            find("GET", "/images/get"),
            Some((H::ImagesSave, String::new()))
        );
    }

    #[test]
    fn wrong_method_or_path_is_none() {
        assert_eq!(find("POST", "/version"), None);
        assert_eq!(find("GET", "/nope"), None);
        assert_eq!(find("GET", "/nodes/a/b"), None);
        assert_eq!(find("GET", "/images//json"), None);
    }
}
