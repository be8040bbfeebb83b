//! The debounced matcher: exactly one decision per track.
//!
//! For each observation of a track the pipeline passes the gallery's candidates
//! (`[(student, similarity)]`). Each observation is one **vote**: its top-1 student, the top-1
//! similarity, and the margin over the best *other* student (candidates are de-duplicated per
//! student first, keeping the best score). A vote is **strong** when the top-1 similarity is at
//! least `accept_threshold` and the margin at least `min_margin` (no other student: no margin to
//! miss).
//!
//! * **accept** as soon as `min_agreeing` (K) strong votes for the same student fall within
//!   `window` (the K-th vote's time minus the first's ≤ window), unless the track has also voted
//!   strongly for another student (conflict). The decision is emitted by [`Matcher::observe`];
//! * otherwise, when the track ends ([`Matcher::end_track`]), goes quiet for `track_timeout`
//!   ([`Matcher::tick`]) or the matcher is flushed ([`Matcher::finish`]):
//!   * **review** if the track voted strongly for two students (conflict), or had at least
//!     `min_review_sightings` observations with a top-1 similarity ≥ `review_threshold`; the item
//!     holds the best-quality observation (by `quality.overall`, never by similarity) and the
//!     top-3 students with their best scores over the track;
//!   * **accept on the track's evidence** first, if enabled (`track_min_votes` > 0): small,
//!     dim or blurred faces rarely give K votes above the accept threshold, yet a whole track
//!     of consistent votes is strong evidence. The track's sightings in the review band
//!     (top-1 ≥ `review_threshold`) vote for their top-1 student; student S is accepted when S
//!     has at least `track_min_votes` of them, at least `track_min_agreement` of all of them,
//!     their mean similarity is at least the track threshold (`track_accept_threshold`, by
//!     default halfway between the review and accept thresholds), their mean margin over the
//!     best other student at least `track_min_margin`, and no strong vote went to anyone else.
//!     The cooldown applies as to any accept ([`AcceptBasis::Track`] says which rule it was);
//!   * **accept on the track's template** next, if enabled (`template_min_sightings` > 0):
//!     the caller searches the gallery with the track's template (the quality-weighted mean of
//!     its best sightings' embeddings, [`super::tracker::TrackTemplate`]) and hands the answer
//!     to [`Matcher::note_template`]; averaging cancels much of the noise of single small or
//!     blurred sightings. Student S is accepted when the latest answer's top-1 is S at or
//!     above the template threshold (`template_accept_threshold`, by default the review
//!     threshold) with a margin of at least `template_min_margin`, the template averages at
//!     least `template_min_sightings` sightings, some sighting of the track reached the review
//!     band for S, and no strong vote went to anyone else ([`AcceptBasis::Template`]). A
//!     template **centred** on its camera's mean ([`super::TrackerConfig::camera_mean_weight`])
//!     is judged by `template_centred_threshold` instead, and may be corroborated instead by S
//!     being the top-1 of at least half of the track's searched sightings (a walk-through of
//!     small, blurred faces whose every sighting stays below the review band);
//!   * **unknown** otherwise: an unknown track never checks anyone in.
//! * **cooldown**: an accept for (student, campus) within `cooldown` of an earlier check-in for
//!   the same (student, campus) is still the track's accept decision, but marked
//!   [`CheckIn::Suppressed`] and must not be sent to the ledger. The comparison is on event times
//!   in both directions (`|Δt| < cooldown`), so check-ins of a (student, campus) are always at
//!   least `cooldown` apart whatever order two cameras' decisions arrive in. The cooldown is
//!   anchored at real check-ins only (suppressed ones do not extend it).
//!
//! Every decision carries the track's first-sighting time, the decision time (the frame time of
//! the observation that completed an accept, the last sighting for a track-evidence accept, else
//! the `now` that closed the track), the top-1
//! similarity and the top-1/top-2 margin of the deciding vote (accept: the strongest agreeing
//! vote in the window; review/unknown: the observation with the highest top-1 similarity).
//!
//! **Idempotence**: a repeated observation (same track, frame time not after the track's last
//! one), anything about a track that has already been decided, and events older than
//! `late_tolerance` behind the newest time seen are ignored. Decided tracks are remembered for
//! `late_tolerance` after their last event.

use super::tracker::{duration_millis, ObsRef, TrackId};
use super::visitors::VisitorSighting;
use crate::ids::{CampusId, StudentId};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// One gallery hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub student: StudentId,
    pub similarity: f32,
}

impl Candidate {
    pub fn new(student: StudentId, similarity: f32) -> Self {
        Self {
            student,
            similarity,
        }
    }
}

impl From<(StudentId, f32)> for Candidate {
    fn from((student, similarity): (StudentId, f32)) -> Self {
        Self {
            student,
            similarity,
        }
    }
}

/// Best score per student, best first (ties: student id), NaN scores dropped.
pub fn normalize_candidates(cands: &[Candidate]) -> Vec<Candidate> {
    let mut best: BTreeMap<&StudentId, f32> = BTreeMap::new();
    for c in cands.iter().filter(|c| !c.similarity.is_nan()) {
        let e = best.entry(&c.student).or_insert(c.similarity);
        if c.similarity > *e {
            *e = c.similarity;
        }
    }
    let mut out: Vec<Candidate> = best
        .into_iter()
        .map(|(s, v)| Candidate::new(s.clone(), v))
        .collect();
    out.sort_by(by_score);
    out
}

fn by_score(a: &Candidate, b: &Candidate) -> Ordering {
    b.similarity
        .partial_cmp(&a.similarity)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a.student.cmp(&b.student))
}

/// Top-1 and its margin over the best other student, from normalised candidates.
fn top_and_margin(norm: &[Candidate]) -> (Option<Candidate>, Option<f32>) {
    let top = norm.first().cloned();
    let margin = match (norm.first(), norm.get(1)) {
        (Some(a), Some(b)) => Some(a.similarity - b.similarity),
        _ => None,
    };
    (top, margin)
}

