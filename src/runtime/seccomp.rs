//! Docker's seccomp profiles (its `archMap`, `includes`/`excludes` conditions on arches,
//! capabilities and kernel version) translated to the OCI `linux.seccomp` form.

use serde_json::{Map, Value};

use super::{HostInfo, SpecError};

/// Docker 28's default profile (moby/profiles/seccomp default.json).
pub const DEFAULT_PROFILE: &str = include_str!("seccomp_default.json");

/// libseccomp's name of this build's architecture (what `includes.arches` lists).
fn native_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "x86",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "powerpc64" => {
            if cfg!(target_endian = "little") {
                "ppc64le"
            } else {
                "ppc64"
            }
        }
        "loongarch64" => "loong64",
        "mips64" => {
            if cfg!(target_endian = "little") {
                "mipsel64"
            } else {
                "mips64"
            }
        }
        other => other,
    }
}

fn seccomp_arch(native: &str) -> Option<&'static str> {
    Some(match native {
        "x86" => "SCMP_ARCH_X86",
        "amd64" => "SCMP_ARCH_X86_64",
        "arm" => "SCMP_ARCH_ARM",
        "arm64" => "SCMP_ARCH_AARCH64",
        "loong64" => "SCMP_ARCH_LOONGARCH64",
        "mips64" => "SCMP_ARCH_MIPS64",
        "mipsel64" => "SCMP_ARCH_MIPSEL64",
        "ppc64" => "SCMP_ARCH_PPC64",
        "ppc64le" => "SCMP_ARCH_PPC64LE",
        "riscv64" => "SCMP_ARCH_RISCV64",
        "s390x" => "SCMP_ARCH_S390X",
        _ => return None,
    })
}

fn parse_min_kernel(v: &Value) -> Result<Option<(u64, u64)>, SpecError> {
    let bad = |why: &str| {
        SpecError::invalid(format!(
            "Decoding seccomp profile failed: invalid kernel version: {v}, expected \"<kernel>.<major>\"{why}"
        ))
    };
    let Some(s) = v.as_str() else {
        return Err(bad(""));
    };
    if s.is_empty() {
        return Ok(None);
    }
    let parts: Vec<&str> = s.splitn(3, '.').collect();
    if parts.len() != 2 {
        return Err(bad(""));
    }
    let k: u8 = parts[0].parse().map_err(|_| bad(""))?;
    let m: u8 = parts[1].parse().map_err(|_| bad(""))?;
    if k == 0 && m == 0 {
        return Err(bad(": version cannot be 0.0"));
    }
    Ok(Some((k as u64, m as u64)))
}

