//! `--change` instructions for `docker import` / `docker commit` (`changes=` query values).
//!
//! Mirrors moby `dockerfile.BuildFromConfig`: the changes are joined with `\n` and parsed as a
//! Dockerfile (buildkit parser: continuations, comments, `# escape=`, JSON/shell forms,
//! builder flags), only CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL,
//! USER, VOLUME and WORKDIR are allowed, and each is applied in turn with Dockerfile variable
//! substitution from the config's current `Env`. Error texts are Docker's.

use crate::util::go_quote;
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
        dispatch(&mut work, c, escape, &mut cmd_set)?;
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

// ---- parser (buildkit frontend/dockerfile/parser) -------------------------------------------

struct Node {
    cmd: String,
    original: String,
    flags: Vec<String>,
    args: Vec<String>,
    json: bool,
}

struct Directives {
    escape: char,
    done: bool,
    seen: Vec<String>,
}

impl Directives {
    /// `DirectiveParser.ParseLine` + `setEscapeToken`: `# name = value` lines at the very top.
    fn parse_line(&mut self, line: &str) -> Res<bool> {
        if self.done {
            return Ok(false);
        }
        let Some((k, v)) = parse_directive(line) else {
            self.done = true;
            return Ok(false);
        };
        let k = k.to_lowercase();
        if !matches!(k.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(false);
        }
        if self.seen.contains(&k) {
            return err(format!("only one {k} parser directive can be used"));
        }
        self.seen.push(k.clone());
        if k == "escape" {
            match v {
                "`" => self.escape = '`',
                "\\" => self.escape = '\\',
                _ => return err(format!("invalid escape token '{v}' does not match ` or \\")),
            }
        }
        Ok(true)
    }
}