/// Matcher settings. The thresholds belong to the embedding model (its manifest provides them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MatcherConfig {
    /// A vote can accept from this top-1 similarity on.
    pub accept_threshold: f32,
    /// From this top-1 similarity on (and below accept) an observation is in the review band.
    pub review_threshold: f32,
    /// Minimum top-1 minus best-other-student similarity for a strong vote.
    pub min_margin: f32,
    /// Strong agreeing votes needed to accept (K).
    pub min_agreeing: usize,
    /// The K votes must fall within this span.
    #[serde(with = "duration_millis")]
    pub window: Duration,
    /// One check-in per (student, campus) within this span.
    #[serde(with = "duration_millis")]
    pub cooldown: Duration,
    /// Observations at or above the review threshold a track needs to become a review item
    /// (conflicting strong votes always do).
    pub min_review_sightings: usize,
    /// A track with no observation for this long is closed by [`Matcher::tick`].
    #[serde(with = "duration_millis")]
    pub track_timeout: Duration,
    /// Events this far behind the newest time seen are ignored; decided tracks are remembered
    /// this long.
    #[serde(with = "duration_millis")]
    pub late_tolerance: Duration,
    /// Track-evidence accept (see the module docs): band votes S needs (0: off).
    pub track_min_votes: usize,
    /// Mean top-1 similarity of S's band votes; `None`: halfway between review and accept.
    pub track_accept_threshold: Option<f32>,
    /// Mean margin of S's band votes over the best other student.
    pub track_min_margin: f32,
    /// Share of the track's band votes that must be S's.
    pub track_min_agreement: f32,
    /// Template accept (see the module docs): embedded sightings the track's template must
    /// average (0: off).
    pub template_min_sightings: u32,
    /// Top-1 similarity of the template's search; `None`: the review threshold (a mean of
    /// several sightings varies far less than one sighting, so a stranger's template stays
    /// well below the level at which one sighting already merits a look).
    pub template_accept_threshold: Option<f32>,
    /// The template's top-1 minus its best other student.
    pub template_min_margin: f32,
    /// Top-1 similarity of a template centred on its camera's mean
    /// ([`super::TrackerConfig::camera_mean_weight`]): taking the mean off lowers every
    /// similarity, a stranger's most; `None`: 0.7 × the review threshold (0.21 for
    /// MobileFaceNet-128, chosen on the small-face tuning scenarios, BENCHMARKS.md).
    pub template_centred_threshold: Option<f32>,
}

impl Default for MatcherConfig {
    fn default() -> Self {
        Self {
            accept_threshold: 0.5,
            review_threshold: 0.35,
            min_margin: 0.05,
            min_agreeing: 3,
            window: Duration::seconds(5),
            cooldown: Duration::minutes(10),
            min_review_sightings: 1,
            track_timeout: Duration::seconds(10),
            late_tolerance: Duration::minutes(10),
            track_min_votes: 3,
            track_accept_threshold: None,
            track_min_margin: 0.10,
            track_min_agreement: 0.8,
            template_min_sightings: 4,
            template_accept_threshold: None,
            template_min_margin: 0.10,
            template_centred_threshold: None,
        }
    }
}

/// A setting out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("matcher config: {0}")]
pub struct MatcherConfigError(pub String);

impl MatcherConfig {
    pub fn validate(&self) -> Result<(), MatcherConfigError> {
        let err = |s: &str| Err(MatcherConfigError(s.into()));
        let finite = [
            self.accept_threshold,
            self.review_threshold,
            self.min_margin,
        ];
        if finite.iter().any(|x| !x.is_finite()) {
            return err("thresholds must be finite");
        }
        if self.review_threshold > self.accept_threshold {
            return err("review_threshold must not exceed accept_threshold");
        }
        if self.min_margin < 0.0 {
            return err("min_margin must not be negative");
        }
        if !self.track_min_margin.is_finite()
            || self.track_min_margin < 0.0
            || self.track_accept_threshold.is_some_and(|t| !t.is_finite())
        {
            return err("track thresholds must be finite, the margin not negative");
        }
        if self
            .track_accept_threshold
            .is_some_and(|t| t < self.review_threshold)
        {
            return err("track_accept_threshold must not be below review_threshold");
        }
        if !self.template_min_margin.is_finite()
            || self.template_min_margin < 0.0
            || self
                .template_accept_threshold
                .is_some_and(|t| !t.is_finite() || t < self.review_threshold)
        {
            return err(
                "template thresholds must be finite and not below review_threshold, the margin not negative",
            );
        }
        if self
            .template_centred_threshold
            .is_some_and(|t| !t.is_finite() || t <= 0.0 || t > self.accept_threshold)
        {
            return err(
                "template_centred_threshold must be above 0 and not above accept_threshold",
            );
        }
        if !(self.track_min_agreement > 0.0 && self.track_min_agreement <= 1.0) {
            return err("track_min_agreement must be in (0, 1]");
        }
        if self.min_agreeing == 0 || self.min_agreeing > MAX_RECENT {
            return err("min_agreeing must be between 1 and 1024");
        }
        if self.min_review_sightings == 0 {
            return err("min_review_sightings must be at least 1");
        }
        if self.window < Duration::zero()
            || self.cooldown < Duration::zero()
            || self.track_timeout <= Duration::zero()
            || self.late_tolerance <= Duration::zero()
        {
            return err("window and cooldown must not be negative; timeouts must be positive");
        }
        Ok(())
    }

    /// The track-evidence threshold in use.
    pub fn track_threshold(&self) -> f32 {
        self.track_accept_threshold
            .unwrap_or((self.review_threshold + self.accept_threshold) * 0.5)
    }

    /// The template threshold in use.
    pub fn template_threshold(&self) -> f32 {
        self.template_accept_threshold
            .unwrap_or(self.review_threshold)
    }

    /// The threshold of a template centred on its camera's mean.
    pub fn template_centred_threshold(&self) -> f32 {
        self.template_centred_threshold
            .unwrap_or(0.7 * self.review_threshold)
    }

    /// Whether normalised candidates make a strong vote, and for whom.
    pub(crate) fn strong_vote<'a>(&self, norm: &'a [Candidate]) -> Option<&'a Candidate> {
        let (top, margin) = (norm.first()?, norm.get(1));
        let margin_ok = margin.is_none_or(|b| top.similarity - b.similarity >= self.min_margin);
        (top.similarity >= self.accept_threshold && margin_ok).then_some(top)
    }
}

/// One observation of a track, with what the gallery said about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchInput {
    pub track: TrackId,
    pub campus: CampusId,
    /// The frame's timestamp.
    pub at: DateTime<Utc>,
    /// The observation (crop reference) this is.
    pub shot: ObsRef,
    /// `quality.overall` of the observation (best-shot ranking).
    pub quality: f32,
    /// The gallery's top candidates, any order (empty: no embedding, or nobody enrolled).
    pub candidates: Vec<Candidate>,
}

/// Whether an accept checks the student in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "check_in", rename_all = "snake_case")]
pub enum CheckIn {
    /// Send to the ledger.
    New,
    /// Within the cooldown of an earlier check-in of the same (student, campus), by `by` at `at`.
    Suppressed { by: TrackId, at: DateTime<Utc> },
}

/// Why a track needs a human.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewReason {
    /// Strong votes for two or more students.
    Conflict,
    /// Strong votes for one student, but fewer than K within the window.
    TooFewSightings,
    /// Above the accept threshold, but too close to another student.
    LowMargin,
    /// Between the review and accept thresholds.
    Band,
}

impl ReviewReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            ReviewReason::Conflict => "conflict",
            ReviewReason::TooFewSightings => "too_few_sightings",
            ReviewReason::LowMargin => "low_margin",
            ReviewReason::Band => "band",
        }
    }
}

/// What staff get for a review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewItem {
    pub reason: ReviewReason,
    /// The best-quality observation of the track.
    pub best_shot: ObsRef,
    pub best_quality: f32,
    /// Up to three students, best first, each with its best similarity over the track.
    pub candidates: Vec<Candidate>,
}

