//! Throughput of the COPY row splitter (`shardwire::sharding::copy`).
//!
//! What is measured (throughput in bytes of COPY data per second):
//!
//! - `copy_split/split/{text,csv}`: 200,000 rows of about 60 bytes each, fed
//!   to a `RowSplitter` in 64 KiB chunks (as CopyData messages cut them),
//!   reading the key in the first column of every row;
//! - `copy_split/memchr_lines/{text,csv}`: the baseline, in the same run: a
//!   plain `memchr` count of `\n` over the same chunks, the least any row
//!   splitter must do. The ratio split / baseline is the splitter's cost.
//!
//! Run: `cargo bench --bench copy_split` (add `-- --warm-up-time 1
//! --measurement-time 3` for a quicker run).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use shardwire::sharding::copy::{CopyOptions, RowSplitter};

const ROWS: usize = 200_000;
const CHUNK: usize = 64 * 1024;

/// Text-format rows: id, name, email, amount, date (about 60 bytes).
fn text_data() -> Vec<u8> {
    let mut data = Vec::with_capacity(ROWS * 64);
    for id in 0..ROWS {
        data.extend_from_slice(
            format!(
                "{id}\tuser_{id:06}\tuser{id}@example.com\t{}.{:02}\t2024-01-{:02}\n",
                id % 9973,
                id % 100,
                id % 28 + 1
            )
            .as_bytes(),
        );
    }
    data
}

/// CSV rows of the same shape, the name and date quoted.
fn csv_data() -> Vec<u8> {
    let mut data = Vec::with_capacity(ROWS * 64);
    for id in 0..ROWS {
        data.extend_from_slice(
            format!(
                "{id},\"User {id:06}\",user{id}@example.com,{}.{:02},\"2024-01-{:02}\"\n",
                id % 9973,
                id % 100,
                id % 28 + 1
            )
            .as_bytes(),
        );
    }
    data
}

/// Splits `data` in 64 KiB chunks; returns (rows, total key bytes).
fn split(options: &CopyOptions, data: &[u8]) -> (usize, usize) {
    let mut splitter = RowSplitter::new(options.clone(), 0);
    let mut rows = 0;
    let mut key_bytes = 0;
    let mut count = |_: &[u8], key: Option<std::borrow::Cow<'_, [u8]>>| {
        rows += 1;
        key_bytes += key.map_or(0, |key| key.len());
    };
    for chunk in data.chunks(CHUNK) {
        let _ = splitter.feed(chunk, &mut count).expect("valid COPY data");
    }
    splitter.finish(&mut count).expect("valid COPY data");
    (rows, key_bytes)
}

/// The baseline: `\n` bytes in `data`, counted chunk by chunk.
fn memchr_lines(data: &[u8]) -> usize {
    data.chunks(CHUNK)
        .map(|chunk| memchr::memchr_iter(b'\n', chunk).count())
        .sum()
}

fn bench_copy_split(c: &mut Criterion) {
    let mut group = c.benchmark_group("copy_split");
    for (name, options, data) in [
        ("text", CopyOptions::text(), text_data()),
        ("csv", CopyOptions::csv(), csv_data()),
    ] {
        assert_eq!(split(&options, &data).0, ROWS);
        assert_eq!(memchr_lines(&data), ROWS);
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_with_input(BenchmarkId::new("memchr_lines", name), &data, |b, data| {
            b.iter(|| memchr_lines(black_box(data)))
        });
        group.bench_with_input(BenchmarkId::new("split", name), &data, |b, data| {
            b.iter(|| split(&options, black_box(data)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_copy_split);
criterion_main!(benches);
