//! `rollcall bench pipeline`: the streaming pipeline's speed.
//!
//! 1. **The fixture clip**, one thread, as fast as possible (decode → detect → quality → align
//!    → embed → gallery search → tracker → matcher), at 10 fps of media time as `watch` reads a
//!    file; and, in the same run, the Python reference (`benches/pipeline_reference.py`:
//!    OpenCV decode, onnxruntime, numpy search) on the same models and clip, with the ratio.
//! 2. **Live camera-sim streams** with 1, 2 and 4 cameras at 10 fps each, in real time: every
//!    camera thread decodes its JPEG frames (rendered beforehand from scenario (a)) at the
//!    camera's rate and hands them to the inference pool (latest frame wins); the matcher writes
//!    accepted check-ins to the ledger. Reported: frames offered / processed / dropped, faces/s,
//!    capture→matched latency of every frame, frame→decision latency of the frames that
//!    decided a track, first frame→committed attendance row, and memory (RSS at start and end,
//!    peak).
//!
//! The gallery is scenario (a)'s: its six students enrolled through the real enrollment path.

use crate::cmd_scenario::{self, Prepared};
use crate::cmd_sim;
use crate::cmd_vision::VisionOpts;
use anyhow::{bail, Context};
use rollcall_capture::{open_source, SourceOptions};
use rollcall_domain::clock::{Clock, SystemClock};
use rollcall_domain::{CameraId, CampusId};
use rollcall_runtime::pool::{Analyzed, InferencePool, Job, PoolOptions};
use rollcall_runtime::{
    Committed, DecisionSink, FaceAnalyzer, FrameFaces, GroupPort, Latencies, LedgerWriter,
    Recognizer, RetryPolicy,
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct PipelineBenchOpts {
    pub fixtures: PathBuf,
    pub scenario: PathBuf,
    /// Seconds of each live run.
    pub seconds: f64,
    /// Camera counts of the live runs.
    pub cameras: Vec<usize>,
    /// Inference workers (default: the cores).
    pub workers: Option<usize>,
    pub fps: u32,
    /// Frames of scenario (a) each live camera cycles through.
    pub frames: usize,
    pub no_reference: bool,
}

fn mem_mb(field: &str) -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let l = s.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = l.split_whitespace().nth(1)?.parse().ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}

/// CPU time (user + system, all threads) this process has used so far, in seconds.
fn cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // fields after the command name (which may hold spaces) in parentheses
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

fn pct(l: &Latencies) -> Value {
    json!({"p50": l.percentile(0.5), "p99": l.percentile(0.99), "n": l.count})
}

