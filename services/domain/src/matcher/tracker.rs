//! Per-camera face tracker.
//!
//! Associates the faces of consecutive frames of ONE camera into tracks:
//!
//! * **cost** of pairing a live track with a new face: `1 − (w·IoU + (1 − w)·cos)`, where IoU is
//!   the better of the overlap with the track's last box and with its constant-velocity
//!   prediction, and `cos` the cosine between the track's appearance (a running mean of its
//!   embeddings) and the face's embedding; without a comparable embedding it is `1 − IoU`;
//! * **gating**: a pair is refused when the embeddings are clearly of different people
//!   (`cos < min_similarity`), when the boxes do not overlap and the embeddings are not similar
//!   enough to re-identify (`IoU < min_iou` and `cos < reid_similarity`), or, without embeddings,
//!   when the overlap is below `min_iou_without_embedding`;
//! * **assignment**: Hungarian (Kuhn–Munkres) on the gated cost matrix: the largest number of
//!   admissible pairs, and among those the cheapest;
//! * **birth / death**: every face left unassigned starts a track; a track not hit for longer than
//!   `max_age` ends (checked on each frame and on [`Tracker::expire`]);
//! * **history**: the last `history_len` hits of each track;
//! * **best shot**: the hit with the highest `quality.overall` (never anything the gallery says).
//!
//! Time is the frame's timestamp, passed in; the tracker never reads a clock.

use crate::face::{BBox, Embedding, FaceObservation};
use crate::ids::CameraId;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fmt;

/// A track: unique per camera (a sequence number), and across cameras (the camera id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TrackId {
    pub camera: CameraId,
    pub seq: u64,
}

impl TrackId {
    pub fn new(camera: CameraId, seq: u64) -> Self {
        Self { camera, seq }
    }
}

impl fmt::Display for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.camera, self.seq)
    }
}

/// Names one face of one frame: the opaque crop reference the pipeline keys its crops by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObsRef {
    pub camera: CameraId,
    /// Timestamp of the frame.
    pub frame_at: DateTime<Utc>,
    /// Index of the face in the frame's observation list.
    pub index: u32,
}

/// One hit of a track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackPoint {
    pub at: DateTime<Utc>,
    /// Index of the face in its frame.
    pub index: u32,
    pub bbox: BBox,
    pub quality: f32,
    /// Overlap with the track when associated (`None` for the face that started the track).
    pub iou: Option<f32>,
    /// Cosine with the track's appearance when associated and comparable.
    pub similarity: Option<f32>,
}

/// The best shot of a track: the whole observation, and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shot {
    pub obs: ObsRef,
    /// `face.quality.overall`, the only ranking criterion.
    pub quality: f32,
    pub face: FaceObservation,
}

/// Why a track ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Not hit for longer than `max_age`.
    Expired,
    /// The caller ended every track ([`Tracker::finish`]: source ended, shutdown).
    Flushed,
}

/// A track that ended, with everything the matcher and the review queue need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndedTrack {
    pub id: TrackId,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// The time the end was noticed (the frame or `now` that ended it).
    pub ended_at: DateTime<Utc>,
    pub hits: u32,
    pub best: Shot,
    /// Running mean of the track's embeddings (renormalised), if it had any.
    pub appearance: Option<Embedding>,
    /// The last `history_len` hits, oldest first.
    pub history: Vec<TrackPoint>,
    pub reason: EndReason,
}

/// What one frame did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackUpdate {
    pub camera: CameraId,
    pub at: DateTime<Utc>,
    /// For each observation of the frame, in order, the track it now belongs to.
    pub assignments: Vec<TrackId>,
    /// Tracks started by this frame (a subset of `assignments`).
    pub born: Vec<TrackId>,
    /// Tracks that ended before this frame was associated (not hit for longer than `max_age`).
    pub ended: Vec<EndedTrack>,
}

/// Tracker settings. [`Default`] suits a lobby camera at 5–15 fps with unit-norm embeddings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrackerConfig {
    /// A track not hit for longer than this ends.
    #[serde(with = "duration_millis")]
    pub max_age: Duration,
    /// Weight of IoU in the affinity (the rest is the embedding cosine), in [0, 1].
    pub iou_weight: f32,
    /// Below this IoU two boxes count as not overlapping.
    pub min_iou: f32,
    /// Without comparable embeddings, a pair needs at least this IoU.
    pub min_iou_without_embedding: f32,
    /// Pairs whose embeddings are less similar than this are never associated (other person).
    pub min_similarity: f32,
    /// Pairs that do not overlap need at least this cosine (re-identification after a jump).
    pub reid_similarity: f32,
    /// Weight of the old appearance when a new embedding is folded in, in [0, 1).
    pub appearance_momentum: f32,
    /// Hits kept per track.
    pub history_len: usize,
    /// The track's template averages its this many best embedded sightings (by
    /// `quality.overall`); 0: every embedded sighting. A walk-by of a small face is mostly
    /// sightings too small or blurred to say who it is and a few close, sharp ones that do:
    /// averaging all of them drowns the few.
    pub template_best: usize,
    /// Camera-mean centring of templates (issue 22), in [0, 1); 0: off. Small, blurred or
    /// dim faces of one camera share a large common component (the camera's light, blur and
    /// compression, not the person) that pulls every one of them towards every student alike.
    /// The tracker keeps the mean of the embedded sightings of its camera; a track born after
    /// at least `camera_mean_min` of them keeps that mean (unit norm, as it was at its birth)
    /// and its template is `t − camera_mean_weight · mean`, renormalised. The matcher judges
    /// such a template by its own threshold ([`super::MatcherConfig::template_centred_threshold`]).
    pub camera_mean_weight: f32,
    /// Embedded sightings of the camera before its mean centres templates (a restarted
    /// process starts counting again).
    pub camera_mean_min: u32,
    /// The mean is the running mean of every sighting up to this many, then an exponential
    /// one over about this many (light changes over a day).
    pub camera_mean_window: u32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            max_age: Duration::milliseconds(2000),
            iou_weight: 0.5,
            min_iou: 0.05,
            min_iou_without_embedding: 0.3,
            min_similarity: 0.2,
            reid_similarity: 0.5,
            appearance_momentum: 0.7,
            history_len: 32,
            template_best: 3,
            camera_mean_weight: 0.3,
            camera_mean_min: 50,
            camera_mean_window: 5000,
        }
    }
}

