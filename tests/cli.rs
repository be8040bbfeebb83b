//! End-to-end tests of the `rollcall` binary on the real models and fixtures: vision commands,
//! pair evaluation, and the gallery's enroll → identify → erase cycle in a fresh data directory.

use rollcall_testkit::bin::RunExt;
use rollcall_testkit::{fixtures_dir as fixtures, http, workspace_root as root};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// A template key for this test run (enrollment seals templates with it; issue 9), made by
/// the binary itself: no key is ever stored in the repository.
fn template_key() -> &'static str {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let out = rollcall_testkit::rollcall!()
            .args(["privacy", "new-key", "--id", "test"])
            .output()
            .expect("run rollcall privacy new-key");
        let v: Value = serde_json::from_slice(&out.stdout).expect("new-key prints JSON");
        v["entry"].as_str().expect("entry").to_string()
    })
}

/// Enrollment is refused without a guardian's consent (issue 9): before every `enroll` the
/// test school records one (registering the student and a guardian when new).
fn grant_consent_for(args: &[&str]) {
    let value = |flag: &str| {
        args.iter()
            .position(|a| *a == flag)
            .and_then(|i| args.get(i + 1))
            .copied()
    };
    let (Some(data), Some(student)) = (value("--data"), value("--student")) else {
        return;
    };
    let guardian = format!("{student}-guardian");
    let (ok, _, err) = run_rollcall(&[
        "consent",
        "grant",
        "--data",
        data,
        "--student",
        student,
        "--name",
        value("--name").unwrap_or(student),
        "--guardian",
        &guardian,
        "--guardian-name",
        "Guardian",
        "--document",
        "test-consent-form",
    ]);
    assert!(ok, "consent grant for {student}: {err}");
}

fn rollcall(args: &[&str]) -> (bool, String, String) {
    if args.first() == Some(&"enroll") {
        grant_consent_for(args);
    }
    run_rollcall(args)
}

fn run_rollcall(args: &[&str]) -> (bool, String, String) {
    rollcall_testkit::rollcall!()
        .args(args)
        .env("ROLLCALL_TEMPLATE_KEYS", template_key())
        .env_remove("ROLLCALL_TEMPLATE_KEY_ID")
        .run()
        .into()
}

fn json_of(args: &[&str]) -> Value {
    let (ok, out, err) = rollcall(args);
    assert!(ok, "rollcall {args:?} failed: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn face(rel: &str) -> String {
    fixtures().join("faces").join(rel).display().to_string()
}

#[test]
fn detect_prints_boxes_landmarks_and_quality_and_annotates() {
    let tmp = tempfile::tempdir().unwrap();
    let png = tmp.path().join("out.png");
    let v = json_of(&[
        "detect",
        &fixtures()
            .join("groups/kit_with_rose.jpg")
            .display()
            .to_string(),
        "--annotate",
        &png.display().to_string(),
    ]);
    let faces = v["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 2);
    for f in faces {
        assert_eq!(f["box"].as_array().unwrap().len(), 4);
        assert_eq!(f["landmarks"].as_array().unwrap().len(), 5);
        assert!(f["score"].as_f64().unwrap() > 0.5);
        assert!(f["quality"]["passed"].is_boolean());
        assert!(f["quality"]["reasons"].is_array());
    }
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..4], b"\x89PNG");
}

#[test]
fn verify_says_same_and_different() {
    let same = json_of(&["verify", &face("obama/1.jpg"), &face("obama/2.jpg")]);
    assert_eq!(same["same"], true);
    let t = same["threshold"].as_f64().unwrap();
    assert!(same["similarity"].as_f64().unwrap() >= t);
    let diff = json_of(&["verify", &face("obama/1.jpg"), &face("biden/1.jpg")]);
    assert_eq!(diff["same"], false);
    assert!(diff["similarity"].as_f64().unwrap() < t);
}

#[test]
fn bad_input_fails_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let txt = tmp.path().join("photo.jpg");
    std::fs::write(&txt, "hello").unwrap();
    let (ok, _, err) = rollcall(&["detect", &txt.display().to_string()]);
    assert!(!ok);
    assert!(err.contains("not a supported image"), "{err}");
    let (ok, _, err) = rollcall(&["verify", &face("obama/1.jpg"), "/nonexistent.jpg"]);
    assert!(!ok);
    assert!(err.contains("/nonexistent.jpg"), "{err}");
}