pub async fn run(v: &VisionOpts, o: &PipelineBenchOpts) -> anyhow::Result<Value> {
    let sim = cmd_sim::load(v, &o.scenario)?;
    let tmp = tempfile::tempdir().context("temporary data directory")?;
    let Prepared {
        root,
        store,
        tenant,
        pipeline,
        gallery,
        ..
    } = cmd_scenario::prepare(v, &sim, tmp.path()).await?;
    let mut rec = Recognizer::new(pipeline, Arc::new(gallery), tenant)?
        .with_tracker_config(v.tracker_config()?)?;

    // 1. the clip, one thread
    let clip = o.fixtures.join("video/short_hamilton_clip.mp4");
    let clip_cam = CameraId::new("clip").expect("valid id");
    let campus = CampusId::new("downtown").expect("valid id");
    rec.add_camera(clip_cam.clone(), campus.clone())?;
    let mut src = open_clip(&clip)?;
    let (mut frames, faces0) = (0u64, rec.faces);
    let mut next_pos = 0.0f64;
    let start = SystemClock.now();
    let t = Instant::now();
    while let Some(cf) = src.read()? {
        let pos = cf.position.map(|p| p.as_secs_f64()).unwrap_or(0.0);
        if pos + 1e-6 < next_pos {
            continue;
        }
        next_pos = pos + 1.0 / o.fps as f64;
        let at = start + chrono::Duration::microseconds((pos * 1e6) as i64);
        rec.on_frame(&clip_cam, &campus, at, &cf.frame, cf.captured_instant)
            .await?;
        frames += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    src.close();
    let rust_fps = frames as f64 / secs;
    let faces = rec.faces - faces0;
    let mut clip_json = json!({
        "clip": clip,
        "frames": frames,
        "faces": faces,
        "seconds": (secs * 1000.0).round() / 1000.0,
        "fps": (rust_fps * 10.0).round() / 10.0,
        "faces_per_s": ((faces as f64 / secs) * 10.0).round() / 10.0,
    });
    // 1b. the clip as the product runs a camera: capture (demux, decode, and colour conversion
    // of the sampled frames only) on its own thread, inference (one ONNX thread) on this one
    let piped = clip_with_capture_thread(&mut rec, &clip, &campus, o.fps).await?;
    let piped_fps = piped["fps"].as_f64().unwrap_or(0.0);
    clip_json["capture_thread"] = piped;
    // 1c. the clip as serve runs one busy camera: capture thread, every inference worker on
    // the camera's successive frames (two per detector call), results released in order
    let workers = o.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let pooled = clip_pooled(v, &mut rec, &clip, &campus, o.fps, workers).await?;
    let pooled_fps = pooled["fps"].as_f64().unwrap_or(0.0);
    clip_json["pooled"] = pooled;
    if !o.no_reference {
        let photos: Vec<(String, PathBuf)> = sim
            .scenario
            .file
            .students
            .iter()
            .flat_map(|s| {
                s.enrollment_photos
                    .iter()
                    .map(|p| (s.id.clone(), p.path.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let r = python_reference(v, &clip, o.fps, &photos)?;
        let py_fps = r["fps"].as_f64().unwrap_or(0.0);
        clip_json["reference"] = r;
        if py_fps > 0.0 {
            clip_json["speedup_vs_reference"] = json!((rust_fps / py_fps * 100.0).round() / 100.0);
            clip_json["capture_thread"]["speedup_vs_reference"] =
                json!((piped_fps / py_fps * 100.0).round() / 100.0);
            clip_json["pooled"]["speedup_vs_reference"] =
                json!((pooled_fps / py_fps * 100.0).round() / 100.0);
        }
    }

    // 2. live camera-sim streams
    let cam_id = sim
        .renderer
        .camera_ids()
        .into_iter()
        .next()
        .context("the scenario has no camera")?;
    let mut jpegs = Vec::new();
    for (_, frame, _) in sim
        .renderer
        .stream(&cam_id, Default::default())?
        .take(o.frames.max(1))
    {
        jpegs.push(rollcall_camera_sim::encode_jpeg(&frame, 85)?);
    }
    let jpegs = Arc::new(jpegs);
    let mut live = Vec::new();
    for &n in &o.cameras {
        live.push(
            live_run(
                v,
                &mut rec,
                &store,
                tmp.path(),
                jpegs.clone(),
                n,
                workers,
                o,
            )
            .await?,
        );
    }
    store.close().await;
    root.close().await;
    Ok(json!({
        "machine": crate::bench_host::machine(),
        "workers": workers,
        "clip": clip_json,
        "live": live,
        "memory_mb": {"rss": mem_mb("VmRSS:"), "peak": mem_mb("VmHWM:")},
    }))
}

/// Opens the fixture clip as a frame source.
fn open_clip(clip: &Path) -> anyhow::Result<Box<dyn rollcall_capture::FrameSource>> {
    let mut src = open_source(&clip.display().to_string(), &SourceOptions::default())
        .with_context(|| format!("opening {}", clip.display()))?;
    src.open()
        .with_context(|| format!("opening {}", clip.display()))?;
    Ok(src)
}

/// The clip through a capture thread (as `watch` and `serve` run a source: decode never waits
/// for inference) feeding inference on the caller's thread, sampled at `fps` of media time.
/// Frames between samples are grabbed without colour conversion
/// ([`rollcall_capture::FrameSource::read_or_skip`]). Nothing is dropped: the hand-over
/// channel is bounded and the capture thread waits for room.
async fn clip_with_capture_thread(
    rec: &mut Recognizer,
    clip: &std::path::Path,
    campus: &CampusId,
    fps: u32,
) -> anyhow::Result<Value> {
    let cam = CameraId::new("clip-capture-thread").expect("valid id");
    rec.add_camera(cam.clone(), campus.clone())?;
    let mut src = open_clip(clip)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<rollcall_capture::CapturedFrame>(2);
    let step = 1.0 / fps.max(1) as f64;
    let t = Instant::now();
    let capture = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut next_pos = 0.0f64;
        let mut want = |pos: Option<Duration>| {
            let pos = pos.map(|p| p.as_secs_f64()).unwrap_or(0.0);
            if pos + 1e-6 < next_pos {
                return false;
            }
            next_pos = pos + step;
            true
        };
        while let Some(f) = src.read_or_skip(&mut want)? {
            if let Some(f) = f {
                if tx.blocking_send(f).is_err() {
                    break;
                }
            }
        }
        src.close();
        Ok(())
    });
    let (mut frames, faces0) = (0u64, rec.faces);
    let start = SystemClock.now();
    while let Some(cf) = rx.recv().await {
        let pos = cf.position.map(|p| p.as_secs_f64()).unwrap_or(0.0);
        let at = start + chrono::Duration::microseconds((pos * 1e6) as i64);
        rec.on_frame(&cam, campus, at, &cf.frame, cf.captured_instant)
            .await?;
        frames += 1;
    }
    capture
        .join()
        .map_err(|_| anyhow::anyhow!("capture thread panicked"))??;
    let secs = t.elapsed().as_secs_f64();
    let faces = rec.faces - faces0;
    Ok(json!({
        "frames": frames,
        "faces": faces,
        "seconds": (secs * 1000.0).round() / 1000.0,
        "fps": ((frames as f64 / secs) * 10.0).round() / 10.0,
        "faces_per_s": ((faces as f64 / secs) * 10.0).round() / 10.0,
    }))
}

/// The clip through a capture thread and an inference pool of `workers` one-thread analyzers
/// all working on this one camera ([`PoolOptions`]: `per_camera` = every worker, two frames
/// per call, so two successive frames share one detector call), sampled at `fps` of media
/// time. Nothing is dropped (`submit_wait`); results reach the tracker in capture order.
/// Reports frames/s, CPU use and the capture→result and frame→decision latencies.
async fn clip_pooled(
    v: &VisionOpts,
    rec: &mut Recognizer,
    clip: &std::path::Path,
    campus: &CampusId,
    fps: u32,
    workers: usize,
) -> anyhow::Result<Value> {
    let cam = CameraId::new("clip-pooled").expect("valid id");
    rec.add_camera(cam.clone(), campus.clone())?;
    let mut one = v.clone();
    one.threads = 1;
    let analyzers = (0..workers.max(1))
        .map(|_| one.open().map(FaceAnalyzer))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Analyzed<FrameFaces>>(16);
    // `per_camera` counts frames: every worker may hold a pair of the camera's frames
    let opts = PoolOptions {
        max_batch: 2,
        per_camera: 2 * workers.max(1),
        queue_depth: 2 * workers.max(1),
    };
    let pool = Arc::new(InferencePool::start_with(analyzers, 1, opts, tx)?);
    let mut src = open_clip(clip)?;
    let step = 1.0 / fps.max(1) as f64;
    let submitted = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let t = Instant::now();
    let cpu_start = cpu_seconds();
    let start = SystemClock.now();
    let capture = {
        let (pool, submitted, finished) = (pool.clone(), submitted.clone(), finished.clone());
        std::thread::spawn(move || -> anyhow::Result<()> {
            let mut next_pos = 0.0f64;
            let mut want = |pos: Option<Duration>| {
                let pos = pos.map(|p| p.as_secs_f64()).unwrap_or(0.0);
                if pos + 1e-6 < next_pos {
                    return false;
                }
                next_pos = pos + step;
                true
            };
            let r = (|| {
                while let Some(f) = src.read_or_skip(&mut want)? {
                    if let Some(f) = f {
                        let pos = f.position.map(|p| p.as_secs_f64()).unwrap_or(0.0);
                        let job = Job {
                            frame: f.frame,
                            main: None,
                            at: start + chrono::Duration::microseconds((pos * 1e6) as i64),
                            captured: f.captured_instant,
                        };
                        if !pool.submit_wait(0, job) {
                            break;
                        }
                        submitted.fetch_add(1, Ordering::SeqCst);
                    }
                }
                anyhow::Ok(())
            })();
            src.close();
            finished.store(true, Ordering::SeqCst);
            r
        })
    };
    let (mut frames, faces0) = (0u64, rec.faces);
    let mut frame_lat = Latencies::default();
    let mut decision_lat = Latencies::default();
    loop {
        if finished.load(Ordering::SeqCst) && frames == submitted.load(Ordering::SeqCst) {
            break;
        }
        let a = match tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
            Ok(Some(a)) => a,
            Ok(None) => bail!("the inference pool stopped"),
            Err(_) => continue,
        };
        let ff = a.result.map_err(|e| anyhow::anyhow!("inference: {e}"))?;
        let out = rec
            .on_analyzed(&cam, campus, a.at, ff.faces, a.captured)
            .await?;
        frames += 1;
        frame_lat.push(a.captured.elapsed().as_secs_f64() * 1e3);
        if !out.decisions.is_empty() {
            decision_lat.push(a.captured.elapsed().as_secs_f64() * 1e3);
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_start.zip(cpu_seconds()).map(|(a, b)| b - a);
    capture
        .join()
        .map_err(|_| anyhow::anyhow!("capture thread panicked"))??;
    drop(rx);
    if let Ok(p) = Arc::try_unwrap(pool) {
        p.stop();
    }
    let faces = rec.faces - faces0;
    Ok(json!({
        "workers": workers,
        "frames": frames,
        "faces": faces,
        "seconds": (secs * 1000.0).round() / 1000.0,
        "fps": ((frames as f64 / secs) * 10.0).round() / 10.0,
        "faces_per_s": ((faces as f64 / secs) * 10.0).round() / 10.0,
        "cpu_cores": cpu.map(|c| (c / secs * 100.0).round() / 100.0),
        "frame_ms": pct(&frame_lat),
        "frame_to_decision_ms": pct(&decision_lat),
    }))
}

#[allow(clippy::too_many_arguments)]
async fn live_run(
    v: &VisionOpts,
    rec: &mut Recognizer,
    store: &rollcall_ledger::Store,
    data: &Path,
    jpegs: Arc<Vec<Vec<u8>>>,
    n: usize,
    workers: usize,
    o: &PipelineBenchOpts,
) -> anyhow::Result<Value> {
    rec.reset_engine()?;
    let cams: Vec<CameraId> = (0..n)
        .map(|i| CameraId::new(format!("sim-{n}-{i}")).expect("valid id"))
        .collect();
    let campus = CampusId::new("downtown").expect("valid id");
    for c in &cams {
        rec.add_camera(c.clone(), campus.clone())?;
    }
    let rss_start = mem_mb("VmRSS:");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Analyzed<FrameFaces>>(64);
    let mut one = v.clone();
    one.threads = 1;
    let analyzers = (0..workers.max(1))
        .map(|_| one.open().map(FaceAnalyzer))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let pool = Arc::new(InferencePool::start(analyzers, n, n, tx)?);
    // the product's decision sink and ledger writer (group commit)
    let (port, group) = GroupPort::spawn(store.clone());
    let mut sink = DecisionSink::new(
        store.clone(),
        LedgerWriter::new(port, RetryPolicy::default()),
        data.to_path_buf(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let offered = Arc::new(AtomicU64::new(0));
    let period = Duration::from_secs_f64(1.0 / o.fps.max(1) as f64);
    let mut threads = Vec::new();
    for c in 0..n {
        let (pool, stop, offered, jpegs) =
            (pool.clone(), stop.clone(), offered.clone(), jpegs.clone());
        threads.push(std::thread::spawn(move || {
            // cameras start out of phase, as real ones do
            let mut next = Instant::now() + period.mul_f64(c as f64 / n as f64);
            let mut i = c * 7;
            while !stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now < next {
                    std::thread::sleep(next - now);
                }
                next += period;
                let captured = Instant::now();
                let Ok(frame) = rollcall_vision::decode::decode_bytes(
                    &jpegs[i % jpegs.len()],
                    &Default::default(),
                ) else {
                    continue;
                };
                i += 1;
                offered.fetch_add(1, Ordering::Relaxed);
                pool.submit(
                    c,
                    Job {
                        frame,
                        main: None,
                        at: SystemClock.now(),
                        captured,
                    },
                );
            }
        }));
    }
    let mut frame_lat = Latencies::default();
    let mut decision_lat = Latencies::default();
    let commit_lat = Arc::new(std::sync::Mutex::new(Latencies::default()));
    let (mut processed, mut faces, mut decisions, mut check_ins) = (0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    let cpu_start = cpu_seconds();
    let run_for = Duration::from_secs_f64(o.seconds);
    // resident memory every 30 s (flat memory over a long run)
    let mut rss_samples: Vec<(u64, Option<f64>)> = vec![(0, mem_mb("VmRSS:"))];
    while started.elapsed() < run_for {
        let t = started.elapsed().as_secs();
        if t >= rss_samples.last().map_or(0, |s| s.0) + 30 {
            rss_samples.push((t, mem_mb("VmRSS:")));
        }
        let a = match tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            Ok(Some(a)) => a,
            Ok(None) => bail!("the inference pool stopped"),
            Err(_) => continue,
        };
        let ff = a.result.map_err(|e| anyhow::anyhow!("inference: {e}"))?;
        faces += ff.faces.len() as u64;
        let out = rec
            .on_analyzed(&cams[a.camera], &campus, a.at, ff.faces, a.captured)
            .await?;
        sink.observe(&out.tracks, &out.qualities, ff.crops);
        processed += 1;
        let mut ds = rec.engine.tick(SystemClock.now());
        ds.extend(out.decisions);
        frame_lat.push(a.captured.elapsed().as_secs_f64() * 1e3);
        if !ds.is_empty() {
            decision_lat.push(a.captured.elapsed().as_secs_f64() * 1e3);
        }
        for d in ds {
            decisions += 1;
            if let Some(h) = sink.route(&d).await {
                check_ins += 1;
                let (lat, first_seen) = (commit_lat.clone(), d.first_seen);
                tokio::spawn(async move {
                    if let Ok(Committed::Recorded(_)) = h.await {
                        let us = (SystemClock.now() - first_seen)
                            .num_microseconds()
                            .unwrap_or(0);
                        lat.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(us as f64 / 1e3);
                    }
                });
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_start.zip(cpu_seconds()).map(|(a, b)| b - a);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    sink.flush().await;
    drop(sink);
    let _ = group.await;
    let commit_lat = commit_lat.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let dropped: u64 = (0..n).map(|c| pool.counters(c).dropped).sum();
    drop(rx);
    if let Ok(p) = Arc::try_unwrap(pool) {
        p.stop();
    }
    Ok(json!({
        "cameras": n,
        "fps_per_camera": o.fps,
        "seconds": (secs * 10.0).round() / 10.0,
        "frames_offered": offered.load(Ordering::Relaxed),
        "frames_processed": processed,
        "frames_dropped": dropped,
        "processed_fps": ((processed as f64 / secs) * 10.0).round() / 10.0,
        "faces_per_s": ((faces as f64 / secs) * 10.0).round() / 10.0,
        // cores busy on average (capture threads' JPEG decoding included) and CPU per frame
        "cpu_cores": cpu.map(|c| (c / secs * 100.0).round() / 100.0),
        "cpu_ms_per_frame": cpu.map(|c| (c * 1e3 / processed.max(1) as f64 * 10.0).round() / 10.0),
        "decisions": decisions,
        "check_ins": check_ins,
        "frame_ms": pct(&frame_lat),
        "frame_to_decision_ms": pct(&decision_lat),
        "first_frame_to_commit_ms": pct(&commit_lat),
        "rss_mb": {"start": rss_start, "end": mem_mb("VmRSS:"), "peak": mem_mb("VmHWM:")},
        "rss_every_30s_mb": rss_samples.iter().map(|(t, m)| json!([t, m])).collect::<Vec<_>>(),
    }))
}

/// Runs `benches/pipeline_reference.py` (same models, clip and sampling; OpenCV decode,
/// onnxruntime, numpy search over the same students' enrollment photos).
fn python_reference(
    v: &VisionOpts,
    clip: &Path,
    fps: u32,
    photos: &[(String, PathBuf)],
) -> anyhow::Result<Value> {
    let mut args = vec![
        "--clip".to_string(),
        clip.display().to_string(),
        "--fps".into(),
        fps.to_string(),
    ];
    for (id, p) in photos {
        args.push("--enroll".into());
        args.push(format!("{id}={}", p.display()));
    }
    crate::bench_host::run_reference(v, "pipeline_reference.py", &args)
}
