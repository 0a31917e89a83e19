//! `ADD <url>`: the file is fetched on every build (its content is part of the cache key),
//! kept with mode 0600 and the server's `Last-Modified` time, and never extracted.

use std::path::Path;

use super::BuildError;

/// What was fetched: its path below the downloads folder, and the name it gives the copy
/// (`None` when the URL names no file: then the destination is the file).
pub struct Downloaded {
    pub path: String,
    pub name: Option<String>,
}

/// The file name a URL gives (moby: the last path element, unless the path ends in `/`).
fn url_file_name(url: &reqwest::Url) -> Option<String> {
    let path = url.path();
    if path.is_empty() || path.ends_with('/') {
        return None;
    }
    path.rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .map(String::from)
}

/// Fetch `raw` into `dir/<n>/`.
pub fn fetch(raw: &str, dir: &Path, n: usize) -> Result<Downloaded, BuildError> {
    let url = reqwest::Url::parse(raw)
        .map_err(|e| BuildError::step(format!("ADD failed: invalid URL {raw}: {e}")))?;
    let name = url_file_name(&url);
    let handle = tokio::runtime::Handle::current();
    let (status, modified, body) = handle
        .block_on(async {
            let resp = reqwest::Client::new().get(url.clone()).send().await?;
            let status = resp.status();
            let modified = resp
                .headers()
                .get(reqwest::header::LAST_MODIFIED)
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, modified, body))
        })
        .map_err(|e| BuildError::step(format!("failed to GET {raw}: {e}")))?;
    if status.as_u16() >= 400 {
        return Err(BuildError::step(format!(
            "failed to GET {raw} with status {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(512)])
        )));
    }
    let sub = dir.join(n.to_string());
    std::fs::create_dir_all(&sub).map_err(BuildError::internal)?;
    let file_name = name.clone().unwrap_or_else(|| "download".into());
    let file = sub.join(&file_name);
    std::fs::write(&file, &body).map_err(BuildError::internal)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
        .map_err(BuildError::internal)?;
    let mtime = modified
        .and_then(|m| {
            jiff::fmt::rfc2822::DateTimeParser::new()
                .parse_timestamp(&m)
                .ok()
        })
        .map(|t| t.as_second())
        .unwrap_or(0);
    let t = nix::sys::time::TimeSpec::new(mtime, 0);
    let _ = nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &file,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    );
    Ok(Downloaded {
        path: format!("/{n}/{file_name}"),
        name,
    })
}
