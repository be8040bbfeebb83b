//! `rollcall notify …` end to end on a scratch SQLite data directory: settings, a check-in that
//! writes an arrival notice, one dispatcher tick to the log channel, status, dead letters with a
//! clear error, requeue, and bad input refused.

use rollcall_testkit::bin::RunExt;
use serde_json::Value;
use std::path::Path;

fn rollcall(data: &Path, args: &[&str]) -> (bool, String, String) {
    rollcall_testkit::rollcall!()
        .args(args)
        .arg("--data")
        .arg(data)
        .env_remove("ROLLCALL_SCHOOL")
        .env_remove("ROLLCALL_WEBHOOK_URL")
        .env_remove("ROLLCALL_SMTP_HOST")
        .run()
        .into()
}

fn json(data: &Path, args: &[&str]) -> Value {
    let (ok, out, err) = rollcall(data, args);
    assert!(ok, "rollcall {args:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn notify_settings_checkin_dispatch_status_and_dead_letters() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    let d = d.as_path();
    json(
        d,
        &[
            "school",
            "acme",
            "--name",
            "Acme",
            "--tz-offset-minutes",
            "480",
        ],
    );
    for (kind, csv) in [
        ("campuses", "id,name\nnorth,North\n"),
        ("students", "id,name\ns1,Miranda\n"),
        (
            "guardians",
            "id,student_id,name,phone,email,language,notify\ng1,s1,Mum,+8613800000001,,zh-CN,log\ng2,s1,Dad,+8613800000002,,en,sms\n",
        ),
        ("classes", "id,course,name,campus,teacher\nmath,Maths,Maths Y7,north,lee\n"),
        (
            "timetable",
            "lesson_id,class_id,start,end\nM0,math,2026-01-05T08:00:00Z,2026-01-05T09:00:00Z\n",
        ),
        ("enrollments", "class_id,student_id\nmath,s1\n"),
        (
            "packages",
            "id,student_id,lessons,unit_price_cents,bought_at,expires_at\np1,s1,10,10000,2025-12-01T00:00:00Z,2026-12-01T00:00:00Z\n",
        ),
    ] {
        let f = write(tmp.path(), &format!("{kind}.csv"), csv);
        json(d, &["import", kind, &f]);
    }
    // off until configured
    let st = json(d, &["notify", "status"]);
    assert_eq!(st["settings"]["enabled"], false);
    let bad = write(
        tmp.path(),
        "bad.json",
        r#"{"enabled":true,"default_channels":["fax"]}"#,
    );
    let (ok, _, err) = rollcall(d, &["notify", "settings", "--set", &bad]);
    assert!(!ok && err.contains("fax"), "{err}");
    let good = write(
        tmp.path(),
        "notify.json",
        r#"{"enabled":true,"staff":[{"id":"desk","channel":"log","address":"desk"}]}"#,
    );
    let s = json(d, &["notify", "settings", "--set", &good]);
    assert_eq!(s["enabled"], true);

    json(
        d,
        &[
            "checkin",
            "s1",
            "--at",
            "2026-01-05T08:02:00Z",
            "--source",
            "manual",
        ],
    );
    let rows = json(d, &["notify", "list"]);
    let keys: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["delivery_key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        vec![
            "arrival:s1:M0/guardian:g2/sms",
            "arrival:s1:M0/guardian:g1/log"
        ]
    );
    // one tick with no webhook configured: the log row is sent, the sms row is dead-lettered
    // with the reason, visible to staff
    let t = json(d, &["notify", "run", "--once"]);
    assert_eq!(t["tick"]["sent"], 1, "{t}");
    assert_eq!(t["tick"]["dead"], 1, "{t}");
    let dead = json(d, &["notify", "list", "--state", "dead"]);
    assert_eq!(dead[0]["delivery_key"], "arrival:s1:M0/guardian:g2/sms");
    assert_eq!(
        dead[0]["last_error"],
        "permanent: channel sms is not configured"
    );
    let st = json(d, &["notify", "status"]);
    assert_eq!(st["counts"]["sent"], 1);
    assert_eq!(st["counts"]["dead"], 1);
    let id = dead[0]["id"].as_i64().unwrap().to_string();
    assert_eq!(
        json(d, &["notify", "requeue", &id])["requeued"],
        dead[0]["id"]
    );
    assert_eq!(json(d, &["notify", "status"])["counts"]["pending"], 1);
    // bad input: a clear error, no panic
    let (ok, _, err) = rollcall(d, &["notify", "list", "--state", "lost"]);
    assert!(
        !ok && err.contains("lost") && !err.contains("panicked"),
        "{err}"
    );
    let (ok, _, err) = rollcall(d, &["notify", "requeue", "99999"]);
    assert!(!ok && err.contains("99999"), "{err}");
    let (ok, _, err) = rollcall(
        d,
        &[
            "notify",
            "run",
            "--once",
            "--webhook-url",
            "http://gw.example/hook",
        ],
    );
    // plain http to another host: refused, saying what to do instead
    assert!(
        !ok && err.contains("https://") && err.contains("ROLLCALL_WEBHOOK_ALLOW_HTTP"),
        "{err}"
    );
}
