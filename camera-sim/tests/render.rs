//! Rendering: determinism, ground truth geometry, groups, effects, streams and the image
//! sequence output.

mod common;

use std::collections::BTreeMap;

use common::test_renderer;
use rollcall_camera_sim::{
    write_sequence, CameraStream, GroundTruth, PersonKind, Renderer, SequenceOptions,
    StreamOptions, TruthFace,
};

fn all_frames(r: &Renderer) -> Vec<(i64, Vec<u8>, Vec<TruthFace>)> {
    r.stream("lobby", StreamOptions::default())
        .unwrap()
        .map(|(t, f, truth)| (t, f.into_rgb(), truth))
        .collect()
}

#[test]
fn same_seed_renders_byte_identical_frames_and_other_seeds_differ() {
    let a = all_frames(&test_renderer(7));
    let b = all_frames(&test_renderer(7));
    assert!(a.len() > 20, "only {} frames", a.len());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.0, y.0);
        assert!(x.1 == y.1, "frame at {} differs", x.0);
        assert_eq!(x.2, y.2);
    }
    // Another seed: other times, trajectories and background.
    let c = test_renderer(8);
    let t = a[a.len() / 2].0;
    let (fc, _) = c.render_frame("lobby", t).unwrap();
    assert_ne!(fc.rgb(), &a[a.len() / 2].1[..]);
    let times_c: Vec<i64> = c.frame_times("lobby", StreamOptions::default()).unwrap();
    let times_a: Vec<i64> = a.iter().map(|f| f.0).collect();
    assert_ne!(times_a, times_c);
}

#[test]
fn image_sequence_is_byte_identical_for_the_same_seed() {
    let r = test_renderer(11);
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let opts = SequenceOptions::default();
    let s1 = write_sequence(&r, d1.path(), &opts).unwrap();
    let s2 = write_sequence(&test_renderer(11), d2.path(), &opts).unwrap();
    assert_eq!(s1.frames, s2.frames);
    assert_eq!(s1.bytes, s2.bytes);
    let t1 = std::fs::read(d1.path().join("truth.json")).unwrap();
    let t2 = std::fs::read(d2.path().join("truth.json")).unwrap();
    assert_eq!(t1, t2);
    let truth: GroundTruth = serde_json::from_slice(&t1).unwrap();
    assert_eq!(truth.frames.len() as u64, s1.frames);
    assert_eq!(truth.cameras[0].frames, s1.frames);
    assert_eq!(truth.arrivals.len(), 5);
    for f in &truth.frames {
        let p1 = d1.path().join(&f.file);
        let p2 = d2.path().join(&f.file);
        let (b1, b2) = (std::fs::read(&p1).unwrap(), std::fs::read(&p2).unwrap());
        assert!(b1 == b2, "{} differs", f.file);
        assert!(f.file.starts_with("frames/lobby/") && f.file.ends_with(".jpg"));
    }
    // Frames are real JPEGs of the camera's size, named by index.
    let first = &truth.frames[0];
    assert_eq!(first.file, "frames/lobby/000000.jpg");
    let img = image::open(d1.path().join(&first.file)).unwrap();
    assert_eq!((img.width(), img.height()), (640, 360));
    // The JSON has the documented field names.
    let v: serde_json::Value = serde_json::from_slice(&t1).unwrap();
    let with_person = v["frames"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| !f["persons"].as_array().unwrap().is_empty())
        .unwrap();
    for k in ["camera", "index", "timestamp_ms", "persons"] {
        assert!(with_person.get(k).is_some(), "frame lacks {k}");
    }
    let p = &with_person["persons"][0];
    for k in ["id", "box", "landmarks"] {
        assert!(p.get(k).is_some(), "person lacks {k}");
    }
    for k in ["person", "camera", "time_ms", "lesson"] {
        assert!(v["arrivals"][0].get(k).is_some(), "arrival lacks {k}");
    }
}

