//! Builds `pause/pause.c` into a static binary: the only file of the pods' infra image.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=pause/pause.c");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("pause");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(&cc)
        .args(["-static", "-Os", "-s", "-Wall", "-o"])
        .arg(&out)
        .arg("pause/pause.c")
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => panic!(
            "building pause/pause.c with `{cc} -static` failed ({other:?}): a C compiler and a static libc are needed (Debian: build-essential)"
        ),
    }
}
