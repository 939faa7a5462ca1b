//! librdkafka client configs built from `kafka.brokers` and `kafka.properties`: each kind of
//! client gets only the properties that apply to it. librdkafka warns (`CONFWARN`) about a
//! consumer property given to a producer and the reverse, so one shared property list (such as
//! the demo's `fetch.wait.max.ms`) must never reach a client it is not for.

use rdkafka::config::ClientConfig;

use crate::config::Settings;

/// The kind of librdkafka client a config is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// Consumers: the pipeline's, the changelog reader's, the standby's.
    Consumer,
    /// Producers, and admin clients (librdkafka makes those producer handles).
    Producer,
}

/// Properties librdkafka documents as consumer-only ("C" in its CONFIGURATION.md, 2.12), global
/// and topic-level.
const CONSUMER_ONLY: &[&str] = &[
    "group.id", "group.instance.id", "partition.assignment.strategy", "session.timeout.ms",
    "heartbeat.interval.ms", "group.protocol.type", "group.protocol", "group.remote.assignor",
    "coordinator.query.interval.ms", "max.poll.interval.ms", "enable.auto.commit", "auto.commit.interval.ms",
    "enable.auto.offset.store", "queued.min.messages", "queued.max.messages.kbytes", "fetch.wait.max.ms",
    "fetch.queue.backoff.ms", "fetch.message.max.bytes", "max.partition.fetch.bytes", "fetch.max.bytes",
    "fetch.min.bytes", "fetch.error.backoff.ms", "offset.store.method", "isolation.level", "consume_cb",
    "rebalance_cb", "offset_commit_cb", "enable.partition.eof", "check.crcs", "auto.commit.enable",
    "auto.offset.reset", "offset.store.path", "offset.store.sync.interval.ms", "consume.callback.max.messages",
];

/// Properties librdkafka documents as producer-only ("P"), global and topic-level.
const PRODUCER_ONLY: &[&str] = &[
    "transactional.id", "transaction.timeout.ms", "enable.idempotence", "enable.gapless.guarantee",
    "queue.buffering.max.messages", "queue.buffering.max.kbytes", "queue.buffering.max.ms", "linger.ms",
    "message.send.max.retries", "retries", "queue.buffering.backpressure.threshold", "compression.codec",
    "compression.type", "batch.num.messages", "batch.size", "delivery.report.only.error", "dr_cb", "dr_msg_cb",
    "sticky.partitioning.linger.ms", "request.required.acks", "acks", "request.timeout.ms", "message.timeout.ms",
    "delivery.timeout.ms", "queuing.strategy", "produce.offset.report", "partitioner", "partitioner_cb",
    "msg_order_cmp", "compression.level",
];

/// Whether `kafka.properties` key `key` applies to a `client`.
pub fn applies_to(key: &str, client: Client) -> bool {
    match client {
        Client::Consumer => !PRODUCER_ONLY.contains(&key),
        Client::Producer => !CONSUMER_ONLY.contains(&key),
    }
}

/// Each librdkafka client's queue (a consumer's prefetched records, a producer's records not
/// yet acknowledged), unless `kafka.properties` sets it: a sixteenth of `state.memory_budget`,
/// beside the store's and the engine's shares of it (`store::Budget`; `run` has a consumer, an
/// output producer and, with a changelog, a changelog producer).
pub fn kafka_queue_bytes(settings: &Settings) -> u64 {
    settings.state.memory_budget.0 / 16
}

/// `bootstrap.servers` and the `kafka.properties` that apply to `client`.
pub fn client_config(settings: &Settings, client: Client) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &settings.kafka.brokers);
    // librdkafka's own queues are sized from the memory budget unless set: its defaults (a 64 MiB
    // prefetch queue per consumer, 1 GiB of queued records per producer) are each more than a
    // default budget, and what a burst fills there stays with the process.
    // Each within the range librdkafka takes (a budget of 32 GiB or more would otherwise ask a
    // consumer for more than its 2,097,151 kB).
    let (key, max_kb) = match client {
        Client::Consumer => ("queued.max.messages.kbytes", 2_097_151),
        Client::Producer => ("queue.buffering.max.kbytes", 2_147_483_647),
    };
    c.set(key, (kafka_queue_bytes(settings) >> 10).min(max_kb).to_string());
    for (k, v) in settings.kafka.properties.iter().filter(|(k, _)| applies_to(k, client)) {
        c.set(k, v);
    }
    c
}