#[test]
fn truth_boxes_are_inside_the_frame_and_grow_over_an_approach() {
    let r = test_renderer(7);
    let frames = all_frames(&r);
    let mut by_app: BTreeMap<u32, Vec<(i64, TruthFace)>> = BTreeMap::new();
    for (t, _, truth) in &frames {
        for f in truth {
            by_app
                .entry(f.appearance)
                .or_default()
                .push((*t, f.clone()));
        }
    }
    assert_eq!(by_app.len(), 5);
    for (id, faces) in &by_app {
        let app = r.plan().appearances().find(|a| a.id == *id).unwrap();
        for (_, f) in faces {
            let b = f.bbox;
            assert!(
                b.x1 > 0.0 && b.y1 > 0.0 && b.x2 < 640.0 && b.y2 < 360.0,
                "{b:?}"
            );
            assert!(b.width() > 5.0 && b.height() > 5.0);
            for [x, y] in f.landmarks {
                assert!(x > b.x1 - 0.3 * b.width() && x < b.x2 + 0.3 * b.width());
                assert!(y > b.y1 - 0.3 * b.height() && y < b.y2 + 0.3 * b.height());
            }
            // Eyes above the mouth, left eye left of the right eye.
            assert!(f.landmarks[0][0] < f.landmarks[1][0]);
            assert!(f.landmarks[0][1] < f.landmarks[3][1]);
        }
        // During the approach, the face grows monotonically, about 3× overall.
        let approach: Vec<&TruthFace> = faces
            .iter()
            .filter(|(t, _)| *t <= app.closest_ms())
            .map(|(_, f)| f)
            .collect();
        assert!(approach.len() >= 8, "{}", approach.len());
        for w in approach.windows(2) {
            assert!(w[1].bbox.height() > w[0].bbox.height());
        }
        let ratio = approach.last().unwrap().bbox.height() / approach[0].bbox.height();
        assert!(ratio > 2.0, "grew only {ratio}");
        // 40 px → 120 px at 720 p: 20 → 60 px at 360 p (±10 %, ± one frame).
        assert!(approach[0].bbox.height() < 26.0);
        let last = approach.last().unwrap().bbox.height();
        assert!((48.0..=67.0).contains(&last), "{last}");
    }
}

#[test]
fn rendered_pixels_match_the_truth() {
    let r = test_renderer(7);
    let times = r.frame_times("lobby", StreamOptions::default()).unwrap();
    // An empty frame (pre-roll) is the background.
    let (bg, t0) = r.render_frame("lobby", times[0]).unwrap();
    assert!(t0.is_empty());
    let mut checked = 0;
    for t in times.iter().step_by(3) {
        let (f, truth) = r.render_frame("lobby", *t).unwrap();
        for face in truth.iter().filter(|f| f.occlusion == 0.0) {
            let b = face.bbox;
            // Mean absolute difference to the background inside the central half of the box.
            let (cx, cy) = b.center();
            let (hw, hh) = (b.width() * 0.25, b.height() * 0.25);
            let (mut diff, mut n) = (0u64, 0u64);
            for y in (cy - hh) as usize..(cy + hh) as usize {
                for x in (cx - hw) as usize..(cx + hw) as usize {
                    for c in 0..3 {
                        let i = (y * 640 + x) * 3 + c;
                        diff += u64::from(f.rgb()[i].abs_diff(bg.rgb()[i]));
                        n += 1;
                    }
                }
            }
            assert!(n > 0);
            assert!(
                diff / n > 8,
                "face of {} at {t} looks like the background",
                face.id
            );
            checked += 1;
        }
        // Far from every face (and its torso), nothing changed: the top-left corner.
        if truth.iter().all(|f| f.bbox.x1 > 120.0) {
            for y in 0..20 {
                for x in 0..60 {
                    let i = (y * 640 + x) * 3;
                    assert_eq!(f.rgb()[i..i + 3], bg.rgb()[i..i + 3]);
                }
            }
        }
    }
    assert!(checked > 10);
}

#[test]
fn a_group_arrival_shares_frames() {
    let r = test_renderer(7);
    let group: Vec<&str> = r
        .plan()
        .appearances()
        .filter(|a| a.group.is_some())
        .map(|a| a.person.as_str())
        .collect();
    assert_eq!(group.len(), 2);
    let together = all_frames(&r)
        .iter()
        .filter(|(_, _, truth)| {
            let ids: Vec<&str> = truth.iter().map(|f| f.id.as_str()).collect();
            (2..=3).contains(&ids.len()) && group.iter().all(|g| ids.contains(g))
        })
        .count();
    // 2–3 s approaches starting ≤ 0.4 s apart at 5 fps: most frames are shared.
    assert!(together >= 8, "only {together} frames with the whole group");
    // And nobody else is ever in frame with them.
    for (_, _, truth) in all_frames(&r) {
        if truth.iter().any(|f| group.contains(&f.id.as_str())) {
            assert!(truth.iter().all(|f| group.contains(&f.id.as_str())));
        }
    }
}

