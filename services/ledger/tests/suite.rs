//! The ledger suite, run against SQLite and PostgreSQL (see `rollcall_testkit::two_backends!`).

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rollcall_domain::ledger::*;
use rollcall_ledger::*;
use std::collections::BTreeSet;

rollcall_testkit::two_backends! {
    concurrent_checkins_deduct_once => SchoolPolicy::default(),
    replay_once_vs_tripled_shuffled_is_identical => SchoolPolicy::default(),
    week_of_absences_one_alert_per_streak => SchoolPolicy::default(),
    insufficient_balance_alerts_without_deduction => SchoolPolicy::default(),
    overdraft_when_school_allows => SchoolPolicy { overdraft: OverdraftPolicy::Allow { max_lessons: 1 }, ..SchoolPolicy::default() },
    expired_and_other_campus_packages_are_not_used => SchoolPolicy::default(),
    late_checkin_and_expiring_first => SchoolPolicy::default(),
    unscheduled_visit_and_duplicate_event => SchoolPolicy::default(),
    reversal_then_rededuction => SchoolPolicy::default(),
    refund_rule_applied_and_recorded => SchoolPolicy { refund: RefundRule { keep_before_first_pct: 10, no_refund_after_consumed_pct: 50, fee_cents: 300 }, ..SchoolPolicy::default() },
    csv_import_all_or_nothing => SchoolPolicy::default(),
    reports_attendance_consumption_outstanding_heatmap => SchoolPolicy::default(),
    low_balance_alert_once_per_episode => SchoolPolicy::default(),
    concurrent_checkins_for_different_lessons_never_overdraw => SchoolPolicy::default(),
    makeup_booking_consent_and_audit_rollback => SchoolPolicy::default(),
    batch_results_match_one_by_one_and_isolate_failures => SchoolPolicy::default(),
}

/// Monday 2026-01-05 00:00 UTC.
fn monday() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap()
}

/// Lesson `d` of class math: day `d` (from Monday) 16:00–17:00 UTC.
fn math_start(d: i64) -> DateTime<Utc> {
    monday() + Duration::days(d) + Duration::hours(16)
}

/// Campuses north and south, class `math` (north) with lessons `M0..M{days}` at 16:00 daily,
/// students `s1..s{n}` enrolled, each with a 10-lesson school-wide package.
async fn world(s: &Store, days: i64, students: usize) {
    s.create_campus("north", "North").await.unwrap();
    s.create_campus("south", "South").await.unwrap();
    s.create_room("n1", "north", "Room 1").await.unwrap();
    s.create_camera("cam-n", "north", "front").await.unwrap();
    s.create_class(&NewClass {
        id: "math".into(),
        course: "Maths".into(),
        name: "Maths Y7".into(),
        campus_id: "north".into(),
        teacher: "ms-lee".into(),
        policy: ClassPolicy::default(),
        capacity: None,
        room_id: None,
        kind: Default::default(),
    })
    .await
    .unwrap();
    let lessons: Vec<NewLesson> = (0..days)
        .map(|d| NewLesson {
            id: format!("M{d}"),
            class_id: "math".into(),
            room_id: Some("n1".into()),
            teacher: None,
            start: math_start(d),
            end: math_start(d) + Duration::hours(1),
        })
        .collect();
    s.add_lessons(&lessons).await.unwrap();
    for i in 1..=students {
        let id = format!("s{i}");
        s.create_student(&NewStudent {
            id: id.clone(),
            name: format!("Student {i}"),
            home_campus_id: Some("north".into()),
        })
        .await
        .unwrap();
        s.enroll("math", &id, monday() - Duration::days(7))
            .await
            .unwrap();
        s.purchase(&package(&format!("p{i}"), &id, None, 10, 90))
            .await
            .unwrap();
    }
}

fn package(
    id: &str,
    student: &str,
    campus: Option<&str>,
    lessons: i64,
    expires_days: i64,
) -> NewPackage {
    NewPackage {
        id: id.into(),
        student_id: student.into(),
        campus_id: campus.map(Into::into),
        lessons,
        unit_price_cents: 2500,
        price_paid_cents: None,
        bought_at: monday() - Duration::days(30),
        expires_at: monday() + Duration::days(expires_days),
    }
}

fn deductions(entries: &[StoredEntry], student: &str, lesson: &str) -> Vec<StoredEntry> {
    entries
        .iter()
        .filter(|e| {
            e.entry.student_id == student
                && e.entry.lesson_id.as_deref() == Some(lesson)
                && e.entry.kind == EntryKind::Deduction
        })
        .cloned()
        .collect()
}

async fn concurrent_checkins_deduct_once(s: &Store) {
    world(s, 1, 1).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut ci = CheckIn::new(
                "s1",
                math_start(0) - Duration::minutes(5) + Duration::seconds(i),
                AttendanceSource::Face,
            );
            ci.camera_id = Some(format!("cam-{i}"));
            s.check_in(&ci).await.unwrap()
        }));
    }
    let mut recorded = 0;
    let mut already = 0;
    for t in tasks {
        match t.await.unwrap().outcome {
            CheckInOutcome::Recorded { deduction, .. } => {
                assert!(
                    matches!(deduction, DeductionDecision::FromPackage { ref package_id, units: 100 } if package_id == "p1")
                );
                recorded += 1
            }
            CheckInOutcome::AlreadyRecorded { status, .. } => {
                assert_eq!(status, AttendanceStatus::Present);
                already += 1
            }
            o => panic!("unexpected {o:?}"),
        }
    }
    assert_eq!((recorded, already), (1, 7));
    let entries = s.entries(None).await.unwrap();
    assert_eq!(deductions(&entries, "s1", "M0").len(), 1);
    assert_eq!(
        s.balance("s1", math_start(0))
            .await
            .unwrap()
            .available_units,
        900
    );
    assert_eq!(s.attendance().await.unwrap().len(), 1);
}