/// The changelog producer's config: [`client_config`], with room for the largest state
/// ([`Settings::changelog_record_bytes`]): librdkafka refuses a record over `message.max.bytes`
/// (1,000,000 by default) and holds one only if its queue has room for it, so both are raised
/// to fit it (a value set in `kafka.properties` is kept if larger).
pub fn changelog_producer_config(settings: &Settings) -> ClientConfig {
    let mut c = client_config(settings, Client::Producer);
    let record = settings.changelog_record_bytes();
    let at_least = |c: &mut ClientConfig, key: &str, v: u64| {
        let set = c.get(key).and_then(|s| s.parse::<u64>().ok());
        if set.is_none_or(|s| s < v) {
            c.set(key, v.to_string());
        }
    };
    at_least(&mut c, "message.max.bytes", (record + (64 << 10)).min(1_000_000_000));
    at_least(&mut c, "queue.buffering.max.kbytes", (2 * record) >> 10);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librdkafka_queues_are_sized_from_the_budget_unless_set() {
        let mut s = Settings::default();
        s.state.memory_budget = crate::config::ByteSize(256 << 20);
        assert_eq!(client_config(&s, Client::Consumer).get("queued.max.messages.kbytes"), Some("16384"));
        assert_eq!(client_config(&s, Client::Producer).get("queue.buffering.max.kbytes"), Some("16384"));
        assert_eq!(client_config(&s, Client::Consumer).get("queue.buffering.max.kbytes"), None);
        s.kafka.properties.insert("queue.buffering.max.kbytes".into(), "1024".into());
        assert_eq!(client_config(&s, Client::Producer).get("queue.buffering.max.kbytes"), Some("1024"));
    }

    #[test]
    fn the_largest_budget_gives_queues_librdkafka_takes() {
        let mut s = Settings::default();
        s.state.memory_budget = crate::config::ByteSize(crate::config::MAX_MEMORY_BUDGET);
        assert!(s.problems().is_empty(), "{:?}", s.problems());
        let consumer = client_config(&s, Client::Consumer);
        assert_eq!(consumer.get("queued.max.messages.kbytes"), Some("2097151"), "librdkafka's most, not 64 GiB");
        consumer.create::<rdkafka::consumer::BaseConsumer>().expect("librdkafka takes the consumer's config");
        let producer = client_config(&s, Client::Producer);
        assert_eq!(producer.get("queue.buffering.max.kbytes"), Some("67108864"));
        producer.create::<rdkafka::producer::BaseProducer>().expect("librdkafka takes the producer's config");
    }

    #[test]
    fn each_client_gets_the_shared_properties_and_only_its_own_kind_of_the_rest() {
        let mut s = Settings::default();
        for (k, v) in [("fetch.wait.max.ms", "10"), ("linger.ms", "20"), ("security.protocol", "ssl"), ("client.id", "k")] {
            s.kafka.properties.insert(k.into(), v.into());
        }
        let consumer = client_config(&s, Client::Consumer);
        let producer = client_config(&s, Client::Producer);
        assert_eq!(consumer.get("fetch.wait.max.ms"), Some("10"));
        assert_eq!(consumer.get("linger.ms"), None);
        assert_eq!(producer.get("fetch.wait.max.ms"), None);
        assert_eq!(producer.get("linger.ms"), Some("20"));
        for c in [&consumer, &producer] {
            assert_eq!(c.get("security.protocol"), Some("ssl"));
            assert_eq!(c.get("client.id"), Some("k"));
            assert_eq!(c.get("bootstrap.servers"), Some(s.kafka.brokers.as_str()));
        }
    }

    #[test]
    fn no_property_is_listed_for_both_kinds() {
        for k in CONSUMER_ONLY {
            assert!(!PRODUCER_ONLY.contains(k), "{k}");
        }
    }
}
