//! The stages and instructions of a build, dispatched as moby's `dispatchers.go` does.

use std::collections::{BTreeSet, HashMap};
use std::os::fd::{AsFd, OwnedFd};

use serde_json::{Map, Value, json};

use crate::engine::images::child::{Child, register_child};
use crate::engine::images::upper_layer::stage_upper;
use crate::engine::{Engine, EngineError, Result, Scratch};
use crate::fstree::resolve;
use crate::image::changes::instructions::{Command, parse_instruction};
use crate::image::changes::parser::{Node, heredoc_markers, parse_dockerfile};
use crate::image::changes::shell::process_word;
use crate::image::changes::{dispatch, env_map};
use crate::image::config::ImageConfig;
use crate::image::reference;
use crate::util::{go_quote, short_id};

use super::args::BuildArgs;
use super::copy::{self, CopyOptions};
use super::download;
use super::workspace::Workspace;
use super::{BuildError, Output, Prepared, cache, run};

const BUILDKIT_ONLY: &str = "option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled";
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Read the Dockerfile from the context (inside its root).
pub fn read_dockerfile(root: &OwnedFd, name: &str) -> Result<String> {
    let missing = || EngineError::internal(format!("Cannot locate specified Dockerfile: {name}"));
    // Only a regular file is read (a FIFO named Dockerfile must not hang the build).
    let open = |n: &str| resolve::open_file(root.as_fd(), n).ok().flatten();
    let (fd, _) = match open(name) {
        Some(f) => f,
        None if name == "Dockerfile" => open("dockerfile").ok_or_else(missing)?,
        None => return Err(missing()),
    };
    let mut text = String::new();
    use std::io::Read;
    std::fs::File::from(fd)
        .take(64 << 20)
        .read_to_string(&mut text)
        .map_err(|e| EngineError::invalid(format!("failed to read {name}: {e}")))?;
    if text.is_empty() {
        return Err(EngineError::invalid(format!(
            "the Dockerfile ({name}) cannot be empty"
        )));
    }
    Ok(text)
}

const KNOWN: &[&str] = &[
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// Parse-time checks (moby's `instructions.Parse`): unknown instructions, nothing before FROM.
pub fn check_instructions(nodes: &[Node]) -> Result<()> {
    let mut seen_from = false;
    for n in nodes {
        let c = n.cmd.to_lowercase();
        if !KNOWN.contains(&c.as_str()) {
            return Err(EngineError::invalid(format!(
                "dockerfile parse error on line {}: unknown instruction: {}",
                n.line, n.cmd
            )));
        }
        if c == "from" {
            seen_from = true;
        } else if !seen_from && c != "arg" {
            return Err(EngineError::invalid("no build stage in current context"));
        }
    }
    if !seen_from {
        return Err(EngineError::invalid(
            "No image was generated. Is your Dockerfile empty?",
        ));
    }
    Ok(())
}

fn stage_name(n: &Node) -> Option<String> {
    match n.args.as_slice() {
        [_, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => Some(name.to_lowercase()),
        _ => None,
    }
}

pub fn check_target(p: &Prepared) -> Result<()> {
    if p.req.target.is_empty() {
        return Ok(());
    }
    let t = p.req.target.to_lowercase();
    if p.nodes
        .iter()
        .any(|n| n.cmd.eq_ignore_ascii_case("from") && stage_name(n).as_deref() == Some(t.as_str()))
    {
        Ok(())
    } else {
        Err(EngineError::invalid(format!(
            "target stage \"{}\" could not be found",
            p.req.target
        )))
    }
}

/// One step: a Dockerfile line, or a `labels=` label.
enum Step<'a> {
    Node(&'a Node),
    Label(String, String),
}

struct Stage {
    name: Option<String>,
    image_id: String,
    image: Value,
    run_config: Map<String, Value>,
    cmd_set: bool,
    author: String,
    busted: bool,
}

pub struct Builder<'a> {
    engine: &'a Engine,
    p: &'a Prepared,
    args: BuildArgs,
    done: Vec<(Option<String>, String)>,
    total: usize,
    index: usize,
    scratch: Scratch,
    context: OwnedFd,
}

/// The strings of a JSON string list (anything else counts as empty).
fn str_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn shell_of(rc: &Map<String, Value>) -> Vec<String> {
    match str_list(rc.get("Shell")) {
        s if s.is_empty() => vec!["/bin/sh".into(), "-c".into()],
        s => s,
    }
}

fn go_list(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(" ")
    )
}

fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let s = nanos as f64 / 1e9;
    if nanos % 1_000_000_000 == 0 {
        let secs = nanos / 1_000_000_000;
        if secs >= 60 {
            let (m, s) = (secs / 60, secs % 60);
            return if m >= 60 {
                format!("{}h{}m{}s", m / 60, m % 60, s)
            } else {
                format!("{m}m{s}s")
            };
        }
        return format!("{secs}s");
    }
    format!("{s}s")
}

