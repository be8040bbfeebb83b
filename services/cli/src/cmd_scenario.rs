//! `rollcall run-scenario SCENARIO.toml`: the whole product in one process on a camera-sim
//! scenario, scored against the scenario's ground truth.
//!
//! A fresh data directory (a temporary one unless `--data` names a new one) gets the embedded
//! defaults: the SQLite ledger and the qdrant-edge gallery (with `QDRANT_URL`: a collection of
//! the run's own on that Qdrant server, deleted at the end). The school, campuses, cameras,
//! students, guardians, classes, the dated timetable, enrollments, packages and approved leaves
//! come from the scenario; every student is enrolled from their enrollment photos through the
//! real enrollment path (quality gate, duplicate check). Then every camera's rendered frames are
//! played in timestamp order through the real pipeline (detect → quality → align → embed →
//! gallery search → tracker → debounced matcher); the frame timestamps are the clock: tracks
//! expire, lessons are finalised (absences, absence streaks) and check-ins are written with the
//! event time, exactly as `rollcall serve` writes them (one event key per track).
//!
//! Scoring maps each track to the person the renderer drew under its faces (box overlap, by
//! majority over the track's frames): an accepted check-in is correct only when that person is
//! the student checked in. The exit status reflects errors only, never the score.

use crate::cmd_sim;
use crate::cmd_vision::VisionOpts;
use anyhow::{anyhow, Context};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use rollcall_camera_sim::{PersonKind, Simulation};
use rollcall_domain::face::BBox;
use rollcall_domain::ledger::{
    AbsencePolicy, AttendanceStatus, Charge, ClassPolicy, EntryKind, LessonTiming, SchoolPolicy,
};
use rollcall_domain::matcher::debounce::{Decision, Outcome};
use rollcall_domain::matcher::tracker::TrackId;
use rollcall_domain::privacy::{ConsentRecord, FACE_CONSENT};
use rollcall_domain::{CameraId, CampusId, StudentId, TenantId};
use rollcall_gallery::vault::Keyring;
use rollcall_ledger::{
    NewClass, NewGuardian, NewLesson, NewPackage, NewStudent, NotifySettings, StaffRecipient, Store,
};
use rollcall_notify::{Channels, Dispatcher, DispatcherConfig, LogChannel, RecordingSink};
use rollcall_runtime::enrollment::{self as enroll, EnrollConfig, EnrollRequest};
use rollcall_runtime::{Committed, DecisionSink, GroupPort, LedgerWriter, Recognizer, RetryPolicy};
use rollcall_vision::pipeline::Shot;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Data directory to create (must not exist or be empty); default: a temporary one,
    /// removed at the end.
    pub data: Option<PathBuf>,
    /// The scenario's seed or camera streams replaced (`--seed`, `--size`, `--fps`).
    pub overrides: rollcall_camera_sim::Overrides,
    /// Two streams per camera: faces are found in the scenario's stream (the substream) and cut
    /// from a main stream of this size rendered from the same scene at the same instants.
    pub main_size: Option<(u32, u32)>,
}

fn ms_to_utc(ms: i64) -> anyhow::Result<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| anyhow!("time {ms} ms is out of range"))
}

fn local_date(sim: &Simulation, field: &str, s: &str) -> anyhow::Result<DateTime<Utc>> {
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .with_context(|| format!("{field} {s:?} is not a YYYY-MM-DD date"))?;
    ms_to_utc(sim.scenario.local_midnight_ms(d))
}

