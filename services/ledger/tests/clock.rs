//! The ledger's time comes from the store's clock: with a manual clock injected, what the
//! ledger records itself (audit rows, creation times, outbox rows) is that clock's time, not
//! the wall clock's.

use chrono::{Duration, TimeZone, Utc};
use rollcall_domain::clock::ManualClock;
use rollcall_domain::ledger::SchoolPolicy;
use rollcall_ledger::{NewStudent, NoticeDraft, NoticeKind, NotifySettings, StaffRecipient, Store};
use std::sync::Arc;

#[tokio::test]
async fn an_injected_clock_is_what_the_ledger_records() {
    let dir = tempfile::tempdir().unwrap();
    // a time the wall clock is not at
    let t = Utc.with_ymd_and_hms(2031, 5, 6, 7, 8, 9).unwrap();
    let clock = Arc::new(ManualClock::new(t));
    let store = Store::open_data_dir(dir.path())
        .await
        .unwrap()
        .with_clock(clock.clone());
    assert_eq!(store.now(), t);
    assert_eq!(store.clock().now(), t);
    let s = store
        .create_school("sch", "School", 0, &SchoolPolicy::default())
        .await
        .unwrap();
    // the school's handle keeps the clock
    assert_eq!(s.now(), t);
    let rows = s.audit_rows(10).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].entity.as_str(), rows[0].at), ("school", t));

    clock.advance(Duration::hours(1));
    s.create_student(&NewStudent {
        id: "st1".into(),
        name: "Ada".into(),
        home_campus_id: None,
    })
    .await
    .unwrap();
    let rows = s.audit_rows(1).await.unwrap();
    assert_eq!(
        (rows[0].entity.as_str(), rows[0].at),
        ("student", t + Duration::hours(1))
    );

    // an outbox row's creation time (its cause happened at another time)
    s.set_notify_settings(
        &NotifySettings {
            enabled: true,
            staff: vec![StaffRecipient {
                id: "desk".into(),
                channel: "log".into(),
                address: "desk".into(),
                language: "en".into(),
                events: None,
            }],
            ..Default::default()
        },
        "admin",
    )
    .await
    .unwrap();
    clock.set(t + Duration::days(2));
    let cause = t - Duration::days(30);
    let n = s
        .enqueue_notice(&NoticeDraft {
            notice_id: "review:1".into(),
            kind: NoticeKind::ReviewNeeded,
            student_id: None,
            class_id: None,
            params: serde_json::json!({}),
            at: cause,
        })
        .await
        .unwrap();
    assert_eq!(n, 1);
    let rows = s.notice_rows("review:1").await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].created_at, t + Duration::days(2));
    assert_eq!(rows[0].due_at, cause);
}
