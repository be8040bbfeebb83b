//! End-to-end tests of the `rollcall` binary on the real models and fixtures: vision commands,
//! pair evaluation, and the gallery's enroll → identify → erase cycle in a fresh data directory.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures() -> PathBuf {
    let dir = std::env::var_os("ROLLCALL_FIXTURES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/fixtures"));
    assert!(
        dir.join("faces").is_dir(),
        "fixtures not found at {}",
        dir.display()
    );
    dir
}

fn rollcall(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("QDRANT_URL")
        .output()
        .expect("run rollcall");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
