//! File regions handed to the server, which reads (or sendfiles) them outside the log's lock.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// A byte range of a segment file, returned by reads so the server can pread or sendfile it.
#[derive(Clone, Debug)]
pub struct FileRegion {
    pub file: Arc<File>,
    pub position: u64,
    pub len: u32,
}

impl FileRegion {
    /// Appends the region's bytes to `out`. A file that became shorter (a concurrent truncation)
    /// gives `UnexpectedEof` rather than partial data.
    pub fn read_to_vec(&self, out: &mut Vec<u8>) -> io::Result<()> {
        let start = out.len();
        out.resize(start + self.len as usize, 0);
        let result = self.file.read_exact_at(&mut out[start..], self.position);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }
}
