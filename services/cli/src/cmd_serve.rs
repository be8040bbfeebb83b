//! `rollcall serve --config rollcall.toml`: cameras → capture threads (latest frame wins) →
//! the inference pool (one worker per core: detect, quality, align, embed) → gallery search,
//! tracker and debounced matcher → check-ins in the ledger through a
//! bounded channel that never drops; lesson-end finalisation on a timer; `/healthz` and
//! `/metrics`, the API and the staff app over HTTP (rollcall-api); review decisions into the
//! review queue (with the track's best crop); the notification dispatcher (rollcall-notify);
//! the hourly retention job for biometric data (PRIVACY.md); enrollment and erasure for the
//! API when `ROLLCALL_TEMPLATE_KEYS` is set;
//! graceful shutdown on SIGTERM / Ctrl-C (cameras stopped, open tracks
//! decided, queued check-ins committed, stores closed).
//!
//! Config (TOML; environment overrides: `ROLLCALL_DATA`, `ROLLCALL_SCHOOL`, `ROLLCALL_LISTEN`,
//! `DATABASE_URL`, `QDRANT_URL`; every variable serve reads is in [`SERVE_ENV`]; deployment
//! examples under `deploy/`):
//! ```toml
//! data = "data"
//! school = "default"          # optional: the only school of the ledger
//! listen = "127.0.0.1:8080"
//! finalize_every_s = 60
//! [[cameras]]
//! id = "front-door"
//! url = "rtsp://user:secret@10.0.0.5/stream1"
//! campus = "main"
//! door = "front"
//! fps = 10
//! ```

use crate::cmd_gallery::{dim_of, open_gallery, open_school, DataOpts};
use crate::cmd_vision::VisionOpts;
use crate::cmd_watch::{Latencies, Recognizer};
use crate::pool::{Analyzed, InferencePool, Job};
use anyhow::{anyhow, Context};
use chrono::Utc;
use rollcall_capture::{spawn_cameras, CameraConfig, CameraHealth, HealthEvent};
use rollcall_domain::matcher::debounce::{Decision, Outcome};
use rollcall_domain::Frame;
use rollcall_domain::TenantId;
use rollcall_ledger::{CheckIn, NewReviewItem, ReviewCandidate, Store};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Every environment variable `rollcall serve` reads (its own, the global vision options, and
/// those of the stages it runs: gallery, template keys, retention, notification channels,
/// logging). The files under `deploy/` are checked against this list (`deploy_check`).
#[cfg_attr(not(test), allow(dead_code))] // read by the deploy check only
pub const SERVE_ENV: &[&str] = &[
    "ROLLCALL_DATA",
    "ROLLCALL_SCHOOL",
    "ROLLCALL_LISTEN",
    "DATABASE_URL",
    "QDRANT_URL",
    "QDRANT_API_KEY",
    "QDRANT_COLLECTION",
    "ROLLCALL_GALLERY_LEAN",
    "ROLLCALL_TEMPLATE_KEYS",
    "ROLLCALL_TEMPLATE_KEY_ID",
    "ROLLCALL_RETENTION_REVIEW_DAYS",
    "ROLLCALL_RETENTION_UNKNOWN_DAYS",
    "ROLLCALL_RETENTION_DECIDED_DAYS",
    "ROLLCALL_RETENTION_INACTIVE_MONTHS",
    "ROLLCALL_WEBHOOK_URL",
    "ROLLCALL_WEBHOOK_SECRET",
    "ROLLCALL_SMTP_HOST",
    "ROLLCALL_SMTP_PORT",
    "ROLLCALL_SMTP_FROM",
    "ROLLCALL_MODELS_DIR",
    "ROLLCALL_MANIFESTS_DIR",
    "ROLLCALL_DETECTOR",
    "ROLLCALL_EMBEDDER",
    "ROLLCALL_NO_MOSAIC",
    "ROLLCALL_LOG",
    "ORT_DYLIB_PATH",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    #[serde(default = "default_data")]
    pub data: PathBuf,
    #[serde(default)]
    pub school: Option<String>,
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default = "default_finalize")]
    pub finalize_every_s: u64,
    #[serde(default)]
    pub cameras: Vec<CameraConfig>,
    /// Largest HTTP request body (photo uploads included), bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// `/metrics` without authentication; `false`: admin or manager only.
    #[serde(default = "default_true")]
    pub metrics_public: bool,
    /// Inference workers (each with its own ONNX sessions); default: the cores.
    #[serde(default)]
    pub workers: Option<usize>,
    /// Create the embedded gallery in the memory-lean layout (as `ROLLCALL_GALLERY_LEAN=1`).
    #[serde(default)]
    pub gallery_lean: bool,
}

