//! Kafka 4.0's `__consumer_offsets` records of KIP-848 consumer groups, so a group's membership
//! survives a coordinator change and reads as Kafka's own: the group epoch (record type 3), each
//! member's metadata (5), the target assignment epoch (6) and per-member target (7), each
//! member's current assignment with its epochs (8), and resolved regular expressions (16). Keys
//! are Kafka's non-flexible `short type + fields`; values are flexible (compact strings and
//! arrays, tagged fields) at version 0. Decoding is bounds-checked and returns `None` on anything
//! malformed; unknown tagged fields are skipped, as Kafka's readers do.

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use uuid::Uuid;

use super::assignor::Tp;

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

fn put_str(buf: &mut BytesMut, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    buf.put_i16(bytes.len() as i16);
    buf.put_slice(bytes);
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
pub fn decode_key(kind: i16, mut r: Bytes) -> Option<ConsumerKey> {
    let mut s = || -> Option<String> {
        if r.remaining() < 2 {
            return None;
        }
        let len = r.get_i16();
        let len = usize::try_from(len).ok()?;
        (r.remaining() >= len)
            .then(|| String::from_utf8(r.split_to(len).to_vec()).ok())
            .flatten()
    };
    Some(match kind {
        METADATA => ConsumerKey::Metadata { group: s()? },
        MEMBER => ConsumerKey::Member {
            group: s()?,
            member: s()?,
        },
        TARGET_METADATA => ConsumerKey::TargetMetadata { group: s()? },
        TARGET_MEMBER => ConsumerKey::TargetMember {
            group: s()?,
            member: s()?,
        },
        CURRENT_ASSIGNMENT => ConsumerKey::CurrentAssignment {
            group: s()?,
            member: s()?,
        },
        REGEX => ConsumerKey::Regex {
            group: s()?,
            regex: s()?,
        },
        _ => return None,
    })
}

/// Flexible-version writer: compact strings and arrays, empty tagged-field sections.
struct Writer(BytesMut);

impl Writer {
    fn varint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.0.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.put_u8(v as u8);
    }
    fn len(&mut self, n: usize) {
        self.varint(u32::try_from(n + 1).unwrap_or(u32::MAX));
    }
    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.put_slice(s.as_bytes());
    }
    fn nullable_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.varint(0),
        }
    }
    fn no_tags(&mut self) {
        self.varint(0);
    }
    /// `[]TopicPartitions`: topic id, partitions, each entry with its tagged fields.
    fn topic_partitions(&mut self, tps: &BTreeSet<Tp>) {
        let mut by_topic: Vec<(Uuid, Vec<i32>)> = Vec::new();
        for (id, p) in tps {
            match by_topic.last_mut() {
                Some((last, ps)) if last == id => ps.push(*p),
                _ => by_topic.push((*id, vec![*p])),
            }
        }
        self.len(by_topic.len());
        for (id, ps) in by_topic {
            self.0.put_slice(id.as_bytes());
            self.len(ps.len());
            for p in ps {
                self.0.put_i32(p);
            }
            self.no_tags();
        }
    }
}

pub fn encode_value(v: &ConsumerValue) -> Bytes {
    let mut w = Writer(BytesMut::new());
    w.0.put_i16(0);
    match v {
        ConsumerValue::Metadata { epoch } => w.0.put_i32(*epoch),
        ConsumerValue::Member(m) => {
            w.nullable_str(m.instance_id.as_deref());
            w.nullable_str(m.rack_id.as_deref());
            w.str(&m.client_id);
            w.str(&m.client_host);
            w.len(m.subscribed_topic_names.len());
            for t in &m.subscribed_topic_names {
                w.str(t);
            }
            w.nullable_str(m.subscribed_topic_regex.as_deref());
            w.0.put_i32(m.rebalance_timeout_ms);
            w.nullable_str(m.server_assignor.as_deref());
        }
        ConsumerValue::TargetMetadata { assignment_epoch } => w.0.put_i32(*assignment_epoch),
        ConsumerValue::TargetMember(tps) => w.topic_partitions(tps),
        ConsumerValue::CurrentAssignment(a) => {
            w.0.put_i32(a.member_epoch);
            w.0.put_i32(a.previous_member_epoch);
            w.0.put_i8(a.state);
            w.topic_partitions(&a.assigned);
            w.topic_partitions(&a.pending_revocation);
        }
        ConsumerValue::Regex {
            topics,
            version,
            timestamp,
        } => {
            w.len(topics.len());
            for t in topics {
                w.str(t);
            }
            w.0.put_i64(*version);
            w.0.put_i64(*timestamp);
        }
    }
    w.no_tags();
    w.0.freeze()
}

