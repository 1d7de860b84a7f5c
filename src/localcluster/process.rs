//! Running a helper program with a timeout, capturing its output.
//!
//! Output goes to anonymous temporary files rather than pipes: `pg_ctl start`
//! leaves a server behind, and a pipe inherited by a long-lived grandchild would
//! make a reader wait forever. Files never block.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// What a finished program printed, and how it ended.
#[derive(Debug)]
pub(crate) struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// `Ok(self)` if the program succeeded, else an error naming `what` with its
    /// exit status and output.
    pub(crate) fn check(self, what: &str) -> Result<Output> {
        if self.status.success() {
            return Ok(self);
        }
        bail!("{what} failed ({}): {}", self.status, self.describe());
    }

    /// stderr and stdout, trimmed, for error messages.
    pub(crate) fn describe(&self) -> String {
        let err = self.stderr.trim();
        let out = self.stdout.trim();
        match (err.is_empty(), out.is_empty()) {
            (true, true) => "(no output)".to_string(),
            (false, true) => err.to_string(),
            (true, false) => out.to_string(),
            (false, false) => format!("{err}\n{out}"),
        }
    }
}

/// Runs `cmd` (stdin from /dev/null, in its own process group) and waits at most
/// `timeout`. On timeout the whole process group is killed and an error
/// naming `what` is returned. A non-zero exit is *not* an error here: see
/// [`Output::check`].
pub(crate) fn run(cmd: &mut Command, timeout: Duration, what: &str) -> Result<Output> {
    let mut out_file = tempfile::tempfile().context("creating a temporary file for output")?;
    let mut err_file = tempfile::tempfile().context("creating a temporary file for output")?;
    cmd.stdin(Stdio::null())
        .stdout(out_file.try_clone()?)
        .stderr(err_file.try_clone()?)
        // Own process group: a Ctrl-C in the terminal does not hit the helper
        // (or the server that pg_ctl leaves behind); the caller stops them.
        .process_group(0);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("{what}: cannot run {:?}", cmd.get_program()))?;
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    let status = loop {
        if let Some(status) = child.try_wait().with_context(|| format!("{what}: wait"))? {
            break status;
        }
        if Instant::now() >= deadline {
            let pid = child.id() as libc::pid_t;
            // SAFETY: plain kill(2) on the process group we created.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
            let partial = Output {
                status: std::os::unix::process::ExitStatusExt::from_raw(9),
                stdout: read_all(&mut out_file),
                stderr: read_all(&mut err_file),
            };
            bail!(
                "{what} did not finish within {}s and was killed; its output: {}",
                timeout.as_secs(),
                partial.describe()
            );
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    };
    Ok(Output {
        status,
        stdout: read_all(&mut out_file),
        stderr: read_all(&mut err_file),
    })
}

fn read_all(f: &mut File) -> String {
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(0)).is_ok() {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}
