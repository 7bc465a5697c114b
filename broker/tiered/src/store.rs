//! The remote store: uploads a closed segment's files as objects, deletes them, and serves
//! reads (record batches by offset, offsets by timestamp, indexes) through bounded caches, with
//! retries, concurrency limits and byte-rate caps.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use futures::stream::{FuturesUnordered, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::cache::{ByteCache, CacheKey};
use crate::config::{Backend, RemoteStorageConfig};
use crate::error::TieredError;
use crate::format::{self, BATCH_HEADER_LEN, LOG_OVERHEAD};
use crate::layout::{self, IndexKind, ObjectKind, SegmentKey};
use crate::manifest::{MANIFEST_VERSION, Manifest, ManifestObject};
use crate::stats::{Stats, StatsSnapshot};
use crate::throttle::Throttle;

/// Log objects are read and cached in chunks of this size (ranged GETs).
pub const CHUNK_BYTES: u64 = 4 * 1024 * 1024;
/// Chunks fetched ahead of a read, so a consumer reading on finds them in memory: a few GETs
/// in flight hide the store's latency.
const READ_AHEAD_CHUNKS: u64 = 4;
/// Files above this size are uploaded in parts.
const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
/// Part size of multipart uploads (S3's minimum is 5 MiB).
const PART_BYTES: usize = 8 * 1024 * 1024;
/// Parts of one file in flight at once.
const PARTS_IN_FLIGHT: usize = 4;
/// Attempts of one object upload on retriable errors (each attempt has object_store's own
/// request retries inside).
const UPLOAD_ATTEMPTS: u32 = 3;
const UPLOAD_BACKOFF: Duration = Duration::from_millis(200);
/// Indexes and manifests kept in memory: a share of the chunk cache, at least 16 MiB.
const MIN_META_CACHE: u64 = 16 * 1024 * 1024;
/// Longest wait for removing a failed upload's objects.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Cache key chunk number of a whole object.
const WHOLE: u64 = u64::MAX;

/// The local files of one closed segment plus the state files KIP-405 uploads with it.
#[derive(Debug, Clone)]
pub struct SegmentFiles {
    pub log: PathBuf,
    pub offset_index: PathBuf,
    pub time_index: PathBuf,
    pub txn_index: Option<PathBuf>,
    pub producer_snapshot: Option<Bytes>,
    pub leader_epoch_checkpoint: Bytes,
}

type Flight = Shared<BoxFuture<'static, Result<Bytes, Arc<TieredError>>>>;

struct Inner {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// The S3 bucket, for error messages.
    bucket: Option<String>,
    copy_throttle: Throttle,
    fetch_throttle: Throttle,
    uploads: Semaphore,
    reads: Semaphore,
    chunks: ByteCache,
    meta: ByteCache,
    /// Chunk and object fetches under way, so concurrent readers (and read-ahead) share one GET.
    flights: Mutex<HashMap<CacheKey, Flight>>,
    stats: Stats,
}

/// A handle on the remote store; cheap to clone.
#[derive(Clone)]
pub struct RemoteStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RemoteStore({}, prefix {:?})",
            self.inner.store, self.inner.prefix
        )
    }
}

fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(20),
    }
}

