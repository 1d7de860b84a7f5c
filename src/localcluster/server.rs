//! `pg_ctl` stop with fallbacks, shared by clusters and the registry.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};

use super::pidfile::{self, ServerState};
use super::process;
use super::runas::RunAs;

/// How to shut a server down (`pg_ctl stop -m ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopMode {
    /// Disconnect clients, checkpoint, exit: a clean shutdown.
    Fast,
    /// Exit at once; the next start runs crash recovery.
    Immediate,
}

impl StopMode {
    fn arg(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// Stops the server of `data_dir` if one runs: `pg_ctl stop -m <mode>`, then
/// `-m immediate`, then SIGKILL. A stale pid file (and orphaned children of a
/// dead postmaster) is cleaned up. Returns whether a server had been running.
pub(crate) fn stop(
    pg_ctl: &Path,
    run_as: &RunAs,
    data_dir: &Path,
    mode: StopMode,
    timeout: Duration,
) -> Result<bool> {
    match pidfile::server_state(data_dir)? {
        ServerState::NotRunning => return Ok(false),
        ServerState::Stale(info) => {
            tracing::debug!(pid = info.pid, data_dir = %data_dir.display(), "removing stale postmaster.pid");
            pidfile::reap_orphans(data_dir, Duration::from_secs(10));
            let _ = std::fs::remove_file(pidfile::pid_file(data_dir));
            return Ok(false);
        }
        ServerState::Running(_) => {}
    }
    let mut modes = vec![mode];
    if mode != StopMode::Immediate {
        modes.push(StopMode::Immediate);
    }
    let mut last_error = String::new();
    for m in modes {
        let secs = timeout.as_secs().max(1);
        let mut cmd = run_as.command(pg_ctl);
        cmd.arg("stop").arg("-D").arg(data_dir).args([
            "-m",
            m.arg(),
            "-w",
            "-t",
            &secs.to_string(),
        ]);
        match process::run(&mut cmd, timeout + Duration::from_secs(15), "pg_ctl stop") {
            Ok(out) if out.status.success() => {
                pidfile::reap_orphans(data_dir, Duration::from_secs(5));
                return Ok(true);
            }
            Ok(out) => last_error = out.describe(),
            Err(e) => last_error = format!("{e:#}"),
        }
        if !matches!(pidfile::server_state(data_dir)?, ServerState::Running(_)) {
            pidfile::reap_orphans(data_dir, Duration::from_secs(5));
            let _ = std::fs::remove_file(pidfile::pid_file(data_dir));
            return Ok(true);
        }
        tracing::warn!(data_dir = %data_dir.display(), mode = m.arg(), error = %last_error, "pg_ctl stop failed");
    }
    pidfile::kill_everything(data_dir);
    if matches!(pidfile::server_state(data_dir)?, ServerState::Running(_)) {
        bail!(
            "could not stop the server of {} (pg_ctl stop said: {last_error})",
            data_dir.display()
        );
    }
    tracing::warn!(data_dir = %data_dir.display(), "server had to be killed (SIGKILL)");
    Ok(true)
}
