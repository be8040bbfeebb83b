//! Scenario parsing, validation errors (naming the field) and the planner's ground truth.

mod common;

use std::path::PathBuf;

use common::{fixtures_dir, test_scenario, test_scenario_text};
use rollcall_camera_sim::{plan, ArrivalStatus, PersonKind, Scenario, ScenarioError};

fn load(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::from_toml(text, fixtures_dir())
}

/// The test scenario with one textual replacement (which must apply).
fn variant(from: &str, to: &str) -> String {
    let base = test_scenario_text(7);
    assert!(base.contains(from), "test scenario lacks {from:?}");
    base.replacen(from, to, 1)
}

fn field_of(e: &ScenarioError) -> String {
    e.field()
        .map(str::to_string)
        .unwrap_or_else(|| e.to_string())
}

#[test]
fn test_scenario_parses_and_resolves_paths() {
    let s = test_scenario(7);
    assert_eq!(s.file.school.id, "test-school");
    assert_eq!(s.utc_offset_minutes, 480);
    assert_eq!(s.lessons.len(), 1);
    let l = &s.lessons[0];
    assert_eq!(l.id, "math-mon");
    // 16:00 at +08:00 on 2025-03-03 is 08:00 UTC.
    assert_eq!(l.start_ms, 1_740_988_800_000);
    assert_eq!(l.end_ms - l.start_ms, 3_600_000);
    let biden = &s.file.students[1];
    assert!(
        biden.enrollment_photos[0].path.is_absolute()
            || biden.enrollment_photos[0].path.starts_with(fixtures_dir())
    );
    assert!(biden.enrollment_photos[0].path.is_file());
    // Biden renders from his appearance photo, not the enrollment photo.
    assert_eq!(
        biden.render_photos()[0].path,
        fixtures_dir().join("faces/biden/2.jpg")
    );
    assert!(s.render_photos().iter().all(|p| p.annotation().is_some()));
    assert_eq!(s.file.students[0].guardians[0].language, "en");
}

#[test]
fn unknown_student_in_roster_names_the_field() {
    let e = load(&variant(
        r#"students = ["obama", "biden", "kit_harington"]"#,
        r#"students = ["obama", "bidn", "kit_harington"]"#,
    ))
    .unwrap_err();
    assert!(
        matches!(&e, ScenarioError::UnknownId { field, kind: "student", id } if field == "classes[0].students[1]" && id == "bidn"),
        "{e}"
    );
    assert!(e.to_string().contains("classes[0].students[1]"));
}

#[test]
fn unknown_student_in_arrival_names_the_field() {
    let e = load(&variant(
        r#"group = ["obama", "biden"]"#,
        r#"group = ["obama", "nobody"]"#,
    ))
    .unwrap_err();
    assert_eq!(field_of(&e), "arrivals[0].group[1]", "{e}");
}

#[test]
fn missing_photo_names_the_field() {
    let e = load(&variant(
        r#"enrollment_photos = ["faces/biden/1.jpg"]"#,
        r#"enrollment_photos = ["faces/biden/1.jpg", "faces/biden/9.jpg"]"#,
    ))
    .unwrap_err();
    match &e {
        ScenarioError::MissingPhoto { field, path } => {
            assert_eq!(field, "students[1].enrollment_photos[1]");
            assert_eq!(path, &fixtures_dir().join("faces/biden/9.jpg"));
        }
        e => panic!("wrong error {e}"),
    }
}

