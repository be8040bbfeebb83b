//! Debounced matcher and tracker state machines (see issue 5).
//!
//! Both are pure: no I/O, no clock reads. Every time is an argument (the frame's timestamp or the
//! caller's `now`), so a run is a deterministic function of its inputs.
//!
//! * [`tracker`]: per camera, associates the faces of consecutive frames into tracks (box overlap
//!   plus embedding similarity, Hungarian assignment on a combined cost with gating), keeps a
//!   bounded history per track, picks the best shot by `quality.overall` and reports ended tracks.
//! * [`debounce`]: per track, turns the gallery's candidates of each observation into exactly one
//!   decision (accept, review or unknown), with a per-(student, campus) check-in cooldown.
//! * [`prior`]: the timetable prior (booked students first, the whole school only if nobody
//!   passes), as a pure choice between two candidate lists.
//! * [`visitors`]: unknown tracks clustered into repeated unknown visitors for staff.
//! * [`engine`]: one tracker per camera feeding one matcher, the pure core of the pipeline.
//!
//! The streaming pipeline calls, per frame of one camera: [`tracker::Tracker::update`], then
//! [`debounce::Matcher::observe`] for each assigned face (after the gallery search), then
//! [`debounce::Matcher::end_track`] for each track the tracker ended; and periodically
//! [`tracker::Tracker::expire`] / [`debounce::Matcher::tick`] so that quiet cameras still close
//! their tracks. [`engine::Engine`] does exactly that for a set of cameras.

pub mod debounce;
pub mod engine;
pub mod prior;
pub mod tracker;
pub mod visitors;

#[cfg(test)]
mod props;

pub use debounce::{
    normalize_candidates, AcceptBasis, Candidate, CheckIn, Decision, DecisionLine, MatchInput,
    Matcher, MatcherConfig, MatcherConfigError, Outcome, ReviewItem, ReviewReason,
};
pub use engine::{Engine, EngineError, FrameOutcome};
pub use prior::{choose_candidates, choose_candidates_with, passes, PriorChoice, PriorSource};
pub use tracker::{
    hungarian, EndReason, EndedTrack, ObsRef, Shot, Track, TrackId, TrackPoint, TrackUpdate,
    Tracker, TrackerConfig, TrackerConfigError, TrackerError,
};
pub use visitors::{
    UnknownVisitors, Visitor, VisitorConfig, VisitorConfigError, VisitorId, VisitorSighting,
};
