//! Editing the timetable through the store, on SQLite and PostgreSQL (issue 21 item 6): weekly
//! series with an end date skip holidays and never reach into the past or double-book a room or
//! a teacher; cancelling or moving a lesson tells the booked guardians and never touches a
//! lesson whose money has moved; a holiday cancels its day; capacity limits enrollment,
//! make-ups and 1-on-1 slots; a transfer keeps the packages; a class edit carries its teacher
//! and room to the lessons still to come. The school is at UTC+1 (the harness's).

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use rollcall_domain::ledger::*;
use rollcall_domain::timetable::{local_day, local_instant};
use rollcall_ledger::*;

rollcall_testkit::two_backends! {
    a_weekly_series_skips_holidays_and_refuses_the_past_and_clashes,
    a_series_end_moves_both_ways,
    cancelling_and_moving_tell_the_guardians_and_never_touch_recorded_money,
    a_holiday_cancels_the_days_lessons,
    capacity_limits_enrollment_makeups_and_one_on_one_slots,
    a_transfer_keeps_the_packages_and_checks_the_campus,
    editing_a_class_carries_teacher_and_room_to_lessons_to_come,
}

const OFF: i64 = 60;

/// The Monday two weeks ahead (school-local).
fn monday(s: &Store) -> NaiveDate {
    let today = local_day(s.now(), OFF);
    today - Duration::days(i64::from(today.weekday().num_days_from_monday())) + Duration::days(14)
}

fn at(day: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
    local_instant(day, NaiveTime::from_hms_opt(h, m, 0).unwrap(), OFF)
}

fn class(id: &str, campus: &str, teacher: &str) -> NewClass {
    NewClass {
        id: id.into(),
        course: "Maths".into(),
        name: format!("Class {id}"),
        campus_id: campus.into(),
        teacher: teacher.into(),
        policy: ClassPolicy::default(),
        capacity: None,
        room_id: None,
        kind: ClassKind::Group,
    }
}

/// Campuses north (rooms n1, n2) and south (room s1); class math at north with teacher lee in
/// room n1; students a and b enrolled, each with a guardian who takes every notice; notices on.
async fn world(s: &Store) {
    s.create_campus("north", "North").await.unwrap();
    s.create_campus("south", "South").await.unwrap();
    s.create_room("n1", "north", "Room 1").await.unwrap();
    s.create_room("n2", "north", "Room 2").await.unwrap();
    s.create_room("s1", "south", "South 1").await.unwrap();
    let mut k = class("math", "north", "lee");
    k.room_id = Some("n1".into());
    s.create_class(&k).await.unwrap();
    s.set_notify_settings(
        &NotifySettings {
            enabled: true,
            ..Default::default()
        },
        "admin",
    )
    .await
    .unwrap();
    for id in ["a", "b"] {
        s.create_student(&NewStudent {
            id: id.into(),
            name: format!("Student {id}"),
            home_campus_id: Some("north".into()),
        })
        .await
        .unwrap();
        s.add_guardian(&NewGuardian {
            id: format!("g-{id}"),
            student_id: id.into(),
            name: format!("Parent {id}"),
            phone: Some("+8613800000000".into()),
            email: None,
            language: "zh-CN".into(),
            notify_prefs: String::new(),
        })
        .await
        .unwrap();
        s.enroll("math", id, s.now()).await.unwrap();
    }
}

fn series(class: &str, wd: &str, hm: &str, first: NaiveDate, last: NaiveDate) -> NewSeries {
    NewSeries {
        class_id: class.into(),
        weekday: wd.into(),
        start_time: hm.into(),
        minutes: 90,
        first_day: first,
        last_day: last,
        room_id: None,
        teacher: None,
    }
}

fn field_of(e: LedgerError) -> &'static str {
    match e {
        LedgerError::Invalid { field, .. } => field,
        e => panic!("expected a field error, got {e:?}"),
    }
}