/// The decision's kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Outcome {
    Accept {
        student: StudentId,
        check_in: CheckIn,
        /// Votes behind the accept: strong agreeing votes in the window (≥ K), or the student's
        /// band votes over the track ([`AcceptBasis::Track`]).
        agreeing: u32,
        /// Which rule accepted.
        #[serde(default)]
        basis: AcceptBasis,
    },
    Review(ReviewItem),
    Unknown,
}

/// Which rule accepted a track.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AcceptBasis {
    /// K strong agreeing votes within the window, as they came.
    #[default]
    Votes,
    /// The whole track's consistent votes, when it closed.
    Track,
    /// The gallery's answer for the track's template (mean of its sightings), when it closed.
    Template,
}

/// A student's band votes over a track.
#[derive(Debug, Clone, Copy, Default)]
struct Evidence {
    votes: u32,
    sum_similarity: f32,
    sum_margin: f32,
}

/// The one decision about a track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub track: TrackId,
    pub campus: CampusId,
    pub outcome: Outcome,
    /// Top-1 similarity of the deciding vote (`None`: the track never had a candidate).
    pub similarity: Option<f32>,
    /// Top-1 minus top-2 similarity of the deciding vote (`None`: fewer than two candidates).
    pub margin: Option<f32>,
    /// Time of the track's first observation.
    pub first_seen: DateTime<Utc>,
    /// Time the decision was taken (event time, see the module docs).
    pub decided_at: DateTime<Utc>,
    /// Observations of the track taken into account.
    pub sightings: u32,
    /// Best-quality observation so far.
    pub best_shot: ObsRef,
    /// For an unknown track: the unknown visitor it was clustered into (set by
    /// [`super::engine::Engine`]; the matcher itself leaves it `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitor: Option<VisitorSighting>,
}

impl Decision {
    /// `"accept" | "review" | "unknown"`.
    pub fn kind(&self) -> &'static str {
        match self.outcome {
            Outcome::Accept { .. } => "accept",
            Outcome::Review(_) => "review",
            Outcome::Unknown => "unknown",
        }
    }
    /// The accepted student (checked in or suppressed).
    pub fn accepted(&self) -> Option<&StudentId> {
        match &self.outcome {
            Outcome::Accept { student, .. } => Some(student),
            _ => None,
        }
    }
    /// The student to check in: an accept outside the cooldown.
    pub fn check_in(&self) -> Option<&StudentId> {
        match &self.outcome {
            Outcome::Accept {
                student,
                check_in: CheckIn::New,
                ..
            } => Some(student),
            _ => None,
        }
    }
    /// The student the decision is about: accepted, or the review's top candidate.
    pub fn student(&self) -> Option<&StudentId> {
        match &self.outcome {
            Outcome::Accept { student, .. } => Some(student),
            Outcome::Review(r) => r.candidates.first().map(|c| &c.student),
            Outcome::Unknown => None,
        }
    }

    /// The one-line summary `rollcall watch` prints (see [`DecisionLine`]).
    pub fn line(&self) -> DecisionLine {
        DecisionLine {
            decision: self.kind().to_string(),
            student: self.student().map(|s| s.to_string()),
            check_in: self.check_in().is_some(),
            similarity: self.similarity,
            margin: self.margin,
            camera: self.track.camera.to_string(),
            track: self.track.seq,
            time: self.decided_at,
            first_seen: self.first_seen,
            visitor: self.visitor.map(|v| v.visitor.0),
        }
    }
}

/// One decision as a flat record: `{"decision":"accept|review|unknown","student":id or null,
/// "check_in":bool,"similarity":s,"margin":m,"camera":…,"track":…,"time":…,"first_seen":…,
/// "visitor":id or null}`.
/// `student` is the accepted student, or a review's top candidate; only `check_in: true` lines
/// are check-ins (an accept within the cooldown has `check_in: false`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionLine {
    pub decision: String,
    pub student: Option<String>,
    pub check_in: bool,
    pub similarity: Option<f32>,
    pub margin: Option<f32>,
    pub camera: String,
    pub track: u64,
    pub time: DateTime<Utc>,
    pub first_seen: DateTime<Utc>,
    /// Unknown visitor id (clustered unknown tracks), when known.
    pub visitor: Option<u64>,
}

#[derive(Debug, Clone)]
struct Vote {
    at: DateTime<Utc>,
    top: Option<Candidate>,
    margin: Option<f32>,
    strong: bool,
}

#[derive(Debug, Clone)]
struct OpenTrack {
    campus: CampusId,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    sightings: u32,
    /// Votes within `window` of the newest.
    recent: VecDeque<Vote>,
    strong_students: BTreeSet<StudentId>,
    strong_count: u32,
    /// Observations with top-1 ≥ review threshold.
    band_sightings: u32,
    /// Some observation was above accept but failed the margin.
    low_margin: bool,
    /// Highest top-1 vote over the track.
    best_vote: Option<Vote>,
    /// Best similarity per student over the track (bounded).
    scores: HashMap<StudentId, f32>,
    /// Band votes per top-1 student (bounded like `scores`).
    evidence: BTreeMap<StudentId, Evidence>,
    /// Observations with any candidate, and how many of them had each student top-1
    /// (bounded like `scores`): a centred template's corroboration.
    searched: u32,
    top1: BTreeMap<StudentId, u32>,
    best_shot: ObsRef,
    best_quality: f32,
    /// The gallery's latest answer for the track's template: top-1, margin, sightings averaged.
    template: Option<(Candidate, Option<f32>, u32, bool)>,
}

/// Bound on `OpenTrack::scores`; pruned to the best `SCORES_KEEP` when exceeded.
const SCORES_MAX: usize = 64;
const SCORES_KEEP: usize = 16;
/// Bound on `OpenTrack::recent` (votes within the window), whatever the frame rate.
const MAX_RECENT: usize = 1024;

/// Real check-ins of one (student, campus): (event time, track).
type CheckIns = Vec<(DateTime<Utc>, TrackId)>;

/// The debounced matcher for any number of cameras and campuses.
#[derive(Debug, Clone)]
pub struct Matcher {
    config: MatcherConfig,
    open: HashMap<TrackId, OpenTrack>,
    /// Decided tracks → time of their last event.
    closed: HashMap<TrackId, DateTime<Utc>>,
    /// Real check-ins per (student, campus): (event time, track).
    checkins: HashMap<(StudentId, CampusId), CheckIns>,
    /// Newest time seen (observation, end or tick).
    high_water: Option<DateTime<Utc>>,
}

