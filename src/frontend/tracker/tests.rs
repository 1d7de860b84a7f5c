use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::mpsc;

use super::StatementTracker;
use crate::frontend::clients::{ClientRegistry, Registration};
use crate::net::messages::{PgError, backend_tag as bt, put_cstr, put_empty, put_message, tag};
use crate::observe::Observer;
use crate::observe::event::{Route, SessionInfo, StatementEvent};

struct Harness {
    tracker: StatementTracker,
    events: mpsc::Receiver<StatementEvent>,
    _registration: Registration,
}

fn harness(fixed: Option<Route>) -> Harness {
    let (observer, events) = Observer::for_tests();
    let registry = Arc::new(ClientRegistry::default());
    let registration = registry.register(
        SessionInfo {
            client_id: 1,
            user: "u".into(),
            database: "d".into(),
            address: "unix".into(),
        },
        false,
    );
    Harness {
        tracker: StatementTracker::new(observer, Arc::clone(&registration.entry), fixed),
        events,
        _registration: registration,
    }
}

fn message(tag: u8, fill: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut out = BytesMut::new();
    put_message(&mut out, tag, fill);
    out.freeze()
}

fn query(sql: &str) -> Bytes {
    message(tag::QUERY, |b| put_cstr(b, sql.as_bytes()))
}

fn parse(name: &str, sql: &str) -> Bytes {
    message(tag::PARSE, |b| {
        put_cstr(b, name.as_bytes());
        put_cstr(b, sql.as_bytes());
        b.put_i16(0);
    })
}

fn bind(portal: &str, statement: &str, value: &str) -> Bytes {
    message(tag::BIND, |b| {
        put_cstr(b, portal.as_bytes());
        put_cstr(b, statement.as_bytes());
        b.put_i16(0);
        b.put_i16(1);
        b.put_i32(value.len() as i32);
        b.put_slice(value.as_bytes());
        b.put_i16(0);
    })
}

fn execute(portal: &str) -> Bytes {
    message(tag::EXECUTE, |b| {
        put_cstr(b, portal.as_bytes());
        b.put_i32(0);
    })
}

fn sync() -> Bytes {
    message(tag::SYNC, |_| {})
}

fn complete(out: &mut BytesMut, command: &str) {
    put_message(out, bt::COMMAND_COMPLETE, |b| {
        put_cstr(b, command.as_bytes())
    });
}

fn data_row(out: &mut BytesMut) {
    put_message(out, bt::DATA_ROW, |b| {
        b.put_i16(1);
        b.put_i32(1);
        b.put_u8(b'1');
    });
}

fn ready(out: &mut BytesMut) {
    put_message(out, bt::READY_FOR_QUERY, |b| b.put_u8(b'I'));
}

fn send(h: &mut Harness, messages: &[Bytes]) {
    for m in messages {
        h.tracker.on_client_message(m[0], m);
    }
}

fn events(h: &mut Harness) -> Vec<StatementEvent> {
    let mut all = vec![];
    while let Ok(event) = h.events.try_recv() {
        all.push(event);
    }
    all
}

fn shard0() -> Route {
    let mut route = Route::default();
    route.shards.insert(0);
    route
}

#[test]
fn simple_query_ends_at_ready_for_query_with_its_row_count() {
    let mut h = harness(Some(shard0()));
    send(&mut h, &[query("select 1; select 2")]);
    let mut out = BytesMut::new();
    data_row(&mut out);
    complete(&mut out, "SELECT 1");
    data_row(&mut out);
    complete(&mut out, "SELECT 1");
    h.tracker.on_client_output(&out);
    assert!(events(&mut h).is_empty(), "not done before ReadyForQuery");
    let mut out = BytesMut::new();
    ready(&mut out);
    h.tracker.on_client_output(&out);
    let done = events(&mut h);
    assert_eq!(done.len(), 1);
    assert_eq!(&done[0].text[..], b"select 1; select 2");
    assert_eq!(done[0].rows, 2);
    assert_eq!(done[0].error, None);
    assert_eq!(done[0].route, shard0());
}

