//! Notifications end to end: outbox rows written with their cause, preferences and quiet hours,
//! retries and dead letters, a flaky webhook receiver with the dispatcher killed 100 times,
//! concurrent dispatchers, and e-mail to a local SMTP sink. On SQLite and on PostgreSQL
//! (`rollcall_testkit::two_backends!`).

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rollcall_domain::ledger::*;
use rollcall_ledger::*;
use rollcall_notify::*;
use rollcall_testkit::ledger::Harness;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

rollcall_testkit::two_backends! {
    rows_are_written_with_their_cause_and_only_once,
    preferences_languages_and_quiet_hours,
    retries_then_dead_letter_visible_to_staff,
    flaky_receiver_and_100_kills_deliver_every_notice_once_by_key,
    concurrent_dispatchers_share_the_queue_without_double_sends,
    email_reaches_a_local_smtp_sink,
}

/// Monday 2026-01-05 00:00 UTC; the harness school is at UTC+1.
fn monday() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap()
}

/// Lesson `M{d}` of class math: day `d`, `hour`:00–+1h UTC.
fn start(d: i64, hour: i64) -> DateTime<Utc> {
    monday() + Duration::days(d) + Duration::hours(hour)
}

fn staff(channel: &str) -> StaffRecipient {
    StaffRecipient {
        id: "desk".into(),
        channel: channel.into(),
        address: "front-desk".into(),
        language: "en".into(),
        events: None,
    }
}

fn settings(staff_channel: &str) -> NotifySettings {
    NotifySettings {
        enabled: true,
        staff: vec![staff(staff_channel)],
        default_channels: vec!["sms".into()],
        quiet_hours: None,
        urgent_absence: false,
    }
}

/// Class `math` (lessons M0..M{days} at `hour`:00 UTC), students s1..s{n}, each with a guardian
/// g{i} (`sms`, phone) and a 10-lesson package (3 lessons for s1, to reach the low balance).
async fn world(s: &Store, days: i64, n: usize, hour: i64) {
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
    let lessons: Vec<NewLesson> = (0..days)
        .map(|d| NewLesson {
            id: format!("M{d}"),
            class_id: "math".into(),
            room_id: None,
            teacher: None,
            start: start(d, hour),
            end: start(d, hour) + Duration::hours(1),
        })
        .collect();
    s.add_lessons(&lessons).await.unwrap();
    for i in 1..=n {
        let id = format!("s{i}");
        s.create_student(&NewStudent {
            id: id.clone(),
            name: format!("Student {i}"),
            home_campus_id: None,
        })
        .await
        .unwrap();
        s.add_guardian(&NewGuardian {
            id: format!("g{i}"),
            student_id: id.clone(),
            name: format!("Parent {i}"),
            phone: Some(format!("+86138000000{i:02}")),
            email: Some(format!("parent{i}@example.com")),
            language: "en".into(),
            notify_prefs: String::new(),
        })
        .await
        .unwrap();
        s.enroll("math", &id, monday() - Duration::days(7))
            .await
            .unwrap();
        s.purchase(&NewPackage {
            id: format!("p{i}"),
            student_id: id.clone(),
            campus_id: None,
            lessons: if i == 1 { 3 } else { 10 },
            unit_price_cents: 10_000,
            price_paid_cents: None,
            bought_at: monday() - Duration::days(30),
            expires_at: monday() + Duration::days(300),
        })
        .await
        .unwrap();
    }
}

fn checkin(student: &str, at: DateTime<Utc>, key: &str) -> CheckIn {
    CheckIn {
        student_id: student.into(),
        at,
        source: AttendanceSource::Face,
        camera_id: Some("cam".into()),
        event_key: Some(key.into()),
    }
}

async fn keys(s: &Store) -> BTreeSet<String> {
    s.outbox(None, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.delivery_key)
        .collect()
}

fn review(i: usize) -> NoticeDraft {
    NoticeDraft {
        notice_id: format!("review:item{i}"),
        kind: NoticeKind::ReviewNeeded,
        student_id: None,
        class_id: None,
        params: json!({"message": format!("item {i} at door A")}),
        at: Utc::now(),
    }
}

// -------------------------------------------------------------------------------------------

