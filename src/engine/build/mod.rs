//! `POST /build`: Docker's classic (legacy) builder. Each instruction of each stage gives an
//! image (kept, untagged, as the next step's parent and as the build cache); RUN runs in a
//! real container, COPY/ADD/WORKDIR write through an overlay workspace, and the output stream
//! is the legacy builder's, line for line.

mod args;
mod cache;
mod copy;
mod download;
mod ignore;
mod pull;
mod request;
mod run;
mod step;
mod workspace;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use crate::engine::{Engine, EngineError, ErrorKind};
use crate::image::changes::ChangeError;
use crate::image::changes::parser::{Node, parse_dockerfile};

pub use request::BuildRequest;
use run::RunContainer;

/// A build error, as the stream reports it (`code` only for a failing RUN).
pub struct BuildError {
    pub message: String,
    pub code: i64,
    /// The failed RUN's container, for the rm/forcerm rules.
    container: Option<RunContainer>,
}

impl std::fmt::Debug for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BuildError({})", self.message)
    }
}

impl BuildError {
    pub fn step(message: impl Into<String>) -> BuildError {
        BuildError {
            message: message.into(),
            code: 0,
            container: None,
        }
    }
    /// berth's own failure: logged, and its text streamed.
    pub fn internal(e: impl std::fmt::Display) -> BuildError {
        tracing::warn!(error = %e, "build failed");
        BuildError::step(e.to_string())
    }
    pub fn engine(e: EngineError) -> BuildError {
        if e.kind == ErrorKind::Internal {
            return BuildError::internal(e.message);
        }
        BuildError::step(e.message)
    }
    pub fn cancelled() -> BuildError {
        BuildError::step("Build cancelled")
    }
}

impl From<ChangeError> for BuildError {
    fn from(e: ChangeError) -> BuildError {
        BuildError::step(e.to_string())
    }
}

/// The build's output: JSON messages to the client (or buffered, with `q`).
pub struct Output<'a> {
    send: &'a mut dyn FnMut(&Value) -> bool,
    gone: Arc<AtomicBool>,
    closed: Arc<dyn Fn() -> bool + Send + Sync>,
    quiet: bool,
    buffer: Vec<Value>,
}

impl<'a> Output<'a> {
    pub fn new(
        send: &'a mut dyn FnMut(&Value) -> bool,
        closed: Arc<dyn Fn() -> bool + Send + Sync>,
        quiet: bool,
    ) -> Output<'a> {
        Output {
            send,
            gone: Arc::new(AtomicBool::new(false)),
            closed,
            quiet,
            buffer: Vec::new(),
        }
    }

    pub fn message(&mut self, v: Value) {
        if self.quiet {
            self.buffer.push(v);
        } else if !(self.send)(&v) {
            self.gone.store(true, Ordering::SeqCst);
        }
    }

    pub fn stream(&mut self, text: &str) {
        self.message(json!({"stream": text}));
    }

    pub fn is_gone(&self) -> bool {
        self.gone.load(Ordering::SeqCst) || (self.closed)()
    }

    pub fn gone_fn(&self) -> Arc<dyn Fn() -> bool + Send + Sync> {
        let gone = self.gone.clone();
        let closed = self.closed.clone();
        Arc::new(move || gone.load(Ordering::SeqCst) || closed())
    }

    /// The end: with `q`, only the ID on success, everything on failure.
    fn finish(&mut self, result: &Result<String, BuildError>) {
        if self.quiet {
            self.quiet = false;
            match result {
                Ok(id) => {
                    self.buffer.clear();
                    self.stream(&format!("{id}\n"));
                }
                Err(_) => {
                    for v in std::mem::take(&mut self.buffer) {
                        self.message(v);
                    }
                }
            }
        }
        if let Err(e) = result {
            let mut detail = serde_json::Map::new();
            if e.code != 0 {
                detail.insert("code".into(), json!(e.code));
            }
            detail.insert("message".into(), json!(e.message));
            self.message(json!({"errorDetail": detail, "error": e.message}));
        }
    }
}

/// A parsed build, ready to run: what can fail before streaming has been checked.
pub struct Prepared {
    pub req: BuildRequest,
    context: crate::engine::Scratch,
    nodes: Vec<Node>,
    escape: char,
}

/// Read the context and the Dockerfile; errors here are HTTP errors (nothing streamed yet).
pub fn prepare(
    engine: &Engine,
    req: BuildRequest,
    body: impl std::io::Read,
) -> Result<Prepared, EngineError> {
    let scratch = engine.scratch("build")?;
    let ctx_dir = scratch.dir.join("context");
    std::fs::create_dir_all(&ctx_dir)?;
    let root = crate::fstree::resolve::open_root(&ctx_dir).map_err(EngineError::internal_cause)?;
    let reader = crate::image::layer::decompressed(body).map_err(EngineError::invalid_cause)?;
    crate::fstree::tar_in::extract(
        std::os::fd::AsFd::as_fd(&root),
        "/",
        reader,
        &Default::default(),
    )
    .map_err(|e| EngineError::invalid(format!("failed to read the build context: {e}")))?;
    let text = step::read_dockerfile(&root, &req.dockerfile)?;
    let (nodes, escape) = parse_dockerfile(&text).map_err(|e| match e {
        ChangeError::NoInstructions => EngineError::invalid(format!(
            "failed to parse {}: file with no instructions",
            req.dockerfile
        )),
        e => EngineError::invalid(e.to_string()),
    })?;
    step::check_instructions(&nodes)?;
    ignore::remove_ignored(std::os::fd::AsFd::as_fd(&root), &req.dockerfile);
    let prepared = Prepared {
        req,
        context: scratch,
        nodes,
        escape,
    };
    step::check_target(&prepared)?;
    Ok(prepared)
}

/// Run the build; every message goes to `out`. Returns the final image ID.
pub fn run(engine: &Engine, p: Prepared, out: &mut Output) -> Option<String> {
    let result = step::Builder::new(engine, &p).and_then(|b| b.build(out));
    let result = result.map_err(|mut e| {
        if let Some(c) = e.container.take() {
            if p.req.forcerm {
                c.remove(out);
            } else {
                // Kept, as Docker keeps the failed step's container without forcerm.
                c.keep();
            }
        }
        e
    });
    out.finish(&result);
    result.ok()
}
