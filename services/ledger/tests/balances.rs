//! Many students' balances in one grouped query ([`Store::balances`], what the renewal list and
//! the student search read) are exactly the per-student [`Store::balance`], on SQLite and
//! PostgreSQL, for a school with several students and packages of every shape: used, expired,
//! campus-bound, with gift lessons, reversed, adjusted, overdrawn, none at all.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rollcall_domain::ledger::*;
use rollcall_domain::money::Discount;
use rollcall_ledger::*;

rollcall_testkit::two_backends! {
    grouped_balances_equal_the_per_student_ones => SchoolPolicy {
        overdraft: OverdraftPolicy::Allow { max_lessons: 2 },
        ..SchoolPolicy::default()
    },
}

/// Monday 2026-01-05 00:00 UTC.
fn monday() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap()
}

fn lesson_at(d: i64) -> DateTime<Utc> {
    monday() + Duration::days(d) + Duration::hours(16)
}

async fn package(
    s: &Store,
    id: &str,
    student: &str,
    campus: Option<&str>,
    lessons: i64,
    days: i64,
) {
    s.purchase(&NewPackage {
        id: id.into(),
        student_id: student.into(),
        campus_id: campus.map(str::to_string),
        lessons,
        unit_price_cents: 1_000,
        price_paid_cents: None,
        bought_at: monday() - Duration::days(30),
        expires_at: monday() + Duration::days(days),
    })
    .await
    .unwrap();
}

async fn check_in(s: &Store, student: &str, d: i64) {
    s.check_in(&CheckIn::new(student, lesson_at(d), AttendanceSource::Face))
        .await
        .unwrap();
}

async fn grouped_balances_equal_the_per_student_ones(s: &Store) {
    s.create_campus("north", "North").await.unwrap();
    s.create_campus("south", "South").await.unwrap();
    let class: NewClass = serde_json::from_value(serde_json::json!({
        "id": "math", "course": "math", "name": "Maths", "campus_id": "north",
        "teacher": "ms-lee", "policy": ClassPolicy::default(),
    }))
    .unwrap();
    s.create_class(&class).await.unwrap();
    let lessons: Vec<NewLesson> = (0..8)
        .map(|d| NewLesson {
            id: format!("M{d}"),
            class_id: "math".into(),
            room_id: None,
            teacher: None,
            start: lesson_at(d),
            end: lesson_at(d) + Duration::hours(1),
        })
        .collect();
    s.add_lessons(&lessons).await.unwrap();
    let students = ["s1", "s2", "s3", "s4", "s5", "s6"];
    for id in students {
        s.create_student(&NewStudent {
            id: id.into(),
            name: format!("Student {id}"),
            home_campus_id: Some("north".into()),
        })
        .await
        .unwrap();
        s.enroll("math", id, monday() - Duration::days(7))
            .await
            .unwrap();
    }
    // s1: one package, three lessons used, one of them reversed
    package(s, "p1", "s1", None, 10, 90).await;
    for d in 0..3 {
        check_in(s, "s1", d).await;
    }
    s.reverse_lesson("s1", "M1", "desk", "was ill")
        .await
        .unwrap();
    // s2: a package that expired after two lessons, one of south only, one of north
    package(s, "p2-old", "s2", None, 5, 2).await;
    package(s, "p2-south", "s2", Some("south"), 5, 90).await;
    package(s, "p2-north", "s2", Some("north"), 4, 60).await;
    for d in 0..5 {
        check_in(s, "s2", d).await;
    }
    // s3: no package: overdrawn (the school allows two lessons)
    check_in(s, "s3", 0).await;
    check_in(s, "s3", 1).await;
    // s4: a sale with gift lessons and a discount, used into the gifts
    s.sell(
        &NewOrder {
            id: "o4".into(),
            student_id: "s4".into(),
            salesperson: None,
            note: None,
            lines: vec![OrderLine {
                package_id: "p4".into(),
                campus_id: None,
                lessons: 2,
                gift_lessons: 2,
                list_price_cents: 20_000,
                discount: Discount::PercentBp(1_000),
                discount_reason: Some("friend".into()),
                expires_at: monday() + Duration::days(120),
            }],
            payment: Some(NewPayment {
                amount_cents: 18_000,
                method: PaymentMethod::Cash,
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
    for d in 0..3 {
        check_in(s, "s4", d).await;
    }
    // s5: a package and a manual adjustment of half a lesson
    package(s, "p5", "s5", None, 3, 30).await;
    s.adjust("s5", Some("p5"), -50, "adj-1", "desk", "goodwill")
        .await
        .unwrap();
    // s6: nothing
    let mut ids: Vec<&str> = students.to_vec();
    ids.push("nobody");
    for at in [monday() + Duration::days(1), monday() + Duration::days(70)] {
        let grouped = s.balances(&ids, at).await.unwrap();
        assert_eq!(grouped.len(), ids.len());
        for id in students {
            let one = s.balance(id, at).await.unwrap();
            assert_eq!(
                serde_json::to_value(&grouped[id]).unwrap(),
                serde_json::to_value(&one).unwrap(),
                "{id} at {at}"
            );
        }
        // an unknown student: an empty balance (the per-student read refuses it)
        let none = &grouped["nobody"];
        assert!(none.packages.is_empty() && none.available_units == 0);
        assert!(s.balance("nobody", at).await.is_err());
    }
    // what the seeding did shows in the figures (so the comparison compares something)
    let g = s
        .balances(&ids, monday() + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(g["s1"].available_units, 800);
    assert_eq!(g["s3"].overdraft_units, 200);
    assert_eq!(g["s4"].available_units, 100, "one gift lesson left");
    assert_eq!(g["s5"].available_units, 250);
    assert_eq!(g["s6"].packages.len(), 0);
    assert_eq!(g["s2"].packages.len(), 3);
    // more students than one query holds: the same answers
    let many: Vec<String> = (0..BALANCES_PER_QUERY + 3)
        .map(|i| format!("x{i}"))
        .collect();
    let mut refs: Vec<&str> = many.iter().map(String::as_str).collect();
    refs.push("s1");
    let big = s
        .balances(&refs, monday() + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(big.len(), refs.len());
    assert_eq!(big["s1"].available_units, 800);
}
