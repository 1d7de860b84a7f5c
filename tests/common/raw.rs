//! A minimal raw protocol client, for format codes and message sequences a
//! driver does not let us choose.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{APP_DB, APP_PASSWORD, APP_USER};

/// Generous bound for anything that must not hang.
pub const NO_HANG: Duration = Duration::from_secs(20);

/// Runs `f` with a timeout so a hang becomes a test failure.
pub async fn no_hang<F: std::future::Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(NO_HANG, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no answer within {NO_HANG:?} (hang)"),
    }
}

/// A connection speaking the wire protocol by hand.
pub struct Raw {
    /// The socket to the proxy.
    pub stream: TcpStream,
    inbox: BytesMut,
}

/// One backend message: its tag and body.
pub struct Msg {
    pub tag: u8,
    pub body: Bytes,
}

impl Msg {
    /// Column values of a DataRow.
    pub fn columns(&self) -> Vec<Option<Vec<u8>>> {
        let mut b = self.body.clone();
        let n = b.get_i16();
        (0..n)
            .map(|_| {
                let len = b.get_i32();
                (len >= 0).then(|| {
                    let v = b[..len as usize].to_vec();
                    b.advance(len as usize);
                    v
                })
            })
            .collect()
    }

    /// A field of an ErrorResponse / NoticeResponse.
    pub fn field(&self, kind: u8) -> Option<String> {
        let mut rest = &self.body[..];
        while let Some((&t, tail)) = rest.split_first() {
            if t == 0 {
                break;
            }
            let end = tail.iter().position(|&b| b == 0)?;
            if t == kind {
                return Some(String::from_utf8_lossy(&tail[..end]).into_owned());
            }
            rest = &tail[end + 1..];
        }
        None
    }
}

impl Raw {
    pub async fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("tcp connect to proxy");
        let mut raw = Raw {
            stream,
            inbox: BytesMut::new(),
        };
        let mut out = BytesMut::new();
        frontend::startup_message([("user", APP_USER), ("database", APP_DB)], &mut out).unwrap();
        raw.write(&out).await;
        let mut scram = None;
        loop {
            let m = raw.recv().await;
            match m.tag {
                b'R' => {
                    let mut body = m.body.clone();
                    let code = body.get_i32();
                    let mut out = BytesMut::new();
                    match code {
                        0 => {}
                        10 => {
                            let client = postgres_protocol::authentication::sasl::ScramSha256::new(
                                APP_PASSWORD.as_bytes(),
                                postgres_protocol::authentication::sasl::ChannelBinding::unsupported(),
                            );
                            frontend::sasl_initial_response(
                                "SCRAM-SHA-256",
                                client.message(),
                                &mut out,
                            )
                            .unwrap();
                            scram = Some(client);
                        }
                        11 => {
                            let client = scram.as_mut().expect("SASL started");
                            client.update(&body).unwrap();
                            frontend::sasl_response(client.message(), &mut out).unwrap();
                        }
                        12 => scram.as_mut().expect("SASL started").finish(&body).unwrap(),
                        other => panic!("unexpected authentication request {other}"),
                    }
                    if !out.is_empty() {
                        raw.write(&out).await;
                    }
                }
                b'S' | b'K' => {}
                b'Z' => return raw,
                b'E' => panic!("raw client refused at startup: {:?}", m.field(b'M')),
                other => panic!("unexpected message '{}' during raw startup", other as char),
            }
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write to proxy");
    }

    pub async fn send(&mut self, build: impl FnOnce(&mut BytesMut)) {
        let mut out = BytesMut::new();
        build(&mut out);
        self.write(&out).await;
    }

    pub async fn recv(&mut self) -> Msg {
        no_hang("raw client read", async {
            loop {
                if self.inbox.len() >= 5 {
                    let len = i32::from_be_bytes([
                        self.inbox[1],
                        self.inbox[2],
                        self.inbox[3],
                        self.inbox[4],
                    ]) as usize;
                    if self.inbox.len() > len {
                        let mut frame = self.inbox.split_to(len + 1).freeze();
                        let tag = frame[0];
                        frame.advance(5);
                        return Msg { tag, body: frame };
                    }
                }
                let n = self
                    .stream
                    .read_buf(&mut self.inbox)
                    .await
                    .expect("read from proxy");
                assert!(n > 0, "proxy closed the raw connection");
            }
        })
        .await
    }

    /// Reads messages up to and including ReadyForQuery; returns a compact
    /// transcript (the protocol's message letters, asynchronous ones left
    /// out) plus DataRow values and error SQLSTATEs.
    pub async fn until_ready(&mut self) -> Transcript {
        let mut t = Transcript::default();
        loop {
            let m = self.recv().await;
            match m.tag {
                b'N' | b'S' | b'A' => continue,
                b'D' => t.rows.push(m.columns()),
                b'E' => t.errors.push(m.field(b'C').unwrap_or_default()),
                _ => {}
            }
            t.tags.push(m.tag as char);
            if m.tag == b'Z' {
                t.status = m.body[0];
                return t;
            }
        }
    }
}

/// What a raw client read up to ReadyForQuery.
#[derive(Default, Debug)]
pub struct Transcript {
    pub tags: String,
    pub rows: Vec<Vec<Option<Vec<u8>>>>,
    pub errors: Vec<String>,
    pub status: u8,
}

impl Transcript {
    pub fn text(&self, row: usize, col: usize) -> Option<String> {
        self.rows[row][col]
            .as_ref()
            .map(|v| String::from_utf8(v.clone()).expect("text-format value is UTF-8"))
    }
}

/// Encodes a Bind whose values are all in text format (or NULL).
pub fn bind_text(
    out: &mut BytesMut,
    portal: &str,
    statement: &str,
    values: &[Option<&str>],
    result_format: i16,
) {
    frontend::bind(
        portal,
        statement,
        Some(0i16),
        values.iter().copied(),
        |value, buf| match value {
            Some(v) => {
                buf.extend_from_slice(v.as_bytes());
                Ok(postgres_protocol::IsNull::No)
            }
            None => Ok(postgres_protocol::IsNull::Yes),
        },
        Some(result_format),
        out,
    )
    .map_err(|_| "bind encoding")
    .unwrap();
}