async fn rows_are_written_with_their_cause_and_only_once(h: &Harness) {
    let s = &h.store;
    world(s, 5, 3, 16).await;
    // off by default: a check-in writes nothing
    s.check_in(&checkin("s2", start(0, 16), "e0"))
        .await
        .unwrap();
    assert!(keys(s).await.is_empty());
    s.set_notify_settings(&settings("webhook"), "test")
        .await
        .unwrap();

    // a check-in: one arrival row per guardian channel, in the same transaction
    let r = s
        .check_in(&checkin("s1", start(0, 16), "e1"))
        .await
        .unwrap();
    assert!(matches!(r.outcome, CheckInOutcome::Recorded { .. }));
    let rows = s.notice_rows("arrival:s1:M0").await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].delivery_key, "arrival:s1:M0/guardian:g1/sms");
    assert_eq!(rows[0].address, "+8613800000001");
    assert_eq!(rows[0].params["student_name"], "Student 1");
    assert_eq!(rows[0].params["class_name"], "Maths Y7");
    assert_eq!(rows[0].params["local_time"], "17:00");
    // replays and another camera's report of the same lesson write nothing
    let before = keys(s).await;
    s.check_in(&checkin("s1", start(0, 16), "e1"))
        .await
        .unwrap();
    s.check_in(&checkin(
        "s1",
        start(0, 16) + Duration::minutes(1),
        "e1-other-camera",
    ))
    .await
    .unwrap();
    assert_eq!(keys(s).await, before);

    // atomicity: a check-in whose transaction rolls back (its event key was already used by an
    // unscheduled visit) leaves no attendance and no notice
    s.check_in(&checkin("s3", start(0, 10), "taken"))
        .await
        .unwrap();
    let r = s
        .check_in(&checkin("s3", start(1, 16), "taken"))
        .await
        .unwrap();
    assert_eq!(r.outcome, CheckInOutcome::DuplicateEvent);
    assert!(s.notice_rows("arrival:s3:M1").await.unwrap().is_empty());
    assert!(!s
        .attendance()
        .await
        .unwrap()
        .iter()
        .any(|(st, l, _)| st == "s3" && l == "M1"));

    // low balance: s1 had 3 lessons, 2 left after M0 → guardians only
    let low: Vec<_> = s
        .outbox(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == NoticeKind::LowBalance)
        .collect();
    assert_eq!(low.len(), 1, "{low:?}");
    assert_eq!(low[0].notice_id, "alert:low:s1:1");
    assert_eq!(low[0].recipient_kind, RecipientKind::Guardian);
    assert_eq!(low[0].params["left"], "2");

    // absences: s3 has approved leave for M0 (excused: no notice), s2 absent at M1..M3
    s.request_leave("s3", "M2", start(0, 0), true, Some("trip"))
        .await
        .unwrap();
    s.check_in(&checkin("s1", start(1, 16), "e2"))
        .await
        .unwrap();
    s.check_in(&checkin("s1", start(2, 16), "e3"))
        .await
        .unwrap();
    s.check_in(&checkin("s3", start(3, 16), "e4"))
        .await
        .unwrap();
    s.check_in(&checkin("s1", start(3, 16), "e5"))
        .await
        .unwrap();
    let rep = s.finalize(start(4, 0)).await.unwrap();
    assert!(rep.absent >= 3 && rep.excused == 1, "{rep:?}");
    for l in ["M1", "M2", "M3"] {
        assert_eq!(
            s.notice_rows(&format!("absence:s2:{l}"))
                .await
                .unwrap()
                .len(),
            1,
            "{l}"
        );
    }
    assert!(s.notice_rows("absence:s3:M2").await.unwrap().is_empty());
    assert_eq!(s.notice_rows("absence:s3:M1").await.unwrap().len(), 1);
    // three in a row: staff and guardians
    let streak = s.notice_rows("alert:streak:s2:math:M1").await.unwrap();
    let who: BTreeSet<_> = streak.iter().map(|r| r.recipient_kind).collect();
    assert_eq!(
        who,
        BTreeSet::from([RecipientKind::Guardian, RecipientKind::Staff]),
        "{streak:?}"
    );
    assert_eq!(streak[0].params["count"], 3);
    // finalising again writes nothing more
    let before = keys(s).await;
    s.finalize(start(4, 0)).await.unwrap();
    assert_eq!(keys(s).await, before);

    // camera offline: staff only; review needed through enqueue_notice, idempotent
    assert!(s
        .raise_camera_alert("door", "camera:door:1", "offline", start(4, 9))
        .await
        .unwrap());
    let cam = s.notice_rows("alert:camera:door:1").await.unwrap();
    assert_eq!(cam.len(), 1);
    assert_eq!(cam[0].recipient_kind, RecipientKind::Staff);
    assert_eq!(cam[0].params["camera"], "door");
    assert_eq!(s.enqueue_notice(&review(1)).await.unwrap(), 1);
    assert_eq!(s.enqueue_notice(&review(1)).await.unwrap(), 0);
    // and every row renders in its language
    for r in s.outbox(None, 1000).await.unwrap() {
        render(r.kind, &r.language, &r.params).unwrap_or_else(|e| panic!("{r:?}: {e}"));
    }
    // a malformed notice id is refused
    let mut bad = review(2);
    bad.notice_id.clear();
    assert!(matches!(
        s.enqueue_notice(&bad).await,
        Err(LedgerError::Invalid {
            field: "notice_id",
            ..
        })
    ));
}