impl Matcher {
    pub fn new(config: MatcherConfig) -> Result<Self, MatcherConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            open: HashMap::new(),
            closed: HashMap::new(),
            checkins: HashMap::new(),
            high_water: None,
        })
    }

    pub fn config(&self) -> &MatcherConfig {
        &self.config
    }
    /// Tracks seen and not yet decided.
    pub fn open_tracks(&self) -> usize {
        self.open.len()
    }
    /// Whether a track has been decided (and is still remembered).
    pub fn is_decided(&self, track: &TrackId) -> bool {
        self.closed.contains_key(track)
    }

    fn advance(&mut self, t: DateTime<Utc>) {
        self.high_water = Some(self.high_water.map_or(t, |h| h.max(t)));
    }

    fn too_late(&self, t: DateTime<Utc>) -> bool {
        self.high_water
            .is_some_and(|h| t < h - self.config.late_tolerance)
    }

    /// Takes one observation. Returns the track's accept decision when this observation
    /// completes it; `None` otherwise (undecided yet, already decided, duplicate or too late).
    pub fn observe(&mut self, input: MatchInput) -> Option<Decision> {
        if self.too_late(input.at) {
            return None;
        }
        self.advance(input.at);
        if let Some(touched) = self.closed.get_mut(&input.track) {
            *touched = (*touched).max(input.at);
            return None;
        }
        let cfg = &self.config;
        let norm = normalize_candidates(&input.candidates);
        let (top, margin) = top_and_margin(&norm);
        let strong_for = cfg.strong_vote(&norm).map(|c| c.student.clone());

        let tr = self
            .open
            .entry(input.track.clone())
            .or_insert_with(|| OpenTrack {
                campus: input.campus.clone(),
                first_seen: input.at,
                last_seen: input.at,
                sightings: 0,
                recent: VecDeque::new(),
                strong_students: BTreeSet::new(),
                strong_count: 0,
                band_sightings: 0,
                low_margin: false,
                best_vote: None,
                scores: HashMap::new(),
                evidence: BTreeMap::new(),
                searched: 0,
                top1: BTreeMap::new(),
                best_shot: input.shot.clone(),
                best_quality: input.quality,
                template: None,
            });
        if tr.sightings > 0 && input.at <= tr.last_seen {
            return None; // repeated or out-of-order observation of this track
        }
        tr.sightings += 1;
        tr.last_seen = input.at;
        if input.quality > tr.best_quality {
            tr.best_quality = input.quality;
            tr.best_shot = input.shot.clone();
        }
        for c in &norm {
            let e = tr.scores.entry(c.student.clone()).or_insert(c.similarity);
            if c.similarity > *e {
                *e = c.similarity;
            }
        }
        if tr.scores.len() > SCORES_MAX {
            let mut all: Vec<Candidate> = tr
                .scores
                .drain()
                .map(|(s, v)| Candidate::new(s, v))
                .collect();
            all.sort_by(by_score);
            all.truncate(SCORES_KEEP);
            tr.scores = all.into_iter().map(|c| (c.student, c.similarity)).collect();
        }
        let vote = Vote {
            at: input.at,
            top: top.clone(),
            margin,
            strong: strong_for.is_some(),
        };
        if let Some(t) = &top {
            tr.searched += 1;
            if tr.top1.len() < SCORES_MAX || tr.top1.contains_key(&t.student) {
                *tr.top1.entry(t.student.clone()).or_default() += 1;
            }
            if t.similarity >= cfg.review_threshold {
                tr.band_sightings += 1;
                if tr.evidence.len() < SCORES_MAX || tr.evidence.contains_key(&t.student) {
                    let e = tr.evidence.entry(t.student.clone()).or_default();
                    e.votes += 1;
                    e.sum_similarity += t.similarity;
                    e.sum_margin += margin.unwrap_or(t.similarity).min(1.0);
                }
            }
            if t.similarity >= cfg.accept_threshold && strong_for.is_none() {
                tr.low_margin = true;
            }
            let better = tr
                .best_vote
                .as_ref()
                .and_then(|b| b.top.as_ref())
                .is_none_or(|b| t.similarity > b.similarity);
            if better {
                tr.best_vote = Some(vote.clone());
            }
        } else if tr.best_vote.is_none() {
            tr.best_vote = Some(vote.clone());
        }
        tr.recent.push_back(vote);
        while tr
            .recent
            .front()
            .is_some_and(|v| input.at - v.at > cfg.window)
        {
            tr.recent.pop_front();
        }
        while tr.recent.len() > MAX_RECENT {
            tr.recent.pop_front();
        }
        let student = strong_for?;
        tr.strong_count += 1;
        tr.strong_students.insert(student.clone());
        if tr.strong_students.len() > 1 {
            return None; // conflict: never accepted, reviewed when it ends
        }
        let agreeing: Vec<&Vote> = tr
            .recent
            .iter()
            .filter(|v| v.strong && v.top.as_ref().is_some_and(|t| t.student == student))
            .collect();
        if agreeing.len() < cfg.min_agreeing {
            return None;
        }
        let deciding = agreeing
            .iter()
            .copied()
            .max_by(|a, b| {
                let (sa, sb) = (sim(a), sim(b));
                sa.partial_cmp(&sb)
                    .unwrap_or(Ordering::Equal)
                    .then(b.at.cmp(&a.at))
            })
            .cloned()
            .expect("at least K >= 1 agreeing votes");
        let n_agree = agreeing.len() as u32;
        let tr = self.open.remove(&input.track).expect("open track");
        let check_in = self.record_check_in(&student, &tr.campus, input.at, &input.track);
        self.closed.insert(input.track.clone(), input.at);
        Some(Decision {
            track: input.track,
            campus: tr.campus,
            outcome: Outcome::Accept {
                student,
                check_in,
                agreeing: n_agree,
                basis: AcceptBasis::Votes,
            },
            similarity: deciding.top.as_ref().map(|t| t.similarity),
            margin: deciding.margin,
            first_seen: tr.first_seen,
            decided_at: input.at,
            sightings: tr.sightings,
            best_shot: tr.best_shot,
            visitor: None,
        })
    }

    /// The gallery's candidates for an open track's template ([`super::tracker::TrackTemplate`]:
    /// the mean of `sightings` embedded sightings, `centred` on its camera's mean or not),
    /// replacing the previous answer. Ignored for a track that is not open (unseen, decided or
    /// forgotten): a template never opens a track.
    pub fn note_template(
        &mut self,
        track: &TrackId,
        candidates: &[Candidate],
        sightings: u32,
        centred: bool,
    ) {
        let Some(tr) = self.open.get_mut(track) else {
            return;
        };
        let norm = normalize_candidates(candidates);
        let (top, margin) = top_and_margin(&norm);
        tr.template = top.map(|t| (t, margin, sightings, centred));
    }

    /// Whether the track is open and its template could still decide it (template accept on,
    /// not decided yet): the caller searches templates only for these.
    pub fn wants_template(&self, track: &TrackId) -> bool {
        self.config.template_min_sightings > 0 && self.open.contains_key(track)
    }

    fn record_check_in(
        &mut self,
        student: &StudentId,
        campus: &CampusId,
        at: DateTime<Utc>,
        track: &TrackId,
    ) -> CheckIn {
        let cooldown = self.config.cooldown;
        let list = self
            .checkins
            .entry((student.clone(), campus.clone()))
            .or_default();
        if let Some((t0, by)) = list.iter().find(|(t0, _)| (at - *t0).abs() < cooldown) {
            return CheckIn::Suppressed {
                by: by.clone(),
                at: *t0,
            };
        }
        list.push((at, track.clone()));
        CheckIn::New
    }

    /// The tracker ended `track`: decides it if it is still open (review or unknown).
    /// `now` is the time the end was noticed (e.g. [`super::EndedTrack::ended_at`]).
    pub fn end_track(&mut self, track: &TrackId, now: DateTime<Utc>) -> Option<Decision> {
        if self.too_late(now) {
            return None;
        }
        self.advance(now);
        let tr = self.open.remove(track)?;
        Some(self.close(track.clone(), tr, now))
    }

    /// Closes tracks quiet for longer than `track_timeout`, and forgets what is older than
    /// `late_tolerance`. Call it periodically with the current time.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Decision> {
        self.advance(now);
        let timeout = self.config.track_timeout;
        let mut idle: Vec<TrackId> = self
            .open
            .iter()
            .filter(|(_, t)| now - t.last_seen > timeout)
            .map(|(id, _)| id.clone())
            .collect();
        idle.sort();
        let out = idle
            .into_iter()
            .map(|id| {
                let tr = self.open.remove(&id).expect("open track");
                self.close(id, tr, now)
            })
            .collect();
        self.prune();
        out
    }

    /// Decides every open track (source ended, shutdown).
    pub fn finish(&mut self, now: DateTime<Utc>) -> Vec<Decision> {
        self.advance(now);
        let mut ids: Vec<TrackId> = self.open.keys().cloned().collect();
        ids.sort();
        ids.into_iter()
            .map(|id| {
                let tr = self.open.remove(&id).expect("open track");
                self.close(id, tr, now)
            })
            .collect()
    }

    fn prune(&mut self) {
        let Some(hw) = self.high_water else { return };
        let horizon = hw - self.config.late_tolerance;
        self.closed.retain(|_, t| *t >= horizon);
        // a late accept (at ≥ horizon) can only collide with check-ins after horizon − cooldown
        let keep_from = horizon - self.config.cooldown;
        self.checkins.retain(|_, v| {
            v.retain(|(t, _)| *t >= keep_from);
            !v.is_empty()
        });
    }

    /// The student the track's evidence accepts, with their band votes (module docs).
    fn track_evidence(&self, tr: &OpenTrack) -> Option<(StudentId, u32)> {
        let cfg = &self.config;
        if cfg.track_min_votes == 0 || tr.strong_students.len() > 1 {
            return None;
        }
        let (student, e) = tr
            .evidence
            .iter()
            .max_by(|a, b| a.1.votes.cmp(&b.1.votes).then_with(|| b.0.cmp(a.0)))?;
        let n = e.votes as f32;
        let ok = e.votes as usize >= cfg.track_min_votes
            && n >= cfg.track_min_agreement * tr.band_sightings as f32
            && e.sum_similarity / n >= cfg.track_threshold()
            && e.sum_margin / n >= cfg.track_min_margin
            && tr.strong_students.iter().all(|s| s == student);
        ok.then(|| (student.clone(), e.votes))
    }

    /// The student the track's template accepts, with the sightings it averages (module docs).
    fn template_evidence(&self, tr: &OpenTrack) -> Option<(StudentId, u32)> {
        let cfg = &self.config;
        let (top, margin, n, centred) = tr.template.as_ref()?;
        let threshold = if *centred {
            cfg.template_centred_threshold()
        } else {
            cfg.template_threshold()
        };
        let ok = cfg.template_min_sightings > 0
            && *n >= cfg.template_min_sightings
            && top.similarity >= threshold
            && margin.is_none_or(|m| m >= cfg.template_min_margin)
            && tr.strong_students.iter().all(|s| *s == top.student);
        // corroborated by a single sighting in the review band for S, or (a centred template,
        // whose sightings are all small) S the top-1 of at least half of the searched sightings
        let in_band = tr
            .scores
            .get(&top.student)
            .is_some_and(|s| *s >= cfg.review_threshold);
        let most = *centred
            && tr.searched > 0
            && 2 * tr.top1.get(&top.student).copied().unwrap_or(0) >= tr.searched;
        (ok && (in_band || most)).then(|| (top.student.clone(), *n))
    }

    fn close(&mut self, id: TrackId, tr: OpenTrack, now: DateTime<Utc>) -> Decision {
        // A track-evidence or template accept is an event of the track's last sighting (not of
        // when the close was noticed), so a replay and a live run check in at the same instant.
        let evidence = self
            .track_evidence(&tr)
            .map(|(s, n)| (s, n, AcceptBasis::Track))
            .or_else(|| {
                self.template_evidence(&tr)
                    .map(|(s, n)| (s, n, AcceptBasis::Template))
            });
        let decided_at = if evidence.is_some() {
            tr.last_seen
        } else {
            now.max(tr.last_seen)
        };
        let accepted = evidence.map(|(student, votes, basis)| {
            let check_in = self.record_check_in(&student, &tr.campus, decided_at, &id);
            Outcome::Accept {
                student,
                check_in,
                agreeing: votes,
                basis,
            }
        });
        let cfg = &self.config;
        let outcome = if let Some(a) = accepted {
            a
        } else if tr.strong_students.len() > 1
            || (tr.band_sightings as usize) >= cfg.min_review_sightings
        {
            let reason = if tr.strong_students.len() > 1 {
                ReviewReason::Conflict
            } else if tr.strong_count > 0 {
                ReviewReason::TooFewSightings
            } else if tr.low_margin {
                ReviewReason::LowMargin
            } else {
                ReviewReason::Band
            };
            let mut top: Vec<Candidate> = tr
                .scores
                .iter()
                .map(|(s, v)| Candidate::new(s.clone(), *v))
                .collect();
            top.sort_by(by_score);
            top.truncate(3);
            Outcome::Review(ReviewItem {
                reason,
                best_shot: tr.best_shot.clone(),
                best_quality: tr.best_quality,
                candidates: top,
            })
        } else {
            Outcome::Unknown
        };
        self.closed.insert(id.clone(), decided_at);
        let bv = tr.best_vote.as_ref();
        Decision {
            track: id,
            campus: tr.campus,
            outcome,
            similarity: bv.and_then(|v| v.top.as_ref()).map(|t| t.similarity),
            margin: bv.and_then(|v| v.margin),
            first_seen: tr.first_seen,
            decided_at,
            sightings: tr.sightings,
            best_shot: tr.best_shot,
            visitor: None,
        }
    }
}

