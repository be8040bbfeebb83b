//! The live loop `serve` runs: capture threads (latest frame wins) → the inference pool →
//! gallery search, tracker and matcher ([`Recognizer`]) → the [`DecisionSink`] (check-ins
//! through the ledger writer, review items, visitors); camera health → alerts; the finalize
//! timer; metrics. Nothing in it returns an error for a bad frame, a gallery or ledger outage:
//! it counts, logs, marks `/healthz` degraded and goes on.
//!
//! Time: every wall-clock reading is shifted by [`LiveConfig::clock_offset`] (zero in
//! production). A replay of a recorded or simulated day sets it so that the frames' capture
//! times fall on the day's timetable; a restarted process given the same offset continues the
//! same day.

use crate::health::{health_state, CameraAlerts};
use crate::metrics::{lock, SharedMetrics};
use crate::pool::{Analyzed, InferencePool, Job};
use crate::recognizer::{FaceAnalyzer, FrameFaces, Recognizer};
use crate::sink::DecisionSink;
use crate::writer::{Committed, GroupPort};
use crate::RuntimeError;
use chrono::{DateTime, Utc};
use rollcall_capture::{spawn_cameras, CameraConfig, CaptureHandle, HealthEvent};
use rollcall_domain::matcher::debounce::Decision;
use rollcall_domain::CampusId;
use rollcall_ledger::Store;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Settings of the live loop.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// How often lessons are finalised (absences, streak alerts).
    pub finalize_every: Duration,
    /// Added to every wall-clock reading (see the module docs).
    pub clock_offset: chrono::Duration,
    /// A file the loop rewrites every second with the time it last ran, and removes on a clean
    /// shutdown. Found at start, it says the previous process died: every camera gets an
    /// alert for the gap (walk-throughs in it were not watched), so nothing missed is silent.
    pub heartbeat: Option<std::path::PathBuf>,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            finalize_every: Duration::from_secs(60),
            clock_offset: chrono::Duration::zero(),
            heartbeat: None,
        }
    }
}

/// The time now, shifted by the offset.
#[derive(Debug, Clone, Copy)]
pub struct LiveClock {
    pub offset: chrono::Duration,
}

impl LiveClock {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
    pub fn shift(&self, wall: DateTime<Utc>) -> DateTime<Utc> {
        wall + self.offset
    }
}

/// A running live loop; [`Live::run`] drives it until shutdown.
pub struct Live {
    store: Store,
    rec: Recognizer,
    sink: DecisionSink<GroupPort>,
    metrics: SharedMetrics,
    handles: Vec<CaptureHandle>,
    campuses: Vec<CampusId>,
    pool: InferencePool,
    analyzed: mpsc::Receiver<Analyzed<FrameFaces>>,
    health: std::sync::mpsc::Receiver<HealthEvent>,
    alerts: CameraAlerts,
    group: JoinHandle<()>,
    finalizer: JoinHandle<()>,
    clock: LiveClock,
    heartbeat: Option<std::path::PathBuf>,
    outbox_query: Option<JoinHandle<()>>,
    /// The previous process's last heartbeat (ms, the live clock), when it died.
    gap_since: Option<i64>,
    cameras: Vec<String>,
}

