//! The pipeline after capture: vision → gallery search → tracker/debounced matcher, for any
//! number of cameras; the one event-key builder; bounded latency samples.

use crate::pool::{Analyzer, Job};
use crate::RuntimeError;
use chrono::{DateTime, Utc};
use rollcall_domain::face::FaceObservation;
use rollcall_domain::gallery::{best_per_student, Gallery, ModelRef, SearchQuery};
use rollcall_domain::matcher::debounce::{Candidate, Decision, MatcherConfig};
use rollcall_domain::matcher::engine::Engine;
use rollcall_domain::matcher::tracker::{TrackId, TrackerConfig};
use rollcall_domain::{CameraId, CampusId, Frame, TenantId};
use rollcall_vision::pipeline::{EmbedPolicy, Shot};
use rollcall_vision::FacePipeline;
use std::time::Instant;

/// The faces of one frame after inference, with each face's aligned crop (same order).
pub struct FrameFaces {
    pub faces: Vec<FaceObservation>,
    pub crops: Vec<Frame>,
}

/// The inference pool's analyzer for faces: detect → quality gate → align → embed the faces
/// that pass, all frames of a call together (two frames per detector call).
pub struct FaceAnalyzer(pub FacePipeline);

impl Analyzer for FaceAnalyzer {
    type Output = FrameFaces;
    fn analyze(&mut self, jobs: &[&Job]) -> Result<Vec<FrameFaces>, String> {
        let shots: Vec<Shot<'_>> = jobs
            .iter()
            .map(|j| Shot {
                detect: &j.frame,
                main: j.main.as_ref(),
            })
            .collect();
        let per_frame = self
            .0
            .analyze_shots(&shots, EmbedPolicy::Passing)
            .map_err(|e| e.to_string())?;
        Ok(per_frame
            .into_iter()
            .map(|faces| {
                let (faces, crops) = faces
                    .into_iter()
                    .map(|f| (f.observation, f.aligned))
                    .unzip();
                FrameFaces { faces, crops }
            })
            .collect())
    }
}

/// The steps after inference for every camera: gallery search, tracker, debounced matcher.
pub struct Recognizer {
    /// For frames analysed on the caller's thread ([`Recognizer::on_frame_tracked`]).
    pub pipeline: FacePipeline,
    /// The gallery searched (`serve`: for a Qdrant server a client of its own that tries each
    /// call once; the embedded gallery is shared with enrollment and erasure).
    pub gallery: std::sync::Arc<dyn Gallery>,
    pub tenant: TenantId,
    pub model: ModelRef,
    pub engine: Engine,
    /// The tracker settings every camera gets (a fresh engine keeps them).
    pub tracker_config: TrackerConfig,
    pub frames: u64,
    pub faces: u64,
    /// Milliseconds from a frame's capture to the decisions it produced.
    pub frame_to_decision_ms: Latencies,
}

impl Recognizer {
    pub fn new(
        pipeline: FacePipeline,
        gallery: std::sync::Arc<dyn Gallery>,
        tenant: TenantId,
    ) -> Result<Self, RuntimeError> {
        let engine = Engine::new(TrackerConfig::default(), matcher_config(&pipeline))
            .map_err(|e| RuntimeError::Config(e.to_string()))?;
        let model = ModelRef {
            model_id: pipeline.embedder.manifest().id.clone(),
            model_version: pipeline.embedder.manifest().version.clone(),
        };
        Ok(Self {
            pipeline,
            gallery,
            tenant,
            model,
            engine,
            tracker_config: TrackerConfig::default(),
            frames: 0,
            faces: 0,
            frame_to_decision_ms: Latencies::default(),
        })
    }

    /// A fresh tracker and matcher (no camera, no open track).
    pub fn reset_engine(&mut self) -> Result<(), RuntimeError> {
        self.engine = Engine::new(self.tracker_config.clone(), matcher_config(&self.pipeline))
            .map_err(|e| RuntimeError::Config(e.to_string()))?;
        Ok(())
    }

    /// The same recognizer with other tracker settings (a fresh engine: call it before adding
    /// cameras). A setting out of range is refused.
    pub fn with_tracker_config(mut self, config: TrackerConfig) -> Result<Self, RuntimeError> {
        self.tracker_config = config;
        self.reset_engine()?;
        Ok(self)
    }

    pub fn add_camera(&mut self, camera: CameraId, campus: CampusId) -> Result<(), RuntimeError> {
        self.engine
            .add_camera(camera, campus, 1)
            .map_err(|e| RuntimeError::Config(e.to_string()))?;
        Ok(())
    }