/// The ledger of the scenario: school, campuses, rooms, cameras, students with guardians and
/// consent, classes, lessons, enrollments, packages and approved leaves.
async fn set_up_ledger(root: &Store, sim: &Simulation) -> anyhow::Result<Store> {
    let f = &sim.scenario.file;
    let policy = SchoolPolicy::default();
    let store = root
        .create_school(
            &f.school.id,
            &f.school.name,
            sim.scenario.utc_offset_minutes as i64,
            &policy,
        )
        .await
        .context("creating the school")?;
    let first_lesson = sim
        .scenario
        .lessons
        .iter()
        .map(|l| l.start_ms)
        .min()
        .unwrap_or(0);
    // everything is set up a month before the first lesson
    let setup_at = ms_to_utc(first_lesson)? - Duration::days(30);
    // Parents and the front desk are notified (delivered to a recording sink by the run).
    store
        .set_notify_settings(
            &NotifySettings {
                enabled: true,
                staff: vec![StaffRecipient {
                    id: "front-desk".into(),
                    channel: "email".into(),
                    address: format!("front-desk@{}.example", f.school.id),
                    language: "en".into(),
                    events: None,
                }],
                ..NotifySettings::default()
            },
            "run-scenario",
        )
        .await
        .context("notification settings")?;
    for c in &f.campuses {
        store.create_campus(&c.id, &c.name).await?;
    }
    for c in &f.cameras {
        store.create_camera(&c.id, &c.campus, &c.door).await?;
    }
    for s in &f.students {
        let home = f
            .classes
            .iter()
            .find(|c| c.students.contains(&s.id))
            .map(|c| c.campus.clone());
        store
            .create_student(&NewStudent {
                id: s.id.clone(),
                name: s.name.clone(),
                home_campus_id: home,
            })
            .await
            .with_context(|| format!("student {}", s.id))?;
        for (i, g) in s.guardians.iter().enumerate() {
            let mut prefs = Vec::new();
            if g.phone.is_some() {
                prefs.push("sms");
            }
            if g.email.is_some() {
                prefs.push("email");
            }
            store
                .add_guardian(&NewGuardian {
                    id: format!("{}-g{}", s.id, i + 1),
                    student_id: s.id.clone(),
                    name: g.name.clone(),
                    phone: g.phone.clone(),
                    email: g.email.clone(),
                    language: g.language.clone(),
                    notify_prefs: prefs.join(","),
                })
                .await?;
        }
        // the first guardian consents to face recognition (enrollment is refused without it)
        if s.guardians.is_empty() {
            anyhow::bail!(
                "student {}: no guardian in the scenario; face enrollment needs a guardian's \
                 consent (add a [[students.guardians]] entry)",
                s.id
            );
        }
        let by = format!("{}-g1", s.id);
        store
            .record_consent_decision(
                &s.id,
                &ConsentRecord {
                    kind: FACE_CONSENT.to_string(),
                    granted: true,
                    given_by: by,
                    at: setup_at,
                    document_ref: Some(format!("scenario consent form {}", s.id)),
                    expires_at: None,
                },
            )
            .await?;
    }
    let mut rooms = BTreeSet::new();
    for c in &f.classes {
        let room = format!("{}-{}", c.campus, c.room);
        if rooms.insert(room.clone()) {
            store.create_room(&room, &c.campus, &c.room).await?;
        }
        store
            .create_class(&NewClass {
                id: c.id.clone(),
                course: c.id.clone(),
                name: c.name.clone(),
                campus_id: c.campus.clone(),
                teacher: c.teacher.clone(),
                policy: class_policy(c.absence_policy),
            })
            .await
            .with_context(|| format!("class {}", c.id))?;
        for s in &c.students {
            store.enroll(&c.id, s, setup_at).await?;
        }
    }
    let mut lessons = Vec::new();
    for l in &sim.scenario.lessons {
        let class = sim
            .scenario
            .class(&l.class)
            .ok_or_else(|| anyhow!("lesson {} names unknown class {}", l.id, l.class))?;
        lessons.push(NewLesson {
            id: l.id.clone(),
            class_id: l.class.clone(),
            room_id: Some(format!("{}-{}", class.campus, class.room)),
            teacher: None,
            start: ms_to_utc(l.start_ms)?,
            end: ms_to_utc(l.end_ms)?,
        });
    }
    store.add_lessons(&lessons).await.context("timetable")?;
    for p in &f.packages {
        store
            .purchase(&NewPackage {
                id: p.id.clone(),
                student_id: p.student.clone(),
                campus_id: p.campus.clone(),
                lessons: p.lessons as i64,
                unit_price_cents: p.unit_price_cents,
                price_paid_cents: None,
                bought_at: local_date(sim, "packages.bought", &p.bought)?,
                expires_at: local_date(sim, "packages.expires", &p.expires)?,
            })
            .await
            .with_context(|| format!("package {}", p.id))?;
    }
    for a in &sim.plan().attendance {
        if let Some(req) = a.leave_requested_ms {
            store
                .request_leave(
                    &a.student,
                    &a.lesson,
                    ms_to_utc(req)?,
                    true,
                    Some("scenario"),
                )
                .await
                .with_context(|| format!("leave of {} for {}", a.student, a.lesson))?;
        }
    }
    Ok(store)
}

/// A camera-sim class's `absence_policy` is what an unexcused absence costs; an approved leave
/// with enough notice is free and one with short notice costs the same as no leave.
fn class_policy(unexcused: Charge) -> ClassPolicy {
    ClassPolicy {
        timing: LessonTiming::default(),
        absence: AbsencePolicy {
            unexcused,
            excused: Charge::Free,
            short_notice: unexcused,
            notice_hours: AbsencePolicy::default().notice_hours,
        },
    }
}

/// Per-track votes for the person drawn under the track's faces.
#[derive(Default)]
struct TruthVotes {
    votes: HashMap<TrackId, BTreeMap<String, u32>>,
    frames: HashMap<TrackId, u32>,
}

impl TruthVotes {
    fn add(
        &mut self,
        boxes: &[BBox],
        tracks: &[TrackId],
        truth: &[rollcall_camera_sim::TruthFace],
    ) {
        for (b, t) in boxes.iter().zip(tracks) {
            *self.frames.entry(t.clone()).or_default() += 1;
            let best = truth
                .iter()
                .map(|f| (b.iou(&f.bbox), f))
                .filter(|(iou, _)| *iou >= 0.3)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((_, f)) = best {
                *self
                    .votes
                    .entry(t.clone())
                    .or_default()
                    .entry(f.id.clone())
                    .or_default() += 1;
            }
        }
    }