/// 10k check-in events (50 students × 20 lessons, many reports per lesson, some unscheduled)
/// applied once in order to school A, and tripled and shuffled to school B of the same database:
/// the ledgers are identical (up to append order and timestamps) and so are the attendance keys.
async fn replay_once_vs_tripled_shuffled_is_identical(a: &Store) {
    let b = a
        .create_school("beta", "Beta", 0, &SchoolPolicy::default())
        .await
        .unwrap();
    // school C: the same tripled, shuffled events through the group-commit writer
    let c = a
        .create_school("gamma", "Gamma", 0, &SchoolPolicy::default())
        .await
        .unwrap();
    let (students, days) = (50usize, 20i64);
    for s in [a, &b, &c] {
        world(s, days, 0).await;
        for i in 1..=students {
            let id = format!("s{i}");
            s.create_student(&NewStudent {
                id: id.clone(),
                name: id.clone(),
                home_campus_id: None,
            })
            .await
            .unwrap();
            s.enroll("math", &id, monday()).await.unwrap();
            s.purchase(&package(&format!("p{i}"), &id, None, days + 1, 365))
                .await
                .unwrap();
            s.purchase(&package(&format!("old{i}"), &id, None, 5, -1))
                .await
                .unwrap();
            s.purchase(&package(&format!("south{i}"), &id, Some("south"), 5, 10))
                .await
                .unwrap();
        }
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let events: Vec<CheckIn> = (0..10_000)
        .map(|k| {
            let st = rng.gen_range(1..=students);
            let d = rng.gen_range(0..days);
            // mostly inside [start − 15 min, end], some outside any window
            let off = if rng.gen_bool(0.9) {
                rng.gen_range(-15 * 60..=3600)
            } else {
                rng.gen_range(-8 * 3600..-20 * 60)
            };
            let mut ci = CheckIn::new(
                &format!("s{st}"),
                math_start(d) + Duration::seconds(off),
                AttendanceSource::Face,
            );
            ci.event_key = Some(format!("ev{k}"));
            ci
        })
        .collect();
    let mut tripled: Vec<CheckIn> = events
        .iter()
        .flat_map(|e| [e.clone(), e.clone(), e.clone()])
        .collect();
    tripled.shuffle(&mut rng);
    /// Applies `evs` from 8 concurrent tasks, one transaction per check-in (`Store`) or
    /// through the group-commit writer (`GroupCommit`).
    #[derive(Clone)]
    enum Writer {
        Each(Store),
        Grouped(GroupCommit),
    }
    async fn apply(w: Writer, evs: Vec<CheckIn>) {
        let chunks: Vec<Vec<CheckIn>> = evs
            .chunks(evs.len().div_ceil(8))
            .map(|c| c.to_vec())
            .collect();
        let mut tasks = Vec::new();
        for c in chunks {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                for e in c {
                    match &w {
                        Writer::Each(s) => s.check_in(&e).await.unwrap(),
                        Writer::Grouped(g) => g.check_in(e).await.unwrap(),
                    };
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
    // school A: in order, one task (the reference order)
    for e in &events {
        a.check_in(e).await.unwrap();
    }
    apply(Writer::Each(b.clone()), tripled.clone()).await;
    let (g, writer) = GroupCommit::spawn(c.clone(), 32, 64);
    apply(Writer::Grouped(g), tripled).await;
    writer.await.unwrap();
    let proj = |es: Vec<StoredEntry>| -> Vec<Entry> {
        let mut v: Vec<Entry> = es.into_iter().map(|e| e.entry).collect();
        v.sort();
        v
    };
    let ea = proj(a.entries(None).await.unwrap());
    let eb = proj(b.entries(None).await.unwrap());
    let ec = proj(c.entries(None).await.unwrap());
    assert!(ea.iter().filter(|e| e.kind == EntryKind::Deduction).count() > 500);
    assert_eq!(ea, eb);
    assert_eq!(ea, ec, "group commit changed the ledger");
    assert_eq!(
        c.checkin_events(100_000).await.unwrap().len(),
        events.len(),
        "each event stored once"
    );
    let keys = |v: Vec<(String, String, AttendanceStatus)>| {
        v.into_iter()
            .map(|(s, l, _)| (s, l))
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        keys(a.attendance().await.unwrap()),
        keys(b.attendance().await.unwrap())
    );
    assert_eq!(
        keys(a.attendance().await.unwrap()),
        keys(c.attendance().await.unwrap())
    );
    // at most one deduction per (student, lesson), never from the expired or south packages
    let mut seen = BTreeSet::new();
    for e in ea.iter().filter(|e| e.kind == EntryKind::Deduction) {
        assert!(seen.insert((e.student_id.clone(), e.lesson_id.clone())));
        assert!(e.package_id.as_deref().unwrap().starts_with('p'), "{e:?}");
    }
}

async fn week_of_absences_one_alert_per_streak(s: &Store) {
    world(s, 10, 3).await;
    // s1: absent M0 M1 M2, present M3, absent M4 M5 M6 M7, present M8 M9 → two streaks
    // s2: always present; s3: absent M0 M1, approved leave for M2 (excused), absent M3 → one
    // streak (excused neither extends nor breaks)... then present
    let present: &[(&str, &[i64])] = &[
        ("s1", &[3, 8, 9]),
        ("s2", &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        ("s3", &[4, 5, 6, 7, 8, 9]),
    ];
    s.request_leave(
        "s3",
        "M2",
        math_start(2) - Duration::days(3),
        true,
        Some("holiday"),
    )
    .await
    .unwrap();
    for d in 0..10 {
        for (st, days) in present {
            if days.contains(&d) {
                s.check_in(&CheckIn::new(st, math_start(d), AttendanceSource::Qr))
                    .await
                    .unwrap();
            }
        }
        // before end + grace nothing is finalised
        let r = s
            .finalize(math_start(d) + Duration::minutes(70))
            .await
            .unwrap();
        assert_eq!(r.lessons_finalized, 0);
        s.finalize(math_start(d) + Duration::minutes(75))
            .await
            .unwrap();
        // running it again changes nothing
        let again = s
            .finalize(math_start(d) + Duration::minutes(80))
            .await
            .unwrap();
        assert_eq!(
            (again.absent, again.excused, again.charged_units),
            (0, 0, 0)
        );
    }
    let alerts = s.alerts(None).await.unwrap();
    let streaks: BTreeSet<(String, String)> = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::AbsenceStreak)
        .map(|a| (a.student_id.clone(), a.dedup_key.clone()))
        .collect();
    let expect: BTreeSet<(String, String)> = [
        ("s1".to_string(), "streak:s1:math:M0".to_string()),
        ("s1".to_string(), "streak:s1:math:M4".to_string()),
        ("s3".to_string(), "streak:s3:math:M0".to_string()),
    ]
    .into_iter()
    .collect();
    assert_eq!(streaks, expect);
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a.kind == AlertKind::AbsenceStreak)
            .count(),
        3
    );
    let att = s.attendance().await.unwrap();
    assert!(att.contains(&("s3".into(), "M2".into(), AttendanceStatus::Excused)));
    assert_eq!(
        att.iter()
            .filter(|a| a.0 == "s1" && a.2 == AttendanceStatus::Absent)
            .count(),
        7
    );
    let entries = s.entries(Some("s3")).await.unwrap();
    assert!(
        deductions(&entries, "s3", "M2").is_empty(),
        "excused with notice is free"
    );
    assert_eq!(
        deductions(&entries, "s3", "M0").len(),
        1,
        "unexcused absence deducts per policy"
    );
    // s1: 10 lessons, every one charged (7 absences full + 3 present) → balance 0
    assert_eq!(
        s.balance("s1", math_start(9))
            .await
            .unwrap()
            .available_units,
        0
    );
    // alert life cycle
    let id = alerts[0].id;
    s.set_alert_state(id, AlertState::Acknowledged, "staff")
        .await
        .unwrap();
    assert_eq!(
        s.alerts(Some(AlertState::Acknowledged))
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn insufficient_balance_alerts_without_deduction(s: &Store) {
    world(s, 1, 0).await;
    s.create_student(&NewStudent {
        id: "s9".into(),
        name: "Nine".into(),
        home_campus_id: None,
    })
    .await
    .unwrap();
    s.enroll("math", "s9", monday()).await.unwrap();
    let r = s
        .check_in(&CheckIn::new("s9", math_start(0), AttendanceSource::Manual))
        .await
        .unwrap();
    assert_eq!(
        r.outcome,
        CheckInOutcome::Recorded {
            lesson_id: "M0".into(),
            class_id: "math".into(),
            status: AttendanceStatus::Present,
            deduction: DeductionDecision::Insufficient {
                reason: InsufficientReason::NoPackage,
                units: 100
            }
        }
    );
    assert!(
        r.alerts.contains(&"zero:s9:M0".to_string()),
        "{:?}",
        r.alerts
    );
    assert!(s.entries(Some("s9")).await.unwrap().is_empty());
    assert_eq!(
        s.alerts(Some(AlertState::Open))
            .await
            .unwrap()
            .iter()
            .filter(|a| a.kind == AlertKind::ZeroBalanceCheckin)
            .count(),
        1
    );
    // unknown student is an error, not a panic
    assert!(matches!(
        s.check_in(&CheckIn::new(
            "nobody",
            math_start(0),
            AttendanceSource::Manual
        ))
        .await,
        Err(LedgerError::NotFound {
            entity: "student",
            ..
        })
    ));
}

async fn overdraft_when_school_allows(s: &Store) {
    world(s, 3, 0).await;
    s.create_student(&NewStudent {
        id: "s9".into(),
        name: "Nine".into(),
        home_campus_id: None,
    })
    .await
    .unwrap();
    s.enroll("math", "s9", monday()).await.unwrap();
    let r = s
        .check_in(&CheckIn::new("s9", math_start(0), AttendanceSource::Manual))
        .await
        .unwrap();
    assert!(
        matches!(
            r.outcome,
            CheckInOutcome::Recorded {
                deduction: DeductionDecision::Overdraft { units: 100 },
                ..
            }
        ),
        "{r:?}"
    );
    assert_eq!(r.balance_units, -100);
    // limit of one lesson reached
    let r = s
        .check_in(&CheckIn::new("s9", math_start(1), AttendanceSource::Manual))
        .await
        .unwrap();
    assert!(
        matches!(
            r.outcome,
            CheckInOutcome::Recorded {
                deduction: DeductionDecision::Insufficient { .. },
                ..
            }
        ),
        "{r:?}"
    );
    let e = s.entries(Some("s9")).await.unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].entry.package_id.clone(), e[0].entry.units),
        (None, -100)
    );
}

async fn expired_and_other_campus_packages_are_not_used(s: &Store) {
    world(s, 2, 0).await;
    s.create_student(&NewStudent {
        id: "s9".into(),
        name: "Nine".into(),
        home_campus_id: None,
    })
    .await
    .unwrap();
    s.enroll("math", "s9", monday()).await.unwrap();
    s.purchase(&package("old", "s9", None, 5, 0)).await.unwrap(); // expires Monday 00:00
    s.purchase(&package("south", "s9", Some("south"), 5, 90))
        .await
        .unwrap();
    let r = s
        .check_in(&CheckIn::new("s9", math_start(0), AttendanceSource::Face))
        .await
        .unwrap();
    assert!(
        matches!(
            r.outcome,
            CheckInOutcome::Recorded {
                deduction: DeductionDecision::Insufficient {
                    reason: InsufficientReason::Expired,
                    ..
                },
                ..
            }
        ),
        "{r:?}"
    );
    assert_eq!(
        s.balance("s9", math_start(0))
            .await
            .unwrap()
            .available_units,
        500,
        "only the south package is available"
    );
    assert!(s
        .entries(Some("s9"))
        .await
        .unwrap()
        .iter()
        .all(|e| e.entry.kind == EntryKind::Purchase));
    // a north package bought later is used for the next lesson
    s.purchase(&package("north", "s9", Some("north"), 5, 90))
        .await
        .unwrap();
    let r = s
        .check_in(&CheckIn::new("s9", math_start(1), AttendanceSource::Face))
        .await
        .unwrap();
    assert!(
        matches!(r.outcome, CheckInOutcome::Recorded { deduction: DeductionDecision::FromPackage { ref package_id, .. }, .. } if package_id == "north")
    );
    // purchase of an already-expired package is refused
    assert!(s
        .purchase(&NewPackage {
            expires_at: monday() - Duration::days(40),
            ..package("bad", "s9", None, 5, 0)
        })
        .await
        .is_err());
}

async fn late_checkin_and_expiring_first(s: &Store) {
    world(s, 2, 1).await;
    s.purchase(&package("soon", "s1", Some("north"), 2, 20))
        .await
        .unwrap();
    let r = s
        .check_in(&CheckIn::new(
            "s1",
            math_start(0) + Duration::minutes(12),
            AttendanceSource::Face,
        ))
        .await
        .unwrap();
    match r.outcome {
        CheckInOutcome::Recorded {
            status, deduction, ..
        } => {
            assert_eq!(status, AttendanceStatus::Late);
            assert_eq!(
                deduction,
                DeductionDecision::FromPackage {
                    package_id: "soon".into(),
                    units: 100
                }
            );
        }
        o => panic!("{o:?}"),
    }
    let r = s
        .check_in(&CheckIn::new(
            "s1",
            math_start(1) - Duration::minutes(14),
            AttendanceSource::Face,
        ))
        .await
        .unwrap();
    assert!(matches!(
        r.outcome,
        CheckInOutcome::Recorded {
            status: AttendanceStatus::Present,
            ..
        }
    ));
    assert_eq!(
        s.balance("s1", math_start(1))
            .await
            .unwrap()
            .packages
            .iter()
            .find(|p| p.package.package_id == "soon")
            .unwrap()
            .package
            .balance_units,
        0
    );
    // expiring alert raised for the 20-day package? it had lessons left within 14 days? no:
    // expires on day 20, check-ins on day 0/1 → 19–20 days away → no alert yet.
    assert!(s
        .alerts(None)
        .await
        .unwrap()
        .iter()
        .all(|a| a.kind != AlertKind::ExpiringPackage));
    // finalize at day 80: p1 (expires day 90) has lessons left → one expiring alert
    s.finalize(monday() + Duration::days(80)).await.unwrap();
    s.finalize(monday() + Duration::days(81)).await.unwrap();
    let exp: Vec<_> = s
        .alerts(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.kind == AlertKind::ExpiringPackage)
        .collect();
    assert_eq!(exp.len(), 1);
    assert_eq!(exp[0].package_id.as_deref(), Some("p1"));
}

async fn unscheduled_visit_and_duplicate_event(s: &Store) {
    world(s, 1, 1).await;
    let mut ci = CheckIn::new(
        "s1",
        math_start(0) - Duration::hours(3),
        AttendanceSource::Face,
    );
    ci.camera_id = Some("cam-n".into());
    assert_eq!(
        s.check_in(&ci).await.unwrap().outcome,
        CheckInOutcome::Unscheduled
    );
    assert_eq!(
        s.check_in(&ci).await.unwrap().outcome,
        CheckInOutcome::DuplicateEvent
    );
    // one minute after the end: outside the window
    let after = CheckIn::new(
        "s1",
        math_start(0) + Duration::minutes(61),
        AttendanceSource::Face,
    );
    assert_eq!(
        s.check_in(&after).await.unwrap().outcome,
        CheckInOutcome::Unscheduled
    );
    assert!(s
        .entries(Some("s1"))
        .await
        .unwrap()
        .iter()
        .all(|e| e.entry.kind == EntryKind::Purchase));
    assert!(s.attendance().await.unwrap().is_empty());
}

async fn reversal_then_rededuction(s: &Store) {
    world(s, 1, 1).await;
    s.check_in(&CheckIn::new("s1", math_start(0), AttendanceSource::Face))
        .await
        .unwrap();
    assert_eq!(
        s.balance("s1", math_start(0))
            .await
            .unwrap()
            .available_units,
        900
    );
    let rev = s
        .reverse_lesson("s1", "M0", "staff", "wrong student")
        .await
        .unwrap();
    assert_eq!(rev.len(), 1);
    assert_eq!(rev[0].units, 100);
    assert_eq!(
        s.balance("s1", math_start(0))
            .await
            .unwrap()
            .available_units,
        1000
    );
    assert!(
        s.reverse_lesson("s1", "M0", "staff", "again")
            .await
            .unwrap()
            .is_empty(),
        "reversal is idempotent"
    );
    let d = s.charge_lesson("s1", "M0", 100, "staff").await.unwrap();
    assert_eq!(
        d,
        DeductionDecision::FromPackage {
            package_id: "p1".into(),
            units: 100
        }
    );
    assert_eq!(
        s.charge_lesson("s1", "M0", 100, "staff").await.unwrap(),
        DeductionDecision::Nothing
    );
    assert_eq!(
        s.balance("s1", math_start(0))
            .await
            .unwrap()
            .available_units,
        900
    );
    let e = s.entries(Some("s1")).await.unwrap();
    let keys: Vec<&str> = e.iter().map(|e| e.entry.idempotency_key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "purchase:p1",
            "deduct:s1:M0",
            "reverse:deduct:s1:M0",
            "deduct:s1:M0:r1"
        ]
    );
    // attendance corrections keep before/after in the audit log
    let audits = s.audit_count().await.unwrap();
    assert_eq!(
        s.set_attendance_status("s1", "M0", AttendanceStatus::LeftEarly, "reviewer")
            .await
            .unwrap(),
        AttendanceStatus::Present
    );
    assert_eq!(s.audit_count().await.unwrap(), audits + 1);
    assert_eq!(
        s.attendance().await.unwrap()[0].2,
        AttendanceStatus::LeftEarly
    );
    assert!(matches!(
        s.set_attendance_status("s1", "nope", AttendanceStatus::Absent, "reviewer")
            .await,
        Err(LedgerError::NotFound { .. })
    ));
    // history is never edited: the original deduction is still there
    assert_eq!(deductions(&e, "s1", "M0").len(), 2);
    assert!(s.audit_count().await.unwrap() >= 10);
}