fn default_max_body() -> usize {
    10 * 1024 * 1024
}
fn default_true() -> bool {
    true
}

fn default_data() -> PathBuf {
    PathBuf::from("data")
}
fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_finalize() -> u64 {
    60
}

impl ServeConfig {
    /// Reads the file, then applies the environment overrides.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut c: ServeConfig =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if let Some(v) = std::env::var_os("ROLLCALL_DATA") {
            c.data = PathBuf::from(v);
        }
        if let Ok(v) = std::env::var("ROLLCALL_SCHOOL") {
            c.school = Some(v);
        }
        if let Ok(v) = std::env::var("ROLLCALL_LISTEN") {
            c.listen = v;
        }
        let mut ids = std::collections::BTreeSet::new();
        for cam in &c.cameras {
            cam.validate_settings()
                .with_context(|| format!("camera {}", cam.id))?;
            if !ids.insert(cam.id.clone()) {
                return Err(anyhow!("camera id {} is used twice", cam.id));
            }
        }
        Ok(c)
    }
}

/// Counters behind `/metrics` and `/healthz`.
#[derive(Default)]
struct Metrics {
    frames: BTreeMap<String, u64>,
    faces: u64,
    decisions: BTreeMap<&'static str, u64>,
    check_ins_committed: u64,
    check_in_errors: u64,
    camera_state: BTreeMap<String, String>,
    frame_to_decision_ms: Latencies,
    first_frame_to_commit_ms: Latencies,
    capture: BTreeMap<String, rollcall_capture::CaptureCounters>,
    /// Frames replaced in the inference pool's slot before a worker took them.
    inference_dropped: BTreeMap<String, u64>,
    /// The notification outbox (school, counts), refreshed every second.
    outbox: Option<(String, rollcall_ledger::OutboxCounts)>,
}

type Shared = Arc<Mutex<Metrics>>;

fn lock(m: &Shared) -> std::sync::MutexGuard<'_, Metrics> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn prometheus(m: &Metrics) -> String {
    let mut s = String::new();
    let esc = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    s += "# TYPE rollcall_frames_in_total counter\n";
    for (cam, c) in &m.capture {
        s += &format!(
            "rollcall_frames_in_total{{camera=\"{}\"}} {}\n",
            esc(cam),
            c.frames_in
        );
    }
    s += "# TYPE rollcall_frames_dropped_total counter\n";
    for (cam, c) in &m.capture {
        s += &format!(
            "rollcall_frames_dropped_total{{camera=\"{}\"}} {}\n",
            esc(cam),
            c.frames_dropped
        );
    }
    s += "# TYPE rollcall_inference_dropped_total counter\n";
    for (cam, n) in &m.inference_dropped {
        s += &format!(
            "rollcall_inference_dropped_total{{camera=\"{}\"}} {n}\n",
            esc(cam)
        );
    }
    s += "# TYPE rollcall_frames_processed_total counter\n";
    for (cam, n) in &m.frames {
        s += &format!(
            "rollcall_frames_processed_total{{camera=\"{}\"}} {n}\n",
            esc(cam)
        );
    }
    s += "# TYPE rollcall_reconnects_total counter\n";
    for (cam, c) in &m.capture {
        s += &format!(
            "rollcall_reconnects_total{{camera=\"{}\"}} {}\n",
            esc(cam),
            c.reconnects
        );
    }
    s += &format!(
        "# TYPE rollcall_faces_total counter\nrollcall_faces_total {}\n",
        m.faces
    );
    s += "# TYPE rollcall_decisions_total counter\n";
    for band in ["accept", "review", "unknown"] {
        s += &format!(
            "rollcall_decisions_total{{band=\"{band}\"}} {}\n",
            m.decisions.get(band).copied().unwrap_or(0)
        );
    }
    s += &format!(
        "# TYPE rollcall_check_ins_committed_total counter\nrollcall_check_ins_committed_total {}\n",
        m.check_ins_committed
    );
    s += &format!(
        "# TYPE rollcall_check_in_errors_total counter\nrollcall_check_in_errors_total {}\n",
        m.check_in_errors
    );
    for (name, v) in [
        ("rollcall_frame_to_decision_ms", &m.frame_to_decision_ms),
        (
            "rollcall_first_frame_to_commit_ms",
            &m.first_frame_to_commit_ms,
        ),
    ] {
        s += &format!("# TYPE {name} summary\n");
        for q in [0.5, 0.99] {
            if let Some(x) = v.percentile(q) {
                s += &format!("{name}{{quantile=\"{q}\"}} {x}\n");
            }
        }
        s += &format!("{name}_count {}\n", v.count);
    }
    if let Some((school, c)) = &m.outbox {
        s += &rollcall_notify::metrics_text(school, c);
    }
    s += "# TYPE rollcall_camera_up gauge\n";
    for (cam, st) in &m.camera_state {
        let up = matches!(st.as_str(), "online" | "connecting") as u8;
        s += &format!(
            "rollcall_camera_up{{camera=\"{}\",state=\"{st}\"}} {up}\n",
            esc(cam)
        );
    }
    s
}

