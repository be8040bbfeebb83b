//! Embedded gallery on `qdrant-edge` 0.7.2, stored under a data directory.
//!
//! Layout of the data directory `root`:
//! * `root/LOCK`: an exclusive `flock` held while a process has the gallery open (a second
//!   process gets [`GalleryError::Locked`] naming the directory);
//! * `root/shard/`: the qdrant-edge shard (its own WAL, segments, `edge_config.json`);
//! * `root/payload_format`: the payload layout of the points (`compact`, or `named` for a
//!   gallery created before 2026-12-04, which has no such file; see `payload::Format`);
//! * `root/shard.compact-tmp/`, `root/shard.compact-old/`, `root/compact.done`: only while
//!   [`Gallery::purge`] rebuilds the shard; an interrupted purge is finished or rolled back on
//!   the next open.
//!
//! Durability. qdrant-edge 0.7.2 writes every update to its WAL first, but `EdgeShard::load`
//! does not replay that WAL (it only loads flushed segments) and the WAL is never truncated.
//! So this adapter flushes the segments after every mutation before returning: an acknowledged
//! write survives a restart or a crash. On open, it deletes the WAL's closed segments but the
//! newest (what the WAL's own `prefix_truncate` would do; see `trim_wal`), so a reopened
//! gallery does not hold every vector ever written in resident WAL pages. Because the WAL keeps every vector ever written, a
//! purge does not vacuum in place: it copies the live templates into a fresh shard (new WAL,
//! new segments, HNSW rebuilt) and deletes the old shard's files. Deleted templates are then
//! gone from every file under `root` (the erasure test greps the files to prove it).
//!
//! All qdrant-edge calls are synchronous; they run on tokio's blocking pool, behind a
//! reader/writer lock (searches in parallel; writes, optimisation and purge exclusive, which
//! also keeps `EdgeShard::flush`'s `try_lock().expect(..)` from ever racing).

use std::collections::HashSet;
use std::fs::{self, File};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use qdrant_edge::{
    Condition, CountRequest, CreateIndex, Distance, EdgeConfig, EdgeOptimizersConfig, EdgeShard,
    EdgeVectorParams, FieldCondition, FieldIndexOperations, Filter, HnswIndexConfig,
    IsEmptyCondition, JsonPath, KeywordIndexParams, Match, NamedQuery, PayloadFieldSchema,
    PayloadSchemaParams, PointId, PointInsertOperations, PointOperations, PointStruct,
    PointStructPersisted, QuantizationConfig, QuantizationSearchParams, QueryEnum, Record,
    ScalarQuantizationConfig, ScalarType, ScrollRequest, SearchParams, SearchRequest,
    UpdateOperation, VectorInternal, VectorStorageDatatype, VectorStructInternal, WalOptions,
    WithPayloadInterface, WithVector,
};
use rollcall_domain::gallery::{
    check_vector, CountScope, Gallery, GalleryError, GalleryHealth, GalleryHit, PurgeReport,
    SearchQuery, Template, TemplateId, TemplateMeta,
};
use rollcall_domain::{StudentId, TenantId};
use serde::{Deserialize, Serialize};

use crate::payload;

const SHARD: &str = "shard";
const COMPACT_TMP: &str = "shard.compact-tmp";
const COMPACT_OLD: &str = "shard.compact-old";
const COMPACT_DONE: &str = "compact.done";
const LOCK: &str = "LOCK";
const EDGE_CONFIG_FILE: &str = "edge_config.json";
/// The payload layout of the gallery (`payload::Format`), next to `shard/`.
const FORMAT_FILE: &str = "payload_format";
/// Candidates re-scored with the original vectors per result, when quantized.
const QUANTIZED_OVERSAMPLING: f64 = 4.0;
const PAGE: usize = 1000;

/// HNSW parameters (index build and search).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Edges per node.
    pub m: usize,
    /// Candidate list size while building.
    pub ef_construct: usize,
    /// Candidate list size while searching (`hnsw_ef`).
    pub ef_search: usize,
    /// Below this many KiB of matching vectors a filtered search scans exactly instead of
    /// walking the graph (1 KiB = one 256-d f32 vector).
    pub full_scan_threshold_kb: usize,
}

impl Default for HnswParams {
    /// Tuned with the former `bench_gallery` example (now `rollcall bench gallery`) on clustered
    /// 128-d templates (see BENCHMARKS.md): recall@1 1.0 with p99 256 µs at 10k and 538 µs at
    /// 100k. For ~1M templates raise `ef_search` to
    /// 256 (recall@1 0.998, p99 4.1 ms); at 64 recall@1 drops to 0.89 there.
    fn default() -> Self {
        Self {
            m: 16,
            ef_construct: 128,
            ef_search: 64,
            full_scan_threshold_kb: 1000,
        }
    }
}

/// Configuration of an [`EmbeddedGallery`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddedConfig {
    /// Data directory (created if missing).
    pub dir: PathBuf,
    /// Vector size (embedding dimension of the face model).
    pub dim: usize,
    pub hnsw: HnswParams,
    /// Segments holding more than this many KiB of vectors get an HNSW index when optimised.
    pub indexing_threshold_kb: usize,
    /// After an upsert, optimise (build HNSW) once this many templates are not indexed yet.
    /// `None`: only on [`EmbeddedGallery::optimize`] and [`Gallery::purge`].
    pub auto_optimize_unindexed: Option<usize>,
    /// Keep vectors on disk (mmap) instead of RAM.
    pub vectors_on_disk: bool,
    /// WAL segment size in bytes (qdrant-edge's default, 32 MiB, is large for a small school).
    pub wal_segment_bytes: usize,
    /// int8 scalar quantization of indexed segments, the quantized vectors kept in RAM: the
    /// HNSW walk scores the 4× smaller int8 vectors, and the best `oversampling × top_k` are
    /// re-scored with the full-precision originals (so these can live on disk, see
    /// `vectors_on_disk`, and be paged in only for those few).
    #[serde(default)]
    pub quantize_int8: bool,
    /// Store the full-precision vectors as 16-bit floats (half the bytes; cosine scores
    /// change in the fourth decimal). Fixed when the gallery is created: rebuild
    /// (`gallery rebuild`, or a purge) to change it.
    #[serde(default)]
    pub half_precision: bool,
    /// The payload layout, read from the gallery's format file when it is opened (a gallery
    /// without one predates it and is `Named`; a new one is `Compact`).
    #[serde(skip)]
    payload_format: Option<payload::Format>,
}

