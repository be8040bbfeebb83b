//! Issue 21 item 5's gap, through the API and the staff app, on SQLite and PostgreSQL: a
//! teacher enters a guardian's leave request for a student of a lesson they teach, and only
//! theirs (another teacher's lesson, another campus: refused); deciding stays the front desk's,
//! managers' and admins'. A child module of `api.rs` (its harness).

use super::*;

rollcall_testkit::per_backend!(teacher_enters_leave_for_their_own_lessons_only);

async fn lesson(s: &Store, id: &str, start: chrono::DateTime<Utc>, teacher: Option<&str>) {
    s.add_lesson(&NewLesson {
        id: id.into(),
        class_id: "math".into(),
        room_id: None,
        teacher: teacher.map(str::to_string),
        start,
        end: start + Duration::hours(1),
    })
    .await
    .unwrap();
}

async fn teacher_enters_leave_for_their_own_lessons_only(db: Db) {
    let sv = server(db, 1 << 20).await;
    let (a, s) = (&sv.addr, &sv.store);
    // math's next lessons: one taught by the `teacher` account, one by the class's teacher
    let later = Utc::now() + Duration::days(2);
    lesson(s, "math-mine", later, Some("teacher")).await;
    lesson(s, "math-theirs", later + Duration::days(1), None).await;
    let teacher = Client::login(a, "teacher").await;
    let leaves = "/api/v1/students/s1/leaves";

    // another teacher's lesson: refused, nothing written
    refused(
        s,
        "leave in another teacher's lesson",
        403,
        teacher.post(leaves, json!({"lesson_id": "math-theirs", "reason": "ill"})),
    )
    .await;
    let r = teacher
        .post(leaves, json!({"lesson_id": "math-theirs", "reason": "ill"}))
        .await;
    assert_eq!(r.code(), "forbidden_teacher", "{}", r.text());
    // a teacher of another campus: refused by the student's campus
    add_staff(s, "teacher_s", Role::Teacher, &["south"]).await;
    let south = Client::login(a, "teacher_s").await;
    let r = south
        .post(leaves, json!({"lesson_id": "math-mine", "reason": "ill"}))
        .await;
    assert_eq!((r.status, r.code().as_str()), (403, "forbidden_campus"));
    // their own lesson: entered, pending, by the teacher (audited as the teacher)
    let mut cov = std::collections::BTreeSet::new();
    let r = audited(
        s,
        &mut cov,
        ("POST", "/api/v1/students/{id}/leaves"),
        ("teacher", "teacher"),
        201,
        teacher.post(
            leaves,
            json!({"lesson_id": "math-mine", "reason": "dentist"}),
        ),
    )
    .await;
    let l = &r.json()["leave"];
    assert_eq!(
        (&l["state"], &l["requested_by"]),
        (&json!("pending"), &json!("teacher"))
    );
    // deciding is not a teacher's
    let r = teacher
        .post(
            "/api/v1/students/s1/leaves/math-mine/decision",
            json!({"decision": "approve"}),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (403, "forbidden_role"));
    let desk = Client::login(a, "front_desk").await;
    let r = desk
        .post(
            "/api/v1/students/s1/leaves/math-mine/decision",
            json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // a viewer may not enter leave
    let viewer = Client::login(a, "viewer").await;
    let r = viewer
        .post(leaves, json!({"lesson_id": "math-mine", "reason": "x"}))
        .await;
    assert_eq!((r.status, r.code().as_str()), (403, "forbidden_role"));

    // the page: the leave form lists the teacher's own lessons only, and nothing to decide
    let p = teacher.get("/app/leave?student=s3").await.text();
    assert!(p.contains("id=leave-form"), "{p}");
    assert!(p.contains("value=\"math-mine\""), "{p}");
    assert!(!p.contains("value=\"math-theirs\""), "{p}");
    assert!(
        !p.contains("makeup-form") && !p.contains("action=/app/leave/decide"),
        "{p}"
    );
    // the front desk's lists every lesson
    let p = desk.get("/app/leave?student=s3").await.text();
    assert!(
        p.contains("value=\"math-mine\"") && p.contains("value=\"math-theirs\""),
        "{p}"
    );
    let r = audited(
        s,
        &mut cov,
        ("POST", "/app/leave/request"),
        ("teacher", "teacher"),
        303,
        teacher.form(
            "/app/leave/request",
            "student=s3&lesson_id=math-mine&reason=cold",
            None,
        ),
    )
    .await;
    assert_eq!(
        r.header("location"),
        Some("/app/leave?student=s3&done=requested")
    );
    refused(
        s,
        "the form for another teacher's lesson",
        403,
        teacher.form(
            "/app/leave/request",
            "student=s3&lesson_id=math-theirs&reason=cold",
            None,
        ),
    )
    .await;
    let pending = s
        .leave_requests(Some(rollcall_ledger::LeaveState::Pending), None)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].student_id, "s3");
}
