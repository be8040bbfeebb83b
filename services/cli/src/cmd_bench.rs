//! `rollcall bench …`: benchmarks that print measured figures as JSON.
//!
//! `bench vision` times every stage of the still-image pipeline on the real models and, in the
//! same run, the Python reference (`benches/vision_reference.py`: onnxruntime + numpy + OpenCV on
//! the same models, frame and thread count), and prints the ratios.

use crate::bench_host::{machine, run_reference};
use crate::cmd_vision::{load, VisionOpts};
use anyhow::{bail, Context};
use rollcall_domain::Frame;
use rollcall_vision::decode::encode_png;
use rollcall_vision::pipeline::EmbedPolicy;
use rollcall_vision::FacePipeline;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchCmd {
    /// Stages of the vision pipeline, with the Python reference in the same run.
    Vision {
        /// Timed iterations per stage (after warm-up).
        #[arg(long, default_value_t = 30)]
        iters: usize,
        /// Photo whose largest face is placed in the 640x360 benchmark frame.
        #[arg(long)]
        photo: Option<PathBuf>,
        #[arg(
            long,
            env = "ROLLCALL_FIXTURES_DIR",
            default_value = "../shared/fixtures"
        )]
        fixtures: PathBuf,
        /// Skip the Python reference.
        #[arg(long)]
        no_reference: bool,
        /// JSON output (the only format; accepted for symmetry with the other benchmarks).
        #[arg(long)]
        json: bool,
    },
    /// Embedded gallery: search p50/p99 and recall@1 against brute force, memory, insert rate;
    /// with `--qdrant-url` or `--qdrant-bin`, a Qdrant server too, on the same templates and
    /// probes in the same run.
    Gallery {
        /// Gallery sizes (templates), comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
        sizes: Vec<usize>,
        #[arg(long, default_value_t = 1000)]
        queries: usize,
        /// HNSW ef at search time.
        #[arg(long)]
        ef: Option<usize>,
        /// Where the temporary galleries go.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The memory-lean layout: 16-bit vectors, memory-mapped, searched directly.
        #[arg(long)]
        lean: bool,
        /// Measure instead the memory this process needs to serve the existing embedded gallery
        /// in DIR: open it, run `--queries` searches, print resident memory before and after
        /// as JSON. `bench gallery` runs itself this way, in a fresh process, for each size.
        #[arg(long, value_name = "DIR")]
        footprint: Option<PathBuf>,
        /// Vector size of the gallery measured with `--footprint` (default 128).
        #[arg(long, requires = "footprint")]
        dim: Option<usize>,
        /// Also measure this Qdrant server (gRPC URL), one fresh collection per size.
        #[arg(long, conflicts_with = "qdrant_bin")]
        qdrant_url: Option<String>,
        /// The server's pid on this machine, for its resident memory (with --qdrant-url).
        #[arg(long, requires = "qdrant_url")]
        qdrant_pid: Option<u32>,
        /// Also measure a Qdrant server started from this binary (e.g. ../shared/tools/qdrant)
        /// on loopback, with its resident memory; stopped at the end.
        #[arg(long)]
        qdrant_bin: Option<PathBuf>,
        #[arg(long, env = "QDRANT_API_KEY", hide_env_values = true)]
        qdrant_api_key: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The streaming pipeline: the fixture clip on one thread (with the Python reference in the
    /// same run) and live camera-sim streams with 1, 2 and 4 cameras through the inference pool.
    Pipeline {
        #[arg(
            long,
            env = "ROLLCALL_FIXTURES_DIR",
            default_value = "../shared/fixtures"
        )]
        fixtures: PathBuf,
        /// Scenario whose students form the gallery and whose first camera is rendered.
        #[arg(long, default_value = "camera-sim/scenarios/afternoon.toml")]
        scenario: PathBuf,
        /// Seconds of each live run (600 for the flat-memory check).
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
        cameras: Vec<usize>,
        /// Inference workers (default: the cores).
        #[arg(long)]
        workers: Option<usize>,
        #[arg(long, default_value_t = 10)]
        fps: u32,
        /// Frames of the scenario each live camera cycles through.
        #[arg(long, default_value_t = 150)]
        frames: usize,
        #[arg(long)]
        no_reference: bool,
        #[arg(long)]
        json: bool,
    },
    /// Crash consistency of `serve`: a scenario played live to a serve child that is killed
    /// with SIGKILL at seeded random moments and restarted, then checked against the ground
    /// truth (lost or doubled check-ins, deductions and notices). Exit status 1 when anything
    /// was lost or doubled.
    Crash {
        scenario: PathBuf,
        /// Kills (each followed by a restart on the same data).
        #[arg(long, default_value_t = 20)]
        cycles: usize,
        /// PostgreSQL server (admin URL) for the ledger: a scratch database is made there and
        /// dropped at the end (default: SQLite in the run's data directory).
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Inference workers of the serve child.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Keep the run's data directory and serve log here.
        #[arg(long)]
        keep: Option<PathBuf>,
        /// A Qdrant server's gRPC URL: the gallery is a collection of the run's own there
        /// (deleted at the end) instead of the embedded one. Not read from `QDRANT_URL`. A
        /// cluster's nodes, comma-separated: each serve is given all of them, its own first.
        /// The collection's layout comes from QDRANT_SHARDS, QDRANT_REPLICATION_FACTOR and
        /// QDRANT_WRITE_CONSISTENCY_FACTOR.
        #[arg(long)]
        qdrant_url: Option<String>,
        /// serve processes sharing the day: the cameras are dealt out among them, each has a
        /// data directory of its own, all share the PostgreSQL database and the Qdrant
        /// server (both required above 1). Kills (--cycles) need a single serve.
        #[arg(long, default_value_t = 1)]
        serves: usize,
        /// Two streams per camera: faces found in the scenario's stream (`detect_url`), cut
        /// from a main stream of this size (`url`), WIDTHxHEIGHT.
        #[arg(long, value_parser = crate::cmd_sim::parse_size)]
        main_size: Option<(u32, u32)>,
        #[arg(long)]
        json: bool,
    },
    /// Check-ins per second and commit latency on SQLite (and PostgreSQL when given).
    Ledger {
        #[arg(long, default_value_t = 5000)]
        checkins: usize,
        /// Concurrent tasks reporting check-ins.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Also run through the group-commit writer with up to N check-ins per transaction
        /// (0: only one transaction per check-in).
        #[arg(long, default_value_t = 64)]
        group_commit: usize,
        /// Also run open loop: check-ins arriving at this many per second through group
        /// commit, latency from each one's scheduled arrival to its commit (0: skip).
        #[arg(long, default_value_t = 2000.0)]
        rate: f64,
        /// PostgreSQL group-commit batch writers (default: the library's, 1).
        #[arg(long)]
        pg_writers: Option<usize>,
        /// With parent notifications on: each student has a guardian with a phone, and every
        /// check-in also writes its arrival SMS to the outbox, in the same transaction.
        #[arg(long)]
        notify: bool,
        /// PostgreSQL URL to benchmark as well (default: DATABASE_URL when set).
        #[arg(long, env = "DATABASE_URL")]
        database_url: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Every face the detector finds in a scenario, matched to the person drawn there: quality
    /// and similarity to every enrolled student for each way of cutting the aligned crop
    /// (per face-size bin in the summary; one JSON line per face with `--out`).
    Sightings {
        scenario: PathBuf,
        /// Replace the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Replace every camera's stream size, WIDTHxHEIGHT.
        #[arg(long, value_parser = crate::cmd_sim::parse_size)]
        size: Option<(u32, u32)>,
        /// Two streams: find faces in the scenario's stream, cut them from one of this size.
        #[arg(long, value_parser = crate::cmd_sim::parse_size)]
        main_size: Option<(u32, u32)>,
        /// Crop kernels to compare (comma-separated).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "bilinear,bicubic,lanczos3"
        )]
        kernels: Vec<rollcall_vision::align::Resample>,
        /// Also cut each matched face on the renderer's exact landmarks.
        #[arg(long)]
        truth_landmarks: bool,
        /// Write one JSON line per face (with embeddings) here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also embed the enrollment photos reduced to these eye distances in pixels
        /// (comma-separated), listed in the `--out` file's first line.
        #[arg(long, value_delimiter = ',')]
        reduced_enrollment: Vec<f32>,
        #[arg(long)]
        json: bool,
    },
    /// How well the embedder separates people as faces shrink: every photo of DIR (one
    /// folder per person) reduced so its eyes are D pixels apart, placed in a camera-sized
    /// frame, found, gated and embedded again, and compared with every other photo at full size.
    Sizes {
        dir: PathBuf,
        /// Eye distances in pixels (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "6,8,10,12,16,24,40")]
        eyes: Vec<f32>,
        /// The frame each reduced photo is placed in, WIDTHxHEIGHT.
        #[arg(long, value_parser = crate::cmd_sim::parse_size, default_value = "640x360")]
        frame: (u32, u32),
        /// Horizontal motion blur over this many pixels of the reduced photo (0: none).
        #[arg(long, default_value_t = 0)]
        blur: u32,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(v: &VisionOpts, cmd: BenchCmd) -> anyhow::Result<Value> {
    match cmd {
        BenchCmd::Sizes {
            dir,
            eyes,
            frame,
            blur,
            json: _,
        } => crate::cmd_bench_sizes::run(
            v,
            &crate::cmd_bench_sizes::SizesOpts {
                dir,
                eyes,
                frame,
                blur,
            },
        ),
        BenchCmd::Sightings {
            scenario,
            seed,
            size,
            main_size,
            kernels,
            truth_landmarks,
            out,
            reduced_enrollment,
            json: _,
        } => crate::cmd_bench_sightings::run(
            v,
            &crate::cmd_bench_sightings::SightingsOpts {
                scenario,
                overrides: rollcall_camera_sim::Overrides {
                    seed,
                    size,
                    fps: None,
                },
                main_size,
                resample: kernels,
                truth_landmarks,
                out,
                reduced_enrollment,
            },
        ),
        BenchCmd::Crash {
            scenario,
            cycles,
            database_url,
            seed,
            workers,
            keep,
            qdrant_url,
            serves,
            main_size,
            json: _,
        } => {
            crate::cmd_bench_crash::run(
                v,
                &crate::cmd_bench_crash::CrashOpts {
                    scenario,
                    cycles,
                    database_url,
                    seed,
                    workers,
                    keep,
                    qdrant_url,
                    serves,
                    main_size,
                },
            )
            .await
        }
        BenchCmd::Pipeline {
            fixtures,
            scenario,
            seconds,
            cameras,
            workers,
            fps,
            frames,
            no_reference,
            json: _,
        } => {
            crate::cmd_bench_pipeline::run(
                v,
                &crate::cmd_bench_pipeline::PipelineBenchOpts {
                    fixtures,
                    scenario,
                    seconds,
                    cameras,
                    workers,
                    fps,
                    frames,
                    no_reference,
                },
            )
            .await
        }
        BenchCmd::Vision {
            iters,
            photo,
            fixtures,
            no_reference,
            json: _,
        } => {
            let photo = photo.unwrap_or_else(|| fixtures.join("faces/obama/1.jpg"));
            bench_vision(v, iters.max(3), &photo, !no_reference)
        }
        BenchCmd::Gallery {
            sizes: _,
            queries,
            ef: _,
            dir: _,
            lean,
            footprint: Some(gallery),
            dim,
            ..
        } => {
            let f = tokio::task::spawn_blocking(move || {
                crate::bench::gallery::serving_footprint(
                    &gallery,
                    dim.unwrap_or(128),
                    queries,
                    lean,
                )
            })
            .await??;
            Ok(serde_json::to_value(f)?)
        }
        BenchCmd::Gallery {
            sizes,
            queries,
            ef,
            dir,
            lean,
            footprint: None,
            dim: _,
            qdrant_url,
            qdrant_pid,
            qdrant_bin,
            qdrant_api_key,
            json: _,
        } => {
            let mut cfg = crate::bench::gallery::BenchConfig {
                sizes,
                queries,
                dir,
                lean,
                footprint_exe: std::env::current_exe().ok(),
                ..Default::default()
            };
            if let Some(ef) = ef {
                cfg.hnsw.ef_search = ef;
            }
            let embedded_cfg = cfg.clone();
            let r = tokio::task::spawn_blocking(move || {
                crate::bench::gallery::bench_gallery(&embedded_cfg)
            })
            .await??;
            // the server, when asked for: the same sizes, templates and probes
            let local = match &qdrant_bin {
                Some(bin) => Some(
                    rollcall_gallery::server::LocalQdrant::start(bin)
                        .with_context(|| format!("starting {}", bin.display()))?,
                ),
                None => None,
            };
            let target = match (&local, qdrant_url) {
                (Some(l), _) => Some(crate::bench::gallery::RemoteTarget {
                    url: l.url(),
                    api_key: None,
                    pid: Some(l.pid()),
                }),
                (None, Some(url)) => Some(crate::bench::gallery::RemoteTarget {
                    url,
                    api_key: qdrant_api_key,
                    pid: qdrant_pid,
                }),
                (None, None) => None,
            };
            let server = match &target {
                Some(t) => Some(crate::bench::gallery::bench_remote(&cfg, t).await?),
                None => None,
            };
            drop(local);
            Ok(json!({"machine": machine(), "gallery": r, "qdrant_server": server}))
        }
        BenchCmd::Ledger {
            checkins,
            concurrency,
            group_commit,
            rate,
            pg_writers,
            notify,
            database_url,
            json: _,
        } => {
            use crate::cmd_ledger::{bench_on, LedgerBench};
            let url = database_url.filter(|u| !u.is_empty());
            let mut out = Vec::new();
            for db in std::iter::once(None).chain(url.as_deref().map(Some)) {
                out.push(bench_on(db, checkins, LedgerBench::Each { concurrency }, notify).await?);
                if group_commit > 0 {
                    let max_batch = group_commit;
                    let writers = pg_writers;
                    let mode = LedgerBench::Grouped {
                        concurrency,
                        max_batch,
                        writers,
                    };
                    out.push(bench_on(db, checkins, mode, notify).await?);
                    if rate > 0.0 {
                        let mode = LedgerBench::Paced {
                            rate,
                            max_batch,
                            writers,
                        };
                        out.push(bench_on(db, checkins, mode, notify).await?);
                    }
                }
            }
            Ok(json!({ "ledger": out }))
        }
    }
}

/// Timing summary of `iters` runs of `f` after `warm` untimed ones, in milliseconds.
fn time<F: FnMut() -> anyhow::Result<()>>(iters: usize, mut f: F) -> anyhow::Result<Value> {
    for _ in 0..3 {
        f()?;
    }
    let mut ms = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        f()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let pct = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    Ok(json!({
        "median_ms": round3(pct(0.5)),
        "p90_ms": round3(pct(0.9)),
        "min_ms": round3(ms[0]),
        "iters": iters,
    }))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Resident and peak memory of this process, from /proc (MB).
pub fn memory_mb() -> (Option<f64>, Option<f64>) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| (kb / 1024.0 * 10.0).round() / 10.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A 640x360 frame holding the photo's largest face at lobby-camera size (about 90 px tall).
fn bench_frame(p: &mut FacePipeline, photo: &Path) -> anyhow::Result<Frame> {
    let src = load(photo)?;
    let face = p
        .largest_face(&src)?
        .with_context(|| format!("no face in {}", photo.display()))?;
    let b = face.observation.bbox;
    // Scale so the face box is ~90 px high, and centre it in a grey 640x360 canvas.
    let s = 90.0 / b.height().max(1.0);
    let (sw, sh) = (
        (src.width() as f32 * s).round().max(1.0) as u32,
        (src.height() as f32 * s).round().max(1.0) as u32,
    );
    let img = image::RgbImage::from_raw(src.width(), src.height(), src.rgb().to_vec())
        .context("frame buffer")?;
    let small = image::imageops::resize(&img, sw, sh, image::imageops::FilterType::Triangle);
    let mut canvas = image::RgbImage::from_pixel(640, 360, image::Rgb([110, 110, 110]));
    let (fcx, fcy) = ((b.x1 + b.x2) / 2.0 * s, (b.y1 + b.y2) / 2.0 * s);
    image::imageops::overlay(
        &mut canvas,
        &small,
        (320.0 - fcx) as i64,
        (180.0 - fcy) as i64,
    );
    Ok(Frame::from_rgb(640, 360, canvas.into_raw())?)
}

fn bench_vision(
    v: &VisionOpts,
    iters: usize,
    photo: &Path,
    reference: bool,
) -> anyhow::Result<Value> {
    let mut p = v.open()?;
    let frame = bench_frame(&mut p, photo)?;
    let faces = p.analyze(&frame, EmbedPolicy::All)?;
    if faces.len() != 1 {
        bail!(
            "the benchmark frame should hold one face, found {}",
            faces.len()
        );
    }
    let det = p.detector.detect(&frame)?.remove(0);
    let aligned = p.align(&frame, &det);
    let eight: Vec<&Frame> = std::iter::repeat_n(&aligned, 8).collect();
    let embedder_file = p.embedder.manifest().file.clone();
    let embedder_batches = p.embedder.batches();
    let providers = json!({
        "detector": p.detector.provider().as_str(),
        "embedder": p.embedder.provider().as_str(),
    });
    let (w, _) = p.detector.input_size();
    let mut stages = serde_json::Map::new();
    stages.insert(
        format!("preprocess_{w}"),
        time(iters, || {
            std::hint::black_box(p.detector.preprocess(&frame));
            Ok(())
        })?,
    );
    stages.insert(
        format!("detect_{w}"),
        time(iters, || {
            p.detector.detect(&frame)?;
            Ok(())
        })?,
    );
    stages.insert(
        "align".into(),
        time(iters * 10, || {
            std::hint::black_box(p.align(&frame, &det));
            Ok(())
        })?,
    );
    stages.insert(
        "embed_1".into(),
        time(iters, || {
            p.embedder.embed(&[&aligned])?;
            Ok(())
        })?,
    );
    stages.insert(
        "embed_8".into(),
        time(iters, || {
            p.embedder.embed(&eight)?;
            Ok(())
        })?,
    );
    stages.insert(
        "frame_640x360_1face".into(),
        time(iters, || {
            let f = p.analyze(&frame, EmbedPolicy::Passing)?;
            std::hint::black_box(f);
            Ok(())
        })?,
    );
    let (rss, peak) = memory_mb();
    let detector_id = p.detector.manifest().id.clone();
    drop(p);
    // A second detector at 320 and 640 when it has a dynamic input (SCRFD).
    let mut other = serde_json::Map::new();
    for size in [640u32, 320] {
        let mut o = v.clone();
        o.detector = "scrfd_2.5g_kps".into();
        o.det_size = Some(size);
        if o.detector == detector_id && v.det_size == Some(size) {
            continue;
        }
        match o.open() {
            Ok(mut q) => {
                other.insert(
                    format!("scrfd_detect_{size}"),
                    time(iters, || {
                        q.detector.detect(&frame)?;
                        Ok(())
                    })?,
                );
            }
            Err(e) => {
                other.insert(
                    format!("scrfd_detect_{size}"),
                    json!({"error": format!("{e:#}")}),
                );
            }
        }
    }
    let mut out = json!({
        "machine": machine(),
        "threads": v.threads,
        "detector": detector_id,
        "embedder": v.embedder,
        "embedder_file": embedder_file,
        // one session call for the 8 faces (a dynamic-batch model) or one per face
        "embedder_batches": embedder_batches,
        // where each model ran: "cpu", or "cuda" when --cuda registered the provider
        "providers": providers,
        "stages": stages,
        "scrfd": other,
        "memory_mb": {"rss_after": rss, "peak": peak},
    });
    if reference {
        let frame_png =
            std::env::temp_dir().join(format!("rollcall-bench-{}.png", std::process::id()));
        std::fs::write(&frame_png, encode_png(&frame)?)?;
        let r = python_reference(v, &frame_png, iters);
        let _ = std::fs::remove_file(&frame_png);
        match r {
            Ok(py) => {
                let ours_stages = out["stages"].clone();
                let ratio = |ours: &str, theirs: &str| {
                    let a = ours_stages[ours]["median_ms"].as_f64()?;
                    let b = py["stages"][theirs]["median_ms"].as_f64()?;
                    Some(round3(b / a))
                };
                let speedup = json!({
                    "embed_1": ratio("embed_1", "embed_1"),
                    "embed_8": ratio("embed_8", "embed_8"),
                    "detect": ratio(&format!("detect_{w}"), "detect"),
                    "preprocess": ratio(&format!("preprocess_{w}"), "preprocess"),
                    "frame_640x360_1face": ratio("frame_640x360_1face", "frame"),
                    "align": ratio("align", "align"),
                });
                out["python_reference"] = py;
                out["speedup_vs_python"] = speedup;
            }
            Err(e) => out["python_reference"] = json!({"error": format!("{e:#}")}),
        }
    }
    Ok(out)
}

/// Runs `benches/vision_reference.py` and parses its JSON.
fn python_reference(v: &VisionOpts, frame_png: &Path, iters: usize) -> anyhow::Result<Value> {
    let frame = frame_png.display().to_string();
    run_reference(
        v,
        "vision_reference.py",
        &["--frame".into(), frame, "--iters".into(), iters.to_string()],
    )
}
