//! Is a server running for a data directory? `postmaster.pid`, stale pid files,
//! and the orphaned backends a killed postmaster leaves behind.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// The contents of `postmaster.pid`.
#[derive(Debug, Clone)]
pub(crate) struct PidInfo {
    pub pid: i32,
    pub port: Option<u16>,
    /// First entry of `unix_socket_directories` the server uses, if any.
    pub socket_dir: Option<PathBuf>,
}

/// What `postmaster.pid` says, checked against the live processes.
#[derive(Debug, Clone)]
pub(crate) enum ServerState {
    /// No `postmaster.pid`.
    NotRunning,
    /// `postmaster.pid` names a process that is gone, or is not a server for
    /// this data directory (a crash left it behind).
    Stale(PidInfo),
    /// A live postmaster serves this data directory.
    Running(PidInfo),
}

/// Path of `postmaster.pid` in a data directory.
pub(crate) fn pid_file(data_dir: &Path) -> PathBuf {
    data_dir.join("postmaster.pid")
}

/// Reads `postmaster.pid` if it exists.
pub(crate) fn read_pid_file(data_dir: &Path) -> Result<Option<PidInfo>> {
    let path = pid_file(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let lines: Vec<&str> = text.lines().collect();
    let pid = lines
        .first()
        .and_then(|l| l.trim().parse::<i32>().ok())
        .unwrap_or(0);
    let port = lines.get(3).and_then(|l| l.trim().parse::<u16>().ok());
    let socket_dir = lines
        .get(4)
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .map(PathBuf::from);
    Ok(Some(PidInfo {
        pid,
        port,
        socket_dir,
    }))
}

/// Whether a server is running for `data_dir`.
pub(crate) fn server_state(data_dir: &Path) -> Result<ServerState> {
    let Some(info) = read_pid_file(data_dir)? else {
        return Ok(ServerState::NotRunning);
    };
    if info.pid > 0 && is_server_for(info.pid, data_dir) {
        Ok(ServerState::Running(info))
    } else {
        Ok(ServerState::Stale(info))
    }
}

/// True if `pid` is a live (non-zombie) process whose working directory is
/// `data_dir` (a postmaster chdirs into its data directory). Without /proc,
/// falls back to "the process exists".
pub(crate) fn is_server_for(pid: i32, data_dir: &Path) -> bool {
    if Path::new("/proc/self/cwd").exists() {
        return cwd_of(pid).is_some_and(|cwd| same_dir(&cwd, data_dir));
    }
    pid_alive(pid)
}

/// kill(pid, 0): the process exists (possibly as a zombie).
pub(crate) fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn cwd_of(pid: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

fn same_dir(a: &Path, b: &Path) -> bool {
    let ca = std::fs::canonicalize(a).unwrap_or_else(|_| a.to_path_buf());
    let cb = std::fs::canonicalize(b).unwrap_or_else(|_| b.to_path_buf());
    ca == cb
}

/// Live processes whose working directory is `data_dir`: the postmaster and
/// its children (including backends orphaned by a killed postmaster).
pub(crate) fn processes_in(data_dir: &Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let target = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| cwd_of(*pid).is_some_and(|cwd| cwd == target))
        .collect()
}

/// After a postmaster died (kill -9, crash), waits for the children it left
/// behind to exit, which they do on their own once they notice, then
/// SIGQUITs and finally SIGKILLs the ones that remain. A new postmaster
/// refuses to start while the old shared memory is still attached.
pub(crate) fn reap_orphans(data_dir: &Path, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let quit_at = Instant::now() + timeout / 2;
    let mut sent_quit = false;
    loop {
        let left = processes_in(data_dir);
        if left.is_empty() {
            return;
        }
        let now = Instant::now();
        if now >= deadline {
            tracing::warn!(data_dir = %data_dir.display(), pids = ?left, "killing leftover server processes");
            for pid in &left {
                // SAFETY: plain kill(2).
                unsafe {
                    libc::kill(*pid, libc::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(200));
            return;
        }
        if now >= quit_at && !sent_quit {
            for pid in &left {
                // SAFETY: plain kill(2).
                unsafe {
                    libc::kill(*pid, libc::SIGQUIT);
                }
            }
            sent_quit = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills (SIGKILL) the postmaster named by the pid file and every process
/// working in `data_dir`, then removes the pid file. Last resort of a stop.
pub(crate) fn kill_everything(data_dir: &Path) {
    if let Ok(Some(info)) = read_pid_file(data_dir)
        && info.pid > 0
        && is_server_for(info.pid, data_dir)
    {
        // SAFETY: plain kill(2).
        unsafe {
            libc::kill(info.pid, libc::SIGKILL);
        }
    }
    reap_orphans(data_dir, Duration::from_secs(2));
    for pid in processes_in(data_dir) {
        // SAFETY: plain kill(2).
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    let _ = std::fs::remove_file(pid_file(data_dir));
}

/// Removes `.s.PGSQL.<port>.lock` files in `socket_dir` whose postmaster is
/// gone. A killed postmaster can linger as a zombie for a while, and Postgres
/// refuses to take over a lock file whose pid still exists, even as a zombie.
/// Call only while no server runs for `data_dir`.
pub(crate) fn remove_stale_socket_locks(socket_dir: &Path, data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(socket_dir) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(".s.PGSQL.") && name.ends_with(".lock")) {
            continue;
        }
        let path = entry.path();
        let pid = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
            .unwrap_or(0);
        if pid <= 0 || !is_server_for(pid, data_dir) {
            tracing::debug!(file = %path.display(), pid, "removing stale socket lock file");
            let _ = std::fs::remove_file(&path);
        }
    }
}