/// The school's starting rule (keep 10 %, no refund from half used, fee 3.00) as its refund
/// table: asked by one person, booked when another approves.
async fn refund_rule_applied_and_recorded(s: &Store) {
    world(s, 6, 3).await;
    let refund = |student: &'static str, package: &'static str| async move {
        let r = s
            .request_refund(student, package, "leaving", PaymentMethod::Cash, "desk")
            .await?;
        s.decide_refund(r.id, true, "manager", None).await
    };
    // s1: before the first lesson → keep 10 % of 250.00, fee 3.00
    let r = refund("s1", "p1").await.unwrap();
    assert_eq!(
        (r.quote.rule, r.quote.refund_cents, r.quote.units),
        (RefundCase::BeforeFirstLesson, 25_000 - 2_500 - 300, 1000)
    );
    assert_eq!(s.balance("s1", monday()).await.unwrap().available_units, 0);
    assert!(matches!(
        refund("s1", "p1").await,
        Err(LedgerError::NotRefundable(..))
    ));
    // s2: 3 lessons used → 175.00 not yet earned, keep 10 %, fee 3.00
    for d in 0..3 {
        s.check_in(&CheckIn::new("s2", math_start(d), AttendanceSource::Face))
            .await
            .unwrap();
    }
    let r = refund("s2", "p2").await.unwrap();
    assert_eq!(
        (r.quote.rule, r.quote.refund_cents, r.refund_cents),
        (RefundCase::Remaining, 15_450, Some(15_450))
    );
    let e = s.entries(Some("s2")).await.unwrap();
    let booked = e
        .iter()
        .find(|e| e.entry.kind == EntryKind::Refund)
        .unwrap();
    assert_eq!(
        (booked.entry.units, booked.entry.amount_cents),
        (-700, -15_450)
    );
    // s3: 5 lessons used (50%) → no refund, nothing recorded
    for d in 0..5 {
        s.check_in(&CheckIn::new("s3", math_start(d), AttendanceSource::Face))
            .await
            .unwrap();
    }
    assert!(matches!(
        refund("s3", "p3").await,
        Err(LedgerError::NotRefundable(..))
    ));
    assert!(s
        .entries(Some("s3"))
        .await
        .unwrap()
        .iter()
        .all(|e| e.entry.kind != EntryKind::Refund));
}