impl EmbeddedConfig {
    pub fn new(dir: impl Into<PathBuf>, dim: usize) -> Self {
        Self {
            dir: dir.into(),
            dim,
            hnsw: HnswParams::default(),
            indexing_threshold_kb: 1000,
            auto_optimize_unindexed: Some(5000),
            vectors_on_disk: false,
            wal_segment_bytes: 1024 * 1024,
            quantize_int8: false,
            half_precision: false,
            payload_format: None,
        }
    }

    /// The memory-lean layout for large galleries: the vectors stored as 16-bit floats in a
    /// memory-mapped file, searched by the HNSW walk directly (no quantized copy, no
    /// re-scoring). Measured at 100k templates after 10,000 searches (BENCHMARKS.md,
    /// 2026-12-04): 69.6 MB resident with recall@1 0.999 (86.1 MB before the compact payload).
    /// int8 vectors in RAM re-scored with 16-bit originals on disk (`quantize_int8`, the
    /// previous lean layout) held 103.9 MB in the 2026-12-03 measurement (another machine),
    /// because re-scoring pages in nearly all of the originals as well.
    pub fn lean(mut self) -> Self {
        self.quantize_int8 = false;
        self.vectors_on_disk = true;
        self.half_precision = true;
        self
    }

    /// The payload layout of the open gallery.
    fn format(&self) -> payload::Format {
        self.payload_format.unwrap_or(payload::Format::Compact)
    }

    fn quantization(&self) -> Option<QuantizationConfig> {
        self.quantize_int8.then(|| {
            ScalarQuantizationConfig {
                r#type: ScalarType::Int8,
                quantile: Some(0.99),
                always_ram: Some(true),
            }
            .into()
        })
    }

    fn edge_config(&self) -> EdgeConfig {
        let hnsw = HnswIndexConfig {
            m: self.hnsw.m,
            ef_construct: self.hnsw.ef_construct,
            full_scan_threshold: self.hnsw.full_scan_threshold_kb,
            max_indexing_threads: 0,
            on_disk: Some(false),
            payload_m: None,
            inline_storage: None,
        };
        let mut vectors = std::collections::HashMap::new();
        vectors.insert(
            String::new(),
            EdgeVectorParams {
                size: self.dim,
                distance: Distance::Cosine,
                on_disk: Some(self.vectors_on_disk),
                multivector_config: None,
                datatype: self
                    .half_precision
                    .then_some(VectorStorageDatatype::Float16),
                quantization_config: None,
                hnsw_config: None,
            },
        );
        EdgeConfig {
            on_disk_payload: true,
            vectors,
            sparse_vectors: Default::default(),
            hnsw_config: hnsw,
            quantization_config: self.quantization(),
            optimizers: EdgeOptimizersConfig {
                deleted_threshold: Some(0.2),
                vacuum_min_vector_number: Some(100),
                default_segment_number: Some(1),
                max_segment_size: None,
                indexing_threshold: Some(self.indexing_threshold_kb),
                prevent_unoptimized: None,
            },
            wal_options: Some(WalOptions {
                segment_capacity: self.wal_segment_bytes.max(64 * 1024),
                ..WalOptions::default()
            }),
        }
    }
}

struct Inner {
    root: PathBuf,
    cfg: EmbeddedConfig,
    shard: RwLock<Option<EdgeShard>>,
    _lock: File,
}

/// The embedded gallery. Cheap to clone (shared handle). Dropping the last handle flushes and
/// releases the directory lock.
#[derive(Clone)]
pub struct EmbeddedGallery {
    inner: Arc<Inner>,
}

