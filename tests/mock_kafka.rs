//! The pipeline against librdkafka's mock cluster, for what the test broker (nisshi) cannot do:
//! transaction markers (nisshi has no transactions and refuses control batches from clients;
//! the mock's log takes one written with a plain Produce request), and errors injected into a
//! broker's answers.
//!
//! Input topics written by transactional producers (Kafka Streams or Flink with exactly-once, CDC
//! tools): each transaction ends with a commit marker, a control record that takes an offset and
//! that librdkafka never hands to the application.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use kizashi::config::Settings;

fn zigzag(buf: &mut Vec<u8>, n: i64) {
    let mut v = ((n << 1) ^ (n >> 63)) as u64;
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf.push(b);
            return;
        }
        buf.push(b | 0x80);
    }
}

fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    !crc
}

/// A record batch (magic 2) holding one transaction commit marker, as a broker writes it.
fn commit_marker_batch(producer_id: i64, ts_ms: i64) -> Vec<u8> {
    let mut record = vec![0u8]; // attributes
    zigzag(&mut record, 0); // timestamp delta
    zigzag(&mut record, 0); // offset delta
    zigzag(&mut record, 4);
    record.extend_from_slice(&[0, 0, 0, 1]); // key: version 0, type 1 (commit)
    zigzag(&mut record, 6);
    record.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // value: version 0, coordinator epoch 0
    zigzag(&mut record, 0); // no headers
    let mut records = Vec::new();
    zigzag(&mut records, record.len() as i64);
    records.extend_from_slice(&record);

    // From the attributes on: what the CRC covers.
    let mut tail = Vec::new();
    tail.extend_from_slice(&0x30i16.to_be_bytes()); // control | transactional
    tail.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    tail.extend_from_slice(&ts_ms.to_be_bytes());
    tail.extend_from_slice(&ts_ms.to_be_bytes());
    tail.extend_from_slice(&producer_id.to_be_bytes());
    tail.extend_from_slice(&0i16.to_be_bytes()); // producer epoch
    tail.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    tail.extend_from_slice(&1i32.to_be_bytes()); // one record
    tail.extend_from_slice(&records);

    let mut batch = Vec::new();
    batch.extend_from_slice(&0i64.to_be_bytes()); // base offset (the broker assigns it)
    batch.extend_from_slice(&((4 + 1 + 4 + tail.len()) as i32).to_be_bytes());
    batch.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    batch.push(2); // magic
    batch.extend_from_slice(&crc32c(&tail).to_be_bytes());
    batch.extend_from_slice(&tail);
    batch
}

fn kafka_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as i16).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// Appends `batch` to partition 0 of `topic` with a Produce request (v3) and returns the error
/// code of the answer.
fn produce_raw(broker: &str, topic: &str, batch: &[u8]) -> i16 {
    let mut body = Vec::new();
    body.extend_from_slice(&0i16.to_be_bytes()); // api key: Produce
    body.extend_from_slice(&3i16.to_be_bytes()); // version
    body.extend_from_slice(&7i32.to_be_bytes()); // correlation id
    kafka_str(&mut body, "kizashi-test");
    body.extend_from_slice(&(-1i16).to_be_bytes()); // no transactional id
    body.extend_from_slice(&1i16.to_be_bytes()); // acks
    body.extend_from_slice(&10_000i32.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    kafka_str(&mut body, topic);
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes()); // partition
    body.extend_from_slice(&(batch.len() as i32).to_be_bytes());
    body.extend_from_slice(batch);
    let mut s = TcpStream::connect(broker).unwrap();
    s.write_all(&(body.len() as i32).to_be_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut resp).unwrap();
    // correlation id, topics (1), topic name, partitions (1), partition, error code
    let at = 4 + 4 + 2 + topic.len() + 4 + 4;
    i16::from_be_bytes([resp[at], resp[at + 1]])
}

/// A client that owns a mock cluster of `brokers` brokers, with the group coordinator's join
/// delay at 0.
fn mock_host(brokers: u32) -> ThreadedProducer<DefaultProducerContext> {
    let host: ThreadedProducer<DefaultProducerContext> =
        ClientConfig::new().set("test.mock.num.brokers", brokers.to_string()).create().unwrap();
    // SAFETY: the pointer comes from the live client that owns the mock cluster; the call only
    // sets the group coordinator's join delay to 0.
    unsafe {
        let cluster = rdkafka::bindings::rd_kafka_handle_mock_cluster(host.client().native_ptr());
        assert!(!cluster.is_null());
        rdkafka::bindings::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0);
    }
    host
}

