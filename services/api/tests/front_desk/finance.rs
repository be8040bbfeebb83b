//! Issue 21 items 10's gaps, through the API and the staff app, on SQLite and PostgreSQL:
//! teachers' pay rates stored per teacher (set by an admin of every campus, audited) and used
//! by the pay statement unless the query asks a what-if; the finance report of a
//! campus-limited manager holding their campuses' figures only. A child module of `api.rs`
//! (its harness).

use super::*;

rollcall_testkit::per_backend!(
    finance_report_keeps_to_the_readers_campuses,
    teacher_rates_are_stored_and_pay_the_statement,
    finance_routes_are_audited_as_their_staff,
);

/// An order `o-{student}` of `lessons` lessons paid in full (`cents`) by `method` now, and a
/// check-in of the student to the lesson running now.
async fn sold_and_checked_in(
    s: &Store,
    student: &str,
    cents: i64,
    method: rollcall_domain::ledger::PaymentMethod,
) {
    s.sell(
        &NewOrder {
            id: format!("o-{student}"),
            student_id: student.into(),
            salesperson: None,
            note: None,
            lines: vec![OrderLine {
                package_id: format!("o-{student}-p"),
                campus_id: None,
                lessons: 10,
                gift_lessons: 0,
                list_price_cents: cents,
                discount: rollcall_domain::money::Discount::None,
                discount_reason: None,
                expires_at: Utc::now() + Duration::days(60),
            }],
            payment: Some(NewPayment {
                amount_cents: cents,
                method,
                reference: None,
                key: None,
            }),
            instalments: vec![],
            at: Utc::now() - Duration::hours(1),
        },
        "someone",
    )
    .await
    .unwrap();
    s.check_in(&CheckIn::new(
        student,
        Utc::now(),
        rollcall_domain::ledger::AttendanceSource::Manual,
    ))
    .await
    .unwrap();
}

fn keys(v: &Value, part: &str) -> Vec<String> {
    v["revenue"][part]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_string())
        .collect()
}

async fn finance_report_keeps_to_the_readers_campuses(db: Db) {
    use rollcall_domain::ledger::PaymentMethod;
    let sv = server(db, 1 << 20).await;
    let (a, s) = (&sv.addr, &sv.store);
    // north: s1 paid 1 000.00 in cash; south: s2 paid 2 000.00 by WeChat Pay; both attend now
    sold_and_checked_in(s, "s1", 100_000, PaymentMethod::Cash).await;
    sold_and_checked_in(s, "s2", 200_000, PaymentMethod::WechatPay).await;
    add_staff(s, "manager_n", Role::Manager, &["north"]).await;
    let all = Client::login(a, "manager").await;
    let north = Client::login(a, "manager_n").await;

    let r = all.get("/api/v1/reports/finance").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let whole = r.json();
    assert!(whole["campuses"].is_null());
    assert_eq!(whole["cash"]["received_cents"], 300_000);
    assert_eq!(keys(&whole, "per_campus"), ["north", "south"]);

    // the campus-limited manager: every part of north only (was 403)
    let r = north.get("/api/v1/reports/finance").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let n = r.json();
    assert_eq!(n["campuses"], json!(["north"]));
    assert_eq!(n["cash"]["received_cents"], 100_000);
    assert!(n["cash"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["campus_id"] == "north" && r["method"] == "cash"));
    assert_eq!(keys(&n, "per_campus"), ["north"]);
    assert_eq!(keys(&n, "per_class"), ["math"]);
    // revenue: the lessons used at the paid price (s1's 100.00 a lesson; the fixture's own
    // packages expire later, so the sold one, expiring first, paid)
    let north_revenue = n["revenue"]["per_campus"][0]["revenue_cents"]
        .as_i64()
        .unwrap();
    let whole_revenue: i64 = whole["revenue"]["per_campus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["revenue_cents"].as_i64().unwrap())
        .sum();
    assert_eq!(north_revenue, 10_000);
    assert_eq!(whole_revenue, 10_000 + 20_000);
    // the liability: north's students' packages (s1's and s3's fixture packages, s1's order)
    let liab_n = n["prepaid_liability_cents"].as_i64().unwrap();
    let liab_all = whole["prepaid_liability_cents"].as_i64().unwrap();
    let south = Client::login(a, "desk_south").await; // (the front desk may not read money)
    assert_eq!(south.get("/api/v1/reports/finance").await.status, 403);
    add_staff(s, "manager_s", Role::Manager, &["south"]).await;
    let ms = Client::login(a, "manager_s").await;
    let so = ms.get("/api/v1/reports/finance").await.json();
    assert_eq!(
        liab_n + so["prepaid_liability_cents"].as_i64().unwrap(),
        liab_all
    );
    assert_eq!(liab_n, 2 * 10_000 + 100_000 - 10_000);
    // teaching: the lessons of north (the fixture's teacher "t" teaches both classes)
    assert_eq!(n["teaching"][0]["teacher"], "t");
    assert_eq!(n["teaching"][0]["lessons"], 1);
    assert_eq!(whole["teaching"][0]["lessons"], 2);
    // one campus of the reader's may be chosen; another campus is refused
    let r = all.get("/api/v1/reports/finance?campus=north").await.json();
    assert_eq!(r["campuses"], json!(["north"]));
    assert_eq!(r["cash"]["received_cents"], 100_000);
    let r = north.get("/api/v1/reports/finance?campus=south").await;
    assert_eq!((r.status, r.code().as_str()), (403, "forbidden_campus"));
    // the downloads and the page hold the same figures
    let csv = north.get("/api/v1/reports/finance.csv?part=cash").await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.text().contains("north") && !csv.text().contains("south"),
        "{}",
        csv.text()
    );
    assert_eq!(north.get("/api/v1/reports/finance.xlsx").await.status, 200);
    let cookie = app_session(a, "manager_n").await;
    let page = app_page(a, &cookie, "/app/finance").await;
    assert!(
        page.contains("id=scope") && page.contains("North"),
        "{page}"
    );
    assert!(
        page.contains("<th id=received-total>1000.00</th>"),
        "{page}"
    );
    let cookie = app_session(a, "manager").await;
    let page = app_page(a, &cookie, "/app/finance").await;
    assert!(!page.contains("id=scope"), "{page}");
    assert!(
        page.contains("<th id=received-total>3000.00</th>"),
        "{page}"
    );
}