    /// Candidates of one face: the gallery's best students (empty when the face has no
    /// embedding, i.e. it failed the quality gate and must not vote).
    async fn candidates(
        &self,
        face: &FaceObservation,
        campus: &CampusId,
    ) -> Result<Vec<Candidate>, RuntimeError> {
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

    /// One frame of one camera at event time `at`, analysed on this thread; returns the
    /// decisions it produced.
    pub async fn on_frame(
        &mut self,
        camera: &CameraId,
        campus: &CampusId,
        at: DateTime<Utc>,
        frame: &Frame,
        captured: Instant,
    ) -> Result<Vec<Decision>, RuntimeError> {
        Ok(self
            .on_frame_tracked(camera, campus, at, frame, captured)
            .await?
            .decisions)
    }

    /// [`Recognizer::on_frame`], also returning each face's box, the track it joined and its
    /// aligned crop (for scoring against ground truth and for review items).
    pub async fn on_frame_tracked(
        &mut self,
        camera: &CameraId,
        campus: &CampusId,
        at: DateTime<Utc>,
        frame: &Frame,
        captured: Instant,
    ) -> Result<TrackedFrame, RuntimeError> {
        self.on_shot_tracked(camera, campus, at, Shot::single(frame), captured)
            .await
    }

    /// [`Recognizer::on_frame_tracked`] for a camera instant that may come with its main
    /// stream's frame ([`Shot`]): faces found in the detect frame, cut from the main one.
    pub async fn on_shot_tracked(
        &mut self,
        camera: &CameraId,
        campus: &CampusId,
        at: DateTime<Utc>,
        shot: Shot<'_>,
        captured: Instant,
    ) -> Result<TrackedFrame, RuntimeError> {
        let analyzed = self
            .pipeline
            .analyze_shots(&[shot], EmbedPolicy::Passing)
            .map_err(|e| RuntimeError::Inference(e.to_string()))?
            .pop()
            .unwrap_or_default();
        let (faces, crops): (Vec<FaceObservation>, Vec<Frame>) = analyzed
            .into_iter()
            .map(|a| (a.observation, a.aligned))
            .unzip();
        let mut out = self
            .on_analyzed(camera, campus, at, faces, captured)
            .await?;
        out.crops = crops;
        Ok(out)
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
    ) -> Result<TrackedFrame, RuntimeError> {
        let lists = self.search(&faces, campus).await?;
        let out = self.apply(camera, at, faces, lists, captured)?;
        self.search_templates(camera, campus, &out.tracks).await?;
        Ok(out)
    }

    /// Searches the gallery with the templates of `tracks` (this frame's tracks of `camera`)
    /// that could still decide their track, and hands the answers to the matcher (see the
    /// matcher's template accept). Call it after [`Recognizer::apply`]; when it fails the
    /// tracks keep their previous template answer (the evidence is extra, nothing is lost).
    pub async fn search_templates(
        &mut self,
        camera: &CameraId,
        campus: &CampusId,
        tracks: &[TrackId],
    ) -> Result<(), RuntimeError> {
        for (track, tpl) in self.engine.templates_wanted(camera, tracks) {
            let (sightings, averaged, centred) = (tpl.sightings, tpl.averaged, tpl.centred);
            let mut q = SearchQuery::new(self.tenant.clone(), tpl.embedding.vector, 20);
            q.campus = Some(campus.clone());
            q.model = Some(self.model.clone());
            let hits = self.gallery.search(&q).await?;
            let cands: Vec<Candidate> = best_per_student(&hits, 5)
                .into_iter()
                .map(|c| Candidate::new(c.student, c.similarity))
                .collect();
            tracing::debug!(
                track = %track,
                sightings,
                averaged,
                centred,
                top = ?cands.first().map(|c| (c.student.to_string(), c.similarity)),
                second = ?cands.get(1).map(|c| c.similarity),
                "track template searched"
            );
            self.engine
                .note_template(&track, &cands, sightings, centred);
        }
        Ok(())
    }

    /// The gallery's candidates of every face of a frame (same order). Nothing changes in the
    /// recognizer: a frame whose search failed can be searched again later.
    pub async fn search(
        &self,
        faces: &[FaceObservation],
        campus: &CampusId,
    ) -> Result<Vec<Vec<Candidate>>, RuntimeError> {
        let mut lists = Vec::with_capacity(faces.len());
        for f in faces {
            lists.push(self.candidates(f, campus).await?);
        }
        Ok(lists)
    }

    /// A frame's faces and their candidates ([`Recognizer::search`]) through the tracker and
    /// the matcher.
    pub fn apply(
        &mut self,
        camera: &CameraId,
        at: DateTime<Utc>,
        faces: Vec<FaceObservation>,
        lists: Vec<Vec<Candidate>>,
        captured: Instant,
    ) -> Result<TrackedFrame, RuntimeError> {
        self.frames += 1;
        self.faces += faces.len() as u64;
        let mut it = lists.into_iter();
        let out = self
            .engine
            .on_frame(camera, at, &faces, |_| it.next().unwrap_or_default())
            .map_err(|e| RuntimeError::Config(e.to_string()))?;
        if !out.decisions.is_empty() {
            self.frame_to_decision_ms
                .push(captured.elapsed().as_secs_f64() * 1e3);
        }
        Ok(TrackedFrame {
            boxes: faces.iter().map(|f| f.bbox).collect(),
            qualities: faces.iter().map(|f| f.quality.overall).collect(),
            tracks: out.update.assignments,
            decisions: out.decisions,
            crops: Vec::new(),
        })
    }
}

fn matcher_config(p: &FacePipeline) -> MatcherConfig {
    let t = p.thresholds();
    MatcherConfig {
        accept_threshold: t.accept,
        review_threshold: t.review,
        ..Default::default()
    }
}

/// What one frame did: the faces found (boxes, quality), the track each joined, their aligned
/// crops when the frame was analysed here, and the decisions.
pub struct TrackedFrame {
    pub boxes: Vec<rollcall_domain::face::BBox>,
    pub qualities: Vec<f32>,
    pub tracks: Vec<TrackId>,
    pub decisions: Vec<Decision>,
    pub crops: Vec<Frame>,
}

/// The one key of a track, `face:{camera}:{track}:{first_seen_ms}`: the event key of its
/// check-in (a retry, a replay after a restart or another process's report of the same track
/// is a no-op in the ledger) and the review queue's track key.
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

/// Latency samples in milliseconds, kept in a histogram (hdrhistogram, 3 significant digits,
/// 1 µs to 1 h): percentiles are over **every** sample recorded, in flat memory, so a
/// long-running `serve` and a benchmark report the same statistic over what they counted.
#[derive(Debug, Clone)]
pub struct Latencies {
    hist: hdrhistogram::Histogram<u64>,
    /// Samples ever recorded.
    pub count: u64,
}

impl Default for Latencies {
    fn default() -> Self {
        Self {
            hist: hdrhistogram::Histogram::new_with_bounds(1, Self::MAX_US, 3)
                .expect("valid histogram bounds"),
            count: 0,
        }
    }
}

impl Latencies {
    /// One hour, in microseconds: longer samples are recorded as one hour.
    const MAX_US: u64 = 3_600_000_000;