async fn preferences_languages_and_quiet_hours(h: &Harness) {
    let s = &h.store;
    // lessons at 20:00 UTC = 21:00 school time (UTC+1)
    world(s, 2, 3, 20).await;
    s.add_guardian(&NewGuardian {
        id: "g1b".into(),
        student_id: "s1".into(),
        name: "Grandma".into(),
        phone: Some("+8613900000000".into()),
        email: Some("nainai@example.com".into()),
        language: "zh-CN".into(),
        notify_prefs: r#"{"channels":["email","wechat"],"events":["absence","arrival"]}"#.into(),
    })
    .await
    .unwrap();
    s.add_guardian(&NewGuardian {
        id: "g2b".into(),
        student_id: "s2".into(),
        name: "Uncle".into(),
        phone: None,
        email: None,
        language: "en".into(),
        notify_prefs: r#"{"channels":["email"],"events":["low_balance"]}"#.into(),
    })
    .await
    .unwrap();
    let mut set = settings("log");
    set.quiet_hours = Some(QuietHours {
        start: "21:00".into(),
        end: "07:00".into(),
    });
    set.urgent_absence = true;
    s.set_notify_settings(&set, "test").await.unwrap();
    assert_eq!(s.notify_settings().await.unwrap(), set);

    // 20:10 UTC = 21:10 local (late): quiet → arrival deferred to 07:00 local = 06:00 UTC
    let t = start(0, 20) + Duration::minutes(10);
    s.check_in(&checkin("s1", t, "a1")).await.unwrap();
    let arrival = s.notice_rows("arrival:s1:M0").await.unwrap();
    let by: BTreeMap<_, _> = arrival
        .iter()
        .map(|r| (r.delivery_key.as_str(), r))
        .collect();
    assert_eq!(
        by.keys().copied().collect::<Vec<_>>(),
        vec![
            "arrival:s1:M0/guardian:g1/sms",
            "arrival:s1:M0/guardian:g1b/email",
            "arrival:s1:M0/guardian:g1b/wechat"
        ]
    );
    let morning = start(1, 6);
    assert!(arrival.iter().all(|r| r.due_at == morning), "{arrival:?}");
    assert_eq!(
        by["arrival:s1:M0/guardian:g1b/wechat"].address,
        "+8613900000000"
    );
    assert_eq!(
        by["arrival:s1:M0/guardian:g1b/email"].address,
        "nainai@example.com"
    );

    // s2 and s3 missing at start + grace: absence is urgent (skips quiet hours); g2b wants only
    // low-balance notices; s3's approved leave means no notice
    s.request_leave("s3", "M0", start(0, 0), true, None)
        .await
        .unwrap();
    let scan_at = start(0, 20) + Duration::minutes(6);
    assert_eq!(
        s.notify_missing(scan_at, Duration::hours(6)).await.unwrap(),
        1
    );
    assert_eq!(
        s.notify_missing(scan_at, Duration::hours(6)).await.unwrap(),
        0
    );
    let abs = s.notice_rows("absence:s2:M0").await.unwrap();
    assert_eq!(abs.len(), 1, "{abs:?}");
    assert!(abs[0].urgent);
    assert_eq!(abs[0].due_at, start(0, 20) + Duration::minutes(5));
    assert!(s.notice_rows("absence:s3:M0").await.unwrap().is_empty());
    // finalising the same absence later adds nothing for s2
    s.finalize(start(1, 0)).await.unwrap();
    assert_eq!(s.notice_rows("absence:s2:M0").await.unwrap().len(), 1);

    let sink = RecordingSink::new();
    let d = Dispatcher::with_seed(
        s.clone(),
        Channels::only(Arc::new(sink.clone())),
        DispatcherConfig {
            missing_scan_ms: 0,
            ..Default::default()
        },
        7,
    )
    .unwrap();
    // during quiet hours only the urgent absence goes out
    let r = d.run_once(scan_at + Duration::minutes(1)).await.unwrap();
    assert_eq!((r.claimed, r.sent), (1, 1), "{r:?}");
    assert_eq!(
        sink.deliveries()[0].delivery_key,
        "absence:s2:M0/guardian:g2/sms"
    );
    assert!(
        d.run_once(morning - Duration::minutes(1))
            .await
            .unwrap()
            .claimed
            == 0
    );
    // three arrival rows and g1's low-balance notice (s1 has 2 lessons left), deferred too
    let r = d.run_once(morning).await.unwrap();
    assert_eq!(r.sent, 4, "{r:?}");
    assert!(sink
        .deliveries()
        .iter()
        .any(|o| o.delivery_key == "alert:low:s1:1/guardian:g1/sms"));
    let got: BTreeMap<_, _> = sink
        .deliveries()
        .into_iter()
        .map(|o| (o.delivery_key.clone(), o))
        .collect();
    let zh = &got["arrival:s1:M0/guardian:g1b/wechat"];
    assert_eq!(zh.language, "zh-CN");
    // what the lesson used and what is left (issue 21)
    assert_eq!(
        zh.text,
        "Student 1已于21:10到达，参加Maths Y7。（迟到）本次扣除1节课时，剩余2节。"
    );
    assert_eq!(
        got["arrival:s1:M0/guardian:g1/sms"].text,
        "Student 1 arrived at 21:10 for Maths Y7. (late) 1 lesson used, 2 left."
    );
    let c = s.outbox_counts(morning).await.unwrap();
    assert_eq!((c.pending, c.sent, c.dead), (0, 5, 0), "{c:?}");
    // bad settings are refused with the field named
    let mut bad = set.clone();
    bad.staff[0].channel = "pager".into();
    let e = s.set_notify_settings(&bad, "test").await.unwrap_err();
    assert!(e.to_string().contains("pager"), "{e}");
}