impl<'a> Builder<'a> {
    pub fn new(
        engine: &'a Engine,
        p: &'a Prepared,
    ) -> std::result::Result<Builder<'a>, BuildError> {
        let context =
            resolve::open_root(&p.context.dir.join("context")).map_err(BuildError::internal)?;
        Ok(Builder {
            engine,
            p,
            args: BuildArgs::new(p.req.build_args.clone()),
            done: Vec::new(),
            total: 0,
            index: 0,
            scratch: engine.scratch("build-steps").map_err(BuildError::engine)?,
            context,
        })
    }

    fn step_line(&mut self, out: &mut Output, text: &str) {
        self.index += 1;
        out.stream(&format!(
            "Step {}/{} : {}",
            self.index,
            self.total,
            text.trim()
        ));
        out.stream("\n");
    }

    pub fn build(mut self, out: &mut Output) -> std::result::Result<String, BuildError> {
        // Meta args, then stages (cut at the target), then the labels of the request.
        let nodes = &self.p.nodes;
        let first_from = nodes
            .iter()
            .position(|n| n.cmd.eq_ignore_ascii_case("from"))
            .unwrap_or(nodes.len());
        let mut stages: Vec<(&Node, Vec<Step>)> = Vec::new();
        for n in &nodes[first_from..] {
            if n.cmd.eq_ignore_ascii_case("from") {
                stages.push((n, Vec::new()));
            } else if let Some(last) = stages.last_mut() {
                last.1.push(Step::Node(n));
            }
        }
        if !self.p.req.target.is_empty() {
            let t = self.p.req.target.to_lowercase();
            if let Some(i) = stages
                .iter()
                .position(|(f, _)| stage_name(f).as_deref() == Some(t.as_str()))
            {
                stages.truncate(i + 1);
            }
        }
        if let Some(last) = stages.last_mut() {
            for (k, v) in &self.p.req.labels {
                last.1.push(Step::Label(k.clone(), v.clone()));
            }
        }
        self.total = first_from + stages.len() + stages.iter().map(|s| s.1.len()).sum::<usize>();
        for n in &nodes[..first_from] {
            self.step_line(out, &n.original);
            self.arg(n, None, out)?;
        }
        let mut last_id = String::new();
        for (from, steps) in stages {
            self.check_cancel(out)?;
            self.step_line(out, &from.original);
            let mut st = self.from(from, out)?;
            out.stream(&format!(" ---> {}\n", short_id(&st.image_id)));
            for s in steps {
                self.check_cancel(out)?;
                match s {
                    Step::Node(n) => {
                        self.step_line(out, &n.original);
                        self.dispatch(&mut st, n, out)?;
                    }
                    Step::Label(k, v) => {
                        self.step_line(out, &format!("LABEL {k}={v}"));
                        let mut labels = match st.run_config.remove("Labels") {
                            Some(Value::Object(m)) => m,
                            _ => Map::new(),
                        };
                        labels.insert(k.clone(), json!(v));
                        st.run_config.insert("Labels".into(), Value::Object(labels));
                        self.metadata_commit(&mut st, &format!("LABEL {k}={v}"), out)?;
                    }
                }
                out.stream(&format!(" ---> {}\n", short_id(&st.image_id)));
            }
            if !st.image_id.is_empty() {
                out.message(json!({"aux": {"ID": st.image_id}}));
            }
            last_id = st.image_id.clone();
            self.done.push((st.name.clone(), st.image_id.clone()));
        }
        let unused = self.args.unused();
        if !unused.is_empty() {
            out.stream(&format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                unused.join(" ")
            ));
        }
        if last_id.is_empty() {
            return Err(BuildError::step(
                "No image was generated. Is your Dockerfile empty?",
            ));
        }
        out.stream(&format!("Successfully built {}\n", short_id(&last_id)));
        for t in &self.p.req.tags {
            crate::engine::images::tag(self.engine, &last_id, &t.full(), "")
                .map_err(BuildError::engine)?;
            out.stream(&format!("Successfully tagged {}\n", t.familiar()));
        }
        Ok(last_id)
    }

    fn check_cancel(&self, out: &mut Output) -> std::result::Result<(), BuildError> {
        if out.is_gone() {
            return Err(BuildError::cancelled());
        }
        Ok(())
    }

    fn env(&self, st: &Stage) -> HashMap<String, String> {
        let mut env = self.args.expansion_env();
        env.extend(env_map(&st.run_config));
        env
    }

    fn word(&self, st: &Stage, w: &str) -> std::result::Result<String, BuildError> {
        Ok(process_word(w, &self.env(st), self.p.escape)
            .map_err(crate::image::changes::ChangeError::Shell)?)
    }

    /// ARG (in a stage, or before FROM with `st` None).
    fn arg(
        &mut self,
        n: &Node,
        st: Option<&mut Stage>,
        out: &mut Output,
    ) -> std::result::Result<(), BuildError> {
        if n.args.is_empty() {
            return Err(BuildError::step("ARG requires at least one argument"));
        }
        let env = match &st {
            Some(s) => self.env(s),
            None => self.args.meta_env(),
        };
        let mut shown = Vec::new();
        for a in &n.args {
            let (k, v) = match a.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (a.clone(), None),
            };
            let k = process_word(&k, &env, self.p.escape)
                .map_err(crate::image::changes::ChangeError::Shell)?;
            let v = match v {
                Some(v) => Some(
                    process_word(&v, &env, self.p.escape)
                        .map_err(crate::image::changes::ChangeError::Shell)?,
                ),
                None => None,
            };
            shown.push(match &v {
                Some(v) => format!("{k}={v}"),
                None => k.clone(),
            });
            self.args.declare(&k, v, st.is_none());
        }
        if let Some(st) = st {
            self.metadata_commit(st, &format!("ARG {}", shown.join(" ")), out)?;
        }
        Ok(())
    }

    fn from(&mut self, n: &Node, out: &mut Output) -> std::result::Result<Stage, BuildError> {
        for f in &n.flags {
            let Some(p) = f.strip_prefix("--platform=") else {
                return Err(BuildError::step(format!(
                    "unknown flag: {}",
                    f.split('=').next().unwrap_or(f)
                )));
            };
            let p = process_word(p, &self.args.meta_env(), self.p.escape)
                .map_err(crate::image::changes::ChangeError::Shell)?;
            let want = format!("linux/{}", crate::engine::images::import::arch());
            if !p.is_empty() && p.to_lowercase() != want {
                return Err(BuildError::step(format!(
                    "berth's builder cannot build for platform {p} (only {want})"
                )));
            }
        }
        let raw = n.args.first().cloned().unwrap_or_default();
        let name = process_word(&raw, &self.args.meta_env(), self.p.escape)
            .map_err(crate::image::changes::ChangeError::Shell)?;
        if name.trim().is_empty() {
            return Err(BuildError::step(format!(
                "base name ({raw}) should not be blank"
            )));
        }
        self.args.reset();
        let stage = stage_name(n);
        if let Some(s) = &stage
            && self
                .done
                .iter()
                .any(|(d, _)| d.as_deref() == Some(s.as_str()))
        {
            return Err(BuildError::step(format!("{s} stage name already used")));
        }
        let image_id = if name.eq_ignore_ascii_case("scratch") {
            String::new()
        } else if let Some((_, id)) = self
            .done
            .iter()
            .find(|(d, _)| d.as_deref() == Some(name.to_lowercase().as_str()))
        {
            id.clone()
        } else {
            self.image_for(&name, out)?
        };
        let image = if image_id.is_empty() {
            json!({})
        } else {
            self.image_json(&image_id)?
        };
        let mut rc = match image.get("config") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        let has_path = rc.get("Env").and_then(Value::as_array).is_some_and(|e| {
            e.iter()
                .any(|v| v.as_str().is_some_and(|s| s.starts_with("PATH=")))
        });
        if !has_path {
            let mut env = rc
                .get("Env")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            env.push(json!(DEFAULT_PATH));
            rc.insert("Env".into(), Value::Array(env));
        }
        rc.insert("OpenStdin".into(), json!(false));
        rc.insert("StdinOnce".into(), json!(false));
        let triggers = str_list(rc.remove("OnBuild").as_ref());
        let mut st = Stage {
            name: stage,
            image_id,
            image,
            run_config: rc,
            cmd_set: false,
            author: String::new(),
            busted: false,
        };
        if !triggers.is_empty() {
            out.stream(&format!("# Executing {} build trigger", triggers.len()));
            if triggers.len() > 1 {
                out.stream("s");
            }
            out.stream("\n");
            for t in &triggers {
                let (nodes, _) = parse_dockerfile(t)?;
                if nodes.len() != 1 {
                    return Err(BuildError::step(
                        "onbuild trigger should be a single expression",
                    ));
                }
                self.dispatch(&mut st, &nodes[0], out)?;
            }
        }
        Ok(st)
    }

    fn image_json(&self, id: &str) -> std::result::Result<Value, BuildError> {
        let row = self
            .engine
            .store()
            .and_then(|mut s| {
                s.read(|tx| Ok::<_, EngineError>(crate::store::images::get_image(tx, id)?))
            })
            .map_err(BuildError::engine)?
            .ok_or_else(|| BuildError::internal(format!("image {id} vanished during the build")))?;
        Ok(ImageConfig::parse(&row.config)
            .map_err(BuildError::internal)?
            .0)
    }

    /// A base image: local, else (or with `pull`) pulled.
    fn image_for(&self, name: &str, out: &mut Output) -> std::result::Result<String, BuildError> {
        let local = self
            .engine
            .store()
            .and_then(|mut s| s.read(|tx| crate::engine::images::resolve(tx, name)));
        if let Ok(row) = &local
            && !self.p.req.pull
        {
            return Ok(row.id.clone());
        }
        let r = reference::parse_normalized(name).map_err(|e| BuildError::step(e.to_string()))?;
        let r = if r.digest().is_some() {
            r
        } else {
            r.with_default_tag()
        };
        match super::pull::pull(self.engine, &r, &self.p.req.registry_config, out) {
            Ok(id) => Ok(id),
            Err(e) if local.is_ok() && self.p.req.pull => {
                tracing::warn!(error = %e.message, "pull failed; using the local image");
                Ok(local.map(|r| r.id).unwrap_or_default())
            }
            Err(e) => Err(e),
        }
    }

    fn dispatch(
        &mut self,
        st: &mut Stage,
        n: &Node,
        out: &mut Output,
    ) -> std::result::Result<(), BuildError> {
        let c = n.cmd.to_lowercase();
        match c.as_str() {
            "run" => self.run(st, n, out),
            "copy" | "add" => self.copy(st, n, c == "add", out),
            "arg" => self.arg(n, Some(st), out),
            "maintainer" => {
                if n.args.len() != 1 {
                    return Err(BuildError::step("MAINTAINER requires exactly one argument"));
                }
                st.author = n.args[0].clone();
                self.metadata_commit(st, &format!("MAINTAINER {}", n.args[0]), out)
            }
            "shell" => {
                if !n.json {
                    return Err(BuildError::step(
                        "SHELL requires the arguments to be in JSON form",
                    ));
                }
                if n.args.is_empty() {
                    return Err(BuildError::step("SHELL requires at least one argument"));
                }
                st.run_config.insert("Shell".into(), json!(n.args));
                self.metadata_commit(st, &format!("SHELL [{}]", n.args.join(" ")), out)
            }
            "workdir" => {
                self.apply(st, parse_instruction(n)?)?;
                let wd = st
                    .run_config
                    .get("WorkingDir")
                    .and_then(Value::as_str)
                    .unwrap_or("/")
                    .to_string();
                self.workdir(st, &wd, out)
            }
            "from" => Err(BuildError::step("FROM isn't allowed as an ONBUILD trigger")),
            _ => {
                let cmd = parse_instruction(n)?;
                let env = self.args.expansion_env();
                let comment = self.comment_for(st, &cmd, &env)?;
                if let Command::Healthcheck(_) = &cmd
                    && let Some(Value::Object(old)) = st.run_config.get("Healthcheck")
                    && let Some(test) = old.get("Test").and_then(Value::as_array)
                    && test.first().and_then(Value::as_str) != Some("NONE")
                {
                    let words: Vec<&str> = test.iter().filter_map(Value::as_str).collect();
                    out.stream(&format!(
                        "Note: overriding previous HEALTHCHECK: [{}]\n",
                        words.join(" ")
                    ));
                }
                self.apply(st, cmd)?;
                let comment = match comment {
                    Some(c) => c,
                    None => self.comment_after(st, n),
                };
                self.metadata_commit(st, &comment, out)
            }
        }
    }

    /// Apply a config instruction with the stage's variables (ENV over build args).
    fn apply(&self, st: &mut Stage, cmd: Command) -> std::result::Result<(), BuildError> {
        let env = self.args.expansion_env();
        dispatch(
            &mut st.run_config,
            cmd,
            self.p.escape,
            &env,
            &mut st.cmd_set,
        )?;
        Ok(())
    }

    /// The history text of metadata instructions that is known before dispatch (ENV and
    /// LABEL show expanded pairs); `None` when it is read from the config afterwards.
    fn comment_for(
        &self,
        st: &Stage,
        cmd: &Command,
        env: &HashMap<String, String>,
    ) -> std::result::Result<Option<String>, BuildError> {
        let mut full = env.clone();
        full.extend(env_map(&st.run_config));
        let w = |s: &str| {
            process_word(s, &full, self.p.escape).map_err(crate::image::changes::ChangeError::Shell)
        };
        // ENV and LABEL show their pairs expanded, as moby's history does.
        let pairs = |kvs: &[crate::image::changes::instructions::Kv]| {
            kvs.iter()
                .map(|kv| Ok(format!("{}={}", w(&kv.key)?, w(&kv.value)?)))
                .collect::<std::result::Result<Vec<String>, crate::image::changes::ChangeError>>()
                .map(|p| p.join(" "))
        };
        Ok(match cmd {
            Command::Env(kvs) => Some(format!("ENV {}", pairs(kvs)?)),
            Command::Label(kvs) => Some(format!("LABEL {}", pairs(kvs)?)),
            Command::Onbuild(expr) => Some(format!("ONBUILD {expr}")),
            Command::StopSignal(s) => Some(format!("STOPSIGNAL {s}")),
            Command::User(u) => Some(format!("USER {}", w(u)?)),
            _ => None,
        })
    }

    fn comment_after(&self, st: &Stage, n: &Node) -> String {
        let rc = &st.run_config;
        let strs = |k: &str| str_list(rc.get(k));
        let keys = |k: &str| -> Vec<String> {
            rc.get(k)
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default()
        };
        match n.cmd.to_lowercase().as_str() {
            "cmd" => format!("CMD {}", go_list(&strs("Cmd"))),
            "entrypoint" => format!("ENTRYPOINT {}", go_list(&strs("Entrypoint"))),
            "expose" => format!("EXPOSE {}", keys("ExposedPorts").join(" ")),
            "volume" => format!("VOLUME [{}]", keys("Volumes").join(" ")),
            "healthcheck" => {
                let h = rc.get("Healthcheck").cloned().unwrap_or(Value::Null);
                let test = str_list(h.get("Test"));
                let d = |k: &str| go_duration(h.get(k).and_then(Value::as_i64).unwrap_or(0));
                format!(
                    "HEALTHCHECK &{{Test:[{}] Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
                    test.join(" "),
                    d("Interval"),
                    d("Timeout"),
                    d("StartPeriod"),
                    d("StartInterval"),
                    h.get("Retries").and_then(Value::as_i64).unwrap_or(0)
                )
            }
            _ => n.original.trim().to_string(),
        }
    }

    /// Probe the cache for `probe`; on a hit the stage moves to the cached image.
    fn probe(
        &self,
        st: &mut Stage,
        probe: &Map<String, Value>,
        out: &mut Output,
    ) -> std::result::Result<bool, BuildError> {
        if self.p.req.nocache || st.busted {
            return Ok(false);
        }
        match cache::lookup(
            self.engine,
            &st.image_id,
            &st.image,
            probe,
            &self.p.req.cache_from,
        )
        .map_err(BuildError::engine)?
        {
            Some(id) => {
                out.stream(" ---> Using cache\n");
                st.image = self.image_json(&id)?;
                st.image_id = id;
                Ok(true)
            }
            None => {
                st.busted = true;
                Ok(false)
            }
        }
    }

    fn with_cmd(&self, st: &Stage, cmd: Vec<String>) -> Map<String, Value> {
        let mut c = st.run_config.clone();
        c.insert("Cmd".into(), json!(cmd));
        c.insert("Image".into(), json!(st.image_id));
        c
    }

    fn metadata_commit(
        &self,
        st: &mut Stage,
        comment: &str,
        out: &mut Output,
    ) -> std::result::Result<(), BuildError> {
        let mut cmd = shell_of(&st.run_config);
        cmd.push("#(nop) ".into());
        cmd.push(comment.to_string());
        let probe = self.with_cmd(st, cmd);
        if self.probe(st, &probe, out)? {
            return Ok(());
        }
        self.commit(st, probe, None, "")
    }

    /// Record the step's image: the stage's config, `probe` as its container config.
    fn commit(
        &self,
        st: &mut Stage,
        probe: Map<String, Value>,
        layer: Option<crate::engine::images::layers::StagedLayer>,
        container: &str,
    ) -> std::result::Result<(), BuildError> {
        let base = ImageConfig(st.image.clone());
        let mut config = st.run_config.clone();
        config.insert("Image".into(), json!(st.image_id));
        let child = Child {
            parent_id: &st.image_id,
            config: Value::Object(config),
            created_by: str_list(probe.get("Cmd")).join(" "),
            container_config: Value::Object(probe),
            container,
            author: &st.author,
            comment: "",
        };
        let (reg, image) =
            register_child(self.engine, &base, child, layer).map_err(BuildError::engine)?;
        st.image_id = reg.id;
        st.image = image;
        Ok(())
    }

    fn workspace(
        &self,
        st: &Stage,
        what: &str,
    ) -> std::result::Result<(Workspace, std::path::PathBuf), BuildError> {
        let dir = self
            .scratch
            .dir
            .join(format!("{what}-{}", &crate::util::random_id()[..12]));
        let ws = Workspace::mount(self.engine, &dir, &st.image_id).map_err(BuildError::engine)?;
        Ok((ws, dir))
    }

    fn layer_of(
        &self,
        ws: &mut Workspace,
        dir: &std::path::Path,
    ) -> std::result::Result<Option<crate::engine::images::layers::StagedLayer>, BuildError> {
        ws.unmount();
        let upper = ws.upper.clone();
        stage_upper(
            self.engine,
            &self.scratch,
            &format!("layer-{}", &crate::util::random_id()[..12]),
            &upper,
        )
        .map_err(BuildError::engine)
        .inspect(|_| {
            let _ = std::fs::remove_dir_all(dir);
        })
    }

    fn workdir(
        &self,
        st: &mut Stage,
        wd: &str,
        out: &mut Output,
    ) -> std::result::Result<(), BuildError> {
        let mut cmd = shell_of(&st.run_config);
        cmd.push(format!("#(nop) WORKDIR {wd}"));
        let probe = self.with_cmd(st, cmd);
        if self.probe(st, &probe, out)? {
            return Ok(());
        }
        let (mut ws, dir) = self.workspace(st, "workdir")?;
        let root = resolve::open_root(&ws.merged).map_err(BuildError::internal)?;
        if let Ok(s) = resolve::stat(root.as_fd(), wd)
            && resolve::kind(&s) != libc::S_IFDIR
        {
            return Err(BuildError::step(format!(
                "Cannot mkdir: {wd} is not a directory"
            )));
        }
        resolve::mkdir_all(root.as_fd(), wd, 0o755, None).map_err(BuildError::internal)?;
        drop(root);
        let layer = self.layer_of(&mut ws, &dir)?;
        self.commit(st, probe, layer, "")
    }

    fn run(
        &mut self,
        st: &mut Stage,
        n: &Node,
        out: &mut Output,
    ) -> std::result::Result<(), BuildError> {
        if let Some(f) = n.flags.first() {
            let name = f.trim_start_matches('-').split('=').next().unwrap_or("");
            return Err(BuildError::step(format!("the --{name} {BUILDKIT_ONLY}")));
        }
        let shell = shell_of(&st.run_config);
        let mut binds = Vec::new();
        let mut probe_cmd: Option<Vec<String>> = None;
        let cmd: Vec<String> = if n.json {
            n.args.clone()
        } else {
            let line = n.args.join(" ");
            let mut cmd = shell.clone();
            if n.heredocs.is_empty() {
                cmd.push(line);
            } else {
                let markers = heredoc_markers(&line);
                let only = markers.len() == 1
                    && n.heredocs.len() == 1
                    && line.trim().starts_with("<<")
                    && !line.trim().contains(char::is_whitespace);
                let h = &n.heredocs[0];
                if only && h.content.starts_with("#!") {
                    // A script with its own interpreter: run it as a file (buildkit mounts it
                    // at /dev/pipes/<name>).
                    let dir = self
                        .scratch
                        .dir
                        .join(format!("pipes-{}", &crate::util::random_id()[..12]));
                    std::fs::create_dir_all(&dir).map_err(BuildError::internal)?;
                    let file = dir.join(&h.name);
                    std::fs::write(&file, &h.content).map_err(BuildError::internal)?;
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))
                        .map_err(BuildError::internal)?;
                    binds.push(format!("{}:/dev/pipes:ro", dir.display()));
                    let mut p = shell.clone();
                    p.push(format!("{line}\n{}{}", h.content, h.name));
                    probe_cmd = Some(p);
                    cmd = vec![format!("/dev/pipes/{}", h.name)];
                } else if only {
                    cmd.push(h.content.clone());
                } else {
                    let mut full = line;
                    for h in &n.heredocs {
                        full.push('\n');
                        full.push_str(&h.content);
                        full.push_str(&h.name);
                    }
                    cmd.push(full);
                }
            }
            cmd
        };
        let env_keys: BTreeSet<String> = env_map(&st.run_config).into_keys().collect();
        let (kv, prefix) = self.args.for_run(&env_keys);
        let base_cmd = probe_cmd.unwrap_or_else(|| cmd.clone());
        let save_cmd: Vec<String> = if kv.is_empty() {
            base_cmd
        } else {
            let mut s = vec![format!("|{}", prefix.len())];
            s.extend(prefix);
            s.extend(base_cmd);
            s
        };
        let mut probe = self.with_cmd(st, save_cmd);
        probe.remove("ArgsEscaped");
        probe.insert("Entrypoint".into(), Value::Null);
        if self.probe(st, &probe, out)? {
            return Ok(());
        }
        let mut env = str_list(st.run_config.get("Env"));
        env.extend(kv);
        let container = run::run(
            self.engine,
            &self.p.req,
            &st.image_id,
            &st.run_config,
            &cmd,
            &env,
            &binds,
            out,
        )?;
        let upper = self
            .engine
            .paths()
            .container_dir(&container.id)
            .join("diff");
        let layer = stage_upper(
            self.engine,
            &self.scratch,
            &format!("layer-{}", &crate::util::random_id()[..12]),
            &upper,
        )
        .map_err(BuildError::engine)?;
        let id = container.id.clone();
        self.commit(st, probe, layer, &id)?;
        if self.p.req.rm {
            container.remove(out);
        } else {
            container.keep();
        }
        Ok(())
    }

    fn copy(
        &mut self,
        st: &mut Stage,
        n: &Node,
        is_add: bool,
        out: &mut Output,
    ) -> std::result::Result<(), BuildError> {
        let cmd_name = if is_add { "ADD" } else { "COPY" };
        let (mut from, mut chown, mut chmod) = (None, None, None);
        for f in &n.flags {
            let (name, value) = f
                .trim_start_matches('-')
                .split_once('=')
                .unwrap_or((f.trim_start_matches('-'), ""));
            match name {
                "from" if !is_add => from = Some(value.to_string()),
                "chown" => chown = Some(self.word(st, value)?),
                "chmod" => chmod = Some(self.word(st, value)?),
                "link" => {}
                "exclude" | "parents" | "checksum" | "keep-git-dir" | "unpack" => {
                    return Err(BuildError::step(format!("the --{name} {BUILDKIT_ONLY}")));
                }
                _ => return Err(BuildError::step(format!("unknown flag: --{name}"))),
            }
        }
        if n.args.len() < 2 {
            return Err(BuildError::step(format!(
                "{cmd_name} requires at least two arguments, but only one was provided. Destination could not be determined"
            )));
        }
        let mode = match &chmod {
            None => None,
            Some(m) => Some(u32::from_str_radix(m, 8).ok().filter(|m| *m <= 0o7777).ok_or_else(|| {
                BuildError::step(format!("invalid chmod parameter: {m}. it should be octal string and between 0 and 07777"))
            })?),
        };
        let raw_dest = self.word(st, n.args.last().map(String::as_str).unwrap_or(""))?;
        let wd = st
            .run_config
            .get("WorkingDir")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut dest = if raw_dest.starts_with('/') {
            raw_dest.clone()
        } else {
            let joined = crate::fstree::clean_abs(&format!("/{wd}/{raw_dest}"));
            if raw_dest.ends_with('/') || raw_dest == "." || raw_dest.ends_with("/.") {
                format!("{}/", joined.trim_end_matches('/'))
            } else {
                joined
            }
        };
        if dest.is_empty() {
            dest = "/".into();
        }
        // Where the sources come from.
        let mut _from_ws: Option<Workspace> = None;
        let (src_root, from_context): (OwnedFd, bool) = match &from {
            None => (
                self.context.try_clone().map_err(BuildError::internal)?,
                true,
            ),
            Some(f) => {
                let id = if let Ok(i) = f.parse::<usize>() {
                    self.done.get(i).map(|d| d.1.clone()).ok_or_else(|| {
                        BuildError::step(format!(
                            "invalid from flag value {f}: index out of bounds"
                        ))
                    })?
                } else if let Some((_, id)) = self
                    .done
                    .iter()
                    .find(|(d, _)| d.as_deref() == Some(f.to_lowercase().as_str()))
                {
                    id.clone()
                } else if st.name.as_deref() == Some(f.to_lowercase().as_str()) {
                    return Err(BuildError::step(format!(
                        "invalid from flag value {f}: refers to current build stage"
                    )));
                } else {
                    self.image_for(f, out).map_err(|e| {
                        BuildError::step(format!("invalid from flag value {f}: {}", e.message))
                    })?
                };
                let dir = self
                    .scratch
                    .dir
                    .join(format!("from-{}", &crate::util::random_id()[..12]));
                let ws = Workspace::mount(self.engine, &dir, &id).map_err(BuildError::engine)?;
                let root = resolve::open_root(&ws.merged).map_err(BuildError::internal)?;
                _from_ws = Some(ws);
                (root, false)
            }
        };
        // Sources (after wildcards), heredocs, URLs.
        let mut sources = Vec::new();
        let mut heredocs = Vec::new();
        let downloads = self
            .scratch
            .dir
            .join(format!("downloads-{}", &crate::util::random_id()[..12]));
        std::fs::create_dir_all(&downloads).map_err(BuildError::internal)?;
        let dl_root = resolve::open_root(&downloads).map_err(BuildError::internal)?;
        let mut url_names: Vec<bool> = Vec::new();
        for raw in &n.args[..n.args.len() - 1] {
            if let Some(h) = heredoc_markers(raw)
                .first()
                .and_then(|(name, _, _)| n.heredocs.iter().find(|h| &h.name == name))
            {
                let content = if h.expand {
                    self.word(st, &h.content)
                        .unwrap_or_else(|_| h.content.clone())
                } else {
                    h.content.clone()
                };
                heredocs.push((h.name.clone(), content));
                continue;
            }
            let s = self.word(st, raw)?;
            if s.starts_with("http://") || s.starts_with("https://") {
                if !is_add {
                    return Err(BuildError::step(
                        "COPY failed: source can't be a URL for COPY",
                    ));
                }
                let got = download::fetch(&s, &downloads, sources.len())?;
                if got.name.is_none() && raw_dest.ends_with('/') {
                    return Err(BuildError::step(format!(
                        "ADD failed: cannot determine filename for source {s}"
                    )));
                }
                url_names.push(got.name.is_some());
                sources.push(copy::Source {
                    path: got.path,
                    is_dir: false,
                    downloaded: true,
                });
                continue;
            }
            sources.extend(copy::expand_source(
                src_root.as_fd(),
                &s,
                from_context,
                cmd_name,
            )?);
        }
        if sources.is_empty() && heredocs.is_empty() {
            return Err(BuildError::step(format!(
                "{cmd_name} failed: no source files were specified"
            )));
        }
        if sources.len() + heredocs.len() > 1 && !dest.ends_with('/') {
            return Err(BuildError::step(
                "When using COPY with more than one source file, the destination must be a directory and end with a /",
            ));
        }
        let mut hashes = Vec::new();
        let root_of = |s: &copy::Source| {
            if s.downloaded {
                dl_root.as_fd()
            } else {
                src_root.as_fd()
            }
        };
        for s in &sources {
            hashes.push(copy::hash_source(root_of(s), s)?);
        }
        for (name, content) in &heredocs {
            use sha2::Digest;
            hashes.push(format!(
                "heredoc:{}",
                hex::encode(sha2::Sha256::digest(
                    format!("{name}\n{content}").as_bytes()
                ))
            ));
        }
        let src_hash = if hashes.len() == 1 {
            hashes[0].clone()
        } else {
            use sha2::Digest;
            format!(
                "multi:{}",
                hex::encode(sha2::Sha256::digest(hashes.join(",").as_bytes()))
            )
        };
        let mut flags_text = String::new();
        if let Some(c) = &chown {
            flags_text.push_str(&format!("--chown={c} "));
        }
        if let Some(m) = &chmod {
            flags_text.push_str(&format!("--chmod={m} "));
        }
        let mut cmd = shell_of(&st.run_config);
        cmd.push(format!(
            "#(nop) {cmd_name} {flags_text}{src_hash} in {raw_dest} "
        ));
        let probe = self.with_cmd(st, cmd);
        if self.probe(st, &probe, out)? {
            return Ok(());
        }
        let (mut ws, dir) = self.workspace(st, "copy")?;
        let to = resolve::open_root(&ws.merged).map_err(BuildError::internal)?;
        let owner = match &chown {
            None => None,
            Some(c) => {
                let spec = if c.contains(':') {
                    c.clone()
                } else {
                    format!("{c}:{c}")
                };
                let (uid, gid, _) = crate::runtime::user::resolve_user(&ws.merged, &spec, &[])
                    .map_err(|e| {
                        BuildError::step(format!(
                            "unable to convert uid/gid chown string to host mapping: {e}"
                        ))
                    })?;
                Some((uid, gid))
            }
        };
        let opts = CopyOptions {
            // Context files are owned by root unless --chown; files from an image keep theirs.
            chown: owner.or(if from_context { Some((0, 0)) } else { None }),
            chmod: mode,
            extract_archives: is_add && from_context,
        };
        let dest_exists_dir =
            resolve::stat(to.as_fd(), &dest).is_ok_and(|s| resolve::kind(&s) == libc::S_IFDIR);
        let mut urls = url_names.iter();
        for s in &sources {
            // A URL that names no file is copied as the destination itself.
            let named = if s.downloaded {
                *urls.next().unwrap_or(&true)
            } else {
                true
            };
            let dest_is_dir = named && (dest.ends_with('/') || dest_exists_dir);
            copy::copy_source(root_of(s), s, to.as_fd(), &dest, dest_is_dir, &opts)?;
        }
        for (name, content) in &heredocs {
            copy::write_heredoc(
                to.as_fd(),
                &dest,
                dest.ends_with('/') || dest_exists_dir,
                name,
                content,
                &opts,
            )?;
        }
        drop(to);
        drop(_from_ws);
        let layer = self.layer_of(&mut ws, &dir)?;
        self.commit(st, probe, layer, "")
    }
}
