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

mod score;
mod setup;

use crate::cmd_sim;
use crate::cmd_vision::VisionOpts;
use anyhow::{anyhow, Context};
use chrono::{DateTime, Duration, TimeZone, Utc};
use rollcall_domain::ledger::LessonTiming;
use rollcall_domain::matcher::debounce::Decision;
use rollcall_domain::{CameraId, CampusId};
use rollcall_notify::{Channels, Dispatcher, DispatcherConfig, LogChannel, RecordingSink};
use rollcall_runtime::{Committed, DecisionSink, GroupPort, LedgerWriter, Recognizer, RetryPolicy};
use rollcall_vision::pipeline::Shot;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub(crate) use score::ledger_dump;
pub use score::report;
use score::{summarize, SummaryExtras, TruthVotes};
pub use setup::{prepare, prepare_in, Prepared};

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

pub(super) fn ms_to_utc(ms: i64) -> anyhow::Result<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| anyhow!("time {ms} ms is out of range"))
}

pub async fn run(v: &VisionOpts, scenario: &Path, opts: &RunOptions) -> anyhow::Result<Value> {
    let t_start = Instant::now();
    let tracker_config = v.tracker_config()?;
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
    let mut rec = Recognizer::new(pipeline, std::sync::Arc::new(gallery), tenant)?
        .with_tracker_config(tracker_config)?;
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
