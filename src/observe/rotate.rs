//! A log file rotated by size: when the next line would take `path` past
//! its limit, `path.N-1` becomes `path.N` (dropping the oldest), ...,
//! `path` becomes `path.1`, and a new `path` is started.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// An append-only file of lines, rotated by size. Blocking: used on the
/// slow log's own writer thread only.
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    /// The open file and its size; opened on the first write.
    current: Option<(BufWriter<File>, u64)>,
}

impl RotatingFile {
    /// `path` rotated beyond `max_bytes`, keeping `keep` rotated files.
    pub fn new(path: PathBuf, max_bytes: u64, keep: usize) -> RotatingFile {
        RotatingFile {
            path,
            max_bytes,
            keep,
            current: None,
        }
    }

    /// Appends `line` (which ends with a newline), rotating first when it
    /// would not fit. A line longer than the limit gets a file of its own.
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let size = self.open()?;
        let too_big = size + line.len() as u64 > self.max_bytes;
        if size > 0 && too_big {
            self.rotate()?;
            self.open()?;
        }
        let Some((file, size)) = self.current.as_mut() else {
            return Err(io::Error::other("slow log file not open"));
        };
        let written = file.write_all(line);
        if written.is_err() {
            // Start over with a fresh handle next time.
            self.current = None;
            return written;
        }
        *size += line.len() as u64;
        Ok(())
    }

    /// Pushes buffered lines to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        match self.current.as_mut() {
            Some((file, _)) => file.flush(),
            None => Ok(()),
        }
    }

    /// Opens `path` for appending unless open; returns its size.
    fn open(&mut self) -> io::Result<u64> {
        if let Some((_, size)) = &self.current {
            return Ok(*size);
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        let size = file.metadata()?.len();
        self.current = Some((BufWriter::new(file), size));
        Ok(size)
    }

    fn rotate(&mut self) -> io::Result<()> {
        if let Some((mut file, _)) = self.current.take() {
            file.flush()?;
        }
        if self.keep == 0 {
            return remove_if_present(&self.path);
        }
        for n in (1..self.keep).rev() {
            rename_if_present(&numbered(&self.path, n), &numbered(&self.path, n + 1))?;
        }
        rename_if_present(&self.path, &numbered(&self.path, 1))
    }
}

/// `path.n`.
pub fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn rename_if_present(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::{RotatingFile, numbered};

    fn read(path: &std::path::Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn full_files_rotate_and_the_oldest_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slow.jsonl");
        let mut file = RotatingFile::new(path.clone(), 10, 2);
        for line in ["a1234\n", "b1234\n", "c1234\n", "d1234\n", "e\n"] {
            file.write_line(line.as_bytes()).unwrap();
        }
        file.flush().unwrap();
        assert_eq!(read(&path), "d1234\ne\n");
        assert_eq!(read(&numbered(&path, 1)), "c1234\n");
        assert_eq!(read(&numbered(&path, 2)), "b1234\n");
        assert!(!numbered(&path, 3).exists());
    }

    #[test]
    fn an_existing_file_is_appended_to_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slow.jsonl");
        std::fs::write(&path, "old-line\n").unwrap();
        let mut file = RotatingFile::new(path.clone(), 13, 1);
        file.write_line(b"new\n").unwrap();
        file.write_line(b"next\n").unwrap();
        file.flush().unwrap();
        assert_eq!(read(&numbered(&path, 1)), "old-line\nnew\n");
        assert_eq!(read(&path), "next\n");
    }

    #[test]
    fn without_rotated_files_a_full_file_starts_over_and_long_lines_fit_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slow.jsonl");
        let mut file = RotatingFile::new(path.clone(), 4, 0);
        file.write_line(b"ab\n").unwrap();
        file.write_line(b"a very long line\n").unwrap();
        file.flush().unwrap();
        assert_eq!(read(&path), "a very long line\n");
        assert!(!numbered(&path, 1).exists());
    }
}
