//! A container's cgroup as `docker stats` and `docker top` see it: its processes and one
//! sample of its counters (cgroup v1 controllers under `/berth/<id>`, or the v2 directory).

use std::path::PathBuf;

use serde_json::{Map, Value, json};

const ROOT: &str = "/sys/fs/cgroup";

/// Is the host on the unified (v2) hierarchy?
pub fn is_v2() -> bool {
    std::path::Path::new(ROOT)
        .join("cgroup.controllers")
        .exists()
}

/// The container's directory under one v1 controller, or its v2 directory (`ctrl` ignored).
pub fn dir(id: &str, ctrl: &str) -> PathBuf {
    if is_v2() {
        PathBuf::from(ROOT).join("berth").join(id)
    } else {
        PathBuf::from(ROOT).join(ctrl).join("berth").join(id)
    }
}

fn read(id: &str, ctrl: &str, file: &str) -> Option<String> {
    std::fs::read_to_string(dir(id, ctrl).join(file)).ok()
}

fn read_u64(id: &str, ctrl: &str, file: &str) -> Option<u64> {
    read(id, ctrl, file).and_then(|s| s.trim().parse().ok())
}

/// `key value` lines as a map.
fn flat_keyed(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// The PIDs in the container's cgroup.
pub fn procs(id: &str) -> Vec<i64> {
    let text = if is_v2() {
        read(id, "", "cgroup.procs")
    } else {
        read(id, "pids", "cgroup.procs").or_else(|| read(id, "memory", "cgroup.procs"))
    };
    text.unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// The host's CPU time in nanoseconds, as moby computes it from `/proc/stat`'s `cpu` line.
pub fn system_cpu_usage() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let ticks: u64 = line
        .split_whitespace()
        .skip(1)
        .take(7)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    ticks * (1_000_000_000 / clock_ticks())
}

pub fn online_cpus() -> u64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1)
}

/// The host's memory in bytes (`MemTotal`).
pub fn mem_total() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Docker's empty `cpu_stats` / `precpu_stats`.
pub fn empty_cpu() -> Value {
    json!({
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    })
}

/// Docker's empty `blkio_stats`.
pub fn empty_blkio() -> Value {
    json!({
        "io_service_bytes_recursive": null,
        "io_serviced_recursive": null,
        "io_queue_recursive": null,
        "io_service_time_recursive": null,
        "io_wait_time_recursive": null,
        "io_merged_recursive": null,
        "io_time_recursive": null,
        "sectors_recursive": null,
    })
}

/// One reading of the container's counters.
pub struct Sample {
    pub cpu: Value,
    pub memory: Value,
    pub pids: Value,
    pub blkio: Value,
}

fn limit_or_host(limit: Option<u64>) -> u64 {
    let total = mem_total();
    match limit {
        Some(l) if l > 0 && (total == 0 || l < total) => l,
        _ => total,
    }
}

fn pids_stats(current: Option<u64>, max: Option<String>) -> Value {
    let mut m = Map::new();
    if let Some(c) = current {
        m.insert("current".into(), json!(c));
    }
    if let Some(l) = max.and_then(|s| s.trim().parse::<u64>().ok())
        && l > 0
    {
        m.insert("limit".into(), json!(l));
    }
    Value::Object(m)
}

pub fn sample(id: &str) -> Sample {
    if is_v2() {
        sample_v2(id)
    } else {
        sample_v1(id)
    }
}

