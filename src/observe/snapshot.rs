//! The statistics snapshot file: all of [`Statistics`] as JSON, rewritten
//! every `snapshot_interval_ms` and at shutdown, for the index advisor to
//! read offline. Each write is atomic (a temporary file in the same
//! directory, then a rename): a reader never sees half a file.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::stats::Statistics;

/// Writes the snapshot of `statistics` to `path`, atomically, through a
/// temporary file of its own (two writers at once, the interval's and the
/// shutdown's, never mix their bytes). Blocking.
pub fn write(statistics: &Statistics, path: &Path) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(&statistics.snapshot()).map_err(io::Error::other)?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temporary = tempfile::NamedTempFile::new_in(directory)?;
    temporary.write_all(&json)?;
    temporary.write_all(b"\n")?;
    temporary.as_file().sync_all()?;
    temporary.persist(path).map_err(|e| e.error)?;
    Ok(())
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