/// Fails every send (transient), or permanently.
struct Failing(bool);

#[async_trait]
impl Channel for Failing {
    fn name(&self) -> &'static str {
        "failing"
    }
    async fn send(&self, _: &Outgoing) -> Result<(), SendError> {
        Err(if self.0 {
            SendError::Permanent("HTTP 404".into())
        } else {
            SendError::Transient("HTTP 503".into())
        })
    }
}

async fn retries_then_dead_letter_visible_to_staff(h: &Harness) {
    let s = &h.store;
    s.set_notify_settings(&settings("webhook"), "test")
        .await
        .unwrap();
    s.enqueue_notice(&review(1)).await.unwrap();
    let cfg = DispatcherConfig {
        max_attempts: 3,
        backoff_base_ms: 1000,
        backoff_max_ms: 60_000,
        lease_ms: 30_000,
        ..Default::default()
    };
    let d =
        Dispatcher::with_seed(s.clone(), Channels::only(Arc::new(Failing(false))), cfg, 1).unwrap();
    let mut now = Utc::now();
    let r = d.run_once(now).await.unwrap();
    assert_eq!((r.claimed, r.retried), (1, 1));
    let row = &s.outbox(None, 10).await.unwrap()[0];
    assert_eq!(row.attempts, 1);
    assert_eq!(row.last_error.as_deref(), Some("transient: HTTP 503"));
    // first retry after 1 s with jitter: in [0.5 s, 1 s]
    let wait = row.due_at - now;
    assert!(
        wait >= Duration::milliseconds(500) && wait <= Duration::milliseconds(1000),
        "{wait}"
    );
    assert_eq!(d.run_once(now).await.unwrap().claimed, 0, "not due yet");
    now = row.due_at;
    assert_eq!(d.run_once(now).await.unwrap().retried, 1);
    let row = &s.outbox(None, 10).await.unwrap()[0];
    let wait = row.due_at - now;
    assert!(
        wait >= Duration::milliseconds(1000) && wait <= Duration::milliseconds(2000),
        "{wait}"
    );
    now = row.due_at;
    let r = d.run_once(now).await.unwrap();
    assert_eq!(r.dead, 1, "{r:?}");
    // visible to staff: listed with its last error, counted, requeueable
    let dead = s.outbox(Some(OutboxState::Dead), 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(dead[0].last_error.as_deref(), Some("transient: HTTP 503"));
    assert_eq!(dead[0].notice_id, "review:item1");
    assert_eq!(s.outbox_counts(now).await.unwrap().dead, 1);
    assert!(metrics_text("acme", &s.outbox_counts(now).await.unwrap())
        .contains("rollcall_notify_outbox{school=\"acme\",state=\"dead\"} 1"));
    s.requeue_notice(dead[0].id, "staff", now).await.unwrap();
    assert!(s.requeue_notice(dead[0].id, "staff", now).await.is_err());
    // a permanent failure (or an unconfigured channel) dead-letters at once
    let p = Dispatcher::with_seed(
        s.clone(),
        Channels::only(Arc::new(Failing(true))),
        DispatcherConfig::default(),
        2,
    )
    .unwrap();
    assert_eq!(p.run_once(now).await.unwrap().dead, 1);
    s.enqueue_notice(&review(2)).await.unwrap();
    let none =
        Dispatcher::new(s.clone(), Channels::default(), DispatcherConfig::default()).unwrap();
    assert_eq!(none.run_once(Utc::now()).await.unwrap().dead, 1);
    let dead = s.outbox(Some(OutboxState::Dead), 10).await.unwrap();
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some("permanent: channel webhook is not configured")
    );
}