fn storage(path: &Path, e: impl std::fmt::Display) -> GalleryError {
    GalleryError::Storage {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn corrupt(path: &Path, e: impl std::fmt::Display) -> GalleryError {
    GalleryError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}

fn key(k: &str) -> JsonPath {
    JsonPath::try_from(k)
        .unwrap_or_else(|()| unreachable!("static payload key {k} is a valid path"))
}

fn keyword(k: &str, v: &str) -> Condition {
    Condition::Field(FieldCondition::new_match(
        key(k),
        Match::from(v.to_string()),
    ))
}

fn point_id(id: TemplateId) -> PointId {
    PointId::Uuid(uuid::Uuid::from_u128(id.as_u128()))
}

fn filter_scope(
    f: payload::Format,
    tenant: Option<&TenantId>,
    student: Option<&StudentId>,
) -> Option<Filter> {
    let k = f.keys();
    let mut must = vec![];
    if let Some(t) = tenant {
        must.push(keyword(k.tenant, t.as_str()));
    }
    if let Some(s) = student {
        must.push(keyword(k.student, s.as_str()));
    }
    if must.is_empty() {
        None
    } else {
        Some(Filter {
            should: None,
            min_should: None,
            must: Some(must),
            must_not: None,
        })
    }
}

/// `campuses` is empty or missing. (qdrant-edge 0.7.2 does not re-export `PayloadField`, so the
/// condition is built from its JSON form.)
fn campuses_empty(f: payload::Format) -> Condition {
    serde_json::from_value::<IsEmptyCondition>(
        serde_json::json!({ "is_empty": { "key": f.keys().campuses } }),
    )
    .map(Condition::IsEmpty)
    .unwrap_or_else(|e| unreachable!("static is_empty condition parses: {e}"))
}

fn search_filter(f: payload::Format, q: &SearchQuery) -> Filter {
    let k = f.keys();
    let mut must = vec![keyword(k.tenant, q.tenant.as_str())];
    if let Some(c) = &q.campus {
        must.push(Condition::Filter(Filter {
            should: Some(vec![keyword(k.campuses, c.as_str()), campuses_empty(f)]),
            min_should: None,
            must: None,
            must_not: None,
        }));
    }
    if let Some(cands) = &q.candidates {
        let ids: Vec<String> = cands.iter().map(|s| s.as_str().to_string()).collect();
        must.push(Condition::Field(FieldCondition::new_match(
            key(k.student),
            Match::from(ids),
        )));
    }
    if let Some(m) = &q.model {
        must.push(keyword(k.model_id, &m.model_id));
        must.push(keyword(k.model_version, &m.model_version));
    }
    Filter {
        should: None,
        min_should: None,
        must: Some(must),
        must_not: None,
    }
}

fn dense_of(v: Option<VectorStructInternal>) -> Option<Vec<f32>> {
    match v? {
        VectorStructInternal::Single(d) => Some(d),
        VectorStructInternal::Named(mut m) => match m.remove("")? {
            VectorInternal::Dense(d) => Some(d),
            _ => None,
        },
        VectorStructInternal::MultiDense(_) => None,
    }
}

/// The template id of a point (this adapter's points have UUID ids).
fn template_id_of(id: &PointId) -> Result<TemplateId, GalleryError> {
    match id {
        PointId::Uuid(u) => Ok(TemplateId::from_u128(u.as_u128())),
        other => Err(GalleryError::Backend(format!(
            "point {other:?} has no template id"
        ))),
    }
}

fn meta_of(
    f: payload::Format,
    id: &PointId,
    p: Option<qdrant_edge::Payload>,
) -> Result<TemplateMeta, GalleryError> {
    let p = p.ok_or_else(|| GalleryError::Backend("point without payload".into()))?;
    payload::from_json_as(f, &p.0, Some(template_id_of(id)?))
}

fn template_of(f: payload::Format, r: Record) -> Result<Template, GalleryError> {
    let meta = meta_of(f, &r.id, r.payload)?;
    let vector = dense_of(r.vector).ok_or_else(|| {
        GalleryError::Backend(format!("template {} has no vector", meta.template_id))
    })?;
    Ok(Template { meta, vector })
}

/// Disk space used by the files under `p`, in bytes: allocated blocks (like `du`), since
/// qdrant-edge preallocates sparse files whose apparent length says little.
pub fn dir_size(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.blocks() * 512,
                Err(_) => {}
            }
        }
    }
    total
}

/// Creates the payload indexes on a new shard: tenant (marked as tenant), student, campuses.
fn create_indexes(shard: &EdgeShard, f: payload::Format) -> qdrant_edge::OperationResult<()> {
    let k = f.keys();
    for (field, is_tenant) in [(k.tenant, true), (k.student, false), (k.campuses, false)] {
        let params = KeywordIndexParams {
            r#type: Default::default(),
            is_tenant: Some(is_tenant),
            on_disk: None,
            enable_hnsw: None,
        };
        shard.update(UpdateOperation::FieldIndexOperation(
            FieldIndexOperations::CreateIndex(CreateIndex {
                field_name: key(field),
                field_schema: Some(PayloadFieldSchema::FieldParams(
                    PayloadSchemaParams::Keyword(params),
                )),
            }),
        ))?;
    }
    Ok(())
}

/// Opens (or creates) the shard directory, mapping every failure, panics included, to a
/// typed error naming the directory.
/// Deletes the WAL's closed segments but the newest, before the shard is opened: what the
/// WAL's own `prefix_truncate` does once everything is flushed, which qdrant-edge 0.7.2 never
/// calls.
///
/// Why this is safe: this adapter flushes the segments after every mutation, and
/// `EdgeShard::load` never replays the WAL, so no closed segment holds anything the shard
/// needs. Operation numbers continue from the newest closed segment's start index plus its
/// length (the WAL's own rule), so keeping that one keeps the numbering the segments compare
/// versions against. Why it matters: opening the WAL maps every segment and checks every
/// entry's checksum, which leaves all of them resident: 85 MB for 100k templates, more than
/// the rest of the serving footprint.
fn trim_wal(wal: &Path) -> std::io::Result<usize> {
    let Ok(entries) = fs::read_dir(wal) else {
        return Ok(0); // no WAL yet
    };
    let mut closed: Vec<(u64, PathBuf)> = Vec::new();
    for e in entries {
        let e = e?;
        let name = e.file_name();
        let Some(start) = name
            .to_str()
            .and_then(|n| n.strip_prefix("closed-"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if e.file_type()?.is_file() {
            closed.push((start, e.path()));
        }
    }
    closed.sort();
    let keep = closed.len().saturating_sub(1);
    for (_, p) in &closed[..keep] {
        fs::remove_file(p)?;
    }
    if keep > 0 {
        File::open(wal)?.sync_all()?;
    }
    Ok(keep)
}

/// The configuration stored in the shard at `dir` (`None`: none yet); unreadable is
/// [`GalleryError::Corrupt`] naming the directory.
fn stored_config(dir: &Path) -> Result<Option<EdgeConfig>, GalleryError> {
    let file = dir.join(EDGE_CONFIG_FILE);
    if !file.exists() {
        return Ok(None);
    }
    let text =
        fs::read_to_string(&file).map_err(|e| corrupt(dir, format!("{}: {e}", file.display())))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| corrupt(dir, format!("{}: {e}", file.display())))
}

fn open_shard(dir: &Path, cfg: &EmbeddedConfig) -> Result<EdgeShard, GalleryError> {
    let exists = dir.join(EDGE_CONFIG_FILE).exists() || dir.join("segments").exists();
    // Check what is stored before handing it to qdrant-edge: a clear error for a dimension
    // change or an unreadable config.
    if let Some(v) = stored_config(dir)?.as_ref().and_then(|c| c.vectors.get("")) {
        if v.size != cfg.dim {
            return Err(GalleryError::InvalidRequest(format!(
                "gallery at {} holds {}-d vectors but {}-d were configured",
                dir.display(),
                v.size,
                cfg.dim
            )));
        }
    }
    if !exists {
        fs::create_dir_all(dir).map_err(|e| storage(dir, e))?;
    }
    if exists {
        trim_wal(&dir.join("wal")).map_err(|e| storage(dir, e))?;
    }
    let edge_cfg = cfg.edge_config();
    let res = catch_unwind(AssertUnwindSafe(|| {
        if exists {
            EdgeShard::load(dir, Some(edge_cfg)).map(|s| (s, false))
        } else {
            EdgeShard::new(dir, edge_cfg).map(|s| (s, true))
        }
    }));
    let (shard, fresh) = match res {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let text = e.to_string();
            if text.contains("WouldBlock")
                || text.contains("temporarily unavailable")
                || text.contains("locked")
            {
                return Err(GalleryError::Locked {
                    path: dir.to_path_buf(),
                    reason: text,
                });
            }
            return Err(corrupt(dir, text));
        }
        Err(p) => {
            return Err(corrupt(
                dir,
                format!("qdrant-edge panicked while opening: {}", panic_text(p)),
            ))
        }
    };
    if fresh {
        create_indexes(&shard, cfg.format()).map_err(|e| storage(dir, e))?;
        catch_unwind(AssertUnwindSafe(|| shard.flush()))
            .map_err(|p| storage(dir, panic_text(p)))?;
    }
    Ok(shard)
}

