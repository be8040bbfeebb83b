//! Property tests of the debounced matcher (issue 5, item 8).
//!
//! Streams are generated per camera (tracks that may overlap in time, each with observations in
//! time order and usually an end event), optionally with repeated events re-delivered later in
//! the same camera's stream, and merged across two cameras in arbitrary interleavings. An
//! independent oracle (written from the rules, not from the implementation's state) says what
//! each track's decision must be.

use super::debounce::{
    AcceptBasis, Candidate, CheckIn, Decision, MatchInput, Matcher, MatcherConfig, Outcome,
};
use super::tracker::{ObsRef, TrackId};
use crate::ids::{CameraId, CampusId, StudentId};
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const HI: [f32; 6] = [0.5, 0.52, 0.55, 0.6, 0.7, 0.9];
const LO: [f32; 7] = [0.1, 0.3, 0.34, 0.35, 0.4, 0.45, 0.49];
const STUDENTS: [&str; 5] = ["s0", "s1", "s2", "s3", "s4"];

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap()
}
fn sid(i: usize) -> StudentId {
    StudentId::new(STUDENTS[i]).unwrap()
}

#[derive(Debug, Clone)]
struct ObsSpec {
    gap_ms: i64,
    kind: u8,
    alt: usize,
    hi: usize,
    lo: usize,
    quality: u8,
    /// The template answer noted after this observation (< 4: none; see `template`).
    tpl: u8,
    /// Whether that template was centred on its camera's mean (its own threshold).
    centred: bool,
}

#[derive(Debug, Clone)]
struct TrackSpec {
    start_gap_ms: i64,
    student: usize,
    obs: Vec<ObsSpec>,
    ends: bool,
}

#[derive(Debug, Clone)]
struct CamSpec {
    campus: usize,
    tracks: Vec<TrackSpec>,
}

fn obs_spec() -> impl Strategy<Value = ObsSpec> {
    (
        1i64..1500,
        0u8..10,
        0usize..5,
        0usize..HI.len(),
        0usize..LO.len(),
        0u8..100,
        0u8..9,
        any::<bool>(),
    )
        .prop_map(
            |(gap_ms, kind, alt, hi, lo, quality, tpl, centred)| ObsSpec {
                gap_ms,
                kind,
                alt,
                hi,
                lo,
                quality,
                tpl,
                centred,
            },
        )
}

fn track_spec() -> impl Strategy<Value = TrackSpec> {
    (
        0i64..40_000,
        0usize..5,
        prop::collection::vec(obs_spec(), 1..9),
        0u8..5,
    )
        .prop_map(|(start_gap_ms, student, obs, e)| TrackSpec {
            start_gap_ms,
            student,
            obs,
            ends: e != 0,
        })
}

fn cam_spec() -> impl Strategy<Value = CamSpec> {
    (0usize..2, prop::collection::vec(track_spec(), 1..7))
        .prop_map(|(campus, tracks)| CamSpec { campus, tracks })
}

fn config() -> impl Strategy<Value = MatcherConfig> {
    (
        1usize..5,
        300i64..3000,
        0i64..60_000,
        1usize..3,
        0usize..4,
        0u32..4,
    )
        .prop_map(|(k, w, cd, mrs, tv, ts)| MatcherConfig {
            min_agreeing: k,
            window: Duration::milliseconds(w),
            cooldown: Duration::milliseconds(cd),
            min_review_sightings: mrs,
            late_tolerance: Duration::days(1),
            track_min_votes: tv,
            template_min_sightings: ts,
            ..MatcherConfig::default()
        })
}

/// The gallery's answer for one observation of a track whose person is `student`.
fn candidates(o: &ObsSpec, student: usize) -> Vec<Candidate> {
    let c = |i: usize, v: f32| Candidate::new(sid(i), v);
    match o.kind {
        0..=4 => vec![c(student, HI[o.hi]), c(o.alt, LO[o.lo])],
        5 => vec![c(student, HI[o.hi]), c(o.alt, HI[o.hi] - 0.02)],
        6 => vec![c(o.alt, HI[o.hi]), c(student, LO[o.lo])],
        7 => vec![c(student, LO[o.lo]), c(o.alt, LO[o.lo] - 0.05)],
        8 => vec![],
        _ => vec![c(o.alt, LO[o.lo])],
    }
}

