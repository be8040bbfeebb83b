//! Whole simulated school days: `rollcall run-scenario` on the example scenarios and on a new
//! scenario file written in the test, scored against camera-sim's ground truth; and the video
//! output read back through the real capture path (OpenCV).

use rollcall_testkit::bin::RunExt;
use rollcall_testkit::scenario::ScenarioSummary;
use rollcall_testkit::{fixtures_dir as fixtures, workspace_root as root};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn rollcall(args: &[&str]) -> (bool, String, String) {
    rollcall_testkit::rollcall!().args(args).run().into()
}

fn json_of(args: &[&str]) -> Value {
    let (ok, out, err) = rollcall(args);
    assert!(ok, "rollcall {args:?} failed: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn run_scenario(path: &Path) -> ScenarioSummary {
    rollcall_testkit::rollcall!()
        .args(["run-scenario", &path.display().to_string(), "--json"])
        .run()
        .success("rollcall run-scenario")
        .json()
}

/// `(a, b)` of each item (`-` for none).
fn pairs<T>(
    items: &[T],
    f: impl Fn(&T) -> (Option<&str>, Option<&str>),
) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|x| {
            let (a, b) = f(x);
            (a.unwrap_or("-").to_string(), b.unwrap_or("-").to_string())
        })
        .collect()
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn assert_perfect(s: &ScenarioSummary) {
    let sc = &s.score;
    assert_eq!(sc.check_in_precision, 1.0, "{sc:?}");
    assert_eq!(sc.check_in_recall, 1.0, "{sc:?}");
    assert_eq!(sc.false_check_ins, 0, "{sc:?}");
    assert_eq!(sc.stranger_check_ins, 0, "{sc:?}");
    assert_eq!(sc.duplicate_deductions, 0, "{sc:?}");
    assert_eq!(sc.missed_students.len(), 0, "{sc:?}");
    assert_eq!(sc.correct_absences, sc.expected_absences, "{sc:?}");
    assert!(s.frames > 0);
}

#[test]
fn afternoon_checks_in_five_marks_one_absent_and_never_a_stranger() {
    let s = run_scenario(&root().join("camera-sim/scenarios/afternoon.toml"));
    assert_perfect(&s);
    let lesson = "math-a-0303";
    let recorded: BTreeSet<(String, String)> = s
        .check_ins
        .iter()
        .filter(|c| c.ledger == "recorded")
        .map(|c| {
            (
                c.student.clone(),
                c.lesson.clone().expect("a recorded check-in has a lesson"),
            )
        })
        .collect();
    assert_eq!(
        recorded,
        set(&[
            ("alex_lacamoire", lesson),
            ("biden", lesson),
            ("kit_harington", lesson),
            ("obama", lesson),
            ("rose_leslie", lesson),
        ]),
        "{:?}",
        s.check_ins
    );
    // Rose is late; everyone else on time.
    for c in &s.check_ins {
        if c.ledger == "recorded" {
            let want = if c.student == "rose_leslie" {
                "late"
            } else {
                "present"
            };
            assert_eq!(c.status.as_deref(), Some(want), "{c:?}");
        }
    }
    // one deduction per student who came, nothing for Kit's second pass
    assert_eq!(
        pairs(&s.deductions, |d| (
            Some(d.student.as_str()),
            d.lesson.as_deref()
        )),
        set(&[
            ("alex_lacamoire", lesson),
            ("biden", lesson),
            ("kit_harington", lesson),
            ("lin_manuel_miranda", lesson), // the absence is charged in full (class policy)
            ("obama", lesson),
            ("rose_leslie", lesson),
        ])
    );
    assert_eq!(s.deductions.len(), 6);
    assert_eq!(
        pairs(&s.absences, |a| (
            Some(a.student.as_str()),
            Some(a.status.as_str())
        )),
        set(&[("lin_manuel_miranda", "absent")])
    );
    assert_eq!(s.alerts.len(), 0, "{:?}", s.alerts);
    // The strangers were seen and never checked in.
    assert_eq!(s.score.strangers_in_scenario, 2);
    // Parents were told: an arrival notice for each student who came, a "not arrived" notice
    // for Miranda (and for Rose at start + grace, before she turned up late); nothing twice.
    let notes = pairs(&s.notifications, |n| {
        (Some(n.kind.as_str()), n.student.as_deref())
    });
    for st in [
        "obama",
        "biden",
        "kit_harington",
        "rose_leslie",
        "alex_lacamoire",
    ] {
        assert!(notes.contains(&("arrival".into(), st.into())), "{notes:?}");
    }
    assert!(
        notes.contains(&("absence".into(), "lin_manuel_miranda".into())),
        "{notes:?}"
    );
    assert!(!notes.contains(&("arrival".into(), "lin_manuel_miranda".into())));
    assert_eq!(
        s.notification_summary.delivered, s.notification_summary.distinct_keys,
        "{:?}",
        s.notification_summary
    );
    assert!(s.notification_summary.delivered > 0);
}

