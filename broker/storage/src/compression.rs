//! Record batch compression codecs (attributes bits 0-2: none, gzip, snappy, lz4, zstd), through
//! `kafka-protocol`'s compressors so the bytes match what Kafka clients produce and expect.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};

use crate::LogError;

const GZIP: i16 = 1;
const SNAPPY: i16 = 2;
const LZ4: i16 = 3;
const ZSTD: i16 = 4;

/// Uncompressed record bytes of a batch body compressed with `codec`.
pub(crate) fn decompress(codec: i16, data: &[u8]) -> Result<Bytes, LogError> {
    let mut input = Bytes::copy_from_slice(data);
    let result = match codec {
        0 => return Ok(input),
        GZIP => Gzip::decompress(&mut input, |b| Ok(b.copy_to_bytes(b.remaining()))),
        SNAPPY => Snappy::decompress(&mut input, |b| Ok(b.copy_to_bytes(b.remaining()))),
        LZ4 => Lz4::decompress(&mut input, |b| Ok(b.copy_to_bytes(b.remaining()))),
        ZSTD => Zstd::decompress(&mut input, |b| Ok(b.copy_to_bytes(b.remaining()))),
        other => {
            return Err(LogError::CorruptMessage(format!(
                "unknown compression codec {other}"
            )));
        }
    };
    result.map_err(|e| LogError::CorruptMessage(format!("cannot decompress records: {e:#}")))
}

/// `records` compressed with `codec`.
pub(crate) fn compress(codec: i16, records: &[u8]) -> Result<Vec<u8>, LogError> {
    let mut out = BytesMut::new();
    let fill = |b: &mut BytesMut| {
        b.put_slice(records);
        Ok(())
    };
    let result = match codec {
        0 => return Ok(records.to_vec()),
        GZIP => Gzip::compress(&mut out, fill),
        SNAPPY => Snappy::compress(&mut out, fill),
        LZ4 => Lz4::compress(&mut out, fill),
        ZSTD => Zstd::compress(&mut out, fill),
        other => {
            return Err(LogError::CorruptMessage(format!(
                "unknown compression codec {other}"
            )));
        }
    };
    result.map_err(|e| LogError::CorruptMessage(format!("cannot compress records: {e:#}")))?;
    Ok(out.to_vec())
}
