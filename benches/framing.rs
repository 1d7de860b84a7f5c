//! Micro-benchmarks of the data plane's message framing.
//!
//! What is measured (all throughput figures are bytes of protocol messages
//! walked per second):
//!
//! - `peek_frame/datarows`: walking a 1 MiB buffer of small DataRow (`D`)
//!   messages the way a connection's read loop does (peek, advance by
//!   `frame.len`, repeat), ending with CommandComplete + ReadyForQuery;
//! - `peek_frame/large`: one 8 MiB DataRow, found in a complete buffer;
//! - `peek_frame/partial_header_then_body`: the common "not yet" path: the
//!   same small-message walk, but each message is first offered without its
//!   last byte (must return `Ok(None)`) and then whole;
//! - `readers/*`: the few field readers the hot path runs on each frontend
//!   message: `parse_parts` on Parse, `bind_parts` on Bind, `query_text` on a
//!   simple Query, plus a whole extended-protocol batch (Parse/Bind/Describe/
//!   Execute/Sync as pgbench -M extended sends it) framed and decoded.
//!
//! Run: `cargo bench --bench framing` (add `-- --warm-up-time 1
//! --measurement-time 3` for a quicker run).

use std::hint::black_box;

use bytes::{BufMut, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use shardwire::net::messages::{self, bind_parts, parse_parts, query_text, target_parts};
use shardwire::net::{Frame, peek_frame};

/// The proxy's default `proxy.max_message_bytes`.
const MAX: usize = 64 * 1024 * 1024;

fn put_msg(out: &mut BytesMut, tag: u8, body: &[u8]) {
    out.put_u8(tag);
    out.put_i32((body.len() + 4) as i32);
    out.put_slice(body);
}

/// A DataRow with `cols` text columns of `width` bytes each.
fn data_row(cols: usize, width: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(2 + cols * (4 + width));
    body.extend_from_slice(&(cols as i16).to_be_bytes());
    for i in 0..cols {
        body.extend_from_slice(&(width as i32).to_be_bytes());
        body.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, width));
    }
    body
}

/// About `target` bytes of DataRows, then CommandComplete and ReadyForQuery.
fn result_set(target: usize, cols: usize, width: usize) -> (BytesMut, usize) {
    let row = data_row(cols, width);
    let mut buf = BytesMut::with_capacity(target + 64);
    let mut n = 0;
    while buf.len() < target {
        put_msg(&mut buf, b'D', &row);
        n += 1;
    }
    put_msg(&mut buf, b'C', format!("SELECT {n}\0").as_bytes());
    put_msg(&mut buf, b'Z', b"I");
    (buf, n + 2)
}

/// Walks every whole message of `buf`; returns (messages, bytes, last tag).
#[inline]
fn walk(buf: &[u8]) -> (usize, usize, u8) {
    let mut at = 0;
    let mut count = 0;
    let mut last = 0;
    while let Ok(Some(Frame { tag, len })) = peek_frame(&buf[at..], MAX) {
        at += len;
        count += 1;
        last = tag;
    }
    (count, at, last)
}

