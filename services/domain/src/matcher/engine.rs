//! The pure core of the streaming pipeline: one [`Tracker`] per camera feeding one [`Matcher`].
//!
//! The pipeline hands each processed frame to [`Engine::on_frame`] with a search function (the
//! gallery lookup, possibly through the timetable prior); it gets back the frame's track
//! assignments and the decisions that frame produced. [`Engine::tick`] closes tracks of cameras
//! that went quiet, [`Engine::finish_camera`] / [`Engine::finish`] close everything when a
//! source ends or at shutdown. Still no I/O and no clock: time is the frame's timestamp or `now`.

use super::debounce::Outcome;
use super::debounce::{
    Candidate, Decision, MatchInput, Matcher, MatcherConfig, MatcherConfigError,
};
use super::tracker::{
    EndedTrack, ObsRef, TrackId, TrackTemplate, TrackUpdate, Tracker, TrackerConfig,
    TrackerConfigError, TrackerError,
};
use super::visitors::{UnknownVisitors, VisitorConfig, VisitorConfigError};
use crate::face::FaceObservation;
use crate::ids::{CameraId, CampusId};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// Misuse of the engine.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("unknown camera {0}")]
    UnknownCamera(CameraId),
    #[error("camera {0} is already registered")]
    DuplicateCamera(CameraId),
    #[error(transparent)]
    Tracker(#[from] TrackerError),
    #[error(transparent)]
    TrackerConfig(#[from] TrackerConfigError),
    #[error(transparent)]
    MatcherConfig(#[from] MatcherConfigError),
    #[error(transparent)]
    VisitorConfig(#[from] VisitorConfigError),
}

/// What one frame did.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameOutcome {
    pub update: TrackUpdate,
    /// Decisions of tracks that ended before this frame, then accepts completed by this frame.
    pub decisions: Vec<Decision>,
}

#[derive(Debug, Clone)]
struct Camera {
    campus: CampusId,
    tracker: Tracker,
}

/// Trackers of all cameras and the shared matcher (so the cooldown spans cameras).
#[derive(Debug, Clone)]
pub struct Engine {
    tracker_config: TrackerConfig,
    cameras: BTreeMap<CameraId, Camera>,
    matcher: Matcher,
    visitors: UnknownVisitors,
}

impl Engine {
    pub fn new(tracker: TrackerConfig, matcher: MatcherConfig) -> Result<Self, EngineError> {
        tracker.validate()?;
        Ok(Self {
            tracker_config: tracker,
            cameras: BTreeMap::new(),
            matcher: Matcher::new(matcher)?,
            visitors: UnknownVisitors::new(VisitorConfig::default())?,
        })
    }

    /// Replaces the unknown-visitor clustering settings (and forgets the visitors).
    pub fn with_visitor_config(mut self, config: VisitorConfig) -> Result<Self, EngineError> {
        self.visitors = UnknownVisitors::new(config)?;
        Ok(self)
    }

    /// Registers a camera at a campus; its track ids start at `first_seq`.
    pub fn add_camera(
        &mut self,
        camera: CameraId,
        campus: CampusId,
        first_seq: u64,
    ) -> Result<(), EngineError> {
        if self.cameras.contains_key(&camera) {
            return Err(EngineError::DuplicateCamera(camera));
        }
        let tracker =
            Tracker::with_first_seq(camera.clone(), self.tracker_config.clone(), first_seq)?;
        self.cameras.insert(camera, Camera { campus, tracker });
        Ok(())
    }

    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }
    /// Unknown tracks clustered into visitors.
    pub fn visitors(&self) -> &UnknownVisitors {
        &self.visitors
    }
    pub fn tracker(&self, camera: &CameraId) -> Option<&Tracker> {
        self.cameras.get(camera).map(|c| &c.tracker)
    }

    /// The templates of `tracks` (of `camera`) that the matcher could still decide with:
    /// open, undecided, averaging at least `template_min_sightings` sightings. The caller
    /// searches each and hands the answer to [`Engine::note_template`].
    pub fn templates_wanted(
        &self,
        camera: &CameraId,
        tracks: &[TrackId],
    ) -> Vec<(TrackId, TrackTemplate)> {
        let Some(cam) = self.cameras.get(camera) else {
            return Vec::new();
        };
        let min = self.matcher.config().template_min_sightings;
        let mut out: Vec<(TrackId, TrackTemplate)> = Vec::new();
        for id in tracks {
            if out.iter().any(|(t, _)| t == id) || !self.matcher.wants_template(id) {
                continue;
            }
            let template = cam
                .tracker
                .tracks()
                .iter()
                .find(|t| t.id() == id)
                .and_then(|t| t.template());
            if let Some(tpl) = template.filter(|t| t.sightings >= min) {
                out.push((id.clone(), tpl));
            }
        }
        out
    }

    /// The gallery's candidates for a track's template ([`Engine::templates_wanted`]).
    /// `sightings` and `centred` are the template's ([`TrackTemplate`]).
    pub fn note_template(
        &mut self,
        track: &TrackId,
        candidates: &[Candidate],
        sightings: u32,
        centred: bool,
    ) {
        self.matcher
            .note_template(track, candidates, sightings, centred);
    }

    /// One frame of `camera`: track the faces, close the tracks that ended, and feed every face
    /// to the matcher with `search(face)` as its candidates (return an empty list for a face
    /// that should not vote, e.g. one without an embedding or failing the quality gate).
    pub fn on_frame(
        &mut self,
        camera: &CameraId,
        at: DateTime<Utc>,
        faces: &[FaceObservation],
        mut search: impl FnMut(&FaceObservation) -> Vec<Candidate>,
    ) -> Result<FrameOutcome, EngineError> {
        let cam = self
            .cameras
            .get_mut(camera)
            .ok_or_else(|| EngineError::UnknownCamera(camera.clone()))?;
        let update = cam.tracker.update(at, faces)?;
        let campus = cam.campus.clone();
        let mut decisions = end_all(&mut self.matcher, &mut self.visitors, &update.ended);
        for (i, (face, track)) in faces.iter().zip(&update.assignments).enumerate() {
            let input = MatchInput {
                track: track.clone(),
                campus: campus.clone(),
                at,
                shot: ObsRef {
                    camera: camera.clone(),
                    frame_at: at,
                    index: i as u32,
                },
                quality: face.quality.overall,
                candidates: search(face),
            };
            decisions.extend(self.matcher.observe(input));
        }
        Ok(FrameOutcome { update, decisions })
    }

    /// Ends the tracks of every camera not hit for longer than the tracker's `max_age`, then
    /// lets the matcher close idle tracks and forget old state. Call it on a timer.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Decision> {
        let mut out = Vec::new();
        for cam in self.cameras.values_mut() {
            let ended = cam.tracker.expire(now);
            out.extend(end_all(&mut self.matcher, &mut self.visitors, &ended));
        }
        out.extend(self.matcher.tick(now));
        self.visitors.prune(now);
        out
    }

    /// The camera's source ended (or it is being removed): ends its tracks and decides them.
    pub fn finish_camera(
        &mut self,
        camera: &CameraId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Decision>, EngineError> {
        let cam = self
            .cameras
            .get_mut(camera)
            .ok_or_else(|| EngineError::UnknownCamera(camera.clone()))?;
        let ended = cam.tracker.finish(now);
        Ok(end_all(&mut self.matcher, &mut self.visitors, &ended))
    }

    /// Shutdown: ends every track of every camera and decides every open track.
    pub fn finish(&mut self, now: DateTime<Utc>) -> Vec<Decision> {
        let mut out = Vec::new();
        for cam in self.cameras.values_mut() {
            let ended = cam.tracker.finish(now);
            out.extend(end_all(&mut self.matcher, &mut self.visitors, &ended));
        }
        out.extend(self.matcher.finish(now));
        out
    }
}

/// Decides the ended tracks; an unknown one is clustered into a visitor when it has an
/// embedding (its running-mean appearance, else its best shot's).
fn end_all(
    matcher: &mut Matcher,
    visitors: &mut UnknownVisitors,
    ended: &[EndedTrack],
) -> Vec<Decision> {
    let mut out = Vec::new();
    for e in ended {
        let Some(mut d) = matcher.end_track(&e.id, e.ended_at) else {
            continue;
        };
        if d.outcome == Outcome::Unknown {
            let emb = e.appearance.as_ref().or(e.best.face.embedding.as_ref());
            if let Some(emb) = emb {
                d.visitor =
                    Some(visitors.add(&e.id, e.last_seen, emb, &e.best.obs, e.best.quality));
            }
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::face::{BBox, Embedding, Landmarks, Quality};
    use crate::ids::StudentId;
    use crate::matcher::debounce::{CheckIn, Outcome, ReviewReason};
    use crate::matcher::prior::{choose_candidates_with, passes, PriorSource};
    use chrono::{Duration, TimeZone};

    fn t(ms: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 15, 30, 0).unwrap() + Duration::milliseconds(ms)
    }
    fn cam(s: &str) -> CameraId {
        CameraId::new(s).unwrap()
    }
    fn campus() -> CampusId {
        CampusId::new("north").unwrap()
    }

    /// A unit vector in 16 dimensions: mostly `base`, with some of `mix` (a look-alike or noise).
    fn vec16(base: usize, mix: usize, w: f32) -> Vec<f32> {
        let mut v = vec![0.0f32; 16];
        v[base] += 1.0 - w;
        v[mix] += w;
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    fn emb(v: Vec<f32>) -> Embedding {
        Embedding {
            model_id: "m".into(),
            model_version: "1".into(),
            vector: v,
        }
    }

    fn face(x: f32, q: f32, e: Vec<f32>) -> FaceObservation {
        FaceObservation {
            bbox: BBox {
                x1: x,
                y1: 100.0,
                x2: x + 90.0,
                y2: 190.0,
            },
            landmarks: Landmarks::default(),
            quality: Quality {
                score: 0.9,
                inter_ocular: 36.0,
                sharpness: 100.0,
                yaw: 0.0,
                pitch: 0.0,
                cut_by_border: false,
                overall: q,
                reasons: vec![],
            },
            embedding: Some(emb(e)),
        }
    }

    /// An in-memory gallery: students with one template each, brute-force cosine, top 5.
    struct Gallery(Vec<(StudentId, Embedding)>);

    impl Gallery {
        fn search(&self, f: &FaceObservation) -> Vec<Candidate> {
            let Some(e) = &f.embedding else {
                return vec![];
            };
            let mut c: Vec<Candidate> = self
                .0
                .iter()
                .filter_map(|(s, g)| g.cosine(e).map(|v| Candidate::new(s.clone(), v)))
                .collect();
            c.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
            c.truncate(5);
            c
        }
    }

    fn gallery() -> Gallery {
        Gallery(
            ["ann", "bob", "cy"]
                .iter()
                .enumerate()
                .map(|(i, s)| (StudentId::new(*s).unwrap(), emb(vec16(i, i, 0.0))))
                .collect(),
        )
    }

    fn engine() -> Engine {
        let mut e = Engine::new(TrackerConfig::default(), MatcherConfig::default()).unwrap();
        e.add_camera(cam("door"), campus(), 1).unwrap();
        e.add_camera(cam("hall"), campus(), 1).unwrap();
        e
    }

    /// `n` frames 100 ms apart of one person walking right, starting at `start_ms`.
    fn walk(
        e: &mut Engine,
        g: &Gallery,
        camera: &str,
        start_ms: i64,
        n: i64,
        person: &dyn Fn(i64) -> Vec<f32>,
    ) -> Vec<Decision> {
        let mut out = Vec::new();
        for i in 0..n {
            let f = face(
                50.0 + 15.0 * i as f32,
                0.3 + 0.05 * (i % 7) as f32,
                person(i),
            );
            let r = e
                .on_frame(&cam(camera), t(start_ms + i * 100), &[f], |f| g.search(f))
                .unwrap();
            out.extend(r.decisions);
        }
        out
    }

    #[test]
    fn a_student_walking_past_two_cameras_checks_in_once() {
        let g = gallery();
        let mut e = engine();
        // ann, with a little noise towards dimension 9
        let ann = |i: i64| vec16(0, 9, 0.1 + 0.02 * (i % 3) as f32);
        let mut ds = walk(&mut e, &g, "door", 0, 12, &ann);
        assert_eq!(ds.len(), 1, "accepted on the third agreeing frame");
        assert_eq!(ds[0].decided_at, t(200));
        assert_eq!(ds[0].check_in().map(|s| s.as_str()), Some("ann"));
        // she shows up on the hall camera 40 s later: accepted again, but suppressed
        ds.extend(walk(&mut e, &g, "hall", 40_000, 12, &ann));
        assert_eq!(ds.len(), 2);
        assert!(matches!(
            &ds[1].outcome,
            Outcome::Accept { check_in: CheckIn::Suppressed { by, .. }, .. } if *by == ds[0].track
        ));
        // the ended tracks add no decision
        ds.extend(e.tick(t(60_000)));
        ds.extend(e.finish(t(61_000)));
        assert_eq!(ds.len(), 2);
        let check_ins: Vec<_> = ds.iter().filter_map(|d| d.check_in()).collect();
        assert_eq!(check_ins.len(), 1);
    }

    #[test]
    fn a_stranger_is_unknown_and_a_look_alike_is_reviewed() {
        let g = gallery();
        let mut e = engine();
        // a stranger: far from every template
        let mut ds = walk(&mut e, &g, "door", 0, 10, &|i| {
            vec16(7, 8, 0.3 + 0.01 * i as f32)
        });
        assert!(ds.is_empty());
        // the tracker ends the track 2 s after the last frame, the matcher decides it
        ds.extend(e.tick(t(3500)));
        assert_eq!(ds.len(), 1);
        assert_eq!(ds[0].outcome, Outcome::Unknown);
        // someone halfway between bob and cy: above review, no margin
        let mut ds = walk(&mut e, &g, "hall", 10_000, 10, &|_| vec16(1, 2, 0.5));
        assert!(ds.is_empty());
        ds.extend(e.finish_camera(&cam("hall"), t(12_000)).unwrap());
        assert_eq!(ds.len(), 1);
        let Outcome::Review(r) = &ds[0].outcome else {
            panic!("{:?}", ds[0])
        };
        assert_eq!(r.reason, ReviewReason::LowMargin);
        assert_eq!(r.candidates.len(), 3);
        // best shot: the best quality frame (i = 6 → 0.6), not the most similar
        assert!((r.best_quality - 0.6).abs() < 1e-6);
        assert_eq!(r.best_shot.frame_at, t(10_600));
        assert!(ds.iter().all(|d| d.check_in().is_none()));
    }

    #[test]
    fn a_returning_stranger_is_one_unknown_visitor() {
        let g = gallery();
        let mut e = engine();
        let mut ds = Vec::new();
        // the same stranger comes by three times (tracks end in between), another one once
        for (k, start) in [0i64, 60_000, 120_000].into_iter().enumerate() {
            ds.extend(walk(&mut e, &g, "door", start, 8, &|i| {
                vec16(7, 8, 0.2 + 0.02 * ((i + k as i64) % 4) as f32)
            }));
        }
        ds.extend(walk(&mut e, &g, "hall", 130_000, 8, &|_| {
            vec16(12, 13, 0.1)
        }));
        ds.extend(e.finish(t(200_000)));
        assert_eq!(ds.len(), 4);
        assert!(ds.iter().all(|d| d.outcome == Outcome::Unknown));
        let v: Vec<_> = ds.iter().map(|d| d.visitor.unwrap()).collect();
        assert_eq!(
            (v[0].visitor, v[0].visits, v[0].new),
            (v[0].visitor, 1, true)
        );
        assert_eq!((v[1].visitor, v[1].visits), (v[0].visitor, 2));
        assert_eq!((v[2].visitor, v[2].visits), (v[0].visitor, 3));
        assert!(v[3].new && v[3].visitor != v[0].visitor);
        assert_eq!(e.visitors().repeated(2).len(), 1);
        assert_eq!(ds[2].line().visitor, Some(v[0].visitor.0));
    }

    #[test]
    fn the_timetable_prior_plugs_into_search() {
        let g = gallery();
        let mut e = engine();
        let booked = [StudentId::new("bob").unwrap()];
        let cfg = e.matcher().config().clone();
        let mut sources = Vec::new();
        let mut ds = Vec::new();
        // bob's face, but with a look-alike (cy) nearly as close: booked-only search passes
        for i in 0..5 {
            let f = face(50.0 + 10.0 * i as f32, 0.5, vec16(1, 2, 0.49));
            // the whole school alone would not pass: cy is too close to bob
            assert!(!passes(&g.search(&f), &cfg));
            let r = e
                .on_frame(&cam("door"), t(i * 100), &[f], |f| {
                    let all = g.search(f);
                    let mine = all
                        .iter()
                        .filter(|c| booked.contains(&c.student))
                        .cloned()
                        .collect();
                    let choice = choose_candidates_with(mine, || all.clone(), &cfg);
                    sources.push(choice.source);
                    choice.candidates
                })
                .unwrap();
            ds.extend(r.decisions);
        }
        assert!(sources.iter().all(|s| *s == PriorSource::Booked));
        assert_eq!(ds.len(), 1);
        assert_eq!(ds[0].check_in().map(|s| s.as_str()), Some("bob"));
    }

    #[test]
    fn misuse_is_reported() {
        let mut e = engine();
        assert_eq!(
            e.add_camera(cam("door"), campus(), 1),
            Err(EngineError::DuplicateCamera(cam("door")))
        );
        assert!(matches!(
            e.on_frame(&cam("roof"), t(0), &[], |_| vec![]),
            Err(EngineError::UnknownCamera(_))
        ));
        e.on_frame(&cam("door"), t(100), &[], |_| vec![]).unwrap();
        assert!(matches!(
            e.on_frame(&cam("door"), t(0), &[], |_| vec![]),
            Err(EngineError::Tracker(TrackerError::OutOfOrder { .. }))
        ));
    }
}
