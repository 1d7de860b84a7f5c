//! Process-wide registry of started clusters, so that none outlives the process.
//!
//! Every [`LocalCluster`](super::LocalCluster) registers itself; dropping it
//! unregisters it. [`stop_all_registered`] (for Ctrl-C handlers) and an
//! `atexit` hook (for processes that exit without dropping their clusters,
//! e.g. through `std::process::exit`) stop the rest.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::Duration;

use super::runas::RunAs;
use super::server::{self, StopMode};

struct Entry {
    id: u64,
    pg_ctl: PathBuf,
    data_dir: PathBuf,
    run_as: RunAs,
    /// Directory to delete once stopped (temporary clusters only).
    remove: Vec<PathBuf>,
}

static REGISTRY: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static ATEXIT: Once = Once::new();

fn lock() -> MutexGuard<'static, Vec<Entry>> {
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Registers a cluster; returns the id to unregister it with. Installs the
/// atexit hook on first use.
pub(crate) fn register(
    pg_ctl: PathBuf,
    data_dir: PathBuf,
    run_as: RunAs,
    remove: Vec<PathBuf>,
) -> u64 {
    ATEXIT.call_once(|| {
        // SAFETY: registering a plain extern "C" function without arguments.
        let rc = unsafe { libc::atexit(stop_all_at_exit) };
        if rc != 0 {
            tracing::warn!("could not register the atexit hook that stops local clusters");
        }
    });
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    lock().push(Entry {
        id,
        pg_ctl,
        data_dir,
        run_as,
        remove,
    });
    id
}

/// Forgets a cluster (its owner stopped it or takes care of it).
pub(crate) fn unregister(id: u64) {
    lock().retain(|e| e.id != id);
}

/// Stops every cluster started by this process that is still registered
/// (fast shutdown, then immediate, then kill) and deletes the temporary ones.
///
/// Call it when handling Ctrl-C (e.g. after `tokio::signal::ctrl_c()` in
/// `shardwire demo`; not from inside a raw signal handler, as it runs
/// processes and takes a lock) before exiting, so no postgres process is left
/// behind. It blocks until the servers are down. Dropping the
/// [`LocalCluster`](super::LocalCluster) values afterwards is harmless, but
/// they should not be used any more (temporary ones have lost their directory).
pub fn stop_all_registered() {
    stop_all(StopMode::Fast, Duration::from_secs(20));
}

fn stop_all(mode: StopMode, timeout: Duration) {
    let entries: Vec<Entry> = std::mem::take(&mut *lock());
    for e in entries {
        if let Err(err) = server::stop(&e.pg_ctl, &e.run_as, &e.data_dir, mode, timeout) {
            tracing::warn!(data_dir = %e.data_dir.display(), error = %format!("{err:#}"), "stopping local cluster");
        }
        for dir in &e.remove {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

extern "C" fn stop_all_at_exit() {
    // Never unwind into C.
    let _ = std::panic::catch_unwind(|| stop_all(StopMode::Immediate, Duration::from_secs(10)));
}
