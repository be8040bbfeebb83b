//! Crash consistency of `serve`: `rollcall bench crash` plays a compact school afternoon live
//! (camera-sim MJPEG) to a `serve` child, kills it with SIGKILL at 20 seeded moments and
//! restarts it on the same data, then checks the ledger against the ground truth. Required:
//! nothing lost, nothing doubled (check-ins, deductions, notices), no stranger checked in, the
//! gallery intact, and every gap visible as an alert. On SQLite and on PostgreSQL.

use serde_json::Value;
use std::process::Command;

#[path = "common/compact.rs"]
mod compact;
use compact::compact_scenario;

/// One run at a time: each plays a live stream to a serve child on a 2-core machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn crash(database_url: Option<&str>) -> Value {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let scenario = compact_scenario(tmp.path());
    let keep = tmp.path().join("run");
    let mut args = vec![
        "bench".to_string(),
        "crash".into(),
        scenario.display().to_string(),
        "--cycles".into(),
        "20".into(),
        "--seed".into(),
        "7".into(),
        "--keep".into(),
        keep.display().to_string(),
        "--json".into(),
    ];
    if let Some(u) = database_url {
        args.push("--database-url".into());
        args.push(u.into());
    }
    let out = Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args(&args)
        .env_remove("DATABASE_URL")
        .env_remove("QDRANT_URL")
        .output()
        .expect("run rollcall bench crash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = std::fs::read_to_string(keep.join("serve.log")).unwrap_or_default();
    let tail: String = log.lines().rev().take(40).collect::<Vec<_>>().join("\n");
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{e}: {stdout}\nstderr: {}\nserve log (last lines, newest first):\n{tail}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(v["kills"], 20, "{v}");
    assert_eq!(v["lost_check_ins"], 0, "{v}\n{tail}");
    assert_eq!(v["duplicate_deductions"], 0, "{v}");
    assert_eq!(v["stranger_check_ins"], 0, "{v}");
    assert_eq!(v["lost_notices"], 0, "{v}");
    assert_eq!(v["duplicate_notices"], 0, "{v}");
    assert_eq!(v["gallery_ok"], true, "{v}");
    assert_eq!(v["ledger_ok"], true, "{v}");
    assert_eq!(v["gaps_visible"], true, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    assert!(out.status.success(), "{v}");
    // the check is not vacuous: the day had check-ins and notices, and what was missed fell in
    // the gaps
    let expected = v["expected_check_ins"].as_u64().unwrap();
    assert_eq!(expected, 5, "{v}");
    assert_eq!(
        v["check_ins"].as_u64().unwrap() + v["missed_in_gaps"].as_u64().unwrap(),
        expected,
        "{v}"
    );
    assert!(v["expected_notices"].as_u64().unwrap() > 0, "{v}");
    v
}

#[test]
fn sqlite_serve_killed_20_times_loses_and_doubles_nothing() {
    let v = crash(None);
    eprintln!("{v}");
}

#[test]
fn postgres_serve_killed_20_times_loses_and_doubles_nothing() {
    let url = std::env::var("ROLLCALL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let v = crash(Some(&url));
    assert_eq!(v["database"], "postgres");
    eprintln!("{v}");
}

/// Runs the rollcall binary on the embedded defaults (no `DATABASE_URL`, no `QDRANT_URL`) and
/// returns its JSON output; fails the test with its output when it fails.
fn run_json(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("QDRANT_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `serve` (the compact afternoon played live over MJPEG, never killed) and `run-scenario`
/// (the same frames in timestamp order, on the scenario's clock) write the same ledger:
/// attendance, deductions, alerts and notices. Camera alerts are left out: the simulated
/// stream ends after the last walk-through, which a live camera reports and a replay does not.
#[test]
fn serve_writes_the_same_ledger_as_run_scenario() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let scenario = compact_scenario(tmp.path());
    let path = scenario.display().to_string();
    let replay = run_json(&["run-scenario", &path, "--json"]);
    let keep = tmp.path().join("serve-run").display().to_string();
    let live = run_json(&[
        "bench", "crash", &path, "--cycles", "0", "--keep", &keep, "--json",
    ]);
    assert_eq!(live["ok"], true, "{live}");
    let without_camera = |v: &Value| -> Vec<Value> {
        v.as_array()
            .unwrap()
            .iter()
            .filter(|a| a[0] != "camera_offline")
            .cloned()
            .collect()
    };
    let (a, b) = (&replay["ledger"], &live["ledger"]);
    assert_eq!(a["attendance"], b["attendance"], "attendance");
    assert_eq!(a["deductions"], b["deductions"], "deductions");
    assert_eq!(
        without_camera(&a["alerts"]),
        without_camera(&b["alerts"]),
        "alerts"
    );
    let without_camera_notices = |v: &Value| -> Vec<Value> {
        v.as_array()
            .unwrap()
            .iter()
            .filter(|n| !n[0].as_str().unwrap_or("").starts_with("alert:camera:"))
            // a review item (and its notice to the front desk) hangs on a track's weakest
            // sightings, which a live run samples differently from a replay (its frames come
            // when they come); check-ins, absences and their notices must agree
            .filter(|n| !n[0].as_str().unwrap_or("").starts_with("review:"))
            .cloned()
            .collect()
    };
    assert_eq!(
        without_camera_notices(&a["notices"]),
        without_camera_notices(&b["notices"]),
        "notices"
    );
    // not vacuous: five check-ins (one student twice past the camera, deducted once), one
    // absence, their notices
    let attended = a["attendance"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x[2] == "present" || x[2] == "late")
        .count();
    assert_eq!(attended, 5, "{}", a["attendance"]);
    assert_eq!(
        a["deductions"].as_array().unwrap().len(),
        6,
        "{}",
        a["deductions"]
    );
    assert!(!a["notices"].as_array().unwrap().is_empty());
}

/// Two streams per camera (issue 22): serve finds faces in the scenario's stream (`detect_url`)
/// and cuts them from a 1280×720 main stream of the same scenes (`url`), both live over MJPEG;
/// run-scenario does the same with `--main-size`. Both must check in the same five students
/// and deduct the same lessons, as with one stream.
#[test]
fn two_streams_per_camera_serve_and_run_scenario_agree() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let scenario = compact_scenario(tmp.path());
    let path = scenario.display().to_string();
    let replay = run_json(&["run-scenario", &path, "--main-size", "1280x720", "--json"]);
    assert_eq!(replay["score"]["false_check_ins"], 0, "{}", replay["score"]);
    assert_eq!(
        replay["score"]["check_in_recall"], 1.0,
        "{}",
        replay["score"]
    );
    let keep = tmp.path().join("serve-run").display().to_string();
    let live = run_json(&[
        "bench",
        "crash",
        &path,
        "--cycles",
        "0",
        "--main-size",
        "1280x720",
        "--keep",
        &keep,
        "--json",
    ]);
    assert_eq!(live["ok"], true, "{live}");
    let config = std::fs::read_to_string(tmp.path().join("serve-run/serve.toml")).unwrap();
    assert!(config.contains("detect_url"), "{config}");
    let (a, b) = (&replay["ledger"], &live["ledger"]);
    assert_eq!(a["attendance"], b["attendance"], "attendance");
    assert_eq!(a["deductions"], b["deductions"], "deductions");
    let attended = a["attendance"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x[2] == "present" || x[2] == "late")
        .count();
    assert_eq!(attended, 5, "{}", a["attendance"]);
}