/// What the API reads from this process: health, metrics and camera states; and the face
/// work the API asks for (photo enrollment, complete erasure) on this process's gallery.
struct ServeOps {
    metrics: Shared,
    face: Option<FaceOps>,
    /// The retention periods the hourly job enforces.
    retention: rollcall_gallery::privacy::RetentionConfig,
}

/// Enrollment and erasure for the API: its own pipeline (behind a lock: one enrollment at a
/// time), the shared gallery, the school's store and the template keys.
struct FaceOps {
    pipeline: tokio::sync::Mutex<rollcall_vision::FacePipeline>,
    gallery: Arc<dyn rollcall_domain::gallery::Gallery>,
    store: Store,
    tenant: TenantId,
    keys: rollcall_gallery::vault::Keyring,
    data: PathBuf,
}

fn api_error(code: &'static str, e: impl std::fmt::Display) -> rollcall_api::error::ApiError {
    rollcall_api::error::ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        code,
        e.to_string(),
    )
}

fn unavailable(what: &'static str) -> rollcall_api::error::ApiError {
    rollcall_api::error::ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        what,
        "face work is not available in this process (no template key: set ROLLCALL_TEMPLATE_KEYS)",
    )
}

impl ServeOps {
    /// The face work of this process (or 503 `unavailable`) and the student id (or 422).
    fn face_for(
        &self,
        student: &str,
        unavailable_code: &'static str,
    ) -> Result<(&FaceOps, rollcall_domain::StudentId), rollcall_api::error::ApiError> {
        let f = self
            .face
            .as_ref()
            .ok_or_else(|| unavailable(unavailable_code))?;
        let sid = rollcall_domain::StudentId::new(student)
            .map_err(|e| api_error("invalid_student", e))?;
        Ok((f, sid))
    }
}

