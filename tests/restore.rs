//! Restoring a partition from the changelog: states are staged in RocksDB as they are read and
//! written to the partition in slices, so the restore holds a slice in memory, not the partition
//! (a counting global allocator measures kizashi's own heap; librdkafka and RocksDB allocate in
//! C and C++ and are bounded by their own budgets). The changelog is on a real Kafka-protocol
//! broker (librdkafka's mock cluster keeps only 5 MB a partition).

mod common;

mod counting;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use kizashi::config::Settings;
use kizashi::core::Params;
use kizashi::engine::board::Board;
use kizashi::engine::{Engine, Options, Record, Source};
use kizashi::generate::GenOptions;
use kizashi::metrics::Metrics;
use kizashi::pipeline::changelog::{read_partition, Checkpoint};
use kizashi::store::Budget;

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

const END_DAY: i32 = 20_400;

/// The encoded states of a generated population, as an engine keeps them after a replay.
fn population() -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Engine::open(dir.path(), Params::new(&Settings::default()), Options::new(Budget { total: 1 << 30 })).unwrap();
    let gen = GenOptions { accounts: 250, days: 30, end_day: END_DAY, seed: 3, activity: 0.6, mix: Default::default() };
    let limits = Settings::default().events.decode_limits(i64::MAX / 2);
    let mut n = 0;
    kizashi::generate::generate(&gen, |r| {
        n += 1;
        let decoded = kizashi::event::decode(r.kind, r.line.as_bytes(), None, &limits);
        engine.process(0, Record::new(Source { name: "usage", offset: n }, b"", &decoded)).unwrap();
    });
    engine.flush(|_| {}).unwrap();
    let mut ids = Vec::new();
    engine.store().for_each_account_in(0, |id, _| ids.push(id.to_string())).unwrap();
    ids.into_iter().map(|id| {
        let bytes = engine.store().get_account_encoded(0, &id).unwrap().unwrap();
        (id, bytes)
    }).collect()
}