fn sample_v1(id: &str) -> Sample {
    let ns_per_tick = 1_000_000_000 / clock_ticks();
    let stat = flat_keyed(&read(id, "cpuacct", "cpuacct.stat").unwrap_or_default());
    let get = |k: &str| {
        stat.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| *v)
            .unwrap_or(0)
    };
    let percpu: Vec<u64> = read(id, "cpuacct", "cpuacct.usage_percpu")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let throttle = flat_keyed(&read(id, "cpu", "cpu.stat").unwrap_or_default());
    let tget = |k: &str| {
        throttle
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| *v)
            .unwrap_or(0)
    };
    let mut usage = json!({
        "total_usage": read_u64(id, "cpuacct", "cpuacct.usage").unwrap_or(0),
        "usage_in_kernelmode": get("system") * ns_per_tick,
        "usage_in_usermode": get("user") * ns_per_tick,
    });
    if !percpu.is_empty() {
        usage["percpu_usage"] = json!(percpu);
    }
    let cpu = json!({
        "cpu_usage": usage,
        "system_cpu_usage": system_cpu_usage(),
        "online_cpus": online_cpus(),
        "throttling_data": {
            "periods": tget("nr_periods"),
            "throttled_periods": tget("nr_throttled"),
            "throttled_time": tget("throttled_time"),
        },
    });
    let stats: Map<String, Value> =
        flat_keyed(&read(id, "memory", "memory.stat").unwrap_or_default())
            .into_iter()
            .map(|(k, v)| (k, json!(v)))
            .collect();
    let memory = json!({
        "usage": read_u64(id, "memory", "memory.usage_in_bytes").unwrap_or(0),
        "max_usage": read_u64(id, "memory", "memory.max_usage_in_bytes").unwrap_or(0),
        "stats": stats,
        "limit": limit_or_host(read_u64(id, "memory", "memory.limit_in_bytes")),
    });
    let pids = pids_stats(
        read_u64(id, "pids", "pids.current"),
        read(id, "pids", "pids.max"),
    );
    let mut blkio = empty_blkio();
    let entries: Vec<Value> = read(id, "blkio", "blkio.throttle.io_service_bytes_recursive")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 3 {
                return None;
            }
            let (major, minor) = f[0].split_once(':')?;
            Some(json!({
                "major": major.parse::<u64>().ok()?,
                "minor": minor.parse::<u64>().ok()?,
                "op": f[1],
                "value": f[2].parse::<u64>().ok()?,
            }))
        })
        .collect();
    blkio["io_service_bytes_recursive"] = json!(entries);
    Sample {
        cpu,
        memory,
        pids,
        blkio,
    }
}

fn sample_v2(id: &str) -> Sample {
    let stat = flat_keyed(&read(id, "", "cpu.stat").unwrap_or_default());
    let get = |k: &str| {
        stat.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| *v)
            .unwrap_or(0)
    };
    let cpu = json!({
        "cpu_usage": {
            "total_usage": get("usage_usec") * 1000,
            "usage_in_kernelmode": get("system_usec") * 1000,
            "usage_in_usermode": get("user_usec") * 1000,
        },
        "system_cpu_usage": system_cpu_usage(),
        "online_cpus": online_cpus(),
        "throttling_data": {
            "periods": get("nr_periods"),
            "throttled_periods": get("nr_throttled"),
            "throttled_time": get("throttled_usec") * 1000,
        },
    });
    let stats: Map<String, Value> = flat_keyed(&read(id, "", "memory.stat").unwrap_or_default())
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    let memory = json!({
        "usage": read_u64(id, "", "memory.current").unwrap_or(0),
        "stats": stats,
        "limit": limit_or_host(read_u64(id, "", "memory.max")),
    });
    let pids = pids_stats(read_u64(id, "", "pids.current"), read(id, "", "pids.max"));
    let mut blkio = empty_blkio();
    let mut entries = Vec::new();
    for line in read(id, "", "io.stat").unwrap_or_default().lines() {
        let mut f = line.split_whitespace();
        let Some((major, minor)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse::<u64>(), minor.parse::<u64>()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let op = match k {
                "rbytes" => "read",
                "wbytes" => "write",
                _ => continue,
            };
            if let Ok(v) = v.parse::<u64>() {
                entries.push(json!({"major": major, "minor": minor, "op": op, "value": v}));
            }
        }
    }
    blkio["io_service_bytes_recursive"] = json!(entries);
    Sample {
        cpu,
        memory,
        pids,
        blkio,
    }
}
