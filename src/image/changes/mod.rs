//! `--change` instructions for `docker import` / `docker commit` (`changes=` query values).
//!
//! Mirrors moby `dockerfile.BuildFromConfig`: the changes are joined with `\n` and parsed as a
//! Dockerfile (buildkit parser: continuations, comments, `# escape=`, JSON/shell forms,
//! builder flags), only CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL,
//! USER, VOLUME and WORKDIR are allowed, and each is applied in turn with Dockerfile variable
//! substitution from the config's current `Env`. Error texts are Docker's.

pub(crate) mod instructions;
pub(crate) mod parser;
pub(crate) mod shell;

use crate::util::go_quote;
use instructions::*;
use parser::*;
use shell::*;
use std::collections::HashMap;

use serde_json::{Map, Value};

/// Errors with the texts dockerd returns (all are HTTP 400 "invalid parameter").
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum ChangeError {
    /// An instruction outside the allowed list, e.g. `run is not a valid change command`
    /// (lower-cased, as the buildkit parser hands it to moby; checked against dockerd).
    #[error("{0} is not a valid change command")]
    NotAllowed(String),
    /// Only blank lines or comments.
    #[error("file with no instructions")]
    NoInstructions,
    /// A word that does not expand (`${X:?}`, an unclosed quote), with buildkit's text.
    #[error(transparent)]
    Shell(#[from] shell::ShellError),
    /// Any other parse, instruction or dispatch error, with Docker's text.
    #[error("{0}")]
    Invalid(String),
}

type Res<T> = Result<T, ChangeError>;

fn err<T>(msg: impl Into<String>) -> Res<T> {
    Err(ChangeError::Invalid(msg.into()))
}

const VALID_COMMANDS: &[&str] = &[
    "cmd",
    "entrypoint",
    "healthcheck",
    "env",
    "expose",
    "label",
    "onbuild",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// Applies `changes` to `config` (Docker's image config object: `Cmd`, `Entrypoint`, `Env`,
/// `ExposedPorts`, `Labels`, `User`, `WorkingDir`, `Volumes`, `StopSignal`, `OnBuild`,
/// `Healthcheck`, `Shell`…). All or nothing: on error `config` is left untouched.
pub fn apply_changes(
    config: &mut Map<String, Value>,
    changes: &[String],
) -> Result<(), ChangeError> {
    if changes.is_empty() {
        return Ok(());
    }
    let (nodes, escape) = parse_dockerfile(&changes.join("\n"))?;
    // Like BuildFromConfig: reject disallowed instructions before interpreting any.
    for n in &nodes {
        if !VALID_COMMANDS.contains(&n.cmd.to_lowercase().as_str()) {
            return Err(ChangeError::NotAllowed(n.cmd.to_lowercase()));
        }
    }
    let commands = nodes
        .iter()
        .map(parse_instruction)
        .collect::<Res<Vec<_>>>()?;
    let mut work = config.clone();
    let mut cmd_set = false;
    for c in commands {
        dispatch(&mut work, c, escape, &HashMap::new(), &mut cmd_set)?;
    }
    *config = work;
    Ok(())
}

// ---- Go helpers ----------------------------------------------------------------------------

/// The buildkit parser's `reWhitespace` class `[\t\v\f\r ]`.
fn is_ws_class(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// `reWhitespace.Split(s, n)`; `n == 0` means no limit.
fn split_ws(s: &str, n: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        if n != 0 && out.len() + 1 == n {
            out.push(rest);
            return out;
        }
        match rest.find(is_ws_class) {
            None => {
                out.push(rest);
                return out;
            }
            Some(i) => {
                out.push(&rest[..i]);
                let after = &rest[i..];
                let skip = after.find(|c: char| !is_ws_class(c)).unwrap_or(after.len());
                rest = &after[skip..];
            }
        }
    }
}

/// Go `path/filepath.Clean` for Unix paths.
fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

// ---- dispatch (moby builder/dockerfile/dispatchers.go) --------------------------------------

pub(crate) fn env_map(config: &Map<String, Value>) -> HashMap<String, String> {
    let mut m = HashMap::new();
    if let Some(Value::Array(env)) = config.get("Env") {
        for e in env.iter().filter_map(Value::as_str) {
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            m.insert(k.to_string(), v.to_string());
        }
    }
    m
}

fn str_array(v: &[String]) -> Value {
    Value::Array(v.iter().cloned().map(Value::String).collect())
}

/// Replaces `config[key]` by an object with the keys sorted (Go marshals maps sorted).
fn sorted_object(config: &mut Map<String, Value>, key: &str, add: Vec<(String, Value)>) {
    let mut entries: Vec<(String, Value)> = match config.remove(key) {
        Some(Value::Object(o)) => o.into_iter().collect(),
        _ => Vec::new(),
    };
    for (k, v) in add {
        match entries.iter_mut().find(|(ek, _)| *ek == k) {
            Some(e) => e.1 = v,
            None => entries.push((k, v)),
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    config.insert(
        key.to_string(),
        Value::Object(entries.into_iter().collect()),
    );
}

fn resolve_cmd_line(
    config: &Map<String, Value>,
    line: Option<Vec<String>>,
    prepend_shell: bool,
) -> Value {
    let Some(line) = line else { return Value::Null };
    if !prepend_shell {
        return str_array(&line);
    }
    let mut shell: Vec<String> = match config.get("Shell") {
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => vec!["/bin/sh".into(), "-c".into()],
    };
    shell.extend(line);
    str_array(&shell)
}

/// Apply one instruction to `config`. Words expand with the config's `Env` and, under it,
/// `build_args` (the builder's allowed build arguments; ENV wins over them).
pub(crate) fn dispatch(
    config: &mut Map<String, Value>,
    c: Command,
    escape: char,
    build_args: &HashMap<String, String>,
    cmd_set: &mut bool,
) -> Res<()> {
    let mut env = build_args.clone();
    env.extend(env_map(config));
    let word = |w: &str| process_word(w, &env, escape).map_err(ChangeError::Shell);
    match c {
        Command::Env(kvs) => {
            let mut list: Vec<Value> = match config.remove("Env") {
                Some(Value::Array(a)) => a,
                _ => Vec::new(),
            };
            for kv in kvs {
                let (key, value) = (word(&kv.key)?, word(&kv.value)?);
                let new_var = Value::String(format!("{key}={value}"));
                let existing = list.iter().position(|e| {
                    e.as_str()
                        .is_some_and(|s| s.split_once('=').map_or(s, |(k, _)| k) == key)
                });
                match existing {
                    Some(i) => list[i] = new_var,
                    None => list.push(new_var),
                }
            }
            config.insert("Env".into(), Value::Array(list));
        }
        Command::Label(kvs) => {
            let mut add = Vec::new();
            for kv in kvs {
                add.push((word(&kv.key)?, Value::String(word(&kv.value)?)));
            }
            sorted_object(config, "Labels", add);
        }
        Command::Onbuild(expr) => {
            let mut list = match config.remove("OnBuild") {
                Some(Value::Array(a)) => a,
                _ => Vec::new(),
            };
            list.push(Value::String(expr));
            config.insert("OnBuild".into(), Value::Array(list));
        }
        Command::Workdir(p) => {
            let requested = word(&p)?;
            if requested.is_empty() {
                return err("cannot normalize nothing");
            }
            let current = config
                .get("WorkingDir")
                .and_then(Value::as_str)
                .unwrap_or("");
            let wd = if requested.starts_with('/') {
                clean_path(&requested)
            } else {
                clean_path(&format!("/{current}/{requested}"))
            };
            config.insert("WorkingDir".into(), Value::String(wd));
        }
        Command::Cmd {
            line,
            prepend_shell,
        } => {
            let non_empty = line.as_ref().is_some_and(|l| !l.is_empty());
            let v = resolve_cmd_line(config, line, prepend_shell);
            config.insert("Cmd".into(), v);
            config.remove("ArgsEscaped");
            if non_empty {
                *cmd_set = true;
            }
        }
        Command::Entrypoint {
            line,
            prepend_shell,
        } => {
            let v = resolve_cmd_line(config, line, prepend_shell);
            config.insert("Entrypoint".into(), v);
            config.remove("ArgsEscaped");
            if !*cmd_set {
                config.insert("Cmd".into(), Value::Null);
            }
        }
        Command::Healthcheck(h) => {
            let mut o = Map::new();
            o.insert("Test".into(), str_array(&h.test));
            for (k, v) in [
                ("Interval", h.interval),
                ("Timeout", h.timeout),
                ("StartPeriod", h.start_period),
                ("StartInterval", h.start_interval),
                ("Retries", h.retries),
            ] {
                if v != 0 {
                    o.insert(k.into(), Value::from(v));
                }
            }
            config.insert("Healthcheck".into(), Value::Object(o));
        }
        Command::Expose(raw) => {
            let mut ports = Vec::new();
            for p in &raw {
                ports.extend(process_words(p, &env, escape).map_err(ChangeError::Shell)?);
            }
            let mut add = Vec::new();
            for p in &ports {
                for port in parse_port_spec(p).map_err(|e| ChangeError::Invalid(e.to_string()))? {
                    add.push((port, Value::Object(Map::new())));
                }
            }
            sorted_object(config, "ExposedPorts", add);
        }
        Command::User(u) => {
            let u = word(&u)?;
            config.insert("User".into(), Value::String(u));
        }
        Command::Volume(vols) => {
            let mut add = Vec::new();
            for v in vols {
                let v = word(&v)?;
                if v.is_empty() {
                    return err("VOLUME specified can not be an empty string");
                }
                add.push((v, Value::Object(Map::new())));
            }
            sorted_object(config, "Volumes", add);
        }
        Command::StopSignal(s) => {
            let s = word(&s)?;
            if !valid_signal(&s) {
                return err(format!("invalid signal: {s}"));
            }
            config.insert("StopSignal".into(), Value::String(s));
        }
    }
    Ok(())
}

/// moby/sys/signal `ParseSignal` on Linux: a non-zero number or a known name, `SIG` optional.
fn valid_signal(raw: &str) -> bool {
    if let Ok(n) = parse_go_int(raw, i64::MIN, i64::MAX) {
        return n != 0;
    }
    let up = raw.to_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
        "RTMIN", "RTMAX",
    ];
    if NAMES.contains(&name) {
        return true;
    }
    let offset = |p: &str| {
        name.strip_prefix(p)
            .and_then(|n| n.parse::<u8>().ok().filter(|_| !n.starts_with('+')))
    };
    matches!(offset("RTMIN+"), Some(1..=15)) || matches!(offset("RTMAX-"), Some(1..=14))
}

/// go-connections' port-spec errors, with its texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortSpecError {
    #[error("invalid IP address {0}: address {0}:: missing ']' in address")]
    Bracket(String),
    #[error("invalid IP address: {0}")]
    Ip(String),
    #[error("no port specified: {0}<empty>")]
    NoPort(String),
    #[error("invalid containerPort: {0}")]
    ContainerPort(String),
    #[error("invalid hostPort: {0}")]
    HostPort(String),
    #[error("invalid ranges specified for container and host Ports: {container} and {host}")]
    Ranges { container: String, host: String },
    #[error("invalid proto: {0}")]
    Proto(String),
}

/// go-connections `nat.ParsePortSpec`, returning the exposed `port/proto` keys.
fn parse_port_spec(raw: &str) -> Result<Vec<String>, PortSpecError> {
    let parts: Vec<&str> = raw.split(':').collect();
    let n = parts.len();
    let (ip, host_port, container) = match n {
        1 => (String::new(), "", parts[0]),
        2 => (String::new(), parts[0], parts[1]),
        3 => (parts[0].to_string(), parts[1], parts[2]),
        _ => (parts[..n - 2].join(":"), parts[n - 2], parts[n - 1]),
    };
    let (proto, container) = split_proto_port(container);
    let mut ip = ip;
    if let Some(inner) = ip.strip_prefix('[') {
        match inner.strip_suffix(']') {
            Some(i) if !i.contains([']', '[']) => ip = i.to_string(),
            _ => {
                return Err(PortSpecError::Bracket(ip));
            }
        }
    }
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(PortSpecError::Ip(ip));
    }
    if container.is_empty() {
        return Err(PortSpecError::NoPort(raw.to_string()));
    }
    let (start, end) =
        parse_port_range(container).map_err(|_| PortSpecError::ContainerPort(container.into()))?;
    let (mut hstart, mut hend) = (0, 0);
    if !host_port.is_empty() {
        (hstart, hend) =
            parse_port_range(host_port).map_err(|_| PortSpecError::HostPort(host_port.into()))?;
    }
    if !host_port.is_empty() && end - start != hend.wrapping_sub(hstart) && end != start {
        return Err(PortSpecError::Ranges {
            container: container.into(),
            host: host_port.into(),
        });
    }
    let proto = proto.to_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(PortSpecError::Proto(proto));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

fn split_proto_port(raw: &str) -> (&str, &str) {
    let parts: Vec<&str> = raw.split('/').collect();
    if raw.is_empty() || parts[0].is_empty() {
        return ("", "");
    }
    if parts.len() == 1 || parts[1].is_empty() {
        return ("tcp", parts[0]);
    }
    (parts[1], parts[0])
}

/// go-connections `nat.ParsePortRange` (only the first two `-` parts count, as upstream).
fn parse_port_range(ports: &str) -> Result<(u32, u32), ()> {
    let num = |s: &str| -> Result<u32, ()> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        s.parse::<u32>().ok().filter(|v| *v <= 65535).ok_or(())
    };
    let mut it = ports.split('-');
    let start = num(it.next().unwrap_or(""))?;
    let Some(second) = it.next() else {
        return Ok((start, start));
    };
    let end = num(second)?;
    if end < start {
        return Err(());
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(cfg: Value, changes: &[&str]) -> Result<Value, ChangeError> {
        let mut m = cfg.as_object().cloned().unwrap_or_default();
        let changes: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
        apply_changes(&mut m, &changes).map(|_| Value::Object(m))
    }

    fn ok(changes: &[&str]) -> Value {
        apply(json!({}), changes).unwrap()
    }

    fn fail(changes: &[&str]) -> String {
        apply(json!({}), changes).unwrap_err().to_string()
    }

    #[test]
    fn cmd_and_entrypoint() {
        assert_eq!(
            ok(&["CMD [\"sh\", \"-c\", \"x\"]"])["Cmd"],
            json!(["sh", "-c", "x"])
        );
        assert_eq!(
            ok(&["cmd echo $HOME  \"hi\""])["Cmd"],
            json!(["/bin/sh", "-c", "echo $HOME  \"hi\""])
        );
        assert_eq!(ok(&["CMD"])["Cmd"], json!(["/bin/sh", "-c"]));
        assert_eq!(ok(&["CMD []"])["Cmd"], json!([]));
        assert_eq!(
            ok(&["CMD [\"a\""])["Cmd"],
            json!(["/bin/sh", "-c", "[\"a\""])
        );
        assert_eq!(fail(&["CMD [1]"]), NOT_STRING_ARRAY);
        let v = apply(
            json!({"Cmd": ["old"], "Shell": ["/bin/bash", "-lc"]}),
            &["ENTRYPOINT top -b"],
        )
        .unwrap();
        assert_eq!(v["Entrypoint"], json!(["/bin/bash", "-lc", "top -b"]));
        assert_eq!(v["Cmd"], Value::Null);
        let v = ok(&["CMD [\"x\"]", "ENTRYPOINT [\"e\"]"]);
        assert_eq!(
            (v["Cmd"].clone(), v["Entrypoint"].clone()),
            (json!(["x"]), json!(["e"]))
        );
        assert_eq!(ok(&["ENTRYPOINT []"])["Entrypoint"], Value::Null);
        assert_eq!(ok(&["ENTRYPOINT"])["Entrypoint"], Value::Null);
        assert_eq!(fail(&["CMD --foo x"]), "unknown flag: --foo");
    }

    #[test]
    fn env() {
        let v = apply(
            json!({"Env": ["PATH=/usr/bin", "A=0"]}),
            &["ENV A=1 B=\"v 2\" C=${A}x", "ENV D $PATH:/x"],
        )
        .unwrap();
        assert_eq!(
            v["Env"],
            json!(["PATH=/usr/bin", "A=1", "B=v 2", "C=0x", "D=/usr/bin:/x"])
        );
        assert_eq!(ok(&["env K a b  c"])["Env"], json!(["K=a b  c"]));
        assert_eq!(
            ok(&["ENV K='$x' L=\\$y M=a\\ b"])["Env"],
            json!(["K=$x", "L=$y", "M=a b"])
        );
        assert_eq!(ok(&["ENV E="])["Env"], json!(["E="]));
        assert_eq!(fail(&["ENV"]), "ENV requires at least one argument");
        assert_eq!(fail(&["ENV K"]), "ENV must have two arguments");
        assert_eq!(fail(&["ENV =v"]), "ENV names can not be blank");
        assert_eq!(
            fail(&["ENV A=1 B"]),
            "Syntax error - can't find = in \"B\". Must be of the form: name=value"
        );
        assert_eq!(
            fail(&["ENV A=\"x"]),
            "failed to process \"\\\"x\": unexpected end of statement while looking for matching double-quote"
        );
    }

    #[test]
    fn substitution() {
        let env: HashMap<String, String> = [("X", "val"), ("E", ""), ("P", "/a/b/c.tar.gz")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let w = |s: &str| process_word(s, &env, '\\').map_err(|e| e.to_string());
        assert_eq!(w("$X ${X} $NOPE."), Ok("val val .".into()));
        assert_eq!(
            w("${NOPE:-def} ${E:-def} ${E-def} ${X:-def}"),
            Ok("def def  val".into())
        );
        assert_eq!(
            w("${X:+alt} ${E:+alt} ${E+alt} ${NOPE+alt}"),
            Ok("alt  alt ".into())
        );
        assert_eq!(w("\\$X '$X' \"$X\" \"\\$X\""), Ok("$X $X val $X".into()));
        assert_eq!(w("$ $1x ${X}y"), Ok("$ x valy".into()));
        assert_eq!(
            w("${P#*/} ${P##*/} ${P%.*} ${P%%.*}"),
            Ok("a/b/c.tar.gz c.tar.gz /a/b/c.tar /a/b/c".into())
        );
        assert_eq!(
            w("${P/a/Z} ${P//[/}"),
            Ok("/Z/b/c.tar.gz /a/b/c.tar.gz".into())
        );
        assert_eq!(w("${X//a/} ${X/*/-}"), Ok("vl -".into()));
        assert_eq!(
            w("${NOPE:?must be set}"),
            Err("failed to process \"${NOPE:?must be set}\": NOPE: must be set".into())
        );
        assert_eq!(
            w("${E:?}"),
            Err("failed to process \"${E:?}\": E: is not allowed to be empty".into())
        );
        assert_eq!(
            w("${X"),
            Err(
                "failed to process \"${X\": unsupported modifier (\u{FFFD}) in substitution".into()
            )
        );
        assert_eq!(
            w("${X:-a"),
            Err("failed to process \"${X:-a\": syntax error: missing '}'".into())
        );
        assert_eq!(
            w("${}"),
            Err("failed to process \"${}\": syntax error: bad substitution".into())
        );
        assert_eq!(
            w("${X:=y}"),
            Err("failed to process \"${X:=y}\": unsupported modifier (:=) in substitution".into())
        );
        assert_eq!(
            w("${X:#y}"),
            Err("failed to process \"${X:#y}\": unsupported modifier (:#) in substitution".into())
        );
        assert_eq!(
            process_words("a $X \"b c\"", &env, '\\'),
            Ok(vec!["a".into(), "val".into(), "b c".into()])
        );
    }

    #[test]
    fn label() {
        let v = apply(
            json!({"Env": ["V=1"], "Labels": {"z": "old"}}),
            &["LABEL b=\"x y\" a=$V z=new", "label legacy some value"],
        )
        .unwrap();
        assert_eq!(
            v["Labels"],
            json!({"a": "1", "b": "x y", "legacy": "some value", "z": "new"})
        );
        assert_eq!(
            v["Labels"].as_object().unwrap().keys().collect::<Vec<_>>(),
            ["a", "b", "legacy", "z"]
        );
        assert_eq!(fail(&["LABEL"]), "LABEL requires at least one argument");
        assert_eq!(fail(&["LABEL x"]), "LABEL must have two arguments");
    }

    #[test]
    fn expose() {
        let v = apply(
            json!({"Env": ["P=9000"]}),
            &["EXPOSE 80 443/udp 8000-8002 $P/SCTP"],
        )
        .unwrap();
        assert_eq!(
            v["ExposedPorts"],
            json!({"443/udp": {}, "80/tcp": {}, "8000/tcp": {}, "8001/tcp": {}, "8002/tcp": {}, "9000/sctp": {}})
        );
        assert_eq!(fail(&["EXPOSE"]), "EXPOSE requires at least one argument");
        assert_eq!(fail(&["EXPOSE abc"]), "invalid containerPort: abc");
        assert_eq!(fail(&["EXPOSE 70000"]), "invalid containerPort: 70000");
        assert_eq!(fail(&["EXPOSE 80/xyz"]), "invalid proto: xyz");
        assert_eq!(fail(&["EXPOSE 9-8"]), "invalid containerPort: 9-8");
        assert_eq!(fail(&["EXPOSE /udp"]), "no port specified: /udp<empty>");
        assert_eq!(
            ok(&["EXPOSE 127.0.0.1:8080:80"])["ExposedPorts"],
            json!({"80/tcp": {}})
        );
    }

    #[test]
    fn volume_workdir_user_stopsignal() {
        assert_eq!(
            ok(&["VOLUME [\"/a\", \"/b\"]"])["Volumes"],
            json!({"/a": {}, "/b": {}})
        );
        assert_eq!(
            ok(&["VOLUME /data /logs"])["Volumes"],
            json!({"/data": {}, "/logs": {}})
        );
        assert_eq!(
            fail(&["VOLUME [\"\"]"]),
            "VOLUME specified can not be an empty string"
        );
        assert_eq!(fail(&["VOLUME"]), "VOLUME requires at least one argument");
        assert_eq!(
            fail(&["VOLUME $NOPE"]),
            "VOLUME specified can not be an empty string"
        );

        let v = apply(
            json!({"WorkingDir": "/app", "Env": ["D=sub"]}),
            &["WORKDIR $D/../x/./y"],
        )
        .unwrap();
        assert_eq!(v["WorkingDir"], "/app/x/y");
        assert_eq!(
            ok(&["WORKDIR rel", "WORKDIR more"])["WorkingDir"],
            "/rel/more"
        );
        assert_eq!(ok(&["WORKDIR /a//b/"])["WorkingDir"], "/a/b");
        assert_eq!(
            ok(&["WORKDIR \"/with space\""])["WorkingDir"],
            "/with space"
        );
        assert_eq!(fail(&["WORKDIR"]), "WORKDIR requires exactly one argument");
        assert_eq!(fail(&["WORKDIR $NOPE"]), "cannot normalize nothing");

        let v = apply(json!({"Env": ["U=app"]}), &["USER ${U}:grp"]).unwrap();
        assert_eq!(v["User"], "app:grp");
        assert_eq!(fail(&["USER"]), "USER requires exactly one argument");

        assert_eq!(ok(&["STOPSIGNAL SIGKILL"])["StopSignal"], "SIGKILL");
        assert_eq!(ok(&["STOPSIGNAL 9"])["StopSignal"], "9");
        assert_eq!(ok(&["STOPSIGNAL term"])["StopSignal"], "term");
        assert_eq!(ok(&["STOPSIGNAL SIGRTMIN+3"])["StopSignal"], "SIGRTMIN+3");
        assert_eq!(fail(&["STOPSIGNAL SIGFOO"]), "invalid signal: SIGFOO");
        assert_eq!(fail(&["STOPSIGNAL 0"]), "invalid signal: 0");
        assert_eq!(
            fail(&["STOPSIGNAL"]),
            "STOPSIGNAL requires exactly one argument"
        );
    }

    #[test]
    fn onbuild_and_healthcheck() {
        let v = ok(&["ONBUILD RUN echo  hi", "onbuild ADD . /app"]);
        assert_eq!(v["OnBuild"], json!(["RUN echo  hi", "ADD . /app"]));
        assert_eq!(fail(&["ONBUILD"]), "ONBUILD requires at least one argument");
        assert_eq!(
            fail(&["ONBUILD ONBUILD RUN x"]),
            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
        );
        assert_eq!(
            fail(&["ONBUILD from x"]),
            "FROM isn't allowed as an ONBUILD trigger"
        );

        let v = ok(&["HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://x || exit 1"]);
        assert_eq!(
            v["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "curl -f http://x || exit 1"], "Interval": 5_000_000_000i64, "Retries": 3})
        );
        let v =
            ok(&["HEALTHCHECK --timeout=1m30s --start-period=1.5s CMD [\"/bin/check\", \"-q\"]"]);
        assert_eq!(
            v["Healthcheck"],
            json!({"Test": ["CMD", "/bin/check", "-q"], "Timeout": 90_000_000_000i64, "StartPeriod": 1_500_000_000i64})
        );
        assert_eq!(
            ok(&["HEALTHCHECK NONE"])["Healthcheck"],
            json!({"Test": ["NONE"]})
        );
        assert_eq!(
            fail(&["HEALTHCHECK NONE x"]),
            "HEALTHCHECK NONE takes no arguments"
        );
        assert_eq!(
            fail(&["HEALTHCHECK"]),
            "HEALTHCHECK requires at least one argument"
        );
        assert_eq!(
            fail(&["HEALTHCHECK FOO x"]),
            "Unknown type \"FOO\" in HEALTHCHECK (try CMD)"
        );
        assert_eq!(
            fail(&["HEALTHCHECK CMD"]),
            "Missing command after HEALTHCHECK CMD"
        );
        assert_eq!(
            fail(&["HEALTHCHECK --interval=1us CMD x"]),
            "Interval \"interval\" cannot be less than 1ms"
        );
        assert_eq!(
            fail(&["HEALTHCHECK --interval=5 CMD x"]),
            "time: missing unit in duration \"5\""
        );
        assert_eq!(
            fail(&["HEALTHCHECK --interval=5x CMD x"]),
            "time: unknown unit \"x\" in duration \"5x\""
        );
        assert_eq!(
            fail(&["HEALTHCHECK --retries=-1 CMD x"]),
            "--retries cannot be negative (-1)"
        );
        assert_eq!(
            fail(&["HEALTHCHECK --retries=a CMD x"]),
            "strconv.ParseInt: parsing \"a\": invalid syntax"
        );
        assert_eq!(
            fail(&["HEALTHCHECK --interval CMD x"]),
            "missing a value on flag: --interval"
        );
        assert_eq!(
            fail(&["HEALTHCHECK --bogus=1 CMD x"]),
            "unknown flag: --bogus"
        );
        assert_eq!(
            fail(&["HEALTHCHECK --retries=1 --retries=2 CMD x"]),
            "duplicate flag specified: --retries"
        );
    }

    #[test]
    fn validation_and_parsing() {
        assert_eq!(fail(&["RUN x"]), "run is not a valid change command");
        assert_eq!(
            fail(&["from busybox"]),
            "from is not a valid change command"
        );
        assert_eq!(fail(&["BOGUS x"]), "bogus is not a valid change command");
        // Parse errors come before the allowed-list check, as upstream.
        assert_eq!(fail(&["RUN x", "ENV K"]), "ENV must have two arguments");
        assert_eq!(fail(&[""]), "file with no instructions");
        assert_eq!(fail(&["# just a comment"]), "file with no instructions");
        let mut empty = Map::new();
        assert!(apply_changes(&mut empty, &[]).is_ok());
        // Nothing is applied when a later change fails.
        let mut cfg = json!({"User": "a"}).as_object().cloned().unwrap();
        let r = apply_changes(&mut cfg, &["USER b".into(), "RUN x".into()]);
        assert!(r.is_err());
        assert_eq!(cfg["User"], "a");
        // Continuations, comments and the escape directive.
        assert_eq!(
            ok(&["ENV A=1 \\", "# c", "  B=2"])["Env"],
            json!(["A=1", "B=2"])
        );
        assert_eq!(
            ok(&["# escape=`", "ENV A=x` y `", "B=2"])["Env"],
            json!(["A=x y", "B=2"])
        );
        assert_eq!(ok(&["  user  root  "])["User"], "root");
    }

    #[test]
    fn go_helpers() {
        assert_eq!(clean_path("/a/../../b/./c/"), "/b/c");
        assert_eq!(clean_path("a/../.."), "..");
        assert_eq!(
            crate::util::time::parse_go_duration("1h2m3.5s"),
            Ok(3_723_500_000_000)
        );
        assert_eq!(
            crate::util::time::parse_go_duration("-1.5ms"),
            Ok(-1_500_000)
        );
        assert_eq!(crate::util::time::parse_go_duration("0"), Ok(0));
        assert_eq!(crate::util::time::parse_go_duration("300µs"), Ok(300_000));
        assert!(crate::util::time::parse_go_duration("").is_err());
        assert!(crate::util::time::parse_go_duration(".s").is_err());
        assert!(crate::util::time::parse_go_duration("9999999999h").is_err());
        assert_eq!(reverse_pattern("a\\*b"), "b\\*a");
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        let odd = [
            "",
            "\\",
            "`",
            "$",
            "${",
            "${:",
            "${X/",
            "${X//",
            "${X#\\",
            "${X%\\",
            "'",
            "\"",
            "\"\\",
            "é",
            "ENV é=é",
            "ENV \\",
            "ENV A=\\",
            "CMD [",
            "EXPOSE :::",
            "EXPOSE [::1]:80:80",
            "EXPOSE [:80:80",
            "EXPOSE 1-",
            "EXPOSE -",
            "HEALTHCHECK --",
            "HEALTHCHECK -- CMD x",
            "HEALTHCHECK --interval=.5s CMD x",
            "HEALTHCHECK --interval=-1s CMD x",
            "WORKDIR ..",
            "ONBUILD \\",
            "LABEL \"",
            "ENV A=${B:-${C}}",
            "ENV A=${B/\\}/x}",
            "VOLUME [\"\\ud800\"]",
            "# escape=x",
            "# escape=`\n# escape=`",
            "ENV A=${X//*/}",
            "\u{FEFF}USER x",
            "STOPSIGNAL SIGRTMIN+99",
            "ENV A=$é${é}",
            "ENV A=\"\\",
            "USER ${X/é/}",
            "EXPOSE 80-90-100",
        ];
        let mut cfg = json!({"Env": ["X=abc\ndef", "é=1"], "WorkingDir": "rel"})
            .as_object()
            .cloned()
            .unwrap();
        for s in odd {
            let _ = apply_changes(&mut cfg, &[s.to_string()]);
            let _ = apply_changes(&mut cfg, &[format!("ENV A={s}")]);
            let _ = apply_changes(&mut cfg, &[format!("EXPOSE {s}")]);
            let _ = apply_changes(&mut cfg, &[format!("HEALTHCHECK --interval={s} CMD x")]);
        }
    }

    use crate::util::fuzz_strings;

    #[test]
    fn fuzz_no_panic() {
        let alpha = [
            "ENV ",
            "LABEL ",
            "EXPOSE ",
            "CMD ",
            "ENTRYPOINT ",
            "HEALTHCHECK ",
            "ONBUILD ",
            "VOLUME ",
            "WORKDIR ",
            "USER ",
            "STOPSIGNAL ",
            "a",
            "=",
            "$",
            "{",
            "}",
            ":",
            "-",
            "+",
            "?",
            "#",
            "%",
            "/",
            "*",
            "\\",
            "'",
            "\"",
            " ",
            "\n",
            "[",
            "]",
            ",",
            "`",
            "é",
            "--interval=",
            "1",
            "s",
            "CMD",
            "\t",
        ];
        let mut cfg = serde_json::json!({"Env": ["a=1", "X=é"]})
            .as_object()
            .cloned()
            .unwrap();
        for s in fuzz_strings(&alpha, 4000) {
            let _ = apply_changes(&mut cfg, &[s]);
        }
    }
}
