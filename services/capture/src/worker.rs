//! One capture thread per camera: reads its source, hands frames on latest-frame-wins, paces to
//! the fps cap, reconnects with backoff, watches for stale streams and reports health.

use crate::config::DEFAULT_FOLDER_FPS;
use crate::slot::{frame_slot, FrameReceiver, FrameSlotWriter};
use crate::{open_source, CameraConfig, CaptureError, FrameSource, SourceOptions};
use chrono::{DateTime, Utc};
use rollcall_domain::clock::Clock;
use rollcall_domain::CameraId;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Width and height of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Resolution {
    pub width: u32,
    pub height: u32,
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// A change in a camera's health. The caller turns these into camera-health alerts.
#[derive(Debug, Clone, PartialEq)]
pub enum CameraHealth {
    /// Frames are arriving: the first frame after opening or reconnecting, or the first frame
    /// after a [`Stale`](CameraHealth::Stale) report.
    Online { resolution: Resolution },
    /// The source could not be opened or the stream broke. Reported once per outage; the
    /// reconnect attempts that follow are reported as `Reconnecting`.
    Offline { reason: String },
    /// The stream is open but no frame has arrived for the stale timeout. `since` is the time of
    /// the last frame (or of opening, when none arrived).
    Stale { since: DateTime<Utc> },
    /// The frame size changed while streaming (or across a reconnect).
    ResolutionChanged { from: Resolution, to: Resolution },
    /// About to wait `delay` before reconnect attempt `attempt` (1 for the first retry after a
    /// failure; the delay doubles per attempt up to the configured maximum).
    Reconnecting { attempt: u32, delay: Duration },
    /// A finite source (file, image folder) reached its end and the camera is not configured to
    /// loop. The capture thread then exits.
    Ended,
}

/// A health change of one camera, timestamped.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthEvent {
    pub camera: CameraId,
    pub at: DateTime<Utc>,
    pub health: CameraHealth,
}

/// Where capture threads send [`HealthEvent`]s. Called from capture and watchdog threads; must
/// not block for long.
///
/// Implemented for `std::sync::mpsc::Sender<HealthEvent>`, for `SyncSender<HealthEvent>` (with
/// `try_send`: a full channel drops the event with a warning rather than stall capture) and for
/// closures `Fn(HealthEvent)`.
pub trait HealthSink: Send + Sync + 'static {
    fn emit(&self, event: HealthEvent);
}

impl HealthSink for std::sync::mpsc::Sender<HealthEvent> {
    fn emit(&self, event: HealthEvent) {
        // A receiver that has gone away simply stops listening.
        let _ = self.send(event);
    }
}

impl HealthSink for std::sync::mpsc::SyncSender<HealthEvent> {
    fn emit(&self, event: HealthEvent) {
        if let Err(std::sync::mpsc::TrySendError::Full(e)) = self.try_send(event) {
            tracing::warn!(camera = %e.camera, health = ?e.health, "health channel full; event dropped");
        }
    }
}

impl<F: Fn(HealthEvent) + Send + Sync + 'static> HealthSink for F {
    fn emit(&self, event: HealthEvent) {
        self(event)
    }
}

/// A camera's current state, as last reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraState {
    /// Opening, before the first frame.
    Connecting,
    Online,
    Stale,
    /// Down; reconnecting with backoff.
    Offline,
    /// A finite source ended.
    Ended,
    /// Stopped on request.
    Stopped,
}

/// A snapshot of a camera's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CaptureCounters {
    /// Frames read from the source.
    pub frames_in: u64,
    /// Frames handed to the slot (frames in minus those skipped by the fps cap).
    pub frames_published: u64,
    /// Frames overwritten in the slot before the consumer took them.
    pub frames_dropped: u64,
    /// Frames of a live source skipped to respect the fps cap.
    pub frames_skipped: u64,
    /// Reconnect attempts made.
    pub reconnects: u64,
}

#[derive(Default)]
struct Watch {
    /// Set while a session is open: (monotonic, wall) time of the last frame or of opening.
    last: Option<(Instant, DateTime<Utc>)>,
    stale: bool,
}

