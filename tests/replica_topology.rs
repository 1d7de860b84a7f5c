//! The replica topology and its control-plane probe against real clusters:
//! a primary and a streaming replica that applies WAL 2 s late. The probe
//! (logged in as an ordinary role) sees both roles and positions, takes the
//! late replica out of the read rotation after a write and back once it
//! has caught up, and moves writes to the replica once it is promoted —
//! and keeps them there when the old primary comes back (split brain).

use std::sync::Arc;
use std::time::{Duration, Instant};

use shardwire::backend::probe::{self, Prober, probe_forever};
use shardwire::backend::topology::{ReadTarget, ServerRole, ShardServers, Topology};
use shardwire::config::{Config, User};
use shardwire::localcluster::{ClusterOptions, LocalCluster, ReplicaOptions};

const APP: &str = "app";
const APP_PASSWORD: &str = "app secret";

/// One shard: `primary` and its `replica`, probed as `app`, with a 500 ms
/// lag limit.
fn config_for(primary: &LocalCluster, replica: &LocalCluster) -> Config {
    let mut config = Config::single_shard(
        "127.0.0.1:0",
        User::with_password(APP, APP_PASSWORD),
        "postgres",
        &format!("127.0.0.1:{}", primary.port()),
    );
    config.shards[0]
        .replicas
        .push(format!("127.0.0.1:{}", replica.port()));
    config.replicas.max_replica_lag_ms = 500;
    config.replicas.probe_interval_ms = 100;
    config.pool.connect_timeout_ms = 2_000;
    config
}

/// Runs probe rounds until `done` holds, for at most 30 s (a guard against
/// hangs, not a timing assertion).
async fn probe_until(prober: &mut Prober, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        prober.probe_once().await;
        if done() {
            return;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn read(shard: &ShardServers) -> ReadTarget {
    shard.choose_read(None, &|_| 0, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_follows_roles_lag_and_a_promotion() {
    let mut primary =
        LocalCluster::start_temp(&ClusterOptions::for_tests()).expect("start primary");
    primary.create_role(APP, APP_PASSWORD, false).unwrap();
    primary
        .psql(
            "postgres",
            "GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO app",
        )
        .unwrap();
    let replica = primary
        .create_replica(
            None,
            &ReplicaOptions {
                recovery_min_apply_delay: Some(Duration::from_secs(2)),
                ..ReplicaOptions::default()
            },
        )
        .expect("create a delayed replica");
    let config = config_for(&primary, &replica);

    // probe_forever publishes the roles by itself.
    let background = Arc::new(Topology::new(&config));
    let task = tokio::spawn(probe_forever(
        Arc::clone(&background),
        Arc::new(config.clone()),
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while background.shards[0].report(1).role != ServerRole::Replica {
        assert!(
            Instant::now() < deadline,
            "probe_forever never probed the replica"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();

    // One round by hand: both roles and positions.
    let topology = Topology::new(&config);
    let shard = Arc::clone(&topology.shards[0]);
    let mut prober = Prober::new(&topology, &config).expect("a user to probe with");
    prober.probe_once().await;
    let (p, r) = (shard.report(0), shard.report(1));
    assert_eq!((p.role, r.role), (ServerRole::Primary, ServerRole::Replica));
    assert!(p.position > 0 && r.position > 0, "{p:?} {r:?}");
    assert_eq!(shard.primary(), 0);

    // A write the replica applies 2 s late takes it out of the rotation
    // (500 ms limit) until it has caught up.
    probe_until(&mut prober, "the replica in rotation", || {
        shard.report(1).in_rotation
    })
    .await;
    assert_eq!(read(&shard), ReadTarget::Server(1));
    primary
        .psql("postgres", "CREATE TABLE written (id int)")
        .unwrap();
    probe_until(&mut prober, "the late replica out of rotation", || {
        !shard.report(1).in_rotation
    })
    .await;
    let late = shard.report(1);
    assert_eq!(late.role, ServerRole::Replica);
    assert!(late.lag_ms > 500 && late.lag_bytes > 0, "{late:?}");
    assert_eq!(read(&shard), ReadTarget::Primary);
    probe_until(&mut prober, "the replica back in rotation", || {
        shard.report(1).in_rotation
    })
    .await;
    assert!(shard.report(1).lag_ms <= 500);
    assert_eq!(read(&shard), ReadTarget::Server(1));

    // PROMOTE refuses what it cannot do, with clear errors.
    let not_replica = probe::promote(&config, 0, 0).await.unwrap_err();
    assert_eq!(not_replica.code, "55000", "{not_replica:?}");
    assert!(
        not_replica.message.contains("not in recovery"),
        "{not_replica:?}"
    );
    assert_eq!(
        probe::promote(&config, 0, 2).await.unwrap_err().code,
        "22023"
    );
    assert_eq!(
        probe::promote(&config, 1, 0).await.unwrap_err().code,
        "22023"
    );

    // The primary dies; the replica is promoted; writes move to it.
    primary.stop().unwrap();
    prober.probe_once().await;
    assert_eq!(shard.report(0).role, ServerRole::Down);
    assert_eq!(
        shard.primary(),
        0,
        "no server out of recovery: writes stay (and fail)"
    );
    assert_eq!(
        probe::promote(&config, 0, 0).await.unwrap_err().code,
        "08001"
    );
    probe::promote(&config, 0, 1)
        .await
        .expect("promote the replica");
    prober.probe_once().await;
    assert_eq!(shard.primary(), 1);
    assert_eq!(shard.report(1).role, ServerRole::Primary);

    // The old primary comes back on its old timeline: writes stay on the
    // promoted server and the old one takes no reads.
    primary.start().unwrap();
    probe_until(&mut prober, "the old primary back", || {
        shard.report(0).role != ServerRole::Down
    })
    .await;
    assert_eq!(shard.report(0).role, ServerRole::Primary);
    assert_eq!(shard.primary(), 1);
    assert!(!shard.report(0).in_rotation);
    assert_eq!(read(&shard), ReadTarget::Primary);
}