async fn teacher_rates_are_stored_and_pay_the_statement(db: Db) {
    use rollcall_domain::ledger::PaymentMethod;
    let sv = server(db, 1 << 20).await;
    let (a, s) = (&sv.addr, &sv.store);
    sold_and_checked_in(s, "s1", 100_000, PaymentMethod::Cash).await;
    sold_and_checked_in(s, "s3", 100_000, PaymentMethod::Cash).await;
    sold_and_checked_in(s, "s2", 200_000, PaymentMethod::Cash).await;
    let admin = Client::login(a, "admin").await;
    let mgr = Client::login(a, "manager").await;
    let today = s.local_date(s.now());
    let since = (today - Duration::days(10)).to_string();

    // no rate yet: the lessons are unrated, nothing paid
    let r = mgr.get("/api/v1/reports/finance").await.json();
    assert_eq!(r["pay_basis"], "stored");
    assert_eq!(r["teaching"][0]["unrated_lessons"], 2);
    assert_eq!(r["teaching"][0]["pay_cents"], 0);

    // refused: a manager, an admin of one campus (school-wide record), bad fields
    let body = json!({"teacher": "t", "effective_from": since, "per_lesson_cents": 5_000, "per_student_cents": 1_000});
    let r = mgr.post("/api/v1/teacher-rates", body.clone()).await;
    assert_eq!((r.status, r.code().as_str()), (403, "forbidden_role"));
    add_staff(s, "admin_n", Role::Admin, &["north"]).await;
    let admin_n = Client::login(a, "admin_n").await;
    let r = admin_n.post("/api/v1/teacher-rates", body.clone()).await;
    assert_eq!((r.status, r.code().as_str()), (403, "forbidden_campus"));
    for bad in [
        json!({"teacher": "nobody", "per_lesson_cents": 1, "per_student_cents": 0}),
        json!({"teacher": "t", "effective_from": "01/02/2026", "per_lesson_cents": 1, "per_student_cents": 0}),
        json!({"teacher": "t", "per_lesson_cents": -5, "per_student_cents": 0}),
    ] {
        let r = admin.post("/api/v1/teacher-rates", bad.clone()).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text());
    }
    assert!(s.teacher_rates().await.unwrap().is_empty());

    // stored: 50.00 a lesson + 10.00 a student, from ten days ago
    let r = admin.post("/api/v1/teacher-rates", body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["rate"]["set_by"], "admin");
    assert!(r.json()["replaced"].is_null());
    let list = mgr.get("/api/v1/teacher-rates").await;
    assert_eq!(list.status, 200);
    let list = list.json();
    assert_eq!(list["rates"][0]["effective_from"], since);
    let teachers = list["teachers"].as_array().unwrap();
    assert!(teachers.contains(&json!("t")) && teachers.contains(&json!("teacher")));

    // the statement at the stored rates: 2 lessons, 3 students → 2 × 50 + 3 × 10
    let r = mgr.get("/api/v1/reports/finance").await.json();
    assert_eq!(r["pay_basis"], "stored");
    assert!(r["per_lesson_cents"].is_null());
    let t = &r["teaching"][0];
    assert_eq!(
        (t["lessons"].as_i64(), t["student_lessons"].as_i64()),
        (Some(2), Some(3))
    );
    assert_eq!(t["pay_cents"], 13_000);
    assert_eq!(t["stored_pay_cents"], 13_000);
    assert_eq!(t["unrated_lessons"], 0);
    assert_eq!(t["rates"][0]["effective_from"], since);
    // a what-if at the query's rates: pay at them, the stored figure alongside
    let r = mgr
        .get("/api/v1/reports/finance?per_lesson_cents=100")
        .await
        .json();
    assert_eq!(r["pay_basis"], "query");
    assert_eq!(r["per_lesson_cents"], 100);
    assert_eq!(r["teaching"][0]["pay_cents"], 200);
    assert_eq!(r["teaching"][0]["stored_pay_cents"], 13_000);
    let csv = mgr
        .get("/api/v1/reports/finance.csv?part=teaching")
        .await
        .text();
    assert!(
        csv.contains(r#""t","2","3","130.00","130.00","0""#),
        "{csv}"
    );

    // the page: the stored basis, the rates, the form for an admin of every campus only
    let cookie = app_session(a, "admin").await;
    let page = app_page(a, &cookie, "/app/finance").await;
    assert!(page.contains("data-basis=\"stored\""), "{page}");
    assert!(page.contains("<td class=pay>130.00</td>"), "{page}");
    assert!(page.contains("id=rate-form"), "{page}");
    let page = app_page(a, &cookie, "/app/finance?per_lesson=1").await;
    assert!(page.contains("data-basis=\"query\""), "{page}");
    assert!(page.contains("<td class=pay>2.00</td>"), "{page}");
    let cookie = app_session(a, "manager").await;
    let page = app_page(a, &cookie, "/app/finance").await;
    assert!(
        page.contains("id=rates") && !page.contains("id=rate-form"),
        "{page}"
    );
    // the form: a rate from today replaces nothing and pays today's lessons at it
    let r = admin
        .form(
            "/app/finance/rates",
            &format!("teacher=t&effective_from={today}&per_lesson=60.00&per_student=0"),
            None,
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some("/app/finance?done=rate_saved#rates")
    );
    let r = mgr.get("/api/v1/reports/finance").await.json();
    assert_eq!(r["teaching"][0]["pay_cents"], 12_000);
    // a bad field: the page again, saying which field (in Chinese for a Chinese reader)
    let r = admin
        .form(
            "/app/finance/rates?lang=zh",
            "teacher=nobody&effective_from=&per_lesson=1&per_student=0",
            None,
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("id=form-error"), "{}", r.text());
    assert!(r.text().contains("老师：请检查此项"), "{}", r.text());
    let r = admin
        .form(
            "/app/finance/rates",
            "teacher=t&effective_from=&per_lesson=abc&per_student=0",
            None,
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains("Pay per lesson: please check"),
        "{}",
        r.text()
    );
    assert_eq!(s.teacher_rates().await.unwrap().len(), 2);
}