impl rollcall_api::Ops for ServeOps {
    fn retention_policy(&self) -> serde_json::Value {
        serde_json::to_value(&self.retention).unwrap_or(serde_json::Value::Null)
    }
    fn health(&self) -> serde_json::Value {
        let m = lock(&self.metrics);
        serde_json::json!({
            "status": "ok",
            "cameras": m.camera_state,
            "check_ins_committed": m.check_ins_committed,
        })
    }
    fn metrics(&self) -> String {
        prometheus(&lock(&self.metrics))
    }
    fn camera_states(&self) -> BTreeMap<String, String> {
        lock(&self.metrics).camera_state.clone()
    }
    fn enroll_photo<'a>(
        &'a self,
        student: &'a str,
        image: Vec<u8>,
    ) -> rollcall_api::BoxFut<'a, Result<serde_json::Value, rollcall_api::error::ApiError>> {
        Box::pin(async move {
            let (f, sid) = self.face_for(student, "enrollment_unavailable")?;
            let mut p = f.pipeline.lock().await;
            let cfg =
                rollcall_gallery::enroll::EnrollConfig::new(f.data.join("crops"), p.thresholds());
            let report = rollcall_gallery::enroll::enroll(
                &mut p,
                f.gallery.as_ref(),
                &rollcall_gallery::enroll::Safeguards {
                    store: &f.store,
                    keys: &f.keys,
                },
                &cfg,
                rollcall_gallery::enroll::EnrollRequest {
                    tenant: f.tenant.clone(),
                    student: sid,
                    campuses: Vec::new(),
                    photos: vec![("upload".into(), image)],
                    now: Utc::now(),
                },
            )
            .await
            .map_err(|e| match e {
                rollcall_gallery::enroll::EnrollError::Consent(c) => {
                    rollcall_api::error::ApiError::new(
                        axum::http::StatusCode::CONFLICT,
                        "consent_required",
                        c.to_string(),
                    )
                }
                other => api_error("enrollment_failed", other),
            })?;
            serde_json::to_value(report).map_err(|e| api_error("enrollment_failed", e))
        })
    }
    fn export<'a>(
        &'a self,
        student: &'a str,
    ) -> rollcall_api::BoxFut<'a, Result<serde_json::Value, rollcall_api::error::ApiError>> {
        Box::pin(async move {
            let (f, sid) = self.face_for(student, "export_unavailable")?;
            let now = Utc::now();
            let out = f.data.join("exports").join(format!(
                "{}-{}",
                rollcall_gallery::enroll::path_component(student),
                now.format("%Y%m%dT%H%M%S%.3fZ")
            ));
            let r = rollcall_gallery::privacy::export_student(
                f.gallery.as_ref(),
                &f.store,
                &f.data,
                &f.tenant,
                &sid,
                &out,
                now,
            )
            .await
            .map_err(|e| api_error("export_failed", e))?;
            // the export changes no table, but personal data left the system: the student's
            // audit trail records it (the staff member through the API's actor context)
            let rel =
                |p: &std::path::Path| p.strip_prefix(&f.data).unwrap_or(p).display().to_string();
            let detail = serde_json::json!({
                "json": rel(&r.json),
                "photos": r.photos.len(),
                "biometric_data_held": r.biometric_data_held,
            });
            f.store
                .audit_privacy_event(
                    "api",
                    "subject_access_export",
                    student,
                    &detail.to_string(),
                    now,
                )
                .await
                .map_err(|e| api_error("export_failed", e))?;
            serde_json::to_value(r).map_err(|e| api_error("export_failed", e))
        })
    }
    fn withdraw_consent<'a>(
        &'a self,
        student: &'a str,
        by: &'a str,
        document_ref: Option<String>,
    ) -> rollcall_api::BoxFut<'a, Result<serde_json::Value, rollcall_api::error::ApiError>> {
        Box::pin(async move {
            let (f, sid) = self.face_for(student, "consent_unavailable")?;
            let r = rollcall_gallery::privacy::withdraw_consent(
                f.gallery.as_ref(),
                &f.store,
                &f.data,
                &f.tenant,
                &sid,
                by,
                document_ref,
                Utc::now(),
            )
            .await
            .map_err(|e| api_error("withdrawal_failed", e))?;
            serde_json::to_value(r).map_err(|e| api_error("withdrawal_failed", e))
        })
    }
    fn erase<'a>(
        &'a self,
        student: &'a str,
    ) -> rollcall_api::BoxFut<'a, Result<serde_json::Value, rollcall_api::error::ApiError>> {
        Box::pin(async move {
            let (f, sid) = self.face_for(student, "erasure_unavailable")?;
            let actor = rollcall_ledger::current_actor()
                .map(|a| a.name)
                .unwrap_or_else(|| "api".into());
            let receipt = rollcall_gallery::privacy::erase_student(
                f.gallery.as_ref(),
                &f.store,
                &f.data,
                &f.tenant,
                &sid,
                &actor,
                rollcall_gallery::privacy::ErasureReason::Request,
                Utc::now(),
            )
            .await
            .map_err(|e| api_error("erasure_failed", e))?;
            serde_json::to_value(receipt).map_err(|e| api_error("erasure_failed", e))
        })
    }
}

fn health_state(h: &CameraHealth) -> Option<&'static str> {
    Some(match h {
        CameraHealth::Online { .. } => "online",
        CameraHealth::Offline { .. } | CameraHealth::Reconnecting { .. } => "offline",
        CameraHealth::Stale { .. } => "stale",
        CameraHealth::Ended => "ended",
        CameraHealth::ResolutionChanged { .. } => return None,
    })
}

/// A check-in waiting for the ledger, with the time its track was first seen.
struct Pending {
    check_in: CheckIn,
    first_seen: chrono::DateTime<Utc>,
}

/// The most check-ins the ledger writer commits in one transaction.
const LEDGER_BATCH: usize = 64;

