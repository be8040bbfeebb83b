//! `rollcall enroll | identify | erase | gallery report`: the face gallery from the command line.
//!
//! The gallery is embedded (qdrant-edge under `DIR/gallery`) unless `QDRANT_URL` names a Qdrant
//! server or cluster. Students are registered in the ledger of the same data directory (or
//! `DATABASE_URL`), whose school id is the gallery's tenant.

use crate::cmd_vision::{load, VisionOpts};
use anyhow::{anyhow, Context};
use rollcall_domain::gallery::Gallery;
use rollcall_domain::{CampusId, StudentId, TenantId};
use rollcall_gallery::vault::{Keyring, KEYS_ENV};
use rollcall_gallery::{EmbeddedConfig, EmbeddedGallery, RemoteConfig, RemoteGallery};
use rollcall_ledger::NewStudent;
use rollcall_ledger::Store;
use rollcall_runtime::enrollment::{self as enroll, DuplicatePolicy, EnrollConfig, EnrollRequest};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, clap::Args)]
pub struct DataOpts {
    /// Data directory (ledger `rollcall.db`, embedded gallery `gallery/`, face crops `crops/`).
    #[arg(long, env = "ROLLCALL_DATA", default_value = "data")]
    pub data: PathBuf,
    /// School (tenant) id; default: the only school of the ledger (created as `default` when
    /// the ledger has none yet).
    #[arg(long, env = "ROLLCALL_SCHOOL")]
    pub school: Option<String>,
    /// Qdrant server/cluster (gRPC URL, e.g. http://localhost:6334) instead of the embedded gallery.
    #[arg(long, env = "QDRANT_URL")]
    pub qdrant_url: Option<String>,
    #[arg(long, env = "QDRANT_API_KEY", hide_env_values = true)]
    pub qdrant_api_key: Option<String>,
    #[arg(long, env = "QDRANT_COLLECTION", default_value = "rollcall_faces")]
    pub qdrant_collection: String,
    /// A Qdrant cluster's layout for the collection, applied when rollcall creates it (an
    /// existing collection keeps its own): shards, copies of each shard, and how many copies
    /// must confirm a write. Unset: the server's defaults. See ARCHITECTURE.md
    /// ("Scale-out") for the tested cluster: 3 shards, 2 copies, 1 confirmation.
    #[command(flatten)]
    pub qdrant_layout: QdrantLayout,
    /// Create the embedded gallery in the memory-lean layout (16-bit vectors, memory-mapped:
    /// about 70 MB per 100k templates instead of 110; BENCHMARKS.md). The layout is fixed
    /// when the gallery is created.
    #[arg(long, env = "ROLLCALL_GALLERY_LEAN", value_parser = clap::builder::BoolishValueParser::new())]
    pub gallery_lean: bool,
}

/// How a new collection is laid out on a Qdrant cluster.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct QdrantLayout {
    #[arg(long, env = "QDRANT_SHARDS")]
    pub qdrant_shards: Option<u32>,
    #[arg(long, env = "QDRANT_REPLICATION_FACTOR")]
    pub qdrant_replication_factor: Option<u32>,
    #[arg(long, env = "QDRANT_WRITE_CONSISTENCY_FACTOR")]
    pub qdrant_write_consistency_factor: Option<u32>,
}

impl QdrantLayout {
    /// From `QDRANT_SHARDS`, `QDRANT_REPLICATION_FACTOR` and `QDRANT_WRITE_CONSISTENCY_FACTOR`
    /// (for `serve` and `run-scenario`, which take no such flags).
    pub fn from_env() -> anyhow::Result<Self> {
        let num = |name: &str| -> anyhow::Result<Option<u32>> {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => v
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .map(Some)
                    .ok_or_else(|| anyhow!("{name}={v}: expected a positive whole number")),
                _ => Ok(None),
            }
        };
        Ok(Self {
            qdrant_shards: num("QDRANT_SHARDS")?,
            qdrant_replication_factor: num("QDRANT_REPLICATION_FACTOR")?,
            qdrant_write_consistency_factor: num("QDRANT_WRITE_CONSISTENCY_FACTOR")?,
        })
    }

    /// Applies the layout to a remote gallery's configuration.
    pub fn apply(&self, cfg: &mut RemoteConfig) {
        cfg.shard_number = self.qdrant_shards;
        cfg.replication_factor = self.qdrant_replication_factor;
        cfg.write_consistency_factor = self.qdrant_write_consistency_factor;
    }
}