async fn csv_import_all_or_nothing(s: &Store) {
    s.create_campus("north", "North").await.unwrap();
    let good = "id,name,home_campus\nk1,Kim,north\nk2,Lee,\n";
    assert_eq!(
        s.import_csv(ImportKind::Students, good.as_bytes())
            .await
            .unwrap()
            .rows,
        2
    );
    // parse error on line 3 (whitespace in id) → nothing imported, error names line and field
    let bad = "id,name,home_campus\nk3,Ana,north\nbad id,Bo,north\nk4,,north\n";
    match s.import_csv(ImportKind::Students, bad.as_bytes()).await {
        Err(LedgerError::Import(errs)) => {
            assert!(
                errs.iter().any(|e| e.line == 3 && e.field == "id"),
                "{errs:?}"
            );
            assert!(
                errs.iter().any(|e| e.line == 4 && e.field == "name"),
                "{errs:?}"
            );
        }
        r => panic!("{r:?}"),
    }
    // database-level refusal (unknown campus on line 3) → rollback of line 2 too
    let bad = "id,name,home_campus\nk3,Ana,north\nk5,Bo,west\n";
    match s.import_csv(ImportKind::Students, bad.as_bytes()).await {
        Err(LedgerError::Import(errs)) => {
            assert_eq!((errs[0].line, errs[0].field.as_str()), (3, "home_campus"))
        }
        r => panic!("{r:?}"),
    }
    // duplicate id
    let dup = "id,name\nk6,Six\nk1,Again\n";
    match s.import_csv(ImportKind::Students, dup.as_bytes()).await {
        Err(LedgerError::Import(errs)) => {
            assert_eq!((errs[0].line, errs[0].field.as_str()), (3, "id"))
        }
        r => panic!("{r:?}"),
    }
    assert!(matches!(
        s.balance("k3", monday()).await,
        Err(LedgerError::NotFound { .. })
    ));
    assert!(matches!(
        s.balance("k6", monday()).await,
        Err(LedgerError::NotFound { .. })
    ));
    // the other kinds
    let classes = "id,course,name,campus,teacher,absence_unexcused,notice_hours\nart,Art,Art 1,north,mr-o,half,48\n";
    s.import_csv(ImportKind::Classes, classes.as_bytes())
        .await
        .unwrap();
    let tt = "lesson_id,class_id,start,end\nA1,art,2026-01-05T10:00:00Z,2026-01-05T11:00:00Z\nA2,art,2026-01-06T10:00:00+01:00,2026-01-06T11:00:00+01:00\n";
    s.import_csv(ImportKind::Timetable, tt.as_bytes())
        .await
        .unwrap();
    s.import_csv(
        ImportKind::Enrollments,
        "class_id,student_id\nart,k1\n".as_bytes(),
    )
    .await
    .unwrap();
    s.import_csv(
        ImportKind::Guardians,
        "id,student_id,name,phone,email,language,notify\ng1,k1,Mum,+100,mum@example.com,fr,sms\n"
            .as_bytes(),
    )
    .await
    .unwrap();
    let pk = "id,student_id,lessons,unit_price_cents,bought_at,expires_at\npk1,k1,8,3000,2026-01-01T00:00:00Z,2026-06-01T00:00:00Z\npk2,k2,x,3000,2026-01-01T00:00:00Z,2025-06-01T00:00:00Z\n";
    match s.import_csv(ImportKind::Packages, pk.as_bytes()).await {
        Err(LedgerError::Import(errs)) => {
            assert!(
                errs.iter().any(|e| e.line == 3 && e.field == "lessons"),
                "{errs:?}"
            );
            assert!(
                errs.iter().any(|e| e.line == 3 && e.field == "expires_at"),
                "{errs:?}"
            );
        }
        r => panic!("{r:?}"),
    }
    assert_eq!(s.balance("k1", monday()).await.unwrap().available_units, 0);
    let pk = "id,student_id,lessons,unit_price_cents,bought_at,expires_at\npk1,k1,8,3000,2026-01-01T00:00:00Z,2026-06-01T00:00:00Z\n";
    s.import_csv(ImportKind::Packages, pk.as_bytes())
        .await
        .unwrap();
    let r = s
        .check_in(&CheckIn::new(
            "k1",
            Utc.with_ymd_and_hms(2026, 1, 6, 9, 0, 0).unwrap(),
            AttendanceSource::Qr,
        ))
        .await
        .unwrap();
    assert!(
        matches!(r.outcome, CheckInOutcome::Recorded { ref lesson_id, status: AttendanceStatus::Present, .. } if lesson_id == "A2"),
        "{r:?}"
    );
    assert_eq!(r.balance_units, 700);
}

