//! Tests of the topology's pure logic: LSN parsing, read routing (lag
//! limits, bans, balancing, read-your-writes) and probe bookkeeping.

use std::time::{Duration, Instant};

use super::*;
use crate::config::{LoadBalance, User};

/// A shard with a primary and `replicas` replicas, settings adjusted by `tweak`.
fn shard(replicas: usize, tweak: impl FnOnce(&mut ReplicaSettings)) -> ShardServers {
    let mut config = Config::single_shard(
        "127.0.0.1:6432",
        User::with_password("app", "secret"),
        "app",
        "127.0.0.1:5000",
    );
    config.shards[0].replicas = (1..=replicas)
        .map(|i| format!("127.0.0.1:{}", 5000 + i))
        .collect();
    tweak(&mut config.replicas);
    ShardServers::new(&config, 0)
}

fn primary_at(position: Lsn) -> Option<ServerStatus> {
    Some(ServerStatus {
        in_recovery: false,
        position,
        timeline: Some(1),
    })
}

fn replica_at(position: Lsn) -> Option<ServerStatus> {
    Some(ServerStatus {
        in_recovery: true,
        position,
        timeline: None,
    })
}

fn idle(_: usize) -> usize {
    0
}

fn read(s: &ShardServers, min_lsn: Option<Lsn>) -> ReadTarget {
    s.choose_read(min_lsn, &idle, &[])
}

#[test]
fn parse_lsn_reads_postgres_text_form() {
    assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374_D848));
    assert_eq!(parse_lsn("0/0"), Some(0));
    assert_eq!(parse_lsn("FFFFFFFF/ffffffff"), Some(u64::MAX));
    for lsn in [0, 1, 0x1_0000_0000, 0x16_B374_D848, u64::MAX] {
        assert_eq!(parse_lsn(&format_lsn(lsn)), Some(lsn));
    }
    for garbage in [
        "",
        "16",
        "/",
        "16/",
        "/B3",
        "G/1",
        "1/G",
        "123456789/0",
        "0/123456789",
        "+1/2",
        " 1/2",
        "1/2 ",
        "1/2/3",
        "-1/2",
        "0x1/2",
    ] {
        assert_eq!(parse_lsn(garbage), None, "{garbage:?}");
    }
}

#[test]
fn a_new_shard_lists_the_configured_primary_first_all_unknown() {
    let s = shard(2, |_| {});
    let addresses: Vec<&str> = s.servers.iter().map(|h| h.address.as_str()).collect();
    assert_eq!(
        addresses,
        ["127.0.0.1:5000", "127.0.0.1:5001", "127.0.0.1:5002"]
    );
    assert_eq!(s.primary(), 0);
    assert!((0..3).all(|i| s.report(i).role == ServerRole::Unknown));
}

#[test]
fn replicas_serve_reads_before_the_first_probe_but_not_read_your_writes() {
    let s = shard(1, |_| {});
    assert_eq!(read(&s, None), ReadTarget::Server(1));
    assert_eq!(read(&s, Some(10)), ReadTarget::CheckReplica(1));
    s.note_position(1, 10);
    assert_eq!(read(&s, Some(10)), ReadTarget::Server(1));
}

#[test]
fn without_replicas_reads_go_to_the_primary() {
    let s = shard(0, |_| {});
    assert_eq!(read(&s, None), ReadTarget::Primary);
    let s = shard(2, |_| {});
    s.record_round(&[primary_at(100), None, None], 0, Instant::now());
    assert_eq!(read(&s, None), ReadTarget::Primary);
    assert_eq!(read(&s, Some(1)), ReadTarget::Primary);
}

#[test]
fn least_outstanding_picks_the_least_loaded_and_rotates_among_ties() {
    let s = shard(3, |_| {});
    let busy_first = |i: usize| if i == 1 { 5 } else { 2 };
    let picks: Vec<ReadTarget> = (0..4)
        .map(|_| s.choose_read(None, &busy_first, &[]))
        .collect();
    assert!(
        picks.iter().all(|p| matches!(p, ReadTarget::Server(2 | 3))),
        "{picks:?}"
    );
    assert!(picks.contains(&ReadTarget::Server(2)) && picks.contains(&ReadTarget::Server(3)));
    let one_idle = |i: usize| if i == 3 { 0 } else { 1 };
    for _ in 0..3 {
        assert_eq!(s.choose_read(None, &one_idle, &[]), ReadTarget::Server(3));
    }
}