impl DataOpts {
    /// The remote gallery's configuration, when `QDRANT_URL` (`--qdrant-url`) names a server or
    /// a cluster's nodes.
    pub fn remote_config(&self, dim: usize) -> Option<RemoteConfig> {
        let url = self.qdrant_url.as_ref().filter(|u| !u.trim().is_empty())?;
        let mut cfg = RemoteConfig::new(url.clone(), self.qdrant_collection.clone(), dim);
        cfg.api_key = self.qdrant_api_key.clone();
        self.qdrant_layout.apply(&mut cfg);
        Some(cfg)
    }
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum GalleryCmd {
    /// Threshold calibration: closest pair of different students, under-enrolled students,
    /// suggested accept threshold, students needing re-enrollment with the current model.
    Report {
        #[command(flatten)]
        data: DataOpts,
    },
    /// Rebuild the gallery index from the encrypted canonical templates in the database
    /// (needs ROLLCALL_TEMPLATE_KEYS); the database is canonical.
    Rebuild {
        #[command(flatten)]
        data: DataOpts,
    },
}

/// The ledger store and the school (tenant) the gallery commands act on.
pub async fn open_school(d: &DataOpts, create: bool) -> anyhow::Result<Store> {
    let store = Store::from_env(Some(&d.data))
        .await
        .with_context(|| format!("opening the ledger in {}", d.data.display()))?;
    if let Some(id) = &d.school {
        return match store.school(id).await {
            Ok(s) => Ok(s),
            Err(_) if create => Ok(store.create_school(id, id, 0, &Default::default()).await?),
            Err(e) => Err(e.into()),
        };
    }
    match store.only_school().await {
        Ok(s) => Ok(s),
        Err(rollcall_ledger::LedgerError::NotFound { .. }) if create => Ok(store
            .create_school("default", "default", 0, &Default::default())
            .await?),
        Err(e) => Err(e).context("choosing the school (pass --school)"),
    }
}

/// `ROLLCALL_GALLERY_LEAN` read as the CLI's `--gallery-lean` reads it (yes/no, true/false,
/// on/off, 1/0; unset: no), for `serve`, which takes its options from a config file.
pub fn lean_from_env() -> anyhow::Result<bool> {
    use clap::builder::TypedValueParser;
    let Some(v) = std::env::var_os("ROLLCALL_GALLERY_LEAN") else {
        return Ok(false);
    };
    clap::builder::BoolishValueParser::new()
        .parse_ref(&clap::Command::new("serve"), None, &v)
        .map_err(|e| anyhow::anyhow!("ROLLCALL_GALLERY_LEAN: {e}"))
}

pub async fn open_gallery(d: &DataOpts, dim: usize) -> anyhow::Result<Box<dyn Gallery>> {
    Ok(match d.remote_config(dim) {
        Some(cfg) => Box::new(RemoteGallery::connect(cfg).await?),
        None => {
            let dir = d.data.join("gallery");
            let mut cfg = EmbeddedConfig::new(&dir, dim);
            if d.gallery_lean {
                cfg = cfg.lean();
            }
            Box::new(EmbeddedGallery::open(cfg).await?)
        }
    })
}

/// The gallery the live loop searches: for a Qdrant server a client of its own that tries each
/// call once (the loop holds frames and retries through its own probe; the client's retries
/// and back-off would stall the loop, and capture drops frames meanwhile); the embedded
/// gallery is `shared` (one process may open it once).
pub async fn open_live_gallery(
    d: &DataOpts,
    dim: usize,
    shared: std::sync::Arc<dyn Gallery>,
) -> anyhow::Result<std::sync::Arc<dyn Gallery>> {
    Ok(match d.remote_config(dim) {
        Some(mut cfg) => {
            cfg.attempts = 1;
            std::sync::Arc::new(RemoteGallery::connect(cfg).await?)
        }
        None => shared,
    })
}

/// The template keys (`ROLLCALL_TEMPLATE_KEYS`), required.
pub fn keys() -> anyhow::Result<Keyring> {
    Keyring::from_env()?.ok_or_else(|| {
        anyhow!(
            "no template key: set {KEYS_ENV}=ID:BASE64KEY (32 bytes; `rollcall privacy new-key --id k1` makes one), see PRIVACY.md"
        )
    })
}

/// Vector size of the gallery: the embedder's when the models load, else
/// `ROLLCALL_GALLERY_DIM` or the default model's 128.
pub fn dim_for(v: &crate::cmd_vision::VisionOpts) -> usize {
    match v.open() {
        Ok(p) => dim_of(&p),
        Err(_) => std::env::var("ROLLCALL_GALLERY_DIM")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(128),
    }
}

/// Vector size of the pipeline's embedder (what the gallery must store).
pub fn dim_of(p: &rollcall_vision::FacePipeline) -> usize {
    p.embedder
        .manifest()
        .embedder
        .as_ref()
        .map(|e| e.embedding_size)
        .unwrap_or(128)
}

#[allow(clippy::too_many_arguments)]
pub async fn enroll_cmd(
    v: &VisionOpts,
    d: &DataOpts,
    student: &str,
    name: Option<&str>,
    campuses: &[String],
    photos: &[PathBuf],
    max_templates: usize,
    flag_duplicates: bool,
) -> anyhow::Result<Value> {
    let student_id = StudentId::new(student).map_err(|e| anyhow!("--student: {e}"))?;
    let campuses: Vec<CampusId> = campuses
        .iter()
        .map(|c| CampusId::new(c.as_str()).map_err(|e| anyhow!("--campus {c:?}: {e}")))
        .collect::<anyhow::Result<_>>()?;
    let school = open_school(d, true).await?;
    let tenant = TenantId::new(school.school_id()).map_err(|e| anyhow!("school id: {e}"))?;
    if let Some(name) = name {
        register_student(&school, student, name, campuses.first()).await?;
    }
    let keys = keys()?;
    let p = v.open()?;
    let gallery = open_gallery(d, dim_of(&p)).await?;
    let mut cfg = EnrollConfig::new(d.data.join("crops"), p.thresholds());
    let p = enroll::shared(p);
    cfg.max_templates = max_templates;
    if flag_duplicates {
        cfg.duplicates = DuplicatePolicy::Flag;
    }
    let mut list = Vec::new();
    for path in photos {
        let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        list.push((path.display().to_string(), bytes));
    }
    let report = enroll::enroll(
        &p,
        gallery.as_ref(),
        &enroll::Safeguards {
            store: &school,
            keys: &keys,
        },
        &cfg,
        EnrollRequest {
            tenant,
            student: student_id,
            campuses,
            photos: list,
            now: school.now(),
        },
    )
    .await?;
    school.close().await;
    Ok(serde_json::to_value(report)?)
}

async fn register_student(
    school: &Store,
    id: &str,
    name: &str,
    campus: Option<&CampusId>,
) -> anyhow::Result<()> {
    if let Some(c) = campus {
        // Campuses are created on first use so that `enroll --campus` works on a new school.
        let _ = school.create_campus(c.as_str(), c.as_str()).await;
    }
    school
        .ensure_student(&NewStudent {
            id: id.to_string(),
            name: name.to_string(),
            home_campus_id: campus.map(|c| c.to_string()),
        })
        .await
        .context("registering the student in the ledger")?;
    Ok(())
}

pub async fn identify_cmd(
    v: &VisionOpts,
    d: &DataOpts,
    photo: &Path,
    campus: Option<&str>,
    top: usize,
) -> anyhow::Result<Value> {
    let school = open_school(d, false).await?;
    let tenant = TenantId::new(school.school_id()).map_err(|e| anyhow!("school id: {e}"))?;
    school.close().await;
    let campus = campus
        .map(|c| CampusId::new(c).map_err(|e| anyhow!("--campus: {e}")))
        .transpose()?;
    let p = v.open()?;
    let gallery = open_gallery(d, dim_of(&p)).await?;
    let frame = load(photo)?;
    let t = p.thresholds();
    let faces = enroll::identify(
        &enroll::shared(p),
        gallery.as_ref(),
        &frame,
        &tenant,
        campus.as_ref(),
        top,
        &t,
    )
    .await?;
    Ok(json!({"faces": faces, "thresholds": t}))
}

/// Complete erasure (index purged, encrypted copies, crops, review images), audited receipt.
pub async fn erase_cmd(
    v: &VisionOpts,
    d: &DataOpts,
    student: &str,
    actor: &str,
) -> anyhow::Result<Value> {
    let student = StudentId::new(student).map_err(|e| anyhow!("--student: {e}"))?;
    let school = open_school(d, false).await?;
    let tenant = TenantId::new(school.school_id()).map_err(|e| anyhow!("school id: {e}"))?;
    let gallery = open_gallery(d, dim_for(v)).await?;
    let receipt = rollcall_gallery::privacy::erase_student(
        gallery.as_ref(),
        &school,
        &d.data,
        &tenant,
        &student,
        actor,
        rollcall_gallery::privacy::ErasureReason::Request,
        school.now(),
    )
    .await?;
    school.close().await;
    Ok(serde_json::to_value(receipt)?)
}

pub async fn run(v: &VisionOpts, cmd: GalleryCmd) -> anyhow::Result<Value> {
    match cmd {
        GalleryCmd::Rebuild { data } => {
            let keys = keys()?;
            let school = open_school(&data, false).await?;
            let tenant =
                TenantId::new(school.school_id()).map_err(|e| anyhow!("school id: {e}"))?;
            let gallery = open_gallery(&data, dim_for(v)).await?;
            let r =
                rollcall_gallery::vault::rebuild_index(&keys, &school, gallery.as_ref(), &tenant)
                    .await?;
            school.close().await;
            Ok(serde_json::to_value(r)?)
        }
        GalleryCmd::Report { data } => {
            let school = open_school(&data, false).await?;
            let tenant =
                TenantId::new(school.school_id()).map_err(|e| anyhow!("school id: {e}"))?;
            school.close().await;
            let p = v.open()?;
            let gallery = open_gallery(&data, dim_of(&p)).await?;
            let model = rollcall_domain::gallery::ModelRef {
                model_id: p.embedder.manifest().id.clone(),
                model_version: p.embedder.manifest().version.clone(),
            };
            let all = gallery.tenant_templates(&tenant).await?;
            let current: Vec<_> = all
                .iter()
                .filter(|t| t.meta.model() == model)
                .cloned()
                .collect();
            let report = rollcall_gallery::calibration::calibration_report(
                &current,
                p.thresholds().accept,
                0.05,
            );
            let stale =
                rollcall_gallery::students::needing_reenrollment(gallery.as_ref(), &tenant, &model)
                    .await?;
            Ok(json!({
                "model": model,
                "report": report,
                "needs_reenrollment": stale,
            }))
        }
    }
}

/// The gallery of one `run-scenario` (or pipeline benchmark) run: the embedded gallery in the
/// run's data directory, or, given a server (`QDRANT_URL` for run-scenario), a collection of the run's own on that
/// server (named `QDRANT_COLLECTION` (default `rollcall_run`) + `_` + a random suffix; cosine,
/// the remote backend's defaults), deleted when this is dropped, at the end of the run or on
/// an error.
pub struct RunGallery {
    inner: Box<dyn Gallery>,
    remote: Option<RemoteConfig>,
}

impl RunGallery {
    /// `url`: the Qdrant server (what `QDRANT_URL` names for run-scenario), or `None` for the
    /// embedded gallery.
    pub async fn open_at(data: &Path, dim: usize, url: Option<String>) -> anyhow::Result<Self> {
        let Some(url) = url.filter(|u| !u.is_empty()) else {
            let g = EmbeddedGallery::open(EmbeddedConfig::new(data.join("gallery"), dim))
                .await
                .context("opening the embedded gallery")?;
            return Ok(Self {
                inner: Box::new(g),
                remote: None,
            });
        };
        let prefix = std::env::var("QDRANT_COLLECTION")
            .ok()
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "rollcall_run".into());
        // a random (v4) uuid
        let name = format!(
            "{prefix}_{:032x}",
            rollcall_gallery::new_template_id().as_u128()
        );
        let mut cfg = RemoteConfig::new(url.clone(), name.clone(), dim);
        cfg.api_key = std::env::var("QDRANT_API_KEY").ok();
        QdrantLayout::from_env()?.apply(&mut cfg);
        let g = RemoteGallery::connect(cfg.clone())
            .await
            .with_context(|| format!("creating the run's collection {name} at {url}"))?;
        Ok(Self {
            inner: Box::new(g),
            remote: Some(cfg),
        })
    }

