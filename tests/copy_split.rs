//! Proves `shardwire::sharding::copy::RowSplitter` reads COPY data as
//! PostgreSQL does.
//!
//! For each of several COPY option sets (text and CSV; default and custom
//! delimiters, NULL strings, quotes and escapes; `\n` and `\r\n` rows; HEADER;
//! the `\.` end marker followed by ignored bytes; a final row without a line
//! terminator; FORCE_NULL / FORCE_NOT_NULL on the key) a few hundred rows
//! made of tricky pieces (every text escape, escaped delimiters and line
//! breaks, quoted delimiters and line breaks, doubled and escaped quotes,
//! NULL vs empty) are:
//!
//! 1. COPYed into a table by a real Postgres (sent in uneven chunks);
//! 2. fed to the splitter in other uneven chunks;
//! 3. compared row by row: the key column Postgres stored (read back as
//!    bytes, NULL as NULL) must be the key the splitter extracted;
//! 4. and the rows the splitter handed out, COPYed into a second table as a
//!    shard would receive them (without HEADER), must give the same table.

use std::borrow::Cow;

use bytes::Bytes;
use futures::SinkExt;
use shardwire::localcluster::{ClusterOptions, LocalCluster};
use shardwire::sharding::copy::{CopyOptions, RowSplitter};
use tokio_postgres::Client;

/// Data rows per option set.
const ROWS: usize = 300;

/// The key column's index among the COPY's columns `(a, k, b)`.
const KEY_FIELD: usize = 1;

/// splitmix64: a tiny deterministic generator, so every run checks the same
/// data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &'a [Vec<u8>]) -> &'a [u8] {
        &items[self.below(items.len())]
    }
}

/// One COPY option set and its data.
struct Case {
    /// Table name.
    name: &'static str,
    /// The `WITH (...)` options of the client's COPY.
    with: &'static str,
    /// The same options as the splitter takes them.
    options: CopyOptions,
    /// Line terminator of the rows.
    eol: &'static [u8],
    /// Leave the last row without a terminator.
    unterminated_last_row: bool,
    /// Bytes after the data: e.g. an end marker and rows that are ignored.
    trailer: &'static [u8],
    /// The pieces fields are made of, each valid on its own.
    pieces: Vec<Vec<u8>>,
}

impl Case {
    /// The options of the COPY a shard would receive: the same, without
    /// HEADER (the splitter drops the header line).
    fn forwarded_with(&self) -> String {
        self.with.replace(", HEADER true", "")
    }

    fn data(&self, rng: &mut Rng) -> Vec<u8> {
        let delimiter = [self.options.delimiter];
        let mut data = Vec::new();
        if self.options.header {
            data.extend_from_slice(b"column names");
            data.extend_from_slice(self.eol);
        }
        for row in 0..ROWS {
            for field in 0..3 {
                if field > 0 {
                    data.extend_from_slice(&delimiter);
                }
                self.field(rng, &mut data);
            }
            if row + 1 < ROWS || !self.unterminated_last_row {
                data.extend_from_slice(self.eol);
            }
        }
        data.extend_from_slice(self.trailer);
        data
    }

    /// A field: NULL, empty, or one to three pieces.
    fn field(&self, rng: &mut Rng, out: &mut Vec<u8>) {
        match rng.below(20) {
            0 | 1 => out.extend_from_slice(&self.options.null),
            2 => {}
            _ => {
                for _ in 0..=rng.below(3) {
                    out.extend_from_slice(rng.pick(&self.pieces));
                }
            }
        }
    }
}

fn bytes_list(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|item| item.as_bytes().to_vec()).collect()
}

