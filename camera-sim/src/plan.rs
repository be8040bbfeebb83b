//! The planner: turns a [`Scenario`] into a timeline of per-camera [`Appearance`]s and the
//! ground truth of arrivals and attendance. Deterministic for the scenario seed: every random
//! choice has its own stream named after the lesson, person and pass.

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::background;
use crate::photo_ref::PhotoRef;
use crate::scenario::{Arrival, ArrivalStatus, CameraSpec, Effects, Lesson, Scenario};
use crate::seed;

/// Whether a rendered person is an enrolled student or a stranger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonKind {
    Student,
    Stranger,
}

/// Where a person's face is and how big it is over an approach, in frame pixels.
///
/// The face centre moves from `start` to `end` while the face height grows from `start_face_h`
/// to `end_face_h` with perspective (harmonic) interpolation; the head sways in-plane by up to
/// `sway_deg` degrees at `sway_hz`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    pub start: [f32; 2],
    pub end: [f32; 2],
    pub start_face_h: f32,
    pub end_face_h: f32,
    pub sway_deg: f32,
    pub sway_hz: f32,
    pub sway_phase: f32,
}

/// Pose of a face at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    /// Face-box centre in frame pixels.
    pub center: [f32; 2],
    /// Face-box height in frame pixels.
    pub face_h: f32,
    /// In-plane rotation (sway), radians, positive = clockwise on screen.
    pub angle: f32,
    /// Image velocity of the centre, pixels per second.
    pub velocity: [f32; 2],
}

/// One person walking past one camera once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Appearance {
    /// Unique in the plan; orders appearances by camera then time.
    pub id: u32,
    pub person: String,
    pub kind: PersonKind,
    /// Photo rendered (key of the [`crate::PhotoLibrary`]).
    pub photo: PhotoRef,
    pub camera: String,
    /// First instant in view, ms since the Unix epoch.
    pub start_ms: i64,
    /// Duration of the approach (2–3 s by default).
    pub approach_ms: i64,
    /// Time spent in view after the approach (lingering).
    pub linger_ms: i64,
    pub lesson: Option<String>,
    /// Group number shared by people arriving together.
    pub group: Option<u32>,
    /// 1 for the first walk past, 2 for the second.
    pub pass: u32,
    pub trajectory: Trajectory,
    pub effects: Effects,
    /// Seed of this appearance's own randomness (noise, clothes, occlusion colour).
    pub seed: u64,
}

impl Appearance {
    /// First instant no longer in view.
    pub fn end_ms(&self) -> i64 {
        self.start_ms + self.approach_ms + self.linger_ms
    }

    /// In view at `t_ms`.
    pub fn visible_at(&self, t_ms: i64) -> bool {
        t_ms >= self.start_ms && t_ms < self.end_ms()
    }

    /// Instant of the end of the approach (face largest and closest).
    pub fn closest_ms(&self) -> i64 {
        self.start_ms + self.approach_ms
    }

    /// Pose at `t_ms` (clamped to the appearance's time span).
    pub fn pose_at(&self, t_ms: i64) -> Pose {
        let p0 = self.position_at(t_ms as f64);
        let p1 = self.position_at(t_ms as f64 - 50.0);
        let tr = &self.trajectory;
        let rel_s = (t_ms - self.start_ms) as f32 / 1000.0;
        let angle = (tr.sway_deg
            * (std::f32::consts::TAU * tr.sway_hz * rel_s + tr.sway_phase).sin())
        .to_radians();
        Pose {
            center: [p0.0, p0.1],
            face_h: p0.2,
            angle,
            velocity: [(p0.0 - p1.0) * 20.0, (p0.1 - p1.1) * 20.0],
        }
    }

    fn position_at(&self, t_ms: f64) -> (f32, f32, f32) {
        let tr = &self.trajectory;
        let rel = (t_ms - self.start_ms as f64).max(0.0);
        let approach = self.approach_ms.max(1) as f64;
        let p = (rel / approach).clamp(0.0, 1.0) as f32;
        // Distance shrinks linearly, apparent size grows as 1/distance.
        let h = 1.0 / ((1.0 - p) / tr.start_face_h + p / tr.end_face_h);
        let span = tr.end_face_h - tr.start_face_h;
        let q = if span.abs() > 1e-3 {
            ((h - tr.start_face_h) / span).clamp(0.0, 1.0)
        } else {
            p
        };
        let mut x = tr.start[0] + (tr.end[0] - tr.start[0]) * q;
        let y = tr.start[1] + (tr.end[1] - tr.start[1]) * q;
        if rel > approach {
            // Lingering: a slow lateral shuffle of a few pixels.
            let s = ((rel - approach) / 1000.0) as f32;
            x += 0.04 * tr.end_face_h * (std::f32::consts::TAU * 0.25 * s).sin();
        }
        (x, y, h)
    }
}

