//! Kafka 4.0's `__consumer_offsets` records of KIP-848 consumer groups, so a group's membership
//! survives a coordinator change and reads as Kafka's own: the group epoch (record type 3), each
//! member's metadata (5), the target assignment epoch (6) and per-member target (7), each
//! member's current assignment with its epochs (8), and resolved regular expressions (16). Keys
//! are Kafka's non-flexible `short type + fields`; values are flexible (compact strings and
//! arrays, tagged fields) at version 0. Decoding is bounds-checked and returns `None` on anything
//! malformed; unknown tagged fields are skipped, as Kafka's readers do.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use super::assignor::Tp;
use crate::record_codec::{
    Reader, put_compact_len, put_compact_nullable_str, put_compact_str, put_str, put_uvarint,
};

pub const METADATA: i16 = 3;
pub const MEMBER: i16 = 5;
pub const TARGET_METADATA: i16 = 6;
pub const TARGET_MEMBER: i16 = 7;
pub const CURRENT_ASSIGNMENT: i16 = 8;
pub const REGEX: i16 = 16;

/// Kafka's `MemberState` of a current assignment.
pub const STATE_STABLE: i8 = 0;
pub const STATE_UNREVOKED: i8 = 1;
pub const STATE_UNRELEASED: i8 = 2;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConsumerKey {
    Metadata { group: String },
    Member { group: String, member: String },
    TargetMetadata { group: String },
    TargetMember { group: String, member: String },
    CurrentAssignment { group: String, member: String },
    Regex { group: String, regex: String },
}

impl ConsumerKey {
    /// The record type (the key's version field).
    pub fn kind(&self) -> i16 {
        match self {
            ConsumerKey::Metadata { .. } => METADATA,
            ConsumerKey::Member { .. } => MEMBER,
            ConsumerKey::TargetMetadata { .. } => TARGET_METADATA,
            ConsumerKey::TargetMember { .. } => TARGET_MEMBER,
            ConsumerKey::CurrentAssignment { .. } => CURRENT_ASSIGNMENT,
            ConsumerKey::Regex { .. } => REGEX,
        }
    }