/// Text-format pieces without the delimiter, none starting with a digit or
/// a hex letter (so that joining pieces never extends an escape's digits).
fn text_pieces(extra: &[&str]) -> Vec<Vec<u8>> {
    let mut pieces = bytes_list(&[
        "plain",
        "sp ace",
        "é",
        "日本",
        "\"quote\"",
        ",",
        ";",
        "\\\\",
        "\\b",
        "\\f",
        "\\n",
        "\\r",
        "\\t",
        "\\v",
        "\\101",
        "\\7",
        "\\x41",
        "\\x4g",
        "\\xg",
        "\\q",
        "\\N",
        "\\\\N",
        "\\\\.",
        "\\303\\251",
        "\\xc3\\xa9",
        "\\\n",
    ]);
    pieces.extend(bytes_list(extra));
    pieces
}

/// CSV pieces with quote `q`, escape `e` and delimiter `d`.
fn csv_pieces(q: char, e: char, d: char) -> Vec<Vec<u8>> {
    let mut pieces = vec![
        "plain".to_string(),
        "sp ace".to_string(),
        "é".to_string(),
        "\\N".to_string(),
        "\\".to_string(),
        "\\.".to_string(),
        "NULL".to_string(),
        format!("{q}quoted{d} with delimiter{q}"),
        format!("{q}multi\nline{q}"),
        format!("{q}cr\r\nlf{q}"),
        format!("{q}say {e}{q}hi{e}{q}{q}"),
        format!("{q}{e}{e}{q}"),
        format!("{q}{q}"),
        format!("{q}NULL{q}"),
        format!("mid{q}dle{d}quo{q}ted"),
        format!("{q}\n\\.\n{q}"),
        format!("{q}\\.{q}"),
    ];
    if e != q {
        pieces.push(format!("{q}lone {e} escape{q}"));
        pieces.push(format!("outside {e}{e} quotes"));
    }
    pieces.into_iter().map(String::into_bytes).collect()
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "text_default",
            with: "(FORMAT text)",
            options: CopyOptions::text(),
            eol: b"\n",
            unterminated_last_row: false,
            trailer: b"",
            pieces: text_pieces(&["\\\t", "\\x09", "\\\r"]),
        },
        Case {
            name: "text_pipe_nil_crlf",
            with: "(FORMAT text, DELIMITER '|', NULL 'nil')",
            options: CopyOptions {
                delimiter: b'|',
                null: b"nil".to_vec(),
                ..CopyOptions::text()
            },
            eol: b"\r\n",
            unterminated_last_row: true,
            trailer: b"",
            pieces: text_pieces(&["\\|", "nil", "\\\tx"]),
        },
        Case {
            name: "text_delimiter_a_header_end_marker",
            with: "(FORMAT text, DELIMITER 'A', HEADER true)",
            options: CopyOptions {
                delimiter: b'A',
                header: true,
                ..CopyOptions::text()
            },
            eol: b"\n",
            unterminated_last_row: false,
            trailer: b"\\.\nignored\tAAA\n\\.x",
            pieces: text_pieces(&["\\A", "\\x4A", "\\x4a", "\\xAz", "\t"]),
        },
        Case {
            name: "csv_default_end_marker",
            with: "(FORMAT csv)",
            options: CopyOptions::csv(),
            eol: b"\n",
            unterminated_last_row: false,
            trailer: b"\\.\n\"unterminated,ignored\n",
            pieces: csv_pieces('"', '"', ','),
        },
        Case {
            name: "csv_header_null_word_force_null",
            with: "(FORMAT csv, HEADER true, NULL 'NULL', FORCE_NULL (k))",
            options: CopyOptions {
                header: true,
                null: b"NULL".to_vec(),
                key_force_null: true,
                ..CopyOptions::csv()
            },
            eol: b"\n",
            unterminated_last_row: true,
            trailer: b"",
            pieces: csv_pieces('"', '"', ','),
        },
        Case {
            name: "csv_semicolon_quote_escape_crlf_force_not_null",
            with: "(FORMAT csv, DELIMITER ';', QUOTE '''', ESCAPE '\\', FORCE_NOT_NULL (k))",
            options: CopyOptions {
                delimiter: b';',
                quote: b'\'',
                escape: b'\\',
                key_force_not_null: true,
                ..CopyOptions::csv()
            },
            eol: b"\r\n",
            unterminated_last_row: false,
            trailer: b"",
            pieces: csv_pieces('\'', '\\', ';'),
        },
    ]
}