    /// The person most often under the track (`None`: no rendered face, e.g. a false detection).
    fn person(&self, t: &TrackId) -> Option<&str> {
        self.votes
            .get(t)?
            .iter()
            .max_by_key(|(id, n)| (**n, std::cmp::Reverse((*id).clone())))
            .map(|(id, _)| id.as_str())
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A scenario's data directory after set-up: the ledger (root and school stores), the embedded
/// gallery with every student enrolled, and the pipeline that enrolled them.
pub struct Prepared {
    pub root: Store,
    pub store: Store,
    pub tenant: TenantId,
    pub pipeline: rollcall_vision::FacePipeline,
    pub gallery: crate::cmd_gallery::RunGallery,
    /// Per student: templates made, photos rejected, possible duplicates.
    pub enrolled: Vec<Value>,
    pub campus_of_camera: BTreeMap<String, String>,
}

/// Sets up the scenario's ledger in `data` and enrolls every student from their enrollment
/// photos through the real enrollment path (consent gate, quality gate, duplicate check).
pub async fn prepare(v: &VisionOpts, sim: &Simulation, data: &Path) -> anyhow::Result<Prepared> {
    let root = Store::open_data_dir(data)
        .await
        .with_context(|| format!("opening the ledger in {}", data.display()))?;
    prepare_in(v, sim, data, root, std::env::var("QDRANT_URL").ok(), None).await
}

/// [`prepare`] with the ledger in `root` (e.g. a PostgreSQL database) instead of the SQLite
/// file of `data`; the gallery and crops still go under `data`.
pub async fn prepare_in(
    v: &VisionOpts,
    sim: &Simulation,
    data: &Path,
    root: Store,
    qdrant_url: Option<String>,
    keys: Option<Keyring>,
) -> anyhow::Result<Prepared> {
    let store = set_up_ledger(&root, sim).await?;
    let tenant = TenantId::new(store.school_id()).map_err(|e| anyhow!("school id: {e}"))?;

    // Enrollment through the real path.
    let pipeline = v.open()?;
    let dim = crate::cmd_gallery::dim_of(&pipeline);
    // the embedded gallery in `data`, or (QDRANT_URL) a collection of this run's own on that
    // server, deleted when the gallery is dropped at the end of the run
    let gallery = crate::cmd_gallery::RunGallery::open_at(data, dim, qdrant_url).await?;
    if let Some(at) = gallery.remote() {
        eprintln!("run-scenario: gallery: {at}");
    }
    let cfg = EnrollConfig::new(data.join("crops"), pipeline.thresholds());
    let pipeline = enroll::shared(pipeline);
    // the keys given, else the configured template keys (ROLLCALL_TEMPLATE_KEYS), else a key
    // for this run only; the canonical templates are sealed with it
    let keys = match keys {
        Some(k) => k,
        None => match Keyring::from_env().context("ROLLCALL_TEMPLATE_KEYS")? {
            Some(k) => k,
            None => Keyring::parse(&Keyring::generate_entry("run"), None)
                .context("generating the run's template key")?,
        },
    };
    let mut enrolled = Vec::new();
    let f = &sim.scenario.file;
    let first_lesson = sim
        .scenario
        .lessons
        .iter()
        .map(|l| l.start_ms)
        .min()
        .unwrap_or(0);
    let enroll_at = ms_to_utc(first_lesson)? - Duration::days(29);
    let campus_of_camera: BTreeMap<String, String> = f
        .cameras
        .iter()
        .map(|c| (c.id.clone(), c.campus.clone()))
        .collect();
    for s in &f.students {
        let mut photos = Vec::new();
        for p in &s.enrollment_photos {
            let bytes = std::fs::read(&p.path).with_context(|| format!("{}", p.path.display()))?;
            photos.push((p.path.display().to_string(), bytes));
        }
        let student = StudentId::new(s.id.as_str()).map_err(|e| anyhow!("student id: {e}"))?;
        let report = enroll::enroll(
            &pipeline,
            &gallery,
            &enroll::Safeguards {
                store: &store,
                keys: &keys,
            },
            &cfg,
            EnrollRequest {
                tenant: tenant.clone(),
                student,
                campuses: Vec::new(),
                photos,
                // simulated time: a day after the set-up (consent) and before the first lesson
                now: enroll_at,
            },
        )
        .await
        .with_context(|| format!("enrolling {}", s.id))?;
        enrolled.push(json!({
            "student": s.id,
            "templates": report.templates,
            "rejected": report.rejected,
            "duplicates": report.duplicates,
        }));
    }

    // every enrollment has finished: the pipeline is this run's alone again
    let pipeline = std::sync::Arc::try_unwrap(pipeline)
        .map_err(|_| anyhow!("the enrollment pipeline is still shared"))?
        .into_inner();
    Ok(Prepared {
        root,
        store,
        tenant,
        pipeline,
        gallery,
        enrolled,
        campus_of_camera,
    })
}

pub async fn run(v: &VisionOpts, scenario: &Path, opts: &RunOptions) -> anyhow::Result<Value> {
    let t_start = Instant::now();
    let sim = cmd_sim::load_overridden(v, scenario, &opts.overrides)?;
    let tmp;
    let data: PathBuf = match &opts.data {
        Some(d) => {
            if d.exists() && std::fs::read_dir(d)?.next().is_some() {
                anyhow::bail!(
                    "--data {}: the directory is not empty (run-scenario needs a fresh one)",
                    d.display()
                );
            }
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir().context("creating a temporary data directory")?;
            tmp.path().to_path_buf()
        }
    };
    let Prepared {
        root,
        store,
        tenant,
        pipeline,
        gallery,
        enrolled,
        campus_of_camera,
    } = prepare(v, &sim, &data).await?;

    // Every camera's frames, in timestamp order (ties: scenario camera order).
    let renderer = &sim.renderer;
    let main = match opts.main_size {
        Some((w, h)) => Some(sim.main_stream(w, h).context("the main stream")?),
        None => None,
    };
    let mut schedule: Vec<(i64, usize)> = Vec::new();
    let cameras = renderer.camera_ids();
    for (i, cam) in cameras.iter().enumerate() {
        for t in renderer.frame_times(cam, Default::default())? {
            schedule.push((t, i));
        }
    }
    schedule.sort();
    let mut rec = Recognizer::new(pipeline, std::sync::Arc::new(gallery), tenant)?;
    // The same decision sink and ledger writer as `serve` (group commit, retries, parking;
    // review items with crops); each check-in is awaited here, so the run is reproducible.
    let (port, group) = GroupPort::spawn(store.clone());
    let mut decisions_out = DecisionSink::new(
        store.clone(),
        LedgerWriter::new(port, RetryPolicy::default()),
        data.clone(),
    );
    let mut cam_ids = Vec::new();
    for cam in &cameras {
        let campus = campus_of_camera
            .get(cam)
            .ok_or_else(|| anyhow!("camera {cam} has no campus"))?;
        let c = CameraId::new(cam.as_str()).map_err(|e| anyhow!("camera id: {e}"))?;
        let p = CampusId::new(campus.as_str()).map_err(|e| anyhow!("campus id: {e}"))?;
        rec.add_camera(c.clone(), p.clone())?;
        cam_ids.push((c, p));
    }

    // Lessons to finalise as the clock passes their end + grace.
    let grace = LessonTiming::default().finalize_grace_minutes;
    let mut finalize_at: Vec<i64> = sim
        .scenario
        .lessons
        .iter()
        .map(|l| l.end_ms + grace * 60_000)
        .collect();
    finalize_at.sort();
    finalize_at.dedup();
    let mut next_finalize = 0usize;

    // Absence notices go out at lesson start + late grace for whoever is missing.
    let late = LessonTiming::default().late_grace_minutes;
    let mut missing_at: Vec<i64> = sim
        .scenario
        .lessons
        .iter()
        .map(|l| l.start_ms + late * 60_000)
        .collect();
    missing_at.sort();
    missing_at.dedup();
    let mut next_missing = 0usize;
    let sink = RecordingSink::new();
    let dispatcher = Dispatcher::with_seed(
        store.clone(),
        Channels {
            webhook: None,
            email: None,
            log: std::sync::Arc::new(LogChannel),
            all: Some(std::sync::Arc::new(sink.clone())),
        },
        DispatcherConfig {
            missing_scan_ms: 0,
            ..DispatcherConfig::default()
        },
        sim.scenario.seed(),
    )?;
    let mut next_dispatch = i64::MIN;
    let mut truth = TruthVotes::default();
    let mut decisions: Vec<Decision> = Vec::new();
    let mut ledger_results = Vec::new();
    let mut frame_ms: Vec<f64> = Vec::new();
    let t_frames = Instant::now();
    let mut last_t = schedule.first().map(|s| s.0).unwrap_or(0);
    for &(t, ci) in &schedule {
        // finalise every lesson whose time has come before this frame; tracks that went quiet
        // before then are closed first, as serve's timer would have closed them by then
        while next_missing < missing_at.len() && missing_at[next_missing] <= t {
            let at = ms_to_utc(missing_at[next_missing])?;
            let quiet = rec.engine.tick(at);
            write_all(
                &mut decisions_out,
                quiet,
                &mut decisions,
                &mut ledger_results,
            )
            .await?;
            decisions_out.flush().await;
            store.notify_missing(at, Duration::hours(6)).await?;
            next_missing += 1;
        }
        while next_finalize < finalize_at.len() && finalize_at[next_finalize] <= t {
            let at = ms_to_utc(finalize_at[next_finalize])?;
            let quiet = rec.engine.tick(at);
            write_all(
                &mut decisions_out,
                quiet,
                &mut decisions,
                &mut ledger_results,
            )
            .await?;
            decisions_out.flush().await;
            store.finalize(at).await?;
            next_finalize += 1;
        }
        if t >= next_dispatch {
            // the dispatcher runs once a simulated minute
            dispatch_all(&dispatcher, ms_to_utc(t)?).await?;
            next_dispatch = t + 60_000;
        }
        let at = ms_to_utc(t)?;
        let mut new = rec.engine.tick(at);
        let started = Instant::now();
        let (frame, faces) = renderer.render_frame(&cameras[ci], t)?;
        let (cam, campus) = &cam_ids[ci];
        let (out, faces) = match &main {
            None => (
                rec.on_frame_tracked(cam, campus, at, &frame, started)
                    .await?,
                faces,
            ),
            Some(m) => {
                // boxes come out in the main stream's pixels: so does its ground truth
                let (main_frame, main_faces) = m.render_frame(&cameras[ci], t)?;
                let shot = Shot {
                    detect: &frame,
                    main: Some(&main_frame),
                };
                (
                    rec.on_shot_tracked(cam, campus, at, shot, started).await?,
                    main_faces,
                )
            }
        };
        frame_ms.push(started.elapsed().as_secs_f64() * 1e3);
        truth.add(&out.boxes, &out.tracks, &faces);
        decisions_out.observe(&out.tracks, &out.qualities, out.crops);
        new.extend(out.decisions);
        write_all(&mut decisions_out, new, &mut decisions, &mut ledger_results).await?;
        last_t = t;
    }
    let end = ms_to_utc(last_t)? + Duration::seconds(1);
    let rest = rec.engine.finish(end);
    write_all(
        &mut decisions_out,
        rest,
        &mut decisions,
        &mut ledger_results,
    )
    .await?;
    decisions_out.flush().await;
    let parked = decisions_out
        .writer
        .stats
        .parked
        .load(std::sync::atomic::Ordering::Relaxed);
    drop(decisions_out);
    let _ = group.await;
    let frames_secs = t_frames.elapsed().as_secs_f64();
    // finalise the remaining lessons (a lesson after the last frame: everybody absent)
    for &at in &missing_at[next_missing..] {
        store
            .notify_missing(ms_to_utc(at)?, Duration::hours(6))
            .await?;
    }
    for &at in &finalize_at[next_finalize..] {
        store.finalize(ms_to_utc(at)?).await?;
    }
    // deliver what is due now, then what quiet hours deferred (up to a day later)
    let last = finalize_at.last().copied().unwrap_or(last_t).max(last_t);
    dispatch_all(&dispatcher, ms_to_utc(last)?).await?;
    let undelivered_by_end = store.outbox_counts(ms_to_utc(last)?).await?;
    dispatch_all(&dispatcher, ms_to_utc(last)? + Duration::days(1)).await?;
    let notifications: Vec<Value> = sink
        .deliveries()
        .iter()
        .map(|o| {
            json!({
                "kind": o.kind,
                "student": o.student_id,
                "recipient": o.recipient_id,
                "channel": o.channel,
                "to": o.to,
                "language": o.language,
                "subject": o.subject,
                "text": o.text,
                "key": o.delivery_key,
                "caused_at": o.created_at,
            })
        })
        .collect();
    let notification_summary = json!({
        "delivered": notifications.len(),
        "distinct_keys": sink.distinct().len(),
        "deferred_past_the_run": undelivered_by_end,
    });

    let ledger = ledger_dump(&store).await?;
    let mut summary = summarize(
        &store,
        &sim,
        &decisions,
        &ledger_results,
        &truth,
        SummaryExtras {
            notifications,
            notification_summary,
            enrolled,
            frames: schedule.len(),
            frame_ms,
            frames_secs,
            total_secs: t_start.elapsed().as_secs_f64(),
            rec: &rec,
            data: opts.data.as_deref(),
            parked,
        },
    )
    .await?;
    summary["ledger"] = ledger;
    store.close().await;
    root.close().await;
    Ok(summary)
}

/// The ledger of a run as comparable lists: attendance `[student, lesson, status]`, deductions
/// `[student, lesson, package, units]`, alerts `[kind, dedup key]` and notices `[notice id,
/// recipient, channel]`, each sorted. `serve` (through `bench crash`) and `run-scenario` are
/// compared on it.
pub(crate) async fn ledger_dump(store: &Store) -> anyhow::Result<Value> {
    let mut attendance: Vec<Value> = store
        .attendance()
        .await?
        .iter()
        .map(|(s, l, st)| json!([s, l, st.as_str()]))
        .collect();
    let mut deductions: Vec<Value> = store
        .entries(None)
        .await?
        .iter()
        .filter(|e| e.entry.kind == EntryKind::Deduction)
        .map(|e| {
            json!([
                e.entry.student_id,
                e.entry.lesson_id,
                e.entry.package_id,
                e.entry.units
            ])
        })
        .collect();
    let mut alerts: Vec<Value> = store
        .alerts(None)
        .await?
        .iter()
        .map(|a| json!([a.kind.as_str(), a.dedup_key]))
        .collect();
    let mut notices: Vec<Value> = store
        .outbox(None, 1_000_000)
        .await?
        .iter()
        .map(|r| json!([r.notice_id, r.recipient_id, r.channel]))
        .collect();
    for v in [&mut attendance, &mut deductions, &mut alerts, &mut notices] {
        v.sort_by_key(|x| x.to_string());
    }
    Ok(json!({
        "attendance": attendance,
        "deductions": deductions,
        "alerts": alerts,
        "notices": notices,
    }))
}

/// Runs the dispatcher at simulated time `now` until nothing due is left.
pub(crate) async fn dispatch_all(d: &Dispatcher, now: DateTime<Utc>) -> anyhow::Result<()> {
    for _ in 0..1000 {
        let r = d.run_once(now).await?;
        if r.claimed == 0 {
            return Ok(());
        }
    }
    anyhow::bail!("the notification dispatcher did not drain its queue")
}

/// [`write_check_in`] for each decision in order, keeping every decision and each check-in's
/// ledger result.
async fn write_all(
    sink: &mut DecisionSink,
    new: Vec<Decision>,
    decisions: &mut Vec<Decision>,
    results: &mut Vec<(Decision, rollcall_ledger::CheckInResult)>,
) -> anyhow::Result<()> {
    for d in new {
        if let Some(r) = write_check_in(sink, &d).await? {
            results.push(r);
        }
        decisions.push(d);
    }
    Ok(())
}

/// Routes a decision through the decision sink, as `serve` does, and waits for its check-in
/// (if any). A parked check-in is no result (it is counted in the summary).
async fn write_check_in(
    sink: &mut DecisionSink,
    d: &Decision,
) -> anyhow::Result<Option<(Decision, rollcall_ledger::CheckInResult)>> {
    let Some(h) = sink.route(d).await else {
        return Ok(None);
    };
    match h.await.context("the ledger writer task")? {
        Committed::Recorded(r) => Ok(Some((d.clone(), r))),
        Committed::Parked { reason, error } => {
            tracing::error!(student = ?d.student(), reason, error = %error, "check-in parked");
            Ok(None)
        }
        Committed::Lost { error } => anyhow::bail!("a check-in could not be parked: {error}"),
    }
}

struct SummaryExtras<'a> {
    notifications: Vec<Value>,
    notification_summary: Value,
    enrolled: Vec<Value>,
    frames: usize,
    frame_ms: Vec<f64>,
    frames_secs: f64,
    total_secs: f64,
    rec: &'a Recognizer,
    data: Option<&'a Path>,
    /// Check-ins the ledger writer parked (never expected on a scenario).
    parked: u64,
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    Some((sorted[((sorted.len() - 1) as f64 * q).round() as usize] * 10.0).round() / 10.0)
}

async fn summarize(
    store: &Store,
    sim: &Simulation,
    decisions: &[Decision],
    results: &[(Decision, rollcall_ledger::CheckInResult)],
    truth: &TruthVotes,
    x: SummaryExtras<'_>,
) -> anyhow::Result<Value> {
    let plan = sim.plan();
    let strangers: BTreeSet<&str> = sim
        .scenario
        .file
        .strangers
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    // expected: (student, lesson) of everyone who walks in for a lesson
    let expected: BTreeSet<(String, String)> = plan
        .attendance
        .iter()
        .filter(|a| a.status.arrives())
        .map(|a| (a.student.clone(), a.lesson.clone()))
        .collect();
    let expected_absent: BTreeMap<(String, String), &'static str> = plan
        .attendance
        .iter()
        .filter(|a| !a.status.arrives())
        .map(|a| {
            let s = if a.leave_requested_ms.is_some() {
                "excused"
            } else {
                "absent"
            };
            ((a.student.clone(), a.lesson.clone()), s)
        })
        .collect();

    let attendance = store.attendance().await?;
    let present: BTreeSet<(String, String)> = attendance
        .iter()
        .filter(|(_, _, s)| matches!(s, AttendanceStatus::Present | AttendanceStatus::Late))
        .map(|(s, l, _)| (s.clone(), l.clone()))
        .collect();
    let absences: Vec<Value> = attendance
        .iter()
        .filter(|(_, _, s)| matches!(s, AttendanceStatus::Absent | AttendanceStatus::Excused))
        .map(|(s, l, st)| json!({"student": s, "lesson": l, "status": st.as_str()}))
        .collect();

    // check-ins as the ledger recorded them, with the track's ground truth
    let mut check_ins = Vec::new();
    let mut false_check_ins = Vec::new();
    for (d, r) in results {
        let who = truth.person(&d.track);
        let correct = who == Some(r.student_id.as_str());
        let (lesson, status, effect) = match &r.outcome {
            rollcall_domain::ledger::CheckInOutcome::Recorded {
                lesson_id, status, ..
            } => (Some(lesson_id.clone()), Some(status.as_str()), "recorded"),
            rollcall_domain::ledger::CheckInOutcome::AlreadyRecorded { lesson_id, status } => (
                Some(lesson_id.clone()),
                Some(status.as_str()),
                "already_recorded",
            ),
            rollcall_domain::ledger::CheckInOutcome::Unscheduled => (None, None, "unscheduled"),
            rollcall_domain::ledger::CheckInOutcome::DuplicateEvent => {
                (None, None, "duplicate_event")
            }
        };
        let v = json!({
            "student": r.student_id,
            "lesson": lesson,
            "time": r.at,
            "local_time": plan.local_time(r.at.timestamp_millis()),
            "status": status,
            "ledger": effect,
            "camera": r.camera_id,
            "track": d.track.to_string(),
            "similarity": d.similarity,
            "margin": d.margin,
            "truth": who,
        });
        if !correct {
            false_check_ins.push(v.clone());
        }
        check_ins.push(v);
    }

    // deductions from the append-only ledger
    let entries = store.entries(None).await?;
    let mut per_lesson: BTreeMap<(String, String), u32> = BTreeMap::new();
    let mut deductions = Vec::new();
    for e in &entries {
        if e.entry.kind != EntryKind::Deduction {
            continue;
        }
        if let Some(l) = &e.entry.lesson_id {
            *per_lesson
                .entry((e.entry.student_id.clone(), l.clone()))
                .or_default() += 1;
        }
        deductions.push(json!({
            "student": e.entry.student_id,
            "lesson": e.entry.lesson_id,
            "package": e.entry.package_id,
            "lessons": -(e.entry.units as f64) / 100.0,
            "at": e.at,
        }));
    }
    let duplicate_deductions: u32 = per_lesson.values().map(|n| n.saturating_sub(1)).sum();

    let alerts: Vec<Value> = store
        .alerts(None)
        .await?
        .iter()
        .map(|a| {
            json!({
                "kind": a.kind,
                "student": a.student_id,
                "class": a.class_id,
                "package": a.package_id,
                "message": a.message,
                "at": a.created_at,
            })
        })
        .collect();

    let mut review_items = Vec::new();
    let mut unknown_tracks = Vec::new();
    for d in decisions {
        let who = truth.person(&d.track);
        match &d.outcome {
            Outcome::Review(r) => review_items.push(json!({
                "track": d.track.to_string(),
                "reason": r.reason.as_str(),
                "candidates": r.candidates.iter().map(|c| json!({"student": c.student, "similarity": c.similarity})).collect::<Vec<_>>(),
                "time": d.decided_at,
                "truth": who,
            })),
            Outcome::Unknown => unknown_tracks.push(json!({
                "track": d.track.to_string(),
                "visitor": d.visitor.map(|v| v.visitor.0),
                "sightings": d.sightings,
                "similarity": d.similarity,
                "time": d.first_seen,
                "truth": who,
            })),
            Outcome::Accept { .. } => {}
        }
    }

    let correct: BTreeSet<&(String, String)> = present.intersection(&expected).collect();
    let missed: Vec<Value> = expected
        .difference(&present)
        .map(|(s, l)| json!({"student": s, "lesson": l}))
        .collect();
    let unexpected: Vec<Value> = present
        .difference(&expected)
        .map(|(s, l)| json!({"student": s, "lesson": l}))
        .collect();
    let absences_correct = expected_absent
        .iter()
        .filter(|((s, l), want)| {
            attendance
                .iter()
                .any(|(s2, l2, st)| s2 == s && l2 == l && st.as_str() == **want)
        })
        .count();
    let stranger_check_ins = results
        .iter()
        .filter(|(d, _)| {
            truth
                .person(&d.track)
                .is_some_and(|p| strangers.contains(p))
        })
        .count();
    let ratio = |n: usize, d: usize| {
        if d == 0 {
            1.0
        } else {
            round3(n as f64 / d as f64)
        }
    };

    let mut sorted = x.frame_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let mut strangers_seen = BTreeSet::new();
    for a in &plan.arrivals {
        if a.kind == PersonKind::Stranger {
            strangers_seen.insert(a.person.clone());
        }
    }
    Ok(json!({
        "scenario": sim.scenario.source,
        "school": store.school_id(),
        "data_dir": x.data,
        "enrolled": x.enrolled,
        "check_ins": check_ins,
        "deductions": deductions,
        "absences": absences,
        "alerts": alerts,
        "review_items": review_items,
        "unknown_tracks": unknown_tracks,
        "unknown_visitors": x.rec.engine.visitors().visitors().len(),
        "notifications": x.notifications,
        "notification_summary": x.notification_summary,
        "score": {
            "expected_check_ins": expected.len(),
            "correct_check_ins": correct.len(),
            "check_in_precision": ratio(correct.len(), present.len()),
            "check_in_recall": ratio(correct.len(), expected.len()),
            "false_check_ins": false_check_ins.len(),
            "false_check_in_details": false_check_ins,
            "stranger_check_ins": stranger_check_ins,
            "unexpected_attendance": unexpected,
            "duplicate_deductions": duplicate_deductions,
            "parked_check_ins": x.parked,
            "missed_students": missed,
            "expected_absences": expected_absent.len(),
            "correct_absences": absences_correct,
            "strangers_in_scenario": strangers_seen.len(),
        },
        "frames": x.frames,
        "faces": x.rec.faces,
        "frame_ms": {
            "p50": percentile(&sorted, 0.5),
            "p90": percentile(&sorted, 0.9),
            "p99": percentile(&sorted, 0.99),
        },
        "frame_to_decision_ms": {
            "p50": x.rec.frame_to_decision_ms.percentile(0.5),
            "p99": x.rec.frame_to_decision_ms.percentile(0.99),
        },
        "fps": if x.frames_secs > 0.0 { (x.frames as f64 / x.frames_secs * 10.0).round() / 10.0 } else { 0.0 },
        "seconds": round3(x.total_secs),
    }))
}

/// A readable report of a run's summary (the `--json` output is the summary itself).
pub fn report(s: &Value) -> String {
    use std::fmt::Write;
    let str_of = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    let mut o = String::new();
    let _ = writeln!(
        o,
        "scenario {} (school {})",
        str_of(&s["scenario"]),
        str_of(&s["school"])
    );
    let _ = writeln!(o, "\ncheck-ins:");
    for c in s["check_ins"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  {:<20} {:<16} {:<8} {:<17} {} (similarity {:.3}, camera {})",
            str_of(&c["student"]),
            str_of(&c["lesson"]),
            str_of(&c["status"]),
            str_of(&c["ledger"]),
            str_of(&c["local_time"]),
            c["similarity"].as_f64().unwrap_or(0.0),
            str_of(&c["camera"]),
        );
    }
    let _ = writeln!(o, "\ndeductions:");
    for d in s["deductions"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  {:<20} {:<16} {} lesson(s) from {}",
            str_of(&d["student"]),
            str_of(&d["lesson"]),
            str_of(&d["lessons"]),
            str_of(&d["package"])
        );
    }
    let _ = writeln!(o, "\nabsences:");
    for a in s["absences"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  {:<20} {:<16} {}",
            str_of(&a["student"]),
            str_of(&a["lesson"]),
            str_of(&a["status"])
        );
    }
    let _ = writeln!(o, "\nalerts:");
    for a in s["alerts"].as_array().into_iter().flatten() {
        let _ = writeln!(o, "  {:<16} {}", str_of(&a["kind"]), str_of(&a["message"]));
    }
    let _ = writeln!(
        o,
        "\nreview items: {}   unknown tracks: {} ({} visitor(s))",
        s["review_items"].as_array().map_or(0, |a| a.len()),
        s["unknown_tracks"].as_array().map_or(0, |a| a.len()),
        str_of(&s["unknown_visitors"])
    );
    if let Some(n) = s["notifications"].as_array() {
        let _ = writeln!(o, "\nnotifications ({}):", n.len());
        for x in n {
            let _ = writeln!(
                o,
                "  {:<18} {:<20} -> {} ({}, {}): {}",
                str_of(&x["kind"]),
                str_of(&x["student"]),
                str_of(&x["to"]),
                str_of(&x["channel"]),
                str_of(&x["language"]),
                str_of(&x["subject"]),
            );
        }
    }
    let sc = &s["score"];
    let _ = writeln!(
        o,
        "\nscore: precision {}  recall {}  false check-ins {}  duplicate deductions {}  missed {}  absences {}/{}",
        str_of(&sc["check_in_precision"]),
        str_of(&sc["check_in_recall"]),
        str_of(&sc["false_check_ins"]),
        str_of(&sc["duplicate_deductions"]),
        sc["missed_students"].as_array().map_or(0, |a| a.len()),
        str_of(&sc["correct_absences"]),
        str_of(&sc["expected_absences"]),
    );
    let _ = writeln!(
        o,
        "frames {}  ({} fps; frame p50 {} ms, p99 {} ms)  total {} s",
        str_of(&s["frames"]),
        str_of(&s["fps"]),
        str_of(&s["frame_ms"]["p50"]),
        str_of(&s["frame_ms"]["p99"]),
        str_of(&s["seconds"])
    );
    o
}
