//! Capabilities: Docker's default set, CapAdd/CapDrop normalisation and "ALL", privileged.

use super::{HostInfo, SpecError};

/// Capability names by number (containerd's `cap.Known()`, up to Linux 5.9).
pub const KNOWN_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's default capability set, in Docker's order.
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Names of the capabilities in this process's bounding set (Docker's `caps.Current()`).
/// Falls back to every known capability up to /proc/sys/kernel/cap_last_cap.
pub(crate) fn current_bounding_set() -> Vec<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let bnd = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok());
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(KNOWN_CAPABILITIES.len() - 1);
    caps_from_mask(bnd.unwrap_or(u64::MAX), last)
}

pub(crate) fn caps_from_mask(mask: u64, last_cap: usize) -> Vec<String> {
    KNOWN_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(i, _)| *i <= last_cap && *i < 64 && mask & (1u64 << i) != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}

/// The bit mask of a capability list (as /proc/<pid>/status shows it).
pub fn caps_mask(caps: &[String]) -> u64 {
    caps.iter()
        .filter_map(|c| KNOWN_CAPABILITIES.iter().position(|k| k == c))
        .fold(0, |m, i| m | (1u64 << i))
}

/// Upper-case, add `CAP_`, validate against the known names and the host's set. "ALL" passes.
pub fn normalize_capabilities(list: &[String], host: &HostInfo) -> Result<Vec<String>, SpecError> {
    let mut out = Vec::with_capacity(list.len());
    for c in list {
        let mut c = c.to_uppercase();
        if c == "ALL" {
            out.push(c);
            continue;
        }
        if !c.starts_with("CAP_") {
            c = format!("CAP_{c}");
        }
        if !KNOWN_CAPABILITIES.contains(&c.as_str()) {
            return Err(SpecError::invalid(format!("unknown capability: {c:?}")));
        }
        if !host.bounding_caps.contains(&c) {
            return Err(SpecError::invalid(format!(
                "capability not supported by your kernel or not available in the current environment: {c:?}"
            )));
        }
        out.push(c);
    }
    Ok(out)
}

/// Docker's `TweakCapabilities` on the default set.
pub fn tweak_capabilities(
    adds: &[String],
    drops: &[String],
    privileged: bool,
    host: &HostInfo,
) -> Result<Vec<String>, SpecError> {
    if privileged {
        return Ok(host.bounding_caps.clone());
    }
    let basics: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect();
    if adds.is_empty() && drops.is_empty() {
        return Ok(basics);
    }
    let drop = normalize_capabilities(drops, host)?;
    let add = normalize_capabilities(adds, host)?;
    let all = "ALL".to_string();
    let mut caps: Vec<String> = if add.contains(&all) {
        host.bounding_caps
            .iter()
            .filter(|c| !drop.contains(c))
            .cloned()
            .collect()
    } else if drop.contains(&all) {
        add
    } else {
        let mut c: Vec<String> = basics.into_iter().filter(|c| !drop.contains(c)).collect();
        c.extend(add);
        c
    };
    // runc does not mind duplicates, but keep the lists tidy.
    let mut seen = std::collections::HashSet::new();
    caps.retain(|c| seen.insert(c.clone()));
    Ok(caps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostInfo {
        // everything but CAP_SYS_RESOURCE, like the machine berth is developed on
        HostInfo::for_tests(caps_from_mask(0x1fffeffffff, 40))
    }
    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn default_mask_is_dockers() {
        let caps = tweak_capabilities(&[], &[], false, &host()).unwrap();
        assert_eq!(caps.len(), 14);
        assert_eq!(caps_mask(&caps), 0xa80425fb);
    }

    #[test]
    fn add_and_drop_with_and_without_prefix() {
        let caps = tweak_capabilities(
            &s(&["sys_admin", "CAP_NET_ADMIN"]),
            &s(&["chown", "CAP_KILL"]),
            false,
            &host(),
        )
        .unwrap();
        assert!(caps.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_CHOWN".to_string()));
        assert!(!caps.contains(&"CAP_KILL".to_string()));
        assert_eq!(caps.len(), 14);
    }

    #[test]
    fn all() {
        let h = host();
        let caps = tweak_capabilities(&s(&["ALL"]), &s(&["NET_RAW"]), false, &h).unwrap();
        assert_eq!(caps.len(), h.bounding_caps.len() - 1);
        assert!(!caps.contains(&"CAP_NET_RAW".to_string()));
        assert!(!caps.contains(&"CAP_SYS_RESOURCE".to_string()));
        let caps = tweak_capabilities(&s(&["chown"]), &s(&["all"]), false, &h).unwrap();
        assert_eq!(caps, s(&["CAP_CHOWN"]));
        let caps = tweak_capabilities(&[], &s(&["ALL"]), false, &h).unwrap();
        assert!(caps.is_empty());
    }

    #[test]
    fn privileged_gets_bounding_set() {
        let h = host();
        let caps = tweak_capabilities(&[], &s(&["ALL"]), true, &h).unwrap();
        assert_eq!(caps.len(), 40);
        assert!(caps.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_SYS_RESOURCE".to_string()));
    }

    #[test]
    fn unknown_and_unavailable() {
        let e = tweak_capabilities(&s(&["foo"]), &[], false, &host()).unwrap_err();
        assert_eq!(e.to_string(), r#"unknown capability: "CAP_FOO""#);
        assert!(e.is_user_error());
        let e = tweak_capabilities(&s(&["SYS_RESOURCE"]), &[], false, &host()).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"capability not supported by your kernel or not available in the current environment: "CAP_SYS_RESOURCE""#
        );
    }
}
