//! Subcommands for berth's own chores: `berth boot` (after a reboot) and the supervisor of a
//! detached exec (`berth internal exec-wait`), plus the boot check every `berth serve` makes.

use anyhow::Context;
use clap::Subcommand;

use berth::engine::Engine;
use berth::engine::containers::{boot, exec};

use crate::{Roots, engine_for, init_logging};

#[derive(Subcommand)]
pub enum Chore {
    /// Reconcile after a reboot and start containers whose restart policy says so.
    ///
    /// Marks the containers of the previous boot exited (255), cleans what they left, then
    /// starts `always` containers and `unless-stopped` ones that were running. Run once per
    /// boot by berth-restart.service.
    Boot {
        #[command(flatten)]
        roots: Roots,
    },
}

#[derive(Subcommand)]
pub enum InternalChore {
    /// Supervise a detached exec to its end and record its exit (started by `berth serve`).
    ExecWait {
        #[command(flatten)]
        roots: Roots,
        container: String,
        exec: String,
    },
}

pub fn run(chore: Chore) -> anyhow::Result<()> {
    match chore {
        Chore::Boot { roots } => {
            init_logging("warn");
            let engine = engine_for(roots, Default::default());
            let report = boot::boot(&engine).context("berth boot")?;
            for id in &report.reconciled.exited {
                println!("exited (previous boot): {}", &id[..id.len().min(12)]);
            }
            for id in &report.reconciled.removed {
                println!("removed (--rm): {}", &id[..id.len().min(12)]);
            }
            for (_, name) in &report.started {
                println!("started: {name}");
            }
            for (name, err) in &report.failed {
                eprintln!("berth boot: starting {name}: {err}");
            }
            if !report.failed.is_empty() {
                anyhow::bail!("{} container(s) did not start", report.failed.len());
            }
            Ok(())
        }
    }
}

pub fn run_internal(chore: InternalChore) -> anyhow::Result<()> {
    match chore {
        InternalChore::ExecWait {
            roots,
            container,
            exec: eid,
        } => {
            init_logging("warn");
            let engine = engine_for(roots, Default::default());
            let code = exec::detached::supervise(&engine, &container, &eid)
                .with_context(|| format!("exec {eid}"))?;
            tracing::debug!("exec {eid} exited with {code}");
            Ok(())
        }
    }
}

/// Before `berth serve` answers: reconcile once after a reboot. A failure is logged, not fatal:
/// the API still answers (states then come from `current`, which reports lost containers).
pub fn on_serve(engine: &Engine) {
    match boot::check(engine) {
        Ok(Some(r)) if !r.exited.is_empty() => tracing::info!(
            "new boot: {} container(s) of the previous boot marked exited",
            r.exited.len()
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("boot check: {e}"),
    }
}