/// Commits check-ins, retrying (with capped backoff) until the ledger takes them: nothing is
/// dropped. The event key makes retries and other processes' reports of the same track safe.
/// Group commit: the check-ins that queued up while a transaction committed share the next
/// one ([`rollcall_ledger::Store::check_in_batch`]); a lone check-in commits at once.
async fn ledger_writer(store: Store, mut rx: mpsc::Receiver<Pending>, metrics: Shared) {
    let mut batch: Vec<Pending> = Vec::with_capacity(LEDGER_BATCH);
    while let Some(p) = rx.recv().await {
        batch.push(p);
        while batch.len() < LEDGER_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let cis: Vec<CheckIn> = batch.iter().map(|p| p.check_in.clone()).collect();
        let results = store.check_in_batch(&cis).await;
        for (p, r) in batch.drain(..).zip(results) {
            match r {
                Ok(r) => committed(&metrics, &p, &r),
                Err(e) if permanent(&e) => refused(&metrics, &e),
                Err(e) => {
                    tracing::warn!(error = %e, "check-in failed; retrying");
                    lock(&metrics).check_in_errors += 1;
                    retry_check_in(&store, &p, &metrics).await;
                }
            }
        }
    }
}

/// A refusal that retrying cannot change (e.g. the student was deleted).
fn permanent(e: &rollcall_ledger::LedgerError) -> bool {
    matches!(
        e,
        rollcall_ledger::LedgerError::NotFound { .. }
            | rollcall_ledger::LedgerError::Invalid { .. }
    )
}

fn committed(metrics: &Shared, p: &Pending, r: &rollcall_ledger::CheckInResult) {
    tracing::info!(student = %r.student_id, outcome = ?r.outcome, "check-in committed");
    let mut m = lock(metrics);
    m.check_ins_committed += 1;
    let ms = (Utc::now() - p.first_seen).num_microseconds().unwrap_or(0);
    m.first_frame_to_commit_ms.push(ms as f64 / 1e3);
}

fn refused(metrics: &Shared, e: &rollcall_ledger::LedgerError) {
    tracing::error!(error = %e, "check-in refused by the ledger");
    lock(metrics).check_in_errors += 1;
}

async fn retry_check_in(store: &Store, p: &Pending, metrics: &Shared) {
    let mut delay = Duration::from_millis(50);
    loop {
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
        match store.check_in(&p.check_in).await {
            Ok(r) => return committed(metrics, p, &r),
            Err(e) if permanent(&e) => return refused(metrics, &e),
            Err(e) => {
                tracing::warn!(error = %e, "check-in failed; retrying");
                lock(metrics).check_in_errors += 1;
            }
        }
    }
}