fn bench_peek_frame(c: &mut Criterion) {
    let mut g = c.benchmark_group("peek_frame");

    // Small DataRow-like messages: pgbench -S returns 1 row of 1 int column
    // (DataRow of 11+ bytes); wider rows are typical of OLTP reads.
    for (cols, width) in [(1usize, 6usize), (4, 16), (10, 40)] {
        let (buf, msgs) = result_set(1 << 20, cols, width);
        let (count, bytes, last) = walk(&buf);
        assert_eq!((count, bytes, last), (msgs, buf.len(), b'Z'));
        let msg_len = 5 + data_row(cols, width).len();
        g.throughput(Throughput::Bytes(buf.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("datarows", format!("{msg_len}B_x{msgs}")),
            &buf[..],
            |b, buf| b.iter(|| walk(black_box(buf))),
        );
    }

    // One large message (8 MiB DataRow): framing must be O(1) in its size.
    let mut large = BytesMut::new();
    put_msg(&mut large, b'D', &data_row(1, 8 << 20));
    g.throughput(Throughput::Bytes(large.len() as u64));
    g.bench_with_input(
        BenchmarkId::new("large", format!("{}B", large.len())),
        &large[..],
        |b, buf| {
            b.iter(|| {
                let f = peek_frame(black_box(buf), MAX).unwrap().unwrap();
                black_box(f.body(buf).len())
            })
        },
    );

    // Every message first seen one byte short (Ok(None)), then whole.
    let (buf, msgs) = result_set(1 << 20, 4, 16);
    g.throughput(Throughput::Bytes(buf.len() as u64));
    g.bench_with_input(
        BenchmarkId::new("partial_then_whole", format!("x{msgs}")),
        &buf[..],
        |b, buf| {
            b.iter(|| {
                let buf = black_box(buf);
                let mut at = 0;
                while at < buf.len() {
                    let rest = &buf[at..];
                    let len = 1 + i32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
                    assert!(peek_frame(&rest[..len - 1], MAX).unwrap().is_none());
                    at += peek_frame(rest, MAX).unwrap().unwrap().len;
                }
                at
            })
        },
    );
    g.finish();
}

/// The frontend messages of one pgbench -M extended / prepared statement.
fn extended_batch(statement: &[u8], with_parse: bool) -> BytesMut {
    let sql = b"SELECT abalance FROM pgbench_accounts WHERE aid = $1;";
    let mut out = BytesMut::new();
    if with_parse {
        messages::put_message(&mut out, b'P', |o| {
            messages::put_cstr(o, statement);
            messages::put_cstr(o, sql);
            o.put_i16(0);
        });
    }
    messages::put_message(&mut out, b'B', |o| {
        messages::put_cstr(o, b"");
        messages::put_cstr(o, statement);
        o.put_i16(0); // parameter formats
        o.put_i16(1); // one parameter
        o.put_i32(6);
        o.put_slice(b"123456");
        o.put_i16(0); // result formats
    });
    messages::put_message(&mut out, b'D', |o| {
        o.put_u8(b'P');
        messages::put_cstr(o, b"");
    });
    messages::put_message(&mut out, b'E', |o| {
        messages::put_cstr(o, b"");
        o.put_i32(0);
    });
    messages::put_empty(&mut out, b'S');
    out
}

/// Frames every message of `buf` and runs the reader the proxy runs on it.
#[inline]
fn decode_frontend(buf: &[u8]) -> usize {
    let mut at = 0;
    let mut acc = 0usize;
    while let Ok(Some(frame)) = peek_frame(&buf[at..], MAX) {
        let body = frame.body(&buf[at..]);
        acc += match frame.tag {
            b'P' => parse_parts(body).map_or(0, |(name, rest)| name.len() + rest.len()),
            b'B' => bind_parts(body).map_or(0, |(p, s, rest)| p.len() + s.len() + rest.len()),
            b'D' | b'C' => target_parts(body).map_or(0, |(k, n)| k as usize + n.len()),
            b'Q' => query_text(body).len(),
            _ => 1,
        };
        at += frame.len;
    }
    acc
}

fn bench_readers(c: &mut Criterion) {
    let mut g = c.benchmark_group("readers");

    let mut parse = BytesMut::new();
    messages::put_message(&mut parse, b'P', |o| {
        messages::put_cstr(o, b"P_0");
        messages::put_cstr(o, b"SELECT abalance FROM pgbench_accounts WHERE aid = $1;");
        o.put_i16(1);
        o.put_i32(23);
    });
    let parse_body = parse[5..].to_vec();
    g.throughput(Throughput::Bytes(parse.len() as u64));
    g.bench_function("parse_parts", |b| {
        b.iter(|| parse_parts(black_box(&parse_body)).map(|(n, r)| n.len() + r.len()))
    });

    let batch = extended_batch(b"P_0", false);
    let bind_frame = peek_frame(&batch, MAX).unwrap().unwrap();
    let bind_body = bind_frame.body(&batch).to_vec();
    g.throughput(Throughput::Bytes(bind_frame.len as u64));
    g.bench_function("bind_parts", |b| {
        b.iter(|| bind_parts(black_box(&bind_body)).map(|(p, s, r)| p.len() + s.len() + r.len()))
    });

    // A Bind carrying a large parameter (64 KiB): the reader only scans the
    // two names, never the values.
    let mut big_bind = BytesMut::new();
    messages::put_message(&mut big_bind, b'B', |o| {
        messages::put_cstr(o, b"");
        messages::put_cstr(o, b"stmt_with_a_longer_name_42");
        o.put_i16(0);
        o.put_i16(1);
        o.put_i32(65536);
        o.put_slice(&vec![b'x'; 65536]);
        o.put_i16(0);
    });
    let big_bind_body = big_bind[5..].to_vec();
    g.throughput(Throughput::Bytes(big_bind.len() as u64));
    g.bench_function("bind_parts_64KiB_value", |b| {
        b.iter(|| {
            bind_parts(black_box(&big_bind_body)).map(|(p, s, r)| p.len() + s.len() + r.len())
        })
    });

    let mut query = BytesMut::new();
    messages::put_query(
        &mut query,
        "SELECT abalance FROM pgbench_accounts WHERE aid = 123456;",
    );
    let query_body = query[5..].to_vec();
    g.throughput(Throughput::Bytes(query.len() as u64));
    g.bench_function("query_text", |b| {
        b.iter(|| query_text(black_box(&query_body)).len())
    });

    // Whole batches, framed and decoded: 1,000 prepared-statement executions
    // (Bind/Describe/Execute/Sync) preceded by one Parse.
    let mut stream = extended_batch(b"P_0", true);
    for _ in 0..999 {
        stream.extend_from_slice(&extended_batch(b"P_0", false));
    }
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_with_input(
        BenchmarkId::new("frame_and_decode_extended", "1000_executions"),
        &stream[..],
        |b, buf| b.iter(|| decode_frontend(black_box(buf))),
    );
    g.finish();
}

criterion_group!(benches, bench_peek_frame, bench_readers);
criterion_main!(benches);
