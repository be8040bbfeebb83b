//! The scenario's ledger and gallery: school, people, timetable and packages from the
//! scenario file, every student enrolled through the real enrollment path.

use super::ms_to_utc;
use crate::cmd_vision::VisionOpts;
use anyhow::{anyhow, Context};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rollcall_camera_sim::Simulation;
use rollcall_domain::ledger::{AbsencePolicy, Charge, ClassPolicy, LessonTiming, SchoolPolicy};
use rollcall_domain::privacy::{ConsentRecord, FACE_CONSENT};
use rollcall_domain::{StudentId, TenantId};
use rollcall_gallery::vault::Keyring;
use rollcall_ledger::{
    NewClass, NewGuardian, NewLesson, NewPackage, NewStudent, NotifySettings, StaffRecipient, Store,
};
use rollcall_runtime::enrollment::{self as enroll, EnrollConfig, EnrollRequest};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

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
                capacity: None,
                room_id: None,
                kind: Default::default(),
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
