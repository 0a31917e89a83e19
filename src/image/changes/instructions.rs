//! Instructions as buildkit parses them (frontend/dockerfile/instructions), Go durations.

use super::*;

pub(crate) struct Kv {
    pub(crate) key: String,
    pub(crate) value: String,
}

pub(crate) struct Health {
    pub(crate) test: Vec<String>,
    pub(crate) interval: i64,
    pub(crate) timeout: i64,
    pub(crate) start_period: i64,
    pub(crate) start_interval: i64,
    pub(crate) retries: i64,
}

pub(crate) enum Command {
    Env(Vec<Kv>),
    Label(Vec<Kv>),
    Onbuild(String),
    Workdir(String),
    Cmd {
        line: Option<Vec<String>>,
        prepend_shell: bool,
    },
    Entrypoint {
        line: Option<Vec<String>>,
        prepend_shell: bool,
    },
    Healthcheck(Health),
    Expose(Vec<String>),
    User(String),
    Volume(Vec<String>),
    StopSignal(String),
}

/// `BFlags.Parse` for string flags named in `defined`; returns (name, value) pairs.
pub(crate) fn parse_flags(flags: &[String], defined: &[&str]) -> Res<Vec<(String, String)>> {
    let mut used: Vec<(String, String)> = Vec::new();
    for a in flags {
        if a == "--" {
            break;
        }
        if !a.starts_with("--") {
            return err(format!("arg should start with -- : {a}"));
        }
        let (flag_name, value) = match a.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (a.as_str(), None),
        };
        let name = &flag_name[2..];
        if !defined.contains(&name) {
            return err(format!("unknown flag: {flag_name}"));
        }
        if used.iter().any(|(n, _)| n == name) {
            return err(format!("duplicate flag specified: {flag_name}"));
        }
        let Some(value) = value else {
            return err(format!("missing a value on flag: {flag_name}"));
        };
        used.push((name.to_string(), value.to_string()));
    }
    Ok(used)
}

pub(crate) fn parse_kvps(args: &[String], cmd: &str) -> Res<Vec<Kv>> {
    if args.is_empty() {
        return err(format!("{cmd} requires at least one argument"));
    }
    if !args.len().is_multiple_of(3) {
        return err(format!("Bad input to {cmd}, too many arguments"));
    }
    args.chunks(3)
        .map(|c| {
            if c[0].is_empty() {
                return err(format!("{cmd} names can not be blank"));
            }
            Ok(Kv {
                key: c[0].clone(),
                value: c[1].clone(),
            })
        })
        .collect()
}

/// `handleJSONArgs`: exec form as is, shell form joined into one string.
pub(crate) fn handle_json_args(args: &[String], json: bool) -> Vec<String> {
    if args.is_empty() || json {
        return args.to_vec();
    }
    vec![args.join(" ")]
}

pub(crate) fn exactly_one(n: &Node, name: &str) -> Res<String> {
    if n.args.len() != 1 {
        return err(format!("{name} requires exactly one argument"));
    }
    Ok(n.args[0].clone())
}

pub(crate) fn parse_instruction(n: &Node) -> Res<Command> {
    let no_flags = || parse_flags(&n.flags, &[]).map(|_| ());
    Ok(match n.cmd.to_lowercase().as_str() {
        "env" => {
            no_flags()?;
            Command::Env(parse_kvps(&n.args, "ENV")?)
        }
        "label" => {
            no_flags()?;
            Command::Label(parse_kvps(&n.args, "LABEL")?)
        }
        "onbuild" => {
            if n.args.is_empty() {
                return err("ONBUILD requires at least one argument");
            }
            no_flags()?;
            let trigger = n.args[0].trim().to_uppercase();
            match trigger.as_str() {
                "ONBUILD" => return err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
                "MAINTAINER" | "FROM" => {
                    return err(format!("{trigger} isn't allowed as an ONBUILD trigger"));
                }
                _ => {}
            }
            Command::Onbuild(strip_onbuild(&n.original))
        }
        "workdir" => {
            let p = exactly_one(n, "WORKDIR")?;
            no_flags()?;
            Command::Workdir(p)
        }
        "cmd" => {
            no_flags()?;
            Command::Cmd {
                line: Some(handle_json_args(&n.args, n.json)),
                prepend_shell: !n.json,
            }
        }
        "entrypoint" => {
            no_flags()?;
            let line = handle_json_args(&n.args, n.json);
            Command::Entrypoint {
                line: (!line.is_empty()).then_some(line),
                prepend_shell: !n.json,
            }
        }
        "healthcheck" => Command::Healthcheck(parse_healthcheck(n)?),
        "expose" => {
            if n.args.is_empty() {
                return err("EXPOSE requires at least one argument");
            }
            no_flags()?;
            let mut ports = n.args.clone();
            ports.sort();
            Command::Expose(ports)
        }
        "user" => {
            let u = exactly_one(n, "USER")?;
            no_flags()?;
            Command::User(u)
        }
        "volume" => {
            if n.args.is_empty() {
                return err("VOLUME requires at least one argument");
            }
            no_flags()?;
            let mut vols = Vec::new();
            for v in &n.args {
                let v = v.trim();
                if v.is_empty() {
                    return err("VOLUME specified can not be an empty string");
                }
                vols.push(v.to_string());
            }
            Command::Volume(vols)
        }
        "stopsignal" => Command::StopSignal(exactly_one(n, "STOPSIGNAL")?),
        // Unreachable: filtered by VALID_COMMANDS.
        _ => return Err(ChangeError::NotAllowed(n.cmd.clone())),
    })
}

