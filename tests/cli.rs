//! The `shardwire` binary as a process: `check-config`, `serve` (until
//! SIGTERM), and `demo` (ready line, cluster.json, admin console and
//! metrics URLs, Ctrl-C, crashes of the proxy and of the postmaster, a
//! taken port).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const SHARDWIRE: &str = env!("CARGO_BIN_EXE_shardwire");
/// Generous bound for a program that should finish at once.
const QUICK: Duration = Duration::from_secs(60);
/// Bound for the demo to get ready (it may load its data).
const DEMO_READY: Duration = Duration::from_secs(120);
/// Bound for a process to exit after a signal (stopping Postgres included).
const EXIT_WAIT: Duration = Duration::from_secs(90);

// ----- helpers: processes -----

/// What a finished program printed, and how it ended.
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Output {
    fn describe(&self) -> String {
        format!(
            "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// A command with no inherited PG* variables (they would redirect
/// connections), default SIGINT/SIGTERM handling (as from a terminal, even
/// if the test runner ignores them) and its own process group (so signals
/// meant for it reach only it and its children).
fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: signal(2) is async-signal-safe; nothing else runs in the child
    // between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            Ok(())
        });
    }
    cmd
}

/// A running child process, killed (SIGKILL to its process group) on drop,
/// with its output collected by threads: stdout line by line into a channel
/// and a buffer, stderr into a buffer.
struct Proc {
    what: String,
    child: Child,
    lines: Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Proc {
    fn spawn(mut cmd: Command, what: &str) -> Proc {
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = channel();
        let out_pipe = child.stdout.take().expect("stdout piped");
        let err_pipe = child.stderr.take().expect("stderr piped");
        let out_buf = Arc::clone(&stdout);
        let err_buf = Arc::clone(&stderr);
        let readers = vec![
            std::thread::spawn(move || {
                for line in BufReader::new(out_pipe).lines() {
                    let Ok(line) = line else { break };
                    out_buf.lock().unwrap().push_str(&format!("{line}\n"));
                    let _ = tx.send(line);
                }
            }),
            std::thread::spawn(move || {
                let mut pipe = err_pipe;
                let mut chunk = [0u8; 8192];
                loop {
                    match pipe.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => err_buf
                            .lock()
                            .unwrap()
                            .push_str(&String::from_utf8_lossy(&chunk[..n])),
                    }
                }
            }),
        ];
        Proc {
            what: what.to_string(),
            child,
            lines,
            stdout,
            stderr,
            readers,
            status: None,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn describe(&self) -> String {
        format!(
            "{} (status {:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.status,
            self.stdout.lock().unwrap(),
            self.stderr()
        )
    }

    /// Exit status if the process has ended.
    fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Waits at most `timeout` for the process to end.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.poll_exit() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the end and for all output (bounded), then returns it.
    fn finish(mut self, timeout: Duration) -> Output {
        let status = self.wait_exit(timeout).unwrap_or_else(|| {
            panic!(
                "{} did not finish within {timeout:?}:\n{}",
                self.what,
                self.describe()
            )
        });
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Output {
            status,
            stdout: self.stdout.lock().unwrap().clone(),
            stderr: self.stderr(),
        }
    }

    /// Waits for a stdout line starting with `prefix`; panics (with all
    /// output) on timeout or if the process ends first.
    fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(500)))
            {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.wait_exit(Duration::from_secs(5));
                    panic!(
                        "{} closed stdout before printing '{prefix}':\n{}",
                        self.what,
                        self.describe()
                    );
                }
                Err(RecvTimeoutError::Timeout) => {
                    if Instant::now() >= deadline {
                        panic!(
                            "{} printed no '{prefix}' line within {timeout:?}:\n{}",
                            self.what,
                            self.describe()
                        );
                    }
                }
            }
        }
    }

    /// Sends `signal` to the process group (a terminal's Ctrl-C reaches the
    /// whole foreground group).
    fn signal_group(&self, signal: i32) {
        // SAFETY: plain kill(2) on the group this test created.
        unsafe {
            libc::kill(-self.pid(), signal);
        }
    }

    /// Sends `signal` to the process only.
    fn signal(&self, signal: i32) {
        // SAFETY: plain kill(2) on a child of this test.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.poll_exit().is_none() {
            self.signal_group(libc::SIGKILL);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs a program to its end (killed after `timeout`).
fn run(cmd: Command, what: &str, timeout: Duration) -> Output {
    Proc::spawn(cmd, what).finish(timeout)
}

fn shardwire(args: &[&str]) -> Command {
    let mut cmd = command(SHARDWIRE);
    cmd.args(args);
    cmd
}

/// psql of the installation localcluster uses, else the one on PATH.
fn psql_program() -> PathBuf {
    shardwire::localcluster::find_pg_bin()
        .ok()
        .map(|dir| dir.join("psql"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("psql"))
}

/// `psql -X -A -t -q -v ON_ERROR_STOP=1 <url> -c <sql>`; panics unless it succeeds.
fn psql(url: &str, sql: &str) -> String {
    let mut cmd = command(psql_program());
    cmd.args([
        "-X",
        "-A",
        "-t",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        url,
        "-c",
        sql,
    ]);
    let out = run(cmd, "psql", QUICK);
    assert!(
        out.status.success(),
        "psql {url} -c {sql:?} failed:\n{}",
        out.describe()
    );
    out.stdout.trim().to_string()
}

// ----- helpers: network and processes of a directory -----

/// A loopback port free right now (bound to port 0, then released).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

fn port_accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

/// Waits (bounded) until `port` accepts, failing early if `proc` exits.
fn wait_port_accepts(proc: &mut Proc, port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !port_accepts(port) {
        if proc.poll_exit().is_some() {
            panic!(
                "{} exited before listening on {port}:\n{}",
                proc.what,
                proc.describe()
            );
        }
        if Instant::now() >= deadline {
            panic!(
                "port {port} did not accept within {timeout:?}:\n{}",
                proc.describe()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (bounded) until `port` refuses connections; returns whether it does.
fn wait_port_closed(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !port_accepts(port) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Live processes working inside `dir` (a postmaster and its children chdir
/// into their data directory). Zombies have no cwd and are not listed.
fn processes_under(dir: &Path) -> Vec<(i32, String)> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(&dir))
        })
        .map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            (pid, cmdline)
        })
        .collect()
}

/// Waits (bounded) until no process works inside `dir`; returns those left.
fn wait_no_processes_under(dir: &Path, timeout: Duration) -> Vec<(i32, String)> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = processes_under(dir);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn pid_gone(pid: i32) -> bool {
    // A zombie (reparented, not yet reaped) counts as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// A temporary demo directory; on drop, SIGKILLs every process still working
/// inside it (Postgres servers a failed test left behind), then deletes it.
struct DemoDir {
    dir: tempfile::TempDir,
}

impl DemoDir {
    fn new() -> DemoDir {
        DemoDir {
            dir: tempfile::Builder::new()
                .prefix("sw-demo-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for DemoDir {
    fn drop(&mut self) {
        for _ in 0..3 {
            let left = processes_under(self.dir.path());
            if left.is_empty() {
                return;
            }
            for (pid, _) in left {
                // SAFETY: plain kill(2) on a server this test's demo started.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

// ----- check-config -----

const VALID: &str = r#"
[proxy]
listen = ["127.0.0.1:6543"]

[pool]
size = 4

[[users]]
name = "app"
password = "secret"

[[databases]]
name = "app"

[[shards]]
name = "s0"
primary = "127.0.0.1:5432"
"#;

const BROKEN: &str = r#"
[proxy]
listen = ["localhost:x"]

[pool]
size = 0
min_idle = 3

[[users]]
name = "a"
auth = "md5"

[[users]]
name = "a"
password = "SCRAM-SHA-256$broken"

[[databases]]
name = "shardwire"

[[shards]]
name = "s0"
primary = "nohostport"
replicas = ["127.0.0.1:0"]
"#;

fn check_config(path: &Path) -> Output {
    run(
        shardwire(&["check-config", path.to_str().unwrap()]),
        "shardwire check-config",
        QUICK,
    )
}

#[test]
fn check_config_accepts_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shardwire.toml");
    std::fs::write(&path, VALID).unwrap();
    let out = check_config(&path);
    assert!(out.status.success(), "{}", out.describe());
    assert!(out.stdout.contains("OK"), "{}", out.describe());
    assert!(
        out.stdout.contains(path.to_str().unwrap()),
        "the file is named:\n{}",
        out.describe()
    );
    assert!(out.stdout.contains("1 users"), "{}", out.describe());
}

#[test]
fn check_config_lists_every_problem_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, BROKEN).unwrap();
    let out = check_config(&path);
    assert!(
        !out.status.success(),
        "a broken config must fail:\n{}",
        out.describe()
    );
    assert!(!out.stdout.contains("OK"), "{}", out.describe());
    let text = format!("{}{}", out.stdout, out.stderr);
    for location in [
        "proxy.listen[0]",
        "pool.size",
        "pool.min_idle",
        "users[1].name",
        "users[0].password",
        "users[1].password",
        "databases[0].name",
        "shards[0].primary",
        "shards[0].replicas[0]",
    ] {
        assert!(
            text.contains(location),
            "problem at {location} not reported:\n{}",
            out.describe()
        );
    }
    assert!(text.contains("9 problem"), "{}", out.describe());
    assert!(
        text.contains(path.to_str().unwrap()),
        "the file is named:\n{}",
        out.describe()
    );
}

#[test]
fn check_config_reports_syntax_errors_with_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("syntax.toml");
    std::fs::write(&path, "[[users]]\nname = \"app\"\npassword = \n").unwrap();
    let out = check_config(&path);
    assert!(!out.status.success(), "{}", out.describe());
    assert!(
        out.stderr.contains("line 3"),
        "the line of the error is named:\n{}",
        out.describe()
    );
    assert!(
        out.stderr.contains(path.to_str().unwrap()),
        "{}",
        out.describe()
    );

    // An unknown key is a schema error, also with its line.
    let unknown = VALID.replace("size = 4", "size = 4\nsise = 5");
    std::fs::write(&path, &unknown).unwrap();
    let line = unknown.lines().position(|l| l.starts_with("sise")).unwrap() + 1;
    let out = check_config(&path);
    assert!(!out.status.success(), "{}", out.describe());
    assert!(out.stderr.contains("sise"), "{}", out.describe());
    assert!(
        out.stderr.contains(&format!("line {line}")),
        "{}",
        out.describe()
    );
}

#[test]
fn check_config_on_a_missing_file_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("does-not-exist.toml");
    let out = check_config(&path);
    assert!(!out.status.success(), "{}", out.describe());
    assert!(
        out.stderr.contains(path.to_str().unwrap()),
        "the file is named:\n{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("No such file"),
        "the reason is given:\n{}",
        out.describe()
    );
    assert!(out.stdout.trim().is_empty(), "{}", out.describe());
}

/// A valid config with a sharded database whose map is `maps/app.toml`
/// (relative to the config file) over two shards.
const SHARDED: &str = r#"
[[users]]
name = "app"
password = "secret"

[[databases]]
name = "app"
shard_map = "maps/app.toml"

[[shards]]
name = "shard0"
primary = "127.0.0.1:5432"

[[shards]]
name = "shard1"
primary = "127.0.0.1:5433"
"#;

/// A shard map with several problems, one of each kind.
const BROKEN_MAP: &str = r#"
buckets = 8
default_shard = "shard9"

[[bucket_ranges]]
buckets = "0-4"
shard = "shard0"

[[bucket_ranges]]
buckets = "3-5"
shard = "shard1"

[[tables]]
name = "clients"
key = "client_id"
type = "bigint"
group = "client"

[[tables]]
name = "orders"
key = ""
type = "integer"
group = "client"

[[tables]]
name = "events"
key = "day"
type = "text"
strategy = "range"
ranges = [{ from = "a", to = "m", shard = "shard0" }, { from = "k", shard = "shard1" }]
"#;

/// Writes `config` as `shardwire.toml` and `map` as `maps/app.toml` in `dir`.
fn write_sharded(dir: &Path, config: &str, map: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("maps")).unwrap();
    std::fs::write(dir.join("maps/app.toml"), map).unwrap();
    let path = dir.join("shardwire.toml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn check_config_loads_the_shard_maps() {
    let dir = tempfile::tempdir().unwrap();
    let map = include_str!("../shard-maps/demo.toml");
    let path = write_sharded(dir.path(), SHARDED, map);
    let out = check_config(&path);
    assert!(out.status.success(), "{}", out.describe());
    assert!(out.stdout.contains("1 shard maps"), "{}", out.describe());
}

#[test]
fn check_config_lists_every_shard_map_problem_with_its_file() {
    let dir = tempfile::tempdir().unwrap();
    // One config problem too: both kinds are listed together.
    let config = SHARDED.replace("password = \"secret\"", "");
    let path = write_sharded(dir.path(), &config, BROKEN_MAP);
    let out = check_config(&path);
    assert!(!out.status.success(), "{}", out.describe());
    assert!(!out.stdout.contains("OK"), "{}", out.describe());
    let map_path = dir.path().join("maps/app.toml");
    let map_path = map_path.to_str().unwrap();
    for (location, says) in [
        ("users[0].password".to_string(), "needs a password"),
        (
            format!("{map_path}: default_shard"),
            "unknown shard \"shard9\"",
        ),
        (
            format!("{map_path}: bucket_ranges[1].buckets"),
            "buckets 3-4 already assigned by bucket_ranges[0]",
        ),
        (
            format!("{map_path}: bucket_ranges"),
            "buckets 6-7 assigned to no shard",
        ),
        (
            format!("{map_path}: tables[1].key"),
            "must name the key column",
        ),
        (
            format!("{map_path}: tables[2].ranges[1]"),
            "overlaps ranges[0]",
        ),
    ] {
        assert!(
            out.stderr.contains(&format!("{location}: ")) && out.stderr.contains(says),
            "problem at {location} ({says}) not reported:\n{}",
            out.describe()
        );
    }
    assert!(out.stderr.contains("6 problem"), "{}", out.describe());

    // A map that cannot be read is named with its path.
    let config = SHARDED.replace("maps/app.toml", "maps/missing.toml");
    std::fs::write(&path, config).unwrap();
    let out = check_config(&path);
    assert!(!out.status.success(), "{}", out.describe());
    let missing = dir.path().join("maps/missing.toml");
    assert!(
        out.stderr.contains("databases[0].shard_map")
            && out.stderr.contains(missing.to_str().unwrap())
            && out.stderr.contains("No such file"),
        "{}",
        out.describe()
    );
}

// ----- serve -----

fn serve_config(listen_port: u16, server_port: u16) -> String {
    format!(
        r#"
[proxy]
listen = ["127.0.0.1:{listen_port}"]

[pool]
size = 4

[[users]]
name = "{user}"
password = "{password}"

[[databases]]
name = "{db}"

[[shards]]
name = "shard0"
primary = "127.0.0.1:{server_port}"
"#,
        user = common::APP_USER,
        password = common::APP_PASSWORD,
        db = common::APP_DB,
    )
}

#[test]
fn serve_answers_queries_and_exits_on_sigterm() {
    let cluster = common::start_cluster();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = dir.path().join("shardwire.toml");
    std::fs::write(&path, serve_config(port, cluster.port())).unwrap();

    let mut serve = Proc::spawn(
        shardwire(&["serve", "--config", path.to_str().unwrap()]),
        "shardwire serve",
    );
    wait_port_accepts(&mut serve, port, Duration::from_secs(60));
    let url = format!(
        "postgres://{}:{}@127.0.0.1:{port}/{}",
        common::APP_USER,
        common::APP_PASSWORD,
        common::APP_DB
    );
    assert_eq!(psql(&url, "select 40 + 2"), "42");
    assert_eq!(
        psql(
            &url,
            "create table t (x int); insert into t values (1), (2); select sum(x) from t"
        ),
        "3"
    );

    // An idle client connection must not keep the process alive.
    let _idle = TcpStream::connect(("127.0.0.1", port)).expect("idle connection");
    serve.signal(libc::SIGTERM);
    let status = serve.wait_exit(EXIT_WAIT);
    assert!(
        status.is_some(),
        "serve did not exit after SIGTERM:\n{}",
        serve.describe()
    );
    assert!(
        status.unwrap().success(),
        "serve must exit cleanly on SIGTERM:\n{}",
        serve.describe()
    );
    assert!(
        wait_port_closed(port, Duration::from_secs(10)),
        "port {port} still accepts after serve exited"
    );
}

#[test]
fn serve_with_a_bad_config_exits_without_listening() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = dir.path().join("bad.toml");
    let text =
        serve_config(port, 5432).replace("primary = \"127.0.0.1:5432\"", "primary = \"127.0.0.1\"");
    std::fs::write(&path, text).unwrap();

    let mut serve = Proc::spawn(
        shardwire(&["serve", "--config", path.to_str().unwrap()]),
        "shardwire serve (bad config)",
    );
    // While it runs (if it does), it must not listen.
    let deadline = Instant::now() + QUICK;
    while serve.poll_exit().is_none() && Instant::now() < deadline {
        assert!(
            !port_accepts(port),
            "serve listens despite a bad config:\n{}",
            serve.describe()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = serve.finish(Duration::from_secs(5));
    assert!(
        !out.status.success(),
        "serve must fail on a bad config:\n{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("shards[0].primary"),
        "the problem is printed:\n{}",
        out.describe()
    );
    assert!(!port_accepts(port));
}

#[test]
fn serve_fails_cleanly_when_it_cannot_start() {
    let dir = tempfile::tempdir().unwrap();
    // The listen port is taken.
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let path = dir.path().join("taken.toml");
    std::fs::write(&path, serve_config(port, 5432)).unwrap();
    let out = run(
        shardwire(&["serve", "--config", path.to_str().unwrap()]),
        "shardwire serve (port taken)",
        QUICK,
    );
    assert!(!out.status.success(), "{}", out.describe());
    assert!(
        out.stderr.contains(&format!("127.0.0.1:{port}")),
        "the address is named:\n{}",
        out.describe()
    );
    drop(holder);

    // The TLS certificate does not exist.
    let port = free_port();
    let missing = dir.path().join("missing.crt");
    let text = format!(
        "{}\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        serve_config(port, 5432),
        missing.display(),
        dir.path().join("missing.key").display()
    );
    std::fs::write(&path, text).unwrap();
    let out = run(
        shardwire(&["serve", "--config", path.to_str().unwrap()]),
        "shardwire serve (no cert)",
        QUICK,
    );
    assert!(!out.status.success(), "{}", out.describe());
    assert!(
        out.stderr.contains("missing.crt"),
        "the file is named:\n{}",
        out.describe()
    );
    assert!(!port_accepts(port));
}

// ----- demo -----

#[derive(serde::Deserialize, Debug)]
struct ClusterEntry {
    role: String,
    shard: String,
    host: String,
    port: u16,
    data_dir: PathBuf,
}

fn read_cluster_json(dir: &Path) -> Vec<ClusterEntry> {
    let path = dir.join("cluster.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} does not parse: {e}\n{text}", path.display()))
}

/// Starts the demo on `port`; its metrics go to any free port (read back
/// from the ready output) unless `extra` names one: the default, 9930, may
/// be in use, and demos run in parallel.
fn start_demo(port: u16, dir: &Path, extra: &[&str]) -> Proc {
    let mut args = vec![
        "demo".to_string(),
        "--port".to_string(),
        port.to_string(),
        "--dir".to_string(),
        dir.display().to_string(),
    ];
    if !extra.contains(&"--metrics-port") {
        args.extend(["--metrics-port".to_string(), "0".to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut cmd = command(SHARDWIRE);
    cmd.args(&args);
    Proc::spawn(cmd, &format!("shardwire {}", args.join(" ")))
}

/// Waits for the ready line and returns the URL it prints.
fn wait_demo_ready(demo: &mut Proc, port: u16) -> String {
    let line = demo.wait_for_line("shardwire demo ready: ", DEMO_READY);
    let url = line
        .trim_start_matches("shardwire demo ready: ")
        .trim()
        .to_string();
    assert_eq!(
        url,
        format!("postgres://demo:demo@127.0.0.1:{port}/demo"),
        "ready line: {line}"
    );
    url
}

/// Checks the admin line of the ready output and that its URL reaches the
/// console.
fn check_admin_line(demo: &mut Proc, port: u16) {
    let line = demo.wait_for_line("  admin:", QUICK);
    let url = format!("postgres://admin:admin@127.0.0.1:{port}/shardwire");
    assert!(line.contains(&format!("'{url}'")), "admin line: {line}");
    for command in ["SHOW POOLS", "SHOW QUERIES", "SHOW SLOW"] {
        assert!(line.contains(command), "the hint names {command}: {line}");
    }
    assert!(
        psql(&url, "SHOW VERSION").contains("shardwire"),
        "the admin URL reaches the console"
    );
}

/// Reads the metrics line of the ready output, scrapes that URL and
/// checks what a demo that loaded its data through the proxy must report.
fn check_metrics_line(demo: &mut Proc) {
    let line = demo.wait_for_line("  metrics:", QUICK);
    let url = line.trim_start_matches("  metrics:").trim();
    let addr: SocketAddr = url
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("metrics line: {line}"));
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{line}");
    let body = http_get_metrics(addr);
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("the Prometheus text format");
    let series = |metric: &str| -> Vec<&prometheus_parse::Sample> {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .collect()
    };
    // Two shards of a primary and a replica each.
    assert_eq!(series("shardwire_replica_lag_bytes").len(), 4, "{body}");
    assert_eq!(series("shardwire_replica_in_rotation").len(), 4, "{body}");
    assert!(!series("shardwire_server_connections").is_empty(), "{body}");
    let statements: f64 = series("shardwire_queries_total")
        .iter()
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) => v,
            _ => 0.0,
        })
        .sum();
    assert!(
        statements > 0.0,
        "the data load counted no statement:\n{body}"
    );
}

/// `GET /metrics` over plain HTTP; panics unless the answer is 200.
fn http_get_metrics(addr: SocketAddr) -> String {
    use std::io::Write;
    let mut stream = TcpStream::connect_timeout(&addr, QUICK).expect("connect to metrics");
    stream.set_read_timeout(Some(QUICK)).expect("read timeout");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

fn clients_count(url: &str) -> i64 {
    let count: i64 = psql(url, "select count(*) from clients")
        .parse()
        .expect("count(*) is a number");
    assert!(count > 0, "the demo has no clients");
    count
}

fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// The Postgres ports of every demo cluster, from cluster.json.
fn demo_ports(dir: &Path) -> Vec<u16> {
    read_cluster_json(dir).iter().map(|e| e.port).collect()
}

/// Ctrl-C to the demo: it must exit cleanly and leave no server running.
fn interrupt_demo(mut demo: Proc, dir: &Path, pg_ports: &[u16]) {
    demo.signal_group(libc::SIGINT);
    let status = demo.wait_exit(EXIT_WAIT);
    assert!(
        status.is_some(),
        "demo did not exit within {EXIT_WAIT:?} after Ctrl-C:\n{}",
        demo.describe()
    );
    assert!(
        status.unwrap().success(),
        "demo must exit cleanly on Ctrl-C:\n{}",
        demo.describe()
    );
    let left = wait_no_processes_under(dir, Duration::from_secs(30));
    assert!(
        left.is_empty(),
        "server processes left after Ctrl-C: {left:?}\n{}",
        demo.describe()
    );
    for pg_port in pg_ports {
        assert!(
            !port_accepts(*pg_port),
            "the demo's Postgres port {pg_port} still accepts after Ctrl-C"
        );
    }
}

#[test]
fn demo_serves_stops_on_ctrl_c_and_survives_crashes() {
    let dir = DemoDir::new();
    let port = free_port();
    let data_dir = std::fs::canonicalize(dir.path())
        .unwrap()
        .join("shard0")
        .join("data");

    // 1. A fresh demo: ready line, data, cluster.json, Ctrl-C stops it all.
    let mut demo = start_demo(port, dir.path(), &[]);
    let url = wait_demo_ready(&mut demo, port);
    check_admin_line(&mut demo, port);
    check_metrics_line(&mut demo);
    let clients = clients_count(&url);
    psql(
        &url,
        "create table test_marker (x int); insert into test_marker values (42)",
    );
    let entries = read_cluster_json(dir.path());
    assert_eq!(
        entries.len(),
        4,
        "two shards, a primary and a replica each: {entries:?}"
    );
    let (primaries, replicas): (Vec<&ClusterEntry>, Vec<&ClusterEntry>) =
        entries.iter().partition(|e| e.role == "primary");
    assert_eq!(replicas.len(), 2, "{entries:?}");
    assert!(replicas.iter().all(|e| e.role == "replica"), "{entries:?}");
    for (i, (primary, replica)) in primaries.iter().zip(&replicas).enumerate() {
        let shard = format!("shard{i}");
        for entry in [primary, replica] {
            assert_eq!(entry.shard, shard);
            assert_eq!(entry.host, "127.0.0.1");
            assert!(
                port_accepts(entry.port),
                "cluster.json names port {} where no server listens",
                entry.port
            );
        }
        // The ready output names both servers of the shard.
        let line = demo.wait_for_line(&format!("  {shard}:"), QUICK);
        assert!(
            line.contains(&format!("primary 127.0.0.1:{}", primary.port))
                && line.contains(&format!("replica 127.0.0.1:{}", replica.port)),
            "ready output for {shard}: {line}"
        );
        // The data went through the proxy and was split: each shard holds
        // some clients, and every shard has all assets (a reference table).
        let direct = format!("postgres://demo:demo@127.0.0.1:{}/demo", primary.port);
        let here: i64 = psql(&direct, "select count(*) from clients")
            .parse()
            .unwrap();
        assert!(
            here > 0 && here < clients,
            "{shard} holds {here} of {clients} clients"
        );
        assert_eq!(psql(&direct, "select count(*) from assets"), "1200");
        // The replica is a hot standby that replayed the load.
        let standby = format!("postgres://demo:demo@127.0.0.1:{}/demo", replica.port);
        assert_eq!(psql(&standby, "select pg_is_in_recovery()"), "t");
        let expected = format!("{here}|1200");
        let replayed =
            "select (select count(*) from clients) || '|' || (select count(*) from assets)";
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = psql(&standby, replayed);
        while seen != expected && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            seen = psql(&standby, replayed);
        }
        assert_eq!(seen, expected, "the replica of {shard} lacks the demo data");
    }
    assert_eq!(
        std::fs::canonicalize(&entries[0].data_dir).unwrap(),
        data_dir
    );
    interrupt_demo(demo, dir.path(), &demo_ports(dir.path()));
    assert!(
        !port_accepts(port),
        "the proxy port still accepts after Ctrl-C"
    );
    assert!(
        !data_dir.join("postmaster.pid").exists(),
        "postmaster.pid left after a clean stop"
    );

    // 2. --keep reuses the data; then the proxy crashes (kill -9) and the
    // server it started keeps running.
    let mut demo = start_demo(port, dir.path(), &["--keep"]);
    let url = wait_demo_ready(&mut demo, port);
    assert_eq!(
        psql(&url, "select x from test_marker"),
        "42",
        "--keep lost the data"
    );
    assert_eq!(clients_count(&url), clients);
    let pg_port = read_cluster_json(dir.path())[0].port;
    demo.signal(libc::SIGKILL);
    assert!(
        demo.wait_exit(EXIT_WAIT).is_some(),
        "kill -9 did not end the demo"
    );
    drop(demo);
    assert!(
        port_accepts(pg_port),
        "precondition: Postgres survives a crash of the demo"
    );

    // 3. --keep after that crash: the running server is adopted (or
    // restarted) and served.
    let mut demo = start_demo(port, dir.path(), &["--keep"]);
    let url = wait_demo_ready(&mut demo, port);
    assert_eq!(psql(&url, "select x from test_marker"), "42");
    assert_eq!(clients_count(&url), clients);

    // 4. Both crash: the demo and then the postmaster (kill -9), leaving a
    // stale postmaster.pid behind.
    demo.signal(libc::SIGKILL);
    assert!(
        demo.wait_exit(EXIT_WAIT).is_some(),
        "kill -9 did not end the demo"
    );
    drop(demo);
    let pid = postmaster_pid(&data_dir).expect("a running server has a postmaster.pid");
    // SAFETY: plain kill(2) on the postmaster this test's demo started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pid_gone(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(pid_gone(pid), "postmaster {pid} survived SIGKILL");
    assert!(
        data_dir.join("postmaster.pid").exists(),
        "precondition: a stale postmaster.pid"
    );

    // 5. --keep recovers from the stale pid file and serves the same data.
    let mut demo = start_demo(port, dir.path(), &["--keep"]);
    let url = wait_demo_ready(&mut demo, port);
    assert_eq!(psql(&url, "select x from test_marker"), "42");
    assert_eq!(clients_count(&url), clients);
    interrupt_demo(demo, dir.path(), &demo_ports(dir.path()));
    assert!(wait_no_processes_under(dir.path(), Duration::from_secs(10)).is_empty());
}

#[test]
fn demo_ctrl_c_during_setup_stops_postgres() {
    let dir = DemoDir::new();
    let port = free_port();
    let mut demo = start_demo(port, dir.path(), &[]);
    // The server runs and the data is loading: Ctrl-C now.
    demo.wait_for_line("loading demo data", DEMO_READY);
    assert!(
        !processes_under(dir.path()).is_empty(),
        "precondition: the demo's server runs"
    );
    demo.signal_group(libc::SIGINT);
    let status = demo.wait_exit(EXIT_WAIT);
    assert!(
        status.is_some(),
        "demo did not exit within {EXIT_WAIT:?} after Ctrl-C:\n{}",
        demo.describe()
    );
    let left = wait_no_processes_under(dir.path(), Duration::from_secs(30));
    assert!(
        left.is_empty(),
        "Ctrl-C during the demo's setup left server processes running: {left:?}\n{}",
        demo.describe()
    );
}

#[test]
fn demo_on_a_taken_port_fails_fast() {
    let dir = DemoDir::new();
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let demo_dir = dir.path().join("demo");
    let out = start_demo(port, &demo_dir, &[]).finish(QUICK);
    assert!(
        !out.status.success(),
        "demo must fail on a taken port:\n{}",
        out.describe()
    );
    assert!(
        out.stderr.contains(&port.to_string()),
        "the port is named:\n{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("taken"),
        "the message says the port is taken:\n{}",
        out.describe()
    );
    assert!(
        !demo_dir.join("shard0").exists(),
        "a cluster was created before the port check"
    );
    assert!(processes_under(dir.path()).is_empty());
    // The listener we hold is untouched.
    assert!(port_accepts(port));

    // The same when the metrics port is the taken one.
    let out = start_demo(
        free_port(),
        &demo_dir,
        &["--metrics-port", &port.to_string()],
    )
    .finish(QUICK);
    assert!(
        !out.status.success()
            && out.stderr.contains(&port.to_string())
            && out.stderr.contains("taken")
            && out.stderr.contains("--metrics-port"),
        "demo must fail on a taken metrics port, naming it and the flag:\n{}",
        out.describe()
    );
    assert!(
        !demo_dir.join("shard0").exists(),
        "a cluster was created before the metrics port check"
    );
    assert!(processes_under(dir.path()).is_empty());
}