// -------------------------------------------------------------------------------------------
// A flaky receiver: 20% of requests answer 500 (nothing recorded), 10% are recorded and then
// never answered (the sender times out and will deliver again), the rest recorded and 200.
// It records every delivery by Idempotency-Key.

#[derive(Default)]
struct Flaky {
    deliveries: Mutex<HashMap<String, u32>>,
    requests: Mutex<u64>,
}

async fn flaky_receiver(seed: u64, healthy: bool) -> (String, Arc<Flaky>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let st = Arc::new(Flaky::default());
    let rng = Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(seed)));
    let st2 = st.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let (st, rng) = (st2.clone(), rng.clone());
            tokio::spawn(async move {
                let Ok(Some((h, body))) = rollcall_testkit::net::read_request(&mut s).await else {
                    return;
                };
                let sig = h.get("x-rollcall-signature").cloned().unwrap_or_default();
                let key = h.get("idempotency-key").cloned().unwrap_or_default();
                if verify(SECRET, &sig, &key, &body, Utc::now().timestamp(), 300).is_err() {
                    let _ = rollcall_testkit::net::respond(&mut s, 401).await;
                    return;
                }
                let roll: f64 = if healthy {
                    1.0
                } else {
                    rng.lock().unwrap().gen()
                };
                *st.requests.lock().unwrap() += 1;
                if roll < 0.2 {
                    let _ = rollcall_testkit::net::respond(&mut s, 500).await;
                    return;
                }
                *st.deliveries.lock().unwrap().entry(key).or_default() += 1;
                if roll < 0.3 {
                    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                    return; // accepted, never answered
                }
                let _ = rollcall_testkit::net::respond(&mut s, 200).await;
            });
        }
    });
    (url, st)
}

const SECRET: &[u8] = b"test-secret-0123456789";

/// 20 arrival notices from check-ins and 80 review notices.
async fn hundred_notices(s: &Store) -> BTreeSet<String> {
    world(s, 1, 20, 16).await;
    s.set_notify_settings(&settings("webhook"), "test")
        .await
        .unwrap();
    for i in 1..=20 {
        s.check_in(&checkin(&format!("s{i}"), start(0, 16), &format!("k{i}")))
            .await
            .unwrap();
    }
    for i in 0..80 {
        s.enqueue_notice(&review(i)).await.unwrap();
    }
    let k = keys(s).await;
    assert!(k.len() >= 100, "{}", k.len());
    k
}

fn webhook(url: &str, timeout_ms: u64) -> Channels {
    Channels {
        webhook: Some(Arc::new(
            WebhookChannel::new(url, SECRET, std::time::Duration::from_millis(timeout_ms)).unwrap(),
        )),
        ..Default::default()
    }
}

