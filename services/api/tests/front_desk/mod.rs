//! Issue 21 items 1, 8 and 9 (part of `tests/api.rs`, sharing its harness and its check of
//! every answer against the OpenAPI document): registering a student with guardians and
//! consent in one step, editing, suspending (休学) with the packages' expiry paused, leaving
//! the school; the daily lists; the teacher's day and roll call. Each test on SQLite and on
//! PostgreSQL.

use super::*;
use rollcall_domain::clock::ManualClock;
use std::collections::BTreeSet;

rollcall_testkit::per_backend!(
    registration_writes_student_guardians_and_consent_in_one_step,
    registration_refuses_bad_fields_and_writes_nothing,
    student_and_guardian_edits_are_checked_and_audited,
    suspension_pauses_expiry_and_keeps_the_student_off_the_lists,
    leaving_the_school_unenrolls_and_needs_a_manager,
    renewal_list_and_student_search,
    teacher_sees_their_day_and_marks_arrivals,
    web_app_registers_a_student_and_shows_the_record,
    web_app_daily_lists_and_roll_call,
    front_desk_routes_keep_to_roles_and_campuses,
    front_desk_mutations_are_audited,
);

fn registration(name: &str, campus: &str) -> Value {
    json!({
        "name": name,
        "home_campus_id": campus,
        "guardians": [
            {"name": "Mum", "phone": "+86 138 0000 0001", "wechat_id": "mum_wx", "language": "zh",
             "channels": ["wechat", "sms"], "notices": ["arrival", "absence", "low_balance"]},
            {"name": "Dad", "email": "dad@example.com", "language": "en"}
        ],
        "consent": {"granted": true, "given_by": 1, "document_ref": "F-2026-001"}
    })
}

/// A server whose store reads `clock` (the harness's server reads the system clock): the same
/// database, so the harness's fixture is there.
async fn clocked(sv: &Server, clock: Arc<ManualClock>) -> (String, tokio::task::JoinHandle<()>) {
    let store = sv.store.clone().with_clock(clock);
    let cfg = ApiConfig {
        data_dir: sv._dir.path().to_path_buf(),
        ..Default::default()
    };
    let state = AppState::new(store, cfg, Arc::new(NoOps));
    let app = rollcall_api::router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
    });
    (addr, task)
}

async fn guardian(s: &Store, student: &str, phone: &str) {
    s.add_guardian_detail(&GuardianDetail {
        id: format!("{student}-mum"),
        student_id: student.into(),
        name: format!("Mum of {student}"),
        phone: Some(phone.into()),
        email: None,
        wechat_id: None,
        language: "zh".into(),
        notify_prefs: String::new(),
    })
    .await
    .unwrap();
}