    pub fn group(&self) -> &str {
        match self {
            ConsumerKey::Metadata { group }
            | ConsumerKey::Member { group, .. }
            | ConsumerKey::TargetMetadata { group }
            | ConsumerKey::TargetMember { group, .. }
            | ConsumerKey::CurrentAssignment { group, .. }
            | ConsumerKey::Regex { group, .. } => group,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentAssignment {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: i8,
    pub assigned: BTreeSet<Tp>,
    pub pending_revocation: BTreeSet<Tp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerValue {
    Metadata {
        epoch: i32,
    },
    Member(MemberMetadata),
    TargetMetadata {
        assignment_epoch: i32,
    },
    TargetMember(BTreeSet<Tp>),
    CurrentAssignment(CurrentAssignment),
    Regex {
        topics: BTreeSet<String>,
        version: i64,
        timestamp: i64,
    },
}

pub fn encode_key(key: &ConsumerKey) -> Bytes {
    let mut buf = BytesMut::new();
    let (kind, fields): (i16, [Option<&str>; 2]) = match key {
        ConsumerKey::Metadata { group } => (METADATA, [Some(group), None]),
        ConsumerKey::Member { group, member } => (MEMBER, [Some(group), Some(member)]),
        ConsumerKey::TargetMetadata { group } => (TARGET_METADATA, [Some(group), None]),
        ConsumerKey::TargetMember { group, member } => (TARGET_MEMBER, [Some(group), Some(member)]),
        ConsumerKey::CurrentAssignment { group, member } => {
            (CURRENT_ASSIGNMENT, [Some(group), Some(member)])
        }
        ConsumerKey::Regex { group, regex } => (REGEX, [Some(group), Some(regex)]),
    };
    buf.put_i16(kind);
    for f in fields.into_iter().flatten() {
        put_str(&mut buf, f);
    }
    buf.freeze()
}

/// Decodes the key of record type `kind` (already read) from `r`.
pub fn decode_key(kind: i16, r: Bytes) -> Option<ConsumerKey> {
    let mut r = Reader(r);
    Some(match kind {
        METADATA => ConsumerKey::Metadata { group: r.str()? },
        MEMBER => ConsumerKey::Member {
            group: r.str()?,
            member: r.str()?,
        },
        TARGET_METADATA => ConsumerKey::TargetMetadata { group: r.str()? },
        TARGET_MEMBER => ConsumerKey::TargetMember {
            group: r.str()?,
            member: r.str()?,
        },
        CURRENT_ASSIGNMENT => ConsumerKey::CurrentAssignment {
            group: r.str()?,
            member: r.str()?,
        },
        REGEX => ConsumerKey::Regex {
            group: r.str()?,
            regex: r.str()?,
        },
        _ => return None,
    })
}

/// `[]TopicPartitions`: topic id, partitions, each entry with its (empty) tagged fields.
fn put_topic_partitions(buf: &mut BytesMut, tps: &BTreeSet<Tp>) {
    let mut by_topic: Vec<(Uuid, Vec<i32>)> = Vec::new();
    for (id, p) in tps {
        match by_topic.last_mut() {
            Some((last, ps)) if last == id => ps.push(*p),
            _ => by_topic.push((*id, vec![*p])),
        }
    }
    put_compact_len(buf, by_topic.len());
    for (id, ps) in by_topic {
        buf.put_slice(id.as_bytes());
        put_compact_len(buf, ps.len());
        for p in ps {
            buf.put_i32(p);
        }
        put_uvarint(buf, 0);
    }
}

/// The strings of a compact array.
fn put_compact_strs<'a>(buf: &mut BytesMut, strs: impl ExactSizeIterator<Item = &'a String>) {
    put_compact_len(buf, strs.len());
    for s in strs {
        put_compact_str(buf, s);
    }
}

pub fn encode_value(v: &ConsumerValue) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    match v {
        ConsumerValue::Metadata { epoch } => buf.put_i32(*epoch),
        ConsumerValue::Member(m) => {
            put_compact_nullable_str(&mut buf, m.instance_id.as_deref());
            put_compact_nullable_str(&mut buf, m.rack_id.as_deref());
            put_compact_str(&mut buf, &m.client_id);
            put_compact_str(&mut buf, &m.client_host);
            put_compact_strs(&mut buf, m.subscribed_topic_names.iter());
            put_compact_nullable_str(&mut buf, m.subscribed_topic_regex.as_deref());
            buf.put_i32(m.rebalance_timeout_ms);
            put_compact_nullable_str(&mut buf, m.server_assignor.as_deref());
        }
        ConsumerValue::TargetMetadata { assignment_epoch } => buf.put_i32(*assignment_epoch),
        ConsumerValue::TargetMember(tps) => put_topic_partitions(&mut buf, tps),
        ConsumerValue::CurrentAssignment(a) => {
            buf.put_i32(a.member_epoch);
            buf.put_i32(a.previous_member_epoch);
            buf.put_i8(a.state);
            put_topic_partitions(&mut buf, &a.assigned);
            put_topic_partitions(&mut buf, &a.pending_revocation);
        }
        ConsumerValue::Regex {
            topics,
            version,
            timestamp,
        } => {
            put_compact_strs(&mut buf, topics.iter());
            buf.put_i64(*version);
            buf.put_i64(*timestamp);
        }
    }
    put_uvarint(&mut buf, 0);
    buf.freeze()
}

/// A compact array's count (null reads as empty), each element at least `min_elem` bytes.
fn count(r: &mut Reader, min_elem: usize) -> Option<usize> {
    Some(r.compact_array_len(min_elem)?.unwrap_or(0))
}

fn topic_partitions(r: &mut Reader) -> Option<BTreeSet<Tp>> {
    let mut out = BTreeSet::new();
    for _ in 0..count(r, 18)? {
        let id = Uuid::from_slice(&r.take(16)?).ok()?;
        for _ in 0..count(r, 4)? {
            out.insert((id, r.i32()?));
        }
        r.skip_tags()?;
    }
    Some(out)
}

/// Decodes the value of a record of type `kind`.
pub fn decode_value(kind: i16, b: Bytes) -> Option<ConsumerValue> {
    let mut r = Reader(b);
    let _version = r.i16()?;
    let v = match kind {
        METADATA => ConsumerValue::Metadata { epoch: r.i32()? },
        MEMBER => {
            let instance_id = r.compact_nullable_str()?;
            let rack_id = r.compact_nullable_str()?;
            let client_id = r.compact_str()?;
            let client_host = r.compact_str()?;
            let mut subscribed_topic_names = Vec::new();
            for _ in 0..count(&mut r, 1)? {
                subscribed_topic_names.push(r.compact_str()?);
            }
            ConsumerValue::Member(MemberMetadata {
                instance_id,
                rack_id,
                client_id,
                client_host,
                subscribed_topic_names,
                subscribed_topic_regex: r.compact_nullable_str()?,
                rebalance_timeout_ms: r.i32()?,
                server_assignor: r.compact_nullable_str()?,
            })
        }
        TARGET_METADATA => ConsumerValue::TargetMetadata {
            assignment_epoch: r.i32()?,
        },
        TARGET_MEMBER => ConsumerValue::TargetMember(topic_partitions(&mut r)?),
        CURRENT_ASSIGNMENT => ConsumerValue::CurrentAssignment(CurrentAssignment {
            member_epoch: r.i32()?,
            previous_member_epoch: r.i32()?,
            state: r.i8()?,
            assigned: topic_partitions(&mut r)?,
            pending_revocation: topic_partitions(&mut r)?,
        }),
        REGEX => {
            let mut topics = BTreeSet::new();
            for _ in 0..count(&mut r, 1)? {
                topics.insert(r.compact_str()?);
            }
            ConsumerValue::Regex {
                topics,
                version: r.i64()?,
                timestamp: r.i64()?,
            }
        }
        _ => return None,
    };
    r.skip_tags()?;
    Some(v)
}

#[cfg(test)]
mod tests {
    use bytes::Buf;

    use super::*;

    fn key_round_trip(k: ConsumerKey) {
        let mut b = encode_key(&k);
        let kind = b.get_i16();
        assert_eq!(decode_key(kind, b), Some(k));
    }

    fn value_round_trip(kind: i16, v: ConsumerValue) {
        let enc = encode_value(&v);
        assert_eq!(decode_value(kind, enc.clone()), Some(v));
        for cut in 0..enc.len() {
            assert_eq!(decode_value(kind, enc.slice(..cut)), None, "cut at {cut}");
        }
    }

    #[test]
    fn keys_and_values_round_trip_and_reject_truncation() {
        let (g, m) = ("g".to_string(), "m-1".to_string());
        key_round_trip(ConsumerKey::Metadata { group: g.clone() });
        key_round_trip(ConsumerKey::Member {
            group: g.clone(),
            member: m.clone(),
        });
        key_round_trip(ConsumerKey::CurrentAssignment {
            group: g.clone(),
            member: m.clone(),
        });
        key_round_trip(ConsumerKey::Regex {
            group: g,
            regex: "fx-.*".into(),
        });
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let tps: BTreeSet<Tp> = [(a, 0), (a, 2), (b, 1)].into();
        value_round_trip(METADATA, ConsumerValue::Metadata { epoch: 7 });
        value_round_trip(
            MEMBER,
            ConsumerValue::Member(MemberMetadata {
                instance_id: None,
                rack_id: Some("b".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                subscribed_topic_names: vec!["t1".into(), "t2".into()],
                subscribed_topic_regex: Some("fx-.*".into()),
                rebalance_timeout_ms: 300_000,
                server_assignor: Some("uniform".into()),
            }),
        );
        value_round_trip(TARGET_MEMBER, ConsumerValue::TargetMember(tps.clone()));
        value_round_trip(
            CURRENT_ASSIGNMENT,
            ConsumerValue::CurrentAssignment(CurrentAssignment {
                member_epoch: 5,
                previous_member_epoch: 4,
                state: STATE_UNREVOKED,
                assigned: tps,
                pending_revocation: [(b, 3)].into(),
            }),
        );
        value_round_trip(
            REGEX,
            ConsumerValue::Regex {
                topics: ["fx-a".to_string()].into(),
                version: 3,
                timestamp: 99,
            },
        );
    }

    #[test]
    fn unknown_tagged_fields_are_skipped() {
        // Kafka 4.1 adds MetadataHash (tag 0) to the group metadata value.
        let mut enc = BytesMut::new();
        enc.put_i16(0);
        enc.put_i32(9);
        enc.put_u8(1); // one tagged field
        enc.put_u8(0); // tag 0
        enc.put_u8(8); // 8 bytes
        enc.put_i64(12345);
        assert_eq!(
            decode_value(METADATA, enc.freeze()),
            Some(ConsumerValue::Metadata { epoch: 9 })
        );
    }
}
