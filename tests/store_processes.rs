//! Several `berth serve` processes on one data root at once: every write lands, nothing is
//! lost to "database is locked", and the database stays intact.

mod common;

use std::thread;

use common::{Server, request, rootfs_tar};

#[test]
fn parallel_processes_import_and_tag_without_losing_writes() {
    let first = Server::start();
    let data = first.data_root();
    let mut others = Children(Vec::new());
    let mut sockets = vec![first.socket.clone()];
    for i in 0..3 {
        let (child, socket) = Server::start_shared(&data, &format!("p{i}.sock"));
        others.0.push(child);
        sockets.push(socket);
    }

    let handles: Vec<_> = (0..24)
        .map(|i| {
            let socket = sockets[i % sockets.len()].clone();
            thread::spawn(move || {
                // A few distinct layers, so extraction and layer sharing race too.
                let tar = rootfs_tar(&format!("seed{}", i % 4));
                let r = request(
                    &socket,
                    "POST",
                    &format!("/images/create?fromSrc=-&repo=img{i}&tag=v"),
                    &tar,
                );
                assert_eq!(r.status, 200, "import {i}: {}", r.text());
                let r = request(
                    &socket,
                    "POST",
                    &format!("/images/img{i}:v/tag?repo=copy{i}&tag=w"),
                    b"",
                );
                assert_eq!(r.status, 201, "tag {i}: {}", r.text());
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
    let list = first.request("GET", "/images/json", b"").json();
    let mut tags: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["RepoTags"].as_array().unwrap().clone())
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    tags.sort();
    assert_eq!(tags.len(), 48, "{tags:?}");
    for i in 0..24 {
        assert!(tags.contains(&format!("img{i}:v")));
        assert!(tags.contains(&format!("copy{i}:w")));
    }
    let conn = rusqlite::Connection::open(data.join("berth.db")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    // Four distinct layers, each stored once.
    let layers: i64 = conn
        .query_row("SELECT count(*) FROM layers", [], |r| r.get(0))
        .unwrap();
    assert_eq!(layers, 4);
}

/// Stops the extra servers even when an assertion fails.
struct Children(Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