/// A photo of the vision crate's test data (WebP by cwebp, HEIC by heif-enc, AVIF by avifenc;
/// services/vision/tests/data/README.md).
fn vision_data(name: &str) -> String {
    root()
        .join("services/vision/tests/data")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn webp_photos_work_wherever_a_photo_is_read() {
    let webp = vision_data("obama_2.webp");
    // detect, embed
    let v = json_of(&["detect", &webp]);
    assert_eq!(v["faces"].as_array().unwrap().len(), 1, "{v}");
    let v = json_of(&["embed", &vision_data("kit_harington_2_lossless.webp")]);
    assert_eq!(
        v["faces"][0]["embedding"].as_array().unwrap().len(),
        128,
        "{v}"
    );
    // verify: the WebP scores against another photo as the JPEG it was made from does
    let from_webp = json_of(&["verify", &webp, &face("obama/1.jpg")]);
    let from_jpeg = json_of(&["verify", &face("obama/2.jpg"), &face("obama/1.jpg")]);
    assert_eq!(from_webp["same"], true, "{from_webp}");
    let (w, j) = (
        from_webp["similarity"].as_f64().unwrap(),
        from_jpeg["similarity"].as_f64().unwrap(),
    );
    assert!((w - j).abs() < 0.06, "WebP {w}, JPEG {j}");
    let other = json_of(&["verify", &webp, &face("biden/1.jpg")]);
    assert_eq!(other["same"], false, "{other}");
    // eval-pairs over a folder holding WebP files
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("photos");
    std::fs::create_dir(&dir).unwrap();
    for (from, to) in [
        (webp.clone(), "obama_2.webp"),
        (vision_data("obama_2_exif_rotated.webp"), "obama_rot.webp"),
        (face("obama/1.jpg"), "obama_1.jpg"),
        (face("biden/1.jpg"), "biden_1.jpg"),
    ] {
        std::fs::copy(from, dir.join(to)).unwrap();
    }
    let pairs = tmp.path().join("pairs.csv");
    std::fs::write(
        &pairs,
        "id,file_x,file_y,decision\n1,obama_2.webp,obama_1.jpg,Yes\n2,obama_rot.webp,obama_1.jpg,Yes\n3,obama_2.webp,biden_1.jpg,No\n",
    )
    .unwrap();
    let v = json_of(&[
        "eval-pairs",
        &pairs.display().to_string(),
        "--root",
        &dir.display().to_string(),
    ]);
    assert_eq!(
        (v["pairs"].as_u64(), v["unreadable"].as_u64()),
        (Some(3), Some(0)),
        "{v}"
    );
    assert_eq!(v["accuracy"].as_f64().unwrap(), 1.0, "{v}");
    // enroll from a WebP; identify a JPEG and a WebP of the same person
    let data = tmp.path().join("data").display().to_string();
    let v = json_of(&[
        "enroll",
        "--data",
        &data,
        "--student",
        "s-obama",
        "--name",
        "Barack",
        &webp,
    ]);
    assert_eq!(v["enrolled"].as_array().unwrap().len(), 1, "{v}");
    let v = json_of(&[
        "enroll",
        "--data",
        &data,
        "--student",
        "s-biden",
        &face("biden/1.jpg"),
    ]);
    assert_eq!(v["enrolled"].as_array().unwrap().len(), 1, "{v}");
    for probe in [
        face("obama/3.jpg"),
        vision_data("obama_2_exif_rotated.webp"),
    ] {
        let v = json_of(&["identify", "--data", &data, &probe]);
        assert_eq!(
            v["faces"][0]["candidates"][0]["student"], "s-obama",
            "{probe}: {v}"
        );
        assert_ne!(v["faces"][0]["decision"], "unknown", "{probe}: {v}");
    }
}

#[test]
fn heic_and_avif_photos_are_refused_by_name_with_what_to_do() {
    let heic = vision_data("biden_2.heic");
    let avif = vision_data("biden_2.avif");
    let (ok, _, err) = rollcall(&["detect", &heic]);
    assert!(!ok);
    assert!(
        err.contains("HEIC photo: not supported; export it as JPEG or WebP"),
        "{err}"
    );
    let (ok, _, err) = rollcall(&["verify", &face("biden/1.jpg"), &avif]);
    assert!(!ok);
    assert!(
        err.contains("AVIF photo: not supported; export it as JPEG or WebP"),
        "{err}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data").display().to_string();
    let v = json_of(&[
        "enroll",
        "--data",
        &data,
        "--student",
        "s-biden",
        "--name",
        "Joe",
        &heic,
        &avif,
    ]);
    assert_eq!(v["enrolled"].as_array().unwrap().len(), 0, "{v}");
    let rejected = v["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{v}");
    for r in rejected {
        assert_eq!(r["code"], "unsupported_photo_format", "{v}");
    }
    assert!(
        rejected[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("HEIC photo"),
        "{v}"
    );
    assert!(
        rejected[1]["message"]
            .as_str()
            .unwrap()
            .starts_with("AVIF photo"),
        "{v}"
    );
}

#[test]
fn bench_gallery_footprint_is_a_documented_flag() {
    let (ok, help, err) = rollcall(&["bench", "gallery", "--help"]);
    assert!(ok, "{err}");
    assert!(help.contains("--footprint <DIR>"), "{help}");
    assert!(help.contains("--dim <DIM>"), "{help}");
    // `bench gallery` measures each size's serving memory by running itself with the flag
    let tmp = tempfile::tempdir().unwrap();
    let v = json_of(&[
        "bench",
        "gallery",
        "--sizes",
        "300",
        "--queries",
        "20",
        "--dir",
        &tmp.path().display().to_string(),
        "--json",
    ]);
    let serving = &v["gallery"]["sizes"][0]["serving"];
    assert!(
        serving["rss_delta_bytes"].is_i64(),
        "no serving footprint: {v}"
    );
    // --dim without --footprint is refused
    let (ok, _, err) = rollcall(&["bench", "gallery", "--dim", "64"]);
    assert!(!ok);
    assert!(err.contains("--footprint"), "{err}");
}

#[test]
fn eval_pairs_on_every_fixture_pair() {
    let tmp = tempfile::tempdir().unwrap();
    let mut photos = Vec::new();
    for person in std::fs::read_dir(fixtures().join("faces")).unwrap() {
        let person = person.unwrap().path();
        for f in std::fs::read_dir(&person).unwrap() {
            let f = f.unwrap().path();
            let who = person.file_name().unwrap().to_string_lossy().into_owned();
            let rel = format!("{who}/{}", f.file_name().unwrap().to_string_lossy());
            photos.push((who, rel));
        }
    }
    let mut csv = String::from("id,file_x,file_y,decision,note\n");
    let mut n = 0;
    for i in 0..photos.len() {
        for j in i + 1..photos.len() {
            let d = if photos[i].0 == photos[j].0 {
                "Yes"
            } else {
                "No"
            };
            csv += &format!("{n},{},{},{d},x\n", photos[i].1, photos[j].1);
            n += 1;
        }
    }
    // One pair naming a file that does not exist: counted, not fatal.
    csv += &format!("{n},obama/1.jpg,missing.jpg,No,x\n");
    let p = tmp.path().join("pairs.csv");
    std::fs::write(&p, csv).unwrap();
    let v = json_of(&[
        "eval-pairs",
        &p.display().to_string(),
        "--root",
        &fixtures().join("faces").display().to_string(),
    ]);
    assert_eq!(v["pairs"].as_u64().unwrap(), n as u64 + 1);
    assert_eq!(v["no_face"], 0);
    assert_eq!(v["unreadable"], 1);
    assert_eq!(v["false_accepts"], 0);
    assert_eq!(v["false_rejects"], 0);
    assert_eq!(v["accuracy"].as_f64().unwrap(), 1.0);
    assert!(v["threshold"].as_f64().unwrap() > 0.0);
    assert_eq!(v["tar_at_far"]["0.01"].as_f64().unwrap(), 1.0);
}

#[test]
fn enroll_identify_erase_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data").display().to_string();
    for (id, name, photo) in [
        ("s-obama", "Barack", "obama/1.jpg"),
        ("s-biden", "Joe", "biden/1.jpg"),
        ("s-kit", "Kit", "kit_harington/1.jpg"),
    ] {
        let v = json_of(&[
            "enroll",
            "--data",
            &data,
            "--student",
            id,
            "--name",
            name,
            &face(photo),
        ]);
        assert_eq!(v["enrolled"].as_array().unwrap().len(), 1, "{v}");
    }
    // A group photo cannot enroll anyone.
    let v = json_of(&[
        "enroll",
        "--data",
        &data,
        "--student",
        "s-x",
        &fixtures()
            .join("groups/two_people.jpg")
            .display()
            .to_string(),
    ]);
    assert_eq!(v["rejected"][0]["code"], "several_faces");
    let v = json_of(&["identify", "--data", &data, &face("obama/3.jpg")]);
    assert_eq!(v["faces"][0]["candidates"][0]["student"], "s-obama", "{v}");
    assert_eq!(v["faces"][0]["decision"], "accept");
    let r = json_of(&["gallery", "report", "--data", &data]);
    assert_eq!(r["report"]["students"], 3);
    assert_eq!(r["report"]["under_enrolled"].as_array().unwrap().len(), 3);
    let receipt = json_of(&["erase", "--data", &data, "--student", "s-obama"]);
    assert_eq!(receipt["templates_removed"].as_array().unwrap().len(), 1);
    assert_eq!(receipt["templates_remaining"], 0);
    let v = json_of(&["identify", "--data", &data, &face("obama/3.jpg")]);
    assert!(v["faces"][0]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["student"] != "s-obama"));
    assert_ne!(v["faces"][0]["decision"], "accept");
}