#[test]
fn overlapping_ids_name_the_field() {
    // A stranger with a student's id.
    let e = load(&variant(r#"id = "rose-visitor""#, r#"id = "obama""#)).unwrap_err();
    match &e {
        ScenarioError::DuplicateId { field, id, other } => {
            assert_eq!(field, "strangers[0].id");
            assert_eq!(id, "obama");
            assert_eq!(other, "students[0]");
        }
        e => panic!("wrong error {e}"),
    }
    // Two cameras with one id.
    let text = variant(
        "[[students]]\nid = \"obama\"",
        "[[cameras]]\nid = \"lobby\"\ncampus = \"main\"\ndoor = \"back\"\n\n[[students]]\nid = \"obama\"",
    );
    let e = load(&text).unwrap_err();
    assert_eq!(field_of(&e), "cameras[1].id", "{e}");
}

#[test]
fn unknown_fields_and_bad_values_are_refused() {
    let e = load(&variant(
        "teacher = \"Ms. Smith\"",
        "teacher = \"Ms. Smith\"\ncolour = \"red\"",
    ))
    .unwrap_err();
    assert!(matches!(e, ScenarioError::Parse { .. }));
    assert!(e.to_string().contains("colour"), "{e}");

    let e = load(&variant("late_minutes = 3\n", "")).unwrap_err();
    assert_eq!(field_of(&e), "arrivals[1].late_minutes", "{e}");

    let e = load(&variant(r#"lesson = "math-mon""#, r#"lesson = "math-tue""#)).unwrap_err();
    assert!(
        matches!(&e, ScenarioError::UnknownId { field, kind: "lesson", .. } if field == "arrivals[0].lesson"),
        "{e}"
    );

    let e = load(&variant("utc_offset = \"+08:00\"", "utc_offset = \"8\"")).unwrap_err();
    assert_eq!(field_of(&e), "school.utc_offset", "{e}");

    let e = load(&variant("end = \"17:00\"", "end = \"15:00\"")).unwrap_err();
    assert_eq!(field_of(&e), "timetable[0].end", "{e}");

    let e = load(&variant("fps = 5", "fps = 500")).unwrap_err();
    assert_eq!(field_of(&e), "cameras[0].fps", "{e}");

    let e = load(&variant("occlusion = 0.3", "occlusion = 0.9")).unwrap_err();
    assert_eq!(field_of(&e), "arrivals[2].effects.occlusion", "{e}");

    let e = load(&variant(
        "absence_policy = \"half\"",
        "absence_policy = \"some\"",
    ))
    .unwrap_err();
    assert!(matches!(e, ScenarioError::Parse { .. }), "{e}");
}

#[test]
fn load_reads_a_file_and_reports_missing_files() {
    let e = Scenario::load("/nonexistent/scenario.toml").unwrap_err();
    assert!(matches!(e, ScenarioError::Read { .. }));
    // A scenario file next to the fixtures: paths are relative to the file.
    let dir = tempfile::tempdir().unwrap();
    let text = test_scenario_text(3).replace(
        "\"faces/",
        &format!("\"{}/faces/", fixtures_dir().display()),
    );
    let path = dir.path().join("s.toml");
    std::fs::write(&path, text).unwrap();
    let s = Scenario::load(&path).unwrap();
    assert_eq!(s.source, path);
}

/// `--seed`, `--size` and `--fps` of run-scenario: the replaced values are used and checked
/// like written ones; the plan changes with the seed and faces scale with the stream height.
#[test]
fn overrides_replace_seed_and_camera_streams() {
    use rollcall_camera_sim::Overrides;
    let dir = tempfile::tempdir().unwrap();
    let text = test_scenario_text(3).replace(
        "\"faces/",
        &format!("\"{}/faces/", fixtures_dir().display()),
    );
    let path = dir.path().join("s.toml");
    std::fs::write(&path, text).unwrap();
    let plain = Scenario::load(&path).unwrap();
    assert_eq!(
        Scenario::load_overridden(&path, &Overrides::default())
            .unwrap()
            .file,
        plain.file
    );
    let over = Overrides {
        seed: Some(99),
        size: Some((640, 360)),
        fps: Some(8),
    };
    let s = Scenario::load_overridden(&path, &over).unwrap();
    assert_eq!(s.seed(), 99);
    for c in &s.file.cameras {
        assert_eq!((c.width, c.height, c.fps), (640, 360, 8));
    }
    let (p0, p1) = (plan(&plain), plan(&s));
    assert_ne!(
        p0.arrivals.iter().map(|a| a.time_ms).collect::<Vec<_>>(),
        p1.arrivals.iter().map(|a| a.time_ms).collect::<Vec<_>>(),
        "another seed, other arrival times"
    );
    let e = Scenario::load_overridden(
        &path,
        &Overrides {
            size: Some((8, 8)),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(field_of(&e).contains("width"), "{e}");
    // the committed small-face scenarios load (their photos are the shared fixtures)
    for split in ["tune", "report"] {
        let f = scenarios_dir().join(format!("small_faces/{split}.toml"));
        let s = Scenario::load(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(s.lessons.len(), 7, "{split}: one lesson per condition");
        assert!(s.file.cameras.iter().all(|c| c.height == 360 && c.fps == 8));
    }
}

#[test]
fn weekly_recurrence_expands_dated_lessons() {
    let text = variant(
        "date = \"2025-03-03\"",
        "weekly = { first = \"2025-03-03\", weeks = 3 }",
    )
    .replace("lesson = \"math-mon\"", "lesson = \"math-mon-2025-03-10\"");
    let s = load(&text).unwrap();
    let ids: Vec<&str> = s.lessons.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "math-mon-2025-03-03",
            "math-mon-2025-03-10",
            "math-mon-2025-03-17"
        ]
    );
    assert_eq!(
        s.lessons[1].start_ms - s.lessons[0].start_ms,
        7 * 86_400_000
    );
    // Rostered students without an arrival entry arrive on time by default.
    let p = plan(&s);
    let att: Vec<_> = p
        .attendance
        .iter()
        .filter(|a| a.lesson == "math-mon-2025-03-03")
        .collect();
    assert_eq!(att.len(), 3);
    assert!(att
        .iter()
        .all(|a| a.status == ArrivalStatus::OnTime && a.arrival_ms.is_some()));
}

#[test]
fn plan_ground_truth_follows_the_scenario() {
    let s = test_scenario(7);
    let p = plan(&s);
    let lesson_start = s.lessons[0].start_ms;
    // Every walk past: obama, biden (group), kit twice, the stranger.
    assert_eq!(p.arrivals.len(), 5);
    let kit: Vec<_> = p
        .arrivals
        .iter()
        .filter(|a| a.person == "kit_harington")
        .collect();
    assert_eq!(kit.len(), 2);
    assert_eq!((kit[0].pass, kit[1].pass), (1, 2));
    assert!(kit[0].time_ms >= lesson_start + 3 * 60_000);
    assert!(kit[1].time_ms >= kit[0].time_ms + 10_000);
    assert_eq!(kit[0].status, Some(ArrivalStatus::Late));
    let group: Vec<_> = p.arrivals.iter().filter(|a| a.group.is_some()).collect();
    assert_eq!(group.len(), 2);
    assert!(group.iter().all(|a| a.time_ms < lesson_start));
    assert_eq!(group[0].group, group[1].group);
    let stranger: Vec<_> = p
        .arrivals
        .iter()
        .filter(|a| a.kind == PersonKind::Stranger)
        .collect();
    assert_eq!(stranger.len(), 1);
    assert_eq!(stranger[0].person, "rose-visitor");
    assert_eq!(stranger[0].status, None);
    // Attendance truth: the rostered students only.
    assert_eq!(p.attendance.len(), 3);
    let kit_att = p
        .attendance
        .iter()
        .find(|a| a.student == "kit_harington")
        .unwrap();
    assert_eq!(kit_att.status, ArrivalStatus::Late);
    assert_eq!(kit_att.late_minutes, Some(3.0));
    assert_eq!(kit_att.arrival_ms, Some(kit[0].time_ms));
    // Lingering: kit's first appearance stays 2 s after the approach.
    let app = p
        .appearances()
        .find(|a| a.person == "kit_harington" && a.pass == 1)
        .unwrap();
    assert_eq!(app.linger_ms, 2000);
    assert!((2000..=3000).contains(&app.approach_ms));
    // Separate walks on one camera never overlap.
    let apps: Vec<_> = p.cameras[0].appearances.iter().collect();
    for (i, a) in apps.iter().enumerate() {
        for b in &apps[i + 1..] {
            let overlap = a.start_ms < b.end_ms() && b.start_ms < a.end_ms();
            if overlap {
                assert!(
                    a.group.is_some() && a.group == b.group,
                    "{} and {} overlap",
                    a.person,
                    b.person
                );
            }
        }
    }
    // Deterministic, and the seed matters.
    assert_eq!(p, plan(&test_scenario(7)));
    assert_ne!(p.arrivals, plan(&test_scenario(8)).arrivals);
}

fn scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

#[test]
fn example_afternoon_loads_with_the_expected_story() {
    let s = Scenario::load(scenarios_dir().join("afternoon.toml")).unwrap();
    assert_eq!(s.file.students.len(), 6);
    assert_eq!(s.file.strangers.len(), 2);
    // Appearance photos differ from enrollment photos wherever a second photo exists.
    for st in &s.file.students {
        if st.id != "lin_manuel_miranda" {
            assert_ne!(
                st.enrollment_photos[0], st.appearance_photos[0],
                "{}",
                st.id
            );
        }
    }
    let p = plan(&s);
    let status = |id: &str| {
        p.attendance
            .iter()
            .find(|a| a.student == id)
            .unwrap()
            .status
    };
    assert_eq!(status("rose_leslie"), ArrivalStatus::Late);
    assert_eq!(status("lin_manuel_miranda"), ArrivalStatus::Absent);
    for id in ["obama", "biden", "kit_harington", "alex_lacamoire"] {
        assert_eq!(status(id), ArrivalStatus::OnTime, "{id}");
    }
    let groups: Vec<_> = p.arrivals.iter().filter(|a| a.group.is_some()).collect();
    assert_eq!(groups.len(), 2);
    assert_eq!(
        p.arrivals
            .iter()
            .filter(|a| a.kind == PersonKind::Stranger)
            .count(),
        2
    );
    assert!(p.arrivals.iter().all(|a| a.person != "lin_manuel_miranda"));
    // kit passes twice; 5 students + 1 second pass + 2 strangers.
    assert_eq!(p.arrivals.len(), 8);
    let late = p
        .arrivals
        .iter()
        .find(|a| a.person == "rose_leslie")
        .unwrap();
    assert!(late.time_ms >= s.lessons[0].start_ms + 12 * 60_000);
}

#[test]
fn example_three_weeks_loads_with_the_expected_story() {
    let s = Scenario::load(scenarios_dir().join("three_weeks.toml")).unwrap();
    assert_eq!(s.lessons.len(), 3);
    let p = plan(&s);
    let rose: Vec<_> = p
        .attendance
        .iter()
        .filter(|a| a.student == "rose_leslie")
        .collect();
    assert_eq!(rose.len(), 3);
    assert!(rose.iter().all(|a| a.status == ArrivalStatus::Absent));
    let biden_pkg = s
        .file
        .packages
        .iter()
        .find(|k| k.student == "biden")
        .unwrap();
    assert_eq!(biden_pkg.lessons, 3);
    assert_eq!(
        p.attendance
            .iter()
            .filter(|a| a.student == "biden" && a.status.arrives())
            .count(),
        3
    );
    // 3 students × 3 lessons walk past the camera.
    assert_eq!(p.arrivals.len(), 9);
}