/// The gallery's answer for a track's template after an observation (`None`: not searched).
fn template(o: &ObsSpec, student: usize) -> Option<Vec<Candidate>> {
    let c = |i: usize, v: f32| Candidate::new(sid(i), v);
    match o.tpl {
        0..=3 => None,
        4 | 5 => Some(vec![c(student, HI[o.hi]), c(o.alt, LO[o.lo])]),
        6 => Some(vec![c(student, HI[o.hi]), c(o.alt, HI[o.hi] - 0.05)]),
        // low, as a centred template's similarities are (some between the two thresholds)
        7 => Some(vec![c(student, LO[o.lo]), c(o.alt, LO[o.lo] - 0.12)]),
        _ => Some(vec![c(o.alt, HI[o.hi]), c(student, LO[o.lo])]),
    }
}

#[derive(Debug, Clone)]
enum Ev {
    Obs(MatchInput),
    /// A template answer: track, candidates, sightings averaged, centred; at the observation's
    /// time.
    Template(TrackId, Vec<Candidate>, u32, bool, DateTime<Utc>),
    End(TrackId, DateTime<Utc>),
}

impl Ev {
    fn at(&self) -> DateTime<Utc> {
        match self {
            Ev::Obs(i) => i.at,
            Ev::Template(_, _, _, _, t) | Ev::End(_, t) => *t,
        }
    }
}

/// One camera's events in time order (stable for equal times).
fn camera_events(name: &str, spec: &CamSpec) -> Vec<Ev> {
    let cam = CameraId::new(name).unwrap();
    let campus = CampusId::new(["north", "south"][spec.campus]).unwrap();
    let mut evs = Vec::new();
    let mut start = t0();
    for (n, tr) in spec.tracks.iter().enumerate() {
        start += Duration::milliseconds(tr.start_gap_ms);
        let id = TrackId::new(cam.clone(), n as u64 + 1);
        let mut at = start;
        for (k, o) in tr.obs.iter().enumerate() {
            if k > 0 {
                at += Duration::milliseconds(o.gap_ms);
            }
            evs.push(Ev::Obs(MatchInput {
                track: id.clone(),
                campus: campus.clone(),
                at,
                shot: ObsRef {
                    camera: cam.clone(),
                    frame_at: at,
                    index: 0,
                },
                quality: f32::from(o.quality) / 100.0,
                candidates: candidates(o, tr.student),
            }));
            if let Some(c) = template(o, tr.student) {
                evs.push(Ev::Template(id.clone(), c, k as u32 + 1, o.centred, at));
            }
        }
        if tr.ends {
            evs.push(Ev::End(id, at + Duration::milliseconds(500)));
        }
    }
    evs.sort_by_key(|e| e.at());
    evs
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Re-delivers about a quarter of the events a second time, somewhere later in the stream.
fn with_repeats(evs: &[Ev], seed: u64) -> Vec<Ev> {
    let mut x = seed | 1;
    let mut out = evs.to_vec();
    for (i, e) in evs.iter().enumerate() {
        // a template answer is never delivered twice (a stale one would replace the latest)
        if xorshift(&mut x).is_multiple_of(4) && !matches!(e, Ev::Template(..)) {
            // `out` grows as copies go in; any position after the original is "later"
            let orig = out.iter().position(|o| same(o, e)).unwrap_or(i);
            let pos = orig + 1 + (xorshift(&mut x) as usize % (out.len() - orig));
            out.insert(pos, e.clone());
        }
    }
    out
}

fn same(a: &Ev, b: &Ev) -> bool {
    match (a, b) {
        (Ev::Obs(x), Ev::Obs(y)) => x == y,
        (Ev::End(x, s), Ev::End(y, t)) => x == y && s == t,
        (Ev::Template(x, c, n, p, s), Ev::Template(y, d, m, q, t)) => {
            x == y && c == d && n == m && p == q && s == t
        }
        _ => false,
    }
}

/// Merges two streams keeping each one's order, choosing the source by `seed`.
fn interleave(a: &[Ev], b: &[Ev], seed: u64) -> Vec<Ev> {
    let mut x = seed | 1;
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len() + b.len());
    while i < a.len() || j < b.len() {
        let take_a = j >= b.len() || (i < a.len() && xorshift(&mut x).is_multiple_of(2));
        if take_a {
            out.push(a[i].clone());
            i += 1;
        } else {
            out.push(b[j].clone());
            j += 1;
        }
    }
    out
}