fn sim(v: &Vote) -> f32 {
    v.top.as_ref().map_or(f32::NEG_INFINITY, |t| t.similarity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::CameraId;
    use chrono::TimeZone;

    fn t(ms: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap() + Duration::milliseconds(ms)
    }
    fn sid(s: &str) -> StudentId {
        StudentId::new(s).unwrap()
    }
    fn track(cam: &str, n: u64) -> TrackId {
        TrackId::new(CameraId::new(cam).unwrap(), n)
    }
    fn campus() -> CampusId {
        CampusId::new("north").unwrap()
    }
    fn obs(tr: &TrackId, ms: i64, q: f32, cands: &[(&str, f32)]) -> MatchInput {
        MatchInput {
            track: tr.clone(),
            campus: campus(),
            at: t(ms),
            shot: ObsRef {
                camera: tr.camera.clone(),
                frame_at: t(ms),
                index: 0,
            },
            quality: q,
            candidates: cands
                .iter()
                .map(|(s, v)| Candidate::new(sid(s), *v))
                .collect(),
        }
    }
    fn matcher() -> Matcher {
        Matcher::new(MatcherConfig::default()).unwrap()
    }

    /// A new check-in of `student` on a template averaging `n` sightings.
    fn template_accept(student: &str, n: u32) -> Outcome {
        Outcome::Accept {
            student: sid(student),
            check_in: CheckIn::New,
            agreeing: n,
            basis: AcceptBasis::Template,
        }
    }

    /// A small face's track: no vote reaches the accept threshold (0.5), but every band vote
    /// names the same student clearly (mean 0.45 > 0.425, margin 0.25): accepted when the track
    /// closes, on the track's evidence; a track with a dissenting band vote too many, one with
    /// too small a margin, a stranger's weak track, and a matcher with the rule off are not.
    #[test]
    fn a_track_is_accepted_on_its_template_when_it_closes() {
        // two band votes for ann (too few for the track-evidence rule), one below the band
        let votes = [
            ("ann", 0.38, "bob", 0.2),
            ("ann", 0.36, "cy", 0.3),
            ("bob", 0.3, "ann", 0.2),
        ];
        let run_c =
            |cfg: MatcherConfig, tpl: &[(&str, f32)], n: u32, strong_bob: bool, centred: bool| {
                let mut m = Matcher::new(cfg).unwrap();
                let tr = track("door", 1);
                for (i, (a, sa, b, sb)) in votes.iter().enumerate() {
                    let o = obs(&tr, i as i64 * 125, 0.5, &[(a, *sa), (b, *sb)]);
                    assert!(m.observe(o).is_none());
                    let c: Vec<Candidate> = tpl
                        .iter()
                        .map(|(s, v)| Candidate::new(sid(s), *v))
                        .collect();
                    m.note_template(&tr, &c, n, centred);
                }
                if strong_bob {
                    assert!(m.observe(obs(&tr, 900, 0.5, &[("bob", 0.8)])).is_none());
                }
                m.end_track(&tr, t(10_000)).unwrap()
            };
        let run = |cfg: MatcherConfig, tpl: &[(&str, f32)], n: u32, strong_bob: bool| {
            run_c(cfg, tpl, n, strong_bob, false)
        };
        let good = [("ann", 0.40), ("bob", 0.2)];
        let d = run(MatcherConfig::default(), &good, 5, false);
        assert_eq!(d.outcome, template_accept("ann", 5));
        assert_eq!(d.decided_at, t(250), "the track's last sighting");
        // below the threshold, too small a margin, too few sightings, a strong vote for
        // someone else, a student the sightings never put in the band, the rule off
        let cfg = MatcherConfig::default;
        assert_eq!(
            run(cfg(), &[("ann", 0.34), ("bob", 0.2)], 5, false).kind(),
            "review"
        );
        assert_eq!(
            run(cfg(), &[("ann", 0.40), ("bob", 0.32)], 5, false).kind(),
            "review"
        );
        assert_eq!(run(cfg(), &good, 3, false).kind(), "review");
        assert_eq!(run(cfg(), &good, 5, true).kind(), "review");
        assert_eq!(
            run(cfg(), &[("dee", 0.6), ("ann", 0.3)], 5, false).kind(),
            "review"
        );
        let off = MatcherConfig {
            template_min_sightings: 0,
            ..cfg()
        };
        assert_eq!(run(off, &good, 5, false).kind(), "review");
        // a template centred on its camera's mean is judged by its own, lower threshold
        // (0.7 × review = 0.245 here): 0.30 accepts it, not an uncentred one; 0.22 neither;
        // the margin and the band sighting still hold
        let low = [("ann", 0.30), ("bob", 0.15)];
        assert_eq!(
            cfg().template_centred_threshold(),
            0.7 * cfg().review_threshold
        );
        assert_eq!(run_c(cfg(), &low, 5, false, true).kind(), "accept");
        assert_eq!(run_c(cfg(), &low, 5, false, false).kind(), "review");
        assert_eq!(
            run_c(cfg(), &[("ann", 0.22), ("bob", 0.05)], 5, false, true).kind(),
            "review"
        );
        assert_eq!(
            run_c(cfg(), &[("ann", 0.30), ("bob", 0.25)], 5, false, true).kind(),
            "review"
        );
        assert_eq!(
            run_c(cfg(), &[("dee", 0.30), ("ann", 0.1)], 5, false, true).kind(),
            "review"
        );
        let strict = MatcherConfig {
            template_centred_threshold: Some(0.32),
            ..cfg()
        };
        assert_eq!(run_c(strict, &low, 5, false, true).kind(), "review");
        // an answer for a track that is not open opens nothing
        let mut m = matcher();
        m.note_template(
            &track("door", 9),
            &[Candidate::new(sid("ann"), 0.9)],
            9,
            false,
        );
        assert_eq!(m.open_tracks(), 0);
        assert!(m.finish(t(0)).is_empty());
        for bad in [
            MatcherConfig {
                template_accept_threshold: Some(0.1),
                ..cfg()
            },
            MatcherConfig {
                template_min_margin: -0.1,
                ..cfg()
            },
            MatcherConfig {
                template_centred_threshold: Some(0.0),
                ..cfg()
            },
            MatcherConfig {
                template_centred_threshold: Some(f32::NAN),
                ..cfg()
            },
            MatcherConfig {
                template_centred_threshold: Some(0.9),
                ..cfg()
            },
        ] {
            assert!(Matcher::new(bad).is_err());
        }
    }

    /// A walk-through of small, blurred faces: no sighting reaches the review band, so an
    /// uncentred template cannot be corroborated (unknown); a centred one is, when its student
    /// is the top-1 of at least half of the sightings, and not otherwise.
    #[test]
    fn a_centred_template_is_corroborated_by_most_sightings() {
        let run = |tops: &[&str], centred: bool| {
            let mut m = matcher();
            let tr = track("door", 1);
            for (i, who) in tops.iter().enumerate() {
                let other = if *who == "ann" { "bob" } else { "ann" };
                let o = obs(&tr, i as i64 * 125, 0.5, &[(who, 0.26), (other, 0.2)]);
                assert!(m.observe(o).is_none());
            }
            let c = [
                Candidate::new(sid("ann"), 0.28),
                Candidate::new(sid("bob"), 0.1),
            ];
            m.note_template(&tr, &c, 5, centred);
            m.end_track(&tr, t(10_000)).unwrap()
        };
        let d = run(&["ann", "bob", "ann", "ann"], true);
        assert_eq!(d.outcome, template_accept("ann", 5));
        assert_eq!(run(&["ann", "bob", "ann", "bob"], true).kind(), "accept");
        assert_eq!(run(&["ann", "bob", "bob", "bob"], true).kind(), "unknown");
        assert_eq!(run(&["ann", "ann", "ann", "ann"], false).kind(), "unknown");
    }

    #[test]
    fn a_consistent_weak_track_is_accepted_when_it_closes() {
        let run = |cfg: MatcherConfig, votes: &[(&str, f32, &str, f32)]| {
            let mut m = Matcher::new(cfg).unwrap();
            let tr = track("door", 1);
            for (i, (a, sa, b, sb)) in votes.iter().enumerate() {
                let o = obs(&tr, i as i64 * 125, 0.5, &[(a, *sa), (b, *sb)]);
                assert!(m.observe(o).is_none(), "no vote is strong");
            }
            m.end_track(&tr, t(10_000)).unwrap()
        };
        let ann = [("ann", 0.45, "bob", 0.2); 4];
        let d = run(MatcherConfig::default(), &ann);
        assert_eq!(
            d.outcome,
            Outcome::Accept {
                student: sid("ann"),
                check_in: CheckIn::New,
                agreeing: 4,
                basis: AcceptBasis::Track,
            }
        );
        assert_eq!(d.check_in(), Some(&sid("ann")));
        // 4 of 6 band votes (0.67 < 0.8) agree: review
        let mut mixed = ann.to_vec();
        mixed.push(("bob", 0.44, "ann", 0.2));
        mixed.push(("bob", 0.44, "ann", 0.2));
        assert_eq!(run(MatcherConfig::default(), &mixed).kind(), "review");
        // too close to the next student
        let close = [("ann", 0.45, "bob", 0.4); 4];
        assert_eq!(run(MatcherConfig::default(), &close).kind(), "review");
        // a stranger: below the review band
        let stranger = [("ann", 0.25, "bob", 0.2); 8];
        assert_eq!(run(MatcherConfig::default(), &stranger).kind(), "unknown");
        // the rule off
        let off = MatcherConfig {
            track_min_votes: 0,
            ..MatcherConfig::default()
        };
        assert_eq!(run(off, &ann).kind(), "review");
        // settings out of range are refused
        for bad in [
            MatcherConfig {
                track_min_agreement: 0.0,
                ..MatcherConfig::default()
            },
            MatcherConfig {
                track_accept_threshold: Some(0.1),
                ..MatcherConfig::default()
            },
            MatcherConfig {
                track_min_margin: f32::NAN,
                ..MatcherConfig::default()
            },
        ] {
            assert!(Matcher::new(bad).is_err());
        }
    }

    #[test]
    fn accepts_on_the_kth_agreeing_vote() {
        let mut m = matcher();
        let a = track("cam1", 1);
        assert!(m
            .observe(obs(&a, 0, 0.4, &[("ann", 0.62), ("bob", 0.3)]))
            .is_none());
        assert!(m
            .observe(obs(&a, 200, 0.9, &[("ann", 0.71), ("bob", 0.31)]))
            .is_none());
        let d = m
            .observe(obs(&a, 400, 0.5, &[("bob", 0.2), ("ann", 0.66)]))
            .unwrap();
        assert_eq!(d.check_in(), Some(&sid("ann")));
        assert_eq!(d.kind(), "accept");
        assert!(matches!(d.outcome, Outcome::Accept { agreeing: 3, .. }));
        assert_eq!(d.similarity, Some(0.71));
        assert!((d.margin.unwrap() - 0.40).abs() < 1e-6);
        assert_eq!((d.first_seen, d.decided_at, d.sightings), (t(0), t(400), 3));
        assert_eq!(
            d.best_shot.frame_at,
            t(200),
            "best shot is the best quality"
        );
        // later observations and the end of the track change nothing
        assert!(m.observe(obs(&a, 600, 0.5, &[("ann", 0.9)])).is_none());
        assert!(m.end_track(&a, t(3000)).is_none());
        assert!(m.finish(t(4000)).is_empty());
    }

    #[test]
    fn decision_line_is_flat_json() {
        let mut m = matcher();
        let a = track("cam1", 4);
        for ms in [0, 100] {
            m.observe(obs(&a, ms, 0.5, &[("ann", 0.8), ("bob", 0.5)]));
        }
        let d = m
            .observe(obs(&a, 200, 0.5, &[("ann", 0.8), ("bob", 0.5)]))
            .unwrap();
        let v = serde_json::to_value(d.line()).unwrap();
        assert_eq!(v["decision"], "accept");
        assert_eq!(v["student"], "ann");
        assert_eq!(v["check_in"], true);
        assert_eq!(v["camera"], "cam1");
        assert_eq!(v["track"], 4);
        assert!((v["similarity"].as_f64().unwrap() - 0.8).abs() < 1e-6);
        assert!((v["margin"].as_f64().unwrap() - 0.3).abs() < 1e-6);
        assert_eq!(v["time"], "2026-11-23T08:00:00.200Z");
        let b = track("cam1", 5);
        m.observe(obs(&b, 300, 0.5, &[]));
        let u = serde_json::to_value(m.finish(t(1000))[0].line()).unwrap();
        assert_eq!(u["decision"], "unknown");
        assert!(u["student"].is_null() && u["similarity"].is_null() && u["margin"].is_null());
        assert_eq!(u["check_in"], false);
    }

    #[test]
    fn duplicate_observations_do_not_count_twice() {
        let mut m = matcher();
        let a = track("cam1", 1);
        let o = obs(&a, 0, 0.5, &[("ann", 0.8)]);
        assert!(m.observe(o.clone()).is_none());
        assert!(m.observe(o.clone()).is_none());
        assert!(m.observe(o).is_none());
        assert!(m.observe(obs(&a, 100, 0.5, &[("ann", 0.8)])).is_none());
        assert!(
            m.observe(obs(&a, 50, 0.5, &[("ann", 0.8)])).is_none(),
            "out of order"
        );
        let d = m.end_track(&a, t(1000)).unwrap();
        assert!(matches!(
            d.outcome,
            Outcome::Review(ReviewItem {
                reason: ReviewReason::TooFewSightings,
                ..
            })
        ));
        assert_eq!(d.sightings, 2);
    }

    #[test]
    fn votes_outside_the_window_do_not_agree() {
        let mut m = matcher();
        let a = track("cam1", 1);
        for ms in [0, 3000, 6000, 9000, 12000] {
            assert!(m.observe(obs(&a, ms, 0.5, &[("ann", 0.8)])).is_none());
        }
        // the third vote within 5 s completes it
        let d = m.observe(obs(&a, 13000, 0.5, &[("ann", 0.8)])).unwrap();
        assert_eq!(d.accepted(), Some(&sid("ann")));
        assert_eq!(d.first_seen, t(0));
    }

    #[test]
    fn low_margin_and_band_go_to_review_with_top3() {
        let mut m = matcher();
        let a = track("cam1", 1);
        for (i, ms) in [0, 100, 200, 300].into_iter().enumerate() {
            let q = [0.2, 0.6, 0.4, 0.3][i];
            assert!(m
                .observe(obs(
                    &a,
                    ms,
                    q,
                    &[("ann", 0.7), ("bob", 0.68), ("cy", 0.4), ("dee", 0.1)]
                ))
                .is_none());
        }
        let d = m.end_track(&a, t(2500)).unwrap();
        let Outcome::Review(r) = &d.outcome else {
            panic!("{d:?}")
        };
        assert_eq!(r.reason, ReviewReason::LowMargin);
        assert_eq!(r.best_shot.frame_at, t(100));
        assert_eq!(r.best_quality, 0.6);
        let names: Vec<&str> = r.candidates.iter().map(|c| c.student.as_str()).collect();
        assert_eq!(names, ["ann", "bob", "cy"]);
        assert_eq!(d.decided_at, t(2500));
        assert!(d.check_in().is_none());

        let b = track("cam1", 2);
        m.observe(obs(&b, 3000, 0.5, &[("cy", 0.4), ("ann", 0.2)]));
        m.observe(obs(&b, 3100, 0.5, &[("cy", 0.45), ("ann", 0.2)]));
        let d = m.end_track(&b, t(4000)).unwrap();
        assert!(matches!(&d.outcome, Outcome::Review(r) if r.reason == ReviewReason::Band));
        assert_eq!(d.similarity, Some(0.45));
        assert_eq!(d.student(), Some(&sid("cy")));
    }

    #[test]
    fn conflicting_strong_votes_never_accept() {
        let mut m = matcher();
        let a = track("cam1", 1);
        m.observe(obs(&a, 0, 0.5, &[("ann", 0.8), ("bob", 0.3)]));
        m.observe(obs(&a, 100, 0.5, &[("bob", 0.8), ("ann", 0.3)]));
        m.observe(obs(&a, 200, 0.5, &[("ann", 0.8), ("bob", 0.3)]));
        assert!(m
            .observe(obs(&a, 300, 0.5, &[("ann", 0.8), ("bob", 0.3)]))
            .is_none());
        let d = m.end_track(&a, t(1000)).unwrap();
        assert!(matches!(&d.outcome, Outcome::Review(r) if r.reason == ReviewReason::Conflict));
    }

    #[test]
    fn below_review_is_unknown_and_never_checks_in() {
        let mut m = matcher();
        let a = track("cam1", 1);
        for i in 0..20 {
            assert!(m
                .observe(obs(&a, i * 100, 0.5, &[("ann", 0.3), ("bob", 0.1)]))
                .is_none());
        }
        m.observe(obs(&a, 2000, 0.5, &[]));
        let d = m.end_track(&a, t(3000)).unwrap();
        assert_eq!(d.outcome, Outcome::Unknown);
        assert_eq!(d.similarity, Some(0.3));
        assert_eq!(d.sightings, 21);
        // a track that never had a candidate
        let b = track("cam1", 2);
        m.observe(obs(&b, 3000, 0.5, &[]));
        let d = m.tick(t(14000));
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].outcome.clone(), d[0].similarity, d[0].margin),
            (Outcome::Unknown, None, None)
        );
    }

    #[test]
    fn cooldown_suppresses_second_check_in_from_another_camera() {
        let mut m = matcher();
        let a = track("door", 1);
        let b = track("hall", 7);
        let strong = [("ann", 0.8), ("bob", 0.2)];
        for ms in [0, 100, 200] {
            m.observe(obs(&a, ms, 0.5, &strong));
        }
        assert!(m.is_decided(&a));
        let mut last = None;
        for ms in [60_000, 60_100, 60_200] {
            last = m.observe(obs(&b, ms, 0.5, &strong));
        }
        let d = last.unwrap();
        assert_eq!(d.accepted(), Some(&sid("ann")));
        assert_eq!(d.check_in(), None);
        assert_eq!(
            d.outcome,
            Outcome::Accept {
                student: sid("ann"),
                check_in: CheckIn::Suppressed {
                    by: a.clone(),
                    at: t(200)
                },
                agreeing: 3,
                basis: AcceptBasis::Votes,
            }
        );
        // after the cooldown, a new check-in
        let c = track("door", 2);
        let mut last = None;
        for ms in [700_000, 700_100, 700_200] {
            last = m.observe(obs(&c, ms, 0.5, &strong));
        }
        assert_eq!(last.unwrap().check_in(), Some(&sid("ann")));
    }

    #[test]
    fn timeout_and_tombstones() {
        let mut m = matcher();
        let a = track("cam1", 1);
        m.observe(obs(&a, 0, 0.5, &[("ann", 0.4)]));
        assert!(
            m.tick(t(10_000)).is_empty(),
            "exactly the timeout is not past it"
        );
        let d = m.tick(t(10_001));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].kind(), "review");
        // late observations of the decided track are ignored
        assert!(m.observe(obs(&a, 10_500, 0.5, &[("ann", 0.9)])).is_none());
        assert!(m.end_track(&a, t(11_000)).is_none());
        assert_eq!(m.open_tracks(), 0);
        // far later: events older than late_tolerance are dropped, tombstones forgotten
        assert!(m.tick(t(10_000 + 11 * 60_000)).is_empty());
        assert!(!m.is_decided(&a));
        assert!(m.observe(obs(&a, 10_600, 0.5, &[("ann", 0.9)])).is_none());
        assert_eq!(m.open_tracks(), 0);
    }

    #[test]
    fn config_validates_and_round_trips() {
        assert!(Matcher::new(MatcherConfig {
            review_threshold: 0.6,
            ..MatcherConfig::default()
        })
        .is_err());
        assert!(MatcherConfig {
            min_agreeing: 0,
            ..MatcherConfig::default()
        }
        .validate()
        .is_err());
        let json = serde_json::to_string(&MatcherConfig::default()).unwrap();
        let back: MatcherConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, MatcherConfig::default());
        let p: MatcherConfig =
            serde_json::from_str(r#"{"accept_threshold":0.6,"cooldown":60000}"#).unwrap();
        assert_eq!(
            (p.accept_threshold, p.cooldown),
            (0.6, Duration::minutes(1))
        );
    }

    #[test]
    fn candidates_are_normalised() {
        let n = normalize_candidates(&[
            Candidate::new(sid("bob"), 0.5),
            Candidate::new(sid("ann"), 0.6),
            Candidate::new(sid("bob"), 0.7),
            Candidate::new(sid("cy"), f32::NAN),
        ]);
        assert_eq!(
            n,
            vec![
                Candidate::new(sid("bob"), 0.7),
                Candidate::new(sid("ann"), 0.6)
            ]
        );
        // two templates of the same student do not make a margin against themselves
        let cfg = MatcherConfig::default();
        let one = normalize_candidates(&[
            Candidate::new(sid("ann"), 0.8),
            Candidate::new(sid("ann"), 0.79),
        ]);
        assert_eq!(
            cfg.strong_vote(&one).map(|c| c.student.as_str()),
            Some("ann")
        );
    }
}