#[test]
fn output_split_at_any_byte_is_read_the_same() {
    let mut whole = BytesMut::new();
    data_row(&mut whole);
    complete(&mut whole, "INSERT 0 7");
    PgError::error("23505", "duplicate").encode(&mut whole);
    ready(&mut whole);
    for split in 0..whole.len() {
        let mut h = harness(None);
        send(&mut h, &[query("insert ...")]);
        h.tracker.on_client_output(&whole[..split]);
        h.tracker.on_client_output(&whole[split..]);
        let done = events(&mut h);
        assert_eq!(done.len(), 1, "split at {split}");
        assert_eq!(done[0].rows, 7);
        assert_eq!(done[0].error, Some(*b"23505"));
    }
}

#[test]
fn executes_carry_their_statement_text_and_bind() {
    let mut h = harness(Some(shard0()));
    send(
        &mut h,
        &[
            parse("s1", "select $1"),
            bind("", "s1", "42"),
            execute(""),
            bind("p", "s1", "43"),
            execute("p"),
            sync(),
        ],
    );
    let mut out = BytesMut::new();
    put_empty(&mut out, bt::PARSE_COMPLETE);
    put_empty(&mut out, bt::BIND_COMPLETE);
    data_row(&mut out);
    complete(&mut out, "SELECT 1");
    put_empty(&mut out, bt::BIND_COMPLETE);
    data_row(&mut out);
    complete(&mut out, "SELECT 1");
    h.tracker.on_client_output(&out);
    let done = events(&mut h);
    assert_eq!(done.len(), 2, "each Execute ends at its CommandComplete");
    for (event, value) in done.iter().zip(["42", "43"]) {
        assert_eq!(&event.text[..], b"select $1");
        let bind = event.bind.as_ref().expect("the Bind goes along");
        assert!(bind.ends_with(&[value.as_bytes(), &[0, 0]].concat()));
    }
    let mut out = BytesMut::new();
    ready(&mut out);
    h.tracker.on_client_output(&out);
    assert!(events(&mut h).is_empty());
}

#[test]
fn executes_skipped_after_an_error_are_not_reported() {
    let mut h = harness(None);
    send(
        &mut h,
        &[
            parse("", "select 1/0"),
            bind("", "", "1"),
            execute(""),
            bind("", "", "2"),
            execute(""),
            sync(),
            query("select 3"),
        ],
    );
    let mut out = BytesMut::new();
    put_empty(&mut out, bt::PARSE_COMPLETE);
    put_empty(&mut out, bt::BIND_COMPLETE);
    PgError::error("22012", "division by zero").encode(&mut out);
    ready(&mut out);
    complete(&mut out, "SELECT 1");
    ready(&mut out);
    h.tracker.on_client_output(&out);
    let done = events(&mut h);
    assert_eq!(done.len(), 2);
    assert_eq!(done[0].error, Some(*b"22012"));
    assert_eq!(&done[1].text[..], b"select 3");
    assert_eq!(done[1].error, None);
}

#[test]
fn suspended_portals_count_their_rows() {
    let mut h = harness(None);
    send(
        &mut h,
        &[
            parse("", "select g"),
            bind("", "", "1"),
            execute(""),
            sync(),
        ],
    );
    let mut out = BytesMut::new();
    for _ in 0..3 {
        data_row(&mut out);
    }
    put_empty(&mut out, bt::PORTAL_SUSPENDED);
    h.tracker.on_client_output(&out);
    let done = events(&mut h);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].rows, 3);
}

#[test]
fn routes_noted_at_bind_go_with_the_execute() {
    let mut h = harness(None);
    send(&mut h, &[parse("", "select 1"), bind("", "", "1")]);
    h.tracker.note_route(1, true);
    send(&mut h, &[execute("")]);
    h.tracker.note_route(2, true);
    send(&mut h, &[sync()]);
    let mut out = BytesMut::new();
    complete(&mut out, "SELECT 0");
    ready(&mut out);
    h.tracker.on_client_output(&out);
    let done = events(&mut h);
    assert_eq!(done[0].route.shards.iter().collect::<Vec<_>>(), vec![1, 2]);
    assert!(done[0].route.scatter && done[0].route.replica);
}

