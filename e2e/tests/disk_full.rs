//! A full disk, for real: the log dir is a 2 MiB tmpfs. Produce until KAFKA_STORAGE_ERROR, check
//! the broker stays up and serves everything acked, then free space and produce again.

use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, ProduceResponse};
use strait_e2e::tmpfs::Mount;
use strait_e2e::wire::{WireClient, produce_request, produce_result, record_batch};
use strait_e2e::{Admin, Broker, BrokerOptions, read_range, topic_partitions, wait_for};

const KAFKA_STORAGE_ERROR: i16 = 56;
const PRODUCE_VERSION: i16 = 9;

/// Produces one batch of `count` values of `size` bytes; returns `(error_code, base_offset)`.
fn produce(client: &mut WireClient, topic: &str, count: usize, size: usize, tag: u8) -> (i16, i64) {
    let value = vec![tag; size];
    let values: Vec<&[u8]> = (0..count).map(|_| value.as_slice()).collect();
    let batch = record_batch(&values).expect("encode batch");
    let response: ProduceResponse = client
        .call(
            ApiKey::Produce,
            PRODUCE_VERSION,
            &produce_request(topic, 0, 1, batch),
        )
        .expect("produce answered");
    produce_result(&response).expect("partition result")
}

#[test]
fn full_disk_is_a_storage_error_not_a_crash() {
    let work = tempfile::tempdir().expect("temp dir");
    let mount_point = work.path().join("tmpfs");
    std::fs::create_dir(&mount_point).expect("mount point");
    let _mount = match Mount::tmpfs(&mount_point, "2m") {
        Ok(mount) => mount,
        Err(reason) => {
            println!(
                "SKIP full_disk_is_a_storage_error_not_a_crash: mount not permitted: {reason}"
            );
            return;
        }
    };
    // Declared after the mount so that it is dropped (killed) before the unmount.
    let mut broker = Broker::start_with(BrokerOptions {
        log_dir: Some(mount_point.join("data")),
        ..BrokerOptions::with_overrides(&[("num.partitions", "1"), ("log.segment.bytes", "262144")])
    })
    .expect("start broker on tmpfs");
    let mut client = WireClient::connect(broker.addr()).expect("connect");
    // Kafka's Produce does not create topics; Metadata does.
    for topic in ["keep", "filler"] {
        topic_partitions(&broker.bootstrap(), topic).expect("create topic");
    }

    // 100 KiB that must survive, then fill the disk through another topic.
    let mut keep_acked = 0i64;
    for _ in 0..10 {
        let (error, _) = produce(&mut client, "keep", 10, 1000, b'k');
        assert_eq!(error, 0, "produce to keep");
        keep_acked += 10;
    }
    let mut filler_acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut saw_storage_error = false;
    for round in 0..200u32 {
        assert!(Instant::now() < deadline, "disk never filled");
        let (error, base) = produce(&mut client, "filler", 4, 8000, (round % 200) as u8 + 1);
        match error {
            0 => filler_acked.push((base, (round % 200) as u8 + 1)),
            KAFKA_STORAGE_ERROR => {
                saw_storage_error = true;
                break;
            }
            other => panic!("unexpected error {other} while filling the disk"),
        }
    }
    assert!(
        saw_storage_error,
        "no KAFKA_STORAGE_ERROR after 200 batches of 32 KB on 2 MiB"
    );
    broker.assert_alive().expect("broker survives a full disk");

    // Everything acked before is served intact.
    let kept = read_range(
        &broker.bootstrap(),
        "keep",
        0,
        0,
        keep_acked,
        Duration::from_secs(30),
    )
    .expect("read keep");
    assert!(
        kept.iter()
            .all(|m| m.value.as_deref() == Some(&[b'k'; 1000][..]))
    );
    let filler_end = filler_acked.last().map(|(b, _)| b + 4).unwrap_or(0);
    let filled = read_range(
        &broker.bootstrap(),
        "filler",
        0,
        0,
        filler_end,
        Duration::from_secs(30),
    )
    .expect("read filler");
    for (base, tag) in &filler_acked {
        for offset in *base..base + 4 {
            let m = &filled[offset as usize];
            assert_eq!(m.offset, offset);
            assert!(
                m.value
                    .as_deref()
                    .is_some_and(|v| v.len() == 8000 && v.iter().all(|b| b == tag))
            );
        }
    }

    // Free space by deleting the filler topic: produce works again.
    Admin::new(&broker.bootstrap())
        .and_then(|a| a.delete_topic("filler"))
        .expect("delete filler");
    let (error, base) = wait_for(
        Duration::from_secs(30),
        "produce to succeed after freeing space",
        || {
            let result = produce(&mut client, "keep", 1, 1000, b'k');
            (result.0 == 0).then_some(result)
        },
    )
    .expect("space freed");
    assert_eq!(
        (error, base),
        (0, keep_acked),
        "appended right after the kept data"
    );
    broker.assert_alive().expect("broker alive at the end");
}