/// Creates `(topic, partitions, leader broker)` and makes broker 1 the coordinator of `group`.
fn lay_out<C: rdkafka::ClientContext>(mock: &rdkafka::mocking::MockCluster<'_, C>, group: &str, topics: &[(&str, i32, i32)]) {
    for &(name, partitions, leader) in topics {
        mock.create_topic(name, partitions, 1).unwrap();
        for p in 0..partitions {
            mock.partition_leader(name, p, Some(leader)).unwrap();
        }
    }
    mock.coordinator(rdkafka::mocking::MockCoordinator::Group(group.into()), 1).unwrap();
}

/// `kizashi run` in a thread of the test (its metrics at hand), no changelog, no HTTP port.
struct Kizashi {
    shared: Arc<kizashi::runtime::Status>,
    stop: Arc<AtomicBool>,
    done: std::sync::mpsc::Receiver<anyhow::Result<()>>,
}

impl Kizashi {
    fn start(settings: &mut Settings, brokers: &str, group: &str, state: &std::path::Path) -> Kizashi {
        settings.kafka.brokers = brokers.into();
        settings.kafka.group_id = group.into();
        settings.kafka.topics.changelog = String::new();
        settings.state.dir = state.to_path_buf();
        settings.http.listen = String::new();
        settings.pipeline.idle_after = Duration::from_secs(24 * 3600);
        let shared = kizashi::runtime::Status::new(settings);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, done) = std::sync::mpsc::channel();
        let (settings, stop2, shared2) = (settings.clone(), stop.clone(), shared.clone());
        std::thread::spawn(move || {
            let _ = tx.send(kizashi::pipeline::run_with(&settings, stop2, shared2));
        });
        Kizashi { shared, stop, done }
    }

    /// Waits up to `limit` until `ok` holds of the metrics; returns the last ones.
    fn wait_metrics(&self, limit: Duration, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let m = self.shared.metrics.render();
            if ok(&m) || start.elapsed() > limit {
                return m;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops it as SIGTERM does; it must be gone well within `pipeline.shutdown_grace` (30 s).
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let result = self.done.recv_timeout(Duration::from_secs(20)).expect("kizashi stops within 20 s");
        result.expect("kizashi stops without an error");
    }
}

