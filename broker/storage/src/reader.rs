//! Buffered positional reads of a segment file, used to walk batch headers (reads, timestamp
//! search, truncation) and whole batches (recovery) without a syscall per batch.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::LogError;
use crate::batch::{BatchHeader, HEADER_LEN};

/// Chunk size when only headers are needed.
pub(crate) const HEADER_CHUNK: usize = 16 * 1024;
/// Chunk size when whole batches are read (recovery).
pub(crate) const BATCH_CHUNK: usize = 1024 * 1024;

pub(crate) struct SegmentReader<'a> {
    file: &'a File,
    end: u64,
    chunk: usize,
    buf: Vec<u8>,
    buf_start: u64,
}

/// What lies at a position of a segment.
pub(crate) enum Step {
    Batch(BatchHeader),
    /// Exactly at the end of the readable range.
    End,
    /// Not a complete, well-framed batch (torn write, garbage, or a shorter file than expected).
    Invalid(String),
}

impl<'a> SegmentReader<'a> {
    /// Reads up to `end` bytes of `file`.
    pub fn new(file: &'a File, end: u64, chunk: usize) -> SegmentReader<'a> {
        SegmentReader {
            file,
            end,
            chunk,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    /// Bytes `[pos, pos + len)`, or None when they extend beyond the end or the file.
    pub fn get(&mut self, pos: u64, len: usize) -> io::Result<Option<&[u8]>> {
        let Some(stop) = pos.checked_add(len as u64) else {
            return Ok(None);
        };
        if stop > self.end {
            return Ok(None);
        }
        let buffered = pos >= self.buf_start && stop <= self.buf_start + self.buf.len() as u64;
        if !buffered {
            let want = (len.max(self.chunk) as u64).min(self.end - pos) as usize;
            self.buf.resize(want, 0);
            self.buf_start = pos;
            if let Err(e) = self.file.read_exact_at(&mut self.buf, pos) {
                self.buf.clear();
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    return Ok(None);
                }
                return Err(e);
            }
        }
        let from = (pos - self.buf_start) as usize;
        Ok(Some(&self.buf[from..from + len]))
    }

    /// The batch header at `pos`, checking the batch fits before the end.
    pub fn header_at(&mut self, pos: u64) -> io::Result<Step> {
        if pos == self.end {
            return Ok(Step::End);
        }
        let end = self.end;
        let Some(bytes) = self.get(pos, HEADER_LEN.min((end - pos) as usize))? else {
            return Ok(Step::Invalid(format!(
                "unreadable header at position {pos}"
            )));
        };
        let header = match BatchHeader::parse(bytes) {
            Ok(h) => h,
            Err(LogError::UnsupportedMagic(m)) => {
                return Ok(Step::Invalid(format!("magic {m} at position {pos}")));
            }
            Err(e) => return Ok(Step::Invalid(format!("{e} at position {pos}"))),
        };
        if u64::from(header.size) > end - pos {
            return Ok(Step::Invalid(format!(
                "batch at position {pos} of {} bytes extends past the end ({end})",
                header.size
            )));
        }
        Ok(Step::Batch(header))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn get_refills_and_stops_at_end() {
        let mut f = tempfile::tempfile().expect("tempfile");
        let data: Vec<u8> = (0..100u8).collect();
        f.write_all(&data).expect("write");
        let mut r = SegmentReader::new(&f, 90, 16);
        assert_eq!(r.get(0, 4).expect("io"), Some(&data[0..4]));
        assert_eq!(r.get(10, 20).expect("io"), Some(&data[10..30]));
        assert_eq!(r.get(85, 5).expect("io"), Some(&data[85..90]));
        assert_eq!(r.get(85, 6).expect("io"), None);
        let mut past = SegmentReader::new(&f, 200, 16);
        assert_eq!(past.get(95, 10).expect("io"), None);
        assert!(matches!(past.header_at(200).expect("io"), Step::End));
        assert!(matches!(past.header_at(0).expect("io"), Step::Invalid(_)));
    }
}
