//! `rollcall serve --config rollcall.toml`: the live path of `rollcall-runtime` (cameras →
//! capture threads, latest frame wins → the inference pool → gallery search, tracker and
//! debounced matcher → the decision sink: check-ins through group commit with retries and
//! parking, review items with the track's best crop; lesson-end finalisation on a timer);
//! `/healthz` and `/metrics`, the API and the staff app over HTTP (rollcall-api); the
//! notification dispatcher (rollcall-notify);
//! the hourly retention job for biometric data (PRIVACY.md); enrollment and erasure for the
//! API when `ROLLCALL_TEMPLATE_KEYS` is set;
//! graceful shutdown on SIGTERM / Ctrl-C (cameras stopped, open tracks
//! decided, queued check-ins committed, stores closed).
//!
//! Config (TOML; environment overrides: `ROLLCALL_DATA`, `ROLLCALL_SCHOOL`, `ROLLCALL_LISTEN`,
//! `ROLLCALL_INSTANCE`,
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
use anyhow::{anyhow, Context};
use rollcall_capture::CameraConfig;
use rollcall_domain::TenantId;
use rollcall_ledger::Store;
use rollcall_runtime::live::{Live, LiveConfig};
use rollcall_runtime::{
    DecisionSink, FaceAnalyzer, GroupPort, LedgerWriter, Recognizer, RetryPolicy,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Every environment variable `rollcall serve` reads (its own, the global vision options, and
/// those of the stages it runs: gallery, template keys, retention, notification channels,
/// logging). The files under `deploy/` are checked against this list (`deploy_check`).
#[cfg_attr(not(test), allow(dead_code))] // read by the deploy check only
pub const SERVE_ENV: &[&str] = &[
    "ROLLCALL_DATA",
    "ROLLCALL_SCHOOL",
    "ROLLCALL_LISTEN",
    "ROLLCALL_INSTANCE",
    "DATABASE_URL",
    "QDRANT_URL",
    "QDRANT_API_KEY",
    "QDRANT_COLLECTION",
    "QDRANT_SHARDS",
    "QDRANT_REPLICATION_FACTOR",
    "QDRANT_WRITE_CONSISTENCY_FACTOR",
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
    "ROLLCALL_SMTP_TLS",
    "ROLLCALL_SMTP_USERNAME",
    "ROLLCALL_SMTP_PASSWORD",
    "ROLLCALL_SMTP_CA_FILE",
    "ROLLCALL_WEBHOOK_ALLOW_HTTP",
    "ROLLCALL_WEBHOOK_CA_FILE",
    "ROLLCALL_MODELS_DIR",
    "ROLLCALL_MANIFESTS_DIR",
    "ROLLCALL_DETECTOR",
    "ROLLCALL_EMBEDDER",
    "ROLLCALL_NO_MOSAIC",
    "ROLLCALL_CAMERA_MEAN_WEIGHT",
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
    /// Mark the session cookie `Secure` (set when the staff app is served over HTTPS, e.g.
    /// behind a TLS-terminating proxy).
    #[serde(default)]
    pub secure_cookies: bool,
    /// Addresses of reverse proxies whose `X-Forwarded-For` names the client (login delays,
    /// audit trail). Empty: the peer address.
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// This process's name among the serves sharing one data directory (a chain's replicas,
    /// `deploy/docker-compose.yml`): its heartbeat is `DATA/{instance}.heartbeat`, so one
    /// replica's clean stop or crash says nothing about another's cameras. Letters, digits,
    /// `-` and `_`.
    #[serde(default = "default_instance")]
    pub instance: String,
}

fn default_instance() -> String {
    "serve".into()
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
    /// `DATA/{instance}.heartbeat`.
    pub fn heartbeat(&self) -> PathBuf {
        self.data.join(format!("{}.heartbeat", self.instance))
    }

    /// Reads the file, then applies the environment overrides, then checks the result.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text, |k| std::env::var(k).ok())
            .with_context(|| format!("serve config {}", path.display()))
    }

    /// Parses config text, applies the overrides `env` gives (`ROLLCALL_DATA`,
    /// `ROLLCALL_SCHOOL`, `ROLLCALL_LISTEN`, `ROLLCALL_INSTANCE`), and checks the result.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let mut c: ServeConfig = toml::from_str(text)?;
        if let Some(v) = env("ROLLCALL_DATA") {
            c.data = PathBuf::from(v);
        }
        if let Some(v) = env("ROLLCALL_SCHOOL") {
            c.school = Some(v);
        }
        if let Some(v) = env("ROLLCALL_LISTEN") {
            c.listen = v;
        }
        if let Some(v) = env("ROLLCALL_INSTANCE") {
            c.instance = v;
        }
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.instance.is_empty()
            || self.instance.len() > 64
            || !self
                .instance
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            return Err(anyhow!(
                "instance {:?}: 1 to 64 letters, digits, '-' or '_'",
                self.instance
            ));
        }
        let mut ids = std::collections::BTreeSet::new();
        for cam in &self.cameras {
            cam.validate_settings()
                .with_context(|| format!("camera {}", cam.id))?;
            if !ids.insert(cam.id.clone()) {
                return Err(anyhow!("camera id {} is used twice", cam.id));
            }
        }
        Ok(())
    }
}

