//! The `cs-actions` topic as the HTTP API's sink for the CS team's actions
//! (`api::actions::ActionSink`), joined here in `cmd` so the data path never names the HTTP
//! port's types: a producer of its own, keyed records placed by Kafka's default
//! (murmur2) partitioner as every other input's producers place theirs, so an action lands on
//! the partition of its account's other events.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::time::Duration;

use anyhow::{Context as _, Result};
use rdkafka::client::ClientContext;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};

use crate::config::Settings;

/// How long a request waits for the broker's acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Hands each record's delivery report to the request waiting for it.
struct Acks;

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = Box<SyncSender<Result<(), String>>>;

    fn delivery(&self, result: &DeliveryResult<'_>, waiting: Self::DeliveryOpaque) {
        let _ = waiting.send(result.as_ref().map(|_| ()).map_err(|(e, _)| e.to_string()));
    }
}

pub struct KafkaActions {
    producer: ThreadedProducer<Acks>,
    topic: String,
}

impl KafkaActions {
    pub fn new(settings: &Settings) -> Result<KafkaActions> {
        let mut config = crate::pipeline::client_config(settings, crate::pipeline::Client::Producer);
        config.set("partitioner", "murmur2_random").set("message.timeout.ms", ACK_TIMEOUT.as_millis().to_string());
        let producer = config.create_with_context(Acks).context("creating the cs-actions producer")?;
        Ok(KafkaActions { producer, topic: settings.kafka.topics.actions.clone() })
    }
}

impl crate::api::actions::ActionSink for KafkaActions {
    fn send(&self, key: &str, payload: &[u8]) -> Result<(), String> {
        let (tx, rx) = sync_channel(1);
        self.producer
            .send(BaseRecord::with_opaque_to(&self.topic, Box::new(tx)).key(key).payload(payload))
            .map_err(|(e, _)| e.to_string())?;
        rx.recv_timeout(ACK_TIMEOUT + Duration::from_secs(1)).map_err(|_| "no acknowledgement from the broker".to_string())?
    }
}
