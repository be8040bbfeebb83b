//! Issue 21 items 4 and 5, through the API and the staff app, on SQLite and PostgreSQL:
//! attendance corrections that fix the money, leave requests entered and decided by staff, an
//! approved leave excused at finalisation, make-ups linked to the missed lesson on a campus the
//! package covers, the monthly make-up number. A child module of `api.rs` (its harness).

use super::*;

rollcall_testkit::per_backend!(
    correction_reverses_or_charges_the_lesson,
    leave_is_entered_decided_and_excused_at_finalisation,
    makeup_is_linked_covered_and_counted,
    web_leave_makeup_and_correction_pages,
    leave_routes_are_audited_as_their_staff,
);

/// [`leave_routes_audited`] on its own server: every route of this feature writes audit rows
/// naming the staff member, refusals none (the suite-wide check calls it too).
async fn leave_routes_are_audited_as_their_staff(db: Db) {
    let sv = server(db, 1 << 20).await;
    let mut cov = std::collections::BTreeSet::new();
    leave_routes_audited(&sv.store, &mut cov, &sv.addr).await;
    assert_covers_mounted(
        &sv,
        &cov,
        &[
            (
                "POST",
                "/api/v1/lessons/{id}/attendance/{student}/correction",
            ),
            ("POST", "/api/v1/students/{id}/leaves"),
            ("POST", "/api/v1/students/{id}/leaves/{lesson}/decision"),
            ("POST", "/api/v1/students/{id}/makeups"),
            ("PUT", "/api/v1/settings/makeups"),
            ("POST", "/app/attendance/correct"),
            ("POST", "/app/leave/request"),
            ("POST", "/app/leave/decide"),
            ("POST", "/app/leave/makeup"),
            ("POST", "/app/leave/limit"),
        ],
    );
}

/// Adds a lesson of `class` from `start` for `minutes`, taught by `teacher` (or the class's).
async fn lesson(
    s: &Store,
    id: &str,
    class: &str,
    start: chrono::DateTime<Utc>,
    teacher: Option<&str>,
) {
    s.add_lesson(&NewLesson {
        id: id.into(),
        class_id: class.into(),
        room_id: None,
        teacher: teacher.map(str::to_string),
        start,
        end: start + Duration::minutes(60),
    })
    .await
    .unwrap();
}

async fn available(s: &Store, student: &str) -> i64 {
    s.balance(student, Utc::now())
        .await
        .unwrap()
        .available_units
}

