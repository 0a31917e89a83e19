//! Operations on a running container's processes and cgroup: top, stats, pause, unpause and
//! update.

use std::process::Command;

use serde_json::{Map, Value, json};

use crate::store::containers::{self as rows, ContainerRow};
use crate::util::time::{now_nanos, rfc3339_nano};

use super::cgroup_stats::{self, Sample};

pub type SampleOf = Sample;
use super::inspect::container_event;
use super::resolve;
use super::state::{ContainerStatus, State, current};
use crate::engine::{Engine, EngineError, Result};
use crate::model::UpdateConfig;

/// The container's record and its state now.
pub fn load(engine: &Engine, name: &str) -> Result<(ContainerRow, State)> {
    let row = engine.store()?.read(|tx| resolve(tx, name))?;
    let state = state_of(engine, &row.id)?;
    Ok((row, state))
}

fn state_of(engine: &Engine, id: &str) -> Result<State> {
    let stored = engine.store()?.read(|tx| {
        Ok::<_, EngineError>(
            rows::get(tx, id)?
                .map(|r| State::parse(&r.state))
                .unwrap_or_default(),
        )
    })?;
    Ok(current(engine.paths(), id, &stored))
}

/// Is the container running (paused included, restarting not)?
pub fn is_running(engine: &Engine, id: &str) -> bool {
    state_of(engine, id)
        .map(|s| s.status == ContainerStatus::Running)
        .unwrap_or(false)
}

fn runtime(engine: &Engine, args: &[&str]) -> Result<std::process::Output> {
    Command::new(&engine.config().runtime)
        .arg("--root")
        .arg(engine.paths().runtime_root())
        .args(args)
        .output()
        .map_err(|e| EngineError::internal(format!("running {}: {e}", engine.config().runtime)))
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

// ---- top ----

/// moby's check that `ps_args` does not rename the PID column away.
fn validate_ps_args(args: &str) -> Result<()> {
    for word in args.split_whitespace() {
        for part in word.split(',') {
            if let Some((k, v)) = part.split_once('=')
                && v.trim_start().starts_with("PID")
                && k != "pid"
            {
                return Err(EngineError::invalid(format!(
                    "specifying \"{k}={v}\" is not allowed"
                )));
            }
        }
    }
    Ok(())
}

/// Parse `ps` output, keeping the rows of `pids` (and thread rows that follow one).
pub fn parse_ps(output: &str, pids: &[i64]) -> Result<Value> {
    let mut lines = output.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_ascii_whitespace()
        .map(String::from)
        .collect();
    let Some(pid_index) = titles.iter().position(|t| t == "PID") else {
        return Err(EngineError::internal(
            "Couldn't find PID field in ps output",
        ));
    };
    let mut processes: Vec<Vec<String>> = Vec::new();
    let append = |processes: &mut Vec<Vec<String>>, fields: &[&str]| {
        let n = titles.len();
        let mut row: Vec<String> = fields
            .iter()
            .take(n.saturating_sub(1))
            .map(|s| s.to_string())
            .collect();
        if fields.len() >= n {
            row.push(fields[n - 1..].join(" "));
        }
        processes.push(row);
    };
    let mut previous_contained = false;
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let Some(field) = fields.get(pid_index) else {
            continue;
        };
        if *field == "-" {
            if previous_contained {
                append(&mut processes, &fields);
            }
            continue;
        }
        let p: i64 = field
            .parse()
            .map_err(|e| EngineError::internal(format!("Unexpected pid '{field}': {e}")))?;
        previous_contained = pids.contains(&p);
        if previous_contained {
            append(&mut processes, &fields);
        }
    }
    Ok(json!({"Titles": titles, "Processes": processes}))
}

