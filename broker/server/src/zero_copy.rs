//! Zero-copy fetch responses: on plaintext listeners, record data goes from the segment files to
//! the socket with `sendfile(2)` instead of being read into memory and copied out again.
//!
//! The response is still encoded by `kafka-protocol`, so every version and field stays its
//! business. Each partition's `records` is given a *marker*: a `Bytes` of the right length cut
//! from a reserved, never-written zero region, so the encoder writes the right length prefixes.
//! The encoder copies a `Bytes` field with one `put_slice`; [`SpliceBuf`] recognises a marker
//! slice by its address and, instead of copying it, remembers where in the frame the partition's
//! file regions go. The frame is then sent as parts: encoded bytes, file regions, encoded bytes.
//!
//! The marker region costs address space only: it is allocated zeroed (the allocator maps fresh
//! pages for a block this size) and never written or read, so no page of it becomes resident.
//! A response bigger than the region copies the partitions that do not fit, as TLS does.
//!
//! A region that became shorter after the plan (a follower truncating, retention deleting the
//! segment's tail) cannot be answered after its length was sent: the connection is closed and
//! the client retries, as Kafka does when `FileRecords.writeTo` fails.

use std::io;
use std::ops::Range;
use std::sync::OnceLock;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;
use strait_storage::FileRegion;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Address space reserved for markers: the most record bytes one response can send from files.
const MARKER_SPACE: usize = 256 * 1024 * 1024;

fn marker_space() -> &'static [u8] {
    static SPACE: OnceLock<&'static [u8]> = OnceLock::new();
    SPACE.get_or_init(|| Box::leak(vec![0u8; MARKER_SPACE].into_boxed_slice()))
}

/// A piece of a response frame.
#[derive(Debug)]
pub enum ResponsePart {
    Memory(Bytes),
    File(FileRegion),
}

/// The file regions of one response, each behind the marker that stands for it in the encoding.
#[derive(Default)]
pub struct Splices {
    /// (marker offset in the marker space, its length, its regions), in increasing offset.
    entries: Vec<(usize, usize, Vec<FileRegion>)>,
    used: usize,
}

impl Splices {
    /// The `records` value for a partition that returns `regions`: a marker when they fit in
    /// what is left of the marker space, else the bytes themselves.
    pub fn records(&mut self, regions: Vec<FileRegion>) -> io::Result<Bytes> {
        let len: usize = regions.iter().map(|r| r.len as usize).sum();
        if len == 0 {
            return Ok(Bytes::new());
        }
        if self.used + len > MARKER_SPACE {
            let mut buf = Vec::with_capacity(len);
            for region in &regions {
                region.read_to_vec(&mut buf)?;
            }
            return Ok(Bytes::from(buf));
        }
        let at = self.used;
        self.used += len;
        self.entries.push((at, len, regions));
        Ok(Bytes::from_static(&marker_space()[at..at + len]))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Record bytes that go from files.
    pub fn bytes(&self) -> u64 {
        self.used as u64
    }

    /// The entry `slice` is the marker of, if it is one.
    fn marker(&self, slice: &[u8]) -> Option<usize> {
        let space = marker_space().as_ptr_range();
        let ptr = slice.as_ptr();
        if slice.is_empty() || !space.contains(&ptr) {
            return None;
        }
        let at = ptr as usize - space.start as usize;
        let i = self.entries.binary_search_by_key(&at, |e| e.0).ok()?;
        (self.entries[i].1 == slice.len()).then_some(i)
    }
}

/// The encoder's output buffer: memory, plus the places where marked records go.
pub struct SpliceBuf {
    mem: BytesMut,
    splices: Splices,
    /// (offset in `mem`, entry of `splices`) for every marker the encoder wrote.
    at: Vec<(usize, usize)>,
}

impl SpliceBuf {
    pub fn new(capacity: usize, splices: Splices) -> SpliceBuf {
        SpliceBuf {
            mem: BytesMut::with_capacity(capacity),
            splices,
            at: Vec::new(),
        }
    }

    /// Bytes in the frame: memory plus every spliced region.
    pub fn frame_len(&self) -> usize {
        self.mem.len()
            + self
                .at
                .iter()
                .map(|(_, i)| self.splices.entries[*i].1)
                .sum::<usize>()
    }

    /// Overwrites `range` of the encoded memory (the frame's length prefix).
    pub fn patch(&mut self, range: Range<usize>, bytes: &[u8]) {
        self.mem[range].copy_from_slice(bytes);
    }

    /// The frame as parts in sending order.
    pub fn into_parts(self) -> Vec<ResponsePart> {
        let mut mem = self.mem.freeze();
        let mut entries: Vec<Option<Vec<FileRegion>>> = self
            .splices
            .entries
            .into_iter()
            .map(|(_, _, regions)| Some(regions))
            .collect();
        let mut parts = Vec::with_capacity(self.at.len() * 2 + 1);
        let mut taken = 0;
        for (offset, entry) in self.at {
            let head = mem.split_to(offset - taken);
            taken = offset;
            if !head.is_empty() {
                parts.push(ResponsePart::Memory(head));
            }
            for region in entries[entry].take().unwrap_or_default() {
                parts.push(ResponsePart::File(region));
            }
        }
        if !mem.is_empty() {
            parts.push(ResponsePart::Memory(mem));
        }
        parts
    }
}

// The only `unsafe` here: `BufMut` is an unsafe trait, and kafka-protocol's encoder writes into a
// `BufMut`. Intercepting its `put_slice` is what lets the records skip the copy.
// SAFETY: every method delegates to the inner `BytesMut`, whose implementation upholds
// `BufMut`'s contract (`chunk_mut` and `advance_mut` describe the same memory). `put_slice` only
// declines to copy a marker slice, which writes nothing, so nothing uninitialised is exposed.
#[allow(unsafe_code)]
unsafe impl BufMut for SpliceBuf {
    fn remaining_mut(&self) -> usize {
        self.mem.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of the chunk `chunk_mut` gave, which is
        // the inner buffer's own chunk.
        unsafe { self.mem.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.mem.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        match self.splices.marker(src) {
            Some(entry) => self.at.push((self.mem.len(), entry)),
            None => self.mem.put_slice(src),
        }
    }
}

impl ByteBufMut for SpliceBuf {
    fn offset(&self) -> usize {
        self.mem.len()
    }

