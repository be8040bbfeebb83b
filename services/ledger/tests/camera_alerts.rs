//! Camera-health alerts: one per outage, resolved when the camera is back.

use chrono::{TimeZone, Utc};
use rollcall_domain::ledger::{AlertState, SchoolPolicy};
use rollcall_ledger::Store;

#[tokio::test]
async fn one_alert_per_outage_resolved_when_back_online() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_data_dir(dir.path()).await.unwrap();
    let s = store
        .create_school("sch", "School", 0, &SchoolPolicy::default())
        .await
        .unwrap();
    let t = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap();
    assert!(s
        .raise_camera_alert("door", "camera:door:1", "offline", t)
        .await
        .unwrap());
    // Retries of the same outage are no-ops.
    assert!(!s
        .raise_camera_alert("door", "camera:door:1", "offline", t)
        .await
        .unwrap());
    assert!(s
        .raise_camera_alert("hall", "camera:hall:1", "stale", t)
        .await
        .unwrap());
    assert_eq!(s.resolve_camera_alerts("door").await.unwrap(), 1);
    assert_eq!(s.resolve_camera_alerts("door").await.unwrap(), 0);
    let alerts = s.alerts(None).await.unwrap();
    assert_eq!(alerts.len(), 2);
    for a in &alerts {
        let want = if a.dedup_key.starts_with("camera:door:") {
            AlertState::Resolved
        } else {
            AlertState::Open
        };
        assert_eq!(a.state, want, "{a:?}");
        assert_eq!(a.student_id, "");
    }
    // A new outage of the same camera is a new alert.
    assert!(s
        .raise_camera_alert("door", "camera:door:2", "offline", t)
        .await
        .unwrap());
    store.close().await;
}