pub async fn run(v: &VisionOpts, config: &Path) -> anyhow::Result<()> {
    let cfg = ServeConfig::load(config)?;
    let data = DataOpts {
        data: cfg.data.clone(),
        school: cfg.school.clone(),
        qdrant_url: std::env::var("QDRANT_URL").ok(),
        qdrant_api_key: std::env::var("QDRANT_API_KEY").ok(),
        qdrant_collection: std::env::var("QDRANT_COLLECTION")
            .unwrap_or_else(|_| "rollcall_faces".into()),
        gallery_lean: cfg.gallery_lean || crate::cmd_gallery::lean_from_env()?,
    };
    let store = open_school(&data, false).await?;
    let tenant = TenantId::new(store.school_id()).map_err(|e| anyhow!("school id: {e}"))?;
    for cam in &cfg.cameras {
        // Cameras are registered in the ledger on first start; an existing one is kept.
        let _ = store
            .create_campus(cam.campus.as_str(), cam.campus.as_str())
            .await;
        let _ = store
            .create_camera(
                cam.id.as_str(),
                cam.campus.as_str(),
                cam.door.as_deref().unwrap_or(""),
            )
            .await;
    }
    let p = v.open()?;
    let gallery = open_gallery(&data, dim_of(&p)).await?;
    let mut rec = Recognizer::new(p, gallery, tenant)?;
    // review crops: `crops/review/<file>` under the data directory (the API serves them from
    // there; the retention job deletes them by age)
    let crops_dir = cfg.data.clone();
    let retention_cfg = rollcall_gallery::privacy::RetentionConfig::from_env()
        .map_err(|e| anyhow!("retention settings: {e}"))?;
    // Enrollment and erasure through the API need the template keys; without them those two
    // routes answer 503 and the rest works.
    let face = match rollcall_gallery::vault::Keyring::from_env() {
        Ok(Some(keys)) => Some(FaceOps {
            pipeline: tokio::sync::Mutex::new(v.open()?),
            gallery: rec.gallery.clone(),
            store: store.clone(),
            tenant: rec.tenant.clone(),
            keys,
            data: cfg.data.clone(),
        }),
        Ok(None) => None,
        Err(e) => return Err(anyhow!("ROLLCALL_TEMPLATE_KEYS: {e}")),
    };
    let metrics: Shared = Arc::new(Mutex::new(Metrics::default()));

    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    eprintln!("rollcall serve: listening on {}", listener.local_addr()?);
    let app = rollcall_api::router(rollcall_api::AppState::new(
        store.clone(),
        rollcall_api::ApiConfig {
            max_body_bytes: cfg.max_body_bytes,
            metrics_public: cfg.metrics_public,
            data_dir: cfg.data.clone(),
            ..Default::default()
        },
        Arc::new(ServeOps {
            metrics: metrics.clone(),
            face,
            retention: retention_cfg.clone(),
        }),
    ));
    tokio::spawn(async move {
        let svc = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        if let Err(e) = axum::serve(listener, svc).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });

    let (htx, hrx) = std::sync::mpsc::channel::<HealthEvent>();
    let (handles, failed) = spawn_cameras(&cfg.cameras, Arc::new(htx));
    for (id, e) in &failed {
        tracing::error!(camera = %id, error = %e, "camera not started");
        lock(&metrics)
            .camera_state
            .insert(id.to_string(), "failed".into());
    }
    let campus_of: BTreeMap<_, _> = cfg
        .cameras
        .iter()
        .map(|c| (c.id.clone(), c.campus.clone()))
        .collect();
    for h in &handles {
        rec.add_camera(h.camera().clone(), campus_of[h.camera()].clone())?;
        lock(&metrics)
            .camera_state
            .insert(h.camera().to_string(), "connecting".into());
    }

    // The inference stage: one worker per core, each with its own sessions (intra-op threads
    // 1), fed latest-frame-wins per camera.
    let workers = cfg.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let (atx, mut arx) = mpsc::channel::<Analyzed>(64);
    let pool = {
        let mut one = v.clone();
        one.threads = 1;
        InferencePool::start(
            workers,
            handles.len(),
            handles.len().max(1),
            || one.open(),
            atx,
        )?
    };
    let mut best_crops = BestCrops::default();

    // Notifications: the outbox dispatcher, channels from the environment (ROLLCALL_WEBHOOK_URL
    // and _SECRET, ROLLCALL_SMTP_*; the log channel otherwise), as `rollcall notify run`.
    let channels = rollcall_notify::ChannelConfig::default()
        .with_env()
        .context("notification channels")?
        .build()
        .context("notification channels")?;
    let dispatcher =
        rollcall_notify::spawn_dispatcher(store.clone(), channels, Default::default())?;

    // Retention of biometric data (PRIVACY.md): hourly, idempotent, counts logged.
    let retention = {
        let cfg_r = retention_cfg.clone();
        let (gallery, store, tenant, data) = (
            rec.gallery.clone(),
            store.clone(),
            rec.tenant.clone(),
            cfg.data.clone(),
        );
        tokio::spawn(async move {
            let mut t = tokio::time::interval(Duration::from_secs(3600));
            loop {
                t.tick().await;
                match rollcall_gallery::privacy::run_retention(
                    gallery.as_ref(),
                    &store,
                    &data,
                    &tenant,
                    Utc::now(),
                    &cfg_r,
                )
                .await
                {
                    Ok(r) => tracing::info!(report = ?r, "retention run"),
                    Err(e) => tracing::warn!(error = %e, "retention run failed; will retry"),
                }
            }
        })
    };

    let (tx, rx) = mpsc::channel::<Pending>(1024);
    let writer = tokio::spawn(ledger_writer(store.clone(), rx, metrics.clone()));
    let finalizer = {
        let store = store.clone();
        let every = Duration::from_secs(cfg.finalize_every_s.max(1));
        tokio::spawn(async move {
            let mut t = tokio::time::interval(every);
            loop {
                t.tick().await;
                if let Err(e) = store.finalize(Utc::now()).await {
                    tracing::warn!(error = %e, "finalisation failed; will retry");
                }
            }
        })
    };

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut last_tick = Instant::now();
    let mut outages: BTreeMap<String, i64> = BTreeMap::new();
    loop {
        // Health events (from capture and watchdog threads).
        while let Ok(ev) = hrx.try_recv() {
            tracing::info!(camera = %ev.camera, health = ?ev.health, "camera health");
            if let Some(st) = health_state(&ev.health) {
                lock(&metrics)
                    .camera_state
                    .insert(ev.camera.to_string(), st.into());
            }
            camera_alert(&store, &mut outages, &ev).await;
        }
        // Frames from the capture threads into the inference pool.
        for (i, h) in handles.iter().enumerate() {
            if let Some(cf) = h.frames().try_take() {
                pool.submit(
                    i,
                    Job {
                        frame: cf.frame,
                        at: cf.captured_at,
                        captured: cf.captured_instant,
                    },
                );
            }
        }
        // Analysed frames through gallery search, tracker and matcher (in capture order per
        // camera).
        let mut worked = false;
        while let Ok(a) = arx.try_recv() {
            worked = true;
            let h = &handles[a.camera];
            let cam = h.camera().clone();
            let campus = campus_of[&cam].clone();
            let faces = match a.faces {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(camera = %cam, error = %e, "inference failed on a frame");
                    continue;
                }
            };
            let qualities: Vec<f32> = faces.iter().map(|f| f.quality.overall).collect();
            let out = rec
                .on_analyzed(&cam, &campus, a.at, faces, a.captured)
                .await?;
            best_crops.update(&out.tracks, &qualities, a.crops);
            {
                let mut m = lock(&metrics);
                *m.frames.entry(cam.to_string()).or_default() += 1;
                m.faces = rec.faces;
                if !out.decisions.is_empty() {
                    m.frame_to_decision_ms
                        .push(a.captured.elapsed().as_secs_f64() * 1e3);
                }
                m.capture.insert(cam.to_string(), h.counters());
                m.inference_dropped
                    .insert(cam.to_string(), pool.counters(a.camera).dropped);
            }
            for d in out.decisions {
                let crop = best_crops.take_saved(&d, &crops_dir);
                send(&tx, &metrics, &store, d, crop).await;
            }
        }
        if last_tick.elapsed() > Duration::from_secs(1) {
            last_tick = Instant::now();
            for d in rec.engine.tick(Utc::now()) {
                let crop = best_crops.take_saved(&d, &crops_dir);
                send(&tx, &metrics, &store, d, crop).await;
            }
            let counts = store.outbox_counts(Utc::now()).await;
            let mut m = lock(&metrics);
            for h in &handles {
                m.capture.insert(h.camera().to_string(), h.counters());
            }
            if let Ok(c) = counts {
                m.outbox = Some((store.school_id().to_string(), c));
            }
        }
        if !worked {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
    }
    eprintln!("rollcall serve: shutting down");
    let cam_list: Vec<_> = handles.iter().map(|h| h.camera().clone()).collect();
    for h in handles {
        h.stop();
    }
    // frames in flight finish; their results are matched before the open tracks are decided
    pool.stop();
    while let Ok(a) = arx.try_recv() {
        if let Ok(faces) = a.faces {
            if let Some(cam) = cam_list.get(a.camera).cloned() {
                let campus = campus_of[&cam].clone();
                if let Ok(out) = rec
                    .on_analyzed(&cam, &campus, a.at, faces, a.captured)
                    .await
                {
                    for d in out.decisions {
                        let crop = best_crops.take_saved(&d, &crops_dir);
                        send(&tx, &metrics, &store, d, crop).await;
                    }
                }
            }
        }
    }
    for d in rec.engine.finish(Utc::now()) {
        let crop = best_crops.take_saved(&d, &crops_dir);
        send(&tx, &metrics, &store, d, crop).await;
    }
    drop(tx);
    // Every queued check-in is committed before the stores close.
    let _ = writer.await;
    finalizer.abort();
    retention.abort();
    dispatcher.shutdown().await;
    store.close().await;
    eprintln!(
        "rollcall serve: stopped; {} check-ins committed",
        lock(&metrics).check_ins_committed
    );
    Ok(())
}