/// A camera and its appearances (sorted by start).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraPlan {
    pub spec: CameraSpec,
    /// Seed of the camera's background and sensor noise.
    pub seed: u64,
    pub appearances: Vec<Appearance>,
}

/// Ground truth of one walk past a camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArrivalTruth {
    pub person: String,
    pub kind: PersonKind,
    pub camera: String,
    /// Enters the view, ms since the Unix epoch.
    pub time_ms: i64,
    /// End of the approach (largest face), ms since the Unix epoch.
    pub closest_ms: i64,
    /// `time_ms` in the school's local time, RFC 3339.
    pub local_time: String,
    pub lesson: Option<String>,
    /// For students: what the scenario asked for (`on_time` or `late`).
    pub status: Option<ArrivalStatus>,
    pub group: Option<u32>,
    /// 1 for the first walk past, 2 for the second (must not count again).
    pub pass: u32,
    pub appearance: u32,
}

/// Expected attendance of one rostered student at one lesson.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttendanceTruth {
    pub lesson: String,
    pub class: String,
    pub student: String,
    pub status: ArrivalStatus,
    pub late_minutes: Option<f64>,
    /// First walk past the camera, ms since the Unix epoch.
    pub arrival_ms: Option<i64>,
    pub camera: Option<String>,
    /// For `leave`: when the (approved) leave was requested, ms since the Unix epoch.
    pub leave_requested_ms: Option<i64>,
}

/// The whole timeline of a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub seed: u64,
    pub utc_offset_minutes: i32,
    /// Frames rendered before a person enters / after they leave.
    pub pre_roll_ms: i64,
    pub post_roll_ms: i64,
    /// Quality of output JPEG frames.
    pub jpeg_quality: u8,
    pub cameras: Vec<CameraPlan>,
    /// Every walk past a camera, in time order.
    pub arrivals: Vec<ArrivalTruth>,
    /// Every (lesson, rostered student), in lesson order.
    pub attendance: Vec<AttendanceTruth>,
}

impl Plan {
    /// The camera plan with this id.
    pub fn camera(&self, id: &str) -> Option<&CameraPlan> {
        self.cameras.iter().find(|c| c.spec.id == id)
    }

    /// Every appearance of every camera.
    pub fn appearances(&self) -> impl Iterator<Item = &Appearance> {
        self.cameras.iter().flat_map(|c| c.appearances.iter())
    }

    /// Formats epoch milliseconds in the school's local time (RFC 3339 with milliseconds).
    pub fn local_time(&self, ms: i64) -> String {
        local_time(ms, self.utc_offset_minutes)
    }
}

pub(crate) fn local_time(ms: i64, offset_minutes: i32) -> String {
    let off = chrono::FixedOffset::east_opt(offset_minutes * 60)
        .or_else(|| chrono::FixedOffset::east_opt(0));
    match (chrono::DateTime::from_timestamp_millis(ms), off) {
        (Some(t), Some(off)) => t
            .with_timezone(&off)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        _ => ms.to_string(),
    }
}

/// Who is in one slot (one person, or a group arriving together).
struct Member {
    person: String,
    kind: PersonKind,
    photo: PhotoRef,
    offset_ms: i64,
    approach_ms: i64,
    linger_ms: i64,
    effects: Effects,
    seed: u64,
}

struct Slot {
    camera: usize,
    desired_ms: i64,
    key: String,
    lesson: Option<String>,
    group: Option<u32>,
    pass: u32,
    members: Vec<Member>,
}

