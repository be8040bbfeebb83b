//! Issue 21 item 6, through the API and the staff app, on SQLite and PostgreSQL: classes edited,
//! weekly series with an end date, holidays, cancelling and moving a lesson (guardians told),
//! 1-on-1 slots, transfers; role, campus and audit checks; pages in both languages at the
//! school's local time. A child module of `api.rs` (its harness).

use super::*;

rollcall_testkit::per_backend!(
    timetable_routes_are_audited_as_their_staff,
    timetable_through_the_api_with_roles_and_campuses,
    web_timetable_pages_and_forms,
);

/// The Monday two weeks ahead, school-local for a school `off` minutes east of UTC.
fn monday_ahead(off: i64) -> chrono::NaiveDate {
    use chrono::Datelike;
    let today = (Utc::now() + Duration::minutes(off)).date_naive();
    today - Duration::days(i64::from(today.weekday().num_days_from_monday())) + Duration::days(14)
}

const POLICY: &str = r#"{"timing":{"early_minutes":15,"late_grace_minutes":5,"finalize_grace_minutes":15},"absence":{"unexcused":"full","excused":"free","short_notice":"half","notice_hours":24}}"#;

fn policy() -> Value {
    serde_json::from_str(POLICY).unwrap()
}

/// [`timetable_routes_audited`] on its own server: every route of this feature writes audit
/// rows naming the staff member, refusals none (the suite-wide check calls it too).
async fn timetable_routes_are_audited_as_their_staff(db: Db) {
    let sv = server(db, 1 << 20).await;
    let mut cov = std::collections::BTreeSet::new();
    timetable_routes_audited(&sv.store, &mut cov, &sv.addr).await;
    assert_covers_mounted(
        &sv,
        &cov,
        &[
            ("PUT", "/api/v1/classes/{id}"),
            ("POST", "/api/v1/classes/{id}/slots"),
            ("POST", "/api/v1/series"),
            ("PUT", "/api/v1/series/{id}/end"),
            ("POST", "/api/v1/lessons/{id}/cancel"),
            ("POST", "/api/v1/lessons/{id}/move"),
            ("POST", "/api/v1/holidays"),
            ("DELETE", "/api/v1/holidays/{day}"),
            ("POST", "/api/v1/students/{id}/transfer"),
            ("POST", "/app/classes"),
            ("POST", "/app/classes/{id}/edit"),
            ("POST", "/app/classes/{id}/series"),
            ("POST", "/app/classes/{id}/slots"),
            ("POST", "/app/classes/{id}/transfer"),
            ("POST", "/app/series/{id}/end"),
            ("POST", "/app/lessons/{id}/cancel"),
            ("POST", "/app/lessons/{id}/move"),
            ("POST", "/app/holidays"),
            ("POST", "/app/holidays/remove"),
        ],
    );
}

