//! AppArmor as Docker applies it: where the host has AppArmor enabled, every container that
//! is not privileged runs under a default profile (Docker's `docker-default`, here
//! `berth-default`, the same rules), loaded on demand since something may have unloaded it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use super::SpecError;

pub const DEFAULT_PROFILE: &str = "berth-default";
pub const UNCONFINED: &str = "unconfined";

/// moby's (containerd's) `apparmor.HostSupports`: the security filesystem is there, the
/// module enabled, the parser installed, and we are not inside a container (`container=`).
pub fn host_enabled() -> bool {
    std::env::var_os("container").is_none_or(|v| v.is_empty())
        && Path::new("/sbin/apparmor_parser").exists()
        && Path::new("/sys/kernel/security/apparmor").exists()
        && std::fs::read("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|b| b.len() > 1 && b[0] == b'Y')
}

/// The profile a container gets: the one asked for, unconfined when privileged, else ours.
pub fn profile_for(requested: Option<&str>, privileged: bool) -> &str {
    match requested {
        Some(p) if !p.is_empty() => p,
        _ if privileged => UNCONFINED,
        _ => DEFAULT_PROFILE,
    }
}

/// The default profile's text (moby's profiles/apparmor template, named for berth).
pub fn default_profile_text(with_base_abstraction: bool) -> String {
    let name = DEFAULT_PROFILE;
    let base = if with_base_abstraction {
        "  #include <abstractions/base>\n"
    } else {
        ""
    };
    format!(
        r#"#include <tunables/global>

profile {name} flags=(attach_disconnected,mediate_deleted) {{
{base}
  network,
  capability,
  file,
  umount,
  # Host processes (runc, crun, berth) may signal container processes (stop, kill).
  signal (receive) peer=unconfined,
  signal (receive) peer=runc,
  signal (receive) peer=crun,
  # Container processes may signal each other.
  signal (send,receive) peer={name},

  deny @{{PROC}}/* w,
  deny @{{PROC}}/{{[^1-9],[^1-9][^0-9],[^1-9s][^0-9y][^0-9s],[^1-9][^0-9][^0-9][^0-9/]*}}/** w,
  deny @{{PROC}}/sys/[^k]** w,
  deny @{{PROC}}/sys/kernel/{{?,??,[^s][^h][^m]**}} w,
  deny @{{PROC}}/sysrq-trigger rwklx,
  deny @{{PROC}}/kcore rwklx,

  deny mount,

  deny /sys/[^f]*/** wklx,
  deny /sys/f[^s]*/** wklx,
  deny /sys/fs/[^c]*/** wklx,
  deny /sys/fs/c[^g]*/** wklx,
  deny /sys/fs/cg[^r]*/** wklx,
  deny /sys/firmware/** rwklx,
  deny /sys/devices/virtual/powercap/** rwklx,
  deny /sys/kernel/security/** rwklx,

  ptrace (trace,read,tracedby,readby) peer={name},
}}
"#
    )
}

/// Load the default profile unless the kernel has it (`apparmor_parser -Kr` from stdin).
pub fn ensure_default_loaded() -> Result<(), SpecError> {
    let loaded = std::fs::read_to_string("/sys/kernel/security/apparmor/profiles")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').next() == Some(DEFAULT_PROFILE));
    if loaded {
        return Ok(());
    }
    let text = default_profile_text(Path::new("/etc/apparmor.d/abstractions/base").exists());
    let fail =
        |e: String| SpecError::system(format!("loading AppArmor profile {DEFAULT_PROFILE}: {e}"));
    let mut child = Command::new("/sbin/apparmor_parser")
        .args(["-Kr"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chooses_profiles_as_docker() {
        assert_eq!(profile_for(None, false), DEFAULT_PROFILE);
        assert_eq!(profile_for(None, true), UNCONFINED);
        assert_eq!(profile_for(Some("custom"), true), "custom");
        assert_eq!(profile_for(Some(""), false), DEFAULT_PROFILE);
    }

    #[test]
    fn profile_text_is_balanced_and_named() {
        let t = default_profile_text(true);
        assert!(t.contains("profile berth-default flags=(attach_disconnected,mediate_deleted) {"));
        assert!(t.contains("#include <abstractions/base>"));
        assert!(t.contains("deny @{PROC}/sysrq-trigger rwklx,"));
        assert_eq!(t.matches('{').count(), t.matches('}').count());
        assert!(!default_profile_text(false).contains("abstractions/base"));
    }
}
