//! A cluster reached through a bootstrap list: a connection to the first broker that answers,
//! or to the broker a request must go to (a given node, a partition's leader), found through
//! Metadata as Kafka clients do.

use std::collections::BTreeMap;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::codes::ResponseErrors;
use crate::connection::{ConnectOptions, Connection, address};
use crate::error::{ClientError, KafkaError};

/// Metadata versions this client sends (v1 is the first where an empty topic list asks for
/// no topics).
const METADATA_VERSIONS: std::ops::RangeInclusive<i16> = 1..=12;

/// A bootstrap list and how to connect.
#[derive(Clone, Debug)]
pub struct Client {
    bootstrap: Vec<String>,
    via: BTreeMap<String, String>,
    options: ConnectOptions,
}

impl Client {
    /// A client for `bootstrap` (`host:port,host:port`).
    pub fn new(bootstrap: &str, options: ConnectOptions) -> Self {
        Client {
            bootstrap: bootstrap
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            via: BTreeMap::new(),
            options,
        }
    }

    /// Dials `to` (`host:port`) whenever `address` is to be reached, still checking the TLS
    /// server certificate for `address`'s host: a port-forward, or a test broker on a
    /// loopback port standing for a Service name or an advertised address.
    #[must_use]
    pub fn via(mut self, address: &str, to: &str) -> Self {
        self.via.insert(address.to_owned(), to.to_owned());
        self
    }

    /// The bootstrap addresses, in the order tried.
    pub fn bootstrap(&self) -> &[String] {
        &self.bootstrap
    }