/// The best-quality aligned crop of each open track (what a review item shows staff).
#[derive(Default)]
struct BestCrops {
    by_track: std::collections::HashMap<rollcall_domain::matcher::tracker::TrackId, (f32, Frame)>,
}

impl BestCrops {
    /// Bound on tracks held (a track normally leaves with its decision).
    const MAX: usize = 4096;

    fn update(
        &mut self,
        tracks: &[rollcall_domain::matcher::tracker::TrackId],
        qualities: &[f32],
        crops: Vec<Frame>,
    ) {
        for ((t, q), crop) in tracks.iter().zip(qualities).zip(crops) {
            match self.by_track.get(t) {
                Some((best, _)) if *best >= *q => {}
                _ => {
                    if self.by_track.len() >= Self::MAX && !self.by_track.contains_key(t) {
                        continue;
                    }
                    self.by_track.insert(t.clone(), (*q, crop));
                }
            }
        }
    }

    /// Removes the track's crop; for a review decision, writes it as a JPEG under
    /// `data_dir/crops/review/` and returns its path relative to `data_dir`.
    fn take_saved(&mut self, d: &Decision, dir: &Path) -> Option<PathBuf> {
        let (_, crop) = self.by_track.remove(&d.track)?;
        if !matches!(d.outcome, Outcome::Review(_)) {
            return None;
        }
        let name = format!(
            "{}-{}-{}.jpg",
            d.track.camera,
            d.track.seq,
            d.first_seen.timestamp_millis()
        );
        let rel = Path::new("crops")
            .join("review")
            .join(rollcall_gallery::enroll::path_component(&name));
        let path = dir.join(&rel);
        let write = || -> anyhow::Result<()> {
            std::fs::create_dir_all(path.parent().unwrap_or(dir))?;
            let img = image::RgbImage::from_raw(crop.width(), crop.height(), crop.rgb().to_vec())
                .context("crop size")?;
            img.save_with_format(&path, image::ImageFormat::Jpeg)?;
            Ok(())
        };
        match write() {
            Ok(()) => Some(rel),
            Err(e) => {
                tracing::warn!(error = %e, "cannot save the review crop");
                None
            }
        }
    }
}

