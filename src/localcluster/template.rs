//! The initdb template cache.
//!
//! `initdb` takes seconds; copying its output takes a fraction of that. The
//! first cluster for a given (bindir, server version, superuser password,
//! locale, OS user) runs `initdb` into
//! `<temp dir>/shardwire-initdb-template-<hash>/data`; later clusters copy it.
//! The template is built in a unique sibling directory and renamed into place,
//! so concurrent test processes racing to build it never see a half-made one
//! (the loser of the race discards its copy).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::SUPERUSER;
use super::binaries::PgBin;
use super::process;
use super::runas::{RunAs, client_command};

/// Bump when the template's contents change meaning.
const FORMAT: &str = "shardwire-initdb-template-v1";
const ENCODING: &str = "UTF8";
const LOCALE: &str = "C";
/// Marker written into a template before it is renamed into place.
const READY: &str = "shardwire-template-ready";
/// Set to 1 to always run initdb instead of copying a template.
const NO_TEMPLATE_ENV: &str = "SHARDWIRE_NO_INITDB_TEMPLATE";

const INITDB_TIMEOUT: Duration = Duration::from_secs(300);

/// Serialises template builds within this process.
static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// Creates a fresh data directory at `dest` (which must not exist yet, and
/// whose parent belongs to `run_as`): a copy of the cached template, or a
/// direct initdb if templates are disabled.
pub(crate) fn create_data_dir(
    bin: &PgBin,
    run_as: &RunAs,
    password: &str,
    dest: &Path,
) -> Result<()> {
    if std::env::var_os(NO_TEMPLATE_ENV).is_some_and(|v| v == "1") {
        return initdb(bin, run_as, password, dest);
    }
    let template = ensure_template(bin, run_as, password)?;
    copy_dir(&template.join("data"), dest)
}

/// Path of the ready template for these inputs, building it if needed.
fn ensure_template(bin: &PgBin, run_as: &RunAs, password: &str) -> Result<PathBuf> {
    let version = bin.version()?;
    let key = xxhash_rust::xxh3::xxh3_64(
        format!(
            "{FORMAT}\0{}\0{version}\0{password}\0{ENCODING}\0{LOCALE}\0{}\0{}",
            bin.dir().display(),
            run_as.uid,
            // SAFETY: geteuid cannot fail.
            unsafe { libc::geteuid() },
        )
        .as_bytes(),
    );
    let final_dir = std::env::temp_dir().join(format!("shardwire-initdb-template-{key:016x}"));
    if is_ready(&final_dir) {
        return Ok(final_dir);
    }
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if is_ready(&final_dir) {
        return Ok(final_dir);
    }
    if final_dir.exists() {
        // Not made by us (no marker): move it aside rather than trust it.
        let aside = sibling(&final_dir, "broken");
        tracing::warn!(dir = %final_dir.display(), "initdb template is incomplete; rebuilding it");
        if std::fs::rename(&final_dir, &aside).is_ok() {
            let _ = std::fs::remove_dir_all(&aside);
        }
    }
    let tmp = sibling(&final_dir, "tmp");
    let built = (|| -> Result<()> {
        std::fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        run_as.chown(&tmp)?;
        initdb(bin, run_as, password, &tmp.join("data"))?;
        std::fs::write(tmp.join(READY), FORMAT)
            .with_context(|| format!("writing {}", tmp.join(READY).display()))?;
        Ok(())
    })();
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match std::fs::rename(&tmp, &final_dir) {
        Ok(()) => Ok(final_dir),
        Err(_) if is_ready(&final_dir) => {
            // Another process won the race; use its template.
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(final_dir)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
                .with_context(|| format!("renaming the initdb template to {}", final_dir.display()))
        }
    }
}

fn is_ready(dir: &Path) -> bool {
    dir.join(READY).is_file()
        && dir.join("data/PG_VERSION").is_file()
        && dir.join("data/global/pg_control").is_file()
}

/// A unique sibling path of `dir`: `<dir>.<what>-<pid>-<nanos>`.
fn sibling(dir: &Path, what: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{what}-{}-{nanos}", std::process::id()));
    dir.with_file_name(name)
}

/// Runs initdb into `dest` (created by initdb; its parent must belong to
/// `run_as`).
pub(crate) fn initdb(bin: &PgBin, run_as: &RunAs, password: &str, dest: &Path) -> Result<()> {
    let parent = dest
        .parent()
        .context("initdb target has no parent directory")?;
    let pwfile = parent.join(format!(".initdb-pw-{}", std::process::id()));
    run_as.write_file(&pwfile, &format!("{password}\n"))?;
    let mut cmd = run_as.command(bin.tool("initdb"));
    cmd.arg("-D")
        .arg(dest)
        .args(["-U", SUPERUSER])
        .arg(format!("--pwfile={}", pwfile.display()))
        .args([
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            &format!("--encoding={ENCODING}"),
            &format!("--locale={LOCALE}"),
            "--no-sync",
        ]);
    let result = process::run(&mut cmd, INITDB_TIMEOUT, "initdb");
    let _ = std::fs::remove_file(&pwfile);
    let out = result?;
    if !out.status.success() {
        bail!(
            "initdb into {} (as OS user '{}') failed ({}): {}",
            dest.display(),
            run_as.name,
            out.status,
            out.describe()
        );
    }
    Ok(())
}

/// `cp -a src dest`: keeps modes and (when run as root) owners.
fn copy_dir(src: &Path, dest: &Path) -> Result<()> {
    if dest.exists() {
        bail!("{} already exists", dest.display());
    }
    let mut cmd = client_command("cp");
    cmd.arg("-a").arg(src).arg(dest);
    process::run(&mut cmd, INITDB_TIMEOUT, "copying the initdb template")?.check(&format!(
        "cp -a {} {}",
        src.display(),
        dest.display()
    ))?;
    Ok(())
}
