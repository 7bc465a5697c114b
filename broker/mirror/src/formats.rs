//! MirrorMaker 2's record formats, byte for byte: `OffsetSync` (offset-syncs topic),
//! `Checkpoint` (`<source>.checkpoints.internal`) and `Heartbeat` (`heartbeats`). MM2 writes them
//! with Kafka's protocol `Struct` encoding: big-endian integers, a STRING as an int16 length and
//! UTF-8 bytes; checkpoint and heartbeat values start with an int16 version (0).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A record MM2 wrote that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("{what}: truncated")]
    Truncated { what: &'static str },
    #[error("{what}: string is not UTF-8")]
    Utf8 { what: &'static str },
    #[error("{what}: unsupported version {version}")]
    Version { what: &'static str, version: i16 },
    #[error("{what}: {extra} bytes after the end")]
    Trailing { what: &'static str, extra: usize },
}

fn put_string(buf: &mut BytesMut, s: &str) {
    // Kafka's STRING caps at i16::MAX bytes; longer names do not exist in Kafka.
    let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    buf.put_i16(bytes.len() as i16);
    buf.put_slice(bytes);
}

struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl Reader<'_> {
    fn need(&self, n: usize) -> Result<(), FormatError> {
        if self.buf.remaining() < n {
            Err(FormatError::Truncated { what: self.what })
        } else {
            Ok(())
        }
    }

    fn i16(&mut self) -> Result<i16, FormatError> {
        self.need(2)?;
        Ok(self.buf.get_i16())
    }

    fn i32(&mut self) -> Result<i32, FormatError> {
        self.need(4)?;
        Ok(self.buf.get_i32())
    }

    fn i64(&mut self) -> Result<i64, FormatError> {
        self.need(8)?;
        Ok(self.buf.get_i64())
    }

    fn string(&mut self) -> Result<String, FormatError> {
        let len = self.i16()?;
        let len = usize::try_from(len).map_err(|_| FormatError::Truncated { what: self.what })?;
        self.need(len)?;
        let s = std::str::from_utf8(&self.buf[..len])
            .map_err(|_| FormatError::Utf8 { what: self.what })?
            .to_owned();
        self.buf.advance(len);
        Ok(s)
    }

    fn version(&mut self) -> Result<(), FormatError> {
        match self.i16()? {
            0 => Ok(()),
            version => Err(FormatError::Version {
                what: self.what,
                version,
            }),
        }
    }

    fn end(&self) -> Result<(), FormatError> {
        match self.buf.remaining() {
            0 => Ok(()),
            extra => Err(FormatError::Trailing {
                what: self.what,
                extra,
            }),
        }
    }
}

fn reader<'a>(buf: &'a [u8], what: &'static str) -> Reader<'a> {
    Reader { buf, what }
}

/// MM2's `OffsetSync`: upstream offset `upstream` of `topic`/`partition` (source names) was
/// written at `downstream` on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetSync {
    pub topic: String,
    pub partition: i32,
    pub upstream: i64,
    pub downstream: i64,
}

impl OffsetSync {
    pub fn key(&self) -> Bytes {
        let mut buf = BytesMut::new();
        put_string(&mut buf, &self.topic);
        buf.put_i32(self.partition);
        buf.freeze()
    }

    pub fn value(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(16);
        buf.put_i64(self.upstream);
        buf.put_i64(self.downstream);
        buf.freeze()
    }

    pub fn decode(key: &[u8], value: &[u8]) -> Result<Self, FormatError> {
        let mut k = reader(key, "offset sync key");
        let topic = k.string()?;
        let partition = k.i32()?;
        k.end()?;
        let mut v = reader(value, "offset sync value");
        let upstream = v.i64()?;
        let downstream = v.i64()?;
        v.end()?;
        Ok(OffsetSync {
            topic,
            partition,
            upstream,
            downstream,
        })
    }
}

/// MM2's `Checkpoint`: `group` committed `upstream` on the source; `downstream` is its
/// translation on the target topic `topic` (the remote name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub upstream: i64,
    pub downstream: i64,
    pub metadata: String,
}

impl Checkpoint {
    pub fn key(&self) -> Bytes {
        let mut buf = BytesMut::new();
        put_string(&mut buf, &self.group);
        put_string(&mut buf, &self.topic);
        buf.put_i32(self.partition);
        buf.freeze()
    }

    pub fn value(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(0);
        buf.put_i64(self.upstream);
        buf.put_i64(self.downstream);
        put_string(&mut buf, &self.metadata);
        buf.freeze()
    }

