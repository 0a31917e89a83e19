//! Shared helpers for the integration tests: start `berth serve` on a private socket and data
//! root, and speak HTTP/1.1 to it over the unix socket with nothing but std.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    child: Child,
}

impl Server {
    /// One `berth serve --host` process with its own data root under `dir`.
    pub fn start() -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, "s.sock")
    }

    /// Another process on another socket, sharing the data root of `data_root`.
    pub fn start_shared(data_root: &Path, name: &str) -> (Child, PathBuf) {
        let socket = data_root.parent().unwrap().join(name);
        let child = spawn(data_root, &socket);
        wait_for(&socket);
        (child, socket)
    }

    fn start_in(dir: tempfile::TempDir, name: &str) -> Server {
        let socket = dir.path().join(name);
        let child = spawn(&dir.path().join("data"), &socket);
        wait_for(&socket);
        Server { dir, socket, child }
    }

    pub fn data_root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> Response {
        request(&self.socket, method, path, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(data_root: &Path, socket: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--idle-timeout", "0", "--host"])
        .arg(format!("unix://{}", socket.display()))
        .arg("--data-root")
        .arg(data_root)
        .arg("--run-root")
        .arg(data_root.with_file_name(format!(
            "run-{}",
            socket.file_name().unwrap().to_string_lossy()
        )))
        .stdin(Stdio::null())
        .spawn()
        .expect("start berth serve")
}

fn wait_for(socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if UnixStream::connect(socket).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("berth serve did not listen on {}", socket.display());
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on a fresh connection (`Connection: close`), body read to EOF, chunking undone.
pub fn request(socket: &Path, method: &str, path: &str, body: &[u8]) -> Response {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    parse(&raw)
}

fn parse(raw: &[u8]) -> Response {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v == "chunked");
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + size]);
        b = &b[nl + 2 + size + 2..];
    }
    out
}

/// A small rootfs tar: a few files whose content depends on `seed`, so layers differ.
pub fn rootfs_tar(seed: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add("etc/hostname", seed.as_bytes());
    add("etc/motd", format!("welcome to {seed}\n").as_bytes());
    b.into_inner().unwrap()
}