async fn drain(s: &Store, d: DispatcherHandle, secs: u64) {
    let t0 = std::time::Instant::now();
    loop {
        let c = s.outbox_counts(Utc::now()).await.unwrap();
        if c.pending == 0 {
            break;
        }
        assert!(t0.elapsed().as_secs() < secs, "not drained: {c:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    d.shutdown().await;
}

async fn flaky_receiver_and_100_kills_deliver_every_notice_once_by_key(h: &Harness) {
    let s = &h.store;
    let expected = hundred_notices(s).await;
    let (url, rx) = flaky_receiver(42, false).await;
    let cfg = DispatcherConfig {
        worker: String::new(),
        batch: 8,
        lease_ms: 400,
        max_attempts: 1000,
        backoff_base_ms: 5,
        backoff_max_ms: 80,
        poll_ms: 5,
        missing_scan_ms: 0,
        missing_lookback_h: 1,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for i in 0..100 {
        let cfg = DispatcherConfig {
            worker: format!("w{i}"),
            ..cfg.clone()
        };
        let d = spawn_dispatcher(s.clone(), webhook(&url, 100), cfg).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(rng.gen_range(0..25))).await;
        d.abort(); // killed wherever it is: claiming, sending, or between send and mark
        while !d.is_finished() {
            tokio::task::yield_now().await;
        }
    }
    let mid = s.outbox_counts(Utc::now()).await.unwrap();
    let d = spawn_dispatcher(
        s.clone(),
        webhook(&url, 100),
        DispatcherConfig {
            worker: "final".into(),
            ..cfg.clone()
        },
    )
    .unwrap();
    drain(s, d, 120).await;
    let c = s.outbox_counts(Utc::now()).await.unwrap();
    assert_eq!(
        (c.sent, c.dead, c.pending),
        (expected.len() as i64, 0, 0),
        "{c:?}"
    );
    let got = rx.deliveries.lock().unwrap().clone();
    let got_keys: BTreeSet<String> = got.keys().cloned().collect();
    assert_eq!(
        got_keys, expected,
        "every expected key, and no other, at the receiver"
    );
    let raw: u32 = got.values().sum();
    let requests = *rx.requests.lock().unwrap();
    eprintln!(
        "{} notices, {} accepted deliveries ({} re-deliveries deduplicated by key), {} requests; after the kills: {:?}",
        expected.len(),
        raw,
        raw as usize - expected.len(),
        requests,
        mid
    );
    // the faults happened: some notices arrived more than once, and the key told them apart
    assert!(raw as usize > expected.len());
}

async fn concurrent_dispatchers_share_the_queue_without_double_sends(h: &Harness) {
    let s = &h.store;
    let expected = hundred_notices(s).await;
    let (url, rx) = flaky_receiver(1, true).await;
    let mut ds = Vec::new();
    for i in 0..3 {
        // separate handles on the database: like separate processes
        let store = h.another_handle().await;
        let cfg = DispatcherConfig {
            worker: format!("p{i}"),
            batch: 5,
            poll_ms: 5,
            missing_scan_ms: 0,
            ..Default::default()
        };
        ds.push(spawn_dispatcher(store, webhook(&url, 5_000), cfg).unwrap());
    }
    let t0 = std::time::Instant::now();
    while s.outbox_counts(Utc::now()).await.unwrap().pending > 0 {
        assert!(t0.elapsed().as_secs() < 60);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for d in ds {
        d.shutdown().await;
    }
    let got = rx.deliveries.lock().unwrap().clone();
    assert_eq!(got.keys().cloned().collect::<BTreeSet<_>>(), expected);
    assert!(
        got.values().all(|n| *n == 1),
        "a healthy receiver gets each key exactly once: {:?}",
        got.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    let states: BTreeSet<_> = s
        .outbox(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.state)
        .collect();
    assert_eq!(states, BTreeSet::from([OutboxState::Sent]));
}

// -------------------------------------------------------------------------------------------
// A tiny SMTP sink: records each message's envelope and data.

#[derive(Debug, Clone, Default)]
struct Mail {
    from: String,
    to: Vec<String>,
    data: String,
}

async fn smtp_sink() -> (u16, Arc<Mutex<Vec<Mail>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let g = g.clone();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut lines = BufReader::new(r).lines();
                let _ = w.write_all(b"220 sink ESMTP\r\n").await;
                let mut m = Mail::default();
                while let Ok(Some(line)) = lines.next_line().await {
                    let up = line.to_ascii_uppercase();
                    let reply: &[u8] = if up.starts_with("EHLO") || up.starts_with("HELO") {
                        b"250 sink\r\n"
                    } else if up.starts_with("MAIL FROM:") {
                        m.from = line[10..].trim().to_string();
                        b"250 ok\r\n"
                    } else if up.starts_with("RCPT TO:") {
                        m.to.push(line[8..].trim().to_string());
                        b"250 ok\r\n"
                    } else if up == "DATA" {
                        let _ = w.write_all(b"354 go ahead\r\n").await;
                        while let Ok(Some(l)) = lines.next_line().await {
                            if l == "." {
                                break;
                            }
                            m.data.push_str(&l);
                            m.data.push('\n');
                        }
                        g.lock().unwrap().push(std::mem::take(&mut m));
                        b"250 queued\r\n"
                    } else if up == "QUIT" {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        break;
                    } else {
                        b"250 ok\r\n"
                    };
                    let _ = w.write_all(reply).await;
                }
            });
        }
    });
    (port, got)
}

