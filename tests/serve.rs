//! `berth serve` over a real unix socket: Docker's headers, versions, errors, and images.

mod common;

use common::{Server, rootfs_tar};

#[test]
fn ping_answers_with_negotiation_headers() {
    let s = Server::start();
    let r = s.request("GET", "/_ping", b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "OK");
    assert_eq!(r.header("Api-Version"), Some("1.50"));
    assert_eq!(r.header("Builder-Version"), Some("1"));
    assert_eq!(r.header("Ostype"), Some("linux"));
    assert_eq!(r.header("Docker-Experimental"), Some("false"));
    let head = s.request("HEAD", "/v1.50/_ping", b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

#[test]
fn versions_and_unknown_routes_get_dockers_errors() {
    let s = Server::start();
    let r = s.request("GET", "/v1.51/version", b"");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(
        r.json()["message"],
        "client version 1.51 is too new. Maximum supported API version is 1.50"
    );
    assert_eq!(s.request("GET", "/v1.24/version", b"").status, 200);
    let r = s.request("GET", "/nope", b"");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "page not found");
    let r = s.request("POST", "/version", b"");
    assert_eq!(r.status, 404);
    let r = s.request("GET", "/swarm", b"");
    assert_eq!(r.status, 503);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("This node is not a swarm manager.")
    );
}

#[test]
fn import_tag_list_and_remove() {
    let s = Server::start();
    let tar = rootfs_tar("one");
    let r = s.request(
        "POST",
        "/images/create?fromSrc=-&repo=example&tag=v1&changes=CMD%20%5B%22sh%22%5D",
        &tar,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r
        .text()
        .trim()
        .trim_start_matches("{\"status\":\"")
        .trim_end_matches("\"}")
        .to_string();
    assert!(id.starts_with("sha256:"), "{id}");

    let r = s.request("POST", "/images/example:v1/tag?repo=other&tag=two", b"");
    assert_eq!(r.status, 201);
    let list = s.request("GET", "/images/json", b"").json();
    let tags = list[0]["RepoTags"].as_array().unwrap();
    assert_eq!(tags.len(), 2);
    assert_eq!(list[0]["Id"], id);

    let inspect = s.request("GET", "/images/other:two/json", b"").json();
    assert_eq!(inspect["Config"]["Cmd"][0], "sh");
    assert_eq!(inspect["RootFS"]["Layers"].as_array().unwrap().len(), 1);

    // Deleting by ID with two tags needs force.
    let r = s.request("DELETE", &format!("/images/{}", &id[7..19]), b"");
    assert_eq!(r.status, 409);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("must be forced")
    );
    let r = s.request("DELETE", "/images/other:two", b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!([{"Untagged": "other:two"}]));
    let r = s.request("DELETE", "/images/example:v1", b"");
    let v = r.json();
    assert_eq!(v[0]["Untagged"], "example:v1");
    assert_eq!(v[1]["Deleted"], id);
    assert_eq!(
        s.request("GET", "/images/json", b"").json(),
        serde_json::json!([])
    );
    let r = s.request("GET", "/images/example:v1/json", b"");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "No such image: example:v1");
}

#[test]
fn save_then_load_keeps_the_id_and_bytes() {
    let s = Server::start();
    let r = s.request(
        "POST",
        "/images/create?fromSrc=-&repo=roundtrip",
        &rootfs_tar("rt"),
    );
    assert_eq!(r.status, 200);
    let saved = s.request("GET", "/images/get?names=roundtrip", b"");
    assert_eq!(saved.status, 200);
    assert_eq!(saved.header("Content-Type"), Some("application/x-tar"));
    let before = s.request("GET", "/images/roundtrip/json", b"").json()["Id"].clone();
    assert_eq!(s.request("DELETE", "/images/roundtrip", b"").status, 200);

    let r = s.request("POST", "/images/load?quiet=1", &saved.body);
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("Loaded image: roundtrip:latest"),
        "{}",
        r.text()
    );
    assert_eq!(
        s.request("GET", "/images/roundtrip/json", b"").json()["Id"],
        before
    );
    let again = s.request("GET", "/images/get?names=roundtrip", b"");
    assert_eq!(
        again.body, saved.body,
        "a second save must give the same bytes"
    );
}

#[test]
fn garbage_load_reports_the_error_in_the_stream() {
    let s = Server::start();
    let r = s.request("POST", "/images/load", b"abc");
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.contains("\"errorDetail\""), "{text}");
    assert!(text.contains("\"error\""), "{text}");
}