#[test]
fn round_robin_takes_each_replica_in_turn_whatever_the_load() {
    let s = shard(2, |r| r.load_balance = LoadBalance::RoundRobin);
    let loaded = |i: usize| if i == 1 { 100 } else { 0 };
    let picks: Vec<ReadTarget> = (0..4).map(|_| s.choose_read(None, &loaded, &[])).collect();
    let ones = picks
        .iter()
        .filter(|&&p| p == ReadTarget::Server(1))
        .count();
    let twos = picks
        .iter()
        .filter(|&&p| p == ReadTarget::Server(2))
        .count();
    assert_eq!((ones, twos), (2, 2), "{picks:?}");
    assert_ne!(picks[0], picks[1]);
}

#[test]
fn primary_reads_make_the_primary_one_more_member_always_up_to_date() {
    let s = shard(1, |r| {
        r.primary_reads = true;
        r.load_balance = LoadBalance::RoundRobin;
    });
    s.record_round(&[primary_at(100), replica_at(50)], 0, Instant::now());
    let picks: Vec<ReadTarget> = (0..2).map(|_| read(&s, None)).collect();
    assert!(picks.contains(&ReadTarget::Server(0)) && picks.contains(&ReadTarget::Server(1)));
    // The replica has not replayed 80; the primary has.
    for _ in 0..3 {
        assert_eq!(read(&s, Some(80)), ReadTarget::Server(0));
    }
    // A primary that does not answer takes no reads.
    s.record_round(&[None, replica_at(50)], 0, Instant::now());
    assert_eq!(read(&s, None), ReadTarget::Server(1));
    assert!(!s.report(0).in_rotation);
}

#[test]
fn a_replica_too_many_bytes_behind_leaves_the_rotation_until_it_catches_up() {
    let s = shard(2, |r| r.max_replica_lag_bytes = 1000);
    let now = Instant::now();
    s.record_round(
        &[primary_at(5000), replica_at(3999), replica_at(4000)],
        0,
        now,
    );
    assert_eq!(s.report(1).lag_bytes, 1001);
    assert!(!s.report(1).in_rotation);
    assert!(s.report(2).in_rotation);
    for _ in 0..3 {
        assert_eq!(read(&s, None), ReadTarget::Server(2));
    }
    s.record_round(
        &[primary_at(5000), replica_at(4500), replica_at(4000)],
        0,
        now,
    );
    assert!(s.report(1).in_rotation);
}

#[test]
fn a_replica_too_late_leaves_the_rotation_until_it_catches_up() {
    let s = shard(1, |r| r.max_replica_lag_ms = 500);
    let t0 = Instant::now();
    s.record_round(&[primary_at(100), replica_at(100)], 0, t0);
    s.record_round(
        &[primary_at(200), replica_at(100)],
        0,
        t0 + Duration::from_millis(100),
    );
    assert!(s.report(1).in_rotation, "100 ms late is within the limit");
    s.record_round(
        &[primary_at(200), replica_at(100)],
        0,
        t0 + Duration::from_millis(700),
    );
    assert_eq!(s.report(1).lag_ms, 600);
    assert!(!s.report(1).in_rotation);
    assert_eq!(read(&s, None), ReadTarget::Primary);
    s.record_round(
        &[primary_at(200), replica_at(200)],
        0,
        t0 + Duration::from_millis(800),
    );
    assert_eq!(s.report(1).lag_ms, 0);
    assert_eq!(read(&s, None), ReadTarget::Server(1));
}

#[test]
fn an_idle_primary_does_not_push_replicas_out() {
    let s = shard(1, |r| r.max_replica_lag_ms = 500);
    let t0 = Instant::now();
    for secs in 0..10 {
        s.record_round(
            &[primary_at(100), replica_at(100)],
            0,
            t0 + Duration::from_secs(secs),
        );
    }
    assert_eq!(s.report(1).lag_ms, 0);
    assert!(s.report(1).in_rotation);
}

#[test]
fn a_banned_replica_comes_back_after_the_ban_time() {
    let s = shard(2, |r| r.ban_time_ms = 10_000);
    s.ban(1);
    s.ban(99); // ignored
    assert!(s.report(1).banned && !s.report(1).in_rotation);
    for _ in 0..3 {
        assert_eq!(read(&s, None), ReadTarget::Server(2));
    }
    let later = s.now_ms() + 10_001;
    assert_eq!(
        s.choose_read_at(later, None, &|i| if i == 1 { 0 } else { 9 }, &[]),
        ReadTarget::Server(1)
    );
    // A zero ban time bans nothing.
    let s = shard(1, |r| r.ban_time_ms = 0);
    s.ban(1);
    assert_eq!(read(&s, None), ReadTarget::Server(1));
}

