//! Alerts in the reader's language (issue 21's "data strings stay English in 中文"), through
//! the API and the staff app, on SQLite and PostgreSQL: an alert of every kind, raised where the
//! ledger raises it, reads in Chinese on the zh alerts page and board and in English on the
//! English ones; the API keeps `message` and adds the data, the names and both texts; an alert
//! stored before its data was (kind and English message only) still reads in Chinese. A child
//! module of `api.rs` (its harness).

use super::*;
use rollcall_domain::ledger::{AlertKind, AlertState, AttendanceSource};

rollcall_testkit::per_backend!(alerts_read_in_the_readers_language);

const KINDS: [&str; 7] = [
    "absence_streak",
    "low_balance",
    "expiring_package",
    "zero_balance_checkin",
    "camera_offline",
    "check_in_failed",
    "many_makeups",
];

/// A student of north with `lessons` lessons (none: no package) expiring in `days`, enrolled
/// in `class` since yesterday.
async fn student(s: &Store, id: &str, class: &str, lessons: i64, days: i64) {
    s.create_student(&NewStudent {
        id: id.into(),
        name: format!("Student {id}"),
        home_campus_id: Some("north".into()),
    })
    .await
    .unwrap();
    s.enroll(class, id, Utc::now() - Duration::days(7))
        .await
        .unwrap();
    if lessons > 0 {
        s.purchase(&NewPackage {
            id: format!("p-{id}"),
            student_id: id.into(),
            campus_id: None,
            lessons,
            unit_price_cents: 1000,
            price_paid_cents: None,
            bought_at: Utc::now() - Duration::days(1),
            expires_at: Utc::now() + Duration::days(days),
        })
        .await
        .unwrap();
    }
}

async fn lesson(s: &Store, id: &str, class: &str, start: chrono::DateTime<Utc>) {
    s.add_lesson(&NewLesson {
        id: id.into(),
        class_id: class.into(),
        room_id: None,
        teacher: None,
        start,
        end: start + Duration::hours(1),
    })
    .await
    .unwrap();
}

/// The alert rows of an alerts page: (kind, text), the kind by the row's alert id from `kinds`.
fn rows(page: &str, kinds: &BTreeMap<i64, &'static str>) -> Vec<(String, String)> {
    page.split("<tr id=alert-")
        .skip(1)
        .map(|r| {
            let id: i64 = r.split('>').next().unwrap().parse().unwrap();
            let kind = kinds[&id].to_string();
            let text = r
                .split("<td class=alert-text>")
                .nth(1)
                .and_then(|t| t.split("</td>").next())
                .unwrap_or("")
                .to_string();
            (kind, text)
        })
        .collect()
}