/// `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`
fn parse_directive(line: &str) -> Option<(&str, &str)> {
    let is_s = |c: char| matches!(c, ' ' | '\t' | '\n' | '\u{c}' | '\r');
    let rest = line.strip_prefix('#')?.trim_start_matches(is_s);
    let name_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let (name, rest) = rest.split_at(name_len);
    let value = rest
        .trim_start_matches(is_s)
        .strip_prefix('=')?
        .trim_matches(is_s);
    (!value.is_empty()).then_some((name, value))
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// `processLine`: drop the newline, maybe leading space, look for a directive, blank comments.
fn process_line(d: &mut Directives, raw: &str, strip_left: bool) -> Res<String> {
    let mut token = raw.trim_end_matches(['\r', '\n']);
    if strip_left {
        token = token.trim_start();
    }
    d.parse_line(token)?;
    Ok(if is_comment(token) {
        String::new()
    } else {
        token.to_string()
    })
}

/// `trimContinuationCharacter`: a trailing unescaped escape token (plus spaces/tabs) continues.
fn trim_continuation(line: &str, escape: char) -> (String, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    if let Some(before) = body.strip_suffix(escape)
        && !before.ends_with(escape)
    {
        return (before.to_string(), false);
    }
    (line.to_string(), true)
}

/// `parser.Parse` without heredocs; returns the instruction nodes and the escape token.
fn parse_dockerfile(text: &str) -> Res<(Vec<Node>, char)> {
    let mut d = Directives {
        escape: '\\',
        done: false,
        seen: Vec::new(),
    };
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');
    let mut nodes = Vec::new();
    while let Some(raw) = lines.next() {
        let first = process_line(&mut d, raw, true)?;
        let (first, mut end) = trim_continuation(&first, d.escape);
        if end && first.is_empty() {
            continue;
        }
        let mut buf = first;
        while !end {
            let Some(raw) = lines.next() else { break };
            let l = process_line(&mut d, raw, false)?;
            if is_comment(raw) || l.trim_start().is_empty() {
                continue;
            }
            let (l, e) = trim_continuation(&l, d.escape);
            end = e;
            buf.push_str(&l);
        }
        nodes.push(node_from_line(&buf, d.escape)?);
    }
    if nodes.is_empty() {
        return Err(ChangeError::NoInstructions);
    }
    Ok((nodes, d.escape))
}

/// `newNodeFromLine`: split off the instruction and builder flags, parse the arguments.
fn node_from_line(line: &str, escape: char) -> Res<Node> {
    let trimmed = line.trim();
    let parts = split_ws(trimmed, 2);
    let cmd = parts[0].to_string();
    let (args, flags) = match parts.get(1) {
        Some(rest) => {
            let (a, f) = extract_builder_flags(rest, escape);
            (a.trim().to_string(), f)
        }
        None => (String::new(), Vec::new()),
    };
    let (args, json) = match cmd.to_lowercase().as_str() {
        "cmd" | "entrypoint" | "run" | "shell" => parse_maybe_json(&args)?,
        "add" | "copy" | "volume" => parse_maybe_json_to_list(&args)?,
        "env" => (parse_name_val(&args, "ENV", escape)?, false),
        "label" => (parse_name_val(&args, "LABEL", escape)?, false),
        "arg" => (parse_words(&args, escape), false),
        "expose" | "from" => (ws_delimited(&args), false),
        "healthcheck" => parse_health_config(&args)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => (
            if args.is_empty() {
                vec![]
            } else {
                vec![args.clone()]
            },
            false,
        ),
        "onbuild" => {
            if args.is_empty() {
                (vec![], false)
            } else {
                let child = node_from_line(&args, escape)?;
                let mut a = vec![child.cmd];
                a.extend(child.args);
                (a, false)
            }
        }
        _ => (vec![], false),
    };
    Ok(Node {
        cmd,
        original: line.to_string(),
        flags,
        args,
        json,
    })
}

/// `extractBuilderFlags`: leading `--name=value` words; returns the rest and the flags.
fn extract_builder_flags(line: &str, escape: char) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= chars.len() {
        let at_end = pos == chars.len();
        let ch = if at_end { '\0' } else { chars[pos].1 };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            if ch != '-' || chars.get(pos + 1).map(|c| c.1) != Some('-') {
                return (line[chars[pos].0..].to_string(), words);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (line[chars[pos].0..].to_string(), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            let mut c = ch;
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                c = chars[pos].1;
            }
            word.push(c);
            pos += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        let mut c = ch;
        if ch == escape {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            c = chars[pos].1;
        }
        word.push(c);
        pos += 1;
    }
    (String::new(), words)
}

/// `parseWords`: whitespace-separated words, keeping quotes and escapes for later expansion.
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut word = String::new();
    let mut pos = 0;
    while pos <= chars.len() {
        let at_end = pos == chars.len();
        let mut ch = if at_end { '\0' } else { chars[pos] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                word.push(ch);
                pos += 1;
                ch = chars[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // In quotes: the escape token protects the next character except in single quotes.
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            word.push(ch);
            ch = chars[pos];
        }
        word.push(ch);
        pos += 1;
    }
    words
}

/// `parseNameVal` (ENV, LABEL): `k=v k2=v2` or legacy `k v…`; flattened as key, value, sep.
fn parse_name_val(rest: &str, key: &str, escape: char) -> Res<Vec<String>> {
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Ok(vec![]);
    }
    if !words[0].contains('=') {
        let parts = split_ws(rest, 2);
        if parts.len() < 2 {
            return err(format!("{key} must have two arguments"));
        }
        return Ok(vec![
            parts[0].to_string(),
            parts[1].to_string(),
            String::new(),
        ]);
    }
    let mut out = Vec::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return err(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                go_quote(&w)
            ));
        };
        out.extend([k.to_string(), v.to_string(), "=".to_string()]);
    }
    Ok(out)
}

fn ws_delimited(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return vec![];
    }
    split_ws(rest, 0).into_iter().map(str::to_string).collect()
}

enum JsonParse {
    Array(Vec<String>),
    NotStrings,
    NotJson,
}

fn parse_json(rest: &str) -> JsonParse {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return JsonParse::NotJson;
    }
    match serde_json::from_str::<Vec<Value>>(rest) {
        Err(_) => JsonParse::NotJson,
        Ok(items) => {
            let strings: Option<Vec<String>> = items
                .into_iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect();
            strings.map_or(JsonParse::NotStrings, JsonParse::Array)
        }
    }
}

const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

