//! `rollcall watch SOURCE`: the streaming pipeline on one source against an existing data
//! directory, printing one JSON line per track decision and a final summary line.
//!
//! Finite sources (files, image folders) are read frame by frame with nothing dropped, at the
//! `--fps` rate of media time (default 10), as fast as the machine allows; the frame timestamps
//! (media position from `--start`) drive the tracker and the debounced matcher, so a run is
//! reproducible. Live sources (rtsp/http/device) go through the capture worker: latest frame
//! wins, the wall clock is the time. `watch` never writes to the ledger: it is how an
//! integrator checks a camera and how the speed of the whole pipeline is measured.

use crate::cmd_gallery::{dim_of, open_gallery, open_school, DataOpts};
use crate::cmd_vision::VisionOpts;
use anyhow::{anyhow, Context};
use chrono::{DateTime, Duration, Utc};
use rollcall_capture::{open_source, SourceOptions};
use rollcall_domain::matcher::debounce::Decision;
use rollcall_domain::{CameraId, CampusId, TenantId};
use rollcall_runtime::Recognizer;
use serde_json::{json, Value};
use std::time::Instant;

fn line(d: &Decision) -> Value {
    serde_json::to_value(d.line()).unwrap_or(Value::Null)
}

#[allow(clippy::too_many_arguments)]
pub async fn run(
    v: &VisionOpts,
    d: &DataOpts,
    source: &str,
    camera: &str,
    campus: &str,
    fps: f64,
    start: Option<&str>,
    emit: &mut dyn FnMut(&Value),
) -> anyhow::Result<Value> {
    let camera = CameraId::new(camera).map_err(|e| anyhow!("--camera: {e}"))?;
    let campus = CampusId::new(campus).map_err(|e| anyhow!("--campus: {e}"))?;
    let school = open_school(d, false).await?;
    let tenant = TenantId::new(school.school_id()).map_err(|e| anyhow!("school id: {e}"))?;
    let clock = school.clock();
    school.close().await;
    let p = v.open()?;
    let gallery = open_gallery(d, dim_of(&p)).await?;
    let mut r = Recognizer::new(p, std::sync::Arc::from(gallery), tenant)?
        .with_tracker_config(v.tracker_config()?)?;
    r.add_camera(camera.clone(), campus.clone())?;
    let start = match start {
        Some(s) => DateTime::parse_from_rfc3339(s)
            .with_context(|| format!("--start {s:?} is not an RFC 3339 time"))?
            .with_timezone(&Utc),
        None => clock.now(),
    };
    let options = SourceOptions {
        clock: clock.clone(),
        ..SourceOptions::default()
    };
    let mut src = open_source(source, &options).with_context(|| format!("opening {source}"))?;
    src.open().with_context(|| format!("opening {source}"))?;
    let live = src.is_live();
    let t0 = Instant::now();
    let mut decisions = 0u64;
    let step = if fps > 0.0 { 1.0 / fps } else { 0.0 };
    let mut next_pos = 0.0f64;
    let mut last_at = start;
    let mut read_frames = 0u64;
    loop {
        let Some(cf) = src.read().with_context(|| format!("reading {source}"))? else {
            break;
        };
        read_frames += 1;
        let at = match (live, cf.position) {
            (false, Some(pos)) => {
                let pos = pos.as_secs_f64();
                if pos + 1e-6 < next_pos {
                    continue; // above the --fps rate of media time
                }
                next_pos = pos + step;
                start + Duration::microseconds((pos * 1e6) as i64)
            }
            _ => cf.captured_at,
        };
        last_at = at;
        for dcs in r
            .on_frame(&camera, &campus, at, &cf.frame, cf.captured_instant)
            .await?
        {
            decisions += 1;
            emit(&line(&dcs));
        }
    }
    src.close();
    for dcs in r.engine.finish(last_at + Duration::seconds(1)) {
        decisions += 1;
        emit(&line(&dcs));
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok(json!({
        "frames": r.frames,
        "frames_read": read_frames,
        "faces": r.faces,
        "decisions": decisions,
        "fps": if secs > 0.0 { (r.frames as f64 / secs * 10.0).round() / 10.0 } else { 0.0 },
        "seconds": (secs * 1000.0).round() / 1000.0,
        "frame_to_decision_ms": {
            "p50": r.frame_to_decision_ms.percentile(0.5),
            "p99": r.frame_to_decision_ms.percentile(0.99),
        },
    }))
}
