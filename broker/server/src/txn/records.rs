//! Kafka's record schemas for `__transaction_state`, so the topic's contents are readable by
//! Kafka's own tools and survive a migration either way: the key `TransactionLogKey` v0 (the
//! transactional id) and the value `TransactionLogValue` v0 (non-flexible) and v1 (flexible:
//! compact strings and arrays, tagged fields). We write value v1 as Kafka 4.x does and read both.
//! A `None` value on the topic is a tombstone (the transactional id expired). Decoding is strict
//! and returns `None` on anything malformed, so a damaged record is skipped, never trusted.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::record_codec::{Reader, put_compact_str, put_str, put_uvarint};

const KEY_VERSION: i16 = 0;
const VALUE_VERSION_V0: i16 = 0;
const VALUE_VERSION_V1: i16 = 1;

// Tagged fields of TransactionLogValue v1+.
const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;
const TAG_NEXT_PRODUCER_ID: u32 = 1;
const TAG_CLIENT_TRANSACTION_VERSION: u32 = 2;

/// Kafka's `TransactionState`, with its on-disk byte values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxnStatus {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnStatus {
    pub fn from_i8(v: i8) -> Option<TxnStatus> {
        Some(match v {
            0 => TxnStatus::Empty,
            1 => TxnStatus::Ongoing,
            2 => TxnStatus::PrepareCommit,
            3 => TxnStatus::PrepareAbort,
            4 => TxnStatus::CompleteCommit,
            5 => TxnStatus::CompleteAbort,
            6 => TxnStatus::Dead,
            7 => TxnStatus::PrepareEpochFence,
            _ => return None,
        })
    }

    pub fn as_i8(self) -> i8 {
        match self {
            TxnStatus::Empty => 0,
            TxnStatus::Ongoing => 1,
            TxnStatus::PrepareCommit => 2,
            TxnStatus::PrepareAbort => 3,
            TxnStatus::CompleteCommit => 4,
            TxnStatus::CompleteAbort => 5,
            TxnStatus::Dead => 6,
            TxnStatus::PrepareEpochFence => 7,
        }
    }

    /// The state's name as DescribeTransactions and ListTransactions return it.
    pub fn name(self) -> &'static str {
        match self {
            TxnStatus::Empty => "Empty",
            TxnStatus::Ongoing => "Ongoing",
            TxnStatus::PrepareCommit => "PrepareCommit",
            TxnStatus::PrepareAbort => "PrepareAbort",
            TxnStatus::CompleteCommit => "CompleteCommit",
            TxnStatus::CompleteAbort => "CompleteAbort",
            TxnStatus::Dead => "Dead",
            TxnStatus::PrepareEpochFence => "PrepareEpochFence",
        }
    }
}

/// One transactional id's state as `TransactionLogValue` stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnValue {
    pub producer_id: i64,
    /// Tagged (v1+), default -1.
    pub previous_producer_id: i64,
    /// Tagged (v1+), default -1.
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub status: TxnStatus,
    /// Topic → partition ids in the transaction (a null array on disk decodes as empty).
    pub partitions: BTreeMap<String, BTreeSet<i32>>,
    pub last_update_ms: i64,
    pub start_ms: i64,
    /// Tagged (v1+), default 0.
    pub client_transaction_version: i16,
}

// ---------------------------------------------------------------------------------------------
// Encoding

pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + transactional_id.len());
    buf.put_i16(KEY_VERSION);
    put_str(&mut buf, transactional_id);
    buf.freeze()
}

