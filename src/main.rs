//! The `berth` command: `serve` answers the Docker Engine API on an activated socket.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use berth::config::{DEFAULT_DATA_ROOT, DEFAULT_RUN_ROOT, Paths};
use berth::engine::{Engine, EngineConfig};
use berth::serve::{self, ServeOptions, Source, activation};

mod chores;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A daemonless container engine that speaks the Docker Engine API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Roots {
    /// Persistent state: database, layers, containers.
    #[arg(long, env = "BERTH_DATA_ROOT", default_value = DEFAULT_DATA_ROOT)]
    data_root: PathBuf,
    /// Runtime state on tmpfs.
    #[arg(long, env = "BERTH_RUN_ROOT", default_value = DEFAULT_RUN_ROOT)]
    run_root: PathBuf,
    /// The OCI runtime binary.
    #[arg(long, env = "BERTH_RUNTIME", default_value = "runc")]
    runtime: String,
}

#[derive(Subcommand)]
enum Command {
    /// Answer the Docker Engine API on the socket systemd passes (fd 3), or on --host.
    Serve {
        /// unix:///path to bind when not socket-activated.
        #[arg(long, short = 'H')]
        host: Option<String>,
        /// Seconds with nothing going on before exiting (0 = stay up).
        #[arg(long, default_value_t = 5)]
        idle_timeout: u64,
        /// Seconds a connection may take to send a request's headers, also while it waits
        /// between requests, before it is closed (0 = no limit). Open streams are not affected.
        #[arg(long, default_value_t = 30)]
        header_timeout: u64,
        /// Log filter (error, warn, info, debug, trace, or tracing directives).
        #[arg(long, env = "BERTH_LOG", default_value = "warn")]
        log_level: String,
        /// berth's config file (registry settings); a missing file means the defaults.
        #[arg(long = "config", env = "BERTH_CONFIG", default_value = berth::registry::config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        #[command(flatten)]
        roots: Roots,
    },
    /// Pods: containers sharing one network namespace (a client of berth's socket).
    Pod {
        /// unix:///path of berth's socket (default: DOCKER_HOST, else /run/berth.sock).
        #[arg(long, short = 'H', global = true)]
        host: Option<String>,
        #[command(subcommand)]
        what: berth::cli::PodCommand,
    },
    /// Kubernetes YAML: generate it from pods, play it into pods.
    Kube {
        /// unix:///path of berth's socket (default: DOCKER_HOST, else /run/berth.sock).
        #[arg(long, short = 'H', global = true)]
        host: Option<String>,
        #[command(subcommand)]
        what: berth::cli::KubeCommand,
    },
    #[command(flatten)]
    Chore(chores::Chore),
    /// Chores other berth processes ask for; not for people.
    #[command(hide = true)]
    Internal {
        #[command(subcommand)]
        what: Internal,
    },
}

#[derive(Subcommand)]
enum Internal {
    #[command(flatten)]
    Chore(chores::InternalChore),
    /// A container's monitor reports an exit (`died`), an automatic restart (`restarted`) or a
    /// new health status (`health healthy|unhealthy|starting`).
    ContainerEvent {
        #[command(flatten)]
        roots: Roots,
        id: String,
        event: String,
        /// The event's argument (the health status).
        arg: Option<String>,
    },
}

fn main() -> anyhow::Result<()> {
    // Before anything else: take the activation fd and clean LISTEN_* while single-threaded.
    let activated = activation::take().context("socket activation")?;
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            host,
            idle_timeout,
            header_timeout,
            log_level,
            config,
            roots,
        } => {
            init_logging(&log_level);
            let registry = berth::registry::RegistryConfig::load(&config)?;
            let source = match (activated, host) {
                (Some(a), _) => Source::Activated(a),
                (None, Some(h)) => match h.strip_prefix("unix://") {
                    Some(p) => Source::Bind(PathBuf::from(p)),
                    None => bail!("--host must be unix:///path, got {h}"),
                },
                (None, None) => bail!(
                    "no socket: run under systemd socket activation (LISTEN_FDS) or pass --host unix:///path"
                ),
            };
            let engine = engine_for(roots, registry);
            chores::on_serve(&engine);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let served = rt.block_on(serve::run(
                engine,
                ServeOptions {
                    source,
                    idle_timeout: Duration::from_secs(idle_timeout),
                    header_timeout: Duration::from_secs(header_timeout),
                },
            ));
            // Blocking work still running (a wait whose client left) must not keep us alive.
            rt.shutdown_background();
            served?;
            Ok(())
        }
        Command::Pod { host, what } => berth::cli::pod(host.as_deref(), what),
        Command::Kube { host, what } => berth::cli::kube(host.as_deref(), what),
        Command::Chore(chore) => chores::run(chore),
        Command::Internal {
            what: Internal::Chore(chore),
        } => chores::run_internal(chore),
        Command::Internal {
            what:
                Internal::ContainerEvent {
                    roots,
                    id,
                    event,
                    arg,
                },
        } => {
            init_logging("warn");
            let engine = engine_for(roots, Default::default());
            berth::engine::containers::exited::monitor_event(&engine, &id, &event, arg.as_deref())
                .map_err(|e| anyhow::anyhow!(e.message))
                .with_context(|| format!("container {id}: {event}"))
        }
    }
}

fn engine_for(roots: Roots, registry: berth::registry::RegistryConfig) -> Engine {
    let paths = Paths::new(roots.data_root, roots.run_root);
    // Before the store or anything else creates a file under them.
    if let Err(e) = berth::store::private::secure(&paths) {
        tracing::warn!("making the data and run roots private: {e}");
    }
    Engine::new(EngineConfig {
        paths,
        runtime: roots.runtime,
        registry,
    })
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
}
