//! Scoring a run against the scenario's ground truth, the comparable ledger dump, the
//! summary and its readable report.

use rollcall_camera_sim::{PersonKind, Simulation};
use rollcall_domain::face::BBox;
use rollcall_domain::ledger::{AttendanceStatus, EntryKind};
use rollcall_domain::matcher::debounce::{Decision, Outcome};
use rollcall_domain::matcher::tracker::TrackId;
use rollcall_ledger::Store;
use rollcall_runtime::Recognizer;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// Per-track votes for the person drawn under the track's faces.
#[derive(Default)]
pub(super) struct TruthVotes {
    votes: HashMap<TrackId, BTreeMap<String, u32>>,
    frames: HashMap<TrackId, u32>,
}

impl TruthVotes {
    pub(super) fn add(
        &mut self,
        boxes: &[BBox],
        tracks: &[TrackId],
        truth: &[rollcall_camera_sim::TruthFace],
    ) {
        for (b, t) in boxes.iter().zip(tracks) {
            *self.frames.entry(t.clone()).or_default() += 1;
            let best = truth
                .iter()
                .map(|f| (b.iou(&f.bbox), f))
                .filter(|(iou, _)| *iou >= 0.3)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((_, f)) = best {
                *self
                    .votes
                    .entry(t.clone())
                    .or_default()
                    .entry(f.id.clone())
                    .or_default() += 1;
            }
        }
    }