    /// How connections are made.
    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }

    /// Connects to `address`, or to where [`Client::via`] sends it.
    pub async fn connect_to(&self, address: &str) -> Result<Connection, ClientError> {
        let dial = self.via.get(address).map_or(address, String::as_str);
        Connection::connect_via(address, dial, &self.options).await
    }

    /// A connection to the first bootstrap server that accepts one; the last error when none
    /// does.
    pub async fn connect(&self) -> Result<Connection, ClientError> {
        let mut last = ClientError::NoBootstrap;
        for address in &self.bootstrap {
            match self.connect_to(address).await {
                Ok(connection) => return Ok(connection),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// A connection to broker `node`, at the address the cluster's Metadata advertises for it.
    pub async fn connect_node(&self, node: i32) -> Result<Connection, ClientError> {
        let mut bootstrap = self.connect().await?;
        let request = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(Some(Vec::new()));
        let metadata: MetadataResponse = bootstrap
            .call_negotiated(METADATA_VERSIONS, &request)
            .await?;
        self.connect_advertised(bootstrap, &metadata, node).await
    }

    /// A connection to the leader of `topic`'s `partition`.
    pub async fn connect_leader(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Connection, ClientError> {
        let mut bootstrap = self.connect().await?;
        let request = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
                TopicName(StrBytes::from_string(topic.to_owned())),
            ))]));
        let metadata: MetadataResponse = bootstrap
            .call_negotiated(METADATA_VERSIONS, &request)
            .await?;
        metadata.check(&[])?;
        let found = metadata
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition);
        // UNKNOWN_TOPIC_OR_PARTITION for a partition the topic lacks; the partition's own
        // code (LEADER_NOT_AVAILABLE during an election) when it has no leader.
        let leader = match found {
            None => Err(KafkaError {
                api: kafka_protocol::messages::ApiKey::Metadata,
                resource: Some(format!("{topic}-{partition}")),
                code: 3,
                message: None,
            }),
            Some(p) if p.leader_id.0 < 0 => Err(KafkaError {
                api: kafka_protocol::messages::ApiKey::Metadata,
                resource: Some(format!("{topic}-{partition}")),
                code: if p.error_code != 0 { p.error_code } else { 5 },
                message: None,
            }),
            Some(p) => Ok(p.leader_id.0),
        }?;
        self.connect_advertised(bootstrap, &metadata, leader).await
    }

    /// `node`'s connection: `bootstrap` when that is the node, a new one otherwise.
    async fn connect_advertised(
        &self,
        bootstrap: Connection,
        metadata: &MetadataResponse,
        node: i32,
    ) -> Result<Connection, ClientError> {
        let broker = metadata
            .brokers
            .iter()
            .find(|b| b.node_id.0 == node)
            .ok_or_else(|| ClientError::UnknownNode {
                addr: bootstrap.addr().to_owned(),
                node,
            })?;
        let port = u16::try_from(broker.port).unwrap_or(0);
        let advertised = address(&broker.host, port);
        if advertised == bootstrap.addr() {
            return Ok(bootstrap);
        }
        self.connect_to(&advertised).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::tests::{answer, fake_broker, versions};
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::messages::BrokerId;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };

    fn options() -> ConnectOptions {
        ConnectOptions {
            connect_timeout: std::time::Duration::from_secs(5),
            request_timeout: std::time::Duration::from_secs(5),
            ..ConnectOptions::new("strait-test")
        }
    }

    #[tokio::test]
    async fn bootstrap_servers_are_tried_in_order() {
        let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let gone_address = gone.local_addr().unwrap().to_string();
        drop(gone);
        let (address, _server) = fake_broker(Vec::new()).await;
        let client = Client::new(&format!("{gone_address}, {address}"), options());
        assert_eq!(client.bootstrap().len(), 2);
        assert_eq!(client.connect().await.unwrap().addr(), address);
        let e = Client::new(&gone_address, options()).connect().await;
        assert!(matches!(e, Err(ClientError::Connect { .. })), "{e:?}");
        let e = Client::new(" ", options()).connect().await;
        assert!(matches!(e, Err(ClientError::NoBootstrap)), "{e:?}");
        // A name dialled at another address.
        let named = Client::new("kafka-0.test:9092", options()).via("kafka-0.test:9092", &address);
        assert_eq!(named.connect().await.unwrap().addr(), "kafka-0.test:9092");
    }

    #[tokio::test]
    async fn nodes_and_leaders_are_found_through_metadata() {
        let (leader_address, leader) = fake_broker(Vec::new()).await;
        let metadata = MetadataResponse::default()
            .with_brokers(vec![
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(1))
                    .with_host(StrBytes::from_static_str("broker-1.test"))
                    .with_port(9092),
            ])
            .with_topics(vec![
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                    .with_partitions(vec![
                        MetadataResponsePartition::default()
                            .with_partition_index(0)
                            .with_leader_id(BrokerId(1)),
                        MetadataResponsePartition::default()
                            .with_partition_index(1)
                            .with_leader_id(BrokerId(-1))
                            .with_error_code(5),
                    ]),
            ]);
        let (bootstrap, server) = fake_broker(vec![
            answer(versions(&[(ApiKey::Metadata, 0, 12)])),
            answer(metadata.clone()),
            answer(versions(&[(ApiKey::Metadata, 0, 12)])),
            answer(metadata.clone()),
            answer(versions(&[(ApiKey::Metadata, 0, 12)])),
            answer(metadata),
        ])
        .await;
        let client = Client::new(&bootstrap, options()).via("broker-1.test:9092", &leader_address);
        let conn = client.connect_leader("t", 0).await.unwrap();
        assert_eq!(conn.addr(), "broker-1.test:9092");
        let e = client.connect_leader("t", 1).await.unwrap_err();
        assert_eq!(e.kafka().map(|k| k.code), Some(5), "{e}");
        let e = client.connect_node(7).await.unwrap_err();
        assert!(matches!(e, ClientError::UnknownNode { node: 7, .. }), "{e}");
        let seen = server.await.unwrap();
        assert!(
            seen.iter()
                .all(|s| s.key == 18 || (s.key == 3 && s.version == 12))
        );
        drop(conn);
        leader.abort();
    }
}