fn run(cfg: &MatcherConfig, evs: &[Ev]) -> Vec<Decision> {
    let mut m = Matcher::new(cfg.clone()).unwrap();
    let mut out = Vec::new();
    let mut end = t0();
    for e in evs {
        end = end.max(e.at());
        match e {
            Ev::Obs(i) => out.extend(m.observe(i.clone())),
            Ev::Template(id, c, n, centred, _) => m.note_template(id, c, *n, *centred),
            Ev::End(id, at) => out.extend(m.end_track(id, *at)),
        }
    }
    out.extend(m.finish(end + Duration::seconds(1)));
    assert_eq!(m.open_tracks(), 0);
    out
}

// ------------------------------------------------------------------------------------------
// The oracle
// ------------------------------------------------------------------------------------------

/// Best score per student, best first (ties by id).
fn ranked(c: &[Candidate]) -> Vec<(StudentId, f32)> {
    let mut best: BTreeMap<StudentId, f32> = BTreeMap::new();
    for x in c {
        let e = best.entry(x.student.clone()).or_insert(f32::NEG_INFINITY);
        *e = e.max(x.similarity);
    }
    let mut v: Vec<(StudentId, f32)> = best.into_iter().collect();
    v.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
    v
}

fn strong_for(cfg: &MatcherConfig, c: &[Candidate]) -> Option<StudentId> {
    let r = ranked(c);
    let (s, top) = r.first()?.clone();
    let margin_ok = r.get(1).is_none_or(|(_, b)| top - b >= cfg.min_margin);
    (top >= cfg.accept_threshold && margin_ok).then_some(s)
}

fn top1(c: &[Candidate]) -> Option<f32> {
    ranked(c).first().map(|x| x.1)
}

#[derive(Debug, Clone, PartialEq)]
enum Expected {
    Accept(StudentId, DateTime<Utc>),
    /// Accepted on the whole track's evidence when it closed.
    TrackAccept(StudentId),
    /// Accepted on the track's template when it closed.
    TemplateAccept(StudentId),
    Review,
    Unknown,
}

/// What a track's decision must be, from its observations in order (repeats removed) and the
/// last template answer delivered while it was open.
fn expected(
    cfg: &MatcherConfig,
    obs: &[&MatchInput],
    tpl: Option<&(Vec<Candidate>, u32, bool)>,
) -> Expected {
    let mut strong: BTreeSet<StudentId> = BTreeSet::new();
    let mut band = 0usize;
    let mut votes: Vec<(DateTime<Utc>, Option<StudentId>)> = Vec::new();
    for o in obs {
        let s = strong_for(cfg, &o.candidates);
        if top1(&o.candidates).is_some_and(|v| v >= cfg.review_threshold) {
            band += 1;
        }
        votes.push((o.at, s.clone()));
        if let Some(s) = s {
            strong.insert(s.clone());
            if strong.len() == 1 {
                let n = votes
                    .iter()
                    .filter(|(t, v)| o.at - *t <= cfg.window && v.as_ref() == Some(&s))
                    .count();
                if n >= cfg.min_agreeing {
                    return Expected::Accept(s, o.at);
                }
            }
        }
    }
    // the track-evidence rule, recomputed from the observations
    if cfg.track_min_votes > 0 && strong.len() <= 1 {
        let mut ev: BTreeMap<StudentId, (usize, f32, f32)> = BTreeMap::new();
        for o in obs {
            let r = ranked(&o.candidates);
            if let Some((s, v)) = r.first() {
                if *v >= cfg.review_threshold {
                    let m = r.get(1).map_or(*v, |(_, w)| v - w).min(1.0);
                    let e = ev.entry(s.clone()).or_default();
                    e.0 += 1;
                    e.1 += *v;
                    e.2 += m;
                }
            }
        }
        let best = ev
            .iter()
            .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then_with(|| b.0.cmp(a.0)));
        if let Some((s, &(n, sum, margin))) = best {
            let nf = n as f32;
            if n >= cfg.track_min_votes
                && nf >= cfg.track_min_agreement * band as f32
                && sum / nf >= cfg.track_threshold()
                && margin / nf >= cfg.track_min_margin
                && strong.iter().all(|x| x == s)
            {
                return Expected::TrackAccept(s.clone());
            }
        }
    }
    // the template rule: the last answer's top-1 and margin, and a band sighting for them
    if let Some((c, n, centred)) = tpl.filter(|_| cfg.template_min_sightings > 0) {
        // a centred template is judged by its own threshold
        let threshold = if *centred {
            cfg.template_centred_threshold()
        } else {
            cfg.template_threshold()
        };
        let r = ranked(c);
        if let Some((s, v)) = r.first() {
            let margin_ok = r
                .get(1)
                .is_none_or(|(_, w)| v - w >= cfg.template_min_margin);
            let band_for_s = obs.iter().any(|o| {
                o.candidates
                    .iter()
                    .any(|x| x.student == *s && x.similarity >= cfg.review_threshold)
            });
            // a centred template may instead be corroborated by S being the top-1 of at
            // least half of the observations with candidates
            let searched: Vec<&MatchInput> = obs
                .iter()
                .copied()
                .filter(|o| !ranked(&o.candidates).is_empty())
                .collect();
            let top1_for_s = searched
                .iter()
                .filter(|o| ranked(&o.candidates).first().is_some_and(|(x, _)| x == s))
                .count();
            let most_for_s = *centred && !searched.is_empty() && 2 * top1_for_s >= searched.len();
            if *n >= cfg.template_min_sightings
                && *v >= threshold
                && margin_ok
                && (band_for_s || most_for_s)
                && strong.iter().all(|x| x == s)
            {
                return Expected::TemplateAccept(s.clone());
            }
        }
    }
    if strong.len() > 1 || band >= cfg.min_review_sightings {
        Expected::Review
    } else {
        Expected::Unknown
    }
}

