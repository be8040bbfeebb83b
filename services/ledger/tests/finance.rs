//! Finance through the store, on SQLite and PostgreSQL: teachers' pay rates stored per teacher
//! from a school-local date on (each lesson paid at the rate of its local date, audited
//! changes), and every finance report limited to a reader's campuses.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use rollcall_domain::ledger::*;
use rollcall_domain::money::Discount;
use rollcall_ledger::*;

rollcall_testkit::two_backends! {
    teacher_rates_pay_each_lesson_at_the_rate_of_its_local_day,
    finance_reports_keep_to_the_readers_campuses,
}

/// Monday 2026-01-05 00:00 UTC (the harness's school is at UTC+1).
fn monday() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap()
}

fn date(d: &str) -> NaiveDate {
    d.parse().unwrap()
}

/// Class `class` at `campus` taught by `teacher`, lessons `{class}{d}` on days 0..6 at
/// `hour`:00 UTC, and its students (home campus `campus`) enrolled.
async fn class(s: &Store, class: &str, campus: &str, teacher: &str, hour: i64, students: &[&str]) {
    // (through serde: the fields a class may have beyond these take their defaults)
    let c: NewClass = serde_json::from_value(serde_json::json!({
        "id": class,
        "course": class,
        "name": format!("{class} class"),
        "campus_id": campus,
        "teacher": teacher,
        "policy": ClassPolicy::default(),
    }))
    .unwrap();
    s.create_class(&c).await.unwrap();
    let lessons: Vec<NewLesson> = (0..6)
        .map(|d| NewLesson {
            id: format!("{class}{d}"),
            class_id: class.into(),
            room_id: None,
            teacher: None,
            start: monday() + Duration::days(d) + Duration::hours(hour),
            end: monday() + Duration::days(d) + Duration::hours(hour + 1),
        })
        .collect();
    s.add_lessons(&lessons).await.unwrap();
    for id in students {
        s.create_student(&NewStudent {
            id: (*id).into(),
            name: format!("Student {id}"),
            home_campus_id: Some(campus.into()),
        })
        .await
        .unwrap();
        s.enroll(class, id, monday() - Duration::days(7))
            .await
            .unwrap();
    }
}

/// An order of `lessons` lessons at `cents` in all, paid in full by `method`.
async fn sell(s: &Store, student: &str, lessons: i64, cents: Cents, method: PaymentMethod) {
    s.sell(
        &NewOrder {
            id: format!("o-{student}"),
            student_id: student.into(),
            salesperson: None,
            note: None,
            lines: vec![OrderLine {
                package_id: format!("p-{student}"),
                campus_id: None,
                lessons,
                gift_lessons: 0,
                list_price_cents: cents,
                discount: Discount::None,
                discount_reason: None,
                expires_at: monday() + Duration::days(180),
            }],
            payment: Some(NewPayment {
                amount_cents: cents,
                method,
                reference: None,
                key: None,
            }),
            instalments: vec![],
            at: monday() - Duration::days(1),
        },
        "desk",
    )
    .await
    .unwrap();
}

async fn check_in(s: &Store, student: &str, at: DateTime<Utc>) {
    s.check_in(&CheckIn::new(student, at, AttendanceSource::Face))
        .await
        .unwrap();
}