/// The payload layout of the gallery in `root`, from its format file; a new gallery gets one
/// (`new`, by default `Compact`); a gallery without one was created before the file existed
/// (`Named`).
fn payload_format(
    root: &Path,
    new: Option<payload::Format>,
) -> Result<payload::Format, GalleryError> {
    let file = root.join(FORMAT_FILE);
    match fs::read_to_string(&file) {
        Ok(text) => payload::Format::parse(&text)
            .ok_or_else(|| corrupt(&file, format!("unknown payload format {:?}", text.trim()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if root.join(SHARD).exists() {
                return Ok(payload::Format::Named);
            }
            let f = new.unwrap_or(payload::Format::Compact);
            fs::write(&file, f.as_str()).map_err(|e| storage(&file, e))?;
            Ok(f)
        }
        Err(e) => Err(storage(&file, e)),
    }
}

/// An existing gallery keeps the vector layout it was created with (16-bit or 32-bit, on disk
/// or in RAM, quantized or not), whatever `cfg` asks for: qdrant-edge refuses to load segments
/// under another layout, and the layout is documented as fixed at creation.
fn adopt_stored_layout(cfg: &mut EmbeddedConfig, shard: &Path) -> Result<(), GalleryError> {
    let Some(stored) = stored_config(shard)? else {
        return Ok(());
    };
    if let Some(v) = stored.vectors.get("") {
        cfg.half_precision = v.datatype == Some(VectorStorageDatatype::Float16);
        cfg.vectors_on_disk = v.on_disk.unwrap_or(false);
    }
    cfg.quantize_int8 = stored.quantization_config.is_some();
    Ok(())
}

/// Finishes or rolls back a purge interrupted by a crash.
fn recover_compaction(root: &Path) -> Result<(), GalleryError> {
    let shard = root.join(SHARD);
    let tmp = root.join(COMPACT_TMP);
    let old = root.join(COMPACT_OLD);
    let done = root.join(COMPACT_DONE);
    if done.exists() {
        // The new shard was complete: finish the swap.
        if tmp.exists() {
            if shard.exists() {
                if old.exists() {
                    fs::remove_dir_all(&old).map_err(|e| storage(&old, e))?;
                }
                fs::rename(&shard, &old).map_err(|e| storage(&shard, e))?;
            }
            fs::rename(&tmp, &shard).map_err(|e| storage(&tmp, e))?;
        }
        fs::remove_file(&done).map_err(|e| storage(&done, e))?;
    } else if tmp.exists() {
        // Incomplete rebuild: the old shard is still current.
        fs::remove_dir_all(&tmp).map_err(|e| storage(&tmp, e))?;
    }
    if old.exists() && shard.exists() {
        fs::remove_dir_all(&old).map_err(|e| storage(&old, e))?;
    }
    Ok(())
}

impl EmbeddedGallery {
    /// Opens the gallery in `cfg.dir`, creating it when missing. Errors: [`GalleryError::Locked`]
    /// when another process has it open, [`GalleryError::Corrupt`] when its files cannot be
    /// read, [`GalleryError::InvalidRequest`] when it holds vectors of another size; each names
    /// the directory.
    pub async fn open(cfg: EmbeddedConfig) -> Result<Self, GalleryError> {
        tokio::task::spawn_blocking(move || Self::open_blocking(cfg))
            .await
            .map_err(|e| GalleryError::Backend(format!("open task failed: {e}")))?
    }

    /// Synchronous [`EmbeddedGallery::open`] (for tools without a runtime).
    pub fn open_blocking(cfg: EmbeddedConfig) -> Result<Self, GalleryError> {
        if cfg.dim == 0 {
            return Err(GalleryError::InvalidRequest(
                "dimension must be positive".into(),
            ));
        }
        let root = cfg.dir.clone();
        fs::create_dir_all(&root).map_err(|e| storage(&root, e))?;
        let lock_path = root.join(LOCK);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| storage(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(GalleryError::Locked {
                    path: root,
                    reason: format!("{} is held by another process", lock_path.display()),
                })
            }
            Err(fs::TryLockError::Error(e)) => return Err(storage(&lock_path, e)),
        }
        recover_compaction(&root)?;
        let mut cfg = cfg;
        cfg.payload_format = Some(payload_format(&root, cfg.payload_format)?);
        adopt_stored_layout(&mut cfg, &root.join(SHARD))?;
        let shard = open_shard(&root.join(SHARD), &cfg)?;
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                cfg,
                shard: RwLock::new(Some(shard)),
                _lock: lock,
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.root
    }

    pub fn config(&self) -> &EmbeddedConfig {
        &self.inner.cfg
    }

    /// Bytes on disk under the data directory.
    pub fn disk_bytes(&self) -> u64 {
        dir_size(&self.inner.root)
    }

    async fn read<T, F>(&self, f: F) -> Result<T, GalleryError>
    where
        T: Send + 'static,
        F: FnOnce(&EdgeShard, &Inner) -> Result<T, GalleryError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let guard = inner
                .shard
                .read()
                .map_err(|_| GalleryError::Backend("gallery lock poisoned".into()))?;
            let shard = guard.as_ref().ok_or_else(|| {
                GalleryError::Backend("gallery is closed after a failed purge".into())
            })?;
            catch_unwind(AssertUnwindSafe(|| f(shard, &inner))).map_err(|p| {
                GalleryError::Backend(format!("qdrant-edge panicked: {}", panic_text(p)))
            })?
        })
        .await
        .map_err(|e| GalleryError::Backend(format!("blocking task failed: {e}")))?
    }

    async fn write<T, F>(&self, f: F) -> Result<T, GalleryError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Option<EdgeShard>, &Inner) -> Result<T, GalleryError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = inner
                .shard
                .write()
                .map_err(|_| GalleryError::Backend("gallery lock poisoned".into()))?;
            catch_unwind(AssertUnwindSafe(|| f(&mut guard, &inner))).map_err(|p| {
                GalleryError::Backend(format!("qdrant-edge panicked: {}", panic_text(p)))
            })?
        })
        .await
        .map_err(|e| GalleryError::Backend(format!("blocking task failed: {e}")))?
    }

    /// Runs qdrant-edge's optimisers until idle (builds HNSW indexes for segments above the
    /// indexing threshold, merges small segments). Returns whether anything changed.
    pub async fn optimize(&self) -> Result<bool, GalleryError> {
        let g = self.clone();
        tokio::task::spawn_blocking(move || g.optimize_blocking())
            .await
            .map_err(|e| GalleryError::Backend(format!("blocking task failed: {e}")))?
    }

    /// Synchronous [`EmbeddedGallery::optimize`].
    pub fn optimize_blocking(&self) -> Result<bool, GalleryError> {
        let guard = self
            .inner
            .shard
            .write()
            .map_err(|_| GalleryError::Backend("gallery lock poisoned".into()))?;
        let shard = guard
            .as_ref()
            .ok_or_else(|| GalleryError::Backend("gallery is closed".into()))?;
        catch_unwind(AssertUnwindSafe(|| {
            let changed = shard.optimize().map_err(|e| storage(&self.inner.root, e))?;
            shard.flush();
            Ok(changed)
        }))
        .map_err(|p| GalleryError::Backend(format!("qdrant-edge panicked: {}", panic_text(p))))?
    }

    /// Segments, points and indexed points (qdrant-edge's `ShardInfo`).
    pub fn shard_info(&self) -> Result<(usize, usize, usize), GalleryError> {
        let guard = self
            .inner
            .shard
            .read()
            .map_err(|_| GalleryError::Backend("gallery lock poisoned".into()))?;
        let shard = guard
            .as_ref()
            .ok_or_else(|| GalleryError::Backend("gallery is closed".into()))?;
        let i = shard.info();
        Ok((i.segments_count, i.points_count, i.indexed_vectors_count))
    }

    /// Upserts pre-validated templates without the per-call flush and auto-optimise (bulk
    /// loading, benchmarks); call [`EmbeddedGallery::flush_blocking`] or [`EmbeddedGallery::optimize`]
    /// afterwards.
    pub fn upsert_blocking_no_flush(&self, templates: &[Template]) -> Result<usize, GalleryError> {
        for t in templates {
            check_vector(self.inner.cfg.dim, &t.vector)?;
        }
        let guard = self
            .inner
            .shard
            .write()
            .map_err(|_| GalleryError::Backend("gallery lock poisoned".into()))?;
        let shard = guard
            .as_ref()
            .ok_or_else(|| GalleryError::Backend("gallery is closed".into()))?;
        upsert_points(shard, &self.inner.root, self.inner.cfg.format(), templates)?;
        Ok(templates.len())
    }

    /// Flushes segments to disk.
    pub fn flush_blocking(&self) -> Result<(), GalleryError> {
        let guard = self
            .inner
            .shard
            .write()
            .map_err(|_| GalleryError::Backend("gallery lock poisoned".into()))?;
        let shard = guard
            .as_ref()
            .ok_or_else(|| GalleryError::Backend("gallery is closed".into()))?;
        catch_unwind(AssertUnwindSafe(|| shard.flush()))
            .map_err(|p| GalleryError::Backend(format!("qdrant-edge panicked: {}", panic_text(p))))
    }

    /// Search without the async hop (benchmarks measure the engine, not the executor).
    pub fn search_blocking(&self, q: &SearchQuery) -> Result<Vec<GalleryHit>, GalleryError> {
        check_vector(self.inner.cfg.dim, &q.vector)?;
        let guard = self
            .inner
            .shard
            .read()
            .map_err(|_| GalleryError::Backend("gallery lock poisoned".into()))?;
        let shard = guard
            .as_ref()
            .ok_or_else(|| GalleryError::Backend("gallery is closed".into()))?;
        search_shard(shard, &self.inner, q)
    }
}