    /// The server's collection of this run (`None`: embedded).
    pub fn collection(&self) -> Option<&RemoteConfig> {
        self.remote.as_ref()
    }

    /// `Some("Qdrant collection NAME at URL")` for a server's collection.
    pub fn remote(&self) -> Option<String> {
        self.remote
            .as_ref()
            .map(|c| format!("Qdrant collection {} at {}", c.collection, c.url))
    }
}

impl Drop for RunGallery {
    fn drop(&mut self) {
        let Some(cfg) = self.remote.take() else {
            return;
        };
        // Drop cannot await: the collection is deleted on a thread of its own, with its own
        // runtime and client, and waited for.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(rollcall_gallery::remote::delete_collection(&cfg))
                .map(|n| (cfg, n))
                .map_err(|e| e.to_string())
        })
        .join();
        match done {
            Ok(Ok((cfg, Some(n)))) => eprintln!(
                "run-scenario: deleted Qdrant collection {} at {} holding {n} templates",
                cfg.collection, cfg.url
            ),
            Ok(Ok((cfg, None))) => {
                tracing::warn!(collection = %cfg.collection, "the run's collection was already gone")
            }
            Ok(Err(e)) => eprintln!("run-scenario: deleting the run's Qdrant collection: {e}"),
            Err(_) => eprintln!("run-scenario: deleting the run's Qdrant collection panicked"),
        }
    }
}

