//! Integration tests of `shardwire::localcluster` against real PostgreSQL
//! servers started from the system's binaries.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use shardwire::localcluster::{
    ClusterOptions, LocalCluster, ReplicaOptions, Role, find_pg_bin, find_pg_bin_from,
};

/// Set in a child test process started by one of the tests below.
const CHILD_ENV: &str = "SHARDWIRE_LOCALCLUSTER_CHILD";

fn opts() -> ClusterOptions {
    ClusterOptions::for_tests()
}

/// Connects with tokio-postgres (SCRAM over TCP) and drives the connection.
async fn connect(conn_str: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conn_str, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Polls `f` until it returns true, for at most 60 s (no timing is asserted:
/// the bound only keeps a broken test from hanging).
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs one test of this binary in a child process, with extra environment.
fn run_child_test(name: &str, env: &[(&str, &str)]) -> std::process::Output {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running child test")
}

fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

fn pid_in(data_dir: &Path) -> Option<i32> {
    std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// True if `pid` is a live process working in `data_dir` (not a zombie).
fn server_alive(pid: i32, data_dir: &Path) -> bool {
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
    let want = std::fs::canonicalize(data_dir).ok();
    cwd.is_some() && cwd == want
}

#[tokio::test]
async fn temp_cluster_accepts_scram_login_and_rejects_a_wrong_password() {
    let cluster = LocalCluster::start_temp(&opts()).expect("start temp cluster");
    assert_eq!(cluster.role(), Role::Primary);
    assert_eq!(cluster.host(), "127.0.0.1");
    assert!(cluster.port() > 0);
    assert!(cluster.data_dir().join("PG_VERSION").is_file());
    assert!(cluster.pg_bin().join("pg_ctl").is_file());

    let client = connect(&cluster.connection_string("postgres"))
        .await
        .expect("connect with the right password");
    let row = client.query_one("select 1", &[]).await.expect("select 1");
    assert_eq!(row.get::<_, i32>(0), 1);
    // The settings this module writes are in force.
    let row = client
        .query_one("select current_setting('max_prepared_transactions')", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "20");
    let row = client
        .query_one("select current_setting('listen_addresses')", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "127.0.0.1");

    let wrong = format!(
        "host=127.0.0.1 port={} user=postgres password=wrong dbname=postgres",
        cluster.port()
    );
    let err = match connect(&wrong).await {
        Ok(_) => panic!("a wrong password must be rejected"),
        Err(e) => e,
    };
    let code = err.as_db_error().map(|d| d.code().code().to_string());
    assert_eq!(code.as_deref(), Some("28P01"), "{err}");

    // Setup helpers: roles, databases, psql.
    cluster.create_role("app", "app's secret", false).unwrap();
    cluster.create_role("app", "app's secret", false).unwrap(); // idempotent
    cluster.create_database("appdb", "app").unwrap();
    cluster.create_database("appdb", "app").unwrap(); // idempotent
    let app = connect(&format!(
        "host=127.0.0.1 port={} user=app password='app\\'s secret' dbname=appdb",
        cluster.port()
    ))
    .await
    .expect("login as the new role");
    let row = app.query_one("select current_user", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "app");
    assert_eq!(cluster.psql("appdb", "select 40 + 2").unwrap(), "42");
    let err = cluster
        .psql("postgres", "select * from no_such_table")
        .unwrap_err();
    assert!(format!("{err:#}").contains("no_such_table"), "{err:#}");
}

#[test]
fn stop_start_and_kill_keep_data_and_port() {
    let mut cluster = LocalCluster::start_temp(&opts()).expect("start");
    let port = cluster.port();
    cluster
        .psql(
            "postgres",
            "create table t(id int primary key); insert into t values (1)",
        )
        .unwrap();
    cluster.stop().unwrap();
    assert!(!cluster.is_running());
    cluster.start().unwrap();
    assert_eq!(cluster.port(), port);
    assert_eq!(
        cluster.psql("postgres", "select count(*) from t").unwrap(),
        "1"
    );
    // Crash (immediate stop) and restart: crash recovery keeps committed rows.
    // (Separate calls: one -c string is one transaction, and with
    // synchronous_commit off only a later CHECKPOINT makes the commit durable.)
    cluster
        .psql("postgres", "insert into t values (2)")
        .unwrap();
    cluster.psql("postgres", "checkpoint").unwrap();
    cluster.kill().unwrap();
    assert!(!cluster.is_running());
    cluster.start().unwrap();
    assert_eq!(
        cluster.psql("postgres", "select count(*) from t").unwrap(),
        "2"
    );
    let dir = cluster.cluster_dir().to_path_buf();
    drop(cluster);
    assert!(!dir.exists(), "a temporary cluster is deleted on drop");
}

#[tokio::test]
async fn replica_follows_the_primary_and_can_be_promoted() {
    let primary = LocalCluster::start_temp(&opts()).expect("start primary");
    primary
        .psql(
            "postgres",
            "create table items(id int primary key, name text)",
        )
        .unwrap();
    let replica = primary
        .create_replica(None, &ReplicaOptions::default())
        .expect("create replica");
    assert_eq!(replica.role(), Role::Replica);
    assert_ne!(replica.port(), primary.port());

    primary
        .psql("postgres", "insert into items values (1, 'one')")
        .unwrap();
    wait_until("the row to reach the replica", || {
        replica
            .psql("postgres", "select count(*) from items where id = 1")
            .map(|s| s == "1")
            .unwrap_or(false)
    });

    let client = connect(&replica.connection_string("postgres"))
        .await
        .expect("connect to replica");
    let row = client
        .query_one("select pg_is_in_recovery()", &[])
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    let err = client
        .execute("insert into items values (2, 'two')", &[])
        .await
        .unwrap_err();
    assert_eq!(
        err.as_db_error().map(|d| d.code().code()),
        Some("25006"),
        "{err}"
    );
    let primary_sees = primary
        .psql(
            "postgres",
            "select count(*) from pg_stat_replication where application_name = 'shardwire_replica'",
        )
        .unwrap();
    assert_eq!(primary_sees, "1");

    replica.promote().expect("promote");
    assert_eq!(replica.role(), Role::Primary);
    let row = client
        .query_one("select pg_is_in_recovery()", &[])
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0));
    client
        .execute("insert into items values (2, 'two')", &[])
        .await
        .expect("write to the promoted replica");
    let row = client
        .query_one("select count(*) from items", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 2);
}

#[test]
fn replica_gets_recovery_min_apply_delay() {
    let primary = LocalCluster::start_temp(&opts()).expect("start primary");
    let replica = primary
        .create_replica(
            None,
            &ReplicaOptions {
                recovery_min_apply_delay: Some(Duration::from_millis(1500)),
                ..ReplicaOptions::default()
            },
        )
        .expect("create delayed replica");
    assert_eq!(
        replica
            .psql("postgres", "show recovery_min_apply_delay")
            .unwrap(),
        "1500ms"
    );
    assert_eq!(
        replica
            .psql("postgres", "select pg_is_in_recovery()")
            .unwrap(),
        "t"
    );
}

#[test]
fn open_or_init_reopens_adopts_and_recovers_from_a_stale_pid_file() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("shard0");

    // First use: initdb (from the template) and start.
    let c1 = LocalCluster::open_or_init(&dir, &opts()).expect("first open");
    assert!(!c1.is_adopted());
    c1.psql(
        "postgres",
        "create table kept(id int); insert into kept values (1)",
    )
    .unwrap();
    let first_port = c1.port();
    drop(c1);
    assert!(dir.join("data/PG_VERSION").is_file(), "kept on drop");
    assert!(!dir.join("data/postmaster.pid").exists(), "stopped on drop");

    // Second use, with the old port taken by another program: new port.
    let squatter = std::net::TcpListener::bind(("127.0.0.1", first_port)).ok();
    let c2 = LocalCluster::open_or_init(&dir, &opts()).expect("second open");
    if squatter.is_some() {
        assert_ne!(c2.port(), first_port);
    }
    drop(squatter);
    assert_eq!(
        c2.psql("postgres", "select count(*) from kept").unwrap(),
        "1"
    );
    c2.psql("postgres", "insert into kept values (2)").unwrap();
    c2.psql("postgres", "checkpoint").unwrap();

    // A second handle while the server runs adopts it.
    let c3 = LocalCluster::open_or_init(&dir, &opts()).expect("adopting open");
    assert!(c3.is_adopted());
    assert_eq!(c3.port(), c2.port());
    assert_eq!(
        c3.psql("postgres", "select count(*) from kept").unwrap(),
        "2"
    );
    // Let c3 be the owner; c2 must not stop the server when it goes away.
    std::mem::forget(c2);

    // Crash: kill -9 the postmaster and forget the handle (as if our process
    // had died), leaving a stale postmaster.pid.
    let data = dir.join("data");
    let pid = pid_in(&data).expect("postmaster.pid");
    // SAFETY: plain kill(2) of the postmaster we started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    wait_until("the postmaster to die", || !server_alive(pid, &data));
    assert!(data.join("postmaster.pid").exists(), "stale pid file left");
    std::mem::forget(c3);

    let c4 = LocalCluster::open_or_init(&dir, &opts()).expect("open after crash");
    assert!(!c4.is_adopted());
    assert_eq!(c4.role(), Role::Primary);
    assert_eq!(
        c4.psql("postgres", "select count(*) from kept").unwrap(),
        "2"
    );
    let new_pid = pid_in(&data).unwrap();
    assert_ne!(new_pid, pid);
    drop(c4);
    assert!(!server_alive(new_pid, &data));
}