/// [`finance_routes_audited`] on its own server, and it covers this feature's mutating routes.
async fn finance_routes_are_audited_as_their_staff(db: Db) {
    let sv = server(db, 1 << 20).await;
    let mut cov = std::collections::BTreeSet::new();
    finance_routes_audited(&sv.store, &mut cov, &sv.addr).await;
    assert_covers_mounted(
        &sv,
        &cov,
        &[
            ("POST", "/api/v1/teacher-rates"),
            ("POST", "/app/finance/rates"),
        ],
    );
}

/// The teacher-rate routes write audit rows naming the admin; refusals write none.
pub(super) async fn finance_routes_audited(
    st: &Store,
    cov: &mut std::collections::BTreeSet<(String, String)>,
    a: &str,
) {
    let admin = Client::login(a, "admin").await;
    let mgr = Client::login(a, "manager").await;
    let r = ("POST", "/api/v1/teacher-rates");
    refused(
        st,
        "teacher rate by a manager",
        403,
        mgr.post(
            r.1,
            json!({"teacher": "t", "per_lesson_cents": 1, "per_student_cents": 0}),
        ),
    )
    .await;
    refused(
        st,
        "teacher rate of nobody",
        422,
        admin.post(
            r.1,
            json!({"teacher": "nobody", "per_lesson_cents": 1, "per_student_cents": 0}),
        ),
    )
    .await;
    audited(
        st,
        cov,
        r,
        ("admin", "admin"),
        200,
        admin.post(
            r.1,
            json!({"teacher": "t", "effective_from": "2026-01-01", "per_lesson_cents": 5_000, "per_student_cents": 0}),
        ),
    )
    .await;
    let r = ("POST", "/app/finance/rates");
    refused(
        st,
        "teacher rate form by a manager",
        403,
        mgr.form(r.1, "teacher=t&per_lesson=1&per_student=0", None),
    )
    .await;
    audited(
        st,
        cov,
        r,
        ("admin", "admin"),
        303,
        admin.form(
            r.1,
            "teacher=t&effective_from=2026-02-01&per_lesson=55&per_student=5",
            None,
        ),
    )
    .await;
}