#[test]
fn read_your_writes_uses_replicas_that_replayed_else_checks_the_closest_else_the_primary() {
    let s = shard(3, |_| {});
    s.record_round(
        &[
            primary_at(400),
            replica_at(100),
            replica_at(300),
            replica_at(200),
        ],
        0,
        Instant::now(),
    );
    assert_eq!(read(&s, Some(300)), ReadTarget::Server(2));
    assert_eq!(read(&s, Some(250)), ReadTarget::Server(2));
    assert_eq!(read(&s, Some(350)), ReadTarget::CheckReplica(2));
    // Among equally close replicas, the least loaded is checked.
    s.note_position(3, 300);
    let two_busy = |i: usize| if i == 2 { 4 } else { 1 };
    assert_eq!(
        s.choose_read(Some(350), &two_busy, &[]),
        ReadTarget::CheckReplica(3)
    );
    s.record_round(&[primary_at(400), None, None, None], 0, Instant::now());
    assert_eq!(read(&s, Some(350)), ReadTarget::Primary);
}

#[test]
fn excluded_servers_are_skipped() {
    let s = shard(2, |_| {});
    for _ in 0..3 {
        assert_eq!(s.choose_read(None, &idle, &[1]), ReadTarget::Server(2));
    }
    assert_eq!(s.choose_read(None, &idle, &[1, 2]), ReadTarget::Primary);
    assert_eq!(
        s.choose_read(Some(5), &idle, &[1]),
        ReadTarget::CheckReplica(2)
    );
}

#[test]
fn note_position_only_moves_forward() {
    let s = shard(1, |_| {});
    s.note_position(1, 300);
    s.note_position(1, 200);
    s.note_position(7, 200); // ignored
    assert_eq!(s.report(1).position, 300);
}

#[test]
fn all_replayed_counts_every_replica_that_may_serve_reads() {
    let s = shard(2, |_| {});
    assert!(!s.all_replayed(1), "positions not known yet");
    s.record_round(
        &[primary_at(500), replica_at(300), replica_at(200)],
        0,
        Instant::now(),
    );
    assert!(s.all_replayed(200));
    assert!(!s.all_replayed(250));
    s.ban(2);
    assert!(
        !s.all_replayed(250),
        "a banned replica comes back by itself"
    );
    s.record_round(&[primary_at(500), replica_at(300), None], 0, Instant::now());
    assert!(s.all_replayed(250), "a replica that is down does not count");
    assert!(!s.all_replayed(400));
}

#[test]
fn a_promotion_moves_the_primary_and_the_old_one_serves_no_reads() {
    let s = shard(2, |r| r.primary_reads = true);
    let t0 = Instant::now();
    s.record_round(&[primary_at(900), replica_at(900), replica_at(900)], 0, t0);
    // Server 1 is promoted while server 0 is down.
    s.record_round(
        &[None, primary_at(100), replica_at(100)],
        1,
        t0 + Duration::from_secs(1),
    );
    assert_eq!(s.primary(), 1);
    let report = s.report(2);
    assert_eq!(
        (report.lag_bytes, report.lag_ms),
        (0, 0),
        "lag is measured against the new primary"
    );
    assert!(report.in_rotation);
    assert!(!s.report(0).in_rotation);
    // The old primary comes back out of recovery (split brain): still no reads.
    s.record_round(
        &[primary_at(950), primary_at(100), replica_at(100)],
        1,
        t0 + Duration::from_secs(2),
    );
    assert_eq!(s.report(0).role, ServerRole::Primary);
    assert!(!s.report(0).in_rotation);
    for _ in 0..4 {
        assert!(matches!(read(&s, None), ReadTarget::Server(1 | 2)));
    }
}

#[test]
fn counters_show_in_reports() {
    let s = shard(1, |_| {});
    s.servers[1].reads.fetch_add(3, Ordering::Relaxed);
    s.servers[0].writes.fetch_add(2, Ordering::Relaxed);
    assert_eq!((s.report(1).reads, s.report(0).writes), (3, 2));
}

#[test]
fn a_check_that_found_the_replica_behind_pauses_checks_briefly() {
    let s = shard(1, |_| {});
    assert_eq!(read(&s, Some(10)), ReadTarget::CheckReplica(1));
    s.note_check(true);
    assert_eq!(read(&s, Some(10)), ReadTarget::CheckReplica(1));
    s.note_check(false);
    let now = s.now_ms();
    assert_eq!(
        s.choose_read_at(now, Some(10), &idle, &[]),
        ReadTarget::Primary
    );
    // Reads that need no check are not affected.
    assert_eq!(
        s.choose_read_at(now, None, &idle, &[]),
        ReadTarget::Server(1)
    );
    assert_eq!(
        s.choose_read_at(now + super::CHECK_PAUSE_MS + 1, Some(10), &idle, &[]),
        ReadTarget::CheckReplica(1)
    );
}
