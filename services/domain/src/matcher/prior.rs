//! The timetable prior: search the students booked into lessons at this campus around now first,
//! and the whole school only if nobody among them passes.
//!
//! "Passes" means the booked-only results would make a strong vote (top-1 similarity ≥ the accept
//! threshold and a margin ≥ `min_margin` over the best other *booked* student), exactly the test
//! the matcher applies. When the booked search passes, its results are used as they are, so a
//! look-alike who is not booked cannot steal the vote; otherwise the whole-school results are used
//! (they include the booked students, so a review-band booked match is not lost).

use super::debounce::{normalize_candidates, Candidate, MatcherConfig};
use serde::{Deserialize, Serialize};

/// Which search a vote came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriorSource {
    Booked,
    WholeSchool,
}

/// The chosen candidates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorChoice {
    pub source: PriorSource,
    pub candidates: Vec<Candidate>,
}

/// Whether `candidates` make a strong vote under `cfg`.
pub fn passes(candidates: &[Candidate], cfg: &MatcherConfig) -> bool {
    cfg.strong_vote(&normalize_candidates(candidates)).is_some()
}

/// Booked results when they pass, else the whole-school results.
pub fn choose_candidates(
    booked: &[Candidate],
    whole_school: &[Candidate],
    cfg: &MatcherConfig,
) -> PriorChoice {
    choose_candidates_with(booked.to_vec(), || whole_school.to_vec(), cfg)
}

/// Same as [`choose_candidates`], running the whole-school search (`whole_school`) only when the
/// booked results do not pass.
pub fn choose_candidates_with(
    booked: Vec<Candidate>,
    whole_school: impl FnOnce() -> Vec<Candidate>,
    cfg: &MatcherConfig,
) -> PriorChoice {
    if passes(&booked, cfg) {
        PriorChoice {
            source: PriorSource::Booked,
            candidates: booked,
        }
    } else {
        PriorChoice {
            source: PriorSource::WholeSchool,
            candidates: whole_school(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::StudentId;

    fn c(s: &str, v: f32) -> Candidate {
        Candidate::new(StudentId::new(s).unwrap(), v)
    }

    #[test]
    fn booked_first_whole_school_only_if_nobody_passes() {
        let cfg = MatcherConfig::default();
        let whole = vec![c("zed", 0.74), c("ann", 0.72), c("bob", 0.3)];
        // booked ann passes on her own: used, zed (not booked) is not considered
        let booked = vec![c("ann", 0.72), c("bob", 0.3)];
        let got = choose_candidates(&booked, &whole, &cfg);
        assert_eq!(got.source, PriorSource::Booked);
        assert_eq!(got.candidates, booked);
        // booked only in the review band: whole school
        let booked = vec![c("ann", 0.45), c("bob", 0.3)];
        let got = choose_candidates(&booked, &whole, &cfg);
        assert_eq!(got.source, PriorSource::WholeSchool);
        assert_eq!(got.candidates, whole);
        // booked above accept but no margin between two booked students: whole school
        let booked = vec![c("ann", 0.72), c("bob", 0.70)];
        assert_eq!(
            choose_candidates(&booked, &whole, &cfg).source,
            PriorSource::WholeSchool
        );
        // nobody booked
        assert_eq!(
            choose_candidates(&[], &whole, &cfg).source,
            PriorSource::WholeSchool
        );
    }

    #[test]
    fn whole_school_search_is_lazy() {
        let cfg = MatcherConfig::default();
        let mut ran = false;
        let got = choose_candidates_with(
            vec![c("ann", 0.9)],
            || {
                ran = true;
                vec![]
            },
            &cfg,
        );
        assert_eq!(got.source, PriorSource::Booked);
        assert!(!ran);
        let got = choose_candidates_with(
            vec![c("ann", 0.2)],
            || {
                ran = true;
                vec![c("bob", 0.8)]
            },
            &cfg,
        );
        assert!(ran);
        assert_eq!(got.candidates, vec![c("bob", 0.8)]);
    }
}