async fn reports_attendance_consumption_outstanding_heatmap(s: &Store) {
    world(s, 4, 2).await;
    for d in 0..4 {
        s.check_in(&CheckIn::new("s1", math_start(d), AttendanceSource::Face))
            .await
            .unwrap();
    }
    s.check_in(&CheckIn::new("s2", math_start(0), AttendanceSource::Face))
        .await
        .unwrap();
    s.finalize(math_start(3) + Duration::hours(2))
        .await
        .unwrap();
    let (from, to) = (monday(), monday() + Duration::days(7));
    let att = s.report_attendance(from, to).await.unwrap();
    let s1 = att.per_student.iter().find(|r| r.key == "s1").unwrap();
    assert_eq!((s1.present, s1.rate_bp), (4, 10_000));
    let s2 = att.per_student.iter().find(|r| r.key == "s2").unwrap();
    assert_eq!((s2.present, s2.absent, s2.rate_bp), (1, 3, 2_500));
    assert_eq!(att.per_class[0].rate_bp, 5 * 10_000 / 8);
    let c = s.report_consumption(from, to).await.unwrap();
    assert_eq!(
        (c.per_class[0].units, c.per_class[0].revenue_cents),
        (800, 8 * 2500)
    );
    assert_eq!(c.per_teacher[0].key, "ms-lee");
    assert_eq!(c.per_campus[0].key, "north");
    let o = s.report_outstanding(to).await.unwrap();
    assert_eq!(
        o.iter()
            .map(|r| (r.student_id.as_str(), r.units, r.value_cents))
            .collect::<Vec<_>>(),
        [("s1", 600, 15_000), ("s2", 600, 15_000)]
    );
    let h = s.report_heatmap(from, to).await.unwrap();
    // school is UTC+1: 16:00 UTC → 17h local; Monday has 2 check-ins
    assert_eq!(
        h.iter().find(|c| c.weekday == 0).map(|c| (c.hour, c.count)),
        Some((17, 2))
    );
    assert_eq!(h.iter().map(|c| c.count).sum::<u64>(), 5);
}

