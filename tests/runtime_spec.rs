//! The runtime spec generator against real runc: a busybox rootfs, `build_spec`, `runc run`, and
//! what the container sees (ids, capabilities, seccomp, no_new_privs, hostname, the /etc files,
//! /dev/shm, read-only binds and rootfs, the memory limit). Needs root, runc and /bin/busybox;
//! skips otherwise.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use berth::runtime::{EtcFiles, NamespaceModes, SpecInput, build_spec};
use serde_json::{Value, json};

fn skip_reason() -> Option<&'static str> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root");
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("no /bin/busybox");
    }
    if Command::new("runc").arg("--version").output().is_err() {
        return Some("no runc");
    }
    None
}

/// A bundle directory with a busybox rootfs; removes the container and its cgroups on drop.
struct Bundle {
    dir: tempfile::TempDir,
    runc_root: PathBuf,
    ids: Vec<String>,
    cgroup_parent: String,
    /// `init_binary` for the next runs.
    init: Option<PathBuf>,
}

impl Bundle {
    fn new() -> Bundle {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "etc", "tmp", "proc", "sys", "dev"] {
            fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for applet in [
            "sh", "id", "cat", "hostname", "mount", "touch", "grep", "echo",
        ] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/tmp:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            rootfs.join("etc/group"),
            "root:x:0:\nalice:x:1000:\nstaff:x:50:alice\n",
        )
        .unwrap();
        fs::write(dir.path().join("hostname"), "spectest\n").unwrap();
        fs::write(dir.path().join("hosts"), "127.0.0.1 localhost spectest\n").unwrap();
        fs::write(dir.path().join("resolv.conf"), "nameserver 127.0.0.53\n").unwrap();
        fs::create_dir_all(dir.path().join("data")).unwrap();
        fs::write(dir.path().join("data/file"), "bound\n").unwrap();
        let runc_root = dir.path().join("runc");
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Bundle {
            runc_root,
            ids: Vec::new(),
            cgroup_parent: format!("/berth-spec-test/{}-{nanos}", std::process::id()),
            init: None,
            dir,
        }
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Build the spec for `config`/`host_config`, run it to completion, return (exit code, stdout, stderr).
    fn run(&mut self, name: &str, config: Value, host_config: Value) -> (i32, String, String) {
        let id = format!("berth-spec-{}-{name}", std::process::id());
        self.ids.push(id.clone());
        let config: berth::model::Config = serde_json::from_value(config).unwrap();
        let hc: berth::model::HostConfig = serde_json::from_value(host_config).unwrap();
        let rootfs = self.rootfs();
        let input = SpecInput {
            id: &id,
            rootfs: &rootfs,
            config: &config,
            host_config: &hc,
            etc: EtcFiles {
                hosts: self.dir.path().join("hosts"),
                hostname: self.dir.path().join("hostname"),
                resolv_conf: self.dir.path().join("resolv.conf"),
            },
            cgroups_path: format!("{}/{name}", self.cgroup_parent),
            namespaces: NamespaceModes::default(),
            init_binary: self.init.as_deref(),
            shm_path: None,
            volumes: Vec::new(),
        };
        let spec = build_spec(&input).expect("build_spec");
        fs::write(
            self.dir.path().join("config.json"),
            serde_json::to_vec_pretty(&spec).unwrap(),
        )
        .unwrap();
        let out = Command::new("timeout")
            .arg("60")
            .arg("runc")
            .arg("--root")
            .arg(&self.runc_root)
            .arg("run")
            .arg("--bundle")
            .arg(self.dir.path())
            .arg(&id)
            .stdin(Stdio::null())
            .output()
            .expect("runc run");
        let _ = Command::new("runc")
            .arg("--root")
            .arg(&self.runc_root)
            .args(["delete", "--force", &id])
            .output();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn bind_dir(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(&self.runc_root)
                .args(["delete", "--force", id])
                .output();
        }
        // remove the cgroup directories runc made: <mount>/berth-spec-test/<unique>/<name>
        let unique = self.cgroup_parent.trim_start_matches('/').to_string();
        let mut mounts: Vec<PathBuf> = vec![PathBuf::from("/sys/fs/cgroup")];
        if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
            mounts.extend(rd.flatten().map(|e| e.path()));
        }
        for m in mounts {
            let base = m.join(&unique);
            if let Ok(rd) = fs::read_dir(&base) {
                for e in rd.flatten() {
                    if e.path().is_dir() {
                        let _ = fs::remove_dir(e.path());
                    }
                }
            }
            let _ = fs::remove_dir(&base);
            let _ = fs::remove_dir(m.join("berth-spec-test")); // only if empty
        }
    }
}

fn status_field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim()))
}