#[test]
fn lingering_passing_twice_and_strangers_are_in_the_truth() {
    let r = test_renderer(7);
    let frames = all_frames(&r);
    let kit_frames = frames
        .iter()
        .filter(|(_, _, t)| t.iter().any(|f| f.id == "kit_harington"))
        .count();
    // Two passes of 2–3 s plus 2 s lingering, at 5 fps.
    assert!(kit_frames >= 5 * (2 + 2 + 2), "{kit_frames}");
    let kit_apps: std::collections::BTreeSet<u32> = frames
        .iter()
        .flat_map(|(_, _, t)| {
            t.iter()
                .filter(|f| f.id == "kit_harington")
                .map(|f| f.appearance)
        })
        .collect();
    assert_eq!(kit_apps.len(), 2);
    let stranger: Vec<&TruthFace> = frames
        .iter()
        .flat_map(|(_, _, t)| t.iter().filter(|f| f.kind == PersonKind::Stranger))
        .collect();
    assert!(!stranger.is_empty());
    assert!(stranger
        .iter()
        .all(|f| f.id == "rose-visitor" && (f.occlusion - 0.3).abs() < 1e-6));
}

#[test]
fn effects_change_pixels_but_not_geometry() {
    // The stranger has blur, gain, noise, JPEG and occlusion; the same plan without effects
    // renders the same truth but different pixels.
    let r = test_renderer(7);
    let mut plan = r.plan().clone();
    let app = plan.cameras[0]
        .appearances
        .iter_mut()
        .find(|a| a.kind == PersonKind::Stranger)
        .unwrap();
    let t = app.closest_ms() - 200;
    app.effects = Default::default();
    let s = common::test_scenario(7);
    let mut lib = rollcall_camera_sim::PhotoLibrary::new();
    lib.load_annotated(s.render_photos().iter()).unwrap();
    let plain = Renderer::new(plan, &lib).unwrap();
    let (fa, ta) = r.render_frame("lobby", t).unwrap();
    let (fb, tb) = plain.render_frame("lobby", t).unwrap();
    assert_eq!(ta.len(), 1);
    assert_eq!(ta[0].bbox, tb[0].bbox);
    assert_eq!(ta[0].landmarks, tb[0].landmarks);
    assert_eq!((ta[0].occlusion, tb[0].occlusion), (0.3, 0.0));
    let b = ta[0].bbox;
    let mut diff = 0u64;
    for y in b.y1 as usize..b.y2 as usize {
        for x in b.x1 as usize..b.x2 as usize {
            for c in 0..3 {
                let i = (y * 640 + x) * 3 + c;
                diff += u64::from(fa.rgb()[i].abs_diff(fb.rgb()[i]));
            }
        }
    }
    let n = (b.width() * b.height() * 3.0) as u64;
    assert!(
        diff / n > 10,
        "effects barely changed the face: {}",
        diff / n
    );
}

#[test]
fn camera_stream_yields_ordered_frames_matching_render_frame() {
    let r = test_renderer(7);
    let mut s = r.stream("lobby", StreamOptions::default()).unwrap();
    assert_eq!(s.camera().id, "lobby");
    let total = s.total_frames();
    assert_eq!(total as usize, s.len());
    let mut last = i64::MIN;
    let mut n = 0;
    while let Some((t, f, truth)) = s.next() {
        assert!(t > last);
        last = t;
        n += 1;
        assert_eq!(s.next_index(), n);
        if n % 25 == 0 {
            let (f2, truth2) = r.render_frame("lobby", t).unwrap();
            assert!(f == f2);
            assert_eq!(truth, truth2);
        }
        // 5 fps on an epoch-aligned grid.
        assert_eq!(t % 200, 0);
    }
    assert_eq!(n, total);
    // Continuous covers at least as many frames, gap-free.
    let c = r
        .frame_times(
            "lobby",
            StreamOptions {
                continuous: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(c.len() as u64 >= total);
    assert!(c.windows(2).all(|w| w[1] - w[0] == 200));
    assert!(r.stream("nope", StreamOptions::default()).is_err());
}
