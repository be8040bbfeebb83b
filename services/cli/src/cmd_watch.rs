//! `rollcall watch SOURCE`: the streaming pipeline on one source against an existing data
//! directory, printing one JSON line per track decision and a final summary line.
//!
//! Finite sources (files, image folders) are read frame by frame with nothing dropped, at the
//! `--fps` rate of media time (default 10), as fast as the machine allows; the frame timestamps
//! (media position from `--start`) drive the tracker and the debounced matcher, so a run is
//! reproducible. Live sources (rtsp/http/device) go through the capture worker: latest frame
//! wins, the wall clock is the time. `watch` never writes to the ledger: it is how an
//! integrator checks a camera and how the speed of the whole pipeline is measured.

use crate::cmd_gallery::{dim_of, open_gallery, open_school, DataOpts};
use crate::cmd_vision::VisionOpts;
use anyhow::{anyhow, Context};
use chrono::{DateTime, Duration, Utc};
use rollcall_capture::{open_source, SourceOptions};
use rollcall_domain::face::FaceObservation;
use rollcall_domain::gallery::{best_per_student, Gallery, ModelRef, SearchQuery};
use rollcall_domain::matcher::debounce::{Candidate, Decision, MatcherConfig};
use rollcall_domain::matcher::engine::Engine;
use rollcall_domain::matcher::tracker::TrackerConfig;
use rollcall_domain::{CameraId, CampusId, Frame, TenantId};
use rollcall_vision::pipeline::EmbedPolicy;
use rollcall_vision::FacePipeline;
use serde_json::{json, Value};
use std::time::Instant;

/// The pipeline after capture: vision → gallery → tracker/matcher, for any number of cameras.
pub struct Recognizer {
    pub pipeline: FacePipeline,
    /// Shared: `serve` also enrolls and erases through it (the API).
    pub gallery: std::sync::Arc<dyn Gallery>,
    pub tenant: TenantId,
    pub model: ModelRef,
    pub engine: Engine,
    pub frames: u64,
    pub faces: u64,
    /// Milliseconds from a frame's capture to the decisions it produced (recent window).
    pub frame_to_decision_ms: Latencies,
}

impl Recognizer {
    pub fn new(
        pipeline: FacePipeline,
        gallery: Box<dyn Gallery>,
        tenant: TenantId,
    ) -> anyhow::Result<Self> {
        let t = pipeline.thresholds();
        let matcher = MatcherConfig {
            accept_threshold: t.accept,
            review_threshold: t.review,
            ..Default::default()
        };
        let model = ModelRef {
            model_id: pipeline.embedder.manifest().id.clone(),
            model_version: pipeline.embedder.manifest().version.clone(),
        };
        Ok(Self {
            pipeline,
            gallery: std::sync::Arc::from(gallery),
            tenant,
            model,
            engine: Engine::new(TrackerConfig::default(), matcher)?,
            frames: 0,
            faces: 0,
            frame_to_decision_ms: Latencies::default(),
        })
    }

    pub fn add_camera(&mut self, camera: CameraId, campus: CampusId) -> anyhow::Result<()> {
        self.engine.add_camera(camera, campus, 1)?;
        Ok(())
    }

    /// Candidates of one face: the gallery's best students (empty when the face has no
    /// embedding, i.e. it failed the quality gate and must not vote).
    async fn candidates(
        &self,
        face: &FaceObservation,
        campus: &CampusId,
    ) -> anyhow::Result<Vec<Candidate>> {
        let Some(e) = &face.embedding else {
            return Ok(Vec::new());
        };
        let mut q = SearchQuery::new(self.tenant.clone(), e.vector.clone(), 20);
        q.campus = Some(campus.clone());
        q.model = Some(self.model.clone());
        let hits = self.gallery.search(&q).await?;
        Ok(best_per_student(&hits, 5)
            .into_iter()
            .map(|c| Candidate::new(c.student, c.similarity))
            .collect())
    }

    /// One frame of one camera at event time `at`; returns the decisions it produced.
    pub async fn on_frame(
        &mut self,
        camera: &CameraId,
        campus: &CampusId,
        at: DateTime<Utc>,
        frame: &Frame,
        captured: Instant,
    ) -> anyhow::Result<Vec<Decision>> {
        Ok(self
            .on_frame_tracked(camera, campus, at, frame, captured)
            .await?
            .decisions)
    }

    /// [`Recognizer::on_frame`], also returning each face's box and the track it joined (for
    /// scoring against ground truth).
    pub async fn on_frame_tracked(
        &mut self,
        camera: &CameraId,
        campus: &CampusId,
        at: DateTime<Utc>,
        frame: &Frame,
        captured: Instant,
    ) -> anyhow::Result<TrackedFrame> {
        let analyzed = self.pipeline.analyze(frame, EmbedPolicy::Passing)?;
        let faces: Vec<FaceObservation> = analyzed.into_iter().map(|a| a.observation).collect();
        self.on_analyzed(camera, campus, at, faces, captured).await
    }

    /// The steps after inference (gallery search, tracker, matcher) for a frame whose faces the
    /// inference pool already analysed.
    pub async fn on_analyzed(
        &mut self,
        camera: &CameraId,
        campus: &CampusId,
        at: DateTime<Utc>,
        faces: Vec<FaceObservation>,
        captured: Instant,
    ) -> anyhow::Result<TrackedFrame> {
        let mut lists = Vec::with_capacity(faces.len());
        for f in &faces {
            lists.push(self.candidates(f, campus).await?);
        }
        self.frames += 1;
        self.faces += faces.len() as u64;
        let mut it = lists.into_iter();
        let out = self
            .engine
            .on_frame(camera, at, &faces, |_| it.next().unwrap_or_default())?;
        if !out.decisions.is_empty() {
            self.frame_to_decision_ms
                .push(captured.elapsed().as_secs_f64() * 1e3);
        }
        Ok(TrackedFrame {
            boxes: faces.iter().map(|f| f.bbox).collect(),
            tracks: out.update.assignments,
            decisions: out.decisions,
        })
    }
}