/// The fixture clip with Lin-Manuel Miranda and Alex Lacamoire enrolled: exactly one check-in
/// (Miranda), none for anyone else, and no stranger's track reaches the accept band.
#[test]
fn watch_the_fixture_clip_checks_in_miranda_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data").display().to_string();
    let v = json_of(&[
        "enroll",
        "--data",
        &data,
        "--student",
        "lmm",
        "--name",
        "Lin-Manuel",
        &face("lin_manuel_miranda/1.png"),
    ]);
    assert_eq!(v["enrolled"].as_array().unwrap().len(), 1, "{v}");
    let v = json_of(&[
        "enroll",
        "--data",
        &data,
        "--student",
        "alex",
        "--name",
        "Alex",
        &face("alex_lacamoire/1.png"),
        &face("alex_lacamoire/2.jpg"),
        &face("alex_lacamoire/3.jpg"),
    ]);
    assert_eq!(v["enrolled"].as_array().unwrap().len(), 3, "{v}");
    let clip = fixtures().join("video/short_hamilton_clip.mp4");
    let (ok, out, err) = rollcall(&[
        "watch",
        "--data",
        &data,
        "--start",
        "2026-11-23T15:00:00Z",
        "--json",
        &clip.display().to_string(),
    ]);
    assert!(ok, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let (summary, decisions) = lines.split_last().unwrap();
    assert!(summary["frames"].as_u64().unwrap() >= 80, "{summary}");
    assert_eq!(
        summary["decisions"].as_u64().unwrap() as usize,
        decisions.len()
    );
    let check_ins: Vec<&Value> = decisions.iter().filter(|d| d["check_in"] == true).collect();
    assert_eq!(check_ins.len(), 1, "{out}");
    assert_eq!(check_ins[0]["student"], "lmm");
    assert_eq!(check_ins[0]["decision"], "accept");
    for d in decisions {
        assert_ne!(d["student"], "alex", "{d}");
        for k in [
            "decision",
            "student",
            "similarity",
            "margin",
            "camera",
            "track",
            "time",
        ] {
            assert!(d.get(k).is_some(), "{k} missing in {d}");
        }
        if d["decision"] == "review" {
            // A review item may only be Miranda's own second track, never a stranger above
            // the accept band.
            assert_eq!(d["student"], "lmm", "{d}");
        }
    }
}