/// Each track's observations as first delivered, in delivery order, repeats dropped.
fn per_track(evs: &[Ev]) -> BTreeMap<TrackId, Vec<&MatchInput>> {
    let mut m: BTreeMap<TrackId, Vec<&MatchInput>> = BTreeMap::new();
    for e in evs {
        if let Ev::Obs(i) = e {
            let v = m.entry(i.track.clone()).or_default();
            if v.last().is_none_or(|l| i.at > l.at) {
                v.push(i);
            }
        }
    }
    m
}

/// Each track's last template answer delivered after its first observation and before its
/// first end event.
fn templates(evs: &[Ev]) -> BTreeMap<TrackId, (Vec<Candidate>, u32, bool)> {
    let mut open: BTreeSet<TrackId> = BTreeSet::new();
    let mut ended: BTreeSet<TrackId> = BTreeSet::new();
    let mut out = BTreeMap::new();
    for e in evs {
        match e {
            Ev::Obs(i) if !ended.contains(&i.track) => {
                open.insert(i.track.clone());
            }
            Ev::Template(id, c, n, centred, _) if open.contains(id) => {
                out.insert(id.clone(), (c.clone(), *n, *centred));
            }
            Ev::End(id, _) if open.contains(id) => {
                open.remove(id);
                ended.insert(id.clone());
            }
            _ => {}
        }
    }
    out
}

/// The decision with its check-in flag erased (that flag may depend on arrival order).
fn erase_check_in(d: &Decision) -> Decision {
    let mut d = d.clone();
    if let Outcome::Accept { check_in, .. } = &mut d.outcome {
        *check_in = CheckIn::New;
    }
    d
}