fn parse_maybe_json(rest: &str) -> Res<(Vec<String>, bool)> {
    if rest.is_empty() {
        return Ok((vec![], false));
    }
    match parse_json(rest) {
        JsonParse::Array(a) => Ok((a, true)),
        JsonParse::NotStrings => err(NOT_STRING_ARRAY),
        JsonParse::NotJson => Ok((vec![rest.to_string()], false)),
    }
}

fn parse_maybe_json_to_list(rest: &str) -> Res<(Vec<String>, bool)> {
    match parse_json(rest) {
        JsonParse::Array(a) => Ok((a, true)),
        JsonParse::NotStrings => err(NOT_STRING_ARRAY),
        JsonParse::NotJson => Ok((ws_delimited(rest), false)),
    }
}

/// `parseHealthConfig`: type word, then a command in JSON or shell form.
fn parse_health_config(rest: &str) -> Res<(Vec<String>, bool)> {
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if sep == 0 {
        return Ok((vec![], false));
    }
    let typ = &rest[..sep];
    let cmd = rest[sep..].trim_start();
    let (mut args, json) = parse_maybe_json(cmd)?;
    args.insert(0, typ.to_string());
    Ok((args, json))
}

// ---- instructions (buildkit frontend/dockerfile/instructions) ------------------------------

struct Kv {
    key: String,
    value: String,
}

struct Health {
    test: Vec<String>,
    interval: i64,
    timeout: i64,
    start_period: i64,
    start_interval: i64,
    retries: i64,
}

enum Command {
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
fn parse_flags(flags: &[String], defined: &[&str]) -> Res<Vec<(String, String)>> {
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

fn parse_kvps(args: &[String], cmd: &str) -> Res<Vec<Kv>> {
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
fn handle_json_args(args: &[String], json: bool) -> Vec<String> {
    if args.is_empty() || json {
        return args.to_vec();
    }
    vec![args.join(" ")]
}

fn exactly_one(n: &Node, name: &str) -> Res<String> {
    if n.args.len() != 1 {
        return err(format!("{name} requires exactly one argument"));
    }
    Ok(n.args[0].clone())
}

fn parse_instruction(n: &Node) -> Res<Command> {
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
fn strip_onbuild(original: &str) -> String {
    let is_s = |c: char| matches!(c, ' ' | '\t' | '\n' | '\u{c}' | '\r');
    let s = original.trim_start_matches(is_s);
    match s.get(..7) {
        Some(kw) if kw.eq_ignore_ascii_case("onbuild") => {
            s[7..].trim_start_matches(is_s).to_string()
        }
        _ => original.to_string(),
    }
}

fn parse_healthcheck(n: &Node) -> Res<Health> {
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
fn parse_go_int(s: &str, min: i64, max: i64) -> Result<i64, &'static str> {
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
fn opt_interval(name: &str, v: &str) -> Res<i64> {
    if v.is_empty() {
        return Ok(0);
    }
    let d = parse_go_duration(v).map_err(ChangeError::Invalid)?;
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

/// Go `time.ParseDuration` (nanoseconds).
fn parse_go_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(orig));
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next().filter(|c| *c == '-' || *c == '+') {
        neg = c == '-';
        s = &s[1..];
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut v: u64 = 0;
        for &c in &b[..int_len] {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(c - b'0')))
                .filter(|v| *v <= 1 << 63)
                .ok_or_else(invalid)?;
        }
        let pre = int_len > 0;
        s = &s[int_len..];
        let (mut frac, mut scale, mut post) = (0u64, 1f64, false);
        if let Some(r) = s.strip_prefix('.') {
            let fb = r.as_bytes();
            let flen = fb.iter().take_while(|c| c.is_ascii_digit()).count();
            let mut overflow = false;
            for &c in &fb[..flen] {
                if overflow {
                    continue;
                }
                match frac
                    .checked_mul(10)
                    .and_then(|f| f.checked_add(u64::from(c - b'0')))
                {
                    Some(f) if f <= 1 << 63 => {
                        frac = f;
                        scale *= 10.0;
                    }
                    _ => overflow = true,
                }
            }
            post = flen > 0;
            s = &r[flen..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {}", go_quote(orig)));
        }
        let u = &s[..unit_len];
        let unit: u64 = match u {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(u),
                    go_quote(orig)
                ));
            }
        };
        s = &s[unit_len..];
        let mut part = v
            .checked_mul(unit)
            .filter(|p| *p <= 1 << 63)
            .ok_or_else(invalid)?;
        if frac > 0 {
            part = part
                .checked_add((frac as f64 * (unit as f64 / scale)) as u64)
                .filter(|p| *p <= 1 << 63)
                .ok_or_else(invalid)?;
        }
        total = total
            .checked_add(part)
            .filter(|t| *t <= 1 << 63)
            .ok_or_else(invalid)?;
    }
    if neg {
        return Ok((total as i128).wrapping_neg() as i64);
    }
    if total > i64::MAX as u64 {
        return Err(invalid());
    }
    Ok(total as i64)
}

