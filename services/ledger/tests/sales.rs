//! Sales, payments, instalments and refunds through the store, on SQLite and PostgreSQL: the
//! money follows what was paid (not the list price), gifts earn and refund nothing, and a refund
//! is booked only when a second person approves it.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use rollcall_domain::ledger::*;
use rollcall_domain::money::{Discount, Instalment, RefundPolicy, RefundTier};
use rollcall_ledger::*;

rollcall_testkit::two_backends! {
    a_discounted_sale_with_gifts_earns_the_paid_price,
    payments_and_instalments_add_up_and_repeat_safely,
    a_sale_is_refused_field_by_field_and_writes_nothing,
    refunds_follow_the_policy_and_need_a_second_person,
    reminders_of_tomorrows_lessons_and_of_fees_due,
}

/// Monday 2026-01-05 00:00 UTC.
fn monday() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap()
}

fn math_start(d: i64) -> DateTime<Utc> {
    monday() + Duration::days(d) + Duration::hours(16)
}

fn date(d: &str) -> NaiveDate {
    d.parse().unwrap()
}

/// Campus north, class math with daily lessons M0..M13 at 16:00, students s1 and s2 enrolled
/// without packages, and a staff account `desk`.
async fn world(s: &Store) {
    s.create_campus("north", "North").await.unwrap();
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
    let lessons: Vec<NewLesson> = (0..14)
        .map(|d| NewLesson {
            id: format!("M{d}"),
            class_id: "math".into(),
            room_id: None,
            teacher: None,
            start: math_start(d),
            end: math_start(d) + Duration::hours(1),
        })
        .collect();
    s.add_lessons(&lessons).await.unwrap();
    for id in ["s1", "s2"] {
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
    s.create_staff(
        &NewStaff {
            username: "desk".into(),
            display_name: "Front desk".into(),
            role: Role::FrontDesk,
            campuses: CampusScope::All,
        },
        "x",
    )
    .await
    .unwrap();
}

/// 10 lessons listed at 3 000.00, 20 % off (2 400.00 due), 2 gift lessons, paid `paid` now by
/// WeChat Pay, the rest in `plan`.
fn order(id: &str, student: &str, paid: Cents, plan: Vec<Instalment<NaiveDate>>) -> NewOrder {
    NewOrder {
        id: id.into(),
        student_id: student.into(),
        salesperson: Some("desk".into()),
        note: None,
        lines: vec![OrderLine {
            package_id: format!("{id}-p"),
            campus_id: None,
            lessons: 10,
            gift_lessons: 2,
            list_price_cents: 300_000,
            discount: Discount::PercentBp(2_000),
            discount_reason: Some("opening offer".into()),
            expires_at: monday() + Duration::days(180),
        }],
        payment: (paid > 0).then(|| NewPayment {
            amount_cents: paid,
            method: PaymentMethod::WechatPay,
            reference: Some("wx-4200001".into()),
            key: None,
        }),
        instalments: plan,
        at: monday() - Duration::days(1),
    }
}

async fn check_in(s: &Store, student: &str, d: i64) {
    s.check_in(&CheckIn::new(
        student,
        math_start(d),
        AttendanceSource::Face,
    ))
    .await
    .unwrap();
}

fn amounts(entries: &[StoredEntry], kind: EntryKind) -> Vec<(i64, Cents)> {
    entries
        .iter()
        .filter(|e| e.entry.kind == kind)
        .map(|e| (e.entry.units, e.entry.amount_cents))
        .collect()
}

async fn a_discounted_sale_with_gifts_earns_the_paid_price(s: &Store) {
    world(s).await;
    let o = s
        .sell(&order("o1", "s1", 240_000, vec![]), "desk")
        .await
        .unwrap();
    assert_eq!(
        (
            o.list_cents,
            o.discount_cents,
            o.due_cents,
            o.paid_cents,
            o.outstanding_cents
        ),
        (300_000, 60_000, 240_000, 240_000, 0)
    );
    assert_eq!(o.lines[0].discount_reason.as_deref(), Some("opening offer"));
    assert_eq!(o.payments[0].method, PaymentMethod::WechatPay);
    let b = s.balance("s1", monday()).await.unwrap();
    assert_eq!(b.available_units, 1200, "10 paid + 2 gift lessons");
    // each lesson earns 240.00, the paid price, not the list 300.00
    for d in 0..3 {
        check_in(s, "s1", d).await;
    }
    let e = s.entries(Some("s1")).await.unwrap();
    assert_eq!(amounts(&e, EntryKind::Purchase), vec![(1200, 240_000)]);
    assert_eq!(
        amounts(&e, EntryKind::Deduction),
        vec![(-100, -24_000), (-100, -24_000), (-100, -24_000)]
    );
    // a reversal gives back exactly what its deduction earned; the next charge earns the same
    s.reverse_lesson("s1", "M1", "desk", "was ill")
        .await
        .unwrap();
    check_in(s, "s1", 3).await;
    let e = s.entries(Some("s1")).await.unwrap();
    assert_eq!(amounts(&e, EntryKind::Reversal), vec![(100, 24_000)]);
    // the rest of the paid lessons, then the two gifts: they earn nothing
    for d in 4..13 {
        check_in(s, "s1", d).await;
    }
    let e = s.entries(Some("s1")).await.unwrap();
    let earned: Cents = e
        .iter()
        .filter(|x| matches!(x.entry.kind, EntryKind::Deduction | EntryKind::Reversal))
        .map(|x| -x.entry.amount_cents)
        .sum();
    assert_eq!(
        earned, 240_000,
        "the whole package earned exactly what was paid"
    );
    let d = amounts(&e, EntryKind::Deduction);
    assert_eq!(d.len(), 13, "12 lessons net of the reversed one");
    assert_eq!(
        &d[11..],
        &[(-100, 0), (-100, 0)],
        "gift lessons earn nothing"
    );
    assert_eq!(s.balance("s1", monday()).await.unwrap().available_units, 0);
    // the consumption report's revenue is the paid price
    let r = s
        .report_consumption(monday(), monday() + Duration::days(30))
        .await
        .unwrap();
    assert_eq!(r.per_class[0].revenue_cents, 240_000);
}

async fn payments_and_instalments_add_up_and_repeat_safely(s: &Store) {
    world(s).await;
    let plan = vec![
        Instalment {
            due_on: date("2026-02-05"),
            amount_cents: 70_000,
        },
        Instalment {
            due_on: date("2026-03-05"),
            amount_cents: 70_000,
        },
    ];
    let o = s
        .sell(&order("o2", "s1", 100_000, plan), "desk")
        .await
        .unwrap();
    assert_eq!((o.paid_cents, o.outstanding_cents), (100_000, 140_000));
    assert_eq!(
        o.instalments.iter().map(|i| i.covered).collect::<Vec<_>>(),
        [false, false]
    );
    let cash = |amount: Cents, key: &str| NewPayment {
        amount_cents: amount,
        method: PaymentMethod::Cash,
        reference: None,
        key: Some(key.into()),
    };
    let (o, new) = s
        .record_payment("o2", &cash(70_000, "k1"), "desk")
        .await
        .unwrap();
    assert!(new);
    assert_eq!(o.outstanding_cents, 70_000);
    assert_eq!(
        o.instalments.iter().map(|i| i.covered).collect::<Vec<_>>(),
        [true, false]
    );
    // the same form sent twice records one payment
    let (o, new) = s
        .record_payment("o2", &cash(70_000, "k1"), "desk")
        .await
        .unwrap();
    assert!(!new);
    assert_eq!((o.payments.len(), o.outstanding_cents), (2, 70_000));
    // never more than is outstanding
    assert!(matches!(
        s.record_payment("o2", &cash(70_001, "k2"), "desk").await,
        Err(LedgerError::Invalid {
            field: "amount",
            ..
        })
    ));
    assert!(matches!(
        s.record_payment("nope", &cash(1, "k3"), "desk").await,
        Err(LedgerError::NotFound {
            entity: "order",
            ..
        })
    ));
    let (o, _) = s
        .record_payment("o2", &cash(70_000, "k2"), "desk")
        .await
        .unwrap();
    assert_eq!(o.outstanding_cents, 0);
    assert!(o.instalments.iter().all(|i| i.covered));
    // payments by time, for the cash report
    let p = s
        .payments_between(monday() - Duration::days(2), s.now() + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(p.iter().map(|p| p.amount_cents).sum::<Cents>(), 240_000);
    assert_eq!(s.orders_of("s1").await.unwrap().len(), 1);
}

async fn a_sale_is_refused_field_by_field_and_writes_nothing(s: &Store) {
    world(s).await;
    let field = |r: Result<OrderView>| match r {
        Err(LedgerError::Invalid { field, .. }) => field,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let mut o = order("o3", "s1", 240_000, vec![]);
    o.lines[0].discount_reason = None;
    assert_eq!(field(s.sell(&o, "desk").await), "discount_reason");
    let mut o = order("o3", "s1", 240_000, vec![]);
    o.lines[0].discount = Discount::Amount(300_001);
    assert_eq!(field(s.sell(&o, "desk").await), "discount");
    let o = order("o3", "s1", 240_001, vec![]);
    assert_eq!(field(s.sell(&o, "desk").await), "amount");
    let o = order(
        "o3",
        "s1",
        100_000,
        vec![Instalment {
            due_on: date("2026-02-05"),
            amount_cents: 100_000,
        }],
    );
    assert_eq!(field(s.sell(&o, "desk").await), "instalments");
    let o = order("o3", "s1", 100_000, vec![]);
    assert_eq!(
        field(s.sell(&o, "desk").await),
        "instalments",
        "the rest needs a plan"
    );
    let mut o = order("o3", "s1", 240_000, vec![]);
    o.salesperson = Some("nobody".into());
    assert_eq!(field(s.sell(&o, "desk").await), "salesperson");
    let mut o = order("o3", "s1", 240_000, vec![]);
    o.lines[0].lessons = 0;
    assert_eq!(field(s.sell(&o, "desk").await), "lessons");
    let mut o = order("o3", "s1", 240_000, vec![]);
    o.lines[0].expires_at = o.at;
    assert_eq!(field(s.sell(&o, "desk").await), "expires_at");
    let mut o = order("o3", "s1", 240_000, vec![]);
    o.lines.clear();
    assert_eq!(field(s.sell(&o, "desk").await), "lines");
    // nothing of the refused sales was written
    assert!(s.orders_of("s1").await.unwrap().is_empty());
    assert_eq!(s.balance("s1", monday()).await.unwrap().available_units, 0);
    // an order id is unique; the second sale writes nothing either
    s.sell(&order("o3", "s1", 240_000, vec![]), "desk")
        .await
        .unwrap();
    let mut again = order("o3", "s2", 240_000, vec![]);
    again.lines[0].package_id = "other".into();
    assert!(s
        .sell(&again, "desk")
        .await
        .unwrap_err()
        .is_unique_violation());
    assert!(s.orders_of("s2").await.unwrap().is_empty());
    assert_eq!(s.balance("s2", monday()).await.unwrap().available_units, 0);
}

async fn refunds_follow_the_policy_and_need_a_second_person(s: &Store) {
    world(s).await;
    s.sell(&order("o4", "s1", 240_000, vec![]), "desk")
        .await
        .unwrap();
    s.sell(&order("o5", "s2", 240_000, vec![]), "desk")
        .await
        .unwrap();
    check_in(s, "s1", 0).await;
    check_in(s, "s1", 1).await;
    // the starting policy: keep 10 % of what was paid and not yet earned, up to half used
    let q = s.quote_refund("s1", "o4-p").await.unwrap();
    assert_eq!(
        (
            q.unearned_cents,
            q.kept_cents,
            q.refund_cents,
            q.units,
            q.gift_units_removed
        ),
        (192_000, 19_200, 172_800, 1000, 200)
    );
    assert_eq!(s.refund_policy().await.unwrap().updated_by, None);
    // an admin edits the table: a falling share is refused, a valid one is audited
    let falling = RefundPolicy {
        tiers: vec![
            RefundTier {
                max_used_pct: 0,
                keep_pct: 20,
            },
            RefundTier {
                max_used_pct: 50,
                keep_pct: 10,
            },
        ],
        fee_cents: 0,
    };
    assert!(matches!(
        s.set_refund_policy(&falling, "boss").await,
        Err(LedgerError::Invalid { field: "tiers", .. })
    ));
    let audits = s.audit_count().await.unwrap();
    let policy = RefundPolicy {
        tiers: vec![
            RefundTier {
                max_used_pct: 0,
                keep_pct: 10,
            },
            RefundTier {
                max_used_pct: 50,
                keep_pct: 20,
            },
        ],
        fee_cents: 5_000,
    };
    s.set_refund_policy(&policy, "boss").await.unwrap();
    assert_eq!(s.audit_count().await.unwrap(), audits + 1);
    let v = s.refund_policy().await.unwrap();
    assert_eq!((v.policy, v.updated_by.as_deref()), (policy, Some("boss")));
    // 192 000 unearned, keep 20 %, fee 50.00: 148 600 back
    let q = s.quote_refund("s1", "o4-p").await.unwrap();
    assert_eq!(
        (q.tier, q.kept_cents, q.fee_cents, q.refund_cents),
        (Some(1), 38_400, 5_000, 148_600)
    );

    assert!(matches!(
        s.request_refund("s1", "o4-p", "  ", PaymentMethod::WechatPay, "desk")
            .await,
        Err(LedgerError::Invalid {
            field: "reason",
            ..
        })
    ));
    let r = s
        .request_refund(
            "s1",
            "o4-p",
            "moving away",
            PaymentMethod::WechatPay,
            "desk",
        )
        .await
        .unwrap();
    assert_eq!(
        (r.state, r.quote.refund_cents),
        (RefundState::Pending, 148_600)
    );
    // nothing is booked while it waits
    assert_eq!(
        s.balance("s1", monday()).await.unwrap().available_units,
        1000
    );
    assert!(matches!(
        s.request_refund("s1", "o4-p", "again", PaymentMethod::Cash, "desk")
            .await,
        Err(LedgerError::Conflict(_))
    ));
    // the asker cannot approve
    assert!(matches!(
        s.decide_refund(r.id, true, "desk", None).await,
        Err(LedgerError::Invalid {
            field: "approver",
            ..
        })
    ));
    let d = s
        .decide_refund(r.id, true, "boss", Some("ok"))
        .await
        .unwrap();
    assert_eq!(
        (d.state, d.refund_cents, d.decided_by.as_deref()),
        (RefundState::Approved, Some(148_600), Some("boss"))
    );
    let e = s.entries(Some("s1")).await.unwrap();
    assert_eq!(amounts(&e, EntryKind::Refund), vec![(-1000, -148_600)]);
    assert_eq!(s.balance("s1", monday()).await.unwrap().available_units, 0);
    assert!(matches!(
        s.decide_refund(r.id, true, "boss", None).await,
        Err(LedgerError::Conflict(_))
    ));
    // nothing left: nothing to ask for
    assert!(matches!(
        s.request_refund("s1", "o4-p", "again", PaymentMethod::Cash, "desk")
            .await,
        Err(LedgerError::NotRefundable(..))
    ));
    // a rejected request books nothing
    let r2 = s
        .request_refund("s2", "o5-p", "changed mind", PaymentMethod::Cash, "desk")
        .await
        .unwrap();
    let d2 = s
        .decide_refund(r2.id, false, "boss", Some("policy"))
        .await
        .unwrap();
    assert_eq!((d2.state, d2.refund_cents), (RefundState::Rejected, None));
    assert!(amounts(&s.entries(Some("s2")).await.unwrap(), EntryKind::Refund).is_empty());
    assert_eq!(
        s.refund_requests(Some(RefundState::Pending), None)
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(s.refund_requests(None, Some("s2")).await.unwrap().len(), 1);
    // more than half of the paid lessons used: no refund
    for d in 0..6 {
        check_in(s, "s2", d).await;
    }
    assert!(matches!(
        s.request_refund("s2", "o5-p", "late", PaymentMethod::Cash, "desk")
            .await,
        Err(LedgerError::NotRefundable(..))
    ));
}

async fn reminders_of_tomorrows_lessons_and_of_fees_due(s: &Store) {
    world(s).await;
    s.set_notify_settings(
        &NotifySettings {
            enabled: true,
            ..Default::default()
        },
        "admin",
    )
    .await
    .unwrap();
    s.add_guardian(&NewGuardian {
        id: "g1".into(),
        student_id: "s1".into(),
        name: "Mum".into(),
        phone: Some("+8613800000000".into()),
        email: None,
        language: "zh-CN".into(),
        notify_prefs: String::new(),
    })
    .await
    .unwrap();
    let plan = vec![
        Instalment {
            due_on: date("2026-01-06"),
            amount_cents: 70_000,
        },
        Instalment {
            due_on: date("2026-02-05"),
            amount_cents: 70_000,
        },
    ];
    s.sell(&order("o6", "s1", 100_000, plan), "desk")
        .await
        .unwrap();
    // Sunday 17:00 local (the school is at UTC+1): too early for tomorrow's lessons; the
    // first instalment (due Tuesday) is within three days
    let sunday = monday() - Duration::days(1);
    let r = s
        .send_reminders(sunday + Duration::hours(16))
        .await
        .unwrap();
    assert_eq!((r.lessons, r.fees, r.rows), (0, 1, 1));
    let fee = s.notice_rows("fee:o6:1").await.unwrap();
    assert_eq!(fee.len(), 1);
    assert_eq!(
        (
            fee[0].kind,
            fee[0].params["amount"].as_str(),
            fee[0].params["due_on"].as_str()
        ),
        (NoticeKind::FeeDue, Some("700.00"), Some("2026-01-06"))
    );
    assert!(s.notice_rows("fee:o6:2").await.unwrap().is_empty());
    // 20:00 local: Monday's lesson M0 (17:00 local) for both enrolled students (only s1 has a
    // guardian to tell)
    let r = s
        .send_reminders(sunday + Duration::hours(19))
        .await
        .unwrap();
    assert_eq!((r.lessons, r.fees, r.rows), (2, 0, 1));
    let rem = s.notice_rows("reminder:s1:M0").await.unwrap();
    assert_eq!(rem.len(), 1);
    assert_eq!(
        (
            rem[0].params["lesson_date"].as_str(),
            rem[0].params["lesson_time"].as_str()
        ),
        (Some("2026-01-05"), Some("17:00"))
    );
    assert_eq!(rem[0].language, "zh-CN");
    // again: nothing more
    let r = s
        .send_reminders(sunday + Duration::hours(20))
        .await
        .unwrap();
    assert_eq!(r.rows, 0);
    // a paid instalment is not reminded of
    let (o, _) = s
        .record_payment(
            "o6",
            &NewPayment {
                amount_cents: 140_000,
                method: PaymentMethod::BankTransfer,
                reference: None,
                key: Some("all".into()),
            },
            "desk",
        )
        .await
        .unwrap();
    assert_eq!(o.outstanding_cents, 0);
    let r = s
        .send_reminders(date("2026-02-03").and_hms_opt(9, 0, 0).unwrap().and_utc())
        .await
        .unwrap();
    assert_eq!(r.fees, 0);
}
