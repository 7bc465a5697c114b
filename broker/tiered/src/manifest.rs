//! The small JSON object written after all of a segment's other objects: its presence means the
//! upload completed, and its sizes and CRC32C checksums let a reader check what it fetches.

use serde::{Deserialize, Serialize};

use crate::layout::ObjectKind;

/// One uploaded object of a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ManifestObject {
    /// The object's suffix (`log`, `index`, ...).
    pub kind: String,
    pub size: u64,
    /// CRC32C (Castagnoli) of the whole object.
    pub crc32c: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub version: u32,
    pub topic: String,
    /// Kafka text form.
    pub topic_id: String,
    pub partition: i32,
    pub base_offset: i64,
    pub segment_id: String,
    pub objects: Vec<ManifestObject>,
}

pub(crate) const MANIFEST_VERSION: u32 = 1;

impl Manifest {
    pub fn object(&self, kind: ObjectKind) -> Option<&ManifestObject> {
        self.objects.iter().find(|o| o.kind == kind.suffix())
    }

    pub fn log_size(&self) -> Option<u64> {
        self.object(ObjectKind::Log).map(|o| o.size)
    }
}