fn upsert_points(
    shard: &EdgeShard,
    root: &Path,
    format: payload::Format,
    templates: &[Template],
) -> Result<(), GalleryError> {
    if templates.is_empty() {
        return Ok(());
    }
    let points: Vec<PointStructPersisted> = templates
        .iter()
        .map(|t| {
            PointStruct::new(
                point_id(t.meta.template_id),
                t.vector.clone(),
                serde_json::Value::Object(payload::to_json_as(format, &t.meta)),
            )
            .into()
        })
        .collect();
    shard
        .update(UpdateOperation::PointOperation(
            PointOperations::UpsertPoints(PointInsertOperations::PointsList(points)),
        ))
        .map_err(|e| storage(root, e))
}

fn search_shard(
    shard: &EdgeShard,
    inner: &Inner,
    q: &SearchQuery,
) -> Result<Vec<GalleryHit>, GalleryError> {
    if q.top_k == 0 || matches!(&q.candidates, Some(c) if c.is_empty()) {
        return Ok(vec![]);
    }
    let hits = shard
        .search(SearchRequest {
            query: QueryEnum::Nearest(NamedQuery {
                query: VectorInternal::Dense(q.vector.clone()),
                using: None,
            }),
            filter: Some(search_filter(inner.cfg.format(), q)),
            params: Some(SearchParams {
                hnsw_ef: Some(inner.cfg.hnsw.ef_search.max(q.top_k)),
                quantization: inner.cfg.quantize_int8.then_some(QuantizationSearchParams {
                    ignore: false,
                    rescore: Some(true),
                    oversampling: Some(QUANTIZED_OVERSAMPLING),
                }),
                ..Default::default()
            }),
            limit: q.top_k,
            offset: 0,
            with_payload: Some(WithPayloadInterface::Bool(true)),
            with_vector: Some(WithVector::Bool(false)),
            score_threshold: None,
        })
        .map_err(|e| storage(&inner.root, e))?;
    hits.into_iter()
        .map(|p| {
            Ok(GalleryHit {
                similarity: p.score,
                meta: meta_of(inner.cfg.format(), &p.id, p.payload)?,
            })
        })
        .collect()
}

