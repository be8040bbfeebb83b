//! The live loop `serve` runs: capture threads (latest frame wins) → the inference pool →
//! gallery search, tracker and matcher ([`Recognizer`]) → the [`DecisionSink`] (check-ins
//! through the ledger writer, review items, visitors); camera health → alerts; the finalize
//! timer; metrics. Nothing in it returns an error for a bad frame, a gallery or ledger outage:
//! it counts, logs, marks `/healthz` degraded and goes on.
//!
//! The gallery unreachable (a Qdrant server down): frames analysed meanwhile are **held** in
//! capture order per camera (within a memory budget) and matched once the gallery answers again,
//! so a walk-through during the outage is decided late but not missed. While frames are held no
//! track is closed by the clock. Frames with faces that the budget forced out are named in a
//! `camera_offline` alert per camera, so a walk-through missed that way is never silent.
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
use rollcall_domain::clock::Clock;
use rollcall_domain::face::FaceObservation;
use rollcall_domain::matcher::debounce::Decision;
use rollcall_domain::{CampusId, Frame};
use rollcall_ledger::Store;
use std::collections::{BTreeMap, VecDeque};
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
    /// Bytes of analysed frames (faces, embeddings, aligned crops) held while the gallery
    /// cannot be searched; beyond it the oldest held frames of the camera are dropped (and
    /// alerted).
    pub held_budget_bytes: usize,
    /// How long one live gallery search may take before the gallery counts as unreachable.
    pub search_timeout: Duration,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            finalize_every: Duration::from_secs(60),
            clock_offset: chrono::Duration::zero(),
            heartbeat: None,
            held_budget_bytes: 256 << 20,
            search_timeout: Duration::from_secs(2),
        }
    }
}

/// A frame analysed while the gallery could not be searched, waiting to be matched.
struct Held {
    at: DateTime<Utc>,
    captured: Instant,
    faces: Vec<FaceObservation>,
    crops: Vec<Frame>,
    bytes: usize,
}

impl Held {
    fn new(at: DateTime<Utc>, captured: Instant, ff: FrameFaces) -> Held {
        let bytes =
            256 + ff.faces.len() * 1024 + ff.crops.iter().map(|c| c.rgb().len()).sum::<usize>();
        Held {
            at,
            captured,
            faces: ff.faces,
            crops: ff.crops,
            bytes,
        }
    }
}

/// The gallery unreachable since `since` (the live clock).
struct Outage {
    since: DateTime<Utc>,
    error: String,
    /// A background health check of the gallery; the loop never waits on it.
    probe: Option<JoinHandle<bool>>,
    last_probe: Instant,
    /// Per camera: frames with faces dropped from the held queue (first, last, count).
    dropped: BTreeMap<usize, (DateTime<Utc>, DateTime<Utc>, u64)>,
}

/// The store's clock, shifted by the offset (the demo plays a recorded afternoon "now").
#[derive(Clone)]
pub struct LiveClock {
    pub base: Arc<dyn Clock>,
    pub offset: chrono::Duration,
}