/// What the splitter made of some data: each row's key, and the rows
/// concatenated as they would be forwarded.
struct Split {
    keys: Vec<Option<Vec<u8>>>,
    forwarded: Vec<u8>,
}

fn split(options: &CopyOptions, data: &[u8], rng: &mut Rng) -> Split {
    let mut splitter = RowSplitter::new(options.clone(), KEY_FIELD);
    let mut keys = Vec::new();
    let mut forwarded = Vec::new();
    let mut collect = |row: &[u8], key: Option<Cow<'_, [u8]>>| {
        forwarded.extend_from_slice(row);
        keys.push(key.map(Cow::into_owned));
    };
    let mut at = 0;
    while at < data.len() {
        let end = (at + 1 + rng.below(61)).min(data.len());
        let _ = splitter
            .feed(&data[at..end], &mut collect)
            .expect("splitter accepts the data");
        at = end;
    }
    splitter
        .finish(&mut collect)
        .expect("splitter accepts the data");
    Split { keys, forwarded }
}

/// COPYs `data` into `table (a, k, b)` in uneven chunks; returns the row count.
async fn copy_in(client: &Client, table: &str, with: &str, data: &[u8], rng: &mut Rng) -> u64 {
    let sink = client
        .copy_in::<_, Bytes>(&format!("COPY {table} (a, k, b) FROM STDIN WITH {with}"))
        .await
        .expect("start COPY");
    futures::pin_mut!(sink);
    let mut at = 0;
    while at < data.len() {
        let end = (at + 1 + rng.below(97)).min(data.len());
        sink.send(Bytes::copy_from_slice(&data[at..end]))
            .await
            .expect("send COPY data");
        at = end;
    }
    sink.finish().await.expect("Postgres accepts the COPY data")
}

async fn rows_of(
    client: &Client,
    table: &str,
) -> Vec<(Option<String>, Option<Vec<u8>>, Option<String>)> {
    client
        .query(
            &format!("SELECT a, convert_to(k, 'UTF8'), b FROM {table} ORDER BY id"),
            &[],
        )
        .await
        .expect("read back")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

async fn check_case(client: &Client, case: &Case, rng: &mut Rng) {
    let name = case.name;
    for table in [name.to_string(), format!("{name}_fwd")] {
        client
            .batch_execute(&format!(
                "CREATE TABLE {table} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, a text, k text, b text)"
            ))
            .await
            .expect("create table");
    }
    let data = case.data(rng);

    let copied = copy_in(client, name, case.with, &data, rng).await;
    assert_eq!(copied, ROWS as u64, "{name}: rows Postgres copied");

    let split = split(&case.options, &data, rng);
    let stored = rows_of(client, name).await;
    assert_eq!(split.keys.len(), stored.len(), "{name}: row count");
    for (index, (key, (_, stored_key, _))) in split.keys.iter().zip(&stored).enumerate() {
        assert_eq!(
            key.as_deref().map(String::from_utf8_lossy),
            stored_key.as_deref().map(String::from_utf8_lossy),
            "{name}: key of row {index} (splitter vs Postgres)"
        );
    }

    let forwarded = copy_in(
        client,
        &format!("{name}_fwd"),
        &case.forwarded_with(),
        &split.forwarded,
        rng,
    )
    .await;
    assert_eq!(forwarded, ROWS as u64, "{name}: rows of the forwarded COPY");
    assert_eq!(
        rows_of(client, &format!("{name}_fwd")).await,
        stored,
        "{name}: forwarded rows read differently"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splitter_keys_match_postgres() {
    let cluster =
        LocalCluster::start_temp(&ClusterOptions::for_tests()).expect("start temp cluster");
    let (client, connection) = tokio_postgres::connect(
        &cluster.connection_string("postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut rng = Rng(0x5eed_c0b1);
    for case in cases() {
        check_case(&client, &case, &mut rng).await;
    }
}