/// `rollcall serve` with two cameras: the fixture clip and a URL that refuses connections. The
/// dead camera reconnects with backoff and is reported offline while the other one checks
/// Miranda in exactly once; SIGTERM drains and stops cleanly; the check-in is in the ledger.
#[test]
fn serve_checks_in_from_one_camera_while_another_is_dead() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.display().to_string();
    json_of(&[
        "enroll",
        "--data",
        &d,
        "--student",
        "lmm",
        "--name",
        "Lin-Manuel",
        &face("lin_manuel_miranda/1.png"),
    ]);
    json_of(&[
        "enroll",
        "--data",
        &d,
        "--student",
        "alex",
        "--name",
        "Alex",
        &face("alex_lacamoire/1.png"),
    ]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let cfg = tmp.path().join("rollcall.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"data = "{d}"
listen = "{addr}"
finalize_every_s = 2
[[cameras]]
id = "stage"
url = "{}"
campus = "main"
door = "front"
fps = 10
[[cameras]]
id = "dead"
url = "http://127.0.0.1:1/x.mjpg"
campus = "main"
reconnect = {{ initial_ms = 100, max_ms = 400 }}
"#,
            fixtures().join("video/short_hamilton_clip.mp4").display()
        ),
    )
    .unwrap();
    let mut child = rollcall_testkit::rollcall!()
        .args(["serve", "--config", &cfg.display().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the clip has played to its end (real time, ~9 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let mut health = String::new();
    while std::time::Instant::now() < deadline {
        if let Some(h) = http::get(&addr, "/healthz", std::time::Duration::from_secs(5)) {
            health = h;
            if health.contains(r#""stage":"ended""#) {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert!(health.contains(r#""stage":"ended""#), "{health}");
    assert!(health.contains(r#""dead":"offline""#), "{health}");
    let metrics = http::get(&addr, "/metrics", std::time::Duration::from_secs(5)).unwrap();
    let reconnects: u64 = metrics
        .lines()
        .find(|l| l.starts_with("rollcall_reconnects_total{camera=\"dead\"}"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(reconnects >= 2, "{metrics}");
    assert!(metrics.contains("rollcall_frames_processed_total{camera=\"stage\"}"));
    assert!(http::get(&addr, "/nope", std::time::Duration::from_secs(5))
        .unwrap()
        .contains("not_found"));
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (events, alerts) = rt.block_on(async {
        let store = rollcall_ledger::Store::open_data_dir(&data).await.unwrap();
        let s = store.only_school().await.unwrap();
        let e = s.checkin_events(100).await.unwrap();
        let a = s.alerts(None).await.unwrap();
        store.close().await;
        (e, a)
    });
    // One camera-offline alert for the dead camera (one per outage, not one per retry), none
    // for the camera that worked.
    let cam_alerts: Vec<_> = alerts
        .iter()
        .filter(|a| a.kind.as_str() == "camera_offline")
        .collect();
    assert_eq!(cam_alerts.len(), 1, "{alerts:?}");
    assert!(cam_alerts[0].message.contains("camera dead"), "{alerts:?}");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].student_id, "lmm");
    assert_eq!(events[0].camera_id.as_deref(), Some("stage"));
    assert_eq!(events[0].source, "face");
}

/// camera-sim's example scenario rendered with the faces the real detector finds in its photos:
/// the ground truth matches the rendering (the detector finds a face on each clearly visible
/// ground-truth box), and the same seed renders byte-identical frames.
#[test]
fn sim_render_ground_truth_matches_what_the_detector_sees() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = root().join("camera-sim/scenarios/afternoon.toml");
    let out = tmp.path().join("a");
    let v = json_of(&[
        "sim",
        "render",
        &scenario.display().to_string(),
        "--out",
        &out.display().to_string(),
    ]);
    assert!(v["frames"].as_u64().unwrap() > 100, "{v}");
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("truth.json")).unwrap()).unwrap();
    let visible: Vec<&Value> = truth["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            let p = f["persons"].as_array().unwrap();
            p.len() == 1
                && p[0]["occlusion"].as_f64().unwrap_or(0.0) == 0.0
                && p[0]["box"]["y2"].as_f64().unwrap() - p[0]["box"]["y1"].as_f64().unwrap() >= 60.0
        })
        .collect();
    assert!(
        visible.len() >= 20,
        "{} clearly visible frames",
        visible.len()
    );
    let mut p = rollcall_vision::FacePipeline::open(&rollcall_vision::PipelineConfig {
        models_dir: std::env::var_os("ROLLCALL_MODELS_DIR").map(PathBuf::from),
        ..Default::default()
    })
    .unwrap();
    let step = visible.len() / 20;
    let (mut checked, mut found) = (0, 0);
    for f in visible.iter().step_by(step.max(1)).take(20) {
        let b = &f["persons"][0]["box"];
        let t = rollcall_domain::face::BBox {
            x1: b["x1"].as_f64().unwrap() as f32,
            y1: b["y1"].as_f64().unwrap() as f32,
            x2: b["x2"].as_f64().unwrap() as f32,
            y2: b["y2"].as_f64().unwrap() as f32,
        };
        let frame = rollcall_vision::decode::decode_file(
            &out.join(f["file"].as_str().unwrap()),
            &Default::default(),
        )
        .unwrap();
        let dets = p.detector.detect(&frame).unwrap();
        checked += 1;
        if dets.iter().any(|d| d.bbox.iou(&t) > 0.5) {
            found += 1;
        }
    }
    assert!(
        found * 10 >= checked * 9,
        "detector agreed with truth on {found}/{checked} frames"
    );
    // Deterministic: a second render is byte-identical.
    let again = tmp.path().join("b");
    json_of(&[
        "sim",
        "render",
        &scenario.display().to_string(),
        "--out",
        &again.display().to_string(),
    ]);
    let f0 = visible[0]["file"].as_str().unwrap();
    assert_eq!(
        std::fs::read(out.join(f0)).unwrap(),
        std::fs::read(again.join(f0)).unwrap()
    );
    assert_eq!(
        std::fs::read(out.join("truth.json")).unwrap(),
        std::fs::read(again.join("truth.json")).unwrap()
    );
}

/// Two `rollcall serve` processes, each with its own camera and its own embedded gallery, write
/// to one PostgreSQL ledger. Miranda walks past both cameras during her lesson: both processes
/// accept her and send a check-in; the ledger deducts exactly one lesson.
#[test]
fn two_serve_processes_on_one_postgres_never_double_deduct() {
    let url = rollcall_testkit::pg::admin_url();
    let school = format!(
        "two-serve-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The school's timetable: a lesson around now, Miranda enrolled with a 5-lesson package.
    rt.block_on(async {
        use rollcall_domain::ledger::{ClassPolicy, SchoolPolicy};
        use rollcall_ledger::*;
        let root = Store::open(&url)
            .await
            .expect("PostgreSQL (ROLLCALL_TEST_DATABASE_URL)");
        let s = root
            .create_school(&school, "Two serves", 0, &SchoolPolicy::default())
            .await
            .unwrap();
        s.create_campus("main", "Main").await.unwrap();
        s.create_student(&NewStudent {
            id: "lmm".into(),
            name: "Lin-Manuel".into(),
            home_campus_id: Some("main".into()),
        })
        .await
        .unwrap();
        // a guardian consents to face recognition (enrollment is refused otherwise)
        s.add_guardian(&NewGuardian {
            id: "lmm-g1".into(),
            student_id: "lmm".into(),
            name: "Luis".into(),
            phone: None,
            email: Some("luis@example.org".into()),
            language: "en".into(),
            notify_prefs: "email".into(),
        })
        .await
        .unwrap();
        s.record_consent_decision(
            "lmm",
            &rollcall_domain::privacy::ConsentRecord {
                kind: rollcall_domain::privacy::FACE_CONSENT.into(),
                granted: true,
                given_by: "lmm-g1".into(),
                at: chrono::Utc::now() - chrono::Duration::days(2),
                document_ref: Some("form-1".into()),
                expires_at: None,
            },
        )
        .await
        .unwrap();
        s.create_class(&NewClass {
            id: "drama".into(),
            course: "drama".into(),
            name: "Drama".into(),
            campus_id: "main".into(),
            teacher: "t".into(),
            policy: ClassPolicy::default(),
            capacity: None,
            room_id: None,
            kind: Default::default(),
        })
        .await
        .unwrap();
        let now = chrono::Utc::now();
        s.add_lesson(&NewLesson {
            id: "drama-1".into(),
            class_id: "drama".into(),
            room_id: None,
            teacher: None,
            start: now - chrono::Duration::minutes(5),
            end: now + chrono::Duration::hours(1),
        })
        .await
        .unwrap();
        s.enroll("drama", "lmm", now - chrono::Duration::days(1))
            .await
            .unwrap();
        s.purchase(&NewPackage {
            id: "p1".into(),
            student_id: "lmm".into(),
            campus_id: None,
            lessons: 5,
            unit_price_cents: 1000,
            price_paid_cents: None,
            bought_at: now - chrono::Duration::days(1),
            expires_at: now + chrono::Duration::days(90),
        })
        .await
        .unwrap();
        root.close().await;
    });
    let tmp = tempfile::tempdir().unwrap();
    let clip = fixtures().join("video/short_hamilton_clip.mp4");
    let mut children = Vec::new();
    let mut addrs = Vec::new();
    for cam in ["door-a", "door-b"] {
        let data = tmp.path().join(cam);
        let d = data.display().to_string();
        let out = rollcall_testkit::rollcall!()
            .args([
                "enroll",
                "--data",
                &d,
                "--school",
                &school,
                "--student",
                "lmm",
                &face("lin_manuel_miranda/1.png"),
            ])
            .env("DATABASE_URL", &url)
            .env("ROLLCALL_TEMPLATE_KEYS", template_key())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let cfg = tmp.path().join(format!("{cam}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "data = \"{d}\"\nschool = \"{school}\"\nlisten = \"{addr}\"\n[[cameras]]\nid = \"{cam}\"\nurl = \"{}\"\ncampus = \"main\"\nfps = 10\n",
                clip.display()
            ),
        )
        .unwrap();
        children.push(
            rollcall_testkit::rollcall!()
                .args(["serve", "--config", &cfg.display().to_string()])
                .env("DATABASE_URL", &url)
                .env("ROLLCALL_TEMPLATE_KEYS", template_key())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        addrs.push((cam, addr));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    for (cam, addr) in &addrs {
        let mut health = String::new();
        while std::time::Instant::now() < deadline {
            if let Some(h) = http::get(addr, "/healthz", std::time::Duration::from_secs(5)) {
                health = h;
                if health.contains(&format!(r#""{cam}":"ended""#)) {
                    break;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        assert!(health.contains(&format!(r#""{cam}":"ended""#)), "{health}");
    }
    for c in &mut children {
        let pid = c.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
    }
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let (events, entries) = rt.block_on(async {
        let root = rollcall_ledger::Store::open(&url).await.unwrap();
        let s = root.school(&school).await.unwrap();
        let e = s.checkin_events(100).await.unwrap();
        let l = s.entries(Some("lmm")).await.unwrap();
        root.close().await;
        (e, l)
    });
    // Both processes reported her (one event per camera) ...
    let cams: std::collections::BTreeSet<_> =
        events.iter().filter_map(|e| e.camera_id.clone()).collect();
    assert_eq!(
        cams,
        ["door-a".to_string(), "door-b".to_string()]
            .into_iter()
            .collect(),
        "{events:?}"
    );
    // ... and exactly one lesson was deducted.
    let deductions: Vec<_> = entries
        .iter()
        .filter(|e| e.entry.kind.as_str() == "deduction")
        .collect();
    assert_eq!(deductions.len(), 1, "{entries:?}");
    assert_eq!(deductions[0].entry.lesson_id.as_deref(), Some("drama-1"));
}

/// serve's `instance` names its heartbeat file in a data directory that several serves share:
/// only letters, digits, `-` and `_` (it becomes a file name), from the config or
/// `ROLLCALL_INSTANCE`; a bad one stops serve before it opens anything. So do cluster layout
/// numbers that are not positive whole numbers.
#[test]
fn serve_refuses_a_bad_instance_name_and_a_bad_cluster_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("serve.toml");
    let data = tmp.path().join("data");
    let run = |toml: &str, env: &[(&str, &str)]| {
        std::fs::write(&cfg, toml).unwrap();
        let mut cmd = rollcall_testkit::rollcall!();
        cmd.args(["serve", "--config"])
            .arg(&cfg)
            .env_remove("ROLLCALL_INSTANCE")
            .env_remove("QDRANT_SHARDS")
            .env_remove("ROLLCALL_DATA");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let base = format!(
        "data = {:?}\nlisten = \"127.0.0.1:0\"\n",
        data.display().to_string()
    );
    for bad in ["../north", "a/b", "", "north campus"] {
        let (ok, err) = run(&format!("{base}instance = {bad:?}\n"), &[]);
        assert!(!ok, "{bad:?} accepted");
        assert!(err.contains("instance"), "{bad:?}: {err}");
    }
    let (ok, err) = run(&base, &[("ROLLCALL_INSTANCE", "../../etc/x")]);
    assert!(!ok && err.contains("instance"), "{err}");
    let (ok, err) = run(&base, &[("QDRANT_SHARDS", "three")]);
    assert!(!ok && err.contains("QDRANT_SHARDS"), "{err}");
    // nothing was created for any of them
    assert!(!data.exists());
}

/// `bench sizes` (issue 22): photos reduced to a lobby camera's face sizes, found and embedded
/// again, and compared with every other photo at full size.
#[test]
fn bench_sizes_measures_separation_as_faces_shrink() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("people");
    let photos = [
        ("obama", ["1.jpg", "2.jpg", "3.jpg"].as_slice()),
        ("biden", ["1.jpg", "2.jpg"].as_slice()),
        ("kit_harington", ["1.jpg", "2.jpg"].as_slice()),
    ];
    for (person, files) in photos {
        std::fs::create_dir_all(dir.join(person)).unwrap();
        for f in files {
            std::fs::copy(face(&format!("{person}/{f}")), dir.join(person).join(f)).unwrap();
        }
    }
    // a corrupt photo is reported, not fatal; a file that is no image is not read
    std::fs::write(dir.join("biden/broken.jpg"), b"\xff\xd8not a jpeg").unwrap();
    std::fs::write(dir.join("biden/notes.txt"), b"hello").unwrap();
    let d = dir.display().to_string();
    let v = json_of(&["bench", "sizes", &d, "--eyes", "6,8,40"]);
    assert_eq!(
        (v["people"].as_u64(), v["photos"].as_u64()),
        (Some(3), Some(7)),
        "{v}"
    );
    assert_eq!(v["unreadable"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["no_face"].as_array().map(Vec::len), Some(0), "{v}");
    let full = &v["by_eyes"]["full"];
    // 7 probes against 6 others each: 3·2 + 2·1 + 2·1 = 10 genuine, 42 - 10 impostor
    assert_eq!(full["genuine"]["n"], 10, "{full}");
    assert_eq!(full["impostor"]["n"], 32, "{full}");
    assert_eq!(full["rank1"], 1.0, "{full}");
    let at40 = &v["by_eyes"]["40"];
    assert_eq!(at40["photos_larger"], 7, "{at40}");
    assert_eq!(at40["found"], 7, "{at40}");
    assert_eq!(at40["passed_gate"], 7, "{at40}");
    assert_eq!(at40["all_found"]["rank1"], 1.0, "{at40}");
    assert_eq!(at40["all_found"]["tar_at_far"]["0.01"], 1.0, "{at40}");
    let p50 = |x: &Value| x["genuine"]["p50"].as_f64().unwrap();
    let at8 = &v["by_eyes"]["8"];
    assert!(
        p50(&at8["all_found"]) < p50(&at40["all_found"]) - 0.2,
        "8 px: {at8}, 40 px: {at40}"
    );
    // below the gate's floor (9 px between the eyes) nothing passes
    assert_eq!(v["by_eyes"]["6"]["passed_gate"], 0, "{v}");
    // motion blur costs similarity at the same size
    let blurred = json_of(&["bench", "sizes", &d, "--eyes", "12", "--blur", "5"]);
    let sharp = json_of(&["bench", "sizes", &d, "--eyes", "12"]);
    assert_eq!(blurred["blur"], 5);
    assert!(
        p50(&blurred["by_eyes"]["12"]["all_found"]) < p50(&sharp["by_eyes"]["12"]["all_found"]),
        "blurred {blurred}, sharp {sharp}"
    );
    // bad options are refused with a reason
    for (args, says) in [
        (vec!["--eyes", "1"], "at least 2 pixels"),
        (vec!["--blur", "100"], "at most 64"),
        (vec!["--frame", "8x8"], "32 to 8192"),
    ] {
        let mut all = vec!["bench", "sizes", d.as_str()];
        all.extend(args);
        let (ok, _, err) = rollcall(&all);
        assert!(!ok && err.contains(says), "{all:?}: {err}");
    }
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (ok, _, err) = rollcall(&["bench", "sizes", &empty.display().to_string()]);
    assert!(!ok && err.contains("fewer than two photos"), "{err}");
    // every photo is compared with every other: a folder too large is refused before reading
    let crowd = tmp.path().join("crowd/someone");
    std::fs::create_dir_all(&crowd).unwrap();
    for i in 0..3001 {
        std::fs::write(crowd.join(format!("{i}.jpg")), b"").unwrap();
    }
    let crowd = tmp.path().join("crowd").display().to_string();
    let (ok, _, err) = rollcall(&["bench", "sizes", &crowd]);
    assert!(
        !ok && err.contains("3001 photos") && err.contains("at most 3000"),
        "{err}"
    );
}
