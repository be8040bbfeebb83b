//! The live path's ledger writer against a real ledger (SQLite and PostgreSQL): a check-in the
//! ledger refuses is parked durably with its reason and a `check_in_failed` alert, and the
//! check-ins behind it commit.

use chrono::Utc;
use rollcall_domain::ledger::{AlertKind, AttendanceSource, SchoolPolicy};
use rollcall_ledger::{CheckIn, NewStudent, Store};
use rollcall_runtime::{Committed, GroupPort, LedgerWriter, RetryPolicy};
use rollcall_testkit::pg::ScratchDb;

async fn school(store: Store) -> Store {
    let store = store
        .create_school("acme", "Acme", 480, &SchoolPolicy::default())
        .await
        .unwrap();
    for i in 0..10 {
        store
            .create_student(&NewStudent {
                id: format!("s{i}"),
                name: format!("Student {i}"),
                home_campus_id: None,
            })
            .await
            .unwrap();
    }
    store
}

async fn parked_then_ten_commit(
    open: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Store>>>,
) {
    let store = school(open().await).await;
    let (port, group) = GroupPort::spawn(store.clone());
    let w = LedgerWriter::new(port, RetryPolicy::default());
    let now = Utc::now();
    let mut ghost = CheckIn::new("ghost", now, AttendanceSource::Face);
    ghost.camera_id = Some("lobby".into());
    ghost.event_key = Some("face:lobby:1:1".into());
    let mut handles = vec![w.submit(ghost.clone()).await];
    for i in 0..10 {
        let mut ci = CheckIn::new(&format!("s{i}"), now, AttendanceSource::Face);
        ci.event_key = Some(format!("face:lobby:{}:1", i + 2));
        handles.push(w.submit(ci).await);
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    match &out[0] {
        Committed::Parked { reason, error } => {
            assert_eq!(*reason, "refused");
            assert!(error.contains("ghost"), "{error}");
        }
        other => panic!("expected parked, got {other:?}"),
    }
    for o in &out[1..] {
        assert!(matches!(o, Committed::Recorded(_)), "{o:?}");
    }
    // the same event parked twice is one row
    assert!(!store
        .park_check_in(&ghost, "refused", "again", 1, Utc::now())
        .await
        .unwrap());
    drop(w);
    group.await.unwrap();
    let school_id = store.school_id().to_string();
    store.close().await;

    // durable: a fresh process sees the parked check-in and its alert
    let root = open().await;
    let store = root.school(&school_id).await.unwrap();
    let parked = store.parked_check_ins().await.unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].student_id, "ghost");
    assert_eq!(parked[0].event_key, "face:lobby:1:1");
    assert_eq!(parked[0].camera_id.as_deref(), Some("lobby"));
    assert_eq!(parked[0].reason, "refused");
    let alerts = store.alerts(None).await.unwrap();
    let a: Vec<_> = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::CheckInFailed)
        .collect();
    assert_eq!(a.len(), 1, "{alerts:?}");
    assert!(a[0].message.contains("ghost"), "{}", a[0].message);
    let events = store.checkin_events(100).await.unwrap();
    assert_eq!(events.len(), 10, "the ten check-ins behind it are recorded");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_refused_check_in_is_parked_and_the_next_ten_commit() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().to_path_buf();
    parked_then_ten_commit(move || {
        let p = p.clone();
        Box::pin(async move { Store::open_data_dir(&p).await.unwrap() })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_refused_check_in_is_parked_and_the_next_ten_commit() {
    let db = ScratchDb::create("rt").await;
    let url = db.url().to_string();
    parked_then_ten_commit(move || {
        let url = url.clone();
        Box::pin(async move { Store::open(&url).await.unwrap() })
    })
    .await;
}