/// Plans a scenario. Pure and deterministic: the same scenario gives the same plan.
pub fn plan(scenario: &Scenario) -> Plan {
    let f = &scenario.file;
    let sim = &f.simulation;
    let seed_v = f.seed;
    let mut slots: Vec<Slot> = Vec::new();
    let mut attendance = Vec::new();
    let mut groups = 0u32;

    let camera_for = |lesson: &Lesson, a: Option<&Arrival>| -> Option<usize> {
        match a.and_then(|a| a.camera.as_deref()) {
            Some(id) => f.cameras.iter().position(|c| c.id == id),
            None => f.cameras.iter().position(|c| c.campus == lesson.campus),
        }
    };

    for lesson in &scenario.lessons {
        let Some(class) = scenario.class(&lesson.class) else {
            continue;
        };
        // Arrival entries of this lesson, in file order.
        let entries: Vec<(usize, &Arrival)> = f
            .arrivals
            .iter()
            .enumerate()
            .filter(|(_, a)| a.lesson == lesson.id)
            .collect();
        let entry_of = |s: &str| -> Option<(usize, &Arrival)> {
            entries.iter().copied().find(|(_, a)| {
                a.student.as_deref() == Some(s)
                    || a.group.as_ref().is_some_and(|g| g.iter().any(|m| m == s))
            })
        };
        let mut done_entries: Vec<usize> = Vec::new();
        for student in &class.students {
            let found = entry_of(student);
            let entry = found.map(|(_, a)| a);
            let status = entry
                .map(|a| a.status.unwrap_or(ArrivalStatus::OnTime))
                .unwrap_or(sim.default_arrival);
            let notice_h = entry.and_then(|a| a.leave_notice_hours).unwrap_or(48.0);
            attendance.push(AttendanceTruth {
                lesson: lesson.id.clone(),
                class: class.id.clone(),
                student: student.clone(),
                status,
                late_minutes: entry.and_then(|a| a.late_minutes),
                arrival_ms: None,
                camera: None,
                leave_requested_ms: (status == ArrivalStatus::Leave)
                    .then(|| lesson.start_ms - (notice_h * 3_600_000.0) as i64),
            });
            if !status.arrives() {
                continue;
            }
            if let Some((idx, _)) = found {
                if done_entries.contains(&idx) {
                    continue; // the group was planned with its first member
                }
                done_entries.push(idx);
            }
            let Some(cam) = camera_for(lesson, entry) else {
                continue;
            };
            let members: Vec<String> = match entry.and_then(|a| a.group.clone()) {
                Some(g) => g,
                None => vec![student.clone()],
            };
            let mut rng = seed::rng(seed_v, &["arrival", &lesson.id, &members.join("+")]);
            let desired_ms = match status {
                ArrivalStatus::Late => {
                    let m = entry.and_then(|a| a.late_minutes).unwrap_or(10.0);
                    lesson.start_ms + minutes_ms(m)
                }
                _ => {
                    let m = entry.and_then(|a| a.early_minutes).unwrap_or_else(|| {
                        uniform(&mut rng, sim.early_minutes[0], sim.early_minutes[1])
                    });
                    lesson.start_ms - minutes_ms(m)
                }
            };
            // Seconds within the minute, so that arrivals are not all on the minute.
            let desired_ms = desired_ms + (rng.gen_range(0..30_000i64) / 100) * 100;
            let group = (members.len() > 1).then(|| {
                groups += 1;
                groups
            });
            let passes = if entry.is_some_and(|a| a.pass_twice) {
                2
            } else {
                1
            };
            for pass in 1..=passes {
                let delay_ms = if pass == 1 {
                    0
                } else {
                    let s = entry
                        .and_then(|a| a.pass_again_after_s)
                        .unwrap_or_else(|| uniform(&mut rng, 20.0, 60.0));
                    (s * 1000.0) as i64
                };
                let ms: Vec<Member> = members
                    .iter()
                    .enumerate()
                    .filter_map(|(i, m)| {
                        let s = f.students.iter().find(|s| &s.id == m)?;
                        make_member(
                            scenario,
                            entry,
                            &lesson.id,
                            m,
                            PersonKind::Student,
                            s.render_photos(),
                            pass,
                            i,
                        )
                    })
                    .collect();
                slots.push(Slot {
                    camera: cam,
                    desired_ms: desired_ms + delay_ms,
                    key: format!("{}/{}/{}", lesson.id, members.join("+"), pass),
                    lesson: Some(lesson.id.clone()),
                    group,
                    pass,
                    members: ms,
                });
            }
        }
        // Strangers.
        for (_, a) in entries.iter().filter(|(_, a)| a.stranger.is_some()) {
            let Some(sid) = a.stranger.as_deref() else {
                continue;
            };
            let Some(stranger) = f.strangers.iter().find(|s| s.id == sid) else {
                continue;
            };
            let Some(cam) = camera_for(lesson, Some(a)) else {
                continue;
            };
            let mut rng = seed::rng(seed_v, &["stranger", &lesson.id, sid]);
            let off = a
                .offset_minutes
                .unwrap_or_else(|| uniform(&mut rng, -10.0, 0.0));
            let desired = lesson.start_ms + minutes_ms(off) + (rng.gen_range(0..300i64)) * 100;
            let passes = if a.pass_twice { 2 } else { 1 };
            for pass in 1..=passes {
                let delay_ms = if pass == 1 {
                    0
                } else {
                    let s = a
                        .pass_again_after_s
                        .unwrap_or_else(|| uniform(&mut rng, 20.0, 60.0));
                    (s * 1000.0) as i64
                };
                slots.push(Slot {
                    camera: cam,
                    desired_ms: desired + delay_ms,
                    key: format!("{}/{}/{}", lesson.id, sid, pass),
                    lesson: Some(lesson.id.clone()),
                    group: None,
                    pass,
                    members: make_member(
                        scenario,
                        Some(a),
                        &lesson.id,
                        sid,
                        PersonKind::Stranger,
                        &stranger.photos,
                        pass,
                        0,
                    )
                    .into_iter()
                    .collect(),
                });
            }
        }
    }

    // Schedule per camera: separate slots never share a frame.
    slots.sort_by(|a, b| (a.camera, a.desired_ms, &a.key).cmp(&(b.camera, b.desired_ms, &b.key)));
    let min_gap = (sim.min_gap_s * 1000.0) as i64;
    let mut cursor: BTreeMap<usize, i64> = BTreeMap::new();
    let mut per_camera: Vec<Vec<Appearance>> = vec![Vec::new(); f.cameras.len()];
    for slot in &slots {
        let cam = &f.cameras[slot.camera];
        let start = match cursor.get(&slot.camera) {
            Some(c) => slot.desired_ms.max(*c),
            None => slot.desired_ms,
        };
        // Snap to 100 ms so that starts are readable in the truth.
        let start = start.div_euclid(100) * 100 + if start.rem_euclid(100) > 0 { 100 } else { 0 };
        let mut end = start;
        let cam_seed = seed::derive(seed_v, &["camera", &cam.id]);
        let layout = background::layout(cam_seed, cam.width, cam.height);
        let trajs = trajectories(slot, cam, &layout, seed_v);
        for (m, traj) in slot.members.iter().zip(trajs) {
            let a = Appearance {
                id: 0,
                person: m.person.clone(),
                kind: m.kind,
                photo: m.photo.clone(),
                camera: cam.id.clone(),
                start_ms: start + m.offset_ms,
                approach_ms: m.approach_ms,
                linger_ms: m.linger_ms,
                lesson: slot.lesson.clone(),
                group: slot.group,
                pass: slot.pass,
                trajectory: traj,
                effects: m.effects,
                seed: m.seed,
            };
            end = end.max(a.end_ms());
            per_camera[slot.camera].push(a);
        }
        cursor.insert(slot.camera, end + min_gap);
    }

    let mut cameras = Vec::new();
    let mut next_id = 0u32;
    let mut arrivals = Vec::new();
    for (ci, mut apps) in per_camera.into_iter().enumerate() {
        apps.sort_by(|a, b| (a.start_ms, &a.person).cmp(&(b.start_ms, &b.person)));
        for a in &mut apps {
            a.id = next_id;
            next_id += 1;
        }
        let spec = f.cameras[ci].clone();
        cameras.push(CameraPlan {
            seed: seed::derive(seed_v, &["camera", &spec.id]),
            spec,
            appearances: apps,
        });
    }
    // Statuses of students' slots, keyed by (lesson, person).
    let status_of: BTreeMap<(String, String), ArrivalStatus> = attendance
        .iter()
        .map(|a: &AttendanceTruth| ((a.lesson.clone(), a.student.clone()), a.status))
        .collect();
    for c in &cameras {
        for a in &c.appearances {
            let status = match (a.kind, &a.lesson) {
                (PersonKind::Student, Some(l)) => {
                    status_of.get(&(l.clone(), a.person.clone())).copied()
                }
                _ => None,
            };
            arrivals.push(ArrivalTruth {
                person: a.person.clone(),
                kind: a.kind,
                camera: a.camera.clone(),
                time_ms: a.start_ms,
                closest_ms: a.closest_ms(),
                local_time: local_time(a.start_ms, scenario.utc_offset_minutes),
                lesson: a.lesson.clone(),
                status,
                group: a.group,
                pass: a.pass,
                appearance: a.id,
            });
        }
    }
    arrivals.sort_by_key(|a| (a.time_ms, a.appearance));
    for at in &mut attendance {
        if let Some(first) = arrivals.iter().find(|a| {
            a.kind == PersonKind::Student
                && a.person == at.student
                && a.lesson.as_deref() == Some(at.lesson.as_str())
                && a.pass == 1
        }) {
            at.arrival_ms = Some(first.time_ms);
            at.camera = Some(first.camera.clone());
        }
    }

    Plan {
        seed: seed_v,
        utc_offset_minutes: scenario.utc_offset_minutes,
        pre_roll_ms: (sim.pre_roll_s * 1000.0) as i64,
        post_roll_ms: (sim.post_roll_s * 1000.0) as i64,
        jpeg_quality: sim.jpeg_quality,
        cameras,
        arrivals,
        attendance,
    }
}