type Shared = rollcall_runtime::metrics::SharedMetrics;

fn lock(m: &Shared) -> std::sync::MutexGuard<'_, rollcall_runtime::metrics::Metrics> {
    rollcall_runtime::metrics::lock(m)
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
    pipeline: rollcall_runtime::enrollment::SharedPipeline,
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
        serde_json::to_value(lock(&self.metrics).health()).unwrap_or(serde_json::Value::Null)
    }
    fn metrics(&self) -> String {
        lock(&self.metrics).prometheus()
    }
    fn camera_states(&self) -> BTreeMap<String, String> {
        lock(&self.metrics).camera_state.clone()
    }
    // EnrollError is large; it lives only as long as this request
    #[allow(clippy::result_large_err)]
    fn enroll_photo<'a>(
        &'a self,
        student: &'a str,
        image: Vec<u8>,
    ) -> rollcall_api::BoxFut<'a, Result<serde_json::Value, rollcall_api::error::ApiError>> {
        Box::pin(async move {
            let (f, sid) = self.face_for(student, "enrollment_unavailable")?;
            let thresholds = f.pipeline.lock().await.thresholds();
            let cfg =
                rollcall_runtime::enrollment::EnrollConfig::new(f.data.join("crops"), thresholds);
            let safeguards = rollcall_runtime::enrollment::Safeguards {
                store: &f.store,
                keys: &f.keys,
            };
            // Detection, alignment and embedding (seconds of CPU) run on the blocking pool
            // inside `enroll`, so other requests and the live path's tasks are not held up.
            let report = rollcall_runtime::enrollment::enroll(
                &f.pipeline,
                f.gallery.as_ref(),
                &safeguards,
                &cfg,
                rollcall_runtime::enrollment::EnrollRequest {
                    tenant: f.tenant.clone(),
                    student: sid,
                    campuses: Vec::new(),
                    photos: vec![("upload".into(), image)],
                    now: f.store.now(),
                },
            )
            .await
            .map_err(|e| match e {
                rollcall_runtime::enrollment::EnrollError::Consent(c) => {
                    rollcall_api::error::ApiError::new(
                        axum::http::StatusCode::CONFLICT,
                        "consent_required",
                        c.to_string(),
                    )
                }
                // the gallery (a Qdrant server or cluster) cannot be reached: nothing was
                // indexed and the sealed copy was removed again; try again later
                rollcall_runtime::enrollment::EnrollError::Gallery(g) if g.is_transient() => {
                    rollcall_api::error::ApiError::new(
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "gallery_unavailable",
                        format!("the face gallery cannot be reached now; no template was kept, try again later ({g})"),
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
            let now = f.store.now();
            // handed to the caller whole; nothing of it stays under the data directory
            let bundle = rollcall_gallery::privacy::export_student_bundle(
                f.gallery.as_ref(),
                &f.store,
                &f.data,
                &f.tenant,
                &sid,
                now,
            )
            .await
            .map_err(|e| api_error("export_failed", e))?;
            // the export changes no table, but personal data left the system: the student's
            // audit trail records it (the staff member through the API's actor context)
            let detail = serde_json::json!({
                "delivered": "download",
                "photos": bundle["photos"].as_array().map_or(0, Vec::len),
                "biometric_data_held": bundle["biometric_data_held"],
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
            Ok(bundle)
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
                f.store.now(),
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
                f.store.now(),
            )
            .await
            .map_err(|e| api_error("erasure_failed", e))?;
            serde_json::to_value(receipt).map_err(|e| api_error("erasure_failed", e))
        })
    }
}

pub async fn run(v: &VisionOpts, config: &Path) -> anyhow::Result<()> {
    let term = install_term();
    let cfg = ServeConfig::load(config)?;
    let tracker_config = v.tracker_config()?;
    let data = DataOpts {
        data: cfg.data.clone(),
        school: cfg.school.clone(),
        qdrant_url: std::env::var("QDRANT_URL").ok(),
        qdrant_api_key: std::env::var("QDRANT_API_KEY").ok(),
        qdrant_collection: std::env::var("QDRANT_COLLECTION")
            .unwrap_or_else(|_| "rollcall_faces".into()),
        gallery_lean: cfg.gallery_lean || crate::cmd_gallery::lean_from_env()?,
        qdrant_layout: crate::cmd_gallery::QdrantLayout::from_env()?,
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
    let gallery: Arc<dyn rollcall_domain::gallery::Gallery> =
        Arc::from(open_gallery(&data, dim_of(&p)).await?);
    let live_gallery =
        crate::cmd_gallery::open_live_gallery(&data, dim_of(&p), gallery.clone()).await?;
    let rec =
        Recognizer::new(p, live_gallery, tenant.clone())?.with_tracker_config(tracker_config)?;
    let retention_cfg = rollcall_gallery::privacy::RetentionConfig::from_env()
        .map_err(|e| anyhow!("retention settings: {e}"))?;
    // Enrollment and erasure through the API need the template keys; without them those two
    // routes answer 503 and the rest works.
    let face = match rollcall_gallery::vault::Keyring::from_env() {
        Ok(Some(keys)) => Some(FaceOps {
            pipeline: rollcall_runtime::enrollment::shared(v.open()?),
            gallery: gallery.clone(),
            store: store.clone(),
            tenant: tenant.clone(),
            keys,
            data: cfg.data.clone(),
        }),
        Ok(None) => None,
        Err(e) => return Err(anyhow!("ROLLCALL_TEMPLATE_KEYS: {e}")),
    };
    // After an unclean exit (the heartbeat file is still there), the gallery index is brought
    // in step with the sealed templates: a kill between sealing and indexing an enrollment, or
    // between the two deletions of dropped templates, left them apart.
    if cfg.heartbeat().exists() {
        if let Some(f) = &face {
            match rollcall_gallery::vault::reconcile_index(
                &f.keys,
                &f.store,
                f.gallery.as_ref(),
                &f.tenant,
            )
            .await
            {
                Ok(r) if r.restored + r.removed_stale > 0 => tracing::warn!(
                    restored = r.restored,
                    removed = r.removed_stale,
                    "the gallery index was out of step with the sealed templates after a crash; reconciled"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "cannot reconcile the gallery index with the sealed templates"),
            }
        }
    }
    let metrics: Shared = Default::default();

    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    say(format_args!(
        "rollcall serve: listening on {}",
        listener.local_addr()?
    ));
    let app = rollcall_api::router(rollcall_api::AppState::new(
        store.clone(),
        rollcall_api::ApiConfig {
            max_body_bytes: cfg.max_body_bytes,
            metrics_public: cfg.metrics_public,
            data_dir: cfg.data.clone(),
            secure_cookies: cfg.secure_cookies,
            trusted_proxies: cfg.trusted_proxies.clone(),
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

    // The inference stage: one worker per core, each with its own sessions (intra-op threads
    // 1), fed latest-frame-wins per camera.
    let workers = cfg.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let mut one = v.clone();
    one.threads = 1;
    let analyzers = (0..workers.max(1))
        .map(|_| one.open().map(FaceAnalyzer))
        .collect::<anyhow::Result<Vec<_>>>()?;

    // Notifications: the outbox dispatcher, channels from the environment (ROLLCALL_WEBHOOK_URL
    // and _SECRET, ROLLCALL_SMTP_*; the log channel otherwise), as `rollcall notify run`.
    let channels = rollcall_notify::ChannelConfig::default()
        .with_env()
        .context("notification channels")?
        .build(store.clock())
        .context("notification channels")?;
    let dispatcher =
        rollcall_notify::spawn_dispatcher(store.clone(), channels, Default::default())?;

    // Retention of biometric data (PRIVACY.md): hourly, idempotent, counts logged.
    let retention = {
        let cfg_r = retention_cfg.clone();
        let (gallery, store, tenant, data) = (
            gallery.clone(),
            store.clone(),
            tenant.clone(),
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
                    store.now(),
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

    // The live path: capture → inference pool → recognizer → decision sink → group commit.
    let (port, group) = GroupPort::spawn(store.clone());
    let sink = DecisionSink::new(
        store.clone(),
        LedgerWriter::new(port, RetryPolicy::default()),
        cfg.data.clone(),
    );
    let live_cfg = LiveConfig {
        finalize_every: Duration::from_secs(cfg.finalize_every_s.max(1)),
        clock_offset: clock_offset_from_env()?,
        heartbeat: Some(cfg.heartbeat()),
        ..LiveConfig::default()
    };
    let live = Live::start(
        store.clone(),
        rec,
        &cfg.cameras,
        analyzers,
        sink,
        group,
        &live_cfg,
        metrics.clone(),
    )?;
    let committed = live.run(shutdown_signal(term)).await?;
    say(format_args!("rollcall serve: shutting down"));
    retention.abort();
    dispatcher.shutdown().await;
    store.close().await;
    say(format_args!(
        "rollcall serve: stopped; {committed} check-ins committed"
    ));
    Ok(())
}

/// `ROLLCALL_CLOCK_OFFSET_MS`: added to every wall-clock reading of the live path (replaying
/// a recorded or simulated day; `rollcall bench crash` sets it). Unset: zero.
fn clock_offset_from_env() -> anyhow::Result<chrono::Duration> {
    match std::env::var("ROLLCALL_CLOCK_OFFSET_MS") {
        Ok(v) => {
            let ms: i64 = v.trim().parse().with_context(|| {
                format!("ROLLCALL_CLOCK_OFFSET_MS={v:?} is not a whole number of milliseconds")
            })?;
            Ok(chrono::Duration::milliseconds(ms))
        }
        Err(_) => Ok(chrono::Duration::zero()),
    }
}

/// SIGTERM's handler, installed when `serve` starts (before the models load and the listener
/// answers), so a SIGTERM during start-up stops it cleanly instead of killing it.
#[cfg(unix)]
type Term = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Term = Option<()>;

fn install_term() -> Term {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[allow(unused_mut)]
async fn shutdown_signal(mut term: Term) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Some(mut term) = term.take() else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = term;
        let _ = ctrl_c.await;
    }
}

/// A line on stderr that never panics: `eprintln!` panics when stderr cannot be written (its
/// file on a full disk), which would stop serve for want of a log line.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