fn check_cooldown(cfg: &MatcherConfig, ds: &[Decision]) -> Result<(), TestCaseError> {
    let mut by_key: BTreeMap<(StudentId, CampusId), Vec<DateTime<Utc>>> = BTreeMap::new();
    for d in ds {
        if let Some(s) = d.check_in() {
            by_key
                .entry((s.clone(), d.campus.clone()))
                .or_default()
                .push(d.decided_at);
        }
    }
    for (k, mut ts) in by_key {
        ts.sort();
        for w in ts.windows(2) {
            prop_assert!(
                w[1] - w[0] >= cfg.cooldown,
                "{:?} checked in twice within the cooldown: {} and {}",
                k,
                w[0],
                w[1]
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Each track's decision is exactly the oracle's; exactly one per observed track; check-ins of
    /// a (student, campus) are a cooldown apart; accepts have ≥ K agreeing sightings; and a track
    /// whose every observation is below the review threshold is unknown.
    #[test]
    fn decisions_follow_the_rules(
        cfg in config(),
        a in cam_spec(),
        b in cam_spec(),
        seed in any::<u64>(),
    ) {
        let (ea, eb) = (camera_events("camA", &a), camera_events("camB", &b));
        let evs = interleave(&ea, &eb, seed);
        let ds = run(&cfg, &evs);
        let obs = per_track(&evs);
        let tpls = templates(&evs);

        let mut seen: BTreeSet<TrackId> = BTreeSet::new();
        for d in &ds {
            prop_assert!(seen.insert(d.track.clone()), "two decisions for {}", d.track);
        }
        prop_assert_eq!(&seen, &obs.keys().cloned().collect::<BTreeSet<_>>());

        for d in &ds {
            let o = &obs[&d.track];
            let want = expected(&cfg, o, tpls.get(&d.track));
            let got = match &d.outcome {
                Outcome::Accept { student, basis: AcceptBasis::Track, .. } => {
                    Expected::TrackAccept(student.clone())
                }
                Outcome::Accept { student, basis: AcceptBasis::Template, .. } => {
                    Expected::TemplateAccept(student.clone())
                }
                Outcome::Accept { student, .. } => Expected::Accept(student.clone(), d.decided_at),
                Outcome::Review(_) => Expected::Review,
                Outcome::Unknown => Expected::Unknown,
            };
            prop_assert_eq!(&got, &want, "track {}", d.track);
            prop_assert_eq!(d.first_seen, o[0].at);
            if let Outcome::Accept { agreeing, basis: AcceptBasis::Track, .. } = &d.outcome {
                prop_assert!(*agreeing as usize >= cfg.track_min_votes && cfg.track_min_votes > 0);
            }
            if let Outcome::Accept { student, agreeing, basis: AcceptBasis::Votes, .. } = &d.outcome {
                // K agreeing sightings, counted from the raw observations
                let n = o.iter().filter(|x| {
                    x.at <= d.decided_at && d.decided_at - x.at <= cfg.window
                        && strong_for(&cfg, &x.candidates).as_ref() == Some(student)
                }).count();
                prop_assert!(n >= cfg.min_agreeing, "accepted {} with {} sightings", student, n);
                prop_assert_eq!(*agreeing as usize, n);
            }
            // below the review band throughout: unknown, unless its last template (centred)
            // accepted it
            if o.iter().all(|x| top1(&x.candidates).is_none_or(|v| v < cfg.review_threshold)) {
                let centred_accept = matches!(
                    &d.outcome,
                    Outcome::Accept { basis: AcceptBasis::Template, .. }
                ) && tpls.get(&d.track).is_some_and(|t| t.2);
                prop_assert!(d.outcome == Outcome::Unknown || centred_accept, "{:?}", d.outcome);
            }
            if let Outcome::Review(r) = &d.outcome {
                prop_assert!(r.candidates.len() <= 3);
                let best_q = o.iter().map(|x| x.quality).fold(f32::NEG_INFINITY, f32::max);
                prop_assert_eq!(r.best_quality, best_q);
            }
        }
        check_cooldown(&cfg, &ds)?;
        // every accepted (student, campus) has a check-in
        let accepted: BTreeSet<_> = ds.iter().filter_map(|d| d.accepted().map(|s| (s.clone(), d.campus.clone()))).collect();
        let checked: BTreeSet<_> = ds.iter().filter_map(|d| d.check_in().map(|s| (s.clone(), d.campus.clone()))).collect();
        prop_assert_eq!(accepted, checked);
    }

    /// How two cameras' streams interleave, and whether events are delivered again later, does
    /// not change any track's decision nor the set of (student, campus) checked in.
    #[test]
    fn interleaving_and_repeats_do_not_matter(
        cfg in config(),
        a in cam_spec(),
        b in cam_spec(),
        s1 in any::<u64>(),
        s2 in any::<u64>(),
        r in any::<u64>(),
    ) {
        let (ea, eb) = (camera_events("camA", &a), camera_events("camB", &b));
        let base = run(&cfg, &interleave(&ea, &eb, s1));
        let (ra, rb) = (with_repeats(&ea, r), with_repeats(&eb, r.rotate_left(17)));
        let other = run(&cfg, &interleave(&ra, &rb, s2));
        // the cameras one after the other, the extreme interleavings
        let a_first = run(&cfg, &[ea.clone(), eb.clone()].concat());
        let b_first = run(&cfg, &[eb.clone(), ea.clone()].concat());
        let key = |ds: &[Decision]| -> BTreeMap<TrackId, Decision> {
            ds.iter().map(|d| (d.track.clone(), erase_check_in(d))).collect()
        };
        let checked = |ds: &[Decision]| -> BTreeSet<(StudentId, CampusId)> {
            ds.iter().filter_map(|d| d.check_in().map(|s| (s.clone(), d.campus.clone()))).collect()
        };
        prop_assert_eq!(other.len(), base.len());
        for run in [&other, &a_first, &b_first] {
            prop_assert_eq!(key(run), key(&base));
            prop_assert_eq!(checked(run), checked(&base));
            check_cooldown(&cfg, run)?;
        }
    }

    /// Arbitrary operations (observations of any track at any time, in any order, repeated ends,
    /// ticks): never two decisions for one track, never two check-ins of a (student, campus)
    /// within the cooldown, never an accept without K agreeing sightings among the observations
    /// delivered, never an accept for a track with nothing above the review threshold; after
    /// `finish`, every observed track is decided.
    #[test]
    fn chaos_keeps_the_invariants(
        cfg in config(),
        ops in prop::collection::vec((0u8..10, 0u64..6, 0i64..120_000, obs_spec(), 0usize..5), 0..120),
    ) {
        let mut m = Matcher::new(cfg.clone()).unwrap();
        let mut ds: Vec<Decision> = Vec::new();
        let mut delivered: BTreeMap<TrackId, Vec<MatchInput>> = BTreeMap::new();
        let mut centred_sent: BTreeSet<TrackId> = BTreeSet::new();
        let mut last = t0();
        for (op, tr, ms, o, student) in &ops {
            let cam = CameraId::new(["camA", "camB"][(*tr % 2) as usize]).unwrap();
            let id = TrackId::new(cam.clone(), *tr);
            let at = t0() + Duration::milliseconds(*ms);
            last = last.max(at);
            match op {
                0..=6 => {
                    let input = MatchInput {
                        track: id.clone(),
                        campus: CampusId::new(["north", "south"][(*tr % 2) as usize]).unwrap(),
                        at,
                        shot: ObsRef { camera: cam, frame_at: at, index: 0 },
                        quality: f32::from(o.quality) / 100.0,
                        candidates: candidates(o, *student),
                    };
                    let seen = delivered.entry(id.clone()).or_default();
                    seen.push(input.clone());
                    let n = seen.len() as u32;
                    ds.extend(m.observe(input));
                    if let Some(c) = template(o, *student) {
                        m.note_template(&id, &c, n, o.centred);
                        if o.centred {
                            centred_sent.insert(id.clone());
                        }
                    }
                }
                7 | 8 => ds.extend(m.end_track(&id, at)),
                _ => ds.extend(m.tick(at)),
            }
        }
        ds.extend(m.finish(last + Duration::seconds(1)));
        let mut seen = BTreeSet::new();
        for d in &ds {
            prop_assert!(seen.insert(d.track.clone()), "two decisions for {}", d.track);
            let o = &delivered[&d.track];
            if let (Some(s), Outcome::Accept { basis: AcceptBasis::Votes, .. }) = (d.accepted(), &d.outcome) {
                let times: BTreeSet<DateTime<Utc>> = o.iter().filter(|x| {
                    x.at <= d.decided_at && d.decided_at - x.at <= cfg.window
                        && strong_for(&cfg, &x.candidates).as_ref() == Some(s)
                }).map(|x| x.at).collect();
                prop_assert!(times.len() >= cfg.min_agreeing, "accept with {} sightings", times.len());
            }
            // below the review band throughout: unknown, unless a centred template accepted it
            if o.iter().all(|x| top1(&x.candidates).is_none_or(|v| v < cfg.review_threshold)) {
                let centred_accept = matches!(
                    &d.outcome,
                    Outcome::Accept { basis: AcceptBasis::Template, .. }
                ) && centred_sent.contains(&d.track);
                prop_assert!(d.outcome == Outcome::Unknown || centred_accept, "{:?}", d.outcome);
            }
        }
        prop_assert_eq!(seen, delivered.keys().cloned().collect::<BTreeSet<_>>());
        check_cooldown(&cfg, &ds)?;
    }
}

/// The property tests above would notice a matcher that accepts too early: this one does.
#[test]
fn oracle_rejects_an_early_accept() {
    let cfg = MatcherConfig::default();
    let cam = CameraId::new("camA").unwrap();
    let id = TrackId::new(cam.clone(), 1);
    let mk = |ms: i64| MatchInput {
        track: id.clone(),
        campus: CampusId::new("north").unwrap(),
        at: t0() + Duration::milliseconds(ms),
        shot: ObsRef {
            camera: cam.clone(),
            frame_at: t0() + Duration::milliseconds(ms),
            index: 0,
        },
        quality: 0.5,
        candidates: vec![Candidate::new(sid(0), 0.8)],
    };
    let (a, b, c) = (mk(0), mk(100), mk(200));
    assert_eq!(expected(&cfg, &[&a, &b], None), Expected::Review);
    assert_eq!(
        expected(&cfg, &[&a, &b, &c], None),
        Expected::Accept(sid(0), t0() + Duration::milliseconds(200))
    );
}

// ------------------------------------------------------------------------------------------
// Tracker
// ------------------------------------------------------------------------------------------

mod tracker_props {
    use super::*;
    use crate::face::{BBox, Embedding, FaceObservation, Landmarks, Quality};
    use crate::matcher::tracker::{EndReason, EndedTrack, Tracker, TrackerConfig};

    fn face(x: f32, y: f32, size: f32, q: f32, person: Option<usize>) -> FaceObservation {
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
                sharpness: 50.0,
                yaw: 0.0,
                pitch: 0.0,
                cut_by_border: false,
                overall: q,
                reasons: vec![],
            },
            embedding: person.map(|p| {
                let mut v = vec![0.0f32; 6];
                v[p] = 1.0;
                Embedding {
                    model_id: "m".into(),
                    model_version: "1".into(),
                    vector: v,
                }
            }),
        }
    }

    type FaceSpec = (u8, u8, u8, u8, Option<usize>);
    /// Live track → (first sighting, last sighting, hits, best quality), kept by the test.
    type Live = BTreeMap<TrackId, (DateTime<Utc>, DateTime<Utc>, u32, f32)>;

    fn check_ended(
        e: &EndedTrack,
        live: &mut Live,
        cfg: &TrackerConfig,
    ) -> Result<(), TestCaseError> {
        let (first, last, hits, best) = live
            .remove(&e.id)
            .ok_or_else(|| TestCaseError::fail(format!("{} ended twice or never lived", e.id)))?;
        prop_assert_eq!((e.first_seen, e.last_seen, e.hits), (first, last, hits));
        prop_assert_eq!(e.best.quality, best);
        prop_assert_eq!(e.best.face.quality.overall, best);
        prop_assert_eq!(e.history.len(), (hits as usize).min(cfg.history_len));
        prop_assert!(e.history.windows(2).all(|w| w[0].at <= w[1].at));
        prop_assert_eq!(e.history.last().unwrap().at, last);
        if e.reason == EndReason::Expired {
            prop_assert!(e.ended_at - e.last_seen > cfg.max_age);
        }
        Ok(())
    }

    fn frames() -> impl Strategy<Value = Vec<(i64, Vec<FaceSpec>)>> {
        let f = (
            0u8..20,
            0u8..10,
            4u8..12,
            0u8..=100,
            prop::option::of(0usize..6),
        );
        prop::collection::vec((0i64..3000, prop::collection::vec(f, 0..5)), 0..40)
    }

    /// One track's sightings for the template property: quality (percent) and, if embedded,
    /// the embedding's deviation from a common direction (hundredths).
    type TemplateShot = (u8, Option<Vec<i8>>);

    fn template_face(i: usize, shot: &TemplateShot) -> FaceObservation {
        let mut f = face(
            100.0 + i as f32,
            100.0,
            80.0,
            f32::from(shot.0) / 100.0,
            None,
        );
        f.embedding = shot.1.as_ref().map(|d| {
            let mut v: Vec<f32> = d.iter().map(|x| f32::from(*x) / 100.0).collect();
            v[0] = 1.0;
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            Embedding {
                model_id: "m".into(),
                model_version: "1".into(),
                vector: v.into_iter().map(|x| x / n).collect(),
            }
        });
        f
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// A track's template is the mean of its `template_best` best embedded sightings (all
        /// of them for 0), each weighted by its quality floored at 0.05, ranked by that weight
        /// with the earlier sighting first on a tie, renormalised; sightings without an
        /// embedding count for nothing, and the template says how many it has and averages.
        #[test]
        fn a_template_averages_the_best_sightings(
            shots in prop::collection::vec(
                (0u8..=100, prop::option::of(prop::collection::vec(-30i8..=30, 6))),
                1..30,
            ),
            keep in 0usize..6,
        ) {
            let cfg = TrackerConfig { template_best: keep, ..TrackerConfig::default() };
            let mut tr = Tracker::new(CameraId::new("cam").unwrap(), cfg).unwrap();
            let mut at = t0();
            for (i, s) in shots.iter().enumerate() {
                at += Duration::milliseconds(100);
                tr.update(at, &[template_face(i, s)]).unwrap();
            }
            prop_assert_eq!(tr.tracks().len(), 1);
            // the oracle
            let weight = |q: u8| (f32::from(q) / 100.0).clamp(0.05, 1.0);
            let mut embedded: Vec<(f32, Vec<f32>)> = shots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    template_face(i, s).embedding.map(|e| (weight(s.0), e.vector))
                })
                .collect();
            let n = embedded.len();
            if keep > 0 {
                embedded.sort_by(|a, b| b.0.total_cmp(&a.0)); // stable: earlier first on ties
                embedded.truncate(keep);
            }
            let got = tr.tracks()[0].template();
            if n == 0 {
                prop_assert!(got.is_none());
                return Ok(());
            }
            let got = got.ok_or_else(|| TestCaseError::fail("no template"))?;
            prop_assert_eq!(got.sightings as usize, n);
            prop_assert_eq!(got.averaged as usize, embedded.len());
            let mut want = vec![0.0f32; 6];
            for (w, v) in &embedded {
                for (a, x) in want.iter_mut().zip(v) {
                    *a += w * x;
                }
            }
            let norm = want.iter().map(|x| x * x).sum::<f32>().sqrt();
            for (g, w) in got.embedding.vector.iter().zip(&want) {
                prop_assert!((g - w / norm).abs() < 1e-4, "{:?} vs {:?}", got.embedding.vector, want);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Whatever the faces: each frame's faces get distinct tracks; a new track id is never
        /// one seen before; an ended track never comes back; after `finish` every track has
        /// ended exactly once, with its hit count, first/last sighting, a bounded history and
        /// the highest-quality face as best shot; expiry happens only after `max_age` without a
        /// hit.
        #[test]
        fn tracker_invariants(frames in frames(), history_len in 1usize..6) {
            let cfg = TrackerConfig { history_len, ..TrackerConfig::default() };
            let mut tr = Tracker::new(CameraId::new("cam").unwrap(), cfg.clone()).unwrap();
            let mut at = t0();
            // track → (first, last, hits, best quality)
            let mut live: Live = BTreeMap::new();
            let mut seen: BTreeSet<TrackId> = BTreeSet::new();
            let mut ended: Vec<EndedTrack> = Vec::new();
            for (gap, specs) in &frames {
                at += Duration::milliseconds(*gap);
                let faces: Vec<FaceObservation> = specs.iter().map(|(x, y, s, q, p)| {
                    face(f32::from(*x) * 30.0, f32::from(*y) * 30.0, f32::from(*s) * 10.0, f32::from(*q) / 100.0, *p)
                }).collect();
                let u = tr.update(at, &faces).unwrap();
                for e in &u.ended {
                    check_ended(e, &mut live, &cfg)?;
                    ended.push(e.clone());
                }
                prop_assert_eq!(u.assignments.len(), faces.len());
                let distinct: BTreeSet<&TrackId> = u.assignments.iter().collect();
                prop_assert_eq!(distinct.len(), faces.len());
                for (id, f) in u.assignments.iter().zip(&faces) {
                    let q = f.quality.overall;
                    if u.born.contains(id) {
                        prop_assert!(seen.insert(id.clone()), "reused id {}", id);
                        live.insert(id.clone(), (at, at, 1, q));
                    } else {
                        let e = live.get_mut(id).ok_or_else(|| TestCaseError::fail(format!("{id} assigned but not live")))?;
                        prop_assert!(at - e.1 <= cfg.max_age);
                        e.1 = at;
                        e.2 += 1;
                        if q > e.3 { e.3 = q; }
                    }
                }
                prop_assert_eq!(tr.tracks().len(), live.len());
            }
            for e in tr.finish(at) {
                check_ended(&e, &mut live, &cfg)?;
                ended.push(e);
            }
            prop_assert!(live.is_empty());
            prop_assert_eq!(ended.len(), seen.len());
        }
    }
}