/// `(?i)^\s*ONBUILD\s*` removed from the original line.
pub(crate) fn strip_onbuild(original: &str) -> String {
    let is_s = |c: char| matches!(c, ' ' | '\t' | '\n' | '\u{c}' | '\r');
    let s = original.trim_start_matches(is_s);
    match s.get(..7) {
        Some(kw) if kw.eq_ignore_ascii_case("onbuild") => {
            s[7..].trim_start_matches(is_s).to_string()
        }
        _ => original.to_string(),
    }
}

pub(crate) fn parse_healthcheck(n: &Node) -> Res<Health> {
    if n.args.is_empty() {
        return err("HEALTHCHECK requires at least one argument");
    }
    let typ = n.args[0].to_uppercase();
    let args = &n.args[1..];
    let mut h = Health {
        test: vec![],
        interval: 0,
        timeout: 0,
        start_period: 0,
        start_interval: 0,
        retries: 0,
    };
    if typ == "NONE" {
        if !args.is_empty() {
            return err("HEALTHCHECK NONE takes no arguments");
        }
        h.test = vec![typ];
        return Ok(h);
    }
    let flags = parse_flags(
        &n.flags,
        &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
    )?;
    let flag = |name: &str| {
        flags
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    };
    if typ != "CMD" {
        return err(format!(
            "Unknown type {} in HEALTHCHECK (try CMD)",
            go_quote(&typ)
        ));
    }
    let cmd = handle_json_args(args, n.json);
    if cmd.is_empty() {
        return err("Missing command after HEALTHCHECK CMD");
    }
    h.test
        .push(if n.json { typ } else { "CMD-SHELL".to_string() });
    h.test.extend(cmd);
    h.interval = opt_interval("interval", flag("interval"))?;
    h.timeout = opt_interval("timeout", flag("timeout"))?;
    h.start_period = opt_interval("start-period", flag("start-period"))?;
    h.start_interval = opt_interval("start-interval", flag("start-interval"))?;
    let retries = flag("retries");
    if !retries.is_empty() {
        let r = parse_go_int(retries, i32::MIN as i64, i32::MAX as i64).map_err(|why| {
            ChangeError::Invalid(format!(
                "strconv.ParseInt: parsing {}: {why}",
                go_quote(retries)
            ))
        })?;
        if r < 0 {
            return err(format!("--retries cannot be negative ({r})"));
        }
        h.retries = r;
    }
    Ok(h)
}

/// Go `strconv.ParseInt(s, 10, bits)` within [min, max]; the error is Go's reason text.
pub(crate) fn parse_go_int(s: &str, min: i64, max: i64) -> Result<i64, &'static str> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("invalid syntax");
    }
    match s.parse::<i64>() {
        Ok(v) if v >= min && v <= max => Ok(v),
        _ => Err("value out of range"),
    }
}

/// `parseOptInterval`: empty ⇒ 0; a Go duration of at least 1ms (0 allowed).
pub(crate) fn opt_interval(name: &str, v: &str) -> Res<i64> {
    if v.is_empty() {
        return Ok(0);
    }
    let d =
        crate::util::time::parse_go_duration(v).map_err(|e| ChangeError::Invalid(e.to_string()))?;
    if d == 0 {
        return Ok(0);
    }
    if d < 1_000_000 {
        return err(format!(
            "Interval {} cannot be less than 1ms",
            go_quote(name)
        ));
    }
    Ok(d)
}