// ---- dispatch (moby builder/dockerfile/dispatchers.go) --------------------------------------

fn env_map(config: &Map<String, Value>) -> HashMap<String, String> {
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

fn dispatch(
    config: &mut Map<String, Value>,
    c: Command,
    escape: char,
    cmd_set: &mut bool,
) -> Res<()> {
    let env = env_map(config);
    let word = |w: &str| process_word(w, &env, escape).map_err(ChangeError::Invalid);
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
                ports.extend(process_words(p, &env, escape).map_err(ChangeError::Invalid)?);
            }
            let mut add = Vec::new();
            for p in &ports {
                for port in parse_port_spec(p).map_err(ChangeError::Invalid)? {
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

/// go-connections `nat.ParsePortSpec`, returning the exposed `port/proto` keys.
fn parse_port_spec(raw: &str) -> Result<Vec<String>, String> {
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
                return Err(format!(
                    "invalid IP address {ip}: address {ip}:: missing ']' in address"
                ));
            }
        }
    }
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    if container.is_empty() {
        return Err(format!("no port specified: {raw}<empty>"));
    }
    let (start, end) =
        parse_port_range(container).map_err(|_| format!("invalid containerPort: {container}"))?;
    let (mut hstart, mut hend) = (0, 0);
    if !host_port.is_empty() {
        (hstart, hend) =
            parse_port_range(host_port).map_err(|_| format!("invalid hostPort: {host_port}"))?;
    }
    if !host_port.is_empty() && end - start != hend.wrapping_sub(hstart) && end != start {
        return Err(format!(
            "invalid ranges specified for container and host Ports: {container} and {host_port}"
        ));
    }
    let proto = proto.to_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
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

// ---- shell word expansion (buildkit frontend/dockerfile/shell) -------------------------------

/// `Lex.ProcessWord`: quote removal, escapes and `$VAR` expansion into one string.
fn process_word(word: &str, env: &HashMap<String, String>, escape: char) -> Result<String, String> {
    Lexer::new(word, env, escape).run().map(|r| r.0)
}

/// `Lex.ProcessWords`: the same, split into words (EXPOSE).
fn process_words(
    word: &str,
    env: &HashMap<String, String>,
    escape: char,
) -> Result<Vec<String>, String> {
    Lexer::new(word, env, escape).run().map(|r| r.1)
}

#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }
    fn add_raw_char(&mut self, c: char) {
        self.buf.push(c);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(std::mem::take(&mut self.buf));
        }
        self.words
    }
}

struct Lexer<'a> {
    src: &'a str,
    chars: Vec<char>,
    pos: usize,
    env: &'a HashMap<String, String>,
    escape: char,
    raw_escapes: bool,
}

/// Go's `string(rune(-1))` when a scanner returns EOF where a character was expected.
const EOF_CHAR: char = '\u{FFFD}';

impl<'a> Lexer<'a> {
    fn new(src: &'a str, env: &'a HashMap<String, String>, escape: char) -> Self {
        Lexer {
            src,
            chars: src.chars().collect(),
            pos: 0,
            env,
            escape,
            raw_escapes: false,
        }
    }

