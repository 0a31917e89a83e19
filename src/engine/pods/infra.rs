//! The infra container: berth's pause image (made on first use from the binary built into
//! berth) and the container that holds a pod's namespaces and published ports.

use std::collections::BTreeMap;

use crate::store::pods::PodRow;

use super::{PodConfig, infra_request};
use crate::engine::containers::create::{PodJoin, create_in};
use crate::engine::images::import::{ImportRequest, import};
use crate::engine::{Engine, EngineError, ErrorKind, Result};

/// The static pause binary (`pause/pause.c`, built by build.rs).
const PAUSE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));

pub const PAUSE_REPO: &str = "localhost/berth-pause";

pub fn pause_image_name() -> String {
    format!("{PAUSE_REPO}:{}", env!("CARGO_PKG_VERSION"))
}

/// The pause image's ID, importing it if this store has none yet.
pub fn pause_image(engine: &Engine) -> Result<String> {
    let name = pause_image_name();
    let found = engine
        .store()?
        .read(|tx| crate::engine::images::resolve(tx, &name).map(|i| i.id));
    match found {
        Ok(id) => return Ok(id),
        Err(e) if e.kind == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(PAUSE.len() as u64);
    h.set_mode(0o755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, "pause", PAUSE)
        .map_err(EngineError::internal_cause)?;
    let bytes = tar.into_inner().map_err(EngineError::internal_cause)?;
    let changes = vec![r#"ENTRYPOINT ["/pause"]"#.to_string()];
    import(
        engine,
        &ImportRequest {
            repo: PAUSE_REPO,
            tag: env!("CARGO_PKG_VERSION"),
            message: "berth pod infra image",
            source: "berth",
            changes: &changes,
        },
        &bytes[..],
    )
}

/// Make the pod (its row) and its infra container (`<pod id 12>-infra`) in one transaction.
pub fn create_infra(
    engine: &Engine,
    pod: PodRow,
    config: &PodConfig,
    image: Option<&str>,
    command: Option<Vec<String>>,
    name: Option<&str>,
) -> Result<String> {
    let image = match image.filter(|i| !i.is_empty()) {
        Some(i) => i.to_string(),
        None => {
            pause_image(engine)?;
            pause_image_name()
        }
    };
    let labels: BTreeMap<String, String> = config.labels.clone();
    let request = infra_request(config, &image, command, labels);
    let name = name
        .map(String::from)
        .unwrap_or_else(|| format!("{}-infra", &pod.id[..12]));
    let created = create_in(
        engine,
        Some(&name),
        request,
        Some(&PodJoin {
            pod_id: pod.id.clone(),
            infra: true,
            new_pod: Some(pod),
        }),
    )?;
    Ok(created.id)
}
