//! `linux.resources` (memory, cpu, pids, blkio), device nodes and device cgroup rules, and
//! `process.rlimits`, with dockerd's validation texts.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory,
    LinuxPids, LinuxResources, LinuxThrottleDeviceBuilder, LinuxWeightDeviceBuilder, PosixRlimit,
    PosixRlimitBuilder, PosixRlimitType,
};

use super::{HostInfo, SpecError};
use crate::model::{DeviceMapping, HostConfig, ThrottleDevice};

/// Docker's minimum for Memory and MemoryReservation (6 MiB).
pub const LINUX_MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// A cpuset list that does not parse (Docker's text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid format: {0}")]
pub(crate) struct CpuListError(String);

/// "0-3,5" → [0,1,2,3,5].
pub(crate) fn parse_cpu_list(s: &str) -> Result<Vec<u32>, CpuListError> {
    let mut out = Vec::new();
    if s.is_empty() {
        return Ok(out);
    }
    let bad = || CpuListError(s.to_string());
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: u32 = a.parse().map_err(|_| bad())?;
                let b: u32 = b.parse().map_err(|_| bad())?;
                if b < a {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(out)
}

fn available_list(host_list: &str) -> Vec<u32> {
    parse_cpu_list(host_list.trim()).unwrap_or_default()
}

/// What the cgroup filesystem offers (Docker's sysinfo, the parts berth uses).
#[derive(Debug, Clone)]
pub(crate) struct CgroupFeatures {
    pub swap_limit: bool,
    pub cpus: String,
    pub mems: String,
}

impl CgroupFeatures {
    pub fn detect(v2: bool) -> CgroupFeatures {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        if v2 {
            let cpus = read("/sys/fs/cgroup/cpuset.cpus.effective");
            let mems = read("/sys/fs/cgroup/cpuset.mems.effective");
            CgroupFeatures {
                swap_limit: true,
                cpus: if cpus.is_empty() {
                    read("/sys/devices/system/cpu/online")
                } else {
                    cpus
                },
                mems: if mems.is_empty() {
                    read("/sys/devices/system/node/online")
                } else {
                    mems
                },
            }
        } else {
            CgroupFeatures {
                swap_limit: Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists(),
                cpus: read("/sys/fs/cgroup/cpuset/cpuset.cpus"),
                mems: read("/sys/fs/cgroup/cpuset/cpuset.mems"),
            }
        }
    }
}

/// Validated resource values (after Docker's `adaptContainerSettings`).
#[derive(Debug, Default, Clone)]
pub(crate) struct Resources {
    pub memory: i64,
    pub memory_swap: i64,
    pub memory_reservation: i64,
    pub swappiness: Option<i64>,
    pub oom_kill_disable: bool,
    pub cpu_shares: i64,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub nano_cpus: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub pids_limit: Option<i64>,
    pub blkio_weight: i64,
    pub warnings: Vec<String>,
}

/// Docker's verifyPlatformContainerResources (+ the MemorySwap default of adaptContainerSettings).
pub(crate) fn validate_resources(hc: &HostConfig, host: &HostInfo) -> Result<Resources, SpecError> {
    let given = &hc.resources;
    let mut r = Resources {
        memory: given.memory,
        memory_swap: given.memory_swap,
        memory_reservation: given.memory_reservation,
        swappiness: given.memory_swappiness.filter(|s| *s != -1),
        oom_kill_disable: given.oom_kill_disable.unwrap_or(false),
        cpu_shares: given.cpu_shares,
        cpu_period: given.cpu_period,
        cpu_quota: given.cpu_quota,
        nano_cpus: given.nano_cpus,
        cpuset_cpus: given.cpuset_cpus.clone(),
        cpuset_mems: given.cpuset_mems.clone(),
        pids_limit: given.pids_limit,
        blkio_weight: i64::from(given.blkio_weight),
        warnings: Vec::new(),
    };
    if r.memory > 0 && r.memory_swap == 0 {
        r.memory_swap = r.memory.saturating_mul(2);
    }
    let features = CgroupFeatures::detect(host.cgroup_v2);

    if r.memory != 0 && r.memory < LINUX_MIN_MEMORY {
        return Err(inv("Minimum memory limit allowed is 6MB"));
    }
    if r.memory > 0 && r.memory_swap != -1 && !features.swap_limit {
        r.warnings.push(
            "Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap."
                .into(),
        );
        r.memory_swap = -1;
    }
    if r.memory > 0 && r.memory_swap > 0 && r.memory_swap < r.memory {
        return Err(inv(
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if r.memory == 0 && r.memory_swap > 0 {
        return Err(inv(
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ));
    }
    if let Some(s) = r.swappiness {
        if host.cgroup_v2 {
            r.warnings.push(
                "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded."
                    .into(),
            );
            r.swappiness = None;
        } else if !(0..=100).contains(&s) {
            return Err(inv(format!(
                "Invalid value: {s}, valid memory swappiness range is 0-100"
            )));
        }
    }
    if r.memory_reservation > 0 && r.memory_reservation < LINUX_MIN_MEMORY {
        return Err(inv("Minimum memory reservation allowed is 6MB"));
    }
    if r.memory > 0 && r.memory_reservation > 0 && r.memory < r.memory_reservation {
        return Err(inv(
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ));
    }
    if r.oom_kill_disable && r.memory == 0 {
        r.warnings.push(
            "OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources."
                .into(),
        );
    }
    if r.nano_cpus > 0 && r.cpu_period > 0 {
        return Err(inv(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ));
    }
    if r.nano_cpus > 0 && r.cpu_quota > 0 {
        return Err(inv(
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ));
    }
    if r.nano_cpus != 0 {
        let nc = host.ncpu as i64;
        if r.nano_cpus < 0 || r.nano_cpus > nc * 1_000_000_000 {
            return Err(inv(format!(
                "range of CPUs is from 0.01 to {nc}.00, as there are only {nc} CPUs available"
            )));
        }
    }
    if r.cpu_period != 0 && !(1000..=1_000_000).contains(&r.cpu_period) {
        return Err(inv(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ));
    }
    if r.cpu_quota > 0 && r.cpu_quota < 1000 {
        return Err(inv("CPU cfs quota can not be less than 1ms (i.e. 1000)"));
    }
    if r.cpu_shares < 0 {
        return Err(inv(format!(
            "invalid CPU shares ({}): value must be a positive integer",
            r.cpu_shares
        )));
    }
    for (val, avail, what) in [
        (&r.cpuset_cpus, &features.cpus, "cpus"),
        (&r.cpuset_mems, &features.mems, "mems"),
    ] {
        let req = parse_cpu_list(val)
            .map_err(|e| inv(format!("Invalid value {val} for cpuset {what}: {e}")))?;
        let have = available_list(avail);
        if !have.is_empty() && req.iter().any(|c| !have.contains(c)) {
            let label = if what == "cpus" {
                "CPUs"
            } else {
                "memory nodes"
            };
            return Err(inv(format!(
                "Requested {label} are not available - requested {val}, available: {avail}"
            )));
        }
    }
    if r.blkio_weight > 0 && !(10..=1000).contains(&r.blkio_weight) {
        return Err(inv("Range of blkio weight is from 10 to 1000"));
    }
    if given.io_maximum_bandwidth != 0 || given.io_maximum_iops != 0 {
        return Err(inv(
            "Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps",
        ));
    }
    Ok(r)
}

/// `linux.resources` without devices (Docker's getMemoryResources / getCPUResources / ...).
pub(crate) fn linux_resources(hc: &HostConfig, r: &Resources) -> Result<LinuxResources, SpecError> {
    let given = &hc.resources;
    let positive = |v: i64| Some(v).filter(|v| *v > 0);
    let mut memory = LinuxMemory::default();
    memory
        .set_limit(positive(r.memory))
        .set_reservation(positive(r.memory_reservation))
        .set_swap(positive(r.memory_swap))
        .set_swappiness(r.swappiness.map(|s| s as u64))
        .set_disable_oom_killer(Some(r.oom_kill_disable));

    let (mut quota, mut period) = (None, None);
    if r.nano_cpus > 0 {
        period = Some(100_000u64);
        quota = Some(r.nano_cpus * 100_000 / 1_000_000_000);
    }
    if r.cpu_period != 0 {
        period = Some(r.cpu_period as u64);
    }
    if r.cpu_quota != 0 {
        quota = Some(r.cpu_quota);
    }
    let nonzero = |v: i64| Some(v).filter(|v| *v != 0);
    let text = |v: &str| Some(v.to_string()).filter(|v| !v.is_empty());
    let mut cpu = LinuxCpu::default();
    cpu.set_shares(nonzero(r.cpu_shares).map(|s| s as u64))
        .set_quota(quota)
        .set_period(period)
        .set_realtime_runtime(nonzero(given.cpu_realtime_runtime))
        .set_realtime_period(nonzero(given.cpu_realtime_period).map(|p| p as u64))
        .set_cpus(text(&r.cpuset_cpus))
        .set_mems(text(&r.cpuset_mems));
    let cpu_set = cpu != LinuxCpu::default();

    let mut block_io = LinuxBlockIo::default();
    block_io.set_weight(Some(r.blkio_weight as u16).filter(|w| *w != 0));
    let weights = given.blkio_weight_device.iter().flatten();
    let weight_devices = weights
        .map(|d| {
            let (major, minor) = device_numbers(&d.path)?;
            Ok(LinuxWeightDeviceBuilder::default()
                .major(major)
                .minor(minor)
                .weight(d.weight)
                .build()?)
        })
        .collect::<Result<Vec<_>, SpecError>>()?;
    block_io.set_weight_device(Some(weight_devices).filter(|d| !d.is_empty()));
    let throttle = |list: &Option<Vec<ThrottleDevice>>| {
        let devs = list
            .iter()
            .flatten()
            .map(|d| {
                let (major, minor) = device_numbers(&d.path)?;
                Ok(LinuxThrottleDeviceBuilder::default()
                    .major(major)
                    .minor(minor)
                    .rate(d.rate)
                    .build()?)
            })
            .collect::<Result<Vec<_>, SpecError>>()?;
        Ok::<_, SpecError>(Some(devs).filter(|d| !d.is_empty()))
    };
    block_io
        .set_throttle_read_bps_device(throttle(&given.blkio_device_read_bps)?)
        .set_throttle_write_bps_device(throttle(&given.blkio_device_write_bps)?)
        .set_throttle_read_iops_device(throttle(&given.blkio_device_read_iops)?)
        .set_throttle_write_iops_device(throttle(&given.blkio_device_write_iops)?);

    let mut out = LinuxResources::default();
    out.set_memory(Some(memory))
        .set_cpu(cpu_set.then_some(cpu))
        .set_pids(r.pids_limit.map(|p| {
            let mut pids = LinuxPids::default();
            pids.set_limit(if p <= 0 { -1 } else { p });
            pids
        }))
        .set_block_io(Some(block_io));
    Ok(out)
}

/// The numbers of the device node at `path` (blkio limits name devices by number).
fn device_numbers(path: &str) -> Result<(i64, i64), SpecError> {
    let md = std::fs::metadata(path).map_err(|e| SpecError::system(format!("stat {path}: {e}")))?;
    let rdev = md.rdev();
    Ok((i64::from(libc::major(rdev)), i64::from(libc::minor(rdev))))
}

// ---------------------------------------------------------------- devices

/// Docker's default device cgroup rules: deny all, then allow the standard nodes (runc adds its
/// own defaults for pts, ptmx, `c *:* m`, `b *:* m`, ...); fuse is explicitly denied.
pub(crate) fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    let allow = |major: i64, minor: i64| {
        rule(
            true,
            Some(LinuxDeviceType::C),
            Some(major),
            Some(minor),
            "rwm",
        )
    };
    vec![
        rule(false, None, None, None, "rwm"),
        allow(1, 5),
        allow(1, 3),
        allow(1, 9),
        allow(1, 8),
        allow(5, 0),
        allow(5, 1),
        rule(false, Some(LinuxDeviceType::C), Some(10), Some(229), "rwm"),
    ]
}

/// One device cgroup rule; `None` numbers match any.
fn rule(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow)
        .set_typ(typ)
        .set_major(major)
        .set_minor(minor)
        .set_access(Some(access.to_string()));
    r
}

/// A device node as `linux.devices` wants it.
fn device_from_path(host_path: &Path, ctr_path: &str) -> std::io::Result<Option<LinuxDevice>> {
    let md = std::fs::symlink_metadata(host_path)?;
    let ft = md.file_type();
    let typ = if ft.is_block_device() {
        LinuxDeviceType::B
    } else if ft.is_char_device() {
        LinuxDeviceType::C
    } else {
        return Ok(None);
    };
    let rdev = md.rdev();
    let mut d = LinuxDevice::default();
    d.set_path(ctr_path.into())
        .set_typ(typ)
        .set_major(i64::from(libc::major(rdev)))
        .set_minor(i64::from(libc::minor(rdev)))
        .set_file_mode(Some(md.mode() & 0o7777))
        .set_uid(Some(md.uid()))
        .set_gid(Some(md.gid()));
    Ok(Some(d))
}

fn rule_for(dev: &LinuxDevice, access: &str) -> LinuxDeviceCgroup {
    rule(
        true,
        Some(dev.typ()),
        Some(dev.major()),
        Some(dev.minor()),
        access,
    )
}

/// Docker's DevicesFromPath: a node, or a directory of nodes.
fn devices_from_path(
    on_host: &str,
    in_ctr: &str,
    perms: &str,
) -> Result<(Vec<LinuxDevice>, Vec<LinuxDeviceCgroup>), SpecError> {
    let mut resolved = std::path::PathBuf::from(on_host);
    if let Ok(md) = std::fs::symlink_metadata(on_host)
        && md.file_type().is_symlink()
        && let Ok(p) = std::fs::canonicalize(on_host)
    {
        resolved = p;
    }
    let fail = |e: String| {
        SpecError::system(format!(
            "error gathering device information while adding custom device {on_host:?}: {e}"
        ))
    };
    match device_from_path(&resolved, in_ctr) {
        Ok(Some(d)) => {
            let rule = rule_for(&d, perms);
            return Ok((vec![d], vec![rule]));
        }
        Ok(None) => {}
        Err(e) => return Err(fail(e.to_string())),
    }
    let mut devs = Vec::new();
    if resolved.is_dir() {
        walk_devices(&resolved, &resolved, in_ctr, &mut devs);
    }
    if devs.is_empty() {
        return Err(fail("not a device node".into()));
    }
    let rules = devs.iter().map(|d| rule_for(d, perms)).collect();
    Ok((devs, rules))
}

fn walk_devices(root: &Path, dir: &Path, in_ctr: &str, out: &mut Vec<LinuxDevice>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            walk_devices(root, &p, in_ctr, out);
            continue;
        }
        let rel = p.strip_prefix(root).unwrap_or(&p);
        let ctr = format!("{}/{}", in_ctr.trim_end_matches('/'), rel.display());
        if let Ok(Some(d)) = device_from_path(&p, &ctr) {
            out.push(d);
        }
    }
}