/// The account topic's last transaction ended with a marker, and nothing has come since: the
/// merge must see that topic caught up and apply the usage that follows, not wait for the
/// account topic's next transaction.
#[test]
fn a_quiet_topic_whose_last_transaction_ended_with_a_marker_does_not_hold_the_merge() {
    let host = mock_host(1);
    let mock = host.client().mock_cluster().expect("librdkafka's mock cluster");
    let mut settings = Settings::default();
    let t = settings.kafka.topics.clone();
    lay_out(&mock, "kizashi-markers", &[&t.usage, &t.support, &t.accounts, &t.actions, &t.alerts, &t.scores, &t.dead_letter].map(|n| (n.as_str(), 1, 1)));
    let brokers = mock.bootstrap_servers();
    let now = kizashi::event::timestamp::now_ms();
    let send = |topic: &str, payload: String| {
        host.send(BaseRecord::to(topic).key("acme").payload(&payload)).map_err(|(e, _)| e).unwrap();
        host.flush(Duration::from_secs(10)).unwrap();
    };
    send(&t.accounts, format!(r#"{{"account_id":"acme","name":"Acme","seats":10,"ts":{}}}"#, now - 3_600_000));
    assert_eq!(produce_raw(&brokers, &t.accounts, &commit_marker_batch(4242, now - 3_600_000)), 0, "the marker is in the log");
    let usage = 5;
    for i in 0..usage {
        send(&t.usage, format!(r#"{{"account_id":"acme","user_id":"u{i}","event":"login","ts":{}}}"#, now - 60_000 + i));
    }

    let state = tempfile::tempdir().unwrap();
    let k = Kizashi::start(&mut settings, &brokers, "kizashi-markers", state.path());
    let progress = |m: &str| {
        (
            common::metric(m, &format!("kizashi_events_consumed_total{{topic=\"{}\"}}", t.usage)),
            common::metric(m, "kizashi_buffered_records"),
            common::metric(m, &format!("kizashi_consumer_lag_records{{partition=\"0\",topic=\"{}\"}}", t.accounts)),
        )
    };
    // The usage records are consumed at once; they must then be applied, well within the 20 s
    // (merge_wait is 1 s; without the position, they waited for ever), and the lag (reported
    // once a second) read 0.
    let last = k.wait_metrics(Duration::from_secs(20), |m| progress(m) == (Some(usage as f64), Some(0.0), Some(0.0)));
    k.stop();
    let (consumed, buffered, lag) = progress(&last);
    assert_eq!(consumed, Some(usage as f64), "the usage records were consumed:\n{last}");
    assert_eq!(buffered, Some(0.0), "and applied, not held in the merge:\n{last}");
    assert_eq!(lag, Some(0.0), "the account topic's lag is 0, past its marker, not 1:\n{last}");
    let alerts_or_scores = common::metric(&last, "kizashi_score_updates_total").unwrap_or(0.0);
    assert!(alerts_or_scores >= 1.0, "the account was scored:\n{last}");
    drop(mock);
}

/// An idempotent producer that loses track of its sequence numbers (the broker answers
/// `OutOfOrderSequenceNumber` to the oldest request in flight) has a fatal error and fails every
/// record for good. A new producer must take over: the dead letters sent after it still arrive,
/// and the stop is prompt. Before, each failed record went back to the dead producer at once, for
/// ever: nothing more was published, and a stop waited out `pipeline.shutdown_grace` and more.
#[test]
fn a_producer_with_a_fatal_error_is_replaced_and_its_outputs_still_arrive() {
    let host = mock_host(2);
    let mock = host.client().mock_cluster().expect("librdkafka's mock cluster");
    let mut settings = Settings::default();
    let t = settings.kafka.topics.clone();
    let group = "kizashi-fatal";
    // Inputs and the group on broker 1, outputs on broker 2: only kizashi's producer talks to 2.
    lay_out(&mock, group, &[(t.usage.as_str(), 1, 1), (t.support.as_str(), 1, 1), (t.accounts.as_str(), 1, 1), (t.actions.as_str(), 1, 1), (t.alerts.as_str(), 1, 2), (t.scores.as_str(), 1, 2), (t.dead_letter.as_str(), 1, 2)]);
    let send = |payload: &str| {
        host.send(BaseRecord::to(&t.usage).key("acme").payload(payload)).map_err(|(e, _)| e).unwrap();
        host.flush(Duration::from_secs(10)).unwrap();
    };
    let state = tempfile::tempdir().unwrap();
    let k = Kizashi::start(&mut settings, &mock.bootstrap_servers(), group, state.path());
    let dead_letters = |m: &str| common::metric(m, "kizashi_produced_total{output=\"dead_letter\"}").unwrap_or(0.0);
    send("not json 1");
    let m = k.wait_metrics(Duration::from_secs(20), |m| dead_letters(m) >= 1.0);
    assert_eq!(dead_letters(&m), 1.0, "the first dead letter was produced:\n{m}");

    // SAFETY: the pointer comes from the live client that owns the mock cluster; the call pushes
    // one error for the next Produce request broker 2 answers (variadic: error, round-trip µs).
    unsafe {
        let cluster = rdkafka::bindings::rd_kafka_handle_mock_cluster(host.client().native_ptr());
        let err = rdkafka::bindings::rd_kafka_mock_broker_push_request_error_rtts(
            cluster,
            2,
            0, // Produce
            1,
            rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
            0i32,
        );
        assert_eq!(err, rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    send("not json 2");
    send("not json 3");
    let m = k.wait_metrics(Duration::from_secs(20), |m| dead_letters(m) >= 3.0);
    assert!(dead_letters(&m) >= 3.0, "the dead letters after the fatal error were produced:\n{m}");
    assert!(common::metric(&m, "kizashi_producer_errors_total").unwrap_or(0.0) >= 1.0, "the error was counted:\n{m}");
    k.stop();

    let reader: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", "kizashi-fatal-reader")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(&t.dead_letter, 0, rdkafka::Offset::Beginning).unwrap();
    rdkafka::consumer::Consumer::assign(&reader, &tpl).unwrap();
    let mut payloads = std::collections::BTreeSet::new();
    let start = Instant::now();
    while payloads.len() < 3 && start.elapsed() < Duration::from_secs(10) {
        if let Some(Ok(msg)) = reader.poll(Duration::from_millis(200)) {
            payloads.insert(String::from_utf8_lossy(rdkafka::Message::payload(&msg).unwrap_or_default()).into_owned());
        }
    }
    assert_eq!(payloads, ["not json 1", "not json 2", "not json 3"].map(String::from).into(), "each dead letter is on the topic (at least once)");
}

/// Rejected records wait in the event-time merge raw (the dead-letter topic gets them as they
/// came), each up to a broker's largest record. Counted only by number
/// (`pipeline.max_buffered_records`, 100,000), large bad records behind a topic that is slow to
/// answer could take ~100 GB; they count in bytes too, against a sixteenth of the memory budget.
#[test]
fn large_bad_records_waiting_in_the_merge_are_bounded_in_bytes() {
    let host = mock_host(2);
    let mock = host.client().mock_cluster().expect("librdkafka's mock cluster");
    let mut settings = Settings::default();
    let t = settings.kafka.topics.clone();
    let group = "kizashi-bytes";
    // Usage (and the outputs) on broker 1; support and accounts on broker 2, slowed below. Two
    // partitions: the mock keeps 5 MB of a partition's log, and the bound is 4 MiB over all.
    lay_out(&mock, group, &[(t.usage.as_str(), 2, 1), (t.support.as_str(), 2, 2), (t.accounts.as_str(), 2, 2), (t.actions.as_str(), 2, 2), (t.alerts.as_str(), 1, 1), (t.scores.as_str(), 1, 1), (t.dead_letter.as_str(), 1, 1)]);
    let now = kizashi::event::timestamp::now_ms();
    let send = |topic: &str, partition: i32, key: Option<&str>, payload: &str| loop {
        let mut r = BaseRecord::to(topic).partition(partition).payload(payload);
        if let Some(k) = key {
            r = r.key(k);
        }
        match host.send(r) {
            Ok(()) => break,
            Err((_, _)) => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let home = kizashi::partition::partition_for(b"acme", 2) as i32;
    send(&t.accounts, home, Some("acme"), &format!(r#"{{"account_id":"acme","name":"Acme","seats":10,"ts":{}}}"#, now - 3_600_000));
    send(&t.usage, home, Some("acme"), &format!(r#"{{"account_id":"acme","user_id":"u1","event":"login","ts":{}}}"#, now - 60_000));
    let per_partition = 10;
    let junk = format!("x{}", "z".repeat(400_000));
    for p in 0..2 {
        for _ in 0..per_partition {
            send(&t.usage, p, None, &junk);
        }
    }
    host.flush(Duration::from_secs(30)).unwrap();
    mock.broker_round_trip_time(2, Duration::from_secs(4)).unwrap();

    // A 64 MiB budget: 4 MiB of raw records in the merge, ten of these.
    settings.state.memory_budget = kizashi::config::ByteSize(64 << 20);
    // The slow topics' ends are not known until their first fetch: the merge waits for them.
    settings.pipeline.merge_wait = Duration::from_secs(30);
    let state = tempfile::tempdir().unwrap();
    let k = Kizashi::start(&mut settings, &mock.bootstrap_servers(), group, state.path());
    let metric = |m: &str, s: &str| common::metric(m, s).unwrap_or(0.0);
    let bad = f64::from(2 * per_partition);
    let m = k.wait_metrics(Duration::from_secs(60), |m| metric(m, "kizashi_produced_total{output=\"dead_letter\"}") >= bad);
    // 21 records and 8 MB waited at most: far from 100,000 records, past 4 MiB.
    assert!(metric(&m, "kizashi_input_pauses_total") >= 1.0, "fetching paused once the bad records waiting passed 4 MiB:\n{m}");
    assert_eq!(metric(&m, "kizashi_produced_total{output=\"dead_letter\"}"), bad, "each bad record dead-lettered once, through the pauses:\n{m}");
    assert_eq!(metric(&m, "kizashi_events_consumed_total{topic=\"product-usage\"}"), bad + 1.0, "read again after a pause, counted once:\n{m}");
    k.stop();
}