async fn send(
    tx: &mpsc::Sender<Pending>,
    metrics: &Shared,
    store: &Store,
    d: Decision,
    crop: Option<PathBuf>,
) {
    *lock(metrics).decisions.entry(d.kind()).or_default() += 1;
    let line = d.line();
    if let Outcome::Review(r) = &d.outcome {
        // The review queue (idempotent on the track key); a ledger error is logged, not fatal.
        let item = NewReviewItem {
            campus_id: d.campus.to_string(),
            camera_id: Some(line.camera.clone()),
            track_key: crate::cmd_watch::track_key(&d),
            seen_at: d.first_seen,
            reason: serde_json::to_value(r.reason)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_else(|| format!("{:?}", r.reason)),
            crop_path: crop.map(|p| p.display().to_string()),
            candidates: r
                .candidates
                .iter()
                .map(|c| ReviewCandidate {
                    student_id: c.student.to_string(),
                    score: c.similarity,
                })
                .collect(),
        };
        if let Err(e) = store.create_review_item(&item).await {
            tracing::warn!(error = %e, "cannot queue the review item");
        }
    }
    tracing::info!(decision = %line.decision, student = ?line.student, camera = %line.camera, track = line.track, "decision");
    if let Some(ci) = crate::cmd_watch::face_check_in(&d) {
        // One event per track: a retry or a second report of this track is a no-op.
        // A full channel waits (back-pressure on recognition); it never drops a check-in.
        let _ = tx
            .send(Pending {
                check_in: ci,
                first_seen: d.first_seen,
            })
            .await;
    }
}

/// Camera health into the ledger's alerts: one `camera_offline` alert per outage (offline or
/// stale), resolved when frames arrive again. A ledger error is logged, never fatal.
async fn camera_alert(store: &Store, outages: &mut BTreeMap<String, i64>, ev: &HealthEvent) {
    let cam = ev.camera.to_string();
    let reason = match &ev.health {
        CameraHealth::Offline { reason } => format!("offline ({reason})"),
        CameraHealth::Stale { since } => format!("no frame since {since}"),
        CameraHealth::Online { .. } => {
            if outages.remove(&cam).is_some() {
                if let Err(e) = store.resolve_camera_alerts(&cam).await {
                    tracing::warn!(camera = %cam, error = %e, "cannot resolve camera alert");
                }
            }
            return;
        }
        _ => return,
    };
    let since = *outages
        .entry(cam.clone())
        .or_insert_with(|| ev.at.timestamp_millis());
    let key = format!("camera:{cam}:{since}");
    if let Err(e) = store.raise_camera_alert(&cam, &key, &reason, ev.at).await {
        tracing::warn!(camera = %cam, error = %e, "cannot record camera alert");
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