async fn registration_writes_student_guardians_and_consent_in_one_step(db: Db) {
    let sv = server(db, 1 << 20).await;
    let desk = Client::login(&sv.addr, "front_desk").await;
    let mark = last_audit_seq(&sv.store).await;
    let r = desk
        .post(
            "/api/v1/students/registrations",
            registration("王小明", "north"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    // three students before: the next free id
    assert_eq!(v["student"]["id"], "S-0004");
    assert_eq!(v["student"]["name"], "王小明");
    assert_eq!(v["student"]["home_campus_id"], "north");
    let g = v["guardians"].as_array().unwrap();
    assert_eq!(g.len(), 2);
    assert_eq!(g[0]["id"], "S-0004-g1");
    assert_eq!(g[0]["wechat_id"], "mum_wx");
    assert_eq!(g[0]["language"], "zh");
    let prefs = GuardianPrefs::parse(g[0]["notify_prefs"].as_str().unwrap()).unwrap();
    assert_eq!(
        prefs.channels,
        vec!["wechat".to_string(), "sms".to_string()]
    );
    assert_eq!(
        prefs.events,
        Some(vec![
            NoticeKind::Arrival,
            NoticeKind::Absence,
            NoticeKind::LowBalance
        ])
    );
    assert_eq!(g[1]["email"], "dad@example.com");
    assert_eq!(g[1]["language"], "en");
    // no notices chosen: every notice
    let prefs = GuardianPrefs::parse(g[1]["notify_prefs"].as_str().unwrap()).unwrap();
    assert_eq!(prefs.events, None);
    let c = v["consents"].as_array().unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0]["kind"], "face_recognition");
    assert_eq!(c[0]["granted"], true);
    assert_eq!(c[0]["given_by"], "S-0004-g2");
    assert_eq!(
        sv.store
            .consent("S-0004", "face_recognition")
            .await
            .unwrap(),
        Some(true)
    );
    // audited, every row the front desk's: the student, both guardians, the consent
    let rows = audit_since(&sv.store, mark).await;
    let what: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.action.as_str(), r.entity.as_str()))
        .collect();
    assert_eq!(
        what,
        vec![
            ("create", "student"),
            ("create", "guardian"),
            ("create", "guardian"),
            ("consent", "student")
        ]
    );
    assert!(rows.iter().all(|r| r.actor == "front_desk"), "{rows:?}");
    // the student record: active, guardians with WeChat, the consent, no classes yet
    let d = desk.get("/api/v1/students/S-0004").await.json();
    assert_eq!(d["state"]["status"], "active");
    assert_eq!(d["guardians"][0]["wechat_id"], "mum_wx");
    assert_eq!(d["consents"][0]["granted"], true);
    assert_eq!(d["classes"], json!([]));
    // a given id, one guardian, a refusal recorded as such
    let r = desk
        .post(
            "/api/v1/students/registrations",
            json!({"id": "li-lei", "name": "Li Lei", "home_campus_id": "south",
                   "guardians": [{"name": "Gran", "phone": "13900000000"}],
                   "consent": {"granted": false}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["consents"][0]["granted"], false);
    assert_eq!(
        sv.store
            .consent("li-lei", "face_recognition")
            .await
            .unwrap(),
        Some(false)
    );
    // the same id again: 409, nothing more written
    let n = sv.store.students().await.unwrap().len();
    let r = desk
        .post(
            "/api/v1/students/registrations",
            json!({"id": "li-lei", "name": "Li Lei 2", "home_campus_id": "south",
                   "guardians": [{"name": "Gran", "phone": "13900000000"}]}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(sv.store.students().await.unwrap().len(), n);
}

async fn registration_refuses_bad_fields_and_writes_nothing(db: Db) {
    let sv = server(db, 1 << 20).await;
    let desk = Client::login(&sv.addr, "front_desk").await;
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = registration("Zhang San", "north");
        f(&mut v);
        v
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        ("empty name", with(&|v| v["name"] = json!("  ")), "name"),
        (
            "long name",
            with(&|v| v["name"] = json!("x".repeat(201))),
            "name",
        ),
        (
            "9 MB? no: 2000 chars",
            with(&|v| v["name"] = json!("名".repeat(2000))),
            "name",
        ),
        (
            "no guardian",
            with(&|v| v["guardians"] = json!([])),
            "guardians",
        ),
        (
            "three guardians",
            with(&|v| {
                let g = v["guardians"][0].clone();
                v["guardians"] = json!([g.clone(), g.clone(), g]);
            }),
            "guardians",
        ),
        (
            "bad phone",
            with(&|v| v["guardians"][0]["phone"] = json!("call me")),
            "phone",
        ),
        (
            "bad e-mail",
            with(&|v| v["guardians"][1]["email"] = json!("dad@")),
            "email",
        ),
        (
            "bad WeChat id",
            with(&|v| v["guardians"][0]["wechat_id"] = json!("a b")),
            "wechat_id",
        ),
        (
            "language",
            with(&|v| v["guardians"][0]["language"] = json!("fr")),
            "language",
        ),
        (
            "channel",
            with(&|v| v["guardians"][0]["channels"] = json!(["pigeon"])),
            "channels",
        ),
        (
            "notice",
            with(&|v| v["guardians"][0]["notices"] = json!(["gossip"])),
            "notices",
        ),
        (
            "no way to reach",
            with(&|v| v["guardians"][1] = json!({"name": "Dad"})),
            "phone",
        ),
        (
            "guardian without a name",
            with(&|v| v["guardians"][1]["name"] = json!("")),
            "guardian name",
        ),
        (
            "grant without the signed form",
            with(&|v| v["consent"]["document_ref"] = json!(null)),
            "document_ref",
        ),
        (
            "consent by nobody",
            with(&|v| v["consent"]["given_by"] = json!(2)),
            "given_by",
        ),
        (
            "no campus",
            with(&|v| v["home_campus_id"] = json!("")),
            "home_campus_id",
        ),
        (
            "unknown campus",
            with(&|v| v["home_campus_id"] = json!("atlantis")),
            "campus",
        ),
    ];
    let before = sv.store.students().await.unwrap().len();
    let south = Client::login(&sv.addr, "desk_south").await;
    let viewer = Client::login(&sv.addr, "viewer").await;
    let mark = last_audit_seq(&sv.store).await;
    for (what, body, field) in cases {
        let r = desk.post("/api/v1/students/registrations", body).await;
        assert!(
            matches!(r.status, 422 | 403),
            "{what}: {} {}",
            r.status,
            r.text()
        );
        if r.status == 422 {
            assert!(
                r.json()["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(field),
                "{what}: {}",
                r.text()
            );
        }
    }
    // another campus's desk, a viewer
    let r = south
        .post("/api/v1/students/registrations", registration("Z", "north"))
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = viewer
        .post("/api/v1/students/registrations", registration("Z", "north"))
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    // nothing half-written: no student, no guardian, no consent, no audit row
    assert_eq!(sv.store.students().await.unwrap().len(), before);
    assert!(sv
        .store
        .guardian_details("S-0004")
        .await
        .unwrap()
        .is_empty());
    assert!(audit_since(&sv.store, mark).await.is_empty());
}

async fn student_and_guardian_edits_are_checked_and_audited(db: Db) {
    let sv = server(db, 1 << 20).await;
    let desk = Client::login(&sv.addr, "front_desk").await;
    let r = desk
        .post(
            "/api/v1/students/s1/profile",
            json!({"name": "Student One", "home_campus_id": "south"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["student"]["name"], "Student One");
    assert_eq!(r.json()["student"]["home_campus_id"], "south");
    let rows = sv.store.audit_rows(1).await.unwrap();
    assert_eq!(
        (
            rows[0].action.as_str(),
            rows[0].entity.as_str(),
            rows[0].actor.as_str()
        ),
        ("update", "student", "front_desk")
    );
    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": "x".repeat(201)}), "name"),
        (json!({"home_campus_id": "atlantis"}), "campus"),
    ] {
        let r = desk.post("/api/v1/students/s1/profile", body).await;
        assert!(matches!(r.status, 403 | 422), "{}", r.text());
        if r.status == 422 {
            assert!(r.text().contains(field), "{}", r.text());
        }
    }
    let r = desk
        .post("/api/v1/students/nobody/profile", json!({"name": "N"}))
        .await;
    assert_eq!(r.status, 404);
    // s2 is south's: a north viewer cannot, a south desk may not move them north
    let south = Client::login(&sv.addr, "desk_south").await;
    let r = south
        .post(
            "/api/v1/students/s2/profile",
            json!({"home_campus_id": "north"}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = south
        .post("/api/v1/students/s3/profile", json!({"name": "X"}))
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    // a guardian's details replaced
    guardian(&sv.store, "s3", "13800000003").await;
    let r = desk
        .post(
            "/api/v1/students/s3/guardians/s3-mum",
            json!({"name": "Mum", "phone": "13800000009", "wechat_id": "mum3", "language": "en",
                   "channels": ["email"], "email": "mum@example.com", "notices": []}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let g = &sv.store.guardian_details("s3").await.unwrap()[0];
    assert_eq!(g.phone.as_deref(), Some("13800000009"));
    assert_eq!(g.wechat_id.as_deref(), Some("mum3"));
    assert_eq!(g.language, "en");
    assert_eq!(
        GuardianPrefs::parse(&g.notify_prefs).unwrap().events,
        Some(vec![])
    );
    let rows = sv.store.audit_rows(1).await.unwrap();
    assert_eq!(
        (rows[0].action.as_str(), rows[0].entity.as_str()),
        ("update", "guardian")
    );
    assert!(
        rows[0]
            .before
            .as_ref()
            .unwrap()
            .to_string()
            .contains("13800000003"),
        "{rows:?}"
    );
    let r = desk
        .post(
            "/api/v1/students/s3/guardians/s3-mum",
            json!({"name": "Mum", "phone": "12"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("phone"));
    // another student's guardian, an unknown one: not found
    let r = desk
        .post(
            "/api/v1/students/s1/guardians/s3-mum",
            json!({"name": "Mum", "phone": "13800000009"}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    let viewer = Client::login(&sv.addr, "viewer").await;
    let r = viewer
        .post(
            "/api/v1/students/s3/guardians/s3-mum",
            json!({"name": "Mum", "phone": "13800000009"}),
        )
        .await;
    assert_eq!(r.status, 403);
}

async fn suspension_pauses_expiry_and_keeps_the_student_off_the_lists(db: Db) {
    let sv = server(db, 1 << 20).await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let (addr, task) = clocked(&sv, clock.clone()).await;
    let desk = Client::login(&addr, "front_desk").await;
    guardian(&sv.store, "s3", "13800000003").await;
    // math is running: s1 and s3 have not arrived (art: s2)
    let calls = desk.get("/api/v1/daily/call-list").await;
    assert_eq!(calls.status, 200, "{}", calls.text());
    let who = |v: &Value| -> BTreeSet<String> {
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["student_id"].as_str().unwrap().to_string())
            .collect()
    };
    let v = calls.json();
    assert_eq!(who(&v), ["s1", "s2", "s3"].map(String::from).into());
    let s3 = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["student_id"] == "s3")
        .unwrap();
    assert_eq!(s3["guardians"][0]["phone"], "13800000003");
    assert_eq!(s3["lesson_id"], "math-now");
    let expires = |b: &Value| b["packages"][0]["expires_at"].as_str().unwrap().to_string();
    let before = expires(&desk.get("/api/v1/students/s3/balance").await.json());
    // suspended: off the call list, not charged for the lesson it misses
    let r = desk
        .post(
            "/api/v1/students/s3/suspend",
            json!({"reason": "family trip"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["state"]["status"], "suspended");
    assert_eq!(r.json()["state"]["reason"], "family trip");
    let r = desk.post("/api/v1/students/s3/suspend", json!({})).await;
    assert_eq!(r.status, 409, "suspended twice: {}", r.text());
    let v = desk
        .get("/api/v1/daily/call-list?campus=north")
        .await
        .json();
    assert_eq!(who(&v), ["s1"].map(String::from).into());
    let found = desk
        .get("/api/v1/daily/students?status=suspended")
        .await
        .json();
    assert_eq!(found["students"].as_array().unwrap().len(), 1);
    assert_eq!(found["students"][0]["id"], "s3");
    let store = sv.store.clone().with_clock(clock.clone());
    store
        .finalize(Utc::now() + Duration::hours(3))
        .await
        .unwrap();
    let a = desk.get("/api/v1/students/s1/attendance").await.json();
    assert_eq!(a["lessons"][0]["status"], "absent", "{a}");
    let a = desk.get("/api/v1/students/s3/attendance").await.json();
    assert_eq!(
        a["lessons"],
        json!([]),
        "a suspended student is not absent: {a}"
    );
    assert_eq!(
        desk.get("/api/v1/students/s3/balance").await.json()["available_units"],
        1000
    );
    // thirty days later the student comes back: the package expires thirty days later
    clock.advance(Duration::days(30));
    let r = desk.post("/api/v1/students/s3/resume", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["packages"].as_array().unwrap().len(), 1);
    assert_eq!(v["packages"][0]["package_id"], "p-s3");
    let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
    let after = expires(&desk.get("/api/v1/students/s3/balance").await.json());
    assert_eq!(parse(&after) - parse(&before), Duration::days(30));
    assert_eq!(
        parse(v["packages"][0]["after"].as_str().unwrap()),
        parse(&after)
    );
    let rows = sv.store.audit_rows(5).await.unwrap();
    assert!(
        rows.iter().any(|r| r.action == "expiry_paused"
            && r.entity_id == "p-s3"
            && r.actor == "front_desk"),
        "{rows:?}"
    );
    assert_eq!(rows[0].action, "resume");
    let r = desk.post("/api/v1/students/s3/resume", json!({})).await;
    assert_eq!(r.status, 409, "not suspended: {}", r.text());
    // the reasons are checked; another campus's desk may not suspend
    let r = desk
        .post(
            "/api/v1/students/s1/suspend",
            json!({"reason": "x".repeat(501)}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let south = Client::login(&addr, "desk_south").await;
    let r = south.post("/api/v1/students/s1/suspend", json!({})).await;
    assert_eq!(r.status, 403);
    task.abort();
}

async fn leaving_the_school_unenrolls_and_needs_a_manager(db: Db) {
    let sv = server(db, 1 << 20).await;
    let desk = Client::login(&sv.addr, "front_desk").await;
    let r = desk.post("/api/v1/students/s1/leave", json!({})).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let mgr = Client::login(&sv.addr, "manager").await;
    let r = mgr
        .post(
            "/api/v1/students/s1/leave",
            json!({"reason": "moved to Shanghai"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["classes"], json!(["math"]));
    assert!(v["biometric_erasure"]
        .as_str()
        .unwrap()
        .contains("retention"));
    let d = mgr.get("/api/v1/students/s1").await.json();
    assert_eq!(d["state"]["status"], "left");
    assert_eq!(d["state"]["reason"], "moved to Shanghai");
    assert_eq!(d["classes"], json!([]));
    // history and money kept
    assert_eq!(d["balance"]["available_units"], 1000);
    let classes = mgr.get("/api/v1/classes").await.json();
    let math = classes["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "math")
        .unwrap()
        .clone();
    assert_eq!(math["students"], json!(["s3"]));
    // not on today's list; audited
    let calls = mgr.get("/api/v1/daily/call-list").await.json();
    assert!(
        !calls["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["student_id"] == "s1"),
        "{calls}"
    );
    let rows = sv.store.audit_rows(2).await.unwrap();
    assert_eq!(rows[0].action, "leave_school");
    assert_eq!(rows[1].action, "unenroll");
    assert_eq!(rows[0].actor, "manager");
    let r = mgr.post("/api/v1/students/s1/leave", json!({})).await;
    assert_eq!(r.status, 409, "{}", r.text());
    let r = mgr.post("/api/v1/students/s1/suspend", json!({})).await;
    assert_eq!(
        r.status,
        409,
        "a student who left is not suspended: {}",
        r.text()
    );
}

async fn renewal_list_and_student_search(db: Db) {
    let sv = server(db, 1 << 20).await;
    let now = Utc::now();
    // s1: 1 lesson left (at or below the default 2); s2: a package expiring in 5 days
    sv.store
        .adjust("s1", Some("p-s1"), -900, "k-fd-1", "test", "used elsewhere")
        .await
        .unwrap();
    sv.store
        .purchase(&NewPackage {
            id: "p-s2-short".into(),
            student_id: "s2".into(),
            campus_id: None,
            lessons: 5,
            unit_price_cents: 1000,
            price_paid_cents: None,
            bought_at: now - Duration::days(1),
            expires_at: now + Duration::days(5),
        })
        .await
        .unwrap();
    guardian(&sv.store, "s2", "13900000002").await;
    let desk = Client::login(&sv.addr, "front_desk").await;
    let r = desk.get("/api/v1/daily/renewals").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["low_balance_units"], 200);
    assert_eq!(v["expiry_warning_days"], 14);
    let e = v["entries"].as_array().unwrap();
    assert_eq!(e.len(), 2, "{v}");
    let s1 = e.iter().find(|x| x["student_id"] == "s1").unwrap();
    assert_eq!(s1["low_balance"], true);
    assert_eq!(s1["available"], "1.00");
    let s2 = e.iter().find(|x| x["student_id"] == "s2").unwrap();
    assert_eq!(s2["low_balance"], false);
    assert_eq!(s2["expiring"][0]["package_id"], "p-s2-short");
    assert_eq!(s2["guardians"][0]["phone"], "13900000002");
    // a campus-limited desk sees its campus only; a teacher may not
    let south = Client::login(&sv.addr, "desk_south").await;
    let v = south.get("/api/v1/daily/renewals").await.json();
    assert_eq!(v["entries"].as_array().unwrap().len(), 1);
    assert_eq!(
        south
            .get("/api/v1/daily/renewals?campus=north")
            .await
            .status,
        403
    );
    let teacher = Client::login(&sv.addr, "teacher").await;
    assert_eq!(teacher.get("/api/v1/daily/renewals").await.status, 403);
    // the search: by a guardian's phone, by name, with balance, classes and guardians
    let v = desk.get("/api/v1/daily/students?q=1390000").await.json();
    assert_eq!(v["students"].as_array().unwrap().len(), 1);
    assert_eq!(v["students"][0]["id"], "s2");
    assert_eq!(v["students"][0]["classes"], json!(["art class"]));
    assert_eq!(v["students"][0]["available"], "15.00");
    assert_eq!(v["students"][0]["status"], "active");
    let v = desk
        .get("/api/v1/daily/students?q=STUDENT%20S")
        .await
        .json();
    assert_eq!(v["students"].as_array().unwrap().len(), 3);
    let v = desk.get("/api/v1/daily/students?campus=north").await.json();
    assert_eq!(v["students"].as_array().unwrap().len(), 2);
    let v = south.get("/api/v1/daily/students").await.json();
    assert_eq!(v["students"].as_array().unwrap().len(), 1);
    assert_eq!(
        desk.get("/api/v1/daily/students?status=gone").await.status,
        422
    );
}

async fn teacher_sees_their_day_and_marks_arrivals(db: Db) {
    let sv = server(db, 1 << 20).await;
    // the fixture's lessons are taught by "t": that teacher's account
    add_staff(&sv.store, "t", Role::Teacher, &["north"]).await;
    let t = Client::login(&sv.addr, "t").await;
    // the fixture's lessons' day (school time is UTC here; just after midnight they are
    // yesterday's)
    let day = sv
        .store
        .lesson("math-now")
        .await
        .unwrap()
        .start
        .date_naive();
    let today = format!("/api/v1/teaching/today?date={day}");
    let r = t.get(&today).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["teacher"], "t");
    // north only: math
    let lessons = v["lessons"].as_array().unwrap();
    assert_eq!(lessons.len(), 1, "{v}");
    assert_eq!(lessons[0]["id"], "math-now");
    assert_eq!(lessons[0]["counts"]["not_yet"], 2);
    // roll call: s1 present by hand
    let r = t
        .post("/api/v1/lessons/math-now/roll-call/s1", json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["for_this_lesson"], true);
    assert_eq!(v["check_in"]["source"], "manual");
    assert_eq!(v["check_in"]["lesson_id"], "math-now");
    // twice: the same event, nothing more deducted
    let r = t
        .post("/api/v1/lessons/math-now/roll-call/s1", json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        sv.store
            .balance("s1", Utc::now())
            .await
            .unwrap()
            .available_units,
        900
    );
    let v = t.get(&today).await.json();
    // present or late (the fixture's lesson began five minutes ago: at the grace's edge)
    let c = &v["lessons"][0]["counts"];
    assert_eq!(
        c["present"].as_u64().unwrap_or(0) + c["late"].as_u64().unwrap_or(0),
        1,
        "{v}"
    );
    assert_eq!(v["lessons"][0]["counts"]["not_yet"], 1);
    // not on the roster; another teacher's lesson; another teacher's day
    let r = t
        .post("/api/v1/lessons/math-now/roll-call/s2", json!({}))
        .await;
    assert_eq!(r.status, 403, "s2 is south's: {}", r.text());
    let mgr = Client::login(&sv.addr, "manager").await;
    let r = mgr
        .post("/api/v1/lessons/math-now/roll-call/s2", json!({}))
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("roster"));
    let other = Client::login(&sv.addr, "teacher").await;
    let r = other
        .post("/api/v1/lessons/math-now/roll-call/s3", json!({}))
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.code(), "not_your_lesson");
    assert_eq!(other.get(&today).await.json()["lessons"], json!([]));
    assert_eq!(other.get(&format!("{today}&teacher=t")).await.status, 403);
    let v = mgr.get(&format!("{today}&teacher=t")).await.json();
    assert_eq!(v["lessons"].as_array().unwrap().len(), 2);
    let viewer = Client::login(&sv.addr, "viewer").await;
    assert_eq!(
        viewer
            .post("/api/v1/lessons/math-now/roll-call/s3", json!({}))
            .await
            .status,
        403
    );
    // a lesson far ahead: the roll call is not open yet
    sv.store
        .add_lesson(&NewLesson {
            id: "math-later".into(),
            class_id: "math".into(),
            room_id: None,
            teacher: None,
            start: Utc::now() + Duration::hours(5),
            end: Utc::now() + Duration::hours(6),
        })
        .await
        .unwrap();
    let r = t
        .post("/api/v1/lessons/math-later/roll-call/s3", json!({}))
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
}

/// The session's page `path` (HTML).
async fn html(c: &Client, path: &str) -> String {
    let r = c.get(path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.text()
}

async fn web_app_registers_a_student_and_shows_the_record(db: Db) {
    let sv = server(db, 1 << 20).await;
    let desk = Client::login(&sv.addr, "front_desk").await;
    let p = html(&desk, "/app/students/new?lang=zh").await;
    assert!(
        p.contains("新生登记") && p.contains("微信号") && p.contains("name=\"g2_name\""),
        "{p}"
    );
    // a bad phone: the form again, as filled in, saying which field (in Chinese)
    let fields = "name=%E5%B0%8F%E7%BA%A2&home_campus_id=north&g1_name=Mum&g1_phone=abc&g1_language=zh&g1_ch_sms=on&g1_n_arrival=on&consent=granted&consent_by=0&document_ref=F-9";
    let r = http(
        &sv.addr,
        "POST",
        "/app/students/new",
        &[
            ("cookie", &format!("{}; lang=zh", desk.cookie)),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        format!("_csrf={}&{fields}", desk.csrf).as_bytes(),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let p = r.text();
    assert!(
        p.contains("id=form-error") && p.contains("请检查") && p.contains("电话"),
        "{p}"
    );
    assert!(
        p.contains("value=\"小红\"") && p.contains("value=\"abc\""),
        "kept: {p}"
    );
    assert_eq!(sv.store.students().await.unwrap().len(), 3);
    // a stale token: refused
    let r = desk
        .form(
            "/app/students/new",
            &fields.replace("abc", "13800000000"),
            Some("stale"),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = desk
        .form(
            "/app/students/new",
            &fields.replace("abc", "13800000000"),
            None,
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some("/app/students/S-0004?done=registered")
    );
    let p = html(&desk, "/app/students/S-0004?done=registered&lang=en").await;
    assert!(p.contains("The student is registered."), "{p}");
    assert!(
        p.contains("id=guardians") && p.contains("13800000000"),
        "{p}"
    );
    assert!(
        p.contains("SMS: arrival"),
        "channels and notices in words: {p}"
    );
    assert!(
        p.contains("Face recognition consent") && p.contains("granted"),
        "{p}"
    );
    assert!(
        p.contains("id=suspend-form") && !p.contains("id=leave-form"),
        "desk: no leave: {p}"
    );
    // the history: s1 checked in by hand shows with its class and source
    desk.post("/api/v1/attendance/checkins", json!({"student_id": "s1"}))
        .await;
    let p = html(&desk, "/app/students/s1?lang=zh").await;
    assert!(
        p.contains("id=history") && p.contains("math class") && p.contains("手动"),
        "{p}"
    );
    assert!(p.contains("已到") || p.contains("迟到"), "{p}");
    let p = html(&desk, "/app/students/s1?status=absent").await;
    assert!(
        !p.contains("<td class=\"present\">") && !p.contains("<td class=\"late\">"),
        "filtered: {p}"
    );
    let r = desk.get("/app/students/s1?from=2026-13-01").await;
    assert_eq!(r.status, 422);
    // the list: searchable, with balance and guardians; register only for who may
    let p = html(&desk, "/app/students?q=13800000000").await;
    assert!(p.contains("S-0004") && !p.contains(">s1<"), "{p}");
    assert!(p.contains("id=register-link"));
    let viewer = Client::login(&sv.addr, "viewer").await;
    let p = html(&viewer, "/app/students").await;
    assert!(
        !p.contains("id=register-link") && !p.contains("id=suspend-form"),
        "{p}"
    );
    let p = html(&viewer, "/app/students/s1").await;
    assert!(
        !p.contains("id=suspend-form") && !p.contains("/edit"),
        "{p}"
    );
    assert_eq!(viewer.get("/app/students/new").await.status, 403);
    // edit: the name, then a guardian with a bad e-mail (the form again), then suspend
    let r = desk
        .form(
            "/app/students/S-0004/edit",
            "name=Xiao+Hong&home_campus_id=north",
            None,
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(sv.store.student("S-0004").await.unwrap().name, "Xiao Hong");
    let p = html(&desk, "/app/students/S-0004/edit").await;
    assert!(
        p.contains("/app/students/S-0004/guardians/S-0004-g1"),
        "{p}"
    );
    let r = desk
        .form(
            "/app/students/S-0004/guardians/S-0004-g1",
            "g_name=Mum&g_email=nope",
            None,
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("E-mail"), "{}", r.text());
    let r = desk
        .form(
            "/app/students/S-0004/guardians/S-0004-g1",
            "g_name=Mum&g_phone=13800000001&g_wechat=hong_mum&g_language=en&g_ch_wechat=on",
            None,
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let g = &sv.store.guardian_details("S-0004").await.unwrap()[0];
    assert_eq!(g.wechat_id.as_deref(), Some("hong_mum"));
    let r = desk
        .form(
            "/app/students/S-0004/status",
            "action=suspend&reason=ill",
            None,
        )
        .await;
    assert_eq!(r.status, 303);
    let p = html(&desk, "/app/students/S-0004?lang=zh").await;
    assert!(
        p.contains("id=student-status") && p.contains("休学") && p.contains("id=resume-form"),
        "{p}"
    );
    let r = desk
        .form("/app/students/S-0004/status", "action=leave", None)
        .await;
    assert_eq!(r.status, 403, "leaving is a manager's");
    let r = desk
        .form("/app/students/S-0004/status", "action=explode", None)
        .await;
    assert_eq!(r.status, 422);
}

async fn web_app_daily_lists_and_roll_call(db: Db) {
    let sv = server(db, 1 << 20).await;
    guardian(&sv.store, "s1", "13800000001").await;
    let desk = Client::login(&sv.addr, "front_desk").await;
    let p = html(&desk, "/app/daily?lang=zh").await;
    assert!(
        p.contains("未到名单") && p.contains("tel:13800000001"),
        "{p}"
    );
    assert!(p.contains("id=renewals"), "{p}");
    // school time: the lesson's local start
    let start = sv.store.lesson("math-now").await.unwrap().start;
    let start = start.format("%H:%M").to_string();
    assert!(p.contains(&start), "{start}: {p}");
    let teacher = Client::login(&sv.addr, "teacher").await;
    let p = html(&teacher, "/app/daily").await;
    assert!(
        p.contains("id=call-list") && !p.contains("id=renewals"),
        "{p}"
    );
    let viewer = Client::login(&sv.addr, "viewer").await;
    assert_eq!(viewer.get("/app/daily").await.status, 403);
    let p = html(&viewer, "/app").await;
    assert!(
        !p.contains("/app/teaching") && !p.contains("/app/daily"),
        "nav: {p}"
    );
    // the teacher's day and roll call
    add_staff(&sv.store, "t", Role::Teacher, &[]).await;
    let t = Client::login(&sv.addr, "t").await;
    let day = sv
        .store
        .lesson("math-now")
        .await
        .unwrap()
        .start
        .date_naive();
    let p = html(&t, &format!("/app/teaching?date={day}&lang=en")).await;
    assert!(
        p.contains("id=\"lesson-math-now\"") && p.contains("id=\"lesson-art-now\""),
        "{p}"
    );
    assert!(
        p.contains("0 in · 2 missing") && p.contains("Mark present"),
        "{p}"
    );
    assert!(
        !p.contains("name=teacher"),
        "a teacher sees only their own day: {p}"
    );
    let r = t
        .form(
            "/app/lessons/math-now/roll-call",
            "student=s3",
            Some("stale"),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = t
        .form("/app/lessons/math-now/roll-call", "student=s3", None)
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let to = r.header("location").unwrap().to_string();
    assert!(to.contains("done=marked"), "{to}");
    let p = html(&t, &format!("{to}&lang=en")).await;
    assert!(
        p.contains("Student s3 is marked present at math class."),
        "{p}"
    );
    assert!(p.contains("1 in · 1 missing"), "{p}");
    let r = t
        .form("/app/lessons/math-now/roll-call", "student=", None)
        .await;
    assert_eq!(r.status, 422);
    // another teacher's lesson: refused
    let r = teacher
        .form("/app/lessons/math-now/roll-call", "student=s1", None)
        .await;
    assert_eq!(r.status, 403);
}

/// Every mutating route of these features, audited with who did it, and refusals not (called
/// by `every_mutating_route_is_audited_and_refusals_are_not`).
pub(super) async fn audited_routes(sv: &Server, cov: &mut BTreeSet<(String, String)>) {
    let st = &sv.store;
    let a = &sv.addr;
    let desk = Client::login(a, "front_desk").await;
    let mgr = Client::login(a, "manager").await;
    let r = ("POST", "/api/v1/students/registrations");
    refused(
        st,
        "registration without guardians",
        422,
        desk.post(
            r.1,
            json!({"id": "fd1", "name": "F", "home_campus_id": "north", "guardians": []}),
        ),
    )
    .await;
    let mut reg = registration("Front Desk One", "north");
    reg["id"] = json!("fd1");
    audited(
        st,
        cov,
        r,
        ("front_desk", "front_desk"),
        201,
        desk.post(r.1, reg),
    )
    .await;
    let r = ("POST", "/api/v1/students/{id}/profile");
    refused(
        st,
        "profile, empty",
        422,
        desk.post("/api/v1/students/fd1/profile", json!({})),
    )
    .await;
    audited(
        st,
        cov,
        r,
        ("front_desk", "front_desk"),
        200,
        desk.post("/api/v1/students/fd1/profile", json!({"name": "FD One"})),
    )
    .await;
    let r = ("POST", "/api/v1/students/{id}/guardians/{guardian}");
    refused(
        st,
        "guardian, bad phone",
        422,
        desk.post(
            "/api/v1/students/fd1/guardians/fd1-g1",
            json!({"name": "M", "phone": "x"}),
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
            "/api/v1/students/fd1/guardians/fd1-g1",
            json!({"name": "M", "phone": "13800000000"}),
        ),
    )
    .await;
    let r = ("POST", "/api/v1/students/{id}/suspend");
    audited(
        st,
        cov,
        r,
        ("front_desk", "front_desk"),
        200,
        desk.post("/api/v1/students/fd1/suspend", json!({})),
    )
    .await;
    refused(
        st,
        "suspended twice",
        409,
        desk.post("/api/v1/students/fd1/suspend", json!({})),
    )
    .await;
    let r = ("POST", "/api/v1/students/{id}/resume");
    audited(
        st,
        cov,
        r,
        ("front_desk", "front_desk"),
        200,
        desk.post("/api/v1/students/fd1/resume", json!({})),
    )
    .await;
    refused(
        st,
        "resumed twice",
        409,
        desk.post("/api/v1/students/fd1/resume", json!({})),
    )
    .await;
    // the roll call: a registered student enrolled in the lesson running now
    st.enroll("math", "fd1", Utc::now() - Duration::days(1))
        .await
        .unwrap();
    let r = ("POST", "/api/v1/lessons/{id}/roll-call/{student}");
    let viewer = Client::login(a, "viewer").await;
    refused(
        st,
        "roll call by a viewer",
        403,
        viewer.post("/api/v1/lessons/math-now/roll-call/fd1", json!({})),
    )
    .await;
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        200,
        mgr.post("/api/v1/lessons/math-now/roll-call/fd1", json!({})),
    )
    .await;
    let r = ("POST", "/api/v1/students/{id}/leave");
    refused(
        st,
        "leave by the desk",
        403,
        desk.post("/api/v1/students/fd1/leave", json!({})),
    )
    .await;
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        200,
        mgr.post("/api/v1/students/fd1/leave", json!({})),
    )
    .await;
    // the staff app's forms
    let r = ("POST", "/app/students/new");
    let f = "id=fd2&name=FD+Two&home_campus_id=north&g1_name=Mum&g1_phone=13800000002&consent=none";
    refused(
        st,
        "registration form, stale token",
        403,
        desk.form(r.1, f, Some("stale")),
    )
    .await;
    refused(
        st,
        "registration form, no guardian",
        422,
        desk.form(r.1, "id=fd2&name=FD+Two&home_campus_id=north", None),
    )
    .await;
    audited(
        st,
        cov,
        r,
        ("front_desk", "front_desk"),
        303,
        desk.form(r.1, f, None),
    )
    .await;
    let r = ("POST", "/app/students/{id}/edit");
    refused(
        st,
        "edit form, empty name",
        422,
        desk.form("/app/students/fd2/edit", "name=", None),
    )
    .await;
    audited(
        st,
        cov,
        r,
        ("front_desk", "front_desk"),
        303,
        desk.form("/app/students/fd2/edit", "name=FD+2", None),
    )
    .await;
    let r = ("POST", "/app/students/{id}/guardians/{guardian}");
    refused(
        st,
        "guardian form, bad e-mail",
        422,
        desk.form(
            "/app/students/fd2/guardians/fd2-g1",
            "g_name=M&g_email=x",
            None,
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
            "/app/students/fd2/guardians/fd2-g1",
            "g_name=M&g_phone=13800000009",
            None,
        ),
    )
    .await;
    st.enroll("math", "fd2", Utc::now() - Duration::days(1))
        .await
        .unwrap();
    let r = ("POST", "/app/lessons/{id}/roll-call");
    refused(
        st,
        "roll-call form, stale token",
        403,
        mgr.form(
            "/app/lessons/math-now/roll-call",
            "student=fd2",
            Some("stale"),
        ),
    )
    .await;
    audited(
        st,
        cov,
        r,
        ("manager", "manager"),
        303,
        mgr.form("/app/lessons/math-now/roll-call", "student=fd2", None),
    )
    .await;
    let r = ("POST", "/app/students/{id}/status");
    refused(
        st,
        "status form, unknown action",
        422,
        desk.form("/app/students/fd2/status", "action=explode", None),
    )
    .await;
    audited(
        st,
        cov,
        r,
        ("front_desk", "front_desk"),
        303,
        desk.form("/app/students/fd2/status", "action=suspend", None),
    )
    .await;
}

/// The routes of these features.
fn ours(path: &str) -> bool {
    [
        "/api/v1/students/registrations",
        "/api/v1/students/{id}/profile",
        "/api/v1/students/{id}/guardians/{guardian}",
        "/api/v1/students/{id}/suspend",
        "/api/v1/students/{id}/resume",
        "/api/v1/students/{id}/leave",
        "/api/v1/students/{id}/attendance",
        "/api/v1/daily/call-list",
        "/api/v1/daily/renewals",
        "/api/v1/daily/students",
        "/api/v1/teaching/today",
        "/api/v1/lessons/{id}/roll-call/{student}",
        "/app/students",
        "/app/students/new",
        "/app/students/{id}",
        "/app/students/{id}/edit",
        "/app/students/{id}/guardians/{guardian}",
        "/app/students/{id}/status",
        "/app/daily",
        "/app/teaching",
        "/app/lessons/{id}/roll-call",
    ]
    .contains(&path)
}

/// The role matrix and the campus/school matrix of `tests/api.rs`, for these features' routes
/// alone (they run there too, with every route): a role the table allows is never refused
/// (401/403), one it does not is refused (403); a campus-limited account is refused (403/404)
/// another campus's students and lessons, every account another school's.
async fn front_desk_routes_keep_to_roles_and_campuses(db: Db) {
    let sv = server(db, 1 << 20).await;
    let s = &sv.store;
    let beta = s
        .create_school("beta", "Beta", 0, &SchoolPolicy::default())
        .await
        .unwrap();
    beta.create_campus("north", "North").await.unwrap();
    beta.create_student(&NewStudent {
        id: "b1".into(),
        name: "B".into(),
        home_campus_id: Some("north".into()),
    })
    .await
    .unwrap();
    let routes: Vec<_> = rollcall_api::documented_routes(sv.state.clone())
        .into_iter()
        .filter(|r| ours(r.path))
        .collect();
    assert!(routes.len() >= 20, "{}", routes.len());
    let side = |student, lesson| Side {
        student,
        package: "none",
        class: "none",
        lesson,
        review: 0,
        alert: 0,
        order: "none",
        refund: 0,
    };
    let (own, other_campus, other_school) = (
        side("s1", "math-now"),
        side("s2", "art-now"),
        side("b1", "bmath-now"),
    );
    let mut unexpected = Vec::new();
    for role in Role::ALL {
        let limited = format!("{}_n", role.as_str());
        add_staff(s, &limited, *role, &["north"]).await;
        let lc = Client::login(&sv.addr, &limited).await;
        let ac = Client::login(&sv.addr, role.as_str()).await;
        for r in &routes {
            let allowed = r.roles.unwrap().contains(role);
            let web = r.path.starts_with("/app");
            // every campus: allowed or refused for the role
            let path = fill(r.path, &own);
            let resp = send_matrix(&ac, r.method, r.path, &path, &own).await;
            let refused = matches!(resp.status, 401 | 403);
            if allowed == refused {
                unexpected.push(format!(
                    "{} {path} as {}: {} {}",
                    r.method,
                    role.as_str(),
                    resp.status,
                    resp.text().chars().take(160).collect::<String>()
                ));
            }
            if !allowed || !r.path.contains('{') {
                continue;
            }
            for (who, c, other) in [
                ("north-limited", &lc, &other_campus),
                ("north-limited", &lc, &other_school),
                ("all-campus", &ac, &other_school),
            ] {
                let path = fill(r.path, other);
                let resp = send_matrix(c, r.method, r.path, &path, other).await;
                if !matches!(resp.status, 403 | 404) {
                    unexpected.push(format!(
                        "{} {path} as {} {who}: {} {}",
                        r.method,
                        role.as_str(),
                        resp.status,
                        resp.text().chars().take(160).collect::<String>()
                    ));
                }
            }
            if !web {
                let path = fill(r.path, &own);
                let resp = send_matrix(&lc, r.method, r.path, &path, &own).await;
                if matches!(resp.status, 401 | 403) {
                    unexpected.push(format!(
                        "{} {path} as {} north-limited (own campus): {}",
                        r.method,
                        role.as_str(),
                        resp.text()
                    ));
                }
            }
        }
    }
    assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));
}

/// [`audited_routes`] alone covers every mutating route of these features.
async fn front_desk_mutations_are_audited(db: Db) {
    let sv = server(db, 1 << 20).await;
    let mut cov = BTreeSet::new();
    audited_routes(&sv, &mut cov).await;
    let missing: Vec<String> = rollcall_api::documented_routes(sv.state.clone())
        .into_iter()
        .filter(|r| r.method != "GET" && ours(r.path))
        // (removing a guardian: tests/front_desk/guardians.rs)
        .filter(|r| r.method != "DELETE")
        .filter(|r| !cov.contains(&(r.method.to_string(), r.path.to_string())))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(missing.is_empty(), "not checked: {missing:?}");
    assert_eq!(cov.len(), 12, "{cov:?}");
}