fn scroll_all(
    shard: &EdgeShard,
    root: &Path,
    filter: Option<Filter>,
    with_vector: bool,
    mut each: impl FnMut(Vec<Record>) -> Result<(), GalleryError>,
) -> Result<(), GalleryError> {
    let mut offset = None;
    loop {
        let (page, next) = shard
            .scroll(ScrollRequest {
                offset,
                limit: Some(PAGE),
                filter: filter.clone(),
                with_payload: Some(WithPayloadInterface::Bool(true)),
                with_vector: WithVector::Bool(with_vector),
                order_by: None,
            })
            .map_err(|e| storage(root, e))?;
        each(page)?;
        match next {
            Some(n) => offset = Some(n),
            None => return Ok(()),
        }
    }
}

fn count_filter(
    shard: &EdgeShard,
    root: &Path,
    filter: Option<Filter>,
) -> Result<u64, GalleryError> {
    shard
        .count(CountRequest {
            filter,
            exact: true,
        })
        .map(|n| n as u64)
        .map_err(|e| storage(root, e))
}

fn unindexed(shard: &EdgeShard) -> usize {
    let info = shard.info();
    info.points_count.saturating_sub(info.indexed_vectors_count)
}

/// Copies every live template into a fresh shard at `tmp` and optimises it.
fn rebuild_into(old: &EdgeShard, tmp: &Path, cfg: &EmbeddedConfig) -> Result<u64, GalleryError> {
    if tmp.exists() {
        fs::remove_dir_all(tmp).map_err(|e| storage(tmp, e))?;
    }
    fs::create_dir_all(tmp).map_err(|e| storage(tmp, e))?;
    let new = open_shard(tmp, cfg)?;
    let mut copied = 0u64;
    scroll_all(old, tmp, None, true, |page| {
        let templates = page
            .into_iter()
            .map(|r| template_of(cfg.format(), r))
            .collect::<Result<Vec<_>, _>>()?;
        copied += templates.len() as u64;
        upsert_points(&new, tmp, cfg.format(), &templates)
    })?;
    new.optimize().map_err(|e| storage(tmp, e))?;
    new.flush();
    drop(new);
    Ok(copied)
}

#[async_trait]
impl Gallery for EmbeddedGallery {
    fn dim(&self) -> usize {
        self.inner.cfg.dim
    }

    async fn upsert(&self, templates: Vec<Template>) -> Result<usize, GalleryError> {
        for t in &templates {
            check_vector(self.inner.cfg.dim, &t.vector)?;
        }
        let n = templates.len();
        self.write(move |shard, inner| {
            let shard = shard
                .as_ref()
                .ok_or_else(|| GalleryError::Backend("gallery is closed".into()))?;
            upsert_points(shard, &inner.root, inner.cfg.format(), &templates)?;
            shard.flush();
            if let Some(limit) = inner.cfg.auto_optimize_unindexed {
                if unindexed(shard) > limit {
                    shard.optimize().map_err(|e| storage(&inner.root, e))?;
                    shard.flush();
                }
            }
            Ok(n)
        })
        .await
    }

    async fn search(&self, query: &SearchQuery) -> Result<Vec<GalleryHit>, GalleryError> {
        check_vector(self.inner.cfg.dim, &query.vector)?;
        let q = query.clone();
        self.read(move |shard, inner| search_shard(shard, inner, &q))
            .await
    }