    /// The person most often under the track (`None`: no rendered face, e.g. a false detection).
    fn person(&self, t: &TrackId) -> Option<&str> {
        self.votes
            .get(t)?
            .iter()
            .max_by_key(|(id, n)| (**n, std::cmp::Reverse((*id).clone())))
            .map(|(id, _)| id.as_str())
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The ledger of a run as comparable lists: attendance `[student, lesson, status]`, deductions
/// `[student, lesson, package, units]`, alerts `[kind, dedup key]` and notices `[notice id,
/// recipient, channel]`, each sorted. `serve` (through `bench crash`) and `run-scenario` are
/// compared on it.
pub(crate) async fn ledger_dump(store: &Store) -> anyhow::Result<Value> {
    let mut attendance: Vec<Value> = store
        .attendance()
        .await?
        .iter()
        .map(|(s, l, st)| json!([s, l, st.as_str()]))
        .collect();
    let mut deductions: Vec<Value> = store
        .entries(None)
        .await?
        .iter()
        .filter(|e| e.entry.kind == EntryKind::Deduction)
        .map(|e| {
            json!([
                e.entry.student_id,
                e.entry.lesson_id,
                e.entry.package_id,
                e.entry.units
            ])
        })
        .collect();
    let mut alerts: Vec<Value> = store
        .alerts(None)
        .await?
        .iter()
        .map(|a| json!([a.kind.as_str(), a.dedup_key]))
        .collect();
    let mut notices: Vec<Value> = store
        .outbox(None, 1_000_000)
        .await?
        .iter()
        .map(|r| json!([r.notice_id, r.recipient_id, r.channel]))
        .collect();
    for v in [&mut attendance, &mut deductions, &mut alerts, &mut notices] {
        v.sort_by_key(|x| x.to_string());
    }
    Ok(json!({
        "attendance": attendance,
        "deductions": deductions,
        "alerts": alerts,
        "notices": notices,
    }))
}
pub(super) struct SummaryExtras<'a> {
    pub(super) notifications: Vec<Value>,
    pub(super) notification_summary: Value,
    pub(super) enrolled: Vec<Value>,
    pub(super) frames: usize,
    pub(super) frame_ms: Vec<f64>,
    pub(super) frames_secs: f64,
    pub(super) total_secs: f64,
    pub(super) rec: &'a Recognizer,
    pub(super) data: Option<&'a Path>,
    /// Check-ins the ledger writer parked (never expected on a scenario).
    pub(super) parked: u64,
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    Some((sorted[((sorted.len() - 1) as f64 * q).round() as usize] * 10.0).round() / 10.0)
}

pub(super) async fn summarize(
    store: &Store,
    sim: &Simulation,
    decisions: &[Decision],
    results: &[(Decision, rollcall_ledger::CheckInResult)],
    truth: &TruthVotes,
    x: SummaryExtras<'_>,
) -> anyhow::Result<Value> {
    let plan = sim.plan();
    let strangers: BTreeSet<&str> = sim
        .scenario
        .file
        .strangers
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    // expected: (student, lesson) of everyone who walks in for a lesson
    let expected: BTreeSet<(String, String)> = plan
        .attendance
        .iter()
        .filter(|a| a.status.arrives())
        .map(|a| (a.student.clone(), a.lesson.clone()))
        .collect();
    let expected_absent: BTreeMap<(String, String), &'static str> = plan
        .attendance
        .iter()
        .filter(|a| !a.status.arrives())
        .map(|a| {
            let s = if a.leave_requested_ms.is_some() {
                "excused"
            } else {
                "absent"
            };
            ((a.student.clone(), a.lesson.clone()), s)
        })
        .collect();

    let attendance = store.attendance().await?;
    let present: BTreeSet<(String, String)> = attendance
        .iter()
        .filter(|(_, _, s)| matches!(s, AttendanceStatus::Present | AttendanceStatus::Late))
        .map(|(s, l, _)| (s.clone(), l.clone()))
        .collect();
    let absences: Vec<Value> = attendance
        .iter()
        .filter(|(_, _, s)| matches!(s, AttendanceStatus::Absent | AttendanceStatus::Excused))
        .map(|(s, l, st)| json!({"student": s, "lesson": l, "status": st.as_str()}))
        .collect();

    // check-ins as the ledger recorded them, with the track's ground truth
    let mut check_ins = Vec::new();
    let mut false_check_ins = Vec::new();
    for (d, r) in results {
        let who = truth.person(&d.track);
        let correct = who == Some(r.student_id.as_str());
        let (lesson, status, effect) = match &r.outcome {
            rollcall_domain::ledger::CheckInOutcome::Recorded {
                lesson_id, status, ..
            } => (Some(lesson_id.clone()), Some(status.as_str()), "recorded"),
            rollcall_domain::ledger::CheckInOutcome::AlreadyRecorded { lesson_id, status } => (
                Some(lesson_id.clone()),
                Some(status.as_str()),
                "already_recorded",
            ),
            rollcall_domain::ledger::CheckInOutcome::Unscheduled => (None, None, "unscheduled"),
            rollcall_domain::ledger::CheckInOutcome::DuplicateEvent => {
                (None, None, "duplicate_event")
            }
        };
        let v = json!({
            "student": r.student_id,
            "lesson": lesson,
            "time": r.at,
            "local_time": plan.local_time(r.at.timestamp_millis()),
            "status": status,
            "ledger": effect,
            "camera": r.camera_id,
            "track": d.track.to_string(),
            "similarity": d.similarity,
            "margin": d.margin,
            "truth": who,
        });
        if !correct {
            false_check_ins.push(v.clone());
        }
        check_ins.push(v);
    }

    // deductions from the append-only ledger
    let entries = store.entries(None).await?;
    let mut per_lesson: BTreeMap<(String, String), u32> = BTreeMap::new();
    let mut deductions = Vec::new();
    for e in &entries {
        if e.entry.kind != EntryKind::Deduction {
            continue;
        }
        if let Some(l) = &e.entry.lesson_id {
            *per_lesson
                .entry((e.entry.student_id.clone(), l.clone()))
                .or_default() += 1;
        }
        deductions.push(json!({
            "student": e.entry.student_id,
            "lesson": e.entry.lesson_id,
            "package": e.entry.package_id,
            "lessons": -(e.entry.units as f64) / 100.0,
            "at": e.at,
        }));
    }
    let duplicate_deductions: u32 = per_lesson.values().map(|n| n.saturating_sub(1)).sum();

    let alerts: Vec<Value> = store
        .alerts(None)
        .await?
        .iter()
        .map(|a| {
            json!({
                "kind": a.kind,
                "student": a.student_id,
                "class": a.class_id,
                "package": a.package_id,
                "message": a.message,
                "at": a.created_at,
            })
        })
        .collect();

    let mut review_items = Vec::new();
    let mut unknown_tracks = Vec::new();
    for d in decisions {
        let who = truth.person(&d.track);
        match &d.outcome {
            Outcome::Review(r) => review_items.push(json!({
                "track": d.track.to_string(),
                "reason": r.reason.as_str(),
                "candidates": r.candidates.iter().map(|c| json!({"student": c.student, "similarity": c.similarity})).collect::<Vec<_>>(),
                "time": d.decided_at,
                "truth": who,
            })),
            Outcome::Unknown => unknown_tracks.push(json!({
                "track": d.track.to_string(),
                "visitor": d.visitor.map(|v| v.visitor.0),
                "sightings": d.sightings,
                "similarity": d.similarity,
                "time": d.first_seen,
                "truth": who,
            })),
            Outcome::Accept { .. } => {}
        }
    }

    let correct: BTreeSet<&(String, String)> = present.intersection(&expected).collect();
    let missed: Vec<Value> = expected
        .difference(&present)
        .map(|(s, l)| json!({"student": s, "lesson": l}))
        .collect();
    let unexpected: Vec<Value> = present
        .difference(&expected)
        .map(|(s, l)| json!({"student": s, "lesson": l}))
        .collect();
    let absences_correct = expected_absent
        .iter()
        .filter(|((s, l), want)| {
            attendance
                .iter()
                .any(|(s2, l2, st)| s2 == s && l2 == l && st.as_str() == **want)
        })
        .count();
    let stranger_check_ins = results
        .iter()
        .filter(|(d, _)| {
            truth
                .person(&d.track)
                .is_some_and(|p| strangers.contains(p))
        })
        .count();
    let ratio = |n: usize, d: usize| {
        if d == 0 {
            1.0
        } else {
            round3(n as f64 / d as f64)
        }
    };

    let mut sorted = x.frame_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let mut strangers_seen = BTreeSet::new();
    for a in &plan.arrivals {
        if a.kind == PersonKind::Stranger {
            strangers_seen.insert(a.person.clone());
        }
    }
    Ok(json!({
        "scenario": sim.scenario.source,
        "school": store.school_id(),
        "data_dir": x.data,
        "enrolled": x.enrolled,
        "check_ins": check_ins,
        "deductions": deductions,
        "absences": absences,
        "alerts": alerts,
        "review_items": review_items,
        "unknown_tracks": unknown_tracks,
        "unknown_visitors": x.rec.engine.visitors().visitors().len(),
        "notifications": x.notifications,
        "notification_summary": x.notification_summary,
        "score": {
            "expected_check_ins": expected.len(),
            "correct_check_ins": correct.len(),
            "check_in_precision": ratio(correct.len(), present.len()),
            "check_in_recall": ratio(correct.len(), expected.len()),
            "false_check_ins": false_check_ins.len(),
            "false_check_in_details": false_check_ins,
            "stranger_check_ins": stranger_check_ins,
            "unexpected_attendance": unexpected,
            "duplicate_deductions": duplicate_deductions,
            "parked_check_ins": x.parked,
            "missed_students": missed,
            "expected_absences": expected_absent.len(),
            "correct_absences": absences_correct,
            "strangers_in_scenario": strangers_seen.len(),
        },
        "frames": x.frames,
        "faces": x.rec.faces,
        "frame_ms": {
            "p50": percentile(&sorted, 0.5),
            "p90": percentile(&sorted, 0.9),
            "p99": percentile(&sorted, 0.99),
        },
        "frame_to_decision_ms": {
            "p50": x.rec.frame_to_decision_ms.percentile(0.5),
            "p99": x.rec.frame_to_decision_ms.percentile(0.99),
        },
        "fps": if x.frames_secs > 0.0 { (x.frames as f64 / x.frames_secs * 10.0).round() / 10.0 } else { 0.0 },
        "seconds": round3(x.total_secs),
    }))
}

/// A readable report of a run's summary (the `--json` output is the summary itself).
pub fn report(s: &Value) -> String {
    use std::fmt::Write;
    let str_of = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    let mut o = String::new();
    let _ = writeln!(
        o,
        "scenario {} (school {})",
        str_of(&s["scenario"]),
        str_of(&s["school"])
    );
    let _ = writeln!(o, "\ncheck-ins:");
    for c in s["check_ins"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  {:<20} {:<16} {:<8} {:<17} {} (similarity {:.3}, camera {})",
            str_of(&c["student"]),
            str_of(&c["lesson"]),
            str_of(&c["status"]),
            str_of(&c["ledger"]),
            str_of(&c["local_time"]),
            c["similarity"].as_f64().unwrap_or(0.0),
            str_of(&c["camera"]),
        );
    }
    let _ = writeln!(o, "\ndeductions:");
    for d in s["deductions"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  {:<20} {:<16} {} lesson(s) from {}",
            str_of(&d["student"]),
            str_of(&d["lesson"]),
            str_of(&d["lessons"]),
            str_of(&d["package"])
        );
    }
    let _ = writeln!(o, "\nabsences:");
    for a in s["absences"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  {:<20} {:<16} {}",
            str_of(&a["student"]),
            str_of(&a["lesson"]),
            str_of(&a["status"])
        );
    }
    let _ = writeln!(o, "\nalerts:");
    for a in s["alerts"].as_array().into_iter().flatten() {
        let _ = writeln!(o, "  {:<16} {}", str_of(&a["kind"]), str_of(&a["message"]));
    }
    let _ = writeln!(
        o,
        "\nreview items: {}   unknown tracks: {} ({} visitor(s))",
        s["review_items"].as_array().map_or(0, |a| a.len()),
        s["unknown_tracks"].as_array().map_or(0, |a| a.len()),
        str_of(&s["unknown_visitors"])
    );
    if let Some(n) = s["notifications"].as_array() {
        let _ = writeln!(o, "\nnotifications ({}):", n.len());
        for x in n {
            let _ = writeln!(
                o,
                "  {:<18} {:<20} -> {} ({}, {}): {}",
                str_of(&x["kind"]),
                str_of(&x["student"]),
                str_of(&x["to"]),
                str_of(&x["channel"]),
                str_of(&x["language"]),
                str_of(&x["subject"]),
            );
        }
    }
    let sc = &s["score"];
    let _ = writeln!(
        o,
        "\nscore: precision {}  recall {}  false check-ins {}  duplicate deductions {}  missed {}  absences {}/{}",
        str_of(&sc["check_in_precision"]),
        str_of(&sc["check_in_recall"]),
        str_of(&sc["false_check_ins"]),
        str_of(&sc["duplicate_deductions"]),
        sc["missed_students"].as_array().map_or(0, |a| a.len()),
        str_of(&sc["correct_absences"]),
        str_of(&sc["expected_absences"]),
    );
    let _ = writeln!(
        o,
        "frames {}  ({} fps; frame p50 {} ms, p99 {} ms)  total {} s",
        str_of(&s["frames"]),
        str_of(&s["fps"]),
        str_of(&s["frame_ms"]["p50"]),
        str_of(&s["frame_ms"]["p99"]),
        str_of(&s["seconds"])
    );
    o
}
