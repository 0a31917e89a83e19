//! Schema and migrations, versioned with `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};

use super::{Result, StoreError};

/// Each entry migrates from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: images, layers, tags, events.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    -- One row per extracted layer, keyed by its chain ID.
    CREATE TABLE layers (
        chain_id TEXT PRIMARY KEY,
        diff_id  TEXT NOT NULL,
        parent   TEXT REFERENCES layers(chain_id),
        size     INTEGER NOT NULL,      -- bytes of regular files in the diff
        tar_size INTEGER NOT NULL,      -- bytes of the layer's tar, for save
        link     TEXT NOT NULL UNIQUE   -- short name under l/ for overlay lowerdir
    );
    -- config is the image config JSON exactly as received: the image ID is its sha256.
    CREATE TABLE images (
        id        TEXT PRIMARY KEY,
        config    BLOB NOT NULL,
        created   INTEGER NOT NULL,     -- config "created", Unix nanoseconds (0 if absent)
        size      INTEGER NOT NULL,
        parent    TEXT NOT NULL DEFAULT '',
        added     INTEGER NOT NULL,     -- when this store got it, Unix nanoseconds
        last_tag  INTEGER NOT NULL DEFAULT 0
    );
    -- Every chain ID of an image's stack, bottom first, so a layer in use is never removed.
    CREATE TABLE image_layers (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        idx      INTEGER NOT NULL,
        chain_id TEXT NOT NULL REFERENCES layers(chain_id),
        PRIMARY KEY (image_id, idx)
    );
    CREATE INDEX image_layers_chain ON image_layers(chain_id);
    -- Fully qualified references: docker.io/library/busybox:latest, or name@sha256:... digests.
    CREATE TABLE refs (
        name      TEXT PRIMARY KEY,
        image_id  TEXT NOT NULL REFERENCES images(id),
        is_digest INTEGER NOT NULL DEFAULT 0,
        added     INTEGER NOT NULL
    );
    CREATE INDEX refs_image ON refs(image_id);
    CREATE TABLE events (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        time_nano  INTEGER NOT NULL,
        type       TEXT NOT NULL,
        action     TEXT NOT NULL,
        actor_id   TEXT NOT NULL,
        attributes TEXT NOT NULL         -- JSON object
    );
    CREATE INDEX events_time ON events(time_nano);
    -- The installation's ID for /info, made once here so that reading it never needs a write.
    INSERT INTO meta (key, value)
        SELECT 'engine_id', lower(substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' ||
               substr(h, 13, 4) || '-' || substr(h, 17, 4) || '-' || substr(h, 21, 12))
        FROM (SELECT hex(randomblob(16)) AS h);
    "#,
    // 2: containers. Config and HostConfig are kept as the JSON the API shows; the last known
    // state is JSON too (the monitor's files in the run root are fresher while it runs).
    r#"
    CREATE TABLE containers (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,   -- without the leading '/'
        image       TEXT NOT NULL,          -- Config.Image as given
        image_id    TEXT NOT NULL,
        created     INTEGER NOT NULL,       -- Unix nanoseconds
        config      TEXT NOT NULL,
        host_config TEXT NOT NULL,
        state       TEXT NOT NULL
    );
    -- The image layers under a container's root, so they outlive a forced image removal.
    CREATE TABLE container_layers (
        container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        idx          INTEGER NOT NULL,
        chain_id     TEXT NOT NULL REFERENCES layers(chain_id),
        PRIMARY KEY (container_id, idx)
    );
    CREATE INDEX container_layers_chain ON container_layers(chain_id);
    "#,
    // 3: distribution metadata. Which blob a layer (diff ID) was pulled from or pushed as, and
    // in which repository of which registry it is known to exist, so that a later push can HEAD
    // or mount instead of uploading. (A pull finds present layers by the chain IDs of the
    // config's diff IDs; RepoDigests are `refs` rows with is_digest = 1.)
    r#"
    CREATE TABLE layer_blobs (
        diff_id    TEXT NOT NULL,
        digest     TEXT NOT NULL,       -- sha256 of the blob as stored in the registry
        media_type TEXT NOT NULL,
        size       INTEGER NOT NULL,    -- bytes of the blob
        registry   TEXT NOT NULL,       -- host as references name it: docker.io, 127.0.0.1:5000
        repository TEXT NOT NULL,       -- path in that registry: library/busybox
        added      INTEGER NOT NULL,    -- Unix nanoseconds; newest first when choosing
        PRIMARY KEY (diff_id, digest, registry, repository)
    );
    CREATE INDEX layer_blobs_digest ON layer_blobs(digest);
    "#,
    // 4: containers' Config and HostConfig in the typed model's shape (`crate::model`): rows
    // written as clients sent them are rewritten by `retype_containers` below.
    "",
    // 5: local volumes, and which container mounts which volume where. A volume in use cannot
    // be removed (the reference is checked in the same transaction as the delete).
    r#"
    CREATE TABLE volumes (
        name      TEXT PRIMARY KEY,
        driver    TEXT NOT NULL,
        created   INTEGER NOT NULL,     -- Unix nanoseconds
        labels    TEXT NOT NULL,        -- JSON object, or null
        options   TEXT NOT NULL,        -- JSON object, or null
        anonymous INTEGER NOT NULL      -- made for one container (-v /path, an image VOLUME)
    );
    CREATE TABLE container_volumes (
        container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        destination  TEXT NOT NULL,
        volume       TEXT NOT NULL REFERENCES volumes(name),
        read_only    INTEGER NOT NULL,
        copy_up      INTEGER NOT NULL,  -- copy the image's content into it while it is empty
        PRIMARY KEY (container_id, destination)
    );
    CREATE INDEX container_volumes_volume ON container_volumes(volume);
    "#,
    // 6: host binds a container takes from another with --volumes-from, resolved at create as
    // moby does (the other container may go; these stay).
    r#"
    CREATE TABLE container_binds (
        container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        destination  TEXT NOT NULL,
        source       TEXT NOT NULL,
        read_only    INTEGER NOT NULL,
        PRIMARY KEY (container_id, destination)
    );
    "#,
    // 7: networks, which container is attached to which (an endpoint), and while it runs the
    // addresses and host ports it holds: allocated under the write transaction, unique by
    // constraint, released when its network is torn down. `bridge`, `host` and `none` are
    // Docker's predefined networks.
    r#"
    CREATE TABLE networks (
        id           TEXT PRIMARY KEY,
        name         TEXT NOT NULL UNIQUE,
        driver       TEXT NOT NULL,     -- bridge, host, null
        created      INTEGER NOT NULL,  -- Unix nanoseconds
        interface    TEXT UNIQUE,       -- the bridge on the host (NULL for host, none)
        internal     INTEGER NOT NULL,
        attachable   INTEGER NOT NULL,
        ipv6         INTEGER NOT NULL,
        dns          INTEGER NOT NULL,  -- names resolve between its containers
        subnets      TEXT NOT NULL,     -- JSON [{"Subnet","Gateway","IPRange"}]
        options      TEXT NOT NULL,     -- JSON object
        labels       TEXT NOT NULL,     -- JSON object
        ipam_options TEXT NOT NULL      -- JSON object
    );
    INSERT INTO networks VALUES
        (lower(hex(randomblob(32))), 'bridge', 'bridge', CAST(strftime('%s', 'now') AS INTEGER) * 1000000000, 'berth0', 0, 0, 0, 0,
         '[{"Subnet":"10.201.0.0/16","Gateway":"10.201.0.1"}]',
         '{"com.docker.network.bridge.default_bridge":"true","com.docker.network.bridge.enable_icc":"true","com.docker.network.bridge.enable_ip_masquerade":"true","com.docker.network.bridge.host_binding_ipv4":"0.0.0.0","com.docker.network.bridge.name":"berth0","com.docker.network.driver.mtu":"1500"}',
         '{}', '{}'),
        (lower(hex(randomblob(32))), 'host', 'host', CAST(strftime('%s', 'now') AS INTEGER) * 1000000000, NULL, 0, 0, 0, 0, '[]', '{}', '{}', '{}'),
        (lower(hex(randomblob(32))), 'none', 'null', CAST(strftime('%s', 'now') AS INTEGER) * 1000000000, NULL, 0, 0, 0, 0, '[]', '{}', '{}', '{}');
    CREATE TABLE endpoints (
        container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        network_id   TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
        ordinal      INTEGER NOT NULL,  -- order of attachment: the first carries published ports
        settings     TEXT NOT NULL,     -- JSON EndpointSettings as asked (aliases, IPAM, MAC)
        -- Set while the container's network is up:
        endpoint_id  TEXT,
        interface    TEXT,              -- eth0, eth1, ... in the container
        ipv4         TEXT,
        ipv6         TEXT,
        mac          TEXT,
        PRIMARY KEY (container_id, network_id),
        UNIQUE (network_id, ipv4),
        UNIQUE (network_id, ipv6)
    );
    CREATE INDEX endpoints_network ON endpoints(network_id);
    CREATE TABLE host_ports (
        protocol       TEXT NOT NULL,   -- tcp, udp, sctp
        host_ip        TEXT NOT NULL,   -- 0.0.0.0 for all
        host_port      INTEGER NOT NULL,
        container_id   TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        container_port INTEGER NOT NULL,
        PRIMARY KEY (protocol, host_ip, host_port)
    );
    CREATE INDEX host_ports_container ON host_ports(container_id);
    -- Containers made before networks existed ran in the default network mode: the bridge.
    INSERT INTO endpoints (container_id, network_id, ordinal, settings)
        SELECT c.id, n.id, 0, '{}' FROM containers c, networks n
        WHERE n.name = 'bridge'
          AND COALESCE(json_extract(c.host_config, '$.NetworkMode'), '') IN ('', 'default', 'bridge');
    "#,
    // 8: pods (Podman's): containers sharing the namespaces of one infra container. `config` is
    // the pod's own settings as JSON (labels, hostname, shared namespaces, ports, ...); members
    // go with their container, the pod row only by an explicit removal.
    r#"
    CREATE TABLE pods (
        id       TEXT PRIMARY KEY,
        name     TEXT NOT NULL UNIQUE,
        created  INTEGER NOT NULL,      -- Unix nanoseconds
        config   TEXT NOT NULL
    );
    CREATE TABLE pod_members (
        container_id TEXT PRIMARY KEY REFERENCES containers(id) ON DELETE CASCADE,
        pod_id       TEXT NOT NULL REFERENCES pods(id),
        infra        INTEGER NOT NULL   -- the container holding the pod's namespaces
    );
    CREATE INDEX pod_members_pod ON pod_members(pod_id);
    CREATE UNIQUE INDEX pod_members_one_infra ON pod_members(pod_id) WHERE infra = 1;
    "#,
];

pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Decode every stored `Config`/`HostConfig` with the API's lenient rules and store it as the
/// typed model serialises it (Docker's zero values, sorted maps). A row that does not decode
/// stays as it is: reading it later falls back the same way, and nothing is lost.
fn retype_containers(tx: &rusqlite::Transaction) -> Result<()> {
    use crate::model::{Config, HostConfig};
    fn retype<T: serde::de::DeserializeOwned + serde::Serialize>(text: &str) -> Option<String> {
        let v: T = serde_json::from_str(text).ok()?;
        serde_json::to_string(&v).ok()
    }
    let rows: Vec<(String, String, String)> = {
        let mut stmt = tx.prepare("SELECT id, config, host_config FROM containers")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (id, config, host_config) in rows {
        let config = retype::<Config>(&config).unwrap_or(config);
        let host_config = retype::<HostConfig>(&host_config).unwrap_or(host_config);
        tx.execute(
            "UPDATE containers SET config = ?2, host_config = ?3 WHERE id = ?1",
            rusqlite::params![id, config, host_config],
        )?;
    }
    Ok(())
}

pub fn migrate(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current == VERSION {
        return Ok(());
    }
    if current > VERSION {
        return Err(StoreError::TooNew {
            found: current,
            known: VERSION,
        });
    }
    // Another process may be migrating at the same moment: take the write lock, then re-read.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)?;
        if i + 1 == 4 {
            retype_containers(&tx)?;
        }
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_container_rows_take_the_typed_shape() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("berth.db");
        let mut conn = Connection::open(&db).unwrap();
        // A store as berth left it before version 4: the JSON clients sent.
        for sql in &MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute_batch(
            r#"INSERT INTO containers VALUES ('c1', 'old', 'busybox', 'sha256:x', 1,
                 '{"Image":"busybox","Cmd":"echo hi","Labels":{"b":"2","a":"1"}}',
                 '{"Privileged":true,"Memory":5,"Junk":1}', '{}');
               INSERT INTO containers VALUES ('c2', 'odd', 'busybox', 'sha256:x', 1,
                 '{"Env":"not a list"}', '{}', '{}');"#,
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let get = |id: &str| -> (serde_json::Value, String) {
            conn.query_row(
                "SELECT config, host_config FROM containers WHERE id = ?1",
                [id],
                |r| {
                    let c: String = r.get(0)?;
                    Ok((serde_json::from_str(&c).unwrap(), r.get(1)?))
                },
            )
            .unwrap()
        };
        let (config, hc) = get("c1");
        assert_eq!(config["Cmd"], serde_json::json!(["echo hi"]));
        assert_eq!(config["Env"], serde_json::Value::Null);
        let hc: serde_json::Value = serde_json::from_str(&hc).unwrap();
        assert_eq!(hc["Privileged"], true);
        assert_eq!(hc["Memory"], 5);
        assert_eq!(hc["CapAdd"], serde_json::Value::Null);
        assert!(hc.get("Junk").is_none());
        // What does not decode is kept as it was.
        assert_eq!(get("c2").0, serde_json::json!({"Env": "not a list"}));
        // Containers of the default network mode are attached to the bridge network (7).
        let on_bridge: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM endpoints e JOIN networks n ON n.id = e.network_id
                 WHERE n.name = 'bridge'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(on_bridge, 2);
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, VERSION);
    }
}