/// Writes value version 1 (flexible), as Kafka 4.x does. Tagged fields are written only when
/// they differ from their defaults. Like Kafka, an `Empty` transaction with no partitions is
/// written with a null partition array.
pub fn encode_value(v: &TxnValue) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(VALUE_VERSION_V1);
    buf.put_i64(v.producer_id);
    buf.put_i16(v.producer_epoch);
    buf.put_i32(v.timeout_ms);
    buf.put_i8(v.status.as_i8());
    if v.status == TxnStatus::Empty && v.partitions.is_empty() {
        put_uvarint(&mut buf, 0); // null compact array
    } else {
        put_uvarint(&mut buf, v.partitions.len() as u32 + 1);
        for (topic, ids) in &v.partitions {
            put_compact_str(&mut buf, topic);
            put_uvarint(&mut buf, ids.len() as u32 + 1);
            for id in ids {
                buf.put_i32(*id);
            }
            put_uvarint(&mut buf, 0); // PartitionsSchema's tagged fields: none
        }
    }
    buf.put_i64(v.last_update_ms);
    buf.put_i64(v.start_ms);

    // Top-level tagged fields, in ascending tag order.
    let mut tagged: Vec<(u32, Vec<u8>)> = Vec::new();
    if v.previous_producer_id != -1 {
        tagged.push((
            TAG_PREVIOUS_PRODUCER_ID,
            v.previous_producer_id.to_be_bytes().to_vec(),
        ));
    }
    if v.next_producer_id != -1 {
        tagged.push((
            TAG_NEXT_PRODUCER_ID,
            v.next_producer_id.to_be_bytes().to_vec(),
        ));
    }
    if v.client_transaction_version != 0 {
        tagged.push((
            TAG_CLIENT_TRANSACTION_VERSION,
            v.client_transaction_version.to_be_bytes().to_vec(),
        ));
    }
    put_uvarint(&mut buf, tagged.len() as u32);
    for (tag, data) in tagged {
        put_uvarint(&mut buf, tag);
        put_uvarint(&mut buf, data.len() as u32);
        buf.put_slice(&data);
    }
    buf.freeze()
}

// ---------------------------------------------------------------------------------------------
// Decoding

pub fn decode_key(key: Bytes) -> Option<String> {
    let mut r = Reader(key);
    if r.i16()? != KEY_VERSION {
        return None;
    }
    let id = r.str()?;
    (r.remaining() == 0).then_some(id)
}

pub fn decode_value(value: Bytes) -> Option<TxnValue> {
    let mut r = Reader(value);
    let version = r.i16()?;
    let flexible = match version {
        VALUE_VERSION_V0 => false,
        VALUE_VERSION_V1 => true,
        _ => return None,
    };
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let status = TxnStatus::from_i8(r.i8()?)?;

    let mut partitions: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    // Smallest element: an empty topic name and an empty id array (+ tagged fields if flexible).
    let count = if flexible {
        r.compact_array_len(3)?
    } else {
        r.array_len(6)?
    };
    for _ in 0..count.unwrap_or(0) {
        let topic = if flexible { r.compact_str()? } else { r.str()? };
        let ids_len = if flexible {
            r.compact_array_len(4)?
        } else {
            r.array_len(4)?
        };
        // PartitionIds is not nullable.
        let ids_len = ids_len?;
        let entry = partitions.entry(topic).or_default();
        for _ in 0..ids_len {
            entry.insert(r.i32()?);
        }
        if flexible {
            r.tagged_fields(|_, _| Some(()))?;
        }
    }

    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;

    let mut previous_producer_id = -1;
    let mut next_producer_id = -1;
    let mut client_transaction_version = 0;
    if flexible {
        r.tagged_fields(|tag, mut data| {
            match tag {
                TAG_PREVIOUS_PRODUCER_ID => {
                    (data.len() == 8).then_some(())?;
                    previous_producer_id = data.get_i64();
                }
                TAG_NEXT_PRODUCER_ID => {
                    (data.len() == 8).then_some(())?;
                    next_producer_id = data.get_i64();
                }
                TAG_CLIENT_TRANSACTION_VERSION => {
                    (data.len() == 2).then_some(())?;
                    client_transaction_version = data.get_i16();
                }
                _ => {} // unknown tagged fields are skipped, as Kafka does
            }
            Some(())
        })?;
    }
    if r.remaining() != 0 {
        return None;
    }

    Some(TxnValue {
        producer_id,
        previous_producer_id,
        next_producer_id,
        producer_epoch,
        timeout_ms,
        status,
        partitions,
        last_update_ms,
        start_ms,
        client_transaction_version,
    })
}