async fn low_balance_alert_once_per_episode(s: &Store) {
    world(s, 6, 0).await;
    s.create_student(&NewStudent {
        id: "s1".into(),
        name: "One".into(),
        home_campus_id: None,
    })
    .await
    .unwrap();
    s.enroll("math", "s1", monday()).await.unwrap();
    s.purchase(&package("a", "s1", None, 4, 90)).await.unwrap();
    let mut raised = Vec::new();
    for d in 0..4 {
        raised.extend(
            s.check_in(&CheckIn::new("s1", math_start(d), AttendanceSource::Face))
                .await
                .unwrap()
                .alerts,
        );
    }
    // balance 3 → 2 (alert) → 1 → 0 : one alert for the episode
    assert_eq!(
        raised.iter().filter(|k| k.starts_with("low:")).count(),
        1,
        "{raised:?}"
    );
    s.purchase(&package("b", "s1", None, 3, 90)).await.unwrap();
    let r = s
        .check_in(&CheckIn::new("s1", math_start(4), AttendanceSource::Face))
        .await
        .unwrap();
    assert_eq!(
        r.alerts.iter().filter(|k| k.starts_with("low:")).count(),
        1,
        "new episode after a purchase"
    );
    assert_eq!(
        s.alerts(None)
            .await
            .unwrap()
            .iter()
            .filter(|a| a.kind == AlertKind::LowBalance)
            .count(),
        2
    );
}

