//! openraft's storage conformance suite run against the on-disk log store and state machine,
//! plus the torn-tail recovery of the log file.

use std::sync::Arc;

use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use tokio::sync::watch;

use super::durable::test_reserve;
use super::log_store::LogStore;
use super::state_machine::StateMachine;
use super::{NodeId, TypeConfig};
use crate::image::Image;

struct DiskBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for DiskBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<NodeId>> {
        let io = |e: std::io::Error| StorageError::from(openraft::StorageIOError::write(&e));
        let dir = tempfile::tempdir().map_err(io)?;
        let log = LogStore::open(dir.path(), test_reserve(dir.path())).map_err(io)?;
        let (tx, _rx) = watch::channel(Arc::new(Image::default()));
        let sm =
            StateMachine::open(dir.path(), Arc::new(tx), test_reserve(dir.path())).map_err(io)?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    if let Err(e) = Suite::test_all(DiskBuilder) {
        panic!("openraft's storage suite failed: {e}");
    }
}