/// Kafka's `partitionFor(transactionalId)`: `Utils.abs(transactionalId.hashCode) % partitions`,
/// the same function as for groups.
pub fn partition_for(transactional_id: &str, partitions: i32) -> i32 {
    crate::group::records::partition_for(transactional_id, partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TxnValue {
        let mut partitions = BTreeMap::new();
        partitions.insert("orders".to_string(), BTreeSet::from([0, 1, 5]));
        partitions.insert("payments".to_string(), BTreeSet::from([2]));
        TxnValue {
            producer_id: 4242,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: 3,
            timeout_ms: 60_000,
            status: TxnStatus::Ongoing,
            partitions,
            last_update_ms: 1_700_000_000_123,
            start_ms: 1_700_000_000_000,
            client_transaction_version: 0,
        }
    }

    #[test]
    fn status_values_and_names_match_kafka() {
        let all = [
            (TxnStatus::Empty, 0, "Empty"),
            (TxnStatus::Ongoing, 1, "Ongoing"),
            (TxnStatus::PrepareCommit, 2, "PrepareCommit"),
            (TxnStatus::PrepareAbort, 3, "PrepareAbort"),
            (TxnStatus::CompleteCommit, 4, "CompleteCommit"),
            (TxnStatus::CompleteAbort, 5, "CompleteAbort"),
            (TxnStatus::Dead, 6, "Dead"),
            (TxnStatus::PrepareEpochFence, 7, "PrepareEpochFence"),
        ];
        for (s, b, n) in all {
            assert_eq!(s.as_i8(), b);
            assert_eq!(TxnStatus::from_i8(b), Some(s));
            assert_eq!(s.name(), n);
        }
        assert_eq!(TxnStatus::from_i8(8), None);
        assert_eq!(TxnStatus::from_i8(-1), None);
    }

    #[test]
    fn key_round_trips_and_has_kafka_layout() {
        let k = encode_key("my-txn");
        assert_eq!(&k[..], b"\x00\x00\x00\x06my-txn");
        assert_eq!(decode_key(k), Some("my-txn".to_string()));
        assert_eq!(decode_key(encode_key("")), Some(String::new()));
        assert_eq!(decode_key(encode_key("ü-ñ")), Some("ü-ñ".to_string()));
    }

    #[test]
    fn key_rejects_unknown_versions_and_malformed_input() {
        // A __consumer_offsets group key (version 2) is not a transaction key.
        assert_eq!(decode_key(Bytes::from_static(b"\x00\x02\x00\x01g")), None);
        assert_eq!(decode_key(Bytes::from_static(b"\x00\x01\x00\x01g")), None);
        assert_eq!(decode_key(Bytes::new()), None);
        assert_eq!(decode_key(Bytes::from_static(b"\x00")), None);
        assert_eq!(decode_key(Bytes::from_static(b"\x00\x00")), None);
        assert_eq!(decode_key(Bytes::from_static(b"\x00\x00\x00\x05abc")), None);
        assert_eq!(decode_key(Bytes::from_static(b"\x00\x00\xff\xff")), None); // null id
        assert_eq!(
            decode_key(Bytes::from_static(b"\x00\x00\x00\x01\xff")),
            None
        ); // not UTF-8
        assert_eq!(decode_key(Bytes::from_static(b"\x00\x00\x00\x01ab")), None); // trailing
    }

    #[test]
    fn value_round_trips() {
        let v = sample();
        assert_eq!(decode_value(encode_value(&v)), Some(v.clone()));

        let mut with_tags = v.clone();
        with_tags.previous_producer_id = 11;
        with_tags.next_producer_id = 12;
        with_tags.client_transaction_version = 2;
        with_tags.status = TxnStatus::PrepareCommit;
        assert_eq!(decode_value(encode_value(&with_tags)), Some(with_tags));

        let mut empty = v.clone();
        empty.status = TxnStatus::Empty;
        empty.partitions.clear();
        empty.producer_epoch = 0;
        let enc = encode_value(&empty);
        assert_eq!(decode_value(enc.clone()), Some(empty));
        // Empty writes a null partition array (compact length 0) right after the status byte.
        assert_eq!(enc[2 + 8 + 2 + 4 + 1], 0);

        let mut complete = v;
        complete.status = TxnStatus::CompleteCommit;
        complete.partitions.clear();
        let enc = encode_value(&complete);
        // Other states write an empty (not null) array: compact length 1.
        assert_eq!(enc[2 + 8 + 2 + 4 + 1], 1);
        assert_eq!(decode_value(enc), Some(complete));

        for s in 0..=7 {
            let mut x = sample();
            x.status = TxnStatus::from_i8(s).unwrap();
            assert_eq!(decode_value(encode_value(&x)), Some(x));
        }
    }

    #[test]
    fn v1_value_exact_bytes() {
        let mut partitions = BTreeMap::new();
        partitions.insert("t".to_string(), BTreeSet::from([2, 0]));
        let v = TxnValue {
            producer_id: 1000,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: 2,
            timeout_ms: 60_000,
            status: TxnStatus::Ongoing,
            partitions,
            last_update_ms: 5,
            start_ms: 4,
            client_transaction_version: 2,
        };
        let enc = encode_value(&v);
        let mut expected: Vec<u8> = Vec::new();
        expected.extend_from_slice(&[0x00, 0x01]); // version 1
        expected.extend_from_slice(&1000i64.to_be_bytes()); // ProducerId
        expected.extend_from_slice(&[0x00, 0x02]); // ProducerEpoch
        expected.extend_from_slice(&[0x00, 0x00, 0xEA, 0x60]); // TransactionTimeoutMs 60000
        expected.push(0x01); // TransactionStatus Ongoing
        expected.push(0x02); // compact array: 1 topic (+1)
        expected.extend_from_slice(&[0x02, b't']); // compact string "t"
        expected.push(0x03); // compact array: 2 partition ids (+1)
        expected.extend_from_slice(&0i32.to_be_bytes());
        expected.extend_from_slice(&2i32.to_be_bytes());
        expected.push(0x00); // PartitionsSchema tagged fields: none
        expected.extend_from_slice(&5i64.to_be_bytes()); // TransactionLastUpdateTimestampMs
        expected.extend_from_slice(&4i64.to_be_bytes()); // TransactionStartTimestampMs
        // Tagged fields: only ClientTransactionVersion differs from its default.
        expected.push(0x01); // one tagged field
        expected.extend_from_slice(&[0x02, 0x02, 0x00, 0x02]); // tag 2, size 2, value 2
        assert_eq!(&enc[..], &expected[..]);
        assert_eq!(decode_value(enc), Some(v.clone()));

        // With all defaults no tagged field is written: the section is a single 0 byte.
        let mut defaults = v.clone();
        defaults.client_transaction_version = 0;
        let enc = encode_value(&defaults);
        assert_eq!(enc.len(), expected.len() - 4);
        assert_eq!(enc[enc.len() - 1], 0x00);

        // PreviousProducerId (tag 0) and NextProducerId (tag 1) come first, in tag order.
        let mut ids = v;
        ids.previous_producer_id = 7;
        ids.next_producer_id = 8;
        let enc = encode_value(&ids);
        let tail = &enc[enc.len() - (1 + 10 + 10 + 4)..];
        let mut want = vec![0x03, 0x00, 0x08];
        want.extend_from_slice(&7i64.to_be_bytes());
        want.extend_from_slice(&[0x01, 0x08]);
        want.extend_from_slice(&8i64.to_be_bytes());
        want.extend_from_slice(&[0x02, 0x02, 0x00, 0x02]);
        assert_eq!(tail, &want[..]);
        assert_eq!(decode_value(enc), Some(ids));
    }

    /// A value version 0 as Kafka 2.x/3.x wrote it, built by hand.
    fn hand_built_v0(partitions_null: bool) -> Vec<u8> {
        let mut b: Vec<u8> = Vec::new();
        b.extend_from_slice(&0i16.to_be_bytes()); // version 0
        b.extend_from_slice(&77i64.to_be_bytes()); // ProducerId
        b.extend_from_slice(&5i16.to_be_bytes()); // ProducerEpoch
        b.extend_from_slice(&900_000i32.to_be_bytes()); // TransactionTimeoutMs
        b.push(if partitions_null { 0 } else { 3 }); // Empty / PrepareAbort
        if partitions_null {
            b.extend_from_slice(&(-1i32).to_be_bytes());
        } else {
            b.extend_from_slice(&2i32.to_be_bytes()); // two topics
            b.extend_from_slice(&2i16.to_be_bytes());
            b.extend_from_slice(b"t1");
            b.extend_from_slice(&2i32.to_be_bytes());
            b.extend_from_slice(&4i32.to_be_bytes());
            b.extend_from_slice(&1i32.to_be_bytes());
            b.extend_from_slice(&2i16.to_be_bytes());
            b.extend_from_slice(b"t2");
            b.extend_from_slice(&1i32.to_be_bytes());
            b.extend_from_slice(&0i32.to_be_bytes());
        }
        b.extend_from_slice(&222i64.to_be_bytes()); // last update
        b.extend_from_slice(&111i64.to_be_bytes()); // start
        b
    }

    #[test]
    fn decodes_hand_built_v0() {
        let v = decode_value(Bytes::from(hand_built_v0(false))).unwrap();
        assert_eq!(v.producer_id, 77);
        assert_eq!(v.producer_epoch, 5);
        assert_eq!(v.timeout_ms, 900_000);
        assert_eq!(v.status, TxnStatus::PrepareAbort);
        assert_eq!(v.partitions.len(), 2);
        assert_eq!(v.partitions["t1"], BTreeSet::from([1, 4]));
        assert_eq!(v.partitions["t2"], BTreeSet::from([0]));
        assert_eq!(v.last_update_ms, 222);
        assert_eq!(v.start_ms, 111);
        // v0 has no tagged fields: the defaults.
        assert_eq!(v.previous_producer_id, -1);
        assert_eq!(v.next_producer_id, -1);
        assert_eq!(v.client_transaction_version, 0);

        let e = decode_value(Bytes::from(hand_built_v0(true))).unwrap();
        assert_eq!(e.status, TxnStatus::Empty);
        assert!(e.partitions.is_empty());

        // Re-encoded as v1 it decodes to the same value.
        assert_eq!(decode_value(encode_value(&v)), Some(v));
    }

    #[test]
    fn unknown_tagged_fields_are_skipped() {
        let enc = encode_value(&sample());
        let mut b = enc[..enc.len() - 1].to_vec();
        // Two tagged fields: ClientTransactionVersion 1 and an unknown tag 9 of 3 bytes.
        b.extend_from_slice(&[0x02, 0x02, 0x02, 0x00, 0x01, 0x09, 0x03, 0xaa, 0xbb, 0xcc]);
        let v = decode_value(Bytes::from(b)).unwrap();
        assert_eq!(v.client_transaction_version, 1);
        assert_eq!(v.partitions, sample().partitions);
    }

    #[test]
    fn malformed_values_return_none() {
        let enc = encode_value(&sample());
        // Every truncation fails, never panics.
        for n in 0..enc.len() {
            assert_eq!(decode_value(enc.slice(..n)), None, "v1 truncated to {n}");
        }
        let v0 = Bytes::from(hand_built_v0(false));
        for n in 0..v0.len() {
            assert_eq!(decode_value(v0.slice(..n)), None, "v0 truncated to {n}");
        }
        // Trailing garbage.
        let mut b = enc.to_vec();
        b.push(0);
        assert_eq!(decode_value(Bytes::from(b)), None);
        // Unknown value version.
        let mut b = enc.to_vec();
        b[1] = 2;
        assert_eq!(decode_value(Bytes::from(b)), None);
        let mut b = enc.to_vec();
        b[0] = 0xff;
        assert_eq!(decode_value(Bytes::from(b)), None);
        // Unknown status byte.
        let mut b = enc.to_vec();
        b[16] = 9;
        assert_eq!(decode_value(Bytes::from(b)), None);
        // Huge array counts do not allocate or loop: v0 with i32::MAX topics, v1 with a
        // varint count far beyond the input.
        let mut b = hand_built_v0(false);
        b[17..21].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(decode_value(Bytes::from(b)), None);
        let mut b = enc[..17].to_vec();
        b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(decode_value(Bytes::from(b)), None);
        // A varint longer than 5 bytes.
        let mut b = enc[..17].to_vec();
        b.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
        assert_eq!(decode_value(Bytes::from(b)), None);
        // Negative v0 array length other than -1.
        let mut b = hand_built_v0(false);
        b[17..21].copy_from_slice(&(-2i32).to_be_bytes());
        assert_eq!(decode_value(Bytes::from(b)), None);
        // A tagged field of the wrong size.
        let mut b = enc[..enc.len() - 1].to_vec();
        b.extend_from_slice(&[0x01, 0x02, 0x01, 0x00]);
        assert_eq!(decode_value(Bytes::from(b)), None);
        // Tags out of order.
        let mut b = enc[..enc.len() - 1].to_vec();
        b.extend_from_slice(&[0x02, 0x05, 0x00, 0x04, 0x00]);
        assert_eq!(decode_value(Bytes::from(b)), None);
        // A topic name that is not UTF-8.
        let mut b = enc.to_vec();
        let at = 2 + 8 + 2 + 4 + 1 + 1 + 1; // first byte of the first topic name
        b[at] = 0xff;
        assert_eq!(decode_value(Bytes::from(b)), None);
        // Empty input and random bytes.
        assert_eq!(decode_value(Bytes::new()), None);
        let mut x: u32 = 12345;
        for len in 0..200usize {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = decode_value(Bytes::from(junk.clone()));
            let _ = decode_key(Bytes::from(junk));
        }
    }

    #[test]
    fn partition_matches_groups() {
        assert_eq!(partition_for("my-group", 50), 12);
        assert_eq!(partition_for("", 50), 0);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        for id in ["a", "txn-1", "pipeline"] {
            let p = partition_for(id, 4);
            assert!((0..4).contains(&p));
        }
    }
}