struct Shared {
    camera: CameraId,
    stop: Mutex<bool>,
    stop_cv: Condvar,
    finished: AtomicBool,
    frames_in: AtomicU64,
    frames_skipped: AtomicU64,
    reconnects: AtomicU64,
    watch: Mutex<Watch>,
    state: Mutex<(CameraState, Option<DateTime<Utc>>)>,
    sink: Arc<dyn HealthSink>,
    /// Where health events' and sessions' wall-clock times come from.
    clock: Arc<dyn Clock>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn emit(&self, health: CameraHealth) {
        let state = match &health {
            CameraHealth::Online { .. } => Some(CameraState::Online),
            CameraHealth::Offline { .. } | CameraHealth::Reconnecting { .. } => {
                Some(CameraState::Offline)
            }
            CameraHealth::Stale { .. } => Some(CameraState::Stale),
            CameraHealth::Ended => Some(CameraState::Ended),
            CameraHealth::ResolutionChanged { .. } => None,
        };
        if let Some(s) = state {
            lock(&self.state).0 = s;
        }
        match &health {
            CameraHealth::Online { .. } | CameraHealth::Ended => {
                tracing::info!(camera = %self.camera, ?health, "camera health")
            }
            _ => tracing::warn!(camera = %self.camera, ?health, "camera health"),
        }
        self.sink.emit(HealthEvent {
            camera: self.camera.clone(),
            at: self.clock.now(),
            health,
        });
    }

    fn stopping(&self) -> bool {
        *lock(&self.stop)
    }

    fn request_stop(&self) {
        *lock(&self.stop) = true;
        self.stop_cv.notify_all();
    }

