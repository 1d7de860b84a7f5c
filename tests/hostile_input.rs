//! Bytes no driver would send: the proxy answers with an ErrorResponse or
//! closes that one connection, and keeps serving everyone else.

mod common;

use std::time::Duration;

use common::TestEnv;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `bytes` on a fresh connection and reads until the proxy closes it
/// or 5 s pass; returns what came back.
async fn send_raw(env: &TestEnv, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", env.proxy_port()))
        .await
        .expect("connect");
    let _ = stream.write_all(bytes).await;
    let _ = stream.shutdown().await;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply)).await;
    reply
}

fn startup_packet(params: &[(&str, &str)], version: i32) -> Vec<u8> {
    let mut body = version.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    packet
}

/// Deterministic pseudo-random bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_never_takes_the_proxy_down() {
    let env = TestEnv::start(|config| {
        let mut trusted = config.users[0].clone();
        trusted.name = "trusted".into();
        trusted.auth = shardwire::config::AuthMethod::Trust;
        trusted.server_user = Some(common::APP_USER.into());
        trusted.server_password = Some(common::APP_PASSWORD.into());
        config.users.push(trusted);
    })
    .await;
    let healthy = env.connect().await;

    // Malformed startup-phase packets get a clear error.
    let reply = send_raw(&env, &[0, 0, 0, 3, 1, 2, 3]).await;
    assert_eq!(reply.first(), Some(&b'E'), "bad length: {reply:?}");
    let reply = send_raw(&env, &startup_packet(&[("user", "app")], 2 << 16)).await;
    assert!(
        String::from_utf8_lossy(&reply).contains("0A000"),
        "old protocol version: {reply:?}"
    );
    let reply = send_raw(&env, &[0, 0, 0, 12, 0, 3, 0, 0, b'u', b's', b'e', b'r']).await;
    assert_eq!(reply.first(), Some(&b'E'), "unterminated params: {reply:?}");
    let reply = send_raw(&env, &startup_packet(&[("database", "appdb")], 196_608)).await;
    assert!(
        String::from_utf8_lossy(&reply).contains("28000"),
        "no user: {reply:?}"
    );

    // Random bytes as a first packet, of many lengths.
    for seed in 0..200u64 {
        send_raw(&env, &noise(seed, (seed as usize * 7) % 300)).await;
    }

    // Garbage after a valid startup, during authentication.
    for seed in 0..50u64 {
        let mut bytes = startup_packet(&[("user", "app"), ("database", "appdb")], 196_608);
        bytes.extend(noise(seed, 64));
        let reply = send_raw(&env, &bytes).await;
        // The proxy asked for SCRAM, then refused the garbage.
        assert_eq!(
            reply.first(),
            Some(&b'R'),
            "auth request expected: {reply:?}"
        );
    }

    // Garbage inside an authenticated session: tagged messages with random
    // tags and bodies, including the ones the proxy decodes (P, B, D, C, Q).
    for seed in 0..60u64 {
        let mut bytes = startup_packet(&[("user", "trusted"), ("database", "appdb")], 196_608);
        let tags = [
            b'P', b'B', b'D', b'C', b'Q', b'E', b'S', b'H', b'd', b'c', b'f', b'F', b'p', b'?',
        ];
        for i in 0..4u64 {
            let body = noise(seed * 31 + i, ((seed + i) as usize * 13) % 200);
            bytes.push(tags[((seed + i) % tags.len() as u64) as usize]);
            bytes.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
            bytes.extend(body);
        }
        bytes.extend(noise(seed, 16));
        let reply = send_raw(&env, &bytes).await;
        assert_eq!(reply.first(), Some(&b'R'), "session started: {reply:?}");
    }

    // The proxy still serves, including the client connected before.
    let row = healthy
        .query_one("select 1 + 1", &[])
        .await
        .expect("still serving");
    assert_eq!(row.get::<_, i32>(0), 2);
    let fresh = env.connect().await;
    fresh
        .simple_query("select 1")
        .await
        .expect("new clients work");
}