    async fn student_templates(
        &self,
        tenant: &TenantId,
        student: &StudentId,
    ) -> Result<Vec<TemplateMeta>, GalleryError> {
        let filter = filter_scope(self.inner.cfg.format(), Some(tenant), Some(student));
        self.read(move |shard, inner| {
            let mut out = vec![];
            scroll_all(shard, &inner.root, filter, false, |page| {
                for r in page {
                    out.push(meta_of(inner.cfg.format(), &r.id, r.payload)?);
                }
                Ok(())
            })?;
            Ok(out)
        })
        .await
    }

    async fn tenant_templates(&self, tenant: &TenantId) -> Result<Vec<Template>, GalleryError> {
        let filter = filter_scope(self.inner.cfg.format(), Some(tenant), None);
        self.read(move |shard, inner| {
            let mut out = vec![];
            scroll_all(shard, &inner.root, filter, true, |page| {
                for r in page {
                    out.push(template_of(inner.cfg.format(), r)?);
                }
                Ok(())
            })?;
            Ok(out)
        })
        .await
    }

    async fn get(&self, id: TemplateId) -> Result<Option<Template>, GalleryError> {
        self.read(move |shard, inner| {
            let mut recs = shard
                .retrieve(
                    &[point_id(id)],
                    Some(WithPayloadInterface::Bool(true)),
                    Some(WithVector::Bool(true)),
                )
                .map_err(|e| storage(&inner.root, e))?;
            match recs.pop() {
                Some(r) => template_of(inner.cfg.format(), r).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    async fn delete_student(
        &self,
        tenant: &TenantId,
        student: &StudentId,
    ) -> Result<usize, GalleryError> {
        let (t, s) = (tenant.clone(), student.clone());
        self.write(move |shard, inner| {
            let shard = shard
                .as_ref()
                .ok_or_else(|| GalleryError::Backend("gallery is closed".into()))?;
            let filter =
                filter_scope(inner.cfg.format(), Some(&t), Some(&s)).expect("tenant given");
            let n = count_filter(shard, &inner.root, Some(filter.clone()))?;
            if n == 0 {
                return Err(GalleryError::UnknownStudent {
                    tenant: t,
                    student: s,
                });
            }
            shard
                .update(UpdateOperation::PointOperation(
                    PointOperations::DeletePointsByFilter(filter),
                ))
                .map_err(|e| storage(&inner.root, e))?;
            shard.flush();
            Ok(n as usize)
        })
        .await
    }

    async fn delete_templates(
        &self,
        tenant: &TenantId,
        ids: &[TemplateId],
    ) -> Result<usize, GalleryError> {
        let t = tenant.clone();
        let ids: Vec<PointId> = ids.iter().map(|&i| point_id(i)).collect();
        self.write(move |shard, inner| {
            let shard = shard
                .as_ref()
                .ok_or_else(|| GalleryError::Backend("gallery is closed".into()))?;
            let recs = shard
                .retrieve(
                    &ids,
                    Some(WithPayloadInterface::Bool(true)),
                    Some(WithVector::Bool(false)),
                )
                .map_err(|e| storage(&inner.root, e))?;
            let mut mine = vec![];
            for r in recs {
                let id = r.id;
                if meta_of(inner.cfg.format(), &id, r.payload)?.tenant == t {
                    mine.push(id);
                }
            }
            let mine: Vec<PointId> = mine
                .into_iter()
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            if mine.is_empty() {
                return Ok(0);
            }
            let n = mine.len();
            shard
                .update(UpdateOperation::PointOperation(
                    PointOperations::DeletePoints { ids: mine },
                ))
                .map_err(|e| storage(&inner.root, e))?;
            shard.flush();
            Ok(n)
        })
        .await
    }

    async fn purge(&self) -> Result<PurgeReport, GalleryError> {
        self.write(|slot, inner| {
            let root = &inner.root;
            let (shard_dir, tmp, old, done) = (
                root.join(SHARD),
                root.join(COMPACT_TMP),
                root.join(COMPACT_OLD),
                root.join(COMPACT_DONE),
            );
            let bytes_before = dir_size(&shard_dir);
            {
                let current = slot
                    .as_ref()
                    .ok_or_else(|| GalleryError::Backend("gallery is closed".into()))?;
                current.flush();
                if let Err(e) = rebuild_into(current, &tmp, &inner.cfg) {
                    let _ = fs::remove_dir_all(&tmp);
                    return Err(e);
                }
            }
            File::create(&done)
                .and_then(|f| f.sync_all())
                .map_err(|e| storage(&done, e))?;
            // Close the old shard, swap directories, delete the old files.
            drop(slot.take());
            let swap = (|| -> Result<(), GalleryError> {
                fs::rename(&shard_dir, &old).map_err(|e| storage(&shard_dir, e))?;
                fs::rename(&tmp, &shard_dir).map_err(|e| storage(&tmp, e))?;
                fs::remove_file(&done).map_err(|e| storage(&done, e))?;
                fs::remove_dir_all(&old).map_err(|e| storage(&old, e))?;
                Ok(())
            })();
            if let Err(e) = swap {
                // Leave it to the next open's recovery; try to get back to a usable state.
                let _ = recover_compaction(root);
                *slot = open_shard(&shard_dir, &inner.cfg).ok();
                return Err(e);
            }
            let shard = open_shard(&shard_dir, &inner.cfg)?;
            let live = count_filter(&shard, root, None)?;
            *slot = Some(shard);
            Ok(PurgeReport {
                live_templates: live,
                bytes_before: Some(bytes_before),
                bytes_after: Some(dir_size(&shard_dir)),
                method: "rebuilt the qdrant-edge shard from live templates (new WAL and segments, \
                         HNSW rebuilt) and deleted the old shard's files"
                    .into(),
            })
        })
        .await
    }

    async fn count(&self, scope: &CountScope) -> Result<u64, GalleryError> {
        if scope.student.is_some() && scope.tenant.is_none() {
            return Err(GalleryError::InvalidRequest(
                "counting a student needs its tenant".into(),
            ));
        }
        let filter = filter_scope(
            self.inner.cfg.format(),
            scope.tenant.as_ref(),
            scope.student.as_ref(),
        );
        self.read(move |shard, inner| count_filter(shard, &inner.root, filter))
            .await
    }

    async fn health(&self) -> Result<GalleryHealth, GalleryError> {
        self.read(|shard, inner| {
            let info = shard.info();
            Ok(GalleryHealth {
                backend: "embedded".into(),
                location: inner.root.display().to_string(),
                dim: inner.cfg.dim,
                templates: count_filter(shard, &inner.root, None)?,
                indexed_templates: Some(info.indexed_vectors_count as u64),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_domain::gallery::SearchQuery;

    fn template(i: u128, student: &str, vector: Vec<f32>) -> Template {
        Template {
            meta: TemplateMeta {
                template_id: TemplateId::from_u128(i),
                student: StudentId::new(student).unwrap(),
                tenant: TenantId::new("acme").unwrap(),
                campuses: vec![],
                model_id: "m".into(),
                model_version: "1".into(),
                quality: 0.9,
                created_at: chrono::DateTime::from_timestamp_micros(1_764_800_000_123_456).unwrap(),
            },
            vector,
        }
    }

    fn unit(i: usize) -> Vec<f32> {
        let mut v = vec![0.0; 8];
        v[i] = 1.0;
        v
    }

    /// Opens `dir` (a gallery created with `format`, or already there), stores two templates
    /// when empty, and checks search, a student's templates and a template by id.
    async fn round_trip(dir: &Path, format: Option<payload::Format>) -> payload::Format {
        let mut cfg = EmbeddedConfig::new(dir, 8);
        cfg.payload_format = format;
        let g = EmbeddedGallery::open(cfg).await.unwrap();
        let tenant = TenantId::new("acme").unwrap();
        if g.count(&CountScope::default()).await.unwrap() == 0 {
            g.upsert(vec![
                template(1, "ann", unit(0)),
                template(2, "bob", unit(1)),
            ])
            .await
            .unwrap();
        }
        let hits = g
            .search(&SearchQuery::new(tenant.clone(), unit(1), 1))
            .await
            .unwrap();
        assert_eq!(hits[0].meta, template(2, "bob", vec![]).meta);
        let ann = g
            .student_templates(&tenant, &StudentId::new("ann").unwrap())
            .await
            .unwrap();
        assert_eq!(ann, vec![template(1, "ann", vec![]).meta]);
        let got = g.get(TemplateId::from_u128(2)).await.unwrap().unwrap();
        assert_eq!(got.meta.student.as_str(), "bob");
        g.config().format()
    }

    #[tokio::test]
    async fn a_new_gallery_is_compact_and_stays_so() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("g");
        assert_eq!(round_trip(&dir, None).await, payload::Format::Compact);
        assert_eq!(
            fs::read_to_string(dir.join(FORMAT_FILE)).unwrap(),
            "compact"
        );
        assert_eq!(round_trip(&dir, None).await, payload::Format::Compact);
    }

    /// A gallery created before the format file existed (named payload fields, no file) is
    /// still read, searched and filtered with its own field names.
    #[tokio::test]
    async fn a_gallery_without_a_format_file_is_read_as_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("g");
        assert_eq!(
            round_trip(&dir, Some(payload::Format::Named)).await,
            payload::Format::Named
        );
        fs::remove_file(dir.join(FORMAT_FILE)).unwrap();
        assert_eq!(round_trip(&dir, None).await, payload::Format::Named);
        assert!(!dir.join(FORMAT_FILE).exists());
    }

    /// The vector layout is fixed when the gallery is created: reopening a lean gallery with
    /// the default configuration (or the reverse) keeps the stored layout.
    #[tokio::test]
    async fn a_gallery_keeps_the_layout_it_was_created_with() {
        let tmp = tempfile::tempdir().unwrap();
        let (lean, plain) = (tmp.path().join("lean"), tmp.path().join("plain"));
        for (dir, create) in [
            (&lean, EmbeddedConfig::new(&lean, 8).lean()),
            (&plain, EmbeddedConfig::new(&plain, 8)),
        ] {
            let g = EmbeddedGallery::open(create).await.unwrap();
            g.upsert(vec![template(1, "ann", unit(0))]).await.unwrap();
            drop(g);
            for reopen in [
                EmbeddedConfig::new(dir, 8),
                EmbeddedConfig::new(dir, 8).lean(),
            ] {
                let g = EmbeddedGallery::open(reopen).await.unwrap();
                let is_lean = dir == &lean;
                assert_eq!(g.config().half_precision, is_lean);
                assert_eq!(g.config().vectors_on_disk, is_lean);
                let hits = g
                    .search(&SearchQuery::new(
                        TenantId::new("acme").unwrap(),
                        unit(0),
                        1,
                    ))
                    .await
                    .unwrap();
                assert_eq!(hits[0].meta.student.as_str(), "ann");
            }
        }
    }

    #[tokio::test]
    async fn an_unknown_format_file_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("g");
        round_trip(&dir, None).await;
        fs::write(dir.join(FORMAT_FILE), "cbor").unwrap();
        match EmbeddedGallery::open(EmbeddedConfig::new(&dir, 8)).await {
            Err(e @ GalleryError::Corrupt { .. }) => {
                assert!(e.to_string().contains(FORMAT_FILE), "{e}")
            }
            Err(e) => panic!("expected Corrupt, got {e}"),
            Ok(_) => panic!("opened with an unknown payload format"),
        }
    }
}