/// 8 concurrent check-ins of one student for 8 different lessons with 2 lessons bought: exactly
/// two deductions, the package never goes negative (the per-student lock, not read-then-write).
async fn concurrent_checkins_for_different_lessons_never_overdraw(s: &Store) {
    world(s, 8, 0).await;
    s.create_student(&NewStudent {
        id: "s1".into(),
        name: "One".into(),
        home_campus_id: None,
    })
    .await
    .unwrap();
    s.enroll("math", "s1", monday()).await.unwrap();
    s.purchase(&package("two", "s1", None, 2, 90))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for d in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.check_in(&CheckIn::new("s1", math_start(d), AttendanceSource::Face))
                .await
                .unwrap()
        }));
    }
    let mut paid = 0;
    let mut unpaid = 0;
    for t in tasks {
        match t.await.unwrap().outcome {
            CheckInOutcome::Recorded {
                deduction: DeductionDecision::FromPackage { .. },
                ..
            } => paid += 1,
            CheckInOutcome::Recorded {
                deduction:
                    DeductionDecision::Insufficient {
                        reason: InsufficientReason::Exhausted,
                        ..
                    },
                ..
            } => unpaid += 1,
            o => panic!("{o:?}"),
        }
    }
    assert_eq!((paid, unpaid), (2, 6));
    let b = s.balance("s1", monday()).await.unwrap();
    assert_eq!(b.packages[0].package.balance_units, 0);
    assert_eq!(
        s.alerts(None)
            .await
            .unwrap()
            .iter()
            .filter(|a| a.kind == AlertKind::ZeroBalanceCheckin)
            .count(),
        6
    );
}

/// A make-up booking books one lesson of another class; consent records are append-only with the
/// latest decision winning; a refused change leaves no audit row (same transaction).
async fn makeup_booking_consent_and_audit_rollback(s: &Store) {
    world(s, 2, 2).await;
    s.create_class(&NewClass {
        id: "art".into(),
        course: "Art".into(),
        name: "Art".into(),
        campus_id: "south".into(),
        teacher: "mr-o".into(),
        policy: ClassPolicy::default(),
        capacity: None,
        room_id: None,
        kind: Default::default(),
    })
    .await
    .unwrap();
    let art = |d: i64| monday() + Duration::days(d) + Duration::hours(10);
    s.add_lessons(&[
        NewLesson {
            id: "A0".into(),
            class_id: "art".into(),
            room_id: None,
            teacher: None,
            start: art(0),
            end: art(0) + Duration::hours(1),
        },
        NewLesson {
            id: "A1".into(),
            class_id: "art".into(),
            room_id: None,
            teacher: None,
            start: art(1),
            end: art(1) + Duration::hours(1),
        },
    ])
    .await
    .unwrap();
    // not booked: a visit
    assert_eq!(
        s.check_in(&CheckIn::new("s1", art(0), AttendanceSource::Qr))
            .await
            .unwrap()
            .outcome,
        CheckInOutcome::Unscheduled
    );
    s.book_makeup("s1", "A1", monday()).await.unwrap();
    s.book_makeup("s2", "A1", monday()).await.unwrap();
    let r = s
        .check_in(&CheckIn::new("s1", art(1), AttendanceSource::Qr))
        .await
        .unwrap();
    assert!(
        matches!(r.outcome, CheckInOutcome::Recorded { ref lesson_id, deduction: DeductionDecision::FromPackage { .. }, .. } if lesson_id == "A1"),
        "{r:?}"
    );
    let f = s.finalize(art(1) + Duration::hours(2)).await.unwrap();
    // s2 missed the make-up (M0 is finalised too; M1, 16:00 on day 1, is not due yet)
    assert!(s.attendance().await.unwrap().contains(&(
        "s2".into(),
        "A1".into(),
        AttendanceStatus::Absent
    )));
    assert!(!s
        .attendance()
        .await
        .unwrap()
        .iter()
        .any(|a| a.0 == "s1" && a.1 == "A0"));
    assert!(f.absent >= 1);
    // consent
    assert_eq!(s.consent("s1", "face_recognition").await.unwrap(), None);
    s.record_consent("s1", "face_recognition", true, "guardian:g1", monday())
        .await
        .unwrap();
    s.record_consent(
        "s1",
        "face_recognition",
        false,
        "guardian:g1",
        monday() + Duration::days(1),
    )
    .await
    .unwrap();
    assert_eq!(
        s.consent("s1", "face_recognition").await.unwrap(),
        Some(false)
    );
    // a refused import writes nothing, audit included
    let before = s.audit_count().await.unwrap();
    let bad = "id,name\nz1,Zed\nz2,Zed\nz1,Again\n";
    assert!(matches!(
        s.import_csv(ImportKind::Students, bad.as_bytes()).await,
        Err(LedgerError::Import(_))
    ));
    assert_eq!(s.audit_count().await.unwrap(), before);
    // a check-in writes its audit row with it
    s.check_in(&CheckIn::new("s2", math_start(1), AttendanceSource::Face))
        .await
        .unwrap();
    assert_eq!(s.audit_count().await.unwrap(), before + 1);
}