/// Flexible-version reader; every getter fails instead of panicking on short input.
struct Reader(Bytes);

impl Reader {
    fn varint(&mut self) -> Option<u32> {
        let mut v: u32 = 0;
        for shift in (0..35).step_by(7) {
            if !self.0.has_remaining() {
                return None;
            }
            let b = self.0.get_u8();
            v |= u32::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn i8(&mut self) -> Option<i8> {
        self.0.has_remaining().then(|| self.0.get_i8())
    }
    fn i32(&mut self) -> Option<i32> {
        (self.0.remaining() >= 4).then(|| self.0.get_i32())
    }
    fn i64(&mut self) -> Option<i64> {
        (self.0.remaining() >= 8).then(|| self.0.get_i64())
    }
    fn take(&mut self, n: usize) -> Option<Bytes> {
        (self.0.remaining() >= n).then(|| self.0.split_to(n))
    }
    /// A compact length: `None` for null (0 on the wire).
    fn len(&mut self) -> Option<Option<usize>> {
        let n = self.varint()?;
        Some(n.checked_sub(1).map(|n| n as usize))
    }
    fn nullable_str(&mut self) -> Option<Option<String>> {
        match self.len()? {
            None => Some(None),
            Some(n) => String::from_utf8(self.take(n)?.to_vec()).ok().map(Some),
        }
    }
    fn str(&mut self) -> Option<String> {
        self.nullable_str()?
    }
    /// Skips a tagged-field section (fields this version does not know).
    fn tags(&mut self) -> Option<()> {
        let count = self.varint()?;
        for _ in 0..count {
            self.varint()?;
            let size = self.varint()? as usize;
            self.take(size)?;
        }
        Some(())
    }
    fn count(&mut self) -> Option<usize> {
        let n = self.len()?.unwrap_or(0);
        // Every element takes at least one byte: a larger count is malformed.
        (n <= self.0.remaining()).then_some(n)
    }
    fn topic_partitions(&mut self) -> Option<BTreeSet<Tp>> {
        let mut out = BTreeSet::new();
        for _ in 0..self.count()? {
            let id = Uuid::from_slice(&self.take(16)?).ok()?;
            for _ in 0..self.count()? {
                out.insert((id, self.i32()?));
            }
            self.tags()?;
        }
        Some(out)
    }
}

/// Decodes the value of a record of type `kind`.
pub fn decode_value(kind: i16, b: Bytes) -> Option<ConsumerValue> {
    let mut r = Reader(b);
    if r.0.remaining() < 2 {
        return None;
    }
    let _version = r.0.get_i16();
    let v = match kind {
        METADATA => ConsumerValue::Metadata { epoch: r.i32()? },
        MEMBER => {
            let instance_id = r.nullable_str()?;
            let rack_id = r.nullable_str()?;
            let client_id = r.str()?;
            let client_host = r.str()?;
            let mut subscribed_topic_names = Vec::new();
            for _ in 0..r.count()? {
                subscribed_topic_names.push(r.str()?);
            }
            ConsumerValue::Member(MemberMetadata {
                instance_id,
                rack_id,
                client_id,
                client_host,
                subscribed_topic_names,
                subscribed_topic_regex: r.nullable_str()?,
                rebalance_timeout_ms: r.i32()?,
                server_assignor: r.nullable_str()?,
            })
        }
        TARGET_METADATA => ConsumerValue::TargetMetadata {
            assignment_epoch: r.i32()?,
        },
        TARGET_MEMBER => ConsumerValue::TargetMember(r.topic_partitions()?),
        CURRENT_ASSIGNMENT => ConsumerValue::CurrentAssignment(CurrentAssignment {
            member_epoch: r.i32()?,
            previous_member_epoch: r.i32()?,
            state: r.i8()?,
            assigned: r.topic_partitions()?,
            pending_revocation: r.topic_partitions()?,
        }),
        REGEX => {
            let mut topics = BTreeSet::new();
            for _ in 0..r.count()? {
                topics.insert(r.str()?);
            }
            ConsumerValue::Regex {
                topics,
                version: r.i64()?,
                timestamp: r.i64()?,
            }
        }
        _ => return None,
    };
    r.tags()?;
    Some(v)
}

#[cfg(test)]
mod tests {
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
