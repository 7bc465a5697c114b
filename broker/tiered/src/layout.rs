//! Object names of remote segments, laid out like Aiven's tiered-storage plugin:
//! `{prefix}{topic}-{topic_id}/{partition}/{base_offset:020}-{segment_id}.{suffix}`, ids in
//! Kafka's text form (URL-safe base64 without padding, 22 characters), one object per file.

use uuid::Uuid;

/// What identifies one uploaded segment's objects.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SegmentKey {
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
    pub base_offset: i64,
    pub segment_id: Uuid,
}

/// The remote indexes and state files of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IndexKind {
    Offset,
    Time,
    Transaction,
    ProducerSnapshot,
    LeaderEpoch,
}

/// One object of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ObjectKind {
    Log,
    Index(IndexKind),
    /// Written last: its presence means every other object is complete.
    Manifest,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 7] = [
        ObjectKind::Index(IndexKind::Offset),
        ObjectKind::Index(IndexKind::Time),
        ObjectKind::Index(IndexKind::Transaction),
        ObjectKind::Index(IndexKind::ProducerSnapshot),
        ObjectKind::Index(IndexKind::LeaderEpoch),
        ObjectKind::Log,
        ObjectKind::Manifest,
    ];

    pub fn suffix(self) -> &'static str {
        match self {
            ObjectKind::Log => "log",
            ObjectKind::Index(IndexKind::Offset) => "index",
            ObjectKind::Index(IndexKind::Time) => "timeindex",
            ObjectKind::Index(IndexKind::Transaction) => "txnindex",
            ObjectKind::Index(IndexKind::ProducerSnapshot) => "snapshot",
            ObjectKind::Index(IndexKind::LeaderEpoch) => "leader-epoch-checkpoint",
            ObjectKind::Manifest => "manifest",
        }
    }

    pub fn from_suffix(suffix: &str) -> Option<ObjectKind> {
        ObjectKind::ALL.into_iter().find(|k| k.suffix() == suffix)
    }
}

/// Kafka's `Uuid.toString()`: URL-safe base64 of the 16 bytes, no padding.
pub fn kafka_uuid(id: Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The inverse of [`kafka_uuid`]; `None` unless `text` is exactly a 22-character id.
pub fn parse_kafka_uuid(text: &str) -> Option<Uuid> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    }
    let text = text.as_bytes();
    if text.len() != 22 {
        return None;
    }
    let mut bytes = Vec::with_capacity(18);
    for chunk in text.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        let produced = chunk.len() - 1;
        for i in 0..produced {
            bytes.push((n >> (16 - 8 * i)) as u8);
        }
    }
    let id = Uuid::from_slice(&bytes).ok()?;
    // Reject non-canonical encodings (stray low bits in the last character).
    (kafka_uuid(id).as_bytes() == text).then_some(id)
}

/// The "directory" of a partition: `{prefix}{topic}-{topic_id}/{partition}/`.
pub(crate) fn partition_prefix(
    prefix: &str,
    topic: &str,
    topic_id: Uuid,
    partition: i32,
) -> String {
    format!("{prefix}{topic}-{}/{partition}/", kafka_uuid(topic_id))
}

/// The full object name of one object of a segment.
pub(crate) fn object_name(prefix: &str, key: &SegmentKey, kind: ObjectKind) -> String {
    format!(
        "{}{:020}-{}.{}",
        partition_prefix(prefix, &key.topic, key.topic_id, key.partition),
        key.base_offset,
        kafka_uuid(key.segment_id),
        kind.suffix()
    )
}

/// Parses the file part of an object name (`{base_offset:020}-{segment_id}.{suffix}`).
pub(crate) fn parse_file_name(name: &str) -> Option<(i64, Uuid, ObjectKind)> {
    // 20 digits, '-', 22 id characters, '.', suffix.
    let (digits, rest) = (name.get(..20)?, name.get(20..)?);
    let rest = rest.strip_prefix('-')?;
    let (id, rest) = (rest.get(..22)?, rest.get(22..)?);
    let suffix = rest.strip_prefix('.')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((
        digits.parse().ok()?,
        parse_kafka_uuid(id)?,
        ObjectKind::from_suffix(suffix)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_uuid_text_form() {
        // Kafka's well-known ids: ZERO_UUID and METADATA_TOPIC_ID (Uuid(0, 1)).
        assert_eq!(kafka_uuid(Uuid::nil()), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(kafka_uuid(Uuid::from_u128(1)), "AAAAAAAAAAAAAAAAAAAAAQ");
        for _ in 0..1000 {
            let id = Uuid::new_v4();
            let text = kafka_uuid(id);
            assert_eq!(text.len(), 22);
            assert_eq!(parse_kafka_uuid(&text), Some(id));
        }
        assert_eq!(
            parse_kafka_uuid("AAAAAAAAAAAAAAAAAAAAAB"),
            None,
            "non-canonical"
        );
        assert_eq!(parse_kafka_uuid("AAAAAAAAAAAAAAAAAAAAA"), None);
        assert_eq!(parse_kafka_uuid("AAAAAAAAAAAAAAAAAAAA*A"), None);
    }

    #[test]
    fn object_names_round_trip() {
        let key = SegmentKey {
            topic: "orders-eu.v2".into(),
            topic_id: Uuid::new_v4(),
            partition: 7,
            base_offset: 1234,
            segment_id: Uuid::new_v4(),
        };
        for kind in ObjectKind::ALL {
            let name = object_name("tiered/", &key, kind);
            let dir = partition_prefix("tiered/", &key.topic, key.topic_id, 7);
            assert!(name.starts_with(&dir), "{name}");
            assert!(name.starts_with("tiered/orders-eu.v2-"));
            let file = &name[dir.len()..];
            assert!(file.starts_with("00000000000000001234-"), "{file}");
            assert_eq!(
                parse_file_name(file),
                Some((1234, key.segment_id, kind)),
                "{file}"
            );
        }
        assert_eq!(parse_file_name("00000000000000001234-x.log"), None);
        assert_eq!(
            parse_file_name("0000000000000000123a-AAAAAAAAAAAAAAAAAAAAAA.log"),
            None
        );
        assert_eq!(
            parse_file_name("00000000000000001234-AAAAAAAAAAAAAAAAAAAAAA.bin"),
            None
        );
        assert_eq!(parse_file_name("short"), None);
    }
}