    fn run(mut self) -> Result<(String, Vec<String>), String> {
        self.stop_on(None, false)
            .map_err(|e| format!("failed to process {}: {e}", go_quote(self.src)))
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn stop_on(&mut self, stop: Option<char>, raw: bool) -> Result<(String, Vec<String>), String> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw);
        let r = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        r
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let t = self.dollar()?;
                    result.push_str(&t);
                    words.add_string(&t);
                }
                '\'' | '"' | '<' => {
                    let t = match ch {
                        '\'' => self.single_quote()?,
                        '"' => self.double_quote()?,
                        _ => self.possible_heredoc(),
                    };
                    result.push_str(&t);
                    words.add_raw_string(&t);
                }
                _ => {
                    self.next();
                    if ch == self.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        let Some(c) = self.next() else { break };
                        words.add_raw_char(c);
                        result.push(c);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        if let Some(s) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {s}"
            ));
        }
        Ok((result, words.finish()))
    }

    fn single_quote(&mut self) -> Result<String, String> {
        self.next();
        let mut out = String::new();
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    );
                }
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, String> {
        self.next();
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    );
                }
                Some('"') => {
                    self.next();
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(_) => {
                    let mut ch = self.next().unwrap_or(EOF_CHAR);
                    if ch == self.escape {
                        if self.raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.escape => {
                                ch = c;
                                self.next();
                            }
                            _ => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    fn possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.next();
        let mut out = String::from("<<");
        while let Some(c) = self.peek().filter(|c| matches!(c, '\t' | '\r' | ' ')) {
            out.push(c);
            self.next();
        }
        out
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_go_digit(ch) {
                while let Some(d) = self.peek().filter(|c| is_go_digit(*c)) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !(ch.is_alphabetic() || is_go_digit(ch) || ch == '_') {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }

    fn get_env(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }

    fn dollar(&mut self) -> Result<String, String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(self.get_env(&name).unwrap_or_default());
        }
        self.next();
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            _ => {}
        }
        let name = self.name();
        let mut ch = self.next().unwrap_or(EOF_CHAR);
        let mut chs = ch.to_string();
        match ch {
            '}' => Ok(self.get_env(&name).unwrap_or_default()),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let null_is_unset = ch == ':';
                if null_is_unset {
                    ch = self.next().unwrap_or(EOF_CHAR);
                    chs.push(ch);
                }
                let raw = ch == '#' || ch == '%';
                if null_is_unset && raw {
                    return Err(format!("unsupported modifier ({chs}) in substitution"));
                }
                let word = match self.stop_on(Some('}'), raw) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        return Err(if self.peek().is_none() {
                            "syntax error: missing '}'".into()
                        } else {
                            e
                        });
                    }
                };
                let value = self.get_env(&name);
                let unset =
                    |v: &Option<String>| v.is_none() || (null_is_unset && v.as_deref() == Some(""));
                match ch {
                    '-' => Ok(if unset(&value) {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if unset(&value) { String::new() } else { word }),
                    '?' => match value {
                        None => Err(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be unset"
                            } else {
                                &word
                            }
                        )),
                        Some(v) if null_is_unset && v.is_empty() => Err(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be empty"
                            } else {
                                &word
                            }
                        )),
                        Some(v) => Ok(v),
                    },
                    '%' | '#' => {
                        let (greedy, pat) = match word.strip_prefix(ch) {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, word),
                        };
                        let value = value.unwrap_or_default();
                        if ch == '%' {
                            trim_suffix(&pat, &value, greedy)
                        } else {
                            trim_prefix(&pat, &value, greedy)
                        }
                    }
                    _ => Err(format!("unsupported modifier ({chs}) in substitution")),
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                let pattern = match self.stop_on(Some('/'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        return Err(if self.peek().is_none() {
                            "syntax error: missing '/' in ${}".into()
                        } else {
                            e
                        });
                    }
                };
                let replacement = match self.stop_on(Some('}'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        return Err(if self.peek().is_none() {
                            "syntax error: missing '}'".into()
                        } else {
                            e
                        });
                    }
                };
                let value = self.get_env(&name).unwrap_or_default();
                let toks = glob_tokens(&pattern)
                    .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
                Ok(replace_glob(&toks, &value, &replacement, all))
            }
            _ => Err(format!("unsupported modifier ({chs}) in substitution")),
        }
    }
}

fn is_go_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

#[derive(Clone, Copy, PartialEq)]
enum Tok {
    Star,
    Any,
    Lit(char),
}

