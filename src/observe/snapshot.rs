//! The statistics snapshot file: all of [`Statistics`] as JSON, rewritten
//! every `snapshot_interval_ms` and at shutdown, for the index advisor to
//! read offline. Each write is atomic (a temporary file in the same
//! directory, then a rename): a reader never sees half a file.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::stats::Statistics;

/// Writes the snapshot of `statistics` to `path`, atomically. Blocking.
pub fn write(statistics: &Statistics, path: &Path) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(&statistics.snapshot()).map_err(io::Error::other)?;
    let mut temporary = OsString::from(path.as_os_str());
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(&json)?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// Writes the snapshot on a blocking thread (it serializes every entry
/// and touches the disk); failures are logged.
pub async fn write_off_runtime(statistics: Arc<Statistics>, path: PathBuf) {
    let written = tokio::task::spawn_blocking(move || {
        let result = write(&statistics, &path);
        (result, path)
    })
    .await;
    if let Ok((Err(e), path)) = written {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the statistics snapshot");
    }
}

/// Rewrites the snapshot every `interval` while the statistics exist.
pub async fn every(interval: Duration, statistics: Weak<Statistics>, path: PathBuf) {
    let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate
    loop {
        ticks.tick().await;
        let Some(statistics) = statistics.upgrade() else {
            return;
        };
        write_off_runtime(statistics, path.clone()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::write;
    use crate::observe::stats::{Snapshot, Statistics};

    #[test]
    fn the_file_is_replaced_whole_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.json");
        std::fs::write(&path, "old").unwrap();
        let statistics = Statistics::new(10, vec![]);
        write(&statistics, &path).unwrap();
        let snapshot: Snapshot =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(snapshot.version, 1);
        assert!(snapshot.entries.is_empty());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }
}