/// A setting out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("tracker config: {0}")]
pub struct TrackerConfigError(pub String);

impl TrackerConfig {
    pub fn validate(&self) -> Result<(), TrackerConfigError> {
        let unit = |name: &str, v: f32| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(TrackerConfigError(format!("{name} = {v} is not in [0, 1]")))
            }
        };
        if self.max_age <= Duration::zero() {
            return Err(TrackerConfigError("max_age must be positive".into()));
        }
        unit("iou_weight", self.iou_weight)?;
        unit("min_iou", self.min_iou)?;
        unit("min_iou_without_embedding", self.min_iou_without_embedding)?;
        if !(-1.0..=1.0).contains(&self.min_similarity) {
            return Err(TrackerConfigError(
                "min_similarity must be in [-1, 1]".into(),
            ));
        }
        if !(-1.0..=1.0).contains(&self.reid_similarity) {
            return Err(TrackerConfigError(
                "reid_similarity must be in [-1, 1]".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.appearance_momentum) {
            return Err(TrackerConfigError(
                "appearance_momentum must be in [0, 1)".into(),
            ));
        }
        if self.history_len == 0 {
            return Err(TrackerConfigError("history_len must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&self.camera_mean_weight) {
            return Err(TrackerConfigError(
                "camera_mean_weight must be in [0, 1)".into(),
            ));
        }
        if self.camera_mean_window == 0 {
            return Err(TrackerConfigError(
                "camera_mean_window must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Misuse of the tracker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackerError {
    #[error("frame at {got} is older than the last frame at {last}")]
    OutOfOrder {
        last: DateTime<Utc>,
        got: DateTime<Utc>,
    },
}

/// A live track (read-only view through its methods).
#[derive(Debug, Clone)]
pub struct Track {
    id: TrackId,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    hits: u32,
    last_box: BBox,
    /// Centre velocity in pixels per second, once two hits are known.
    velocity: Option<(f32, f32)>,
    appearance: Option<Embedding>,
    /// Quality-weighted sum of every embedded sighting (the track's template).
    template: Option<TemplateSum>,
    /// The camera's mean embedding when the track was born ([`TrackerConfig::camera_mean_weight`]),
    /// already multiplied by the weight; `None`: templates are not centred.
    centre: Option<Embedding>,
    history: VecDeque<TrackPoint>,
    best: Shot,
}

/// A track's embedded sightings as far as its template needs them: the quality-weighted sum of
/// all of them (`keep` = 0), or the `keep` best by quality.
#[derive(Debug, Clone)]
struct TemplateSum {
    /// Quality-weighted sum of every sighting (`keep` = 0; empty otherwise).
    sum: Vec<f32>,
    /// Size of the embeddings.
    dim: usize,
    /// The `keep` best sightings, (quality, embedding), best first; on equal quality the
    /// earlier sighting stays first (deterministic).
    best: Vec<(f32, Vec<f32>)>,
    keep: usize,
    /// Embedded sightings seen (of this model and size).
    sightings: u32,
    model_id: String,
    model_version: String,
}

impl TemplateSum {
    /// Weight of a sighting: its overall quality, floored so a poor one still counts a little.
    fn weight(quality: f32) -> f32 {
        if quality.is_finite() {
            quality.clamp(0.05, 1.0)
        } else {
            0.05
        }
    }

    fn start(face: &FaceObservation, keep: usize) -> Option<Self> {
        let e = face.embedding.as_ref()?;
        if e.vector.is_empty() || e.vector.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let mut t = Self {
            sum: if keep == 0 {
                vec![0.0; e.vector.len()]
            } else {
                Vec::new()
            },
            dim: e.vector.len(),
            best: Vec::new(),
            keep,
            sightings: 0,
            model_id: e.model_id.clone(),
            model_version: e.model_version.clone(),
        };
        t.add(face);
        Some(t)
    }

    /// Adds a sighting of the same model and dimension (others are ignored).
    fn add(&mut self, face: &FaceObservation) {
        let Some(e) = &face.embedding else { return };
        if e.vector.len() != self.dim
            || e.model_id != self.model_id
            || e.model_version != self.model_version
            || e.vector.iter().any(|x| !x.is_finite())
        {
            return;
        }
        self.sightings += 1;
        let q = face.quality.overall;
        if self.keep == 0 {
            let w = Self::weight(q);
            self.sum
                .iter_mut()
                .zip(&e.vector)
                .for_each(|(s, x)| *s += w * x);
            return;
        }
        let rank = Self::weight(q);
        let at = self.best.iter().position(|(b, _)| rank > *b);
        match at {
            Some(i) => self.best.insert(i, (rank, e.vector.clone())),
            None if self.best.len() < self.keep => self.best.push((rank, e.vector.clone())),
            None => {}
        }
        self.best.truncate(self.keep);
    }

    fn template(&self, centre: Option<&Embedding>) -> Option<TrackTemplate> {
        let (mut v, averaged) = if self.keep == 0 {
            (self.sum.clone(), self.sightings)
        } else {
            let mut v = vec![0.0f32; self.dim];
            for (w, e) in &self.best {
                v.iter_mut().zip(e).for_each(|(s, x)| *s += w * x);
            }
            (v, self.best.len() as u32)
        };
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if !(norm > 0.0 && norm.is_finite()) {
            return None;
        }
        v.iter_mut().for_each(|x| *x /= norm);
        let centre = centre.filter(|c| {
            c.vector.len() == self.dim
                && c.model_id == self.model_id
                && c.model_version == self.model_version
        });
        let mut centred = false;
        if let Some(c) = centre {
            let w: Vec<f32> = v.iter().zip(&c.vector).map(|(x, m)| x - m).collect();
            let n = w.iter().map(|x| x * x).sum::<f32>().sqrt();
            // the weight is below 1 and the mean has unit norm, so n ≥ 1 − weight > 0
            if n > 0.0 && n.is_finite() {
                v = w.into_iter().map(|x| x / n).collect();
                centred = true;
            }
        }
        Some(TrackTemplate {
            embedding: Embedding {
                model_id: self.model_id.clone(),
                model_version: self.model_version.clone(),
                vector: v,
            },
            sightings: self.sightings,
            averaged,
            centred,
        })
    }
}

/// Running mean of a camera's embedded sightings ([`TrackerConfig::camera_mean_weight`]).
#[derive(Debug, Clone)]
struct CameraMean {
    mean: Vec<f32>,
    /// Sightings folded in (saturates at the window for the exponential part).
    n: u32,
    seen: u64,
    model_id: String,
    model_version: String,
}

impl CameraMean {
    fn add(slot: &mut Option<CameraMean>, e: &Embedding, window: u32) {
        if e.vector.is_empty() || e.vector.iter().any(|x| !x.is_finite()) {
            return;
        }
        let same = slot.as_ref().is_some_and(|m| {
            m.mean.len() == e.vector.len()
                && m.model_id == e.model_id
                && m.model_version == e.model_version
        });
        if !same {
            // first sighting, or the model changed: start again with this model
            *slot = Some(CameraMean {
                mean: vec![0.0; e.vector.len()],
                n: 0,
                seen: 0,
                model_id: e.model_id.clone(),
                model_version: e.model_version.clone(),
            });
        }
        let m = slot.as_mut().expect("set above");
        m.n = (m.n + 1).min(window.max(1));
        m.seen += 1;
        let k = 1.0 / m.n as f32;
        m.mean
            .iter_mut()
            .zip(&e.vector)
            .for_each(|(a, x)| *a += (x - *a) * k);
    }

    /// The mean at unit norm times `weight`, once `min` sightings were seen.
    fn centre(&self, weight: f32, min: u32) -> Option<Embedding> {
        if weight <= 0.0 || self.seen < u64::from(min.max(1)) {
            return None;
        }
        let n = self.mean.iter().map(|x| x * x).sum::<f32>().sqrt();
        (n > 0.0 && n.is_finite()).then(|| Embedding {
            model_id: self.model_id.clone(),
            model_version: self.model_version.clone(),
            vector: self.mean.iter().map(|x| weight * x / n).collect(),
        })
    }
}

/// A track's template: the quality-weighted mean of its best sightings' embeddings (unit norm;
/// [`TrackerConfig::template_best`]), with how many embedded sightings the track has and how
/// many the template averages. Noise of single sightings averages out, so the template is
/// searched in the gallery as one more, steadier piece of evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackTemplate {
    pub embedding: Embedding,
    /// Embedded sightings of the track.
    pub sightings: u32,
    /// Of those, the ones the template averages ([`TrackerConfig::template_best`]).
    pub averaged: u32,
    /// Whether the camera's mean was taken off ([`TrackerConfig::camera_mean_weight`]).
    pub centred: bool,
}

impl Track {
    pub fn id(&self) -> &TrackId {
        &self.id
    }
    pub fn first_seen(&self) -> DateTime<Utc> {
        self.first_seen
    }
    pub fn last_seen(&self) -> DateTime<Utc> {
        self.last_seen
    }
    pub fn hits(&self) -> u32 {
        self.hits
    }
    pub fn last_box(&self) -> BBox {
        self.last_box
    }
    pub fn best(&self) -> &Shot {
        &self.best
    }
    /// Running mean of the track's embeddings (renormalised).
    pub fn appearance(&self) -> Option<&Embedding> {
        self.appearance.as_ref()
    }
    pub fn history(&self) -> impl Iterator<Item = &TrackPoint> {
        self.history.iter()
    }
    /// The track's template (quality-weighted mean of its best embedded sightings), if any.
    pub fn template(&self) -> Option<TrackTemplate> {
        self.template
            .as_ref()
            .and_then(|t| t.template(self.centre.as_ref()))
    }

    /// The last box moved by the track's velocity to `at` (at most `max_age` ahead).
    fn predicted(&self, at: DateTime<Utc>, max_age: Duration) -> BBox {
        let Some((vx, vy)) = self.velocity else {
            return self.last_box;
        };
        let dt = secs((at - self.last_seen).min(max_age).max(Duration::zero()));
        let (dx, dy) = (vx * dt, vy * dt);
        BBox {
            x1: self.last_box.x1 + dx,
            y1: self.last_box.y1 + dy,
            x2: self.last_box.x2 + dx,
            y2: self.last_box.y2 + dy,
        }
    }

    fn end(self, ended_at: DateTime<Utc>, reason: EndReason) -> EndedTrack {
        EndedTrack {
            id: self.id,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            ended_at,
            hits: self.hits,
            best: self.best,
            appearance: self.appearance,
            history: self.history.into_iter().collect(),
            reason,
        }
    }
}

fn secs(d: Duration) -> f32 {
    d.num_microseconds().unwrap_or(i64::MAX) as f32 / 1e6
}

/// Tracks of one camera.
#[derive(Debug, Clone)]
pub struct Tracker {
    camera: CameraId,
    config: TrackerConfig,
    next_seq: u64,
    last_frame_at: Option<DateTime<Utc>>,
    /// Live tracks, oldest first.
    tracks: Vec<Track>,
    /// Mean of the camera's embedded sightings.
    camera_mean: Option<CameraMean>,
}

/// Cost of a refused pair; large enough that the assignment avoids every refused pair it can.
const FORBIDDEN: f64 = 1e9;

impl Tracker {
    /// A tracker whose first track is `camera#1`.
    pub fn new(camera: CameraId, config: TrackerConfig) -> Result<Self, TrackerConfigError> {
        Self::with_first_seq(camera, config, 1)
    }

    /// A tracker numbering its tracks from `first_seq` (a restarted process should continue
    /// after the ids it already handed out, so the matcher never sees an id twice).
    pub fn with_first_seq(
        camera: CameraId,
        config: TrackerConfig,
        first_seq: u64,
    ) -> Result<Self, TrackerConfigError> {
        config.validate()?;
        Ok(Self {
            camera,
            config,
            next_seq: first_seq,
            last_frame_at: None,
            tracks: Vec::new(),
            camera_mean: None,
        })
    }

    pub fn camera(&self) -> &CameraId {
        &self.camera
    }
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }
    /// Live tracks, oldest first.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }
    /// The sequence number the next track will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Associates one frame's faces. Frames must come in time order (equal times are accepted);
    /// an older frame is refused and changes nothing.
    pub fn update(
        &mut self,
        at: DateTime<Utc>,
        faces: &[FaceObservation],
    ) -> Result<TrackUpdate, TrackerError> {
        if let Some(last) = self.last_frame_at {
            if at < last {
                return Err(TrackerError::OutOfOrder { last, got: at });
            }
        }
        self.last_frame_at = Some(at);
        let ended = self.expire_at(at, EndReason::Expired);

        let n_t = self.tracks.len();
        let n_f = faces.len();
        let mut cost = vec![vec![FORBIDDEN; n_f]; n_t];
        let mut scores = vec![vec![(0.0f32, None::<f32>); n_f]; n_t];
        for (ti, t) in self.tracks.iter().enumerate() {
            let pred = t.predicted(at, self.config.max_age);
            for (fi, f) in faces.iter().enumerate() {
                let iou = t.last_box.iou(&f.bbox).max(pred.iou(&f.bbox));
                let sim = match (&t.appearance, &f.embedding) {
                    (Some(a), Some(e)) => a.cosine(e),
                    _ => None,
                };
                scores[ti][fi] = (iou, sim);
                if let Some(c) = self.pair_cost(iou, sim) {
                    cost[ti][fi] = c;
                }
            }
        }
        let assignment = hungarian(&cost);

        let mut assigned: Vec<Option<usize>> = vec![None; n_f];
        for (ti, fi) in assignment.iter().enumerate() {
            if let Some(fi) = *fi {
                if cost[ti][fi] < FORBIDDEN {
                    assigned[fi] = Some(ti);
                }
            }
        }

        let mut assignments = Vec::with_capacity(n_f);
        let mut born = Vec::new();
        // tracks born in this frame centre on the mean of the sightings before it (computed
        // once, and only in a frame where a track is born)
        let mut centre: Option<Option<Embedding>> = None;
        for (fi, face) in faces.iter().enumerate() {
            let obs = ObsRef {
                camera: self.camera.clone(),
                frame_at: at,
                index: fi as u32,
            };
            match assigned[fi] {
                Some(ti) => {
                    let (iou, sim) = scores[ti][fi];
                    let cfg = &self.config;
                    let t = &mut self.tracks[ti];
                    hit(t, cfg, at, obs, face, Some(iou), sim);
                    assignments.push(t.id.clone());
                }
                None => {
                    let id = TrackId::new(self.camera.clone(), self.next_seq);
                    self.next_seq += 1;
                    let point = TrackPoint {
                        at,
                        index: fi as u32,
                        bbox: face.bbox,
                        quality: face.quality.overall,
                        iou: None,
                        similarity: None,
                    };
                    self.tracks.push(Track {
                        id: id.clone(),
                        first_seen: at,
                        last_seen: at,
                        hits: 1,
                        last_box: face.bbox,
                        velocity: None,
                        appearance: face.embedding.clone(),
                        template: TemplateSum::start(face, self.config.template_best),
                        centre: centre
                            .get_or_insert_with(|| {
                                self.camera_mean.as_ref().and_then(|m| {
                                    m.centre(
                                        self.config.camera_mean_weight,
                                        self.config.camera_mean_min,
                                    )
                                })
                            })
                            .clone(),
                        history: VecDeque::from([point]),
                        best: Shot {
                            obs,
                            quality: face.quality.overall,
                            face: face.clone(),
                        },
                    });
                    assignments.push(id.clone());
                    born.push(id);
                }
            }
        }
        if self.config.camera_mean_weight > 0.0 {
            for e in faces.iter().filter_map(|f| f.embedding.as_ref()) {
                CameraMean::add(&mut self.camera_mean, e, self.config.camera_mean_window);
            }
        }
        Ok(TrackUpdate {
            camera: self.camera.clone(),
            at,
            assignments,
            born,
            ended,
        })
    }

    /// Ends the tracks not hit for longer than `max_age` before `now` (call it on a timer so a
    /// camera that stops sending frames still closes its tracks).
    pub fn expire(&mut self, now: DateTime<Utc>) -> Vec<EndedTrack> {
        self.expire_at(now, EndReason::Expired)
    }

    /// Ends every live track (the source ended, or shutdown).
    pub fn finish(&mut self, now: DateTime<Utc>) -> Vec<EndedTrack> {
        std::mem::take(&mut self.tracks)
            .into_iter()
            .map(|t| t.end(now, EndReason::Flushed))
            .collect()
    }

    fn expire_at(&mut self, now: DateTime<Utc>, reason: EndReason) -> Vec<EndedTrack> {
        let max_age = self.config.max_age;
        let (dead, live): (Vec<Track>, Vec<Track>) = std::mem::take(&mut self.tracks)
            .into_iter()
            .partition(|t| now - t.last_seen > max_age);
        self.tracks = live;
        dead.into_iter().map(|t| t.end(now, reason)).collect()
    }

    /// Cost of an admissible pair, `None` when the gate refuses it.
    fn pair_cost(&self, iou: f32, sim: Option<f32>) -> Option<f64> {
        let c = &self.config;
        let affinity = match sim {
            Some(s) => {
                if s < c.min_similarity || (iou < c.min_iou && s < c.reid_similarity) {
                    return None;
                }
                c.iou_weight * iou + (1.0 - c.iou_weight) * s.clamp(0.0, 1.0)
            }
            None => {
                if iou < c.min_iou_without_embedding {
                    return None;
                }
                iou
            }
        };
        // NaN boxes or embeddings never associate (and never reach the assignment)
        affinity.is_finite().then(|| f64::from(1.0 - affinity))
    }
}

fn hit(
    t: &mut Track,
    cfg: &TrackerConfig,
    at: DateTime<Utc>,
    obs: ObsRef,
    face: &FaceObservation,
    iou: Option<f32>,
    sim: Option<f32>,
) {
    let dt = secs(at - t.last_seen);
    if dt > 0.0 {
        let (cx0, cy0) = t.last_box.center();
        let (cx1, cy1) = face.bbox.center();
        let v = ((cx1 - cx0) / dt, (cy1 - cy0) / dt);
        t.velocity = Some(match t.velocity {
            Some((vx, vy)) => (0.5 * vx + 0.5 * v.0, 0.5 * vy + 0.5 * v.1),
            None => v,
        });
    }
    t.last_box = face.bbox;
    t.last_seen = at;
    t.hits += 1;
    match &mut t.template {
        Some(sum) => sum.add(face),
        None => t.template = TemplateSum::start(face, cfg.template_best),
    }
    if let Some(e) = &face.embedding {
        t.appearance = Some(match t.appearance.take() {
            Some(a) if a.cosine(e).is_some() => blend(&a, e, cfg.appearance_momentum),
            _ => e.clone(),
        });
    }
    t.history.push_back(TrackPoint {
        at,
        index: obs.index,
        bbox: face.bbox,
        quality: face.quality.overall,
        iou,
        similarity: sim,
    });
    while t.history.len() > cfg.history_len {
        t.history.pop_front();
    }
    // Strictly better only: on ties the earlier shot stays (deterministic).
    if face.quality.overall > t.best.quality {
        t.best = Shot {
            obs,
            quality: face.quality.overall,
            face: face.clone(),
        };
    }
}

/// `momentum·old + (1 − momentum)·new`, renormalised.
fn blend(old: &Embedding, new: &Embedding, momentum: f32) -> Embedding {
    let mut v: Vec<f32> = old
        .vector
        .iter()
        .zip(&new.vector)
        .map(|(a, b)| momentum * a + (1.0 - momentum) * b)
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
        Embedding {
            model_id: old.model_id.clone(),
            model_version: old.model_version.clone(),
            vector: v,
        }
    } else {
        new.clone()
    }
}

/// Minimum-cost assignment (Kuhn–Munkres with potentials, O(n²m)) of the rows of a rectangular
/// cost matrix to distinct columns. Returns, for each row, its column; when there are more rows
/// than columns some rows get `None`. Rows must have equal lengths; non-finite costs are treated
/// as a very large finite cost (avoided whenever possible).
pub fn hungarian(cost: &[Vec<f64>]) -> Vec<Option<usize>> {
    let n = cost.len();
    let m = cost.first().map_or(0, |r| r.len());
    if n == 0 || m == 0 {
        return vec![None; n];
    }
    assert!(
        cost.iter().all(|r| r.len() == m),
        "hungarian: rows of unequal length"
    );
    if cost.iter().flatten().any(|c| !c.is_finite()) {
        let clean: Vec<Vec<f64>> = cost
            .iter()
            .map(|r| {
                r.iter()
                    .map(|c| if c.is_finite() { *c } else { 1e15 })
                    .collect()
            })
            .collect();
        return hungarian(&clean);
    }
    if n > m {
        let transposed: Vec<Vec<f64>> = (0..m)
            .map(|j| (0..n).map(|i| cost[i][j]).collect())
            .collect();
        let cols = hungarian(&transposed);
        let mut rows = vec![None; n];
        for (j, i) in cols.into_iter().enumerate() {
            if let Some(i) = i {
                rows[i] = Some(j);
            }
        }
        return rows;
    }
    // n <= m; 1-based arrays as in the classic formulation.
    let inf = f64::INFINITY;
    let mut u = vec![0.0; n + 1];
    let mut v = vec![0.0; m + 1];
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        let mut minv = vec![inf; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = inf;
            let mut j1 = 0usize;
            for j in 1..=m {
                if !used[j] {
                    let cur = cost[i0 - 1][j - 1] - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut rows = vec![None; n];
    for j in 1..=m {
        if p[j] != 0 {
            rows[p[j] - 1] = Some(j - 1);
        }
    }
    rows
}

pub(crate) mod duration_millis {
    use chrono::Duration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.num_milliseconds())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::milliseconds(i64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::face::{Landmarks, Quality};
    use chrono::TimeZone;

    fn t(ms: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap() + Duration::milliseconds(ms)
    }

    fn cam() -> CameraId {
        CameraId::new("lobby").unwrap()
    }

    /// A unit embedding pointing mostly along axis `k` (of 8), nudged by `jitter`.
    fn emb(k: usize, jitter: f32) -> Embedding {
        let mut v = vec![0.0f32; 8];
        v[k] = 1.0;
        v[(k + 1) % 8] = jitter;
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        Embedding {
            model_id: "m".into(),
            model_version: "1".into(),
            vector: v.into_iter().map(|x| x / n).collect(),
        }
    }

    fn face(x: f32, y: f32, size: f32, q: f32, e: Option<Embedding>) -> FaceObservation {
        FaceObservation {
            bbox: BBox {
                x1: x,
                y1: y,
                x2: x + size,
                y2: y + size,
            },
            landmarks: Landmarks::default(),
            quality: Quality {
                score: 0.9,
                inter_ocular: size * 0.4,
                sharpness: 100.0,
                yaw: 0.0,
                pitch: 0.0,
                cut_by_border: false,
                overall: q,
                reasons: vec![],
            },
            embedding: e,
        }
    }

    fn tracker() -> Tracker {
        Tracker::new(cam(), TrackerConfig::default()).unwrap()
    }

    #[test]
    fn hungarian_finds_the_optimum() {
        // greedy would take (0,0)=1 then (1,1)=10 → 11; optimum is (0,1)+(1,0) = 2+3 = 5
        let c = vec![vec![1.0, 2.0], vec![3.0, 10.0]];
        assert_eq!(hungarian(&c), vec![Some(1), Some(0)]);
        // rectangular both ways
        let c = vec![vec![5.0, 1.0, 9.0]];
        assert_eq!(hungarian(&c), vec![Some(1)]);
        let c = vec![vec![5.0], vec![1.0], vec![9.0]];
        assert_eq!(hungarian(&c), vec![None, Some(0), None]);
        assert_eq!(hungarian(&[]), Vec::<Option<usize>>::new());
        // brute force on a 4x4
        let c: Vec<Vec<f64>> = (0..4)
            .map(|i| (0..4).map(|j| ((i * 7 + j * 13) % 11) as f64).collect())
            .collect();
        let got = hungarian(&c);
        let total: f64 = got.iter().enumerate().map(|(i, j)| c[i][j.unwrap()]).sum();
        let mut best = f64::INFINITY;
        let mut perm = [0usize, 1, 2, 3];
        permute(&mut perm, 0, &mut |p| {
            best = best.min((0..4).map(|i| c[i][p[i]]).sum());
        });
        assert_eq!(total, best);
    }

    fn permute(a: &mut [usize; 4], k: usize, f: &mut dyn FnMut(&[usize; 4])) {
        if k == a.len() {
            f(a);
            return;
        }
        for i in k..a.len() {
            a.swap(k, i);
            permute(a, k + 1, f);
            a.swap(k, i);
        }
    }

    #[test]
    fn nan_never_hangs_or_associates() {
        let c = vec![vec![f64::NAN, 1.0], vec![2.0, f64::INFINITY]];
        assert_eq!(hungarian(&c), vec![Some(1), Some(0)]);
        let mut tr = tracker();
        tr.update(t(0), &[face(100.0, 100.0, 80.0, 0.5, Some(emb(0, 0.0)))])
            .unwrap();
        let mut bad = face(f32::NAN, 100.0, 80.0, f32::NAN, None);
        bad.bbox.x2 = f32::NAN;
        let mut nan_emb = emb(0, 0.0);
        nan_emb.vector[0] = f32::NAN;
        let u = tr
            .update(t(100), &[bad, face(100.0, 100.0, 80.0, 0.5, Some(nan_emb))])
            .unwrap();
        assert_eq!(u.born.len(), 2);
    }

    /// A tracker whose templates average every sighting (`template_best: 0`).
    fn averaging_every_sighting() -> Tracker {
        Tracker::new(
            cam(),
            TrackerConfig {
                template_best: 0,
                ..TrackerConfig::default()
            },
        )
        .unwrap()
    }

    /// One face per frame, 100 ms apart.
    fn feed(tr: &mut Tracker, shots: &[FaceObservation]) {
        for (i, f) in shots.iter().enumerate() {
            tr.update(t(i as i64 * 100), std::slice::from_ref(f))
                .unwrap();
        }
    }

    #[test]
    fn a_track_template_is_the_quality_weighted_mean_of_its_sightings() {
        let mut tr = averaging_every_sighting();
        // three sightings: axis 0 at quality 0.9 twice, halfway to axis 1 at quality 0.1; one without
        // an embedding and one of another model, which do not count
        let mut other = emb(2, 0.0);
        other.model_id = "other".into();
        let shots = [
            face(100.0, 100.0, 40.0, 0.9, Some(emb(0, 0.0))),
            face(102.0, 100.0, 40.0, 0.5, None),
            face(104.0, 100.0, 40.0, 0.1, Some(emb(0, 1.0))),
            face(106.0, 100.0, 40.0, 0.9, Some(emb(0, 0.0))),
            face(108.0, 100.0, 40.0, 0.9, Some(other)),
        ];
        feed(&mut tr, &shots);
        assert_eq!(tr.tracks().len(), 1);
        let tpl = tr.tracks()[0].template().unwrap();
        assert_eq!(tpl.sightings, 3);
        let v = &tpl.embedding.vector;
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let (a, b) = (1.8 + 0.1 * h, 0.1 * h);
        let n = (a * a + b * b).sqrt();
        assert!(
            (v[0] - a / n).abs() < 1e-5 && (v[1] - b / n).abs() < 1e-5,
            "{v:?}"
        );
        assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(tpl.averaged, 3);
        // a track without any embedding has no template
        let mut tr = tracker();
        tr.update(t(0), &[face(10.0, 10.0, 40.0, 0.9, None)])
            .unwrap();
        assert!(tr.tracks()[0].template().is_none());
    }

    #[test]
    fn a_template_averages_only_the_best_sightings() {
        // the default keeps the best 3: four sightings, the worst (quality 0.1, another
        // direction) is left out of the mean but counted among the sightings
        let mut tr = tracker();
        let shots = [
            face(100.0, 100.0, 40.0, 0.1, Some(emb(0, 1.0))),
            face(102.0, 100.0, 40.0, 0.6, Some(emb(0, 0.0))),
            face(104.0, 100.0, 40.0, 0.8, Some(emb(0, 0.0))),
            face(106.0, 100.0, 40.0, 0.7, Some(emb(0, 0.0))),
        ];
        feed(&mut tr, &shots);
        let tpl = tr.tracks()[0].template().unwrap();
        assert_eq!((tpl.sightings, tpl.averaged), (4, 3));
        assert!((tpl.embedding.vector[0] - 1.0).abs() < 1e-6, "{tpl:?}");
        assert_eq!(tpl.embedding.vector[1], 0.0);
        // with every sighting averaged, the poor one pulls the template off axis 0
        let mut tr = averaging_every_sighting();
        feed(&mut tr, &shots);
        let tpl = tr.tracks()[0].template().unwrap();
        assert_eq!((tpl.sightings, tpl.averaged), (4, 4));
        assert!(tpl.embedding.vector[1] > 0.01, "{tpl:?}");
    }

    /// Camera-mean centring: a track born after `camera_mean_min` embedded sightings of its
    /// camera keeps the camera's mean of that moment and its template is `t − w·mean`,
    /// renormalised; earlier tracks, another model, or weight 0 are not centred.
    #[test]
    fn templates_centre_on_the_camera_mean_once_it_has_enough_sightings() {
        let cfg = TrackerConfig {
            camera_mean_min: 4,
            ..TrackerConfig::default()
        };
        assert_eq!(cfg.camera_mean_weight, 0.3);
        let walk = |tr: &mut Tracker, t0: i64, e: &Embedding, n: i64| {
            for i in 0..n {
                tr.update(
                    t(t0 + i * 100),
                    &[face(100.0 + i as f32, 100.0, 40.0, 0.5, Some(e.clone()))],
                )
                .unwrap();
            }
        };
        let mut tr = Tracker::new(cam(), cfg.clone()).unwrap();
        walk(&mut tr, 0, &emb(0, 0.0), 4);
        let a = tr.tracks()[0].template().unwrap();
        assert!(!a.centred, "born before the camera had any sighting");
        assert!((a.embedding.vector[0] - 1.0).abs() < 1e-6);
        // the first track ended (max_age 2 s); the next one is born with the mean = axis 0
        walk(&mut tr, 5_000, &emb(1, 0.0), 4);
        assert_eq!(tr.tracks().len(), 1);
        let b = tr.tracks()[0].template().unwrap();
        assert!(b.centred);
        let n = (1.0f32 + 0.09).sqrt();
        assert!((b.embedding.vector[0] + 0.3 / n).abs() < 1e-5, "{b:?}");
        assert!((b.embedding.vector[1] - 1.0 / n).abs() < 1e-5, "{b:?}");
        let norm: f32 = b.embedding.vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        // the centre is the mean at the track's birth: its own later sightings (which move
        // the camera's mean towards axis 1) leave it as it was
        walk(&mut tr, 5_400, &emb(1, 0.0), 6);
        assert_eq!(tr.tracks()[0].template().unwrap().embedding, b.embedding);
        // weight 0: never centred
        let off = TrackerConfig {
            camera_mean_weight: 0.0,
            ..cfg.clone()
        };
        let mut tr = Tracker::new(cam(), off).unwrap();
        walk(&mut tr, 0, &emb(0, 0.0), 4);
        walk(&mut tr, 5_000, &emb(1, 0.0), 4);
        assert!(!tr.tracks()[0].template().unwrap().centred);
        // another model's mean does not centre this model's template
        let mut tr = Tracker::new(cam(), cfg.clone()).unwrap();
        walk(&mut tr, 0, &emb(0, 0.0), 4);
        let other = Embedding {
            model_id: "other".into(),
            ..emb(1, 0.0)
        };
        walk(&mut tr, 5_000, &other, 4);
        assert!(!tr.tracks()[0].template().unwrap().centred);
        for bad in [
            TrackerConfig {
                camera_mean_weight: 1.0,
                ..cfg.clone()
            },
            TrackerConfig {
                camera_mean_weight: -0.1,
                ..cfg.clone()
            },
            TrackerConfig {
                camera_mean_weight: f32::NAN,
                ..cfg.clone()
            },
            TrackerConfig {
                camera_mean_window: 0,
                ..cfg.clone()
            },
        ] {
            assert!(Tracker::new(cam(), bad).is_err());
        }
    }

    /// The camera's mean is the running mean up to `window` sightings, then follows the
    /// newest ones (about `window` of them); non-finite embeddings are left out.
    #[test]
    fn the_camera_mean_follows_the_newest_sightings_past_its_window() {
        // `a` sightings along axis 0, then `b` along axis 1, with this window
        let fed = |a: usize, b: usize, window: u32| {
            let mut m = None;
            for k in std::iter::repeat_n(0, a).chain(std::iter::repeat_n(1, b)) {
                CameraMean::add(&mut m, &emb(k, 0.0), window);
            }
            m.expect("sightings were added")
        };
        let c = fed(10, 10, 1000).centre(1.0, 1).unwrap();
        assert!(
            (c.vector[0] - c.vector[1]).abs() < 1e-5,
            "running mean: {c:?}"
        );
        let mut m = Some(fed(10, 40, 4));
        let c = m.as_ref().unwrap().centre(1.0, 1).unwrap();
        assert!(c.vector[1] > 0.99 && c.vector[0] < 0.01, "window 4: {c:?}");
        let bad = Embedding {
            vector: vec![f32::NAN; 8],
            ..emb(0, 0.0)
        };
        CameraMean::add(&mut m, &bad, 4);
        assert_eq!(m.as_ref().unwrap().seen, 50);
        // fewer sightings than the minimum: no centre
        assert!(m.as_ref().unwrap().centre(0.3, 51).is_none());
        assert!(m.as_ref().unwrap().centre(0.0, 1).is_none());
    }

    #[test]
    fn one_face_moving_keeps_its_track() {
        let mut tr = tracker();
        let mut ids = Vec::new();
        for i in 0..10 {
            let u = tr
                .update(
                    t(i * 100),
                    &[face(
                        100.0 + 8.0 * i as f32,
                        100.0,
                        80.0,
                        0.5,
                        Some(emb(0, 0.1)),
                    )],
                )
                .unwrap();
            assert!(u.ended.is_empty());
            ids.push(u.assignments[0].clone());
        }
        assert!(ids.iter().all(|id| *id == ids[0]));
        assert_eq!(tr.tracks().len(), 1);
        assert_eq!(tr.tracks()[0].hits(), 10);
    }

    /// A walks left→right, B right→left on the same row; their boxes overlap heavily in the
    /// middle frames (at frame 10 they coincide). The order of the faces in the frame alternates,
    /// so that list order cannot carry identity. Asserts that neither switches track.
    fn cross(tr: &mut Tracker, embeddings: bool) {
        let (mut a_id, mut b_id) = (None, None);
        for i in 0..21 {
            let xa = 100.0 + 20.0 * i as f32;
            let xb = 500.0 - 20.0 * i as f32;
            let ea = embeddings.then(|| emb(0, 0.05 * (i % 2) as f32));
            let eb = embeddings.then(|| emb(1, 0.05 * (i % 3) as f32));
            let fa = face(xa, 200.0, 80.0, 0.5, ea);
            let fb = face(xb, 200.0, 80.0, 0.5, eb);
            let a_first = i % 2 == 1;
            let faces = if a_first { [fa, fb] } else { [fb, fa] };
            let u = tr.update(t(i * 100), &faces).unwrap();
            let (a, b) = if a_first {
                (u.assignments[0].clone(), u.assignments[1].clone())
            } else {
                (u.assignments[1].clone(), u.assignments[0].clone())
            };
            assert_ne!(a, b);
            assert_eq!(
                *a_id.get_or_insert(a.clone()),
                a,
                "A switched track at frame {i}"
            );
            assert_eq!(
                *b_id.get_or_insert(b.clone()),
                b,
                "B switched track at frame {i}"
            );
        }
        assert_eq!(tr.tracks().len(), 2);
    }

    #[test]
    fn two_people_crossing_keep_their_ids() {
        cross(&mut tracker(), true);
    }

    #[test]
    fn two_people_crossing_keep_their_ids_by_appearance_alone() {
        // no IoU term, no motion help: the embeddings alone must keep them apart
        let cfg = TrackerConfig {
            iou_weight: 0.0,
            ..TrackerConfig::default()
        };
        cross(&mut Tracker::new(cam(), cfg).unwrap(), true);
    }

    #[test]
    fn crossing_without_embeddings_uses_motion() {
        // Without embeddings, the constant-velocity prediction carries the identities through the
        // frames where the boxes overlap.
        cross(&mut tracker(), false);
    }

    #[test]
    fn face_reappearing_within_max_age_keeps_its_track() {
        let mut tr = tracker();
        let first = tr
            .update(t(0), &[face(100.0, 100.0, 80.0, 0.5, Some(emb(2, 0.0)))])
            .unwrap();
        let id = first.assignments[0].clone();
        tr.update(t(100), &[face(104.0, 100.0, 80.0, 0.5, Some(emb(2, 0.1)))])
            .unwrap();
        // occluded for 1.5 s (max_age 2 s), comes back a little further on
        for k in 1..15 {
            let u = tr.update(t(100 + k * 100), &[]).unwrap();
            assert!(u.ended.is_empty());
        }
        let back = tr
            .update(
                t(1600),
                &[face(130.0, 102.0, 80.0, 0.5, Some(emb(2, 0.05)))],
            )
            .unwrap();
        assert_eq!(back.assignments[0], id);
        assert!(back.born.is_empty());
        // even somewhere else in the picture, if the face is clearly the same person
        let far = tr
            .update(t(2500), &[face(600.0, 300.0, 80.0, 0.5, Some(emb(2, 0.0)))])
            .unwrap();
        assert_eq!(far.assignments[0], id);
    }

    #[test]
    fn face_gone_longer_than_max_age_ends_and_restarts() {
        let mut tr = tracker();
        let first = tr
            .update(t(0), &[face(100.0, 100.0, 80.0, 0.7, Some(emb(2, 0.0)))])
            .unwrap();
        let id = first.assignments[0].clone();
        let later = tr
            .update(t(2500), &[face(100.0, 100.0, 80.0, 0.5, Some(emb(2, 0.0)))])
            .unwrap();
        assert_eq!(later.ended.len(), 1);
        let ended = &later.ended[0];
        assert_eq!(ended.id, id);
        assert_eq!(ended.reason, EndReason::Expired);
        assert_eq!(
            (ended.first_seen, ended.last_seen, ended.hits),
            (t(0), t(0), 1)
        );
        assert_ne!(later.assignments[0], id);
        assert_eq!(later.born, vec![later.assignments[0].clone()]);
        // expire() without frames ends it too
        let gone = tr.expire(t(4000));
        assert!(gone.is_empty());
        let gone = tr.expire(t(4501));
        assert_eq!(gone.len(), 1);
        assert!(tr.tracks().is_empty());
    }

    #[test]
    fn best_shot_is_highest_quality() {
        let mut tr = tracker();
        let qs = [0.3, 0.8, 0.5, 0.8, 0.95, 0.2];
        let mut id = None;
        for (i, q) in qs.iter().enumerate() {
            let u = tr
                .update(
                    t(i as i64 * 100),
                    &[face(100.0 + i as f32, 100.0, 80.0, *q, Some(emb(3, 0.0)))],
                )
                .unwrap();
            id.get_or_insert(u.assignments[0].clone());
        }
        let ended = tr.finish(t(1000));
        assert_eq!(ended.len(), 1);
        let e = &ended[0];
        assert_eq!(e.id, id.unwrap());
        assert_eq!(e.reason, EndReason::Flushed);
        assert_eq!(e.best.quality, 0.95);
        assert_eq!(e.best.obs.frame_at, t(400));
        assert_eq!(e.best.obs.index, 0);
        assert_eq!(e.best.face.quality.overall, 0.95);
        assert_eq!(e.hits, 6);
        assert_eq!(e.history.len(), 6);
    }

    #[test]
    fn strangers_apart_get_separate_tracks_and_gating_refuses_other_people() {
        let mut tr = tracker();
        let u = tr
            .update(t(0), &[face(100.0, 100.0, 80.0, 0.5, Some(emb(0, 0.0)))])
            .unwrap();
        let a = u.assignments[0].clone();
        // a different person steps into the exact same spot: overlapping box, unlike embedding
        let u = tr
            .update(t(100), &[face(100.0, 100.0, 80.0, 0.5, Some(emb(4, 0.0)))])
            .unwrap();
        assert_ne!(u.assignments[0], a);
        assert_eq!(u.born.len(), 1);
        // far away and no embedding: never associated
        let u = tr
            .update(t(200), &[face(900.0, 500.0, 80.0, 0.5, None)])
            .unwrap();
        assert_eq!(u.born.len(), 1);
        assert_eq!(tr.tracks().len(), 3);
    }

    #[test]
    fn history_is_bounded_and_frames_must_be_ordered() {
        let cfg = TrackerConfig {
            history_len: 4,
            ..TrackerConfig::default()
        };
        let mut tr = Tracker::with_first_seq(cam(), cfg, 41).unwrap();
        for i in 0..10 {
            tr.update(t(i * 100), &[face(100.0, 100.0, 80.0, 0.5, None)])
                .unwrap();
        }
        let tk = &tr.tracks()[0];
        assert_eq!(tk.id().seq, 41);
        assert_eq!(tk.history().count(), 4);
        assert_eq!(tk.history().next().unwrap().at, t(600));
        assert!(matches!(
            tr.update(t(500), &[]),
            Err(TrackerError::OutOfOrder { .. })
        ));
        assert_eq!(tr.tracks()[0].hits(), 10);
        assert!(tr.update(t(900), &[]).is_ok());
    }

    #[test]
    fn config_is_validated() {
        let bad = TrackerConfig {
            iou_weight: 1.5,
            ..TrackerConfig::default()
        };
        assert!(Tracker::new(cam(), bad).is_err());
        let bad = TrackerConfig {
            max_age: Duration::zero(),
            ..TrackerConfig::default()
        };
        assert!(bad.validate().is_err());
        let json = serde_json::to_string(&TrackerConfig::default()).unwrap();
        let back: TrackerConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, TrackerConfig::default());
        let partial: TrackerConfig = serde_json::from_str(r#"{"max_age":1500}"#).unwrap();
        assert_eq!(partial.max_age, Duration::milliseconds(1500));
    }
}