impl Live {
    /// Starts the cameras, the inference pool (one worker per analyzer), the group-commit
    /// writer and the finalize timer. Cameras that fail to start are reported `failed`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        store: Store,
        mut rec: Recognizer,
        cameras: &[CameraConfig],
        analyzers: Vec<FaceAnalyzer>,
        sink: DecisionSink<GroupPort>,
        group: JoinHandle<()>,
        cfg: &LiveConfig,
        metrics: SharedMetrics,
    ) -> Result<Live, RuntimeError> {
        lock(&metrics).writer = Some(sink.writer.stats.clone());
        let (htx, hrx) = std::sync::mpsc::channel::<HealthEvent>();
        let (handles, failed) = spawn_cameras(cameras, Arc::new(htx));
        for (id, e) in &failed {
            tracing::error!(camera = %id, error = %e, "camera not started");
            lock(&metrics)
                .camera_state
                .insert(id.to_string(), "failed".into());
        }
        let mut campuses = Vec::new();
        for h in &handles {
            let campus = cameras
                .iter()
                .find(|c| &c.id == h.camera())
                .map(|c| c.campus.clone())
                .ok_or_else(|| {
                    RuntimeError::Config(format!("camera {} has no campus", h.camera()))
                })?;
            rec.add_camera(h.camera().clone(), campus.clone())?;
            campuses.push(campus);
            lock(&metrics)
                .camera_state
                .insert(h.camera().to_string(), "connecting".into());
        }
        let (atx, arx) = mpsc::channel(64);
        let n = handles.len();
        let pool = InferencePool::start(analyzers, n, n.max(1), atx)?;
        let clock = LiveClock {
            offset: cfg.clock_offset,
        };
        let finalizer = {
            let (store, metrics) = (store.clone(), metrics.clone());
            let every = cfg.finalize_every.max(Duration::from_millis(100));
            tokio::spawn(async move {
                let mut t = tokio::time::interval(every);
                loop {
                    t.tick().await;
                    match store.finalize(clock.now()).await {
                        Ok(_) => {
                            lock(&metrics).jobs_failing.remove("finalize");
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "finalisation failed; will retry");
                            lock(&metrics)
                                .jobs_failing
                                .insert("finalize", e.to_string());
                        }
                    }
                }
            })
        };
        let gap_since = cfg
            .heartbeat
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|s| s.trim().parse::<i64>().ok());
        Ok(Live {
            heartbeat: cfg.heartbeat.clone(),
            outbox_query: None,
            gap_since,
            cameras: cameras
                .iter()
                .filter(|c| c.enabled)
                .map(|c| c.id.to_string())
                .collect(),
            store,
            rec,
            sink,
            metrics,
            handles,
            campuses,
            pool,
            analyzed: arx,
            health: hrx,
            alerts: CameraAlerts::default(),
            group,
            finalizer,
            clock,
        })
    }

    /// The recognizer (its gallery is shared with enrollment and erasure).
    pub fn recognizer(&self) -> &Recognizer {
        &self.rec
    }

    /// Runs until `shutdown` resolves, then stops the cameras, matches the frames in flight,
    /// decides the open tracks and waits until every check-in is recorded or parked.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<u64, RuntimeError> {
        tokio::pin!(shutdown);
        self.record_gap().await;
        let mut last_tick = Instant::now();
        loop {
            // Health events (from capture and watchdog threads).
            while let Ok(ev) = self.health.try_recv() {
                tracing::info!(camera = %ev.camera, health = ?ev.health, "camera health");
                if let Some(st) = health_state(&ev.health) {
                    lock(&self.metrics)
                        .camera_state
                        .insert(ev.camera.to_string(), st.into());
                }
                let mut ev = ev;
                ev.at = self.clock.shift(ev.at);
                // the ledger write runs beside the loop: a slow or absent database never holds
                // up recognition
                if let Some(w) = self.alerts.on_event(&ev) {
                    let store = self.store.clone();
                    tokio::spawn(async move { w.write(&store).await });
                }
            }
            // Frames from the capture threads into the inference pool.
            for (i, h) in self.handles.iter().enumerate() {
                if let Some(cf) = h.frames().try_take() {
                    self.pool.submit(
                        i,
                        Job {
                            frame: cf.frame,
                            at: self.clock.shift(cf.captured_at),
                            captured: cf.captured_instant,
                        },
                    );
                }
            }
            // Analysed frames through gallery search, tracker and matcher (in capture order
            // per camera).
            let mut worked = false;
            while let Ok(a) = self.analyzed.try_recv() {
                worked = true;
                self.on_analyzed(a).await;
            }
            if last_tick.elapsed() > Duration::from_secs(1) {
                last_tick = Instant::now();
                self.beat();
                let ds = self.rec.engine.tick(self.clock.now());
                self.route(ds, None).await;
                self.refresh_metrics().await;
            }
            if !worked {
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
            }
        }
        self.shutdown().await
    }

    /// Writes the heartbeat (atomically: a temporary file renamed over it).
    fn beat(&self) {
        let Some(p) = &self.heartbeat else { return };
        let tmp = p.with_extension("tmp");
        let r = std::fs::write(&tmp, self.clock.now().timestamp_millis().to_string())
            .and_then(|_| std::fs::rename(&tmp, p));
        let mut m = lock(&self.metrics);
        match r {
            Ok(()) => {
                m.jobs_failing.remove("data directory");
            }
            Err(e) => {
                tracing::warn!(error = %e, path = %p.display(), "cannot write the heartbeat");
                m.jobs_failing.insert(
                    "data directory",
                    format!("cannot write {}: {e}", p.display()),
                );
            }
        }
    }

    /// After an unclean exit: one `camera_offline` alert per camera for the time nobody
    /// watched (it stays open until staff acknowledge it).
    async fn record_gap(&mut self) {
        let Some(since) = self.gap_since.take() else {
            self.beat();
            return;
        };
        let now = self.clock.now();
        let tz = chrono::FixedOffset::east_opt((self.store.tz_offset_minutes() * 60) as i32)
            .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("zero offset"));
        let from = chrono::DateTime::<Utc>::from_timestamp_millis(since).unwrap_or(now);
        let msg = format!(
            "rollcall was not running from {} to {}: walk-throughs in between were not seen",
            from.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S"),
            now.with_timezone(&tz).format("%H:%M:%S")
        );
        for cam in &self.cameras {
            // one alert per restart: two kills in a row before a heartbeat share `since`
            let key = format!("gap:{cam}:{since}:{}", now.timestamp_millis());
            if let Err(e) = self.store.raise_camera_alert(cam, &key, &msg, now).await {
                tracing::warn!(camera = %cam, error = %e, "cannot record the gap alert");
            }
        }
        tracing::warn!(since = %from, "the previous run stopped without shutting down");
        self.beat();
    }

    async fn on_analyzed(&mut self, a: Analyzed<FrameFaces>) {
        let cam = self.handles[a.camera].camera().clone();
        let campus = self.campuses[a.camera].clone();
        let ff = match a.result {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(camera = %cam, error = %e, "inference failed on a frame");
                lock(&self.metrics).inference_errors += 1;
                return;
            }
        };
        let out = match self
            .rec
            .on_analyzed(&cam, &campus, a.at, ff.faces, a.captured)
            .await
        {
            Ok(o) => {
                lock(&self.metrics).jobs_failing.remove("gallery");
                o
            }
            Err(e) => {
                // The gallery is unreachable: the frame cannot vote. Its track goes on with
                // the frames before and after the outage.
                tracing::warn!(camera = %cam, error = %e, "recognition failed on a frame");
                lock(&self.metrics)
                    .jobs_failing
                    .insert("gallery", e.to_string());
                return;
            }
        };
        self.sink.observe(&out.tracks, &out.qualities, ff.crops);
        {
            let mut m = lock(&self.metrics);
            *m.frames.entry(cam.to_string()).or_default() += 1;
            m.faces = self.rec.faces;
            if !out.decisions.is_empty() {
                m.frame_to_decision_ms
                    .push(a.captured.elapsed().as_secs_f64() * 1e3);
            }
            m.capture
                .insert(cam.to_string(), self.handles[a.camera].counters());
            m.inference_dropped
                .insert(cam.to_string(), self.pool.counters(a.camera).dropped);
        }
        self.route(out.decisions, Some(a.captured)).await;
    }

    /// Hands decisions to the sink; a check-in's commit latency is recorded when it lands.
    async fn route(&mut self, ds: Vec<Decision>, _captured: Option<Instant>) {
        for d in ds {
            let first_seen = d.first_seen;
            if let Some(h) = self.sink.route(&d).await {
                let (metrics, clock) = (self.metrics.clone(), self.clock);
                tokio::spawn(async move {
                    if let Ok(Committed::Recorded(_)) = h.await {
                        let ms = (clock.now() - first_seen).num_microseconds().unwrap_or(0);
                        lock(&metrics)
                            .first_frame_to_commit_ms
                            .push(ms as f64 / 1e3);
                    }
                });
            }
            let mut m = lock(&self.metrics);
            m.decisions = self.sink.decisions.clone();
            m.review_errors = self
                .sink
                .review_errors
                .load(std::sync::atomic::Ordering::Relaxed);
        }
    }

    async fn refresh_metrics(&mut self) {
        {
            let mut m = lock(&self.metrics);
            for h in &self.handles {
                m.capture.insert(h.camera().to_string(), h.counters());
            }
            m.queued_frames = (self.pool.waiting() + self.analyzed.len()) as u64;
        }
        // the outbox counts beside the loop (one query at a time)
        if self.outbox_query.as_ref().is_none_or(|t| t.is_finished()) {
            let (store, metrics, now) =
                (self.store.clone(), self.metrics.clone(), self.clock.now());
            self.outbox_query = Some(tokio::spawn(async move {
                let counts = store.outbox_counts(now).await;
                let mut m = lock(&metrics);
                match counts {
                    Ok(c) => {
                        m.outbox = Some((store.school_id().to_string(), c));
                        m.jobs_failing.remove("outbox");
                    }
                    Err(e) => {
                        m.jobs_failing.insert("outbox", e.to_string());
                    }
                }
            }));
        }
    }

    async fn shutdown(mut self) -> Result<u64, RuntimeError> {
        let cams: Vec<_> = self.handles.iter().map(|h| h.camera().clone()).collect();
        for h in std::mem::take(&mut self.handles) {
            h.stop();
        }
        // frames in flight finish; their results are matched before the open tracks are decided
        self.pool.shutdown();
        while let Ok(a) = self.analyzed.try_recv() {
            let (Ok(ff), Some(cam), Some(campus)) = (
                a.result,
                cams.get(a.camera),
                self.campuses.get(a.camera).cloned(),
            ) else {
                continue;
            };
            if let Ok(out) = self
                .rec
                .on_analyzed(cam, &campus, a.at, ff.faces, a.captured)
                .await
            {
                self.route(out.decisions, None).await;
            }
        }
        let ds = self.rec.engine.finish(self.clock.now());
        self.route(ds, None).await;
        // Every check-in is recorded or parked, every review item written, before the stores
        // close.
        self.sink.flush().await;
        self.finalizer.abort();
        let committed = self
            .sink
            .writer
            .stats
            .committed
            .load(std::sync::atomic::Ordering::Relaxed);
        drop(self.sink);
        let _ = self.group.await;
        if let Some(p) = &self.heartbeat {
            let _ = std::fs::remove_file(p);
        }
        Ok(committed)
    }
}