async fn teacher_rates_pay_each_lesson_at_the_rate_of_its_local_day(s: &Store) {
    s.create_campus("north", "North").await.unwrap();
    class(s, "math", "north", "ms-lee", 16, &["s1", "s2"]).await;
    // a lesson at 23:30 UTC on day 2 is at 00:30 on day 3 in the school's time (UTC+1)
    let late = monday() + Duration::days(2) + Duration::minutes(23 * 60 + 30);
    s.add_lesson(&NewLesson {
        id: "late".into(),
        class_id: "math".into(),
        room_id: None,
        teacher: None,
        start: late,
        end: late + Duration::hours(1),
    })
    .await
    .unwrap();
    for st in ["s1", "s2"] {
        sell(s, st, 20, 200_000, PaymentMethod::Cash).await;
    }
    let at = |d: i64| monday() + Duration::days(d) + Duration::hours(16);
    for (st, d) in [
        ("s1", 0),
        ("s2", 0),
        ("s1", 1),
        ("s2", 1),
        ("s1", 3),
        ("s1", 4),
    ] {
        check_in(s, st, at(d)).await;
    }
    check_in(s, "s1", late).await;

    // refused: a name that teaches nothing, a negative or huge rate; nothing is stored
    for (teacher, pl, ps, field) in [
        ("nobody", 100, 0, "teacher"),
        ("", 100, 0, "teacher"),
        ("ms-lee", -1, 0, "per_lesson_cents"),
        ("ms-lee", 0, MAX_RATE_CENTS + 1, "per_student_cents"),
    ] {
        match s
            .set_teacher_rate(teacher, date("2026-01-06"), pl, ps, "boss")
            .await
        {
            Err(LedgerError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{teacher} {pl} {ps}: {other:?}"),
        }
    }
    assert!(s.teacher_rates().await.unwrap().is_empty());

    // 100.00 a lesson + 10.00 a student from Tuesday; 150.00 flat from Thursday
    let (a, replaced) = s
        .set_teacher_rate("ms-lee", date("2026-01-06"), 10_000, 1_000, "boss")
        .await
        .unwrap();
    assert_eq!(replaced, None);
    assert_eq!(a.set_by, "boss");
    s.set_teacher_rate("ms-lee", date("2026-01-08"), 20_000, 0, "boss")
        .await
        .unwrap();
    // the same date again replaces it, and says what it replaced
    let (b, replaced) = s
        .set_teacher_rate("ms-lee", date("2026-01-08"), 15_000, 0, "boss")
        .await
        .unwrap();
    assert_eq!(replaced.map(|r| r.per_lesson_cents), Some(20_000));
    let rates = s.teacher_rates().await.unwrap();
    assert_eq!(
        rates
            .iter()
            .map(|r| (r.effective_from, r.per_lesson_cents, r.per_student_cents))
            .collect::<Vec<_>>(),
        vec![
            (date("2026-01-06"), 10_000, 1_000),
            (date("2026-01-08"), 15_000, 0)
        ]
    );
    // each change audited with what it replaced
    let audit: Vec<AuditRow> = s
        .audit_rows(50)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.action == "set_teacher_rate")
        .collect();
    assert_eq!(audit.len(), 3, "{audit:?}");
    assert_eq!(audit[0].entity_id, "ms-lee");
    assert_eq!(
        audit[0].before.as_ref().unwrap()["per_lesson_cents"],
        20_000
    );
    assert_eq!(audit[0].after.as_ref().unwrap()["per_lesson_cents"], 15_000);
    assert!(audit[2].before.is_none());

    let rows = s
        .report_teaching(monday(), monday() + Duration::days(7), &CampusScope::All)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.teacher, "ms-lee");
    // Monday (2 students) before the first rate; Tuesday 100 + 2 × 10; the late lesson (local
    // Thursday), Thursday and Friday at 150 each
    assert_eq!((r.lessons, r.student_lessons, r.unrated_lessons), (5, 7, 1));
    assert_eq!(r.pay_cents, 12_000 + 3 * 15_000);
    assert_eq!(
        r.rates,
        vec![
            RateUsed {
                effective_from: date("2026-01-06"),
                per_lesson_cents: 10_000,
                per_student_cents: 1_000,
                lessons: 1,
                student_lessons: 2,
                pay_cents: 12_000,
            },
            RateUsed {
                effective_from: b.effective_from,
                per_lesson_cents: 15_000,
                per_student_cents: 0,
                lessons: 3,
                student_lessons: 3,
                pay_cents: 45_000,
            }
        ]
    );
    // the teachers a rate may be set for: those of classes and lessons (and teachers' accounts)
    assert_eq!(
        s.known_teachers().await.unwrap(),
        vec!["ms-lee".to_string()]
    );
}

