//! Real client programs (psql, pgbench) as processes against the in-process
//! proxy: scripts, COPY, multi-statement queries, errors, pgbench in every
//! query mode with a pool large enough and one the clients must share, TLS
//! (optional and required) and the Unix socket.

mod common;

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use common::{APP_DB, APP_PASSWORD, APP_USER, TestEnv};
use shardwire::config::TlsSettings;

/// Longest any single client program may run before the test gives up on it.
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(180);

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

    /// Panics with the whole output unless the program succeeded.
    fn ok(self, what: &str) -> Output {
        assert!(self.status.success(), "{what} failed:\n{}", self.describe());
        self
    }
}

/// A client tool of the cluster's installation, else the one on PATH.
fn tool(env: &TestEnv, name: &str) -> PathBuf {
    let candidate = env.cluster.pg_bin().join(name);
    if candidate.is_file() {
        candidate
    } else {
        PathBuf::from(name)
    }
}

/// A command with no inherited PG* variables (they would redirect the
/// connection), the app password in PGPASSWORD and a connect timeout.
fn client_command(program: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("PGPASSWORD", APP_PASSWORD)
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs a command to its end (killed after [`PROGRAM_TIMEOUT`]).
async fn run(mut cmd: tokio::process::Command, what: &str) -> Output {
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    match tokio::time::timeout(PROGRAM_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(out)) => Output {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        Ok(Err(e)) => panic!("waiting for {what}: {e}"),
        // Dropping the future kills the child (kill_on_drop).
        Err(_) => panic!("{what} did not finish within {PROGRAM_TIMEOUT:?}"),
    }
}

/// `psql -X -A -t -q -v ON_ERROR_STOP=1 -d <conninfo>` plus `args`.
fn psql_with(env: &TestEnv, conninfo: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = client_command(&tool(env, "psql"));
    cmd.args([
        "-X",
        "-A",
        "-t",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        conninfo,
    ]);
    cmd.args(args);
    cmd
}

/// psql through the proxy over TCP (password from PGPASSWORD).
fn psql(env: &TestEnv, args: &[&str]) -> tokio::process::Command {
    let conninfo = format!(
        "host=127.0.0.1 port={} user={APP_USER} dbname={APP_DB} sslmode=disable",
        env.proxy_port()
    );
    psql_with(env, &conninfo, args)
}

/// Non-empty output lines, trimmed.
fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

const SCRIPT: &str = "\
create table items (id int primary key, name text not null);
insert into items values (1, 'one'), (2, 'two');
select name from items where id = 2;
\\copy items from stdin
3\tthree
4\tfour
5\tfive
\\.
select count(*) from items \\; select sum(id) from items;
begin;
insert into items values (6, 'six');
select count(*) from items;
rollback;
select count(*), max(name) from items;
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_script_copy_multi_statement_and_errors() {
    let env = TestEnv::start(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.sql");
    std::fs::write(&script, SCRIPT).unwrap();

    let out = run(
        psql(&env, &["-f", script.to_str().unwrap()]),
        "psql -f script",
    )
    .await
    .ok("psql script");
    assert_eq!(
        lines(&out.stdout),
        vec!["two", "5", "15", "6", "5|two"],
        "unexpected script output:\n{}",
        out.describe()
    );

    // Several statements in one simple Query message (psql -c sends the
    // whole string at once): the insert is committed, the select sees it.
    let out = run(
        psql(
            &env,
            &[
                "-c",
                "insert into items values (7, 'seven'); select count(*) from items",
            ],
        ),
        "psql -c multi-statement",
    )
    .await
    .ok("psql -c multi-statement");
    assert_eq!(lines(&out.stdout), vec!["6"], "{}", out.describe());

    // The rows really are on the server.
    let direct = env.connect_direct().await;
    let row = direct
        .query_one("select count(*), sum(id) from items", &[])
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (6, 22));

    // A failing statement: non-zero exit, the server's error on stderr.
    let out = run(
        psql(&env, &["-c", "select * from no_such_table"]),
        "psql -c failing",
    )
    .await;
    assert!(
        !out.status.success(),
        "a failing statement must fail psql:\n{}",
        out.describe()
    );
    assert!(
        out.stderr
            .contains("relation \"no_such_table\" does not exist"),
        "error text missing on stderr:\n{}",
        out.describe()
    );

    // ON_ERROR_STOP in a script: stops at the error (exit 3), nothing after runs.
    let failing = dir.path().join("failing.sql");
    std::fs::write(&failing, "select 'before';\nselect 1/0;\nselect 'after';\n").unwrap();
    let out = run(
        psql(&env, &["-f", failing.to_str().unwrap()]),
        "psql -f failing",
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "ON_ERROR_STOP must end psql with 3:\n{}",
        out.describe()
    );
    assert_eq!(lines(&out.stdout), vec!["before"], "{}", out.describe());
    assert!(
        out.stderr.contains("division by zero"),
        "{}",
        out.describe()
    );

    // The errors left no broken server connection in the pool: every pooled
    // connection still serves clients.
    for i in 0..6 {
        let out = run(
            psql(&env, &["-c", "select count(*) from items"]),
            "psql after errors",
        )
        .await
        .ok("psql after errors");
        assert_eq!(lines(&out.stdout), vec!["6"], "run {i}: {}", out.describe());
    }
}

/// Parses pgbench's summary and checks every transaction went through.
fn check_pgbench(out: &Output, expected: u64, what: &str) {
    let processed = out
        .stdout
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("number of transactions actually processed:")
        })
        .unwrap_or_else(|| {
            panic!(
                "{what}: no 'transactions actually processed' line:\n{}",
                out.describe()
            )
        });
    let done: u64 = processed
        .trim()
        .split('/')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{what}: cannot parse '{processed}'"));
    assert_eq!(
        done,
        expected,
        "{what}: transactions processed:\n{}",
        out.describe()
    );
    if let Some(failed) = out
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("number of failed transactions:"))
    {
        let n = failed.split_whitespace().next().unwrap_or("");
        assert_eq!(n, "0", "{what}: failed transactions:\n{}", out.describe());
    }
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("error"))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: errors on stderr: {errors:?}\n{}",
        out.describe()
    );
}