#[test]
fn rewinding_forgets_statements_handled_again() {
    let mut h = harness(None);
    send(&mut h, &[query("select 1")]);
    let mark = h.tracker.mark();
    assert_eq!(mark, 0, "the current statement is queued again on retry");
    h.tracker.rewind(mark);
    send(&mut h, &[query("select 1")]);
    let mut out = BytesMut::new();
    complete(&mut out, "SELECT 1");
    ready(&mut out);
    h.tracker.on_client_output(&out);
    assert_eq!(events(&mut h).len(), 1);
    assert_eq!(h.tracker.queue.len(), 0);
}

#[test]
fn command_tags_give_row_counts() {
    for (tag, rows) in [
        ("SELECT 5", 5),
        ("INSERT 0 12", 12),
        ("UPDATE 3", 3),
        ("COPY 100", 100),
        ("BEGIN", 0),
        ("CREATE TABLE", 0),
    ] {
        let mut body = tag.as_bytes().to_vec();
        body.push(0);
        assert_eq!(super::command_rows(&body), rows, "{tag}");
    }
}

#[test]
fn a_fan_out_run_at_describe_is_routed_and_timed_from_its_bind() {
    let mut h = harness(None);
    send(
        &mut h,
        &[parse("", "select count(*) from t"), bind("", "", "1")],
    );
    let bound = tokio::time::Instant::now();
    let describe = message(tag::DESCRIBE, |b| {
        b.put_u8(b'P');
        put_cstr(b, b"");
    });
    send(&mut h, &[describe]);
    // The proxy runs the fan-out while handling the Describe.
    h.tracker.note_route(0, false);
    h.tracker.note_route(1, false);
    send(&mut h, &[execute(""), sync()]);
    let unit = h.tracker.queue.front().expect("queued");
    assert!(unit.started <= bound, "timed from the Bind");
    let mut out = BytesMut::new();
    complete(&mut out, "SELECT 1");
    ready(&mut out);
    h.tracker.on_client_output(&out);
    let done = events(&mut h);
    assert_eq!(done[0].route.shards.iter().collect::<Vec<_>>(), vec![0, 1]);
    assert!(done[0].route.scatter);
}

#[test]
fn syncs_sent_during_copy_in_are_not_waited_for() {
    let copy_done = || message(tag::COPY_DONE, |_| {});
    for done_before_copy_in in [false, true] {
        let mut h = harness(None);
        send(
            &mut h,
            &[
                parse("", "copy t from stdin"),
                bind("", "", "1"),
                execute(""),
                sync(),
            ],
        );
        if done_before_copy_in {
            send(&mut h, &[copy_done()]);
        }
        let mut out = BytesMut::new();
        put_empty(&mut out, bt::PARSE_COMPLETE);
        put_empty(&mut out, bt::BIND_COMPLETE);
        put_message(&mut out, bt::COPY_IN, |b| {
            b.put_u8(0);
            b.put_i16(0);
        });
        h.tracker.on_client_output(&out);
        if !done_before_copy_in {
            send(&mut h, &[copy_done()]);
        }
        // Drivers send a second Sync after CopyDone; that one is answered.
        send(&mut h, &[sync(), query("select 2")]);
        let mut out = BytesMut::new();
        complete(&mut out, "COPY 3");
        ready(&mut out);
        complete(&mut out, "SELECT 1");
        ready(&mut out);
        h.tracker.on_client_output(&out);
        let done = events(&mut h);
        let texts: Vec<&[u8]> = done.iter().map(|e| &e.text[..]).collect();
        assert_eq!(texts, vec![&b"copy t from stdin"[..], b"select 2"]);
        assert_eq!(done[0].rows, 3);
        assert_eq!(done[1].rows, 1, "the next statement keeps its own answer");
        assert!(h.tracker.queue.is_empty());
    }
}