fn minutes_ms(m: f64) -> i64 {
    (m * 60_000.0).round() as i64
}

fn uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    if hi > lo {
        rng.gen_range(lo..hi)
    } else {
        lo
    }
}

#[allow(clippy::too_many_arguments)]
fn make_member(
    scenario: &Scenario,
    entry: Option<&Arrival>,
    lesson: &str,
    person: &str,
    kind: PersonKind,
    photos: &[PhotoRef],
    pass: u32,
    index_in_group: usize,
) -> Option<Member> {
    let sim = &scenario.file.simulation;
    let pass_s = pass.to_string();
    let mut rng = seed::rng(scenario.file.seed, &["member", lesson, person, &pass_s]);
    let photo = match entry.and_then(|a| a.photo.clone()) {
        Some(p) => p,
        None if photos.is_empty() => return None,
        None => photos[rng.gen_range(0..photos.len())].clone(),
    };
    let approach_s = uniform(&mut rng, sim.approach_s[0], sim.approach_s[1]);
    let offset_ms = if index_in_group == 0 {
        0
    } else {
        rng.gen_range(0..=4i64) * 100
    };
    let effects = match entry.and_then(|a| a.effects) {
        Some(e) => e,
        None if rng.gen_bool(sim.random_effects.clamp(0.0, 1.0)) => Effects {
            motion_blur_px: rng.gen_range(0.0..3.0),
            gain: rng.gen_range(0.8..1.2),
            noise: rng.gen_range(0.0..4.0),
            jpeg_quality: rng.gen_bool(0.5).then(|| rng.gen_range(50..86)),
            occlusion: 0.0,
            occlusion_side: None,
        },
        None => Effects::default(),
    };
    let linger_ms = if pass == 1 {
        entry
            .and_then(|a| a.linger_s)
            .map(|s| (s * 1000.0) as i64)
            .unwrap_or(0)
    } else {
        0
    };
    Some(Member {
        person: person.to_string(),
        kind,
        photo,
        offset_ms,
        approach_ms: (approach_s * 1000.0) as i64,
        linger_ms,
        effects,
        seed: rng.gen(),
    })
}