async fn email_reaches_a_local_smtp_sink(h: &Harness) {
    let s = &h.store;
    world(s, 1, 1, 16).await;
    s.add_guardian(&NewGuardian {
        id: "g1m".into(),
        student_id: "s1".into(),
        name: "Mum".into(),
        phone: None,
        email: Some("mum@example.com".into()),
        language: "en".into(),
        notify_prefs: "email".into(),
    })
    .await
    .unwrap();
    s.set_notify_settings(&settings("log"), "test")
        .await
        .unwrap();
    s.check_in(&checkin("s1", start(0, 16), "m1"))
        .await
        .unwrap();
    let (port, got) = smtp_sink().await;
    let cfg = ChannelConfig {
        smtp_host: Some("127.0.0.1".into()),
        smtp_port: Some(port),
        smtp_from: Some("Rollcall <noreply@acme.example>".into()),
        smtp_timeout_ms: Some(5_000),
        ..Default::default()
    };
    let mut ch = cfg
        .build(Arc::new(rollcall_domain::clock::SystemClock))
        .unwrap();
    ch.webhook = Some(Arc::new(RecordingSink::new())); // g1's sms rows
    let d = Dispatcher::new(s.clone(), ch, DispatcherConfig::default()).unwrap();
    let r = d.run_once(Utc::now()).await.unwrap();
    assert_eq!(
        r.dead,
        0,
        "{r:?}: {:?}",
        s.outbox(Some(OutboxState::Dead), 10).await.unwrap()
    );
    let mails = got.lock().unwrap().clone();
    let arrival: Vec<_> = mails
        .iter()
        .filter(|m| m.data.contains("arrival.s1.M0/guardian.g1m/email@rollcall"))
        .collect();
    assert_eq!(arrival.len(), 1, "{mails:#?}");
    let m = arrival[0];
    assert_eq!(m.from, "<noreply@acme.example>");
    assert_eq!(m.to, vec!["<mum@example.com>"]);
    assert!(
        m.data.contains("Subject: Student 1 has arrived"),
        "{}",
        m.data
    );
    assert!(
        m.data.contains("Student 1 arrived at 17:00 for Maths Y7."),
        "{}",
        m.data
    );
    assert_eq!(
        s.notice_rows("arrival:s1:M0")
            .await
            .unwrap()
            .iter()
            .filter(|r| r.state == OutboxState::Sent)
            .count(),
        2
    );
    // an unreachable SMTP server is a transient failure: retried, not lost
    s.enqueue_notice(&NoticeDraft {
        notice_id: "alert:manual:1".into(),
        kind: NoticeKind::LowBalance,
        student_id: Some("s1".into()),
        class_id: None,
        params: json!({"left": "1"}),
        at: Utc::now(),
    })
    .await
    .unwrap();
    let dead_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let ch = ChannelConfig {
        smtp_port: Some(dead_port),
        ..cfg
    }
    .build(s.clock())
    .unwrap();
    let d = Dispatcher::new(
        s.clone(),
        Channels {
            webhook: Some(Arc::new(RecordingSink::new())),
            ..ch
        },
        DispatcherConfig::default(),
    )
    .unwrap();
    let r = d.run_once(Utc::now()).await.unwrap();
    assert!(r.retried >= 1 && r.dead == 0, "{r:?}");
}