pub(super) async fn timetable_routes_audited(
    st: &Store,
    cov: &mut std::collections::BTreeSet<(String, String)>,
    a: &str,
) {
    let mgr = Client::login(a, "manager").await;
    let admin = Client::login(a, "admin").await;
    let mon = monday_ahead(st.tz_offset_minutes());
    // classes of their own (what the rest of the suite did to math and art does not matter)
    let r = ("POST", "/app/classes");
    refused(
        st,
        "class form without a name",
        303,
        mgr.form(
            "/app/classes",
            "id=tt-a&course=c&campus_id=north&teacher=tt-lee",
            None,
        ),
    )
    .await;
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        303,
        mgr.form(
            "/app/classes",
            "id=tt-a&name=TT+A&course=c&campus_id=north&teacher=tt-lee&capacity=8",
            None,
        ),
    )
    .await;
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        303,
        mgr.form(
            "/app/classes",
            "id=tt-b&name=TT+B&course=c&campus_id=north&teacher=tt-kim",
            None,
        ),
    )
    .await;
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        303,
        mgr.form(
            "/app/classes",
            "id=tt-one&name=One&course=c&campus_id=north&teacher=tt-wu&kind=one_on_one",
            None,
        ),
    )
    .await;
    let r = ("PUT", "/api/v1/classes/{id}");
    refused(
        st,
        "edit with capacity 0",
        422,
        mgr.send(
            "PUT",
            "/api/v1/classes/tt-a",
            json!({"name": "TT A", "teacher": "tt-lee", "capacity": 0, "policy": policy()}),
        ),
    )
    .await;
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        200,
        mgr.send(
            "PUT",
            "/api/v1/classes/tt-a",
            json!({"name": "TT A1", "teacher": "tt-lee", "capacity": 10, "policy": policy()}),
        ),
    )
    .await;
    let r = ("POST", "/app/classes/{id}/edit");
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        303,
        mgr.form(
            "/app/classes/tt-a/edit",
            "name=TT+A2&teacher=tt-lee&capacity=9&unexcused=half&excused=free&short_notice=half&notice_hours=12",
            None,
        ),
    )
    .await;
    let r = ("POST", "/api/v1/series");
    refused(
        st,
        "series in the past",
        422,
        mgr.post(
            "/api/v1/series",
            json!({"class_id": "tt-a", "weekday": "mon", "start_time": "16:00", "minutes": 60,
                   "first_day": "2020-01-06", "last_day": "2020-02-06"}),
        ),
    )
    .await;
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        201,
        mgr.post(
            "/api/v1/series",
            json!({"class_id": "tt-a", "weekday": "mon", "start_time": "16:00", "minutes": 60,
                   "first_day": mon, "last_day": mon + Duration::days(27)}),
        ),
    )
    .await;
    let r = ("POST", "/app/classes/{id}/series");
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        303,
        mgr.form(
            "/app/classes/tt-b/series",
            &format!(
                "weekday=tue&start_time=09:00&minutes=90&first_day={mon}&last_day={}",
                mon + Duration::days(20)
            ),
            None,
        ),
    )
    .await;
    let r = ("PUT", "/api/v1/series/{id}/end");
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        200,
        mgr.send(
            "PUT",
            "/api/v1/series/tt-a-s1/end",
            json!({"last_day": mon + Duration::days(20), "reason": "short term"}),
        ),
    )
    .await;
    let r = ("POST", "/app/series/{id}/end");
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        303,
        mgr.form(
            "/app/series/tt-b-s1/end",
            &format!(
                "class=tt-b&last_day={}&reason=shorter",
                mon + Duration::days(10)
            ),
            None,
        ),
    )
    .await;
    let first = format!("tt-a-s1-{}", mon.format("%Y%m%d"));
    let second = format!("tt-a-s1-{}", (mon + Duration::days(7)).format("%Y%m%d"));
    let r = ("POST", "/api/v1/lessons/{id}/move");
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        200,
        mgr.post(
            &format!("/api/v1/lessons/{first}/move"),
            json!({"start": format!("{}T10:00:00Z", mon + Duration::days(1)),
                   "end": format!("{}T11:00:00Z", mon + Duration::days(1)), "reason": "swap"}),
        ),
    )
    .await;
    let r = ("POST", "/app/lessons/{id}/move");
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        303,
        mgr.form(
            &format!("/app/lessons/{first}/move"),
            &format!(
                "day={}&start=12:00&end=13:00&reason=again",
                mon + Duration::days(1)
            ),
            None,
        ),
    )
    .await;
    let r = ("POST", "/api/v1/lessons/{id}/cancel");
    refused(
        st,
        "cancel without a reason",
        422,
        mgr.post(
            &format!("/api/v1/lessons/{first}/cancel"),
            json!({"reason": ""}),
        ),
    )
    .await;
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        200,
        mgr.post(
            &format!("/api/v1/lessons/{first}/cancel"),
            json!({"reason": "teacher ill"}),
        ),
    )
    .await;
    let r = ("POST", "/app/lessons/{id}/cancel");
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        303,
        mgr.form(
            &format!("/app/lessons/{second}/cancel"),
            "reason=flooded",
            None,
        ),
    )
    .await;
    let r = ("POST", "/api/v1/classes/{id}/slots");
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        201,
        mgr.post(
            "/api/v1/classes/tt-one/slots",
            json!({"start": format!("{}T08:00:00Z", mon + Duration::days(3)), "minutes": 60}),
        ),
    )
    .await;
    let r = ("POST", "/app/classes/{id}/slots");
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        303,
        mgr.form(
            "/app/classes/tt-one/slots",
            &format!("day={}&start=14:00&minutes=45", mon + Duration::days(3)),
            None,
        ),
    )
    .await;
    // holidays: an account of every campus
    let day = mon + Duration::days(5);
    let r = ("POST", "/api/v1/holidays");
    audited(
        st,
        cov,
        r,
        ("admin", "admin"),
        201,
        admin.post(
            "/api/v1/holidays",
            json!({"day": day, "name": "Sports day"}),
        ),
    )
    .await;
    let r = ("DELETE", "/api/v1/holidays/{day}");
    audited(
        st,
        cov,
        r,
        ("admin", "admin"),
        200,
        admin.send("DELETE", &format!("/api/v1/holidays/{day}"), json!({})),
    )
    .await;
    let r = ("POST", "/app/holidays");
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        303,
        mgr.form("/app/holidays", &format!("day={day}&name=Fair"), None),
    )
    .await;
    let r = ("POST", "/app/holidays/remove");
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        303,
        mgr.form("/app/holidays/remove", &format!("day={day}"), None),
    )
    .await;
    // transfers of a student of their own
    st.create_student(&NewStudent {
        id: "s-tt".into(),
        name: "Student tt".into(),
        home_campus_id: Some("north".into()),
    })
    .await
    .unwrap();
    st.enroll("tt-a", "s-tt", Utc::now()).await.unwrap();
    let r = ("POST", "/api/v1/students/{id}/transfer");
    refused(
        st,
        "transfer to the same class",
        422,
        mgr.post(
            "/api/v1/students/s-tt/transfer",
            json!({"from_class": "tt-a", "to_class": "tt-a", "reason": "x"}),
        ),
    )
    .await;
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        200,
        mgr.post(
            "/api/v1/students/s-tt/transfer",
            json!({"from_class": "tt-a", "to_class": "tt-b", "reason": "level"}),
        ),
    )
    .await;
    let r = ("POST", "/app/classes/{id}/transfer");
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        303,
        mgr.form(
            "/app/classes/tt-b/transfer",
            "student=s-tt&to_class=tt-a&reason=back",
            None,
        ),
    )
    .await;
}