/// With virtual-hosted requests object_store wants the bucket in the endpoint's host; Aiven's
/// endpoint setting never has it.
fn virtual_hosted_endpoint(endpoint: &str, bucket: &str) -> String {
    match endpoint.split_once("://") {
        Some((scheme, rest)) if !rest.starts_with(&format!("{bucket}.")) => {
            format!("{scheme}://{bucket}.{rest}")
        }
        _ => endpoint.to_string(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl RemoteStore {
    /// Opens the store `cfg` describes. Nothing is sent yet: a wrong endpoint, credentials or
    /// bucket shows up as the first operation's error.
    pub fn new(cfg: &RemoteStorageConfig) -> Result<RemoteStore, TieredError> {
        let (store, bucket): (Arc<dyn ObjectStore>, Option<String>) = match &cfg.backend {
            Backend::Filesystem { root } => {
                std::fs::create_dir_all(root).map_err(|e| {
                    TieredError::Config(format!("rsm.config.storage.root {}: {e}", root.display()))
                })?;
                let fs = LocalFileSystem::new_with_prefix(root).map_err(|e| {
                    TieredError::Config(format!("rsm.config.storage.root {}: {e}", root.display()))
                })?;
                (Arc::new(fs), None)
            }
            Backend::S3 {
                bucket,
                endpoint,
                region,
                path_style,
                access_key_id,
                secret_access_key,
            } => {
                install_crypto_provider();
                let mut options = ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(60));
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_virtual_hosted_style_request(!path_style)
                    .with_retry(retry_config());
                if let Some(endpoint) = endpoint {
                    if endpoint.starts_with("http://") {
                        options = options.with_allow_http(true);
                    }
                    let endpoint = if *path_style {
                        endpoint.clone()
                    } else {
                        virtual_hosted_endpoint(endpoint, bucket)
                    };
                    builder = builder.with_endpoint(endpoint);
                }
                if let (Some(id), Some(secret)) = (access_key_id, secret_access_key) {
                    builder = builder
                        .with_access_key_id(id)
                        .with_secret_access_key(secret);
                }
                let s3 = builder
                    .with_client_options(options)
                    .build()
                    .map_err(|e| TieredError::Config(format!("S3 store: {e}")))?;
                (Arc::new(s3), Some(bucket.clone()))
            }
        };
        let meta_cache = (cfg.cache_bytes / 8).max(MIN_META_CACHE);
        Ok(RemoteStore {
            inner: Arc::new(Inner {
                store,
                prefix: cfg.key_prefix.clone(),
                bucket,
                copy_throttle: Throttle::new(cfg.copy_bytes_per_sec),
                fetch_throttle: Throttle::new(cfg.fetch_bytes_per_sec),
                uploads: Semaphore::new(cfg.upload_concurrency.max(1)),
                reads: Semaphore::new(cfg.read_concurrency.max(1)),
                chunks: ByteCache::new(cfg.cache_bytes),
                meta: ByteCache::new(meta_cache),
                flights: Mutex::new(HashMap::new()),
                stats: Stats::default(),
            }),
        })
    }

    /// The traffic counters so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    fn name(&self, key: &SegmentKey, kind: ObjectKind) -> String {
        layout::object_name(&self.inner.prefix, key, kind)
    }

    fn err(&self, op: &'static str, name: &str, e: object_store::Error) -> TieredError {
        TieredError::from_store(op, name, self.inner.bucket.as_deref(), e)
    }

    /// Uploads every object of the segment (indexes and state files first, the log
    /// last-but-one, a small manifest last, so a manifest's presence means complete). Large files
    /// go up in parts; retriable failures are retried with exponential backoff; the upload
    /// concurrency and copy rate cap apply. Returns the bytes uploaded. On failure, deletes what
    /// it put (best effort) and returns the error.
    pub async fn copy_segment(
        &self,
        key: &SegmentKey,
        files: &SegmentFiles,
    ) -> Result<u64, TieredError> {
        Stats::add(&self.inner.stats.copy_requests, 1);
        let result = match self.inner.uploads.acquire().await {
            Ok(_permit) => self.copy_objects(key, files).await,
            Err(_) => Err(TieredError::Config("remote store closed".into())),
        };
        match result {
            Ok(bytes) => {
                Stats::add(&self.inner.stats.bytes_copied, bytes);
                Ok(bytes)
            }
            Err(e) => {
                Stats::add(&self.inner.stats.copy_errors, 1);
                tracing::warn!(
                    topic = %key.topic, partition = key.partition, base_offset = key.base_offset,
                    "remote copy failed, removing partial upload: {e}"
                );
                // Bounded: with the store down this cannot succeed, and list_partition shows
                // what is left (no manifest) for the orphan cleanup.
                match tokio::time::timeout(CLEANUP_TIMEOUT, self.delete_segment(key)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(cleanup)) => {
                        tracing::warn!("removing partial upload failed: {cleanup}")
                    }
                    Err(_) => tracing::warn!("removing partial upload timed out"),
                }
                Err(e)
            }
        }
    }

    async fn copy_objects(
        &self,
        key: &SegmentKey,
        files: &SegmentFiles,
    ) -> Result<u64, TieredError> {
        let mut objects = vec![
            self.upload_file_object(
                key,
                ObjectKind::Index(IndexKind::Offset),
                &files.offset_index,
            )
            .await?,
            self.upload_file_object(key, ObjectKind::Index(IndexKind::Time), &files.time_index)
                .await?,
        ];
        if let Some(txn) = &files.txn_index {
            objects.push(
                self.upload_file_object(key, ObjectKind::Index(IndexKind::Transaction), txn)
                    .await?,
            );
        }
        let mut memory: Vec<(ObjectKind, &Bytes)> = Vec::new();
        if let Some(snapshot) = &files.producer_snapshot {
            memory.push((ObjectKind::Index(IndexKind::ProducerSnapshot), snapshot));
        }
        memory.push((
            ObjectKind::Index(IndexKind::LeaderEpoch),
            &files.leader_epoch_checkpoint,
        ));
        for (kind, data) in memory {
            let name = self.name(key, kind);
            self.with_retries("upload", &name, || self.upload_bytes(&name, data.clone()))
                .await?;
            objects.push(ManifestObject {
                kind: kind.suffix().to_string(),
                size: data.len() as u64,
                crc32c: crc32c::crc32c(data),
            });
        }
        objects.push(
            self.upload_file_object(key, ObjectKind::Log, &files.log)
                .await?,
        );
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            topic: key.topic.clone(),
            topic_id: layout::kafka_uuid(key.topic_id),
            partition: key.partition,
            base_offset: key.base_offset,
            segment_id: layout::kafka_uuid(key.segment_id),
            objects,
        };
        let body = Bytes::from(
            serde_json::to_vec(&manifest)
                .map_err(|e| TieredError::Config(format!("manifest encoding: {e}")))?,
        );
        let total = manifest.objects.iter().map(|o| o.size).sum::<u64>() + body.len() as u64;
        let name = self.name(key, ObjectKind::Manifest);
        self.with_retries("upload", &name, || self.upload_bytes(&name, body.clone()))
            .await?;
        Ok(total)
    }

    async fn upload_file_object(
        &self,
        key: &SegmentKey,
        kind: ObjectKind,
        path: &FsPath,
    ) -> Result<ManifestObject, TieredError> {
        let name = self.name(key, kind);
        let (size, crc32c) = self
            .with_retries("upload", &name, || self.upload_file(&name, path))
            .await?;
        Ok(ManifestObject {
            kind: kind.suffix().to_string(),
            size,
            crc32c,
        })
    }

    /// Runs `attempt` until it succeeds, fails permanently, or `UPLOAD_ATTEMPTS` are used.
    async fn with_retries<T, F, Fut>(
        &self,
        what: &str,
        name: &str,
        mut attempt: F,
    ) -> Result<T, TieredError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, TieredError>>,
    {
        let mut backoff = UPLOAD_BACKOFF;
        let mut tries = 1;
        loop {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retriable() && tries < UPLOAD_ATTEMPTS => {
                    tracing::debug!("{what} {name} failed (attempt {tries}), retrying: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    tries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn upload_bytes(&self, name: &str, data: Bytes) -> Result<(), TieredError> {
        self.inner.copy_throttle.acquire(data.len() as u64).await;
        self.inner
            .store
            .put(&Path::from(name), PutPayload::from_bytes(data))
            .await
            .map_err(|e| self.err("put", name, e))?;
        Ok(())
    }

    /// Uploads a local file; returns its size and CRC32C.
    async fn upload_file(&self, name: &str, path: &FsPath) -> Result<(u64, u32), TieredError> {
        let local = |source| TieredError::LocalIo {
            path: path.display().to_string(),
            source,
        };
        let mut file = tokio::fs::File::open(path).await.map_err(local)?;
        let size = file.metadata().await.map_err(local)?.len();
        if size <= MULTIPART_THRESHOLD {
            let mut data = Vec::with_capacity(size as usize);
            file.read_to_end(&mut data).await.map_err(local)?;
            let crc = crc32c::crc32c(&data);
            let len = data.len() as u64;
            self.upload_bytes(name, Bytes::from(data)).await?;
            return Ok((len, crc));
        }
        let location = Path::from(name);
        let mut upload = self
            .inner
            .store
            .put_multipart(&location)
            .await
            .map_err(|e| self.err("put_multipart", name, e))?;
        let mut crc = 0u32;
        let mut total = 0u64;
        let mut parts = FuturesUnordered::new();
        let result: Result<(), TieredError> = async {
            loop {
                let mut part = Vec::with_capacity(PART_BYTES);
                while part.len() < PART_BYTES {
                    let n = (&mut file)
                        .take((PART_BYTES - part.len()) as u64)
                        .read_to_end(&mut part)
                        .await
                        .map_err(local)?;
                    if n == 0 {
                        break;
                    }
                }
                if part.is_empty() {
                    break;
                }
                crc = crc32c::crc32c_append(crc, &part);
                total += part.len() as u64;
                self.inner.copy_throttle.acquire(part.len() as u64).await;
                parts.push(upload.put_part(PutPayload::from(part)));
                if parts.len() >= PARTS_IN_FLIGHT
                    && let Some(done) = parts.next().await
                {
                    done.map_err(|e| self.err("put_part", name, e))?;
                }
            }
            while let Some(done) = parts.next().await {
                done.map_err(|e| self.err("put_part", name, e))?;
            }
            Ok(())
        }
        .await;
        drop(parts);
        match result {
            Ok(()) => {
                upload
                    .complete()
                    .await
                    .map_err(|e| self.err("complete_multipart", name, e))?;
                Ok((total, crc))
            }
            Err(e) => {
                let _ = upload.abort().await;
                Err(e)
            }
        }
    }

    /// Deletes every object of the segment, the manifest first (so a half-deleted segment reads
    /// as incomplete, never as complete with parts missing). Missing objects are fine.
    pub async fn delete_segment(&self, key: &SegmentKey) -> Result<(), TieredError> {
        let manifest = self.name(key, ObjectKind::Manifest);
        self.delete_object(&manifest).await?;
        for kind in ObjectKind::ALL {
            if kind != ObjectKind::Manifest {
                self.delete_object(&self.name(key, kind)).await?;
            }
        }
        let stem = manifest.trim_end_matches(ObjectKind::Manifest.suffix());
        self.inner.chunks.remove_prefix(stem);
        self.inner.meta.remove_prefix(stem);
        Ok(())
    }

    async fn delete_object(&self, name: &str) -> Result<(), TieredError> {
        match self.inner.store.delete(&Path::from(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err("delete", name, e)),
        }
    }

    /// A whole small object (index, manifest), cached; with `expected`, a fetched object whose
    /// size or CRC32C differ is refused (and not cached).
    async fn object(
        &self,
        name: String,
        expected: Option<ManifestObject>,
    ) -> Result<Bytes, TieredError> {
        let key = (name, WHOLE);
        if let Some(hit) = self.inner.meta.get(&key) {
            Stats::add(&self.inner.stats.cache_hits, 1);
            return Ok(hit);
        }
        let this = self.clone();
        self.shared_fetch(&self.inner.meta, key.clone(), async move {
            let name = &key.0;
            let _permit = this.inner.reads.acquire().await;
            let data = async {
                this.inner
                    .store
                    .get(&Path::from(name.as_str()))
                    .await?
                    .bytes()
                    .await
            }
            .await
            .map_err(|e| this.err("get", name, e))?;
            this.inner.fetch_throttle.acquire(data.len() as u64).await;
            Stats::add(&this.inner.stats.cache_misses, 1);
            Stats::add(&this.inner.stats.bytes_fetched, data.len() as u64);
            if let Some(expected) = expected {
                let crc = crc32c::crc32c(&data);
                if data.len() as u64 != expected.size || crc != expected.crc32c {
                    return Err(TieredError::Corrupt {
                        path: name.clone(),
                        reason: format!(
                            "{} bytes, crc {crc:08x}; the manifest says {} bytes, crc {:08x}",
                            data.len(),
                            expected.size,
                            expected.crc32c
                        ),
                    });
                }
            }
            this.inner.meta.insert(key, data.clone());
            Ok(data)
        })
        .await
    }

    /// Runs `fetch` once for `key` however many callers ask at the same time.
    async fn shared_fetch(
        &self,
        cache: &ByteCache,
        key: CacheKey,
        fetch: impl Future<Output = Result<Bytes, TieredError>> + Send + 'static,
    ) -> Result<Bytes, TieredError> {
        let flight = {
            let mut flights = lock(&self.inner.flights);
            // A fetch that finished since the caller looked has filled the cache (it inserts
            // before it leaves `flights`).
            if let Some(hit) = cache.get(&key) {
                Stats::add(&self.inner.stats.cache_hits, 1);
                return Ok(hit);
            }
            match flights.get(&key) {
                Some(f) => f.clone(),
                None => {
                    let inner = Arc::clone(&self.inner);
                    let k = key.clone();
                    let f = async move {
                        let result = fetch.await.map_err(Arc::new);
                        lock(&inner.flights).remove(&k);
                        result
                    }
                    .boxed()
                    .shared();
                    flights.insert(key, f.clone());
                    f
                }
            }
        };
        flight.await.map_err(TieredError::from_shared)
    }

    async fn manifest(&self, key: &SegmentKey) -> Result<Manifest, TieredError> {
        let name = self.name(key, ObjectKind::Manifest);
        let raw = self.object(name.clone(), None).await?;
        let manifest: Manifest =
            serde_json::from_slice(&raw).map_err(|e| TieredError::Corrupt {
                path: name.clone(),
                reason: format!("manifest: {e}"),
            })?;
        if manifest.base_offset != key.base_offset || manifest.partition != key.partition {
            return Err(TieredError::Corrupt {
                path: name,
                reason: "manifest is of another segment".into(),
            });
        }
        Ok(manifest)
    }

    /// An index or state file of a complete segment, checked against the manifest and cached.
    /// An optional file the segment was uploaded without (transaction index, producer snapshot)
    /// is empty.
    pub async fn fetch_index(
        &self,
        key: &SegmentKey,
        kind: IndexKind,
    ) -> Result<Bytes, TieredError> {
        let result = self.fetch_index_inner(key, kind).await;
        if result.is_err() {
            Stats::add(&self.inner.stats.fetch_errors, 1);
        }
        result
    }

    async fn fetch_index_inner(
        &self,
        key: &SegmentKey,
        kind: IndexKind,
    ) -> Result<Bytes, TieredError> {
        let manifest = self.manifest(key).await?;
        let object = ObjectKind::Index(kind);
        let Some(expected) = manifest.object(object).cloned() else {
            return Ok(Bytes::new());
        };
        let name = self.name(key, object);
        self.object(name, Some(expected)).await
    }

    /// One chunk of a log object, cached.
    async fn chunk(&self, name: &str, size: u64, index: u64) -> Result<Bytes, TieredError> {
        let key = (name.to_string(), index);
        if let Some(hit) = self.inner.chunks.get(&key) {
            Stats::add(&self.inner.stats.cache_hits, 1);
            return Ok(hit);
        }
        let this = self.clone();
        self.shared_fetch(&self.inner.chunks, key.clone(), async move {
            let start = index * CHUNK_BYTES;
            let end = (start + CHUNK_BYTES).min(size);
            let _permit = this.inner.reads.acquire().await;
            let data = this
                .inner
                .store
                .get_range(&Path::from(key.0.as_str()), start..end)
                .await
                .map_err(|e| this.err("get_range", &key.0, e))?;
            if data.len() as u64 != end - start {
                return Err(TieredError::Corrupt {
                    path: key.0.clone(),
                    reason: format!(
                        "range {start}..{end} returned {} bytes (object shorter than its manifest?)",
                        data.len()
                    ),
                });
            }
            this.inner.fetch_throttle.acquire(data.len() as u64).await;
            Stats::add(&this.inner.stats.cache_misses, 1);
            Stats::add(&this.inner.stats.bytes_fetched, data.len() as u64);
            this.inner.chunks.insert(key, data.clone());
            Ok(data)
        })
        .await
    }

    /// Starts fetching chunk `index` in the background unless it is cached or under way: a
    /// consumer reading on sequentially finds it in memory.
    fn read_ahead(&self, name: &str, size: u64, index: u64) {
        if index * CHUNK_BYTES >= size {
            return;
        }
        let key = (name.to_string(), index);
        if self.inner.chunks.contains(&key) || lock(&self.inner.flights).contains_key(&key) {
            return;
        }
        let this = self.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            if let Err(e) = this.chunk(&name, size, index).await {
                tracing::debug!("remote read-ahead of {name} chunk {index} failed: {e}");
            }
        });
    }

    /// Bytes `start..end` of a log object of `size` bytes, through the chunk cache.
    async fn read_range(
        &self,
        name: &str,
        size: u64,
        start: u64,
        end: u64,
    ) -> Result<Bytes, TieredError> {
        let end = end.min(size);
        if start >= end {
            return Ok(Bytes::new());
        }
        let first = start / CHUNK_BYTES;
        let last = (end - 1) / CHUNK_BYTES;
        let chunks =
            futures::future::try_join_all((first..=last).map(|i| self.chunk(name, size, i)))
                .await?;
        let offset_in_first = (start - first * CHUNK_BYTES) as usize;
        let len = (end - start) as usize;
        if chunks.len() == 1 {
            return Ok(chunks[0].slice(offset_in_first..offset_in_first + len));
        }
        let mut out = BytesMut::with_capacity(len);
        for (i, chunk) in chunks.iter().enumerate() {
            let from = if i == 0 { offset_in_first } else { 0 };
            let to = chunk.len().min(from + (len - out.len()));
            out.extend_from_slice(&chunk[from..to]);
        }
        Ok(out.freeze())
    }

    /// The batch header at `pos`, or `None` at the end of the log.
    async fn header_at(
        &self,
        name: &str,
        size: u64,
        pos: u64,
    ) -> Result<Option<format::BatchHeader>, TieredError> {
        if pos + (BATCH_HEADER_LEN as u64) > size {
            return Ok(None);
        }
        let raw = self
            .read_range(name, size, pos, pos + BATCH_HEADER_LEN as u64)
            .await?;
        let header = format::parse_batch_header(&raw).map_err(|reason| TieredError::Corrupt {
            path: name.to_string(),
            reason: format!("at position {pos}: {reason}"),
        })?;
        if pos + u64::from(header.size) > size {
            return Err(TieredError::Corrupt {
                path: name.to_string(),
                reason: format!(
                    "batch at position {pos} of {} bytes runs past the end ({size})",
                    header.size
                ),
            });
        }
        Ok(Some(header))
    }

    /// Position of the first batch that holds an offset >= `offset` (its header), found via the
    /// offset index and a walk of batch headers; `None` when the segment ends before.
    async fn seek(
        &self,
        key: &SegmentKey,
        name: &str,
        size: u64,
        offset: i64,
    ) -> Result<Option<(u64, format::BatchHeader)>, TieredError> {
        let index = self.fetch_index_inner(key, IndexKind::Offset).await?;
        let mut pos = u64::from(format::offset_index_lookup(&index, key.base_offset, offset));
        while let Some(header) = self.header_at(name, size, pos).await? {
            if header.last_offset() >= offset {
                return Ok(Some((pos, header)));
            }
            pos += u64::from(header.size);
        }
        Ok(None)
    }

    /// Record batches of the remote segment starting at the batch that contains `offset`, at
    /// most `max_bytes` but always at least one whole batch (as Kafka does when the first batch
    /// is larger than `max_bytes`), ending at a batch boundary. Empty when the segment has no
    /// offset >= `offset`. Served through the chunk cache (ranged GETs of [`CHUNK_BYTES`]) and
    /// the fetch rate cap.
    pub async fn read(
        &self,
        key: &SegmentKey,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Bytes, TieredError> {
        Stats::add(&self.inner.stats.fetch_requests, 1);
        let result = self.read_inner(key, offset, max_bytes).await;
        if let Err(e) = &result {
            Stats::add(&self.inner.stats.fetch_errors, 1);
            tracing::warn!(
                topic = %key.topic, partition = key.partition, base_offset = key.base_offset,
                "remote read at offset {offset} failed: {e}"
            );
        }
        result
    }

    async fn read_inner(
        &self,
        key: &SegmentKey,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Bytes, TieredError> {
        let manifest = self.manifest(key).await?;
        let name = self.name(key, ObjectKind::Log);
        let size = manifest.log_size().ok_or_else(|| TieredError::Corrupt {
            path: name.clone(),
            reason: "manifest lists no log".into(),
        })?;
        let Some((start, first)) = self.seek(key, &name, size, offset).await? else {
            return Ok(Bytes::new());
        };
        let limit = start.saturating_add((max_bytes as u64).max(u64::from(first.size)));
        let mut end = start + u64::from(first.size);
        // Walk further batch headers while the next whole batch still fits.
        while end + (LOG_OVERHEAD as u64) <= size && end < limit {
            let raw = self
                .read_range(&name, size, end, end + LOG_OVERHEAD as u64)
                .await?;
            let length = i32::from_be_bytes([raw[8], raw[9], raw[10], raw[11]]);
            let batch = u64::try_from(length).unwrap_or(0) + LOG_OVERHEAD as u64;
            if length < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 || end + batch > size {
                return Err(TieredError::Corrupt {
                    path: name,
                    reason: format!("invalid batch length {length} at position {end}"),
                });
            }
            if end + batch > limit {
                break;
            }
            end += batch;
        }
        let data = self.read_range(&name, size, start, end).await?;
        let next = (end - 1) / CHUNK_BYTES + 1;
        for index in next..next + READ_AHEAD_CHUNKS {
            self.read_ahead(&name, size, index);
        }
        Ok(data)
    }

    /// The first record (offset, timestamp) of this segment whose timestamp is >= `ts`, using
    /// the remote time index, then a walk of batch headers to the first batch whose max
    /// timestamp is >= `ts`. Within an uncompressed batch the exact record is found; a
    /// compressed batch answers its base offset and max timestamp (records are not decompressed
    /// here), which never skips a matching record. `None` if no record qualifies.
    pub async fn offset_for_timestamp(
        &self,
        key: &SegmentKey,
        ts: i64,
    ) -> Result<Option<(i64, i64)>, TieredError> {
        Stats::add(&self.inner.stats.fetch_requests, 1);
        let result = self.offset_for_timestamp_inner(key, ts).await;
        if result.is_err() {
            Stats::add(&self.inner.stats.fetch_errors, 1);
        }
        result
    }

    async fn offset_for_timestamp_inner(
        &self,
        key: &SegmentKey,
        ts: i64,
    ) -> Result<Option<(i64, i64)>, TieredError> {
        let Some(batch) = self.batch_for_timestamp_inner(key, ts).await? else {
            return Ok(None);
        };
        let corrupt = |reason: String| TieredError::Corrupt {
            path: self.name(key, ObjectKind::Log),
            reason,
        };
        let header = format::parse_batch_header(&batch).map_err(corrupt)?;
        match format::first_record_at_or_after(&batch, ts).map_err(corrupt)? {
            Some(hit) => Ok(Some(hit)),
            // Compressed: the batch's first offset never skips a matching record.
            None => Ok(Some((header.base_offset, header.max_timestamp))),
        }
    }

    /// The first whole record batch of this segment whose max timestamp is >= `ts` (found with
    /// the remote time index and a walk of batch headers), for a caller that decompresses
    /// batches to find the exact record; `None` if there is none.
    pub async fn batch_for_timestamp(
        &self,
        key: &SegmentKey,
        ts: i64,
    ) -> Result<Option<Bytes>, TieredError> {
        Stats::add(&self.inner.stats.fetch_requests, 1);
        let result = self.batch_for_timestamp_inner(key, ts).await;
        if result.is_err() {
            Stats::add(&self.inner.stats.fetch_errors, 1);
        }
        result
    }

    async fn batch_for_timestamp_inner(
        &self,
        key: &SegmentKey,
        ts: i64,
    ) -> Result<Option<Bytes>, TieredError> {
        let manifest = self.manifest(key).await?;
        let name = self.name(key, ObjectKind::Log);
        let size = manifest.log_size().ok_or_else(|| TieredError::Corrupt {
            path: name.clone(),
            reason: "manifest lists no log".into(),
        })?;
        let time_index = self.fetch_index_inner(key, IndexKind::Time).await?;
        let from = format::time_index_start(&time_index, key.base_offset, ts);
        let Some((mut pos, _)) = self.seek(key, &name, size, from).await? else {
            return Ok(None);
        };
        while let Some(header) = self.header_at(&name, size, pos).await? {
            if header.max_timestamp >= ts {
                let batch = self
                    .read_range(&name, size, pos, pos + u64::from(header.size))
                    .await?;
                return Ok(Some(batch));
            }
            pos += u64::from(header.size);
        }
        Ok(None)
    }

    /// Every segment present under a partition (parsed back from the object names), with
    /// whether its manifest is there (complete) or not (an upload that crashed or is under
    /// way), sorted by base offset.
    pub async fn list_partition(
        &self,
        topic: &str,
        topic_id: Uuid,
        partition: i32,
    ) -> Result<Vec<(SegmentKey, bool)>, TieredError> {
        let names = self.list_names(topic, topic_id, partition).await?;
        let mut segments: BTreeMap<(i64, Uuid), bool> = BTreeMap::new();
        for (_, base_offset, segment_id, kind) in names {
            let complete = segments.entry((base_offset, segment_id)).or_insert(false);
            *complete |= kind == ObjectKind::Manifest;
        }
        Ok(segments
            .into_iter()
            .map(|((base_offset, segment_id), complete)| {
                (
                    SegmentKey {
                        topic: topic.to_string(),
                        topic_id,
                        partition,
                        base_offset,
                        segment_id,
                    },
                    complete,
                )
            })
            .collect())
    }

    /// The segment objects under a partition: (full name, base offset, segment id, kind).
    async fn list_names(
        &self,
        topic: &str,
        topic_id: Uuid,
        partition: i32,
    ) -> Result<Vec<(Path, i64, Uuid, ObjectKind)>, TieredError> {
        let dir = layout::partition_prefix(&self.inner.prefix, topic, topic_id, partition);
        let listed: Result<Vec<_>, _> = self
            .inner
            .store
            .list(Some(&Path::from(dir.as_str())))
            .try_collect()
            .await;
        let listed = match listed {
            Ok(listed) => listed,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(self.err("list", &dir, e)),
        };
        Ok(listed
            .into_iter()
            .filter_map(|meta| {
                let (base, id, kind) = layout::parse_file_name(meta.location.filename()?)?;
                Some((meta.location, base, id, kind))
            })
            .collect())
    }

    /// Deletes every object of a partition (topic deletion); returns how many were deleted.
    pub async fn delete_partition(
        &self,
        topic: &str,
        topic_id: Uuid,
        partition: i32,
    ) -> Result<u64, TieredError> {
        let names = self.list_names(topic, topic_id, partition).await?;
        // Manifests first, as in delete_segment.
        let (manifests, others): (Vec<_>, Vec<_>) = names
            .into_iter()
            .partition(|(_, _, _, kind)| *kind == ObjectKind::Manifest);
        let mut deleted = 0;
        for (location, ..) in manifests.into_iter().chain(others) {
            self.delete_object(location.as_ref()).await?;
            deleted += 1;
        }
        let dir = layout::partition_prefix(&self.inner.prefix, topic, topic_id, partition);
        self.inner.chunks.remove_prefix(&dir);
        self.inner.meta.remove_prefix(&dir);
        Ok(deleted)
    }
}

/// rustls needs one process-wide crypto provider when more than one is compiled in; installing
/// aws-lc-rs (the one kube and reqwest use here) explicitly avoids rustls' start-up panic when
/// it cannot pick. An already installed provider is kept.
fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

impl TieredError {
    /// A single-flight failure handed to one of its waiters.
    fn from_shared(e: Arc<TieredError>) -> TieredError {
        match Arc::try_unwrap(e) {
            Ok(e) => e,
            Err(shared) => shared.duplicate(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_hosted_endpoints_get_the_bucket() {
        assert_eq!(
            virtual_hosted_endpoint("https://s3.example.com", "b"),
            "https://b.s3.example.com"
        );
        assert_eq!(
            virtual_hosted_endpoint("https://b.s3.example.com", "b"),
            "https://b.s3.example.com"
        );
    }

    /// object_store's S3 client and kube both use rustls; building the client must not hit
    /// rustls' "could not determine the CryptoProvider" panic.
    #[tokio::test]
    async fn s3_store_builds_without_crypto_provider_panic() {
        for endpoint in ["https://127.0.0.1:1", "http://127.0.0.1:1"] {
            let cfg = RemoteStorageConfig {
                backend: Backend::S3 {
                    bucket: "b".into(),
                    endpoint: Some(endpoint.into()),
                    region: "us-east-1".into(),
                    path_style: true,
                    access_key_id: Some("AK".into()),
                    secret_access_key: Some("SK".into()),
                },
                key_prefix: String::new(),
                copy_bytes_per_sec: None,
                fetch_bytes_per_sec: None,
                upload_concurrency: 1,
                read_concurrency: 1,
                cache_bytes: 1 << 20,
            };
            let store = RemoteStore::new(&cfg).unwrap();
            // A request through the TLS (or plain) client: nothing listens on port 1.
            let err = store.list_partition("t", Uuid::nil(), 0).await.unwrap_err();
            assert!(err.is_retriable(), "{endpoint}: {err}");
        }
    }
}