    fn seek(&mut self, offset: usize) {
        self.mem.resize(offset, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        &mut self.mem[r]
    }
}

/// Where response parts can be written: file regions go with `sendfile` on a plain TCP socket,
/// through memory elsewhere (TLS encrypts in user space).
pub trait RegionSink: AsyncWrite + Unpin {
    fn send_region(&mut self, region: &FileRegion) -> impl Future<Output = io::Result<()>> + Send;
}

impl RegionSink for tokio::net::tcp::WriteHalf<'_> {
    async fn send_region(&mut self, region: &FileRegion) -> io::Result<()> {
        let stream: &tokio::net::TcpStream = self.as_ref();
        let mut offset = region.position;
        let mut left = region.len as usize;
        while left > 0 {
            stream.writable().await?;
            let sent = stream.try_io(tokio::io::Interest::WRITABLE, || {
                rustix::fs::sendfile(stream, &*region.file, Some(&mut offset), left)
                    .map_err(io::Error::from)
            });
            match sent {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "segment file shorter than the fetch planned (truncated meanwhile)",
                    ));
                }
                Ok(n) => left -= n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl<S: tokio::io::AsyncRead + AsyncWrite + Send> RegionSink for tokio::io::WriteHalf<S> {
    async fn send_region(&mut self, region: &FileRegion) -> io::Result<()> {
        let mut buf = Vec::with_capacity(region.len as usize);
        region.read_to_vec(&mut buf)?;
        self.write_all(&buf).await
    }
}

/// Writes a response given as parts.
pub async fn write_parts<W: RegionSink>(wr: &mut W, parts: &[ResponsePart]) -> io::Result<()> {
    for part in parts {
        match part {
            ResponsePart::Memory(bytes) => wr.write_all(bytes).await?,
            ResponsePart::File(region) => wr.send_region(region).await?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use kafka_protocol::messages::FetchResponse;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::protocol::Encodable;

    use super::*;

    fn region(file: &Arc<std::fs::File>, position: u64, len: u32) -> FileRegion {
        FileRegion {
            file: file.clone(),
            position,
            len,
        }
    }

    /// Every Fetch version encodes to the same bytes through markers and splices as with the
    /// records in memory.
    #[test]
    fn spliced_encoding_equals_the_copied_one() {
        let mut file = tempfile::tempfile().expect("temp file");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&data).expect("write");
        let file = Arc::new(file);
        let layout = [
            vec![(0u64, 100u32), (100, 50)],
            vec![],
            vec![(5_000, 4_000)],
        ];
        for version in 4..=16i16 {
            let mut splices = Splices::default();
            let mut spliced = Vec::new();
            let mut copied = Vec::new();
            for (i, regions) in layout.iter().enumerate() {
                let regions: Vec<FileRegion> =
                    regions.iter().map(|(p, l)| region(&file, *p, *l)).collect();
                let mut bytes = Vec::new();
                for r in &regions {
                    r.read_to_vec(&mut bytes).expect("read");
                }
                let pd = PartitionData::default().with_partition_index(i as i32);
                copied.push(pd.clone().with_records(Some(Bytes::from(bytes))));
                spliced.push(pd.with_records(Some(splices.records(regions).expect("marker"))));
            }
            let response = |partitions| {
                FetchResponse::default().with_responses(vec![
                    FetchableTopicResponse::default().with_partitions(partitions),
                ])
            };
            let mut expected = BytesMut::new();
            response(copied)
                .encode(&mut expected, version)
                .expect("encode copied");
            let mut buf = SpliceBuf::new(64, splices);
            response(spliced)
                .encode(&mut buf, version)
                .expect("encode spliced");
            assert_eq!(buf.frame_len(), expected.len(), "v{version}");
            let mut sent = Vec::new();
            for part in buf.into_parts() {
                match part {
                    ResponsePart::Memory(b) => sent.extend_from_slice(&b),
                    ResponsePart::File(r) => r.read_to_vec(&mut sent).expect("read"),
                }
            }
            assert_eq!(sent, expected.to_vec(), "v{version}");
        }
    }

    #[test]
    fn only_marker_slices_are_spliced() {
        let file = Arc::new(tempfile::tempfile().expect("temp file"));
        let mut splices = Splices::default();
        let marker = splices.records(vec![region(&file, 0, 8)]).expect("marker");
        assert_eq!(marker.len(), 8);
        assert_eq!(splices.marker(&marker), Some(0));
        // The same bytes elsewhere, or a part of the marker, are data to copy.
        assert_eq!(splices.marker(&[0u8; 8]), None);
        assert_eq!(splices.marker(&marker[..4]), None);
        assert_eq!(splices.marker(&marker[1..]), None);
        assert!(splices.records(Vec::new()).expect("empty").is_empty());
    }
}