/// `convertShellPatternToRegex` as tokens: `*`, `?`, literals; `\` escapes only `*?\`.
fn glob_tokens(pattern: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::Any),
            '\\' => {
                if matches!(chars.get(i), Some('}' | '/')) {
                    continue;
                }
                let t = chars.get(i).copied().unwrap_or(EOF_CHAR);
                i += 1;
                if !matches!(t, '*' | '?' | '\\') {
                    return Err(format!("invalid escape '\\{t}'"));
                }
                toks.push(Tok::Lit(t));
            }
            c => toks.push(Tok::Lit(c)),
        }
    }
    Ok(toks)
}

/// End positions where `toks` can match `text[start..]` (`*`/`?` do not cross `\n`, like `.`).
fn glob_ends(toks: &[Tok], text: &[char], start: usize) -> Vec<usize> {
    let n = text.len();
    let mut cur = vec![false; n + 1];
    cur[start] = true;
    for t in toks {
        let mut next = vec![false; n + 1];
        for p in (0..=n).filter(|&p| cur[p]) {
            match t {
                Tok::Lit(c) => {
                    if p < n && text[p] == *c {
                        next[p + 1] = true;
                    }
                }
                Tok::Any => {
                    if p < n && text[p] != '\n' {
                        next[p + 1] = true;
                    }
                }
                Tok::Star => {
                    let mut q = p;
                    loop {
                        next[q] = true;
                        if q == n || text[q] == '\n' {
                            break;
                        }
                        q += 1;
                    }
                }
            }
        }
        cur = next;
    }
    (0..=n).filter(|&p| cur[p]).collect()
}

fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let toks = glob_tokens(pattern)
        .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
    let text: Vec<char> = value.chars().collect();
    let ends = glob_ends(&toks, &text, 0);
    let end = if greedy { ends.last() } else { ends.first() };
    Ok(match end {
        Some(&e) => text[e..].iter().collect(),
        None => value.to_string(),
    })
}

/// `reversePattern`: reverse, keeping `\x` pairs in order.
fn reverse_pattern(p: &str) -> String {
    let r: Vec<char> = p.chars().collect();
    let last = r.len().saturating_sub(1);
    let mut out = vec!['\0'; r.len()];
    let mut i = 0;
    while i < r.len() {
        let oi = last - i;
        if r[i] == '\\' && i != last {
            out[oi - 1] = r[i];
            out[oi] = r[i + 1];
            i += 2;
        } else {
            out[oi] = r[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}

fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let rev: String = value.chars().rev().collect();
    let out = trim_prefix(&reverse_pattern(pattern), &rev, greedy).map_err(|_| {
        format!(
            "invalid pattern ({}) in substitution: invalid escape",
            reverse_pattern(pattern)
        )
    })?;
    Ok(out.chars().rev().collect())
}

/// `${X/pat/rep}` / `${X//pat/rep}`: leftmost-longest matches, Go `ReplaceAllString` stepping.
fn replace_glob(toks: &[Tok], value: &str, rep: &str, all: bool) -> String {
    let text: Vec<char> = value.chars().collect();
    let find = |from: usize| {
        (from..=text.len()).find_map(|s| glob_ends(toks, &text, s).last().map(|&e| (s, e)))
    };
    if !all {
        return match find(0) {
            Some((s, e)) => text[..s]
                .iter()
                .chain(rep.chars().collect::<Vec<_>>().iter())
                .chain(text[e..].iter())
                .collect(),
            None => value.to_string(),
        };
    }
    let mut out = String::new();
    let (mut search, mut last_end) = (0, 0);
    while search <= text.len() {
        let Some((s, e)) = find(search) else { break };
        out.extend(&text[last_end..s]);
        if e > last_end || s == 0 {
            out.push_str(rep);
        }
        last_end = e;
        search = if search + 1 > e { search + 1 } else { e };
    }
    if last_end <= text.len() {
        out.extend(&text[last_end..]);
    }
    out
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
        let w = |s: &str| process_word(s, &env, '\\');
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
        assert_eq!(parse_go_duration("1h2m3.5s"), Ok(3_723_500_000_000));
        assert_eq!(parse_go_duration("-1.5ms"), Ok(-1_500_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("300µs"), Ok(300_000));
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration(".s").is_err());
        assert!(parse_go_duration("9999999999h").is_err());
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
