//! rdkafka (librdkafka) helpers: produce a list of messages and learn where each landed, read a
//! partition end to end with CRC checks on, query watermarks, and create/delete topics.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::error::{HarnessError, Result};

/// Timeout of single metadata-style client calls.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A message to produce, and what a consumer must read back byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TestMessage {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// Headers in order; duplicate keys and null values are allowed by Kafka.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Explicit partition, or the client's partitioner when `None`.
    pub partition: Option<i32>,
    /// Explicit create time in ms, or the client's clock when `None`.
    pub timestamp: Option<i64>,
}

/// Where a produced message landed, or why it did not.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Index of the message in the produced slice.
    pub index: usize,
    /// `(partition, offset)` on success; offset is -1 for acks=0.
    pub result: std::result::Result<(i32, i64), KafkaError>,
}

/// A message read back by a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedMessage {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Option<i64>,
}

impl ConsumedMessage {
    /// Whether key, value and headers equal what was produced.
    pub fn same_content(&self, sent: &TestMessage) -> bool {
        self.key == sent.key && self.value == sent.value && self.headers == sent.headers
    }
}

/// Producer settings without idempotence (each retry may duplicate).
pub fn producer_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .set("queue.buffering.max.messages", "200000");
    config
}

/// An idempotent acks=all producer that rides out a leader change: retries for a minute, each
/// request bounded so a dead leader is noticed quickly.
pub fn idempotent_producer_config(bootstrap: &str) -> ClientConfig {
    let mut config = producer_config(bootstrap);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "60000")
        .set("request.timeout.ms", "5000")
        .set("retry.backoff.ms", "100");
    config
}

/// Consumer settings for assign()-based reads: no commits, CRCs verified. librdkafka's assign()
/// needs a `group.id`, but without subscribe() or commits no group protocol is used.
pub fn consumer_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "strait-e2e-assign")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("check.crcs", "true")
        .set("auto.offset.reset", "error");
    config
}

/// Records delivery reports of a `BaseProducer`.
#[derive(Default)]
struct RecordingContext {
    deliveries: Mutex<Vec<Delivery>>,
}

impl ClientContext for RecordingContext {}

impl ProducerContext for RecordingContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let result = match result {
            Ok(message) => Ok((message.partition(), message.offset())),
            Err((error, _)) => Err(error.clone()),
        };
        if let Ok(mut deliveries) = self.deliveries.lock() {
            deliveries.push(Delivery { index, result });
        }
    }
}

fn owned_headers(headers: &[(String, Option<Vec<u8>>)]) -> Option<OwnedHeaders> {
    if headers.is_empty() {
        return None;
    }
    let mut owned = OwnedHeaders::new_with_capacity(headers.len());
    for (key, value) in headers {
        owned = owned.insert(Header {
            key: key.as_str(),
            value: value.as_ref(),
        });
    }
    Some(owned)
}