fn has_chinese(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

/// Words of the stored English messages that must not reach a Chinese reader.
const ENGLISH: [&str; 8] = [
    "lesson(s) left",
    "consecutive",
    "without balance",
    "make-ups booked",
    "camera cam-n:",
    "expires",
    "at camera",
    "checked in",
];

async fn alerts_read_in_the_readers_language(db: Db) {
    let sv = server(db, 1 << 20).await;
    let (a, s) = (&sv.addr, &sv.store);
    let now = Utc::now();
    // absence streak: three lessons of a class missed, finalised
    s.create_class(
        &serde_json::from_value(json!({
            "id": "drill", "course": "drill", "name": "Drill class", "campus_id": "north",
            "teacher": "t", "policy": ClassPolicy::default(),
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    for d in 1..=3 {
        lesson(s, &format!("drill-{d}"), "drill", now - Duration::days(d)).await;
    }
    student(s, "k1", "drill", 10, 100).await;
    s.finalize(now).await.unwrap();
    // low balance and an expiring package: 2 lessons expiring in 5 days, one used now
    student(s, "l1", "math", 2, 5).await;
    s.check_in(&CheckIn::new("l1", now, AttendanceSource::Face))
        .await
        .unwrap();
    // a check-in without any package
    student(s, "z1", "math", 0, 0).await;
    s.check_in(&CheckIn::new("z1", now, AttendanceSource::Face))
        .await
        .unwrap();
    // a camera offline
    s.raise_camera_alert(
        "cam-n",
        "camera:cam-n:1",
        "offline (connection refused)",
        now,
    )
    .await
    .unwrap();
    // a check-in the ledger could not take, parked
    let mut ci = CheckIn::new("s1", now, AttendanceSource::Face);
    ci.camera_id = Some("cam-n".into());
    s.park_check_in(&ci, "unavailable", "database unavailable", 3, now)
        .await
        .unwrap();
    // more make-ups this month than the school's number (0)
    s.set_makeup_limit(0).await.unwrap();
    lesson(s, "math-next", "math", now + Duration::days(1)).await;
    lesson(
        s,
        "art-next",
        "art",
        now + Duration::days(1) + Duration::hours(3),
    )
    .await;
    s.book_makeup_for("s1", "math-next", "art-next")
        .await
        .unwrap();
    let kinds: BTreeMap<i64, &'static str> = s
        .alerts(None)
        .await
        .unwrap()
        .iter()
        .map(|x| (x.id, x.kind.as_str()))
        .collect();
    let raised: std::collections::BTreeSet<&str> = kinds.values().copied().collect();
    assert_eq!(raised, KINDS.into_iter().collect(), "every kind raised");

    // the zh page: every kind in Chinese, with names, no stored English
    let cookie = app_session(a, "admin").await;
    let zh = app_page(a, &cookie, "/app/alerts?lang=zh").await;
    let zh_rows = rows(&zh, &kinds);
    for k in KINDS {
        let (_, text) = zh_rows
            .iter()
            .find(|(kind, _)| kind == k)
            .unwrap_or_else(|| panic!("{k} not on the page: {zh}"));
        assert!(has_chinese(text), "{k}: {text}");
        for e in ENGLISH {
            assert!(!text.contains(e), "{k}: {text:?} has {e:?}");
        }
    }
    // (the first row of a kind that names `who`)
    let text_of = |rows: &[(String, String)], k: &str, who: &str| {
        rows.iter()
            .find(|(kind, t)| kind == k && t.contains(who))
            .map(|r| r.1.clone())
            .unwrap_or_else(|| panic!("no {k} of {who}: {rows:?}"))
    };
    assert_eq!(
        text_of(&zh_rows, "low_balance", "l1"),
        "Student l1 只剩 1 节课"
    );
    assert_eq!(
        text_of(&zh_rows, "absence_streak", "k1"),
        "Student k1 在Drill class连续缺勤 3 次"
    );
    assert_eq!(
        text_of(&zh_rows, "zero_balance_checkin", "z1"),
        "Student z1 在math class签到时没有可扣的课时：没有可用于该校区的课时包"
    );
    assert_eq!(
        text_of(&zh_rows, "many_makeups", "s1"),
        format!(
            "Student s1 在 {} 已安排补课 1 次，超过学校规定的 0 次",
            s.local_date(now).format("%Y-%m")
        )
    );
    assert!(text_of(&zh_rows, "camera_offline", "cam-n")
        .starts_with("摄像头 cam-n (North, front) 离线"));
    // the expiry date in the school's local time
    let expiring = text_of(&zh_rows, "expiring_package", "l1");
    let day = s.local_date(now + Duration::days(5)).to_string();
    assert!(expiring.contains(&day), "{expiring} {day}");
    // the English page: English words
    let en = app_page(a, &cookie, "/app/alerts?lang=en").await;
    let en_rows = rows(&en, &kinds);
    assert_eq!(
        text_of(&en_rows, "low_balance", "l1"),
        "Student l1 has 1 lesson(s) left"
    );
    assert!(en_rows.iter().all(|(_, t)| !has_chinese(t)), "{en}");
    // the board: the open alerts, in the reader's words
    let board = app_page(a, &cookie, "/app?lang=zh").await;
    assert!(board.contains("id=board-alerts"), "{board}");
    let open = s.alerts(Some(AlertState::Open)).await.unwrap().len();
    assert!(board.contains(&format!("({open})")), "{board}");
    let on_board = board.split("id=board-alerts").nth(1).unwrap();
    let newest = kinds.keys().max().unwrap();
    assert!(
        on_board.contains(&format!("<li id=board-alert-{newest}>")) && has_chinese(on_board),
        "{on_board}"
    );
    assert!(!on_board
        .split("</div>")
        .next()
        .unwrap()
        .contains("make-ups booked"));

    // the API keeps the stored message and adds the data, the names and both texts
    let admin = Client::login(a, "admin").await;
    let r = admin.get("/api/v1/alerts").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let all = r.json()["alerts"].as_array().unwrap().clone();
    let one = |k: &str| all.iter().find(|x| x["kind"] == k).unwrap().clone();
    let low = all
        .iter()
        .find(|x| x["kind"] == "low_balance" && x["student_id"] == "l1")
        .unwrap()
        .clone();
    assert_eq!(low["message"], "l1 has 1 lesson(s) left");
    assert_eq!(low["data"]["units"], 100);
    assert_eq!(low["student_name"], "Student l1");
    assert_eq!(low["text"]["zh"], "Student l1 只剩 1 节课");
    assert_eq!(low["text"]["en"], "Student l1 has 1 lesson(s) left");
    assert_eq!(one("many_makeups")["data"]["limit"], 0);
    assert_eq!(one("zero_balance_checkin")["data"]["reason"], "no_package");
    assert_eq!(one("camera_offline")["data"]["camera_id"], "cam-n");
    assert_eq!(one("check_in_failed")["data"]["student_id"], "s1");
    for x in &all {
        assert!(has_chinese(x["text"]["zh"].as_str().unwrap()), "{x}");
    }

    // an alert stored before alerts had data (kind and message only) still reads in Chinese
    let url = match &sv._pg {
        Some(pg) => pg.url().to_string(),
        None => format!("sqlite://{}", sv._dir.path().join("rollcall.db").display()),
    };
    let at = now.timestamp_millis();
    rollcall_testkit::pg::execute(
        &url,
        &format!(
            "INSERT INTO alerts (school_id, dedup_key, kind, student_id, class_id, package_id, message, state, created_at, updated_at) \
             VALUES ('acme', 'low:s3:legacy', 'low_balance', 's3', NULL, NULL, 's3 has 1.5 lesson(s) left', 'open', {at}, {at})"
        ),
    )
    .await;
    let legacy = s
        .alerts(None)
        .await
        .unwrap()
        .into_iter()
        .find(|x| x.dedup_key == "low:s3:legacy")
        .unwrap();
    assert_eq!(legacy.kind, AlertKind::LowBalance);
    assert_eq!(legacy.data.units, Some(150));
    let zh = app_page(a, &cookie, "/app/alerts?lang=zh").await;
    assert!(zh.contains("Student s3 只剩 1.5 节课"), "{zh}");
}