fn pgbench(env: &TestEnv, args: &[&str]) -> tokio::process::Command {
    let mut cmd = client_command(&tool(env, "pgbench"));
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &env.proxy_port().to_string(),
        "-U",
        APP_USER,
    ]);
    cmd.args(args);
    cmd.arg(APP_DB);
    cmd
}

async fn pgbench_all_modes(pool_size: usize) {
    let env = TestEnv::start(|config| config.pool.size = pool_size).await;
    let out = run(pgbench(&env, &["-i", "-s", "1"]), "pgbench -i")
        .await
        .ok("pgbench -i");
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("error"))
        .collect();
    assert!(
        errors.is_empty(),
        "pgbench -i: errors on stderr: {errors:?}\n{}",
        out.describe()
    );

    // pgbench -i really loaded scale 1 through the proxy (COPY).
    let direct = env.connect_direct().await;
    let accounts: i64 = direct
        .query_one("select count(*) from pgbench_accounts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(accounts, 100_000);

    let (clients, transactions) = (4u64, 50u64);
    // One pgbench thread per client: in -M prepared pgbench prepares each
    // statement on first use with a *synchronous* PQprepare, which blocks
    // every client of that thread. With fewer servers than clients, a
    // thread whose other client holds a server mid-transaction while this
    // one waits for a server would deadlock pgbench itself (the server sits
    // idle in transaction until the checkout timeout), through any pooler.
    let threads = clients.to_string();
    for mode in ["simple", "prepared", "extended"] {
        let what = format!("pgbench -M {mode} (pool size {pool_size})");
        let args = [
            "-c",
            &clients.to_string(),
            "-j",
            &threads,
            "-t",
            &transactions.to_string(),
            "-M",
            mode,
        ];
        let out = run(pgbench(&env, &args), &what).await.ok(&what);
        check_pgbench(&out, clients * transactions, &what);
    }

    // Every transaction left its history row (pgbench truncates the table
    // before each run, so only the last run's rows remain).
    let history: i64 = direct
        .query_one("select count(*) from pgbench_history", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(history as u64, clients * transactions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_through_proxy_pool_of_four() {
    pgbench_all_modes(4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_through_proxy_clients_share_pool_of_two() {
    pgbench_all_modes(2).await;
}

/// A self-signed certificate for localhost / 127.0.0.1, as PEM files.
fn write_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("generate a self-signed certificate");
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

fn tls_conninfo(env: &TestEnv, sslmode: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user={APP_USER} dbname={APP_DB} sslmode={sslmode}",
        env.proxy_port()
    )
}

/// Runs `select 42` and `\conninfo` with `conninfo`; returns the output.
async fn psql_conninfo(env: &TestEnv, conninfo: &str, what: &str) -> Output {
    run(
        psql_with(env, conninfo, &["-c", "select 42", "-c", "\\conninfo"]),
        what,
    )
    .await
}

fn uses_ssl(out: &Output) -> bool {
    out.stdout.contains("SSL connection")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_optional() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_certificate(dir.path());
    let env = TestEnv::start(|config| {
        config.tls = Some(TlsSettings {
            cert: cert.clone(),
            key,
            require: false,
        })
    })
    .await;

    let out = psql_conninfo(&env, &tls_conninfo(&env, "require"), "psql sslmode=require")
        .await
        .ok("sslmode=require");
    assert_eq!(
        lines(&out.stdout).first(),
        Some(&"42"),
        "{}",
        out.describe()
    );
    assert!(
        uses_ssl(&out),
        "sslmode=require must give a TLS connection:\n{}",
        out.describe()
    );

    // The proxy presents the configured certificate: full verification
    // against it as the only trusted root succeeds for host name localhost.
    let verify = format!(
        "host=localhost hostaddr=127.0.0.1 port={} user={APP_USER} dbname={APP_DB} sslmode=verify-full sslrootcert={}",
        env.proxy_port(),
        cert.display()
    );
    let out = psql_conninfo(&env, &verify, "psql sslmode=verify-full")
        .await
        .ok("sslmode=verify-full");
    assert_eq!(
        lines(&out.stdout).first(),
        Some(&"42"),
        "{}",
        out.describe()
    );
    assert!(uses_ssl(&out), "{}", out.describe());

    let out = psql_conninfo(&env, &tls_conninfo(&env, "disable"), "psql sslmode=disable")
        .await
        .ok("sslmode=disable");
    assert_eq!(
        lines(&out.stdout).first(),
        Some(&"42"),
        "{}",
        out.describe()
    );
    assert!(
        !uses_ssl(&out),
        "sslmode=disable must not use TLS:\n{}",
        out.describe()
    );

    // A larger result over TLS (several TLS records).
    let out = run(
        psql_with(
            &env,
            &tls_conninfo(&env, "require"),
            &[
                "-c",
                "select sum(length(repeat('x', g))) from generate_series(1, 2000) g",
                "-c",
                "select string_agg(g::text, ',') from generate_series(1, 50000) g",
            ],
        ),
        "psql large result over TLS",
    )
    .await
    .ok("large result over TLS");
    let got = lines(&out.stdout);
    assert_eq!(got.first(), Some(&"2001000"), "{}", out.describe());
    let expected: String = (1..=50_000)
        .map(|g| g.to_string())
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(
        got.get(1).copied(),
        Some(expected.as_str()),
        "large TLS result differs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_required() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_certificate(dir.path());
    let env = TestEnv::start(|config| {
        config.tls = Some(TlsSettings {
            cert,
            key,
            require: true,
        })
    })
    .await;

    let out = psql_conninfo(&env, &tls_conninfo(&env, "disable"), "psql sslmode=disable").await;
    assert!(
        !out.status.success(),
        "sslmode=disable must be refused when TLS is required:\n{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("TLS"),
        "the refusal must mention TLS:\n{}",
        out.describe()
    );

    let out = psql_conninfo(&env, &tls_conninfo(&env, "require"), "psql sslmode=require")
        .await
        .ok("sslmode=require");
    assert_eq!(
        lines(&out.stdout).first(),
        Some(&"42"),
        "{}",
        out.describe()
    );
    assert!(uses_ssl(&out), "{}", out.describe());

    // libpq's default (prefer) asks for TLS and gets it.
    let out = psql_conninfo(&env, &tls_conninfo(&env, "prefer"), "psql sslmode=prefer")
        .await
        .ok("sslmode=prefer");
    assert_eq!(
        lines(&out.stdout).first(),
        Some(&"42"),
        "{}",
        out.describe()
    );
    assert!(uses_ssl(&out), "{}", out.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket() {
    let sockets = tempfile::tempdir().unwrap();
    let socket_dir = sockets.path().to_path_buf();
    let env =
        TestEnv::start(|config| config.proxy.unix_socket_dir = Some(socket_dir.clone())).await;
    let socket = socket_dir.join(format!(".s.PGSQL.{}", env.proxy_port()));
    assert!(socket.exists(), "no socket at {}", socket.display());

    let conninfo = format!(
        "host={} port={} user={APP_USER} dbname={APP_DB}",
        socket_dir.display(),
        env.proxy_port()
    );
    let out = run(
        psql_with(
            &env,
            &conninfo,
            &[
                "-c",
                "create table t (x int)",
                "-c",
                "insert into t select generate_series(1, 10)",
                "-c",
                "select sum(x) from t",
                "-c",
                "\\conninfo",
            ],
        ),
        "psql over the unix socket",
    )
    .await
    .ok("psql over the unix socket");
    let got = lines(&out.stdout);
    assert_eq!(got.first(), Some(&"55"), "{}", out.describe());
    assert!(
        out.stdout.contains("via socket in"),
        "psql did not use the socket:\n{}",
        out.describe()
    );

    // psql -h <dir> -p <port>, the usual spelling.
    let mut cmd = client_command(&tool(&env, "psql"));
    cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(&socket_dir)
        .args([
            "-p",
            &env.proxy_port().to_string(),
            "-U",
            APP_USER,
            "-d",
            APP_DB,
            "-c",
            "select count(*) from t",
        ]);
    let out = run(cmd, "psql -h <socket dir>")
        .await
        .ok("psql -h <socket dir>");
    assert_eq!(lines(&out.stdout), vec!["10"], "{}", out.describe());

    // Stopping the proxy removes its socket file.
    drop(env);
    assert!(
        !socket.exists(),
        "the proxy left its socket {} behind",
        socket.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_needs_no_tls_when_tls_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_certificate(dir.path());
    let socket_dir = dir.path().join("sock");
    std::fs::create_dir(&socket_dir).unwrap();
    let sd = socket_dir.clone();
    let env = TestEnv::start(|config| {
        config.tls = Some(TlsSettings {
            cert,
            key,
            require: true,
        });
        config.proxy.unix_socket_dir = Some(sd);
    })
    .await;
    // tls.require refuses clients "that do not ask for TLS on TCP
    // connections": the Unix socket stays usable without TLS.
    let conninfo = format!(
        "host={} port={} user={APP_USER} dbname={APP_DB}",
        socket_dir.display(),
        env.proxy_port()
    );
    let out = run(
        psql_with(&env, &conninfo, &["-c", "select 7"]),
        "psql unix socket, tls required",
    )
    .await
    .ok("psql unix socket with tls.require");
    assert_eq!(lines(&out.stdout), vec!["7"], "{}", out.describe());
}