/// Produces every message of `messages` to `topic` and waits (bounded by `timeout`) for all
/// delivery reports. Returns one `Delivery` per message, sorted by index.
pub fn produce_all(
    config: &ClientConfig,
    topic: &str,
    messages: &[TestMessage],
    timeout: Duration,
) -> Result<Vec<Delivery>> {
    let deadline = Instant::now() + timeout;
    let producer: BaseProducer<RecordingContext> = config
        .create_with_context(RecordingContext::default())
        .map_err(|e| HarnessError::kafka("create producer", e))?;
    for (index, message) in messages.iter().enumerate() {
        let mut record: BaseRecord<'_, Vec<u8>, Vec<u8>, usize> =
            BaseRecord::with_opaque_to(topic, index);
        if let Some(key) = &message.key {
            record = record.key(key);
        }
        if let Some(value) = &message.value {
            record = record.payload(value);
        }
        if let Some(partition) = message.partition {
            record = record.partition(partition);
        }
        if let Some(timestamp) = message.timestamp {
            record = record.timestamp(timestamp);
        }
        if let Some(headers) = owned_headers(&message.headers) {
            record = record.headers(headers);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    if Instant::now() >= deadline {
                        return Err(HarnessError::Timeout(format!(
                            "producer queue to drain (at message {index})"
                        )));
                    }
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((error, _)) => {
                    return Err(HarnessError::kafka(format!("send message {index}"), error));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    producer
        .flush(remaining)
        .map_err(|e| HarnessError::kafka("flush producer", e))?;
    let mut deliveries = producer
        .context()
        .deliveries
        .lock()
        .map(|mut d| std::mem::take(&mut *d))
        .map_err(|_| HarnessError::Unexpected("delivery list poisoned".into()))?;
    deliveries.sort_by_key(|d| d.index);
    if deliveries.len() != messages.len() {
        return Err(HarnessError::Unexpected(format!(
            "{} delivery reports for {} messages",
            deliveries.len(),
            messages.len()
        )));
    }
    Ok(deliveries)
}

fn create_consumer(bootstrap: &str) -> Result<BaseConsumer> {
    consumer_config(bootstrap)
        .create()
        .map_err(|e| HarnessError::kafka("create consumer", e))
}

/// `(low, high)` watermarks of a partition, through ListOffsets.
pub fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> Result<(i64, i64)> {
    let consumer = create_consumer(bootstrap)?;
    consumer
        .fetch_watermarks(topic, partition, CALL_TIMEOUT)
        .map_err(|e| HarnessError::kafka(format!("watermarks of {topic}-{partition}"), e))
}

/// Reads a partition from its low to its high watermark (as of the call).
pub fn read_partition(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<Vec<ConsumedMessage>> {
    let deadline = Instant::now() + timeout;
    let (low, high) = loop {
        match watermarks(bootstrap, topic, partition) {
            Ok(marks) => break marks,
            Err(HarnessError::Kafka { source, .. })
                if is_transient(&source) && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    };
    let left = deadline.saturating_duration_since(Instant::now());
    read_range(bootstrap, topic, partition, low, high, left)
}

/// Consumer errors librdkafka recovers from on its own (a connection dropped by a broker that was
/// killed or restarted, a leader that moved): reported to the application, then retried.
pub fn is_transient(error: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        error.rdkafka_error_code(),
        Some(
            Code::BrokerTransportFailure
                | Code::AllBrokersDown
                | Code::NetworkException
                | Code::RequestTimedOut
                | Code::OperationTimedOut
                | Code::NotLeaderForPartition
                | Code::LeaderNotAvailable
                | Code::NotCoordinator
                | Code::CoordinatorNotAvailable
                | Code::FencedLeaderEpoch
                | Code::UnknownLeaderEpoch
        )
    )
}

/// Reads offsets `[from, until)` of a partition with an assign()-ed consumer. An error librdkafka
/// recovers from ([`is_transient`]) is waited out until `timeout`; any other consumer error (a
/// CRC failure included) fails the read.
pub fn read_range(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    from: i64,
    until: i64,
    timeout: Duration,
) -> Result<Vec<ConsumedMessage>> {
    let mut out = Vec::new();
    if from >= until {
        return Ok(out);
    }
    let deadline = Instant::now() + timeout;
    let consumer = create_consumer(bootstrap)?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Offset(from))
        .map_err(|e| HarnessError::kafka("build assignment", e))?;
    consumer
        .assign(&assignment)
        .map_err(|e| HarnessError::kafka("assign", e))?;
    let mut next = from;
    while next < until {
        if Instant::now() >= deadline {
            return Err(HarnessError::Timeout(format!(
                "reading {topic}-{partition} [{from}, {until}): stuck at offset {next}"
            )));
        }
        let Some(polled) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = match polled {
            Ok(message) => message,
            // librdkafka reconnects and retries these itself; only the deadline fails the read.
            Err(e) if is_transient(&e) => continue,
            Err(e) => {
                return Err(HarnessError::kafka(
                    format!("consume {topic}-{partition}"),
                    e,
                ));
            }
        };
        let headers = message
            .headers()
            .map(|h| {
                (0..h.count())
                    .filter_map(|i| h.try_get(i))
                    .map(|hd| (hd.key.to_string(), hd.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        next = message.offset() + 1;
        out.push(ConsumedMessage {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers,
            timestamp: message.timestamp().to_millis(),
        });
    }
    Ok(out)
}

/// An rdkafka admin client with its own small runtime for the async admin calls.
pub struct Admin {
    client: AdminClient<DefaultClientContext>,
    runtime: tokio::runtime::Runtime,
}

impl Admin {
    /// Connects an admin client to `bootstrap`.
    pub fn new(bootstrap: &str) -> Result<Admin> {
        let client = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .map_err(|e| HarnessError::kafka("create admin client", e))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| HarnessError::io("build runtime", e))?;
        Ok(Admin { client, runtime })
    }

    fn options() -> AdminOptions {
        AdminOptions::new().operation_timeout(Some(CALL_TIMEOUT))
    }

    /// Creates a topic with replication factor 1 and these topic configs.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> Result<()> {
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        for (key, value) in configs {
            topic = topic.set(key, value);
        }
        let results = self
            .runtime
            .block_on(self.client.create_topics([&topic], &Admin::options()))
            .map_err(|e| HarnessError::kafka(format!("create topic {name}"), e))?;
        for result in results {
            if let Err((topic, code)) = result {
                return Err(HarnessError::Unexpected(format!(
                    "create topic {topic}: {code:?}"
                )));
            }
        }
        Ok(())
    }

    /// Deletes a topic.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let results = self
            .runtime
            .block_on(self.client.delete_topics(&[name], &Admin::options()))
            .map_err(|e| HarnessError::kafka(format!("delete topic {name}"), e))?;
        for result in results {
            if let Err((topic, code)) = result {
                return Err(HarnessError::Unexpected(format!(
                    "delete topic {topic}: {code:?}"
                )));
            }
        }
        Ok(())
    }

    /// Topic name -> partition count, from a Metadata request for all topics.
    pub fn topics(&self) -> Result<HashMap<String, usize>> {
        let metadata = self
            .client
            .inner()
            .fetch_metadata(None, CALL_TIMEOUT)
            .map_err(|e| HarnessError::kafka("fetch metadata", e))?;
        Ok(metadata
            .topics()
            .iter()
            .map(|t| (t.name().to_string(), t.partitions().len()))
            .collect())
    }
}

/// Partition count of `topic` from a producer's Metadata request, which asks the broker to
/// auto-create the topic when it does not exist.
pub fn topic_partitions(bootstrap: &str, topic: &str) -> Result<usize> {
    let producer: BaseProducer = producer_config(bootstrap)
        .create()
        .map_err(|e| HarnessError::kafka("create producer", e))?;
    let metadata = producer
        .client()
        .fetch_metadata(Some(topic), CALL_TIMEOUT)
        .map_err(|e| HarnessError::kafka(format!("metadata of {topic}"), e))?;
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
        .ok_or_else(|| HarnessError::Unexpected(format!("{topic} missing from metadata")))
}