fn str_list(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Parse a Docker seccomp profile (JSON text) and produce `linux.seccomp` for a container whose
/// bounding set is `caps`. `Ok(None)` means "no filter" (empty profile).
pub fn load_profile(
    body: &str,
    caps: &[String],
    host: &HostInfo,
) -> Result<Option<Value>, SpecError> {
    let profile: Value = serde_json::from_str(body)
        .map_err(|e| SpecError::invalid(format!("Decoding seccomp profile failed: {e}")))?;
    let Some(p) = profile.as_object() else {
        return Err(SpecError::invalid(
            "Decoding seccomp profile failed: json: cannot unmarshal into Go value of type seccomp.Seccomp",
        ));
    };
    setup(p, caps, host, native_arch())
}

fn setup(
    p: &Map<String, Value>,
    caps: &[String],
    host: &HostInfo,
    arch: &str,
) -> Result<Option<Value>, SpecError> {
    let default_action = p.get("defaultAction").and_then(Value::as_str).unwrap_or("");
    let syscalls = p
        .get("syscalls")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if default_action.is_empty() && syscalls.is_empty() {
        return Ok(None);
    }
    let architectures = str_list(p.get("architectures"));
    let arch_map = p
        .get("archMap")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !architectures.is_empty() && !arch_map.is_empty() {
        return Err(SpecError::invalid(
            "both 'architectures' and 'archMap' are specified in the seccomp profile, use either 'architectures' or 'archMap'",
        ));
    }

    let mut out = Map::new();
    out.insert("defaultAction".into(), Value::from(default_action));
    if let Some(e) = p.get("defaultErrnoRet").filter(|v| !v.is_null()) {
        out.insert("defaultErrnoRet".into(), e.clone());
    }
    let mut arches: Vec<Value> = architectures.iter().map(|a| Value::from(*a)).collect();
    if let Some(native) = seccomp_arch(arch) {
        for a in &arch_map {
            if a.get("architecture").and_then(Value::as_str) == Some(native) {
                arches.push(Value::from(native));
                arches.extend(
                    str_list(a.get("subArchitectures"))
                        .into_iter()
                        .map(Value::from),
                );
                break;
            }
        }
    }
    if !arches.is_empty() {
        out.insert("architectures".into(), Value::Array(arches));
    }
    for key in ["flags", "listenerPath", "listenerMetadata"] {
        if let Some(v) = p
            .get(key)
            .filter(|v| !v.is_null() && *v != "" && *v != &Value::Array(vec![]))
        {
            out.insert(key.into(), v.clone());
        }
    }

    let has_cap = |c: &str| caps.iter().any(|x| x == c);
    let mut rules = Vec::new();
    'calls: for call in &syscalls {
        let Some(call) = call.as_object() else {
            return Err(SpecError::invalid(
                "Decoding seccomp profile failed: invalid syscall entry",
            ));
        };
        let mut names: Vec<Value> = call
            .get("names")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(name) = call
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            if !names.is_empty() {
                return Err(SpecError::invalid(
                    "both 'name' and 'names' are specified in the seccomp profile, use either 'name' or 'names'",
                ));
            }
            names = vec![Value::from(name)];
        }
        if let Some(ex) = call.get("excludes").and_then(Value::as_object) {
            if str_list(ex.get("arches")).contains(&arch) {
                continue 'calls;
            }
            if str_list(ex.get("caps")).iter().any(|c| has_cap(c)) {
                continue 'calls;
            }
            if let Some(v) = ex.get("minKernel")
                && let Some(min) = parse_min_kernel(v)?
                && host.kernel >= min
            {
                continue 'calls;
            }
        }
        if let Some(inc) = call.get("includes").and_then(Value::as_object) {
            let arches = str_list(inc.get("arches"));
            if !arches.is_empty() && !arches.contains(&arch) {
                continue 'calls;
            }
            if !str_list(inc.get("caps")).iter().all(|c| has_cap(c)) {
                continue 'calls;
            }
            if let Some(v) = inc.get("minKernel")
                && let Some(min) = parse_min_kernel(v)?
                && host.kernel < min
            {
                continue 'calls;
            }
        }
        let mut rule = Map::new();
        rule.insert("names".into(), Value::Array(names));
        rule.insert(
            "action".into(),
            call.get("action").cloned().unwrap_or(Value::from("")),
        );
        if let Some(e) = call.get("errnoRet").filter(|v| !v.is_null()) {
            rule.insert("errnoRet".into(), e.clone());
        }
        if let Some(Value::Array(args)) = call.get("args")
            && !args.is_empty()
        {
            let args: Vec<Value> = args
                .iter()
                .map(|a| {
                    let mut o = Map::new();
                    for k in ["index", "value", "valueTwo", "op"] {
                        if let Some(v) = a.get(k).filter(|v| !v.is_null()) {
                            if k == "valueTwo" && v.as_u64() == Some(0) {
                                continue;
                            }
                            o.insert(k.into(), v.clone());
                        }
                    }
                    Value::Object(o)
                })
                .collect();
            rule.insert("args".into(), Value::Array(args));
        }
        rules.push(Value::Object(rule));
    }
    out.insert("syscalls".into(), Value::Array(rules));
    Ok(Some(Value::Object(out)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host(kernel: (u64, u64)) -> HostInfo {
        HostInfo {
            kernel,
            ncpu: 1,
            ..HostInfo::for_tests(vec![])
        }
    }
    fn caps(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }
    fn names(profile: &Value) -> Vec<String> {
        profile["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| {
                r["names"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_str().unwrap().to_string())
            })
            .collect()
    }
    fn default_for(c: &[&str], arch: &str) -> Value {
        let p: Value = serde_json::from_str(DEFAULT_PROFILE).unwrap();
        setup(p.as_object().unwrap(), &caps(c), &host((6, 1)), arch)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn default_profile_shape() {
        let p = default_for(&["CAP_CHOWN"], "amd64");
        assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(p["defaultErrnoRet"], 1);
        assert_eq!(
            p["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        assert!(p.get("archMap").is_none());
        let n = names(&p);
        assert!(n.contains(&"read".to_string()));
        assert!(n.contains(&"arch_prctl".to_string())); // amd64-only rule
        assert!(!n.contains(&"sync_file_range2".to_string())); // ppc64le/arm only
        for r in p["syscalls"].as_array().unwrap() {
            assert!(
                r.get("includes").is_none()
                    && r.get("excludes").is_none()
                    && r.get("comment").is_none()
            );
        }
        let p = default_for(&[], "arm64");
        assert_eq!(
            p["architectures"],
            json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
        );
        assert!(!names(&p).contains(&"arch_prctl".to_string()));
    }

    #[test]
    fn capability_conditions() {
        let plain = names(&default_for(&[], "amd64"));
        let admin = names(&default_for(&["CAP_SYS_ADMIN"], "amd64"));
        assert!(!plain.contains(&"mount".to_string()));
        assert!(admin.contains(&"mount".to_string()));
        assert!(admin.contains(&"bpf".to_string()));
        let ptrace = names(&default_for(&["CAP_SYS_PTRACE"], "amd64"));
        assert!(ptrace.contains(&"process_vm_writev".to_string()));
        // the clone rule with a flags mask is excluded when CAP_SYS_ADMIN is held
        let clone_args = |p: &Value| {
            p["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["names"] == json!(["clone"]))
                .count()
        };
        assert_eq!(clone_args(&default_for(&[], "amd64")), 1);
        assert_eq!(clone_args(&default_for(&["CAP_SYS_ADMIN"], "amd64")), 0);
    }

    #[test]
    fn min_kernel() {
        let prof = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
                {"names": ["b"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "4.8"}},
                {"name": "c", "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "args": [{"index": 0, "value": 1, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]}
            ]
        });
        let p = prof.as_object().unwrap();
        let new = setup(p, &[], &host((6, 1)), "amd64").unwrap().unwrap();
        assert_eq!(names(&new), ["a", "c"]);
        assert_eq!(
            new["syscalls"][1],
            json!({"names": ["c"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
            "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]})
        );
        let old = setup(p, &[], &host((4, 4)), "amd64").unwrap().unwrap();
        assert_eq!(names(&old), ["b", "c"]);
        assert!(old.get("architectures").is_none());
    }

    #[test]
    fn custom_profiles() {
        let h = host((6, 1));
        assert!(load_profile("{}", &[], &h).unwrap().is_none());
        let e = load_profile("{nope", &[], &h).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Decoding seccomp profile failed: ")
        );
        assert!(e.is_user_error());
        let e = load_profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}"#, &[], &h)
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("both 'architectures' and 'archMap'")
        );
        let e = load_profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["x"],"action":"SCMP_ACT_ERRNO","includes":{"minKernel":"0.0"}}]}"#, &[], &h)
            .unwrap_err();
        assert!(e.to_string().contains("version cannot be 0.0"));
        let p = load_profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],"syscalls":[{"names":["chmod"],"action":"SCMP_ACT_ERRNO"}]}"#,
            &[],
            &h,
        )
        .unwrap()
        .unwrap();
        assert_eq!(p["architectures"], json!(["SCMP_ARCH_X86_64"]));
        assert_eq!(names(&p), ["chmod"]);
    }
}