    pub fn decode(key: &[u8], value: &[u8]) -> Result<Self, FormatError> {
        let mut k = reader(key, "checkpoint key");
        let group = k.string()?;
        let topic = k.string()?;
        let partition = k.i32()?;
        k.end()?;
        let mut v = reader(value, "checkpoint value");
        v.version()?;
        let upstream = v.i64()?;
        let downstream = v.i64()?;
        let metadata = v.string()?;
        Ok(Checkpoint {
            group,
            topic,
            partition,
            upstream,
            downstream,
            metadata,
        })
    }
}

/// MM2's `Heartbeat`: `source` → `target` was alive at `timestamp` (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub source: String,
    pub target: String,
    pub timestamp: i64,
}

impl Heartbeat {
    pub fn key(&self) -> Bytes {
        let mut buf = BytesMut::new();
        put_string(&mut buf, &self.source);
        put_string(&mut buf, &self.target);
        buf.freeze()
    }

    pub fn value(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(10);
        buf.put_i16(0);
        buf.put_i64(self.timestamp);
        buf.freeze()
    }

    pub fn decode(key: &[u8], value: &[u8]) -> Result<Self, FormatError> {
        let mut k = reader(key, "heartbeat key");
        let source = k.string()?;
        let target = k.string()?;
        k.end()?;
        let mut v = reader(value, "heartbeat value");
        v.version()?;
        let timestamp = v.i64()?;
        Ok(Heartbeat {
            source,
            target,
            timestamp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Byte vectors written out from MM2's schemas (OffsetSync.KEY_SCHEMA/VALUE_SCHEMA,
    // Checkpoint.KEY_SCHEMA/HEADER_SCHEMA/VALUE_SCHEMA_V0, Heartbeat likewise).

    #[test]
    fn offset_sync_bytes() {
        let sync = OffsetSync {
            topic: "orders".into(),
            partition: 3,
            upstream: 258,
            downstream: 0x0102_0304_0506,
        };
        let key: &[u8] = &[0, 6, b'o', b'r', b'd', b'e', b'r', b's', 0, 0, 0, 3];
        let value: &[u8] = &[0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 1, 2, 3, 4, 5, 6];
        assert_eq!(&sync.key()[..], key);
        assert_eq!(&sync.value()[..], value);
        assert_eq!(OffsetSync::decode(key, value).unwrap(), sync);
        assert!(matches!(
            OffsetSync::decode(&key[..5], value),
            Err(FormatError::Truncated { .. })
        ));
        assert!(matches!(
            OffsetSync::decode(key, &[value, &[0]].concat()),
            Err(FormatError::Trailing { extra: 1, .. })
        ));
    }

    #[test]
    fn checkpoint_bytes() {
        let checkpoint = Checkpoint {
            group: "g".into(),
            topic: "A.t".into(),
            partition: 0,
            upstream: 10,
            downstream: 7,
            metadata: "m".into(),
        };
        let key: &[u8] = &[0, 1, b'g', 0, 3, b'A', b'.', b't', 0, 0, 0, 0];
        let value: &[u8] = &[
            0, 0, // version 0
            0, 0, 0, 0, 0, 0, 0, 10, // upstreamOffset
            0, 0, 0, 0, 0, 0, 0, 7, // offset
            0, 1, b'm', // metadata
        ];
        assert_eq!(&checkpoint.key()[..], key);
        assert_eq!(&checkpoint.value()[..], value);
        assert_eq!(Checkpoint::decode(key, value).unwrap(), checkpoint);
        let mut v1 = value.to_vec();
        v1[1] = 1;
        assert_eq!(
            Checkpoint::decode(key, &v1),
            Err(FormatError::Version {
                what: "checkpoint value",
                version: 1
            })
        );
    }

    #[test]
    fn heartbeat_bytes() {
        let heartbeat = Heartbeat {
            source: "A".into(),
            target: "B".into(),
            timestamp: 1_700_000_000_000,
        };
        let key: &[u8] = &[0, 1, b'A', 0, 1, b'B'];
        let mut value = vec![0, 0];
        value.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        assert_eq!(&heartbeat.key()[..], key);
        assert_eq!(&heartbeat.value()[..], &value[..]);
        assert_eq!(Heartbeat::decode(key, &value).unwrap(), heartbeat);
        assert!(Heartbeat::decode(&[0, 9, b'A'], &value).is_err());
    }
}