async fn finance_reports_keep_to_the_readers_campuses(s: &Store) {
    s.create_campus("north", "North").await.unwrap();
    s.create_campus("south", "South").await.unwrap();
    class(s, "math", "north", "ms-lee", 16, &["n1"]).await;
    class(s, "art", "south", "mr-wu", 18, &["s1"]).await;
    sell(s, "n1", 10, 100_000, PaymentMethod::Cash).await;
    sell(s, "s1", 10, 200_000, PaymentMethod::WechatPay).await;
    for d in 0..2 {
        check_in(s, "n1", monday() + Duration::days(d) + Duration::hours(16)).await;
        check_in(s, "s1", monday() + Duration::days(d) + Duration::hours(18)).await;
    }
    for (who, rate) in [("ms-lee", 5_000), ("mr-wu", 7_000)] {
        s.set_teacher_rate(who, date("2026-01-01"), rate, 0, "boss")
            .await
            .unwrap();
    }
    // a refund of the south student's package, approved by a second person
    let req = s
        .request_refund(
            "s1",
            "p-s1",
            "moving away",
            PaymentMethod::WechatPay,
            "desk",
        )
        .await
        .unwrap();
    let done = s.decide_refund(req.id, true, "boss", None).await.unwrap();
    let refunded = done.refund_cents.unwrap();
    assert!(refunded > 0);

    // (the refund is decided now, by the store's clock)
    let (from, to) = (monday() - Duration::days(7), s.now() + Duration::days(1));
    let north = CampusScope::Only(vec!["north".into()]);
    let south = CampusScope::Only(vec!["south".into()]);
    // cash: a payment by its order's campus, a refund by the student's home campus
    let all = s.report_cash(from, to, &CampusScope::All).await.unwrap();
    assert_eq!(
        (all.received_cents, all.refunded_cents),
        (300_000, refunded)
    );
    let n = s.report_cash(from, to, &north).await.unwrap();
    assert_eq!((n.received_cents, n.refunded_cents), (100_000, 0));
    assert!(n
        .rows
        .iter()
        .all(|r| r.campus_id.as_deref() == Some("north")));
    let so = s.report_cash(from, to, &south).await.unwrap();
    assert_eq!((so.received_cents, so.refunded_cents), (200_000, refunded));
    // revenue by the lesson's campus
    let keys = |r: &[ConsumptionRow]| r.iter().map(|x| x.key.clone()).collect::<Vec<_>>();
    let rn = s.report_consumption_in(from, to, &north).await.unwrap();
    assert_eq!(keys(&rn.per_campus), ["north"]);
    assert_eq!(keys(&rn.per_class), ["math"]);
    assert_eq!(keys(&rn.per_teacher), ["ms-lee"]);
    assert_eq!(rn.per_campus[0].revenue_cents, 2 * 10_000);
    let ra = s
        .report_consumption_in(from, to, &CampusScope::All)
        .await
        .unwrap();
    assert_eq!(ra, s.report_consumption(from, to).await.unwrap());
    assert_eq!(keys(&ra.per_campus), ["north", "south"]);
    // the liability by the package's campus, else the student's home campus
    let value = |rows: Vec<OutstandingRow>| rows.iter().map(|r| r.value_cents).sum::<Cents>();
    let now = monday() + Duration::days(3);
    let ln = value(s.report_outstanding_in(now, &north).await.unwrap());
    let ls = value(s.report_outstanding_in(now, &south).await.unwrap());
    let la = value(s.report_outstanding(now).await.unwrap());
    assert_eq!(ln, 100_000 - 2 * 10_000);
    assert_eq!(la, ln + ls);
    assert!(s
        .report_outstanding_in(now, &north)
        .await
        .unwrap()
        .iter()
        .all(|r| r.student_id == "n1"));
    // teaching by the lesson's campus
    let tn = s.report_teaching(from, to, &north).await.unwrap();
    assert_eq!(
        tn.iter()
            .map(|r| (r.teacher.as_str(), r.lessons, r.pay_cents))
            .collect::<Vec<_>>(),
        [("ms-lee", 2, 10_000)]
    );
    let ta = s
        .report_teaching(from, to, &CampusScope::All)
        .await
        .unwrap();
    assert_eq!(ta.len(), 2);
}
