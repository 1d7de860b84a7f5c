//! Finding the PostgreSQL server binaries (`initdb`, `pg_ctl`, `postgres`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::process;

/// Programs that must all be in a folder for it to count as a server bindir.
const REQUIRED: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// Where Debian installs each major version's server binaries.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// Finds the folder holding the PostgreSQL server binaries.
///
/// Looks, in order, at the `PG_BIN` environment variable (which, when set,
/// must contain `initdb`, `pg_ctl` and `postgres`), at `pg_config --bindir`
/// (used if it holds `initdb`), and at Debian's `/usr/lib/postgresql/<major>/bin`
/// (newest major first). The error names the package to install.
pub fn find_pg_bin() -> Result<PathBuf> {
    let env = std::env::var_os("PG_BIN").filter(|v| !v.is_empty());
    find_pg_bin_from(env.as_deref().map(Path::new))
}

/// Like [`find_pg_bin`], with the value of `PG_BIN` given by the caller
/// instead of read from the environment (`None` = unset).
///
/// Exists so that code and tests can choose the binaries without changing the
/// process environment, which is shared by all threads.
pub fn find_pg_bin_from(pg_bin: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = pg_bin {
        let missing = missing_programs(dir);
        if !missing.is_empty() {
            bail!(
                "PG_BIN is set to {}, but that folder lacks {} (it must hold initdb, pg_ctl and postgres)",
                dir.display(),
                missing.join(", ")
            );
        }
        return absolute(dir);
    }
    if let Some(dir) = pg_config_bindir()
        && is_executable(&dir.join("initdb"))
        && missing_programs(&dir).is_empty()
    {
        return absolute(&dir);
    }
    if let Some(dir) = newest_debian_bindir() {
        return absolute(&dir);
    }
    let package = match pg_config_major() {
        Some(major) => format!("postgresql-{major}"),
        None => "postgresql (e.g. postgresql-15)".to_string(),
    };
    bail!(
        "PostgreSQL server binaries not found (looked at $PG_BIN, `pg_config --bindir` and {DEBIAN_ROOT}/<major>/bin): \
         install the Debian package {package} (or set PG_BIN to the folder holding initdb/pg_ctl/postgres)"
    )
}

/// The required programs missing from `dir`.
fn missing_programs(dir: &Path) -> Vec<&'static str> {
    REQUIRED
        .iter()
        .copied()
        .filter(|p| !is_executable(&dir.join(p)))
        .collect()
}

/// True if `path` is a regular file with an execute bit set.
pub(crate) fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn absolute(dir: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))
}

/// Output of `pg_config <arg>`, if pg_config is on PATH and succeeds.
fn pg_config(arg: &str) -> Option<String> {
    let mut cmd = Command::new("pg_config");
    cmd.arg(arg);
    let out = process::run(&mut cmd, Duration::from_secs(10), "pg_config").ok()?;
    if !out.status.success() {
        return None;
    }
    let s = out.stdout.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn pg_config_bindir() -> Option<PathBuf> {
    pg_config("--bindir").map(PathBuf::from)
}

/// Major version reported by `pg_config --version` ("PostgreSQL 15.18 ..." -> 15).
fn pg_config_major() -> Option<u32> {
    let v = pg_config("--version")?;
    let num = v.split_whitespace().nth(1)?;
    num.split('.').next()?.parse().ok()
}

/// `/usr/lib/postgresql/<major>/bin` for the newest major that has the programs.
fn newest_debian_bindir() -> Option<PathBuf> {
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(DEBIAN_ROOT)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let key: Option<Vec<u32>> = name.split('.').map(|p| p.parse().ok()).collect();
            Some((key?, e.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions
        .into_iter()
        .map(|(_, dir)| dir)
        .find(|dir| missing_programs(dir).is_empty())
}

/// The server binaries of one installation, plus the client tools beside them.
#[derive(Debug, Clone)]
pub(crate) struct PgBin {
    dir: PathBuf,
}

impl PgBin {
    /// Uses `explicit` if given (checked like `PG_BIN`), else [`find_pg_bin`].
    pub(crate) fn resolve(explicit: Option<&Path>) -> Result<PgBin> {
        let dir = match explicit {
            Some(dir) => find_pg_bin_from(Some(dir))
                .with_context(|| format!("pg_bin option {}", dir.display()))?,
            None => find_pg_bin()?,
        };
        Ok(PgBin { dir })
    }

    /// The bindir.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of a program in the bindir.
    pub(crate) fn tool(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A client tool: from the bindir, else /usr/bin, else bare (PATH lookup).
    pub(crate) fn client_tool(&self, name: &str) -> PathBuf {
        let own = self.dir.join(name);
        if is_executable(&own) {
            return own;
        }
        let usr = Path::new("/usr/bin").join(name);
        if is_executable(&usr) {
            return usr;
        }
        PathBuf::from(name)
    }

    /// `postgres --version`, e.g. "postgres (PostgreSQL) 15.18 (Debian ...)".
    pub(crate) fn version(&self) -> Result<String> {
        let mut cmd = Command::new(self.tool("postgres"));
        cmd.arg("--version");
        let out = process::run(&mut cmd, Duration::from_secs(30), "postgres --version")?
            .check("postgres --version")?;
        Ok(out.stdout.trim().to_string())
    }
}