/// The afternoon with the gallery on a Qdrant server (`QDRANT_URL`): the run makes a
/// collection of its own (named after `QDRANT_COLLECTION`), enrolls into it, recognises
/// through it with the same perfect score and the same check-ins as the embedded run, and
/// deletes it at the end. The server: `ROLLCALL_TEST_QDRANT_URL` (scripts/test.sh),
/// `QDRANT_URL`, or one started here from `../shared/tools/qdrant`.
#[test]
fn afternoon_is_perfect_with_the_gallery_on_a_qdrant_server() {
    let server = rollcall_gallery::server::for_tests(&root())
        .unwrap_or_else(|e| panic!("this test needs a Qdrant server: {e}"));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("scenario_test_{}_{nanos}", std::process::id());
    let out = rollcall_testkit::rollcall!()
        .args([
            "run-scenario",
            &root()
                .join("camera-sim/scenarios/afternoon.toml")
                .display()
                .to_string(),
            "--json",
        ])
        .env("QDRANT_URL", server.url())
        .env("QDRANT_COLLECTION", &prefix)
        .output()
        .expect("run rollcall");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let s: ScenarioSummary = serde_json::from_slice(&out.stdout).unwrap();
    assert_perfect(&s);
    let recorded: BTreeSet<String> = s
        .check_ins
        .iter()
        .filter(|c| c.ledger == "recorded")
        .map(|c| c.student.clone())
        .collect();
    assert_eq!(
        recorded,
        [
            "alex_lacamoire",
            "biden",
            "kit_harington",
            "obama",
            "rose_leslie"
        ]
        .iter()
        .map(|x| x.to_string())
        .collect::<BTreeSet<_>>()
    );
    // the run's own collection on the server, holding every enrolled template, deleted
    let name = err
        .lines()
        .find_map(|l| l.strip_prefix("run-scenario: gallery: Qdrant collection "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no remote gallery announced: {err}"))
        .to_string();
    assert!(name.starts_with(&format!("{prefix}_")), "{name}");
    let templates: u64 = s.enrolled.iter().map(|e| e.templates).sum();
    assert!(templates > 0);
    assert!(
        err.contains(&format!(
            "deleted Qdrant collection {name} at {} holding {templates} templates",
            server.url()
        )),
        "{err}"
    );
    let mut cfg = rollcall_gallery::RemoteConfig::new(server.url(), name, 128);
    cfg.api_key = server.api_key();
    let exists = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(rollcall_gallery::remote::collection_exists(&cfg))
        .unwrap();
    assert!(!exists, "the run's collection is still on the server");
}

#[test]
fn three_weeks_raise_one_absence_streak_and_one_low_balance_alert() {
    let s = run_scenario(&root().join("camera-sim/scenarios/three_weeks.toml"));
    assert_perfect(&s);
    assert_eq!(s.score.expected_check_ins, 9, "{:?}", s.score);
    assert_eq!(s.score.correct_check_ins, 9);
    assert_eq!(s.absences.len(), 3, "{:?}", s.absences);
    let kinds: Vec<&str> = s.alerts.iter().map(|a| a.kind.as_str()).collect();
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(sorted, ["absence_streak", "low_balance"], "{:?}", s.alerts);
    // the alerts reached the guardians (and the streak the front desk too), once each
    let notes: Vec<(String, String, String)> = s
        .notifications
        .iter()
        .map(|n| {
            (
                n.kind.clone(),
                n.student.clone().unwrap_or_else(|| "-".into()),
                n.to.clone(),
            )
        })
        .collect();
    let count = |k: &str, st: &str| notes.iter().filter(|n| n.0 == k && n.1 == st).count();
    assert_eq!(count("low_balance", "biden"), 1, "{notes:?}");
    assert_eq!(count("absence_streak", "rose_leslie"), 3, "{notes:?}"); // sms, e-mail, staff
    assert!(notes
        .iter()
        .any(|n| n.0 == "absence_streak" && n.2 == "front-desk@maple.example"));
    assert_eq!(count("absence", "rose_leslie"), 6, "{notes:?}"); // 3 lessons x 2 channels
    assert_eq!(
        s.notification_summary.delivered,
        s.notification_summary.distinct_keys
    );
}

/// A scenario written here, in the documented format, with nothing else changed: one student
/// walks in, one does not, one stranger passes.
fn small_scenario(dir: &Path) -> PathBuf {
    let f = fixtures();
    let face = |rel: &str| f.join("faces").join(rel).display().to_string();
    let text = format!(
        r#"
seed = 7

[school]
id = "small"
name = "Small School"
utc_offset = "Z"

[simulation]
early_minutes = [3.0, 3.0]

[[campuses]]
id = "north"
name = "North"

[[cameras]]
id = "door"
campus = "north"
door = "main"
width = 1280
height = 720
fps = 10

[[students]]
id = "kit"
name = "Kit"
enrollment_photos = ["{kit1}"]
appearance_photos = ["{kit2}"]
[[students.guardians]]
name = "Kit's mother"
email = "kit.parent@example.org"
language = "en"

[[students]]
id = "rose"
name = "Rose"
enrollment_photos = ["{rose1}"]
appearance_photos = ["{rose2}"]
[[students.guardians]]
name = "Rose's father"
phone = "+44 131 555 0199"
language = "zh-CN"

[[classes]]
id = "art"
name = "Art"
campus = "north"
room = "1"
teacher = "T"
absence_policy = "half"
students = ["kit", "rose"]

[[timetable]]
id = "art-1"
class = "art"
date = "2025-05-05"
start = "10:00"
end = "11:00"

[[packages]]
id = "p-kit"
student = "kit"
lessons = 5
unit_price_cents = 1000
bought = "2025-05-01"
expires = "2025-12-31"

[[packages]]
id = "p-rose"
student = "rose"
lessons = 5
unit_price_cents = 1000
bought = "2025-05-01"
expires = "2025-12-31"

[[arrivals]]
lesson = "art-1"
student = "kit"
status = "on_time"

[[arrivals]]
lesson = "art-1"
student = "rose"
status = "absent"
"#,
        kit1 = face("kit_harington/1.jpg"),
        kit2 = face("kit_harington/2.jpg"),
        rose1 = face("rose_leslie/1.jpg"),
        rose2 = face("rose_leslie/2.jpg"),
    );
    let path = dir.join("small.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_new_scenario_file_runs_without_code_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let path = small_scenario(tmp.path());
    let s = run_scenario(&path);
    assert_perfect(&s);
    assert_eq!(
        pairs(&s.check_ins, |c| (
            Some(c.student.as_str()),
            c.lesson.as_deref()
        )),
        set(&[("kit", "art-1")])
    );
    assert_eq!(
        pairs(&s.absences, |a| (
            Some(a.student.as_str()),
            Some(a.status.as_str())
        )),
        set(&[("rose", "absent")])
    );
    // Rose's absence costs half a lesson under the class's policy.
    let rose: Vec<_> = s
        .deductions
        .iter()
        .filter(|d| d.student == "rose")
        .collect();
    assert_eq!(rose.len(), 1);
    assert_eq!(rose[0].lessons, 0.5);
    // the readable report names the same things
    let (ok, out, err) = rollcall(&["run-scenario", &path.display().to_string()]);
    assert!(ok, "{err}");
    assert!(out.contains("kit") && out.contains("precision 1"), "{out}");
    // the camera-mean weight is checked before anything is run
    for bad in ["1.5", "-0.2"] {
        let (ok, _, err) = rollcall(&[
            "run-scenario",
            &path.display().to_string(),
            &format!("--camera-mean-weight={bad}"),
        ]);
        assert!(!ok);
        assert!(
            err.contains("camera_mean_weight must be in [0, 1)"),
            "{err}"
        );
    }
}

#[test]
fn video_output_is_read_back_by_opencv_frame_for_frame() {
    use rollcall_capture::{open_source, SourceOptions};
    let tmp = tempfile::tempdir().unwrap();
    let path = small_scenario(tmp.path());
    let out = tmp.path().join("render");
    let v = json_of(&[
        "sim",
        "render",
        &path.display().to_string(),
        "--out",
        &out.display().to_string(),
        "--video",
    ]);
    assert!(v["frames"].as_u64().unwrap() > 20, "{v}");
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("truth.json")).unwrap()).unwrap();
    let cam = &truth["cameras"][0];
    assert_eq!(cam["video"], "video/door.avi");
    let n = cam["frames"].as_u64().unwrap();
    // continuous: consecutive frames are exactly 1/fps apart
    let ts: Vec<i64> = truth["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["timestamp_ms"].as_i64().unwrap())
        .collect();
    assert!(ts.windows(2).all(|w| w[1] - w[0] == 100), "gaps in {ts:?}");

    let video = out.join("video/door.avi");
    let mut src = open_source(&video.display().to_string(), &SourceOptions::default()).unwrap();
    src.open().unwrap();
    let mut read = 0u64;
    while let Some(f) = src.read().unwrap() {
        assert_eq!((f.frame.width(), f.frame.height()), (1280, 720));
        // the video's frame is the sequence's JPEG, decoded (same pixels up to decoder rounding)
        if read == n / 2 {
            let jpg = rollcall_vision::decode::decode_file(
                &out.join(format!("frames/door/{:06}.jpg", read)),
                &Default::default(),
            )
            .unwrap();
            let diff: u64 = f
                .frame
                .rgb()
                .iter()
                .zip(jpg.rgb())
                .map(|(a, b)| (*a as i64 - *b as i64).unsigned_abs())
                .sum();
            let mean = diff as f64 / jpg.rgb().len() as f64;
            assert!(mean < 2.0, "mean abs difference {mean}");
        }
        read += 1;
    }
    assert_eq!(read, n, "frames in the video vs the ground truth");
}

/// `benches/sightings_templates.py FILE ARGS… --json` run by the project's Python, its JSON.
fn sightings_templates(file: &Path, args: &[&str]) -> Value {
    let out = std::process::Command::new(rollcall_testkit::project_python())
        .arg(root().join("benches/sightings_templates.py"))
        .arg(file)
        .args(args)
        .arg("--json")
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `rollcall bench sightings`: every face found is matched to the person drawn there, scored
/// against every student, and written out with its embedding and raw norm; Kit's own sightings
/// resemble Kit more than Rose, and the summary counts what the file holds.
#[test]
fn bench_sightings_matches_each_face_to_the_person_drawn_there() {
    let tmp = tempfile::tempdir().unwrap();
    let path = small_scenario(tmp.path());
    let out = tmp.path().join("faces.jsonl");
    let summary = json_of(&[
        "bench",
        "sightings",
        &path.display().to_string(),
        "--kernels",
        "bilinear,lanczos3",
        "--truth-landmarks",
        "--reduced-enrollment",
        "12",
        "--out",
        &out.display().to_string(),
    ]);
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    let head: Value = serde_json::from_str(lines.next().expect("a first line")).unwrap();
    for s in ["kit", "rose"] {
        assert_eq!(
            head["students"][s].as_array().map(Vec::len),
            Some(1),
            "{head}"
        );
        assert_eq!(
            head["reduced"]["12"][s][0].as_array().map(Vec::len),
            Some(128)
        );
    }
    let faces: Vec<Value> = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    let kit: Vec<&Value> = faces
        .iter()
        .filter(|f| f["detected"] == true && f["person"] == "kit")
        .collect();
    assert!(kit.len() >= 5, "{} of Kit's sightings", kit.len());
    assert!(
        faces.iter().all(|f| f["person"] != "rose"),
        "Rose is absent, so never drawn"
    );
    let mut closer = 0;
    for f in &kit {
        for kind in ["bilinear", "lanczos3", "truth_landmarks"] {
            let v = &f["v"][kind];
            assert_eq!(v["emb"].as_array().map(Vec::len), Some(128), "{kind}");
            assert!(v["norm"].as_f64().unwrap() > 0.0, "{kind}: {v}");
        }
        let sims = &f["v"]["bilinear"]["sims"];
        if sims["kit"].as_f64().unwrap() > sims["rose"].as_f64().unwrap() {
            closer += 1;
        }
    }
    assert!(
        closer * 10 >= kit.len() * 9,
        "{closer} of {} closer to Kit",
        kit.len()
    );
    let detected = faces.iter().filter(|f| f["detected"] == true).count() as u64;
    assert_eq!(summary["faces"].as_u64(), Some(detected), "{summary}");
    assert!(summary["frames"].as_u64().unwrap() > 0);
    let genuine: u64 = summary["similarity_by_iod"]["bilinear"]
        .as_object()
        .unwrap()
        .values()
        .map(|b| b["genuine"]["n"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(genuine, kit.len() as u64, "{summary}");

    // the offline template analysis of BENCHMARKS.md reads this file: Kit's one walk-through
    // is one track, accepted at the tracker's template rule and refused at an impossible one
    let templates = |extra: &[&str]| -> Value {
        let mut args = vec!["--best", "1,3"];
        args.extend_from_slice(extra);
        sightings_templates(&out, &args)
    };
    let t = templates(&[]);
    for n in 0..2 {
        assert_eq!(t[n]["arrivals"], 1, "{t}");
        assert_eq!(t[n]["accepted"], 1, "{t}");
        assert_eq!(t[n]["runs"][0]["misses"].as_array().map(Vec::len), Some(0));
    }
    let strict = templates(&["--threshold", "0.99", "--weighted"]);
    assert_eq!(strict[1]["accepted"], 0, "{strict}");
    let miss = &strict[1]["runs"][0]["misses"][0];
    assert_eq!(miss["person"], "kit", "{strict}");
    let passed = kit.iter().filter(|f| f["passed"] == true).count();
    assert_eq!(miss["passed"].as_u64(), Some(passed as u64), "{strict}");
    assert_eq!(
        miss["detected"].as_u64(),
        Some(kit.len() as u64),
        "{strict}"
    );
}

/// `benches/sightings_templates.py --centre W`: the template of a walk-through is centred on
/// the mean of its camera's passed sightings before it (once there are `--centre-min`), as the
/// tracker does, and judged by `--centred-threshold`; the first walk-through of a camera, with
/// nothing before it, is not centred.
#[test]
fn sightings_templates_centres_on_the_camera_mean_before_each_walk_through() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("faces.jsonl");
    let e = |v: [f64; 4]| serde_json::json!({"bilinear": {"emb": v, "norm": 1.0}});
    let row = |t: u64, app: u64, v: [f64; 4]| {
        serde_json::json!({"t": t, "camera": "door", "detected": true, "person": "kit",
            "kind": "student", "appearance": app, "lesson": "l", "passed": true,
            "overall": 0.5, "sharp": 10.0, "iod": 12.0, "v": e(v)})
    };
    let mut text = serde_json::json!({"students": {"kit": [[1.0, 0.0, 0.0, 0.0]],
        "rose": [[0.0, 1.0, 0.0, 0.0]]}, "reduced": {}})
    .to_string();
    for t in 0..3 {
        text.push('\n');
        text.push_str(&row(t * 100, 1, [1.0, 0.0, 0.0, 0.0]).to_string());
    }
    for t in 10..13 {
        text.push('\n');
        text.push_str(&row(t * 100, 2, [0.8, 0.0, 0.6, 0.0]).to_string());
    }
    text.push('\n');
    std::fs::write(&file, text).unwrap();
    let run = |extra: &[&str]| -> Value {
        let mut args = vec!["--threshold", "0.6", "--centre-min", "3"];
        args.extend_from_slice(extra);
        sightings_templates(&file, &args)
    };
    // uncentred: 1.0 and 0.8, both over 0.6
    assert_eq!(run(&[])[0]["accepted"], 2);
    // centred by half the mean (axis 0): (0.3, 0, 0.6) / |.|, Kit at 0.447
    assert_eq!(
        run(&["--centre", "0.5", "--centred-threshold", "0.4"])[0]["accepted"],
        2
    );
    let strict = run(&["--centre", "0.5", "--centred-threshold", "0.5"]);
    assert_eq!(strict[0]["accepted"], 1, "{strict}");
    let miss = &strict[0]["runs"][0]["misses"][0];
    assert_eq!(miss["appearance"], 2, "{strict}");
    assert_eq!(miss["similarity"], 0.447, "{strict}");
    // with a minimum the camera has not reached, nothing is centred
    let few = run(&[
        "--centre",
        "0.5",
        "--centred-threshold",
        "0.5",
        "--centre-min",
        "4",
    ]);
    assert_eq!(few[0]["accepted"], 2, "{few}");
}