/// The one key of a track, `face:{camera}:{track}:{first_seen_ms}`: the event key of its
/// check-in (a retry or another process's report of the same track is a no-op in the ledger)
/// and the review queue's track key.
pub fn track_key(d: &Decision) -> String {
    format!(
        "face:{}:{}:{}",
        d.track.camera,
        d.track.seq,
        d.first_seen.timestamp_millis()
    )
}

/// The ledger check-in of an accepted track (face source, its camera, its track key), or
/// `None` when the decision checks nobody in.
pub fn face_check_in(d: &Decision) -> Option<rollcall_ledger::CheckIn> {
    let student = d.check_in()?;
    let mut ci = rollcall_ledger::CheckIn::new(
        student.as_str(),
        d.decided_at,
        rollcall_domain::ledger::AttendanceSource::Face,
    );
    ci.camera_id = Some(d.track.camera.to_string());
    ci.event_key = Some(track_key(d));
    Some(ci)
}

/// What one frame did: the faces found (boxes), the track each joined, and the decisions.
pub struct TrackedFrame {
    pub boxes: Vec<rollcall_domain::face::BBox>,
    pub tracks: Vec<rollcall_domain::matcher::tracker::TrackId>,
    pub decisions: Vec<Decision>,
}

fn line(d: &Decision) -> Value {
    serde_json::to_value(d.line()).unwrap_or(Value::Null)
}

/// The most recent latency samples (bounded, so a long-running `serve` keeps flat memory).
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    recent: std::collections::VecDeque<f64>,
    /// Samples ever recorded.
    pub count: u64,
}

impl Latencies {
    const WINDOW: usize = 10_000;

    pub fn push(&mut self, ms: f64) {
        if self.recent.len() == Self::WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(ms);
        self.count += 1;
    }

    /// Quantile `q` of the recent window, to 0.1 ms.
    pub fn percentile(&self, q: f64) -> Option<f64> {
        if self.recent.is_empty() {
            return None;
        }
        let mut s: Vec<f64> = self.recent.iter().copied().collect();
        s.sort_by(f64::total_cmp);
        Some((s[((s.len() - 1) as f64 * q).round() as usize] * 10.0).round() / 10.0)
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn run(
    v: &VisionOpts,
    d: &DataOpts,
    source: &str,
    camera: &str,
    campus: &str,
    fps: f64,
    start: Option<&str>,
    emit: &mut dyn FnMut(&Value),
) -> anyhow::Result<Value> {
    let camera = CameraId::new(camera).map_err(|e| anyhow!("--camera: {e}"))?;
    let campus = CampusId::new(campus).map_err(|e| anyhow!("--campus: {e}"))?;
    let school = open_school(d, false).await?;
    let tenant = TenantId::new(school.school_id()).map_err(|e| anyhow!("school id: {e}"))?;
    school.close().await;
    let p = v.open()?;
    let gallery = open_gallery(d, dim_of(&p)).await?;
    let mut r = Recognizer::new(p, gallery, tenant)?;
    r.add_camera(camera.clone(), campus.clone())?;
    let start = match start {
        Some(s) => DateTime::parse_from_rfc3339(s)
            .with_context(|| format!("--start {s:?} is not an RFC 3339 time"))?
            .with_timezone(&Utc),
        None => Utc::now(),
    };
    let mut src = open_source(source, &SourceOptions::default())
        .with_context(|| format!("opening {source}"))?;
    src.open().with_context(|| format!("opening {source}"))?;
    let live = src.is_live();
    let t0 = Instant::now();
    let mut decisions = 0u64;
    let step = if fps > 0.0 { 1.0 / fps } else { 0.0 };
    let mut next_pos = 0.0f64;
    let mut last_at = start;
    let mut read_frames = 0u64;
    loop {
        let Some(cf) = src.read().with_context(|| format!("reading {source}"))? else {
            break;
        };
        read_frames += 1;
        let at = match (live, cf.position) {
            (false, Some(pos)) => {
                let pos = pos.as_secs_f64();
                if pos + 1e-6 < next_pos {
                    continue; // above the --fps rate of media time
                }
                next_pos = pos + step;
                start + Duration::microseconds((pos * 1e6) as i64)
            }
            _ => cf.captured_at,
        };
        last_at = at;
        for dcs in r
            .on_frame(&camera, &campus, at, &cf.frame, cf.captured_instant)
            .await?
        {
            decisions += 1;
            emit(&line(&dcs));
        }
    }
    src.close();
    for dcs in r.engine.finish(last_at + Duration::seconds(1)) {
        decisions += 1;
        emit(&line(&dcs));
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok(json!({
        "frames": r.frames,
        "frames_read": read_frames,
        "faces": r.faces,
        "decisions": decisions,
        "fps": if secs > 0.0 { (r.frames as f64 / secs * 10.0).round() / 10.0 } else { 0.0 },
        "seconds": (secs * 1000.0).round() / 1000.0,
        "frame_to_decision_ms": {
            "p50": r.frame_to_decision_ms.percentile(0.5),
            "p99": r.frame_to_decision_ms.percentile(0.99),
        },
    }))
}