async fn correction_reverses_or_charges_the_lesson(db: Db) {
    let sv = server(db, 1 << 20).await;
    let (a, s) = (&sv.addr, &sv.store);
    let desk = Client::login(a, "front_desk").await;
    let r = desk
        .post("/api/v1/attendance/checkins", json!({"student_id": "s1"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(available(s, "s1").await, 900);
    let path = "/api/v1/lessons/math-now/attendance/s1/correction";
    // a reason is required, the status must be one
    let r = desk
        .post(path, json!({"status": "excused", "reason": "  "}))
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (422, "invalid"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("reason"), "{}", r.text());
    let r = desk
        .post(path, json!({"status": "gone", "reason": "x"}))
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(available(s, "s1").await, 900, "refusals change nothing");
    // excused (the class charges nothing for an excused absence): the deduction is reversed
    let r = desk
        .post(
            path,
            json!({"status": "excused", "reason": "sick note brought in"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(
        (
            &j["before"],
            &j["after"],
            &j["charged_before"],
            &j["charged_after"]
        ),
        // (the lesson started 5 minutes ago: a check-in now is late)
        (&json!("late"), &json!("excused"), &json!(100), &json!(0))
    );
    assert_eq!(j["entries"][0]["kind"], "reversal");
    assert_eq!(j["balance"]["available_units"], 1000);
    assert_eq!(available(s, "s1").await, 1000);
    let note = s.entries(Some("s1")).await.unwrap();
    assert_eq!(
        note.last().unwrap().note.as_deref(),
        Some("sick note brought in")
    );
    // the same status again: nothing to correct
    let r = desk
        .post(path, json!({"status": "excused", "reason": "again"}))
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    // back to present: charged again, once
    let r = desk
        .post(
            path,
            json!({"status": "present", "reason": "was there after all"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["charged_after"], 100);
    assert_eq!(r.json()["entries"][0]["kind"], "deduction");
    assert_eq!(available(s, "s1").await, 900);
    // absent: the class charges a whole lesson for an unexcused absence; nothing moves
    let r = desk
        .post(
            path,
            json!({"status": "absent", "reason": "left before the start"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        (
            r.json()["charged_after"].clone(),
            r.json()["entries"].clone()
        ),
        (json!(100), json!([]))
    );
    assert_eq!(available(s, "s1").await, 900);
    // audited: who, and the reason, before and after
    let row = s
        .audit_rows(20)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.action == "correct" && r.entity_id == "math-now/s1")
        .unwrap();
    assert_eq!(
        (row.actor.as_str(), row.actor_role.as_deref()),
        ("front_desk", Some("front_desk"))
    );
    assert_eq!(
        row.after.as_ref().unwrap()["reason"],
        "left before the start"
    );
    assert_eq!(row.before.as_ref().unwrap()["status"], "present");
    assert_eq!(row.after.as_ref().unwrap()["status"], "absent");

    // a teacher corrects only the lessons they teach
    let teacher = Client::login(a, "teacher").await;
    let r = teacher
        .post(path, json!({"status": "present", "reason": "mine?"}))
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (403, "forbidden_teacher"),
        "{}",
        r.text()
    );
    lesson(
        s,
        "math-own",
        "math",
        Utc::now() - Duration::minutes(30),
        Some("teacher"),
    )
    .await;
    // nothing recorded yet for s3: the correction records it and charges
    let r = teacher
        .post(
            "/api/v1/lessons/math-own/attendance/s3/correction",
            json!({"status": "late", "reason": "came in by the side door"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        (
            r.json()["before"].clone(),
            r.json()["charged_after"].clone()
        ),
        (Value::Null, json!(100))
    );
    assert_eq!(available(s, "s3").await, 900);
    // another campus, a viewer, a lesson not started, a student not booked
    let south = Client::login(a, "desk_south").await;
    let r = south
        .post(path, json!({"status": "present", "reason": "x"}))
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let viewer = Client::login(a, "viewer").await;
    let r = viewer
        .post(path, json!({"status": "present", "reason": "x"}))
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    lesson(
        s,
        "math-later",
        "math",
        Utc::now() + Duration::days(2),
        None,
    )
    .await;
    let r = desk
        .post(
            "/api/v1/lessons/math-later/attendance/s1/correction",
            json!({"status": "absent", "reason": "x"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let r = desk
        .post(
            "/api/v1/lessons/math-now/attendance/s2/correction",
            json!({"status": "present", "reason": "x"}),
        )
        .await;
    assert_eq!(r.status, 422, "not booked: {}", r.text());
    let r = desk
        .post(
            "/api/v1/lessons/nope/attendance/s1/correction",
            json!({"status": "present", "reason": "x"}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
}

async fn leave_is_entered_decided_and_excused_at_finalisation(db: Db) {
    let sv = server(db, 1 << 20).await;
    let (a, s) = (&sv.addr, &sv.store);
    let start = Utc::now() + Duration::days(3);
    lesson(s, "math-next", "math", start, None).await;
    lesson(s, "art-next", "art", start, None).await;
    let desk = Client::login(a, "front_desk").await;
    let leaves = "/api/v1/students/s1/leaves";
    // each field's message
    for (body, word) in [
        (json!({"lesson_id": "math-next", "reason": " "}), "reason"),
        (json!({"lesson_id": "nope", "reason": "ill"}), "lesson_id"),
        (
            json!({"lesson_id": "art-next", "reason": "ill"}),
            "not booked",
        ),
        (json!({"lesson_id": "math-now", "reason": "ill"}), "started"),
    ] {
        let r = desk.post(leaves, body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text());
        assert!(r.text().contains(word), "{body}: {}", r.text());
    }
    for who in ["teacher", "viewer"] {
        let c = Client::login(a, who).await;
        let r = c
            .post(leaves, json!({"lesson_id": "math-next", "reason": "ill"}))
            .await;
        assert_eq!(r.status, 403, "{who}: {}", r.text());
    }
    let south = Client::login(a, "desk_south").await;
    let r = south
        .post(leaves, json!({"lesson_id": "math-next", "reason": "ill"}))
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = desk
        .post(
            leaves,
            json!({"lesson_id": "math-next", "reason": "family trip"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["leave"]["state"], "pending");
    assert_eq!(r.json()["leave"]["requested_by"], "front_desk");
    let r = desk
        .post(leaves, json!({"lesson_id": "math-next", "reason": "again"}))
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("pending already"), "{}", r.text());
    // s3 asks too, and is refused
    let r = desk
        .post(
            "/api/v1/students/s3/leaves",
            json!({"lesson_id": "math-next", "reason": "football"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // the list: pending, of the reader's campuses
    let r = desk.get("/api/v1/leaves?state=pending").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["leaves"].as_array().unwrap().len(), 2);
    let r = south.get("/api/v1/leaves?state=pending").await;
    assert_eq!(r.json()["leaves"], json!([]));
    let r = desk.get("/api/v1/leaves?state=maybe").await;
    assert_eq!(r.status, 422, "{}", r.text());
    // decisions
    let decide = "/api/v1/students/s1/leaves/math-next/decision";
    let r = desk.post(decide, json!({"decision": "perhaps"})).await;
    assert_eq!(r.status, 422, "{}", r.text());
    let viewer = Client::login(a, "viewer").await;
    let r = viewer.post(decide, json!({"decision": "approve"})).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let mgr = Client::login(a, "manager").await;
    let r = mgr
        .post(decide, json!({"decision": "approve", "note": "ok"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let l = &r.json()["leave"];
    assert_eq!(
        (&l["state"], &l["decided_by"], &l["decision_note"]),
        (&json!("approved"), &json!("manager"), &json!("ok"))
    );
    let r = desk.post(decide, json!({"decision": "refuse"})).await;
    assert_eq!(r.status, 422, "decided already: {}", r.text());
    let r = desk
        .post(
            "/api/v1/students/s3/leaves/math-next/decision",
            json!({"decision": "refuse"}),
        )
        .await;
    assert_eq!(r.json()["leave"]["state"], "refused", "{}", r.text());
    let r = desk
        .post(
            "/api/v1/students/s2/leaves/math-next/decision",
            json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(r.status, 404, "no such request: {}", r.text());
    // audited as the deciding staff member
    let row = s
        .audit_rows(10)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.action == "approve" && r.entity == "leave")
        .unwrap();
    assert_eq!(row.actor, "manager");
    // finalisation: the approved leave (three days' notice) is excused and free; the refused
    // one is an absence charged in full
    let (s1, s3) = (available(s, "s1").await, available(s, "s3").await);
    s.finalize(start + Duration::hours(2)).await.unwrap();
    let status = |st: &str| {
        let st = st.to_string();
        async move {
            let b = s.board(start, start + Duration::minutes(1)).await.unwrap();
            b.iter()
                .find(|l| l.lesson.id == "math-next")
                .unwrap()
                .students
                .iter()
                .find(|x| x.student_id == st)
                .unwrap()
                .status
                .clone()
        }
    };
    assert_eq!(status("s1").await, "excused");
    assert_eq!(status("s3").await, "absent");
    let charged = |st: &'static str| async move {
        s.entries(Some(st))
            .await
            .unwrap()
            .iter()
            .filter(|e| e.entry.lesson_id.as_deref() == Some("math-next"))
            .map(|e| -e.entry.units)
            .sum::<i64>()
    };
    assert_eq!((charged("s1").await, charged("s3").await), (0, 100));
    // (math-now, whose absences the same run finalised, costs both a lesson)
    assert_eq!(available(s, "s1").await, s1 - 100);
    assert_eq!(available(s, "s3").await, s3 - 200);
}

async fn makeup_is_linked_covered_and_counted(db: Db) {
    let sv = server(db, 1 << 20).await;
    let (a, s) = (&sv.addr, &sv.store);
    let start = Utc::now() + Duration::days(2);
    lesson(s, "math-next", "math", start, None).await;
    lesson(s, "math-after", "math", start + Duration::days(1), None).await;
    lesson(s, "art-next", "art", start + Duration::hours(3), None).await;
    lesson(s, "art-after", "art", start + Duration::days(2), None).await;
    // s9: north only, with a package for north only
    s.create_student(&NewStudent {
        id: "s9".into(),
        name: "Student s9".into(),
        home_campus_id: Some("north".into()),
    })
    .await
    .unwrap();
    s.enroll("math", "s9", Utc::now() - Duration::days(1))
        .await
        .unwrap();
    s.purchase(&NewPackage {
        id: "p-s9".into(),
        student_id: "s9".into(),
        campus_id: Some("north".into()),
        lessons: 10,
        unit_price_cents: 1000,
        price_paid_cents: None,
        bought_at: Utc::now() - Duration::days(1),
        expires_at: Utc::now() + Duration::days(100),
    })
    .await
    .unwrap();
    let desk = Client::login(a, "front_desk").await;
    let book = |st: &str| format!("/api/v1/students/{st}/makeups");
    // the package of s9 does not cover the south campus
    let r = desk
        .post(
            &book("s9"),
            json!({"missed_lesson_id": "math-next", "lesson_id": "art-next"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains("no package of student s9 covers"),
        "{}",
        r.text()
    );
    // the same class, an unknown lesson, a lesson the student did not miss
    for (body, word) in [
        (
            json!({"missed_lesson_id": "math-next", "lesson_id": "math-after"}),
            "another class",
        ),
        (
            json!({"missed_lesson_id": "math-next", "lesson_id": "nope"}),
            "lesson_id",
        ),
        (
            json!({"missed_lesson_id": "art-next", "lesson_id": "art-after"}),
            "not booked",
        ),
    ] {
        let r = desk.post(&book("s1"), body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text());
        assert!(r.text().contains(word), "{body}: {}", r.text());
    }
    let south = Client::login(a, "desk_south").await;
    let r = south
        .post(
            &book("s1"),
            json!({"missed_lesson_id": "math-next", "lesson_id": "art-next"}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    // the school allows one make-up a month: a manager of every campus sets it
    let r = desk
        .send(
            "PUT",
            "/api/v1/settings/makeups",
            json!({"makeups_per_month": 1}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let mgr = Client::login(a, "manager").await;
    let r = mgr
        .send(
            "PUT",
            "/api/v1/settings/makeups",
            json!({"makeups_per_month": 101}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let r = mgr
        .send(
            "PUT",
            "/api/v1/settings/makeups",
            json!({"makeups_per_month": 1}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        desk.get("/api/v1/settings/makeups").await.json()["makeups_per_month"],
        1
    );
    // s1 makes math-next up in art-next (south: s1's package covers every campus)
    let r = desk
        .post(
            &book("s1"),
            json!({"missed_lesson_id": "math-next", "lesson_id": "art-next"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let j = r.json();
    assert_eq!(
        (
            &j["missed_lesson_id"],
            &j["lesson"]["id"],
            &j["makeups_this_month"],
            &j["over_limit"]
        ),
        (
            &json!("math-next"),
            &json!("art-next"),
            &json!(1),
            &json!(false)
        )
    );
    let r = desk
        .post(
            &book("s1"),
            json!({"missed_lesson_id": "math-next", "lesson_id": "art-after"}),
        )
        .await;
    assert_eq!(r.status, 422, "made up already: {}", r.text());
    assert!(r.text().contains("made up already"), "{}", r.text());
    // the second make-up this month passes the school's number: the booking says so
    let r = desk
        .post(
            &book("s1"),
            json!({"missed_lesson_id": "math-after", "lesson_id": "art-after"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        (
            r.json()["makeups_this_month"].clone(),
            r.json()["over_limit"].clone()
        ),
        (json!(2), json!(true))
    );
    // …and raises one alert for the staff
    let alerts = s.alerts(None).await.unwrap();
    let many: Vec<_> = alerts
        .iter()
        .filter(|a| a.kind == rollcall_domain::ledger::AlertKind::ManyMakeups)
        .collect();
    assert_eq!(many.len(), 1, "{alerts:?}");
    assert_eq!(many[0].student_id, "s1");
    assert!(
        many[0].message.contains("2 make-ups"),
        "{}",
        many[0].message
    );
    let r = desk.get("/api/v1/alerts?state=open").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("many_makeups"), "{}", r.text());
    let p = desk.get("/app/students/s1").await.text();
    assert!(
        p.contains("More make-ups this month than the school allows"),
        "{p}"
    );
    // the make-up lesson has s1 on its roster; the link is stored and audited
    let b = s.board(start, start + Duration::days(3)).await.unwrap();
    let art = b.iter().find(|l| l.lesson.id == "art-next").unwrap();
    assert!(art.students.iter().any(|x| x.student_id == "s1"));
    assert_eq!(
        s.makeups_of("s1").await.unwrap(),
        vec!["math-after", "math-next"]
    );
    let row = s
        .audit_rows(10)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.entity == "makeup")
        .unwrap();
    assert_eq!(row.actor, "front_desk");
    assert_eq!(row.after.as_ref().unwrap()["over_limit"], true);
}

async fn web_leave_makeup_and_correction_pages(db: Db) {
    let sv = server(db, 1 << 20).await;
    let (a, s) = (&sv.addr, &sv.store);
    let start = Utc::now() + Duration::days(2);
    lesson(s, "math-next", "math", start, None).await;
    lesson(s, "art-next", "art", start + Duration::hours(3), None).await;
    let desk = Client::login(a, "front_desk").await;
    // a stale form token, a missing field: refused with a page that says which
    let r = desk
        .form(
            "/app/leave/request",
            "student=s1&lesson_id=math-next&reason=ill",
            Some("stale"),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = desk
        .form("/app/leave/request", "student=s1&lesson_id=math-next", None)
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("reason: required"), "{}", r.text());
    assert!(r.text().contains("<html"), "a page: {}", r.text());
    // the student's section offers the upcoming lesson
    let p = desk.get("/app/leave?student=s1").await.text();
    assert!(p.contains("id=leave-form"), "{p}");
    assert!(p.contains("value=\"math-next\""), "{p}");
    let r = desk
        .form(
            "/app/leave/request",
            "student=s1&lesson_id=math-next&reason=dentist",
            None,
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some("/app/leave?student=s1&done=requested")
    );
    // pending, with the buttons for the front desk and none for a viewer
    let p = desk.get("/app/leave").await.text();
    assert!(
        p.contains("dentist") && p.contains("/app/leave/decide"),
        "{p}"
    );
    let viewer = Client::login(a, "viewer").await;
    let p = viewer.get("/app/leave").await.text();
    assert!(p.contains("dentist"), "{p}");
    assert!(
        !p.contains("/app/leave/decide") && !p.contains("/app/leave/limit"),
        "{p}"
    );
    let r = viewer
        .form(
            "/app/leave/decide",
            "student=s1&lesson_id=math-next&decision=approve",
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = desk
        .form(
            "/app/leave/decide",
            "student=s1&lesson_id=math-next&decision=approve&note=",
            None,
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    // the make-up, chosen among another class's lessons
    let p = desk.get("/app/leave?student=s1&done=approved").await.text();
    assert!(p.contains("id=done"), "{p}");
    assert!(
        p.contains("class=makeup-form") && p.contains("value=\"art-next\""),
        "{p}"
    );
    let r = desk
        .form(
            "/app/leave/makeup",
            "student=s1&missed_lesson_id=math-next&lesson_id=art-next",
            None,
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let to = r.header("location").unwrap().to_string();
    assert!(to.contains("done=booked&n=1&limit=4"), "{to}");
    let p = desk.get(&to).await.text();
    assert!(p.contains("make-up: art-next"), "{p}");
    // the limit form: a manager's; a bad number is a message
    let mgr = Client::login(a, "manager").await;
    let r = mgr
        .form("/app/leave/limit", "makeups_per_month=lots", None)
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("makeups_per_month"), "{}", r.text());
    let r = desk
        .form("/app/leave/limit", "makeups_per_month=2", None)
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    // the student page leads here
    let p = desk.get("/app/students/s1").await.text();
    assert!(
        p.contains("href=\"/app/students/s1/attendance\"")
            && p.contains("href=\"/app/leave?student=s1\""),
        "{p}"
    );
    // in Chinese
    let p = desk.get("/app/leave?lang=zh").await.text();
    assert!(p.contains("请假与补课") && p.contains("最近的审批"), "{p}");

    // corrections on the student's attendance page
    let r = desk
        .post("/api/v1/attendance/checkins", json!({"student_id": "s1"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let p = desk.get("/app/students/s1/attendance").await.text();
    assert!(
        p.contains("class=correct-form") && p.contains("math-now"),
        "{p}"
    );
    let teacher = Client::login(a, "teacher").await;
    let p = teacher.get("/app/students/s1/attendance").await.text();
    assert!(
        !p.contains("class=correct-form"),
        "not the teacher's lesson: {p}"
    );
    let p = viewer.get("/app/students/s1/attendance").await.text();
    assert!(!p.contains("class=correct-form"), "{p}");
    let r = desk
        .form(
            "/app/attendance/correct",
            "student=s1&lesson_id=math-now&status=excused&reason=",
            None,
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let r = desk
        .form(
            "/app/attendance/correct",
            "student=s1&lesson_id=math-now&status=excused&reason=sick",
            None,
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(available(s, "s1").await, 1000);
    let p = desk
        .get("/app/students/s1/attendance?done=corrected")
        .await
        .text();
    assert!(p.contains("id=done"), "{p}");
    let south = Client::login(a, "desk_south").await;
    let r = south.get("/app/students/s1/attendance").await;
    assert_eq!(r.status, 403, "{}", r.text());
}

/// The audit checks of this feature's mutating routes (called by
/// `every_mutating_route_is_audited_and_refusals_are_not`, which fails on a route left out).
pub(super) async fn leave_routes_audited(
    st: &Store,
    cov: &mut std::collections::BTreeSet<(String, String)>,
    a: &str,
) {
    // a student of their own: what the rest of the test did to s1…s3 does not matter here
    st.create_student(&NewStudent {
        id: "s-audit".into(),
        name: "Student audit".into(),
        home_campus_id: Some("north".into()),
    })
    .await
    .unwrap();
    st.enroll("math", "s-audit", Utc::now() - Duration::days(1))
        .await
        .unwrap();
    st.purchase(&NewPackage {
        id: "p-s-audit".into(),
        student_id: "s-audit".into(),
        campus_id: None,
        lessons: 10,
        unit_price_cents: 1000,
        price_paid_cents: None,
        bought_at: Utc::now() - Duration::days(1),
        expires_at: Utc::now() + Duration::days(100),
    })
    .await
    .unwrap();
    let start = Utc::now() + Duration::days(2);
    lesson(st, "math-audit", "math", start, None).await;
    lesson(st, "math-audit2", "math", start + Duration::days(1), None).await;
    lesson(st, "art-audit", "art", start + Duration::hours(3), None).await;
    lesson(st, "art-audit2", "art", start + Duration::hours(5), None).await;
    let desk = Client::login(a, "front_desk").await;
    let mgr = Client::login(a, "manager").await;
    let r = ("POST", "/api/v1/students/{id}/leaves");
    refused(
        st,
        "leave without a reason",
        422,
        desk.post(
            "/api/v1/students/s-audit/leaves",
            json!({"lesson_id": "math-audit", "reason": ""}),
        ),
    )
    .await;
    audited(
        st,
        cov,
        r,
        ("front_desk", "front_desk"),
        201,
        desk.post(
            "/api/v1/students/s-audit/leaves",
            json!({"lesson_id": "math-audit", "reason": "ill"}),
        ),
    )
    .await;
    let r = ("POST", "/api/v1/students/{id}/leaves/{lesson}/decision");
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        200,
        mgr.post(
            "/api/v1/students/s-audit/leaves/math-audit/decision",
            json!({"decision": "approve"}),
        ),
    )
    .await;
    let r = ("POST", "/api/v1/students/{id}/makeups");
    refused(
        st,
        "make-up in the same class",
        422,
        desk.post(
            "/api/v1/students/s-audit/makeups",
            json!({"missed_lesson_id": "math-audit", "lesson_id": "math-audit2"}),
        ),
    )
    .await;
    audited(
        st,
        cov,
        r,
        ("front_desk", "front_desk"),
        201,
        desk.post(
            "/api/v1/students/s-audit/makeups",
            json!({"missed_lesson_id": "math-audit", "lesson_id": "art-audit"}),
        ),
    )
    .await;
    let r = ("PUT", "/api/v1/settings/makeups");
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        200,
        mgr.send("PUT", r.1, json!({"makeups_per_month": 5})),
    )
    .await;
    let r = (
        "POST",
        "/api/v1/lessons/{id}/attendance/{student}/correction",
    );
    refused(
        st,
        "correction without a reason",
        422,
        desk.post(
            "/api/v1/lessons/math-now/attendance/s-audit/correction",
            json!({"status": "present", "reason": ""}),
        ),
    )
    .await;
    audited(
        st,
        cov,
        r,
        ("front_desk", "front_desk"),
        200,
        desk.post(
            "/api/v1/lessons/math-now/attendance/s-audit/correction",
            json!({"status": "present", "reason": "checked in on paper"}),
        ),
    )
    .await;
    // the staff app's forms
    let r = ("POST", "/app/leave/request");
    refused(
        st,
        "leave form with a stale token",
        403,
        desk.form(
            r.1,
            "student=s-audit&lesson_id=math-audit2&reason=ill",
            Some("x"),
        ),
    )
    .await;
    audited(
        st,
        cov,
        r,
        ("front_desk", "front_desk"),
        303,
        desk.form(
            r.1,
            "student=s-audit&lesson_id=math-audit2&reason=ill",
            None,
        ),
    )
    .await;
    let r = ("POST", "/app/leave/decide");
    audited(
        st,
        cov,
        r,
        ("front_desk", "front_desk"),
        303,
        desk.form(
            r.1,
            "student=s-audit&lesson_id=math-audit2&decision=refuse",
            None,
        ),
    )
    .await;
    let r = ("POST", "/app/leave/makeup");
    audited(
        st,
        cov,
        r,
        ("front_desk", "front_desk"),
        303,
        desk.form(
            r.1,
            "student=s-audit&missed_lesson_id=math-audit2&lesson_id=art-audit2",
            None,
        ),
    )
    .await;
    let r = ("POST", "/app/leave/limit");
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        303,
        mgr.form(r.1, "makeups_per_month=6", None),
    )
    .await;
    let r = ("POST", "/app/attendance/correct");
    audited(
        st,
        cov,
        r,
        ("front_desk", "front_desk"),
        303,
        desk.form(
            r.1,
            "student=s-audit&lesson_id=math-now&status=excused&reason=note",
            None,
        ),
    )
    .await;
}