#[test]
fn runc_runs_the_generated_spec() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping: {why}");
        return;
    }
    let mut b = Bundle::new();
    let bind = b.bind_dir();
    let script = "id; cat /proc/self/status; echo host=$(hostname); echo etc=$(cat /etc/hostname); \
        mount | grep ' /dev/shm '; cat /data/file; \
        if touch /data/new 2>/dev/null; then echo bind=writable; else echo bind=readonly; fi; \
        if [ -f /sys/fs/cgroup/memory.max ]; then echo mem=$(cat /sys/fs/cgroup/memory.max); \
        else echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes); fi; \
        if touch /x 2>/dev/null; then echo root=writable; else echo root=readonly; fi";
    let (code, out, err) = b.run(
        "default",
        json!({"Hostname": "spectest", "Cmd": ["sh", "-c", script], "Env": ["FOO=bar"]}),
        json!({"Binds": [format!("{bind}:/data:ro")], "Memory": 64 << 20}),
    );
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("uid=0(root) gid=0(root)"), "{out}");
    assert_eq!(
        status_field(&out, "CapEff:"),
        Some("00000000a80425fb"),
        "{out}"
    );
    assert_eq!(
        status_field(&out, "CapBnd:"),
        Some("00000000a80425fb"),
        "{out}"
    );
    assert_eq!(status_field(&out, "Seccomp:"), Some("2"), "{out}");
    assert_eq!(status_field(&out, "NoNewPrivs:"), Some("0"), "{out}");
    assert!(out.contains("host=spectest"), "{out}");
    assert!(out.contains("etc=spectest"), "{out}");
    let shm = out
        .lines()
        .find(|l| l.contains(" /dev/shm "))
        .expect("a /dev/shm mount");
    assert!(
        shm.contains("tmpfs") && shm.contains("size=65536k"),
        "{shm}"
    );
    assert!(out.contains("bound"), "{out}");
    assert!(out.contains("bind=readonly"), "{out}");
    assert!(out.contains(&format!("mem={}", 64 << 20)), "{out}");
    assert!(out.contains("root=writable"), "{out}");
    assert!(!Path::new(&bind).join("new").exists());

    // a user, no-new-privileges, read-only rootfs, a writable bind
    let script = "id; cat /proc/self/status; \
        if touch /x 2>/dev/null; then echo root=writable; else echo root=readonly; fi; \
        if touch /data/new 2>/dev/null; then echo bind=writable; else echo bind=readonly; fi";
    let (code, out, err) = b.run(
        "user",
        json!({"Cmd": ["sh", "-c", script], "User": "alice"}),
        json!({"Binds": [format!("{bind}:/data")], "ReadonlyRootfs": true,
               "SecurityOpt": ["no-new-privileges:true"], "GroupAdd": ["77"]}),
    );
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("uid=1000(alice) gid=1000(alice)"), "{out}");
    assert!(out.contains("50(staff)") && out.contains("77"), "{out}");
    assert_eq!(status_field(&out, "NoNewPrivs:"), Some("1"), "{out}");
    assert_eq!(
        status_field(&out, "CapEff:"),
        Some("0000000000000000"),
        "{out}"
    );
    assert!(out.contains("root=readonly"), "{out}");
    assert!(
        out.contains("bind=readonly") || out.contains("bind=writable"),
        "{out}"
    );
    // root-owned bind source, alice cannot write it; as root it works:
    let (code, out, err) = b.run(
        "rwbind",
        json!({"Cmd": ["sh", "-c", "touch /data/new && echo bind=writable; echo sc=$(grep Seccomp: /proc/self/status)"]}),
        json!({"Binds": [format!("{bind}:/data:rw")], "SecurityOpt": ["seccomp=unconfined"], "Tmpfs": {"/run": "size=1m"}}),
    );
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("bind=writable"), "{out}");
    assert!(
        out.contains("Seccomp:\t0") || out.contains("Seccomp: 0"),
        "{out}"
    );
    assert!(Path::new(&bind).join("new").exists());

    // exit codes pass through
    let (code, _, _) = b.run("exit", json!({"Cmd": ["sh", "-c", "exit 3"]}), json!({}));
    assert_eq!(code, 3);

    // privileged: every capability of our bounding set, no seccomp, writable /sys, host devices
    let script =
        "cat /proc/self/status; mount | grep ' /sys '; [ -c /dev/kmsg ] && echo kmsg=yes; true";
    let (code, out, err) = b.run(
        "privileged",
        json!({"Cmd": ["sh", "-c", script]}),
        json!({"Privileged": true}),
    );
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let own = fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(
        status_field(&out, "CapEff:"),
        status_field(&own, "CapBnd:"),
        "{out}"
    );
    assert_eq!(status_field(&out, "Seccomp:"), Some("0"), "{out}");
    let sys = out
        .lines()
        .find(|l| l.contains(" /sys "))
        .expect("a /sys mount");
    assert!(sys.contains("(rw,"), "{sys}");
    if Path::new("/dev/kmsg").exists() {
        assert!(out.contains("kmsg=yes"), "{out}");
    }
}

#[test]
fn runc_runs_the_init_binary() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping: {why}");
        return;
    }
    let Some(init) = ["/usr/bin/tini-static", "/usr/bin/catatonit"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    else {
        eprintln!("skipping: no static tini or catatonit");
        return;
    };
    let mut b = Bundle::new();
    b.init = Some(init);
    let (code, out, err) = b.run(
        "init",
        json!({"Cmd": ["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; exit 4"]}),
        json!({"Init": true}),
    );
    assert_eq!(code, 4, "stdout: {out}\nstderr: {err}");
    assert!(out.starts_with("/sbin/docker-init -- sh -c"), "{out}");
}