#[test]
fn open_or_init_rejects_a_bare_data_directory() {
    let primary = LocalCluster::start_temp(&opts()).expect("start");
    let err = LocalCluster::open_or_init(primary.data_dir(), &opts()).unwrap_err();
    assert!(format!("{err:#}").contains("data directory"), "{err:#}");
}

#[test]
fn find_pg_bin_from_checks_the_given_folder() {
    let real = find_pg_bin().expect("PostgreSQL binaries on this machine");
    assert!(real.join("initdb").is_file());

    // A folder of symlinks to the real programs is accepted as PG_BIN.
    let alt = tempfile::tempdir().unwrap();
    for p in ["initdb", "pg_ctl", "postgres"] {
        std::os::unix::fs::symlink(real.join(p), alt.path().join(p)).unwrap();
    }
    let found = find_pg_bin_from(Some(alt.path())).unwrap();
    assert_eq!(found, std::fs::canonicalize(alt.path()).unwrap());

    // A folder without them is an error naming PG_BIN and what is missing.
    let empty = tempfile::tempdir().unwrap();
    let err = find_pg_bin_from(Some(empty.path()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("PG_BIN") && err.contains("initdb"), "{err}");
}

#[test]
fn find_pg_bin_honours_the_pg_bin_environment_variable() {
    let real = find_pg_bin().expect("PostgreSQL binaries on this machine");
    let alt = tempfile::tempdir().unwrap();
    for p in ["initdb", "pg_ctl", "postgres"] {
        std::os::unix::fs::symlink(real.join(p), alt.path().join(p)).unwrap();
    }
    let alt_str = alt.path().to_str().unwrap();
    let out = run_child_test("child_report_pg_bin", &[("PG_BIN", alt_str)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let canonical = std::fs::canonicalize(alt.path()).unwrap();
    assert!(
        stdout.contains(&format!("PG_BIN_FOUND={}", canonical.display())),
        "{stdout}"
    );

    let empty = tempfile::tempdir().unwrap();
    let out = run_child_test(
        "child_report_pg_bin",
        &[("PG_BIN", empty.path().to_str().unwrap())],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("PG_BIN_ERROR="), "{stdout}");
    assert!(stdout.contains("PG_BIN is set to"), "{stdout}");
}

/// Child half of the test above: prints what find_pg_bin returns.
#[test]
fn child_report_pg_bin() {
    if !is_child() {
        return;
    }
    match find_pg_bin() {
        Ok(p) => println!("PG_BIN_FOUND={}", p.display()),
        Err(e) => println!("PG_BIN_ERROR={e:#}"),
    }
}

#[test]
fn exiting_without_dropping_stops_clusters_via_atexit() {
    let report = tempfile::tempdir().unwrap();
    let report_file = report.path().join("dirs");
    let out = run_child_test(
        "child_start_and_exit",
        &[("SHARDWIRE_REPORT", report_file.to_str().unwrap())],
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&report_file).expect("child report");
    let mut lines = text.lines();
    let temp_dir = PathBuf::from(lines.next().unwrap());
    let kept_dir = PathBuf::from(lines.next().unwrap());
    let temp_pid: i32 = lines.next().unwrap().parse().unwrap();
    let kept_pid: i32 = lines.next().unwrap().parse().unwrap();
    assert!(!temp_dir.exists(), "temporary cluster removed at exit");
    assert!(
        kept_dir.join("data/PG_VERSION").is_file(),
        "kept cluster stays"
    );
    assert!(!server_alive(kept_pid, &kept_dir.join("data")));
    // The temp data dir is gone, so check by pid: no live process with it.
    wait_until("the temporary server to be gone", || {
        std::fs::read_link(format!("/proc/{temp_pid}/cwd")).is_err()
    });
}

/// Child half of the test above: starts clusters and exits without dropping
/// them, so only the atexit hook can stop them.
#[test]
fn child_start_and_exit() {
    if !is_child() {
        return;
    }
    let report = std::env::var("SHARDWIRE_REPORT").unwrap();
    let kept_dir = PathBuf::from(format!("{report}-kept"));
    let temp = LocalCluster::start_temp(&opts()).unwrap();
    let kept = LocalCluster::open_or_init(&kept_dir, &opts()).unwrap();
    let text = format!(
        "{}\n{}\n{}\n{}\n",
        temp.cluster_dir().display(),
        kept.cluster_dir().display(),
        pid_in(temp.data_dir()).unwrap(),
        pid_in(kept.data_dir()).unwrap()
    );
    std::fs::write(&report, text).unwrap();
    std::process::exit(0);
}

#[test]
fn long_directory_paths_and_a_fixed_port_work() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent
        .path()
        .join("a-rather-long-directory-name-for-a-cluster-directory")
        .join("that-does-not-fit-into-a-unix-socket-path");
    let port = {
        let l = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    let options = ClusterOptions {
        port: Some(port),
        extra_settings: vec![
            ("cluster_name".into(), "it's set".into()),
            ("work_mem".into(), "7MB".into()),
        ],
        ..opts()
    };
    let cluster = LocalCluster::open_or_init(&dir, &options).expect("open long path");
    assert_eq!(cluster.port(), port);
    assert!(!cluster.socket_dir().starts_with(&dir));
    assert_eq!(
        cluster.psql("postgres", "show cluster_name").unwrap(),
        "it's set"
    );
    assert_eq!(cluster.psql("postgres", "show work_mem").unwrap(), "7MB");
    // A second cluster cannot take the same fixed port.
    let err = LocalCluster::start_temp(&options).unwrap_err();
    assert!(format!("{err:#}").contains("already in use"), "{err:#}");
    let socket_dir = cluster.socket_dir().to_path_buf();
    drop(cluster);
    assert!(
        !socket_dir.exists(),
        "the outside socket directory is removed"
    );
}
