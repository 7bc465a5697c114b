//! Upgrading the data dir of an earlier single-node Strait, which kept its topics in a JSON
//! catalogue (`__strait_metadata.json`) instead of a metadata quorum: the first start adopts the
//! catalogued topics (same ids, partition counts, configs and data) into the metadata log and
//! renames the catalogue, and later starts keep them.

use std::path::Path;
use std::time::Duration;

use strait_e2e::{
    Admin, Broker, BrokerOptions, TestMessage, produce_all, producer_config, read_partition,
};

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 3;

/// The topic id a partition's `partition.metadata` names.
fn topic_id(data: &Path) -> String {
    let text = std::fs::read_to_string(data.join(format!("{TOPIC}-0/partition.metadata")))
        .expect("partition.metadata");
    text.lines()
        .find_map(|l| l.strip_prefix("topic_id:"))
        .map(|id| id.trim().to_string())
        .expect("topic_id line")
}

/// Every message of every partition, in partition then offset order, as (partition, value).
fn read_all(broker: &Broker) -> Vec<(i32, Vec<u8>)> {
    (0..PARTITIONS)
        .flat_map(|p| {
            read_partition(&broker.bootstrap(), TOPIC, p, Duration::from_secs(30))
                .expect("read partition")
                .into_iter()
                .map(|m| (m.partition, m.value.unwrap_or_default()))
        })
        .collect()
}

/// A broker on data dir `data` holding topic `TOPIC` with `partitions` and `configs`.
fn broker_with_topic(data: &Path, partitions: i32, configs: &[(&str, &str)]) -> Broker {
    let broker = Broker::start_with(BrokerOptions {
        log_dir: Some(data.to_path_buf()),
        ..BrokerOptions::default()
    })
    .expect("start");
    Admin::new(&broker.bootstrap())
        .and_then(|a| a.create_topic(TOPIC, partitions, configs))
        .expect("create topic");
    broker
}

#[test]
fn a_single_node_data_dir_with_a_json_catalogue_is_adopted_on_first_start() {
    let work = tempfile::tempdir().expect("temp dir");
    let data = work.path().join("data");
    let mut broker = broker_with_topic(&data, PARTITIONS, &[("retention.ms", "86400000")]);
    let sent: Vec<TestMessage> = (0..60)
        .map(|i| TestMessage {
            value: Some(format!("message-{i}").into_bytes()),
            partition: Some(i % PARTITIONS),
            ..TestMessage::default()
        })
        .collect();
    let config = producer_config(&broker.bootstrap());
    for d in produce_all(&config, TOPIC, &sent, Duration::from_secs(30)).expect("produce") {
        d.result.expect("delivered");
    }
    let before = read_all(&broker);
    assert_eq!(before.len(), sent.len());
    broker.stop().expect("stop");

    // What the earlier version left behind: topic logs and its catalogue, no metadata log.
    let id = topic_id(&data);
    std::fs::remove_dir_all(data.join("__cluster_metadata-0")).expect("remove metadata log");
    let catalogue = format!(
        r#"{{"version":1,"topics":{{"{TOPIC}":{{"name":"{TOPIC}","id":"{id}","partitions":{PARTITIONS},"replication_factor":1,"configs":{{"retention.ms":"86400000"}}}}}},"next_producer_id":7000}}"#
    );
    std::fs::write(data.join("__strait_metadata.json"), catalogue).expect("write catalogue");

    broker.restart().expect("first start on the old data dir");
    assert!(
        broker
            .stderr()
            .contains("adopted topic into the metadata log"),
        "no adoption logged: {}",
        broker.stderr_tail()
    );
    assert!(!data.join("__strait_metadata.json").exists());
    assert!(data.join("__strait_metadata.json.adopted").exists());
    assert_eq!(
        Admin::new(&broker.bootstrap())
            .and_then(|a| a.topics())
            .expect("list topics")
            .get(TOPIC),
        Some(&(PARTITIONS as usize))
    );
    assert_eq!(read_all(&broker), before, "adopted data differs");
    assert_eq!(topic_id(&data), id, "the topic keeps its id");

    // Adopted for good: a later start neither adopts again nor loses anything.
    broker.restart().expect("second start");
    assert!(!broker.stderr().contains("adopted topic"));
    assert_eq!(read_all(&broker), before);
}

#[test]
fn an_unreadable_catalogue_stops_the_start_and_deletes_nothing() {
    let work = tempfile::tempdir().expect("temp dir");
    let data = work.path().join("data");
    let mut broker = broker_with_topic(&data, 1, &[]);
    broker.stop().expect("stop");
    std::fs::remove_dir_all(data.join("__cluster_metadata-0")).expect("remove metadata log");
    std::fs::write(data.join("__strait_metadata.json"), b"{not json").expect("write");
    assert!(
        broker.restart().is_err(),
        "started on a catalogue it cannot read"
    );
    assert!(
        broker.stderr().contains("__strait_metadata.json"),
        "the error names the file: {}",
        broker.stderr_tail()
    );
    assert!(
        data.join(format!("{TOPIC}-0")).exists(),
        "the topic's log is kept"
    );
}