    pub fn push(&mut self, ms: f64) {
        let us = if ms.is_finite() {
            (ms * 1e3).round()
        } else {
            0.0
        };
        self.hist
            .saturating_record((us.max(1.0) as u64).min(Self::MAX_US));
        self.count += 1;
    }

    /// Quantile `q` (0..=1) of every sample, to 0.1 ms.
    pub fn percentile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let us = self.hist.value_at_quantile(q.clamp(0.0, 1.0)) as f64;
        Some((us / 100.0).round() / 10.0)
    }
}

#[cfg(test)]
mod latency_tests {
    use super::Latencies;

    #[test]
    fn percentiles_cover_every_sample() {
        let mut l = Latencies::default();
        assert_eq!(l.percentile(0.5), None);
        // 20,000 samples: the first 10,000 slow, the last 10,000 fast; a window of the
        // last 10,000 would say p99 = 1 ms
        for _ in 0..10_000 {
            l.push(200.0);
        }
        for _ in 0..10_000 {
            l.push(1.0);
        }
        let near = |got: Option<f64>, want: f64| {
            got.is_some_and(|g| (g - want).abs() <= want * 0.002 + 0.05)
        };
        assert_eq!(l.count, 20_000);
        assert!(near(l.percentile(0.99), 200.0), "{:?}", l.percentile(0.99));
        assert!(near(l.percentile(0.25), 1.0), "{:?}", l.percentile(0.25));
        // nonsense does not panic and stays within the bounds
        l.push(f64::NAN);
        l.push(-5.0);
        l.push(1e12);
        assert_eq!(l.count, 20_003);
        assert!(
            near(l.percentile(1.0), 3_600_000.0),
            "{:?}",
            l.percentile(1.0)
        );
    }
}
