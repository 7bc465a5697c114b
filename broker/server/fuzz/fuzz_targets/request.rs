//! Fuzzes the whole request path after framing: header parsing, version checks, body decoding,
//! every handler and response encoding, against a real broker on a temporary log dir.
//! Run: `cd broker/server/fuzz && cargo fuzz run request` (see docs/testing.md).
#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use strait_broker::api::{Outcome, handle_frame};
use strait_broker::broker::Broker;

struct Harness {
    runtime: tokio::runtime::Runtime,
    broker: Arc<Broker>,
    _dir: tempfile::TempDir,
}

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("temp dir");
    let (config, _) = strait_config::BrokerConfig::load(
        None,
        &[format!("log.dirs={}", dir.path().display())],
    )
    .expect("config");
    let broker = Arc::new(Broker::open(config).expect("broker"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    Harness { runtime, broker, _dir: dir }
});

fuzz_target!(|data: &[u8]| {
    let h = &*HARNESS;
    let outcome = h.runtime.block_on(handle_frame(
        &h.broker,
        bytes::Bytes::copy_from_slice(data),
        &strait_broker::api::Origin::new("PLAINTEXT", None),
    ));
    // handle_frame turns a handler panic into a closed connection; for the fuzzer it is a bug.
    if let Outcome::Close(reason) = &outcome {
        assert!(!reason.starts_with("internal error"), "{reason}");
    }
});