/// Trajectories of the members of a slot: from the door towards the camera, side by side for a
/// group, staying inside the frame.
fn trajectories(
    slot: &Slot,
    cam: &CameraSpec,
    layout: &background::Layout,
    seed_v: u64,
) -> Vec<Trajectory> {
    let (w, h) = (cam.width as f32, cam.height as f32);
    let mut rng = seed::rng(seed_v, &["trajectory", &cam.id, &slot.key]);
    let n = slot.members.len().max(1) as f32;
    let h0 = 40.0 / 720.0 * h * rng.gen_range(0.9f32..1.1);
    let h1 = 120.0 / 720.0 * h * rng.gen_range(0.9f32..1.1);
    let x0 = layout.door_cx + rng.gen_range(-0.25f32..0.25) * layout.door_w;
    let y0 = h * rng.gen_range(0.29f32..0.33);
    let y1 = h * rng.gen_range(0.36f32..0.44);
    // Group spread (centre to centre) at the start and at the end.
    let spread0 = 2.4 * h0;
    let spread1 = 2.4 * h1;
    let half_group = (n - 1.0) * 0.5 * spread1;
    let margin = 1.0 * h1 * 1.1;
    let lo = margin + half_group;
    let hi = w - margin - half_group;
    let x1 = (x0 + rng.gen_range(-0.22f32..0.22) * w).clamp(lo.min(w * 0.5), hi.max(w * 0.5));
    let y1 = y1.clamp(h1 * 0.9, h - h1 * 0.9);
    slot.members
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let k = i as f32 - (n - 1.0) * 0.5;
            let jitter = if slot.members.len() > 1 {
                rng.gen_range(0.92f32..1.08)
            } else {
                1.0
            };
            Trajectory {
                start: [x0 + k * spread0, y0 + rng.gen_range(-0.01f32..0.01) * h],
                end: [x1 + k * spread1, y1 + rng.gen_range(-0.02f32..0.02) * h],
                start_face_h: h0 * jitter,
                end_face_h: h1 * jitter,
                sway_deg: rng.gen_range(1.5f32..5.0),
                sway_hz: rng.gen_range(0.7f32..1.3),
                sway_phase: rng.gen_range(0.0f32..std::f32::consts::TAU),
            }
        })
        .collect()
}