#[async_trait::async_trait]
impl Gallery for RunGallery {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    async fn upsert(
        &self,
        templates: Vec<rollcall_gallery::Template>,
    ) -> Result<usize, rollcall_gallery::GalleryError> {
        self.inner.upsert(templates).await
    }
    async fn search(
        &self,
        query: &rollcall_gallery::SearchQuery,
    ) -> Result<Vec<rollcall_gallery::GalleryHit>, rollcall_gallery::GalleryError> {
        self.inner.search(query).await
    }
    async fn student_templates(
        &self,
        tenant: &TenantId,
        student: &StudentId,
    ) -> Result<Vec<rollcall_gallery::TemplateMeta>, rollcall_gallery::GalleryError> {
        self.inner.student_templates(tenant, student).await
    }
    async fn tenant_templates(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<rollcall_gallery::Template>, rollcall_gallery::GalleryError> {
        self.inner.tenant_templates(tenant).await
    }
    async fn get(
        &self,
        id: rollcall_gallery::TemplateId,
    ) -> Result<Option<rollcall_gallery::Template>, rollcall_gallery::GalleryError> {
        self.inner.get(id).await
    }
    async fn delete_student(
        &self,
        tenant: &TenantId,
        student: &StudentId,
    ) -> Result<usize, rollcall_gallery::GalleryError> {
        self.inner.delete_student(tenant, student).await
    }
    async fn delete_templates(
        &self,
        tenant: &TenantId,
        ids: &[rollcall_gallery::TemplateId],
    ) -> Result<usize, rollcall_gallery::GalleryError> {
        self.inner.delete_templates(tenant, ids).await
    }
    async fn purge(&self) -> Result<rollcall_gallery::PurgeReport, rollcall_gallery::GalleryError> {
        self.inner.purge().await
    }
    async fn count(
        &self,
        scope: &rollcall_gallery::CountScope,
    ) -> Result<u64, rollcall_gallery::GalleryError> {
        self.inner.count(scope).await
    }
    async fn health(
        &self,
    ) -> Result<rollcall_gallery::GalleryHealth, rollcall_gallery::GalleryError> {
        self.inner.health().await
    }
}