/// `check_in_batch` answers each check-in as `check_in` would have, in order: a repeated event
/// inside the batch and an already stored one are duplicates, a second camera's report of the
/// same lesson is already recorded, and an unknown student fails alone (the batch falls back to
/// one transaction each, so the others still commit).
async fn batch_results_match_one_by_one_and_isolate_failures(s: &Store) {
    world(s, 2, 3).await;
    let at = |d: i64, min: i64| math_start(d) + Duration::minutes(min);
    let ev = |student: &str, t: DateTime<Utc>, key: &str| {
        let mut ci = CheckIn::new(student, t, AttendanceSource::Face);
        ci.event_key = Some(key.into());
        ci
    };
    s.check_in(&ev("s3", at(0, -2), "stored")).await.unwrap();
    let batch = vec![
        ev("s1", at(0, -5), "a"),
        ev("s2", at(0, 20), "b"), // late
        ev("s1", at(0, -4), "a"), // same event again
        ev("s1", at(0, -3), "c"), // another camera, same lesson
        ev("s3", at(0, -2), "stored"),
        ev("s2", at(0, -600), "d"), // no lesson in the window
    ];
    let r = s.check_in_batch(&batch).await;
    let outcomes: Vec<CheckInOutcome> = r.into_iter().map(|r| r.unwrap().outcome).collect();
    assert!(
        matches!(
            &outcomes[0],
            CheckInOutcome::Recorded {
                status: AttendanceStatus::Present,
                deduction: DeductionDecision::FromPackage { .. },
                ..
            }
        ),
        "{:?}",
        outcomes[0]
    );
    assert!(
        matches!(
            &outcomes[1],
            CheckInOutcome::Recorded {
                status: AttendanceStatus::Late,
                ..
            }
        ),
        "{:?}",
        outcomes[1]
    );
    assert_eq!(outcomes[2], CheckInOutcome::DuplicateEvent);
    assert!(
        matches!(&outcomes[3], CheckInOutcome::AlreadyRecorded { .. }),
        "{:?}",
        outcomes[3]
    );
    assert_eq!(outcomes[4], CheckInOutcome::DuplicateEvent);
    assert_eq!(outcomes[5], CheckInOutcome::Unscheduled);
    let entries = s.entries(None).await.unwrap();
    for st in ["s1", "s2", "s3"] {
        assert_eq!(deductions(&entries, st, "M0").len(), 1, "{st}");
    }
    // an unknown student in the batch: only that one fails
    let batch = vec![
        ev("s1", at(1, -5), "e"),
        ev("nobody", at(1, -5), "f"),
        ev("s2", at(1, -5), "g"),
    ];
    let r = s.check_in_batch(&batch).await;
    assert!(
        matches!(
            &r[1],
            Err(LedgerError::NotFound {
                entity: "student",
                ..
            })
        ),
        "{:?}",
        r[1]
    );
    for i in [0, 2] {
        assert!(
            matches!(
                r[i].as_ref().unwrap().outcome,
                CheckInOutcome::Recorded { .. }
            ),
            "{:?}",
            r[i]
        );
    }
    let entries = s.entries(None).await.unwrap();
    assert_eq!(deductions(&entries, "s1", "M1").len(), 1);
    assert_eq!(deductions(&entries, "s2", "M1").len(), 1);
    assert_eq!(s.checkin_events(100).await.unwrap().len(), 7);
    assert_eq!(
        s.balance("s1", at(1, 0)).await.unwrap().available_units,
        800
    );
}

/// A deduction key taken by a row the check-in's reads do not count as this lesson's (a ledger
/// not in the state they implied). A check-in sends its deduction with its other writes; it
/// learns of the key afterwards, rolls back and retries with the deduction first, and is then
/// recorded with nothing deducted, exactly once. A batch holding such a check-in is rolled
/// back and committed one by one: the others are deducted as usual.
mod taken_deduction_key {
    use super::*;
    use rollcall_testkit::ledger::Harness;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite() {
        check(&Harness::sqlite(SchoolPolicy::default()).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres() {
        check(&Harness::postgres(SchoolPolicy::default()).await).await;
    }

    async fn take(h: &Harness, key: &str) {
        h.raw(&format!(
            "INSERT INTO ledger (school_id, student_id, kind, package_id, lesson_id, units, amount_cents, idempotency_key, at, actor, note) \
             VALUES ('acme', 's1', 'adjustment', NULL, NULL, 0, 0, '{key}', 0, 'test', NULL)"
        ))
        .await;
    }

    fn nothing_deducted(o: &CheckInOutcome, lesson: &str) -> bool {
        matches!(o, CheckInOutcome::Recorded { lesson_id, deduction: DeductionDecision::Nothing, .. } if lesson_id == lesson)
    }

    async fn available(s: &Store, student: &str, at: DateTime<Utc>) -> Units {
        s.balance(student, at).await.unwrap().available_units
    }

    async fn check(h: &Harness) {
        let s = &h.store;
        world(s, 2, 2).await;
        take(h, "deduct:s1:M0").await;
        let full = available(s, "s1", math_start(0)).await;
        let ci = CheckIn::new("s1", math_start(0), AttendanceSource::Face);
        let r = s.check_in(&ci).await.unwrap();
        assert!(nothing_deducted(&r.outcome, "M0"), "{:?}", r.outcome);
        assert_eq!(r.balance_units, full);
        assert_eq!(available(s, "s1", math_start(0)).await, full);
        assert_eq!(s.attendance().await.unwrap().len(), 1);
        assert_eq!(
            s.check_in(&ci).await.unwrap().outcome,
            CheckInOutcome::DuplicateEvent
        );

        take(h, "deduct:s1:M1").await;
        let rs = s
            .check_in_batch(&[
                CheckIn::new("s1", math_start(1), AttendanceSource::Face),
                CheckIn::new("s2", math_start(1), AttendanceSource::Face),
            ])
            .await;
        let rs: Vec<CheckInResult> = rs.into_iter().map(Result::unwrap).collect();
        assert!(
            nothing_deducted(&rs[0].outcome, "M1"),
            "{:?}",
            rs[0].outcome
        );
        assert!(
            matches!(
                &rs[1].outcome,
                CheckInOutcome::Recorded {
                    deduction: DeductionDecision::FromPackage { .. },
                    ..
                }
            ),
            "{:?}",
            rs[1].outcome
        );
        assert_eq!(available(s, "s1", math_start(1)).await, full);
        assert_eq!(available(s, "s2", math_start(1)).await, full - 100);
        assert_eq!(s.attendance().await.unwrap().len(), 3);
        let deductions = s
            .entries(None)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.entry.kind == EntryKind::Deduction)
            .count();
        assert_eq!(deductions, 1);
    }
}