    /// Sleeps until `deadline` or a stop request; returns true if stopping.
    fn wait_until(&self, deadline: Instant) -> bool {
        let mut stop = lock(&self.stop);
        loop {
            if *stop || self.finished.load(Ordering::Acquire) {
                return *stop;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            stop = self
                .stop_cv
                .wait_timeout(stop, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn session_started(&self) {
        let mut w = lock(&self.watch);
        w.last = Some((Instant::now(), self.clock.now()));
        w.stale = false;
    }

    fn session_ended(&self) {
        let mut w = lock(&self.watch);
        w.last = None;
        w.stale = false;
    }

    /// Records a frame; returns whether the camera had been reported stale.
    fn frame_seen(&self, wall: DateTime<Utc>) -> bool {
        let mut w = lock(&self.watch);
        w.last = Some((Instant::now(), wall));
        lock(&self.state).1 = Some(wall);
        std::mem::replace(&mut w.stale, false)
    }

    /// Watchdog check: reports `Stale` once per silence longer than `timeout`.
    fn check_stale(&self, timeout: Duration) {
        let since = {
            let mut w = lock(&self.watch);
            match w.last {
                Some((at, wall)) if !w.stale && at.elapsed() >= timeout => {
                    w.stale = true;
                    wall
                }
                _ => return,
            }
        };
        self.emit(CameraHealth::Stale { since });
    }
}

/// A running capture: the consumer's end of the camera's frame slot, its counters and the means
/// to stop it. Dropping the handle asks the capture thread to stop without waiting for it.
pub struct CaptureHandle {
    shared: Arc<Shared>,
    frames: FrameReceiver,
    capture: Option<JoinHandle<()>>,
    watchdog: Option<JoinHandle<()>>,
    /// A two-stream camera's main stream (its own capture thread; health only logged).
    main: Option<Box<CaptureHandle>>,
    pair_tolerance: Duration,
}

impl fmt::Debug for CaptureHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureHandle")
            .field("camera", &self.shared.camera)
            .field("state", &self.state())
            .field("counters", &self.counters())
            .finish()
    }
}

impl CaptureHandle {
    /// The camera this capture reads.
    pub fn camera(&self) -> &CameraId {
        &self.shared.camera
    }

    /// The newest-frame slot. Clone it into the consumer thread; `recv` returns `None` once the
    /// capture has ended or stopped and the last frame was taken.
    pub fn frames(&self) -> &FrameReceiver {
        &self.frames
    }

    /// A two-stream camera's main-stream capture (`url`; this handle reads `detect_url`).
    pub fn main_stream(&self) -> Option<&CaptureHandle> {
        self.main.as_deref()
    }

    /// Largest gap between a substream frame and the main frame paired with it.
    pub fn pair_tolerance(&self) -> Duration {
        self.pair_tolerance
    }

    /// Current counters.
    pub fn counters(&self) -> CaptureCounters {
        CaptureCounters {
            frames_in: self.shared.frames_in.load(Ordering::Relaxed),
            frames_published: self.frames.published(),
            frames_dropped: self.frames.dropped(),
            frames_skipped: self.shared.frames_skipped.load(Ordering::Relaxed),
            reconnects: self.shared.reconnects.load(Ordering::Relaxed),
        }
    }

    /// The state as last reported.
    pub fn state(&self) -> CameraState {
        lock(&self.shared.state).0
    }

    /// Wall-clock time of the newest frame read, if any.
    pub fn last_frame_at(&self) -> Option<DateTime<Utc>> {
        lock(&self.shared.state).1
    }

    /// Whether the capture thread has exited (source ended, or stopped).
    pub fn is_finished(&self) -> bool {
        self.shared.finished.load(Ordering::Acquire)
    }

    /// Asks the capture thread to stop without waiting. It stops between frames, or at once if
    /// it is waiting to reconnect; a read blocked inside OpenCV finishes first (bounded by the
    /// read timeout, twice the stale timeout for network streams).
    pub fn request_stop(&self) {
        self.shared.request_stop();
        if let Some(m) = &self.main {
            m.request_stop();
        }
    }

    /// Stops the capture, waits for its threads and returns the final counters.
    pub fn stop(mut self) -> CaptureCounters {
        self.shared.request_stop();
        self.join_threads();
        self.counters()
    }

    /// Waits for a finite source to end (or a stop requested elsewhere) and returns the final
    /// counters. Blocks forever on a live source nobody stops.
    pub fn join(mut self) -> CaptureCounters {
        self.join_threads();
        self.counters()
    }

    fn join_threads(&mut self) {
        if let Some(m) = self.main.take() {
            m.stop();
        }
        if let Some(t) = self.capture.take() {
            if t.join().is_err() {
                tracing::error!(camera = %self.shared.camera, "capture thread panicked");
            }
        }
        // The capture thread marks itself finished on exit, which ends the watchdog too.
        self.shared.finished.store(true, Ordering::Release);
        self.shared.stop_cv.notify_all();
        if let Some(t) = self.watchdog.take() {
            let _ = t.join();
        }
    }
}

impl Drop for CaptureHandle {
    fn drop(&mut self) {
        if self.capture.is_some() {
            self.shared.request_stop();
        }
    }
}

/// Source options derived from a camera's config: the folder timeline rate from `fps`, and
/// network timeouts from the stale timeout (open: twice it, at least 5 s; read: twice it).
pub fn source_options(config: &CameraConfig, clock: Arc<dyn Clock>) -> SourceOptions {
    let twice_stale = config.stale_timeout().saturating_mul(2);
    SourceOptions {
        folder_fps: config.fps.unwrap_or(DEFAULT_FOLDER_FPS),
        open_timeout: twice_stale.max(Duration::from_secs(5)),
        read_timeout: twice_stale,
        clock,
    }
}

/// Validates `config`, builds its source ([`open_source`]) and starts capturing it on its own
/// thread. The source is opened on that thread, so this returns at once even for a dead camera.
pub fn spawn_camera(
    config: &CameraConfig,
    health: Arc<dyn HealthSink>,
    clock: Arc<dyn Clock>,
) -> Result<CaptureHandle, CaptureError> {
    config.validate()?;
    let source = open_source(
        config.detect_stream_url(),
        &source_options(config, clock.clone()),
    )?;
    let main = match config.main_stream() {
        Some(m) => {
            let src = open_source(&m.url, &source_options(&m, clock.clone()))?;
            Some(Box::new(spawn_source(
                &m,
                src,
                Arc::new(MainStreamHealth),
                clock.clone(),
            )?))
        }
        None => None,
    };
    let mut h = spawn_source(config, source, health, clock)?;
    h.main = main;
    h.pair_tolerance = config.pair_tolerance();
    Ok(h)
}

/// Health of a main stream: logged. The camera's alerts follow its detect stream, which
/// recognition cannot do without; without the main stream, crops come from the substream.
struct MainStreamHealth;

impl HealthSink for MainStreamHealth {
    fn emit(&self, ev: HealthEvent) {
        tracing::warn!(camera = %ev.camera, health = ?ev.health, "main stream health");
    }
}

/// Starts every enabled camera. A camera whose config is invalid or whose thread cannot start is
/// returned with its error; the others run regardless.
pub fn spawn_cameras(
    configs: &[CameraConfig],
    health: Arc<dyn HealthSink>,
    clock: Arc<dyn Clock>,
) -> (Vec<CaptureHandle>, Vec<(CameraId, CaptureError)>) {
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for c in configs.iter().filter(|c| c.enabled) {
        match spawn_camera(c, health.clone(), clock.clone()) {
            Ok(h) => ok.push(h),
            Err(e) => failed.push((c.id.clone(), e)),
        }
    }
    (ok, failed)
}

/// Starts capturing from an already built `source` (for custom sources and tests), using the
/// camera id, fps cap, realtime and loop flags, backoff and stale timeout of `config` (its `url`
/// is not used, and `enabled` is not checked).
pub fn spawn_source(
    config: &CameraConfig,
    source: Box<dyn FrameSource>,
    health: Arc<dyn HealthSink>,
    clock: Arc<dyn Clock>,
) -> Result<CaptureHandle, CaptureError> {
    config.validate_settings()?;
    let shared = Arc::new(Shared {
        camera: config.id.clone(),
        stop: Mutex::new(false),
        stop_cv: Condvar::new(),
        finished: AtomicBool::new(false),
        frames_in: AtomicU64::new(0),
        frames_skipped: AtomicU64::new(0),
        reconnects: AtomicU64::new(0),
        watch: Mutex::new(Watch::default()),
        state: Mutex::new((CameraState::Connecting, None)),
        sink: health,
        clock,
    });
    let (writer, frames) = frame_slot();
    let spawn_err = |source| CaptureError::Spawn {
        camera: config.id.to_string(),
        source,
    };

    let worker = Worker {
        shared: shared.clone(),
        source,
        writer,
        cap_interval: config.fps.and_then(fps_interval),
        realtime: config.realtime,
        loop_source: config.loop_source,
        backoff: config.reconnect,
    };
    let capture = std::thread::Builder::new()
        .name(format!("capture-{}", config.id))
        .spawn(move || worker.run())
        .map_err(spawn_err)?;

    let wd_shared = shared.clone();
    let stale = config.stale_timeout();
    let tick = (stale / 4).clamp(Duration::from_millis(10), Duration::from_millis(250));
    let watchdog = std::thread::Builder::new()
        .name(format!("watchdog-{}", config.id))
        .spawn(move || loop {
            if wd_shared.wait_until(deadline_after(tick))
                || wd_shared.finished.load(Ordering::Acquire)
            {
                break;
            }
            wd_shared.check_stale(stale);
        });
    let watchdog = match watchdog {
        Ok(t) => t,
        Err(e) => {
            shared.request_stop();
            let _ = capture.join();
            return Err(spawn_err(e));
        }
    };
    Ok(CaptureHandle {
        shared,
        frames,
        capture: Some(capture),
        watchdog: Some(watchdog),
        main: None,
        pair_tolerance: config.pair_tolerance(),
    })
}

/// `1 / fps`, for a positive finite fps.
fn fps_interval(fps: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(1.0 / fps)
        .ok()
        .filter(|d| !d.is_zero())
}

/// `now + d`, saturating far in the future instead of overflowing.
fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

enum Outcome {
    Stopped,
    /// Finite source ended normally.
    Ended,
    /// Finite source failed after delivering frames (e.g. a truncated file).
    EndedWithError(String),
    /// Open succeeded but the stream failed (or a finite source gave no frame at all).
    Failed(String),
}

struct Worker {
    shared: Arc<Shared>,
    source: Box<dyn FrameSource>,
    writer: FrameSlotWriter,
    /// Minimum time between published frames (the fps cap).
    cap_interval: Option<Duration>,
    realtime: bool,
    loop_source: bool,
    backoff: crate::BackoffConfig,
}

impl Worker {
    fn run(mut self) {
        let name = self.source.describe();
        tracing::info!(camera = %self.shared.camera, source = %name, "capture started");
        let mut attempt: u32 = 0;
        let mut offline_reported = false;
        let mut online = false;
        let mut last_res: Option<Resolution> = None;
        let mut seq: u64 = 0;
        loop {
            if self.shared.stopping() {
                break;
            }
            if attempt > 0 {
                let delay = self.backoff.delay(attempt);
                self.shared
                    .emit(CameraHealth::Reconnecting { attempt, delay });
                if self.shared.wait_until(deadline_after(delay)) {
                    break;
                }
                self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            if let Err(e) = self.source.open() {
                if !offline_reported {
                    self.shared.emit(CameraHealth::Offline {
                        reason: e.to_string(),
                    });
                    offline_reported = true;
                }
                online = false;
                attempt = attempt.saturating_add(1);
                continue;
            }
            self.shared.session_started();
            let outcome = self.stream(&mut seq, &mut online, &mut last_res, &mut attempt);
            self.shared.session_ended();
            self.source.close();
            if online {
                // This session delivered frames: the next failure is a new outage.
                offline_reported = false;
            }
            match outcome {
                Outcome::Stopped => break,
                Outcome::Ended if self.loop_source => continue,
                Outcome::EndedWithError(reason) if self.loop_source => {
                    tracing::warn!(camera = %self.shared.camera, %reason, "source failed; looping");
                    continue;
                }
                Outcome::Ended => {
                    self.shared.emit(CameraHealth::Ended);
                    break;
                }
                Outcome::EndedWithError(reason) => {
                    self.shared.emit(CameraHealth::Offline { reason });
                    self.shared.emit(CameraHealth::Ended);
                    break;
                }
                Outcome::Failed(reason) => {
                    if !offline_reported {
                        self.shared.emit(CameraHealth::Offline { reason });
                        offline_reported = true;
                    }
                    online = false;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
        self.writer.close();
        if self.shared.stopping() {
            lock(&self.shared.state).0 = CameraState::Stopped;
        }
        self.shared.finished.store(true, Ordering::Release);
        self.shared.stop_cv.notify_all();
        tracing::info!(camera = %self.shared.camera, source = %name, "capture finished");
    }

    /// Reads one open session until it stops, ends or fails.
    fn stream(
        &mut self,
        seq: &mut u64,
        online: &mut bool,
        last_res: &mut Option<Resolution>,
        attempt: &mut u32,
    ) -> Outcome {
        let live = self.source.is_live();
        // Finite sources played in real time go no faster than their own frame rate.
        let native = if !live && self.realtime {
            self.source.native_fps().and_then(fps_interval)
        } else {
            None
        };
        let interval = match (self.cap_interval, native) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let mut frames = 0u64;
        let mut next_due: Option<Instant> = None;
        loop {
            if self.shared.stopping() {
                return Outcome::Stopped;
            }
            if !live {
                if let Some(due) = next_due {
                    if self.shared.wait_until(due) {
                        return Outcome::Stopped;
                    }
                }
            }
            // A live source under an fps cap: frames arriving before the next one is due are
            // grabbed but not converted (`read_or_skip`), and counted as skipped.
            let read = match (live, interval) {
                (true, Some(iv)) => {
                    let due = next_due;
                    self.source.read_or_skip(&mut |_| {
                        due.is_none_or(|due| Instant::now() + iv / 10 >= due)
                    })
                }
                _ => self.source.read().map(|f| f.map(Some)),
            };
            let mut f = match read {
                Ok(Some(Some(f))) => f,
                Ok(Some(None)) => {
                    frames += 1;
                    self.shared.frames_in.fetch_add(1, Ordering::Relaxed);
                    self.shared.frames_skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Ok(None) if frames > 0 => return Outcome::Ended,
                Ok(None) => {
                    return Outcome::Failed("source ended without delivering a frame".into())
                }
                Err(e) if !live && frames > 0 => return Outcome::EndedWithError(e.to_string()),
                Err(e) => return Outcome::Failed(e.to_string()),
            };
            frames += 1;
            *seq += 1;
            f.seq = *seq;
            self.shared.frames_in.fetch_add(1, Ordering::Relaxed);
            let res = Resolution {
                width: f.frame.width(),
                height: f.frame.height(),
            };
            let was_stale = self.shared.frame_seen(f.captured_at);
            if !*online || was_stale {
                self.shared.emit(CameraHealth::Online { resolution: res });
                *online = true;
                *attempt = 0;
            }
            if let Some(prev) = *last_res {
                if prev != res {
                    self.shared.emit(CameraHealth::ResolutionChanged {
                        from: prev,
                        to: res,
                    });
                }
            }
            *last_res = Some(res);

            if let Some(iv) = interval {
                let now = Instant::now();
                // Live: publish a frame once it is (nearly) due, skip the rest. Finite: every
                // frame is published and the next read waits until it is due.
                let due_now = next_due.is_none_or(|due| now + iv / 10 >= due);
                if live && !due_now {
                    self.shared.frames_skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                next_due = Some(match next_due {
                    Some(due) if now < due + iv => due + iv,
                    _ => now + iv,
                });
            }
            self.writer.publish(f);
        }
    }
}
