//! Which OS user runs the server binaries, and file ownership for that user.
//!
//! `initdb` and `postgres` refuse to run as root. As root we therefore run them
//! as the `postgres` OS user (created by Debian's postgresql packages) by setting
//! the uid/gid of the child process, and chown the directories they need.

use std::ffi::{CStr, CString, OsStr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// OS user the server binaries run as when this process runs as root.
pub(crate) const SERVER_OS_USER: &str = "postgres";

/// The OS user to run server binaries as.
#[derive(Debug, Clone)]
pub(crate) struct RunAs {
    pub uid: u32,
    pub gid: u32,
    pub name: String,
    home: Option<PathBuf>,
    /// True when we are root and switch to `uid`/`gid` for server binaries.
    pub switch: bool,
}

impl RunAs {
    /// The `postgres` OS user when we run as root, else the current user.
    pub(crate) fn detect() -> Result<RunAs> {
        // SAFETY: geteuid/getegid cannot fail.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        if euid == 0 {
            let Some(pw) = lookup_user(SERVER_OS_USER)? else {
                bail!(
                    "running as root, and PostgreSQL refuses to run as root, but there is no \
                     '{SERVER_OS_USER}' OS user to run the server as: install the Debian postgresql \
                     package (it creates that user), create it (`useradd --system --home /var/lib/postgresql \
                     {SERVER_OS_USER}`), or run as an unprivileged user"
                );
            };
            if pw.uid == 0 {
                bail!("the '{SERVER_OS_USER}' OS user has uid 0; PostgreSQL cannot run as root");
            }
            return Ok(RunAs {
                uid: pw.uid,
                gid: pw.gid,
                name: SERVER_OS_USER.to_string(),
                home: Some(pw.home),
                switch: true,
            });
        }
        let name = lookup_uid_name(euid).unwrap_or_else(|| euid.to_string());
        Ok(RunAs {
            uid: euid,
            gid: egid,
            name,
            home: None,
            switch: false,
        })
    }

    /// A command for a server binary: run as this user (when switching), with
    /// a neutral working directory and no inherited `PG*` variables.
    pub(crate) fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = client_command(program);
        if self.switch {
            cmd.uid(self.uid).gid(self.gid);
            cmd.env("USER", &self.name).env("LOGNAME", &self.name);
            if let Some(home) = &self.home {
                cmd.env("HOME", home);
            }
        }
        cmd
    }

    /// Gives `path` to this user (no-op when not switching users).
    pub(crate) fn chown(&self, path: &Path) -> Result<()> {
        if !self.switch {
            return Ok(());
        }
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .with_context(|| format!("chown {} to {}", path.display(), self.name))
    }

    /// Creates `dir` (and parents) if needed, gives it to this user, and makes
    /// sure this user can reach it through its parent directories.
    pub(crate) fn prepare_dir(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        self.chown(dir)?;
        self.ensure_traversable(dir)
    }

    /// Writes a file and gives it to this user with mode 0600 (server files
    /// must be readable by the server, e.g. for pg_basebackup).
    pub(crate) fn write_file(&self, path: &Path, contents: &str) -> Result<()> {
        std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod {}", path.display()))?;
        self.chown(path)
    }

    /// Adds the search (x) bit for this user on every ancestor of `dir` that
    /// lacks it, so the server can reach its directory (e.g. a 0700 root-owned
    /// temporary directory above the cluster directory).
    fn ensure_traversable(&self, dir: &Path) -> Result<()> {
        if !self.switch {
            return Ok(());
        }
        for ancestor in dir.ancestors().skip(1) {
            if ancestor.as_os_str().is_empty() {
                continue;
            }
            let meta = std::fs::metadata(ancestor)
                .with_context(|| format!("stat {}", ancestor.display()))?;
            let mode = meta.permissions().mode();
            let bit = if meta.uid() == self.uid {
                0o100
            } else if meta.gid() == self.gid {
                0o010
            } else {
                0o001
            };
            if mode & bit == 0 {
                tracing::warn!(
                    dir = %ancestor.display(),
                    "adding the search permission on {} so that the '{}' OS user can reach {}",
                    ancestor.display(),
                    self.name,
                    dir.display()
                );
                std::fs::set_permissions(ancestor, std::fs::Permissions::from_mode(mode | bit))
                    .with_context(|| format!("chmod {}", ancestor.display()))?;
            }
        }
        Ok(())
    }
}

/// A command for a client tool (psql, pg_isready, cp): current user, `/` as
/// working directory, no inherited `PG*` environment variables (they would
/// silently redirect connections or change defaults).
pub(crate) fn client_command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir("/");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(&key);
        }
    }
    cmd
}

struct PwEntry {
    uid: u32,
    gid: u32,
    home: PathBuf,
}

/// getpwnam_r: the user's uid, gid and home, or None if there is no such user.
fn lookup_user(name: &str) -> Result<Option<PwEntry>> {
    let cname = CString::new(name).context("user name")?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain old data; zeroed is a valid initial value.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the duration of the call; buf outlives
    // every use of the strings pwd points into.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 {
        bail!(
            "looking up OS user '{name}': {}",
            std::io::Error::from_raw_os_error(rc)
        );
    }
    if result.is_null() {
        return Ok(None);
    }
    let home = if pwd.pw_dir.is_null() {
        PathBuf::from("/")
    } else {
        // SAFETY: non-null, NUL-terminated, points into buf.
        PathBuf::from(
            unsafe { CStr::from_ptr(pwd.pw_dir) }
                .to_string_lossy()
                .into_owned(),
        )
    };
    Ok(Some(PwEntry {
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
        home,
    }))
}

/// getpwuid_r: the name of `uid`, if it has one.
fn lookup_uid_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: as in lookup_user.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: as in lookup_user.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: non-null, NUL-terminated, points into buf.
    Some(
        unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned(),
    )
}