async fn timetable_through_the_api_with_roles_and_campuses(db: Db) {
    let sv = server(db, 1 << 20).await;
    let (a, s) = (&sv.addr, &sv.store);
    let mgr = Client::login(a, "manager").await;
    let desk = Client::login(a, "front_desk").await;
    add_staff(s, "mgr_north", Role::Manager, &["north"]).await;
    let north = Client::login(a, "mgr_north").await;
    let mon = monday_ahead(0);
    // a series for art (south) by the manager of every campus; the north manager may not
    let body = json!({"class_id": "art", "weekday": "wed", "start_time": "15:00", "minutes": 60,
                      "first_day": mon, "last_day": mon + Duration::days(13)});
    assert_eq!(north.post("/api/v1/series", body.clone()).await.status, 403);
    assert_eq!(desk.post("/api/v1/series", body.clone()).await.status, 403);
    let r = mgr.post("/api/v1/series", body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let j = r.json();
    assert_eq!(j["series_id"], "art-s1");
    assert_eq!(j["added"].as_array().unwrap().len(), 2);
    let l = j["added"][0].as_str().unwrap().to_string();
    // a field error names its field
    let r = mgr
        .post(
            "/api/v1/series",
            json!({"class_id": "art", "weekday": "someday", "start_time": "15:00", "minutes": 60,
                   "first_day": mon, "last_day": mon}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("weekday"), "{}", r.text());
    // the series and the day's lessons are listed (the API's lists)
    let r = north.get("/api/v1/classes/art/series").await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = desk.get("/api/v1/classes/art/series").await;
    assert_eq!(r.json()["series"][0]["lessons"], 2, "{}", r.text());
    // cancelling: the north manager may not touch a south lesson, the desk may not at all
    let cancel = format!("/api/v1/lessons/{l}/cancel");
    assert_eq!(
        north.post(&cancel, json!({"reason": "x"})).await.status,
        403
    );
    assert_eq!(desk.post(&cancel, json!({"reason": "x"})).await.status, 403);
    // s2 is in art with a guardian who takes notices
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
        id: "g2".into(),
        student_id: "s2".into(),
        name: "Parent".into(),
        phone: Some("+8613900000000".into()),
        email: None,
        language: "zh-CN".into(),
        notify_prefs: String::new(),
    })
    .await
    .unwrap();
    let r = mgr.post(&cancel, json!({"reason": "teacher ill"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        (
            r.json()["students"][0].as_str(),
            r.json()["notices"].as_i64()
        ),
        (Some("s2"), Some(1))
    );
    let r = desk
        .get(&format!("/api/v1/lessons?date={}", mon + Duration::days(2)))
        .await;
    let j = r.json();
    assert!(j["lessons"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["id"] != l.as_str()));
    assert_eq!(j["cancelled"][0]["id"], l.as_str(), "{}", r.text());
    assert_eq!(j["cancelled"][0]["reason"], "teacher ill");
    // the guardian's notice says it in Chinese
    let rows = s.outbox(None, 50).await.unwrap();
    let n = rows
        .iter()
        .find(|r| r.kind == NoticeKind::LessonChanged)
        .expect("a lesson notice");
    assert_eq!(n.params["change"], "cancelled");
    // a lesson running now with a check-in cannot be cancelled
    let r = desk
        .post("/api/v1/attendance/checkins", json!({"student_id": "s1"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = mgr
        .post("/api/v1/lessons/math-now/cancel", json!({"reason": "x"}))
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    // holidays need an account of every campus
    let h = json!({"day": mon + Duration::days(9), "name": "Fair"});
    assert_eq!(north.post("/api/v1/holidays", h.clone()).await.status, 403);
    let r = mgr.post("/api/v1/holidays", h).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.json()["cancelled"][0],
        format!("art-s1-{}", (mon + Duration::days(9)).format("%Y%m%d"))
    );
    let r = desk.get("/api/v1/holidays").await;
    assert_eq!(r.json()["holidays"][0]["name"], "Fair", "{}", r.text());
    // a transfer across campuses needs both in reach; the package (every campus) stays
    let before = s.balance("s1", Utc::now()).await.unwrap().available_units;
    let t = json!({"from_class": "math", "to_class": "art", "reason": "moved"});
    assert_eq!(
        north
            .post("/api/v1/students/s1/transfer", t.clone())
            .await
            .status,
        403
    );
    let r = mgr.post("/api/v1/students/s1/transfer", t).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        s.balance("s1", Utc::now()).await.unwrap().available_units,
        before
    );
    // edit: a capacity below the enrolled number is refused (art has s2 and now s1)
    let r = mgr
        .send(
            "PUT",
            "/api/v1/classes/art",
            json!({"name": "art class", "teacher": "t", "capacity": 1, "policy": policy()}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("capacity"), "{}", r.text());
    let r = mgr
        .send(
            "PUT",
            "/api/v1/classes/art",
            json!({"name": "art class", "teacher": "t", "capacity": 2, "policy": policy()}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = mgr
        .post(
            "/api/v1/classes/art/enrollments",
            json!({"student_id": "s3"}),
        )
        .await;
    assert_eq!(r.status, 422, "full: {}", r.text());
}

async fn web_timetable_pages_and_forms(db: Db) {
    // a school at UTC+8: a lesson at 08:00 UTC is at 16:00 on every page
    let sv = server_at(db, 480).await;
    let (a, s) = (&sv.addr, &sv.store);
    let mon = monday_ahead(480);
    let mgr = Client::login(a, "manager").await;
    let desk = Client::login(a, "front_desk").await;
    let r = mgr
        .form(
            "/app/classes/math/series",
            &format!(
                "weekday=thu&start_time=16:00&minutes=90&first_day={mon}&last_day={}",
                mon + Duration::days(6)
            ),
            None,
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/app/classes/math?done=series"));
    let thu = mon + Duration::days(3);
    let l = s
        .lesson(&format!("math-s1-{}", thu.format("%Y%m%d")))
        .await
        .unwrap();
    assert_eq!(l.start.to_rfc3339(), format!("{thu}T08:00:00+00:00"));
    // the week page in both languages, at local time
    for (lang, word) in [("en", "Thursday"), ("zh", "星期四")] {
        let p = desk
            .get(&format!("/app/timetable?date={thu}&lang={lang}"))
            .await
            .text();
        assert!(p.contains("16:00–17:30"), "{p}");
        assert!(p.contains(word), "{p}");
    }
    // the lesson page: the desk sees who is booked, no move or cancel forms; a manager does
    let lp = format!("/app/lessons/{}", l.id);
    let p = desk.get(&lp).await.text();
    assert!(p.contains("Student s1") && !p.contains("id=cancel"), "{p}");
    let p = mgr.get(&format!("{lp}?lang=zh")).await.text();
    assert!(p.contains("id=cancel") && p.contains("停课"), "{p}");
    assert!(
        desk.form(&format!("{lp}/cancel"), "reason=x", None)
            .await
            .status
            == 403
    );
    // a refused form comes back with the field named in the reader's language
    let r = mgr
        .form(
            &format!("{lp}/move"),
            &format!("day={thu}&start=16:00&end=17:00&reason="),
            None,
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let back = r.header("location").unwrap().to_string();
    assert!(back.starts_with(&lp) && back.contains("err="), "{back}");
    let p = mgr.get(&format!("{back}&lang=zh")).await.text();
    assert!(p.contains("id=form-error") && p.contains("原因"), "{p}");
    // moved to 18:00 local on Friday
    let fri = thu + Duration::days(1);
    let r = mgr
        .form(
            &format!("{lp}/move"),
            &format!("day={fri}&start=18:00&end=19:30&reason=hall+booked"),
            None,
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        s.lesson(&l.id).await.unwrap().start.to_rfc3339(),
        format!("{fri}T10:00:00+00:00")
    );
    // the classes page and the class page: names, capacity, series in words
    let p = mgr.get("/app/classes?lang=zh").await.text();
    assert!(p.contains("math class") && p.contains("新建班级"), "{p}");
    let p = mgr.get("/app/classes/math").await.text();
    assert!(
        p.contains("Thursday 16:00") && p.contains("id=edit-class"),
        "{p}"
    );
    assert!(
        p.contains("Student s3") && p.contains("/app/classes/math/transfer"),
        "{p}"
    );
    let p = desk.get("/app/classes/math").await.text();
    assert!(
        !p.contains("id=edit-class") && !p.contains("/transfer"),
        "{p}"
    );
    // holidays: the form only for a manager of every campus
    add_staff(s, "mgr_north", Role::Manager, &["north"]).await;
    let north = Client::login(a, "mgr_north").await;
    assert!(!north
        .get("/app/holidays")
        .await
        .text()
        .contains("id=new-holiday"));
    let r = north
        .form("/app/holidays", &format!("day={fri}&name=Fair"), None)
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = mgr
        .form("/app/holidays", &format!("day={fri}&name=Fair"), None)
        .await;
    assert_eq!(r.header("location"), Some("/app/holidays?done=holiday"));
    assert!(matches!(
        s.lesson(&l.id).await,
        Err(rollcall_ledger::LedgerError::NotFound { .. })
    ));
    let p = desk
        .get(&format!("/app/timetable?date={fri}&lang=zh"))
        .await
        .text();
    assert!(p.contains("已取消") && p.contains("holiday: Fair"), "{p}");
    // the navigation has the timetable
    assert!(desk.get("/app").await.text().contains("/app/timetable"));
}