/// containerd's HostDevices: every device node under /dev (skipping pts, shm, fd, mqueue,
/// console and fifos).
fn host_devices() -> Vec<LinuxDevice> {
    fn walk(dir: &Path, out: &mut Vec<LinuxDevice>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if matches!(
                    name.as_str(),
                    "pts" | "shm" | "fd" | "mqueue" | ".lxc" | ".lxd-mounts" | ".udev"
                ) {
                    continue;
                }
                walk(&p, out);
                continue;
            }
            if name == "console" {
                continue;
            }
            if let Ok(Some(d)) = device_from_path(&p, &p.to_string_lossy()) {
                out.push(d);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/dev"), &mut out);
    out
}

/// One `HostConfig.Devices` entry with Docker's defaults: the same path inside, `rwm`.
fn parse_device_mapping(d: &DeviceMapping) -> Result<(String, String, String), SpecError> {
    let host = d.path_on_host.clone();
    let ctr = d.path_in_container.clone();
    let perms = d.cgroup_permissions.clone();
    let ctr = if ctr.is_empty() { host.clone() } else { ctr };
    let perms = if perms.is_empty() {
        "rwm".to_string()
    } else {
        perms
    };
    if !valid_perms(&perms) {
        return Err(SpecError::invalid(format!("invalid device mode: {perms}")));
    }
    if !host.starts_with('/') && !host.is_empty() {
        return Err(SpecError::invalid(format!("invalid device path: {host}")));
    }
    Ok((host, ctr, perms))
}

fn valid_perms(p: &str) -> bool {
    !p.is_empty() && p.len() <= 3 && p.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
}

/// `c 1:3 rwm`, `a *:* rwm`, `b 8:* r` → a device cgroup rule.
fn parse_cgroup_rule(text: &str) -> Result<LinuxDeviceCgroup, SpecError> {
    let bad = || SpecError::invalid(format!("invalid device cgroup rule format: '{text}'"));
    let f: Vec<&str> = text.split(' ').collect();
    let [typ, nums, access] = f.as_slice() else {
        return Err(bad());
    };
    let typ = match *typ {
        "a" => LinuxDeviceType::A,
        "b" => LinuxDeviceType::B,
        "c" => LinuxDeviceType::C,
        _ => return Err(bad()),
    };
    if !valid_perms(access) {
        return Err(bad());
    }
    let (maj, min) = nums.split_once(':').ok_or_else(bad)?;
    // `*` is any number: left out of the rule, as the runtime spec says.
    let num = |s: &str| -> Result<Option<i64>, SpecError> {
        if s == "*" {
            Ok(None)
        } else {
            s.parse::<i64>().map(Some).map_err(|_| bad())
        }
    };
    Ok(rule(true, Some(typ), num(maj)?, num(min)?, access))
}

/// (linux.devices, linux.resources.devices)
pub(crate) fn devices(
    hc: &HostConfig,
    privileged: bool,
) -> Result<(Vec<LinuxDevice>, Vec<LinuxDeviceCgroup>), SpecError> {
    let mut devs = Vec::new();
    let mut rules = default_device_rules();
    let mappings: Vec<(String, String, String)> = hc
        .resources
        .devices
        .iter()
        .flatten()
        .map(parse_device_mapping)
        .collect::<Result<_, _>>()?;
    if privileged {
        devs = host_devices();
        for (on_host, in_ctr, _) in &mappings {
            if on_host == in_ctr {
                continue;
            }
            let (d, _) = devices_from_path(on_host, in_ctr, "rwm")?;
            devs.extend(d);
        }
        rules = vec![rule(true, None, None, None, "rwm")];
    } else {
        for (on_host, in_ctr, perms) in &mappings {
            let (d, r) = devices_from_path(on_host, in_ctr, perms)?;
            devs.extend(d);
            rules.extend(r);
        }
        for rule in hc.resources.device_cgroup_rules.iter().flatten() {
            rules.push(parse_cgroup_rule(rule)?);
        }
    }
    Ok((devs, rules))
}

// ---------------------------------------------------------------- rlimits

const ULIMIT_NAMES: [&str; 16] = [
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// `HostConfig.Ulimits` → `process.rlimits` (only what the user asked for).
pub(crate) fn rlimits(hc: &HostConfig) -> Result<Vec<PosixRlimit>, SpecError> {
    let mut out = Vec::new();
    for u in hc.resources.ulimits.iter().flatten() {
        let name = u.name.as_str();
        if !ULIMIT_NAMES.contains(&name) {
            return Err(SpecError::invalid(format!("invalid ulimit type: {name}")));
        }
        let (soft, hard) = (u.soft, u.hard);
        // -1 (and any negative) means unlimited, as the uint64 conversion in dockerd gives
        let (s, h) = (soft as u64, hard as u64);
        if s > h {
            return Err(SpecError::invalid(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            )));
        }
        let typ: PosixRlimitType = format!("RLIMIT_{}", name.to_uppercase())
            .parse()
            .map_err(|_| SpecError::invalid(format!("invalid ulimit type: {name}")))?;
        out.push(
            PosixRlimitBuilder::default()
                .typ(typ)
                .hard(h)
                .soft(s)
                .build()?,
        );
    }
    Ok(out)
}

fn inv(msg: impl Into<String>) -> SpecError {
    SpecError::Invalid(msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn host() -> HostInfo {
        HostInfo::for_tests(vec![])
    }
    fn hc(v: Value) -> HostConfig {
        serde_json::from_value(v).unwrap()
    }
    fn json_of<A: serde::Serialize, B: serde::Serialize>(
        (a, b): (Vec<A>, Vec<B>),
    ) -> (Vec<Value>, Vec<Value>) {
        (
            a.iter().map(|x| serde_json::to_value(x).unwrap()).collect(),
            b.iter().map(|x| serde_json::to_value(x).unwrap()).collect(),
        )
    }
    fn res(v: Value) -> Result<Value, SpecError> {
        let h = hc(v);
        let r = validate_resources(&h, &host())?;
        Ok(serde_json::to_value(linux_resources(&h, &r)?).unwrap())
    }

    #[test]
    fn memory() {
        let r = res(json!({"Memory": 64 << 20, "MemoryReservation": 32 << 20})).unwrap();
        let swap = if CgroupFeatures::detect(false).swap_limit {
            json!(128 << 20)
        } else {
            Value::Null
        };
        assert_eq!(r["memory"]["limit"], json!(64 << 20));
        assert_eq!(r["memory"]["reservation"], json!(32 << 20));
        assert_eq!(
            r["memory"].get("swap").cloned().unwrap_or(Value::Null),
            swap
        );
        assert_eq!(r["memory"]["disableOOMKiller"], json!(false));
        let r = res(json!({"Memory": 64 << 20, "MemorySwap": -1, "OomKillDisable": true})).unwrap();
        assert!(r["memory"].get("swap").is_none());
        assert_eq!(r["memory"]["disableOOMKiller"], json!(true));
        let e = |v| res(v).unwrap_err().to_string();
        assert_eq!(
            e(json!({"Memory": 1000})),
            "Minimum memory limit allowed is 6MB"
        );
        assert_eq!(
            e(json!({"Memory": 64 << 20, "MemorySwap": 32 << 20})),
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        );
        assert_eq!(
            e(json!({"MemorySwap": 32 << 20})),
            "You should always set the Memory limit when using Memoryswap limit, see usage"
        );
        assert_eq!(
            e(json!({"MemoryReservation": 10})),
            "Minimum memory reservation allowed is 6MB"
        );
        assert_eq!(
            e(json!({"Memory": 8 << 20, "MemoryReservation": 16 << 20})),
            "Minimum memory limit can not be less than memory reservation limit, see usage"
        );
        assert_eq!(
            e(json!({"MemorySwappiness": 101})),
            "Invalid value: 101, valid memory swappiness range is 0-100"
        );
        assert!(res(json!({"KernelMemory": 1})).is_ok());
    }

    #[test]
    fn cpu() {
        let r = res(json!({"NanoCpus": 1_500_000_000i64, "CpuShares": 512})).unwrap();
        assert_eq!(
            r["cpu"],
            json!({"shares": 512, "quota": 150000, "period": 100000})
        );
        let r = res(json!({"CpuPeriod": 50000, "CpuQuota": 25000, "CpusetCpus": "0"})).unwrap();
        assert_eq!(
            r["cpu"],
            json!({"quota": 25000, "period": 50000, "cpus": "0"})
        );
        assert!(res(json!({})).unwrap().get("cpu").is_none());
        let e = |v| res(v).unwrap_err().to_string();
        assert_eq!(
            e(json!({"NanoCpus": 1_000_000_000i64, "CpuPeriod": 100000})),
            "Conflicting options: Nano CPUs and CPU Period cannot both be set"
        );
        assert_eq!(
            e(json!({"NanoCpus": 1_000_000_000i64, "CpuQuota": 100000})),
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set"
        );
        assert_eq!(
            e(json!({"NanoCpus": 3_000_000_000i64})),
            "range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"
        );
        assert_eq!(
            e(json!({"CpuPeriod": 10})),
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        );
        assert_eq!(
            e(json!({"CpuQuota": 10})),
            "CPU cfs quota can not be less than 1ms (i.e. 1000)"
        );
        assert_eq!(
            e(json!({"CpuShares": -1})),
            "invalid CPU shares (-1): value must be a positive integer"
        );
        assert_eq!(
            e(json!({"CpusetCpus": "0-x"})),
            "Invalid value 0-x for cpuset cpus: invalid format: 0-x"
        );
        assert!(
            e(json!({"CpusetCpus": "0-4095"}))
                .starts_with("Requested CPUs are not available - requested 0-4095")
        );
    }

    #[test]
    fn pids_and_blkio() {
        assert_eq!(
            res(json!({"PidsLimit": 0})).unwrap()["pids"],
            json!({"limit": -1})
        );
        assert_eq!(
            res(json!({"PidsLimit": -1})).unwrap()["pids"],
            json!({"limit": -1})
        );
        assert_eq!(
            res(json!({"PidsLimit": 50})).unwrap()["pids"],
            json!({"limit": 50})
        );
        assert!(
            res(json!({"PidsLimit": null}))
                .unwrap()
                .get("pids")
                .is_none()
        );
        assert_eq!(
            res(json!({"BlkioWeight": 300})).unwrap()["blockIO"],
            json!({"weight": 300})
        );
        assert_eq!(res(json!({})).unwrap()["blockIO"], json!({}));
        assert_eq!(
            res(json!({"BlkioWeight": 5})).unwrap_err().to_string(),
            "Range of blkio weight is from 10 to 1000"
        );
        let r = res(json!({"BlkioDeviceReadBps": [{"Path": "/dev/null", "Rate": 1024}]})).unwrap();
        assert_eq!(
            r["blockIO"]["throttleReadBpsDevice"],
            json!([{"major": 1, "minor": 3, "rate": 1024}])
        );
    }

    #[test]
    fn device_rules() {
        let (devs, rules) = json_of(devices(&hc(json!({})), false).unwrap());
        assert!(devs.is_empty());
        assert_eq!(rules.len(), 8);
        assert_eq!(rules[0], json!({"allow": false, "access": "rwm"}));
        let (devs, rules) = json_of(devices(
            &hc(json!({"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/xnull", "CgroupPermissions": "rw"}, {"PathOnHost": "/dev/zero", "PathInContainer": "/dev/z", "CgroupPermissions": "r"}],
                       "DeviceCgroupRules": ["c 42:* rmw"]})),
            false,
        )
        .unwrap());
        assert_eq!(devs.len(), 2);
        assert_eq!(devs[0]["path"], "/dev/xnull");
        assert_eq!(devs[0]["type"], "c");
        assert_eq!(devs[0]["major"], 1);
        assert_eq!(devs[0]["minor"], 3);
        assert_eq!(
            rules[8],
            json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"})
        );
        assert_eq!(
            rules[9],
            json!({"allow": true, "type": "c", "major": 1, "minor": 5, "access": "r"})
        );
        assert_eq!(
            rules[10],
            json!({"allow": true, "type": "c", "major": 42, "access": "rmw"})
        );
        let e = devices(
            &hc(json!({"Devices": [{"PathOnHost": "/etc/hostname"}]})),
            false,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with(
            "error gathering device information while adding custom device \"/etc/hostname\""
        ));
        let e = devices(
            &hc(json!({"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/x", "CgroupPermissions": "rwx"}]})),
            false,
        ).unwrap_err();
        assert_eq!(e.to_string(), "invalid device mode: rwx");
        let e = devices(&hc(json!({"DeviceCgroupRules": ["x 1:2 r"]})), false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid device cgroup rule format: 'x 1:2 r'"
        );
        let (devs, rules) = json_of(devices(&hc(json!({})), true).unwrap());
        assert!(devs.iter().any(|d| d["path"] == "/dev/null"));
        assert_eq!(rules, vec![json!({"allow": true, "access": "rwm"})]);
    }

    #[test]
    fn ulimits() {
        let r = serde_json::to_value(rlimits(&hc(json!({"Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}, {"Name": "core", "Soft": -1, "Hard": -1}]})))
            .unwrap()).unwrap();
        assert_eq!(
            r[0],
            json!({"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1024})
        );
        assert_eq!(
            r[1],
            json!({"type": "RLIMIT_CORE", "hard": u64::MAX, "soft": u64::MAX})
        );
        assert!(rlimits(&hc(json!({}))).unwrap().is_empty());
        let e = rlimits(&hc(
            json!({"Ulimits": [{"Name": "bogus", "Soft": 1, "Hard": 1}]}),
        ))
        .unwrap_err();
        assert_eq!(e.to_string(), "invalid ulimit type: bogus");
        let e = rlimits(&hc(
            json!({"Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 5}]}),
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "ulimit soft limit must be less than or equal to hard limit: 10 > 5"
        );
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert!(parse_cpu_list("3-1").is_err());
    }
}
