//! Record batch compression codecs (attributes bits 0-2: none, gzip, snappy, lz4, zstd).
//! Compression goes through `kafka-protocol`'s compressors so the bytes match what Kafka clients
//! produce and expect. Decompression is bounded: a batch may not expand beyond
//! [`MAX_DECOMPRESSED`], so a small hostile batch (a "compression bomb") sent to a compacted topic
//! cannot exhaust the broker's memory. gzip, lz4 and zstd are streamed through a limit; snappy
//! (Kafka's xerial framing or raw) declares its sizes up front and is checked before it expands.

use std::io::Read;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};

use crate::LogError;

/// Largest uncompressed size of one batch's records. Kafka limits batches by their compressed
/// size (`max.message.bytes`, 1 MiB by default); real data rarely expands 100x.
pub(crate) const MAX_DECOMPRESSED: usize = 128 << 20;
/// Kafka's xerial snappy framing: magic, version, compatible version; then [len][block] chunks.
const XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

fn too_large() -> LogError {
    LogError::CorruptMessage(format!(
        "compressed batch expands beyond {MAX_DECOMPRESSED} bytes"
    ))
}

fn read_bounded(mut reader: impl Read) -> Result<Bytes, LogError> {
    let mut out = Vec::new();
    reader
        .by_ref()
        .take(MAX_DECOMPRESSED as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| LogError::CorruptMessage(format!("cannot decompress records: {e}")))?;
    if out.len() > MAX_DECOMPRESSED {
        return Err(too_large());
    }
    Ok(Bytes::from(out))
}

/// Total uncompressed size a snappy payload declares, without expanding it.
fn snappy_declared_len(data: &[u8]) -> Result<usize, LogError> {
    let corrupt = |what: &str| LogError::CorruptMessage(format!("bad snappy data: {what}"));
    if !data.starts_with(XERIAL_HEADER) {
        return snap::raw::decompress_len(data).map_err(|_| corrupt("raw header"));
    }
    let mut rest = &data[XERIAL_HEADER.len()..];
    let mut total = 0usize;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(corrupt("truncated chunk length"));
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let chunk = rest
            .get(4..4 + len)
            .ok_or_else(|| corrupt("truncated chunk"))?;
        total = total
            .saturating_add(snap::raw::decompress_len(chunk).map_err(|_| corrupt("chunk header"))?);
        rest = &rest[4 + len..];
    }
    Ok(total)
}

const GZIP: i16 = 1;
const SNAPPY: i16 = 2;
const LZ4: i16 = 3;
const ZSTD: i16 = 4;

/// Uncompressed record bytes of a batch body compressed with `codec`.
pub(crate) fn decompress(codec: i16, data: &[u8]) -> Result<Bytes, LogError> {
    let corrupt =
        |e: std::io::Error| LogError::CorruptMessage(format!("cannot decompress records: {e}"));
    match codec {
        0 => Ok(Bytes::copy_from_slice(data)),
        GZIP => read_bounded(flate2::read::GzDecoder::new(data)),
        LZ4 => read_bounded(lz4::Decoder::new(data).map_err(corrupt)?),
        ZSTD => read_bounded(zstd::stream::read::Decoder::new(data).map_err(corrupt)?),
        SNAPPY => {
            if snappy_declared_len(data)? > MAX_DECOMPRESSED {
                return Err(too_large());
            }
            let mut input = Bytes::copy_from_slice(data);
            Snappy::decompress(&mut input, |b| Ok(b.copy_to_bytes(b.remaining())))
                .map_err(|e| LogError::CorruptMessage(format!("cannot decompress records: {e:#}")))
        }
        other => Err(LogError::CorruptMessage(format!(
            "unknown compression codec {other}"
        ))),
    }
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

#[cfg(test)]
mod bound_tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let records: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect();
        for codec in [GZIP, SNAPPY, LZ4, ZSTD] {
            let packed = compress(codec, &records).unwrap();
            assert_eq!(
                &decompress(codec, &packed).unwrap()[..],
                &records[..],
                "codec {codec}"
            );
        }
    }

    #[test]
    fn compression_bombs_are_refused() {
        // Highly compressible input just past the limit: a few hundred KiB compressed.
        let bomb = vec![0u8; MAX_DECOMPRESSED + 1];
        for codec in [GZIP, SNAPPY, LZ4, ZSTD] {
            let packed = compress(codec, &bomb).unwrap();
            assert!(
                packed.len() < MAX_DECOMPRESSED / 8,
                "codec {codec} did not compress"
            );
            match decompress(codec, &packed) {
                Err(LogError::CorruptMessage(m)) => {
                    assert!(m.contains("expands beyond"), "codec {codec}: {m}")
                }
                other => panic!(
                    "codec {codec}: expected refusal, got {:?}",
                    other.map(|b| b.len())
                ),
            }
        }
    }
}