/// `GET /containers/{id}/top?ps_args=`.
pub fn top(engine: &Engine, name: &str, ps_args: &str) -> Result<Value> {
    let ps_args = if ps_args.is_empty() { "-ef" } else { ps_args };
    validate_ps_args(ps_args)?;
    let (row, state) = load(engine, name)?;
    if state.status == ContainerStatus::Restarting {
        return Err(EngineError::conflict(format!(
            "Container {} is restarting, wait until the container is running",
            row.id
        )));
    }
    if state.status != ContainerStatus::Running {
        return Err(EngineError::conflict(format!(
            "container {} is not running",
            row.id
        )));
    }
    let pids = cgroup_stats::procs(&row.id);
    let out = Command::new("ps")
        .args(ps_args.split_whitespace())
        .output()
        .map_err(|e| EngineError::internal(format!("Error running ps: {e}")))?;
    if !out.status.success() {
        return Err(EngineError::internal(format!(
            "ps: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
}

// ---- pause / unpause ----

fn set_paused(engine: &Engine, row: &ContainerRow, paused: bool) -> Result<()> {
    engine.store()?.write(|tx| {
        let mut s = rows::get(tx, &row.id)?
            .map(|r| State::parse(&r.state))
            .unwrap_or_default();
        s.paused = paused;
        rows::set_state(tx, &row.id, &s.to_text())?;
        container_event(
            tx,
            if paused { "pause" } else { "unpause" },
            row,
            Map::new(),
        )
    })
}

/// `POST /containers/{id}/pause`.
pub fn pause(engine: &Engine, name: &str) -> Result<()> {
    let row = engine.store()?.read(|tx| resolve(tx, name))?;
    let _lock = engine.lock_container(&row.id)?;
    let state = state_of(engine, &row.id)?;
    if state.status != ContainerStatus::Running {
        return Err(EngineError::conflict(format!(
            "Container {} is not running",
            row.id
        )));
    }
    if state.paused {
        return Err(EngineError::conflict(format!(
            "Container {} is already paused",
            row.id
        )));
    }
    let out = runtime(engine, &["pause", &row.id])?;
    if !out.status.success() {
        return Err(EngineError::internal(format!(
            "Cannot pause container {}: {}",
            row.id,
            stderr_of(&out)
        )));
    }
    set_paused(engine, &row, true)
}

/// `POST /containers/{id}/unpause`.
pub fn unpause(engine: &Engine, name: &str) -> Result<()> {
    let row = engine.store()?.read(|tx| resolve(tx, name))?;
    let _lock = engine.lock_container(&row.id)?;
    let state = state_of(engine, &row.id)?;
    if !(state.paused && state.status == ContainerStatus::Running) {
        return Err(EngineError::conflict(format!(
            "Container {} is not paused",
            row.id
        )));
    }
    let out = runtime(engine, &["resume", &row.id])?;
    if !out.status.success() {
        return Err(EngineError::internal(format!(
            "Cannot unpause container {}: {}",
            row.id,
            stderr_of(&out)
        )));
    }
    set_paused(engine, &row, false)
}

// ---- stats ----

/// Docker's stats object for `row`: zeroed (only `name`/`id`) without a sample.
pub fn stats_json(
    row: &ContainerRow,
    cur: Option<(i64, &Sample)>,
    prev: Option<(i64, &Sample)>,
) -> Value {
    let zero_time = "0001-01-01T00:00:00Z".to_string();
    let time =
        |t: Option<(i64, &Sample)>| t.map(|(n, _)| rfc3339_nano(n)).unwrap_or(zero_time.clone());
    let mut v = json!({
        "read": time(cur),
        "preread": time(prev),
        "pids_stats": cur.map(|(_, s)| s.pids.clone()).unwrap_or(json!({})),
        "blkio_stats": cur.map(|(_, s)| s.blkio.clone()).unwrap_or_else(cgroup_stats::empty_blkio),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cur.map(|(_, s)| s.cpu.clone()).unwrap_or_else(cgroup_stats::empty_cpu),
        "precpu_stats": prev.map(|(_, s)| s.cpu.clone()).unwrap_or_else(cgroup_stats::empty_cpu),
        "memory_stats": cur.map(|(_, s)| s.memory.clone()).unwrap_or(json!({})),
        "name": format!("/{}", row.name),
        "id": row.id,
    });
    if cur.is_some() {
        v["networks"] = json!({});
    }
    v
}

/// One sample now, with its time.
pub fn sample(row: &ContainerRow) -> (i64, Sample) {
    (now_nanos(), cgroup_stats::sample(&row.id))
}

// ---- update ----

/// `POST /containers/{id}/update`.
pub fn update(engine: &Engine, name: &str, body: UpdateConfig) -> Result<Value> {
    let row = engine.store()?.read(|tx| resolve(tx, name))?;
    let _lock = engine.lock_container(&row.id)?;
    let state = state_of(engine, &row.id)?;
    let mut hc = row.host_config();
    let cannot =
        |msg: String| EngineError::invalid(format!("Cannot update container {}: {msg}", row.id));

    // Restart policy: only a named one replaces the stored one (effective at the next start).
    let policy = body.restart_policy;
    if !policy.name.is_empty() {
        if hc.auto_remove && policy.name != "no" {
            return Err(cannot(
                "Restart policy cannot be updated because AutoRemove is enabled for the container"
                    .into(),
            ));
        }
        hc.restart_policy = policy;
    }

    let given = &body.resources;
    let set = |v: i64| Some(v).filter(|v| *v != 0);
    let memory = set(given.memory);
    let swap = set(given.memory_swap);
    if let Some(m) = memory
        && m > 0
        && m < 6 * 1024 * 1024
    {
        return Err(EngineError::invalid("Minimum memory limit allowed is 6MB"));
    }
    let old_swap = hc.resources.memory_swap;
    if let Some(m) = memory
        && swap.is_none()
        && old_swap > 0
        && m > old_swap
    {
        return Err(cannot("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time".into()));
    }
    let reservation = set(given.memory_reservation);
    let shares = set(given.cpu_shares);
    let mut quota = set(given.cpu_quota);
    let mut period = set(given.cpu_period);
    let nano = set(given.nano_cpus);
    let cpus = Some(given.cpuset_cpus.as_str()).filter(|s| !s.is_empty());
    let mems = Some(given.cpuset_mems.as_str()).filter(|s| !s.is_empty());
    let pids = given.pids_limit;
    let weight = set(i64::from(given.blkio_weight));
    if nano.is_some() && (quota.is_some() || period.is_some()) {
        return Err(cannot(
            "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set"
                .into(),
        ));
    }

    let stored = &mut hc.resources;
    for (field, v) in [
        (&mut stored.memory, memory),
        (&mut stored.memory_swap, swap),
        (&mut stored.memory_reservation, reservation),
        (&mut stored.cpu_shares, shares),
        (&mut stored.cpu_quota, quota),
        (&mut stored.cpu_period, period),
        (&mut stored.nano_cpus, nano),
    ] {
        if let Some(v) = v {
            *field = v;
        }
    }
    if weight.is_some() {
        stored.blkio_weight = given.blkio_weight;
    }
    if let Some(p) = pids {
        stored.pids_limit = Some(p.max(0));
    }
    if let Some(c) = cpus {
        stored.cpuset_cpus = c.to_string();
    }
    if let Some(m) = mems {
        stored.cpuset_mems = m.to_string();
    }

    if state.status == ContainerStatus::Running {
        if let Some(n) = nano {
            period = Some(100_000);
            quota = Some(n * 100_000 / 1_000_000_000);
        }
        let mut res = Map::new();
        let mut mem = Map::new();
        for (k, v) in [
            ("limit", memory),
            ("reservation", reservation),
            ("swap", swap),
        ] {
            if let Some(v) = v {
                mem.insert(k.into(), json!(v));
            }
        }
        let mut cpu = Map::new();
        for (k, v) in [("shares", shares), ("quota", quota), ("period", period)] {
            if let Some(v) = v {
                cpu.insert(k.into(), json!(v));
            }
        }
        if let Some(c) = cpus {
            cpu.insert("cpus".into(), json!(c));
        }
        if let Some(m) = mems {
            cpu.insert("mems".into(), json!(m));
        }
        if !mem.is_empty() {
            res.insert("memory".into(), Value::Object(mem));
        }
        if !cpu.is_empty() {
            res.insert("cpu".into(), Value::Object(cpu));
        }
        if let Some(p) = pids {
            res.insert("pids".into(), json!({"limit": if p <= 0 { -1 } else { p }}));
        }
        if let Some(w) = weight {
            res.insert("blockIO".into(), json!({"weight": w}));
        }
        if !res.is_empty() {
            let dir = engine.paths().container_dir(&row.id);
            let file = dir.join("update-resources.json");
            std::fs::write(
                &file,
                serde_json::to_vec(&Value::Object(res)).unwrap_or_default(),
            )?;
            let out = runtime(
                engine,
                &["update", "--resources", &file.to_string_lossy(), &row.id],
            );
            let _ = std::fs::remove_file(&file);
            let out = out?;
            if !out.status.success() {
                return Err(EngineError::internal(format!(
                    "Cannot update container {}: {}",
                    row.id,
                    stderr_of(&out)
                )));
            }
        }
    }

    let text = super::to_stored(&hc)?;
    engine.store()?.write(|tx| {
        rows::set_host_config(tx, &row.id, &text)?;
        container_event(tx, "update", &row, Map::new())
    })?;
    Ok(json!({"Warnings": []}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_rows_of_the_container_only() {
        let out = "UID PID PPID C STIME TTY TIME CMD\n\
                   root 1 0 0 10:00 ? 00:00:01 /sbin/init\n\
                   root 42 1 0 10:00 ? 00:00:00 sleep 100\n";
        let v = parse_ps(out, &[42]).unwrap();
        assert_eq!(v["Titles"].as_array().unwrap().len(), 8);
        let p = v["Processes"].as_array().unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0][7], "sleep 100");
        assert!(validate_ps_args("-o user=PID").is_err());
        assert!(validate_ps_args("-o pid=PID").is_ok());
    }
}
