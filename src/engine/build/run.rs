//! RUN: the command runs in a real container of the engine (created, started, its output
//! followed from its log, waited for), whose changes then become the step's layer.

use serde_json::{Map, Value, json};

use crate::engine::Engine;
use crate::engine::containers::{create, lifecycle, logs, remove, start};
use crate::model::create::CreateRequest;
use crate::util::short_id;

use super::{BuildError, BuildRequest, Output};

/// A RUN container, removed on drop unless kept.
pub struct RunContainer {
    pub id: String,
    engine: Engine,
    keep: bool,
}

impl Drop for RunContainer {
    fn drop(&mut self) {
        if !self.keep {
            let _ = remove::remove(&self.engine, &self.id, true, true);
        }
    }
}

impl RunContainer {
    /// Leave the container in place (`rm=0`, or a failed step without `forcerm`).
    pub fn keep(mut self) {
        self.keep = true;
    }

    /// Remove now, printing Docker's line.
    pub fn remove(mut self, out: &mut Output) {
        self.keep = true;
        match remove::remove(&self.engine, &self.id, true, true) {
            Ok(()) => out.stream(&format!(
                " ---> Removed intermediate container {}\n",
                short_id(&self.id)
            )),
            Err(e) => out.stream(&format!(
                "Removing intermediate container {}: {}\n",
                short_id(&self.id),
                e.message
            )),
        }
    }
}

/// Create and run the container for a RUN step; returns it once the command exited 0.
#[allow(clippy::too_many_arguments)]
pub fn run(
    engine: &Engine,
    req: &BuildRequest,
    image_id: &str,
    run_config: &Map<String, Value>,
    cmd: &[String],
    env: &[String],
    binds: &[String],
    out: &mut Output,
) -> Result<RunContainer, BuildError> {
    let mut body = run_config.clone();
    body.insert("Image".into(), json!(image_id));
    body.insert("Cmd".into(), json!(cmd));
    body.insert("Entrypoint".into(), json!([]));
    body.insert("Env".into(), json!(env));
    body.insert("Healthcheck".into(), json!({"Test": ["NONE"]}));
    body.insert("AttachStdout".into(), json!(true));
    body.insert("AttachStderr".into(), json!(true));
    let network = match req.network_mode.as_str() {
        "" | "default" => "bridge",
        m => m,
    };
    body.insert(
        "HostConfig".into(),
        json!({
            "NetworkMode": network,
            "ExtraHosts": req.extra_hosts,
            "ShmSize": req.shm_size,
            "Memory": req.memory,
            "MemorySwap": req.memswap,
            "CpuShares": req.cpu_shares,
            "CpuPeriod": req.cpu_period,
            "CpuQuota": req.cpu_quota,
            "CpusetCpus": req.cpuset_cpus,
            "CpusetMems": req.cpuset_mems,
            "Binds": binds,
        }),
    );
    let request = CreateRequest::from_body(body).map_err(|e| BuildError::step(e.message))?;
    let created = create::create(engine, None, request).map_err(BuildError::engine)?;
    let container = RunContainer {
        id: created.id.clone(),
        engine: engine.clone(),
        keep: false,
    };
    for w in &created.warnings {
        out.stream(&format!(" ---> [Warning] {w}\n"));
    }
    out.stream(&format!(" ---> Running in {}\n", short_id(&created.id)));
    start::start(engine, &created.id).map_err(BuildError::engine)?;
    let gone = out.gone_fn();
    let opts = logs::LogOptions {
        stdout: true,
        stderr: true,
        follow: true,
        gone: Some(gone.clone()),
        ..Default::default()
    };
    let src = logs::open(engine, &created.id, &opts).map_err(BuildError::engine)?;
    logs::stream(engine, &src, &opts, &mut |e| {
        if let Some(e) = e {
            let text = String::from_utf8_lossy(&e.text);
            if e.stream == 2 {
                out.stream(&format!("\u{1b}[91m{text}\u{1b}[0m"));
            } else {
                out.stream(&text);
            }
        }
        if out.is_gone() {
            return Err(std::io::Error::other("client gone"));
        }
        Ok(())
    })
    .map_err(BuildError::engine)?;
    if out.is_gone() {
        return Err(BuildError::cancelled());
    }
    let (code, _) = lifecycle::wait(engine, &created.id, "", &*gone).map_err(BuildError::engine)?;
    if code != 0 {
        return Err(BuildError {
            message: format!(
                "The command '{}' returned a non-zero code: {code}",
                cmd.join(" ")
            ),
            code,
            container: Some(container),
        });
    }
    Ok(container)
}