/// The lesson-changed notices in the outbox: (student's notice id prefix, change).
async fn changes(s: &Store) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = s
        .outbox(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == NoticeKind::LessonChanged)
        .map(|r| {
            (
                r.params["lesson_id"].as_str().unwrap_or("").to_string()
                    + "/"
                    + r.notice_id.split(':').nth(2).unwrap_or(""),
                r.params["change"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

async fn a_weekly_series_skips_holidays_and_refuses_the_past_and_clashes(s: &Store) {
    world(s).await;
    let mon = monday(s);
    let wed = mon + Duration::days(2);
    s.add_holiday(wed + Duration::days(7), "Sports day")
        .await
        .unwrap();
    // four Wednesdays, the second a holiday
    let c = s
        .create_series(&series(
            "math",
            "wed",
            "16:00",
            mon,
            mon + Duration::days(27),
        ))
        .await
        .unwrap();
    assert_eq!(c.series_id, "math-s1");
    assert_eq!(c.holidays_skipped, vec![wed + Duration::days(7)]);
    assert_eq!(c.added.len(), 3);
    let lessons = s
        .lessons_between(at(mon, 0, 0), at(mon + Duration::days(28), 0, 0))
        .await
        .unwrap();
    assert_eq!(lessons.len(), 3);
    for l in &lessons {
        // 16:00 school time, 90 minutes, the class's room and teacher, tagged with the series
        assert_eq!(
            (l.start + Duration::minutes(OFF)).time(),
            NaiveTime::from_hms_opt(16, 0, 0).unwrap()
        );
        assert_eq!(
            (l.start + Duration::minutes(OFF)).weekday(),
            chrono::Weekday::Wed
        );
        assert_eq!(l.end - l.start, Duration::minutes(90));
        assert_eq!(
            (l.room_id.as_deref(), l.teacher.as_str()),
            (Some("n1"), "lee")
        );
        assert_eq!(l.series_id.as_deref(), Some("math-s1"));
    }
    let v = s.series_of("math").await.unwrap();
    assert_eq!(
        (v.len(), v[0].lessons, v[0].weekday.as_str()),
        (1, 3, "wed")
    );

    // refusals, each naming its field and writing nothing
    let before = s
        .lessons_between(
            at(mon - Duration::days(400), 0, 0),
            at(mon + Duration::days(400), 0, 0),
        )
        .await
        .unwrap()
        .len();
    let past = local_day(s.now(), OFF) - Duration::days(7);
    let e = s
        .create_series(&series("math", "mon", "09:00", past, mon))
        .await
        .unwrap_err();
    assert_eq!(field_of(e), "first_day");
    let e = s
        .create_series(&series("math", "xyz", "09:00", mon, mon))
        .await
        .unwrap_err();
    assert_eq!(field_of(e), "weekday");
    let e = s
        .create_series(&series("math", "mon", "25:00", mon, mon))
        .await
        .unwrap_err();
    assert_eq!(field_of(e), "start_time");
    let e = s
        .create_series(&series(
            "math",
            "mon",
            "09:00",
            mon,
            mon - Duration::days(1),
        ))
        .await
        .unwrap_err();
    assert_eq!(field_of(e), "last_day");
    let mut long = series("math", "mon", "09:00", mon, mon);
    long.minutes = 5;
    assert_eq!(
        field_of(s.create_series(&long).await.unwrap_err()),
        "minutes"
    );
    // another class with the same teacher on Wednesday 16:30: the teacher is taken
    s.create_class(&class("art", "north", "lee")).await.unwrap();
    let e = s
        .create_series(&series("art", "wed", "16:30", mon, mon + Duration::days(6)))
        .await
        .unwrap_err();
    assert_eq!(field_of(e), "teacher");
    // another teacher in math's room n1 at the same time: the room is taken
    let mut k = class("music", "north", "kim");
    k.room_id = Some("n1".into());
    s.create_class(&k).await.unwrap();
    let e = s
        .create_series(&series(
            "music",
            "wed",
            "17:00",
            mon,
            mon + Duration::days(6),
        ))
        .await
        .unwrap_err();
    assert_eq!(field_of(e), "room_id");
    // a room of another campus
    let mut x = series("music", "thu", "17:00", mon, mon + Duration::days(6));
    x.room_id = Some("s1".into());
    assert_eq!(field_of(s.create_series(&x).await.unwrap_err()), "room_id");
    let after = s
        .lessons_between(
            at(mon - Duration::days(400), 0, 0),
            at(mon + Duration::days(400), 0, 0),
        )
        .await
        .unwrap()
        .len();
    assert_eq!(before, after, "a refused series wrote lessons");
    // touching lessons is no clash: math ends 17:30, art starts 17:30 with lee
    s.create_series(&series("art", "wed", "17:30", mon, mon + Duration::days(6)))
        .await
        .unwrap();
}

async fn a_series_end_moves_both_ways(s: &Store) {
    world(s).await;
    let mon = monday(s);
    let c = s
        .create_series(&series(
            "math",
            "mon",
            "16:00",
            mon,
            mon + Duration::days(21),
        ))
        .await
        .unwrap();
    assert_eq!(c.added.len(), 4);
    let last = c.added[3].clone();
    // shorter: the last two Mondays are cancelled, their booked guardians told
    let r = s
        .set_series_end("math-s1", mon + Duration::days(8), "term ends early")
        .await
        .unwrap();
    assert_eq!(r.cancelled, vec![c.added[2].clone(), last.clone()]);
    assert_eq!(
        r.notices, 4,
        "2 lessons × 2 booked students with one guardian each"
    );
    let ch = changes(s).await;
    assert_eq!(ch.len(), 4);
    assert!(ch.iter().all(|(_, what)| what == "cancelled"));
    let cancelled = s
        .cancelled_lessons(at(mon, 0, 0), at(mon + Duration::days(28), 0, 0))
        .await
        .unwrap();
    assert_eq!(cancelled.len(), 2);
    assert_eq!(cancelled[0].reason, "term ends early");
    assert_eq!(
        cancelled[0].students,
        vec!["a".to_string(), "b".to_string()]
    );
    // longer again: the days come back (new lessons), holidays skipped
    s.add_holiday(mon + Duration::days(21), "Founders' day")
        .await
        .unwrap();
    let r = s
        .set_series_end("math-s1", mon + Duration::days(28), "term extended")
        .await
        .unwrap();
    assert_eq!(r.added.len(), 2, "{r:?}");
    assert_eq!(s.series_of("math").await.unwrap()[0].lessons, 4);
    assert_eq!(
        s.series_of("math").await.unwrap()[0].last_day,
        (mon + Duration::days(28)).to_string()
    );
    // a reason is required; the end may not be in the past
    assert_eq!(
        field_of(s.set_series_end("math-s1", mon, " ").await.unwrap_err()),
        "reason"
    );
    assert_eq!(
        field_of(
            s.set_series_end("math-s1", local_day(s.now(), OFF) - Duration::days(1), "x")
                .await
                .unwrap_err()
        ),
        "last_day"
    );
    // the audit log has the series' life
    let audit = s.audit_rows(200).await.unwrap();
    assert!(audit
        .iter()
        .any(|a| a.entity == "series" && a.action == "set_end"));
    assert!(
        audit
            .iter()
            .filter(|a| a.entity == "lesson" && a.action == "cancel")
            .count()
            >= 2
    );
}

async fn cancelling_and_moving_tell_the_guardians_and_never_touch_recorded_money(s: &Store) {
    world(s).await;
    let mon = monday(s);
    let c = s
        .create_series(&series(
            "math",
            "tue",
            "16:00",
            mon,
            mon + Duration::days(13),
        ))
        .await
        .unwrap();
    let (first, second) = (c.added[0].clone(), c.added[1].clone());
    // a leave request on the first lesson goes with it when it is cancelled
    s.request_leave("a", &first, s.now(), true, Some("dentist"))
        .await
        .unwrap();
    let r = s.cancel_lesson(&first, "teacher ill").await.unwrap();
    assert_eq!((r.students.len(), r.leave_dropped, r.notices), (2, 1, 2));
    assert!(matches!(
        s.lesson(&first).await,
        Err(LedgerError::NotFound { .. })
    ));
    assert!(s.leave_request("a", &first).await.is_err());
    assert!(matches!(
        s.cancel_lesson(&first, "again").await,
        Err(LedgerError::NotFound { .. })
    ));
    assert_eq!(
        field_of(s.cancel_lesson(&second, "").await.unwrap_err()),
        "reason"
    );

    // move the second lesson to Thursday 18:00 in room n2
    let thu = mon + Duration::days(10);
    let m = s
        .move_lesson(
            &second,
            &LessonMove {
                start: at(thu, 18, 0),
                end: at(thu, 19, 30),
                room_id: Some("n2".into()),
                teacher: None,
                reason: "room repairs".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!((m.students.len(), m.notices), (2, 2));
    let l = s.lesson(&second).await.unwrap();
    assert_eq!(
        (l.start, l.room_id.as_deref()),
        (at(thu, 18, 0), Some("n2"))
    );
    let moved: Vec<_> = s
        .outbox(None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == NoticeKind::LessonChanged && r.params["change"] == "moved")
        .collect();
    assert_eq!(moved.len(), 2);
    assert_eq!(
        moved[0].params["new_date"].as_str(),
        Some(thu.to_string().as_str())
    );
    assert_eq!(moved[0].params["new_time"].as_str(), Some("18:00"));
    assert_eq!(moved[0].params["lesson_time"].as_str(), Some("16:00"));
    // moving into the past, or ending before it starts, is refused
    let e = s
        .move_lesson(
            &second,
            &LessonMove {
                start: s.now() - Duration::hours(1),
                end: s.now(),
                room_id: None,
                teacher: None,
                reason: "x".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(field_of(e), "start");

    // a lesson running now with a check-in: neither cancelled nor moved, and its deduction
    // stays exactly as it was
    s.purchase(&NewPackage {
        id: "pa".into(),
        student_id: "a".into(),
        campus_id: None,
        lessons: 10,
        unit_price_cents: 10_000,
        price_paid_cents: None,
        bought_at: s.now() - Duration::days(1),
        expires_at: s.now() + Duration::days(100),
    })
    .await
    .unwrap();
    s.add_lesson(&NewLesson {
        id: "now".into(),
        class_id: "math".into(),
        room_id: None,
        teacher: Some("sub".into()),
        start: s.now() - Duration::minutes(10),
        end: s.now() + Duration::minutes(50),
    })
    .await
    .unwrap();
    s.check_in(&CheckIn::new("a", s.now(), AttendanceSource::Manual))
        .await
        .unwrap();
    let bal = s.balance("a", s.now()).await.unwrap().available_units;
    assert_eq!(bal, 9 * UNITS_PER_LESSON);
    assert!(matches!(
        s.cancel_lesson("now", "oops").await,
        Err(LedgerError::Conflict(_))
    ));
    assert!(s
        .move_lesson(
            "now",
            &LessonMove {
                start: at(thu, 20, 0),
                end: at(thu, 21, 0),
                room_id: None,
                teacher: None,
                reason: "x".into(),
            },
        )
        .await
        .is_err());
    assert_eq!(s.balance("a", s.now()).await.unwrap().available_units, bal);
    assert!(s.lesson("now").await.is_ok());
}

async fn a_holiday_cancels_the_days_lessons(s: &Store) {
    world(s).await;
    let mon = monday(s);
    s.create_class(&class("art", "south", "kim")).await.unwrap();
    s.create_series(&series(
        "math",
        "fri",
        "16:00",
        mon,
        mon + Duration::days(13),
    ))
    .await
    .unwrap();
    s.create_series(&series(
        "art",
        "fri",
        "10:00",
        mon,
        mon + Duration::days(13),
    ))
    .await
    .unwrap();
    let fri = mon + Duration::days(4);
    let h = s.add_holiday(fri, "Dragon Boat Festival").await.unwrap();
    assert_eq!(
        h.cancelled,
        vec![
            "art-s1-".to_string() + &fri.format("%Y%m%d").to_string(),
            "math-s1-".to_string() + &fri.format("%Y%m%d").to_string()
        ]
    );
    assert_eq!(h.notices, 2, "math's two booked students; art has none");
    assert!(s
        .lessons_between(at(fri, 0, 0), at(fri + Duration::days(1), 0, 0))
        .await
        .unwrap()
        .is_empty());
    // the next Friday stands
    assert_eq!(
        s.lessons_between(
            at(fri + Duration::days(7), 0, 0),
            at(fri + Duration::days(8), 0, 0)
        )
        .await
        .unwrap()
        .len(),
        2
    );
    assert_eq!(s.holidays(mon).await.unwrap().len(), 1);
    // twice, or in the past: refused
    assert_eq!(
        field_of(s.add_holiday(fri, "again").await.unwrap_err()),
        "day"
    );
    assert_eq!(
        field_of(
            s.add_holiday(local_day(s.now(), OFF) - Duration::days(1), "x")
                .await
                .unwrap_err()
        ),
        "day"
    );
    assert_eq!(
        field_of(
            s.add_holiday(fri + Duration::days(1), "")
                .await
                .unwrap_err()
        ),
        "name"
    );
    // removed: the lessons stay cancelled
    s.remove_holiday(fri).await.unwrap();
    assert!(s.holidays(mon).await.unwrap().is_empty());
    assert!(s
        .lessons_between(at(fri, 0, 0), at(fri + Duration::days(1), 0, 0))
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        s.remove_holiday(fri).await,
        Err(LedgerError::NotFound { .. })
    ));
}

async fn capacity_limits_enrollment_makeups_and_one_on_one_slots(s: &Store) {
    world(s).await;
    let mon = monday(s);
    // math holds 2: a third student is refused, the capacity cannot drop below the enrolled
    let edit = |cap: Option<i64>| ClassEdit {
        name: "Class math".into(),
        teacher: "lee".into(),
        room_id: Some("n1".into()),
        capacity: cap,
        policy: ClassPolicy::default(),
    };
    s.edit_class("math", &edit(Some(2))).await.unwrap();
    assert_eq!(
        field_of(s.edit_class("math", &edit(Some(1))).await.unwrap_err()),
        "capacity"
    );
    assert_eq!(
        field_of(s.edit_class("math", &edit(Some(0))).await.unwrap_err()),
        "capacity"
    );
    s.create_student(&NewStudent {
        id: "c".into(),
        name: "Student c".into(),
        home_campus_id: Some("north".into()),
    })
    .await
    .unwrap();
    assert_eq!(
        field_of(s.enroll("math", "c", s.now()).await.unwrap_err()),
        "class_id"
    );
    // enrolling someone already in is still fine (idempotent)
    s.enroll("math", "a", s.now()).await.unwrap();

    // a 1-on-1 class holds exactly 1; its slot takes one make-up
    let mut one = class("one", "north", "kim");
    one.kind = ClassKind::OneOnOne;
    s.create_class(&one).await.unwrap();
    let mut bad = class("one2", "north", "kim");
    bad.kind = ClassKind::OneOnOne;
    bad.capacity = Some(3);
    assert_eq!(
        field_of(s.create_class(&bad).await.unwrap_err()),
        "capacity"
    );
    assert_eq!(
        s.classes()
            .await
            .unwrap()
            .iter()
            .find(|c| c.id == "one")
            .unwrap()
            .capacity,
        Some(1)
    );
    let math = s
        .create_series(&series("math", "mon", "16:00", mon, mon))
        .await
        .unwrap();
    let missed = math.added[0].clone();
    let slot = s
        .add_slot("one", at(mon + Duration::days(2), 10, 0), 60, None)
        .await
        .unwrap();
    // the slot is in the past? no: a slot in the past is refused
    assert_eq!(
        field_of(
            s.add_slot("one", s.now() - Duration::hours(1), 60, None)
                .await
                .unwrap_err()
        ),
        "start"
    );
    // kim is busy in that slot: another slot overlapping it is refused
    assert_eq!(
        field_of(
            s.add_slot("one", at(mon + Duration::days(2), 10, 30), 60, None)
                .await
                .unwrap_err()
        ),
        "teacher"
    );
    for (id, p) in [("a", "pa"), ("b", "pb")] {
        s.purchase(&NewPackage {
            id: p.into(),
            student_id: id.into(),
            campus_id: None,
            lessons: 10,
            unit_price_cents: 10_000,
            price_paid_cents: None,
            bought_at: s.now(),
            expires_at: s.now() + Duration::days(100),
        })
        .await
        .unwrap();
    }
    s.enter_leave("a", &missed, "ill").await.unwrap();
    s.enter_leave("b", &missed, "ill").await.unwrap();
    let choices = s
        .makeup_choices("a", &missed, s.now(), s.now() + Duration::days(60))
        .await
        .unwrap();
    assert!(choices.iter().any(|l| l.id == slot));
    s.book_makeup_for("a", &missed, &slot).await.unwrap();
    // full now: not offered to b, and refused when asked
    let choices = s
        .makeup_choices("b", &missed, s.now(), s.now() + Duration::days(60))
        .await
        .unwrap();
    assert!(!choices.iter().any(|l| l.id == slot));
    assert_eq!(
        field_of(s.book_makeup_for("b", &missed, &slot).await.unwrap_err()),
        "lesson_id"
    );
}

async fn a_transfer_keeps_the_packages_and_checks_the_campus(s: &Store) {
    world(s).await;
    s.create_class(&class("math2", "north", "kim"))
        .await
        .unwrap();
    s.create_class(&class("south-math", "south", "kim"))
        .await
        .unwrap();
    s.purchase(&NewPackage {
        id: "pa".into(),
        student_id: "a".into(),
        campus_id: Some("north".into()),
        lessons: 10,
        unit_price_cents: 10_000,
        price_paid_cents: Some(90_000),
        bought_at: s.now(),
        expires_at: s.now() + Duration::days(100),
    })
    .await
    .unwrap();
    let before = s.balance("a", s.now()).await.unwrap();
    // the package covers only north: a move to south is refused, nothing changes
    assert_eq!(
        field_of(
            s.transfer_student("a", "math", "south-math", "closer to home")
                .await
                .unwrap_err()
        ),
        "to_class"
    );
    let t = s
        .transfer_student("a", "math", "math2", "level up")
        .await
        .unwrap();
    assert_eq!(
        (t.from_class.as_str(), t.to_class.as_str()),
        ("math", "math2")
    );
    let classes = s.classes().await.unwrap();
    let roster = |id: &str| {
        classes
            .iter()
            .find(|c| c.id == id)
            .unwrap()
            .students
            .clone()
    };
    assert_eq!(roster("math"), vec!["b".to_string()]);
    assert_eq!(roster("math2"), vec!["a".to_string()]);
    let after = s.balance("a", s.now()).await.unwrap();
    assert_eq!(before.available_units, after.available_units);
    assert_eq!(before.packages.len(), after.packages.len());
    // not in the old class / already in the new one / no reason
    assert_eq!(
        field_of(
            s.transfer_student("a", "math", "math2", "x")
                .await
                .unwrap_err()
        ),
        "from_class"
    );
    s.enroll("math", "a", s.now()).await.unwrap();
    assert_eq!(
        field_of(
            s.transfer_student("a", "math", "math2", "x")
                .await
                .unwrap_err()
        ),
        "to_class"
    );
    assert_eq!(
        field_of(
            s.transfer_student("b", "math", "math2", "  ")
                .await
                .unwrap_err()
        ),
        "reason"
    );
    // a student without packages moves anywhere
    s.transfer_student("b", "math", "south-math", "moved house")
        .await
        .unwrap();
    let audit = s.audit_rows(100).await.unwrap();
    assert_eq!(audit.iter().filter(|a| a.action == "transfer").count(), 2);
}

async fn editing_a_class_carries_teacher_and_room_to_lessons_to_come(s: &Store) {
    world(s).await;
    let mon = monday(s);
    s.create_series(&series(
        "math",
        "mon",
        "16:00",
        mon,
        mon + Duration::days(7),
    ))
    .await
    .unwrap();
    // one lesson of its own teacher: left alone
    s.add_lesson(&NewLesson {
        id: "guest".into(),
        class_id: "math".into(),
        room_id: Some("n1".into()),
        teacher: Some("guest".into()),
        start: at(mon + Duration::days(3), 9, 0),
        end: at(mon + Duration::days(3), 10, 0),
    })
    .await
    .unwrap();
    // a past lesson of the class: history stays
    s.add_lesson(&NewLesson {
        id: "old".into(),
        class_id: "math".into(),
        room_id: Some("n1".into()),
        teacher: None,
        start: s.now() - Duration::days(7),
        end: s.now() - Duration::days(7) + Duration::hours(1),
    })
    .await
    .unwrap();
    let mut policy = ClassPolicy::default();
    policy.absence.unexcused = Charge::Half;
    let r = s
        .edit_class(
            "math",
            &ClassEdit {
                name: "Maths Y8".into(),
                teacher: "wu".into(),
                room_id: Some("n2".into()),
                capacity: Some(12),
                policy,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        r.lessons_updated, 5,
        "teacher of 2 series lessons, room of 2 + guest"
    );
    let k = s
        .classes()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.id == "math")
        .unwrap();
    assert_eq!(
        (
            k.name.as_str(),
            k.teacher.as_str(),
            k.room_id.as_deref(),
            k.capacity
        ),
        ("Maths Y8", "wu", Some("n2"), Some(12))
    );
    assert_eq!(k.policy.absence.unexcused, Charge::Half);
    let ls = s
        .lessons_between(at(mon, 0, 0), at(mon + Duration::days(14), 0, 0))
        .await
        .unwrap();
    for l in &ls {
        let want = if l.id == "guest" { "guest" } else { "wu" };
        assert_eq!(
            (l.teacher.as_str(), l.room_id.as_deref()),
            (want, Some("n2")),
            "{}",
            l.id
        );
    }
    let old = s.lesson("old").await.unwrap();
    assert_eq!(
        (old.teacher.as_str(), old.room_id.as_deref()),
        ("lee", Some("n1"))
    );
    // a room of another campus, an empty name: refused
    let bad = ClassEdit {
        name: "Maths Y8".into(),
        teacher: "wu".into(),
        room_id: Some("s1".into()),
        capacity: None,
        policy,
    };
    assert_eq!(
        field_of(s.edit_class("math", &bad).await.unwrap_err()),
        "room_id"
    );
    let bad = ClassEdit {
        name: " ".into(),
        room_id: None,
        ..bad
    };
    assert_eq!(
        field_of(s.edit_class("math", &bad).await.unwrap_err()),
        "name"
    );
    let a = s.audit_rows(50).await.unwrap();
    let e = a
        .iter()
        .find(|a| a.entity == "class" && a.action == "edit")
        .unwrap();
    assert_eq!(e.before.as_ref().unwrap()["teacher"], "lee");
}