impl LiveClock {
    pub fn now(&self) -> DateTime<Utc> {
        self.base.now() + self.offset
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
    /// The started cameras' ids and campuses (handle order; kept after the handles stop).
    ids: Vec<rollcall_domain::CameraId>,
    campuses: Vec<CampusId>,
    pool: InferencePool,
    /// Per camera: the newest main-stream frame not yet paired (two-stream cameras).
    main_frames: Vec<Option<rollcall_capture::CapturedFrame>>,
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
    /// Per camera (handle order): frames waiting for the gallery, in capture order.
    held: Vec<VecDeque<Held>>,
    held_bytes: usize,
    held_budget: usize,
    search_timeout: Duration,
    outage: Option<Outage>,
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
        let (handles, failed) = spawn_cameras(cameras, Arc::new(htx), store.clock());
        for (id, e) in &failed {
            tracing::error!(camera = %id, error = %e, "camera not started");
            lock(&metrics)
                .camera_state
                .insert(id.to_string(), "failed".into());
        }
        let mut campuses = Vec::new();
        let mut ids = Vec::new();
        for h in &handles {
            ids.push(h.camera().clone());
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
            base: store.clock(),
            offset: cfg.clock_offset,
        };
        let finalizer = {
            let (store, metrics, clock) = (store.clone(), metrics.clone(), clock.clone());
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
                    // the evening-before lesson reminders and the fee-due reminders
                    match store.send_reminders(clock.now()).await {
                        Ok(_) => {
                            lock(&metrics).jobs_failing.remove("reminders");
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "reminders failed; will retry");
                            lock(&metrics)
                                .jobs_failing
                                .insert("reminders", e.to_string());
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
            held: (0..handles.len()).map(|_| VecDeque::new()).collect(),
            held_bytes: 0,
            held_budget: cfg.held_budget_bytes.max(1),
            search_timeout: cfg.search_timeout,
            outage: None,
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
            ids,
            campuses,
            main_frames: (0..n).map(|_| None).collect(),
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
            // Frames from the capture threads into the inference pool; a two-stream camera's
            // substream frame takes the newest main-stream frame of about the same instant.
            for (i, h) in self.handles.iter().enumerate() {
                if let Some(m) = h.main_stream() {
                    if let Some(mf) = m.frames().try_take() {
                        self.main_frames[i] = Some(mf);
                    }
                }
                if let Some(cf) = h.frames().try_take() {
                    let tol = h.pair_tolerance();
                    let main = match self.main_frames[i].take() {
                        Some(mf)
                            if mf.captured_instant.max(cf.captured_instant)
                                - mf.captured_instant.min(cf.captured_instant)
                                <= tol =>
                        {
                            Some(mf.frame)
                        }
                        other => {
                            self.main_frames[i] = other;
                            None
                        }
                    };
                    self.pool.submit(
                        i,
                        Job {
                            frame: cf.frame,
                            main,
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
            self.poll_outage().await;
            if last_tick.elapsed() > Duration::from_secs(1) {
                last_tick = Instant::now();
                self.beat();
                // while frames wait for the gallery, no track is closed by the clock: their
                // frames are still to come
                if self.held_bytes == 0 {
                    let ds = self.rec.engine.tick(self.clock.now());
                    self.route(ds).await;
                }
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
        let cam = self.ids[a.camera].clone();
        let ff = match a.result {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(camera = %cam, error = %e, "inference failed on a frame");
                lock(&self.metrics).inference_errors += 1;
                return;
            }
        };
        self.hold(a.camera, Held::new(a.at, a.captured, ff));
        if self.outage.is_none() {
            self.drain(a.camera).await;
        }
    }

    /// Queues an analysed frame behind the camera's held frames (capture order), within the
    /// budget: beyond it the camera's oldest held frames go, and those with faces are counted
    /// for the camera's alert.
    fn hold(&mut self, camera: usize, h: Held) {
        self.held_bytes += h.bytes;
        self.held[camera].push_back(h);
        while self.held_bytes > self.held_budget {
            let Some(old) = self.held[camera].pop_front() else {
                break;
            };
            self.held_bytes -= old.bytes;
            lock(&self.metrics).held_dropped += 1;
            if !old.faces.is_empty() {
                if let Some(o) = &mut self.outage {
                    let e = o.dropped.entry(camera).or_insert((old.at, old.at, 0));
                    e.1 = old.at;
                    e.2 += 1;
                }
            }
        }
        lock(&self.metrics).held_frames = self.held.iter().map(|q| q.len() as u64).sum();
    }

    /// Matches the camera's held frames in order until one cannot be searched.
    async fn drain(&mut self, camera: usize) {
        let cam = self.ids[camera].clone();
        let campus = self.campuses[camera].clone();
        while let Some(front) = self.held[camera].front() {
            let searched =
                tokio::time::timeout(self.search_timeout, self.rec.search(&front.faces, &campus))
                    .await;
            let lists = match searched {
                Ok(Ok(l)) => l,
                Ok(Err(e)) => return self.gallery_failed(&cam, e.to_string()),
                Err(_) => {
                    let e = format!("no answer within {} ms", self.search_timeout.as_millis());
                    return self.gallery_failed(&cam, e);
                }
            };
            let Some(h) = self.held[camera].pop_front() else {
                break;
            };
            tracing::debug!(
                camera = %cam,
                at = %h.at,
                faces = h.faces.len(),
                best = ?lists.iter().map(|l| l.first().map(|c| (c.student.to_string(), c.similarity))).collect::<Vec<_>>(),
                "frame matched"
            );
            self.held_bytes -= h.bytes;
            lock(&self.metrics).held_frames = self.held.iter().map(|q| q.len() as u64).sum();
            let out = match self.rec.apply(&cam, h.at, h.faces, lists, h.captured) {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(camera = %cam, error = %e, "matching failed on a frame");
                    continue;
                }
            };
            // Extra evidence for undecided tracks; on failure they keep their last answer.
            match tokio::time::timeout(
                self.search_timeout,
                self.rec.search_templates(&cam, &campus, &out.tracks),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(camera = %cam, error = %e, "template search failed"),
                Err(_) => tracing::debug!(camera = %cam, "template search timed out"),
            }
            self.sink.observe(&out.tracks, &out.qualities, h.crops);
            {
                let mut m = lock(&self.metrics);
                *m.frames.entry(cam.to_string()).or_default() += 1;
                m.faces = self.rec.faces;
                if !out.decisions.is_empty() {
                    m.frame_to_decision_ms
                        .push(h.captured.elapsed().as_secs_f64() * 1e3);
                }
                if let Some(h) = self.handles.get(camera) {
                    m.capture.insert(cam.to_string(), h.counters());
                    m.inference_dropped
                        .insert(cam.to_string(), self.pool.counters(camera).dropped);
                }
            }
            self.route(out.decisions).await;
        }
    }

    /// A search failed: the gallery counts as unreachable until a background probe answers.
    fn gallery_failed(&mut self, cam: &rollcall_domain::CameraId, error: String) {
        let held: usize = self.held.iter().map(VecDeque::len).sum();
        if self.outage.is_none() {
            tracing::warn!(camera = %cam, error = %error, "the gallery is unreachable; holding frames");
            self.outage = Some(Outage {
                since: self.clock.now(),
                error: error.clone(),
                probe: None,
                last_probe: Instant::now(),
                dropped: BTreeMap::new(),
            });
        }
        let since = self.outage.as_ref().map_or(self.clock.now(), |o| o.since);
        lock(&self.metrics).jobs_failing.insert(
            "gallery",
            format!(
                "unreachable since {} ({error}); {held} frame(s) held",
                since.format("%H:%M:%S UTC")
            ),
        );
    }

    /// During an outage: a health check of the gallery every second, in the background; when
    /// it answers, the held frames are matched and the dropped ones alerted.
    async fn poll_outage(&mut self) {
        let Some(o) = &mut self.outage else { return };
        match &o.probe {
            None => {
                if o.last_probe.elapsed() >= Duration::from_secs(1) {
                    let (g, t) = (self.rec.gallery.clone(), self.search_timeout);
                    o.probe = Some(tokio::spawn(async move {
                        matches!(tokio::time::timeout(t, g.health()).await, Ok(Ok(_)))
                    }));
                }
                return;
            }
            Some(p) if !p.is_finished() => return,
            Some(_) => {}
        }
        let ok = match o.probe.take() {
            Some(p) => p.await.unwrap_or(false),
            None => false,
        };
        o.last_probe = Instant::now();
        if !ok {
            return;
        }
        let Some(o) = self.outage.take() else { return };
        tracing::info!(since = %o.since, error = %o.error, "the gallery answers again; matching the held frames");
        lock(&self.metrics).jobs_failing.remove("gallery");
        for (cam, key, msg, at) in self.dropped_alerts(&o, "") {
            let store = self.store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.raise_camera_alert(&cam, &key, &msg, at).await {
                    tracing::warn!(camera = %cam, error = %e, "cannot record the gallery alert");
                }
            });
        }
        for camera in 0..self.held.len() {
            if self.outage.is_some() {
                break;
            }
            self.drain(camera).await;
        }
    }

    /// One `camera_offline` alert per camera whose held frames with faces had to be dropped:
    /// (camera, key, message, at).
    fn dropped_alerts(
        &self,
        o: &Outage,
        why: &str,
    ) -> Vec<(String, String, String, DateTime<Utc>)> {
        let tz = chrono::FixedOffset::east_opt((self.store.tz_offset_minutes() * 60) as i32)
            .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("zero offset"));
        let at = self.clock.now();
        o.dropped
            .iter()
            .filter_map(|(camera, (first, last, n))| {
                let cam = self.ids.get(*camera)?.to_string();
                let key = format!("gallery:{cam}:{}", o.since.timestamp_millis());
                let msg = format!(
                    "the face gallery was unreachable from {}{why}: {n} frame(s) with faces from {} to {} could not be recognised",
                    o.since.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S"),
                    first.with_timezone(&tz).format("%H:%M:%S"),
                    last.with_timezone(&tz).format("%H:%M:%S"),
                );
                Some((cam, key, msg, at))
            })
            .collect()
    }

    /// Hands decisions to the sink; a check-in's commit latency is recorded when it lands.
    async fn route(&mut self, ds: Vec<Decision>) {
        for d in ds {
            let first_seen = d.first_seen;
            if let Some(h) = self.sink.route(&d).await {
                let (metrics, clock) = (self.metrics.clone(), self.clock.clone());
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
        for h in std::mem::take(&mut self.handles) {
            h.stop();
        }
        // frames in flight finish; their results are matched before the open tracks are decided
        self.pool.shutdown();
        while let Ok(a) = self.analyzed.try_recv() {
            if a.camera >= self.held.len() {
                continue;
            }
            if let Ok(ff) = a.result {
                self.hold(a.camera, Held::new(a.at, a.captured, ff));
            }
        }
        // one more try for the frames held during an outage
        let was_down = self.outage.take();
        for camera in 0..self.held.len() {
            self.drain(camera).await;
        }
        let mut lost = was_down.map(|mut o| {
            o.probe = None;
            o
        });
        if let Some(now_down) = self.outage.take() {
            let o = lost.get_or_insert(now_down);
            for (camera, q) in self.held.iter().enumerate() {
                for h in q.iter().filter(|h| !h.faces.is_empty()) {
                    let e = o.dropped.entry(camera).or_insert((h.at, h.at, 0));
                    e.0 = e.0.min(h.at);
                    e.1 = e.1.max(h.at);
                    e.2 += 1;
                }
            }
        }
        if let Some(o) = &lost {
            for (cam, key, msg, at) in self.dropped_alerts(o, " until rollcall stopped") {
                if let Err(e) = self.store.raise_camera_alert(&cam, &key, &msg, at).await {
                    tracing::warn!(camera = %cam, error = %e, "cannot record the gallery alert");
                }
            }
        }
        let ds = self.rec.engine.finish(self.clock.now());
        self.route(ds).await;
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