fn key(id: &str) -> Vec<u8> {
    let mut k = 0u32.to_be_bytes().to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

#[test]
fn a_restore_writes_the_partition_in_slices_holding_a_slice_in_memory() {
    let states = population();
    // Each generated state under 60 account ids: the partition is ~100 times a restore's slice.
    let copies = 60;
    let newest: Vec<(String, &Vec<u8>)> =
        (0..copies).flat_map(|c| states.iter().map(move |(id, s)| (format!("{id}-{c:02}"), s))).collect();
    let total: usize = newest.iter().map(|(_, s)| s.len()).sum();
    let older = kizashi::store::codec::encode_to_vec(&kizashi::core::AccountState { day: 1, ..Default::default() });

    let broker = common::Broker::start();
    broker.create_topics(&[("cl", 1)]);
    let config = broker.config();
    let producer: BaseProducer = config.clone().set("queue.buffering.max.kbytes", "1048576").create().unwrap();
    let send = |k: &[u8], v: &[u8]| {
        producer.send(BaseRecord::<[u8], [u8]>::to("cl").partition(0).key(k).payload(v)).unwrap();
        producer.poll(Duration::ZERO);
    };
    // An older version of every account first, then the newest, then the checkpoint: a later
    // version replaces an earlier one staged in an earlier slice.
    for (id, _) in &newest {
        send(&key(id), &older);
    }
    for (id, s) in &newest {
        send(&key(id), s);
    }
    let checkpoint = Checkpoint { offsets: vec![("usage".into(), 123_456)], stream_time: Some(END_DAY as i64 * 86_400_000) };
    let mut cp_key = 0u32.to_be_bytes().to_vec();
    cp_key.push(0xFF);
    send(&cp_key, &checkpoint.encode());
    producer.flush(Duration::from_secs(60)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let board = Arc::new(Board::default());
    let mut engine = Engine::open(dir.path(), Params::new(&Settings::default()), Options { durable: true, board: Some(board.clone()), ..Options::new(Budget { total: 64 << 20 }) }).unwrap();
    let metrics = Metrics::new();
    let before = counting::reset_peak();
    let read =
        read_partition(&config, "cl", 0, engine.store(), 9, Duration::from_secs(120), &metrics, |_, _| {}).unwrap();
    let restored = engine.restore_partition(0, 9, &read.checkpoint.as_ref().unwrap().offsets, checkpoint.stream_time).unwrap();
    let peak = counting::peak() - before;
    let board_bytes = board.approx_bytes() as isize;
    eprintln!(
        "{} accounts, {:.1} MiB of newest states, {:.1} MiB read: kizashi's heap peaked {:.1} MiB above the start (board {:.1} MiB)",
        newest.len(),
        total as f64 / 1048576.0,
        read.bytes as f64 / 1048576.0,
        peak as f64 / 1048576.0,
        board_bytes as f64 / 1048576.0
    );

    assert_eq!(read.records, 2 * newest.len() as u64 + 1);
    assert_eq!(read.checkpoint, Some(checkpoint.clone()));
    assert_eq!(restored, newest.len());
    // Holding the newest states alone would be `total`; decoded, several times it.
    assert!(peak < board_bytes + (total as isize) / 8, "peak {peak} bytes for {total} bytes of states (board {board_bytes})");

    let store = engine.store();
    for (id, s) in &newest {
        assert_eq!(store.get_account_encoded(0, id).unwrap().as_ref(), Some(*s), "{id} is its newest version");
    }
    let mut stored = 0;
    store.for_each_account_in(0, |_, _| stored += 1).unwrap();
    assert_eq!(stored, newest.len(), "nothing but the restored accounts");
    assert_eq!(store.offsets(0).unwrap(), (checkpoint.offsets.clone(), checkpoint.stream_time));
    assert_eq!(board.len(), newest.len(), "every account on the board");
    let want_due = newest
        .iter()
        .filter(|(_, s)| kizashi::store::codec::decode(s).unwrap().score.next_due_ms.is_some())
        .count();
    assert!(want_due > 0);
    assert_eq!(store.due_entries(0).unwrap().len(), want_due, "the due index rebuilt from the states");
    let mut left = 0;
    store
        .for_each_staged(0, 9, |_, _| {
            left += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(left, 0, "the staged states are gone once restored");
}

#[test]
fn staged_states_are_kept_apart_by_reading_and_dropped_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let a = kizashi::store::codec::encode_to_vec(&kizashi::core::AccountState { day: 1, ..Default::default() });
    let b = kizashi::store::codec::encode_to_vec(&kizashi::core::AccountState { day: 2, ..Default::default() });
    let count = |store: &kizashi::store::Store, p: u32, g: u64| {
        let mut n = Vec::new();
        store
            .for_each_staged(p, g, |id, v| {
                n.push((id.to_string(), v.to_vec()));
                Ok(())
            })
            .unwrap();
        n
    };
    {
        let mut engine = Engine::open(dir.path(), Params::new(&Settings::default()), Options { durable: true, ..Options::new(Budget { total: 64 << 20 }) }).unwrap();
        let store = engine.store().clone();
        let mut batch = store.batch();
        batch.stage(0, 1, "x", &a);
        batch.stage(0, 2, "x", &b);
        batch.stage(0, 2, "y", &b);
        batch.stage(1, 2, "z", &a);
        store.write_unlogged(batch).unwrap();
        assert_eq!(count(&store, 0, 1), [("x".to_string(), a.clone())]);
        assert_eq!(count(&store, 0, 2), [("x".to_string(), b.clone()), ("y".to_string(), b.clone())]);

        // Restoring partition 0 from reading 2 takes reading 2's states only.
        assert_eq!(engine.restore_partition(0, 2, &[("usage".into(), 5)], None).unwrap(), 2);
        assert_eq!(store.get_account_encoded(0, "x").unwrap(), Some(b.clone()));
        assert!(count(&store, 0, 2).is_empty());
        assert_eq!(count(&store, 0, 1).len(), 1, "another reading's states stay until dropped");
        store.clear_staged(0, 1).unwrap();
        assert!(count(&store, 0, 1).is_empty());
        assert_eq!(count(&store, 1, 2).len(), 1, "another partition's stay");
    }
    // A restart drops whatever was staged: a restore cut short is read again.
    let engine = Engine::open(dir.path(), Params::new(&Settings::default()), Options { durable: true, ..Options::new(Budget { total: 64 << 20 }) }).unwrap();
    assert!(count(engine.store(), 1, 2).is_empty());
    assert_eq!(engine.store().get_account_encoded(0, "x").unwrap(), Some(b), "restored states are kept");
}

/// A consumer that restarts from offsets older than its restored states (a crash after the state
/// was written, before the offsets were committed) reads records the states already hold: each
/// is skipped and counted (`Stats::already_applied`, which `kizashi_events_already_applied_total`
/// reports), and the output is that of a run that read every record once.
#[test]
fn records_a_restored_state_already_holds_are_skipped_and_counted() {
    let gen = GenOptions { accounts: 60, days: 21, end_day: END_DAY, seed: 7, activity: 0.6, mix: Default::default() };
    let limits = Settings::default().events.decode_limits(i64::MAX / 2);
    let mut records = Vec::new();
    kizashi::generate::generate(&gen, |r| records.push((r.kind, r.line.to_string())));
    let split = records.len() * 3 / 5;
    let open = |dir: &std::path::Path| {
        Engine::open(dir, Params::new(&Settings::default()), Options { track_applied: true, ..Options::new(Budget { total: 1 << 30 }) }).unwrap()
    };
    let run = |e: &mut Engine, range: std::ops::Range<usize>| {
        for (i, (kind, line)) in records.iter().enumerate().take(range.end).skip(range.start) {
            let decoded = kizashi::event::decode(*kind, line.as_bytes(), None, &limits);
            e.process(0, Record::new(Source { name: "gen", offset: i as i64 }, b"", &decoded)).unwrap();
        }
        e.flush(|_| {}).unwrap();
        let out = e.take_output();
        let alerts: Vec<String> = out.alerts.iter().map(|a| a.to_json()).collect();
        let scores: Vec<String> = out.scores.iter().map(|s| s.to_json()).collect();
        assert!(out.rejected.is_empty(), "{:?}", out.rejected.first());
        (alerts, scores)
    };

    let once = tempfile::tempdir().unwrap();
    let mut whole = open(once.path());
    let (alerts_once, scores_once) = run(&mut whole, 0..records.len());
    assert_eq!(whole.stats.already_applied, 0);

    let dir = tempfile::tempdir().unwrap();
    let mut first = open(dir.path());
    let (mut alerts, mut scores) = run(&mut first, 0..split);
    let held = first.stats.applied.iter().sum::<u64>() + first.stats.duplicates;
    assert!(held > 1_000, "the first run applied {held} records");
    drop(first);
    // The restart reads everything again from the first offset.
    let mut again = open(dir.path());
    let (a, s) = run(&mut again, 0..records.len());
    assert_eq!(again.stats.already_applied, held, "every record the stored states hold is skipped, and only those");
    assert_eq!(
        again.stats.applied.iter().sum::<u64>() + again.stats.duplicates + held,
        whole.stats.applied.iter().sum::<u64>() + whole.stats.duplicates
    );
    alerts.extend(a);
    scores.extend(s);
    assert!(!alerts_once.is_empty() && !scores_once.is_empty());
    assert_eq!(alerts, alerts_once, "the same alerts as one reading, none repeated");
    assert_eq!(scores, scores_once);
}
